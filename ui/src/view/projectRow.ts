import { BADGE_LABEL, relativeTime, shortPath } from "../model";
import type { ProjectCard, RemoteFacts, StageCard } from "../types";
import { h } from "./dom";
import { stageCard } from "./stageCard";

export interface RowState {
  busy: string | null;
  result: { level: "ok" | "error" | "warning"; text: string } | null;
}

export interface RowActions {
  push(p: ProjectCard): void;
  pull(p: ProjectCard): void;
  preview(p: ProjectCard): void;
  /** Open a stage: its document, or its merge when it is in conflict. */
  open(p: ProjectCard, card: StageCard): void;
}

/** A project: its facts, its seven stage cards, its buttons and the last result. */
export function projectRow(
  p: ProjectCard,
  remote: RemoteFacts | undefined,
  state: RowState,
  actions: RowActions,
  now: Date,
): HTMLElement {
  const busy = state.busy !== null;
  const agent = p.last_agent ?? remote?.last_agent ?? null;
  return h(
    "article",
    { class: `project badge-${p.badge}`, "data-dir": p.dir, "data-name": p.name },
    h("header", { class: "project-head" },
      h("div", { class: "project-title" },
        h("h3", {}, p.name),
        h("span", { class: `badge badge-${p.badge}`, "data-badge": p.badge }, BADGE_LABEL[p.badge]),
      ),
      h("div", { class: "project-facts" },
        h("span", { title: p.dir }, shortPath(p.folder)),
        h("span", { title: "active session" }, p.session),
        h("span", { title: p.last_sync ?? "never synced" }, `synced ${relativeTime(p.last_sync, now)}`),
        agent ? h("span", { title: "last agent" }, `agent ${agent}`) : null,
        remote?.last_author ? h("span", { title: "last pushed by" }, `by ${remote.last_author}`) : null,
      ),
      h("div", { class: "project-actions" },
        h("button", { class: "ghost", disabled: busy, onclick: () => actions.preview(p), title: "See what a push or pull would change" }, "Preview"),
        h("button", { class: "act-pull", disabled: busy, onclick: () => actions.pull(p), title: p.project_id ? "Bring the gateway's changes here" : "Bring the gateway's project of the same name here, if it has one" }, "Pull"),
        h("button", { class: "act-push primary", disabled: busy, onclick: () => actions.push(p) }, "Push"),
      ),
    ),
    h("div", { class: "stages" }, p.stages.map((c) => stageCard(c, (card) => actions.open(p, card)))),
    state.busy || state.result
      ? h("div", { class: `row-result level-${state.busy ? "busy" : state.result?.level}`, role: "status" },
          state.busy ?? state.result?.text ?? "")
      : null,
  );
}
