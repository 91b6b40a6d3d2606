//! The app's state and what each command does: the folder list, the gateway link (embedded or
//! a team's), the dashboard assembled from the core's rules, and push/pull per project.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use idse_core::board::{attention, project_card, Attention, Remote};
use idse_core::shelf::{projects_in, Folder};
use idse_core::sync::{fetch_project, preview_pull, preview_push};
use idse_core::{
    Gateway, GatewayError, Project, ProjectCard, PullReport, PushReport, Shelf, StagePreview,
    SyncState,
};
use idse_protocol::{ProjectSummary, PushEvent, Stage};
use serde::Serialize;
use tokio::sync::watch;

use crate::embedded::Embedded;
use crate::error::CommandError;
use crate::settings::DeskSettings;

/// Something the window should hear about without asking.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeskEvent {
    /// Files of these projects changed on disk.
    Changed { dirs: Vec<PathBuf> },
    /// A teammate pushed.
    Remote { push: PushEvent },
    /// The live link to the gateway went up or down.
    Link { online: bool },
}

pub type EventSink = Arc<dyn Fn(DeskEvent) + Send + Sync>;

#[derive(Debug, Clone)]
struct Link {
    gateway: Gateway,
    embedded: bool,
}

/// A poisoned lock only means another command panicked mid-way; the data is still the best
/// there is, so keep serving it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `.sync/` says about a project that was pushed: enough to ask the gateway what moved.
#[derive(Debug, Clone)]
struct Synced {
    id: String,
    session: String,
    revision: Option<i64>,
}

impl Synced {
    fn read(project: &Project) -> Option<Self> {
        let state = SyncState::load(project).ok()?;
        let id = idse_core::sync::remote_id(project, &state).ok().flatten()?;
        let session = project.active_session().ok()?;
        Some(Self {
            revision: state.revision(&session),
            id,
            session,
        })
    }
}

/// Artifact key → content hash.
type StageHashes = BTreeMap<String, String>;

struct Inner {
    home: PathBuf,
    shelf: Mutex<Shelf>,
    settings: Mutex<DeskSettings>,
    link: RwLock<Link>,
    embedded: tokio::sync::Mutex<Option<Embedded>>,
    /// Project id → (revision, stage hashes of its session there), to pull only what moved.
    remote_hashes: Mutex<HashMap<String, (i64, StageHashes)>>,
    link_version: watch::Sender<u64>,
    sink: EventSink,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    started: Instant,
}

/// The app's state, shared by every command (cheap to clone).
#[derive(Clone)]
pub struct Desk {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("home", &self.inner.home)
            .finish()
    }
}

/// A project the gateway holds and no added folder does.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteOnly {
    pub project_id: String,
    pub name: String,
    pub session_id: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub last_agent: Option<String>,
    pub last_author: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayLink {
    pub url: String,
    pub embedded: bool,
    pub online: bool,
    /// Why the gateway is not serving this desk (`offline`, `unauthorized`, …), when it is not.
    pub problem: Option<CommandError>,
}

/// A folder whose projects could not be read, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct FolderProblem {
    pub folder: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub folders: Vec<Folder>,
    pub projects: Vec<ProjectCard>,
    pub remote_only: Vec<RemoteOnly>,
    pub attention: Vec<Attention>,
    pub problems: Vec<FolderProblem>,
    pub gateway: GatewayLink,
    /// Extra facts per project id from the gateway: who pushed last.
    pub remote: BTreeMap<String, RemoteFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteFacts {
    pub revision: i64,
    pub last_author: Option<String>,
    pub last_agent: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub folder: PathBuf,
    pub projects: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddFailure {
    pub path: PathBuf,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AddReport {
    pub added: Vec<Added>,
    pub failed: Vec<AddFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// `None`: the embedded gateway.
    pub gateway_url: Option<String>,
    pub has_token: bool,
    /// Where the embedded gateway listens, when it runs.
    pub embedded_url: Option<String>,
    pub home: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// connected, unreachable or unauthorized.
    pub state: String,
    pub url: String,
    pub embedded: bool,
    pub message: String,
    pub version: Option<String>,
    pub database: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Push,
    Pull,
}

/// How many projects refresh their remote state at once.
const REMOTE_FANOUT: usize = 8;

impl Desk {
    /// Opens the app's state in `home`; with no team gateway set, starts the embedded one.
    pub async fn open(home: &Path, sink: EventSink) -> anyhow::Result<Self> {
        use anyhow::Context;
        std::fs::create_dir_all(home)
            .with_context(|| format!("while creating the app's folder {}", home.display()))?;
        let shelf = Shelf::load(&home.join("folders.json"))
            .with_context(|| format!("while reading the folder list in {}", home.display()))?;
        let settings = DeskSettings::load(home)?;
        let (link, embedded) = match settings.gateway_url.as_deref() {
            Some(url) => (
                Link {
                    gateway: Gateway::new(url, settings.token.clone()),
                    embedded: false,
                },
                None,
            ),
            None => {
                let running = crate::embedded::start(home).await?;
                (
                    Link {
                        gateway: Gateway::new(&running.url, None),
                        embedded: true,
                    },
                    Some(running),
                )
            }
        };
        let (link_version, _) = watch::channel(0);
        let desk = Self {
            inner: Arc::new(Inner {
                home: home.to_owned(),
                shelf: Mutex::new(shelf),
                settings: Mutex::new(settings),
                link: RwLock::new(link),
                embedded: tokio::sync::Mutex::new(embedded),
                remote_hashes: Mutex::new(HashMap::new()),
                link_version,
                sink,
                watcher: Mutex::new(None),
                started: Instant::now(),
            }),
        };
        desk.rewatch();
        Ok(desk)
    }

    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    pub fn since_start(&self) -> Duration {
        self.inner.started.elapsed()
    }

    fn gateway(&self) -> Link {
        self.inner
            .link
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The gateway the app talks to now.
    pub fn gateway_client(&self) -> Gateway {
        self.gateway().gateway
    }

    fn shelf(&self) -> std::sync::MutexGuard<'_, Shelf> {
        lock(&self.inner.shelf)
    }

    /// Bumps whenever the gateway link changes, so the live subscription reconnects.
    pub fn link_changes(&self) -> watch::Receiver<u64> {
        self.inner.link_version.subscribe()
    }

    pub fn emit(&self, event: DeskEvent) {
        (self.inner.sink)(event);
    }

    /// The project whose folder is `dir`, once `dir` is checked against the added folders.
    pub fn project(&self, dir: &Path) -> Result<(PathBuf, Project), CommandError> {
        let shelf = self.shelf();
        let granted = shelf.grant(dir)?;
        let folder = shelf
            .folders()
            .into_iter()
            .map(|f| f.path)
            .find(|f| granted.starts_with(f))
            .ok_or_else(|| {
                CommandError::new(
                    "not_granted",
                    format!("{} is outside the added folders.", dir.display()),
                )
            })?;
        drop(shelf);
        let project = projects_in(&granted)?
            .into_iter()
            .find(|p| p.dir == granted)
            .ok_or_else(|| {
                CommandError::new(
                    "no_project",
                    format!(
                        "{} is not an IDSE project folder (…/.idse/projects/NAME).",
                        granted.display()
                    ),
                )
            })?;
        Ok((folder, project))
    }

    /// Every project on the shelf with the folder it came from, and folders that failed.
    fn local_projects(&self) -> (Vec<(PathBuf, Project)>, Vec<FolderProblem>) {
        let listing = self.shelf().projects();
        let mut projects = Vec::new();
        let mut problems = Vec::new();
        for (folder, found) in listing {
            match found {
                Ok(list) => projects.extend(list.into_iter().map(|p| (folder.clone(), p))),
                Err(e) => problems.push(FolderProblem {
                    folder,
                    message: CommandError::from(e).message,
                }),
            }
        }
        (projects, problems)
    }

    /// The stage hashes the gateway holds for a project's session, pulled only when its
    /// revision moved past what this copy last synced.
    async fn remote_hashes(
        &self,
        gateway: &Gateway,
        synced: &Synced,
        summary: &ProjectSummary,
    ) -> Option<BTreeMap<String, String>> {
        if synced.revision == Some(summary.revision) {
            return None;
        }
        if let Some((rev, hashes)) = lock(&self.inner.remote_hashes).get(&summary.id) {
            if *rev == summary.revision {
                return Some(hashes.clone());
            }
        }
        let pulled = gateway
            .pull(&summary.id, Some(&synced.session))
            .await
            .ok()?;
        lock(&self.inner.remote_hashes).insert(
            summary.id.clone(),
            (summary.revision, pulled.hashes.clone()),
        );
        Some(pulled.hashes)
    }

    /// Everything the dashboard shows, read fresh from disk and the gateway.
    pub async fn dashboard(&self, now: DateTime<Utc>) -> Dashboard {
        let link = self.gateway();
        let (local, problems) = self.local_projects();
        let (summaries, problem): (HashMap<String, ProjectSummary>, _) =
            match link.gateway.projects().await {
                Ok(l) => (
                    l.projects.into_iter().map(|p| (p.id.clone(), p)).collect(),
                    None,
                ),
                Err(e) => (HashMap::new(), Some(CommandError::from(e))),
            };
        let online = problem.is_none();
        let synced: Vec<Option<Synced>> = local.iter().map(|(_, p)| Synced::read(p)).collect();
        // Owned futures: borrowed ones make the command's future not `Send` for every lifetime.
        let lookups: Vec<_> = synced
            .iter()
            .map(|synced| {
                let desk = self.clone();
                let gateway = link.gateway.clone();
                let known = synced
                    .as_ref()
                    .and_then(|k| Some((k.clone(), summaries.get(&k.id)?.clone())));
                async move {
                    match known {
                        Some((k, s)) => desk.remote_hashes(&gateway, &k, &s).await,
                        None => None,
                    }
                }
            })
            .collect();
        let hashes: Vec<Option<BTreeMap<String, String>>> = futures::stream::iter(lookups)
            .buffered(REMOTE_FANOUT)
            .collect()
            .await;
        let mut projects = Vec::with_capacity(local.len());
        let mut problems = problems;
        for ((folder, project), hashes) in local.iter().zip(&hashes) {
            let remote = if online {
                Remote::Online {
                    hashes: hashes.as_ref(),
                }
            } else {
                Remote::Offline
            };
            match project_card(project, folder, remote) {
                Ok(card) => projects.push(card),
                Err(e) => problems.push(FolderProblem {
                    folder: project.dir.clone(),
                    message: CommandError::from(e).message,
                }),
            }
        }
        let known: std::collections::HashSet<&str> =
            synced.iter().flatten().map(|k| k.id.as_str()).collect();
        let mut remote_only: Vec<RemoteOnly> = summaries
            .values()
            .filter(|s| !known.contains(s.id.as_str()))
            .map(|s| RemoteOnly {
                project_id: s.id.clone(),
                name: s.name.clone(),
                session_id: s.session_id.clone(),
                updated_at: s.updated_at,
                last_agent: s.last_agent.clone(),
                last_author: s.last_author.clone(),
            })
            .collect();
        remote_only.sort_by(|a, b| a.name.cmp(&b.name));
        let remote = summaries
            .values()
            .filter(|s| known.contains(s.id.as_str()))
            .map(|s| {
                (
                    s.id.clone(),
                    RemoteFacts {
                        revision: s.revision,
                        last_author: s.last_author.clone(),
                        last_agent: s.last_agent.clone(),
                        updated_at: s.updated_at,
                    },
                )
            })
            .collect();
        Dashboard {
            folders: self.shelf().folders(),
            attention: attention(&projects, now),
            projects,
            remote_only,
            problems,
            gateway: GatewayLink {
                url: link.gateway.url().to_owned(),
                embedded: link.embedded,
                online,
                problem,
            },
            remote,
        }
    }

    /// Adds folders (dropped or picked); each one that holds no project gets its own reason.
    pub fn add_folders(&self, paths: &[PathBuf]) -> AddReport {
        let mut report = AddReport::default();
        {
            let mut shelf = self.shelf();
            for path in paths {
                match shelf.add(path) {
                    Ok((folder, projects)) => report.added.push(Added {
                        folder,
                        projects: projects.into_iter().map(|p| p.name).collect(),
                    }),
                    Err(e) => {
                        let e = CommandError::from(e);
                        report.failed.push(AddFailure {
                            path: path.clone(),
                            code: e.code,
                            message: e.message,
                        });
                    }
                }
            }
        }
        if !report.added.is_empty() {
            self.rewatch();
        }
        report
    }

    pub fn remove_folder(&self, folder: &Path) -> Result<bool, CommandError> {
        let removed = self.shelf().remove(folder)?;
        if removed {
            self.rewatch();
        }
        Ok(removed)
    }

    async fn remote_texts(
        &self,
        gateway: &Gateway,
        project: &Project,
    ) -> Result<Option<BTreeMap<String, String>>, CommandError> {
        let state = SyncState::load(project)?;
        let Some(id) = idse_core::sync::find_remote_id(project, &state, gateway).await? else {
            return Ok(None);
        };
        let session = project.active_session()?;
        match gateway.pull(&id, Some(&session)).await {
            Ok(p) => Ok(Some(p.artifacts)),
            Err(GatewayError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// What a push or pull would change, stage by stage, without changing anything.
    pub async fn preview(
        &self,
        dir: &Path,
        direction: Direction,
    ) -> Result<Vec<StagePreview>, CommandError> {
        let (_, project) = self.project(dir)?;
        let link = self.gateway();
        let remote = self.remote_texts(&link.gateway, &project).await?;
        Ok(match direction {
            Direction::Push => preview_push(&project, remote.as_ref())?,
            Direction::Pull => preview_pull(&project, &remote.unwrap_or_default())?,
        })
    }

    pub async fn push(&self, dir: &Path, now: DateTime<Utc>) -> Result<PushReport, CommandError> {
        let (_, project) = self.project(dir)?;
        let link = self.gateway();
        Ok(idse_core::sync::push(&project, &link.gateway, &Stage::ALL, false, now).await?)
    }

    pub async fn pull(&self, dir: &Path, now: DateTime<Utc>) -> Result<PullReport, CommandError> {
        let (_, project) = self.project(dir)?;
        let link = self.gateway();
        Ok(idse_core::sync::pull(&project, &link.gateway, &Stage::ALL, now).await?)
    }

    /// Brings a project known only to the gateway into `folder` (a repository root), which
    /// must be an added folder or inside one; the folder then holds it like any other.
    pub async fn fetch(
        &self,
        project_id: &str,
        folder: &Path,
        now: DateTime<Utc>,
    ) -> Result<ProjectCard, CommandError> {
        let root = {
            let shelf = self.shelf();
            match shelf.grant(folder) {
                Ok(root) => root,
                // A folder picked for the purpose is a grant in itself.
                Err(_) => std::fs::canonicalize(folder).map_err(|_| {
                    CommandError::new(
                        "missing",
                        format!(
                            "{} does not exist; pick an existing folder.",
                            folder.display()
                        ),
                    )
                })?,
            }
        };
        let link = self.gateway();
        let project = fetch_project(&root, &link.gateway, project_id, now).await?;
        self.add_folders(std::slice::from_ref(&root));
        let (folder, project) = self.project(&project.dir)?;
        Ok(project_card(
            &project,
            &folder,
            Remote::Online { hashes: None },
        )?)
    }

    pub fn settings(&self) -> SettingsView {
        let settings = lock(&self.inner.settings).clone();
        let link = self.gateway();
        SettingsView {
            gateway_url: settings.gateway_url,
            has_token: settings.token.is_some(),
            embedded_url: link.embedded.then(|| link.gateway.url().to_owned()),
            home: self.inner.home.clone(),
        }
    }

    /// Switches to a team gateway (`Some(url)`) or back to the embedded one (`None`).
    /// `token`: `Some("")` clears it, `None` keeps it.
    pub async fn save_settings(
        &self,
        gateway_url: Option<String>,
        token: Option<String>,
    ) -> Result<SettingsView, CommandError> {
        let url = gateway_url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        if let Some(u) = &url {
            let ok = reqwest::Url::parse(u)
                .map(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(CommandError::new(
                    "invalid_url",
                    format!("{u} is not a gateway address; use one like https://sync.example.com."),
                ));
            }
        }
        let mut settings = lock(&self.inner.settings).clone();
        settings.gateway_url = url.clone();
        match token {
            Some(t) if t.trim().is_empty() => settings.token = None,
            Some(t) => settings.token = Some(t.trim().to_owned()),
            None => {}
        }
        settings.save(&self.inner.home).map_err(|e| {
            CommandError::new("io", format!("The settings could not be saved: {e:#}."))
        })?;
        let link = match &url {
            Some(u) => {
                *self.inner.embedded.lock().await = None;
                Link {
                    gateway: Gateway::new(u, settings.token.clone()),
                    embedded: false,
                }
            }
            None => {
                let mut embedded = self.inner.embedded.lock().await;
                if embedded.is_none() {
                    *embedded = Some(crate::embedded::start(&self.inner.home).await.map_err(
                        |e| {
                            CommandError::new(
                                "embedded",
                                format!("The embedded gateway could not start: {e:#}."),
                            )
                        },
                    )?);
                }
                let url = embedded.as_ref().map(|e| e.url.clone()).unwrap_or_default();
                Link {
                    gateway: Gateway::new(&url, None),
                    embedded: true,
                }
            }
        };
        *lock(&self.inner.settings) = settings;
        *self.inner.link.write().unwrap_or_else(|p| p.into_inner()) = link;
        lock(&self.inner.remote_hashes).clear();
        self.inner.link_version.send_modify(|v| *v += 1);
        Ok(self.settings())
    }

    /// Whether the gateway answers, and whether it takes the token.
    pub async fn health(&self) -> Health {
        let link = self.gateway();
        let url = link.gateway.url().to_owned();
        let base = |state: &str, message: String| Health {
            state: state.to_owned(),
            url: url.clone(),
            embedded: link.embedded,
            message,
            version: None,
            database: None,
        };
        let health = match link.gateway.health().await {
            Ok(h) => h,
            Err(e) => return base("unreachable", CommandError::from(e).message),
        };
        if let Err(e) = link.gateway.projects().await {
            let e = CommandError::from(e);
            let state = if e.code == "unauthorized" {
                "unauthorized"
            } else {
                "unreachable"
            };
            return base(state, e.message);
        }
        let mut out = base(
            "connected",
            format!(
                "Connected to {} (gateway {}, {}).",
                if link.embedded {
                    "the embedded gateway"
                } else {
                    url.as_str()
                },
                health.version,
                health.database
            ),
        );
        if health.status != "healthy" {
            out.state = "unreachable".into();
            out.message = format!(
                "The gateway at {url} answers but its database does not; try again shortly."
            );
        }
        out.version = Some(health.version);
        out.database = Some(health.database);
        out
    }

    /// Watches the `.idse` folder of every workspace on the shelf, again after each change.
    fn rewatch(&self) {
        let roots: Vec<PathBuf> = self
            .local_projects()
            .0
            .iter()
            .map(|(_, p)| p.workspace().idse_dir())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let watcher = crate::watch::watch(&roots, self.inner.sink.clone());
        match watcher {
            Ok(w) => {
                *lock(&self.inner.watcher) = Some(w);
            }
            Err(e) => tracing::warn!(error = %e, "file watching is off; cards refresh on demand"),
        }
    }
}
