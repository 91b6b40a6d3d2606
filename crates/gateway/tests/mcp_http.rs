//! `/mcp` on the gateway, driven by the official Python MCP SDK over streamable HTTP with a
//! bearer token: a write is a push with a base (so a stale one is refused), and it is recorded
//! with the token's name as author and the client's name as agent.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use idse_gateway::{new_token, token_hash, AuthMode, Limits};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_agents_write_through_pushes_with_a_base() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the Python mcp SDK (scripts/test.sh does)"
        );
        eprintln!("python3 with the mcp package is not available: skipped");
        return;
    }
    let fixture = idse_store::testing::sqlite().await;
    let token = new_token();
    fixture
        .store
        .create_token("remote", &token_hash(&token), false, Utc::now())
        .await
        .unwrap();
    let gw = common::serve_with(fixture.store.clone(), Limits::default(), AuthMode::Tokens).await;
    let (code, created) = {
        let res = gw
            .http
            .post(format!("{}/sync/push", gw.url))
            .bearer_auth(&token)
            .json(&json!({"project_name": "remote", "artifacts": {"spec_md": "# Spec\nv1\n"}}))
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(code, 200);
    let unauthenticated = gw
        .http
        .post(format!("{}/mcp", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauthenticated.status(),
        401,
        "/mcp is behind the same tokens"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp_http_client.py");
    let (url, tok) = (gw.url.clone(), token.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([&url, &tok, "remote"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let id = created["project_id"].as_str().unwrap();
    let (_, history) = gw
        .get_as(&format!("/sync/history/{id}?stage=spec"), &token)
        .await;
    let latest = &history["revisions"][0];
    assert_eq!(
        history["revisions"].as_array().unwrap().len(),
        2,
        "the stale write left nothing"
    );
    assert_eq!(latest["agent"], "python-remote-agent");
    assert_eq!(latest["author"], "remote");
    let (_, status) = gw.get_as(&format!("/sync/status/{id}"), &token).await;
    assert_eq!(
        status["state"]["spec"], "completed",
        "set_stage_status reached the state"
    );
    assert_eq!(status["last_agent"], "python-remote-agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_accepts_only_loopback_and_public_host_names() {
    let fixture = idse_store::testing::sqlite().await;
    let app = idse_gateway::app_with(
        fixture.store.clone(),
        Limits::default(),
        AuthMode::Open,
        None,
        vec!["agency.example.com".to_owned()],
        idse_gateway::CancellationToken::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    // The binary's own serving loop, not axum's.
    let server = tokio::spawn(idse_gateway::serve(
        listener,
        app,
        idse_gateway::CancellationToken::new(),
    ));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}});
    let http = reqwest::Client::new();
    let send = |host: &'static str| {
        let req = http
            .post(&url)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(send("agency.example.com").await.0, 200);
    let (code, text) = send("evil.example.net").await;
    assert_eq!(code, 403, "DNS rebinding guard");
    let refused: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(refused["error"], "host_not_allowed", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("--public-host"),
        "{refused}"
    );
    server.abort();
}

/// `/mcp` bodies are read by the gateway first: one over the limit, or compressed, gets the
/// same `{error, message}` answer as on every other route, not rmcp's plain text; a body
/// within the limit still reaches the MCP server whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_bodies_get_the_gateway_answers() {
    let fixture = idse_store::testing::sqlite().await;
    let limits = Limits {
        max_body_bytes: 4096,
        max_artifact_bytes: 1024,
    };
    let gw = common::serve(fixture.store.clone(), limits).await;
    let url = format!("{}/mcp", gw.url);
    let send = |body: Vec<u8>, encoding: Option<&'static str>| {
        let mut req = gw
            .http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body);
        if let Some(encoding) = encoding {
            req = req.header("content-encoding", encoding);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let init = |name: String| {
        serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": name, "version": "1"}}}),
        )
        .unwrap()
    };

    let (code, text) = send(init("x".repeat(5000)), None).await;
    assert_eq!(code, 413, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"], "payload_too_large", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("4.0 KiB"),
        "{answer}"
    );

    let (code, text) = send(init("probe".into()), Some("br")).await;
    assert_eq!(code, 415, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"], "unsupported_encoding", "{answer}");

    // Compressed as the gateway takes, rmcp gets the body uncompressed.
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzipped, &init("gzipped".into())).unwrap();
    let (code, text) = send(gzipped.finish().unwrap(), Some("gzip")).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("serverInfo"), "{text}");

    let (code, text) = send(init("x".repeat(3000)), None).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("serverInfo"), "{text}");
}

/// rmcp's own refusals reach clients in the gateway's words, as every other route's: JSON with
/// a code and sentences that say what to fix, not rmcp's plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refusals_come_as_the_gateway_answers() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let url = format!("{}/mcp", gw.url);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let cases = [
        (
            gw.http.post(&url).json(&list),
            406,
            "not_acceptable",
            "Accept: application/json, text/event-stream",
        ),
        (
            gw.http.get(&url).header("accept", "application/json"),
            406,
            "not_acceptable",
            "Accept: text/event-stream",
        ),
        (
            gw.http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "text/plain")
                .body("tools/list"),
            415,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        (
            gw.http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", "no-such-session")
                .json(&list),
            404,
            "session_not_found",
            "initialize",
        ),
        (
            gw.http.delete(&url),
            400,
            "bad_request",
            "Session ID is required",
        ),
        (
            gw.http.put(&url).json(&list),
            405,
            "method_not_allowed",
            "POST",
        ),
    ];
    for (req, status, code, says) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{code}");
        let allow = res.headers().get("allow").cloned();
        let answer: serde_json::Value = res.json().await.unwrap();
        assert_eq!(answer["error"], code, "{answer}");
        let sentences = format!("{} {}", answer["message"], answer["detail"]);
        assert!(sentences.contains(says), "{code}: {answer}");
        if status == 405 {
            assert!(allow.is_some(), "405 keeps its Allow header");
        }
    }
}
