"""An MCP client that is not ours (the official Python SDK) against `idse mcp` over stdio.

Usage: python3 tests/mcp_client.py IDSE_BINARY WORKSPACE
Initialises, lists tools, reads the spec, writes it, and checks the file and last_agent.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

AGENT = "python-sdk-agent"


def is_error(result) -> bool:
    # The SDK renamed isError to is_error in 2.x.
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))
EXPECTED_TOOLS = {"list_projects", "read_stage", "write_stage", "set_stage_status",
                  "validate", "push", "pull"}


async def main(idse: str, workspace: str) -> None:
    params = StdioServerParameters(command=idse, args=["-C", workspace, "mcp"],
                                   env={**os.environ, "IDSE_AGENCY_URL": "http://127.0.0.1:9"})
    async with stdio_client(params) as (read, write):
        info = types.Implementation(name=AGENT, version="1.0")
        async with ClientSession(read, write, client_info=info) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            missing = EXPECTED_TOOLS - tools
            assert not missing, f"missing tools: {missing}"

            read_result = await session.call_tool("read_stage", {"project": "demo", "stage": "spec"})
            assert not is_error(read_result), read_result
            assert "[REQUIRES INPUT]" in read_result.content[0].text

            text = "# Specification\n\n## Purpose\nWritten by an agent over MCP.\n"
            wrote = await session.call_tool("write_stage",
                                            {"project": "demo", "stage": "spec", "text": text})
            assert not is_error(wrote), wrote
            status = await session.call_tool("set_stage_status",
                                             {"project": "demo", "stage": "spec", "status": "completed"})
            assert not is_error(status), status
            bad = await session.call_tool("read_stage", {"project": "demo", "stage": "design"})
            assert is_error(bad), "an unknown stage is a tool error"
            # The pipeline docs as resources: listed, and read back as the tool wrote them.
            resources = {str(r.uri): r for r in (await session.list_resources()).resources}
            assert "idse://demo/spec" in resources, sorted(resources)
            spec_resource = resources["idse://demo/spec"]
            mime = getattr(spec_resource, "mime_type", getattr(spec_resource, "mimeType", None))
            assert mime == "text/markdown", spec_resource
            got = await session.read_resource("idse://demo/spec")
            assert got.contents[0].text == text, got
            listed = await session.call_tool("list_projects", {})
            projects = json.loads(listed.content[0].text)
            assert projects[0]["project"] == "demo"

    base = os.path.join(workspace, ".idse", "projects", "demo")
    with open(os.path.join(base, "sessions", "__blueprint__", "specs", "spec.md")) as f:
        assert f.read() == text
    with open(os.path.join(base, "session_state.json")) as f:
        state = json.load(f)
    assert state["last_agent"] == AGENT, state
    assert state["stages"]["spec"] == "completed", state
    print("mcp client: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
