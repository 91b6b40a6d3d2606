//! A typed client of the sync gateway.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use idse_protocol::{
    ErrorBody, HealthResponse, HistoryResponse, ProjectsResponse, PullRequest, PullResponse,
    PushRequest, PushResponse, Stage, StageConflict, TextResponse,
};
use serde::de::DeserializeOwned;

/// Why a call to the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway at {url} cannot be reached ({reason}); check that it runs, or set another with --agency-url or IDSE_AGENCY_URL")]
    Unreachable { url: String, reason: String },
    #[error("the gateway at {url} presented a TLS certificate this machine does not trust ({reason}); if your team signs its certificates itself, add its authority to the system's trusted certificates or point SSL_CERT_FILE at the authority's PEM file")]
    Untrusted { url: String, reason: String },
    #[error("the gateway at {url} answered {status}: {message} {detail}")]
    Refused {
        url: String,
        status: u16,
        code: String,
        message: String,
        detail: String,
    },
    #[error("the gateway at {url} sent an answer this client does not understand: {0}", url = .1)]
    Protocol(String, String),
}

impl GatewayError {
    /// The gateway's error code (`not_found`, `session_not_found`, …), when it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            GatewayError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What a push came to.
#[derive(Debug)]
pub enum PushAnswer {
    Accepted(PushResponse),
    Conflict(Vec<StageConflict>),
}

/// Narrows `GET /sync/history/{id}`; every part is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery<'a> {
    pub stage: Option<Stage>,
    pub session: Option<&'a str>,
    /// Only revisions older than this cursor: a page's `next_before`.
    pub before: Option<i64>,
    /// At most this many (the gateway's default: 200).
    pub limit: Option<i64>,
}

/// Why a request got no answer, in the words of its innermost cause: reqwest's own text is
/// "error sending request for url …" whatever happened, while the cause tells a refused
/// connection from an unknown host or a certificate the machine does not trust.
fn innermost_cause(e: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

/// Whether `e` comes of a server certificate this machine does not accept. rustls's error
/// travels inside io::Errors, whose `source` skips what they wrap, so those are opened too.
fn is_untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return matches!(
            tls,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        );
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| is_untrusted_certificate(inner));
    wrapped || e.source().is_some_and(is_untrusted_certificate)
}

/// Whether `url` names this machine (`localhost`, `127.0.0.0/8`, `::1`); an unparsable URL
/// counts as remote, and fails when it is used.
fn is_loopback(url: &str) -> bool {
    let Some(host) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// Whether an answer says the gateway takes request bodies compressed with zstd: RFC 7694's
/// `Accept-Encoding` in a response. Gateways that do not say so (older ones, the Python
/// reference) are sent plain JSON.
fn takes_zstd(res: &reqwest::Response) -> bool {
    res.headers()
        .get_all(reqwest::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let name = coding.split(';').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case("zstd")
        })
}

/// What this client knows of the gateway's taking zstd bodies.
const ZSTD_UNKNOWN: u8 = 0;
const ZSTD_TAKEN: u8 = 1;
/// Refused once (415) although the gateway had said it took them: never tried again.
const ZSTD_REFUSED: u8 = 2;

/// The gateway at one URL.
#[derive(Debug, Clone)]
pub struct Gateway {
    url: String,
    token: Option<String>,
    http: reqwest::Client,
    /// Whether bodies and answers go compressed: only to a gateway on another machine.
    compressed: bool,
    /// `ZSTD_*`, learnt from the gateway's answers (see [`takes_zstd`]); shared by clones, so
    /// an app that keeps one `Gateway` learns it once.
    zstd: Arc<AtomicU8>,
}

impl Gateway {
    /// Offline must fail fast: a connection gets 3 s, a whole request 60 s. Answers are asked
    /// for compressed (zstd or gzip), and pushes are sent compressed once the gateway has said
    /// it takes them, unless the gateway is on this machine, where compressing costs more time
    /// than the bytes it saves.
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self::with_compression(url, token, !is_loopback(url))
    }

    /// As [`Gateway::new`], with compression on the wire chosen here rather than by the URL.
    pub fn with_compression(url: &str, token: Option<String>, compressed: bool) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .gzip(compressed)
            .zstd(compressed)
            .build()
            .unwrap_or_default();
        Self {
            url: url.trim_end_matches('/').to_owned(),
            token,
            http,
            compressed,
            zstd: Arc::default(),
        }
    }

    /// Remembers what an answer says about compressed bodies.
    fn learn(&self, res: &reqwest::Response) {
        if self.compressed && takes_zstd(res) {
            // Only from unknown: a refusal is not undone by the next answer's header.
            let _ = self.zstd.compare_exchange(
                ZSTD_UNKNOWN,
                ZSTD_TAKEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// A push's request, and whether its body went compressed: zstd once the gateway has said
    /// it takes it, plain JSON otherwise.
    fn push_request(&self, req: &PushRequest) -> (reqwest::RequestBuilder, bool) {
        let post = self.request(reqwest::Method::POST, "/sync/push");
        if self.zstd.load(Ordering::Relaxed) != ZSTD_TAKEN {
            return (post.json(req), false);
        }
        // Level 1: seven 10 KiB stages of markdown, 73 KiB of JSON, go in 30 KiB after 0.5 ms
        // here; level 3 saves 2 KiB more for 0.7 ms.
        let packed = serde_json::to_vec(req)
            .ok()
            .and_then(|json| zstd::bulk::compress(&json, 1).ok());
        match packed {
            Some(packed) => (
                post.header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::CONTENT_ENCODING, "zstd")
                    .body(packed),
                true,
            ),
            None => (post.json(req), false),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> GatewayError {
        let url = self.url.clone();
        if e.is_timeout() {
            return GatewayError::Unreachable {
                url,
                reason: "timed out".to_owned(),
            };
        }
        let reason = innermost_cause(e);
        if is_untrusted_certificate(e) {
            GatewayError::Untrusted { url, reason }
        } else {
            GatewayError::Unreachable { url, reason }
        }
    }

    async fn answer<T: DeserializeOwned>(&self, res: reqwest::Response) -> Result<T, GatewayError> {
        self.learn(&res);
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| GatewayError::Protocol(e.to_string(), self.url.clone()));
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        Err(GatewayError::Refused {
            url: self.url.clone(),
            status: status.as_u16(),
            code: body
                .as_ref()
                .map_or("http_error".to_owned(), |b| b.error.clone()),
            message: body
                .as_ref()
                .map_or_else(|| format!("HTTP {status}."), |b| b.message.clone()),
            detail: body.map(|b| b.detail).unwrap_or_default(),
        })
    }

    pub async fn push(&self, req: &PushRequest) -> Result<PushAnswer, GatewayError> {
        let (post, packed) = self.push_request(req);
        let mut res = post.send().await.map_err(|e| self.unreachable(&e))?;
        if packed && res.status() == reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE {
            // Something between here and the gateway (or an older gateway in its place) does
            // not take it after all: the same push again, plain, and no compression from now on.
            self.zstd.store(ZSTD_REFUSED, Ordering::Relaxed);
            let (plain, _) = self.push_request(req);
            res = plain.send().await.map_err(|e| self.unreachable(&e))?;
        }
        self.learn(&res);
        if res.status() == reqwest::StatusCode::CONFLICT {
            let bytes = res.bytes().await.map_err(|e| self.unreachable(&e))?;
            let body: ErrorBody = serde_json::from_slice(&bytes)
                .map_err(|e| GatewayError::Protocol(e.to_string(), self.url.clone()))?;
            return Ok(PushAnswer::Conflict(body.conflicts.unwrap_or_default()));
        }
        self.answer(res).await.map(PushAnswer::Accepted)
    }

    pub async fn pull(
        &self,
        project_id: &str,
        session: Option<&str>,
    ) -> Result<PullResponse, GatewayError> {
        let req = PullRequest {
            project_id: project_id.to_owned(),
            session_id: session.map(str::to_owned),
        };
        let res = self
            .request(reqwest::Method::POST, "/sync/pull")
            .json(&req)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer(res).await
    }

    pub async fn projects(&self) -> Result<ProjectsResponse, GatewayError> {
        let res = self
            .request(reqwest::Method::GET, "/sync/projects")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer(res).await
    }

    /// A text the project once held, by its hash: how a lost base is recovered.
    pub async fn text(&self, project_id: &str, sha256: &str) -> Result<String, GatewayError> {
        let res = self
            .request(
                reqwest::Method::GET,
                &format!("/sync/history/{project_id}/{sha256}"),
            )
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer::<TextResponse>(res).await.map(|t| t.text)
    }

    pub async fn health(&self) -> Result<HealthResponse, GatewayError> {
        let res = self
            .request(reqwest::Method::GET, "/sync/health")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer(res).await
    }

    /// A page of the project's revisions, newest first, narrowed by `query`.
    pub async fn history(
        &self,
        project_id: &str,
        query: &HistoryQuery<'_>,
    ) -> Result<HistoryResponse, GatewayError> {
        let (before, limit) = (
            query.before.map(|n| n.to_string()),
            query.limit.map(|n| n.to_string()),
        );
        let query: Vec<(&str, &str)> = [
            ("stage", query.stage.map(|s| s.as_str())),
            ("session_id", query.session),
            ("before", before.as_deref()),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect();
        let res = self
            .request(reqwest::Method::GET, &format!("/sync/history/{project_id}"))
            .query(&query)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer(res).await
    }

    /// Opens `GET /sync/events`; the caller reads the server-sent events off the body.
    pub async fn events(&self) -> Result<reqwest::Response, GatewayError> {
        let res = self
            .request(reqwest::Method::GET, "/sync/events")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // The stream stays open; the client's whole-request timeout must not cut it.
            .timeout(Duration::from_secs(60 * 60 * 24 * 365))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        match self.answer::<serde_json::Value>(res).await {
            Err(e) => Err(e),
            Ok(_) => Err(GatewayError::Protocol(
                "the event stream was refused".into(),
                self.url.clone(),
            )),
        }
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "http://127.0.0.1:8000",
            "http://127.1.2.3/",
            "http://localhost:8000",
            "https://LocalHost",
            "http://app.localhost:80",
            "http://[::1]:8000",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://gateway.example.com",
            "http://10.0.0.2:8000",
            "http://[2001:db8::1]:8000",
            "http://localhost.example.com",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
