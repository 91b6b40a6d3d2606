//! The Postgres store over TLS, as Supabase and most hosted servers want it
//! (`sslmode=require`), against the test server (Debian's cluster serves TLS with its
//! snakeoil certificate).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::Utc;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, Store};

fn with_mode(url: &str, mode: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}sslmode={mode}")
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn encrypted(store: &PostgresStore) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn sslmode_require_connects_over_tls_and_serves() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let ssl_on: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(
        ssl_on, "on",
        "the test server must serve TLS (scripts/postgres.sh sets it up)"
    );

    let store = PostgresStore::connect(&with_mode(&url, "require"), &OpenOptions::default())
        .await
        .unwrap();
    assert!(encrypted(&store).await, "sslmode=require must encrypt");
    let mut input = PushInput {
        project_name: "over-tls".into(),
        session_id: "__blueprint__".into(),
        ..PushInput::default()
    };
    input.artifacts = BTreeMap::from([("intent_md".to_owned(), "# Intent\n".to_owned())]);
    let pushed = store.push(input, Utc::now()).await.unwrap();
    let pulled = store.pull(pushed.project_id, None).await.unwrap();
    assert_eq!(pulled.artifacts["intent_md"], "# Intent\n");

    // Every connection the gateway holds is encrypted, and it names itself to the server.
    let (gateway, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND a.application_name = 'idse-gateway'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(gateway >= 1, "the gateway's connections carry its name");
    assert_eq!(plain, 0, "no gateway connection is in clear text");

    // The check above tells the two apart: without TLS the same query says so.
    let clear = PostgresStore::connect(&with_mode(&url, "disable"), &OpenOptions::default())
        .await
        .unwrap();
    assert!(!encrypted(&clear).await);
}

/// With no `sslmode` the store prefers TLS, as libpq does, even to a server on this machine:
/// 127.0.0.1 may be a tunnel's end (a port forwarded to another host), so clear text there is
/// a choice for the URL to make (`sslmode=disable`), not a default.
#[tokio::test]
async fn without_a_mode_tls_is_preferred_even_on_loopback() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    assert!(!url.contains("sslmode"), "{url}");
    assert!(
        std::env::var_os("PGSSLMODE").is_none(),
        "PGSSLMODE chooses a mode; unset it for this test"
    );
    let store = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    assert!(encrypted(&store).await);
}
