//! The rules of DESIGN.md section 1 for what a stage lacks before it can be complete.

use idse_protocol::Stage;
use serde::Serialize;

use crate::templates::expected_headings;
use crate::workspace::{Project, WorkspaceError};

/// The marker templates carry where a person must fill in.
pub const REQUIRES_INPUT: &str = "[REQUIRES INPUT]";

/// A stage's status as its file shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pending,
    InProgress,
    Completed,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::InProgress => "in_progress",
            StageStatus::Completed => "completed",
        }
    }
}

/// What `validate` found for one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageReport {
    pub stage: Stage,
    pub status: StageStatus,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Checked boxes and all boxes (`- [x]` / `- [ ]`), for the tasks stage.
    pub tasks_done: usize,
    pub tasks_total: usize,
}

/// Fewer non-blank characters than this (outside headings) is "near-empty".
const NEAR_EMPTY: usize = 40;

fn content_chars(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).count())
        .sum()
}

fn has_heading(text: &str, word: &str) -> bool {
    let word = word.to_lowercase();
    text.lines().any(|l| {
        let t = l.trim_start();
        (t.starts_with("# ") || t.starts_with("## ") || t.starts_with("### "))
            && t.to_lowercase().contains(&word)
    })
}

fn task_boxes(text: &str) -> (usize, usize) {
    let (mut done, mut total) = (0, 0);
    for l in text.lines() {
        let t = l.trim_start();
        let t = t
            .strip_prefix("- ")
            .or_else(|| t.strip_prefix("* "))
            .unwrap_or("");
        if t.starts_with("[ ]") {
            total += 1;
        } else if t.starts_with("[x]") || t.starts_with("[X]") {
            total += 1;
            done += 1;
        }
    }
    (done, total)
}

/// Checks one stage's text (`None`: the file is missing).
pub fn check_stage(stage: Stage, text: Option<&str>) -> StageReport {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let required = stage != Stage::Implementation;
    let Some(text) = text else {
        if required {
            errors.push(format!("{} is missing", stage.relative_path()));
        }
        return StageReport {
            stage,
            status: StageStatus::Pending,
            errors,
            warnings,
            tasks_done: 0,
            tasks_total: 0,
        };
    };
    let marked = text.contains(REQUIRES_INPUT);
    if marked {
        let n = text.matches(REQUIRES_INPUT).count();
        let msg = format!(
            "{} still holds {n} {REQUIRES_INPUT} marker(s) to fill in",
            stage.relative_path()
        );
        if required {
            errors.push(msg);
        } else {
            warnings.push(msg);
        }
    }
    for words in expected_headings(stage) {
        if !words.iter().any(|w| has_heading(text, w)) {
            warnings.push(format!("no heading with \"{}\"", words.join("\" or \"")));
        }
    }
    let near_empty = content_chars(text) < NEAR_EMPTY;
    if near_empty && !marked {
        warnings.push("has almost no content yet".to_owned());
    }
    let status = if marked || near_empty {
        StageStatus::InProgress
    } else {
        StageStatus::Completed
    };
    let (tasks_done, tasks_total) = if stage == Stage::Tasks {
        task_boxes(text)
    } else {
        (0, 0)
    };
    StageReport {
        stage,
        status,
        errors,
        warnings,
        tasks_done,
        tasks_total,
    }
}

/// Checks every stage of a session.
pub fn validate(project: &Project, session: &str) -> Result<Vec<StageReport>, WorkspaceError> {
    Stage::ALL
        .into_iter()
        .map(|stage| {
            Ok(check_stage(
                stage,
                project.read_stage(session, stage)?.as_deref(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_marked_and_complete_stages() {
        let missing = check_stage(Stage::Spec, None);
        assert_eq!(missing.status, StageStatus::Pending);
        assert_eq!(missing.errors.len(), 1);
        assert!(check_stage(Stage::Implementation, None).errors.is_empty());

        let template = crate::templates::template(Stage::Intent, "demo");
        let marked = check_stage(Stage::Intent, Some(&template));
        assert_eq!(marked.status, StageStatus::InProgress);
        assert!(marked.errors[0].contains("[REQUIRES INPUT]"));
        assert!(
            marked.warnings.is_empty(),
            "the template has every heading: {:?}",
            marked.warnings
        );

        let done = "# Plan\n## Architectural Overview\nA gateway and a desktop app, talking JSON over HTTP.\n## Core Components\nstore, gateway\n## Data Flow\nclient to gateway\n";
        let r = check_stage(Stage::Plan, Some(done));
        assert_eq!(r.status, StageStatus::Completed);
        assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");

        let thin = check_stage(Stage::Plan, Some("# Plan\nTBD\n"));
        assert_eq!(thin.status, StageStatus::InProgress);
        assert_eq!(thin.warnings.len(), 4);
    }

    #[test]
    fn counts_task_boxes() {
        let r = check_stage(
            Stage::Tasks,
            Some("## Phase 1\n- [x] a\n- [ ] b\n  - [X] c\n* [ ] d\nnot - [ ] e\n"),
        );
        assert_eq!((r.tasks_done, r.tasks_total), (2, 4));
    }
}
