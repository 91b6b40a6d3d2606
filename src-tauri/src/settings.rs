//! The app's own settings, kept in its home folder (never in a project folder, since the token
//! is a secret).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskSettings {
    /// A team gateway; `None` runs the embedded one.
    #[serde(default)]
    pub gateway_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

fn path(home: &Path) -> PathBuf {
    home.join("settings.json")
}

impl DeskSettings {
    pub fn load(home: &Path) -> anyhow::Result<Self> {
        let file = path(home);
        match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("while reading the settings in {}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("while reading {}", file.display())),
        }
    }

    /// Written atomically; the temp file is created readable by the user only, and the rename
    /// keeps that.
    pub fn save(&self, home: &Path) -> anyhow::Result<()> {
        let file = path(home);
        let text = serde_json::to_string_pretty(self).context("while encoding the settings")?;
        idse_core::atomic::write_atomic(&file, text.as_bytes())
            .with_context(|| format!("while writing {}", file.display()))
    }
}
