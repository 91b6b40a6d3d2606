//! `idse mcp`: the local workspace as a Model Context Protocol server over stdio, so coding
//! agents can list projects, read and write stages, set statuses, validate, push and pull.
//! Every tool is a thin adapter over `idse_core`.

use std::path::PathBuf;

use chrono::Utc;
use idse_core::{project_status, sync, validate, Gateway, Project, Workspace};
use idse_protocol::Stage;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt,
};
use serde_json::{json, Value};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct ProjectRef {
    /// The project's folder name; may be left out when the workspace holds one project.
    pub project: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct StageRef {
    pub project: Option<String>,
    /// intent, context, spec, plan, tasks, implementation or feedback.
    pub stage: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct WriteStage {
    pub project: Option<String>,
    pub stage: String,
    /// The whole new text of the stage document (markdown).
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SetStatus {
    pub project: Option<String>,
    pub stage: String,
    /// pending, in_progress or completed.
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct WorkspaceServer {
    root: PathBuf,
    gateway: Gateway,
    #[allow(dead_code)] // read by the tool_handler macro
    tool_router: ToolRouter<Self>,
}

type ToolResult = Result<String, String>;

fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl WorkspaceServer {
    pub fn new(root: PathBuf, gateway: Gateway) -> Self {
        Self {
            root,
            gateway,
            tool_router: Self::tool_router(),
        }
    }

    fn project(&self, name: Option<&str>) -> Result<Project, String> {
        Workspace::discover(&self.root)
            .and_then(|ws| ws.project(name))
            .map_err(fail)
    }

    fn stage(name: &str) -> Result<Stage, String> {
        name.parse::<Stage>().map_err(fail)
    }

    /// Records who last wrote, as the Python client does, keeping every other key.
    fn record_agent(
        project: &Project,
        agent: &str,
        stage: Stage,
        status: Option<&str>,
    ) -> Result<(), String> {
        let mut state = project.state().map_err(fail)?;
        state.insert("last_agent".into(), Value::from(agent));
        if let Some(status) = status {
            let stages = state.entry("stages").or_insert_with(|| json!({}));
            if let Some(map) = stages.as_object_mut() {
                map.insert(stage.as_str().into(), Value::from(status));
            }
        }
        project.write_state(&state).map_err(fail)
    }
}

/// The project and stage a resource URI names, or the protocol's sentence on why it names none.
fn parse_resource_uri(uri: &str) -> Result<(String, Stage), ErrorData> {
    Stage::from_resource_uri(uri)
        .map(|(project, stage)| (project.to_owned(), stage))
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
}

impl WorkspaceServer {
    /// Every stage document that exists in each project's active session.
    fn resources(&self) -> Result<Vec<Resource>, String> {
        let ws = Workspace::discover(&self.root).map_err(fail)?;
        let mut out = Vec::new();
        for project in ws.projects().map_err(fail)? {
            let session = project.active_session().map_err(fail)?;
            for stage in Stage::ALL {
                if let Some(text) = project.read_stage(&session, stage).map_err(fail)? {
                    out.push(
                        Resource::new(
                            stage.resource_uri(&project.name),
                            format!("{}/{}", project.name, stage.as_str()),
                        )
                        .with_description(format!(
                            "The {stage} document of project {}, session {session}.",
                            project.name
                        ))
                        .with_mime_type("text/markdown")
                        .with_size(text.len() as u64),
                    );
                }
            }
        }
        Ok(out)
    }
}

fn agent_name(context: &RequestContext<RoleServer>) -> String {
    context
        .client_info()
        .map(|c| c.name)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "mcp-client".to_owned())
}

#[tool_router]
impl WorkspaceServer {
    #[tool(
        description = "List the projects of the local IDSE workspace with each stage's status, problems and sync state."
    )]
    async fn list_projects(&self) -> ToolResult {
        let ws = Workspace::discover(&self.root).map_err(fail)?;
        let mut out = Vec::new();
        for p in ws.projects().map_err(fail)? {
            out.push(serde_json::to_value(project_status(&p, None).map_err(fail)?).map_err(fail)?);
        }
        Ok(Value::Array(out).to_string())
    }

    #[tool(description = "Read one stage document (markdown) of a project's active session.")]
    async fn read_stage(&self, Parameters(r): Parameters<StageRef>) -> ToolResult {
        let project = self.project(r.project.as_deref())?;
        let stage = Self::stage(&r.stage)?;
        let session = project.active_session().map_err(fail)?;
        project
            .read_stage(&session, stage)
            .map_err(fail)?
            .ok_or_else(|| format!("{} has no {} document yet", project.name, stage.as_str()))
    }

    #[tool(
        description = "Replace one stage document of a project's active session (written atomically); records the calling agent as last_agent."
    )]
    async fn write_stage(
        &self,
        Parameters(w): Parameters<WriteStage>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let project = self.project(w.project.as_deref())?;
        let stage = Self::stage(&w.stage)?;
        let session = project.active_session().map_err(fail)?;
        project
            .write_stage(&session, stage, &w.text)
            .map_err(fail)?;
        let agent = agent_name(&context);
        Self::record_agent(&project, &agent, stage, None)?;
        Ok(format!(
            "Wrote {} of {} ({} bytes) as {agent}.",
            stage.as_str(),
            project.name,
            w.text.len()
        ))
    }

    #[tool(
        description = "Set a stage's status in session_state.json: pending, in_progress or completed."
    )]
    async fn set_stage_status(
        &self,
        Parameters(s): Parameters<SetStatus>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        if !matches!(s.status.as_str(), "pending" | "in_progress" | "completed") {
            return Err(format!(
                "`{}` is not a status; use pending, in_progress or completed",
                s.status
            ));
        }
        let project = self.project(s.project.as_deref())?;
        let stage = Self::stage(&s.stage)?;
        Self::record_agent(&project, &agent_name(&context), stage, Some(&s.status))?;
        Ok(format!(
            "{} of {} is now {}.",
            stage.as_str(),
            project.name,
            s.status
        ))
    }

    #[tool(description = "Validate every stage of a project: errors and warnings per stage.")]
    async fn validate(&self, Parameters(r): Parameters<ProjectRef>) -> ToolResult {
        let project = self.project(r.project.as_deref())?;
        let session = project.active_session().map_err(fail)?;
        let reports = validate(&project, &session).map_err(fail)?;
        serde_json::to_string(&reports).map_err(fail)
    }

    #[tool(
        description = "Push the project's changed stages to the Agency gateway (refused per stage if someone else changed it; pull first then)."
    )]
    async fn push(&self, Parameters(r): Parameters<ProjectRef>) -> ToolResult {
        let project = self.project(r.project.as_deref())?;
        let report = sync::push(&project, &self.gateway, &Stage::ALL, false, Utc::now())
            .await
            .map_err(fail)?;
        serde_json::to_string(&report).map_err(fail)
    }

    #[tool(
        description = "Pull the project's stages from the Agency gateway, merging where both sides changed; conflicts are recorded, files untouched."
    )]
    async fn pull(&self, Parameters(r): Parameters<ProjectRef>) -> ToolResult {
        let project = self.project(r.project.as_deref())?;
        let report = sync::pull(&project, &self.gateway, &Stage::ALL, Utc::now())
            .await
            .map_err(fail)?;
        serde_json::to_string(&report).map_err(fail)
    }
}

#[tool_handler]
impl ServerHandler for WorkspaceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_instructions(
            "IDSE pipeline documents (intent, context, spec, plan, tasks, implementation, feedback) of the local workspace; each existing stage document is also a resource idse://PROJECT/STAGE.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = self
            .resources()
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (name, stage) = parse_resource_uri(&request.uri)?;
        let project = self
            .project(Some(&name))
            .map_err(|e| ErrorData::resource_not_found(e, None))?;
        let session = project
            .active_session()
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let text = project
            .read_stage(&session, stage)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("project {name} has no {stage} document in session {session} yet"),
                    None,
                )
            })?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri).with_mime_type("text/markdown")
        ])
        .into())
    }
}

/// Serves the workspace over stdin/stdout until the client closes the stream.
pub async fn serve_stdio(root: PathBuf, gateway: Gateway) -> anyhow::Result<()> {
    let service = WorkspaceServer::new(root, gateway)
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
