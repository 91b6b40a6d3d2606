//! The IDSE sync gateway: the HTTP protocol of DESIGN.md section 2, as thin axum handlers over
//! an `idse_store::Store` (SQLite embedded, Postgres for teams).

mod auth;
mod error;
mod extract;
mod input;
mod mcp;
mod metrics;
mod routes;

use std::sync::Arc;

use axum::http::{HeaderName, Request};
use axum::Router;
use idse_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{new_token, token_hash, AuthMode, Caller, JwtVerifier};
pub use error::ApiError;
pub use input::Limits;
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
    let mcp = mcp::service(state.store.clone(), public_hosts, closing);
    routes::router(state.clone())
        .nest_service("/mcp", mcp)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::identify))
        .route_layer(axum::middleware::from_fn_with_state(state, metrics::record))
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

/// Serves `app` on `listener` until `closing` (the token given to [`app_with`]) is cancelled;
/// then stops accepting, ends the event and MCP streams, and waits up to five seconds for the
/// requests in flight. Those streams never end by themselves: before, one open `/sync/events`
/// subscriber (any desktop app) kept a gateway told to stop running for ever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    closing: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    use std::future::IntoFuture;
    // Small answers go out at once rather than waiting on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let stop = closing.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served,
        () = async {
            closing.cancelled().await;
            tokio::time::sleep(DRAIN).await;
        } => {
            tracing::warn!(after = ?DRAIN, "requests were still in flight when the gateway stopped");
            Ok(())
        }
    }
}
