//! The handlers: each parses, calls the store, and maps the answer.
//!
//! A handler's error is logged at DEBUG: every 4xx answer, from a handler or not, gets its INFO
//! line from `error::log_refusals` (most are the client's: a stale base, an unknown id; a
//! conflict is the protocol working). Faults of the gateway or its database are logged at WARN
//! or ERROR, with their cause, where `error.rs` maps them to a status.

use std::time::Duration;

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use futures::{Stream, StreamExt};
use idse_protocol::{
    artifact_key_stage, HealthResponse, HistoryResponse, ProjectSummary, ProjectsResponse,
    PullRequest, PullResponse, PushEvent, PushRequest, PushResponse, RevisionInfo, StatusResponse,
    TextResponse,
};
use idse_store::{stage_states, PushOutcome};
use tokio::sync::broadcast::error::RecvError;

use crate::extract::JsonBody;
use crate::input::{self, HistoryQuery};
use crate::{auth, ApiError, AppState, Caller};

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/sync/push", post(push))
        .route("/sync/pull", post(pull))
        .route("/sync/status/{id}", get(status))
        .route("/sync/projects", get(projects))
        .route("/sync/health", get(health))
        .route("/sync/history/{id}", get(history))
        .route("/sync/history/{id}/{sha256}", get(text_by_hash))
        .route("/sync/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `details`: the push carried a state, session metadata, stack or framework, which are saved
/// even when no text changed, so the answer must not say that nothing changed.
fn push_message(outcome: &PushOutcome, details: bool) -> String {
    let (name, changed) = (&outcome.name, outcome.changed.len());
    match (outcome.created, changed, details) {
        (true, _, _) => format!("Created project {name} with {changed} stage(s)."),
        (false, 0, false) => format!("Project {name} already had these texts; nothing changed."),
        (false, 0, true) => {
            format!("Project {name} already had these texts; its state and details were saved.")
        }
        (false, n, _) => format!("Pushed {n} changed stage(s) to project {name}."),
    }
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn push(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    caller.may_write()?;
    let input = input::push_input(req, &state.limits, caller.name)?;
    let (author, agent, session) = (
        input.author.clone(),
        input.effective_agent(),
        input.session_id.clone(),
    );
    let details = input.state_json.is_some()
        || input.session_metadata.is_some()
        || input.stack.is_some()
        || input.framework.is_some();
    let synced_stages = input
        .artifacts
        .keys()
        .map(|k| artifact_key_stage(k).to_owned())
        .collect();
    let now = Utc::now();
    let outcome = state.store.push(input, now).await?;
    tracing::info!(project = %outcome.project_id, revision = outcome.revision, changed = outcome.changed.len(), "push accepted");
    if !outcome.changed.is_empty() {
        // No subscriber is not an error.
        let _ = state.events.send(PushEvent {
            project_id: outcome.project_id.to_string(),
            project_name: outcome.name.clone(),
            session_id: session,
            stages: outcome
                .changed
                .iter()
                .map(|k| artifact_key_stage(k).to_owned())
                .collect(),
            revision: outcome.revision,
            author,
            agent,
            pushed_at: now,
        });
    }
    Ok(Json(PushResponse {
        success: true,
        project_id: outcome.project_id.to_string(),
        message: push_message(&outcome, details),
        synced_stages,
        timestamp: now,
        revision: outcome.revision,
        hashes: outcome.hashes,
    }))
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn pull(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PullRequest>,
) -> Result<Json<PullResponse>, ApiError> {
    let (id, session) = input::pull_input(&req)?;
    let snap = state.store.pull(id, session.as_deref()).await?;
    Ok(Json(PullResponse {
        success: true,
        project_id: snap.project_id.to_string(),
        session_id: snap.session_id,
        name: snap.name,
        stack: snap.stack,
        framework: snap.framework,
        artifacts: snap.artifacts,
        state_json: snap.state_json,
        updated_at: snap.updated_at,
        revision: snap.revision,
        hashes: snap.hashes,
    }))
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    let id = input::parse_project_id(&id)?;
    let p = state.store.project(id).await?;
    Ok(Json(StatusResponse {
        project_id: p.id.to_string(),
        project_name: p.name,
        last_synced: p.last_synced,
        created_at: p.created_at,
        state: stage_states(p.state_json.as_ref()),
        last_agent: p.last_agent,
        last_author: p.last_author,
        session_id: p.last_session_id,
        revision: p.revision,
    }))
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn projects(State(state): State<AppState>) -> Result<Json<ProjectsResponse>, ApiError> {
    let projects: Vec<ProjectSummary> = state
        .store
        .projects()
        .await?
        .into_iter()
        .map(|p| ProjectSummary {
            id: p.id.to_string(),
            name: p.name,
            stack: p.stack,
            framework: p.framework,
            state_json: p.state_json,
            updated_at: p.updated_at,
            revision: p.revision,
            last_agent: p.last_agent,
            last_author: p.last_author,
            session_id: p.last_session_id,
        })
        .collect();
    Ok(Json(ProjectsResponse {
        success: true,
        count: projects.len(),
        projects,
    }))
}

#[tracing::instrument(skip_all)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let probe = tokio::time::timeout(Duration::from_secs(2), state.store.health()).await;
    let version = match probe {
        Ok(Ok(version)) => Some(version),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check failed");
            None
        }
        Err(_) => {
            tracing::warn!("health check timed out");
            None
        }
    };
    let connected = version.is_some();
    let body = HealthResponse {
        status: if connected { "healthy" } else { "unhealthy" }.to_owned(),
        database: state.store.kind().to_owned(),
        database_connected: connected,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        database_version: version,
    };
    let code = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let id = input::parse_project_id(&id)?;
    let Query(query) = query.map_err(|_| {
        ApiError::bad_request(
            "invalid_query",
            "The query string of this history request is not understood.",
            "Use ?stage=spec&session_id=…&limit=50&before=… (all optional; limit is a number from 1 to 1000, before the `next_before` of a page).",
        )
    })?;
    let filter = input::history_filter(query)?;
    let page = state.store.history(id, &filter).await?;
    let revisions = page
        .revisions
        .into_iter()
        .map(|r| RevisionInfo {
            session_id: r.session_id,
            stage: artifact_key_stage(&r.artifact).to_owned(),
            revision: r.revision,
            sha256: r.sha256,
            bytes: r.bytes,
            agent: r.agent,
            author: r.author,
            pushed_at: r.pushed_at,
        })
        .collect();
    Ok(Json(HistoryResponse {
        success: true,
        project_id: id.to_string(),
        revisions,
        next_before: page.next_before,
    }))
}

#[tracing::instrument(skip_all, err(level = "debug"))]
async fn text_by_hash(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Json<TextResponse>, ApiError> {
    let id = input::parse_project_id(&id)?;
    let hash = input::parse_hash(&hash)?;
    let text = state.store.text_by_hash(id, &hash).await?;
    Ok(Json(TextResponse {
        success: true,
        project_id: id.to_string(),
        sha256: hash,
        text,
    }))
}

/// Server-sent events: one `push` event per accepted push that changed a text, a `lagged`
/// event when this subscriber fell behind (reload then), and a keep-alive comment every 15 s.
/// The stream ends with an `unauthorized` event when the caller's access ends (a revoked
/// token, an expired JWT, an open gateway that now needs tokens).
#[tracing::instrument(skip_all)]
async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.events.subscribe();
    let ended = Box::pin(auth::access_ends(state.clone(), caller.grant));
    let stream = futures::stream::unfold(Some((rx, ended)), |open| async move {
        let (mut rx, mut ended) = open?;
        let event = tokio::select! {
            why = &mut ended => {
                tracing::info!("event stream ended: access ended");
                return Some((Ok(Event::default().event("unauthorized").data(why)), None));
            }
            got = rx.recv() => match got {
                Ok(push) => Event::default()
                    .event("push")
                    .id(push.revision.to_string())
                    .json_data(&push)
                    .unwrap_or_else(|_| Event::default().event("push")),
                Err(RecvError::Lagged(missed)) => Event::default()
                    .event("lagged")
                    .data(format!("{missed} events were missed; reload the projects")),
                Err(RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), Some((rx, ended))))
    })
    // Ends when the gateway stops, which otherwise waits for this stream for ever.
    .take_until(state.closing.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn metrics(
    State(state): State<AppState>,
    tls: Option<axum::Extension<crate::Tls>>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let end = tls.and_then(|axum::Extension(tls)| tls.not_after());
    let body = state.metrics.render(state.events.receiver_count(), end);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "There is no such route on this gateway.",
        "The routes are POST /sync/push, POST /sync/pull, GET /sync/status/{id}, GET /sync/projects, GET /sync/health, GET /sync/history/{id}, GET /sync/history/{id}/{sha256}, GET /sync/events and GET /metrics.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not take that HTTP method.",
        "Push and pull are POST; status, projects, health and history are GET.",
    )
}
