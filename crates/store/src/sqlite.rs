//! The embedded store: one SQLite file in WAL mode, one writer connection (so pushes are
//! serialised without busy retries) and a pool of readers.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

mod wal_writeback;

use crate::hashes::TextHashes;
use crate::rules::{self, Hashed};
use crate::{
    HistoryFilter, OpenOptions, ProjectRecord, PushInput, PushOutcome, RevisionRecord, Snapshot,
    Store, StoreError, TokenRecord,
};
use wal_writeback::WalWriteback;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    texts: Arc<TextHashes>,
    /// `None` for an in-memory database, and with full sync (every commit syncs the WAL).
    writeback: Option<WalWriteback>,
    _checkpoints: Arc<Checkpoints>,
}

/// Checkpoints the WAL in the background, so no push waits for a whole checkpoint; stops with
/// the last clone of the store.
#[derive(Debug)]
struct Checkpoints(tokio::task::AbortHandle);

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// WAL size past which a round finishes on the writer, and to which a WAL that grew under
/// load is cut back when it starts over.
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// `WAL_LIMIT_BYTES` in WAL frames (one 4 KiB page each, SQLite's default page size).
const WAL_RESTART_FRAMES: i64 = WAL_LIMIT_BYTES / 4096;

/// The WAL that SQLite keeps beside the database file `db`.
fn wal_file(db: &std::path::Path) -> std::path::PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

impl Checkpoints {
    /// Each round copies the WAL into the database from `background`, which pushes do not wait
    /// for. The WAL starts over only at a push that begins with every frame copied; under
    /// steady pushes the background copy never catches up with the frames appended meanwhile,
    /// so the WAL would grow without end (measured: 100 MiB after 2,000 back-to-back pushes).
    /// Past `restart_frames` the round therefore ends on the `writer` connection, between two
    /// pushes, where it copies what is left and the next push starts the WAL over.
    fn start(
        background: SqlitePool,
        writer: SqlitePool,
        file: Option<std::path::PathBuf>,
        restart_frames: i64,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            loop {
                tick.tick().await;
                let round = match checkpoint(&background).await {
                    Ok(frames) if frames >= restart_frames => {
                        finish_round(&background, &writer, file.as_deref(), frames).await
                    }
                    other => other,
                };
                if let Err(e) = round {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        });
        Self(task.abort_handle())
    }
}

/// Frames a round may leave for the writer to copy: 512 KiB.
const FINISH_FRAMES: i64 = 128;

/// Ends a round on the writer, which pushes wait for. The background copies again first while
/// pushes keep appending (each pass has less to copy, so less is appended during it) and syncs
/// the files, so the writer copies and syncs only the last few frames: measured under
/// back-to-back pushes, the writer's part went from 40–100 ms to about 20 ms, once per 64 MiB
/// of WAL.
async fn finish_round(
    background: &SqlitePool,
    writer: &SqlitePool,
    file: Option<&std::path::Path>,
    mut frames: i64,
) -> Result<i64, sqlx::Error> {
    for _ in 0..8 {
        let now = checkpoint(background).await?;
        let appended = now - frames;
        frames = now;
        if appended <= FINISH_FRAMES {
            break;
        }
    }
    // The passes above leave the database file unsynced (SQLite syncs it only when a pass
    // copied the whole WAL, which under load none does), and the WAL holds what was appended
    // meanwhile. Syncing both here, off the writer, leaves the writer a few pages to sync
    // instead of tens of MiB.
    if let Some(file) = file {
        let files = [file.to_owned(), wal_file(file)];
        let synced = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .try_for_each(|f| std::fs::OpenOptions::new().write(true).open(f)?.sync_data())
        })
        .await;
        if let Ok(Err(e)) | Err(e) = synced.map_err(std::io::Error::other) {
            tracing::warn!(error = %e, "syncing the database files failed");
        }
    }
    checkpoint(writer).await
}

/// A passive checkpoint; answers how many frames the WAL holds.
async fn checkpoint(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    Ok(frames)
}

const PROJECT_COLUMNS: &str = "p.id, p.name, p.stack, p.framework, p.state_json, p.created_at, \
     p.updated_at, p.last_synced, p.last_agent, p.last_author, p.last_session_id, p.revision";

impl SqliteStore {
    /// Opens (creating if missing) the database at `location`: a `sqlite:` URL or a file path.
    pub async fn open(location: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        Self::open_with(location, options, WAL_RESTART_FRAMES).await
    }

    async fn open_with(
        location: &str,
        options: &OpenOptions,
        restart_frames: i64,
    ) -> Result<Self, StoreError> {
        let base = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location)?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let connect = base
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string())
            .foreign_keys(true);
        // No liveness ping before each use (a hop to SQLite's worker thread): a connection to a
        // local file does not go stale, and a broken one fails the query itself.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(
                options
                    .acquire_timeout
                    .max(std::time::Duration::from_secs(10)),
            )
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        // The database's own file ("" for an in-memory database).
        let (_, _, file): (i64, String, String) = sqlx::query_as("PRAGMA database_list")
            .fetch_one(&checkpointer)
            .await?;
        let file = (!file.is_empty()).then(|| std::path::PathBuf::from(file));
        let writeback = match &file {
            Some(file) if !options.sqlite_full_sync => Some(
                WalWriteback::start(wal_file(file), wal_writeback::EVERY)
                    .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?,
            ),
            _ => None,
        };
        let checkpoints = Arc::new(Checkpoints::start(
            checkpointer,
            writer.clone(),
            file,
            restart_frames,
        ));
        Ok(Self {
            writer,
            reader,
            texts: Arc::default(),
            writeback,
            _checkpoints: checkpoints,
        })
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(m: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(m)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {m} is out of range")))
}

fn parse_json(text: Option<String>) -> Result<Option<Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("stored JSON does not parse: {e}")))
}

fn project_from_row(row: &SqliteRow) -> Result<ProjectRecord, StoreError> {
    let id: String = row.try_get("id")?;
    Ok(ProjectRecord {
        id: Uuid::parse_str(&id)
            .map_err(|_| StoreError::Corrupt(format!("project id `{id}` is not a UUID")))?,
        name: row.try_get("name")?,
        stack: row.try_get("stack")?,
        framework: row.try_get("framework")?,
        state_json: parse_json(row.try_get("state_json")?)?,
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        last_synced: row
            .try_get::<Option<i64>, _>("last_synced")?
            .map(from_micros)
            .transpose()?,
        last_agent: row.try_get("last_agent")?,
        last_author: row.try_get("last_author")?,
        last_session_id: row.try_get("last_session_id")?,
        revision: row.try_get("revision")?,
    })
}

async fn select_project(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<ProjectRecord>, StoreError> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM project_rows p WHERE p.id = ?");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(project_from_row).transpose()
}

async fn session_texts(
    conn: &mut SqliteConnection,
    project: Uuid,
    session: &str,
) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.artifact, r.text, d.sha256 FROM documents d JOIN revisions r ON r.id = d.rev_id \
         WHERE d.project_id = ? AND d.session_id = ?",
    )
    .bind(project.to_string())
    .bind(session)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("artifact")?,
                (r.try_get("text")?, r.try_get("sha256")?),
            ))
        })
        .collect()
}

impl SqliteStore {
    /// Begins the push's transaction and reads the pushed-to project (created by name if needed)
    /// and the session's current hashes, in one query. The writer connection is the only
    /// writer, so nothing moves under us.
    async fn find_or_create(
        conn: &mut SqliteConnection,
        input: &PushInput,
        now: DateTime<Utc>,
    ) -> Result<(ProjectRecord, bool, BTreeMap<String, String>), StoreError> {
        let (filter, key) = match input.project_id {
            Some(id) => ("p.id = ?1", id.to_string()),
            None => ("p.name = ?1", input.project_name.clone()),
        };
        // Opens the push's transaction in the same round trip to SQLite's worker thread.
        // IMMEDIATE takes the write lock now, so another process writing the same file waits
        // for it (busy timeout) instead of failing the push at its first write.
        let sql = format!(
            "BEGIN IMMEDIATE; SELECT {PROJECT_COLUMNS}, (SELECT json_group_object(d.artifact, d.sha256) \
             FROM documents d WHERE d.project_id = p.id AND d.session_id = ?2) AS hashes \
             FROM project_rows p WHERE {filter}"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(&key)
            .bind(&input.session_id)
            .fetch_optional(&mut *conn)
            .await?
        {
            let hashes: BTreeMap<String, String> =
                match row.try_get::<Option<String>, _>("hashes")? {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        StoreError::Corrupt(format!("document hashes do not parse: {e}"))
                    })?,
                    None => BTreeMap::new(),
                };
            return Ok((project_from_row(&row)?, false, hashes));
        }
        if let Some(id) = input.project_id {
            return Err(StoreError::ProjectNotFound(id));
        }
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO project_rows (id, name, stack, framework, created_at, updated_at, revision) \
             VALUES (?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(id.to_string())
        .bind(&input.project_name)
        .bind(&input.stack)
        .bind(&input.framework)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
        let project = ProjectRecord {
            id,
            name: input.project_name.clone(),
            stack: input.stack.clone(),
            framework: input.framework.clone(),
            state_json: None,
            created_at: now,
            updated_at: now,
            last_synced: None,
            last_agent: None,
            last_author: None,
            last_session_id: None,
            revision: 0,
        };
        Ok((project, true, BTreeMap::new()))
    }

    /// One push on the writer connection; whatever fails, its transaction is closed.
    async fn push_on_writer(
        writer: &SqlitePool,
        texts: &TextHashes,
        input: &PushInput,
        now: DateTime<Utc>,
    ) -> Result<PushOutcome, StoreError> {
        let hashed = rules::with_hashes(input, texts.of(input));
        let mut conn = writer.acquire().await?;
        let result = Self::push_in_transaction(&mut conn, input, &hashed, now).await;
        if result.is_err() && sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
            // Either no transaction was open, or it could not be closed: a new connection
            // is certain to hold none.
            conn.close_on_drop();
        }
        result
    }

    async fn push_in_transaction(
        conn: &mut SqliteConnection,
        input: &PushInput,
        hashed: &[Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<PushOutcome, StoreError> {
        let (project, created, current) = Self::find_or_create(conn, input, now).await?;
        let changes = match rules::plan_push(&current, hashed, input) {
            Ok(changes) => changes,
            Err(pending) => {
                let texts = session_texts(conn, project.id, &input.session_id).await?;
                return Err(rules::conflict_error(pending, &texts));
            }
        };
        let revision = Self::apply_and_commit(conn, &project, input, &changes, now).await?;
        Ok(rules::outcome(
            project.id, created, revision, current, &changes,
        ))
    }

    /// Writes a checked push and commits, in one round trip to SQLite's worker thread (each
    /// statement sent on its own cost a thread wake-up both ways, most of a push's time).
    async fn apply_and_commit(
        conn: &mut SqliteConnection,
        project: &ProjectRecord,
        input: &PushInput,
        changes: &[&Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let revision = project.revision + i64::from(!changes.is_empty());
        // Numbered parameters are shared by all the statements: ?1 id, ?2 session, ?3
        // revision, ?4 agent, ?5 author, ?6 time, ?7 state, ?8 metadata, ?9 stack,
        // ?10 framework, then key, hash and text of each change.
        let mut sql = String::new();
        if !changes.is_empty() {
            // One statement for every changed stage; a trigger moves the documents along.
            sql.push_str(
                "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, \
                 agent, author, pushed_at) VALUES ",
            );
            for i in 0..changes.len() {
                let n = 11 + 3 * i;
                let sep = if i == 0 { "" } else { ", " };
                let (key, hash, text) = (n, n + 1, n + 2);
                sql.push_str(&format!(
                    "{sep}(?1, ?2, ?{key}, ?3, ?{hash}, ?{text}, ?4, ?5, ?6)"
                ));
            }
            sql.push_str("; ");
        }
        sql.push_str(
            "INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, \
             created_at, updated_at) VALUES (?1, ?2, ?7, ?8, ?6, ?6) \
             ON CONFLICT (project_id, session_id) DO UPDATE SET \
             state_json = COALESCE(excluded.state_json, project_sessions.state_json), \
             session_metadata = COALESCE(excluded.session_metadata, project_sessions.session_metadata), \
             updated_at = excluded.updated_at; \
             UPDATE project_rows SET updated_at = ?6, last_synced = ?6, revision = ?3, \
             last_session_id = ?2, stack = COALESCE(?9, stack), framework = COALESCE(?10, framework), \
             state_json = COALESCE(?7, state_json), last_agent = COALESCE(?4, last_agent), \
             last_author = COALESCE(?5, last_author) WHERE id = ?1; \
             COMMIT",
        );
        let mut query = sqlx::query(&sql)
            .bind(project.id.to_string())
            .bind(&input.session_id)
            .bind(revision)
            .bind(input.effective_agent())
            .bind(&input.author)
            .bind(micros(now))
            .bind(input.state_json.as_ref().map(Value::to_string))
            .bind(input.session_metadata.as_ref().map(Value::to_string))
            .bind(&input.stack)
            .bind(&input.framework);
        for change in changes {
            query = query.bind(change.key).bind(&change.hash).bind(change.text);
        }
        query.execute(&mut *conn).await?;
        Ok(revision)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn health(&self) -> Result<String, StoreError> {
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.reader)
            .await?;
        Ok(version)
    }

    async fn push(&self, input: PushInput, now: DateTime<Utc>) -> Result<PushOutcome, StoreError> {
        // Runs to its end even if the request is dropped meanwhile: between its statements it
        // holds the writer's transaction, which only it closes.
        let (writer, texts) = (self.writer.clone(), self.texts.clone());
        let writeback = self.writeback.clone();
        tokio::spawn(async move {
            let outcome = Self::push_on_writer(&writer, &texts, &input, now).await;
            if let (Ok(_), Some(writeback)) = (&outcome, writeback) {
                writeback.appended();
            }
            outcome
        })
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?
    }

    async fn pull(&self, project: Uuid, session: Option<&str>) -> Result<Snapshot, StoreError> {
        // One read transaction, so the texts and the revision belong to the same moment.
        let mut conn = self.reader.begin().await?;
        let record = select_project(&mut conn, project)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        let session_id = session
            .map(str::to_owned)
            .or_else(|| record.last_session_id.clone())
            .unwrap_or_else(|| idse_protocol::BLUEPRINT_SESSION.to_owned());
        let session_row = sqlx::query(
            "SELECT state_json, updated_at FROM project_sessions WHERE project_id = ? AND session_id = ?",
        )
        .bind(project.to_string())
        .bind(&session_id)
        .fetch_optional(&mut *conn)
        .await?;
        let texts = session_texts(&mut conn, project, &session_id).await?;
        let (state_json, updated_at) = match &session_row {
            Some(row) => (
                parse_json(row.try_get("state_json")?)?,
                from_micros(row.try_get("updated_at")?)?,
            ),
            None if session.is_some() => {
                return Err(StoreError::SessionNotFound {
                    project,
                    session: session_id,
                })
            }
            None => (record.state_json.clone(), record.updated_at),
        };
        let (artifacts, hashes) = rules::split_texts(texts);
        let snapshot = Snapshot {
            project_id: project,
            session_id,
            name: record.name,
            stack: record.stack,
            framework: record.framework,
            artifacts,
            hashes,
            state_json: state_json.or(record.state_json),
            updated_at,
            revision: record.revision,
        };
        conn.commit().await?;
        Ok(snapshot)
    }

    async fn project(&self, project: Uuid) -> Result<ProjectRecord, StoreError> {
        let mut conn = self.reader.acquire().await?;
        select_project(&mut conn, project)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM project_rows p ORDER BY p.updated_at DESC, p.name"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(project_from_row).collect()
    }

    async fn history(
        &self,
        project: Uuid,
        filter: &HistoryFilter,
    ) -> Result<Vec<RevisionRecord>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        select_project(&mut conn, project)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        let rows = sqlx::query(
            "SELECT session_id, artifact, revision, sha256, length(CAST(text AS BLOB)) AS bytes, agent, author, pushed_at \
             FROM revisions WHERE project_id = ?1 \
             AND (?2 IS NULL OR artifact = ?2) AND (?3 IS NULL OR session_id = ?3) \
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(project.to_string())
        .bind(&filter.artifact)
        .bind(&filter.session_id)
        .bind(filter.limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RevisionRecord {
                    session_id: r.try_get("session_id")?,
                    artifact: r.try_get("artifact")?,
                    revision: r.try_get("revision")?,
                    sha256: r.try_get("sha256")?,
                    bytes: r.try_get("bytes")?,
                    agent: r.try_get("agent")?,
                    author: r.try_get("author")?,
                    pushed_at: from_micros(r.try_get("pushed_at")?)?,
                })
            })
            .collect()
    }

    async fn text_by_hash(&self, project: Uuid, sha256: &str) -> Result<String, StoreError> {
        let mut conn = self.reader.acquire().await?;
        select_project(&mut conn, project)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        sqlx::query_scalar("SELECT text FROM revisions WHERE project_id = ? AND sha256 = ? LIMIT 1")
            .bind(project.to_string())
            .bind(sha256)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::TextNotFound {
                project,
                sha256: sha256.to_owned(),
            })
    }

    async fn create_token(
        &self,
        name: &str,
        sha256: &str,
        read_only: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO gateway_tokens (name, sha256, read_only, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sha256)
        .bind(read_only)
        .bind(micros(now))
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TokenExists(name.to_owned()));
        }
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, read_only, created_at, revoked_at FROM gateway_tokens ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gateway_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(name)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, read_only, created_at, revoked_at FROM gateway_tokens \
             WHERE sha256 = ? AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        name: row.try_get("name")?,
        read_only: row.try_get("read_only")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_micros)
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The WAL header's checkpoint sequence, which grows by one each time the WAL starts over.
    fn wal_sequence(db: &std::path::Path) -> u32 {
        let header = std::fs::read(wal_file(db)).unwrap();
        u32::from_be_bytes([header[12], header[13], header[14], header[15]])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_starts_over_under_steady_pushes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gateway.sqlite3");
        let store = SqliteStore::open_with(db.to_str().unwrap(), &OpenOptions::default(), 64)
            .await
            .unwrap();
        let mut input = PushInput {
            project_name: "steady".to_owned(),
            session_id: idse_protocol::BLUEPRINT_SESSION.to_owned(),
            ..PushInput::default()
        };
        let now = Utc::now();
        let body = "A line of a stage document, long enough to take some pages.\n".repeat(150);
        input
            .artifacts
            .insert("spec_md".to_owned(), "0\n".to_owned());
        input.project_id = Some(store.push(input.clone(), now).await.unwrap().project_id);
        let first = wal_sequence(&db);
        // Back to back for three checkpoint rounds: no pause lets a background copy finish.
        let started = std::time::Instant::now();
        let mut version = 1;
        while started.elapsed() < CHECKPOINT_EVERY * 3 {
            input
                .artifacts
                .insert("spec_md".to_owned(), format!("{version}\n{body}"));
            store.push(input.clone(), now).await.unwrap();
            version += 1;
        }
        assert!(
            wal_sequence(&db) > first,
            "the WAL never started over during {version} pushes"
        );
        let pulled = store.pull(input.project_id.unwrap(), None).await.unwrap();
        assert_eq!(
            pulled.artifacts["spec_md"],
            format!("{}\n{body}", version - 1)
        );
    }
}
