//! The sync rules both stores share: which stages a push changes, which conflict, how the
//! `projects` row mirrors the latest pushed session, and what a pull answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use idse_protocol::{artifact_key_stage, Stage, StageConflict};
use serde_json::Value;

use uuid::Uuid;

use crate::{ProjectRecord, PushInput, PushOutcome, Snapshot, StoreError};

/// A pushed text with its hash, computed before any lock is taken.
#[derive(Debug)]
pub(crate) struct Hashed<'a> {
    pub key: &'a str,
    pub text: &'a str,
    pub hash: String,
}

/// `input.artifacts` with `hashes`, given in the same order.
pub(crate) fn with_hashes(input: &PushInput, hashes: Vec<String>) -> Vec<Hashed<'_>> {
    input
        .artifacts
        .iter()
        .zip(hashes)
        .map(|((key, text), hash)| Hashed { key, text, hash })
        .collect()
}

/// A stage that would be overwritten although the pusher never saw its remote text.
#[derive(Debug, Clone)]
pub(crate) struct PendingConflict {
    pub key: String,
    pub base_hash: Option<String>,
    pub remote_hash: String,
}

impl PendingConflict {
    pub fn with_text(self, remote_text: String) -> StageConflict {
        StageConflict {
            stage: artifact_key_stage(&self.key).to_owned(),
            base_hash: self.base_hash,
            remote_hash: self.remote_hash,
            remote_text,
        }
    }
}

/// Decides a push against the session's current hashes (artifact key → hash).
///
/// Returns the texts that change, or every conflicting stage. A stage conflicts when the push
/// carries a `base`, the remote text exists and differs from the pushed one, and the base is not
/// the remote hash. Unchanged texts are no-ops, so re-pushing the same text never conflicts.
pub(crate) fn plan_push<'a, 'h>(
    current: &BTreeMap<String, String>,
    hashed: &'h [Hashed<'a>],
    input: &PushInput,
) -> Result<Vec<&'h Hashed<'a>>, Vec<PendingConflict>> {
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for pushed in hashed {
        let remote = current.get(pushed.key);
        if remote == Some(&pushed.hash) {
            continue;
        }
        if let (Some(base), Some(remote), false) = (&input.base, remote, input.force) {
            let base_hash = base.get(pushed.key);
            if base_hash != Some(remote) {
                conflicts.push(PendingConflict {
                    key: pushed.key.to_owned(),
                    base_hash: base_hash.cloned(),
                    remote_hash: remote.clone(),
                });
                continue;
            }
        }
        changes.push(pushed);
    }
    if conflicts.is_empty() {
        Ok(changes)
    } else {
        Err(conflicts)
    }
}

/// A refused push: every pending conflict with the remote text (artifact key → (text, hash)).
pub(crate) fn conflict_error(
    pending: Vec<PendingConflict>,
    texts: &BTreeMap<String, (String, String)>,
) -> StoreError {
    StoreError::Conflict(
        pending
            .into_iter()
            .map(|c| {
                let text = texts
                    .get(&c.key)
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default();
                c.with_text(text)
            })
            .collect(),
    )
}

/// What an accepted push answers: the session's hashes before it, with the changes applied.
pub(crate) fn outcome(
    project_id: Uuid,
    name: String,
    created: bool,
    revision: i64,
    mut hashes: BTreeMap<String, String>,
    changes: &[&Hashed<'_>],
) -> PushOutcome {
    for change in changes {
        hashes.insert(change.key.to_owned(), change.hash.clone());
    }
    PushOutcome {
        project_id,
        name,
        created,
        revision,
        changed: changes.iter().map(|c| c.key.to_owned()).collect(),
        hashes,
    }
}

/// What a push sets a mirror column of the `projects` row to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mirrored {
    /// The text the push changes that stage to (its place in the changed texts): the store
    /// writes the one copy it was sent.
    Pushed(usize),
    /// Another text of the pushed session, or none.
    Session(Option<String>),
}

/// The `projects` columns a push sets so that the row mirrors the pushed session, one entry
/// per stage in `Stage::ALL` order (`None`: left as it is): every stage column when the push
/// moved to another session, else only the stages it changed. `session_texts` (the pushed
/// session's stored texts) is read only for stages not changed.
pub(crate) fn mirror_columns(
    session_texts: &BTreeMap<String, String>,
    changed: &[&Hashed<'_>],
    same_session: bool,
) -> [Option<Mirrored>; 7] {
    Stage::ALL.map(|stage| {
        let key = stage.artifact_key();
        match changed.iter().position(|c| c.key == key) {
            Some(at) => Some(Mirrored::Pushed(at)),
            None if same_session => None,
            None => Some(Mirrored::Session(session_texts.get(key).cloned())),
        }
    })
}

/// What a pull read of one session, in one snapshot.
pub(crate) struct PulledSession {
    /// The session asked for, or the one the project's row mirrors.
    pub id: String,
    /// Its state and when it last changed, where it has a row of its own.
    pub row: Option<(Option<Value>, DateTime<Utc>)>,
    /// Artifact key → (text, hash).
    pub texts: BTreeMap<String, (String, String)>,
}

/// What a pull of `record` answers. A session asked for by name (`asked`) with neither a row
/// nor texts does not exist. One without a row of its own (the texts of a row written before
/// IDSE Desk, or no session pushed yet) answers with the project's state and time.
pub(crate) fn snapshot(
    record: ProjectRecord,
    asked: Option<&str>,
    session: PulledSession,
) -> Result<Snapshot, StoreError> {
    let (state_json, updated_at) = match session.row {
        Some(row) => row,
        None if asked.is_some() && session.texts.is_empty() => {
            return Err(StoreError::SessionNotFound {
                project: record.id,
                session: session.id,
            })
        }
        None => (record.state_json.clone(), record.updated_at),
    };
    let mut artifacts = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for (key, (text, hash)) in session.texts {
        hashes.insert(key.clone(), hash);
        artifacts.insert(key, text);
    }
    Ok(Snapshot {
        project_id: record.id,
        session_id: session.id,
        name: record.name,
        stack: record.stack,
        framework: record.framework,
        artifacts,
        hashes,
        state_json: state_json.or(record.state_json),
        updated_at,
        revision: record.revision,
    })
}

/// The stage statuses of a `session_state.json`, with `complete` read as `completed`.
pub fn stage_states(state_json: Option<&Value>) -> BTreeMap<String, String> {
    let Some(stages) = state_json
        .and_then(|s| s.get("stages"))
        .and_then(Value::as_object)
    else {
        return BTreeMap::new();
    };
    stages
        .iter()
        .filter_map(|(stage, status)| {
            let status = status.as_str()?;
            let status = if status == "complete" {
                "completed"
            } else {
                status
            };
            Some((stage.clone(), status.to_owned()))
        })
        .collect()
}

/// The session a legacy row (written before sessions were stored) belongs to.
pub(crate) fn legacy_session(state_json: Option<&Value>) -> String {
    state_json
        .and_then(|s| s.get("session_id"))
        .and_then(Value::as_str)
        .filter(|s| idse_protocol::validate_session_id(s).is_ok())
        .unwrap_or(idse_protocol::BLUEPRINT_SESSION)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use idse_protocol::content_hash;

    fn hash_artifacts(input: &PushInput) -> Vec<Hashed<'_>> {
        let hashes = input.artifacts.values();
        with_hashes(input, hashes.map(|t| content_hash(t)).collect())
    }

    fn input(artifacts: &[(&str, &str)], base: Option<&[(&str, &str)]>) -> PushInput {
        PushInput {
            project_name: "p".into(),
            session_id: "s".into(),
            artifacts: artifacts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            base: base.map(|b| {
                b.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..PushInput::default()
        }
    }

    fn current(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, text)| ((*k).to_owned(), content_hash(text)))
            .collect()
    }

    #[test]
    fn unchanged_texts_are_skipped_and_new_ones_apply() {
        let push = input(&[("intent_md", "same"), ("spec_md", "new")], None);
        let hashed = hash_artifacts(&push);
        let plan = plan_push(&current(&[("intent_md", "same")]), &hashed, &push).unwrap();
        assert_eq!(plan.iter().map(|c| c.key).collect::<Vec<_>>(), ["spec_md"]);
    }

    #[test]
    fn a_stale_base_conflicts_and_names_both_hashes() {
        let stale = content_hash("old");
        let push = input(&[("spec_md", "mine")], Some(&[("spec_md", &stale)]));
        let hashed = hash_artifacts(&push);
        let conflicts = plan_push(&current(&[("spec_md", "theirs")]), &hashed, &push).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].base_hash.as_deref(), Some(stale.as_str()));
        assert_eq!(conflicts[0].remote_hash, content_hash("theirs"));
    }

    #[test]
    fn a_missing_base_for_an_existing_remote_text_conflicts() {
        let push = input(&[("spec_md", "mine")], Some(&[]));
        let hashed = hash_artifacts(&push);
        assert!(plan_push(&current(&[("spec_md", "theirs")]), &hashed, &push).is_err());
    }

    #[test]
    fn matching_base_force_and_old_clients_apply() {
        let theirs = content_hash("theirs");
        let push = input(&[("spec_md", "mine")], Some(&[("spec_md", &theirs)]));
        let remote = current(&[("spec_md", "theirs")]);
        assert_eq!(
            plan_push(&remote, &hash_artifacts(&push), &push)
                .unwrap()
                .len(),
            1
        );

        let mut forced = input(&[("spec_md", "mine")], Some(&[]));
        forced.force = true;
        assert_eq!(
            plan_push(&remote, &hash_artifacts(&forced), &forced)
                .unwrap()
                .len(),
            1
        );

        let old_client = input(&[("spec_md", "mine")], None);
        let hashed = hash_artifacts(&old_client);
        assert_eq!(plan_push(&remote, &hashed, &old_client).unwrap().len(), 1);
    }

    #[test]
    fn mirror_sets_only_changed_columns_within_a_session() {
        let push = input(&[("spec_md", "x"), ("meta_md", "m")], None);
        let hashed = hash_artifacts(&push);
        let changed: Vec<_> = hashed.iter().collect();
        let texts: BTreeMap<_, _> = [
            ("spec_md".to_owned(), "old".to_owned()),
            ("plan_md".to_owned(), "kept".to_owned()),
        ]
        .into();
        let spec_at = changed.iter().position(|c| c.key == "spec_md");
        let spec = spec_at.map(Mirrored::Pushed);
        assert!(spec.is_some());
        let column = |columns: &[Option<Mirrored>; 7], key: &str| {
            let at = Stage::ALL.iter().position(|s| s.artifact_key() == key);
            at.and_then(|at| columns[at].clone())
        };
        let same = mirror_columns(&texts, &changed, true);
        assert_eq!(same.iter().flatten().count(), 1);
        assert_eq!(column(&same, "spec_md"), spec);
        let moved = mirror_columns(&texts, &changed, false);
        assert_eq!(moved.iter().flatten().count(), 7);
        assert_eq!(column(&moved, "spec_md"), spec);
        assert_eq!(
            column(&moved, "plan_md"),
            Some(Mirrored::Session(Some("kept".to_owned())))
        );
        assert_eq!(column(&moved, "intent_md"), Some(Mirrored::Session(None)));
    }

    #[test]
    fn stage_states_normalise_complete() {
        let state =
            serde_json::json!({"stages": {"intent": "complete", "spec": "in_progress", "x": 3}});
        let states = stage_states(Some(&state));
        assert_eq!(states["intent"], "completed");
        assert_eq!(states["spec"], "in_progress");
        assert!(!states.contains_key("x"));
        assert_eq!(
            legacy_session(Some(&serde_json::json!({"session_id": "../x"}))),
            "__blueprint__"
        );
    }

    #[test]
    fn a_pull_answers_with_the_session_or_the_project() {
        let at = |secs| DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
        let record = ProjectRecord {
            id: Uuid::from_u128(7),
            name: "p".into(),
            stack: None,
            framework: None,
            state_json: Some(serde_json::json!({"from": "project"})),
            created_at: at(1),
            updated_at: at(2),
            last_synced: None,
            last_agent: None,
            last_author: None,
            last_session_id: Some("s".into()),
            revision: 3,
        };
        let texts: BTreeMap<_, _> =
            [("spec_md".to_owned(), ("x".to_owned(), "h".to_owned()))].into();
        let pulled = |row, texts: &BTreeMap<_, _>| PulledSession {
            id: "s".into(),
            row,
            texts: texts.clone(),
        };
        // A session with a row: its state and time; the project's state where it has none.
        let own = snapshot(
            record.clone(),
            Some("s"),
            pulled(Some((Some(serde_json::json!(1)), at(9))), &texts),
        );
        let own = own.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (own.state_json, own.updated_at),
            (Some(serde_json::json!(1)), at(9))
        );
        assert_eq!(
            (
                own.artifacts["spec_md"].as_str(),
                own.hashes["spec_md"].as_str()
            ),
            ("x", "h")
        );
        assert_eq!(
            (own.project_id, own.revision, own.session_id.as_str()),
            (record.id, 3, "s")
        );
        let stateless = snapshot(record.clone(), None, pulled(Some((None, at(9))), &texts));
        assert_eq!(
            stateless.ok().map(|s| s.state_json),
            Some(record.state_json.clone())
        );
        // Texts without a session row (a legacy row's): the project's state and time.
        let legacy = snapshot(record.clone(), Some("s"), pulled(None, &texts));
        assert_eq!(legacy.ok().map(|s| s.updated_at), Some(at(2)));
        // Asked for by name, with neither: no such session. Not asked for: an empty pull.
        let missing = snapshot(record.clone(), Some("s"), pulled(None, &BTreeMap::new()));
        assert!(
            matches!(missing, Err(StoreError::SessionNotFound { project, .. }) if project == record.id)
        );
        let empty = snapshot(record.clone(), None, pulled(None, &BTreeMap::new()));
        assert_eq!(empty.ok().map(|s| s.artifacts.len()), Some(0));
    }
}
