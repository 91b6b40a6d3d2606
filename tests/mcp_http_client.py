"""The official Python MCP SDK against the gateway's `/mcp` (streamable HTTP, bearer token).

Usage: python3 tests/mcp_http_client.py GATEWAY_URL TOKEN PROJECT
Reads a stage, writes it on that base, then writes again on the stale base and expects a refusal.
"""
import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

AGENT = "python-remote-agent"


def is_error(result) -> bool:
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


async def main(url: str, token: str, project: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(f"{url}/mcp", http_client=http) as streams:
        read, write = streams[0], streams[1]
        info = types.Implementation(name=AGENT, version="1.0")
        async with ClientSession(read, write, client_info=info) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"list_projects", "read_stage", "write_stage", "set_stage_status", "validate"} <= tools, tools
            got = await session.call_tool("read_stage", {"project": project, "stage": "spec"})
            assert not is_error(got), got
            stage = json.loads(got.content[0].text)
            first = await session.call_tool("write_stage", {
                "project": project, "stage": "spec", "text": "# Spec\nfrom a remote agent\n",
                "base_sha256": stage["sha256"]})
            assert not is_error(first), first
            stale = await session.call_tool("write_stage", {
                "project": project, "stage": "spec", "text": "# Spec\nstale write\n",
                "base_sha256": stage["sha256"]})
            assert is_error(stale), "a write on a stale base must be refused"
            assert "changed since you read it" in stale.content[0].text, stale
            # The Agency copy's stages as resources: listed, and read back as written.
            resources = {str(r.uri) for r in (await session.list_resources()).resources}
            uri = f"idse://{project}/spec"
            assert uri in resources, sorted(resources)
            got = await session.read_resource(uri)
            assert got.contents[0].text == "# Spec\nfrom a remote agent\n", got
            status = await session.call_tool("set_stage_status", {
                "project": project, "stage": "spec", "status": "completed"})
            assert not is_error(status), status
            checked = await session.call_tool("validate", {"project": project})
            reports = json.loads(checked.content[0].text)
            assert len(reports) == 7 and reports[0]["stage"] == "intent", reports
    print("mcp http client: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
