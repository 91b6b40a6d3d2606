//! The Agency copy over the Model Context Protocol, for remote agents: streamable HTTP at `/mcp`,
//! behind the same tokens as every route. A write is a push with a base, so it conflicts rather
//! than overwrite what someone else changed since the agent read it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use idse_protocol::{content_hash, Stage, BLUEPRINT_SESSION};
use idse_store::{PushInput, Store, StoreError};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::Caller;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct StageRef {
    /// The project's name or id.
    pub project: String,
    /// intent, context, spec, plan, tasks, implementation or feedback.
    pub stage: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct WriteStage {
    pub project: String,
    pub stage: String,
    /// The whole new text of the stage.
    pub text: String,
    /// The `sha256` that `read_stage` returned: the text this write replaces.
    pub base_sha256: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct ProjectRef {
    /// The project's name or id.
    pub project: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SetStatus {
    pub project: String,
    pub stage: String,
    /// pending, in_progress or completed.
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct AgencyServer {
    store: Arc<dyn Store>,
    #[allow(dead_code)] // read by the tool_handler macro
    tool_router: ToolRouter<Self>,
}

type ToolResult = Result<String, String>;

fn caller(context: &RequestContext<RoleServer>) -> Caller {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>().cloned())
        .unwrap_or(Caller {
            name: None,
            read_only: false,
            grant: crate::auth::Grant::Open,
        })
}

fn sentence(e: StoreError) -> String {
    match e {
        StoreError::Conflict(c) => format!(
            "{} changed since you read it; read it again, redo your change on the new text, and write with the new sha256",
            c.iter().map(|c| c.stage.as_str()).collect::<Vec<_>>().join(", ")
        ),
        StoreError::ProjectNotFound(_) | StoreError::SessionNotFound { .. } => e.to_string(),
        _ => "the gateway's store failed; try again shortly".to_owned(),
    }
}

impl AgencyServer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tool_router: Self::tool_router(),
        }
    }

    async fn project_id(&self, project: &str) -> Result<(Uuid, String), String> {
        let projects = self.store.projects().await.map_err(sentence)?;
        let id = Uuid::parse_str(project).ok();
        projects
            .into_iter()
            .find(|p| Some(p.id) == id || p.name == project)
            .map(|p| (p.id, p.name))
            .ok_or_else(|| {
                format!("the gateway has no project `{project}`; list_projects shows them")
            })
    }
}

#[tool_router]
impl AgencyServer {
    #[tool(
        description = "List the projects of the Agency copy: id, name, revision, last agent and author."
    )]
    async fn list_projects(&self) -> ToolResult {
        let projects = self.store.projects().await.map_err(sentence)?;
        let list: Vec<Value> = projects
            .into_iter()
            .map(|p| json!({"id": p.id, "name": p.name, "revision": p.revision, "session_id": p.last_session_id,
                            "last_agent": p.last_agent, "last_author": p.last_author, "updated_at": p.updated_at}))
            .collect();
        Ok(Value::Array(list).to_string())
    }

    #[tool(
        description = "Read a stage of a project's latest session: its text and sha256 (needed to write it)."
    )]
    async fn read_stage(&self, Parameters(r): Parameters<StageRef>) -> ToolResult {
        let stage: Stage = r.stage.parse().map_err(|e| format!("{e}"))?;
        let (id, _) = self.project_id(&r.project).await?;
        let snap = self.store.pull(id, None).await.map_err(sentence)?;
        let text = snap
            .artifacts
            .get(stage.artifact_key())
            .cloned()
            .unwrap_or_default();
        Ok(
            json!({"project_id": id, "session_id": snap.session_id, "stage": stage, "text": text,
                  "sha256": content_hash(&text), "revision": snap.revision})
            .to_string(),
        )
    }

    #[tool(
        description = "Write a stage of a project's latest session, as a push based on the sha256 read_stage gave; refused if the stage changed since."
    )]
    async fn write_stage(
        &self,
        Parameters(w): Parameters<WriteStage>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context);
        who.may_write().map_err(|e| e.message)?;
        let stage: Stage = w.stage.parse().map_err(|e| format!("{e}"))?;
        let (id, name) = self.project_id(&w.project).await?;
        let session = self
            .store
            .project(id)
            .await
            .map_err(sentence)?
            .last_session_id
            .unwrap_or_else(|| BLUEPRINT_SESSION.to_owned());
        let agent = context.client_info().map(|c| c.name);
        let push = PushInput {
            project_id: Some(id),
            project_name: name,
            session_id: session,
            artifacts: BTreeMap::from([(stage.artifact_key().to_owned(), w.text)]),
            base: Some(BTreeMap::from([(
                stage.artifact_key().to_owned(),
                w.base_sha256,
            )])),
            agent,
            author: who.name,
            ..PushInput::default()
        };
        crate::input::refuse_nul(&push).map_err(|e| e.message)?;
        let out = self.store.push(push, Utc::now()).await.map_err(sentence)?;
        Ok(
            json!({"revision": out.revision, "sha256": out.hashes.get(stage.artifact_key())})
                .to_string(),
        )
    }

    #[tool(
        description = "Validate every stage of a project's latest session on the gateway: errors and warnings per stage."
    )]
    async fn validate(&self, Parameters(r): Parameters<ProjectRef>) -> ToolResult {
        let (id, _) = self.project_id(&r.project).await?;
        let snap = self.store.pull(id, None).await.map_err(sentence)?;
        let reports: Vec<_> = Stage::ALL
            .into_iter()
            .map(|s| {
                idse_core::check_stage(s, snap.artifacts.get(s.artifact_key()).map(String::as_str))
            })
            .collect();
        serde_json::to_string(&reports).map_err(|e| e.to_string())
    }

    #[tool(
        description = "Set a stage's status (pending, in_progress or completed) in the project's latest session state."
    )]
    async fn set_stage_status(
        &self,
        Parameters(s): Parameters<SetStatus>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context);
        who.may_write().map_err(|e| e.message)?;
        if !matches!(s.status.as_str(), "pending" | "in_progress" | "completed") {
            return Err(format!(
                "`{}` is not a status; use pending, in_progress or completed",
                s.status
            ));
        }
        let stage: Stage = s.stage.parse().map_err(|e| format!("{e}"))?;
        let (id, name) = self.project_id(&s.project).await?;
        let snap = self.store.pull(id, None).await.map_err(sentence)?;
        let mut state = snap.state_json.unwrap_or_else(|| json!({}));
        if !state.is_object() {
            state = json!({});
        }
        let agent = context.client_info().map(|c| c.name);
        if let Some(map) = state.as_object_mut() {
            let stages = map.entry("stages").or_insert_with(|| json!({}));
            if let Some(stages) = stages.as_object_mut() {
                stages.insert(stage.as_str().to_owned(), Value::from(s.status.clone()));
            }
            if let Some(agent) = &agent {
                map.insert("last_agent".into(), Value::from(agent.clone()));
            }
        }
        let push = PushInput {
            project_id: Some(id),
            project_name: name,
            session_id: snap.session_id,
            state_json: Some(state),
            agent,
            author: who.name,
            ..PushInput::default()
        };
        crate::input::refuse_nul(&push).map_err(|e| e.message)?;
        self.store.push(push, Utc::now()).await.map_err(sentence)?;
        Ok(format!("{} is now {}.", stage.as_str(), s.status))
    }
}

/// The project and stage a resource URI names, or the protocol's sentence on why it names none.
fn parse_resource_uri(uri: &str) -> Result<(String, Stage), ErrorData> {
    Stage::from_resource_uri(uri)
        .map(|(project, stage)| (project.to_owned(), stage))
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
}

#[tool_handler]
impl ServerHandler for AgencyServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_instructions(
            "The Agency copy of IDSE pipeline documents, shared by the team; each stage of a project's latest session is also a resource idse://PROJECT/STAGE.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let store_failed = |e: StoreError| ErrorData::internal_error(sentence(e), None);
        let mut resources = Vec::new();
        for project in self.store.projects().await.map_err(store_failed)? {
            let snap = self
                .store
                .pull(project.id, None)
                .await
                .map_err(store_failed)?;
            for (key, text) in &snap.artifacts {
                let Some(stage) = Stage::from_artifact_key(key) else {
                    continue;
                };
                resources.push(
                    Resource::new(
                        stage.resource_uri(&project.name),
                        format!("{}/{}", project.name, stage.as_str()),
                    )
                    .with_description(format!(
                        "The {stage} document of project {}, session {}, in the Agency copy.",
                        project.name, snap.session_id
                    ))
                    .with_mime_type("text/markdown")
                    .with_size(text.len() as u64),
                );
            }
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (name, stage) = parse_resource_uri(&request.uri)?;
        let (id, _) = self
            .project_id(&name)
            .await
            .map_err(|e| ErrorData::resource_not_found(e, None))?;
        let snap = self
            .store
            .pull(id, None)
            .await
            .map_err(|e| ErrorData::internal_error(sentence(e), None))?;
        let text = snap
            .artifacts
            .get(stage.artifact_key())
            .cloned()
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("project {name} has no {stage} on the gateway yet"),
                    None,
                )
            })?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri).with_mime_type("text/markdown")
        ])
        .into())
    }
}

/// Puts rmcp's own refusals in the gateway's words: rmcp answers a request it cannot take
/// (wrong `Accept` or `Content-Type`, an unknown session, a foreign `Host`) in plain text, and
/// a fault inside it with its internal error text. Each becomes the `{error, message, detail}`
/// answer of every other route, which the refusal log line then records; JSON answers (its
/// JSON-RPC errors, the gateway's own) pass as they are.
pub(crate) async fn in_gateway_words(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    if status.is_server_error() {
        // rmcp has logged the cause; the client gets no internal text.
        return crate::ApiError::internal().into_response();
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let said = axum::body::to_bytes(res.into_body(), 1024)
        .await
        .unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    // "Bad Request: Session ID is required" → "Session ID is required".
    let said = said
        .split_once(": ")
        .map_or(&*said, |(_, what)| what)
        .trim();
    let error = match status {
        StatusCode::NOT_ACCEPTABLE => crate::ApiError::new(
            status,
            "not_acceptable",
            "The MCP endpoint answers as JSON or as an event stream, and the request's Accept \
             header takes neither.",
            "Send `Accept: application/json, text/event-stream` with a POST, and \
             `Accept: text/event-stream` with a GET.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => crate::ApiError::new(
            status,
            "unsupported_media_type",
            "MCP messages are JSON, and the request's Content-Type says otherwise.",
            "Send the JSON-RPC message with `Content-Type: application/json`.",
        ),
        StatusCode::NOT_FOUND => crate::ApiError::new(
            status,
            "session_not_found",
            "The MCP session in the request's Mcp-Session-Id header is unknown or has ended \
             (sessions end when the gateway restarts).",
            "Start a new session with an `initialize` request, then send the Mcp-Session-Id it \
             answers with.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => crate::ApiError::new(
            status,
            "method_not_allowed",
            "The MCP endpoint takes POST (messages), GET (a session's event stream) and DELETE \
             (ending a session), and no other method.",
            "Use one of those methods.",
        ),
        StatusCode::FORBIDDEN => crate::ApiError::new(
            status,
            "host_not_allowed",
            "The request's Host header names a host this gateway does not serve MCP under (a \
             guard against DNS rebinding).",
            "Reach the gateway by its own address; a gateway behind a public name is started \
             with --public-host NAME.",
        ),
        _ => crate::ApiError::new(
            status,
            "bad_request",
            format!("The MCP request was refused: {said}."),
            "Follow MCP's streamable HTTP transport: an `initialize` request first, then its \
             Mcp-Session-Id header on every request of the session.",
        ),
    };
    let mut res = error.into_response();
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// The `/mcp` service. `hosts` are the extra `Host` values to accept besides loopback (the
/// gateway's public name), as protection against DNS rebinding.
pub fn service(
    store: Arc<dyn Store>,
    hosts: Vec<String>,
    closing: tokio_util::sync::CancellationToken,
    max_body_bytes: usize,
) -> StreamableHttpService<AgencyServer, LocalSessionManager> {
    let mut allowed = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    allowed.extend(hosts);
    // The gateway's own limit, which `extract::whole_body` checks first with a JSON answer.
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed)
        .with_max_request_body_bytes(max_body_bytes);
    // Its sessions' streams end when the gateway stops.
    config.cancellation_token = closing;
    StreamableHttpService::new(
        move || Ok(AgencyServer::new(store.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
