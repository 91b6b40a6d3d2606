//! SIGKILL during a stream of pushes on SQLite: after a restart, every push that was answered
//! 200 is there.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idse_protocol::content_hash;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

async fn start(db: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idse-gateway"))
        .args(["--addr", "127.0.0.1:0", "--database"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the gateway printed its address in time")
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_push_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.sqlite3");
    let (mut child, url) = start(&db).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (url, stop, acked_count) = (url.clone(), stop.clone(), acked_count.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let text = format!("# Spec from writer {w}, push {i}\n{}", "body line\n".repeat(50));
                i += 1;
                let res = http
                    .post(format!("{url}/sync/push"))
                    .json(&json!({"project_name": format!("durable-{w}"), "artifacts": {"spec_md": text, "plan_md": format!("plan {i}")}}))
                    .send()
                    .await;
                let Ok(res) = res else { break };
                if res.status() != 200 {
                    break;
                }
                let Ok(body) = res.json::<Value>().await else { break };
                acked.push((body["project_id"].as_str().unwrap().to_owned(), content_hash(&text)));
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            acked
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_count.load(Ordering::Relaxed) < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL while the writers are still pushing.
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the gateway was killed, not stopped");
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() >= 400,
        "only {} pushes were answered before the kill",
        acked.len()
    );

    let (_child, url) = start(&db).await;
    let http = reqwest::Client::new();
    for (project, hash) in &acked {
        let res = http
            .get(format!("{url}/sync/history/{project}/{hash}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "acknowledged push {hash} of {project} was lost"
        );
    }
    let list: Value = http
        .get(format!("{url}/sync/projects"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 4);
}
