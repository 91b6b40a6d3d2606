//! The document and merge views' side of the desk: one stage read, its history, restoring an old
//! revision, and the three-way merge of a conflicted stage with its draft and its save. The
//! rules are `idse_core::document` and `idse_core::sync`; this only finds the project and the
//! gateway and passes the time in.

use std::path::Path;

use chrono::{DateTime, Utc};
use idse_core::document::{
    discard_draft, merge_view, render_markdown, restore_revision, revision_text, save_draft,
    stage_document, stage_history, DraftChoice, MergeDraft, MergeView, Restored, RevisionPage,
    StageDocument,
};
use idse_core::{MergeSave, Project, PushReport};
use idse_protocol::Stage;
use serde::Serialize;

use crate::desk::Desk;
use crate::error::CommandError;

/// An old text of a stage, raw and rendered.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionText {
    pub sha256: String,
    pub text: String,
    pub html: String,
}

/// What "Save & push" did: saved and pushed, or the view's new state when a side moved.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MergeSaved {
    Saved {
        push: PushReport,
    },
    /// The local file or the gateway's text changed meanwhile; nothing was overwritten and
    /// this is the merge to settle now.
    Moved {
        reason: String,
        view: Box<MergeView>,
    },
}

impl Desk {
    pub async fn stage_document(
        &self,
        dir: &Path,
        stage: Stage,
    ) -> Result<StageDocument, CommandError> {
        let (_, project) = self.project(dir)?;
        Ok(stage_document(&project, &self.gateway_client(), stage).await?)
    }

    pub async fn stage_history(
        &self,
        dir: &Path,
        stage: Stage,
        before: Option<i64>,
    ) -> Result<RevisionPage, CommandError> {
        let (_, project) = self.project(dir)?;
        Ok(stage_history(&project, &self.gateway_client(), stage, before).await?)
    }

    pub async fn revision_text(
        &self,
        dir: &Path,
        sha256: &str,
    ) -> Result<RevisionText, CommandError> {
        let (_, project) = self.project(dir)?;
        let text = revision_text(&project, &self.gateway_client(), sha256).await?;
        Ok(RevisionText {
            sha256: sha256.to_owned(),
            html: render_markdown(&text),
            text,
        })
    }

    pub async fn restore(
        &self,
        dir: &Path,
        stage: Stage,
        sha256: &str,
        expected: &str,
        now: DateTime<Utc>,
    ) -> Result<Restored, CommandError> {
        let (_, project) = self.project(dir)?;
        Ok(restore_revision(
            &project,
            &self.gateway_client(),
            stage,
            sha256,
            expected,
            now,
        )
        .await?)
    }

    async fn build_merge_view(
        &self,
        project: &Project,
        stage: Stage,
    ) -> Result<MergeView, CommandError> {
        Ok(merge_view(project, &self.gateway_client(), stage).await?)
    }

    pub async fn merge_view(&self, dir: &Path, stage: Stage) -> Result<MergeView, CommandError> {
        let (_, project) = self.project(dir)?;
        self.build_merge_view(&project, stage).await
    }

    pub fn save_merge_draft(
        &self,
        dir: &Path,
        stage: Stage,
        choices: Vec<DraftChoice>,
        now: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        let (_, project) = self.project(dir)?;
        if choices.is_empty() {
            return Ok(discard_draft(&project, stage)?);
        }
        Ok(save_draft(
            &project,
            stage,
            &MergeDraft {
                saved_at: now,
                choices,
            },
        )?)
    }

    pub fn discard_merge_draft(&self, dir: &Path, stage: Stage) -> Result<(), CommandError> {
        let (_, project) = self.project(dir)?;
        Ok(discard_draft(&project, stage)?)
    }

    pub async fn save_merge(
        &self,
        dir: &Path,
        stage: Stage,
        text: &str,
        local_hash: &str,
        remote_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<MergeSaved, CommandError> {
        let (_, project) = self.project(dir)?;
        let gateway = self.gateway_client();
        let saved = idse_core::sync::save_merge(
            &project,
            &gateway,
            stage,
            text,
            local_hash,
            remote_hash,
            now,
        )
        .await?;
        let reason = match saved {
            MergeSave::Saved { push } => return Ok(MergeSaved::Saved { push }),
            MergeSave::LocalMoved => format!(
                "{stage} changed on disk while you merged; nothing was overwritten. Here is the merge with the new file."
            ),
            MergeSave::RemoteMoved => format!(
                "Someone pushed {stage} again while you merged; nothing was overwritten. Here is the merge with their new text."
            ),
        };
        Ok(MergeSaved::Moved {
            reason,
            view: Box::new(self.build_merge_view(&project, stage).await?),
        })
    }
}
