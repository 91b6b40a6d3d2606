//! The gateway's own log (`--log-json`), as an operator reads it: one JSON object a line, each
//! request's lines carrying the request id its answer names, a client's mistakes and conflicts
//! not reported as the gateway's errors, and no document text or token in it.
#![allow(clippy::unwrap_used)]

mod common;

use idse_protocol::content_hash;
use serde_json::{json, Value};

/// The `x-request-id` of an answer, and the answer's status.
async fn send(req: reqwest::RequestBuilder) -> (u16, String) {
    let res = req.send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    (res.status().as_u16(), id)
}

/// The log lines of request `id`.
fn lines_of<'a>(log: &'a [Value], id: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id))
        })
        .collect()
}

#[tokio::test]
async fn the_log_names_each_request_and_keeps_texts_and_tokens_out() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let db = dir.path().join("g.sqlite3");
    let mut command = common::gateway_command(
        &db,
        &[
            "--log-json".as_ref(),
            "--max-body-bytes".as_ref(),
            "65536".as_ref(),
            "--max-artifact-bytes".as_ref(),
            "32768".as_ref(),
        ],
    );
    command.env("RUST_LOG", "info").stderr(stderr);
    let (mut child, url) = common::start(command).await;
    let http = reqwest::Client::new();
    let secret_text = format!("# Intent\n\nnot for the log {}\n", uuid::Uuid::new_v4());
    let token = format!("idse_{}", uuid::Uuid::new_v4().simple());

    let (code, created) = common::answer(
        http.post(format!("{url}/sync/push"))
            .bearer_auth(&token)
            .json(&json!({"project_name": "logged", "artifacts": {"intent_md": secret_text}})),
    )
    .await;
    assert_eq!(code, 200, "{created}");
    let project = created["project_id"].as_str().unwrap().to_owned();
    let (missing, missing_id) = send(
        http.post(format!("{url}/sync/pull"))
            .json(&json!({"project_id": uuid::Uuid::new_v4()})),
    )
    .await;
    assert_eq!(missing, 404);
    let (stale, stale_id) = send(http.post(format!("{url}/sync/push")).json(&json!({
        "project_id": project,
        "project_name": "logged",
        "artifacts": {"intent_md": format!("{secret_text}mine\n")},
        "base": {"intent_md": content_hash("# an older intent\n")},
    })))
    .await;
    assert_eq!(stale, 409);
    // Refused before any handler runs: the body, the route, the token.
    let (broken, broken_id) = send(
        http.post(format!("{url}/sync/push"))
            .header("content-type", "application/json")
            .body("{\"project_name\": "),
    )
    .await;
    assert_eq!(broken, 400);
    // A text where a map belongs: the answer quotes it back, the log must not.
    let (mistyped, mistyped_id) = send(
        http.post(format!("{url}/sync/push"))
            .json(&json!({"project_name": "logged", "artifacts": secret_text})),
    )
    .await;
    assert_eq!(mistyped, 400);
    let (large, large_id) = send(
        http.post(format!("{url}/sync/push"))
            .header("content-type", "application/json")
            .body(vec![b' '; 100_000]),
    )
    .await;
    assert_eq!(large, 413);
    let (nowhere, nowhere_id) = send(http.get(format!("{url}/sync/nothing"))).await;
    assert_eq!(nowhere, 404);
    // Refused by the MCP server inside the gateway.
    let (unmcp, unmcp_id) = send(http.get(format!("{url}/mcp"))).await;
    assert_eq!(unmcp, 406);
    // Headers hyper refuses to read, before the gateway sees a request.
    let mut crowded = http.get(format!("{url}/sync/health"));
    for i in 0..120 {
        crowded = crowded.header(format!("x-header-{i}"), "y");
    }
    let (unread, unread_id) = send(crowded).await;
    assert_eq!(unread, 431);
    // Counted, though it has no route.
    let metrics = common::text(http.get(format!("{url}/metrics"))).await;
    assert!(
        metrics.contains("idse_http_requests_total{route=\"unreadable\",status=\"431\"} 1\n"),
        "{metrics}"
    );
    // A token made while the gateway runs closes its open mode; a wrong one is refused.
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_idse-gateway"))
        .args(["token", "create", "--name", "lead", "--database"])
        .arg(&db)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(created.status.success());
    let made = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    // The gateway looks for a new token at most every few hundred milliseconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (unknown, unknown_id) = loop {
        let (code, id) = send(http.get(format!("{url}/sync/projects")).bearer_auth(&token)).await;
        if code != 200 || std::time::Instant::now() > deadline {
            break (code, id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(unknown, 401);
    child.kill().await.unwrap();

    let text = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    let log: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        log.iter()
            .any(|l| l["fields"]["message"] == "push accepted"),
        "{text}"
    );
    // Each refused request has exactly one line saying so, with its status and code.
    for (id, status, code) in [
        (&missing_id, 404, "not_found"),
        (&stale_id, 409, "conflict"),
        (&broken_id, 400, "invalid_json"),
        (&mistyped_id, 400, "invalid_field"),
        (&large_id, 413, "payload_too_large"),
        (&nowhere_id, 404, "no_route"),
        (&unmcp_id, 406, "not_acceptable"),
        (&unread_id, 431, "headers_too_large"),
        (&unknown_id, 401, "unauthorized"),
    ] {
        let refused: Vec<_> = lines_of(&log, id)
            .into_iter()
            .filter(|l| l["fields"]["message"] == "request refused")
            .collect();
        assert_eq!(refused.len(), 1, "request {id} ({code}): {text}");
        assert_eq!(refused[0]["fields"]["status"], status, "{}", refused[0]);
        assert_eq!(refused[0]["fields"]["error"], code, "{}", refused[0]);
    }
    // A client's mistake or a conflict is not a fault of the gateway's.
    for line in &log {
        assert_eq!(line["level"], "INFO", "{line}");
    }
    assert!(
        !text.contains("not for the log"),
        "a document text is logged"
    );
    assert!(!text.contains(&token), "a token is logged");
    assert!(!text.contains(&made), "a token is logged");
}

/// The text log (the default) written to a file, as `2> FILE`, a container runtime or the
/// journal take it: plain text. Before, every line carried colour escape codes there too.
#[tokio::test]
async fn the_text_log_in_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.log");
    let mut command = common::gateway_command(&dir.path().join("g.sqlite3"), &[]);
    command
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(&path).unwrap());
    let (mut child, url) = common::start(command).await;
    let (code, answer) = common::answer(
        reqwest::Client::new()
            .post(format!("{url}/sync/push"))
            .json(&json!({"project_name": "plain", "artifacts": {"intent_md": "# Intent\n"}})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    child.kill().await.unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(
        log.contains(" INFO ") && log.contains("push accepted"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "{log:?}");
}
