// The three-way merge view of a conflicted stage: base, local and remote side by side, aligned
// chunk by chunk, with an editable result. The choices live in `MergeSession`; this draws them
// and turns clicks and keys into them.
import { api } from "../api";
import { debounce } from "../model";
import { MergeSession, sideLabel } from "../merge";
import type { ChunkView, CommandError, MergeView, PushEvent, Segment, Stage, Take } from "../types";
import { segments } from "./diff";
import { closeDialog, h, page } from "./dom";

export interface MergeHooks {
  /** The merge ended (saved, or left); the dashboard reads itself again and shows `message`. */
  done(level: "ok" | "warning", message: string): void;
}

/** The DOM event the dashboard sends an open merge view when a teammate pushes. */
export const REMOTE_PUSH = "idse:remote-push";

/** Unchanged runs longer than this are folded to their first and last lines. */
const FOLD_OVER = 12;
const FOLD_KEEP = 3;

export const SHORTCUTS: [string, string][] = [
  ["N or Alt+↓", "next conflict"],
  ["P or Alt+↑", "previous conflict"],
  ["1", "take local"],
  ["2", "take remote"],
  ["3", "take both, local first"],
  ["4", "take both, remote first"],
  ["E", "edit the result by hand"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["Ctrl+S", "save & push"],
  ["Esc", "cancel"],
];

const TAKE_LABEL: Record<Take, string> = {
  local: "took local",
  remote: "took remote",
  local_remote: "took both, local first",
  remote_local: "took both, remote first",
  edited: "edited by hand",
};

const KIND_LABEL: Record<ChunkView["kind"], string> = {
  same: "",
  local: "changed locally",
  remote: "changed on the gateway",
  both: "same change on both sides",
  conflict: "conflict",
};

function lineCount(text: string): number {
  if (!text) return 0;
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** A side's text, with its changed words marked when there are marks. */
function sideText(text: string, marks: Segment[] | null, folded: boolean, unfold: () => void): HTMLElement {
  if (!text) return h("pre", { class: "side empty" }, "(nothing)");
  if (folded) {
    const lines = text.split("\n");
    const tail = text.endsWith("\n") ? lines.slice(-FOLD_KEEP - 1, -1) : lines.slice(-FOLD_KEEP);
    const hidden = lineCount(text) - 2 * FOLD_KEEP;
    return h("div", { class: "side folded" },
      h("pre", {}, lines.slice(0, FOLD_KEEP).join("\n")),
      h("button", { class: "fold", onclick: unfold, title: "Show these lines" }, `⋯ ${hidden} unchanged lines`),
      h("pre", {}, tail.join("\n")));
  }
  return h("pre", { class: "side" }, ...(marks && marks.length ? segments(marks) : [text]));
}

/** Opens the merge view of a conflicted stage. */
export async function showMerge(dir: string, stage: Stage, hooks: MergeHooks): Promise<void> {
  const started = performance.now();
  const remainingEl = h("span", { id: "merge-remaining", class: "remaining" });
  const banner = h("div", { class: "merge-banner hidden", role: "status" });
  const heads = h("div", { class: "merge-heads" });
  const grid = h("div", { class: "merge-grid", tabindex: "-1" });
  const saveBtn = h("button", { id: "save-merge", class: "primary", onclick: () => void save(), title: "Ctrl+S" }, "Save & push");
  const undoBtn = h("button", { id: "merge-undo", onclick: () => { session?.undo(); changed(); }, title: "Ctrl+Z" }, "Undo");
  const redoBtn = h("button", { id: "merge-redo", onclick: () => { session?.redo(); changed(); }, title: "Ctrl+Shift+Z" }, "Redo");
  const baseToggle = h("input", { type: "checkbox", id: "show-base", checked: true });
  const d = page("merge-view", "merge",
    h("div", { class: "page-top" },
    h("header", { class: "sheet-head" },
      h("h2", { id: "merge-title" }, `Merge ${stage}`),
      remainingEl,
      h("button", { id: "merge-prev", onclick: () => go(-1), title: "Previous conflict (P or Alt+↑)" }, "↑ Prev"),
      h("button", { id: "merge-next", onclick: () => go(1), title: "N or Alt+↓" }, "↓ Next"),
      h("span", { class: "spacer" }),
      h("label", { class: "inline" }, baseToggle, "Base"),
      h("button", { id: "take-all-local", class: "ghost", onclick: () => { session?.takeAll("local"); changed(); }, title: "Take your file's side everywhere" }, "All local"),
      h("button", { id: "take-all-remote", class: "ghost", onclick: () => { session?.takeAll("remote"); changed(); }, title: "Take the gateway's side everywhere" }, "All remote"),
      undoBtn, redoBtn,
      h("button", { id: "cancel-merge", onclick: () => void cancel(), title: "Esc: leaves the file and the conflict as they are" }, "Cancel"),
      saveBtn),
    banner, heads),
    grid,
    h("footer", { class: "shortcuts" }, SHORTCUTS.map(([k, what]) => h("span", {}, h("kbd", {}, k), ` ${what}`))));
  // The document scrolls in the grid: focus it, so that arrows and Page Down scroll it.
  grid.focus();

  let session: MergeSession | null = null;
  let focus: number | null = null;
  let editing: number | null = null;
  let saving = false;
  const unfolded = new Set<number>();
  const saveDraft = debounce(() => {
    if (session) void api.saveMergeDraft(dir, stage, session.draft()).catch(() => undefined);
  }, 300);

  function say(text: string, level: "info" | "error" = "info", action?: [string, () => void]) {
    banner.className = `merge-banner level-${level}`;
    banner.replaceChildren(text, action ? h("button", { class: "ghost", onclick: action[1] }, action[0]) : "");
  }

  function open(view: MergeView, carried?: MergeSession) {
    session = carried ? new MergeSession(view, carried.draft()) : new MergeSession(view);
    focus = session.step(-1, 1);
    editing = null;
    unfolded.clear();
    if (!carried && session.resumed > 0 && view.draft) {
      say(`Resumed your merge from ${new Date(view.draft.saved_at).toLocaleString()} (${session.resumed} choice(s)).`, "info",
        ["Start over", () => void startOver()]);
    }
    draw();
    requestAnimationFrame(() => {
      document.body.dataset.mergeOpenMs = String(Math.round(performance.now() - started));
      if (focus !== null) reveal(focus);
    });
  }

  async function startOver() {
    if (!session) return;
    await api.discardMergeDraft(dir, stage).catch(() => undefined);
    session = new MergeSession(session.view, []);
    focus = session.step(-1, 1);
    banner.className = "merge-banner hidden";
    draw();
  }

  function changed() {
    editing = null;
    draw();
    saveDraft();
  }

  function go(dir: 1 | -1) {
    if (!session) return;
    const next = session.step(focus ?? -1, dir);
    if (next === null) return;
    focus = next;
    draw();
    reveal(next);
  }

  function reveal(i: number) {
    grid.querySelector<HTMLElement>(`[data-chunk="${i}"]`)?.scrollIntoView({ block: "center" });
  }

  function take(t: Exclude<Take, "edited">) {
    if (!session || focus === null) return;
    const at = focus;
    session.take(at, t);
    // After settling one, move on to the next open conflict, as a merge editor does.
    const next = session.step(at, 1);
    if (next !== null && session.isOpen(next)) focus = next;
    changed();
    if (focus !== at) reveal(focus);
  }

  function draw() {
    if (!session) return;
    const s = session;
    const v = s.view;
    const showBase = baseToggle.checked;
    d.classList.toggle("no-base", !showBase);
    const left = s.remaining();
    const total = s.conflicts().length;
    remainingEl.textContent = left ? `${left} of ${total} conflict(s) remaining` : `All ${total} conflict(s) settled`;
    remainingEl.classList.toggle("done", left === 0);
    (d.querySelector("#merge-title") as HTMLElement).textContent = `Merge ${v.stage} — ${v.project}`;
    saveBtn.toggleAttribute("disabled", left > 0 || saving);
    saveBtn.title = left > 0 ? "Settle every conflict first" : "Ctrl+S";
    undoBtn.toggleAttribute("disabled", !s.canUndo());
    redoBtn.toggleAttribute("disabled", !s.canRedo());
    heads.replaceChildren(
      showBase ? h("div", { class: "col-head base" }, h("strong", {}, "Base"), h("span", {}, `last synced · ${sideLabel(v.base, "unknown")}`)) : "",
      h("div", { class: "col-head local" }, h("strong", {}, "Your file"), h("span", {}, `edited here · ${sideLabel(v.local, "this computer")}`)),
      h("div", { class: "col-head remote" }, h("strong", {}, "Gateway"), h("span", {}, `pushed · ${sideLabel(v.remote, "unknown")}`)),
      h("div", { class: "col-head result" }, h("strong", {}, "Result"), h("span", {}, v.path)));
    const conflictNo = new Map(s.conflicts().map((i, n) => [i, n + 1]));
    grid.replaceChildren(...v.chunks.map((c, i) => chunkRow(s, c, i, conflictNo.get(i) ?? null, total, showBase)));
  }

  function chunkRow(s: MergeSession, c: ChunkView, i: number, no: number | null, total: number, showBase: boolean): HTMLElement {
    const folded = c.kind === "same" && !unfolded.has(i) && lineCount(c.local) > FOLD_OVER;
    const unfold = () => { unfolded.add(i); draw(); };
    const open = s.isOpen(i);
    const chosen = s.choice(i);
    const row = h("div", {
      class: `chunk kind-${c.kind}${open ? " open" : ""}${focus === i ? " focused" : ""}${chosen ? " chosen" : ""}`,
      "data-chunk": String(i),
      onclick: c.kind === "conflict" ? () => { if (focus !== i) { focus = i; draw(); } } : undefined,
    },
      showBase ? h("div", { class: "cell base" }, sideText(c.base, null, folded, unfold)) : null,
      h("div", { class: "cell local" }, sideText(c.local, c.kind === "same" ? null : c.local_marks, folded, unfold)),
      h("div", { class: "cell remote" }, sideText(c.remote, c.kind === "same" ? null : c.remote_marks, folded, unfold)),
      h("div", { class: "cell result" }, resultCell(s, c, i, no, total, folded, unfold)));
    return row;
  }

  function resultCell(s: MergeSession, c: ChunkView, i: number, no: number | null, total: number, folded: boolean, unfold: () => void): HTMLElement {
    if (editing === i) {
      const area = h("textarea", { class: "edit-area", rows: String(Math.min(30, Math.max(3, lineCount(s.resultAt(i) ?? c.local) + 1))), spellcheck: "false" });
      area.value = s.resultAt(i) ?? c.local;
      const apply = () => { s.edit(i, area.value); changed(); };
      area.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); apply(); }
        if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); editing = null; draw(); }
      });
      requestAnimationFrame(() => area.focus());
      return h("div", { class: "editing" }, area,
        h("div", { class: "tools" },
          h("button", { class: "primary apply-edit", onclick: apply, title: "Ctrl+Enter" }, "Apply"),
          h("button", { class: "ghost", onclick: () => { editing = null; draw(); } }, "Discard edit")));
    }
    const tools = (...extra: (HTMLElement | null)[]) => h("div", { class: "tools" }, ...extra,
      h("button", { class: "ghost edit", onclick: () => { editing = i; draw(); }, title: "E" }, "Edit"));
    if (s.isOpen(i)) {
      const btn = (t: Exclude<Take, "edited">, label: string, key: string) =>
        h("button", { class: `take take-${t}`, "data-take": t, title: key, onclick: (e: Event) => { e.stopPropagation(); focus = i; take(t); } }, label);
      return h("div", { class: "open-conflict" },
        h("p", {}, h("strong", {}, `Conflict ${no ?? "?"} of ${total}`), " — both sides changed these lines."),
        h("div", { class: "tools" },
          btn("local", "Take local", "1"), btn("remote", "Take remote", "2"),
          btn("local_remote", "Both, local first", "3"), btn("remote_local", "Both, remote first", "4"),
          h("button", { class: "ghost edit", onclick: (e: Event) => { e.stopPropagation(); focus = i; editing = i; draw(); }, title: "E" }, "Edit…")));
    }
    const text = s.resultAt(i) ?? "";
    const chosen = s.choice(i);
    const note = chosen ? TAKE_LABEL[chosen.take] : KIND_LABEL[c.kind];
    return h("div", { class: "settled" },
      note ? h("div", { class: "note" }, note) : null,
      sideText(text, null, folded && !chosen, unfold),
      tools(chosen ? h("button", { class: "ghost reopen", onclick: () => { s.reset(i); focus = i; changed(); } }, c.kind === "conflict" ? "Reopen" : "Reset") : null));
  }

  async function save() {
    const s = session;
    const text = s?.text();
    if (!s || text === null || text === undefined || saving) return;
    // A draft saved after the merge would come back as a stale one: the core drops the draft.
    saveDraft.cancel();
    saving = true;
    draw();
    try {
      const r = await api.saveMerge(dir, stage, text, s.view.local.hash, s.view.remote.hash);
      if (r.outcome === "saved") {
        closeDialog(d);
        if (r.push.conflicts.length) {
          hooks.done("warning", `${stage} holds your merge, but the gateway kept changing; pull and push again.`);
        } else {
          hooks.done("ok", `Merged ${stage} of ${s.view.project} and pushed it${r.push.revision !== null ? ` (revision ${r.push.revision})` : ""}.`);
        }
        return;
      }
      saving = false;
      open(r.view, s);
      say(r.reason, "info");
    } catch (e) {
      saving = false;
      draw();
      say((e as CommandError).message, "error");
    }
  }

  async function cancel() {
    saveDraft.cancel();
    if (session) {
      // The choices so far stay as a draft: the merge can be resumed; file and conflict are untouched.
      await api.saveMergeDraft(dir, stage, session.draft()).catch(() => undefined);
      const n = session.draft().length;
      closeDialog(d);
      hooks.done("ok", n ? `Left the merge of ${stage}; nothing changed, and your ${n} choice(s) are kept for next time.` : `Left the merge of ${stage}; nothing changed.`);
    } else {
      closeDialog(d);
    }
  }

  baseToggle.addEventListener("change", () => draw());
  // A teammate pushed while this view is open (forwarded by the dashboard's live link).
  d.addEventListener(REMOTE_PUSH, (e) => {
    const push = (e as CustomEvent<PushEvent>).detail;
    if (!session || push.project_id !== session.view.project_id || !push.stages.includes(stage)) return;
    say(`${push.author ?? "Someone"} pushed ${stage} again just now. Save & push will not overwrite it: it shows you their new text to merge first.`);
  });
  d.addEventListener("keydown", (e) => {
    const inField = (e.target as HTMLElement).closest("textarea, input");
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && e.key.toLowerCase() === "s") { e.preventDefault(); void save(); return; }
    if (inField) return;
    if (ctrl && e.key.toLowerCase() === "z") { e.preventDefault(); if (e.shiftKey) session?.redo(); else session?.undo(); changed(); return; }
    if (ctrl && e.key.toLowerCase() === "y") { e.preventDefault(); session?.redo(); changed(); return; }
    if (ctrl) return;
    const k = e.key;
    if (k === "n" || (e.altKey && k === "ArrowDown")) { e.preventDefault(); go(1); }
    else if (k === "p" || (e.altKey && k === "ArrowUp")) { e.preventDefault(); go(-1); }
    else if (k === "1") take("local");
    else if (k === "2") take("remote");
    else if (k === "3") take("local_remote");
    else if (k === "4") take("remote_local");
    else if (k === "e" && focus !== null) { e.preventDefault(); editing = focus; draw(); }
    else if (k === "Escape") { e.preventDefault(); void cancel(); }
  });

  say("Reading the three sides…");
  try {
    const view = await api.mergeView(dir, stage);
    banner.className = "merge-banner hidden";
    open(view);
  } catch (e) {
    say((e as CommandError).message, "error");
  }
}
