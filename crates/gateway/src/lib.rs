//! The IDSE sync gateway: the HTTP protocol of DESIGN.md section 2, as thin axum handlers over
//! an `idse_store::Store` (SQLite embedded, Postgres for teams).

mod auth;
mod compression;
mod error;
mod extract;
mod input;
mod mcp;
mod metrics;
mod routes;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod unreadable;

use std::sync::Arc;

use axum::http::{HeaderName, Request};
use axum::Router;
use idse_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{new_token, token_hash, AuthMode, Caller, Grant, JwtVerifier};
pub use error::ApiError;
pub use input::Limits;
pub use tls::{Tls, TlsError, CHECK_EVERY as TLS_CHECK_EVERY};
pub use tokio_util::sync::CancellationToken;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    pub auth: AuthMode,
    /// Closes open mode once a token exists.
    pub gate: Arc<auth::OpenGate>,
    /// Accepts Supabase Auth JWTs besides the gateway's own tokens.
    pub jwt: Option<JwtVerifier>,
    /// Accepted pushes, for `GET /sync/events` subscribers.
    pub events: tokio::sync::broadcast::Sender<idse_protocol::PushEvent>,
    pub metrics: Arc<metrics::Metrics>,
    /// Cancelled when the gateway stops: the streams that never end by themselves end then.
    pub closing: CancellationToken,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether log lines written to stderr get ANSI colours: only on a terminal, and not with
/// `NO_COLOR` set. Into a file, a pipe or the journal they would land as escape codes.
pub fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The gateway's routes with authentication, request ids, tracing, body limits and panic
/// recovery.
pub fn app(store: Arc<dyn Store>, limits: Limits, auth: AuthMode) -> Router {
    app_with_jwt(store, limits, auth, None)
}

/// As [`app`], also accepting Supabase Auth JWTs (which implies that requests need a token).
pub fn app_with_jwt(
    store: Arc<dyn Store>,
    limits: Limits,
    auth: AuthMode,
    jwt: Option<JwtVerifier>,
) -> Router {
    app_with(
        store,
        limits,
        auth,
        jwt,
        Vec::new(),
        CancellationToken::new(),
    )
}

/// The whole gateway: `public_hosts` are the names it is reached by besides loopback, which
/// `/mcp` accepts in the `Host` header (its protection against DNS rebinding); cancelling
/// `closing` ends the event and MCP streams (see [`serve`]).
pub fn app_with(
    store: Arc<dyn Store>,
    limits: Limits,
    auth: AuthMode,
    jwt: Option<JwtVerifier>,
    public_hosts: Vec<String>,
    closing: CancellationToken,
) -> Router {
    let (events, _) = tokio::sync::broadcast::channel(256);
    let auth = if jwt.is_some() {
        AuthMode::Tokens
    } else {
        auth
    };
    let state = AppState {
        store,
        limits,
        auth,
        gate: Arc::default(),
        jwt,
        events,
        metrics: Arc::default(),
        closing: closing.clone(),
    };
    let mcp = mcp::service(
        state.store.clone(),
        public_hosts,
        closing,
        state.limits.max_body_bytes,
    );
    routes::router(state.clone())
        .nest_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn(mcp::in_gateway_words))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    extract::whole_body,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::streams_end_with_access,
                ))
                .service(mcp),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::identify))
        .route_layer(axum::middleware::from_fn_with_state(state, metrics::record))
        .layer(compression::answers())
        .layer(axum::middleware::map_response(compression::advertise))
        .layer(axum::middleware::from_fn(error::log_refusals))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// How long a stopping gateway waits for the requests in flight.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the gateway waits on a client that has gone quiet before it drops the connection.
/// Without these, a client that stalls (or a hostile one) holds a socket, a file descriptor and
/// a task for ever: axum's own `serve` kept a connection that sent half a request line open past
/// a minute, and one that sent half a body, or stopped reading its answer, for good.
#[derive(Debug, Clone, Copy)]
struct Patience {
    /// For a request's headers; also how long a kept-alive connection may sit idle.
    headers: std::time::Duration,
    /// Between two pieces of a request's body: a body that stops arriving is answered 408.
    body: std::time::Duration,
    /// For a client to take more of an answer while the socket's buffer is full.
    reading: std::time::Duration,
}

const PATIENCE: Patience = Patience {
    headers: std::time::Duration::from_secs(30),
    body: std::time::Duration::from_secs(30),
    reading: std::time::Duration::from_secs(30),
};

/// Serves `app` on `listener` (HTTP/1.1) until `closing` (the token given to [`app_with`]) is
/// cancelled; then stops accepting, ends the event and MCP streams, and waits up to five
/// seconds for the requests in flight. Those streams never end by themselves: before, one open
/// `/sync/events` subscriber (any desktop app) kept a gateway told to stop running for ever.
/// A client that goes quiet for 30 s while sending its request, or that stops reading its
/// answer for 30 s, is dropped.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, closing: CancellationToken) {
    serve_with(listener, app, closing, PATIENCE, None).await;
}

/// As [`serve`], over TLS (HTTPS) with `tls`'s certificate. A client that does not finish its
/// handshake within the patience for headers is dropped.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    closing: CancellationToken,
    tls: Tls,
) {
    // `/metrics` reports when the certificate ends.
    let app = app.layer(axum::Extension(tls.clone()));
    serve_with(listener, app, closing, PATIENCE, Some(tls)).await;
}

async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    closing: CancellationToken,
    patience: Patience,
    tls: Option<Tls>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower_http::timeout::RequestBodyTimeout;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(patience.headers);
    let connections = GracefulShutdown::new();
    if let Some(tls) = &tls {
        tokio::spawn(tls::watch(tls.clone(), closing.clone()));
    }
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) => {
                    // That one client went away before it was accepted.
                    tracing::debug!(error = %e, "a connection closed before it was accepted");
                    continue;
                }
                Err(e) => {
                    // Out of file descriptors, say: wait for some to close rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = closing.cancelled() => break,
        };
        // Small answers go out at once rather than waiting on Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // The timer starts when a write finds the socket's buffer full, and restarts with every
        // write that goes through: a slow reader is served, one that stopped is dropped.
        let mut tcp = tokio_io_timeout::TimeoutStream::new(tcp);
        tcp.set_write_timeout(Some(patience.reading));
        let service = TowerToHyperService::new(RequestBodyTimeout::new(app.clone(), patience.body));
        let (http, watcher) = (http.clone(), connections.watcher());
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let io = TokioIo::new(unreadable::Unreadable::new(Box::pin(tcp)));
                    watcher.watch(http.serve_connection(io, service)).await
                }
                Some(tls) => {
                    let Some(stream) = tls::open(&tls, tcp, &http, patience.headers).await else {
                        return;
                    };
                    let io = TokioIo::new(unreadable::Unreadable::new(stream));
                    watcher.watch(http.serve_connection(io, service)).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!(after = ?DRAIN, "requests were still in flight when the gateway stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// `app` served by `serve_with` on a free loopback port.
    struct Served {
        addr: std::net::SocketAddr,
        closing: CancellationToken,
        server: tokio::task::JoinHandle<()>,
    }

    impl Served {
        async fn start(app: Router, patience: Patience) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let closing = CancellationToken::new();
            let server = tokio::spawn(serve_with(listener, app, closing.clone(), patience, None));
            Self {
                addr,
                closing,
                server,
            }
        }

        /// A connection that has sent `bytes`.
        async fn send(&self, bytes: &[u8]) -> TcpStream {
            let mut stream = TcpStream::connect(self.addr).await.unwrap();
            stream.write_all(bytes).await.unwrap();
            stream
        }

        /// Stops the gateway, which must return promptly.
        async fn stop(self) {
            self.closing.cancel();
            tokio::time::timeout(Duration::from_secs(3), self.server)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// All that arrives on `stream` until the gateway closes it; fails if that takes over 5 s.
    async fn until_closed(stream: &mut TcpStream, what: &str) -> String {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{what}: the connection was still open after 5 s"))
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }

    fn post(path: &str, length: usize, body: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {length}\r\n\r\n{body}"
        )
        .into_bytes()
    }

    /// A client that opens a connection to the HTTPS port and never says hello is dropped
    /// after the header timeout, not kept for ever.
    #[tokio::test]
    async fn a_client_that_never_starts_its_tls_handshake_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let files = testing::certificate_files(dir.path());
        let tls = Tls::from_pem_files(&files.cert, &files.key).unwrap();

        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closing = CancellationToken::new();
        let patience = Patience {
            headers: Duration::from_millis(300),
            ..PATIENCE
        };
        let server = tokio::spawn(serve_with(
            listener,
            app,
            closing.clone(),
            patience,
            Some(tls),
        ));
        let began = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let rest = until_closed(&mut silent, "a silent TLS client").await;
        assert!(rest.is_empty(), "{rest}");
        assert!(
            began.elapsed() >= Duration::from_millis(250),
            "{:?}",
            began.elapsed()
        );

        // One that starts a handshake record late and stalls gets the same patience in all,
        // not a second one for the handshake (that would close it after ~580 ms).
        let began = Instant::now();
        let mut late = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(280)).await;
        late.write_all(&[0x16]).await.unwrap();
        let rest = until_closed(&mut late, "a TLS client that stalls in its hello").await;
        assert!(rest.is_empty(), "{rest}");
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "{:?}",
            began.elapsed()
        );

        closing.cancel();
        tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .unwrap()
            .unwrap();
    }

    /// A client that sends half a request is dropped after the header timeout, while one that
    /// sends whole requests is served by the same gateway meanwhile.
    #[tokio::test]
    async fn a_client_that_stalls_in_its_headers_is_dropped() {
        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let patience = Patience {
            headers: Duration::from_millis(300),
            ..PATIENCE
        };
        let served = Served::start(app, patience).await;

        let mut stalled = served
            .send(b"GET /sync/health HTTP/1.1\r\nHost: x\r\n")
            .await;
        let began = Instant::now();
        let mut whole = served
            .send(b"GET /sync/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let answer = until_closed(&mut whole, "a whole request").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // The stalled one gets its connection closed after the timeout, and no answer but
        // perhaps a 408.
        let rest = until_closed(&mut stalled, "half a request").await;
        let waited = began.elapsed();
        assert!(
            !rest.contains(" 200 "),
            "a half request was answered: {rest}"
        );
        assert!(
            waited >= Duration::from_millis(250),
            "closed too early: {waited:?}"
        );
        served.stop().await;
    }

    /// A body that stops arriving is answered 408 once the body timeout passes, on `/mcp` too,
    /// with nothing written; a whole push on another connection is served meanwhile.
    #[tokio::test]
    async fn a_body_that_stops_arriving_is_answered_408() {
        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let patience = Patience {
            body: Duration::from_millis(300),
            ..PATIENCE
        };
        let served = Served::start(app, patience).await;

        let half = r#"{"project_name":"stalled","artifacts":{"intent_md":"#;
        let mut stalled = served.send(&post("/sync/push", 200, half)).await;
        // rmcp itself would answer a plain-text 500.
        let mut stalled_mcp = served.send(&post("/mcp", 200, r#"{"jsonrpc":"#)).await;
        let began = Instant::now();
        let whole = r#"{"project_name":"whole","artifacts":{"intent_md":"Intent"}}"#;
        let mut other = served.send(&post("/sync/push", whole.len(), whole)).await;
        let mut head = vec![0; 4096];
        let n = other.read(&mut head).await.unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");

        for (stream, what) in [(&mut stalled, "/sync/push"), (&mut stalled_mcp, "/mcp")] {
            let rest = until_closed(stream, what).await;
            assert!(rest.starts_with("HTTP/1.1 408"), "{what}: {rest}");
            assert!(
                rest.contains(r#""error":"request_timeout""#),
                "{what}: {rest}"
            );
        }
        let waited = began.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "answered too early: {waited:?}"
        );
        let names: Vec<String> = fixture
            .store
            .projects()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["whole"]);
        served.stop().await;
    }

    /// A client that stops reading a large answer is dropped once the socket has been full for
    /// the reading timeout, rather than holding the connection for ever.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        const SIZE: usize = 64 << 20;
        let app = Router::new().route("/big", axum::routing::get(|| async { vec![b'x'; SIZE] }));
        let patience = Patience {
            reading: Duration::from_millis(300),
            ..PATIENCE
        };
        let served = Served::start(app, patience).await;

        let mut reader = served.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // Not reading, for well past the timeout: the buffers fill and the gateway waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // What was buffered still arrives, then the connection ends, short of the whole answer
        // (a kept connection would instead deliver all of it and then stay open).
        let mut got = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            let mut chunk = vec![0; 1 << 16];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the connection was still open after 5 s");
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got[..got.len().min(100)])
        );
        assert!(
            got.len() < SIZE,
            "all {} bytes arrived: the connection was never dropped",
            got.len()
        );
        served.stop().await;
    }

    /// A client that waits for a go-ahead (`Expect: 100-continue`) before sending a body
    /// declared over the limit is refused at once, before it sends any of it.
    #[tokio::test]
    async fn a_body_declared_too_large_is_refused_before_it_is_sent() {
        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let served = Served::start(app, PATIENCE).await;

        let mut request = post("/sync/push", 1_000_000_000, "");
        let blank = request.len() - 2;
        request.splice(blank..blank, b"Expect: 100-continue\r\n".iter().copied());
        let mut client = served.send(&request).await;
        let mut head = vec![0; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut head))
            .await
            .expect("no answer within 5 s: the gateway waited for the body")
            .unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "not a 413 (a 100 Continue asks for the body): {head}"
        );
        assert!(head.contains(r#""error":"payload_too_large""#), "{head}");
        served.stop().await;
    }

    /// The answer on `stream` to requests hyper could not read: its status line and the
    /// gateway's JSON error, after whatever came before it on the connection.
    async fn refusal_on(stream: &mut TcpStream, what: &str) -> (String, String, serde_json::Value) {
        let all = until_closed(stream, what).await;
        let at = all
            .rfind("HTTP/1.1 ")
            .unwrap_or_else(|| panic!("{what}: no answer: {all}"));
        let (head, body) = all[at..]
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: {all}"));
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{what}: {head}"
        );
        let id = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("x-request-id: "));
        assert!(
            id.is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
            "{what}: {head}"
        );
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        (
            all[..at].to_owned(),
            head.lines().next().unwrap_or("").to_owned(),
            body,
        )
    }

    /// Requests hyper cannot read (it answers them itself, before any route) get the gateway's
    /// JSON error with a request id, where they got an empty body before; answers before them
    /// on the same connection are untouched, and the gateway serves on.
    #[tokio::test]
    async fn requests_it_cannot_read_are_answered_in_the_gateways_words() {
        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let served = Served::start(app, PATIENCE).await;
        let many: String = (0..120).map(|i| format!("X-Header-{i}: y\r\n")).collect();
        let huge = format!("Cookie: {}\r\n", "a".repeat(500_000));
        let health = "GET /sync/health HTTP/1.1\r\nHost: x\r\n";
        for (request, status, code) in [
            (format!("{health}{many}\r\n"), "431", "headers_too_large"),
            (format!("{health}{huge}\r\n"), "431", "headers_too_large"),
            (
                "GET /sync/he alth HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
                "400",
                "malformed_request",
            ),
            (
                format!("{health}Bad Header: y\r\n\r\n"),
                "400",
                "malformed_request",
            ),
            ("HELLO\r\n\r\n".to_owned(), "400", "malformed_request"),
        ] {
            let mut stream = served.send(request.as_bytes()).await;
            let (before, line, body) = refusal_on(&mut stream, code).await;
            assert!(before.is_empty(), "{before}");
            assert!(line.starts_with(&format!("HTTP/1.1 {status} ")), "{line}");
            assert_eq!(body["error"], code, "{body}");
            assert_eq!(body["success"], false, "{body}");
            assert!(
                body["detail"].as_str().is_some_and(|d| d.ends_with('.')),
                "{body}"
            );
        }

        // A good request, then an unreadable one, on one connection.
        let mut stream = served
            .send(format!("{health}\r\n{health}{many}\r\n").as_bytes())
            .await;
        let (before, line, body) = refusal_on(&mut stream, "after a good request").await;
        assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
        assert!(before.ends_with('}'), "the first answer is whole: {before}");
        assert!(line.starts_with("HTTP/1.1 431 "), "{line}");
        assert_eq!(body["error"], "headers_too_large");

        let mut fine = served
            .send(format!("{health}Connection: close\r\n\r\n").as_bytes())
            .await;
        let answer = until_closed(&mut fine, "a good request").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        served.stop().await;
    }
}
