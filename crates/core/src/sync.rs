//! The sync rules of DESIGN.md section 4. For each stage, `B` is the base (the text both sides
//! last agreed on, kept in `.sync/`), `L` the local file and `R` the remote text. A push sends
//! `L` with `hash(B)`; a pull writes `R` where only the remote moved, merges where both did, and
//! records a conflict — leaving the file untouched — where the merge does not come out clean.
//! Files are written atomically, and the base moves only once the gateway has said yes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use idse_protocol::{content_hash, PushRequest, Stage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gateway::{Gateway, GatewayError, PushAnswer};
use crate::merge::{merge3, MergeOptions};
use crate::templates;
use crate::workspace::{read_optional, write_file, Project, WorkspaceError};

/// Why a sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("project `{0}` was never pushed, so the gateway does not know it yet; run `idse sync push` first")]
    NeverPushed(String),
    #[error("the gateway holds {} projects named `{project}` ({}); fetch the one you mean by its id with `idse sync fetch ID`, in a folder without a project of that name", .ids.len(), .ids.join(", "))]
    SameName { project: String, ids: Vec<String> },
    #[error("the gateway has no project named `{0}` nor with that id; `idse projects` lists those it has")]
    NotOnGateway(String),
    #[error("project `{project}` has unresolved conflicts in {stages}; settle them with `idse sync resolve STAGE --take local|remote|FILE` first")]
    Unresolved { project: String, stages: String },
    #[error("{stage} of project `{project}` has no conflict to resolve")]
    NoConflict { project: String, stage: Stage },
    #[error(
        "{stage} of project `{project}` changed on disk since it was opened; look at it again"
    )]
    LocalMoved { project: String, stage: Stage },
    #[error("`{0}` is not a sha256 hash (64 hex digits) of a revision")]
    BadHash(String),
    #[error("the base of {stage} (hash {hash}) is lost locally and the gateway no longer has it")]
    LostBase { stage: Stage, hash: String },
}

/// Where a stage stands between the local file and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    InSync,
    LocalChanges,
    RemoteChanges,
    Both,
    Conflict,
    NeverPushed,
    /// Neither side has the stage.
    Absent,
}

impl SyncStatus {
    pub fn label(self) -> &'static str {
        match self {
            SyncStatus::InSync => "in sync",
            SyncStatus::LocalChanges => "local changes",
            SyncStatus::RemoteChanges => "remote changes",
            SyncStatus::Both => "both changed",
            SyncStatus::Conflict => "conflict",
            SyncStatus::NeverPushed => "never pushed",
            SyncStatus::Absent => "absent",
        }
    }
}

/// A stage in conflict: what the remote held when the conflict was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub base_hash: Option<String>,
    pub remote_hash: String,
    pub detected_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionSync {
    #[serde(default)]
    revision: i64,
    /// Artifact key → hash of the base text.
    #[serde(default)]
    bases: BTreeMap<String, String>,
    #[serde(default)]
    conflicts: BTreeMap<String, ConflictRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SyncFile {
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    sessions: BTreeMap<String, SessionSync>,
}

/// `.idse/projects/<project>/.sync/`: the bases, their hashes and open conflicts.
#[derive(Debug)]
pub struct SyncState {
    dir: PathBuf,
    file: SyncFile,
}

impl SyncState {
    pub fn load(project: &Project) -> Result<Self, WorkspaceError> {
        let dir = project.dir.join(".sync");
        let path = dir.join("state.json");
        let file = match read_optional(&path)? {
            Some(text) => serde_json::from_str(&text).map_err(|source| WorkspaceError::Json {
                path: path.clone(),
                source,
            })?,
            None => SyncFile::default(),
        };
        Ok(Self { dir, file })
    }

    pub fn save(&self) -> Result<(), WorkspaceError> {
        let text = serde_json::to_string_pretty(&self.file).unwrap_or_default();
        write_file(&self.dir.join("state.json"), &text)
    }

    pub fn project_id(&self) -> Option<&str> {
        self.file.project_id.as_deref()
    }

    fn session(&self, session: &str) -> Option<&SessionSync> {
        self.file.sessions.get(session)
    }

    fn session_mut(&mut self, session: &str) -> &mut SessionSync {
        self.file.sessions.entry(session.to_owned()).or_default()
    }

    pub fn base_hash(&self, session: &str, stage: Stage) -> Option<&str> {
        self.session(session)?
            .bases
            .get(stage.artifact_key())
            .map(String::as_str)
    }

    /// The gateway's revision this session was last pushed or pulled at.
    pub fn revision(&self, session: &str) -> Option<i64> {
        self.session(session).map(|s| s.revision)
    }

    pub fn conflict(&self, session: &str, stage: Stage) -> Option<&ConflictRecord> {
        self.session(session)?.conflicts.get(stage.artifact_key())
    }

    fn text_path(&self, kind: &str, session: &str, stage: Stage) -> PathBuf {
        self.dir.join(kind).join(session).join(stage.artifact_key())
    }

    /// The base text, if it is kept here and still matches its hash.
    pub fn base_text(&self, session: &str, stage: Stage) -> Result<Option<String>, WorkspaceError> {
        let Some(hash) = self.base_hash(session, stage) else {
            return Ok(None);
        };
        let text = read_optional(&self.text_path("base", session, stage))?;
        Ok(text.filter(|t| content_hash(t) == hash))
    }

    /// The remote text recorded with a conflict.
    pub fn remote_text(
        &self,
        session: &str,
        stage: Stage,
    ) -> Result<Option<String>, WorkspaceError> {
        read_optional(&self.text_path("remote", session, stage))
    }

    fn set_base(&mut self, session: &str, stage: Stage, text: &str) -> Result<(), WorkspaceError> {
        write_file(&self.text_path("base", session, stage), text)?;
        self.session_mut(session)
            .bases
            .insert(stage.artifact_key().to_owned(), content_hash(text));
        Ok(())
    }

    fn record_conflict(
        &mut self,
        session: &str,
        stage: Stage,
        remote: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WorkspaceError> {
        write_file(&self.text_path("remote", session, stage), remote)?;
        let base_hash = self.base_hash(session, stage).map(str::to_owned);
        self.session_mut(session).conflicts.insert(
            stage.artifact_key().to_owned(),
            ConflictRecord {
                base_hash,
                remote_hash: content_hash(remote),
                detected_at: now,
            },
        );
        Ok(())
    }

    fn clear_conflict(&mut self, session: &str, stage: Stage) {
        self.session_mut(session)
            .conflicts
            .remove(stage.artifact_key());
        let _ = std::fs::remove_file(self.text_path("remote", session, stage));
    }
}

/// The stage's sync state from what is on disk (no gateway): local edits, conflicts, never pushed.
pub fn local_status(
    state: &SyncState,
    session: &str,
    stage: Stage,
    local: Option<&str>,
) -> SyncStatus {
    if state.conflict(session, stage).is_some() {
        return SyncStatus::Conflict;
    }
    match (state.base_hash(session, stage), local) {
        (None, None) => SyncStatus::Absent,
        (None, Some(_)) => SyncStatus::NeverPushed,
        (Some(_), None) => SyncStatus::LocalChanges,
        (Some(base), Some(text)) if content_hash(text) == base => SyncStatus::InSync,
        (Some(_), Some(_)) => SyncStatus::LocalChanges,
    }
}

/// Adds what the gateway holds (`remote_hash`) to a local status; `local_hash` is the file's.
pub fn with_remote(
    local: SyncStatus,
    base: Option<&str>,
    local_hash: Option<&str>,
    remote_hash: Option<&str>,
) -> SyncStatus {
    // Never synced from here, but already the gateway's text (a teammate's copy of the files):
    // a pull only records it.
    if local == SyncStatus::NeverPushed && local_hash.is_some() && local_hash == remote_hash {
        return SyncStatus::InSync;
    }
    let remote_moved = match (base, remote_hash) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(b), Some(r)) => b != r,
    };
    match (local, remote_moved) {
        (SyncStatus::Conflict, _) => SyncStatus::Conflict,
        (SyncStatus::LocalChanges, true) | (SyncStatus::NeverPushed, true) => SyncStatus::Both,
        (SyncStatus::InSync, true) | (SyncStatus::Absent, true) => SyncStatus::RemoteChanges,
        (other, _) => other,
    }
}

/// The remote project id: the one `.sync/` recorded, else the one the Python client wrote.
pub fn remote_id(project: &Project, state: &SyncState) -> Result<Option<String>, WorkspaceError> {
    match state.project_id() {
        Some(id) => Ok(Some(id.to_owned())),
        None => project.remote_id(),
    }
}

/// The remote project id, as [`remote_id`]; for a project this copy never synced, that of the
/// gateway's project of the same name, where a push by name goes. So a teammate who ran
/// `idse init` with the team's project name can pull the team's texts instead of being told to
/// push first, and then refused because those texts are not theirs.
pub async fn find_remote_id(
    project: &Project,
    state: &SyncState,
    gateway: &Gateway,
) -> Result<Option<String>, SyncError> {
    if let Some(id) = remote_id(project, state)? {
        return Ok(Some(id));
    }
    match gateway_project(gateway, &project.name).await {
        Ok(id) => Ok(Some(id)),
        Err(SyncError::NotOnGateway(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The id of the gateway's project with this id or, failing that, this name.
pub async fn gateway_project(gateway: &Gateway, id_or_name: &str) -> Result<String, SyncError> {
    let listed = gateway.projects().await?.projects;
    if listed.iter().any(|p| p.id == id_or_name) {
        return Ok(id_or_name.to_owned());
    }
    let mut ids: Vec<String> = listed
        .into_iter()
        .filter(|p| p.name == id_or_name)
        .map(|p| p.id)
        .collect();
    match ids.len() {
        0 => Err(SyncError::NotOnGateway(id_or_name.to_owned())),
        1 => Ok(ids.remove(0)),
        _ => Err(SyncError::SameName {
            project: id_or_name.to_owned(),
            ids,
        }),
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub project: String,
    pub project_id: Option<String>,
    /// Stages sent and accepted.
    pub pushed: Vec<Stage>,
    /// Stages the gateway refused because they changed remotely; nothing was written.
    pub conflicts: Vec<Stage>,
    pub revision: Option<i64>,
}

/// Sends every selected stage whose file differs from its base.
pub async fn push(
    project: &Project,
    gateway: &Gateway,
    stages: &[Stage],
    force: bool,
    now: DateTime<Utc>,
) -> Result<PushReport, SyncError> {
    let session = project.active_session()?;
    let mut state = SyncState::load(project)?;
    let conflicted: Vec<&str> = stages
        .iter()
        .filter(|s| state.conflict(&session, **s).is_some())
        .map(|s| s.as_str())
        .collect();
    if !conflicted.is_empty() && !force {
        return Err(SyncError::Unresolved {
            project: project.name.clone(),
            stages: conflicted.join(", "),
        });
    }
    let mut texts = BTreeMap::new();
    for &stage in stages {
        if let Some(text) = project.read_stage(&session, stage)? {
            if state.base_hash(&session, stage) != Some(content_hash(&text).as_str()) {
                texts.insert(stage, text);
            }
        }
    }
    let project_id = remote_id(project, &state)?;
    let mut report = PushReport {
        project: project.name.clone(),
        project_id: project_id.clone(),
        ..PushReport::default()
    };
    if texts.is_empty() {
        return Ok(report);
    }
    let local_state = project.state()?;
    let base = texts
        .keys()
        .filter_map(|s| {
            state
                .base_hash(&session, *s)
                .map(|h| (s.artifact_key().to_owned(), h.to_owned()))
        })
        .collect();
    let request = PushRequest {
        project_id: project_id.clone(),
        project_name: project.name.clone(),
        stack: local_state
            .get("stack")
            .and_then(Value::as_str)
            .map(str::to_owned),
        artifacts: texts
            .iter()
            .map(|(s, t)| (s.artifact_key().to_owned(), Some(t.clone())))
            .collect(),
        state_json: Some(Value::Object(local_state.clone())),
        session_id: Some(session.clone()),
        timestamp: Some(now.to_rfc3339()),
        base: Some(base),
        agent: project.last_agent(&local_state),
        force: force.then_some(true),
        ..PushRequest::default()
    };
    match gateway.push(&request).await? {
        PushAnswer::Conflict(conflicts) => {
            report.conflicts = conflicts
                .iter()
                .filter_map(|c| c.stage.parse().ok())
                .collect();
            Ok(report)
        }
        PushAnswer::Accepted(answer) => {
            // Only now, with the gateway's yes, do the bases move.
            for (stage, text) in &texts {
                state.set_base(&session, *stage, text)?;
                if force {
                    state.clear_conflict(&session, *stage);
                }
            }
            state.file.project_id = Some(answer.project_id.clone());
            state.session_mut(&session).revision = answer.revision;
            state.save()?;
            project.record_remote(&answer.project_id, now)?;
            let mut local_state = local_state;
            local_state.insert("last_sync".into(), Value::from(now.to_rfc3339()));
            project.write_state(&local_state)?;
            report.project_id = Some(answer.project_id);
            report.pushed = texts.into_keys().collect();
            report.revision = Some(answer.revision);
            Ok(report)
        }
    }
}

/// What a pull did to one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullOutcome {
    /// Nothing to do.
    Unchanged,
    /// Only the remote moved: its text was written.
    Updated,
    /// Both moved and merged cleanly: the merge was written, to be pushed next.
    Merged,
    /// Both moved to the same text.
    Agreed,
    /// Only the local file moved: kept, to be pushed.
    LocalKept,
    /// Both moved and the merge conflicts: recorded, file untouched.
    Conflict,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    pub project: String,
    pub stages: Vec<(Stage, PullOutcome)>,
    pub revision: Option<i64>,
}

pub(crate) async fn base_text(
    state: &SyncState,
    gateway: &Gateway,
    project_id: &str,
    session: &str,
    stage: Stage,
) -> Result<Option<String>, SyncError> {
    if let Some(text) = state.base_text(session, stage)? {
        return Ok(Some(text));
    }
    let Some(hash) = state.base_hash(session, stage) else {
        return Ok(None);
    };
    // The local copy of the base is gone: the gateway keeps every text, so ask it by hash.
    match gateway.text(project_id, hash).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.code() == Some("text_not_found") => Err(SyncError::LostBase {
            stage,
            hash: hash.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// What a pull does with one stage, decided from hashes alone; `pull` then writes and
/// `preview_pull` only reports, so the two cannot disagree.
enum PullStep {
    /// A conflict is already recorded.
    Conflicted,
    Unchanged,
    /// Both sides hold the remote text; only the base moves.
    Agreed,
    /// Only the local file moved.
    LocalKept,
    /// Only the remote moved: its text replaces the file.
    TakeRemote,
    /// Both moved apart: a three-way merge decides.
    Merge,
}

fn pull_step(
    state: &SyncState,
    project: &Project,
    session: &str,
    stage: Stage,
    local: Option<&str>,
    remote: &str,
) -> PullStep {
    let r_hash = content_hash(remote);
    let l_hash = local.map(content_hash);
    let b_hash = state.base_hash(session, stage);
    // Never synced, and still the template `idse init` wrote: no one's edit to keep.
    let untouched =
        b_hash.is_none() && local.is_some_and(|l| l == templates::template(stage, &project.name));
    if state.conflict(session, stage).is_some() {
        PullStep::Conflicted
    } else if l_hash.as_deref() == Some(r_hash.as_str()) {
        if b_hash == Some(r_hash.as_str()) {
            PullStep::Unchanged
        } else {
            PullStep::Agreed
        }
    } else if b_hash == Some(r_hash.as_str()) {
        PullStep::LocalKept
    } else if l_hash.is_none() || l_hash.as_deref() == b_hash || untouched {
        PullStep::TakeRemote
    } else {
        PullStep::Merge
    }
}

/// Brings the selected stages up to the gateway's copy of the active session.
pub async fn pull(
    project: &Project,
    gateway: &Gateway,
    stages: &[Stage],
    now: DateTime<Utc>,
) -> Result<PullReport, SyncError> {
    let session = project.active_session()?;
    let mut state = SyncState::load(project)?;
    let id = find_remote_id(project, &state, gateway)
        .await?
        .ok_or_else(|| SyncError::NeverPushed(project.name.clone()))?;
    let remote = gateway.pull(&id, Some(&session)).await?;
    let mut report = PullReport {
        project: project.name.clone(),
        revision: Some(remote.revision),
        ..PullReport::default()
    };
    for &stage in stages {
        let Some(r) = remote.artifacts.get(stage.artifact_key()) else {
            continue;
        };
        let local = project.read_stage(&session, stage)?;
        let outcome = match pull_step(&state, project, &session, stage, local.as_deref(), r) {
            PullStep::Conflicted => {
                if state
                    .conflict(&session, stage)
                    .is_some_and(|c| c.remote_hash != content_hash(r))
                {
                    // The remote moved again: the recorded conflict follows it.
                    state.record_conflict(&session, stage, r, now)?;
                }
                PullOutcome::Conflict
            }
            PullStep::Unchanged => PullOutcome::Unchanged,
            PullStep::Agreed => {
                state.set_base(&session, stage, r)?;
                PullOutcome::Agreed
            }
            PullStep::LocalKept => PullOutcome::LocalKept,
            PullStep::TakeRemote => {
                project.write_stage(&session, stage, r)?;
                state.set_base(&session, stage, r)?;
                PullOutcome::Updated
            }
            PullStep::Merge => {
                let local = local.unwrap_or_default();
                let base = base_text(&state, gateway, &id, &session, stage)
                    .await?
                    .unwrap_or_default();
                let merged = merge3(&base, &local, r, &MergeOptions::default());
                if merged.is_clean() {
                    project.write_stage(&session, stage, &merged.text)?;
                    state.set_base(&session, stage, r)?;
                    PullOutcome::Merged
                } else {
                    state.record_conflict(&session, stage, r, now)?;
                    PullOutcome::Conflict
                }
            }
        };
        report.stages.push((stage, outcome));
    }
    state.file.project_id = Some(id);
    state.session_mut(&session).revision = remote.revision;
    state.save()?;
    // A pull is a sync too: without this, the project of a lead who only reads the team's work
    // would show its last push as its last sync, and after a week be listed as not synced.
    let mut local_state = project.state()?;
    if !local_state.is_empty() {
        local_state.insert("last_sync".into(), Value::from(now.to_rfc3339()));
        project.write_state(&local_state)?;
    }
    Ok(report)
}

/// How to end a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Keep the local file as it is.
    Local,
    /// Replace the local file with the remote text.
    Remote,
    /// Replace the local file with this text (a hand-made merge).
    Text(String),
}

/// Ends a conflict: the file holds the chosen text, and the base becomes the remote text, so the
/// next push sends the resolution on top of what the gateway holds.
pub fn resolve(project: &Project, stage: Stage, take: Take) -> Result<(), SyncError> {
    let session = project.active_session()?;
    let mut state = SyncState::load(project)?;
    if state.conflict(&session, stage).is_none() {
        return Err(SyncError::NoConflict {
            project: project.name.clone(),
            stage,
        });
    }
    let remote = state.remote_text(&session, stage)?.unwrap_or_default();
    match take {
        Take::Local => {}
        Take::Remote => project.write_stage(&session, stage, &remote)?,
        Take::Text(text) => project.write_stage(&session, stage, &text)?,
    }
    state.set_base(&session, stage, &remote)?;
    state.clear_conflict(&session, stage);
    state.save()?;
    Ok(())
}

/// How saving a merge ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MergeSave {
    /// The file holds the merge and the gateway accepted it.
    Saved { push: PushReport },
    /// The local file changed since the merge was made from it: nothing was written.
    LocalMoved,
    /// The gateway's text moved since: the conflict now holds the new remote text, to merge
    /// again; nothing of the merge was written.
    RemoteMoved,
}

/// Saves a hand-made merge of a conflicted stage and pushes it. `local_hash` and `remote_hash`
/// name the two sides the merge was made from; if either moved since, nothing is overwritten and
/// the caller shows the new three-way state instead.
pub async fn save_merge(
    project: &Project,
    gateway: &Gateway,
    stage: Stage,
    text: &str,
    local_hash: &str,
    remote_hash: &str,
    now: DateTime<Utc>,
) -> Result<MergeSave, SyncError> {
    let session = project.active_session()?;
    let mut state = SyncState::load(project)?;
    let Some(conflict) = state.conflict(&session, stage).cloned() else {
        return Err(SyncError::NoConflict {
            project: project.name.clone(),
            stage,
        });
    };
    let local = project.read_stage(&session, stage)?.unwrap_or_default();
    if content_hash(&local) != local_hash {
        return Ok(MergeSave::LocalMoved);
    }
    let id =
        remote_id(project, &state)?.ok_or_else(|| SyncError::NeverPushed(project.name.clone()))?;
    let remote = gateway.pull(&id, Some(&session)).await?;
    let current = remote
        .artifacts
        .get(stage.artifact_key())
        .cloned()
        .unwrap_or_default();
    let current_hash = content_hash(&current);
    if current_hash != remote_hash || conflict.remote_hash != remote_hash {
        if conflict.remote_hash != current_hash {
            state.record_conflict(&session, stage, &current, now)?;
            state.save()?;
        }
        return Ok(MergeSave::RemoteMoved);
    }
    // The merge already holds the remote text's changes, so the remote text becomes the base:
    // the push then lands exactly on what the gateway holds.
    project.write_stage(&session, stage, text)?;
    state.set_base(&session, stage, &current)?;
    state.clear_conflict(&session, stage);
    state.save()?;
    crate::document::discard_draft(project, stage)?;
    let mut report = push(project, gateway, &[stage], false, now).await?;
    // A teammate may push between the check and the push. Pulling then merges their text into
    // this merge (and the push is tried again), or records the new three-way conflict.
    for _ in 0..3 {
        if !report.conflicts.contains(&stage) {
            break;
        }
        pull(project, gateway, &[stage], now).await?;
        if SyncState::load(project)?
            .conflict(&session, stage)
            .is_some()
        {
            return Ok(MergeSave::RemoteMoved);
        }
        report = push(project, gateway, &[stage], false, now).await?;
    }
    // When the gateway kept moving, `report.conflicts` still names the stage: the merge is in
    // the file, to push again.
    Ok(MergeSave::Saved { push: report })
}

/// What a push or pull would do to one stage, with line counts, before doing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagePreview {
    pub stage: Stage,
    /// For a push: the gateway would get this stage. For a pull: the file would change.
    pub changes: bool,
    pub lines_added: usize,
    pub lines_removed: usize,
    /// The push would be refused, or the pull would stop at a conflict.
    pub conflict: bool,
    /// The outcome a pull would have; `None` for a push.
    pub pull: Option<PullOutcome>,
}

/// Lines added and removed going from `old` to `new`.
pub fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut added = 0;
    let mut removed = 0;
    for op in diff.ops() {
        match op.tag() {
            similar::DiffTag::Insert => added += op.new_range().len(),
            similar::DiffTag::Delete => removed += op.old_range().len(),
            similar::DiffTag::Replace => {
                added += op.new_range().len();
                removed += op.old_range().len();
            }
            similar::DiffTag::Equal => {}
        }
    }
    (added, removed)
}

/// What `push` would send, and which stages the gateway would refuse, given the remote texts of
/// the active session (`None` when the gateway does not know the project yet). Writes nothing.
pub fn preview_push(
    project: &Project,
    remote: Option<&BTreeMap<String, String>>,
) -> Result<Vec<StagePreview>, SyncError> {
    let session = project.active_session()?;
    let state = SyncState::load(project)?;
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let Some(local) = project.read_stage(&session, stage)? else {
            continue;
        };
        let base_hash = state.base_hash(&session, stage);
        if base_hash == Some(content_hash(&local).as_str()) {
            continue;
        }
        let base = state.base_text(&session, stage)?.unwrap_or_default();
        let (lines_added, lines_removed) = line_counts(&base, &local);
        let remote_hash = remote
            .and_then(|r| r.get(stage.artifact_key()))
            .map(|t| content_hash(t));
        // The gateway refuses a stage whose remote text is no longer the base this side holds.
        let conflict = state.conflict(&session, stage).is_some()
            || match (&remote_hash, base_hash) {
                (Some(r), Some(b)) => r != b,
                (Some(r), None) => *r != content_hash(&local),
                (None, _) => false,
            };
        out.push(StagePreview {
            stage,
            changes: true,
            lines_added,
            lines_removed,
            conflict,
            pull: None,
        });
    }
    Ok(out)
}

/// What `pull` would do with these remote texts of the active session. Writes nothing.
pub fn preview_pull(
    project: &Project,
    remote: &BTreeMap<String, String>,
) -> Result<Vec<StagePreview>, SyncError> {
    let session = project.active_session()?;
    let state = SyncState::load(project)?;
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let Some(r) = remote.get(stage.artifact_key()) else {
            continue;
        };
        let local = project.read_stage(&session, stage)?;
        let outcome = match pull_step(&state, project, &session, stage, local.as_deref(), r) {
            PullStep::Conflicted => PullOutcome::Conflict,
            PullStep::Unchanged => PullOutcome::Unchanged,
            PullStep::Agreed => PullOutcome::Agreed,
            PullStep::LocalKept => PullOutcome::LocalKept,
            PullStep::TakeRemote => PullOutcome::Updated,
            // Without the base text here a merge cannot be tried; call it a conflict, as the
            // pull itself would only after asking the gateway.
            PullStep::Merge => match state.base_text(&session, stage)? {
                Some(base) => {
                    let merged = merge3(
                        &base,
                        local.as_deref().unwrap_or_default(),
                        r,
                        &MergeOptions::default(),
                    );
                    if merged.is_clean() {
                        PullOutcome::Merged
                    } else {
                        PullOutcome::Conflict
                    }
                }
                None => PullOutcome::Conflict,
            },
        };
        let (lines_added, lines_removed) = match outcome {
            PullOutcome::Updated | PullOutcome::Merged | PullOutcome::Conflict => {
                line_counts(local.as_deref().unwrap_or_default(), r)
            }
            _ => (0, 0),
        };
        out.push(StagePreview {
            stage,
            changes: matches!(outcome, PullOutcome::Updated | PullOutcome::Merged),
            lines_added,
            lines_removed,
            conflict: outcome == PullOutcome::Conflict,
            pull: Some(outcome),
        });
    }
    Ok(out)
}

/// Brings a project that exists only on the gateway into the workspace at `root`: its latest
/// session's stages, state and bases, so that the next push or pull starts in sync.
pub async fn fetch_project(
    root: &std::path::Path,
    gateway: &Gateway,
    project_id: &str,
    now: DateTime<Utc>,
) -> Result<Project, SyncError> {
    let remote = gateway.pull(project_id, None).await?;
    idse_protocol::validate_project_name(&remote.name).map_err(WorkspaceError::Name)?;
    idse_protocol::validate_session_id(&remote.session_id).map_err(WorkspaceError::Name)?;
    let workspace = crate::workspace::Workspace::at(root);
    if workspace.projects()?.iter().any(|p| p.name == remote.name) {
        return Err(WorkspaceError::Exists(remote.name).into());
    }
    let dir = workspace.idse_dir().join("projects").join(&remote.name);
    let project = Project::new(remote.name.clone(), dir, root.to_owned());
    let session = remote.session_id.clone();
    for (key, text) in &remote.artifacts {
        if let Some(stage) = Stage::from_artifact_key(key) {
            project.write_stage(&session, stage, text)?;
        }
    }
    let mut state = match &remote.state_json {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    state.insert("last_sync".into(), Value::from(now.to_rfc3339()));
    project.write_state(&state)?;
    write_file(
        &project.dir.join("CURRENT_SESSION"),
        &format!("{session}\n"),
    )?;
    let mut sync = SyncState::load(&project)?;
    for (key, text) in &remote.artifacts {
        if let Some(stage) = Stage::from_artifact_key(key) {
            sync.set_base(&session, stage, text)?;
        }
    }
    sync.file.project_id = Some(remote.project_id.clone());
    sync.session_mut(&session).revision = remote.revision;
    sync.save()?;
    project.record_remote(&remote.project_id, now)?;
    Ok(project)
}
