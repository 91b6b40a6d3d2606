//! `idse-gateway backup`: a consistent copy of the SQLite database, taken while the gateway
//! serves pushes, from which a new gateway serves every text acknowledged before it began; and
//! a backup never overwrites a file.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idse_protocol::content_hash;
use serde_json::{json, Value};

mod common;
use common::{assert_holds, run_command, spawn_gateway};

async fn backup(database: &str, dest: &Path) -> (bool, String, String) {
    let database = OsStr::new(database);
    run_command(&[
        OsStr::new("--database"),
        database,
        OsStr::new("backup"),
        dest.as_os_str(),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_pushes_holds_every_push_answered_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.sqlite3");
    let (_gateway, url) = spawn_gateway(&db).await;

    // (project id, hash) of every acknowledged push, in order.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let text = format!("# Spec, push {i}\n{}", "A line of the spec.\n".repeat(200));
                let res = http
                    .post(format!("{url}/sync/push"))
                    .json(&json!({"project_name": format!("kept-{}", i % 3), "artifacts": {"spec_md": text}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let body: Value = res.json().await.unwrap();
                let id = body["project_id"].as_str().unwrap().to_owned();
                acked.lock().unwrap().push((id, content_hash(&text)));
            }
        })
    };
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = acked.lock().unwrap().clone();
    let dest = dir.path().join("copy.sqlite3");
    let (ok, stdout, stderr) = backup(db.to_str().unwrap(), &dest).await;
    let during = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(ok, "backup failed: {stderr}");
    assert!(stdout.starts_with("Backed up 3 project(s)"), "{stdout}");
    assert!(
        during > before.len(),
        "pushes went on during the backup ({} before, {during} by its end)",
        before.len()
    );
    // Only the copy: no temporary file is left beside it.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("gateway.sqlite3"))
        .collect();
    names.sort();
    assert_eq!(names, ["copy.sqlite3"]);

    // A gateway on the copy serves every text acknowledged before the backup began.
    let (_restored, restored) = spawn_gateway(&dest).await;
    assert_holds(&restored, &before, 3).await;
}

#[tokio::test]
async fn a_backup_never_overwrites_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.sqlite3");
    let (gateway, url) = spawn_gateway(&db).await;
    let res = reqwest::Client::new()
        .post(format!("{url}/sync/push"))
        .json(&json!({"project_name": "p", "artifacts": {"intent_md": "# Intent"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(gateway);
    let db = db.to_str().unwrap();

    let existing = dir.path().join("earlier-backup.sqlite3");
    std::fs::write(&existing, "an earlier backup").unwrap();
    let (ok, _, stderr) = backup(db, &existing).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{} exists already", existing.display())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "an earlier backup"
    );

    let dest = dir.path().join("new.sqlite3");
    let missing = dir.path().join("no-such.sqlite3");
    let (ok, _, stderr) = backup(missing.to_str().unwrap(), &dest).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("no gateway database at {}", missing.display())),
        "{stderr}"
    );

    let nowhere = dir.path().join("no-folder").join("b.sqlite3");
    let (ok, _, stderr) = backup(db, &nowhere).await;
    assert!(!ok);
    assert!(stderr.contains("no-folder does not exist"), "{stderr}");

    let (ok, _, stderr) = backup("postgres://team@db.example/agency", &dest).await;
    assert!(!ok);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!dest.exists(), "nothing is written on a refusal");

    // With the gateway stopped, a backup works too, via a `sqlite:` URL.
    let (ok, stdout, stderr) = backup(&format!("sqlite://{db}"), &dest).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 project(s) and 1 revision(s)"),
        "{stdout}"
    );
}
