//! The client side of IDSE sync, shared by the `idse` CLI and the desktop app: the offline
//! workspace on disk, validation, the three-way merge, and push/pull that never lose an edit.

pub mod atomic;
pub mod board;
pub mod config;
pub mod document;
pub mod gateway;
pub mod merge;
pub mod shelf;
pub mod status;
pub mod sync;
pub mod templates;
pub mod validate;
pub mod workspace;

pub use board::{Badge, ProjectCard, StageCard};
pub use gateway::{Gateway, GatewayError};
pub use merge::{merge3, ConflictStyle, MergeHunk, MergeOptions, MergeResult};
pub use shelf::{Shelf, ShelfError};
pub use status::{project_status, ProjectStatus, StageRow};
pub use sync::{
    MergeSave, PullOutcome, PullReport, PushReport, StagePreview, SyncError, SyncState, SyncStatus,
    Take,
};
pub use validate::{check_stage, validate, StageReport, StageStatus};
pub use workspace::{Project, Workspace, WorkspaceError};
