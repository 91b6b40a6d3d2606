import { describe, expect, it, vi } from "vitest";
import { attentionList, folderList } from "../src/view/lists";
import { projectRow } from "../src/view/projectRow";
import { stageCard } from "../src/view/stageCard";
import { closeDialog, page } from "../src/view/dom";
import { project, stage } from "./fixtures";

describe("stage card", () => {
  it("shows status, problems, tasks, sync and staleness", () => {
    const el = stageCard(stage({ stage: "tasks", status: "completed", tasks_done: 2, tasks_total: 5, errors: ["x"], sync: "conflict", stale_after: "spec", changed: true }));
    expect(el.dataset.stage).toBe("tasks");
    expect(el.classList.contains("is-stale")).toBe(true);
    expect(el.textContent).toContain("Completed");
    expect(el.textContent).toContain("1 error");
    expect(el.textContent).toContain("2/5");
    expect(el.textContent).toContain("conflict: needs a merge");
    expect(el.textContent).toContain("stale: spec changed");
    expect((el.querySelector(".fill") as HTMLElement).style.width).toBe("40%");
  });
  it("says Missing for an absent file", () => {
    expect(stageCard(stage({ exists: false, status: "pending" })).textContent).toContain("Missing");
  });
});

describe("project row", () => {
  it("renders seven cards, the badge, and wires its buttons", () => {
    const push = vi.fn();
    const pull = vi.fn();
    const preview = vi.fn();
    const open = vi.fn();
    const p = project("checkout", { badge: "remote_changes", last_agent: "claude" });
    const row = projectRow(p, { revision: 3, last_author: "ana", last_agent: null, updated_at: "2026-11-23T10:00:00Z" }, { busy: null, result: { level: "error", text: "The gateway cannot be reached." } }, { push, pull, preview, open }, new Date());
    expect(row.querySelectorAll(".stage")).toHaveLength(7);
    expect(row.querySelector(".badge")?.textContent).toBe("Remote changes");
    expect(row.textContent).toContain("agent claude");
    expect(row.textContent).toContain("by ana");
    expect(row.querySelector(".row-result")?.textContent).toBe("The gateway cannot be reached.");
    (row.querySelector(".act-push") as HTMLButtonElement).click();
    (row.querySelector(".act-pull") as HTMLButtonElement).click();
    expect(push).toHaveBeenCalledWith(p);
    expect(pull).toHaveBeenCalledWith(p);
    (row.querySelector('.stage[data-stage="spec"]') as HTMLElement).click();
    expect(open).toHaveBeenCalledWith(p, expect.objectContaining({ stage: "spec" }));
  });
  it("disables buttons while busy; a project never synced here can pull the gateway's of its name", () => {
    const busy = projectRow(project("a"), undefined, { busy: "Pushing…", result: null }, { push() {}, pull() {}, preview() {}, open() {} }, new Date());
    expect((busy.querySelector(".act-push") as HTMLButtonElement).disabled).toBe(true);
    const fresh = projectRow(project("b", { project_id: null, badge: "never_pushed" }), undefined, { busy: null, result: null }, { push() {}, pull() {}, preview() {}, open() {} }, new Date());
    const pull = fresh.querySelector(".act-pull") as HTMLButtonElement;
    expect(pull.disabled).toBe(false);
    expect(pull.title).toContain("same name");
    expect((fresh.querySelector(".act-push") as HTMLButtonElement).disabled).toBe(false);
  });
});

describe("lists", () => {
  it("attention items jump to their project", () => {
    const jump = vi.fn();
    const el = attentionList([{ kind: "stale", dir: "/d", project: "p", stages: ["plan"], message: "p: spec changed after plan was written; check it still follows." }], jump);
    expect(el.textContent).toContain("Attention (1)");
    (el.querySelector("button") as HTMLButtonElement).click();
    expect(jump).toHaveBeenCalledWith("/d");
    expect(attentionList([], jump).textContent).toContain("Nothing needs your attention.");
  });
  it("marks missing folders and keeps them removable", () => {
    const remove = vi.fn();
    const el = folderList([{ path: "/gone", missing: true }, { path: "/here", missing: false }], [], remove);
    expect(el.querySelectorAll("li.missing")).toHaveLength(1);
    expect(el.textContent).toContain("missing: moved or deleted?");
    (el.querySelector("li.missing button") as HTMLButtonElement).click();
    expect(remove).toHaveBeenCalledWith({ path: "/gone", missing: true });
  });
});

describe("page views", () => {
  it("stand in for the dashboard until closed, and replace one with the same id", () => {
    const dashboard = document.createElement("main");
    document.body.append(dashboard);
    const first = page("merge-view", "merge", document.createTextNode("first"));
    expect(document.body.classList.contains("paged")).toBe(true);
    expect(document.activeElement).toBe(first);
    const second = page("merge-view", "merge", document.createTextNode("second"));
    expect(document.querySelectorAll("#merge-view")).toHaveLength(1);
    expect(second.textContent).toBe("second");
    closeDialog(second);
    expect(document.getElementById("merge-view")).toBeNull();
    expect(document.body.classList.contains("paged")).toBe(false);
    expect(dashboard.isConnected).toBe(true);
    dashboard.remove();
  });
});
