//! The Postgres store behind a connection pooler (a real PgBouncer in front of the test
//! server), as Supabase serves a project's database on its pooler's address: in session mode it
//! serves; in transaction mode, where its prepared statements and settings would not stay on
//! its connections, it refuses at once, naming the address, and makes nothing. A pooler with no
//! room for another connection makes requests wait for the store's own.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::Utc;
use idse_store::testing::{self, PoolMode, Pooler};
use idse_store::{OpenOptions, PostgresStore, PushInput, Store, StoreError};

/// Whether the migrations ran on `database` (read directly, not through a pooler).
async fn migrated(database: &str) -> bool {
    let direct = sqlx::PgPool::connect(database).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name IN ('projects', '_sqlx_migrations')",
    )
    .fetch_one(&direct)
    .await
    .unwrap();
    direct.close().await;
    tables > 0
}

/// Connections to `direct`'s database other than its own (the pooler's server connections).
async fn open_elsewhere(direct: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(direct)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_transaction_pooler_is_refused_before_anything_is_made() {
    let Some(database) = testing::postgres_database().await else {
        return;
    };
    let direct = sqlx::PgPool::connect(&database).await.unwrap();
    for mode in [
        PoolMode::Transaction,
        PoolMode::TransactionInTurn { servers: 2 },
        PoolMode::TransactionInTurn { servers: 4 },
    ] {
        let Some(pooler) = Pooler::start(&database, mode) else {
            return;
        };
        if let PoolMode::TransactionInTurn { servers } = mode {
            // The turns exist only once the pooler holds its server connections: a first client
            // makes it open them.
            let client = sqlx::PgPool::connect(pooler.url()).await.unwrap();
            while open_elsewhere(&direct).await < i64::from(servers) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            client.close().await;
        }
        // Several times: the refusal must not depend on which server connection comes first.
        for _ in 0..3 {
            let refused = PostgresStore::connect(pooler.url(), &OpenOptions::default()).await;
            let Err(StoreError::TransactionPooler(at)) = &refused else {
                panic!("{mode:?}: not refused as a transaction pooler: {refused:?}");
            };
            assert_eq!(at, &format!("127.0.0.1:{}", pooler.port()), "{mode:?}");
            let message = refused.unwrap_err().to_string();
            assert!(
                message.contains("session mode") && message.contains("direct connection"),
                "{message}"
            );
        }
    }
    assert!(
        !migrated(&database).await,
        "the migrations ran through a transaction pooler"
    );
}

#[tokio::test]
async fn a_session_pooler_serves_the_store() {
    let Some(database) = testing::postgres_database().await else {
        return;
    };
    let Some(pooler) = Pooler::start(&database, PoolMode::Session) else {
        return;
    };
    let store = PostgresStore::connect(pooler.url(), &OpenOptions::default())
        .await
        .unwrap();
    let mut input = PushInput {
        project_name: "through-a-pooler".into(),
        session_id: "__blueprint__".into(),
        ..PushInput::default()
    };
    // Enough pushes that the gateway's statements run many times on its pooled connections.
    let mut id = None;
    for version in 0..20 {
        input.project_id = id;
        input.artifacts =
            BTreeMap::from([("intent_md".to_owned(), format!("# Intent {version}\n"))]);
        let pushed = store.push(input.clone(), Utc::now()).await.unwrap();
        assert_eq!(pushed.revision, version + 1);
        id = Some(pushed.project_id);
    }
    let pulled = store.pull(id.unwrap(), None).await.unwrap();
    assert_eq!(pulled.artifacts["intent_md"], "# Intent 19\n");
    assert!(migrated(&database).await);
}

/// Pushes, pulls and lists the history of 24 projects at once; every one must succeed.
async fn crowd(store: &PostgresStore) {
    let push = |name: String| async move {
        let mut input = PushInput {
            project_name: name,
            session_id: "__blueprint__".into(),
            ..PushInput::default()
        };
        input.artifacts = BTreeMap::from([("intent_md".to_owned(), "# Intent\n".to_owned())]);
        let created = store.push(input.clone(), Utc::now()).await?;
        input.project_id = Some(created.project_id);
        input.artifacts = BTreeMap::from([("intent_md".to_owned(), "# Intent 2\n".to_owned())]);
        store.push(input, Utc::now()).await?;
        let pulled = store.pull(created.project_id, None).await?;
        store
            .history(created.project_id, &Default::default())
            .await?;
        Ok::<_, StoreError>(pulled.artifacts["intent_md"].clone())
    };
    let answers = futures::future::join_all((0..24).map(|i| push(format!("crowded-{i}")))).await;
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(text) => assert_eq!(text, "# Intent 2\n", "project {i}"),
            Err(e) => panic!("project {i} failed: {e:?}"),
        }
    }
}

#[tokio::test]
async fn a_full_pooler_makes_requests_wait_for_a_connection_not_fail() {
    let Some(database) = testing::postgres_database().await else {
        return;
    };
    // Three clients at once, against a store that may open sixteen connections.
    let Some(pooler) = Pooler::admitting(&database, PoolMode::Session, 3) else {
        return;
    };
    let store = PostgresStore::connect(pooler.url(), &OpenOptions::default())
        .await
        .unwrap();
    crowd(&store).await;
    let opened = store.pool().size();
    assert!(
        opened <= 3,
        "the pool holds {opened} connections through a pooler that admits three"
    );
}

#[tokio::test]
async fn too_few_connections_are_refused_before_any_is_opened() {
    // Nothing listens on port 1: a store that tried to connect would fail otherwise.
    let nowhere = "postgres://someone:pw@127.0.0.1:1/agency";
    let few = OpenOptions {
        max_connections: 2,
        ..OpenOptions::default()
    };
    let refused = PostgresStore::connect(nowhere, &few).await;
    assert!(
        matches!(refused, Err(StoreError::TooFewConnections(3))),
        "{refused:?}"
    );
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("--max-connections"), "{message}");
    let enough = OpenOptions {
        max_connections: 3,
        ..OpenOptions::default()
    };
    let unreachable = PostgresStore::connect(nowhere, &enough).await;
    assert!(
        matches!(unreachable, Err(StoreError::Unavailable(_))),
        "{unreachable:?}"
    );
}
