import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { joinSides, MergeSession, sideLabel } from "../src/merge";
import type { ChunkView, MergeView } from "../src/types";
import { REMOTE_PUSH, showMerge } from "../src/view/mergeView";

// jsdom lays nothing out, so it has no scrolling to do.
Element.prototype.scrollIntoView = function () {};

afterEach(() => {
  clearMocks();
  document.body.replaceChildren();
});

const chunk = (kind: ChunkView["kind"], base: string, local: string, remote: string): ChunkView =>
  ({ kind, base, local, remote, local_marks: [], remote_marks: [] });

/** intro (same) · conflict A · remote-only change · same · conflict B · same */
function view(draft: MergeView["draft"] = null): MergeView {
  return {
    project: "checkout", project_id: "id-checkout", session: "s1", stage: "spec", path: "/r/.idse/projects/checkout/sessions/s1/specs/spec.md",
    base: { hash: "b", author: "ana", agent: "claude-code", at: "2026-11-20T09:00:00Z" },
    local: { hash: "l", author: null, agent: "codex", at: "2026-11-23T08:00:00Z" },
    remote: { hash: "r", author: "ben", agent: null, at: "2026-11-23T09:00:00Z" },
    chunks: [
      chunk("same", "# Spec\n", "# Spec\n", "# Spec\n"),
      chunk("conflict", "a\n", "a local\n", "a remote\n"),
      chunk("remote", "x\n", "x\n", "x2\n"),
      chunk("same", "mid\n", "mid\n", "mid\n"),
      chunk("conflict", "b", "b local", "b remote"),
      chunk("same", "\nend\n", "\nend\n", "\nend\n"),
    ],
    conflicts: 2,
    draft,
  };
}

describe("merge session", () => {
  it("applies changes that do not conflict and waits for every conflict", () => {
    const s = new MergeSession(view());
    expect(s.remaining()).toBe(2);
    expect(s.text()).toBeNull();
    expect(s.resultAt(2)).toBe("x2\n");
    s.take(1, "local");
    expect(s.remaining()).toBe(1);
    expect(s.text()).toBeNull();
    s.take(4, "remote");
    expect(s.remaining()).toBe(0);
    expect(s.text()).toBe("# Spec\na local\nx2\nmid\nb remote\nend\n");
  });

  it("takes both sides in either order, adding a line break only where one is missing", () => {
    expect(joinSides("a\n", "b\n")).toBe("a\nb\n");
    expect(joinSides("a", "b")).toBe("a\nb");
    expect(joinSides("", "b")).toBe("b");
    const s = new MergeSession(view());
    s.take(1, "remote_local");
    s.take(4, "local_remote");
    expect(s.resultAt(1)).toBe("a remote\na local\n");
    expect(s.resultAt(4)).toBe("b local\nb remote");
  });

  it("keeps a hand edit, and undo brings the conflict back; redo puts it again", () => {
    const s = new MergeSession(view());
    s.take(1, "local");
    s.edit(4, "b by hand");
    expect(s.choice(4)).toEqual({ take: "edited", text: "b by hand" });
    expect(s.remaining()).toBe(0);
    s.undo();
    expect(s.isOpen(4)).toBe(true);
    expect(s.remaining()).toBe(1);
    s.undo();
    expect(s.remaining()).toBe(2);
    expect(s.canUndo()).toBe(false);
    s.redo();
    s.redo();
    expect(s.resultAt(4)).toBe("b by hand");
    s.reset(4);
    expect(s.isOpen(4)).toBe(true);
  });

  it("takes a whole side for the file, non-conflicting changes included", () => {
    const local = new MergeSession(view());
    local.takeAll("local");
    expect(local.text()).toBe("# Spec\na local\nx\nmid\nb local\nend\n");
    const remote = new MergeSession(view());
    remote.takeAll("remote");
    expect(remote.text()).toBe("# Spec\na remote\nx2\nmid\nb remote\nend\n");
    remote.undo();
    expect(remote.remaining()).toBe(2);
  });

  it("steps through open conflicts first, wrapping around", () => {
    const s = new MergeSession(view());
    expect(s.step(-1, 1)).toBe(1);
    expect(s.step(1, 1)).toBe(4);
    expect(s.step(4, 1)).toBe(1);
    expect(s.step(1, -1)).toBe(4);
    s.take(1, "local");
    expect(s.step(4, 1)).toBe(4);
    s.take(4, "local");
    expect(s.step(4, 1)).toBe(1);
  });

  it("resumes from a draft by the chunks' content, even at other positions", () => {
    const first = new MergeSession(view());
    first.edit(4, "b merged");
    const draft = first.draft();
    expect(draft).toEqual([{ base: "b", local: "b local", remote: "b remote", take: "edited", text: "b merged" }]);
    const moved = view();
    moved.chunks.splice(0, 0, chunk("remote", "", "", "new intro\n"));
    const again = new MergeSession(moved, draft);
    expect(again.resumed).toBe(1);
    expect(again.resultAt(5)).toBe("b merged");
    expect(again.isOpen(2)).toBe(true);
  });

  it("labels sides by who and when, or says what is unknown", () => {
    expect(sideLabel({ author: "ben", agent: "codex", at: null }, "?")).toBe("ben · codex");
    expect(sideLabel({ author: null, agent: null, at: null }, "the gateway")).toBe("the gateway");
    expect(sideLabel({ author: "ana", agent: null, at: "2026-11-23T09:00:00Z" }, "?")).toMatch(/^ana · .*23/);
  });
});

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("merge view", () => {
  it("shows the sides with who wrote them, settles conflicts by click and key, and saves with both hashes", async () => {
    const calls: [string, Record<string, unknown>][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args as Record<string, unknown>]);
      if (cmd === "merge_view") return view();
      if (cmd === "save_merge") return { outcome: "saved", push: { project: "checkout", project_id: "i", pushed: ["spec"], conflicts: [], revision: 9 } };
      return null;
    });
    const done: string[] = [];
    await showMerge("/r/.idse/projects/checkout", "spec", { done: (_l, m) => done.push(m) });
    const d = document.getElementById("merge-view") as HTMLElement;
    expect(d.querySelector(".col-head.base")?.textContent).toContain("ana · claude-code");
    expect(d.querySelector(".col-head.remote")?.textContent).toContain("ben");
    expect(d.querySelector("#merge-remaining")?.textContent).toBe("2 of 2 conflict(s) remaining");
    expect((d.querySelector("#save-merge") as HTMLButtonElement).disabled).toBe(true);
    expect(d.querySelector(".shortcuts")?.textContent).toContain("take local");
    (d.querySelector('[data-chunk="1"] .take-local') as HTMLButtonElement).click();
    expect(d.querySelector("#merge-remaining")?.textContent).toBe("1 of 2 conflict(s) remaining");
    // Focus moved on to the next open conflict; "2" takes remote there.
    expect(d.querySelector('[data-chunk="4"]')?.classList.contains("focused")).toBe(true);
    d.dispatchEvent(new KeyboardEvent("keydown", { key: "2", bubbles: true }));
    expect(d.querySelector("#merge-remaining")?.textContent).toBe("All 2 conflict(s) settled");
    d.dispatchEvent(new KeyboardEvent("keydown", { key: "z", ctrlKey: true, bubbles: true }));
    expect(d.querySelector("#merge-remaining")?.textContent).toBe("1 of 2 conflict(s) remaining");
    d.dispatchEvent(new KeyboardEvent("keydown", { key: "z", ctrlKey: true, shiftKey: true, bubbles: true }));
    expect((d.querySelector("#save-merge") as HTMLButtonElement).disabled).toBe(false);
    d.dispatchEvent(new KeyboardEvent("keydown", { key: "s", ctrlKey: true, bubbles: true }));
    await tick();
    await tick();
    const save = calls.find(([c]) => c === "save_merge");
    expect(save?.[1]).toMatchObject({ stage: "spec", text: "# Spec\na local\nx2\nmid\nb remote\nend\n", localHash: "l", remoteHash: "r" });
    expect(done[0]).toContain("pushed it (revision 9)");
  });

  it("shows the new three-way state when the remote moved, keeping the choices that still apply", async () => {
    const moved = view();
    moved.remote = { ...moved.remote, hash: "r2", author: "cleo" };
    moved.chunks[4] = chunk("conflict", "b", "b local", "b remote again");
    mockIPC((cmd) => {
      if (cmd === "merge_view") return view();
      if (cmd === "save_merge") return { outcome: "moved", reason: "Someone pushed spec again while you merged; nothing was overwritten.", view: moved };
      return null;
    });
    await showMerge("/d", "spec", { done: () => undefined });
    const d = document.getElementById("merge-view") as HTMLElement;
    (d.querySelector('[data-chunk="1"] .take-remote') as HTMLButtonElement).click();
    (d.querySelector('[data-chunk="4"] .take-local') as HTMLButtonElement).click();
    (d.querySelector("#save-merge") as HTMLButtonElement).click();
    await tick();
    await tick();
    expect(d.querySelector(".merge-banner")?.textContent).toContain("Someone pushed spec again");
    expect(d.querySelector(".col-head.remote")?.textContent).toContain("cleo");
    expect(d.querySelector("#merge-remaining")?.textContent).toBe("1 of 2 conflict(s) remaining");
    expect(d.querySelector('[data-chunk="1"] .settled')?.textContent).toContain("a remote");
  });

  it("says so when a teammate pushes the same stage while the view is open", async () => {
    mockIPC((cmd) => (cmd === "merge_view" ? view() : null));
    await showMerge("/d", "spec", { done: () => undefined });
    const d = document.getElementById("merge-view") as HTMLElement;
    // Projects are told apart by id: a teammate's copy may carry another name.
    const push = (stages: string[], id = "id-checkout", name = "checkout") => d.dispatchEvent(new CustomEvent(REMOTE_PUSH, { detail: {
      project_id: id, project_name: name, session_id: "s1", stages, revision: 4, author: "cleo", agent: null, pushed_at: "2026-11-23T10:00:00Z",
    } }));
    push(["plan"]);
    push(["spec"], "id-other", "checkout");
    expect(d.querySelector(".merge-banner")?.classList.contains("hidden")).toBe(true);
    push(["spec"], "id-checkout", "checkout-copy");
    expect(d.querySelector(".merge-banner")?.textContent).toContain("cleo pushed spec again");
  });

  it("edits a conflict by hand and cancels without touching anything but the draft", async () => {
    const calls: [string, Record<string, unknown>][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args as Record<string, unknown>]);
      return cmd === "merge_view" ? view() : null;
    });
    const done: string[] = [];
    await showMerge("/d", "spec", { done: (_l, m) => done.push(m) });
    const d = document.getElementById("merge-view") as HTMLElement;
    d.dispatchEvent(new KeyboardEvent("keydown", { key: "e", bubbles: true }));
    const area = d.querySelector('[data-chunk="1"] textarea') as HTMLTextAreaElement;
    area.value = "a by hand\n";
    (d.querySelector('[data-chunk="1"] .apply-edit') as HTMLButtonElement).click();
    expect(d.querySelector('[data-chunk="1"] .settled')?.textContent).toContain("edited by hand");
    (d.querySelector("#cancel-merge") as HTMLButtonElement).click();
    await tick();
    expect(calls.some(([c]) => c === "save_merge")).toBe(false);
    const draft = calls.filter(([c]) => c === "save_merge_draft").pop();
    expect(draft?.[1].choices).toEqual([{ base: "a\n", local: "a local\n", remote: "a remote\n", take: "edited", text: "a by hand\n" }]);
    expect(done[0]).toContain("nothing changed");
  });
});
