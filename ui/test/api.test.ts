import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { api } from "../src/api";

afterEach(() => clearMocks());

describe("api", () => {
  it("sends each command its arguments under the names the Rust side reads", async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "push") return { project: "p", project_id: "i", pushed: ["spec"], conflicts: [], revision: 2 };
      if (cmd === "fetch_project") return { name: "p" };
      return null;
    });
    const r = await api.push("/r/.idse/projects/p");
    expect(r.pushed).toEqual(["spec"]);
    await api.fetchProject("id-1", "/r");
    await api.saveSettings("https://sync.example.com", null);
    await api.preview("/d", "pull");
    expect(calls.map(([c]) => c)).toEqual(["push", "fetch_project", "save_settings", "preview"]);
    expect(calls[0][1]).toEqual({ dir: "/r/.idse/projects/p" });
    expect(calls[1][1]).toEqual({ projectId: "id-1", folder: "/r" });
    expect(calls[2][1]).toEqual({ gatewayUrl: "https://sync.example.com", token: null });
    expect(calls[3][1]).toEqual({ dir: "/d", direction: "pull" });
  });

  it("turns a command's failure into {code, message}", async () => {
    mockIPC(() => {
      throw { code: "not_granted", message: "/x is outside the folders added to IDSE Desk; add its folder first." };
    });
    await expect(api.pull("/x")).rejects.toEqual({
      code: "not_granted",
      message: "/x is outside the folders added to IDSE Desk; add its folder first.",
    });
  });
});
