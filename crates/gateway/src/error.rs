use std::any::Any;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use idse_protocol::{ErrorBody, StageConflict};
use idse_store::StoreError;

/// An answer other than 200: a status and two sentences, never internal error text.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: String,
    pub conflicts: Option<Vec<StageConflict>>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: detail.into(),
            conflicts: None,
        }
    }

    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, detail)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The gateway failed to complete the request.",
            "This is a fault of the gateway, not of your request; its log has the details under the request id in the x-request-id header.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The answer's JSON body.
    pub(crate) fn into_body(self) -> ErrorBody {
        ErrorBody {
            success: false,
            error: self.code.to_owned(),
            message: self.message,
            detail: self.detail,
            conflicts: self.conflicts,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusal = Refusal {
            code: self.code,
            message: self.message.clone(),
        };
        let status = self.status;
        let mut response = (status, Json(self.into_body())).into_response();
        response.extensions_mut().insert(refusal);
        response
    }
}

/// What an error answer said, kept on the response for [`log_refusals`].
#[derive(Debug, Clone)]
struct Refusal {
    code: &'static str,
    message: String,
}

/// `message` with every double-quoted string in it cut to `"…"`: serde quotes the value it
/// found in a field of the wrong type, which may be a whole document text, and those must not
/// reach the log.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => break,
                    _ => escaped = false,
                }
            }
            out.push_str("…\"");
        }
    }
    out
}

/// Logs one line at INFO for every request refused with a 4xx, wherever it was refused: in a
/// handler, in reading its body (malformed JSON, too large), by the token check, or for want of
/// a route. Without it, a refusal before the handler left no line at INFO, so an operator could
/// not look up the request id a user quoted, nor see failed token checks. The messages name
/// fields, ids and sizes; quoted values are cut (see `without_quoted`). 5xx answers are logged with their causes
/// where they arise, at WARN or ERROR.
pub(crate) async fn log_refusals(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(req).await;
    if response.status().is_client_error() {
        if let Some(refusal) = response.extensions().get::<Refusal>() {
            log_refusal(response.status(), refusal.code, &refusal.message);
        }
    }
    response
}

/// The INFO line of one refused request (see `log_refusals`), in the current request's span.
pub(crate) fn log_refusal(status: StatusCode, code: &str, message: &str) {
    tracing::info!(
        status = status.as_u16(),
        error = code,
        reason = %without_quoted(message),
        "request refused"
    );
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ProjectNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("No project has the id {id}."),
                "Check the project_id (GET /sync/projects lists them), or push without project_id to create the project by name.",
            ),
            StoreError::SessionNotFound { project, session } => Self::new(
                StatusCode::NOT_FOUND,
                "session_not_found",
                format!("Project {project} has no session `{session}`."),
                "Pull without session_id to get the latest pushed session, or push that session first.",
            ),
            StoreError::TextNotFound { project, sha256 } => Self::new(
                StatusCode::NOT_FOUND,
                "text_not_found",
                format!("Project {project} never held a text with hash {sha256}."),
                "GET /sync/history/{id} lists the hashes the project has held.",
            ),
            StoreError::Conflict(conflicts) => {
                let stages: Vec<&str> = conflicts.iter().map(|c| c.stage.as_str()).collect();
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!(
                        "{} changed on the gateway since your last sync; nothing was pushed.",
                        stages.join(", ")
                    ),
                    "Pull to merge the remote changes into your files, then push again. Pushing with force overwrites them (the replaced text stays in the history).",
                );
                error.conflicts = Some(conflicts);
                error
            }
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "The gateway's database cannot be reached right now; nothing was changed.",
                    "Try again shortly. If it persists, check the database server the gateway is configured with (GET /sync/health).",
                )
            }
            StoreError::Busy(source) => {
                tracing::warn!(error = %source, "a row stayed locked by another database session");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_busy",
                    "The project is locked in the gateway's database by another session; nothing was changed.",
                    "Try again shortly. If it persists, ask the gateway's operator to look for a long-running transaction on its database (pg_stat_activity).",
                )
            }
            StoreError::Full(source) => {
                tracing::error!(error = %source, "the database's disk is full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "store_full",
                    "The gateway's database has run out of disk space; nothing was changed.",
                    "Ask the gateway's operator to free disk space on its database server; pushes work again without a restart once there is room. Pulls still work meanwhile.",
                )
            }
            other => {
                tracing::error!(error = ?other, "store failure");
                Self::internal()
            }
        }
    }
}

/// A panic in a handler becomes an ordinary 500; the payload goes to the log only.
pub(crate) fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "handler panicked");
    let mut response = ApiError::internal().into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_stay_out_of_the_log() {
        assert_eq!(
            without_quoted(
                r##"The field `artifacts` is wrong: invalid type: string "# Intent\n\nsecret \"plan\"", expected a map at line 1 column 9."##
            ),
            r#"The field `artifacts` is wrong: invalid type: string "…", expected a map at line 1 column 9."#
        );
        assert_eq!(
            without_quoted("No project has the id 42."),
            "No project has the id 42."
        );
        assert_eq!(without_quoted(r#"cut "unterminated"#), r#"cut "…""#);
        assert_eq!(
            without_quoted(r#"two "a" and "b\\" end"#),
            r#"two "…" and "…" end"#
        );
    }

    #[test]
    fn a_full_busy_or_down_database_is_told_apart() {
        let full = ApiError::from(StoreError::Full("disk I/O: No space left on device".into()));
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.code, "store_full");
        let down = ApiError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.code, "store_unavailable");
        let busy = ApiError::from(StoreError::Busy(
            "canceling statement due to lock timeout".into(),
        ));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.code, "store_busy");
        for e in [full, down, busy] {
            let said = format!("{} {}", e.message, e.detail);
            assert!(
                !said.contains("No space")
                    && !said.contains("refused")
                    && !said.contains("canceling"),
                "{said}"
            );
            assert!(
                e.message.ends_with('.') && e.detail.ends_with('.'),
                "{said}"
            );
        }
    }
}
