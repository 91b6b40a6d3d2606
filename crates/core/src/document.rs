//! What the document and merge views show of one stage: the text rendered as markdown, line
//! diffs with word marks, the three sides of a conflict with who wrote each, its history, and
//! half-done merges kept as drafts. The merge itself is `merge::merge3`; the rules of saving are
//! in `sync`.

use chrono::{DateTime, Utc};
use idse_protocol::{content_hash, RevisionInfo, Stage};
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::board::modified_at;
use crate::gateway::{Gateway, HistoryQuery};
use crate::merge::{merge3, ChunkKind, MergeChunk, MergeOptions};
use crate::sync::{
    self, find_remote_id, local_status, remote_id, with_remote, SyncError, SyncState, SyncStatus,
};
use crate::workspace::{read_optional, write_file, Project, WorkspaceError};

/// A piece of a line or of a chunk; `changed` pieces are the words the other side lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub text: String,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Equal,
    Insert,
    Delete,
}

/// One line of a diff, numbered in the old and new texts (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub kind: LineKind,
    pub old: Option<usize>,
    pub new: Option<usize>,
    pub parts: Vec<Segment>,
}

/// Changed lines with a little context around them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffHunk {
    pub lines: Vec<DiffLine>,
}

/// Lines of context kept around each change.
pub const CONTEXT: usize = 3;

/// Beyond this many bytes on a side, word marks are not worth their cost: the whole side counts
/// as changed.
const WORD_MARK_LIMIT: usize = 64 * 1024;

fn push_segment(out: &mut Vec<Segment>, text: &str, changed: bool) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(last) if last.changed == changed => last.text.push_str(text),
        _ => out.push(Segment {
            text: text.to_owned(),
            changed,
        }),
    }
}

/// The line diff from `old` to `new`, in hunks, with the changed words of changed lines marked.
pub fn diff(old: &str, new: &str, context: usize) -> Vec<DiffHunk> {
    let diff = TextDiff::from_lines(old, new);
    diff.grouped_ops(context)
        .iter()
        .map(|group| DiffHunk {
            lines: group
                .iter()
                .flat_map(|op| diff.iter_inline_changes(op))
                .map(|change| {
                    let mut parts = Vec::new();
                    for (emphasized, text) in change.iter_strings_lossy() {
                        push_segment(&mut parts, &text, emphasized);
                    }
                    DiffLine {
                        kind: match change.tag() {
                            ChangeTag::Equal => LineKind::Equal,
                            ChangeTag::Insert => LineKind::Insert,
                            ChangeTag::Delete => LineKind::Delete,
                        },
                        old: change.old_index().map(|i| i + 1),
                        new: change.new_index().map(|i| i + 1),
                        parts,
                    }
                })
                .collect(),
        })
        .collect()
}

/// `new` in pieces, marking the words that are not in `old`.
pub fn word_marks(old: &str, new: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    if old == new {
        push_segment(&mut out, new, false);
        return out;
    }
    if old.is_empty() || old.len() > WORD_MARK_LIMIT || new.len() > WORD_MARK_LIMIT {
        push_segment(&mut out, new, true);
        return out;
    }
    let diff = TextDiff::from_unicode_words(old, new);
    for change in diff.iter_all_changes() {
        match change.tag() {
            ChangeTag::Equal => push_segment(&mut out, change.value(), false),
            ChangeTag::Insert => push_segment(&mut out, change.value(), true),
            ChangeTag::Delete => {}
        }
    }
    out
}

/// The document as HTML. Raw HTML in it is shown as text and images as their alt text, so a
/// document can neither run script in the window nor fetch anything.
pub fn render_markdown(text: &str) -> String {
    use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Image { .. }) => Event::Text(CowStr::Borrowed("[image: ")),
        Event::End(TagEnd::Image) => Event::Text(CowStr::Borrowed("]")),
        other => other,
    });
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Everything the document view shows of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageDocument {
    pub project: String,
    pub project_id: Option<String>,
    pub session: String,
    pub stage: Stage,
    pub path: std::path::PathBuf,
    pub exists: bool,
    /// The local file (empty when it does not exist).
    pub text: String,
    pub html: String,
    /// Hash of `text`: a restore names it, so it never replaces an edit the view did not show.
    pub hash: String,
    pub sync: SyncStatus,
    /// Base → local: what a push would send.
    pub push_diff: Vec<DiffHunk>,
    /// Local → remote: what a pull would bring; `None` when the remote is not known.
    pub pull_diff: Option<Vec<DiffHunk>>,
    /// Why the remote side is missing, as a sentence.
    pub remote_note: Option<String>,
}

/// Reads a stage for the document view. The gateway is asked for the remote text; when it
/// cannot answer the view still opens, with a note instead of the pull diff.
pub async fn stage_document(
    project: &Project,
    gateway: &Gateway,
    stage: Stage,
) -> Result<StageDocument, SyncError> {
    let session = project.active_session()?;
    let state = SyncState::load(project)?;
    let local = project.read_stage(&session, stage)?;
    let text = local.clone().unwrap_or_default();
    let base = state.base_text(&session, stage)?;
    // With no id recorded here the gateway is asked for one by name; when that fails the view
    // still opens, with a note. (With one recorded, nothing is asked and nothing can fail.)
    let (id, lookup) = match find_remote_id(project, &state, gateway).await {
        Ok(id) => (id, None),
        Err(e @ SyncError::Workspace(_)) => return Err(e),
        Err(e) => (None, Some(e)),
    };
    let (remote, remote_note) = match (&id, lookup) {
        (_, Some(e)) => (
            None,
            Some(format!("The remote text is not available: {e}.")),
        ),
        (None, None) => (
            None,
            Some("This project was never pushed, so the gateway has no copy yet.".to_owned()),
        ),
        (Some(id), None) => match gateway.pull(id, Some(&session)).await {
            Ok(r) => match r.artifacts.get(stage.artifact_key()) {
                Some(t) => (Some(t.clone()), None),
                None => (
                    None,
                    Some(format!("The gateway has no {stage} for this session yet.")),
                ),
            },
            Err(e) => (
                None,
                Some(format!("The remote text is not available: {e}.")),
            ),
        },
    };
    let base_hash = state.base_hash(&session, stage).map(str::to_owned);
    let status = local_status(&state, &session, stage, local.as_deref());
    let remote_hash = remote.as_deref().map(content_hash);
    let local_hash = local.as_deref().map(content_hash);
    Ok(StageDocument {
        project: project.name.clone(),
        project_id: id,
        session: session.clone(),
        stage,
        path: project.stage_path(&session, stage),
        exists: local.is_some(),
        html: render_markdown(&text),
        hash: content_hash(&text),
        sync: with_remote(
            status,
            base_hash.as_deref(),
            local_hash.as_deref(),
            remote_hash.as_deref(),
        ),
        push_diff: diff(base.as_deref().unwrap_or_default(), &text, CONTEXT),
        pull_diff: remote.as_deref().map(|r| diff(&text, r, CONTEXT)),
        remote_note,
        text,
    })
}

/// One revision of a stage in the gateway's history, with where it stands for this desk.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    #[serde(flatten)]
    pub info: RevisionInfo,
    /// The text this desk last synced (the base).
    pub is_base: bool,
    /// The text of the local file now.
    pub is_local: bool,
}

/// Revisions in a page of a stage's history.
pub const HISTORY_PAGE: i64 = 50;

/// A page of a stage's revisions, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionPage {
    pub revisions: Vec<Revision>,
    /// Pass as `before` for the next, older page; `None` on the oldest.
    pub next_before: Option<i64>,
}

/// A page of the stage's revisions in the active session, newest first, older than `before`.
pub async fn stage_history(
    project: &Project,
    gateway: &Gateway,
    stage: Stage,
    before: Option<i64>,
) -> Result<RevisionPage, SyncError> {
    let session = project.active_session()?;
    let state = SyncState::load(project)?;
    let id = find_remote_id(project, &state, gateway)
        .await?
        .ok_or_else(|| SyncError::NeverPushed(project.name.clone()))?;
    let local_hash = project
        .read_stage(&session, stage)?
        .map(|t| content_hash(&t));
    let base = state.base_hash(&session, stage);
    let query = HistoryQuery {
        stage: Some(stage),
        session: Some(&session),
        before,
        limit: Some(HISTORY_PAGE),
    };
    let history = gateway.history(&id, &query).await?;
    Ok(RevisionPage {
        revisions: history
            .revisions
            .into_iter()
            .map(|info| Revision {
                is_base: base == Some(info.sha256.as_str()),
                is_local: local_hash.as_deref() == Some(info.sha256.as_str()),
                info,
            })
            .collect(),
        next_before: history.next_before,
    })
}

/// A text the stage once held, by its hash, from the gateway.
pub async fn revision_text(
    project: &Project,
    gateway: &Gateway,
    sha256: &str,
) -> Result<String, SyncError> {
    // The hash goes into the gateway's URL: only a real hash may.
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SyncError::BadHash(sha256.chars().take(80).collect()));
    }
    let state = SyncState::load(project)?;
    let id = find_remote_id(project, &state, gateway)
        .await?
        .ok_or_else(|| SyncError::NeverPushed(project.name.clone()))?;
    Ok(gateway.text(&id, sha256).await?)
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub stage: Stage,
    pub sha256: String,
    /// Where the replaced text was kept, when it held edits not yet pushed.
    pub kept: Option<std::path::PathBuf>,
}

/// Puts an old revision back into the local file, as an ordinary edit the next push sends.
/// `expected` is the hash of the file the user was looking at: if the file changed since, nothing
/// is written. Replaced text that was never pushed is kept under `.sync/replaced/`.
pub async fn restore_revision(
    project: &Project,
    gateway: &Gateway,
    stage: Stage,
    sha256: &str,
    expected: &str,
    now: DateTime<Utc>,
) -> Result<Restored, SyncError> {
    let session = project.active_session()?;
    let text = revision_text(project, gateway, sha256).await?;
    let state = SyncState::load(project)?;
    let current = project.read_stage(&session, stage)?;
    let current_hash = content_hash(current.as_deref().unwrap_or_default());
    if current_hash != expected {
        return Err(SyncError::LocalMoved {
            project: project.name.clone(),
            stage,
        });
    }
    let mut kept = None;
    if let Some(current) =
        current.filter(|_| state.base_hash(&session, stage) != Some(&current_hash))
    {
        let path = project
            .dir
            .join(".sync")
            .join("replaced")
            .join(&session)
            .join(format!(
                "{}-{}.md",
                stage.as_str(),
                now.format("%Y%m%dT%H%M%SZ")
            ));
        write_file(&path, &current)?;
        kept = Some(path);
    }
    project.write_stage(&session, stage, &text)?;
    Ok(Restored {
        stage,
        sha256: sha256.to_owned(),
        kept,
    })
}

/// Who wrote one side of a merge, and when.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideLabel {
    pub hash: String,
    pub author: Option<String>,
    pub agent: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A chunk of the merge with the words each side changed from the base.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkView {
    #[serde(flatten)]
    pub chunk: MergeChunk,
    pub local_marks: Vec<Segment>,
    pub remote_marks: Vec<Segment>,
}

/// How one chunk was settled in a half-done merge, keyed by the chunk's three texts so that it
/// can be found again after the remote moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftChoice {
    pub base: String,
    pub local: String,
    pub remote: String,
    /// `local`, `remote`, `local_remote`, `remote_local` or `edited`: how the text was made.
    pub take: String,
    pub text: String,
}

/// A half-done merge, kept so that it can be left and resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeDraft {
    pub saved_at: DateTime<Utc>,
    pub choices: Vec<DraftChoice>,
}

/// Everything the merge view shows of a conflicted stage.
#[derive(Debug, Clone, Serialize)]
pub struct MergeView {
    pub project: String,
    /// The project's id on the gateway, by which its live pushes are recognised.
    pub project_id: Option<String>,
    pub session: String,
    pub stage: Stage,
    pub path: std::path::PathBuf,
    pub base: SideLabel,
    pub local: SideLabel,
    pub remote: SideLabel,
    pub chunks: Vec<ChunkView>,
    pub conflicts: usize,
    pub draft: Option<MergeDraft>,
}

fn draft_path(project: &Project, session: &str, stage: Stage) -> std::path::PathBuf {
    project
        .dir
        .join(".sync")
        .join("drafts")
        .join(session)
        .join(format!("{}.json", stage.artifact_key()))
}

fn load_draft(
    project: &Project,
    session: &str,
    stage: Stage,
) -> Result<Option<MergeDraft>, WorkspaceError> {
    let path = draft_path(project, session, stage);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    // A draft that no longer reads is only a convenience lost, not the user's document.
    Ok(serde_json::from_str(&text).ok())
}

pub fn save_draft(
    project: &Project,
    stage: Stage,
    draft: &MergeDraft,
) -> Result<(), WorkspaceError> {
    let session = project.active_session()?;
    let text = serde_json::to_string(draft).map_err(|source| WorkspaceError::Json {
        path: draft_path(project, &session, stage),
        source,
    })?;
    write_file(&draft_path(project, &session, stage), &text)
}

pub fn discard_draft(project: &Project, stage: Stage) -> Result<(), WorkspaceError> {
    let session = project.active_session()?;
    let path = draft_path(project, &session, stage);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WorkspaceError::Io { path, source }),
    }
}

/// The three sides of a conflicted stage, merged into chunks, each side labelled with who
/// wrote it and when: the base and the remote from the gateway's history (left out when the
/// gateway is away; the view still opens), the local file from the project's last agent and
/// the file's modification time. The base is kept locally or asked of the gateway by hash.
pub async fn merge_view(
    project: &Project,
    gateway: &Gateway,
    stage: Stage,
) -> Result<MergeView, SyncError> {
    let session = project.active_session()?;
    let state = SyncState::load(project)?;
    if state.conflict(&session, stage).is_none() {
        return Err(SyncError::NoConflict {
            project: project.name.clone(),
            stage,
        });
    }
    let id = remote_id(project, &state)?;
    let base = sync::base_text(
        &state,
        gateway,
        id.as_deref().unwrap_or_default(),
        &session,
        stage,
    )
    .await?
    .unwrap_or_default();
    let history = match &id {
        Some(id) => match gateway
            .history(
                id,
                &HistoryQuery {
                    stage: Some(stage),
                    session: Some(&session),
                    ..HistoryQuery::default()
                },
            )
            .await
        {
            Ok(history) => history.revisions,
            Err(e) => {
                tracing::debug!(error = %e, "no history for the merge labels");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let local_agent = project.last_agent(&project.state()?);
    let path = project.stage_path(&session, stage);
    let local_at = modified_at(&path);
    let local = project.read_stage(&session, stage)?.unwrap_or_default();
    let remote = state.remote_text(&session, stage)?.unwrap_or_default();
    let label = |text: &str| {
        let hash = content_hash(text);
        // The oldest revision with this text is the one that wrote it.
        match history.iter().rev().find(|r| r.sha256 == hash) {
            Some(r) => SideLabel {
                hash,
                author: r.author.clone(),
                agent: r.agent.clone(),
                at: Some(r.pushed_at),
            },
            None => SideLabel {
                hash,
                ..SideLabel::default()
            },
        }
    };
    let merged = merge3(&base, &local, &remote, &MergeOptions::default());
    let chunks = merged
        .chunks
        .into_iter()
        .map(|chunk| {
            let marks = |side: &str| match chunk.kind {
                ChunkKind::Same => Vec::new(),
                _ => word_marks(&chunk.base, side),
            };
            ChunkView {
                local_marks: marks(&chunk.local),
                remote_marks: marks(&chunk.remote),
                chunk,
            }
        })
        .collect();
    Ok(MergeView {
        project: project.name.clone(),
        project_id: id,
        session: session.clone(),
        stage,
        base: label(&base),
        local: SideLabel {
            hash: content_hash(&local),
            author: None,
            agent: local_agent,
            at: local_at,
        },
        remote: label(&remote),
        chunks,
        conflicts: merged.conflicts,
        draft: load_draft(project, &session, stage)?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_numbers_lines_and_marks_changed_words() {
        let hunks = diff("a\nthe quick fox\nc\n", "a\nthe slow fox\nc\nd\n", 1);
        assert_eq!(hunks.len(), 1);
        let lines = &hunks[0].lines;
        let kinds: Vec<LineKind> = lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LineKind::Equal,
                LineKind::Delete,
                LineKind::Insert,
                LineKind::Equal,
                LineKind::Insert
            ]
        );
        assert_eq!((lines[1].old, lines[1].new), (Some(2), None));
        assert_eq!((lines[2].old, lines[2].new), (None, Some(2)));
        let marked: Vec<&str> = lines[2]
            .parts
            .iter()
            .filter(|p| p.changed)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(marked, ["slow"]);
        assert!(diff("same\n", "same\n", 3).is_empty());
    }

    #[test]
    fn word_marks_cover_the_new_text_and_mark_only_new_words() {
        let marks = word_marks("Ship the login page.", "Ship the signup page today.");
        let joined: String = marks.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, "Ship the signup page today.");
        let changed: String = marks
            .iter()
            .filter(|s| s.changed)
            .map(|s| s.text.as_str())
            .collect();
        assert!(changed.contains("signup") && changed.contains("today"));
        assert!(!changed.contains("Ship"));
        assert_eq!(
            word_marks("", "new"),
            vec![Segment {
                text: "new".into(),
                changed: true
            }]
        );
    }

    #[test]
    fn markdown_renders_and_never_passes_html_or_images_through() {
        let html = render_markdown(
            "# Spec\n\n- [x] done\n\n<script>alert(1)</script>\n\n![logo](http://example.com/x.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<h1>Spec</h1>"));
        assert!(html.contains("checkbox"));
        assert!(html.contains("<table>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<img"));
        assert!(html.contains("[image: logo]"));
    }
}
