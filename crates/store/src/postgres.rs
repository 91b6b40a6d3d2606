//! The team store: Postgres (or Supabase). A push locks its project row, so the conflict check
//! and the write of concurrent pushes to one project are serialised by the database.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idse_protocol::{content_hash, Stage};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Executor, Row};
use uuid::Uuid;

use crate::rules::{self, Hashed};
use crate::{
    HistoryFilter, OpenOptions, ProjectRecord, PushInput, PushOutcome, RevisionRecord, Snapshot,
    Store, StoreError, TokenRecord,
};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

// Legacy rows may hold NULL timestamps and revision, so the select coalesces them.
const PROJECT_COLUMNS: &str = "p.id, p.name, p.stack, p.framework, p.state_json, \
     COALESCE(p.created_at, p.updated_at, now()) AS created_at, \
     COALESCE(p.updated_at, p.created_at, now()) AS updated_at, \
     p.last_synced, p.last_agent, p.last_author, p.last_session_id, COALESCE(p.revision, 0) AS revision";

/// The project row, locked, with the hashes of one session's current texts: one round trip.
/// The hashes come from the statement's snapshot, which is older than the locked row when the
/// statement waited for the lock; `doc_revision` tells (see `fresh_hashes`).
const LOCK_WITH_HASHES: &str = "(SELECT COALESCE(max(d.revision), 0) FROM documents d \
     WHERE d.project_id = p.id) AS doc_revision, ARRAY(SELECT d.artifact FROM documents d \
     WHERE d.project_id = p.id AND d.session_id = $2 ORDER BY d.artifact) AS doc_keys, \
     ARRAY(SELECT d.sha256 FROM documents d \
     WHERE d.project_id = p.id AND d.session_id = $2 ORDER BY d.artifact) AS doc_hashes";

/// Every write of an accepted push in one statement: the `projects` row (which mirrors the
/// pushed session's texts), history rows, document pointers and the session row. It is a
/// compare-and-swap: nothing is written unless the project is still at revision `$28`, the one
/// the push was checked against; it answers how many project rows it updated (0 or 1).
const WRITE_PUSH: &str = "WITH upd AS ( \
       UPDATE projects SET updated_at = $9, last_synced = $9, revision = $3, last_session_id = $2, \
         stack = COALESCE($12, stack), framework = COALESCE($13, framework), \
         state_json = COALESCE($10, state_json), last_agent = COALESCE($7, last_agent), \
         last_author = COALESCE($8, last_author), \
         intent_md = CASE WHEN $14 THEN $15 ELSE intent_md END, \
         context_md = CASE WHEN $16 THEN $17 ELSE context_md END, \
         spec_md = CASE WHEN $18 THEN $19 ELSE spec_md END, \
         plan_md = CASE WHEN $20 THEN $21 ELSE plan_md END, \
         tasks_md = CASE WHEN $22 THEN $23 ELSE tasks_md END, \
         implementation_md = CASE WHEN $24 THEN $25 ELSE implementation_md END, \
         feedback_md = CASE WHEN $26 THEN $27 ELSE feedback_md END \
       WHERE id = $1 AND COALESCE(revision, 0) = $28 RETURNING id \
     ), rev AS ( \
       INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, agent, author, pushed_at) \
       SELECT $1, $2, k, $3, h, t, $7, $8, $9 FROM UNNEST($4::text[], $5::text[], $6::text[]) AS u(k, t, h) \
       WHERE EXISTS (SELECT 1 FROM upd) \
       RETURNING id, artifact, sha256 \
     ), doc AS ( \
       INSERT INTO documents (project_id, session_id, artifact, sha256, revision, rev_id, updated_at) \
       SELECT $1, $2, artifact, sha256, $3, id, $9 FROM rev \
       ON CONFLICT (project_id, session_id, artifact) DO UPDATE SET sha256 = excluded.sha256, \
         revision = excluded.revision, rev_id = excluded.rev_id, updated_at = excluded.updated_at \
     ), ses AS ( \
       INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, created_at, updated_at) \
       SELECT $1, $2, $10, $11, $9, $9 WHERE EXISTS (SELECT 1 FROM upd) \
       ON CONFLICT (project_id, session_id) DO UPDATE SET \
         state_json = COALESCE(excluded.state_json, project_sessions.state_json), \
         session_metadata = COALESCE(excluded.session_metadata, project_sessions.session_metadata), \
         updated_at = excluded.updated_at \
     ) \
     SELECT count(*) FROM upd";

/// Optimistic tries of a push before it takes the project's row lock instead.
const OPTIMISTIC_TRIES: usize = 4;

const LEGACY_COLUMNS: &str = "intent_md, context_md, spec_md, plan_md, tasks_md, \
     implementation_md, feedback_md";

impl PostgresStore {
    /// Connects and brings the schema up to date; only ever adds tables, columns and indexes.
    pub async fn connect(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // lz4 compresses stage texts several times faster than the default pglz;
                    // a session setting, so no column of a team's table is altered. Servers
                    // built without lz4 refuse it and keep their default.
                    if let Err(e) = conn.execute("SET default_toast_compression = 'lz4'").await {
                        tracing::debug!(error = %e, "lz4 TOAST compression unavailable");
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for tests and tools that need to look underneath.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn project_from_row(row: &PgRow) -> Result<ProjectRecord, StoreError> {
    Ok(ProjectRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        stack: row.try_get("stack")?,
        framework: row.try_get("framework")?,
        state_json: row
            .try_get::<Option<Json<Value>>, _>("state_json")?
            .map(|j| j.0),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_synced: row.try_get("last_synced")?,
        last_agent: row.try_get("last_agent")?,
        last_author: row.try_get("last_author")?,
        last_session_id: row.try_get("last_session_id")?,
        revision: row.try_get("revision")?,
    })
}

async fn select_project(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<ProjectRecord>, StoreError> {
    let sql = format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(project_from_row).transpose()
}

async fn session_texts(
    conn: &mut PgConnection,
    project: Uuid,
    session: &str,
) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.artifact, r.text, d.sha256 FROM documents d JOIN revisions r ON r.id = d.rev_id \
         WHERE d.project_id = $1 AND d.session_id = $2",
    )
    .bind(project)
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

/// The session's hashes read with the locked row. Every push that changes a text sets the
/// project's revision and its documents' revision alike, so a snapshot whose newest document is
/// older than the locked row missed a concurrent push: then the hashes are read again, now
/// under the lock.
async fn fresh_hashes(
    conn: &mut PgConnection,
    row: &PgRow,
    project: &ProjectRecord,
    session: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let doc_revision: i64 = row.try_get("doc_revision")?;
    if doc_revision == project.revision {
        let keys: Vec<String> = row.try_get("doc_keys")?;
        let hashes: Vec<String> = row.try_get("doc_hashes")?;
        return Ok(keys.into_iter().zip(hashes).collect());
    }
    let rows = sqlx::query(
        "SELECT artifact, sha256 FROM documents WHERE project_id = $1 AND session_id = $2",
    )
    .bind(project.id)
    .bind(session)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("artifact")?, r.try_get("sha256")?)))
        .collect()
}

/// The texts of a row written before IDSE Desk (its stage columns, no documents yet), keyed by
/// the session they are taken to belong to. `None` once the project has documents.
async fn legacy_texts(
    conn: &mut PgConnection,
    project: &ProjectRecord,
) -> Result<Option<(String, BTreeMap<String, (String, String)>)>, StoreError> {
    if project.revision != 0 {
        return Ok(None);
    }
    let has_documents: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM documents WHERE project_id = $1)")
            .bind(project.id)
            .fetch_one(&mut *conn)
            .await?;
    if has_documents {
        return Ok(None);
    }
    let sql = format!("SELECT {LEGACY_COLUMNS} FROM projects WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(project.id)
        .fetch_one(&mut *conn)
        .await?;
    let mut texts = BTreeMap::new();
    for stage in Stage::ALL {
        if let Some(text) = row.try_get::<Option<String>, _>(stage.artifact_key())? {
            let hash = content_hash(&text);
            texts.insert(stage.artifact_key().to_owned(), (text, hash));
        }
    }
    Ok(Some((
        project
            .last_session_id
            .clone()
            .unwrap_or_else(|| rules::legacy_session(project.state_json.as_ref())),
        texts,
    )))
}

impl PostgresStore {
    /// Locks the pushed-to project (creating it by name if needed) and reads the session's
    /// current hashes. Returns the project, whether it was created, and the hashes.
    async fn lock_project(
        conn: &mut PgConnection,
        input: &PushInput,
        now: DateTime<Utc>,
    ) -> Result<(ProjectRecord, bool, BTreeMap<String, String>), StoreError> {
        if let Some(id) = input.project_id {
            let sql = format!(
                "SELECT {PROJECT_COLUMNS}, {LOCK_WITH_HASHES} FROM projects p WHERE p.id = $1 FOR UPDATE OF p"
            );
            let row = sqlx::query(&sql)
                .bind(id)
                .bind(&input.session_id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::ProjectNotFound(id))?;
            let project = project_from_row(&row)?;
            let hashes = fresh_hashes(conn, &row, &project, &input.session_id).await?;
            return Ok((project, false, hashes));
        }
        // Serialises creation by name even where a team's table could not get the unique index.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7317))")
            .bind(&input.project_name)
            .execute(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT {PROJECT_COLUMNS}, {LOCK_WITH_HASHES} FROM projects p WHERE p.name = $1 \
             ORDER BY p.created_at NULLS LAST LIMIT 1 FOR UPDATE OF p"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(&input.project_name)
            .bind(&input.session_id)
            .fetch_optional(&mut *conn)
            .await?
        {
            let project = project_from_row(&row)?;
            let hashes = fresh_hashes(conn, &row, &project, &input.session_id).await?;
            return Ok((project, false, hashes));
        }
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO projects (id, name, stack, framework, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $5, 0)",
        )
        .bind(id)
        .bind(&input.project_name)
        .bind(&input.stack)
        .bind(&input.framework)
        .bind(now)
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

    /// Copies a legacy row's stage columns into documents and history (revision 0), so the first
    /// push to it is checked against, and keeps, what the team already had. Returns the session
    /// the texts were filed under, if any were adopted.
    async fn adopt_legacy(
        conn: &mut PgConnection,
        project: &mut ProjectRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let Some((session, texts)) = legacy_texts(conn, project).await? else {
            return Ok(None);
        };
        let keys: Vec<&str> = texts.keys().map(String::as_str).collect();
        let bodies: Vec<&str> = texts.values().map(|(t, _)| t.as_str()).collect();
        let hashes: Vec<&str> = texts.values().map(|(_, h)| h.as_str()).collect();
        sqlx::query(
            "WITH rev AS ( \
               INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, agent, author, pushed_at) \
               SELECT $1, $2, k, 0, h, t, NULL, 'imported', $6 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(k, t, h) \
               RETURNING id, artifact, sha256) \
             INSERT INTO documents (project_id, session_id, artifact, sha256, revision, rev_id, updated_at) \
             SELECT $1, $2, artifact, sha256, 0, id, $6 FROM rev",
        )
        .bind(project.id)
        .bind(&session)
        .bind(&keys)
        .bind(&bodies)
        .bind(&hashes)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if project.last_session_id.is_none() {
            project.last_session_id = Some(session.clone());
        }
        Ok(Some(session))
    }

    async fn apply(
        conn: &mut PgConnection,
        project: &ProjectRecord,
        input: &PushInput,
        changes: &[&Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let revision = project.revision + i64::from(!changes.is_empty());
        let keys: Vec<&str> = changes.iter().map(|c| c.key).collect();
        let texts: Vec<&str> = changes.iter().map(|c| c.text).collect();
        let hashes: Vec<&str> = changes.iter().map(|c| c.hash.as_str()).collect();
        let same_session = project.last_session_id.as_deref() == Some(input.session_id.as_str());
        let session_texts: BTreeMap<String, String> = if same_session {
            changes
                .iter()
                .map(|c| (c.key.to_owned(), c.text.to_owned()))
                .collect()
        } else {
            // The row moves to another session: mirror all of that session's texts.
            let mut all: BTreeMap<String, String> =
                session_texts(conn, project.id, &input.session_id)
                    .await?
                    .into_iter()
                    .map(|(k, (text, _))| (k, text))
                    .collect();
            for c in changes {
                all.insert(c.key.to_owned(), c.text.to_owned());
            }
            all
        };
        let mirror = rules::mirror_columns(&session_texts, changes, same_session);
        let mut query = sqlx::query(WRITE_PUSH)
            .bind(project.id)
            .bind(&input.session_id)
            .bind(revision)
            .bind(&keys)
            .bind(&texts)
            .bind(&hashes)
            .bind(input.effective_agent())
            .bind(&input.author)
            .bind(now)
            .bind(input.state_json.as_ref().map(Json))
            .bind(input.session_metadata.as_ref().map(Json))
            .bind(&input.stack)
            .bind(&input.framework);
        for stage in Stage::ALL {
            let set = mirror
                .iter()
                .find(|(column, _)| *column == stage.artifact_key());
            query = query
                .bind(set.is_some())
                .bind(set.and_then(|(_, text)| text.clone()));
        }
        let updated: i64 = query
            .bind(project.revision)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok((updated == 1).then_some(revision))
    }

    /// The project and its session's hashes, without a lock (one statement, one snapshot).
    async fn read_for_push(
        conn: &mut PgConnection,
        id: Uuid,
        session: &str,
    ) -> Result<(ProjectRecord, BTreeMap<String, String>), StoreError> {
        let sql =
            format!("SELECT {PROJECT_COLUMNS}, {LOCK_WITH_HASHES} FROM projects p WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(session)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::ProjectNotFound(id))?;
        let project = project_from_row(&row)?;
        let hashes = fresh_hashes(conn, &row, &project, session).await?;
        Ok((project, hashes))
    }

    /// The conflicts of a refused push, with the remote texts.
    async fn conflicts(
        conn: &mut PgConnection,
        project: Uuid,
        session: &str,
        pending: Vec<rules::PendingConflict>,
    ) -> Result<StoreError, StoreError> {
        let texts = session_texts(conn, project, session).await?;
        Ok(rules::conflict_error(pending, &texts))
    }

    /// The push of a known project in two round trips and no held lock: read, check, then one
    /// compare-and-swap write. `None` when it kept losing races (or the row is a legacy one).
    async fn push_optimistic(
        &self,
        id: Uuid,
        input: &PushInput,
        hashed: &[Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<Option<PushOutcome>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        for _ in 0..OPTIMISTIC_TRIES {
            let (project, current) = Self::read_for_push(&mut conn, id, &input.session_id).await?;
            if project.revision == 0 && current.is_empty() {
                // Possibly a legacy row to adopt: the locked path does that.
                return Ok(None);
            }
            let changes = match rules::plan_push(&current, hashed, input) {
                Ok(changes) => changes,
                Err(pending) => {
                    return Err(Self::conflicts(&mut conn, id, &input.session_id, pending).await?)
                }
            };
            if let Some(revision) = Self::apply(&mut conn, &project, input, &changes, now).await? {
                return Ok(Some(rules::outcome(
                    project.id, false, revision, current, &changes,
                )));
            }
            // Another push landed between our read and our write: look again.
        }
        Ok(None)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn health(&self) -> Result<String, StoreError> {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    async fn push(&self, input: PushInput, now: DateTime<Utc>) -> Result<PushOutcome, StoreError> {
        let hashed = rules::hash_artifacts(&input);
        if let Some(id) = input.project_id {
            if let Some(done) = self.push_optimistic(id, &input, &hashed, now).await? {
                return Ok(done);
            }
        }
        // Creation by name, legacy adoption, or a hot project: under the row lock.
        let mut tx = self.pool.begin().await?;
        let (mut project, created, mut current) = Self::lock_project(&mut tx, &input, now).await?;
        if !created && project.revision == 0 && current.is_empty() {
            if let Some(session) = Self::adopt_legacy(&mut tx, &mut project, now).await? {
                if session == input.session_id {
                    current = session_texts(&mut tx, project.id, &session)
                        .await?
                        .into_iter()
                        .map(|(k, (_, h))| (k, h))
                        .collect();
                }
            }
        }
        let changes = match rules::plan_push(&current, &hashed, &input) {
            Ok(changes) => changes,
            Err(pending) => {
                let e = Self::conflicts(&mut tx, project.id, &input.session_id, pending).await?;
                tx.rollback().await?;
                return Err(e);
            }
        };
        let revision = Self::apply(&mut tx, &project, &input, &changes, now)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a locked project changed revision".into()))?;
        tx.commit().await?;
        Ok(rules::outcome(
            project.id, created, revision, current, &changes,
        ))
    }

    async fn pull(&self, project: Uuid, session: Option<&str>) -> Result<Snapshot, StoreError> {
        // One statement, so the texts and the revision belong to the same snapshot.
        let sql = format!(
            "SELECT {PROJECT_COLUMNS}, w.sid, s.state_json AS session_state, s.updated_at AS session_updated, \
               (s.session_id IS NOT NULL) AS has_session, k.keys, k.texts, k.hashes \
             FROM projects p \
             CROSS JOIN LATERAL (SELECT COALESCE($2, p.last_session_id, '__blueprint__') AS sid) w \
             LEFT JOIN project_sessions s ON s.project_id = p.id AND s.session_id = w.sid \
             CROSS JOIN LATERAL ( \
               SELECT array_agg(d.artifact ORDER BY d.artifact) AS keys, \
                      array_agg(r.text ORDER BY d.artifact) AS texts, \
                      array_agg(d.sha256 ORDER BY d.artifact) AS hashes \
               FROM documents d JOIN revisions r ON r.id = d.rev_id \
               WHERE d.project_id = p.id AND d.session_id = w.sid) k \
             WHERE p.id = $1"
        );
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(&sql)
            .bind(project)
            .bind(session)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        let record = project_from_row(&row)?;
        let mut session_id: String = row.try_get("sid")?;
        let keys: Option<Vec<String>> = row.try_get("keys")?;
        let mut texts: BTreeMap<String, (String, String)> = match keys {
            Some(keys) => {
                let bodies: Vec<String> = row.try_get("texts")?;
                let hashes: Vec<String> = row.try_get("hashes")?;
                keys.into_iter()
                    .zip(bodies.into_iter().zip(hashes))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        if texts.is_empty() {
            if let Some((legacy_session, legacy)) = legacy_texts(&mut conn, &record).await? {
                if session.is_none() || session == Some(legacy_session.as_str()) {
                    session_id = legacy_session;
                    texts = legacy;
                }
            }
        }
        let has_session: bool = row.try_get("has_session")?;
        let (state_json, updated_at) = if has_session {
            (
                row.try_get::<Option<Json<Value>>, _>("session_state")?
                    .map(|j| j.0),
                row.try_get("session_updated")?,
            )
        } else if session.is_some() && texts.is_empty() {
            return Err(StoreError::SessionNotFound {
                project,
                session: session_id,
            });
        } else {
            (record.state_json.clone(), record.updated_at)
        };
        let (artifacts, hashes) = rules::split_texts(texts);
        Ok(Snapshot {
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
        })
    }

    async fn project(&self, project: Uuid) -> Result<ProjectRecord, StoreError> {
        let mut conn = self.pool.acquire().await?;
        select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p ORDER BY p.updated_at DESC NULLS LAST, p.name"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(project_from_row).collect()
    }

    async fn history(
        &self,
        project: Uuid,
        filter: &HistoryFilter,
    ) -> Result<Vec<RevisionRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT session_id, artifact, revision, sha256, octet_length(text)::bigint AS bytes, agent, author, pushed_at \
             FROM revisions WHERE project_id = $1 \
             AND ($2::text IS NULL OR artifact = $2) AND ($3::text IS NULL OR session_id = $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(project)
        .bind(&filter.artifact)
        .bind(&filter.session_id)
        .bind(filter.limit)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            select_project(&mut conn, project, false)
                .await?
                .ok_or(StoreError::ProjectNotFound(project))?;
        }
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
                    pushed_at: r.try_get("pushed_at")?,
                })
            })
            .collect()
    }

    async fn text_by_hash(&self, project: Uuid, sha256: &str) -> Result<String, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let found: Option<String> = sqlx::query_scalar(
            "SELECT text FROM revisions WHERE project_id = $1 AND sha256 = $2 LIMIT 1",
        )
        .bind(project)
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(text) = found {
            return Ok(text);
        }
        let record = select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        // A legacy row's texts are in history only once it was first pushed to.
        let legacy = legacy_texts(&mut conn, &record).await?;
        legacy
            .and_then(|(_, texts)| texts.into_values().find(|(_, h)| h == sha256))
            .map(|(text, _)| text)
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
            "INSERT INTO gateway_tokens (name, sha256, read_only, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sha256)
        .bind(read_only)
        .bind(now)
        .execute(&self.pool)
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gateway_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, read_only, created_at, revoked_at FROM gateway_tokens \
             WHERE sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        name: row.try_get("name")?,
        read_only: row.try_get("read_only")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
