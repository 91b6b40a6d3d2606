// The shapes the Rust commands send, field for field (serde's snake_case).

export type Stage = "intent" | "context" | "spec" | "plan" | "tasks" | "implementation" | "feedback";
export const STAGES: Stage[] = ["intent", "context", "spec", "plan", "tasks", "implementation", "feedback"];

export type SyncStatus =
  | "in_sync" | "local_changes" | "remote_changes" | "both" | "conflict" | "never_pushed" | "absent";
export type Badge =
  | "in_sync" | "local_changes" | "remote_changes" | "both" | "conflict" | "never_pushed" | "offline";

export interface StageCard {
  stage: Stage;
  exists: boolean;
  status: string;
  written: boolean;
  errors: string[];
  warnings: string[];
  tasks_done: number;
  tasks_total: number;
  sync: SyncStatus;
  changed: boolean;
  stale_after: Stage | null;
  modified: string | null;
  path: string;
}

export interface ProjectCard {
  dir: string;
  folder: string;
  name: string;
  session: string;
  project_id: string | null;
  badge: Badge;
  last_sync: string | null;
  last_agent: string | null;
  revision: number | null;
  stages: StageCard[];
}

export type AttentionKind = "conflict" | "invalid" | "stale" | "unsynced";
export interface Attention {
  kind: AttentionKind;
  dir: string;
  project: string;
  stages: Stage[];
  message: string;
}

export interface Folder { path: string; missing: boolean }
export interface FolderProblem { folder: string; message: string }
export interface RemoteOnly {
  project_id: string;
  name: string;
  session_id: string | null;
  updated_at: string;
  last_agent: string | null;
  last_author: string | null;
}
export interface RemoteFacts {
  revision: number;
  last_author: string | null;
  last_agent: string | null;
  updated_at: string;
}
export interface GatewayLink { url: string; embedded: boolean; online: boolean; problem: CommandError | null }

export interface Dashboard {
  folders: Folder[];
  projects: ProjectCard[];
  remote_only: RemoteOnly[];
  attention: Attention[];
  problems: FolderProblem[];
  gateway: GatewayLink;
  remote: Record<string, RemoteFacts>;
}

export interface AddReport {
  added: { folder: string; projects: string[] }[];
  failed: { path: string; code: string; message: string }[];
}

export type PullOutcome = "unchanged" | "updated" | "merged" | "agreed" | "local_kept" | "conflict";
export interface PushReport {
  project: string;
  project_id: string | null;
  pushed: Stage[];
  conflicts: Stage[];
  revision: number | null;
}
export interface PullReport {
  project: string;
  stages: [Stage, PullOutcome][];
  revision: number | null;
}
export interface StagePreview {
  stage: Stage;
  changes: boolean;
  lines_added: number;
  lines_removed: number;
  conflict: boolean;
  pull: PullOutcome | null;
}
export type Direction = "push" | "pull";

export interface SettingsView {
  gateway_url: string | null;
  has_token: boolean;
  embedded_url: string | null;
  home: string;
}
export interface Health {
  state: "connected" | "unreachable" | "unauthorized";
  url: string;
  embedded: boolean;
  message: string;
  version: string | null;
  database: string | null;
}

export interface PushEvent {
  project_id: string;
  project_name: string;
  session_id: string;
  stages: string[];
  revision: number;
  author: string | null;
  agent: string | null;
  pushed_at: string;
}
export type DeskEvent =
  | { kind: "changed"; dirs: string[] }
  | { kind: "remote"; push: PushEvent }
  | { kind: "link"; online: boolean };

export interface CommandError { code: string; message: string }

// The document and merge views.
export interface Segment { text: string; changed: boolean }
export type LineKind = "equal" | "insert" | "delete";
export interface DiffLine { kind: LineKind; old: number | null; new: number | null; parts: Segment[] }
export interface DiffHunk { lines: DiffLine[] }

export interface StageDocument {
  project: string;
  project_id: string | null;
  session: string;
  stage: Stage;
  path: string;
  exists: boolean;
  text: string;
  html: string;
  hash: string;
  sync: SyncStatus;
  push_diff: DiffHunk[];
  pull_diff: DiffHunk[] | null;
  remote_note: string | null;
}

export interface Revision {
  session_id: string;
  stage: string;
  revision: number;
  sha256: string;
  bytes: number;
  agent: string | null;
  author: string | null;
  pushed_at: string;
  is_base: boolean;
  is_local: boolean;
}
/** A page of a stage's history; `next_before` asks for the older one, `null` on the oldest. */
export interface RevisionPage { revisions: Revision[]; next_before: number | null }
export interface RevisionText { sha256: string; text: string; html: string }
export interface Restored { stage: Stage; sha256: string; kept: string | null }

export type ChunkKind = "same" | "local" | "remote" | "both" | "conflict";
export interface ChunkView {
  kind: ChunkKind;
  base: string;
  local: string;
  remote: string;
  local_marks: Segment[];
  remote_marks: Segment[];
}
export interface SideLabel { hash: string; author: string | null; agent: string | null; at: string | null }
export type Take = "local" | "remote" | "local_remote" | "remote_local" | "edited";
export interface DraftChoice { base: string; local: string; remote: string; take: Take; text: string }
export interface MergeDraft { saved_at: string; choices: DraftChoice[] }
export interface MergeView {
  project: string;
  project_id: string | null;
  session: string;
  stage: Stage;
  path: string;
  base: SideLabel;
  local: SideLabel;
  remote: SideLabel;
  chunks: ChunkView[];
  conflicts: number;
  draft: MergeDraft | null;
}
export type MergeSaved =
  | { outcome: "saved"; push: PushReport }
  | { outcome: "moved"; reason: string; view: MergeView };
