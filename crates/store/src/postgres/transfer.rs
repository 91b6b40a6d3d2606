//! Exports and imports of whole projects and tokens, for copying between stores (`crate::copy`).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use idse_protocol::Stage;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

use super::{
    connections, legacy_texts, project_from_row, revision_from_row, token_from_row, IMPORTED,
    PROJECT_COLUMNS, REVISION_COLUMNS,
};
use crate::copy::{self, Found};
use crate::{
    Imported, ProjectExport, RevisionRecord, RevisionText, SessionRecord, StoreError, TokenExport,
};

/// History rows per insert statement, and the text they may carry, so a project with a long
/// history is not sent as one message of hundreds of megabytes.
const CHUNK_ROWS: usize = 1_000;
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// One project, read in one repeatable-read transaction so its rows belong to one moment. A row
/// written before IDSE Desk (texts in its columns, no history yet) is exported as the gateway
/// adopts it at its first push: its texts as revision 0 of its session.
pub(super) async fn export_project(
    pool: &PgPool,
    project: Uuid,
) -> Result<ProjectExport, StoreError> {
    let mut conn = connections::acquire(pool).await?;
    let mut tx = conn.begin().await?;
    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let sql = format!("SELECT {PROJECT_COLUMNS}, p.constraints FROM projects p WHERE p.id = $1");
    let row = sqlx::query(&sql)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::ProjectNotFound(project))?;
    let mut record = project_from_row(&row)?;
    let constraints = row.try_get("constraints")?;
    let mut sessions: Vec<SessionRecord> = sqlx::query(
        "SELECT session_id, state_json, session_metadata, created_at, updated_at \
         FROM project_sessions WHERE project_id = $1 ORDER BY created_at, session_id",
    )
    .bind(project)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(session_from_row)
    .collect::<Result<_, StoreError>>()?;
    let sql =
        format!("SELECT {REVISION_COLUMNS}, text FROM revisions WHERE project_id = $1 ORDER BY id");
    // Row by row, so a long history is held once (as texts), not twice (rows and texts).
    let mut revisions = Vec::new();
    let mut rows = sqlx::query(&sql).bind(project).fetch(&mut *tx);
    while let Some(r) = rows.try_next().await? {
        revisions.push(RevisionText {
            record: revision_from_row(&r)?,
            text: r.try_get("text")?,
        });
    }
    drop(rows);
    if revisions.is_empty() {
        adopt_legacy(&mut tx, &mut record, &mut sessions, &mut revisions).await?;
    }
    tx.rollback().await?;
    Ok(ProjectExport {
        project: record,
        constraints,
        sessions,
        revisions,
    })
}

/// A legacy row's texts as the history and session a first push would give it.
async fn adopt_legacy(
    conn: &mut PgConnection,
    record: &mut crate::ProjectRecord,
    sessions: &mut Vec<SessionRecord>,
    revisions: &mut Vec<RevisionText>,
) -> Result<(), StoreError> {
    let Some((session, texts)) = legacy_texts(conn, record).await? else {
        return Ok(());
    };
    if texts.is_empty() {
        return Ok(());
    }
    for (artifact, (text, sha256)) in texts {
        revisions.push(RevisionText {
            record: RevisionRecord {
                session_id: session.clone(),
                artifact,
                revision: 0,
                sha256,
                bytes: i64::try_from(text.len()).unwrap_or(i64::MAX),
                agent: None,
                author: Some(IMPORTED.to_owned()),
                pushed_at: record.updated_at,
            },
            text,
        });
    }
    // So the session pulls by name on a store that needs its row (SQLite), with what the
    // legacy row says of it.
    if !sessions.iter().any(|s| s.session_id == session) {
        sessions.push(SessionRecord {
            session_id: session.clone(),
            state_json: record.state_json.clone(),
            session_metadata: None,
            created_at: record.created_at,
            updated_at: record.updated_at,
        });
    }
    record.last_session_id.get_or_insert(session);
    Ok(())
}

fn session_from_row(r: &PgRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        session_id: r.try_get("session_id")?,
        state_json: r
            .try_get::<Option<Json<serde_json::Value>>, _>("state_json")?
            .map(|j| j.0),
        session_metadata: r
            .try_get::<Option<Json<serde_json::Value>>, _>("session_metadata")?
            .map(|j| j.0),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// One project in one transaction: the row (mirroring its latest session's texts for older
/// clients), its sessions, its history oldest first, and each stage's document at its newest
/// text. Creation by name is serialised with a running gateway's by the same advisory lock.
pub(super) async fn import_project(
    pool: &PgPool,
    export: &ProjectExport,
) -> Result<Imported, StoreError> {
    let p = &export.project;
    let mut conn = connections::acquire(pool).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7317))")
        .bind(&p.name)
        .execute(&mut *tx)
        .await?;
    let found = sqlx::query(
        "SELECT id, name, COALESCE(revision, 0) AS revision, last_session_id FROM projects \
         WHERE id = $1 OR name = $2",
    )
    .bind(p.id)
    .bind(&p.name)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(Found {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            revision: r.try_get("revision")?,
            last_session_id: r.try_get("last_session_id")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    if let Some(done) = copy::placement(export, &found)? {
        return Ok(done);
    }
    let mirror: BTreeMap<&str, &str> = p
        .last_session_id
        .as_deref()
        .map(|s| export.current_texts(s))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, r)| (k, r.text.as_str()))
        .collect();
    let column = |stage: Stage| mirror.get(stage.artifact_key()).copied();
    sqlx::query(
        "INSERT INTO projects (id, name, stack, constraints, state_json, created_at, updated_at, \
           framework, revision, last_agent, last_session_id, last_synced, last_author, \
           intent_md, context_md, spec_md, plan_md, tasks_md, implementation_md, feedback_md) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
           $18, $19, $20)",
    )
    .bind(p.id)
    .bind(&p.name)
    .bind(&p.stack)
    .bind(&export.constraints)
    .bind(p.state_json.as_ref().map(Json))
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(&p.framework)
    .bind(p.revision)
    .bind(&p.last_agent)
    .bind(&p.last_session_id)
    .bind(p.last_synced)
    .bind(&p.last_author)
    .bind(column(Stage::Intent))
    .bind(column(Stage::Context))
    .bind(column(Stage::Spec))
    .bind(column(Stage::Plan))
    .bind(column(Stage::Tasks))
    .bind(column(Stage::Implementation))
    .bind(column(Stage::Feedback))
    .execute(&mut *tx)
    .await?;
    let s = &export.sessions;
    sqlx::query(
        "INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, \
           created_at, updated_at) \
         SELECT $1, * FROM UNNEST($2::text[], $3::jsonb[], $4::jsonb[], $5::timestamptz[], \
           $6::timestamptz[])",
    )
    .bind(p.id)
    .bind(s.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>())
    .bind(
        s.iter()
            .map(|s| s.state_json.as_ref().map(Json))
            .collect::<Vec<_>>(),
    )
    .bind(
        s.iter()
            .map(|s| s.session_metadata.as_ref().map(Json))
            .collect::<Vec<_>>(),
    )
    .bind(s.iter().map(|s| s.created_at).collect::<Vec<_>>())
    .bind(s.iter().map(|s| s.updated_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    for chunk in chunks(&export.revisions) {
        let rec = |f: fn(&RevisionText) -> Option<&str>| chunk.iter().map(f).collect::<Vec<_>>();
        // In order, so the new ids keep the history's order.
        sqlx::query(
            "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, \
               agent, author, pushed_at) \
             SELECT $1, session_id, artifact, revision, sha256, text, agent, author, pushed_at \
             FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], \
               $8::text[], $9::timestamptz[]) WITH ORDINALITY \
               AS r(session_id, artifact, revision, sha256, text, agent, author, pushed_at, n) \
             ORDER BY n",
        )
        .bind(p.id)
        .bind(rec(|r| Some(r.record.session_id.as_str())))
        .bind(rec(|r| Some(r.record.artifact.as_str())))
        .bind(chunk.iter().map(|r| r.record.revision).collect::<Vec<_>>())
        .bind(rec(|r| Some(r.record.sha256.as_str())))
        .bind(rec(|r| Some(r.text.as_str())))
        .bind(rec(|r| r.record.agent.as_deref()))
        .bind(rec(|r| r.record.author.as_deref()))
        .bind(chunk.iter().map(|r| r.record.pushed_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO documents (project_id, session_id, artifact, sha256, revision, rev_id, updated_at) \
         SELECT DISTINCT ON (session_id, artifact) project_id, session_id, artifact, sha256, \
           revision, id, pushed_at \
         FROM revisions WHERE project_id = $1 ORDER BY session_id, artifact, id DESC",
    )
    .bind(p.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Imported::Copied)
}

/// The history in runs of at most `CHUNK_ROWS` rows and about `CHUNK_BYTES` of text.
fn chunks(revisions: &[RevisionText]) -> Vec<&[RevisionText]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in revisions.iter().enumerate() {
        if i > start && (i - start == CHUNK_ROWS || bytes + r.text.len() > CHUNK_BYTES) {
            out.push(&revisions[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += r.text.len();
    }
    if start < revisions.len() {
        out.push(&revisions[start..]);
    }
    out
}

pub(super) async fn export_tokens(pool: &PgPool) -> Result<Vec<TokenExport>, StoreError> {
    let mut conn = connections::acquire(pool).await?;
    sqlx::query(
        "SELECT name, sha256, read_only, created_at, revoked_at FROM gateway_tokens ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(TokenExport {
            token: token_from_row(r)?,
            sha256: r.try_get("sha256")?,
        })
    })
    .collect()
}

pub(super) async fn import_token(
    pool: &PgPool,
    token: &TokenExport,
) -> Result<Imported, StoreError> {
    let t = &token.token;
    let mut conn = connections::acquire(pool).await?;
    let mut tx = conn.begin().await?;
    // Two copies at once wait for each other here rather than fail on the key.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7318))")
        .bind(&t.name)
        .execute(&mut *tx)
        .await?;
    let there: Option<String> =
        sqlx::query_scalar("SELECT sha256 FROM gateway_tokens WHERE name = $1")
            .bind(&t.name)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(done) = copy::token_placement(token, there.as_deref())? {
        return Ok(done);
    }
    sqlx::query(
        "INSERT INTO gateway_tokens (name, sha256, read_only, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.name)
    .bind(&token.sha256)
    .bind(t.read_only)
    .bind(t.created_at)
    .bind(t.revoked_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Imported::Copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(bytes: usize) -> RevisionText {
        RevisionText {
            record: RevisionRecord {
                session_id: "s".into(),
                artifact: "spec_md".into(),
                revision: 1,
                sha256: String::new(),
                bytes: 0,
                agent: None,
                author: None,
                pushed_at: chrono::DateTime::default(),
            },
            text: "x".repeat(bytes),
        }
    }

    #[test]
    fn history_goes_in_runs_bounded_by_rows_and_bytes() {
        let many: Vec<_> = (0..2_500).map(|_| revision(1)).collect();
        let runs: Vec<usize> = chunks(&many).iter().map(|c| c.len()).collect();
        assert_eq!(runs, [1_000, 1_000, 500]);
        let big: Vec<_> = (0..5).map(|_| revision(CHUNK_BYTES / 2)).collect();
        let runs: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(runs, [2, 2, 1]);
        // A text larger than a run goes on its own, never dropped.
        let huge = [revision(CHUNK_BYTES + 1), revision(1)];
        let runs: Vec<usize> = chunks(&huge).iter().map(|c| c.len()).collect();
        assert_eq!(runs, [1, 1]);
        assert!(chunks(&[]).is_empty());
    }
}
