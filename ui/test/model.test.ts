import { describe, expect, it } from "vitest";
import { debounce, describePull, describePush, filterProjects, linkState, previewTotals, problemSummary, relativeTime, runAll, taskProgress } from "../src/model";
import type { Attention } from "../src/types";
import { project, stage } from "./fixtures";

describe("filterProjects", () => {
  const list = [project("checkout"), project("search", { badge: "conflict" }), project("billing", { badge: "local_changes", folder: "/work/payments" })];
  const attention: Attention[] = [{ kind: "conflict", dir: list[1].dir, project: "search", stages: ["spec"], message: "x" }];
  it("matches name and folder, case-insensitively", () => {
    expect(filterProjects(list, [], "CHECK", "all").map((p) => p.name)).toEqual(["checkout"]);
    expect(filterProjects(list, [], "payments", "all").map((p) => p.name)).toEqual(["billing"]);
  });
  it("filters by badge and by attention", () => {
    expect(filterProjects(list, [], "", "conflict").map((p) => p.name)).toEqual(["search"]);
    expect(filterProjects(list, attention, "", "attention").map((p) => p.name)).toEqual(["search"]);
    expect(filterProjects(list, attention, "bill", "attention")).toEqual([]);
  });
});

describe("relativeTime", () => {
  const now = new Date("2026-11-23T12:00:00Z");
  it.each([
    [null, "never"],
    ["2026-11-23T11:59:50Z", "just now"],
    ["2026-11-23T11:40:00Z", "20 min ago"],
    ["2026-11-23T09:00:00Z", "3 h ago"],
    ["2026-11-22T12:00:00Z", "yesterday"],
    ["2026-11-13T12:00:00Z", "10 days ago"],
    ["2026-01-02T12:00:00Z", "2026-01-02"],
    ["garbage", "unknown"],
  ])("%s → %s", (at, text) => expect(relativeTime(at, now)).toBe(text));
});

describe("cards", () => {
  it("summarises problems errors first", () => {
    expect(problemSummary(stage({ errors: ["a", "b"], warnings: ["w"] }))).toEqual({ level: "error", text: "2 errors" });
    expect(problemSummary(stage({ warnings: ["w"] }))).toEqual({ level: "warning", text: "1 warning" });
    expect(problemSummary(stage())).toEqual({ level: "ok", text: "valid" });
  });
  it("reports task progress only where there are boxes", () => {
    expect(taskProgress(stage({ tasks_done: 3, tasks_total: 4 }))).toBe(0.75);
    expect(taskProgress(stage())).toBeNull();
  });
});

describe("result sentences", () => {
  it("says what a push did or why it was refused", () => {
    expect(describePush({ project: "p", project_id: "i", pushed: ["spec", "plan"], conflicts: [], revision: 4 })).toBe("Pushed spec, plan (revision 4).");
    expect(describePush({ project: "p", project_id: "i", pushed: [], conflicts: ["spec"], revision: null })).toMatch(/^Refused: spec changed on the gateway/);
    expect(describePush({ project: "p", project_id: "i", pushed: [], conflicts: [], revision: null })).toBe("Nothing to push.");
  });
  it("says what a pull did, conflicts named", () => {
    expect(describePull({ project: "p", stages: [["spec", "updated"], ["plan", "conflict"], ["tasks", "unchanged"]], revision: 3 }))
      .toBe("Updated spec; conflict in plan; no file changed.");
    expect(describePull({ project: "p", stages: [["spec", "unchanged"]], revision: 3 })).toBe("Already up to date.");
  });
  it("totals a preview", () => {
    expect(previewTotals([
      { stage: "spec", changes: true, lines_added: 3, lines_removed: 1, conflict: false, pull: null },
      { stage: "plan", changes: false, lines_added: 2, lines_removed: 2, conflict: true, pull: "conflict" },
    ])).toEqual({ stages: 1, added: 5, removed: 3, conflicts: 1 });
  });
});

describe("runAll", () => {
  it("keeps at most `limit` running, finishes every item, and isolates failures", async () => {
    let running = 0;
    let peak = 0;
    const seen: string[] = [];
    const results = await runAll([1, 2, 3, 4, 5, 6], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      if (n === 3) throw { code: "offline", message: "down" };
      return n * 10;
    }, (n, s) => seen.push(`${n}:${s === "running" ? "run" : s.ok ? "ok" : "err"}`));
    expect(peak).toBe(2);
    expect(results.map((r) => (r.ok ? r.value : r.error.code))).toEqual([10, 20, "offline", 40, 50, 60]);
    expect(seen.filter((s) => s.endsWith("run"))).toHaveLength(6);
    expect(seen).toContain("3:err");
  });
});

describe("debounce", () => {
  it("runs once after a burst", async () => {
    let calls = 0;
    const f = debounce(() => calls++, 10);
    f(); f(); f();
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toBe(1);
  });
});

describe("linkState", () => {
  it("tells a refused token from a gateway that cannot be reached", () => {
    const link = { url: "http://g", embedded: false, online: false };
    expect(linkState({ ...link, online: true, problem: null })).toBe("connected");
    expect(linkState({ ...link, problem: { code: "unauthorized", message: "The gateway refused the token; set a valid one in Settings." } })).toBe("token refused");
    expect(linkState({ ...link, problem: { code: "offline", message: "The gateway at http://g cannot be reached." } })).toBe("unreachable");
    expect(linkState({ ...link, problem: { code: "untrusted_certificate", message: "The gateway at https://g presented a certificate this computer does not trust." } })).toBe("certificate not trusted");
  });
});
