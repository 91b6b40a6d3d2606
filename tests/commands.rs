//! Every command of the app through Tauri's IPC (mock runtime, no window), against the real
//! embedded gateway and real folders.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use idse_core::{Gateway, Project, Workspace};
use idse_desk::{Desk, DeskEvent, EventSink};
use idse_protocol::Stage;
use serde_json::{json, Value};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

struct Harness {
    _app: tauri::App<tauri::test::MockRuntime>,
    window: WebviewWindow<tauri::test::MockRuntime>,
    desk: Desk,
    events: Arc<Mutex<Vec<DeskEvent>>>,
    tmp: tempfile::TempDir,
}

fn harness() -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink: EventSink = Arc::new(move |e| seen.lock().unwrap().push(e));
    let desk = tauri::async_runtime::block_on(Desk::open(&tmp.path().join("home"), sink)).unwrap();
    tauri::async_runtime::spawn(idse_desk::live::follow(desk.clone()));
    let app = idse_desk::with_commands(mock_builder())
        .manage(desk.clone())
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    Harness {
        _app: app,
        window,
        desk,
        events,
        tmp,
    }
}

impl Harness {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let res = get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: tauri::ipc::InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        );
        res.map(|body| body.deserialize::<Value>().unwrap())
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    fn err(&self, cmd: &str, args: Value) -> Value {
        match self.call(cmd, args) {
            Ok(v) => panic!("{cmd} should fail, answered {v}"),
            Err(e) => e,
        }
    }

    /// A repository with projects made the way `idse init` makes them.
    fn repo(&self, name: &str, projects: &[&str]) -> PathBuf {
        let root = self.tmp.path().join(name);
        std::fs::create_dir_all(root.join(".idse/projects")).unwrap();
        let ws = Workspace::at(&root);
        for p in projects {
            ws.init_project(p, None, "lead", Utc::now()).unwrap();
        }
        std::fs::canonicalize(root).unwrap()
    }

    fn gateway(&self) -> Gateway {
        self.desk.gateway_client()
    }

    /// A teammate's side, outside the app: the core's sync against the same gateway.
    fn fetch_into(&self, root: &Path, id: &str) -> Project {
        tauri::async_runtime::block_on(idse_core::sync::fetch_project(
            root,
            &self.gateway(),
            id,
            Utc::now(),
        ))
        .unwrap()
    }

    fn push_outside(&self, project: &Project) {
        tauri::async_runtime::block_on(idse_core::sync::push(
            project,
            &self.gateway(),
            &Stage::ALL,
            false,
            Utc::now(),
        ))
        .unwrap();
    }

    /// A teammate's repository `repo` with project `name`, its spec written and pushed from
    /// outside the app; not one of the app's folders.
    fn pushed_elsewhere(&self, repo: &str, name: &str) {
        let root = self.repo(repo, &[name]);
        let project = Workspace::at(&root).project(Some(name)).unwrap();
        std::fs::write(spec_path(&root, name), SPEC).unwrap();
        self.push_outside(&project);
    }

    fn pull_outside(&self, project: &Project) {
        tauri::async_runtime::block_on(idse_core::sync::pull(
            project,
            &self.gateway(),
            &Stage::ALL,
            Utc::now(),
        ))
        .unwrap();
    }

    fn wait_for(&self, what: &str, mut found: impl FnMut(&DeskEvent) -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.events.lock().unwrap().iter().any(&mut found) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what} event within 5 s");
    }
}

fn dir_of(root: &Path, project: &str) -> PathBuf {
    root.join(".idse/projects").join(project)
}

fn card<'a>(board: &'a Value, name: &str) -> &'a Value {
    board["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no card for {name} in {board}"))
}

fn stage<'a>(card: &'a Value, stage: &str) -> &'a Value {
    card["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .unwrap()
}

fn spec_path(root: &Path, project: &str) -> PathBuf {
    let p = Workspace::at(root).project(Some(project)).unwrap();
    p.stage_path(&p.active_session().unwrap(), Stage::Spec)
}

const SPEC: &str = "# Specification\n\n## Overview\n\nThe checkout takes a card and a coupon.\n\n## Requirements\n\n- one\n- two\n- three\n";

#[test]
fn folders_are_added_listed_and_removed_with_reasons_for_refusals() {
    let h = harness();
    let repo = h.repo("repo", &["alpha", "beta"]);
    let empty = h.tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let report = h.ok(
        "add_folders",
        json!({"paths": [repo, empty, h.tmp.path().join("nope")]}),
    );
    assert_eq!(report["added"][0]["projects"], json!(["alpha", "beta"]));
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed[0]["code"], "no_projects");
    assert!(failed[0]["message"].as_str().unwrap().contains("empty"));
    assert_eq!(failed[1]["code"], "missing");
    assert_eq!(
        h.err("add_folders", json!({"paths": []}))["code"],
        "no_paths"
    );

    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["projects"].as_array().unwrap().len(), 2);
    let alpha = card(&board, "alpha");
    assert_eq!(alpha["badge"], "never_pushed");
    assert_eq!(alpha["stages"].as_array().unwrap().len(), 7);
    assert_eq!(board["folders"][0]["missing"], false);

    // A folder that vanishes stays listed as missing until removed.
    let moved = h.tmp.path().join("moved");
    std::fs::rename(&repo, &moved).unwrap();
    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["folders"][0]["missing"], true);
    assert!(board["projects"].as_array().unwrap().is_empty());
    assert_eq!(h.ok("remove_folder", json!({"folder": repo})), json!(true));
    assert_eq!(h.ok("remove_folder", json!({"folder": repo})), json!(false));
    assert!(h.ok("dashboard", json!({}))["folders"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn push_preview_pull_and_conflict_round_trip_through_the_embedded_gateway() {
    let h = harness();
    let repo = h.repo("repo", &["shop"]);
    let dir = dir_of(&repo, "shop");
    h.ok("add_folders", json!({"paths": [repo]}));
    std::fs::write(spec_path(&repo, "shop"), SPEC).unwrap();

    let preview = h.ok("preview", json!({"dir": dir, "direction": "push"}));
    let spec = preview
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stage"] == "spec")
        .unwrap();
    assert_eq!(spec["lines_added"], SPEC.lines().count());
    assert_eq!(spec["conflict"], false);
    let pushed = h.ok("push", json!({"dir": dir}));
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 7);
    assert_eq!(pushed["conflicts"], json!([]));
    let board = h.ok("dashboard", json!({}));
    assert_eq!(card(&board, "shop")["badge"], "in_sync");
    assert!(board["gateway"]["embedded"].as_bool().unwrap());

    // A teammate's copy of the same project, fetched through the app into a second repo.
    let id = pushed["project_id"].as_str().unwrap().to_owned();
    let other_root = h.tmp.path().join("teammate");
    std::fs::create_dir_all(&other_root).unwrap();
    let other = h.fetch_into(&other_root, &id);
    let session = other.active_session().unwrap();
    let theirs = SPEC.replace("- one", "- one, from the teammate");
    other.write_stage(&session, Stage::Spec, &theirs).unwrap();
    h.push_outside(&other);

    let board = h.ok("dashboard", json!({}));
    let shop = card(&board, "shop");
    assert_eq!(shop["badge"], "remote_changes");
    assert_eq!(stage(shop, "spec")["sync"], "remote_changes");
    let preview = h.ok("preview", json!({"dir": dir, "direction": "pull"}));
    let moving: Vec<&Value> = preview
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["changes"] == true)
        .collect();
    assert_eq!(moving.len(), 1, "{preview}");
    assert_eq!(moving[0]["stage"], "spec");
    assert_eq!(moving[0]["pull"], "updated");
    assert_eq!(moving[0]["lines_added"], 1);
    assert_eq!(moving[0]["lines_removed"], 1);
    let pulled = h.ok("pull", json!({"dir": dir}));
    assert!(pulled["stages"]
        .as_array()
        .unwrap()
        .contains(&json!(["spec", "updated"])));
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        theirs
    );
    assert_eq!(
        card(&h.ok("dashboard", json!({})), "shop")["badge"],
        "in_sync"
    );

    // Both edit the same line: the pull records a conflict and leaves the file alone.
    let mine = theirs.replace("- two", "- two, mine");
    std::fs::write(spec_path(&repo, "shop"), &mine).unwrap();
    let theirs2 = theirs.replace("- two", "- two, theirs");
    other.write_stage(&session, Stage::Spec, &theirs2).unwrap();
    h.pull_outside(&other);
    h.push_outside(&other);
    let preview = h.ok("preview", json!({"dir": dir, "direction": "push"}));
    assert_eq!(preview[0]["conflict"], true, "{preview}");
    let refused = h.ok("push", json!({"dir": dir}));
    assert_eq!(refused["conflicts"], json!(["spec"]));
    let pulled = h.ok("pull", json!({"dir": dir}));
    assert!(pulled["stages"]
        .as_array()
        .unwrap()
        .contains(&json!(["spec", "conflict"])));
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        mine
    );
    let board = h.ok("dashboard", json!({}));
    assert_eq!(card(&board, "shop")["badge"], "conflict");
    assert_eq!(board["attention"][0]["kind"], "conflict");
    assert_eq!(board["attention"][0]["stages"], json!(["spec"]));
    let unresolved = h.err("push", json!({"dir": dir}));
    assert_eq!(unresolved["code"], "unresolved");
}

#[test]
fn paths_outside_the_added_folders_are_refused_by_name() {
    let h = harness();
    let repo = h.repo("repo", &["inside"]);
    let outside = h.repo("elsewhere", &["outside"]);
    h.ok("add_folders", json!({"paths": [repo]}));
    let target = dir_of(&outside, "outside");
    for cmd in ["push", "pull"] {
        let e = h.err(cmd, json!({"dir": target}));
        assert_eq!(e["code"], "not_granted", "{cmd}: {e}");
        assert!(e["message"]
            .as_str()
            .unwrap()
            .contains(&target.display().to_string()));
    }
    let e = h.err("preview", json!({"dir": target, "direction": "push"}));
    assert_eq!(e["code"], "not_granted");
    let e = h.err("preview", json!({"dir": repo.join(".idse/projects/inside/../../../../elsewhere"), "direction": "push"}));
    assert_eq!(e["code"], "not_granted");
    let e = h.err("pull", json!({"dir": dir_of(&repo, "inside")}));
    assert_eq!(e["code"], "never_pushed");
    let e = h.err(
        "preview",
        json!({"dir": dir_of(&repo, "inside"), "direction": "sideways"}),
    );
    assert!(
        e.as_str().unwrap_or_default().contains("sideways") || e.to_string().contains("sideways"),
        "{e}"
    );
}

/// A project made here under the name of a team's project on the gateway, never synced: Pull
/// brings the team's texts (a stage still as `idse init` wrote it takes them) and links the
/// two, so the project leaves the gateway-only list. Before, Pull was disabled ("push first")
/// and the push was refused, as the gateway's texts were newer.
#[test]
fn a_project_made_here_under_a_teams_name_pulls_the_teams_project() {
    let h = harness();
    h.pushed_elsewhere("team", "shared");
    let mine = h.repo("mine", &["shared"]);
    h.ok("add_folders", json!({"paths": [mine]}));
    let board = h.ok("dashboard", json!({}));
    assert_eq!(card(&board, "shared")["badge"], "never_pushed");
    assert_eq!(board["remote_only"][0]["name"], "shared");

    let pulled = h.ok("pull", json!({"dir": dir_of(&mine, "shared")}));
    assert!(
        pulled["stages"]
            .as_array()
            .unwrap()
            .contains(&json!(["spec", "updated"])),
        "{pulled}"
    );
    assert_eq!(
        std::fs::read_to_string(spec_path(&mine, "shared")).unwrap(),
        SPEC
    );
    let board = h.ok("dashboard", json!({}));
    assert_eq!(card(&board, "shared")["badge"], "in_sync");
    assert!(board["remote_only"].as_array().unwrap().is_empty());
}

#[test]
fn projects_only_on_the_gateway_can_be_pulled_into_a_folder() {
    let h = harness();
    h.pushed_elsewhere("source", "remote-only");
    let board = h.ok("dashboard", json!({}));
    let listed = &board["remote_only"][0];
    assert_eq!(listed["name"], "remote-only");
    let target = h.tmp.path().join("clone");
    std::fs::create_dir_all(&target).unwrap();
    let fetched = h.ok(
        "fetch_project",
        json!({"projectId": listed["project_id"], "folder": target}),
    );
    assert_eq!(fetched["badge"], "in_sync");
    assert_eq!(
        std::fs::read_to_string(spec_path(&target, "remote-only")).unwrap(),
        SPEC
    );
    let board = h.ok("dashboard", json!({}));
    assert!(board["remote_only"].as_array().unwrap().is_empty());
    assert_eq!(card(&board, "remote-only")["badge"], "in_sync");
    // Fetching it again into the same place is refused, and nothing is overwritten.
    let e = h.err(
        "fetch_project",
        json!({"projectId": listed["project_id"], "folder": target}),
    );
    assert_eq!(e["code"], "exists");
}

#[test]
fn settings_switch_gateways_keep_the_token_out_of_projects_and_report_health() {
    let h = harness();
    let view = h.ok("settings", json!({}));
    assert_eq!(view["gateway_url"], Value::Null);
    let embedded = view["embedded_url"].as_str().unwrap().to_owned();
    assert!(embedded.starts_with("http://127.0.0.1:"));
    let health = h.ok("gateway_health", json!({}));
    assert_eq!(health["state"], "connected");
    assert_eq!(health["database"], "sqlite");

    let e = h.err(
        "save_settings",
        json!({"gatewayUrl": "not a url", "token": null}),
    );
    assert_eq!(e["code"], "invalid_url");

    // A port nothing listens on: saved, and reported unreachable with a sentence.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let view = h.ok(
        "save_settings",
        json!({"gatewayUrl": dead, "token": "s3cret-token"}),
    );
    assert_eq!(view["gateway_url"], dead.as_str());
    assert_eq!(view["has_token"], true);
    assert_eq!(view["embedded_url"], Value::Null);
    let health = h.ok("gateway_health", json!({}));
    assert_eq!(health["state"], "unreachable");
    assert!(health["message"].as_str().unwrap().contains(&dead));
    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["gateway"]["online"], false);
    let saved = std::fs::read_to_string(h.desk.home().join("settings.json")).unwrap();
    assert!(saved.contains("s3cret-token"));

    // Back to the embedded gateway, token cleared.
    let view = h.ok("save_settings", json!({"gatewayUrl": "", "token": ""}));
    assert_eq!(view["has_token"], false);
    assert!(view["embedded_url"].as_str().is_some());
    assert_eq!(h.ok("gateway_health", json!({}))["state"], "connected");
    assert!(
        !std::fs::read_to_string(h.desk.home().join("settings.json"))
            .unwrap()
            .contains("s3cret")
    );
    let painted = h.ok("painted", json!({"projects": 0}));
    assert!(painted.as_u64().is_some());
}

#[test]
fn file_edits_and_teammates_pushes_reach_the_window_within_a_second() {
    let h = harness();
    let repo = h.repo("repo", &["live"]);
    h.ok("add_folders", json!({"paths": [repo]}));
    let dir = dir_of(&repo, "live");
    h.ok("push", json!({"dir": dir}));
    h.wait_for("link", |e| matches!(e, DeskEvent::Link { online: true }));
    h.events.lock().unwrap().clear();

    std::fs::write(spec_path(&repo, "live"), SPEC).unwrap();
    let took = h.wait_for(
        "changed",
        |e| matches!(e, DeskEvent::Changed { dirs } if dirs.contains(&dir)),
    );
    assert!(took < Duration::from_secs(1), "file change took {took:?}");
    assert_eq!(
        stage(card(&h.ok("dashboard", json!({})), "live"), "spec")["sync"],
        "local_changes"
    );

    let other_root = h.tmp.path().join("teammate");
    std::fs::create_dir_all(&other_root).unwrap();
    let id = card(&h.ok("dashboard", json!({})), "live")["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = h.fetch_into(&other_root, &id);
    other
        .write_stage(
            &other.active_session().unwrap(),
            Stage::Plan,
            "# Plan\n\nteammate\n",
        )
        .unwrap();
    h.push_outside(&other);
    let took = h.wait_for("remote", |e| {
        matches!(e, DeskEvent::Remote { push } if push.project_id == id && push.stages == ["plan"])
    });
    assert!(took < Duration::from_secs(1), "remote push took {took:?}");
}

/// `shop` in a repository the app holds, its spec written and pushed: (repo, dir, project id).
fn pushed_shop(h: &Harness) -> (PathBuf, PathBuf, String) {
    let repo = h.repo("repo", &["shop"]);
    let dir = dir_of(&repo, "shop");
    h.ok("add_folders", json!({"paths": [repo]}));
    std::fs::write(spec_path(&repo, "shop"), SPEC).unwrap();
    let id = h.ok("push", json!({"dir": dir}))["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (repo, dir, id)
}

fn stage_text(project: &Project, stage: Stage) -> String {
    project
        .read_stage(&project.active_session().unwrap(), stage)
        .unwrap()
        .unwrap()
}

fn remote_spec(h: &Harness, id: &str) -> String {
    let pulled = tauri::async_runtime::block_on(h.gateway().pull(id, None)).unwrap();
    pulled.artifacts["spec_md"].clone()
}

#[test]
fn the_document_view_shows_text_diffs_and_history_and_restores_a_revision() {
    let h = harness();
    let (repo, dir, id) = pushed_shop(&h);
    let edited = SPEC.replace("- one", "- uno");
    std::fs::write(spec_path(&repo, "shop"), &edited).unwrap();

    let doc = h.ok("stage_document", json!({"dir": dir, "stage": "spec"}));
    assert_eq!(doc["sync"], "local_changes");
    assert!(doc["html"]
        .as_str()
        .unwrap()
        .contains("<h1>Specification</h1>"));
    let inserted: Vec<&Value> = doc["push_diff"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "insert")
        .collect();
    assert_eq!(inserted.len(), 1);
    assert_eq!(
        inserted[0]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["changed"] == true)
            .unwrap()["text"],
        "uno"
    );
    // Local → remote: the pull would bring "one" back.
    let pull_lines = doc["pull_diff"][0]["lines"].as_array().unwrap();
    assert!(pull_lines
        .iter()
        .any(|l| l["kind"] == "insert" && l["parts"].to_string().contains("one")));

    // A teammate pushes a new version; the history lists both, the first one marked as the base.
    let mate = h.fetch_into(&h.repo("mate", &[]), &id);
    std::fs::write(
        mate.stage_path(&mate.active_session().unwrap(), Stage::Spec),
        SPEC.replace("two", "deux"),
    )
    .unwrap();
    h.push_outside(&mate);
    let history = h.ok("stage_history", json!({"dir": dir, "stage": "spec"}));
    let revisions = history["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2, "{history}");
    assert_eq!(history["next_before"], Value::Null, "one page holds both");
    assert_eq!(revisions[1]["is_base"], true);
    assert_eq!(revisions[0]["is_base"], false);
    let first = revisions[1]["sha256"].as_str().unwrap();
    let old = h.ok("revision_text", json!({"dir": dir, "sha256": first}));
    assert_eq!(old["text"], SPEC);
    assert_eq!(
        h.err(
            "revision_text",
            json!({"dir": dir, "sha256": "../../sync/projects"})
        )["code"],
        "invalid_hash"
    );
    assert!(old["html"].as_str().unwrap().contains("<li>one</li>"));

    // A restore names the text it replaces: a stale view is refused and writes nothing.
    let refused = h.err(
        "restore_revision",
        json!({"dir": dir, "stage": "spec", "sha256": revisions[0]["sha256"], "expected": "0".repeat(64)}),
    );
    assert_eq!(refused["code"], "local_moved");
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        edited
    );
    let restored = h.ok(
        "restore_revision",
        json!({"dir": dir, "stage": "spec", "sha256": revisions[0]["sha256"], "expected": doc["hash"]}),
    );
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        SPEC.replace("two", "deux")
    );
    // The unpushed edit it replaced is kept.
    let kept = PathBuf::from(restored["kept"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(kept).unwrap(), edited);
    let after = h.ok("stage_document", json!({"dir": dir, "stage": "spec"}));
    assert_eq!(after["sync"], "both");
}

#[test]
fn a_long_history_is_read_a_page_at_a_time_down_to_the_first_revision() {
    let h = harness();
    let (_repo, dir, id) = pushed_shop(&h);
    let mate = h.fetch_into(&h.repo("mate", &[]), &id);
    let mate_spec = mate.stage_path(&mate.active_session().unwrap(), Stage::Spec);
    let pushes = 60;
    for n in 0..pushes {
        std::fs::write(&mate_spec, format!("{SPEC}\nversion {n}\n")).unwrap();
        h.push_outside(&mate);
    }
    let mut pages = Vec::new();
    let mut before = Value::Null;
    loop {
        let page = h.ok(
            "stage_history",
            json!({"dir": dir, "stage": "spec", "before": before}),
        );
        let revisions: Vec<i64> = page["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect();
        pages.push(revisions);
        before = page["next_before"].clone();
        if before.is_null() {
            break;
        }
        assert!(pages.len() < 5, "the cursor does not move on: {pages:?}");
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, pushes - 50 + 1], "a full page, then the rest");
    let all: Vec<i64> = pages.concat();
    assert!(
        all.windows(2).all(|w| w[0] > w[1]),
        "newest first, each once: {all:?}"
    );
    assert_eq!(all.last(), Some(&1), "down to the first push");
}

#[test]
fn a_conflict_is_merged_saved_and_pushed_and_a_side_that_moved_is_shown_not_overwritten() {
    let h = harness();
    let (repo, dir, id) = pushed_shop(&h);
    let mate = h.fetch_into(&h.repo("mate", &[]), &id);
    let mate_spec = mate.stage_path(&mate.active_session().unwrap(), Stage::Spec);
    let theirs = SPEC
        .replace("- one", "- one (remote)")
        .replace("## Overview", "## Overview and scope");
    std::fs::write(&mate_spec, &theirs).unwrap();
    h.push_outside(&mate);
    let ours = SPEC.replace("- one", "- one (local)");
    std::fs::write(spec_path(&repo, "shop"), &ours).unwrap();
    h.ok("pull", json!({"dir": dir}));

    let view = h.ok("merge_view", json!({"dir": dir, "stage": "spec"}));
    assert_eq!(view["conflicts"], 1);
    assert!(view["draft"].is_null());
    let chunks = view["chunks"].as_array().unwrap();
    let conflict = chunks.iter().find(|c| c["kind"] == "conflict").unwrap();
    assert_eq!(conflict["local"], "- one (local)\n");
    assert_eq!(conflict["remote"], "- one (remote)\n");
    assert_eq!(conflict["base"], "- one\n");
    assert!(conflict["remote_marks"].to_string().contains("(remote)"));
    // The remote-only change is already applied, labelled by its kind.
    assert!(chunks
        .iter()
        .any(|c| c["kind"] == "remote" && c["remote"] == "## Overview and scope\n"));
    let local_hash = view["local"]["hash"].as_str().unwrap().to_owned();
    let remote_hash = view["remote"]["hash"].as_str().unwrap().to_owned();
    assert!(view["remote"]["at"].is_string(), "{}", view["remote"]);

    // A half-done merge is kept and comes back; discarding forgets it.
    let choice = json!({"base": "- one\n", "local": "- one (local)\n", "remote": "- one (remote)\n", "take": "edited", "text": "- one (both)\n"});
    h.ok(
        "save_merge_draft",
        json!({"dir": dir, "stage": "spec", "choices": [choice]}),
    );
    let resumed = h.ok("merge_view", json!({"dir": dir, "stage": "spec"}));
    assert_eq!(resumed["draft"]["choices"][0]["text"], "- one (both)\n");
    h.ok("discard_merge_draft", json!({"dir": dir, "stage": "spec"}));
    assert!(h.ok("merge_view", json!({"dir": dir, "stage": "spec"}))["draft"].is_null());

    let resolved = SPEC
        .replace("- one", "- one (both)")
        .replace("## Overview", "## Overview and scope");
    // The file changed on disk meanwhile: nothing is overwritten.
    let touched = format!("{ours}- four\n");
    std::fs::write(spec_path(&repo, "shop"), &touched).unwrap();
    let moved = h.ok(
        "save_merge",
        json!({"dir": dir, "stage": "spec", "text": resolved, "localHash": local_hash, "remoteHash": remote_hash}),
    );
    assert_eq!(moved["outcome"], "moved");
    assert!(moved["reason"].as_str().unwrap().contains("on disk"));
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        touched
    );
    std::fs::write(spec_path(&repo, "shop"), &ours).unwrap();

    // The teammate pushes again: the view gets the new three-way state, nothing is overwritten.
    let theirs_again = theirs.replace("- three", "- three (remote)");
    std::fs::write(&mate_spec, &theirs_again).unwrap();
    h.push_outside(&mate);
    let moved = h.ok(
        "save_merge",
        json!({"dir": dir, "stage": "spec", "text": resolved, "localHash": local_hash, "remoteHash": remote_hash}),
    );
    assert_eq!(moved["outcome"], "moved", "{moved}");
    let new_view = &moved["view"];
    assert_ne!(new_view["remote"]["hash"], json!(remote_hash));
    assert!(new_view["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["remote"]
            .as_str()
            .unwrap_or_default()
            .contains("three (remote)")));
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        ours
    );
    assert_eq!(remote_spec(&h, &id), theirs_again);

    // Saved against the current sides: the file and the gateway hold exactly the merge.
    let resolved = resolved.replace("- three", "- three (remote)");
    let saved = h.ok(
        "save_merge",
        json!({"dir": dir, "stage": "spec", "text": resolved, "localHash": new_view["local"]["hash"], "remoteHash": new_view["remote"]["hash"]}),
    );
    assert_eq!(saved["outcome"], "saved", "{saved}");
    assert_eq!(saved["push"]["pushed"], json!(["spec"]));
    assert_eq!(
        std::fs::read_to_string(spec_path(&repo, "shop")).unwrap(),
        resolved
    );
    assert_eq!(remote_spec(&h, &id), resolved);
    let board = h.ok("dashboard", json!({}));
    assert_eq!(stage(card(&board, "shop"), "spec")["sync"], "in_sync");
    assert_eq!(
        h.err("merge_view", json!({"dir": dir, "stage": "spec"}))["code"],
        "no_conflict"
    );
    // The teammate's next pull brings the merge without a conflict.
    h.pull_outside(&mate);
    assert_eq!(stage_text(&mate, Stage::Spec), resolved);
}

/// A team gateway on its own runtime, so that shutting the runtime down drops every connection
/// at once, as a killed process would (a graceful stop would wait for the event streams).
fn team_gateway(db: &Path, port: u16) -> (tokio::runtime::Runtime, u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = rt.block_on(async {
        let store = idse_store::open(&db.to_string_lossy(), &idse_store::OpenOptions::default())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = idse_gateway::app(
            Arc::from(store),
            idse_gateway::Limits::default(),
            idse_gateway::AuthMode::Open,
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    });
    (rt, port)
}

#[test]
fn the_live_link_comes_back_by_itself_after_the_team_gateway_restarts() {
    let h = harness();
    let repo = h.repo("repo", &["shop"]);
    let dir = dir_of(&repo, "shop");
    h.ok("add_folders", json!({"paths": [repo]}));
    std::fs::write(spec_path(&repo, "shop"), SPEC).unwrap();
    let db = h.tmp.path().join("team.sqlite3");
    let (rt, port) = team_gateway(&db, 0);
    let url = format!("http://127.0.0.1:{port}");
    h.events.lock().unwrap().clear();
    h.ok("save_settings", json!({"gatewayUrl": url, "token": null}));
    h.wait_for("link up", |e| matches!(e, DeskEvent::Link { online: true }));
    let id = h.ok("push", json!({"dir": dir}))["project_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The gateway dies: the app sees the link go down.
    h.events.lock().unwrap().clear();
    rt.shutdown_background();
    h.wait_for("link down", |e| {
        matches!(e, DeskEvent::Link { online: false })
    });
    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["gateway"]["online"], false);

    // It comes back on the same address and data: the app reconnects with no one asking.
    h.events.lock().unwrap().clear();
    let (_rt, again) = team_gateway(&db, port);
    assert_eq!(again, port);
    let back = h.wait_for("link up again", |e| {
        matches!(e, DeskEvent::Link { online: true })
    });
    // And a teammate's push reaches the window over the new stream.
    let mate = h.fetch_into(&h.repo("mate", &[]), &id);
    std::fs::write(
        mate.stage_path(&mate.active_session().unwrap(), Stage::Spec),
        SPEC.replace("one", "uno"),
    )
    .unwrap();
    h.events.lock().unwrap().clear();
    h.push_outside(&mate);
    let seen = h.wait_for(
        "teammate's push",
        |e| matches!(e, DeskEvent::Remote { push } if push.project_name == "shop"),
    );
    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["gateway"]["online"], true);
    assert_eq!(board["gateway"]["problem"], Value::Null);
    assert_eq!(card(&board, "shop")["badge"], "remote_changes");

    // The team gateway starts to need tokens, which this desk has none of: its open stream
    // ends, the link goes down, and the dashboard says the token is the problem, not the network.
    h.events.lock().unwrap().clear();
    tauri::async_runtime::block_on(async {
        let store = idse_store::open(&db.to_string_lossy(), &idse_store::OpenOptions::default())
            .await
            .unwrap();
        let token = idse_gateway::new_token();
        store
            .create_token("lead", &idse_gateway::token_hash(&token), false, Utc::now())
            .await
            .unwrap();
    });
    h.wait_for("link down once tokens are needed", |e| {
        matches!(e, DeskEvent::Link { online: false })
    });
    let board = h.ok("dashboard", json!({}));
    assert_eq!(board["gateway"]["online"], false);
    assert_eq!(
        board["gateway"]["problem"]["code"], "unauthorized",
        "{board}"
    );
    println!(
        "reconnected {} ms after the restart; push seen after {} ms",
        back.as_millis(),
        seen.as_millis()
    );
}
