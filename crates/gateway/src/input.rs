//! Turns wire requests into store inputs, refusing bad ones with a sentence that says what to fix.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use idse_protocol::{
    validate_project_name, validate_session_id, PullRequest, PushRequest, Stage, BLUEPRINT_SESSION,
};
use idse_store::{HistoryFilter, PushInput};
use uuid::Uuid;

use crate::ApiError;

/// Size limits of the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A whole request body.
    pub max_body_bytes: usize,
    /// One artifact's text.
    pub max_artifact_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_artifact_bytes: 1024 * 1024,
        }
    }
}

pub(crate) fn human_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// The longest `stack` or `framework` a push may name: they are labels, shown in lists.
const MAX_LABEL_CHARS: usize = 1000;

pub(crate) fn parse_project_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request(
            "invalid_project_id",
            format!("The project id `{}` is not a valid UUID.", truncate(raw, 80)),
            "Use the project_id a push returned (GET /sync/projects lists them), e.g. 0b6f3c1e-2d4a-4f5e-9a7b-1c2d3e4f5a6b.",
        )
    })
}

fn invalid_name(e: idse_protocol::NameError) -> ApiError {
    ApiError::bad_request(
        "invalid_name",
        e.to_string(),
        "Project names and session ids become folder names on every machine that pulls them.",
    )
}

fn valid_artifact_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses a NUL character (`\u0000`), which Postgres cannot store in text or JSON; both stores
/// refuse it, so a push means the same on either.
fn no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("The field `{field}` contains a NUL character (\\u0000), which the Agency copy cannot store."),
            "Remove the NUL characters from that field; a Markdown document never needs them.",
        ));
    }
    Ok(())
}

/// As `no_nul`, for every key and string inside a JSON value.
fn no_nul_in_json(field: &str, value: &serde_json::Value) -> Result<(), ApiError> {
    match value {
        serde_json::Value::String(s) => no_nul(field, s),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| no_nul_in_json(field, v)),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| no_nul(field, k).and_then(|()| no_nul_in_json(field, v))),
        _ => Ok(()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// Validates a push; `author` is who the caller authenticated as, if anyone.
pub(crate) fn push_input(
    req: PushRequest,
    limits: &Limits,
    author: Option<String>,
) -> Result<PushInput, ApiError> {
    let project_id = req
        .project_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(parse_project_id)
        .transpose()?;
    let project_name = req.project_name.trim().to_owned();
    validate_project_name(&project_name).map_err(invalid_name)?;
    let session_id = req
        .session_id
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| BLUEPRINT_SESSION.to_owned());
    validate_session_id(&session_id).map_err(invalid_name)?;

    let mut artifacts = BTreeMap::new();
    for (key, text) in req.artifacts {
        let Some(text) = text else { continue };
        if !valid_artifact_key(&key) {
            return Err(ApiError::bad_request(
                "invalid_artifact",
                format!("The artifact key `{}` is not allowed.", truncate(&key, 80)),
                "Artifact keys are `<stage>_md` (intent_md … feedback_md): letters, digits, `_` and `-`, at most 64 characters.",
            ));
        }
        if text.len() > limits.max_artifact_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "artifact_too_large",
                format!(
                    "The {key} text is {}; the gateway takes at most {} per stage.",
                    human_bytes(text.len()),
                    human_bytes(limits.max_artifact_bytes)
                ),
                "Shorten that document or split it, or ask the gateway's operator to raise --max-artifact-bytes.",
            ));
        }
        artifacts.insert(key, text);
    }
    if let Some(base) = &req.base {
        if let Some((key, _)) = base.iter().find(|(_, h)| !valid_hash(h)) {
            return Err(ApiError::bad_request(
                "invalid_base",
                format!("The base hash of `{}` is not a SHA-256 in lowercase hex.", truncate(key, 80)),
                "Send the `hashes` a previous push or pull returned, unchanged, or leave `base` out.",
            ));
        }
    }
    for (field, value) in [("stack", &req.stack), ("framework", &req.framework)] {
        let chars = value.as_deref().map_or(0, |v| v.chars().count());
        if chars > MAX_LABEL_CHARS {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!(
                    "The field `{field}` is {chars} characters long; the gateway takes at most \
                     {MAX_LABEL_CHARS}."
                ),
                "Send a short label such as \"rust, axum\"; longer notes belong in a stage's text.",
            ));
        }
    }
    for (field, value) in [
        ("state_json", &req.state_json),
        ("session_metadata", &req.session_metadata),
    ] {
        // Kept per session and sent back with every project list, so bounded like a stage.
        let size = value.as_ref().map_or(0, |v| {
            serde_json::to_string(v).map_or(usize::MAX, |s| s.len())
        });
        if size > limits.max_artifact_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "field_too_large",
                format!(
                    "The field `{field}` is {} of JSON; the gateway takes at most {}.",
                    human_bytes(size),
                    human_bytes(limits.max_artifact_bytes)
                ),
                "Keep only the pipeline's state in it; documents belong in the stages' texts.",
            ));
        }
    }
    let agent = req
        .agent
        .map(|a| truncate(a.trim(), 200))
        .filter(|a| !a.is_empty());
    let input = PushInput {
        project_id,
        project_name,
        stack: req.stack,
        framework: req.framework,
        session_id,
        session_metadata: req.session_metadata,
        state_json: req.state_json,
        artifacts,
        base: req.base,
        agent,
        author,
        force: req.force.unwrap_or(false),
    };
    refuse_nul(&input)?;
    Ok(input)
}

/// Refuses a push whose texts, fields or JSON values hold a NUL character; every way into the
/// store (HTTP pushes and MCP tools) builds its `PushInput` and then calls this.
pub(crate) fn refuse_nul(input: &PushInput) -> Result<(), ApiError> {
    for (key, text) in &input.artifacts {
        no_nul(&format!("artifacts.{key}"), text)?;
    }
    for (field, value) in [
        ("stack", &input.stack),
        ("framework", &input.framework),
        ("agent", &input.agent),
    ] {
        value.as_deref().map_or(Ok(()), |v| no_nul(field, v))?;
    }
    for (field, value) in [
        ("state_json", &input.state_json),
        ("session_metadata", &input.session_metadata),
    ] {
        value
            .as_ref()
            .map_or(Ok(()), |v| no_nul_in_json(field, v))?;
    }
    Ok(())
}

pub(crate) fn pull_input(req: &PullRequest) -> Result<(Uuid, Option<String>), ApiError> {
    let id = parse_project_id(&req.project_id)?;
    let session = req
        .session_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(session) = &session {
        validate_session_id(session).map_err(invalid_name)?;
    }
    Ok((id, session))
}

/// Query of `GET /sync/history/{id}`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct HistoryQuery {
    pub stage: Option<String>,
    pub session_id: Option<String>,
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

pub(crate) fn history_filter(q: HistoryQuery) -> Result<HistoryFilter, ApiError> {
    let artifact = q.stage.map(|s| match s.parse::<Stage>() {
        Ok(stage) => stage.artifact_key().to_owned(),
        Err(_) if s.ends_with("_md") => s,
        Err(_) => format!("{s}_md"),
    });
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("The limit {limit} is out of range."),
            "Ask for between 1 and 1000 revisions.",
        ));
    }
    if let Some(before) = q.before.filter(|b| *b < 1) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("The cursor before={before} is not one this gateway gives."),
            "Leave `before` out for the newest revisions, or pass the `next_before` of the page you have.",
        ));
    }
    Ok(HistoryFilter {
        artifact,
        session_id: q.session_id,
        limit,
        before: q.before,
    })
}

pub(crate) fn parse_hash(raw: &str) -> Result<String, ApiError> {
    let hash = raw.to_ascii_lowercase();
    if valid_hash(&hash) {
        Ok(hash)
    } else {
        Err(ApiError::bad_request(
            "invalid_hash",
            format!("`{}` is not a SHA-256 hash.", truncate(raw, 80)),
            "Use a 64-character hex hash from GET /sync/history/{id}.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> PushRequest {
        PushRequest {
            project_name: name.into(),
            ..PushRequest::default()
        }
    }

    #[test]
    fn defaults_session_and_skips_null_artifacts() {
        let mut r = req("demo");
        r.artifacts.insert("intent_md".into(), None);
        r.artifacts.insert("meta_md".into(), Some("m".into()));
        let input = push_input(r, &Limits::default(), None).unwrap();
        assert_eq!(input.session_id, "__blueprint__");
        assert_eq!(input.artifacts.keys().collect::<Vec<_>>(), ["meta_md"]);
    }

    #[test]
    fn refuses_bad_names_ids_sizes_and_hashes() {
        for bad in ["", "a/b", "../x"] {
            assert_eq!(
                push_input(req(bad), &Limits::default(), None)
                    .unwrap_err()
                    .code,
                "invalid_name"
            );
        }
        let mut r = req("demo");
        r.project_id = Some("not-a-uuid".into());
        assert_eq!(
            push_input(r, &Limits::default(), None).unwrap_err().code,
            "invalid_project_id"
        );

        let mut r = req("demo");
        r.artifacts.insert("spec_md".into(), Some("x".repeat(11)));
        let limits = Limits {
            max_body_bytes: 100,
            max_artifact_bytes: 10,
        };
        let e = push_input(r, &limits, None).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("spec_md"));

        let mut r = req("demo");
        r.base = Some([("spec_md".to_owned(), "XYZ".to_owned())].into());
        assert_eq!(
            push_input(r, &Limits::default(), None).unwrap_err().code,
            "invalid_base"
        );
    }

    #[test]
    fn history_stage_names_map_to_artifact_keys() {
        let f = history_filter(HistoryQuery {
            stage: Some("spec".into()),
            ..HistoryQuery::default()
        })
        .unwrap();
        assert_eq!(f.artifact.as_deref(), Some("spec_md"));
        let f = history_filter(HistoryQuery {
            stage: Some("meta".into()),
            ..HistoryQuery::default()
        })
        .unwrap();
        assert_eq!(f.artifact.as_deref(), Some("meta_md"));
        assert!(history_filter(HistoryQuery {
            limit: Some(0),
            ..HistoryQuery::default()
        })
        .is_err());
        let f = history_filter(HistoryQuery {
            before: Some(41),
            ..HistoryQuery::default()
        })
        .unwrap();
        assert_eq!(f.before, Some(41));
        assert_eq!(
            history_filter(HistoryQuery {
                before: Some(0),
                ..HistoryQuery::default()
            })
            .unwrap_err()
            .code,
            "invalid_query"
        );
    }
}
