//! Bearer tokens on a real gateway, on both stores: 401 without or with a bad or revoked token,
//! 403 for a read-only token that pushes, authors in the history, and the open mode that older
//! clients (no auth header) use on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

use chrono::Utc;
use common::Backend;
use idse_gateway::{new_token, token_hash, AuthMode, Limits};
use serde_json::json;

async fn token_checks(backend: Backend) {
    let Some(fixture) = idse_store::testing::open(backend).await else {
        return;
    };
    let (writer, reader) = (new_token(), new_token());
    let store = fixture.store.clone();
    store
        .create_token("ci", &token_hash(&writer), false, Utc::now())
        .await
        .unwrap();
    store
        .create_token("dashboard", &token_hash(&reader), true, Utc::now())
        .await
        .unwrap();
    let gw = common::serve_with(store.clone(), Limits::default(), AuthMode::Tokens).await;
    let push = json!({"project_name": "secure", "artifacts": {"spec_md": "s"}, "agent": "codex"});
    let call = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let req = gw.http.request(method, format!("{}{path}", gw.url));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };

    let res = call(reqwest::Method::GET, "/sync/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "health needs no token");
    for token in [None, Some("idse_not-a-real-token")] {
        let res = call(reqwest::Method::GET, "/sync/projects", token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        let res = call(reqwest::Method::POST, "/sync/push", token)
            .json(&push)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    assert!(
        store.projects().await.unwrap().is_empty(),
        "nothing was written without a token"
    );

    let res = call(reqwest::Method::POST, "/sync/push", Some(&reader))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(body["message"].as_str().unwrap().contains("dashboard"));

    let res = call(reqwest::Method::POST, "/sync/push", Some(&writer))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res.json::<serde_json::Value>().await.unwrap()["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(reqwest::Method::POST, "/sync/pull", Some(&reader))
        .json(&json!({"project_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a read-only token pulls");
    let (_, history) = gw.get_as(&format!("/sync/history/{id}"), &reader).await;
    assert_eq!(history["revisions"][0]["author"], "ci");
    assert_eq!(history["revisions"][0]["agent"], "codex");
    let (_, status) = gw.get_as(&format!("/sync/status/{id}"), &reader).await;
    assert_eq!(
        (
            status["last_author"].as_str(),
            status["last_agent"].as_str()
        ),
        (Some("ci"), Some("codex"))
    );
    let (_, list) = gw.get_as("/sync/projects", &reader).await;
    assert_eq!(list["projects"][0]["last_author"], "ci");

    store.revoke_token("ci", Utc::now()).await.unwrap();
    let res = call(reqwest::Method::POST, "/sync/push", Some(&writer))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a revoked token is refused at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_sqlite() {
    token_checks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_postgres() {
    token_checks(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_serves_clients_without_auth_headers() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve_with(fixture.store.clone(), Limits::default(), AuthMode::Open).await;
    // As the Python client pushes: no Authorization header at all.
    let (code, body) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "old", "artifacts": {"intent_md": "x"}}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_gateway_closes_once_a_token_is_created_without_a_restart() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve_with(fixture.store.clone(), Limits::default(), AuthMode::Open).await;
    let push = json!({"project_name": "team", "artifacts": {"intent_md": "x"}});
    assert_eq!(gw.post("/sync/push", &push).await.0, 200);
    // The first token is made on the same database while the gateway runs, as the CLI does.
    let token = new_token();
    fixture
        .store
        .create_token("lead", &token_hash(&token), false, Utc::now())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut code = 200;
    while std::time::Instant::now() < deadline {
        code = gw.post("/sync/push", &push).await.0;
        if code != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        code, 401,
        "an anonymous push must be refused once a token exists"
    );
    assert_eq!(gw.get("/sync/projects").await.0, 401);
    assert_eq!(gw.get_as("/sync/projects", &token).await.0, 200);
    assert_eq!(gw.get("/sync/health").await.0, 200);
}

#[tokio::test]
async fn the_binary_manages_tokens_and_refuses_an_open_network_listener() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.sqlite3");
    let bin = env!("CARGO_BIN_EXE_idse-gateway");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .arg("--database")
            .arg(&db)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let refused = run(&["--addr", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("without tokens") && said.contains("token create"),
        "{said}"
    );

    let created = run(&["token", "create", "--name", "ci"]);
    assert!(created.status.success());
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("idse_") && token.len() == 69, "{token}");
    let listed = String::from_utf8(run(&["token", "list"]).stdout).unwrap();
    assert!(
        listed.contains("ci") && listed.contains("live") && !listed.contains(&token),
        "{listed}"
    );
    assert!(run(&["token", "revoke", "ci"]).status.success());
    assert!(!run(&["token", "revoke", "ci"]).status.success());
    let listed = String::from_utf8(run(&["token", "list"]).stdout).unwrap();
    assert!(listed.contains("revoked"), "{listed}");
}

const JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

/// A gateway that takes JWTs signed with `JWT_SECRET`, served by the binary's own loop (not
/// axum's): its URL and its task.
async fn jwt_gateway(
    store: std::sync::Arc<dyn idse_store::Store>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = idse_gateway::app_with_jwt(
        store,
        Limits::default(),
        AuthMode::Open,
        Some(idse_gateway::JwtVerifier::hs256(JWT_SECRET)),
    );
    let server = tokio::spawn(idse_gateway::serve(
        listener,
        app,
        idse_gateway::CancellationToken::new(),
    ));
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_jwts_are_checked_for_signature_and_expiry() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let fixture = idse_store::testing::sqlite().await;
    let secret = JWT_SECRET;
    let (url, server) = jwt_gateway(fixture.store.clone()).await;
    let now = Utc::now().timestamp();
    let jwt = |sub: &str, role: &str, exp: i64, key: &str| {
        encode(
            &Header::default(),
            &json!({"sub": sub, "role": role, "aud": "authenticated", "exp": exp}),
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let http = reqwest::Client::new();
    let push = |token: String| {
        http.post(format!("{url}/sync/push"))
            .bearer_auth(token)
            .json(&json!({"project_name": "jwt", "artifacts": {"spec_md": "s"}}))
            .send()
    };
    let ok = push(jwt("user-123", "authenticated", now + 600, secret))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Some issuers write `exp` with a fraction; it is still a valid expiry.
    let fractional = encode(
        &Header::default(),
        &json!({"sub": "user-f", "role": "authenticated", "exp": now as f64 + 600.5}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let listed = http
        .get(format!("{url}/sync/projects"))
        .bearer_auth(fractional)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let id = ok.json::<serde_json::Value>().await.unwrap()["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status: serde_json::Value = http
        .get(format!("{url}/sync/status/{id}"))
        .bearer_auth(jwt("user-123", "authenticated", now + 600, secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["last_author"], "user-123",
        "the JWT subject is the author"
    );

    let expired = push(jwt("user-123", "authenticated", now - 3600, secret))
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let body: serde_json::Value = expired.json().await.unwrap();
    assert_eq!(body["message"], "The token has expired.");
    let forged = push(jwt(
        "user-123",
        "authenticated",
        now + 600,
        "another-secret-of-32-characters-or-more",
    ))
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);
    let anon = push(jwt("visitor", "anon", now + 600, secret))
        .await
        .unwrap();
    assert_eq!(anon.status(), 403, "only authenticated users write");
    let none = http
        .get(format!("{url}/sync/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401, "a JWT secret means tokens are required");
    server.abort();
}

/// Reads an event stream until the gateway ends it (at most `within`); the text it sent.
async fn until_the_stream_ends(mut res: reqwest::Response, within: std::time::Duration) -> String {
    let mut text = String::new();
    tokio::time::timeout(within, async {
        while let Some(chunk) = res.chunk().await.unwrap() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream is still open after {within:?}: {text}"));
    text
}

async fn events_with(gw: &common::TestGateway, token: Option<&str>) -> reqwest::Response {
    let req = gw.http.get(format!("{}/sync/events", gw.url));
    let res = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_ends_when_its_token_is_revoked() {
    let fixture = idse_store::testing::sqlite().await;
    let store = fixture.store.clone();
    let (board, ci) = (new_token(), new_token());
    for (name, token) in [("board", &board), ("ci", &ci)] {
        store
            .create_token(name, &token_hash(token), false, Utc::now())
            .await
            .unwrap();
    }
    let gw = common::serve_with(store.clone(), Limits::default(), AuthMode::Tokens).await;
    let push = |n: u32| {
        gw.http
            .post(format!("{}/sync/push", gw.url))
            .bearer_auth(&ci)
            .json(&json!({"project_name": "watched", "artifacts": {"spec_md": format!("v{n}")}}))
            .send()
    };
    let revoked = events_with(&gw, Some(&board)).await;
    let mut kept = events_with(&gw, Some(&ci)).await;
    assert_eq!(push(1).await.unwrap().status(), 200);
    assert!(store.revoke_token("board", Utc::now()).await.unwrap());
    let said = until_the_stream_ends(revoked, std::time::Duration::from_secs(8)).await;
    assert!(said.contains("event: push"), "it was live before: {said}");
    let last = said.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.contains("event: unauthorized") && last.contains("The token was revoked"),
        "{said}"
    );
    // The other token's stream goes on, and hears the next push.
    assert_eq!(push(2).await.unwrap().status(), 200);
    let mut heard = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while !heard.contains("\"revision\":2") {
            let chunk = kept.chunk().await.unwrap().expect("still open");
            heard.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the other stream heard nothing: {heard}"));
}

/// An MCP session's own event stream (its `GET /mcp`) ends too when its token is revoked, with
/// the reason as an SSE comment; the same token then gets 401, and another session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_stream_ends_when_its_token_is_revoked() {
    let fixture = idse_store::testing::sqlite().await;
    let store = fixture.store.clone();
    let (agent, other) = (new_token(), new_token());
    for (name, token) in [("agent", &agent), ("other", &other)] {
        store
            .create_token(name, &token_hash(token), false, Utc::now())
            .await
            .unwrap();
    }
    let gw = common::serve_with(store.clone(), Limits::default(), AuthMode::Tokens).await;
    let url = format!("{}/mcp", gw.url);
    let open_session = |token: String| {
        let (http, url) = (gw.http.clone(), url.clone());
        async move {
            let post = |body: serde_json::Value, session: Option<String>| {
                let mut req = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("accept", "application/json, text/event-stream")
                    .json(&body);
                if let Some(id) = session {
                    req = req.header("mcp-session-id", id);
                }
                req.send()
            };
            let init = post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "watcher", "version": "1"}}}),
                None,
            )
            .await
            .unwrap();
            assert_eq!(init.status(), 200);
            let session = init.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let ready = post(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                Some(session.clone()),
            )
            .await
            .unwrap();
            assert!(ready.status().is_success(), "{}", ready.status());
            let stream = http
                .get(&url)
                .bearer_auth(&token)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", &session)
                .send()
                .await
                .unwrap();
            assert_eq!(stream.status(), 200);
            stream
        }
    };
    let revoked = open_session(agent.clone()).await;
    let mut kept = open_session(other.clone()).await;
    assert!(store.revoke_token("agent", Utc::now()).await.unwrap());
    let said = until_the_stream_ends(revoked, std::time::Duration::from_secs(8)).await;
    assert!(said.contains(": The token was revoked"), "{said}");
    let again = gw
        .http
        .get(&url)
        .bearer_auth(&agent)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    // The other session's stream, whose own check came a moment after, stays open.
    let heard = tokio::time::timeout(std::time::Duration::from_millis(600), async {
        let mut heard = String::new();
        while let Some(chunk) = kept.chunk().await.unwrap() {
            heard.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        heard
    })
    .await;
    assert!(heard.is_err(), "the other stream ended: {heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_ends_when_a_token_is_created_or_its_jwt_expires() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    // Open mode: the stream ends once the gateway needs tokens.
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let open = events_with(&gw, None).await;
    fixture
        .store
        .create_token("first", &token_hash(&new_token()), false, Utc::now())
        .await
        .unwrap();
    let said = until_the_stream_ends(open, std::time::Duration::from_secs(4)).await;
    assert!(said.contains("now needs a token"), "{said}");

    // A JWT: the stream ends at its expiry (past the 5 s leeway that let it connect).
    let (url, server) = jwt_gateway(fixture.store.clone()).await;
    let jwt = |exp: i64| {
        encode(
            &Header::default(),
            &json!({"sub": "user-1", "role": "authenticated", "exp": exp}),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let stream = |token: String| {
        reqwest::Client::new()
            .get(format!("{url}/sync/events"))
            .bearer_auth(token)
            .send()
    };
    let now = Utc::now().timestamp();
    let expiring = stream(jwt(now - 3)).await.unwrap();
    let fresh = stream(jwt(now + 600)).await.unwrap();
    assert_eq!(
        (expiring.status().as_u16(), fresh.status().as_u16()),
        (200, 200)
    );
    let said = until_the_stream_ends(expiring, std::time::Duration::from_secs(5)).await;
    assert!(said.contains("The token has expired"), "{said}");
    // A token with time left is not cut.
    let cut = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        until_the_stream_ends(fresh, std::time::Duration::from_secs(2)),
    )
    .await;
    assert!(cut.is_err(), "a fresh token's stream ended: {cut:?}");
    server.abort();
}
