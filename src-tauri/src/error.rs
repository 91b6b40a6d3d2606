//! What a command answers when it fails: `{code, message}`, the message a sentence to act on.

use idse_core::{GatewayError, ShelfError, SyncError, WorkspaceError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CommandError {}

fn sentence(text: String) -> String {
    let mut text = text;
    if let Some(first) = text.get(0..1) {
        let upper = first.to_uppercase();
        text.replace_range(0..1, &upper);
    }
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

impl From<WorkspaceError> for CommandError {
    fn from(e: WorkspaceError) -> Self {
        let code = match e {
            WorkspaceError::NotAWorkspace(_) | WorkspaceError::NoProject { .. } => "no_project",
            WorkspaceError::Exists(_) => "exists",
            WorkspaceError::Name(_) => "invalid_name",
            WorkspaceError::Json { .. } => "invalid_json",
            WorkspaceError::Ambiguous { .. } => "ambiguous",
            WorkspaceError::Io { .. } => "io",
        };
        Self::new(code, sentence(e.to_string()))
    }
}

impl From<GatewayError> for CommandError {
    fn from(e: GatewayError) -> Self {
        match &e {
            GatewayError::Unreachable { url, .. } => Self::new(
                "offline",
                format!(
                    "The gateway at {url} cannot be reached; your files are unchanged. Check the gateway in Settings, or try again when online."
                ),
            ),
            GatewayError::Untrusted { url, .. } => Self::new(
                "untrusted_certificate",
                format!(
                    "The gateway at {url} presented a certificate this computer does not trust; your files are unchanged. If your team signs its own certificates, add its authority to this computer's trusted certificates."
                ),
            ),
            GatewayError::Refused { status: 401, .. } => Self::new(
                "unauthorized",
                "The gateway refused the token; set a valid one in Settings.",
            ),
            GatewayError::Refused { status: 403, .. } => Self::new(
                "forbidden",
                "This token may only read; ask for a token that can push.",
            ),
            GatewayError::Refused { code, message, .. } => {
                Self::new(code, sentence(message.clone()))
            }
            GatewayError::Protocol(..) => Self::new("protocol", sentence(e.to_string())),
        }
    }
}

impl From<SyncError> for CommandError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Workspace(e) => e.into(),
            SyncError::Gateway(e) => e.into(),
            SyncError::Unresolved { project, stages } => Self::new(
                "unresolved",
                format!("{project} has unresolved conflicts in {stages}; open the stage to merge first."),
            ),
            SyncError::NeverPushed(project) => Self::new(
                "never_pushed",
                format!("{project} was never pushed, so there is nothing to pull yet; push it first."),
            ),
            SyncError::NotOnGateway(project) => Self::new(
                "project_not_found",
                format!("The gateway has no project named {project}; pick one from its project list."),
            ),
            SyncError::SameName { project, ids } => Self::new(
                "ambiguous_project",
                format!("The gateway holds {} projects named {project}, and this folder was never synced with one of them; fetch the one you mean from the gateway's project list into another folder.", ids.len()),
            ),
            other @ SyncError::NoConflict { .. } => Self::new("no_conflict", sentence(other.to_string())),
            other @ SyncError::LostBase { .. } => Self::new("lost_base", sentence(other.to_string())),
            other @ SyncError::LocalMoved { .. } => Self::new("local_moved", sentence(other.to_string())),
            other @ SyncError::BadHash(_) => Self::new("invalid_hash", sentence(other.to_string())),
        }
    }
}

impl From<ShelfError> for CommandError {
    fn from(e: ShelfError) -> Self {
        let code = match &e {
            ShelfError::Workspace(_) => "io",
            ShelfError::Missing(_) => "missing",
            ShelfError::NoProjects(_) => "no_projects",
            ShelfError::NotGranted(_) => "not_granted",
        };
        match e {
            ShelfError::Workspace(w) => w.into(),
            other => Self::new(code, sentence(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway the app cannot reach and one whose certificate it does not trust need
    /// different acts from the user, so they get different codes and sentences; neither
    /// quotes the TLS library's own text.
    #[test]
    fn an_untrusted_certificate_is_told_from_an_unreachable_gateway() {
        let untrusted = CommandError::from(GatewayError::Untrusted {
            url: "https://agency.example.com".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
        });
        assert_eq!(untrusted.code, "untrusted_certificate");
        assert!(untrusted.message.contains("https://agency.example.com"));
        assert!(untrusted.message.contains("does not trust"));
        assert!(!untrusted.message.contains("UnknownIssuer"));
        let offline = CommandError::from(GatewayError::Unreachable {
            url: "https://agency.example.com".into(),
            reason: "Connection refused (os error 111)".into(),
        });
        assert_eq!(offline.code, "offline");
        assert!(!offline.message.contains("certificate"));
    }
}
