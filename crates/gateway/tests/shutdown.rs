//! A gateway told to stop stops, even with event streams open: they end, and it exits.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use idse_gateway::{AuthMode, CancellationToken, Limits};
use idse_store::testing::{self, Backend};

mod common;
use common::spawn_gateway;

/// Well under the five seconds the gateway waits for requests in flight, so a pass means the
/// streams ended, not that the wait ran out.
const PROMPTLY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_the_event_streams_and_returns() {
    let fixture = testing::open(Backend::Sqlite).await.unwrap();
    let closing = CancellationToken::new();
    let app = idse_gateway::app_with(
        fixture.store.clone(),
        Limits::default(),
        AuthMode::Open,
        None,
        Vec::new(),
        closing.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(idse_gateway::serve(listener, app, closing.clone()));

    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let res = http.get(format!("{url}/sync/events")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        streams.push(res);
    }
    // The streams are open: nothing arrives, and they do not end.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), streams[0].chunk())
            .await
            .is_err(),
        "an event stream ended before the gateway stopped"
    );

    let asked = Instant::now();
    closing.cancel();
    for stream in &mut streams {
        // A clean end of the response, not a reset connection.
        let end = tokio::time::timeout(PROMPTLY, async {
            while stream.chunk().await.unwrap().is_some() {}
        })
        .await;
        assert!(end.is_ok(), "an event stream was still open after the stop");
    }
    let served = tokio::time::timeout(PROMPTLY, server).await;
    assert!(
        matches!(served, Ok(Ok(()))),
        "serve did not return promptly: {served:?}"
    );
    assert!(asked.elapsed() < PROMPTLY);
    // And it no longer accepts.
    assert!(http.get(format!("{url}/sync/health")).send().await.is_err());
    drop(fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_with_a_subscriber_connected() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_gateway(&dir.path().join("gateway.sqlite3")).await;
    let res = reqwest::get(format!("{url}/sync/events")).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut events = res;

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PROMPTLY, child.wait())
        .await
        .expect("the gateway exited after SIGTERM")
        .unwrap();
    assert!(status.success(), "a stop is a clean exit: {status}");
    let rest = tokio::time::timeout(PROMPTLY, async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream ended with the gateway");
}
