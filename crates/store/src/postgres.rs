//! The team store: Postgres (or Supabase). A push locks its project row, so the conflict check
//! and the write of concurrent pushes to one project are serialised by the database.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idse_protocol::{content_hash, Stage};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use crate::rules::{self, Hashed};
use crate::{
    HistoryFilter, OpenOptions, ProjectRecord, PushInput, PushOutcome, RevisionRecord, Snapshot,
    Store, StoreError,
};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

// Legacy rows may hold NULL timestamps and revision, so the select coalesces them.
const PROJECT_COLUMNS: &str = "id, name, stack, framework, state_json, \
     COALESCE(created_at, updated_at, now()) AS created_at, \
     COALESCE(updated_at, created_at, now()) AS updated_at, \
     last_synced, last_agent, last_session_id, COALESCE(revision, 0) AS revision";

const LEGACY_COLUMNS: &str = "intent_md, context_md, spec_md, plan_md, tasks_md, \
     implementation_md, feedback_md";

impl PostgresStore {
    /// Connects and brings the schema up to date; only ever adds tables, columns and indexes.
    pub async fn connect(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
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
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1{}",
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
        "SELECT artifact, text, sha256 FROM documents WHERE project_id = $1 AND session_id = $2",
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

async fn session_hashes(
    conn: &mut PgConnection,
    project: Uuid,
    session: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let rows = sqlx::query(
        "SELECT artifact, sha256 FROM documents WHERE project_id = $1 AND session_id = $2",
    )
    .bind(project)
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
    async fn find_or_create(
        conn: &mut PgConnection,
        input: &PushInput,
        now: DateTime<Utc>,
    ) -> Result<(ProjectRecord, bool), StoreError> {
        if let Some(id) = input.project_id {
            let project = select_project(conn, id, true)
                .await?
                .ok_or(StoreError::ProjectNotFound(id))?;
            return Ok((project, false));
        }
        // Serialises creation by name even where a team's table could not get the unique index.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7317))")
            .bind(&input.project_name)
            .execute(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1 \
             ORDER BY created_at NULLS LAST LIMIT 1 FOR UPDATE"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(&input.project_name)
            .fetch_optional(&mut *conn)
            .await?
        {
            return Ok((project_from_row(&row)?, false));
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
            last_session_id: None,
            revision: 0,
        };
        Ok((project, true))
    }

    /// Copies a legacy row's stage columns into documents and history (revision 0), so the first
    /// push to it is checked against, and keeps, what the team already had.
    async fn adopt_legacy(
        conn: &mut PgConnection,
        project: &mut ProjectRecord,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some((session, texts)) = legacy_texts(conn, project).await? else {
            return Ok(());
        };
        for (key, (text, hash)) in &texts {
            sqlx::query(
                "INSERT INTO documents (project_id, session_id, artifact, text, sha256, revision, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(project.id)
            .bind(&session)
            .bind(key)
            .bind(text)
            .bind(hash)
            .bind(project.updated_at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, agent, author, pushed_at) \
                 VALUES ($1, $2, $3, 0, $4, $5, NULL, 'imported', $6)",
            )
            .bind(project.id)
            .bind(&session)
            .bind(key)
            .bind(hash)
            .bind(text)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        if project.last_session_id.is_none() {
            project.last_session_id = Some(session);
        }
        Ok(())
    }

    async fn apply(
        conn: &mut PgConnection,
        project: &ProjectRecord,
        input: &PushInput,
        changes: &[&Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let revision = project.revision + i64::from(!changes.is_empty());
        let agent = input.effective_agent();
        if !changes.is_empty() {
            let keys: Vec<&str> = changes.iter().map(|c| c.key).collect();
            let texts: Vec<&str> = changes.iter().map(|c| c.text).collect();
            let hashes: Vec<&str> = changes.iter().map(|c| c.hash.as_str()).collect();
            // One round trip each for all changed stages.
            sqlx::query(
                "INSERT INTO documents (project_id, session_id, artifact, text, sha256, revision, updated_at) \
                 SELECT $1, $2, k, t, h, $6, $7 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(k, t, h) \
                 ON CONFLICT (project_id, session_id, artifact) DO UPDATE SET \
                 text = excluded.text, sha256 = excluded.sha256, revision = excluded.revision, \
                 updated_at = excluded.updated_at",
            )
            .bind(project.id)
            .bind(&input.session_id)
            .bind(&keys)
            .bind(&texts)
            .bind(&hashes)
            .bind(revision)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, agent, author, pushed_at) \
                 SELECT $1, $2, k, $6, h, t, $7, $8, $9 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(k, t, h)",
            )
            .bind(project.id)
            .bind(&input.session_id)
            .bind(&keys)
            .bind(&texts)
            .bind(&hashes)
            .bind(revision)
            .bind(&agent)
            .bind(&input.author)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        let state = input.state_json.as_ref().map(Json);
        let metadata = input.session_metadata.as_ref().map(Json);
        sqlx::query(
            "INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (project_id, session_id) DO UPDATE SET \
             state_json = COALESCE(excluded.state_json, project_sessions.state_json), \
             session_metadata = COALESCE(excluded.session_metadata, project_sessions.session_metadata), \
             updated_at = excluded.updated_at",
        )
        .bind(project.id)
        .bind(&input.session_id)
        .bind(state)
        .bind(metadata)
        .bind(now)
        .execute(&mut *conn)
        .await?;

        let same_session = project.last_session_id.as_deref() == Some(input.session_id.as_str());
        let texts: BTreeMap<String, String> = if same_session {
            changes
                .iter()
                .map(|c| (c.key.to_owned(), c.text.to_owned()))
                .collect()
        } else {
            session_texts(conn, project.id, &input.session_id)
                .await?
                .into_iter()
                .map(|(k, (text, _))| (k, text))
                .collect()
        };
        let mut update = QueryBuilder::new("UPDATE projects SET updated_at = ");
        update.push_bind(now);
        update.push(", last_synced = ").push_bind(now);
        update.push(", revision = ").push_bind(revision);
        update
            .push(", last_session_id = ")
            .push_bind(&input.session_id);
        if let Some(stack) = &input.stack {
            update.push(", stack = ").push_bind(stack);
        }
        if let Some(framework) = &input.framework {
            update.push(", framework = ").push_bind(framework);
        }
        if let Some(state) = &state {
            update.push(", state_json = ").push_bind(state);
        }
        if let Some(agent) = &agent {
            update.push(", last_agent = ").push_bind(agent);
        }
        for (column, text) in rules::mirror_columns(&texts, changes, same_session) {
            update.push(format_args!(", {column} = ")).push_bind(text);
        }
        update.push(" WHERE id = ").push_bind(project.id);
        update.build().execute(&mut *conn).await?;
        Ok(revision)
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
        let mut tx = self.pool.begin().await?;
        let (mut project, created) = Self::find_or_create(&mut tx, &input, now).await?;
        if !created {
            Self::adopt_legacy(&mut tx, &mut project, now).await?;
        }
        let current = session_hashes(&mut tx, project.id, &input.session_id).await?;
        let changes = match rules::plan_push(&current, &hashed, &input) {
            Ok(changes) => changes,
            Err(pending) => {
                let texts = session_texts(&mut tx, project.id, &input.session_id).await?;
                let conflicts = pending
                    .into_iter()
                    .map(|c| {
                        let text = texts
                            .get(&c.key)
                            .map(|(t, _)| t.clone())
                            .unwrap_or_default();
                        c.with_text(text)
                    })
                    .collect();
                tx.rollback().await?;
                return Err(StoreError::Conflict(conflicts));
            }
        };
        let revision = Self::apply(&mut tx, &project, &input, &changes, now).await?;
        tx.commit().await?;
        let mut hashes = current;
        for change in &changes {
            hashes.insert(change.key.to_owned(), change.hash.clone());
        }
        Ok(PushOutcome {
            project_id: project.id,
            created,
            revision,
            changed: changes.iter().map(|c| c.key.to_owned()).collect(),
            hashes,
        })
    }

    async fn pull(&self, project: Uuid, session: Option<&str>) -> Result<Snapshot, StoreError> {
        // REPEATABLE READ: the texts and the revision belong to the same moment.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let record = select_project(&mut tx, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
        let legacy = legacy_texts(&mut tx, &record).await?;
        let session_id = session
            .map(str::to_owned)
            .or_else(|| record.last_session_id.clone())
            .or_else(|| legacy.as_ref().map(|(s, _)| s.clone()))
            .unwrap_or_else(|| idse_protocol::BLUEPRINT_SESSION.to_owned());
        let session_row = sqlx::query(
            "SELECT state_json, updated_at FROM project_sessions WHERE project_id = $1 AND session_id = $2",
        )
        .bind(project)
        .bind(&session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let texts = match legacy {
            Some((legacy_session, texts)) if legacy_session == session_id => texts,
            _ => session_texts(&mut tx, project, &session_id).await?,
        };
        let (state_json, updated_at) = match &session_row {
            Some(row) => (
                row.try_get::<Option<Json<Value>>, _>("state_json")?
                    .map(|j| j.0),
                row.try_get("updated_at")?,
            ),
            None if session.is_some() && texts.is_empty() => {
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
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn project(&self, project: Uuid) -> Result<ProjectRecord, StoreError> {
        let mut conn = self.pool.acquire().await?;
        select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY updated_at DESC NULLS LAST, name"
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
        select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
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
        let record = select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))?;
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
}
