//! `GET /sync/events`: a subscriber hears of every accepted push within a second.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use idse_gateway::Limits;
use serde_json::json;

/// Reads server-sent events until one named `push` arrives; returns its data.
async fn next_push(res: &mut reqwest::Response, buf: &mut String) -> serde_json::Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: push") {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = res.chunk().await.unwrap().expect("the stream stays open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_hear_each_accepted_push() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let mut stream = gw
        .http
        .get(format!("{}/sync/events", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The client asked for compression (reqwest's default here), but a compressor would hold
    // each event back until its buffer filled.
    assert!(stream.headers().get("content-encoding").is_none());
    let mut buf = String::new();

    let (code, pushed) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "live", "artifacts": {"spec_md": "v1", "plan_md": "p"}, "agent": "claude"}),
        )
        .await;
    assert_eq!(code, 200);
    let event = tokio::time::timeout(Duration::from_secs(1), next_push(&mut stream, &mut buf))
        .await
        .expect("the event arrives within a second");
    assert_eq!(event["project_id"], pushed["project_id"]);
    assert_eq!(event["project_name"], "live");
    assert_eq!(event["stages"], json!(["plan", "spec"]));
    assert_eq!(event["revision"], 1);
    assert_eq!(event["agent"], "claude");

    // A push that changes nothing is not news; the next real one is.
    gw.post(
        "/sync/push",
        &json!({"project_name": "live", "artifacts": {"spec_md": "v1"}}),
    )
    .await;
    gw.post(
        "/sync/push",
        &json!({"project_name": "live", "artifacts": {"spec_md": "v2"}}),
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(1), next_push(&mut stream, &mut buf))
        .await
        .unwrap();
    assert_eq!(event["stages"], json!(["spec"]));
    assert_eq!(event["revision"], 2);

    // A push by id from a copy that calls the project otherwise: the event and the answer
    // name the project as the gateway knows it.
    let (code, renamed) = gw
        .post(
            "/sync/push",
            &json!({"project_id": pushed["project_id"], "project_name": "live-copy", "artifacts": {"spec_md": "v3"}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        renamed["message"],
        "Pushed 1 changed stage(s) to project live."
    );
    let event = tokio::time::timeout(Duration::from_secs(1), next_push(&mut stream, &mut buf))
        .await
        .unwrap();
    assert_eq!(event["project_name"], "live");
    assert_eq!(event["revision"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_routes_conflicts_and_subscribers() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let (_, first) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "m", "artifacts": {"spec_md": "a"}}),
        )
        .await;
    let stale = json!({"project_name": "m", "artifacts": {"spec_md": "c"}, "base": {"spec_md": idse_protocol::content_hash("old")}});
    gw.post(
        "/sync/push",
        &json!({"project_name": "m", "artifacts": {"spec_md": "b"}}),
    )
    .await;
    assert_eq!(gw.post("/sync/push", &stale).await.0, 409);
    let id = first["project_id"].as_str().unwrap();
    gw.get(&format!("/sync/status/{id}")).await;
    let _stream = gw
        .http
        .get(format!("{}/sync/events", gw.url))
        .send()
        .await
        .unwrap();
    let text = common::text(gw.http.get(format!("{}/metrics", gw.url))).await;
    assert!(
        text.contains("idse_http_requests_total{route=\"/sync/push\",status=\"200\"} 2"),
        "{text}"
    );
    // Plain HTTP: no certificate to report.
    assert!(!text.contains("idse_tls_certificate"), "{text}");
    assert!(
        text.contains("idse_http_requests_total{route=\"/sync/push\",status=\"409\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/sync/status/{id}\""),
        "routes by pattern, not by id: {text}"
    );
    assert!(!text.contains(id), "no ids in labels");
    assert!(text.contains("idse_push_conflicts_total 1"), "{text}");
    assert!(
        text.contains("idse_push_duration_seconds_count 3"),
        "{text}"
    );
    assert!(text.contains("idse_event_subscribers 1"), "{text}");
}
