//! Postgres goes away and comes back: the gateway answers 503 and `unhealthy` meanwhile, writes
//! nothing, and serves again without a restart. The outage is a real TCP proxy in front of the
//! real test server being shut, so every byte still goes to PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idse_gateway::Limits;
use idse_store::{OpenOptions, PostgresStore};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug)]
struct Proxy {
    accept: JoinHandle<()>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(listen: SocketAddr, target: String) -> (Self, SocketAddr) {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(link);
            }
        });
        (Self { accept, links }, addr)
    }

    /// Closes the listener and every open link, as a database going down would.
    fn stop(self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// `postgres://user:pw@HOST:PORT/db` → (`HOST:PORT`, the URL with `with` in its place).
fn split_host(url: &str, with: &str) -> (String, String) {
    let at = url.rfind('@').unwrap() + 1;
    let slash = at + url[at..].find('/').unwrap();
    (
        url[at..slash].to_owned(),
        format!("{}{with}{}", &url[..at], &url[slash..]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_recovers_without_restart() {
    let Some(url) = idse_store::testing::postgres_database().await else {
        return;
    };
    let (target, _) = split_host(&url, "");
    let (proxy, addr) = Proxy::start("127.0.0.1:0".parse().unwrap(), target.clone()).await;
    let (_, via_proxy) = split_host(&url, &addr.to_string());
    let options = OpenOptions {
        acquire_timeout: Duration::from_secs(1),
        ..OpenOptions::default()
    };
    let store = PostgresStore::connect(&via_proxy, &options).await.unwrap();
    let gw = common::serve(Arc::new(store), Limits::default()).await;

    let (code, first) = gw
        .post(
            "/sync/push",
            &json!({"project_name": "o", "artifacts": {"intent_md": "before"}}),
        )
        .await;
    assert_eq!(code, 200);
    let id = first["project_id"].as_str().unwrap().to_owned();

    proxy.stop();
    let (code, health) = gw.get("/sync/health").await;
    assert_eq!(code, 503);
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["database_connected"], false);
    assert_eq!(health["database"], "postgres");
    for _ in 0..2 {
        let (code, refused) = gw
            .post("/sync/push", &json!({"project_id": id, "project_name": "o", "artifacts": {"intent_md": "during"}}))
            .await;
        assert_eq!(code, 503, "{refused}");
        assert_eq!(refused["error"], "store_unavailable");
        assert!(refused["message"].as_str().unwrap().ends_with('.'));
        assert!(
            !refused.to_string().contains("Connection"),
            "no internal error text: {refused}"
        );
    }
    let (code, _) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(code, 503);

    let (proxy, _) = Proxy::start(addr, target).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = gw.get("/sync/health").await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(code, 200);
    assert_eq!(
        pulled["artifacts"]["intent_md"], "before",
        "nothing was written during the outage"
    );
    let (code, _) = gw
        .post(
            "/sync/push",
            &json!({"project_id": id, "project_name": "o", "artifacts": {"intent_md": "after"}}),
        )
        .await;
    assert_eq!(code, 200);
    proxy.stop();
}
