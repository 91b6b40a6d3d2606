//! SIGKILL during a stream of pushes on SQLite: after a restart, every push that was answered
//! 200 is there.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idse_protocol::content_hash;
use serde_json::{json, Value};

mod common;
use common::{assert_holds, spawn_gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_push_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.sqlite3");
    let (mut child, url) = spawn_gateway(&db).await;

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

    let (_child, url) = spawn_gateway(&db).await;
    assert_holds(&url, &acked, 4).await;
}
