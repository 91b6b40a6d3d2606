// What the dashboard shows, computed from the commands' answers: labels, filters, times, and
// the bounded queue behind "Push all" / "Pull all". No DOM here, so it is unit-tested.
import type { Attention, Badge, GatewayLink, ProjectCard, PullReport, PushReport, StageCard, StagePreview } from "./types";

export const BADGE_LABEL: Record<Badge, string> = {
  in_sync: "In sync",
  local_changes: "Local changes",
  remote_changes: "Remote changes",
  both: "Both changed",
  conflict: "Conflict",
  never_pushed: "Never pushed",
  offline: "Offline",
};

export const STATUS_LABEL: Record<string, string> = {
  pending: "Pending",
  in_progress: "In progress",
  completed: "Completed",
};

export type Filter = "all" | "attention" | Badge;

export const FILTERS: { value: Filter; label: string }[] = [
  { value: "all", label: "All projects" },
  { value: "attention", label: "Needs attention" },
  ...(Object.keys(BADGE_LABEL) as Badge[]).map((b) => ({ value: b as Filter, label: BADGE_LABEL[b] })),
];

/** Projects matching the search text (name, folder or session) and the filter. */
export function filterProjects(
  projects: ProjectCard[],
  attention: Attention[],
  query: string,
  filter: Filter,
): ProjectCard[] {
  const q = query.trim().toLowerCase();
  const needing = new Set(attention.map((a) => a.dir));
  return projects.filter((p) => {
    if (q && !`${p.name} ${p.folder} ${p.session}`.toLowerCase().includes(q)) return false;
    if (filter === "all") return true;
    if (filter === "attention") return needing.has(p.dir);
    return p.badge === filter;
  });
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", or the date past a month. */
export function relativeTime(at: string | null, now: Date): string {
  if (!at) return "never";
  const t = new Date(at);
  if (Number.isNaN(t.getTime())) return "unknown";
  const s = Math.round((now.getTime() - t.getTime()) / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  if (d < 31) return d === 1 ? "yesterday" : `${d} days ago`;
  return t.toISOString().slice(0, 10);
}

/** A card's one-line summary of validation: errors first. */
export function problemSummary(card: StageCard): { level: "error" | "warning" | "ok"; text: string } {
  if (card.errors.length) {
    return { level: "error", text: card.errors.length === 1 ? "1 error" : `${card.errors.length} errors` };
  }
  if (card.warnings.length) {
    return { level: "warning", text: card.warnings.length === 1 ? "1 warning" : `${card.warnings.length} warnings` };
  }
  return { level: "ok", text: "valid" };
}

/** Checked boxes over all boxes, as a fraction 0..1 (`null` when there are none). */
export function taskProgress(card: StageCard): number | null {
  return card.tasks_total > 0 ? card.tasks_done / card.tasks_total : null;
}

/** The sentence a finished push leaves on its row. */
/** The gateway link's state in a word or two: a refused token is not a network problem. */
export function linkState(g: GatewayLink): string {
  if (g.online) return "connected";
  if (g.problem?.code === "unauthorized") return "token refused";
  if (g.problem?.code === "untrusted_certificate") return "certificate not trusted";
  return "unreachable";
}

export function describePush(r: PushReport): string {
  if (r.conflicts.length) {
    return `Refused: ${r.conflicts.join(", ")} changed on the gateway. Pull to merge first.`;
  }
  if (!r.pushed.length) return "Nothing to push.";
  return `Pushed ${r.pushed.join(", ")} (revision ${r.revision ?? "?"}).`;
}

/** The sentence a finished pull leaves on its row. */
export function describePull(r: PullReport): string {
  const by = (o: string) => r.stages.filter(([, out]) => out === o).map(([s]) => s);
  const parts: string[] = [];
  const updated = by("updated");
  const merged = by("merged");
  const conflicts = by("conflict");
  if (updated.length) parts.push(`updated ${updated.join(", ")}`);
  if (merged.length) parts.push(`merged ${merged.join(", ")}`);
  if (conflicts.length) parts.push(`conflict in ${conflicts.join(", ")}; no file changed`);
  if (!parts.length) return "Already up to date.";
  const text = parts.join("; ");
  return text[0].toUpperCase() + text.slice(1) + ".";
}

/** The preview's total: stages that change, lines, and conflicts. */
export function previewTotals(items: StagePreview[]): { stages: number; added: number; removed: number; conflicts: number } {
  return items.reduce(
    (t, i) => ({
      stages: t.stages + (i.changes ? 1 : 0),
      added: t.added + i.lines_added,
      removed: t.removed + i.lines_removed,
      conflicts: t.conflicts + (i.conflict ? 1 : 0),
    }),
    { stages: 0, added: 0, removed: 0, conflicts: 0 },
  );
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

/**
 * Runs `work` over `items`, at most `limit` at once, telling `progress` as each one starts and
 * ends. One failure never stops the others.
 */
export async function runAll<I, T>(
  items: I[],
  limit: number,
  work: (item: I) => Promise<T>,
  progress: (item: I, state: "running" | Outcome<T>) => void,
): Promise<Outcome<T>[]> {
  const results: Outcome<T>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const item = items[i];
      progress(item, "running");
      try {
        results[i] = { ok: true, value: await work(item) };
      } catch (e) {
        const err = e as { code?: string; message?: string };
        results[i] = { ok: false, error: { code: err.code ?? "unknown", message: err.message ?? String(e) } };
      }
      progress(item, results[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): (() => void) & { cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, ms);
  };
  /** Drops a pending call. */
  run.cancel = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return run;
}

/** The last part of a path, for narrow places; the whole path goes in the tooltip. */
export function shortPath(path: string): string {
  const parts = path.split(/[\\/]/).filter(Boolean);
  return parts.slice(-2).join("/") || path;
}
