//! No lost updates under concurrent writers, against a real listening gateway on each store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::TestGateway;
use idse_protocol::content_hash;
use serde_json::{json, Value};
use tokio::sync::Barrier;

const WRITERS: usize = 8;
const ROUNDS: usize = 12;

#[derive(Debug)]
struct Applied {
    revision: i64,
    text: String,
}

/// Each round, every writer pulls the same state, waits for the others, then all push on that
/// same base at once: exactly one may win, the rest must get 409 and write nothing.
async fn concurrent_writers_never_lose_an_update(gw: &TestGateway) {
    let (code, first) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "race", "artifacts": {"spec_md": "v0\n"}}),
        )
        .await;
    assert_eq!(code, 200);
    let id = first["project_id"].as_str().unwrap().to_owned();
    let gw = Arc::new((gw.url.clone(), id.clone()));
    let pulled = Arc::new(Barrier::new(WRITERS));
    let pushed = Arc::new(Barrier::new(WRITERS));

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (gw, pulled, pushed) = (gw.clone(), pulled.clone(), pushed.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (url, id) = &*gw;
            let mut applied = Vec::new();
            let mut refused = 0;
            for round in 0..ROUNDS {
                let snap: Value = http
                    .post(format!("{url}/sync/pull"))
                    .json(&json!({"project_id": id}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let text = format!(
                    "{}round {round} writer {w}\n",
                    snap["artifacts"]["spec_md"].as_str().unwrap()
                );
                pulled.wait().await;
                let res = http
                    .post(format!("{url}/sync/push"))
                    .json(&json!({
                        "project_id": id, "project_name": "race", "agent": format!("writer-{w}"),
                        "artifacts": {"spec_md": text}, "base": snap["hashes"],
                    }))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                match status {
                    200 => applied.push(Applied {
                        revision: body["revision"].as_i64().unwrap(),
                        text,
                    }),
                    409 => {
                        assert_eq!(body["conflicts"][0]["stage"], "spec");
                        refused += 1;
                    }
                    other => panic!("push answered {other}: {body}"),
                }
                pushed.wait().await;
            }
            (applied, refused)
        }));
    }
    let mut applied = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (a, r) = task.await.unwrap();
        applied.extend(a);
        refused += r;
    }
    assert_eq!(applied.len(), ROUNDS, "exactly one writer wins each round");
    assert_eq!(
        refused,
        ROUNDS * (WRITERS - 1),
        "every other push is refused"
    );

    let http = reqwest::Client::new();
    let (url, id) = &*gw;
    let history: Value = http
        .get(format!("{url}/sync/history/{id}?stage=spec&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hashes: BTreeSet<&str> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(
        hashes.len(),
        ROUNDS + 1,
        "the first text and one per round, no more"
    );
    for a in &applied {
        assert!(
            hashes.contains(content_hash(&a.text).as_str()),
            "applied push missing from history"
        );
    }
    let revisions: BTreeSet<i64> = applied.iter().map(|a| a.revision).collect();
    assert_eq!(
        revisions.len(),
        ROUNDS,
        "every applied push has its own revision"
    );

    let last = applied.iter().max_by_key(|a| a.revision).unwrap();
    let final_state: Value = http
        .post(format!("{url}/sync/pull"))
        .json(&json!({"project_id": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let final_text = final_state["artifacts"]["spec_md"].as_str().unwrap();
    assert_eq!(
        final_text, last.text,
        "the final text is the last applied one"
    );
    // Each winner built on the previous winner, so the final text holds every round in order.
    assert_eq!(final_text.lines().count(), ROUNDS + 1);
}

/// Free-running writers with random timing: every push is applied or refused, never both or
/// neither, and every applied text is in the history.
async fn free_running_writers_are_all_accounted_for(gw: &TestGateway) {
    let (_, first) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "free", "artifacts": {"plan_md": "p0\n"}}),
        )
        .await;
    let id = first["project_id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (url, id) = (gw.url.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut applied = Vec::new();
            let mut refused = 0;
            for i in 0..15 {
                let snap: Value = http
                    .post(format!("{url}/sync/pull"))
                    .json(&json!({"project_id": id}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let text = format!("{}w{w} i{i}\n", snap["artifacts"]["plan_md"].as_str().unwrap());
                let res = http
                    .post(format!("{url}/sync/push"))
                    .json(&json!({"project_id": id, "project_name": "free", "artifacts": {"plan_md": text}, "base": snap["hashes"]}))
                    .send()
                    .await
                    .unwrap();
                match res.status().as_u16() {
                    200 => applied.push(text),
                    409 => refused += 1,
                    other => panic!("push answered {other}"),
                }
            }
            (applied, refused)
        }));
    }
    let mut applied = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        applied.extend(a);
        refused += r;
    }
    assert_eq!(applied.len() + refused, WRITERS * 15);
    let (_, history) = gw
        .get(&format!("/sync/history/{id}?stage=plan&limit=1000"))
        .await;
    let revisions = history["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), applied.len() + 1);
    let (_, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    let final_text = pulled["artifacts"]["plan_md"].as_str().unwrap();
    assert_eq!(
        final_text.lines().count(),
        applied.len() + 1,
        "no applied push was lost"
    );
    for text in &applied {
        assert!(
            final_text.starts_with(text.as_str()),
            "applied text is not an ancestor of the final"
        );
    }
}

on_both_stores!(
    concurrent_writers_never_lose_an_update,
    free_running_writers_are_all_accounted_for,
);
