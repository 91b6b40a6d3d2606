//! The local workspace of DESIGN.md section 1: `.idse/projects/<project>/…`, as the Python
//! `idse` client writes it. Unknown files and unknown JSON keys are left as they are.

use std::path::{Path, PathBuf};

use idse_protocol::{Stage, BLUEPRINT_SESSION};
use serde_json::{Map, Value};

use crate::atomic::write_atomic;

/// What can go wrong reading or writing a workspace; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{0} is not inside an IDSE workspace (no .idse/projects folder); run `idse init NAME` there first")]
    NotAWorkspace(PathBuf),
    #[error("there is no project `{name}` in {root}; projects here: {available}")]
    NoProject {
        name: String,
        root: PathBuf,
        available: String,
    },
    #[error("{root} holds several projects ({available}); choose one with --project")]
    Ambiguous { root: PathBuf, available: String },
    #[error("project `{0}` already exists")]
    Exists(String),
    #[error("invalid name: {0}")]
    Name(#[from] idse_protocol::NameError),
    #[error("could not read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a file that may be missing.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, WorkspaceError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), WorkspaceError> {
    write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

/// Reads a JSON object, `None` when the file is missing.
pub(crate) fn read_json(path: &Path) -> Result<Option<Map<String, Value>>, WorkspaceError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Ok(Some(Map::new())),
        Err(source) => Err(WorkspaceError::Json {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn write_json(path: &Path, map: &Map<String, Value>) -> Result<(), WorkspaceError> {
    let mut text = serde_json::to_string_pretty(map).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    write_file(path, &text)
}

/// A folder holding `.idse/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// The workspace at `root` (which holds `.idse/`), without looking upwards.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The nearest folder at or above `start` that holds `.idse/projects`.
    pub fn discover(start: &Path) -> Result<Self, WorkspaceError> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(".idse").join("projects").is_dir() {
                return Ok(Self::at(d));
            }
            dir = d.parent();
        }
        Err(WorkspaceError::NotAWorkspace(start.to_owned()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn idse_dir(&self) -> PathBuf {
        self.root.join(".idse")
    }

    fn projects_dir(&self) -> PathBuf {
        self.idse_dir().join("projects")
    }

    /// Every project folder, by name.
    pub fn projects(&self) -> Result<Vec<Project>, WorkspaceError> {
        let dir = self.projects_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut projects = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with('.') {
                projects.push(Project {
                    name,
                    dir: entry.path(),
                    workspace: self.root.clone(),
                });
            }
        }
        projects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(projects)
    }

    /// The project called `name`, or the only one there is when `name` is `None`.
    pub fn project(&self, name: Option<&str>) -> Result<Project, WorkspaceError> {
        let projects = self.projects()?;
        let available = || {
            let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        match name {
            Some(n) => projects
                .iter()
                .find(|p| p.name == n)
                .cloned()
                .ok_or_else(|| WorkspaceError::NoProject {
                    name: n.to_owned(),
                    root: self.root.clone(),
                    available: available(),
                }),
            None if projects.len() == 1 => Ok(projects[0].clone()),
            None if projects.is_empty() => Err(WorkspaceError::NotAWorkspace(self.root.clone())),
            None => Err(WorkspaceError::Ambiguous {
                root: self.root.clone(),
                available: available(),
            }),
        }
    }

    /// `.idse/config.json`, as older clients write it.
    pub fn config(&self) -> Result<Map<String, Value>, WorkspaceError> {
        Ok(read_json(&self.idse_dir().join("config.json"))?.unwrap_or_default())
    }

    /// Creates project `name` with template stage files in the blueprint session.
    pub fn init_project(
        &self,
        name: &str,
        stack: Option<&str>,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Project, WorkspaceError> {
        idse_protocol::validate_project_name(name)?;
        let dir = self.projects_dir().join(name);
        if dir.exists() {
            return Err(WorkspaceError::Exists(name.to_owned()));
        }
        let project = Project {
            name: name.to_owned(),
            dir,
            workspace: self.root.clone(),
        };
        let session = BLUEPRINT_SESSION;
        for stage in Stage::ALL {
            write_file(
                &project.stage_path(session, stage),
                &crate::templates::template(stage, name),
            )?;
        }
        let meta = project.session_dir(session).join("metadata");
        let iso = now.to_rfc3339();
        write_file(&meta.join(".owner"), &format!("Created: {iso}\n"))?;
        let session_json = serde_json::json!({
            "session_id": session, "name": session, "session_type": "blueprint",
            "status": "active", "owner": owner, "collaborators": [], "tags": [],
            "created_at": iso,
        });
        if let Value::Object(map) = session_json {
            write_json(&meta.join("session.json"), &map)?;
        }
        write_file(&project.dir.join("CURRENT_SESSION"), session)?;
        let mut stages = Map::new();
        for stage in Stage::ALL {
            stages.insert(stage.as_str().to_owned(), Value::from("pending"));
        }
        let mut state = Map::new();
        state.insert("project_name".into(), Value::from(name));
        state.insert("session_id".into(), Value::from(session));
        state.insert("is_blueprint".into(), Value::from(true));
        state.insert("stages".into(), Value::Object(stages));
        state.insert("last_sync".into(), Value::Null);
        state.insert("validation_status".into(), Value::from("unknown"));
        state.insert("created_at".into(), Value::from(iso));
        if let Some(stack) = stack {
            state.insert("stack".into(), Value::from(stack));
        }
        write_json(&project.dir.join("session_state.json"), &state)?;
        Ok(project)
    }
}

/// One project folder, `.idse/projects/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    workspace: PathBuf,
}

impl Project {
    /// The project folder `dir` of the workspace at `workspace`.
    pub fn new(name: String, dir: PathBuf, workspace: PathBuf) -> Self {
        Self {
            name,
            dir,
            workspace,
        }
    }

    pub fn workspace(&self) -> Workspace {
        Workspace::at(self.workspace.clone())
    }

    pub fn session_dir(&self, session: &str) -> PathBuf {
        self.dir.join("sessions").join(session)
    }

    pub fn stage_path(&self, session: &str, stage: Stage) -> PathBuf {
        self.session_dir(session).join(stage.relative_path())
    }

    /// The session named in `CURRENT_SESSION`; else the newest `session-*`; else the blueprint.
    pub fn active_session(&self) -> Result<String, WorkspaceError> {
        if let Some(text) = read_optional(&self.dir.join("CURRENT_SESSION"))? {
            let id = text.trim();
            if idse_protocol::validate_session_id(id).is_ok() {
                return Ok(id.to_owned());
            }
        }
        let sessions = self.dir.join("sessions");
        let mut newest: Option<(u64, String)> = None;
        if let Ok(entries) = std::fs::read_dir(&sessions) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(ts) = name
                    .strip_prefix("session-")
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    if newest.as_ref().is_none_or(|(n, _)| ts > *n) {
                        newest = Some((ts, name));
                    }
                }
            }
        }
        Ok(newest.map_or_else(|| BLUEPRINT_SESSION.to_owned(), |(_, n)| n))
    }

    pub fn read_stage(
        &self,
        session: &str,
        stage: Stage,
    ) -> Result<Option<String>, WorkspaceError> {
        read_optional(&self.stage_path(session, stage))
    }

    pub fn write_stage(
        &self,
        session: &str,
        stage: Stage,
        text: &str,
    ) -> Result<(), WorkspaceError> {
        write_file(&self.stage_path(session, stage), text)
    }

    /// `session_state.json`, with every key it holds.
    pub fn state(&self) -> Result<Map<String, Value>, WorkspaceError> {
        Ok(read_json(&self.dir.join("session_state.json"))?.unwrap_or_default())
    }

    pub fn write_state(&self, state: &Map<String, Value>) -> Result<(), WorkspaceError> {
        write_json(&self.dir.join("session_state.json"), state)
    }

    /// The agent that last worked on the project, as `session_state.json` records it.
    pub fn last_agent(&self, state: &Map<String, Value>) -> Option<String> {
        state
            .get("last_agent")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The stage statuses recorded in `session_state.json` (`complete` read as `completed`).
    pub fn recorded_status(&self, state: &Map<String, Value>, stage: Stage) -> Option<String> {
        let status = state.get("stages")?.get(stage.as_str())?.as_str()?;
        Some(
            if status == "complete" {
                "completed"
            } else {
                status
            }
            .to_owned(),
        )
    }

    /// The remote id: `metadata/project.json` `project_uuid`, else `.idse/config.json` `project_id`.
    pub fn remote_id(&self) -> Result<Option<String>, WorkspaceError> {
        let meta = read_json(&self.dir.join("metadata").join("project.json"))?;
        if let Some(id) = meta
            .as_ref()
            .and_then(|m| m.get("project_uuid"))
            .and_then(Value::as_str)
        {
            return Ok(Some(id.to_owned()));
        }
        // config.json names one project for the whole workspace: it is this project's only when
        // it says so, or when this is the workspace's only project (as older clients left it).
        let ws = self.workspace();
        let config = ws.config()?;
        let Some(id) = config.get("project_id").and_then(Value::as_str) else {
            return Ok(None);
        };
        let mine = match config.get("project_name").and_then(Value::as_str) {
            Some(name) => name == self.name,
            None => ws.projects()?.len() == 1,
        };
        Ok(mine.then(|| id.to_owned()))
    }

    /// Records the remote id after a push, where DESIGN.md says both kinds of client look.
    pub fn record_remote(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), WorkspaceError> {
        let path = self.dir.join("metadata").join("project.json");
        let mut meta = read_json(&path)?.unwrap_or_default();
        meta.insert("project_name".into(), Value::from(self.name.clone()));
        meta.insert("project_uuid".into(), Value::from(id));
        meta.insert("last_synced".into(), Value::from(now.to_rfc3339()));
        meta.entry("created_at")
            .or_insert_with(|| Value::from(now.to_rfc3339()));
        write_json(&path, &meta)?;
        let ws = self.workspace();
        let config_path = ws.idse_dir().join("config.json");
        let mut config = ws.config()?;
        // config.json is workspace-wide; it names one project, so only claim it when free.
        let free = config
            .get("project_id")
            .and_then(Value::as_str)
            .is_none_or(|existing| existing == id);
        if free {
            config.insert("project_id".into(), Value::from(id));
            config.insert("project_name".into(), Value::from(self.name.clone()));
            config.insert("last_sync".into(), Value::from(now.to_rfc3339()));
            write_json(&config_path, &config)?;
        }
        Ok(())
    }
}
