//! The team store: Postgres (or Supabase). Pushes to known projects are checked against one
//! read (or what this gateway wrote last) and written by one compare-and-swap statement, many
//! pushes at a time (`group_commit`); creation, legacy adoption and contended projects take the
//! project's row lock.

mod connections;
mod group_commit;
mod pooling;
mod transfer;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idse_protocol::{content_hash, Stage};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

use crate::hashes::TextHashes;
use crate::rules::{self, Hashed, Mirrored};
use crate::{
    HistoryFilter, HistoryPage, Imported, OpenOptions, ProjectExport, ProjectRecord, PushInput,
    PushOutcome, RevisionRecord, Snapshot, Store, StoreError, TokenExport, TokenRecord,
};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    commits: std::sync::Arc<group_commit::GroupCommit>,
    texts: std::sync::Arc<TextHashes>,
}

// Legacy rows may hold NULL timestamps and revision, so the select coalesces them.
const PROJECT_COLUMNS: &str = "p.id, p.name, p.stack, p.framework, p.state_json, \
     COALESCE(p.created_at, p.updated_at, now()) AS created_at, \
     COALESCE(p.updated_at, p.created_at, now()) AS updated_at, \
     p.last_synced, p.last_agent, p.last_author, p.last_session_id, COALESCE(p.revision, 0) AS revision";

/// The columns a push is checked against: the newest document revision of the project (see
/// `fresh_hashes`) and the artifact keys and hashes of session `sid` (an SQL expression).
fn session_hashes(sid: &str) -> String {
    format!(
        "(SELECT COALESCE(max(d.revision), 0) FROM documents d WHERE d.project_id = p.id) AS doc_revision, \
         ARRAY(SELECT d.artifact FROM documents d WHERE d.project_id = p.id AND d.session_id = {sid} \
         ORDER BY d.artifact) AS doc_keys, ARRAY(SELECT d.sha256 FROM documents d \
         WHERE d.project_id = p.id AND d.session_id = {sid} ORDER BY d.artifact) AS doc_hashes"
    )
}

/// Every write of a batch of accepted pushes, to distinct projects, in one statement: each
/// `projects` row (which mirrors the pushed session's texts), history rows, document pointers
/// and session rows. A changed text is sent once, for its history row; the mirror takes it from
/// there by position (`m_…`), so a push uploads each text once and the gateway copies it less.
/// Per project it is a compare-and-swap: nothing of a push is written unless
/// its project is still at the revision and mirrored session (its `Head`) the push was checked
/// against; a push with no changes keeps the revision but may move the mirror. Answers the
/// `idx` of every push it wrote. `p.id = ANY($2)` restates the join so the rows are looked up
/// by key (see `group_commit::read`).
const WRITE_PUSHES: &str = "WITH i AS ( \
       SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
         $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::bool[], $14::text[], $15::bool[], $16::text[], $17::bool[], $18::text[], $19::bool[], \
         $20::text[], $21::bool[], $22::text[], $23::bool[], $24::text[], $25::bool[], $26::text[], \
         $31::text[], $32::int4[], $33::int4[], $34::int4[], $35::int4[], $36::int4[], $37::int4[], \
         $38::int4[]) \
       AS i(idx, id, expected, rev, sid, agent, author, at, state, meta, stack, framework, \
         s_intent, t_intent, s_context, t_context, s_spec, t_spec, s_plan, t_plan, s_tasks, t_tasks, \
         s_impl, t_impl, s_feedback, t_feedback, expected_sid, \
         m_intent, m_context, m_spec, m_plan, m_tasks, m_impl, m_feedback) \
     ), upd AS ( \
       UPDATE projects p SET updated_at = i.at, last_synced = i.at, revision = i.rev, \
         last_session_id = i.sid, stack = COALESCE(i.stack, p.stack), \
         framework = COALESCE(i.framework, p.framework), \
         state_json = COALESCE(i.state::jsonb, p.state_json), \
         last_agent = COALESCE(i.agent, p.last_agent), last_author = COALESCE(i.author, p.last_author), \
         intent_md = CASE WHEN i.s_intent THEN COALESCE(i.t_intent, ($29::text[])[i.m_intent]) ELSE p.intent_md END, \
         context_md = CASE WHEN i.s_context THEN COALESCE(i.t_context, ($29::text[])[i.m_context]) ELSE p.context_md END, \
         spec_md = CASE WHEN i.s_spec THEN COALESCE(i.t_spec, ($29::text[])[i.m_spec]) ELSE p.spec_md END, \
         plan_md = CASE WHEN i.s_plan THEN COALESCE(i.t_plan, ($29::text[])[i.m_plan]) ELSE p.plan_md END, \
         tasks_md = CASE WHEN i.s_tasks THEN COALESCE(i.t_tasks, ($29::text[])[i.m_tasks]) ELSE p.tasks_md END, \
         implementation_md = CASE WHEN i.s_impl THEN COALESCE(i.t_impl, ($29::text[])[i.m_impl]) ELSE p.implementation_md END, \
         feedback_md = CASE WHEN i.s_feedback THEN COALESCE(i.t_feedback, ($29::text[])[i.m_feedback]) ELSE p.feedback_md END \
       FROM i WHERE p.id = ANY($2) AND p.id = i.id AND COALESCE(p.revision, 0) = i.expected \
         AND p.last_session_id IS NOT DISTINCT FROM i.expected_sid \
       RETURNING i.idx, i.id, i.rev, i.sid, i.agent, i.author, i.at, i.state, i.meta \
     ), rev AS ( \
       INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, agent, author, pushed_at) \
       SELECT u.id, u.sid, r.k, u.rev, r.h, r.t, u.agent, u.author, u.at \
       FROM UNNEST($27::int8[], $28::text[], $29::text[], $30::text[]) AS r(idx, k, t, h) \
       JOIN upd u ON u.idx = r.idx \
       RETURNING id, project_id, session_id, artifact, sha256, revision, pushed_at \
     ), doc AS ( \
       INSERT INTO documents (project_id, session_id, artifact, sha256, revision, rev_id, updated_at) \
       SELECT project_id, session_id, artifact, sha256, revision, id, pushed_at FROM rev \
       ON CONFLICT (project_id, session_id, artifact) DO UPDATE SET sha256 = excluded.sha256, \
         revision = excluded.revision, rev_id = excluded.rev_id, updated_at = excluded.updated_at \
     ), ses AS ( \
       INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, created_at, updated_at) \
       SELECT u.id, u.sid, u.state::jsonb, u.meta::jsonb, u.at, u.at FROM upd u \
       ON CONFLICT (project_id, session_id) DO UPDATE SET \
         state_json = COALESCE(excluded.state_json, project_sessions.state_json), \
         session_metadata = COALESCE(excluded.session_metadata, project_sessions.session_metadata), \
         updated_at = excluded.updated_at \
     ) \
     SELECT idx FROM upd";

/// What of a project a push is written over: `WRITE_PUSHES` writes it only if the row still has
/// this revision and mirrors this session.
#[derive(Debug, Clone)]
struct Head {
    id: Uuid,
    name: String,
    revision: i64,
    last_session_id: Option<String>,
}

impl Head {
    fn of(project: &ProjectRecord) -> Self {
        Self {
            id: project.id,
            name: project.name.clone(),
            revision: project.revision,
            last_session_id: project.last_session_id.clone(),
        }
    }
}

/// The pushes of one `WRITE_PUSHES`, column by column; at most one per project.
#[derive(Debug, Default)]
struct WriteBatch<'a> {
    idx: Vec<i64>,
    id: Vec<Uuid>,
    expected: Vec<i64>,
    expected_session: Vec<Option<String>>,
    revision: Vec<i64>,
    session: Vec<&'a str>,
    agent: Vec<Option<String>>,
    author: Vec<Option<&'a str>>,
    at: Vec<DateTime<Utc>>,
    state: Vec<Option<String>>,
    metadata: Vec<Option<String>>,
    stack: Vec<Option<&'a str>>,
    framework: Vec<Option<&'a str>>,
    /// Per stage (in `Stage::ALL` order): whether the push sets its mirror column, and to what:
    /// a text of its session, or (1-based, in `texts`) the text it pushes.
    mirror_set: [Vec<bool>; 7],
    mirror_text: [Vec<Option<String>>; 7],
    mirror_pushed: [Vec<Option<i32>>; 7],
    text_idx: Vec<i64>,
    keys: Vec<&'a str>,
    texts: Vec<&'a str>,
    hashes: Vec<&'a str>,
}

impl<'a> WriteBatch<'a> {
    /// Adds push `idx` (checked against `head`); answers the revision it will write.
    fn add(
        &mut self,
        idx: i64,
        head: &Head,
        input: &'a PushInput,
        changes: &[&'a Hashed<'a>],
        mirror: [Option<Mirrored>; 7],
        now: DateTime<Utc>,
    ) -> i64 {
        let revision = head.revision + i64::from(!changes.is_empty());
        self.idx.push(idx);
        self.id.push(head.id);
        self.expected.push(head.revision);
        self.expected_session.push(head.last_session_id.clone());
        self.revision.push(revision);
        self.session.push(&input.session_id);
        self.agent.push(input.effective_agent());
        self.author.push(input.author.as_deref());
        self.at.push(now);
        self.state
            .push(input.state_json.as_ref().map(Value::to_string));
        self.metadata
            .push(input.session_metadata.as_ref().map(Value::to_string));
        self.stack.push(input.stack.as_deref());
        self.framework.push(input.framework.as_deref());
        let pushed_from = self.texts.len();
        for (i, set) in mirror.into_iter().enumerate() {
            self.mirror_set[i].push(set.is_some());
            let (text, pushed) = match set {
                Some(Mirrored::Session(text)) => (text, None),
                // Where this stage's change lands in `texts` (1-based, as SQL counts).
                Some(Mirrored::Pushed(at)) => (None, i32::try_from(pushed_from + at + 1).ok()),
                None => (None, None),
            };
            self.mirror_text[i].push(text);
            self.mirror_pushed[i].push(pushed);
        }
        for change in changes {
            self.text_idx.push(idx);
            self.keys.push(change.key);
            self.texts.push(change.text);
            self.hashes.push(&change.hash);
        }
        revision
    }

    fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// Writes the batch; answers the `idx` of each push written (the others lost their
    /// compare-and-swap to a concurrent push).
    async fn execute(self, conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
        let mut query = sqlx::query_scalar(WRITE_PUSHES)
            .bind(self.idx)
            .bind(self.id)
            .bind(self.expected)
            .bind(self.revision)
            .bind(self.session)
            .bind(self.agent)
            .bind(self.author)
            .bind(self.at)
            .bind(self.state)
            .bind(self.metadata)
            .bind(self.stack)
            .bind(self.framework);
        for (set, text) in self.mirror_set.into_iter().zip(self.mirror_text) {
            query = query.bind(set).bind(text);
        }
        query = query
            .bind(self.text_idx)
            .bind(self.keys)
            .bind(self.texts)
            .bind(self.hashes)
            .bind(self.expected_session);
        for pushed in self.mirror_pushed {
            query = query.bind(pushed);
        }
        Ok(query.fetch_all(&mut *conn).await?)
    }
}

/// The columns of a history entry ([`revision_from_row`]), `bytes` counted as UTF-8.
const REVISION_COLUMNS: &str = "session_id, artifact, revision, sha256, \
     octet_length(text)::bigint AS bytes, agent, author, pushed_at";

fn revision_from_row(r: &PgRow) -> Result<RevisionRecord, StoreError> {
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
}

/// The author the history names for texts adopted from a row written before IDSE Desk.
const IMPORTED: &str = "imported";

const LEGACY_COLUMNS: &str = "intent_md, context_md, spec_md, plan_md, tasks_md, \
     implementation_md, feedback_md";

impl PostgresStore {
    /// Connects and brings the schema up to date; only ever adds tables, columns and indexes.
    pub async fn connect(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        // The batch writers keep theirs; reads and new projects need one more at least.
        let needed = u32::try_from(group_commit::WORKERS + 1).unwrap_or(u32::MAX);
        if options.max_connections < needed {
            return Err(StoreError::TooFewConnections(needed));
        }
        let mut target: PgConnectOptions = url.parse()?;
        // So an operator can tell the gateway's connections apart in `pg_stat_activity`.
        if target.get_application_name().is_none() {
            target = target.application_name("idse-gateway");
        }
        // One connection first, on its own: the pool retries a refused or unresolvable server
        // until its timeout and then reports only "pool timed out", which names no cause.
        let room = match tokio::time::timeout(
            options.acquire_timeout,
            PgConnection::connect_with(&target),
        )
        .await
        {
            // Before the pool and the migrations make anything on the server's connections.
            Ok(first) => {
                let mut first = first?;
                let room = connections::room(&mut first).await;
                pooling::refuse_transaction_pooler(first, &target, options.acquire_timeout).await?;
                room
            }
            Err(_) => {
                return Err(StoreError::Unavailable(
                    format!(
                        "no answer from the server within {} s",
                        options.acquire_timeout.as_secs_f32()
                    )
                    .into(),
                ))
            }
        };
        let lock_timeout = format!(
            "SET lock_timeout = {}",
            options.lock_timeout.as_millis().max(1)
        );
        let max_connections = within_room(options.max_connections, room, needed);
        let mut pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(options.acquire_timeout);
        if options.hold_connections {
            // All of them now, and none ever closed by the pool: its upkeep would close one
            // that is idle or old even at the minimum, and reopen it only if the server had
            // room. One that breaks is replaced when a request next needs it.
            pool = pool
                .min_connections(max_connections)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .after_connect(move |conn, _| {
                let lock_timeout = lock_timeout.clone();
                Box::pin(async move {
                    // A write that meets a row locked by another session gives up (`Busy`)
                    // instead of holding its batch, and every push behind it, indefinitely.
                    conn.execute(lock_timeout.as_str()).await?;
                    // lz4 compresses stage texts several times faster than the default pglz;
                    // a session setting, so no column of a team's table is altered. Servers
                    // built without lz4 refuse it and keep their default.
                    if let Err(e) = conn.execute("SET default_toast_compression = 'lz4'").await {
                        tracing::debug!(error = %e, "lz4 TOAST compression unavailable");
                    }
                    // Every statement of the gateway looks rows up by key, so one plan fits all
                    // values; planning anew (Postgres's default for a statement's first runs, and
                    // whenever a generic plan looks no cheaper) cost as much as running it.
                    conn.execute("SET plan_cache_mode = force_generic_plan")
                        .await?;
                    // A plan made while a table was one page scans it whole, and keeps doing so
                    // as steady pushes leave dead row versions behind faster than autovacuum
                    // clears them (measured: one full scan of `projects`, 1,900 pages for 17
                    // rows, per push, from the foreign-key check); key lookups stay cheap.
                    conn.execute("SET enable_seqscan = off").await?;
                    // That makes every scan a plan cannot do by key (listing all projects, say)
                    // look as costly as a huge query, so the server compiled it with LLVM
                    // each time: 150–300 ms for `GET /sync/projects` over five rows. Nothing
                    // the gateway runs is big enough for compiling to pay off.
                    conn.execute("SET jit = off").await?;
                    Ok(())
                })
            })
            .connect_with(target)
            .await?;
        if options.hold_connections {
            // sqlx may answer before the last of them is open: hold every one once, so the
            // gateway says it listens only when all are.
            let mut held = Vec::new();
            for _ in 0..max_connections {
                held.push(pool.acquire().await?);
            }
        }
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let commits = std::sync::Arc::new(group_commit::GroupCommit::start(pool.clone()));
        Ok(Self {
            pool,
            commits,
            texts: std::sync::Arc::default(),
        })
    }

    /// The pool, for tests and tools that need to look underneath.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The connections the pool may open: `asked`, or fewer if the server has room for fewer (see
/// `connections::room`), so that at busy times a request waits for one of the gateway's own
/// rather than for a refusal. Never below `needed`, which the batch writers cannot do without.
fn within_room(asked: u32, room: Option<u32>, needed: u32) -> u32 {
    match room {
        Some(room) if room < asked => {
            let opened = room.max(needed);
            tracing::warn!(
                room,
                max_connections = asked,
                opened,
                "the database has room for {room} more connections of the gateway's login, fewer \
                 than --max-connections ({asked}); the gateway opens at most {opened}. To give it \
                 more, raise the server's max_connections (or the login's or database's \
                 CONNECTION LIMIT), or close sessions it does not need"
            );
            opened
        }
        _ => asked,
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
                "SELECT {PROJECT_COLUMNS}, {} FROM projects p WHERE p.id = $1 FOR UPDATE OF p",
                session_hashes("$2")
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
            "SELECT {PROJECT_COLUMNS}, {} FROM projects p WHERE p.name = $1 \
             ORDER BY p.created_at NULLS LAST LIMIT 1 FOR UPDATE OF p",
            session_hashes("$2")
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
               SELECT $1, $2, k, 0, h, t, NULL, $7, $6 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(k, t, h) \
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
        .bind(IMPORTED)
        .execute(&mut *conn)
        .await?;
        if project.last_session_id.is_none() {
            // The row's columns hold this session's texts; say so in the row too, so the push's
            // compare-and-swap finds the head it was checked against.
            sqlx::query("UPDATE projects SET last_session_id = $2 WHERE id = $1")
                .bind(project.id)
                .bind(&session)
                .execute(&mut *conn)
                .await?;
            project.last_session_id = Some(session.clone());
        }
        Ok(Some(session))
    }

    /// Writes one checked push (in the caller's transaction); `None` if its project moved on
    /// since it was read.
    async fn apply(
        conn: &mut PgConnection,
        project: &ProjectRecord,
        input: &PushInput,
        changes: &[&Hashed<'_>],
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let head = Head::of(project);
        let mirror = mirror(conn, &head, input, changes).await?;
        let mut batch = WriteBatch::default();
        let revision = batch.add(0, &head, input, changes, mirror, now);
        let written = batch.execute(conn).await?;
        Ok((written == [0]).then_some(revision))
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
}

/// The `projects` columns a push sets: its changed stages, or, when the row moves to another
/// session, all of that session's texts.
async fn mirror(
    conn: &mut PgConnection,
    head: &Head,
    input: &PushInput,
    changes: &[&Hashed<'_>],
) -> Result<[Option<Mirrored>; 7], StoreError> {
    let same_session = head.last_session_id.as_deref() == Some(input.session_id.as_str());
    // Within the mirrored session only changed stages are set, all from the push itself.
    let session_texts: BTreeMap<String, String> = if same_session {
        BTreeMap::new()
    } else {
        session_texts(conn, head.id, &input.session_id)
            .await?
            .into_iter()
            .map(|(k, (text, _))| (k, text))
            .collect()
    };
    Ok(rules::mirror_columns(&session_texts, changes, same_session))
}

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn health(&self) -> Result<String, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut *conn)
            .await?;
        Ok(version)
    }

    async fn push(&self, input: PushInput, now: DateTime<Utc>) -> Result<PushOutcome, StoreError> {
        let input = if input.project_id.is_some() {
            let hashes = self.texts.of(&input);
            match self.commits.push(input, hashes, now).await? {
                group_commit::Answer::Done(outcome) => return Ok(outcome),
                group_commit::Answer::Locked(input) => *input,
            }
        } else {
            input
        };
        // Creation by name, legacy adoption, or a hot project: under the row lock.
        let hashed = rules::with_hashes(&input, self.texts.of(&input));
        let mut conn = connections::acquire(&self.pool).await?;
        let mut tx = conn.begin().await?;
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
        self.commits.forget(project.id);
        Ok(rules::outcome(
            project.id,
            project.name,
            created,
            revision,
            current,
            &changes,
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
        let mut conn = connections::acquire(&self.pool).await?;
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
        let session_row = if has_session {
            Some((
                row.try_get::<Option<Json<Value>>, _>("session_state")?
                    .map(|j| j.0),
                row.try_get("session_updated")?,
            ))
        } else {
            None
        };
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
        let mut conn = connections::acquire(&self.pool).await?;
        select_project(&mut conn, project, false)
            .await?
            .ok_or(StoreError::ProjectNotFound(project))
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p ORDER BY p.updated_at DESC NULLS LAST, p.name"
        );
        let mut conn = connections::acquire(&self.pool).await?;
        let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
        rows.iter().map(project_from_row).collect()
    }

    async fn history(
        &self,
        project: Uuid,
        filter: &HistoryFilter,
    ) -> Result<HistoryPage, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
        let sql = format!(
            "SELECT id, {REVISION_COLUMNS} FROM revisions WHERE project_id = $1 \
             AND ($2::text IS NULL OR artifact = $2) AND ($3::text IS NULL OR session_id = $3) \
             AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(project)
            .bind(&filter.artifact)
            .bind(&filter.session_id)
            .bind(filter.before)
            .bind(filter.limit.saturating_add(1))
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() {
            select_project(&mut conn, project, false)
                .await?
                .ok_or(StoreError::ProjectNotFound(project))?;
        }
        let rows = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, revision_from_row(r)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(HistoryPage::from_rows(rows, filter.limit))
    }

    async fn text_by_hash(&self, project: Uuid, sha256: &str) -> Result<String, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
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
        let mut conn = connections::acquire(&self.pool).await?;
        let done = sqlx::query(
            "INSERT INTO gateway_tokens (name, sha256, read_only, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sha256)
        .bind(read_only)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TokenExists(name.to_owned()));
        }
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
        let rows = sqlx::query(
            "SELECT name, read_only, created_at, revoked_at FROM gateway_tokens ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE gateway_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut conn = connections::acquire(&self.pool).await?;
        let row = sqlx::query(
            "SELECT name, read_only, created_at, revoked_at FROM gateway_tokens \
             WHERE sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn export_project(&self, project: Uuid) -> Result<ProjectExport, StoreError> {
        transfer::export_project(&self.pool, project).await
    }

    async fn import_project(&self, export: ProjectExport) -> Result<Imported, StoreError> {
        let imported = transfer::import_project(&self.pool, &export).await;
        // Nothing of this project may be taken from what the batch writers last wrote.
        self.commits.forget(export.project.id);
        imported
    }

    async fn export_tokens(&self) -> Result<Vec<TokenExport>, StoreError> {
        transfer::export_tokens(&self.pool).await
    }

    async fn import_token(&self, token: TokenExport) -> Result<Imported, StoreError> {
        transfer::import_token(&self.pool, &token).await
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

#[cfg(test)]
mod tests {
    use super::within_room;

    #[test]
    fn the_pool_keeps_within_the_servers_room_but_not_below_what_it_needs() {
        assert_eq!(within_room(16, Some(5), 3), 5);
        assert_eq!(within_room(16, Some(1), 3), 3);
        assert_eq!(within_room(16, Some(0), 3), 3);
        assert_eq!(within_room(16, None, 3), 16);
        assert_eq!(within_room(4, Some(10), 3), 4);
        assert_eq!(within_room(16, Some(16), 3), 16);
    }
}
