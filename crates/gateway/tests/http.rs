//! The protocol over real HTTP, on both stores: shapes of every route, conflicts, and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestGateway;
use idse_protocol::content_hash;
use serde_json::{json, Value};

fn seven_stages(tag: &str) -> Value {
    json!({
        "intent_md": format!("# Intent {tag}\n"),
        "context_md": format!("# Context {tag}\n"),
        "spec_md": format!("# Spec {tag}\n"),
        "plan_md": format!("# Plan {tag}\n"),
        "tasks_md": format!("# Tasks {tag}\n- [ ] a\n"),
        "implementation_md": format!("# Implementation {tag}\n"),
        "feedback_md": format!("# Feedback {tag}\n"),
    })
}

async fn every_route_answers_in_the_documented_shape(gw: &TestGateway) {
    // As the existing Python client pushes: no base, state_json with stages, extra fields.
    let (code, pushed) = gw
        .post(
            "/sync/push",
            &json!({
                "project_name": "demo",
                "stack": "rust",
                "framework": "axum",
                "artifacts": seven_stages("v1"),
                "state_json": {"project_name": "demo", "session_id": "__blueprint__",
                               "stages": {"intent": "complete", "spec": "in_progress"},
                               "last_agent": "claude"},
                "session_id": "__blueprint__",
                "session_metadata": {"owner": "ana"},
                "timestamp": "2026-11-23T08:00:00Z",
                "client_version": "0.9.1"
            }),
        )
        .await;
    assert_eq!(code, 200, "{pushed}");
    assert_eq!(pushed["success"], true);
    let id = pushed["project_id"].as_str().unwrap().to_owned();
    assert_eq!(pushed["synced_stages"].as_array().unwrap().len(), 7);
    assert_eq!(pushed["revision"], 1);
    assert_eq!(pushed["hashes"]["spec_md"], content_hash("# Spec v1\n"));
    assert!(pushed["message"].as_str().unwrap().contains("demo"));

    let (code, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(code, 200, "{pulled}");
    assert_eq!(pulled["name"], "demo");
    assert_eq!(pulled["stack"], "rust");
    assert_eq!(pulled["framework"], "axum");
    assert_eq!(pulled["session_id"], "__blueprint__");
    assert_eq!(
        pulled["artifacts"]["implementation_md"],
        "# Implementation v1\n"
    );
    assert_eq!(pulled["state_json"]["stages"]["intent"], "complete");
    assert_eq!(pulled["hashes"], pushed["hashes"]);
    assert!(pulled["updated_at"].as_str().unwrap().starts_with("20"));

    // The same texts again: nothing changed, and the answer says so.
    let (code, same) = gw
        .post(
            "/sync/push",
            &json!({"project_id": id, "project_name": "demo", "artifacts": seven_stages("v1")}),
        )
        .await;
    assert_eq!(code, 200, "{same}");
    assert!(same["message"]
        .as_str()
        .unwrap()
        .contains("nothing changed"));
    // The same texts with a new state: the state is saved, so the answer must not say that
    // nothing changed.
    let state = json!({"stages": {"intent": "complete", "spec": "in_progress"}, "last_agent": "claude", "note": "v2"});
    let (code, saved) = gw
        .post(
            "/sync/push",
            &json!({"project_id": id, "project_name": "demo", "artifacts": seven_stages("v1"),
                    "state_json": state}),
        )
        .await;
    assert_eq!(code, 200, "{saved}");
    let message = saved["message"].as_str().unwrap();
    assert!(!message.contains("nothing changed"), "{message}");
    assert!(message.contains("state"), "{message}");
    assert_eq!(saved["revision"], 1);
    let (_, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(pulled["state_json"]["note"], "v2");

    let (code, status) = gw.get(&format!("/sync/status/{id}")).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["project_name"], "demo");
    assert_eq!(status["state"]["intent"], "completed");
    assert_eq!(status["state"]["spec"], "in_progress");
    assert_eq!(status["last_agent"], "claude");
    assert!(status["last_synced"].is_string());
    assert!(status["created_at"].is_string());

    let (code, list) = gw.get("/sync/projects").await;
    assert_eq!(code, 200);
    assert_eq!(list["count"], 1);
    assert_eq!(list["projects"][0]["id"], id.as_str());
    assert_eq!(
        list["projects"][0]["state_json"]["stages"]["intent"],
        "complete"
    );

    let (code, history) = gw.get(&format!("/sync/history/{id}?stage=spec")).await;
    assert_eq!(code, 200, "{history}");
    let revisions = history["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0]["stage"], "spec");
    assert_eq!(revisions[0]["agent"], "claude");
    let hash = revisions[0]["sha256"].as_str().unwrap();
    let (code, text) = gw.get(&format!("/sync/history/{id}/{hash}")).await;
    assert_eq!(code, 200);
    assert_eq!(text["text"], "# Spec v1\n");

    let (code, health) = gw.get("/sync/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["database_connected"], true);
    let kind = gw.fixture.as_ref().unwrap().store.kind();
    assert_eq!(health["database"], kind);
    assert!(health["database_version"].is_string());
}

async fn a_stale_base_gets_409_with_the_remote_text(gw: &TestGateway) {
    let (_, first) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "p", "artifacts": {"spec_md": "base"}}),
        )
        .await;
    let base = first["hashes"].clone();
    let (code, _) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "p", "artifacts": {"spec_md": "theirs"}, "base": base}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, refused) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "p", "artifacts": {"spec_md": "mine", "plan_md": "new"}, "base": base}),
        )
        .await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["success"], false);
    assert_eq!(refused["error"], "conflict");
    assert_eq!(refused["conflicts"][0]["stage"], "spec");
    assert_eq!(refused["conflicts"][0]["remote_text"], "theirs");
    assert_eq!(
        refused["conflicts"][0]["remote_hash"],
        content_hash("theirs")
    );
    assert_eq!(refused["conflicts"][0]["base_hash"], content_hash("base"));
    let (_, pulled) = gw
        .post("/sync/pull", &json!({"project_id": first["project_id"]}))
        .await;
    assert!(
        pulled["artifacts"].get("plan_md").is_none(),
        "nothing of a refused push is written"
    );

    let (code, forced) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "p", "artifacts": {"spec_md": "mine"}, "base": base, "force": true}),
        )
        .await;
    assert_eq!(code, 200, "{forced}");
}

async fn older_clients_overwrite_and_history_keeps_the_loser(gw: &TestGateway) {
    let (_, a) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "old", "artifacts": {"plan_md": "first"}}),
        )
        .await;
    let (code, _) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "old", "artifacts": {"plan_md": "second"}}),
        )
        .await;
    assert_eq!(code, 200);
    let id = a["project_id"].as_str().unwrap();
    let (code, text) = gw
        .get(&format!("/sync/history/{id}/{}", content_hash("first")))
        .await;
    assert_eq!(code, 200);
    assert_eq!(text["text"], "first");
    let (_, history) = gw.get(&format!("/sync/history/{id}")).await;
    assert_eq!(history["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(history["next_before"], Value::Null);
    // A page at a time: the cursor of the first page leads to the loser, and no further.
    let (code, newest) = gw.get(&format!("/sync/history/{id}?limit=1")).await;
    assert_eq!(code, 200, "{newest}");
    assert_eq!(newest["revisions"][0]["sha256"], content_hash("second"));
    let before = newest["next_before"].as_i64().unwrap();
    let (code, older) = gw
        .get(&format!("/sync/history/{id}?limit=1&before={before}"))
        .await;
    assert_eq!(code, 200, "{older}");
    assert_eq!(older["revisions"][0]["sha256"], content_hash("first"));
    assert_eq!(older["next_before"], Value::Null);
}

async fn sessions_are_pulled_per_session(gw: &TestGateway) {
    let (_, a) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "s", "artifacts": {"intent_md": "bp"}}),
        )
        .await;
    gw.post(
        "/sync/push",
        &json!({"project_name": "s", "session_id": "session-1736534123", "artifacts": {"intent_md": "s1", "meta_md": "m"}}),
    )
    .await;
    let id = &a["project_id"];
    let (_, latest) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(latest["session_id"], "session-1736534123");
    assert_eq!(latest["artifacts"]["meta_md"], "m");
    let (_, bp) = gw
        .post(
            "/sync/pull",
            &json!({"project_id": id, "session_id": "__blueprint__"}),
        )
        .await;
    assert_eq!(bp["artifacts"]["intent_md"], "bp");
    let (code, missing) = gw
        .post(
            "/sync/pull",
            &json!({"project_id": id, "session_id": "session-2"}),
        )
        .await;
    assert_eq!(code, 404);
    assert_eq!(missing["error"], "session_not_found");
}

fn assert_sentence(body: &Value) {
    for field in ["message", "detail"] {
        let s = body[field].as_str().unwrap_or_default();
        assert!(
            s.len() > 10 && s.ends_with('.'),
            "{field} is not a sentence: {body}"
        );
    }
    assert_eq!(body["success"], false);
}

async fn bad_input_is_refused_and_writes_nothing(gw: &TestGateway) {
    let (_, seed) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "keep", "artifacts": {"intent_md": "x"}}),
        )
        .await;
    let id = seed["project_id"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::new_v4().to_string();
    let big = "x".repeat(1024 * 1024 + 1);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> =
        vec![
        (
            "/sync/push",
            b"{\"project_name\": ".to_vec(),
            400,
            "invalid_json",
        ),
        ("/sync/push", b"".to_vec(), 400, "invalid_json"),
        ("/sync/push", b"[1,2]".to_vec(), 400, "invalid_field"),
        (
            "/sync/push",
            br#"{"project_name": 5}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            "/sync/push",
            br#"{"project_name": "a", "artifacts": {"intent_md": 5}}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            "/sync/push",
            br#"{"project_name": "a", "artifacts": []}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            "/sync/push",
            br#"{"artifacts": {}}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            "/sync/push",
            br#"{"project_name": ""}"#.to_vec(),
            400,
            "invalid_name",
        ),
        (
            "/sync/push",
            br#"{"project_name": "a/b"}"#.to_vec(),
            400,
            "invalid_name",
        ),
        (
            "/sync/push",
            br#"{"project_name": ".."}"#.to_vec(),
            400,
            "invalid_name",
        ),
        (
            "/sync/push",
            br#"{"project_name": "../etc"}"#.to_vec(),
            400,
            "invalid_name",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "session_id": "../x"}"#.to_vec(),
            400,
            "invalid_name",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "project_id": "not-a-uuid"}"#.to_vec(),
            400,
            "invalid_project_id",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "artifacts": {"../x": "t"}}"#.to_vec(),
            400,
            "invalid_artifact",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "artifacts": {"spec_md": "t"}, "base": {"spec_md": "zz"}}"#
                .to_vec(),
            400,
            "invalid_base",
        ),
        (
            "/sync/push",
            format!(r#"{{"project_name": "ok", "project_id": "{unknown}"}}"#).into_bytes(),
            404,
            "not_found",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "artifacts": {"spec_md": "a\u0000b"}}"#.to_vec(),
            400,
            "invalid_text",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "state_json": {"stages": {"x\u0000": "y"}}}"#.to_vec(),
            400,
            "invalid_text",
        ),
        (
            "/sync/push",
            br#"{"project_name": "ok", "stack": "rust\u0000"}"#.to_vec(),
            400,
            "invalid_text",
        ),
        (
            "/sync/push",
            b"{\"project_name\": \"caf\xe9\"}".to_vec(),
            400,
            "invalid_encoding",
        ),
        (
            "/sync/push",
            format!(r#"{{"project_name": "ok", "artifacts": {{"spec_md": "{big}"}}}}"#)
                .into_bytes(),
            413,
            "artifact_too_large",
        ),
        (
            "/sync/push",
            vec![b' '; 10 * 1024 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            "/sync/push",
            format!(r#"{{"project_name": "ok", "stack": "{}"}}"#, "r".repeat(1001)).into_bytes(),
            400,
            "invalid_field",
        ),
        (
            "/sync/push",
            format!(r#"{{"project_name": "ok", "state_json": {{"notes": "{big}"}}}}"#)
                .into_bytes(),
            413,
            "field_too_large",
        ),
        (
            "/sync/push",
            format!(
                r#"{{"project_name": "ok", "state_json": {}1{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            )
            .into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "/sync/pull",
            br#"{"project_id": "nope"}"#.to_vec(),
            400,
            "invalid_project_id",
        ),
        (
            "/sync/pull",
            format!(r#"{{"project_id": "{unknown}"}}"#).into_bytes(),
            404,
            "not_found",
        ),
        ("/sync/pull", br#"{}"#.to_vec(), 400, "invalid_field"),
    ];
    for (path, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (got, answer) = gw.post_raw(path, body).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or("")),
            (status, code),
            "{path} {shown}: {answer}"
        );
        assert_sentence(&answer);
    }
    for (path, status, code) in [
        ("/sync/status/not-a-uuid", 400, "invalid_project_id"),
        (&*format!("/sync/status/{unknown}"), 404, "not_found"),
        (&*format!("/sync/history/{unknown}"), 404, "not_found"),
        (
            &*format!("/sync/history/{id}?limit=abc"),
            400,
            "invalid_query",
        ),
        (
            &*format!("/sync/history/{id}?before=0"),
            400,
            "invalid_query",
        ),
        (
            &*format!("/sync/history/{id}?before=x"),
            400,
            "invalid_query",
        ),
        (&*format!("/sync/history/{id}/xyz"), 400, "invalid_hash"),
        (
            &*format!("/sync/history/{id}/{}", content_hash("never")),
            404,
            "text_not_found",
        ),
        ("/sync/nothing", 404, "no_route"),
        ("/sync/push", 405, "method_not_allowed"),
    ] {
        let (got, answer) = gw.get(path).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or("")),
            (status, code),
            "{path}: {answer}"
        );
        assert_sentence(&answer);
    }
    // Bodies the list above cannot send: one compressed in a way the gateway does not take, or
    // not as its header says, is named as such, not explained as broken JSON; one three times
    // the limit, sent whole without waiting for a go-ahead (as Python's clients do), still gets
    // its 413, not a broken pipe.
    for (encoding, body, status, code) in [
        (
            Some("br"),
            b"\x1f\x8b\x08\x00".to_vec(),
            415,
            "unsupported_encoding",
        ),
        (
            Some("gzip"),
            b"\x1f\x8b\x08\x00".to_vec(),
            400,
            "invalid_compression",
        ),
        (None, vec![b' '; 30 << 20], 413, "payload_too_large"),
    ] {
        let mut req = gw
            .http
            .post(format!("{}/sync/push", gw.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(encoding) = encoding {
            req = req.header("content-encoding", encoding);
        }
        let res = req
            .send()
            .await
            .expect("the client saw a transport error instead of the answer");
        let got = res.status().as_u16();
        let answer: Value = res.json().await.unwrap();
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or("")),
            (status, code),
            "{answer}"
        );
        assert_sentence(&answer);
        if let Some(encoding) = encoding {
            assert!(
                answer["message"].as_str().unwrap().contains(encoding),
                "{answer}"
            );
        }
    }
    let (_, list) = gw.get("/sync/projects").await;
    assert_eq!(list["count"], 1, "no bad request created a project: {list}");
    let (_, status) = gw.get(&format!("/sync/status/{id}")).await;
    assert_eq!(status["revision"], 1, "no bad request changed the project");
}

async fn responses_carry_a_request_id(gw: &TestGateway) {
    let res = gw
        .http
        .get(format!("{}/sync/health", gw.url))
        .send()
        .await
        .unwrap();
    let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let res = gw
        .http
        .get(format!("{}/sync/health", gw.url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
}

on_both_stores!(
    every_route_answers_in_the_documented_shape,
    a_stale_base_gets_409_with_the_remote_text,
    older_clients_overwrite_and_history_keeps_the_loser,
    sessions_are_pulled_per_session,
    bad_input_is_refused_and_writes_nothing,
    responses_carry_a_request_id,
);
