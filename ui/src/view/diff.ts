import type { DiffHunk, Segment } from "../types";
import { h } from "./dom";

/** Text in pieces, the changed words marked. */
export function segments(parts: Segment[]): (Node | string)[] {
  return parts.map((p) => (p.changed ? h("mark", {}, p.text) : p.text));
}

const SIGN = { equal: " ", insert: "+", delete: "−" } as const;

/** A line diff as a table: old and new line numbers, sign, text with changed words marked. */
export function diffTable(hunks: DiffHunk[], empty: string): HTMLElement {
  if (!hunks.length) return h("p", { class: "muted diff-empty" }, empty);
  const rows: HTMLElement[] = [];
  hunks.forEach((hunk, n) => {
    if (n > 0) rows.push(h("tr", { class: "diff-gap" }, h("td", { colspan: 4 }, "⋯")));
    for (const line of hunk.lines) {
      rows.push(h("tr", { class: `diff-${line.kind}` },
        h("td", { class: "ln" }, line.old === null ? "" : String(line.old)),
        h("td", { class: "ln" }, line.new === null ? "" : String(line.new)),
        h("td", { class: "sign" }, SIGN[line.kind]),
        h("td", { class: "code" }, ...segments(line.parts))));
    }
  });
  return h("table", { class: "diff" }, h("tbody", {}, rows));
}

/** Lines added and removed in a diff. */
export function diffCounts(hunks: DiffHunk[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const l of hunks.flatMap((x) => x.lines)) {
    if (l.kind === "insert") added++;
    else if (l.kind === "delete") removed++;
  }
  return { added, removed };
}
