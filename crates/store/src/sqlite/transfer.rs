//! Exports and imports of whole projects and tokens, for copying between stores (`crate::copy`).

use futures::TryStreamExt;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{
    from_micros, micros, parse_json, project_from_row, project_id, revision_from_row,
    token_from_row, REVISION_COLUMNS,
};
use crate::copy::{self, Found};
use crate::{Imported, ProjectExport, RevisionText, SessionRecord, StoreError, TokenExport};

/// One project, read in one transaction so its rows belong to one moment.
pub(super) async fn export_project(
    reader: &SqlitePool,
    project: Uuid,
) -> Result<ProjectExport, StoreError> {
    let id = project.to_string();
    let mut tx = reader.begin().await?;
    let sql = format!(
        "SELECT {}, p.constraints FROM project_rows p WHERE p.id = ?",
        super::PROJECT_COLUMNS
    );
    let row = sqlx::query(&sql)
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::ProjectNotFound(project))?;
    let record = project_from_row(&row)?;
    let constraints = row.try_get("constraints")?;
    let sessions = sqlx::query(
        "SELECT session_id, state_json, session_metadata, created_at, updated_at \
         FROM project_sessions WHERE project_id = ? ORDER BY created_at, session_id",
    )
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(SessionRecord {
            session_id: r.try_get("session_id")?,
            state_json: parse_json(r.try_get("state_json")?)?,
            session_metadata: parse_json(r.try_get("session_metadata")?)?,
            created_at: from_micros(r.try_get("created_at")?)?,
            updated_at: from_micros(r.try_get("updated_at")?)?,
        })
    })
    .collect::<Result<_, StoreError>>()?;
    let sql =
        format!("SELECT {REVISION_COLUMNS}, text FROM revisions WHERE project_id = ? ORDER BY id");
    // Row by row, so a long history is held once (as texts), not twice (rows and texts).
    let mut revisions = Vec::new();
    let mut rows = sqlx::query(&sql).bind(&id).fetch(&mut *tx);
    while let Some(r) = rows.try_next().await? {
        revisions.push(RevisionText {
            record: revision_from_row(&r)?,
            text: r.try_get("text")?,
        });
    }
    drop(rows);
    tx.rollback().await?;
    Ok(ProjectExport {
        project: record,
        constraints,
        sessions,
        revisions,
    })
}

/// One project, on the writer thread, in one transaction; the history is written oldest first,
/// so the trigger leaves each stage's document at its newest text.
pub(super) fn import_project(
    conn: &mut rusqlite::Connection,
    export: &ProjectExport,
) -> Result<Imported, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let p = &export.project;
    let id = p.id.to_string();
    let found = {
        let mut query = tx.prepare(
            "SELECT id, name, revision, last_session_id FROM project_rows \
             WHERE id = ?1 OR name = ?2",
        )?;
        let rows = query.query_map(params![id, p.name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut found = Vec::new();
        for row in rows {
            let (id, name, revision, last_session_id) = row?;
            found.push(Found {
                id: project_id(&id)?,
                name,
                revision,
                last_session_id,
            });
        }
        found
    };
    if let Some(done) = copy::placement(export, &found)? {
        return Ok(done);
    }
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
    tx.execute(
        "INSERT INTO project_rows (id, name, stack, constraints, state_json, created_at, \
         updated_at, framework, revision, last_agent, last_session_id, last_synced, last_author) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            id,
            p.name,
            p.stack,
            export.constraints,
            json(&p.state_json),
            micros(p.created_at),
            micros(p.updated_at),
            p.framework,
            p.revision,
            p.last_agent,
            p.last_session_id,
            p.last_synced.map(micros),
            p.last_author
        ],
    )?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO project_sessions (project_id, session_id, state_json, session_metadata, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for s in &export.sessions {
            insert.execute(params![
                id,
                s.session_id,
                json(&s.state_json),
                json(&s.session_metadata),
                micros(s.created_at),
                micros(s.updated_at)
            ])?;
        }
        let mut insert = tx.prepare(
            "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text, \
             agent, author, pushed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in &export.revisions {
            let rec = &r.record;
            insert.execute(params![
                id,
                rec.session_id,
                rec.artifact,
                rec.revision,
                rec.sha256,
                r.text,
                rec.agent,
                rec.author,
                micros(rec.pushed_at)
            ])?;
        }
    }
    tx.commit()?;
    Ok(Imported::Copied)
}

pub(super) async fn export_tokens(reader: &SqlitePool) -> Result<Vec<TokenExport>, StoreError> {
    sqlx::query(
        "SELECT name, sha256, read_only, created_at, revoked_at FROM gateway_tokens ORDER BY name",
    )
    .fetch_all(reader)
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

pub(super) fn import_token(
    conn: &mut rusqlite::Connection,
    token: &TokenExport,
) -> Result<Imported, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let there: Option<String> = tx
        .query_row(
            "SELECT sha256 FROM gateway_tokens WHERE name = ?1",
            params![token.token.name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(done) = copy::token_placement(token, there.as_deref())? {
        return Ok(done);
    }
    let t = &token.token;
    tx.execute(
        "INSERT INTO gateway_tokens (name, sha256, read_only, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            t.name,
            token.sha256,
            t.read_only,
            micros(t.created_at),
            t.revoked_at.map(micros)
        ],
    )?;
    tx.commit()?;
    Ok(Imported::Copied)
}
