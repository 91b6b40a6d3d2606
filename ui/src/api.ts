// The one typed wrapper over every backend command and event; nothing else calls `invoke`.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AddReport, CommandError, Dashboard, DeskEvent, Direction, DraftChoice, Health, MergeSaved,
  MergeView, ProjectCard, PullReport, PushReport, Restored, RevisionPage, RevisionText, SettingsView,
  Stage, StageDocument, StagePreview,
} from "./types";

export const EVENT = "desk://event";

/** Turns whatever a command threw into `{code, message}`. */
export function asCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "message" in e && "code" in e) {
    return { code: String((e as CommandError).code), message: String((e as CommandError).message) };
  }
  return { code: "unknown", message: typeof e === "string" ? e : "Something went wrong; try again." };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asCommandError(e);
  }
}

export const api = {
  dashboard: () => call<Dashboard>("dashboard"),
  addFolders: (paths: string[]) => call<AddReport>("add_folders", { paths }),
  removeFolder: (folder: string) => call<boolean>("remove_folder", { folder }),
  preview: (dir: string, direction: Direction) => call<StagePreview[]>("preview", { dir, direction }),
  push: (dir: string) => call<PushReport>("push", { dir }),
  pull: (dir: string) => call<PullReport>("pull", { dir }),
  fetchProject: (projectId: string, folder: string) =>
    call<ProjectCard>("fetch_project", { projectId, folder }),
  settings: () => call<SettingsView>("settings"),
  saveSettings: (gatewayUrl: string | null, token: string | null) =>
    call<SettingsView>("save_settings", { gatewayUrl, token }),
  gatewayHealth: () => call<Health>("gateway_health"),
  painted: (projects: number) => call<number>("painted", { projects }),
  stageDocument: (dir: string, stage: Stage) => call<StageDocument>("stage_document", { dir, stage }),
  stageHistory: (dir: string, stage: Stage, before: number | null = null) =>
    call<RevisionPage>("stage_history", { dir, stage, before }),
  revisionText: (dir: string, sha256: string) => call<RevisionText>("revision_text", { dir, sha256 }),
  restoreRevision: (dir: string, stage: Stage, sha256: string, expected: string) =>
    call<Restored>("restore_revision", { dir, stage, sha256, expected }),
  mergeView: (dir: string, stage: Stage) => call<MergeView>("merge_view", { dir, stage }),
  saveMergeDraft: (dir: string, stage: Stage, choices: DraftChoice[]) =>
    call<null>("save_merge_draft", { dir, stage, choices }),
  discardMergeDraft: (dir: string, stage: Stage) => call<null>("discard_merge_draft", { dir, stage }),
  saveMerge: (dir: string, stage: Stage, text: string, localHash: string, remoteHash: string) =>
    call<MergeSaved>("save_merge", { dir, stage, text, localHash, remoteHash }),
};

export function onDeskEvent(handler: (e: DeskEvent) => void): Promise<UnlistenFn> {
  return listen<DeskEvent>(EVENT, (e) => handler(e.payload));
}

/** The native folder picker; an empty list when the user cancels. */
export async function pickFolders(title: string, multiple: boolean): Promise<string[]> {
  const { open } = await import("@tauri-apps/plugin-dialog");
  const picked = await open({ directory: true, multiple, title });
  if (picked === null) return [];
  return Array.isArray(picked) ? picked : [picked];
}

/** Folders dragged onto the window: `hover` while over it, `drop` with their paths. */
export async function onFolderDrop(hover: (over: boolean) => void, drop: (paths: string[]) => void): Promise<UnlistenFn> {
  const { getCurrentWebview } = await import("@tauri-apps/api/webview");
  return getCurrentWebview().onDragDropEvent((e) => {
    const p = e.payload;
    if (p.type === "enter" || p.type === "over") hover(true);
    else if (p.type === "leave") hover(false);
    else if (p.type === "drop") {
      hover(false);
      if (p.paths.length > 0) drop(p.paths);
    }
  });
}
