//! Folders written by the existing Python `idse` client open as they are, and what IDSE Desk
//! rewrites keeps every key and file it does not know.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_core::{project_status, validate, StageStatus, SyncStatus, Workspace};
use idse_protocol::Stage;

fn python_layout(root: &std::path::Path) {
    let p = root.join(".idse/projects/legacy");
    let s = p.join("sessions/session-1736534123");
    for (rel, text) in [
        ("intents/intent.md", "# Intent\n## Purpose\nA real purpose with enough words to count.\n## Problem\nx\n## Vision\nx\n## Stakeholders\nx\n## Success Criteria\nx\n"),
        ("specs/spec.md", "# Spec\n[REQUIRES INPUT]\n"),
        ("implementation/README.md", "# Implementation\nDone in three commits, see the log.\n"),
        ("metadata/.owner", "Created: 2025-01-10T12:00:00"),
        ("metadata/session.json", r#"{"session_id": "session-1736534123", "owner": "ana", "custom": 1}"#),
        ("notes/scratch.txt", "an unknown file"),
    ] {
        std::fs::create_dir_all(s.join(rel).parent().unwrap()).unwrap();
        std::fs::write(s.join(rel), text).unwrap();
    }
    std::fs::create_dir_all(p.join("sessions/__blueprint__")).unwrap();
    std::fs::write(p.join("CURRENT_SESSION"), "session-1736534123").unwrap();
    std::fs::write(
        p.join("session_state.json"),
        r#"{"project_name": "legacy", "session_id": "session-1736534123", "is_blueprint": false,
            "stages": {"intent": "complete", "spec": "in_progress"}, "last_sync": null,
            "validation_status": "unknown", "created_at": "2025-01-10", "last_agent": "claude",
            "python_only_key": {"keep": true}}"#,
    )
    .unwrap();
}

#[test]
fn python_client_folders_open_and_keep_unknowns() {
    let dir = tempfile::tempdir().unwrap();
    python_layout(dir.path());
    let ws = Workspace::discover(&dir.path().join(".idse/projects/legacy/sessions")).unwrap();
    let project = ws.project(None).unwrap();
    assert_eq!(project.active_session().unwrap(), "session-1736534123");

    let status = project_status(&project, None).unwrap();
    assert_eq!(status.last_agent.as_deref(), Some("claude"));
    let row = |s: Stage| status.stages.iter().find(|r| r.stage == s).unwrap().clone();
    assert_eq!(
        row(Stage::Intent).status,
        "completed",
        "`complete` reads as `completed`"
    );
    assert_eq!(
        row(Stage::Plan).status,
        "pending",
        "missing file, no record"
    );
    assert_eq!(row(Stage::Intent).sync, SyncStatus::NeverPushed);
    assert_eq!(row(Stage::Plan).sync, SyncStatus::Absent);

    let reports = validate(&project, "session-1736534123").unwrap();
    let spec = reports.iter().find(|r| r.stage == Stage::Spec).unwrap();
    assert_eq!(spec.status, StageStatus::InProgress);
    assert!(!spec.errors.is_empty());

    project
        .record_remote("0b6f3c1e-2d4a-4f5e-9a7b-1c2d3e4f5a6b", Utc::now())
        .unwrap();
    assert_eq!(
        project.remote_id().unwrap().as_deref(),
        Some("0b6f3c1e-2d4a-4f5e-9a7b-1c2d3e4f5a6b")
    );
    let mut state = project.state().unwrap();
    state.insert("last_sync".into(), "now".into());
    project.write_state(&state).unwrap();
    let again = project.state().unwrap();
    assert_eq!(again["python_only_key"]["keep"], true);
    assert_eq!(
        again["stages"]["intent"], "complete",
        "the file keeps its own words"
    );
    let scratch = project
        .session_dir("session-1736534123")
        .join("notes/scratch.txt");
    assert_eq!(std::fs::read_to_string(scratch).unwrap(), "an unknown file");
}

#[test]
fn newest_session_is_active_without_current_session() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".idse/projects/x/sessions");
    for s in ["session-100", "session-2000", "session-30", "__blueprint__"] {
        std::fs::create_dir_all(p.join(s)).unwrap();
    }
    let ws = Workspace::at(dir.path());
    assert_eq!(
        ws.project(Some("x")).unwrap().active_session().unwrap(),
        "session-2000"
    );
    let err = ws.project(Some("y")).unwrap_err().to_string();
    assert!(err.contains("`y`") && err.contains("x"), "{err}");
}

#[test]
fn init_writes_templates_and_refuses_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::at(dir.path());
    let p = ws
        .init_project("demo", Some("rust"), "ana", Utc::now())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(p.dir.join("CURRENT_SESSION")).unwrap(),
        "__blueprint__"
    );
    let reports = validate(&p, "__blueprint__").unwrap();
    assert_eq!(reports.iter().filter(|r| !r.errors.is_empty()).count(), 6);
    assert!(ws.init_project("demo", None, "ana", Utc::now()).is_err());
    assert!(ws.init_project("../evil", None, "ana", Utc::now()).is_err());
    assert!(!dir.path().join(".idse/evil").exists());
}

#[test]
fn the_workspace_config_id_belongs_to_one_project_only() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::at(tmp.path());
    let a = ws.init_project("a", None, "lead", Utc::now()).unwrap();
    let config = tmp.path().join(".idse/config.json");
    // An older client's single-project workspace: config.json's id is that project's.
    std::fs::write(
        &config,
        r#"{"project_id": "id-old", "agency_url": "http://x"}"#,
    )
    .unwrap();
    assert_eq!(a.remote_id().unwrap().as_deref(), Some("id-old"));
    // A second project must not inherit it.
    let b = ws.init_project("b", None, "lead", Utc::now()).unwrap();
    assert_eq!(b.remote_id().unwrap(), None);
    assert_eq!(a.remote_id().unwrap(), None, "ambiguous once there are two");
    // After a push, the claim names its project: only that one reads it.
    std::fs::write(&config, "{}").unwrap();
    std::fs::remove_file(a.dir.join("metadata/project.json")).ok();
    b.record_remote("id-b", Utc::now()).unwrap();
    std::fs::remove_file(b.dir.join("metadata/project.json")).unwrap();
    assert_eq!(b.remote_id().unwrap().as_deref(), Some("id-b"));
    assert_eq!(a.remote_id().unwrap(), None);
}
