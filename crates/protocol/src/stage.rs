use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One step of the pipeline, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Intent,
    Context,
    Spec,
    Plan,
    Tasks,
    Implementation,
    Feedback,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 7] = [
        Stage::Intent,
        Stage::Context,
        Stage::Spec,
        Stage::Plan,
        Stage::Tasks,
        Stage::Implementation,
        Stage::Feedback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Intent => "intent",
            Stage::Context => "context",
            Stage::Spec => "spec",
            Stage::Plan => "plan",
            Stage::Tasks => "tasks",
            Stage::Implementation => "implementation",
            Stage::Feedback => "feedback",
        }
    }

    /// The key of this stage in `artifacts` and `base` maps (`intent_md`, …).
    pub fn artifact_key(self) -> &'static str {
        match self {
            Stage::Intent => "intent_md",
            Stage::Context => "context_md",
            Stage::Spec => "spec_md",
            Stage::Plan => "plan_md",
            Stage::Tasks => "tasks_md",
            Stage::Implementation => "implementation_md",
            Stage::Feedback => "feedback_md",
        }
    }

    /// The stage named by an artifact key, if it is one of the seven.
    pub fn from_artifact_key(key: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.artifact_key() == key)
    }

    /// `idse://PROJECT/STAGE`: how MCP servers name a stage document as a resource.
    pub fn resource_uri(self, project: &str) -> String {
        format!("idse://{project}/{}", self.as_str())
    }

    /// The project and stage of an `idse://PROJECT/STAGE` resource URI.
    pub fn from_resource_uri(uri: &str) -> Result<(&str, Stage), NotAStageResource> {
        let parsed = (|| {
            let (project, stage) = uri.strip_prefix("idse://")?.split_once('/')?;
            let stage = stage.parse().ok()?;
            (!project.is_empty()).then_some((project, stage))
        })();
        parsed.ok_or_else(|| NotAStageResource(uri.to_owned()))
    }

    /// Folder and file of this stage inside a session folder.
    pub fn relative_path(self) -> &'static str {
        match self {
            Stage::Intent => "intents/intent.md",
            Stage::Context => "contexts/context.md",
            Stage::Spec => "specs/spec.md",
            Stage::Plan => "plans/plan.md",
            Stage::Tasks => "tasks/tasks.md",
            Stage::Implementation => "implementation/README.md",
            Stage::Feedback => "feedback/feedback.md",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a stage; use one of intent, context, spec, plan, tasks, implementation, feedback"
)]
pub struct UnknownStage(pub String);

/// A resource URI that does not name a stage document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stage resource; resources are idse://PROJECT/STAGE, as resources/list gives them")]
pub struct NotAStageResource(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_suffix("_md").unwrap_or(s);
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == bare)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

/// The stage name reported for an artifact key: `intent_md` → `intent`, `meta_md` → `meta`.
pub fn artifact_key_stage(key: &str) -> &str {
    key.strip_suffix("_md").unwrap_or(key)
}

/// Lowercase hex SHA-256 of the text exactly as stored (no newline normalisation).
pub fn content_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_uris_round_trip_and_refuse_other_shapes() {
        for stage in Stage::ALL {
            assert_eq!(
                Stage::from_resource_uri(&stage.resource_uri("demo")),
                Ok(("demo", stage))
            );
        }
        assert_eq!(Stage::resource_uri(Stage::Spec, "shop"), "idse://shop/spec");
        for bad in [
            "idse://shop",
            "idse:///spec",
            "file://shop/spec",
            "idse://shop/design",
        ] {
            assert_eq!(
                Stage::from_resource_uri(bad),
                Err(NotAStageResource(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn artifact_keys_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_artifact_key(stage.artifact_key()), Some(stage));
            assert_eq!(stage.artifact_key().parse::<Stage>(), Ok(stage));
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        assert_eq!(Stage::from_artifact_key("meta_md"), None);
        assert!("design".parse::<Stage>().is_err());
    }

    #[test]
    fn hash_is_sha256_of_exact_bytes() {
        assert_eq!(
            content_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(content_hash("a\n"), content_hash("a\r\n"));
    }

    #[test]
    fn implementation_maps_to_readme() {
        assert_eq!(
            Stage::Implementation.relative_path(),
            "implementation/README.md"
        );
        assert_eq!(artifact_key_stage("meta_md"), "meta");
    }
}
