//! The commands the window calls. Each one parses, calls the desk or the core, and maps the
//! error; the rules live in `idse-core` and `desk`.

use std::path::PathBuf;

use chrono::Utc;
use idse_core::document::{DraftChoice, MergeView, Restored, RevisionPage, StageDocument};
use idse_core::{ProjectCard, PullReport, PushReport, StagePreview};
use idse_protocol::Stage;
use tauri::State;

use crate::desk::{AddReport, Dashboard, Desk, Direction, Health, SettingsView};
use crate::documents::{MergeSaved, RevisionText};
use crate::error::CommandError;

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn dashboard(desk: State<'_, Desk>) -> Result<Dashboard, CommandError> {
    Ok(desk.dashboard(Utc::now()).await)
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn add_folders(
    desk: State<'_, Desk>,
    paths: Vec<PathBuf>,
) -> Result<AddReport, CommandError> {
    if paths.is_empty() {
        return Err(CommandError::new(
            "no_paths",
            "No folder was given; drop or pick a folder.",
        ));
    }
    Ok(desk.add_folders(&paths))
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn remove_folder(desk: State<'_, Desk>, folder: PathBuf) -> Result<bool, CommandError> {
    desk.remove_folder(&folder)
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn preview(
    desk: State<'_, Desk>,
    dir: PathBuf,
    direction: Direction,
) -> Result<Vec<StagePreview>, CommandError> {
    desk.preview(&dir, direction).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn push(desk: State<'_, Desk>, dir: PathBuf) -> Result<PushReport, CommandError> {
    desk.push(&dir, Utc::now()).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn pull(desk: State<'_, Desk>, dir: PathBuf) -> Result<PullReport, CommandError> {
    desk.pull(&dir, Utc::now()).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn fetch_project(
    desk: State<'_, Desk>,
    project_id: String,
    folder: PathBuf,
) -> Result<ProjectCard, CommandError> {
    desk.fetch(&project_id, &folder, Utc::now()).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn settings(desk: State<'_, Desk>) -> Result<SettingsView, CommandError> {
    Ok(desk.settings())
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn save_settings(
    desk: State<'_, Desk>,
    gateway_url: Option<String>,
    token: Option<String>,
) -> Result<SettingsView, CommandError> {
    desk.save_settings(gateway_url, token).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn gateway_health(desk: State<'_, Desk>) -> Result<Health, CommandError> {
    Ok(desk.health().await)
}

/// The window reports its first painted dashboard; with `IDSE_DESK_REPORT_PAINT` set the time
/// goes to stdout for the start-up measurement.
#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn painted(desk: State<'_, Desk>, projects: usize) -> Result<u128, CommandError> {
    let since_open = desk.since_start().as_millis();
    if std::env::var_os("IDSE_DESK_REPORT_PAINT").is_some() {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        println!(
            "painted {projects} projects at {epoch_ms} ({since_open} ms after the desk opened)"
        );
    }
    Ok(since_open)
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn stage_document(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
) -> Result<StageDocument, CommandError> {
    desk.stage_document(&dir, stage).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn stage_history(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
    before: Option<i64>,
) -> Result<RevisionPage, CommandError> {
    desk.stage_history(&dir, stage, before).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn revision_text(
    desk: State<'_, Desk>,
    dir: PathBuf,
    sha256: String,
) -> Result<RevisionText, CommandError> {
    desk.revision_text(&dir, &sha256).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn restore_revision(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
    sha256: String,
    expected: String,
) -> Result<Restored, CommandError> {
    desk.restore(&dir, stage, &sha256, &expected, Utc::now())
        .await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn merge_view(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
) -> Result<MergeView, CommandError> {
    desk.merge_view(&dir, stage).await
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn save_merge_draft(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
    choices: Vec<DraftChoice>,
) -> Result<(), CommandError> {
    desk.save_merge_draft(&dir, stage, choices, Utc::now())
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn discard_merge_draft(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
) -> Result<(), CommandError> {
    desk.discard_merge_draft(&dir, stage)
}

#[tauri::command]
#[tracing::instrument(skip_all, err)]
pub async fn save_merge(
    desk: State<'_, Desk>,
    dir: PathBuf,
    stage: Stage,
    text: String,
    local_hash: String,
    remote_hash: String,
) -> Result<MergeSaved, CommandError> {
    desk.save_merge(&dir, stage, &text, &local_hash, &remote_hash, Utc::now())
        .await
}
