// The dashboard: loads the desk, renders it, and keeps it current from file and gateway events.
import { api, onDeskEvent, onFolderDrop, pickFolders } from "./api";
import { debounce, describePull, describePush, FILTERS, filterProjects, linkState, runAll, type Filter } from "./model";
import type { CommandError, Dashboard, ProjectCard, RemoteOnly, Stage } from "./types";
import { showPreview, showSettings } from "./view/dialogs";
import { showDocument } from "./view/documentView";
import { REMOTE_PUSH, showMerge } from "./view/mergeView";
import { h } from "./view/dom";
import { attentionList, folderList, remoteOnlyList } from "./view/lists";
import { projectRow, type RowState } from "./view/projectRow";
import "./style.css";

const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const state = {
  board: null as Dashboard | null,
  query: "",
  filter: "all" as Filter,
  rows: new Map<string, RowState>(),
  painted: false,
  notice: null as { level: "ok" | "error"; text: string } | null,
};

function rowState(dir: string): RowState {
  let s = state.rows.get(dir);
  if (!s) {
    s = { busy: null, result: null };
    state.rows.set(dir, s);
  }
  return s;
}

function notify(level: "ok" | "error", text: string) {
  state.notice = { level, text };
  render();
}

async function refresh() {
  try {
    state.board = await api.dashboard();
  } catch (e) {
    notify("error", (e as CommandError).message);
    return;
  }
  render();
  if (!state.painted) {
    state.painted = true;
    requestAnimationFrame(() => void api.painted(state.board?.projects.length ?? 0));
  }
}
const refreshSoon = debounce(() => void refresh(), 120);

async function addFolders(paths: string[]) {
  if (!paths.length) return;
  try {
    const report = await api.addFolders(paths);
    const added = report.added.reduce((n, a) => n + a.projects.length, 0);
    const failed = report.failed.map((f) => f.message).join(" ");
    notify(failed ? "error" : "ok", `${added ? `Added ${added} project(s). ` : ""}${failed}`.trim());
  } catch (e) {
    notify("error", (e as CommandError).message);
  }
  await refresh();
}

async function runOne(p: ProjectCard, kind: "push" | "pull") {
  const s = rowState(p.dir);
  s.busy = kind === "push" ? "Pushing…" : "Pulling…";
  s.result = null;
  render();
  try {
    if (kind === "push") {
      const r = await api.push(p.dir);
      s.result = { level: r.conflicts.length ? "warning" : "ok", text: describePush(r) };
    } else {
      const r = await api.pull(p.dir);
      s.result = { level: r.stages.some(([, o]) => o === "conflict") ? "warning" : "ok", text: describePull(r) };
    }
  } catch (e) {
    s.result = { level: "error", text: (e as CommandError).message };
  }
  s.busy = null;
  await refresh();
}

async function runMany(kind: "push" | "pull") {
  const board = state.board;
  if (!board) return;
  const targets = filterProjects(board.projects, board.attention, state.query, state.filter)
    .filter((p) => kind === "push" || p.project_id);
  await runAll(targets, 3, (p) => runOne(p, kind), () => undefined);
  const failed = targets.filter((p) => state.rows.get(p.dir)?.result?.level === "error").length;
  notify(failed ? "error" : "ok", `${kind === "push" ? "Pushed" : "Pulled"} ${targets.length - failed} of ${targets.length} project(s)${failed ? `; ${failed} failed, see their rows` : ""}.`);
}

async function fetchRemote(r: RemoteOnly) {
  const [folder] = await pickFolders(`Pull ${r.name} into which repository folder?`, false);
  if (!folder) return;
  try {
    const card = await api.fetchProject(r.project_id, folder);
    notify("ok", `${card.name} is now in ${card.dir}.`);
  } catch (e) {
    notify("error", (e as CommandError).message);
  }
  await refresh();
}

function openMerge(dir: string, stage: Stage) {
  void showMerge(dir, stage, {
    done: (level, message) => { notify(level === "ok" ? "ok" : "error", message); void refresh(); },
  });
}

function openStage(p: ProjectCard, stage: Stage) {
  void showDocument(p.dir, stage, { changed: () => void refresh(), merge: openMerge });
}

function jump(dir: string) {
  const row = document.querySelector<HTMLElement>(`article.project[data-dir="${CSS.escape(dir)}"]`);
  row?.scrollIntoView({ behavior: "smooth", block: "center" });
  row?.classList.add("flash");
  setTimeout(() => row?.classList.remove("flash"), 1200);
}

function emptyState(): HTMLElement {
  return h("div", { class: "empty-state" },
    h("h2", {}, "No projects yet"),
    h("p", {}, "Drag a repository folder onto this window, or use “Add folder…”. IDSE Desk finds every project under its .idse/projects folder."),
    h("button", { class: "primary", onclick: () => void pickAndAdd() }, "Add folder…"));
}

async function pickAndAdd() {
  await addFolders(await pickFolders("Add folders holding IDSE projects", true));
}

function render() {
  const board = state.board;
  const now = new Date();
  const link = el("link");
  if (board) {
    link.className = `link-state ${board.gateway.online ? "online" : "offline"}`;
    link.textContent = `${board.gateway.embedded ? "Embedded gateway" : board.gateway.url} · ${linkState(board.gateway)}`;
    link.title = board.gateway.problem?.message ?? board.gateway.url;
  }
  const notice = el("notice");
  notice.className = state.notice ? `notice notice-${state.notice.level}` : "notice hidden";
  notice.textContent = state.notice?.text ?? "";
  if (!board) return;
  for (const id of ["push-all", "pull-all"]) el(id).classList.toggle("hidden", !board.projects.length);
  const shown = filterProjects(board.projects, board.attention, state.query, state.filter);
  el("count").textContent = shown.length === board.projects.length
    ? `${board.projects.length} project(s)`
    : `${shown.length} of ${board.projects.length} project(s)`;
  el("attention-slot").replaceChildren(board.projects.length ? attentionList(board.attention, jump) : "");
  const actions = {
    push: (p: ProjectCard) => void runOne(p, "push"),
    pull: (p: ProjectCard) => void runOne(p, "pull"),
    preview: (p: ProjectCard) => void showPreview(p, { push: () => void runOne(p, "push"), pull: () => void runOne(p, "pull") }),
    open: (p: ProjectCard, card: { stage: Stage; sync: string }) =>
      card.sync === "conflict" ? openMerge(p.dir, card.stage) : openStage(p, card.stage),
  };
  const list = el("projects");
  if (!board.projects.length) {
    list.replaceChildren(emptyState());
  } else if (!shown.length) {
    list.replaceChildren(h("p", { class: "muted empty-filter" }, "No project matches this search or filter."));
  } else {
    list.replaceChildren(...shown.map((p) =>
      projectRow(p, p.project_id ? board.remote[p.project_id] : undefined, rowState(p.dir), actions, now)));
  }
  el("remote-slot").replaceChildren(remoteOnlyList(board.remote_only, (r) => void fetchRemote(r), now) ?? "");
  el("folders-slot").replaceChildren(board.folders.length
    ? folderList(board.folders, board.problems, async (f) => {
        await api.removeFolder(f.path).catch((e: CommandError) => notify("error", e.message));
        await refresh();
      })
    : "");
}

function setup() {
  const filter = el<HTMLSelectElement>("filter");
  filter.replaceChildren(...FILTERS.map((f) => h("option", { value: f.value }, f.label)));
  filter.addEventListener("change", () => { state.filter = filter.value as Filter; render(); });
  const search = el<HTMLInputElement>("search");
  search.addEventListener("input", () => { state.query = search.value; render(); });
  el("add-folder").addEventListener("click", () => void pickAndAdd());
  const pathInput = el<HTMLInputElement>("path-input");
  el<HTMLFormElement>("path-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const path = pathInput.value.trim();
    if (path) void addFolders([path]).then(() => { pathInput.value = ""; });
  });
  el("push-all").addEventListener("click", () => void runMany("push"));
  el("pull-all").addEventListener("click", () => void runMany("pull"));
  el("refresh").addEventListener("click", () => void refresh());
  el("settings").addEventListener("click", () => void showSettings(() => void refresh()));
  el("notice").addEventListener("click", () => { state.notice = null; render(); });
  const overlay = el("drop-overlay");
  void onFolderDrop((over) => overlay.classList.toggle("hidden", !over), (paths) => void addFolders(paths));
  void onDeskEvent((e) => {
    // File edits and teammates' pushes both come down to reading the board again.
    if (e.kind === "changed" || e.kind === "remote" || e.kind === "link") refreshSoon();
    if (e.kind === "remote") document.getElementById("merge-view")?.dispatchEvent(new CustomEvent(REMOTE_PUSH, { detail: e.push }));
  });
  void refresh();
}

setup();
