//! The embedded store: one SQLite file in WAL mode, one writer connection on a thread of its
//! own (so pushes are serialised without busy retries) and a pool of readers.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

mod backup;
mod checkpoints;
mod transfer;
mod wal_writeback;
mod writer;

use crate::hashes::TextHashes;
use crate::rules::{self, Hashed};
use crate::{
    HistoryFilter, HistoryPage, Imported, OpenOptions, ProjectExport, ProjectRecord, PushInput,
    PushOutcome, RevisionRecord, Snapshot, Store, StoreError, TokenExport, TokenRecord,
};
pub use backup::{Backup, BackupError};
use checkpoints::Checkpoints;
use wal_writeback::WalWriteback;
use writer::Writer;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    texts: Arc<TextHashes>,
    /// `None` with full sync (every commit syncs the WAL).
    writeback: Option<WalWriteback>,
    _checkpoints: Arc<Checkpoints>,
}

/// WAL size past which a round finishes on the writer, and to which a WAL that grew under
/// load is cut back when it starts over.
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// `WAL_LIMIT_BYTES` in WAL frames (one 4 KiB page each, SQLite's default page size).
const WAL_RESTART_FRAMES: i64 = WAL_LIMIT_BYTES / 4096;

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The settings of every connection to the file, sqlx's and the writer's (`writer::connect`).
fn pragmas(full_sync: bool) -> [(&'static str, String); 4] {
    [
        ("journal_mode", "WAL".to_owned()),
        (
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" }.to_owned(),
        ),
        ("journal_size_limit", WAL_LIMIT_BYTES.to_string()),
        ("foreign_keys", "ON".to_owned()),
    ]
}

/// The file `location` names: a `sqlite:` URL (with its options) or a plain path.
fn connect_options(location: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    if location.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(location)
    } else {
        Ok(SqliteConnectOptions::new().filename(location))
    }
}

/// A project id as stored: a UUID in text.
fn project_id(id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(id).map_err(|_| StoreError::Corrupt(format!("project id `{id}` is not a UUID")))
}

/// The WAL that SQLite keeps beside the database file `db`.
fn wal_file(db: &std::path::Path) -> std::path::PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

const PROJECT_COLUMNS: &str = "p.id, p.name, p.stack, p.framework, p.state_json, p.created_at, \
     p.updated_at, p.last_synced, p.last_agent, p.last_author, p.last_session_id, p.revision";

impl SqliteStore {
    /// Writes a consistent copy of the database at `location` (a `sqlite:` URL or a file path)
    /// to the new file `dest`, while any gateway on it goes on serving; see `backup::backup`.
    pub fn backup(location: &str, dest: &std::path::Path) -> Result<Backup, BackupError> {
        let options =
            connect_options(location).map_err(|_| BackupError::Location(location.to_owned()))?;
        backup::backup(options.get_filename(), dest)
    }

    /// The file `location` (a `sqlite:` URL or a file path) names, if it is a database file that
    /// exists: a copy from a mistyped path should say so, not copy an empty new database.
    pub fn existing_file(location: &str) -> Option<std::path::PathBuf> {
        let options = connect_options(location).ok()?;
        let file = options.get_filename();
        file.is_file().then(|| file.to_owned())
    }

    /// Opens (creating if missing) the database at `location`: a `sqlite:` URL or a file path.
    pub async fn open(location: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        Self::open_with(location, options, WAL_RESTART_FRAMES).await
    }

    async fn open_with(
        location: &str,
        options: &OpenOptions,
        restart_frames: i64,
    ) -> Result<Self, StoreError> {
        let base = connect_options(location)?;
        // SQLite creates a missing file but not its folder, and then says only "unable to open
        // database file"; a folder is not made here either, as a typo in a path would make one.
        let folder = base
            .get_filename()
            .parent()
            .unwrap_or(std::path::Path::new(""));
        if !folder.as_os_str().is_empty() && !folder.is_dir() {
            return Err(StoreError::NoFolder(folder.to_owned()));
        }
        let connect = pragmas(options.sqlite_full_sync)
            .into_iter()
            .fold(base, |connect, (name, value)| connect.pragma(name, value))
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&migrator).await?;
        migrator.close().await;
        // No liveness ping before each use (a hop to SQLite's worker thread): a connection to a
        // local file does not go stale, and a broken one fails the query itself.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().read_only(true))
            .await?;
        // The database's own file ("" for an in-memory database).
        let (_, _, file): (i64, String, String) = sqlx::query_as("PRAGMA database_list")
            .fetch_one(&reader)
            .await?;
        if file.is_empty() {
            return Err(StoreError::Unavailable(
                "the gateway keeps its data in a SQLite file; an in-memory database is not supported"
                    .into(),
            ));
        }
        let file = std::path::PathBuf::from(file);
        // Eight rounds' worth: only reached if both background threads fall behind.
        let writer = Writer::start(&file, options.sqlite_full_sync, 8 * restart_frames).await?;
        let writeback = if options.sqlite_full_sync {
            None
        } else {
            Some(
                WalWriteback::start(wal_file(&file), wal_writeback::EVERY)
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))?,
            )
        };
        let checkpoints = Arc::new(Checkpoints::start(
            file,
            writer.clone(),
            restart_frames,
            options.sqlite_full_sync,
        )?);
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
        id: project_id(&id)?,
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

/// The columns of a history entry ([`revision_from_row`]), `bytes` counted as UTF-8.
const REVISION_COLUMNS: &str = "session_id, artifact, revision, sha256, \
     length(CAST(text AS BLOB)) AS bytes, agent, author, pushed_at";

fn revision_from_row(r: &SqliteRow) -> Result<RevisionRecord, StoreError> {
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
}

/// A session's current texts: artifact, text and hash.
const SESSION_TEXTS: &str = "SELECT d.artifact, r.text, d.sha256 FROM documents d \
     JOIN revisions r ON r.id = d.rev_id WHERE d.project_id = ?1 AND d.session_id = ?2";

/// A push's project as the push finds it, before it is checked.
struct Head {
    id: Uuid,
    name: String,
    revision: i64,
    created: bool,
    /// The pushed-to session's current hash of each artifact.
    hashes: BTreeMap<String, String>,
}

/// One push, on the writer thread: check and write are one transaction.
fn push_on(
    conn: &mut rusqlite::Connection,
    input: &PushInput,
    hashes: Vec<String>,
    now: DateTime<Utc>,
) -> Result<PushOutcome, StoreError> {
    let hashed = rules::with_hashes(input, hashes);
    // IMMEDIATE takes the write lock now, so another process writing the same file waits for it
    // (busy timeout) instead of failing the push at its first write. Dropped without a commit,
    // the transaction rolls back.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = find_or_create(&tx, input, now)?;
    let changes = match rules::plan_push(&head.hashes, &hashed, input) {
        Ok(changes) => changes,
        Err(pending) => {
            let mut texts = BTreeMap::new();
            let mut query = tx.prepare_cached(SESSION_TEXTS)?;
            let mut rows = query.query(params![head.id.to_string(), input.session_id])?;
            while let Some(row) = rows.next()? {
                texts.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
            }
            return Err(rules::conflict_error(pending, &texts));
        }
    };
    let revision = head.revision + i64::from(!changes.is_empty());
    write_push(&tx, head.id, revision, input, &changes, now)?;
    tx.commit()?;
    Ok(rules::outcome(
        head.id,
        head.name,
        head.created,
        revision,
        head.hashes,
        &changes,
    ))
}

/// Reads the pushed-to project (created by name if needed) and the session's current hashes.
fn find_or_create(
    tx: &rusqlite::Transaction<'_>,
    input: &PushInput,
    now: DateTime<Utc>,
) -> Result<Head, StoreError> {
    let (filter, key) = match input.project_id {
        Some(id) => ("p.id = ?1", id.to_string()),
        None => ("p.name = ?1", input.project_name.clone()),
    };
    let sql = format!(
        "SELECT p.id, p.revision, (SELECT json_group_object(d.artifact, d.sha256) \
         FROM documents d WHERE d.project_id = p.id AND d.session_id = ?2), p.name \
         FROM project_rows p WHERE {filter}"
    );
    let found = tx
        .prepare_cached(&sql)?
        .query_row(params![key, input.session_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    if let Some((id, revision, hashes, name)) = found {
        let id = project_id(&id)?;
        let hashes = match hashes {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("document hashes do not parse: {e}")))?,
            None => BTreeMap::new(),
        };
        return Ok(Head {
            id,
            name,
            revision,
            created: false,
            hashes,
        });
    }
    if let Some(id) = input.project_id {
        return Err(StoreError::ProjectNotFound(id));
    }
    let id = Uuid::new_v4();
    tx.prepare_cached(
        "INSERT INTO project_rows (id, name, stack, framework, created_at, updated_at, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0)",
    )?
    .execute(params![
        id.to_string(),
        input.project_name,
        input.stack,
        input.framework,
        micros(now)
    ])?;
    Ok(Head {
        id,
        name: input.project_name.clone(),
        revision: 0,
        created: true,
        hashes: BTreeMap::new(),
    })
}

/// Writes a checked push: a history row per changed stage (a trigger moves the documents
/// along), the session, and the project row.
fn write_push(
    tx: &rusqlite::Transaction<'_>,
    project: Uuid,
    revision: i64,
    input: &PushInput,
    changes: &[&Hashed<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (id, at, agent) = (project.to_string(), micros(now), input.effective_agent());
    if !changes.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, \
             agent, author, pushed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for change in changes {
            insert.execute(params![
                id,
                input.session_id,
                change.key,
                revision,
                change.hash,
                change.text,
                agent,
                input.author,
                at
            ])?;
        }
    }
    let state = input.state_json.as_ref().map(Value::to_string);
    tx.prepare_cached(
        "INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
         ON CONFLICT (project_id, session_id) DO UPDATE SET \
         state_json = COALESCE(excluded.state_json, project_sessions.state_json), \
         session_metadata = COALESCE(excluded.session_metadata, project_sessions.session_metadata), \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        id,
        input.session_id,
        state,
        input.session_metadata.as_ref().map(Value::to_string),
        at
    ])?;
    tx.prepare_cached(
        "UPDATE project_rows SET updated_at = ?2, last_synced = ?2, revision = ?3, \
         last_session_id = ?4, stack = COALESCE(?5, stack), framework = COALESCE(?6, framework), \
         state_json = COALESCE(?7, state_json), last_agent = COALESCE(?8, last_agent), \
         last_author = COALESCE(?9, last_author) WHERE id = ?1",
    )?
    .execute(params![
        id,
        at,
        revision,
        input.session_id,
        input.stack,
        input.framework,
        state,
        agent,
        input.author
    ])?;
    Ok(())
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
        // Hashed here, so the writer thread spends its time writing.
        let hashes = self.texts.of(&input);
        let outcome = self
            .writer
            .run(move |conn| push_on(conn, &input, hashes, now))
            .await;
        if let (Ok(_), Some(writeback)) = (&outcome, &self.writeback) {
            writeback.appended();
        }
        outcome
    }

    async fn pull(&self, project: Uuid, session: Option<&str>) -> Result<Snapshot, StoreError> {
        // One statement, so the texts and the revision belong to the same moment, and one
        // round trip to SQLite's worker thread instead of five (a transaction of three reads):
        // a row per stage, the project and session columns on each.
        let sql = format!(
            "WITH q AS (SELECT *, COALESCE(?2, last_session_id, ?3) AS sid FROM project_rows \
             WHERE id = ?1) \
             SELECT {PROJECT_COLUMNS}, p.sid, s.project_id IS NOT NULL AS has_session, \
             s.state_json AS session_state, s.updated_at AS session_updated, \
             d.artifact, r.text, d.sha256 \
             FROM q p LEFT JOIN project_sessions s ON s.project_id = p.id AND s.session_id = p.sid \
             LEFT JOIN documents d ON d.project_id = p.id AND d.session_id = p.sid \
             LEFT JOIN revisions r ON r.id = d.rev_id"
        );
        let rows = sqlx::query(&sql)
            .bind(project.to_string())
            .bind(session)
            .bind(idse_protocol::BLUEPRINT_SESSION)
            .fetch_all(&self.reader)
            .await?;
        let first = rows.first().ok_or(StoreError::ProjectNotFound(project))?;
        let record = project_from_row(first)?;
        let session_id: String = first.try_get("sid")?;
        let session_row = if first.try_get("has_session")? {
            Some((
                parse_json(first.try_get("session_state")?)?,
                from_micros(first.try_get("session_updated")?)?,
            ))
        } else {
            None
        };
        let mut texts = BTreeMap::new();
        for row in &rows {
            // A session without documents is one row with none.
            if let Some(artifact) = row.try_get::<Option<String>, _>("artifact")? {
                texts.insert(artifact, (row.try_get("text")?, row.try_get("sha256")?));
            }
        }
        rules::snapshot(
            record,
            session,
            rules::PulledSession {
                id: session_id,
                row: session_row,
                texts,
            },
        )
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
    ) -> Result<HistoryPage, StoreError> {
        let mut conn = self.reader.acquire().await?;
        select_project(&mut conn, project)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        let sql = format!(
            "SELECT id, {REVISION_COLUMNS} FROM revisions WHERE project_id = ?1 \
             AND (?2 IS NULL OR artifact = ?2) AND (?3 IS NULL OR session_id = ?3) \
             AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5"
        );
        let rows = sqlx::query(&sql)
            .bind(project.to_string())
            .bind(&filter.artifact)
            .bind(&filter.session_id)
            .bind(filter.before)
            .bind(filter.limit.saturating_add(1))
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, revision_from_row(r)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(HistoryPage::from_rows(rows, filter.limit))
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
        let (name, sha256) = (name.to_owned(), sha256.to_owned());
        self.writer
            .run(move |conn| {
                let added = conn
                    .prepare_cached(
                        "INSERT INTO gateway_tokens (name, sha256, read_only, created_at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                    )?
                    .execute(params![name, sha256, read_only, micros(now)])?;
                if added == 0 {
                    return Err(StoreError::TokenExists(name));
                }
                Ok(())
            })
            .await
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
        let name = name.to_owned();
        self.writer
            .run(move |conn| {
                let revoked = conn
                    .prepare_cached(
                        "UPDATE gateway_tokens SET revoked_at = ?1 \
                         WHERE name = ?2 AND revoked_at IS NULL",
                    )?
                    .execute(params![micros(now), name])?;
                Ok(revoked == 1)
            })
            .await
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

    async fn export_project(&self, project: Uuid) -> Result<ProjectExport, StoreError> {
        transfer::export_project(&self.reader, project).await
    }

    async fn import_project(&self, export: ProjectExport) -> Result<Imported, StoreError> {
        self.writer
            .run(move |conn| transfer::import_project(conn, &export))
            .await
    }

    async fn export_tokens(&self) -> Result<Vec<TokenExport>, StoreError> {
        transfer::export_tokens(&self.reader).await
    }

    async fn import_token(&self, token: TokenExport) -> Result<Imported, StoreError> {
        self.writer
            .run(move |conn| transfer::import_token(conn, &token))
            .await
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

    #[tokio::test]
    async fn a_database_in_a_missing_folder_is_refused_naming_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("no-such-folder");
        let file = folder.join("gateway.sqlite3");
        for location in [
            file.display().to_string(),
            format!("sqlite://{}", file.display()),
        ] {
            match SqliteStore::open(&location, &OpenOptions::default()).await {
                Err(StoreError::NoFolder(named)) => assert_eq!(named, folder),
                other => panic!("{location}: expected NoFolder, got {other:?}"),
            }
        }
        assert!(!folder.exists(), "no folder is made");
        // In a folder that exists, the file is created.
        assert!(SqliteStore::open(
            &dir.path().join("here.sqlite3").display().to_string(),
            &OpenOptions::default()
        )
        .await
        .is_ok());
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
        while started.elapsed() < checkpoints::EVERY * 3 {
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
