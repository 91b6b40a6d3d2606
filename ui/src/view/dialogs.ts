import { api } from "../api";
import { previewTotals } from "../model";
import type { CommandError, Health, ProjectCard, StagePreview } from "../types";
import { closeDialog, h, modal } from "./dom";

function previewTable(items: StagePreview[], empty: string): HTMLElement {
  if (!items.length) return h("p", { class: "muted" }, empty);
  return h("table", { class: "preview" },
    h("thead", {}, h("tr", {}, h("th", {}, "Stage"), h("th", {}, "Lines"), h("th", {}, "Outcome"))),
    h("tbody", {}, items.map((i) =>
      h("tr", { class: i.conflict ? "conflict" : "", "data-stage": i.stage },
        h("td", {}, i.stage),
        h("td", {}, h("span", { class: "add" }, `+${i.lines_added}`), " ", h("span", { class: "del" }, `−${i.lines_removed}`)),
        h("td", {}, i.conflict ? "would conflict" : i.pull ? i.pull.replace("_", " ") : "would be sent")))),
  );
}

function totals(items: StagePreview[]): string {
  const t = previewTotals(items);
  return `${t.stages} stage(s), +${t.added} −${t.removed} lines${t.conflicts ? `, ${t.conflicts} conflict(s)` : ""}`;
}

/** What a push and a pull would do for one project, with buttons to go ahead. */
export async function showPreview(p: ProjectCard, go: { push(): void; pull(): void }): Promise<void> {
  const body = h("div", { class: "modal-body" }, h("p", { class: "muted" }, "Asking the gateway…"));
  const d = modal("preview-dialog",
    h("h2", {}, `Preview — ${p.name}`), body,
    h("footer", {}, h("button", { onclick: () => closeDialog(d) }, "Close")));
  const [push, pull] = await Promise.allSettled([api.preview(p.dir, "push"), api.preview(p.dir, "pull")]);
  const section = (title: string, r: PromiseSettledResult<StagePreview[]>, empty: string, action: () => void, label: string) =>
    h("section", {},
      h("h3", {}, title, r.status === "fulfilled" ? h("span", { class: "muted" }, ` — ${totals(r.value)}`) : null),
      r.status === "fulfilled"
        ? previewTable(r.value.filter((i) => i.changes || i.conflict), empty)
        : h("p", { class: "error" }, (r.reason as CommandError).message),
      h("button", { class: "primary", onclick: () => { closeDialog(d); action(); } }, label));
  const parts = [section("Push would send", push, "Nothing to push: every stage matches its last synced text.", go.push, "Push now")];
  if (p.project_id) {
    parts.push(section("Pull would bring", pull, "Nothing to pull: the gateway has nothing new.", go.pull, "Pull now"));
  }
  body.replaceChildren(...parts);
}

/** The gateway settings: embedded or a team URL, the token, and health. */
export async function showSettings(saved: () => void): Promise<void> {
  const view = await api.settings();
  const url = h("input", { id: "gateway-url-input", type: "url", placeholder: "https://sync.example.com", value: view.gateway_url ?? "" });
  const token = h("input", { id: "token-input", type: "password", placeholder: view.has_token ? "(kept; type to replace)" : "none", autocomplete: "off" });
  const health = h("p", { id: "health", class: "muted" }, "Checking…");
  const error = h("p", { class: "error", role: "alert" });
  const showHealth = (hl: Health) => {
    health.className = `health health-${hl.state}`;
    health.textContent = `${hl.state === "connected" ? "Connected" : hl.state === "unauthorized" ? "Token refused" : "Unreachable"} — ${hl.message}`;
  };
  const d = modal("settings-dialog",
    h("h2", {}, "Gateway"),
    h("div", { class: "modal-body" },
      h("p", {}, view.gateway_url
        ? "This desk syncs with a team gateway."
        : h("span", {}, "This desk runs its own gateway at ", h("code", { id: "embedded-url" }, view.embedded_url ?? "?"), " (SQLite in ", h("code", {}, view.home), ").")),
      h("label", {}, "Team gateway URL (empty: the embedded one)", url),
      h("label", {}, "Token (kept in the app's folder, never in a project)", token),
      health, error),
    h("footer", {},
      h("button", { onclick: () => closeDialog(d) }, "Cancel"),
      view.has_token ? h("button", { onclick: () => void save(url.value, "") }, "Forget token") : null,
      h("button", { class: "primary", onclick: () => void save(url.value, token.value || null) }, "Save")));
  async function save(u: string, t: string | null) {
    error.textContent = "";
    try {
      await api.saveSettings(u.trim() || null, t);
      showHealth(await api.gatewayHealth());
      saved();
      closeDialog(d);
    } catch (e) {
      error.textContent = (e as CommandError).message;
    }
  }
  showHealth(await api.gatewayHealth());
}
