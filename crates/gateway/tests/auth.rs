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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_jwts_are_checked_for_signature_and_expiry() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let fixture = idse_store::testing::sqlite().await;
    let secret = "super-secret-jwt-token-with-at-least-32-characters";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = idse_gateway::app_with_jwt(
        fixture.store.clone(),
        Limits::default(),
        AuthMode::Open,
        Some(idse_gateway::JwtVerifier::hs256(secret)),
    );
    // The binary's own serving loop, not axum's.
    let server = tokio::spawn(idse_gateway::serve(
        listener,
        app,
        idse_gateway::CancellationToken::new(),
    ));
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
