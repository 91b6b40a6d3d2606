//! The IDSE sync protocol: stage names, wire shapes of every gateway route, content hashes and
//! the validation rules both the gateway and its clients apply to names and ids.

mod names;
mod stage;
mod wire;

pub use names::{validate_project_name, validate_session_id, NameError};
pub use stage::{artifact_key_stage, content_hash, NotAStageResource, Stage, UnknownStage};
pub use wire::*;

/// The session a push lands in when it names none.
pub const BLUEPRINT_SESSION: &str = "__blueprint__";
