//! JSON bodies of the gateway routes, as in DESIGN.md section 2. Fields marked ext are IDSE Desk
//! extensions; old clients ignore them, and every field a new client adds is optional.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /sync/push`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub project_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// `<stage>_md` → text. A `null` value is the same as an absent key: that stage is untouched.
    #[serde(default, deserialize_with = "unique_keys::map")]
    pub artifacts: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_json: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// ext: `<stage>_md` → hash of the text this client last agreed on with the gateway.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique_keys::optional_map"
    )]
    pub base: Option<BTreeMap<String, String>>,
    /// ext: the agent that wrote these texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// ext: skip the conflict check (the replaced texts stay in the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    pub success: bool,
    pub project_id: String,
    pub message: String,
    pub synced_stages: Vec<String>,
    pub timestamp: DateTime<Utc>,
    /// ext: the project's revision after this push.
    pub revision: i64,
    /// ext: `<stage>_md` → hash of every text the session holds after this push.
    pub hashes: BTreeMap<String, String>,
}

/// `POST /sync/pull`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub success: bool,
    pub project_id: String,
    pub session_id: String,
    pub name: String,
    pub stack: Option<String>,
    pub framework: Option<String>,
    pub artifacts: BTreeMap<String, String>,
    pub state_json: Option<Value>,
    pub updated_at: DateTime<Utc>,
    /// ext
    pub revision: i64,
    /// ext
    pub hashes: BTreeMap<String, String>,
}

/// `GET /sync/status/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub project_id: String,
    pub project_name: String,
    pub last_synced: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// stage → `pending` / `in_progress` / `completed`, from the latest session's state.
    pub state: BTreeMap<String, String>,
    pub last_agent: Option<String>,
    /// ext: who pushed last (a token's name).
    #[serde(default)]
    pub last_author: Option<String>,
    /// ext
    pub session_id: Option<String>,
    /// ext
    pub revision: i64,
}

/// One row of `GET /sync/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub id: String,
    pub name: String,
    pub stack: Option<String>,
    pub framework: Option<String>,
    pub state_json: Option<Value>,
    pub updated_at: DateTime<Utc>,
    /// ext
    pub revision: i64,
    /// ext
    pub last_agent: Option<String>,
    /// ext: who pushed last (a token's name).
    #[serde(default)]
    pub last_author: Option<String>,
    /// ext
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectsResponse {
    pub success: bool,
    pub count: usize,
    pub projects: Vec<ProjectSummary>,
}

/// `GET /sync/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy`.
    pub status: String,
    /// The store kind: `sqlite` or `postgres`.
    pub database: String,
    pub database_connected: bool,
    /// The gateway's version.
    pub version: String,
    /// ext: the store server's own version, when connected.
    pub database_version: Option<String>,
}

/// One accepted change of one stage (ext).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub session_id: String,
    /// The artifact key without `_md`.
    pub stage: String,
    pub revision: i64,
    pub sha256: String,
    pub bytes: i64,
    pub agent: Option<String>,
    pub author: Option<String>,
    pub pushed_at: DateTime<Utc>,
}

/// `GET /sync/history/{id}` (ext), newest first, a page at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryResponse {
    pub success: bool,
    pub project_id: String,
    pub revisions: Vec<RevisionInfo>,
    /// Ask again with `?before=` this for the next, older page; `null` on the last page.
    /// Absent from gateways that answered in one page.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// `GET /sync/history/{id}/{sha256}` (ext): a text the project ever held, by its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextResponse {
    pub success: bool,
    pub project_id: String,
    pub sha256: String,
    pub text: String,
}

/// A stage that changed remotely since the pusher's base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageConflict {
    /// The artifact key without `_md`.
    pub stage: String,
    pub base_hash: Option<String>,
    pub remote_hash: String,
    pub remote_text: String,
}

/// Every non-200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub success: bool,
    /// A stable code for programs: `bad_request`, `invalid_json`, `not_found`, `conflict`, …
    pub error: String,
    /// A sentence for people: what went wrong.
    pub message: String,
    /// A sentence for people: what to do about it.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<StageConflict>>,
}

/// One server-sent event of `GET /sync/events` (ext), sent after each accepted push that
/// changed a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushEvent {
    pub project_id: String,
    pub project_name: String,
    pub session_id: String,
    /// Stage names (artifact keys without `_md`) whose text changed.
    pub stages: Vec<String>,
    pub revision: i64,
    pub author: Option<String>,
    pub agent: Option<String>,
    pub pushed_at: DateTime<Utc>,
}

/// Maps in which a key given twice is refused: a push naming a stage twice is ambiguous, and
/// JSON parsers disagree on which text wins (serde keeps the last, others the first).
mod unique_keys {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};

    struct Unique<V>(BTreeMap<String, V>);

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for Unique<V> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Keys<V>(PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for Keys<V> {
                type Value = Unique<V>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object with each key once")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut access: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut map = BTreeMap::new();
                    while let Some((key, value)) = access.next_entry::<String, V>()? {
                        if map.contains_key(&key) {
                            return Err(A::Error::custom(format_args!(
                                "the key `{key}` is given twice"
                            )));
                        }
                        map.insert(key, value);
                    }
                    Ok(Unique(map))
                }
            }
            deserializer.deserialize_map(Keys(PhantomData))
        }
    }

    pub(super) fn map<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
    where
        D: Deserializer<'de>,
        V: Deserialize<'de>,
    {
        Unique::deserialize(deserializer).map(|unique| unique.0)
    }

    pub(super) fn optional_map<'de, D, V>(
        deserializer: D,
    ) -> Result<Option<BTreeMap<String, V>>, D::Error>
    where
        D: Deserializer<'de>,
        V: Deserialize<'de>,
    {
        Ok(Option::<Unique<V>>::deserialize(deserializer)?.map(|unique| unique.0))
    }
}
