//! The dashboard's view of projects: a card per stage, one sync badge per project, stages gone
//! stale, and the list of what needs the lead's attention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use idse_protocol::Stage;
use serde::Serialize;

use crate::status::{project_status, StageRow};
use crate::sync::SyncStatus;
use crate::workspace::{Project, WorkspaceError};

/// A project's sync state at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Badge {
    InSync,
    LocalChanges,
    RemoteChanges,
    Both,
    Conflict,
    NeverPushed,
    Offline,
}

/// What the gateway said about a project, as far as the dashboard needs it.
#[derive(Debug, Clone, Copy)]
pub enum Remote<'a> {
    /// The gateway could not be reached.
    Offline,
    /// The gateway answered. `hashes` are the stage hashes of the project's active session
    /// there, `None` when it does not know the project or nothing moved since the last sync.
    Online {
        hashes: Option<&'a BTreeMap<String, String>>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StageCard {
    /// Status, validation, task boxes and sync, as `idse status` reports them.
    #[serde(flatten)]
    pub row: StageRow,
    pub exists: bool,
    /// The file differs from the text last synced.
    pub changed: bool,
    /// An earlier stage was edited after this one was written.
    pub stale_after: Option<Stage>,
    pub modified: Option<DateTime<Utc>>,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectCard {
    /// The project folder; the key the app uses for it.
    pub dir: PathBuf,
    /// The folder the user added that holds it.
    pub folder: PathBuf,
    pub name: String,
    pub session: String,
    pub project_id: Option<String>,
    pub badge: Badge,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_agent: Option<String>,
    /// The gateway's revision this copy was last synced at.
    pub revision: Option<i64>,
    pub stages: Vec<StageCard>,
}

/// Stages edited within this much of each other are not called stale: tools write several
/// stages in one go, in any order.
const STALE_SLACK_SECS: i64 = 2;

/// Reads one project into its card.
pub fn project_card(
    project: &Project,
    folder: &Path,
    remote: Remote<'_>,
) -> Result<ProjectCard, WorkspaceError> {
    let hashes = match remote {
        Remote::Online { hashes } => hashes,
        Remote::Offline => None,
    };
    let status = project_status(project, hashes)?;
    let mut stages = Vec::with_capacity(status.stages.len());
    for row in status.stages {
        let path = project.stage_path(&status.session, row.stage);
        let modified = modified_at(&path);
        let changed = matches!(
            row.sync,
            SyncStatus::LocalChanges | SyncStatus::Both | SyncStatus::NeverPushed
        );
        stages.push(StageCard {
            row,
            exists: modified.is_some(),
            changed,
            stale_after: None,
            modified,
            path,
        });
    }
    mark_stale(&mut stages);
    let badge = badge(
        status.project_id.is_some(),
        &stages.iter().map(|s| s.row.sync).collect::<Vec<_>>(),
        matches!(remote, Remote::Offline),
    );
    Ok(ProjectCard {
        dir: project.dir.clone(),
        folder: folder.to_owned(),
        name: status.project,
        revision: status.revision,
        session: status.session,
        project_id: status.project_id,
        badge,
        last_sync: status
            .last_sync
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        last_agent: status.last_agent,
        stages,
    })
}

/// A written stage is stale when an earlier stage was modified after it. An untouched template
/// is not stale: nothing was built on the old text yet.
fn mark_stale(stages: &mut [StageCard]) {
    let mut newest_before: Option<(Stage, DateTime<Utc>)> = None;
    for card in stages.iter_mut() {
        if let (Some((stage, at)), Some(mine)) = (newest_before, card.modified) {
            if (card.row.written || card.row.status != "pending")
                && at - mine > Duration::seconds(STALE_SLACK_SECS)
            {
                card.stale_after = Some(stage);
            }
        }
        if let Some(mine) = card.modified {
            if newest_before.is_none_or(|(_, at)| mine > at) {
                newest_before = Some((card.row.stage, mine));
            }
        }
    }
}

/// One badge for the project: a conflict first, then what only this side knows, then the rest.
pub fn badge(pushed: bool, stages: &[SyncStatus], offline: bool) -> Badge {
    let any = |s: SyncStatus| stages.contains(&s);
    if any(SyncStatus::Conflict) {
        return Badge::Conflict;
    }
    if !pushed {
        return Badge::NeverPushed;
    }
    if offline {
        return Badge::Offline;
    }
    let local = any(SyncStatus::LocalChanges) || any(SyncStatus::NeverPushed);
    let remote = any(SyncStatus::RemoteChanges);
    if any(SyncStatus::Both) || (local && remote) {
        Badge::Both
    } else if local {
        Badge::LocalChanges
    } else if remote {
        Badge::RemoteChanges
    } else {
        Badge::InSync
    }
}

/// Why a project is on the Attention list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    Conflict,
    Invalid,
    Stale,
    Unsynced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    pub kind: AttentionKind,
    pub dir: PathBuf,
    pub project: String,
    pub stages: Vec<Stage>,
    /// A sentence for the lead.
    pub message: String,
}

/// Projects not synced for this long need attention.
pub const UNSYNCED_AFTER_DAYS: i64 = 7;

/// What needs the lead, most urgent first: conflicts, failing validation, stale stages, and
/// projects not synced for a week.
pub fn attention(cards: &[ProjectCard], now: DateTime<Utc>) -> Vec<Attention> {
    let mut out = Vec::new();
    let names = |stages: &[Stage]| {
        stages
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for card in cards {
        let item = |kind, stages: Vec<Stage>, message: String| Attention {
            kind,
            dir: card.dir.clone(),
            project: card.name.clone(),
            stages,
            message,
        };
        let conflicts: Vec<Stage> = card
            .stages
            .iter()
            .filter(|s| s.row.sync == SyncStatus::Conflict)
            .map(|s| s.row.stage)
            .collect();
        if !conflicts.is_empty() {
            let msg = format!(
                "{} conflicts with the gateway in {}; open the stage to merge.",
                card.name,
                names(&conflicts)
            );
            out.push(item(AttentionKind::Conflict, conflicts, msg));
        }
        let invalid: Vec<Stage> = card
            .stages
            .iter()
            .filter(|s| !s.row.errors.is_empty())
            .map(|s| s.row.stage)
            .collect();
        if !invalid.is_empty() {
            let msg = format!("{} fails validation in {}.", card.name, names(&invalid));
            out.push(item(AttentionKind::Invalid, invalid, msg));
        }
        let stale: Vec<&StageCard> = card
            .stages
            .iter()
            .filter(|s| s.stale_after.is_some())
            .collect();
        if let Some(first) = stale.first() {
            let stages: Vec<Stage> = stale.iter().map(|s| s.row.stage).collect();
            let msg = format!(
                "{}: {} changed after {} was written; check {} still follows.",
                card.name,
                first.stale_after.map_or("an earlier stage", Stage::as_str),
                names(&stages),
                if stages.len() == 1 { "it" } else { "they" }
            );
            out.push(item(AttentionKind::Stale, stages, msg));
        }
        if let Some(at) = card.last_sync {
            let days = (now - at).num_days();
            if days >= UNSYNCED_AFTER_DAYS {
                let msg = format!("{} has not been synced for {days} days.", card.name);
                out.push(item(AttentionKind::Unsynced, Vec::new(), msg));
            }
        }
    }
    out.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.project.cmp(&b.project)));
    out
}

/// When the file at `path` was last written, if it exists.
pub fn modified_at(path: &Path) -> Option<DateTime<Utc>> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// Sets a file's modification time: how tests age a stage without sleeping.
pub fn set_modified(path: &Path, at: SystemTime) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.set_modified(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;
    use std::time::Duration as StdDuration;

    fn project(root: &Path) -> Project {
        let ws = Workspace::at(root);
        std::fs::create_dir_all(root.join(".idse/projects")).unwrap();
        ws.init_project("demo", None, "lead", Utc::now()).unwrap()
    }

    #[test]
    fn badge_puts_conflict_first_then_local_knowledge() {
        use SyncStatus::*;
        assert_eq!(badge(true, &[InSync, Conflict], true), Badge::Conflict);
        assert_eq!(badge(false, &[NeverPushed], false), Badge::NeverPushed);
        assert_eq!(badge(true, &[LocalChanges], true), Badge::Offline);
        assert_eq!(
            badge(true, &[LocalChanges, RemoteChanges], false),
            Badge::Both
        );
        assert_eq!(badge(true, &[InSync, Both], false), Badge::Both);
        assert_eq!(
            badge(true, &[InSync, LocalChanges], false),
            Badge::LocalChanges
        );
        assert_eq!(
            badge(true, &[RemoteChanges, InSync], false),
            Badge::RemoteChanges
        );
        assert_eq!(badge(true, &[InSync, Absent], false), Badge::InSync);
    }

    #[test]
    fn spec_edited_after_plan_makes_plan_and_tasks_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        let session = p.active_session().unwrap();
        let now = SystemTime::now();
        for (i, stage) in Stage::ALL.iter().enumerate() {
            let path = p.stage_path(&session, *stage);
            if *stage == Stage::Plan || *stage == Stage::Tasks {
                std::fs::write(
                    &path,
                    "# Plan\n\n## Overview\n\nReal content: the gateway first, then the \
                     core library and the CLI, then the desktop app.\n\n- [x] one\n- [ ] two\n",
                )
                .unwrap();
            }
            set_modified(&path, now - StdDuration::from_secs(3600 - i as u64 * 60)).unwrap();
        }
        let card = project_card(&p, tmp.path(), Remote::Offline).unwrap();
        assert!(card.stages.iter().all(|s| s.stale_after.is_none()));
        set_modified(&p.stage_path(&session, Stage::Spec), now).unwrap();
        let card = project_card(&p, tmp.path(), Remote::Offline).unwrap();
        let stale: Vec<(Stage, Option<Stage>)> = card
            .stages
            .iter()
            .filter(|s| s.stale_after.is_some())
            .map(|s| (s.row.stage, s.stale_after))
            .collect();
        // Plan and tasks hold work; implementation and feedback are untouched templates.
        assert_eq!(
            stale,
            [
                (Stage::Plan, Some(Stage::Spec)),
                (Stage::Tasks, Some(Stage::Spec))
            ]
        );
        let items = attention(std::slice::from_ref(&card), Utc::now());
        let stale_item = items
            .iter()
            .find(|a| a.kind == AttentionKind::Stale)
            .unwrap();
        assert_eq!(stale_item.stages, [Stage::Plan, Stage::Tasks]);
        assert!(stale_item
            .message
            .contains("spec changed after plan, tasks"));
    }

    #[test]
    fn attention_orders_conflicts_before_old_syncs() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        let mut card = project_card(&p, tmp.path(), Remote::Online { hashes: None }).unwrap();
        assert_eq!(card.badge, Badge::NeverPushed);
        card.last_sync = Some(Utc::now() - Duration::days(8));
        card.stages[2].row.sync = SyncStatus::Conflict;
        card.stages[3].row.errors.push("missing heading".into());
        let items = attention(&[card], Utc::now());
        let kinds: Vec<AttentionKind> = items.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AttentionKind::Conflict,
                AttentionKind::Invalid,
                AttentionKind::Unsynced
            ]
        );
        assert!(items[2].message.contains("8 days"), "{}", items[2].message);
        assert_eq!(items[0].stages, [Stage::Spec]);
    }
}
