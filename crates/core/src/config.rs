//! Where the gateway is and how to authenticate, from the places DESIGN.md names, in order:
//! flag, environment, `.idse/config.json`, `~/.idseconfig.json`, then the local default.
//! The caller passes the flag, the environment values and the home folder in.

use std::path::Path;

use serde_json::Value;

use crate::workspace::{read_json, Workspace, WorkspaceError};

pub const DEFAULT_AGENCY_URL: &str = "http://localhost:8000";

/// The resolved gateway settings and where the URL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub agency_url: String,
    pub source: &'static str,
    /// Never read from or written to a project folder.
    pub token: Option<String>,
}

/// Inputs the caller gathered (flags and environment); everything else is read from disk.
#[derive(Debug, Clone, Default)]
pub struct Overrides<'a> {
    pub flag_url: Option<&'a str>,
    pub env_url: Option<&'a str>,
    pub flag_token: Option<&'a str>,
    pub env_token: Option<&'a str>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub fn resolve(
    overrides: &Overrides<'_>,
    workspace: Option<&Workspace>,
    home: Option<&Path>,
) -> Result<Settings, WorkspaceError> {
    let user = match home {
        Some(h) => read_json(&h.join(".idseconfig.json"))?.unwrap_or_default(),
        None => Default::default(),
    };
    let user_str = |key: &str| user.get(key).and_then(Value::as_str).map(str::to_owned);
    let token = non_empty(overrides.flag_token)
        .or(non_empty(overrides.env_token))
        .map(str::to_owned)
        .or_else(|| user_str("token"));
    let workspace_url = match workspace {
        Some(ws) => ws
            .config()?
            .get("agency_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
        None => None,
    };
    let (agency_url, source) = if let Some(u) = non_empty(overrides.flag_url) {
        (u.to_owned(), "--agency-url")
    } else if let Some(u) = non_empty(overrides.env_url) {
        (u.to_owned(), "IDSE_AGENCY_URL")
    } else if let Some(u) = workspace_url.filter(|u| !u.trim().is_empty()) {
        (u, ".idse/config.json")
    } else if let Some(u) = user_str("agency_url").filter(|u| !u.trim().is_empty()) {
        (u, "~/.idseconfig.json")
    } else {
        (DEFAULT_AGENCY_URL.to_owned(), "default")
    };
    Ok(Settings {
        agency_url,
        source,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_flag_env_workspace_user_default() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let ws_root = dir.path().join("ws");
        std::fs::create_dir_all(ws_root.join(".idse/projects")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let ws = Workspace::at(&ws_root);
        let none = Overrides::default();
        assert_eq!(
            resolve(&none, Some(&ws), Some(&home)).unwrap().agency_url,
            DEFAULT_AGENCY_URL
        );
        std::fs::write(
            home.join(".idseconfig.json"),
            r#"{"agency_url":"http://user:1","token":"t-user"}"#,
        )
        .unwrap();
        let s = resolve(&none, Some(&ws), Some(&home)).unwrap();
        assert_eq!(
            (s.agency_url.as_str(), s.token.as_deref()),
            ("http://user:1", Some("t-user"))
        );
        std::fs::write(
            ws_root.join(".idse/config.json"),
            r#"{"agency_url":"http://ws:2"}"#,
        )
        .unwrap();
        assert_eq!(
            resolve(&none, Some(&ws), Some(&home)).unwrap().agency_url,
            "http://ws:2"
        );
        let env = Overrides {
            env_url: Some("http://env:3"),
            env_token: Some("t-env"),
            ..Overrides::default()
        };
        let s = resolve(&env, Some(&ws), Some(&home)).unwrap();
        assert_eq!(
            (s.agency_url.as_str(), s.token.as_deref()),
            ("http://env:3", Some("t-env"))
        );
        let flag = Overrides {
            flag_url: Some("http://flag:4"),
            ..env
        };
        assert_eq!(
            resolve(&flag, Some(&ws), Some(&home)).unwrap().source,
            "--agency-url"
        );
    }
}
