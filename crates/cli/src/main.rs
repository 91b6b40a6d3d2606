//! `idse`: the IDSE pipeline workspace from the command line — init, validate, status, sync
//! with the Agency gateway, and a `git merge-file`-compatible three-way merge.

mod mcp;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Parser, Subcommand};
use idse_core::config::{self, Overrides};
use idse_core::sync::{self, SyncState};
use idse_core::{
    merge3, validate, ConflictStyle, Gateway, MergeOptions, Project, PullOutcome, Take, Workspace,
};
use idse_protocol::Stage;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "idse",
    version,
    about = "IDSE pipeline docs, offline and in sync"
)]
struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The project to act on (needed when the workspace holds several).
    #[arg(long, global = true)]
    project: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// The gateway (else IDSE_AGENCY_URL, .idse/config.json, ~/.idseconfig.json, localhost:8000).
    #[arg(long, global = true, value_name = "URL")]
    agency_url: Option<String>,
    /// Bearer token for a team gateway (else IDSE_TOKEN or ~/.idseconfig.json).
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project with template stage files.
    Init {
        /// The project's name (a folder name: letters, digits, spaces, `-`, `_`, `.`).
        name: String,
        /// The project's stack, e.g. "rust, axum" (sent to the gateway with each push).
        #[arg(long)]
        stack: Option<String>,
    },
    /// Check every stage; exits 1 when a stage has errors.
    Validate,
    /// Each stage's status, last agent and sync state (no network).
    Status,
    /// Projects on the gateway.
    Projects,
    /// Push, pull and settle conflicts with the gateway.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Serve the workspace to coding agents over the Model Context Protocol (stdio).
    Mcp,
    /// Three-way merge of files, as `git merge-file`: exit status is the number of conflicts.
    MergeFile {
        /// Print the result instead of writing it into LOCAL.
        #[arg(short = 'p', long = "stdout")]
        stdout: bool,
        /// Show the base section in conflicts.
        #[arg(long)]
        diff3: bool,
        /// Labels for local, base and remote (default: the file names).
        #[arg(short = 'L', num_args = 1, action = clap::ArgAction::Append)]
        labels: Vec<String>,
        /// Your version; receives the result unless --stdout.
        local: PathBuf,
        /// The common ancestor of the two versions.
        base: PathBuf,
        /// The other version.
        remote: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Send stages that changed locally (all when none are named).
    Push {
        /// Stages to push, e.g. `spec plan` (default: every stage).
        #[arg(value_name = "STAGE")]
        stages: Vec<String>,
        /// Every project of the workspace.
        #[arg(long)]
        all: bool,
        /// Overwrite remote changes (they stay in the gateway's history).
        #[arg(long)]
        force: bool,
    },
    /// Bring in remote changes, merging where both sides changed.
    Pull {
        /// Stages to pull, e.g. `spec plan` (default: every stage).
        #[arg(value_name = "STAGE")]
        stages: Vec<String>,
        /// Every project of the workspace.
        #[arg(long)]
        all: bool,
    },
    /// Compare each stage with the gateway.
    Status,
    /// Bring a project that exists only on the gateway into this folder, in sync.
    Fetch {
        /// The project's name or id on the gateway (`idse projects` lists them).
        #[arg(value_name = "PROJECT")]
        project_id: String,
    },
    /// End a conflict by taking the local file, the remote text, or a file of yours.
    Resolve {
        /// The stage in conflict, e.g. `spec`.
        stage: String,
        /// `local` keeps your file, `remote` takes the gateway's text, or a path takes that
        /// file (say, one you merged by hand).
        #[arg(long, value_name = "local|remote|FILE")]
        take: String,
    },
}

fn stages_from(names: &[String]) -> anyhow::Result<Vec<Stage>> {
    if names.is_empty() {
        return Ok(Stage::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| n.parse::<Stage>().map_err(anyhow::Error::from))
        .collect()
}

struct Ctx {
    cli: Cli,
    cwd: PathBuf,
    home: Option<PathBuf>,
}

impl Ctx {
    fn start_dir(&self) -> PathBuf {
        match &self.cli.dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => self.cwd.join(d),
            None => self.cwd.clone(),
        }
    }

    fn workspace(&self) -> anyhow::Result<Workspace> {
        Ok(Workspace::discover(&self.start_dir())?)
    }

    /// The project named by --project, the only one, or the one the current folder is in.
    fn project(&self, ws: &Workspace) -> anyhow::Result<Project> {
        if self.cli.project.is_none() {
            if let Some(p) = self.project_here(&ws.projects()?) {
                return Ok(p);
            }
        }
        Ok(ws.project(self.cli.project.as_deref())?)
    }

    /// Of `projects`, the one whose folder the command was started in (for when --project
    /// names none).
    fn project_here(&self, projects: &[Project]) -> Option<Project> {
        let start = self.start_dir();
        projects.iter().find(|p| start.starts_with(&p.dir)).cloned()
    }

    fn projects(&self, ws: &Workspace, all: bool) -> anyhow::Result<Vec<Project>> {
        if all {
            Ok(ws.projects()?)
        } else {
            Ok(vec![self.project(ws)?])
        }
    }

    fn gateway(&self, ws: Option<&Workspace>) -> anyhow::Result<Gateway> {
        let env_url = std::env::var("IDSE_AGENCY_URL").ok();
        let env_token = std::env::var("IDSE_TOKEN").ok();
        let settings = config::resolve(
            &Overrides {
                flag_url: self.cli.agency_url.as_deref(),
                env_url: env_url.as_deref(),
                flag_token: self.cli.token.as_deref(),
                env_token: env_token.as_deref(),
            },
            ws,
            self.home.as_deref(),
        )?;
        Ok(Gateway::new(&settings.agency_url, settings.token))
    }

    fn print(&self, value: &Value, human: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        let text = if self.cli.json {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            human()
        };
        let _ = writeln!(out, "{}", text.trim_end());
    }
}

fn progress(len: usize, json: bool) -> indicatif::ProgressBar {
    if json || len < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the current folder: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = Ctx {
        cli,
        cwd,
        home: dirs::home_dir(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&ctx)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if ctx.cli.json {
                println!("{}", json!({"success": false, "error": format!("{e:#}")}));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    match &ctx.cli.command {
        Command::Init { name, stack } => init(ctx, name, stack.as_deref()),
        Command::Validate => validate_cmd(ctx),
        Command::Status => status(ctx),
        Command::Projects => projects(ctx).await,
        Command::Mcp => {
            let ws = ctx.workspace()?;
            let gateway = ctx.gateway(Some(&ws))?;
            mcp::serve_stdio(ws.root().to_owned(), gateway).await?;
            Ok(0)
        }
        Command::MergeFile {
            stdout,
            diff3,
            labels,
            local,
            base,
            remote,
        } => merge_file(ctx, *stdout, *diff3, labels, [local, base, remote]),
        Command::Sync { command } => match command {
            SyncCommand::Push { stages, all, force } => push(ctx, stages, *all, *force).await,
            SyncCommand::Pull { stages, all } => pull(ctx, stages, *all).await,
            SyncCommand::Status => sync_status(ctx).await,
            SyncCommand::Fetch { project_id } => fetch(ctx, project_id).await,
            SyncCommand::Resolve { stage, take } => resolve(ctx, stage, take),
        },
    }
}

fn init(ctx: &Ctx, name: &str, stack: Option<&str>) -> anyhow::Result<u8> {
    let root = ctx.start_dir();
    let ws = Workspace::discover(&root).unwrap_or_else(|_| Workspace::at(&root));
    let owner = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let project = ws.init_project(name, stack, &owner, Utc::now())?;
    ctx.print(&json!({"success": true, "project": name, "path": project.dir}), || {
        format!(
            "Created project {name} in {}.\nFill in the [REQUIRES INPUT] markers, then `idse validate`.",
            project.dir.display()
        )
    });
    Ok(0)
}

fn validate_cmd(ctx: &Ctx) -> anyhow::Result<u8> {
    let ws = ctx.workspace()?;
    let project = ctx.project(&ws)?;
    let session = project.active_session()?;
    let reports = validate(&project, &session)?;
    let errors: usize = reports.iter().map(|r| r.errors.len()).sum();
    let warnings: usize = reports.iter().map(|r| r.warnings.len()).sum();
    ctx.print(
        &json!({"project": project.name, "session": session, "errors": errors, "warnings": warnings, "stages": reports}),
        || {
            let mut s = format!("{} ({session})\n", project.name);
            for r in &reports {
                s.push_str(&format!("  {:<15} {}\n", r.stage.as_str(), r.status.as_str()));
                for e in &r.errors {
                    s.push_str(&format!("    error: {e}\n"));
                }
                for w in &r.warnings {
                    s.push_str(&format!("    warning: {w}\n"));
                }
            }
            s.push_str(&format!("{errors} error(s), {warnings} warning(s)"));
            s
        },
    );
    Ok(u8::from(errors > 0))
}

/// `status` and `sync status` as JSON: the core's view, plus a label per stage for people.
fn stage_rows(
    project: &Project,
    remote: Option<&std::collections::BTreeMap<String, String>>,
) -> anyhow::Result<Value> {
    let status = idse_core::project_status(project, remote)?;
    let mut v = serde_json::to_value(&status)?;
    for (row, stage) in v["stages"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .zip(&status.stages)
    {
        row["sync_label"] = Value::from(stage.sync.label());
        row["problems"] = Value::from(stage.errors.len() + stage.warnings.len());
    }
    Ok(v)
}

fn render_rows(v: &Value) -> String {
    let mut s = format!(
        "{}  session {}  last agent {}  last sync {}\n",
        v["project"].as_str().unwrap_or(""),
        v["session"].as_str().unwrap_or(""),
        v["last_agent"].as_str().unwrap_or("-"),
        v["last_sync"].as_str().unwrap_or("never"),
    );
    for row in v["stages"].as_array().into_iter().flatten() {
        let problems = row["problems"].as_u64().unwrap_or(0);
        s.push_str(&format!(
            "  {:<15} {:<12} {:<15}{}\n",
            row["stage"].as_str().unwrap_or(""),
            row["status"].as_str().unwrap_or(""),
            row["sync_label"].as_str().unwrap_or(""),
            if problems > 0 {
                format!(" {problems} problem(s)")
            } else {
                String::new()
            }
        ));
    }
    s
}

fn status(ctx: &Ctx) -> anyhow::Result<u8> {
    let ws = ctx.workspace()?;
    let projects = if ctx.cli.project.is_some() {
        vec![ctx.project(&ws)?]
    } else {
        // Inside a project's folder, that project; at the top of a workspace of several, all.
        // One listing of the workspace serves all three cases.
        let all = ws.projects()?;
        match ctx.project_here(&all) {
            Some(here) => vec![here],
            None if all.len() > 1 => all,
            None => vec![ws.project(None)?],
        }
    };
    let rows: Vec<Value> = projects
        .iter()
        .map(|p| stage_rows(p, None))
        .collect::<anyhow::Result<_>>()?;
    ctx.print(&json!({"projects": rows}), || {
        rows.iter().map(render_rows).collect::<Vec<_>>().join("\n")
    });
    Ok(0)
}

async fn projects(ctx: &Ctx) -> anyhow::Result<u8> {
    let ws = ctx.workspace().ok();
    let gateway = ctx.gateway(ws.as_ref())?;
    let list = gateway.projects().await?;
    ctx.print(&serde_json::to_value(&list)?, || {
        let mut s = format!("{} project(s) on {}\n", list.count, gateway.url());
        for p in &list.projects {
            s.push_str(&format!(
                "  {:<24} {}  updated {}\n",
                p.name,
                p.id,
                p.updated_at.format("%Y-%m-%d %H:%M")
            ));
        }
        s
    });
    Ok(0)
}

async fn push(ctx: &Ctx, names: &[String], all: bool, force: bool) -> anyhow::Result<u8> {
    let stages = stages_from(names)?;
    let ws = ctx.workspace()?;
    let gateway = ctx.gateway(Some(&ws))?;
    let projects = ctx.projects(&ws, all)?;
    let bar = progress(projects.len(), ctx.cli.json);
    let mut reports = Vec::new();
    let mut conflicts = false;
    for project in &projects {
        bar.set_message(project.name.clone());
        let report = sync::push(project, &gateway, &stages, force, Utc::now())
            .await
            .with_context(|| format!("while pushing {}", project.name))?;
        conflicts |= !report.conflicts.is_empty();
        reports.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    ctx.print(&json!({"success": !conflicts, "projects": reports}), || {
        reports
            .iter()
            .map(|r| {
                if !r.conflicts.is_empty() {
                    let names: Vec<&str> = r.conflicts.iter().map(|s| s.as_str()).collect();
                    format!(
                        "{}: not pushed: {} changed on the gateway since your last sync. Run `idse sync pull` to merge, then push again.",
                        r.project,
                        names.join(", ")
                    )
                } else if r.pushed.is_empty() {
                    format!("{}: nothing to push.", r.project)
                } else {
                    let names: Vec<&str> = r.pushed.iter().map(|s| s.as_str()).collect();
                    format!("{}: pushed {} (revision {}).", r.project, names.join(", "), r.revision.unwrap_or(0))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(u8::from(conflicts))
}

async fn fetch(ctx: &Ctx, project_id: &str) -> anyhow::Result<u8> {
    let root = ctx.start_dir();
    let ws = Workspace::discover(&root).ok();
    let gateway = ctx.gateway(ws.as_ref())?;
    let root = ws.map_or(root, |w| w.root().to_owned());
    let fetched = async {
        let id = sync::gateway_project(&gateway, project_id).await?;
        sync::fetch_project(&root, &gateway, &id, Utc::now()).await
    };
    let project = fetched
        .await
        .with_context(|| format!("while fetching project {project_id}"))?;
    ctx.print(
        &json!({"success": true, "project": project.name, "path": project.dir}),
        || format!("Fetched {} into {}.", project.name, project.dir.display()),
    );
    Ok(0)
}

async fn pull(ctx: &Ctx, names: &[String], all: bool) -> anyhow::Result<u8> {
    let stages = stages_from(names)?;
    let ws = ctx.workspace()?;
    let gateway = ctx.gateway(Some(&ws))?;
    let projects = ctx.projects(&ws, all)?;
    let bar = progress(projects.len(), ctx.cli.json);
    let mut reports = Vec::new();
    for project in &projects {
        bar.set_message(project.name.clone());
        let report = sync::pull(project, &gateway, &stages, Utc::now())
            .await
            .with_context(|| format!("while pulling {}", project.name))?;
        reports.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let conflicts = reports
        .iter()
        .any(|r| r.stages.iter().any(|(_, o)| *o == PullOutcome::Conflict));
    ctx.print(&json!({"success": !conflicts, "projects": reports}), || {
        let mut s = String::new();
        for r in &reports {
            let moved: Vec<String> = r
                .stages
                .iter()
                .filter(|(_, o)| !matches!(o, PullOutcome::Unchanged | PullOutcome::LocalKept))
                .map(|(st, o)| format!("{} {}", st.as_str(), serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()))
                .collect();
            if moved.is_empty() {
                s.push_str(&format!("{}: already up to date.\n", r.project));
            } else {
                s.push_str(&format!("{}: {}.\n", r.project, moved.join(", ")));
            }
            for (st, o) in &r.stages {
                if *o == PullOutcome::Conflict {
                    s.push_str(&format!(
                        "  conflict in {}: your file is untouched. Settle it with `idse sync resolve {} --take local|remote|FILE` (the remote text is in .sync/remote/).\n",
                        st.as_str(),
                        st.as_str()
                    ));
                }
            }
        }
        s
    });
    Ok(u8::from(conflicts))
}

async fn sync_status(ctx: &Ctx) -> anyhow::Result<u8> {
    let ws = ctx.workspace()?;
    let gateway = ctx.gateway(Some(&ws))?;
    let project = ctx.project(&ws)?;
    let sync = SyncState::load(&project)?;
    let remote = match sync::find_remote_id(&project, &sync, &gateway).await? {
        Some(id) => Some(
            gateway
                .pull(&id, Some(&project.active_session()?))
                .await?
                .hashes,
        ),
        None => None,
    };
    let rows = stage_rows(&project, remote.as_ref())?;
    ctx.print(&rows, || render_rows(&rows));
    Ok(0)
}

fn resolve(ctx: &Ctx, stage: &str, take: &str) -> anyhow::Result<u8> {
    let stage: Stage = stage.parse()?;
    let ws = ctx.workspace()?;
    let project = ctx.project(&ws)?;
    let choice = match take {
        "local" => Take::Local,
        "remote" => Take::Remote,
        file => {
            let path = ctx.start_dir().join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("while reading {}", path.display()))?;
            Take::Text(text)
        }
    };
    sync::resolve(&project, stage, choice)?;
    ctx.print(&json!({"success": true, "stage": stage}), || {
        format!(
            "{}: {} resolved. `idse sync push` sends it.",
            project.name,
            stage.as_str()
        )
    });
    Ok(0)
}

fn merge_file(
    ctx: &Ctx,
    to_stdout: bool,
    diff3: bool,
    labels: &[String],
    paths: [&PathBuf; 3],
) -> anyhow::Result<u8> {
    let base_dir = ctx.start_dir();
    let resolve_path = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base_dir.join(p)
        }
    };
    let read = |p: &Path| {
        std::fs::read_to_string(resolve_path(p))
            .with_context(|| format!("while reading {}", p.display()))
    };
    let [local, base, remote] = paths;
    if labels.len() > 3 {
        bail!("at most three labels (-L) can be given: local, base, remote");
    }
    let label = |i: usize, p: &Path| {
        labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| p.display().to_string())
    };
    let options = MergeOptions {
        style: if diff3 {
            ConflictStyle::Diff3
        } else {
            ConflictStyle::Merge
        },
        local_label: label(0, local),
        base_label: label(1, base),
        remote_label: label(2, remote),
    };
    let result = merge3(&read(base)?, &read(local)?, &read(remote)?, &options);
    if !to_stdout {
        let target = resolve_path(local);
        idse_core::atomic::write_atomic(&target, result.text.as_bytes())
            .with_context(|| format!("while writing {}", target.display()))?;
    }
    if ctx.cli.json {
        let v = json!({"conflicts": result.conflicts, "text": result.text});
        println!("{v}");
    } else if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(result.text.as_bytes())
            .context("while writing the merge")?;
    }
    Ok(result.conflicts.min(127) as u8)
}
