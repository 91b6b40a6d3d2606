//! Migrations only add: a team's existing `projects` table keeps its rows and columns, and
//! opening a store twice changes nothing.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_protocol::content_hash;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, SqliteStore, Store, StoreError};
use sqlx::Row;

#[tokio::test]
async fn a_seeded_supabase_table_is_adopted_without_loss() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    // With a duplicate name the unique index cannot be built, and the gateway must still start.
    let legacy_id = testing::seed_legacy_table(&url).await;
    let raw = sqlx::PgPool::connect(&url).await.unwrap();

    let store = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    let again = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(store.projects().await.unwrap().len(), 3);
    assert_eq!(again.projects().await.unwrap().len(), 3);

    let pulled = store.pull(legacy_id, None).await.unwrap();
    assert_eq!(pulled.session_id, "session-1");
    assert_eq!(pulled.artifacts["intent_md"], "# Old intent");
    assert_eq!(pulled.hashes["spec_md"], content_hash("# Old spec"));
    let status = store.project(legacy_id).await.unwrap();
    assert_eq!(
        idse_store::stage_states(status.state_json.as_ref())["intent"],
        "completed"
    );

    // A push on a stale base conflicts with the legacy text; on the right base it lands.
    let mut stale = PushInput {
        project_id: Some(legacy_id),
        project_name: "legacy".into(),
        session_id: "session-1".into(),
        artifacts: [("spec_md".to_owned(), "# New spec".to_owned())].into(),
        base: Some([("spec_md".to_owned(), content_hash("something else"))].into()),
        ..PushInput::default()
    };
    let err = store.push(stale.clone(), Utc::now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref c) if c[0].remote_text == "# Old spec"));
    stale.base = Some(pulled.hashes.clone());
    let out = store.push(stale, Utc::now()).await.unwrap();
    assert_eq!(out.revision, 1);
    assert_eq!(
        store
            .text_by_hash(legacy_id, &content_hash("# Old spec"))
            .await
            .unwrap(),
        "# Old spec",
        "the replaced legacy text is in the history"
    );

    // The seed's own columns still hold the latest session, and untouched ones are unchanged.
    let row =
        sqlx::query("SELECT constraints, spec_md, intent_md, stack FROM projects WHERE id = $1")
            .bind(legacy_id)
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("constraints"), "keep me");
    assert_eq!(row.get::<String, _>("spec_md"), "# New spec");
    assert_eq!(row.get::<String, _>("intent_md"), "# Old intent");
    assert_eq!(row.get::<String, _>("stack"), "python");
}

#[tokio::test]
async fn the_projects_row_mirrors_the_latest_session() {
    let Some(fixture) = testing::postgres().await else {
        return;
    };
    let push = |session: &str, text: &str| PushInput {
        project_name: "mirror".into(),
        session_id: session.into(),
        artifacts: [("plan_md".to_owned(), text.to_owned())].into(),
        ..PushInput::default()
    };
    let mut first = push("__blueprint__", "blueprint plan");
    first
        .artifacts
        .insert("tasks_md".into(), "blueprint tasks".into());
    let out = fixture.store.push(first, Utc::now()).await.unwrap();
    fixture
        .store
        .push(push("session-2", "session plan"), Utc::now())
        .await
        .unwrap();
    let raw = sqlx::PgPool::connect(&fixture.url).await.unwrap();
    let row = sqlx::query("SELECT plan_md, tasks_md FROM projects WHERE id = $1")
        .bind(out.project_id)
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("plan_md"), "session plan");
    assert_eq!(
        row.get::<Option<String>, _>("tasks_md"),
        None,
        "session-2 has no tasks"
    );
    // Back to the blueprint with one new stage: the pushed text beside the blueprint's own.
    let mut back = push("__blueprint__", "blueprint plan");
    back.artifacts = [("intent_md".to_owned(), "blueprint intent".to_owned())].into();
    fixture.store.push(back, Utc::now()).await.unwrap();
    let row =
        sqlx::query("SELECT intent_md, spec_md, plan_md, tasks_md FROM projects WHERE id = $1")
            .bind(out.project_id)
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("intent_md"), "blueprint intent");
    assert_eq!(row.get::<String, _>("plan_md"), "blueprint plan");
    assert_eq!(row.get::<String, _>("tasks_md"), "blueprint tasks");
    assert_eq!(row.get::<Option<String>, _>("spec_md"), None);
}

/// Pushes that share one write (the batches of concurrent pushes to known projects) each put
/// their own texts in their own row: the mirror takes every text from its place in the batch.
#[tokio::test]
async fn batched_pushes_mirror_each_their_own_texts() {
    let Some(fixture) = testing::postgres().await else {
        return;
    };
    let store = &fixture.store;
    let mut ids = Vec::new();
    for p in 0..12 {
        let created = PushInput {
            project_name: format!("batch-{p}"),
            artifacts: [("intent_md".to_owned(), format!("intent {p}"))].into(),
            ..PushInput::default()
        };
        ids.push(store.push(created, Utc::now()).await.unwrap().project_id);
    }
    for round in 0..3 {
        // Two or three stages per push, so positions in the batch differ from push to push.
        let pushes = ids.iter().enumerate().map(|(p, id)| {
            let mut artifacts: std::collections::BTreeMap<String, String> = [
                ("spec_md".to_owned(), format!("spec {p}.{round}")),
                ("tasks_md".to_owned(), format!("tasks {p}.{round}")),
            ]
            .into();
            if p % 2 == 0 {
                artifacts.insert("notes_md".into(), format!("notes {p}.{round}"));
                artifacts.insert("plan_md".into(), format!("plan {p}.{round}"));
            }
            let input = PushInput {
                project_id: Some(*id),
                project_name: format!("batch-{p}"),
                artifacts,
                ..PushInput::default()
            };
            store.push(input, Utc::now())
        });
        for done in futures::future::join_all(pushes).await {
            done.unwrap();
        }
    }
    let raw = sqlx::PgPool::connect(&fixture.url).await.unwrap();
    for (p, id) in ids.iter().enumerate() {
        let row =
            sqlx::query("SELECT intent_md, spec_md, plan_md, tasks_md FROM projects WHERE id = $1")
                .bind(id)
                .fetch_one(&raw)
                .await
                .unwrap();
        let pulled = store.pull(*id, None).await.unwrap().artifacts;
        for column in ["intent_md", "spec_md", "plan_md", "tasks_md"] {
            assert_eq!(
                row.get::<Option<String>, _>(column).as_ref(),
                pulled.get(column),
                "{column} of batch-{p}"
            );
        }
        assert_eq!(row.get::<String, _>("spec_md"), format!("spec {p}.2"));
    }
}

#[tokio::test]
async fn reopening_sqlite_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.sqlite3").display().to_string();
    let first = SqliteStore::open(&path, &OpenOptions::default())
        .await
        .unwrap();
    let out = first
        .push(
            PushInput {
                project_name: "keep".into(),
                session_id: "__blueprint__".into(),
                artifacts: [("intent_md".to_owned(), "kept".to_owned())].into(),
                ..PushInput::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    drop(first);
    let second = SqliteStore::open(&path, &OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(
        second.pull(out.project_id, None).await.unwrap().artifacts["intent_md"],
        "kept"
    );
}

#[tokio::test]
async fn the_gateways_tables_are_closed_to_other_roles_that_were_granted_them() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let store = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    let mut input = PushInput {
        project_name: "private".into(),
        session_id: "__blueprint__".into(),
        ..PushInput::default()
    };
    input.artifacts = [("intent_md".to_owned(), "# Not for anon\n".to_owned())].into();
    let id = store.push(input, Utc::now()).await.unwrap().project_id;

    // As Supabase sets up `anon`: a role granted everything in `public`.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let role = format!("idse_t_anon_{}", uuid::Uuid::new_v4().simple());
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'anon'"),
        format!("GRANT CONNECT ON DATABASE {name} TO {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let anon = sqlx::PgPool::connect(&testing::with_login(&url, &role, "anon"))
        .await
        .unwrap();
    for table in [
        "revisions",
        "documents",
        "project_sessions",
        "gateway_tokens",
        "_sqlx_migrations",
    ] {
        let seen: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&anon)
            .await
            .unwrap();
        assert_eq!(seen, 0, "{role} reads {table}");
    }
    let written = sqlx::query(
        "INSERT INTO revisions (project_id, session_id, artifact, revision, sha256, text) \
         VALUES ($1, '__blueprint__', 'intent_md', 9, 'x', 'forged')",
    )
    .bind(id)
    .execute(&anon)
    .await;
    assert!(written.is_err(), "{role} wrote into the history");
    // Run by a role that does not own the tables (a gateway started as another role than the
    // one that created them), the migration warns and leaves them as they are: only an owner
    // may change them, and it would shut that role out.
    sqlx::raw_sql(include_str!(
        "../migrations/postgres/0005_row_level_security.sql"
    ))
    .execute(&anon)
    .await
    .unwrap();
    anon.close().await;

    // The gateway itself is unaffected, and its store opens again.
    let again = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    let pulled = again.pull(id, None).await.unwrap();
    assert_eq!(pulled.artifacts["intent_md"], "# Not for anon\n");
    assert_eq!(
        store
            .history(id, &Default::default())
            .await
            .unwrap()
            .revisions
            .len(),
        1
    );
    for sql in [
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"),
        format!("REVOKE ALL ON SCHEMA public FROM {role}"),
        format!("REVOKE ALL ON DATABASE {name} FROM {role}"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
}
