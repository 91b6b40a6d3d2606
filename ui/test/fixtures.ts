// Cards as the dashboard command sends them.
import type { ProjectCard, StageCard } from "../src/types";
import { STAGES } from "../src/types";

export function stage(over: Partial<StageCard> = {}): StageCard {
  return {
    stage: "spec", exists: true, status: "in_progress", written: false, errors: [], warnings: [],
    tasks_done: 0, tasks_total: 0, sync: "in_sync", changed: false, stale_after: null,
    modified: null, path: "/r/.idse/projects/p/sessions/s/specs/spec.md", ...over,
  };
}

export function project(name: string, over: Partial<ProjectCard> = {}): ProjectCard {
  return {
    dir: `/r/.idse/projects/${name}`, folder: "/r", name, session: "session-1", project_id: "id-" + name,
    badge: "in_sync", last_sync: null, last_agent: null, revision: 1,
    stages: STAGES.map((s) => stage({ stage: s })), ...over,
  };
}

