import { relativeTime } from "../model";
import type { Attention, Folder, FolderProblem, RemoteOnly } from "../types";
import { h } from "./dom";

const KIND_LABEL: Record<string, string> = {
  conflict: "Conflict",
  invalid: "Validation",
  stale: "Stale",
  unsynced: "Not synced",
};

/** What needs the lead, most urgent first; clicking jumps to the project. */
export function attentionList(items: Attention[], jump: (dir: string) => void): HTMLElement {
  if (!items.length) {
    return h("section", { class: "attention empty", id: "attention" }, h("p", {}, "Nothing needs your attention."));
  }
  return h("section", { class: "attention", id: "attention" },
    h("h2", {}, `Attention (${items.length})`),
    h("ul", {}, items.map((a) =>
      h("li", { class: `att att-${a.kind}` },
        h("span", { class: "att-kind" }, KIND_LABEL[a.kind] ?? a.kind),
        h("button", { class: "link", onclick: () => jump(a.dir) }, a.message)))),
  );
}

/** Projects on the gateway that no added folder holds. */
export function remoteOnlyList(list: RemoteOnly[], fetch: (r: RemoteOnly) => void, now: Date): HTMLElement | null {
  if (!list.length) return null;
  return h("section", { class: "remote-only", id: "remote-only" },
    h("h2", {}, `On the gateway only (${list.length})`),
    h("ul", {}, list.map((r) =>
      h("li", { "data-project-id": r.project_id },
        h("strong", {}, r.name),
        h("span", { class: "muted" }, ` updated ${relativeTime(r.updated_at, now)}${r.last_author ? ` by ${r.last_author}` : ""}`),
        h("button", { onclick: () => fetch(r) }, "Pull into folder…")))),
  );
}

/** The added folders, missing ones marked, each removable. */
export function folderList(folders: Folder[], problems: FolderProblem[], remove: (f: Folder) => void): HTMLElement {
  return h("section", { class: "folders", id: "folders" },
    h("h2", {}, `Folders (${folders.length})`),
    h("ul", {}, folders.map((f) =>
      h("li", { class: f.missing ? "missing" : "", "data-path": f.path },
        h("span", { class: "path" }, f.path),
        f.missing ? h("span", { class: "missing-flag" }, "missing: moved or deleted?") : null,
        h("button", { class: "ghost small", onclick: () => remove(f), title: "Remove from the list (nothing is deleted)" }, "Remove")))),
    problems.length
      ? h("ul", { class: "problems" }, problems.map((p) => h("li", {}, `${p.folder}: ${p.message}`)))
      : null,
  );
}
