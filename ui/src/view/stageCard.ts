import { problemSummary, STATUS_LABEL, taskProgress } from "../model";
import type { StageCard } from "../types";
import { h } from "./dom";

const SYNC_NOTE: Record<string, string> = {
  local_changes: "edited since last sync",
  never_pushed: "not pushed yet",
  remote_changes: "changed on the gateway",
  both: "changed here and on the gateway",
  conflict: "conflict: needs a merge",
};

/** One stage of a project: status, validation, sync, tasks and staleness; a click opens it. */
export function stageCard(card: StageCard, open?: (card: StageCard) => void): HTMLElement {
  const problems = problemSummary(card);
  const progress = taskProgress(card);
  const tooltip = [
    card.path,
    ...card.errors.map((e) => `error: ${e}`),
    ...card.warnings.map((w) => `warning: ${w}`),
    card.stale_after ? `stale: ${card.stale_after} changed after this stage was written` : "",
  ].filter(Boolean).join("\n");
  return h(
    "div",
    {
      class: `stage stage-${card.status} sync-${card.sync}${card.stale_after ? " is-stale" : ""}`,
      "data-stage": card.stage,
      "data-sync": card.sync,
      title: tooltip,
      role: open ? "button" : null,
      tabindex: open ? "0" : null,
      "aria-label": open ? `Open ${card.stage}${card.sync === "conflict" ? " (conflict)" : ""}` : null,
      onclick: open ? () => open(card) : null,
      onkeydown: open ? ((e: Event) => { if ((e as KeyboardEvent).key === "Enter") open(card); }) as EventListener : null,
    },
    h("div", { class: "stage-head" },
      h("span", { class: "stage-name" }, card.stage),
      card.changed ? h("span", { class: "dot", title: "differs from the last synced text" }, "●") : null,
    ),
    h("div", { class: `stage-status status-${card.status}` }, card.exists ? STATUS_LABEL[card.status] ?? card.status : "Missing"),
    h("div", { class: `stage-problems level-${problems.level}` }, problems.text),
    progress !== null
      ? h("div", { class: "tasks", title: `${card.tasks_done} of ${card.tasks_total} tasks done` },
          h("div", { class: "bar" }, h("div", { class: "fill", style: `width:${Math.round(progress * 100)}%` })),
          h("span", { class: "tasks-count" }, `${card.tasks_done}/${card.tasks_total}`))
      : null,
    SYNC_NOTE[card.sync] ? h("div", { class: "stage-sync" }, SYNC_NOTE[card.sync]) : null,
    card.stale_after ? h("div", { class: "stale-flag" }, `stale: ${card.stale_after} changed`) : null,
  );
}
