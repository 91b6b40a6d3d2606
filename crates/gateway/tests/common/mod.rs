//! A real gateway on 127.0.0.1:0 over a fresh store, and a client for it.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use idse_gateway::Limits;
pub use idse_store::testing::Backend;
use idse_store::testing::{self, TestStore};
use idse_store::Store;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct TestGateway {
    pub url: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub fixture: Option<TestStore>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `store` on a free loopback port, in open mode.
pub async fn serve(store: Arc<dyn Store>, limits: Limits) -> TestGateway {
    serve_with(store, limits, idse_gateway::AuthMode::Open).await
}

pub async fn serve_with(
    store: Arc<dyn Store>,
    limits: Limits,
    auth: idse_gateway::AuthMode,
) -> TestGateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = idse_gateway::app(store, limits, auth);
    // The binary's own serving loop (header timeout, TCP_NODELAY), not axum's.
    let server = tokio::spawn(idse_gateway::serve(
        listener,
        app,
        idse_gateway::CancellationToken::new(),
    ));
    TestGateway {
        url: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        fixture: None,
        server,
    }
}

/// A gateway over a fresh store of `backend`; `None` where Postgres is not configured (outside CI).
pub async fn gateway(backend: Backend, limits: Limits) -> Option<TestGateway> {
    let fixture = testing::open(backend).await?;
    let mut gw = serve(fixture.store.clone(), limits).await;
    gw.fixture = Some(fixture);
    Some(gw)
}

impl TestGateway {
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http.get(format!("{}{path}", self.url))).await
    }

    /// A GET with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        answer(
            self.http
                .get(format!("{}{path}", self.url))
                .bearer_auth(token),
        )
        .await
    }
}

/// Sends a request; its status and JSON answer.
pub async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The text of the answer to `req` (e.g. `/metrics`).
pub async fn text(req: reqwest::RequestBuilder) -> String {
    req.send().await.unwrap().text().await.unwrap()
}

/// Declares each listed async fn(&TestGateway) as a test on SQLite and on Postgres.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let gw = super::common::gateway(super::common::Backend::Sqlite, Default::default()).await.unwrap();
                    super::$name(&gw).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(gw) = super::common::gateway(super::common::Backend::Postgres, Default::default()).await else {
                        return;
                    };
                    super::$name(&gw).await;
                }
            )*
        }
    };
}

/// The `idse-gateway` binary on a free loopback port over the SQLite file `db`, with `more`
/// arguments; its stdout piped (the first line names the address), its stderr inherited.
pub fn gateway_command(db: &std::path::Path, more: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idse-gateway"));
    cmd.args(["--addr", "127.0.0.1:0", "--database"])
        .arg(db)
        .args(more)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Runs an `idse-gateway` command (`backup`, `copy`, …) to its end; answers whether it
/// succeeded, and its stdout and stderr.
pub async fn run_command(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_idse-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the `idse-gateway` binary on a free loopback port over the SQLite file `db`; answers
/// the process and its URL, read from its first line.
pub async fn spawn_gateway(db: &std::path::Path) -> (Child, String) {
    let (child, url) = spawn_gateway_with(db, &[]).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}

/// As [`spawn_gateway`], with `more` arguments.
pub async fn spawn_gateway_with(
    db: &std::path::Path,
    more: &[&std::ffi::OsStr],
) -> (Child, String) {
    start(gateway_command(db, more)).await
}

/// Spawns `command` (see [`gateway_command`]); answers the process and its URL, read from its
/// first line.
pub async fn start(mut command: Command) -> (Child, String) {
    let mut child = command.spawn().unwrap();
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
    (child, url)
}

/// Asserts that the gateway at `url` serves every `(project id, text hash)` of `texts` from its
/// history, and lists `projects` projects.
pub async fn assert_holds(url: &str, texts: &[(String, String)], projects: u64) {
    let http = reqwest::Client::new();
    for (project, hash) in texts {
        let res = http
            .get(format!("{url}/sync/history/{project}/{hash}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "text {hash} of {project} is missing");
    }
    let (status, list) = answer(http.get(format!("{url}/sync/projects"))).await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], projects);
}
