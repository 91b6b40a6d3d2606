use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// A validated push, ready for a store.
#[derive(Debug, Clone, Default)]
pub struct PushInput {
    pub project_id: Option<Uuid>,
    pub project_name: String,
    pub stack: Option<String>,
    pub framework: Option<String>,
    pub session_id: String,
    pub session_metadata: Option<Value>,
    pub state_json: Option<Value>,
    /// Artifact key (`intent_md`, or any other `*_md`) → text.
    pub artifacts: BTreeMap<String, String>,
    /// `None` for older clients: last writer wins, and the replaced text stays in the history.
    pub base: Option<BTreeMap<String, String>>,
    pub agent: Option<String>,
    /// Who pushed (a token's name); `None` in open mode.
    pub author: Option<String>,
    pub force: bool,
}

impl PushInput {
    /// The agent named by the push, else the one in `state_json.last_agent`.
    pub fn effective_agent(&self) -> Option<String> {
        self.agent.clone().or_else(|| {
            self.state_json
                .as_ref()
                .and_then(|s| s.get("last_agent"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub project_id: Uuid,
    /// The project's name on the gateway; a push by id may carry another, which is not kept.
    pub name: String,
    pub created: bool,
    pub revision: i64,
    /// Artifact keys whose text changed with this push.
    pub changed: Vec<String>,
    /// Artifact key → hash of every text the session holds now.
    pub hashes: BTreeMap<String, String>,
}

/// One session's texts, as pulled.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub project_id: Uuid,
    pub session_id: String,
    pub name: String,
    pub stack: Option<String>,
    pub framework: Option<String>,
    pub artifacts: BTreeMap<String, String>,
    pub hashes: BTreeMap<String, String>,
    pub state_json: Option<Value>,
    pub updated_at: DateTime<Utc>,
    pub revision: i64,
}

/// A row of `projects`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: Uuid,
    pub name: String,
    pub stack: Option<String>,
    pub framework: Option<String>,
    pub state_json: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_synced: Option<DateTime<Utc>>,
    pub last_agent: Option<String>,
    /// Who pushed last (a token's name); `None` in open mode.
    pub last_author: Option<String>,
    pub last_session_id: Option<String>,
    pub revision: i64,
}

/// One accepted change of one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRecord {
    pub session_id: String,
    pub artifact: String,
    pub revision: i64,
    pub sha256: String,
    pub bytes: i64,
    pub agent: Option<String>,
    pub author: Option<String>,
    pub pushed_at: DateTime<Utc>,
}

/// Narrows a history listing.
#[derive(Debug, Clone)]
pub struct HistoryFilter {
    /// Artifact key, e.g. `spec_md`.
    pub artifact: Option<String>,
    pub session_id: Option<String>,
    pub limit: i64,
    /// Only revisions older than this cursor (a [`HistoryPage::next_before`]).
    pub before: Option<i64>,
}

impl Default for HistoryFilter {
    fn default() -> Self {
        Self {
            artifact: None,
            session_id: None,
            limit: 200,
            before: None,
        }
    }
}

/// One page of a history listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub revisions: Vec<RevisionRecord>,
    /// The cursor of the next, older page (`HistoryFilter::before`); `None` when this page
    /// holds the oldest revision.
    pub next_before: Option<i64>,
}

impl HistoryPage {
    /// A page from rows read newest first with their row ids, one more than `limit` if
    /// there are older ones.
    pub(crate) fn from_rows(mut rows: Vec<(i64, RevisionRecord)>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        Self {
            next_before: more.then(|| rows.last().map(|(id, _)| *id)).flatten(),
            revisions: rows.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// A bearer token of the gateway; the token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session's row: its state and metadata as last pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session_id: String,
    pub state_json: Option<Value>,
    pub session_metadata: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One accepted text with its history entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionText {
    pub record: RevisionRecord,
    pub text: String,
}

/// Everything a store holds of one project, to copy it whole into another store (see
/// [`crate::copy`]). A store's row ids are not part of it: the copy gets ids of its own, in the
/// same order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectExport {
    pub project: ProjectRecord,
    /// The `constraints` column of the `projects` row, kept for the team's own clients (the
    /// gateway never reads it).
    pub constraints: Option<String>,
    pub sessions: Vec<SessionRecord>,
    /// Every accepted text, oldest first. Each stage of each session holds the newest of its
    /// own.
    pub revisions: Vec<RevisionText>,
}

impl ProjectExport {
    /// The text each stage of `session` holds now: its newest revision.
    pub fn current_texts(&self, session: &str) -> BTreeMap<&str, &RevisionText> {
        self.revisions
            .iter()
            .filter(|r| r.record.session_id == session)
            .map(|r| (r.record.artifact.as_str(), r))
            .collect()
    }
}

/// A token as a store keeps it, its secret's hash included, to copy it to another store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenExport {
    pub token: TokenRecord,
    pub sha256: String,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Copied,
    /// The destination held it already, as the source has it (an earlier copy): nothing written.
    AlreadyThere,
}
