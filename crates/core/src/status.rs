//! A project at a glance: each stage's status, problems, task progress and sync state.

use std::collections::BTreeMap;

use idse_protocol::{content_hash, Stage};
use serde::Serialize;
use serde_json::Value;

use crate::sync::{local_status, remote_id, with_remote, SyncState, SyncStatus};
use crate::validate::check_stage;
use crate::workspace::{Project, WorkspaceError};

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: Stage,
    /// From `session_state.json`, else as the file shows it.
    pub status: String,
    /// The file alone reads as complete (no markers left, real content).
    pub written: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub tasks_done: usize,
    pub tasks_total: usize,
    pub sync: SyncStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectStatus {
    pub project: String,
    pub session: String,
    pub project_id: Option<String>,
    pub last_agent: Option<String>,
    pub last_sync: Option<String>,
    /// The gateway's revision this session was last pushed or pulled at.
    pub revision: Option<i64>,
    pub stages: Vec<StageRow>,
}

/// Reads one project; `remote` (artifact key → hash, from a pull) adds what the gateway holds.
pub fn project_status(
    project: &Project,
    remote: Option<&BTreeMap<String, String>>,
) -> Result<ProjectStatus, WorkspaceError> {
    let session = project.active_session()?;
    let state = project.state()?;
    let sync = SyncState::load(project)?;
    let mut stages = Vec::with_capacity(Stage::ALL.len());
    for stage in Stage::ALL {
        let text = project.read_stage(&session, stage)?;
        let report = check_stage(stage, text.as_deref());
        let local = local_status(&sync, &session, stage, text.as_deref());
        let sync_status = match remote {
            Some(hashes) => with_remote(
                local,
                sync.base_hash(&session, stage),
                text.as_deref().map(content_hash).as_deref(),
                hashes.get(stage.artifact_key()).map(String::as_str),
            ),
            None => local,
        };
        stages.push(StageRow {
            stage,
            status: project
                .recorded_status(&state, stage)
                .unwrap_or_else(|| report.status.as_str().to_owned()),
            written: report.status == crate::validate::StageStatus::Completed,
            errors: report.errors,
            warnings: report.warnings,
            tasks_done: report.tasks_done,
            tasks_total: report.tasks_total,
            sync: sync_status,
        });
    }
    let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(ProjectStatus {
        project: project.name.clone(),
        project_id: remote_id(project, &sync)?,
        last_agent: project.last_agent(&state),
        last_sync: text("last_sync"),
        revision: sync.revision(&session),
        session,
        stages,
    })
}
