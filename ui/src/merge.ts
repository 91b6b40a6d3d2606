// The resolution logic of the merge view, without DOM: which text each chunk of the merge takes,
// what is left to settle, undo/redo, and the draft that lets a half-done merge be resumed. The
// chunks and which of them conflict come from the core's merge; this only records choices.
import type { ChunkView, DraftChoice, MergeView, Take } from "./types";

export interface Choice { take: Take; text: string }

/** `a` then `b`, with a line break between them when `a` lacks one. */
export function joinSides(a: string, b: string): string {
  if (!a || !b || a.endsWith("\n")) return a + b;
  return `${a}\n${b}`;
}

/** The text a take puts in place of a chunk. */
export function textOf(chunk: ChunkView, take: Exclude<Take, "edited">): string {
  switch (take) {
    case "local": return chunk.local;
    case "remote": return chunk.remote;
    case "local_remote": return joinSides(chunk.local, chunk.remote);
    case "remote_local": return joinSides(chunk.remote, chunk.local);
  }
}

/** What the merge itself puts in a chunk; `null` for a conflict. */
export function mergedText(chunk: ChunkView): string | null {
  switch (chunk.kind) {
    case "same": case "local": case "both": return chunk.local;
    case "remote": return chunk.remote;
    case "conflict": return null;
  }
}

const key = (c: { base: string; local: string; remote: string }) => `${c.base}\u0000${c.local}\u0000${c.remote}`;

/** One merge being settled. Choices override what the merge put in a chunk. */
export class MergeSession {
  readonly view: MergeView;
  private choices: (Choice | null)[];
  private undoStack: (Choice | null)[][] = [];
  private redoStack: (Choice | null)[][] = [];
  /** Conflicts of `view` settled from the draft it was opened with. */
  readonly resumed: number;

  constructor(view: MergeView, draft: DraftChoice[] = view.draft?.choices ?? []) {
    this.view = view;
    const byKey = new Map(draft.map((d) => [key(d), d]));
    this.choices = view.chunks.map((c) => {
      const d = byKey.get(key(c));
      return d ? { take: d.take, text: d.text } : null;
    });
    this.resumed = this.choices.filter((c) => c !== null).length;
  }

  get chunks(): ChunkView[] { return this.view.chunks; }

  /** Indexes of the chunks that conflict, in order. */
  conflicts(): number[] {
    return this.view.chunks.flatMap((c, i) => (c.kind === "conflict" ? [i] : []));
  }

  choice(i: number): Choice | null { return this.choices[i] ?? null; }

  isOpen(i: number): boolean { return this.view.chunks[i]?.kind === "conflict" && this.choices[i] === null; }

  remaining(): number { return this.conflicts().filter((i) => this.isOpen(i)).length; }

  /** What the result holds at chunk `i`; `null` while it is an open conflict. */
  resultAt(i: number): string | null {
    const chosen = this.choices[i];
    if (chosen) return chosen.text;
    const chunk = this.view.chunks[i];
    return chunk ? mergedText(chunk) : null;
  }

  /** The whole result, or `null` while any conflict is open. */
  text(): string | null {
    let out = "";
    for (let i = 0; i < this.view.chunks.length; i++) {
      const t = this.resultAt(i);
      if (t === null) return null;
      out += t;
    }
    return out;
  }

  private change(apply: (next: (Choice | null)[]) => void) {
    const next = [...this.choices];
    apply(next);
    if (next.every((c, i) => c === this.choices[i])) return;
    this.undoStack.push(this.choices);
    this.redoStack = [];
    this.choices = next;
  }

  take(i: number, take: Exclude<Take, "edited">) {
    const chunk = this.view.chunks[i];
    if (!chunk) return;
    this.change((next) => { next[i] = { take, text: textOf(chunk, take) }; });
  }

  edit(i: number, text: string) {
    if (!this.view.chunks[i]) return;
    this.change((next) => { next[i] = { take: "edited", text }; });
  }

  /** Puts the chunk back to what the merge made of it (an open conflict again, for a conflict). */
  reset(i: number) {
    this.change((next) => { next[i] = null; });
  }

  /** One side for the whole file: every chunk, conflicting or not, takes that side. */
  takeAll(side: "local" | "remote") {
    this.change((next) => {
      this.view.chunks.forEach((c, i) => {
        next[i] = mergedText(c) === c[side] && c.kind !== "conflict" ? null : { take: side, text: c[side] };
      });
    });
  }

  canUndo(): boolean { return this.undoStack.length > 0; }
  canRedo(): boolean { return this.redoStack.length > 0; }

  undo() {
    const prev = this.undoStack.pop();
    if (!prev) return;
    this.redoStack.push(this.choices);
    this.choices = prev;
  }

  redo() {
    const next = this.redoStack.pop();
    if (!next) return;
    this.undoStack.push(this.choices);
    this.choices = next;
  }

  /** The conflict after (or before) chunk `from`: open ones first, then any. Wraps around. */
  step(from: number, dir: 1 | -1): number | null {
    const all = this.conflicts();
    const open = all.filter((i) => this.isOpen(i));
    const pool = open.length ? open : all;
    if (!pool.length) return null;
    const ahead = dir === 1 ? pool.filter((i) => i > from) : pool.filter((i) => i < from).reverse();
    return ahead[0] ?? (dir === 1 ? pool[0] : pool[pool.length - 1]) ?? null;
  }

  /** The choices so far, keyed by chunk content so they survive a remote that moved again. */
  draft(): DraftChoice[] {
    return this.view.chunks.flatMap((c, i) => {
      const chosen = this.choices[i];
      return chosen ? [{ base: c.base, local: c.local, remote: c.remote, take: chosen.take, text: chosen.text }] : [];
    });
  }
}

/** "Ana · claude-code · 23 Nov 10:31", from whatever is known of a side. */
export function sideLabel(side: { author: string | null; agent: string | null; at: string | null }, fallback: string): string {
  const parts = [side.author, side.agent].filter((p): p is string => !!p);
  if (side.at) {
    const t = new Date(side.at);
    if (!Number.isNaN(t.getTime())) {
      parts.push(t.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }));
    }
  }
  return parts.length ? parts.join(" · ") : fallback;
}
