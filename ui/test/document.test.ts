import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import type { Revision, StageDocument } from "../src/types";
import { showDocument } from "../src/view/documentView";

afterEach(() => {
  clearMocks();
  document.body.replaceChildren();
});

const tick = () => new Promise((r) => setTimeout(r, 0));

function doc(over: Partial<StageDocument> = {}): StageDocument {
  return {
    project: "checkout", project_id: "id-1", session: "s1", stage: "spec", path: "/r/spec.md", exists: true,
    text: "# Spec\nnew line\n", html: "<h1>Spec</h1><p>new line <a href=\"https://x.test\">x</a></p>", hash: "h-local", sync: "local_changes",
    push_diff: [{ lines: [
      { kind: "equal", old: 1, new: 1, parts: [{ text: "# Spec\n", changed: false }] },
      { kind: "insert", old: null, new: 2, parts: [{ text: "new", changed: true }, { text: " line\n", changed: false }] },
    ] }],
    pull_diff: null, remote_note: "The gateway cannot be reached.",
    ...over,
  };
}

const rev = (n: number, over: Partial<Revision> = {}): Revision => ({
  session_id: "s1", stage: "spec", revision: n, sha256: `sha-${n}`, bytes: 120, agent: "codex", author: "ben",
  pushed_at: "2026-11-22T10:00:00Z", is_base: false, is_local: false, ...over,
});

describe("document view", () => {
  it("renders the document, the push diff with marked words, and the missing remote as a sentence", async () => {
    mockIPC((cmd) => (cmd === "stage_document" ? doc() : null));
    await showDocument("/r/.idse/projects/checkout", "spec", { changed() {}, merge() {} });
    const d = document.getElementById("document-view") as HTMLElement;
    expect(d.querySelector(".markdown h1")?.textContent).toBe("Spec");
    const link = d.querySelector(".markdown a") as HTMLAnchorElement;
    const click = new MouseEvent("click", { bubbles: true, cancelable: true });
    link.dispatchEvent(click);
    expect(click.defaultPrevented).toBe(true);
    (d.querySelector('[data-tab="push"]') as HTMLButtonElement).click();
    expect(d.querySelector('[data-tab="push"]')?.textContent).toContain("+1 −0");
    expect(d.querySelector("tr.diff-insert mark")?.textContent).toBe("new");
    (d.querySelector('[data-tab="pull"]') as HTMLButtonElement).click();
    expect(d.querySelector(".tab-content")?.textContent).toContain("cannot be reached");
  });

  it("restores a revision naming the text it replaces, after asking when edits were not pushed", async () => {
    const calls: [string, Record<string, unknown>][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args as Record<string, unknown>]);
      if (cmd === "stage_document") return doc();
      if (cmd === "stage_history") return { revisions: [rev(3, { is_base: true }), rev(2)], next_before: null };
      if (cmd === "revision_text") return { sha256: "sha-2", text: "# Old\n", html: "<h1>Old</h1>" };
      if (cmd === "restore_revision") return { stage: "spec", sha256: "sha-2", kept: "/r/.sync/replaced/s1/spec.md" };
      return null;
    });
    const asked: string[] = [];
    window.confirm = (m?: string) => { asked.push(m ?? ""); return true; };
    let changed = 0;
    await showDocument("/p", "spec", { changed: () => { changed++; }, merge() {} });
    const d = document.getElementById("document-view") as HTMLElement;
    (d.querySelector('[data-tab="history"]') as HTMLButtonElement).click();
    await tick();
    expect(d.querySelectorAll(".revision")).toHaveLength(2);
    expect(d.querySelector("#older-revisions")).toBeNull();
    expect(d.querySelector('[data-sha="sha-3"]')?.textContent).toContain("last synced");
    (d.querySelector('[data-sha="sha-2"] button') as HTMLButtonElement).click();
    await tick();
    expect(d.querySelector(".revision-preview h1")?.textContent).toBe("Old");
    (d.querySelector("#restore-revision") as HTMLButtonElement).click();
    await tick();
    await tick();
    expect(asked[0]).toContain("not pushed");
    expect(calls.find(([c]) => c === "restore_revision")?.[1]).toEqual({ dir: "/p", stage: "spec", sha256: "sha-2", expected: "h-local" });
    expect(changed).toBe(1);
    expect(d.querySelector("#restore-note")?.textContent).toContain("push to share it");
  });

  it("reads older revisions a page at a time until the first, and says why a page failed", async () => {
    const asked: unknown[] = [];
    let fail = true;
    mockIPC((cmd, args) => {
      if (cmd === "stage_document") return doc();
      if (cmd !== "stage_history") return null;
      const before = (args as { before: number | null }).before;
      asked.push(before);
      if (before === null) return { revisions: [rev(5), rev(4)], next_before: 41 };
      if (fail) { fail = false; throw { code: "gateway_unreachable", message: "The gateway cannot be reached." }; }
      if (before === 41) return { revisions: [rev(3), rev(2)], next_before: 20 };
      return { revisions: [rev(1)], next_before: null };
    });
    await showDocument("/p", "spec", { changed() {}, merge() {} });
    const d = document.getElementById("document-view") as HTMLElement;
    (d.querySelector('[data-tab="history"]') as HTMLButtonElement).click();
    await tick();
    const older = () => d.querySelector("#older-revisions") as HTMLButtonElement | null;
    older()?.click();
    await tick();
    expect(d.querySelector(".older .error")?.textContent).toBe("The gateway cannot be reached.");
    expect(d.querySelectorAll(".revision")).toHaveLength(2);
    older()?.click();
    await tick();
    older()?.click();
    await tick();
    const shown = [...d.querySelectorAll(".revision .rev-no")].map((e) => e.textContent);
    expect(shown).toEqual(["#5", "#4", "#3", "#2", "#1"]);
    expect(older()).toBeNull();
    expect(asked).toEqual([null, 41, 41, 20]);
  });

  it("offers the merge for a conflicted stage", async () => {
    mockIPC((cmd) => (cmd === "stage_document" ? doc({ sync: "conflict" }) : null));
    const merged: string[] = [];
    await showDocument("/p", "spec", { changed() {}, merge: (_d, s) => merged.push(s) });
    (document.querySelector("#open-merge") as HTMLButtonElement).click();
    expect(merged).toEqual(["spec"]);
  });
});
