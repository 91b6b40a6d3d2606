//! How the Postgres store's connections plan the gateway's statements. Its connections turn
//! off sequential scans (see `PostgresStore::connect`), which makes a scan no key can serve
//! look enormous to the planner; without `jit = off`, the server then compiled such a
//! statement with LLVM every time it ran: `GET /sync/projects` over five projects took
//! 150–300 ms instead of 10.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, Store};
use serde_json::Value;

#[tokio::test]
async fn a_listing_with_no_key_to_use_is_not_compiled() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let store = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    for i in 0..5 {
        let mut input = PushInput {
            project_name: format!("listed-{i}"),
            session_id: "__blueprint__".into(),
            ..PushInput::default()
        };
        input.artifacts = [("spec_md".to_owned(), format!("# Spec {i}\n"))].into();
        store.push(input, Utc::now()).await.unwrap();
    }
    let mut conn = store.pool().acquire().await.unwrap();
    // Whether the server could compile at all: asked with `jit` on for one transaction only,
    // as `pg_jit_available()` also answers false while it is off.
    let available: bool = {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        sqlx::query("SET LOCAL jit = on")
            .execute(&mut *tx)
            .await
            .unwrap();
        let available = sqlx::query_scalar("SELECT pg_jit_available()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        available
    };
    assert!(
        available,
        "this server cannot compile queries (Debian's postgresql package can): nothing to test"
    );
    // What `projects()` runs: every row, ordered by a column with no index.
    let explained: Value = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT p.id, p.name FROM projects p \
         ORDER BY p.updated_at DESC NULLS LAST, p.name",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let plan = &explained[0];
    assert!(
        plan.to_string().contains("\"Seq Scan\""),
        "not the whole-table scan this is about: {plan}"
    );
    assert!(plan.get("JIT").is_none(), "compiled: {plan}");
    assert_eq!(store.projects().await.unwrap().len(), 5);
}
