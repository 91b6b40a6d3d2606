// The document view of one stage: the text rendered, what a push or pull would change, and its
// history with "restore this version".
import { api } from "../api";
import { relativeTime } from "../model";
import type { CommandError, Revision, RevisionPage, Stage, StageDocument } from "../types";
import { diffCounts, diffTable } from "./diff";
import { closeDialog, h, sheet } from "./dom";

export interface DocumentHooks {
  /** Files changed (a restore): the dashboard reads itself again. */
  changed(): void;
  /** Open the merge view of this stage. */
  merge(dir: string, stage: Stage): void;
}

type Tab = "document" | "push" | "pull" | "history";

/** The rendered markdown; links are shown but never followed inside the app window. */
export function markdown(html: string): HTMLElement {
  const el = h("div", { class: "markdown" });
  el.innerHTML = html;
  el.addEventListener("click", (e) => {
    if ((e.target as HTMLElement).closest("a")) e.preventDefault();
  });
  return el;
}

const SYNC_TEXT: Record<string, string> = {
  in_sync: "In sync with the gateway",
  local_changes: "Edited here since the last sync",
  remote_changes: "Changed on the gateway",
  both: "Changed here and on the gateway",
  conflict: "In conflict: needs a merge",
  never_pushed: "Not pushed yet",
  absent: "Not written yet",
};

function revisionRow(r: Revision, now: Date, pick: (r: Revision) => void): HTMLElement {
  return h("li", { class: "revision", "data-sha": r.sha256 },
    h("button", { class: "ghost revision-pick", onclick: () => pick(r) },
      h("span", { class: "rev-no" }, `#${r.revision}`),
      h("span", {}, relativeTime(r.pushed_at, now)),
      h("span", {}, r.author ?? "unknown author"),
      r.agent ? h("span", { class: "muted" }, r.agent) : null,
      h("span", { class: "muted" }, `${r.bytes.toLocaleString()} bytes`),
      r.is_base ? h("span", { class: "tag" }, "last synced") : null,
      r.is_local ? h("span", { class: "tag" }, "your file") : null));
}

/** Opens the document view of a stage. */
export async function showDocument(dir: string, stage: Stage, hooks: DocumentHooks): Promise<void> {
  const body = h("div", { class: "sheet-body" }, h("p", { class: "muted" }, "Reading…"));
  const title = h("h2", {}, stage);
  const status = h("span", { class: "doc-status muted" });
  const actions = h("div", { class: "sheet-actions" });
  const d = sheet("document-view", "sheet",
    h("header", { class: "sheet-head" }, title, status, h("span", { class: "spacer" }), actions,
      h("button", { onclick: () => closeDialog(d) }, "Close")),
    body);
  let doc: StageDocument;
  try {
    doc = await api.stageDocument(dir, stage);
  } catch (e) {
    body.replaceChildren(h("p", { class: "error" }, (e as CommandError).message));
    return;
  }
  render(doc, "document");

  function render(current: StageDocument, tab: Tab) {
    doc = current;
    title.textContent = `${doc.stage} — ${doc.project}`;
    status.textContent = `${SYNC_TEXT[doc.sync] ?? doc.sync} · session ${doc.session}`;
    actions.replaceChildren(doc.sync === "conflict"
      ? h("button", { class: "primary", id: "open-merge", onclick: () => { closeDialog(d); hooks.merge(dir, stage); } }, "Merge…")
      : "");
    const push = diffCounts(doc.push_diff);
    const pull = doc.pull_diff ? diffCounts(doc.pull_diff) : null;
    const tabs: [Tab, string][] = [
      ["document", "Document"],
      ["push", `Changes to push (+${push.added} −${push.removed})`],
      ["pull", pull ? `Changes to pull (+${pull.added} −${pull.removed})` : "Changes to pull"],
      ["history", "History"],
    ];
    const content = h("div", { class: "tab-content" });
    body.replaceChildren(
      h("nav", { class: "tabs", role: "tablist" }, tabs.map(([t, label]) =>
        h("button", { class: `tab${t === tab ? " active" : ""}`, role: "tab", "data-tab": t, "aria-selected": t === tab ? "true" : "false", onclick: () => render(doc, t) }, label))),
      h("p", { class: "muted doc-path" }, doc.path),
      content);
    if (tab === "document") {
      content.replaceChildren(doc.exists ? markdown(doc.html) : h("p", { class: "muted" }, "This stage has no file yet."));
    } else if (tab === "push") {
      content.replaceChildren(diffTable(doc.push_diff, "Nothing to push: the file matches its last synced text."));
    } else if (tab === "pull") {
      content.replaceChildren(doc.pull_diff
        ? diffTable(doc.pull_diff, "Nothing to pull: the gateway holds this same text.")
        : h("p", { class: "muted" }, doc.remote_note ?? "The remote text is not known."));
    } else {
      void showHistory(content);
    }
  }

  async function showHistory(content: HTMLElement) {
    content.replaceChildren(h("p", { class: "muted" }, "Asking the gateway…"));
    let page: RevisionPage;
    try {
      page = await api.stageHistory(dir, stage);
    } catch (e) {
      content.replaceChildren(h("p", { class: "error" }, (e as CommandError).message));
      return;
    }
    if (!page.revisions.length) {
      content.replaceChildren(h("p", { class: "muted" }, "The gateway has no revision of this stage in this session yet."));
      return;
    }
    const preview = h("div", { class: "revision-preview" }, h("p", { class: "muted" }, "Pick a revision to read it."));
    const list = h("ol", { class: "revisions" });
    content.replaceChildren(h("div", { class: "history" }, list, preview));
    showPage(list, page, preview);
  }

  /** Appends a page's revisions, and a button for the older page while there is one. */
  function showPage(list: HTMLElement, page: RevisionPage, preview: HTMLElement) {
    const now = new Date();
    list.append(...page.revisions.map((r) => revisionRow(r, now, (picked) => void pick(picked, preview))));
    const before = page.next_before;
    if (before === null) return;
    const error = h("span", { class: "error" });
    const more: HTMLButtonElement = h("button", {
      class: "ghost", id: "older-revisions",
      onclick: async () => {
        more.disabled = true;
        error.textContent = "";
        try {
          const older = await api.stageHistory(dir, stage, before);
          more.parentElement?.remove();
          showPage(list, older, preview);
        } catch (e) {
          more.disabled = false;
          error.textContent = (e as CommandError).message;
        }
      },
    }, "Older revisions");
    list.append(h("li", { class: "older" }, more, error));
  }

  async function pick(r: Revision, preview: HTMLElement) {
    preview.replaceChildren(h("p", { class: "muted" }, "Reading…"));
    try {
      const t = await api.revisionText(dir, r.sha256);
      const error = h("p", { class: "error", role: "alert" });
      preview.replaceChildren(
        h("div", { class: "revision-head" },
          h("strong", {}, `Revision #${r.revision}`),
          r.is_local
            ? h("span", { class: "muted" }, "This is what your file holds now.")
            : h("button", { class: "primary", id: "restore-revision", onclick: () => void restore(r, error) }, "Restore this version")),
        error,
        markdown(t.html));
    } catch (e) {
      preview.replaceChildren(h("p", { class: "error" }, (e as CommandError).message));
    }
  }

  async function restore(r: Revision, error: HTMLElement) {
    if (doc.sync === "local_changes" || doc.sync === "both") {
      const ok = window.confirm("Your file has edits that were not pushed. Restoring replaces them (a copy is kept in the project's .sync/replaced folder). Restore?");
      if (!ok) return;
    }
    try {
      const done = await api.restoreRevision(dir, stage, r.sha256, doc.hash);
      hooks.changed();
      const fresh = await api.stageDocument(dir, stage);
      render(fresh, "push");
      body.prepend(h("p", { class: "notice notice-ok", id: "restore-note" },
        `Restored revision #${r.revision} into your file; push to share it.${done.kept ? ` Your previous text is kept at ${done.kept}.` : ""}`));
    } catch (e) {
      error.textContent = (e as CommandError).message;
    }
  }
}
