//! Who may call the gateway: bearer tokens (only their SHA-256 is stored), read-only tokens that
//! cannot push, and the open mode of an embedded gateway on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idse_protocol::content_hash;
use idse_store::Store;

use crate::{ApiError, AppState};

/// Whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No tokens: anyone who can connect may read and write. Only on loopback.
    Open,
    /// Every route but `/sync/health` needs `Authorization: Bearer <token>`.
    Tokens,
}

impl AuthMode {
    /// Tokens when there are any; open only on a loopback address. Serving the network without
    /// tokens is refused, with the reason.
    pub fn for_listener(addr: SocketAddr, live_tokens: usize) -> Result<Self, String> {
        if live_tokens > 0 {
            Ok(AuthMode::Tokens)
        } else if addr.ip().is_loopback() {
            Ok(AuthMode::Open)
        } else {
            Err(format!(
                "refusing to listen on {addr} without tokens: anyone who can reach it could read and overwrite every project. \
                 Create one with `idse-gateway token create --name NAME`, or listen on 127.0.0.1"
            ))
        }
    }
}

/// An open gateway closes once a token exists: creating the first token while it runs (with
/// `idse-gateway token create` on the same database) must not leave it open until a restart.
#[derive(Debug, Default)]
pub struct OpenGate {
    closed: AtomicBool,
    checked: Mutex<Option<Instant>>,
}

/// How often an open gateway asks its store whether a token was created.
const GATE_RECHECK: Duration = Duration::from_secs(1);

impl OpenGate {
    async fn is_closed(&self, store: &dyn Store) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return true;
        }
        {
            let mut last = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < GATE_RECHECK) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match store.tokens().await {
            Ok(tokens) if tokens.iter().any(|t| t.revoked_at.is_none()) => {
                tracing::info!("a token now exists: requests need one from here on");
                self.closed.store(true, Ordering::Relaxed);
                true
            }
            // A store that cannot answer leaves the mode as it was; the request itself will
            // meet the same store and fail with 503.
            _ => false,
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` in open mode.
    pub name: Option<String>,
    pub read_only: bool,
    /// What the access rests on, checked again while a stream stays open.
    pub grant: Grant,
}

/// What a caller's access rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Open mode: ends once a token exists.
    Open,
    /// A gateway token, by its hash: ends when it is revoked.
    Token(String),
    /// A JWT: ends when it expires (Unix seconds), if it says when.
    Jwt(Option<u64>),
}

/// How often an open stream asks the store whether its token is still good.
const ACCESS_RECHECK: Duration = Duration::from_secs(5);

/// Resolves, with the sentence to tell the client, once the caller's access ends while a stream
/// stays open: its token revoked, its JWT expired, or (open mode) a token created. A store that
/// cannot answer ends nothing; the stream's next requests meet it anyway.
pub(crate) async fn access_ends(state: AppState, grant: Grant) -> &'static str {
    match grant {
        Grant::Jwt(None) => std::future::pending().await,
        Grant::Jwt(Some(exp)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let left = Duration::from_secs(exp + LEEWAY_SECS).saturating_sub(now);
            tokio::time::sleep(left).await;
            "The token has expired; reconnect with a fresh one."
        }
        Grant::Open => loop {
            tokio::time::sleep(GATE_RECHECK).await;
            if state.gate.is_closed(state.store.as_ref()).await {
                return "This gateway now needs a token; reconnect with one.";
            }
        },
        Grant::Token(hash) => loop {
            tokio::time::sleep(ACCESS_RECHECK).await;
            if let Ok(None) = state.store.token_by_hash(&hash).await {
                return "The token was revoked; reconnect with another one.";
            }
        },
    }
}

impl Caller {
    /// Read-only tokens can pull, list and read status, but not push.
    pub fn may_write(&self) -> Result<(), ApiError> {
        if self.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "The token `{}` is read-only, so it cannot push.",
                    self.name.as_deref().unwrap_or("")
                ),
                "Push with a token created without --read-only.",
            ));
        }
        Ok(())
    }
}

/// Verifies Supabase Auth JWTs (HS256, signed with the project's JWT secret): signature and
/// expiry. The subject becomes the author; role `authenticated` (or `service_role`) may write,
/// any other role only read.
#[derive(Clone)]
pub struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("JwtVerifier")
    }
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    /// A number, which some issuers write with a fraction; jsonwebtoken has checked it.
    #[serde(default)]
    exp: Option<f64>,
}

/// Seconds a JWT is still taken past its expiry (clocks differ).
const LEEWAY_SECS: u64 = 5;

/// Why a JWT was refused, as the sentence the caller gets.
fn jwt_refusal(e: &jsonwebtoken::errors::Error) -> &'static str {
    match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => "The token has expired.",
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            "The token's signature does not match this gateway's JWT secret."
        }
        _ => "The token is not a valid JWT for this gateway.",
    }
}

impl JwtVerifier {
    pub fn hs256(secret: &str) -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        // Supabase sets `aud: authenticated`; the signature already ties the token to us.
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        Self {
            key: jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    fn caller(&self, token: &str) -> Result<Caller, &'static str> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| jwt_refusal(&e))?;
        let writer = matches!(
            data.claims.role.as_deref(),
            None | Some("authenticated") | Some("service_role")
        );
        Ok(Caller {
            name: Some(data.claims.sub),
            read_only: !writer,
            // Saturating: a checked expiry is positive and finite.
            grant: Grant::Jwt(data.claims.exp.map(|exp| exp as u64)),
        })
    }
}

/// A new secret: `idse_` and 256 random bits in hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("idse_{hex}")
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    content_hash(token)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
        "Send `Authorization: Bearer <token>` with a token from `idse-gateway token create` (IDSE_TOKEN for the idse CLI).",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Identifies the caller of every request; the token itself is never logged.
pub(crate) async fn identify(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let open = req.uri().path() == "/sync/health"
        || (state.auth == AuthMode::Open && !state.gate.is_closed(state.store.as_ref()).await);
    let caller = if open {
        Caller {
            name: None,
            read_only: false,
            grant: Grant::Open,
        }
    } else {
        let Some(token) = bearer(req.headers()) else {
            return unauthorized("This gateway needs a token, and the request has none.");
        };
        let looks_like_jwt = token.matches('.').count() == 2;
        if let (Some(jwt), true) = (&state.jwt, looks_like_jwt) {
            match jwt.caller(token) {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    return next.run(req).await;
                }
                Err(why) => return unauthorized(why),
            }
        }
        let hash = token_hash(token);
        match state.store.token_by_hash(&hash).await {
            Ok(Some(t)) => Caller {
                name: Some(t.name),
                read_only: t.read_only,
                grant: Grant::Token(hash),
            },
            Ok(None) => return unauthorized("The token is unknown or was revoked."),
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Ends an event stream of `/mcp` (an MCP session's `GET` stream, or a long answer) once the
/// caller's access ends, as `/sync/events` does: without it, a revoked token's session kept its
/// stream, and the socket and task behind it, until the client left. The last thing sent is an
/// SSE comment with the reason, which every SSE reader skips; the client's reconnect then meets
/// the 401.
pub(crate) async fn streams_end_with_access(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let grant = req.extensions().get::<Caller>().map(|c| c.grant.clone());
    let res = next.run(req).await;
    let is_stream = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let Some(grant) = grant.filter(|_| is_stream) else {
        return res;
    };
    let (parts, body) = res.into_parts();
    let ended = Box::pin(access_ends(state, grant));
    let stream =
        futures::stream::unfold(Some((body.into_data_stream(), ended)), |open| async move {
            use futures::StreamExt;
            let (mut body, mut ended) = open?;
            tokio::select! {
                why = &mut ended => {
                    tracing::info!("MCP stream ended: access ended");
                    let said = axum::body::Bytes::from(format!(": {why}\n\n"));
                    Some((Ok(said), None))
                }
                chunk = body.next() => chunk.map(|c| (c, Some((body, ended)))),
            }
        });
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_without_tokens_is_refused() {
        let lan: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert!(AuthMode::for_listener(lan, 0)
            .unwrap_err()
            .contains("token create"));
        assert_eq!(AuthMode::for_listener(local, 0), Ok(AuthMode::Open));
        assert_eq!(AuthMode::for_listener(lan, 1), Ok(AuthMode::Tokens));
    }

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {a}").parse().unwrap(),
        );
        assert_eq!(bearer(&h), Some(a.as_str()));
    }
}
