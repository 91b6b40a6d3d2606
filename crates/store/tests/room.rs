//! A database that leaves the gateway fewer connections than `--max-connections`: the store
//! opens no more than it may, and requests wait for one of its own instead of meeting the
//! server's refusal ("too many connections"), which failed them with 503 after 3 s.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_allowed_few_connections_is_served_within_them() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    // A login limited to 5 sessions, owning the test database so the migrations can run.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let role = format!("idse_t_room_{}", uuid::Uuid::new_v4().simple());
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'room' CONNECTION LIMIT 5"),
        format!("ALTER DATABASE {name} OWNER TO {role}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let login = testing::with_login(&url, &role, "room");
    let options = OpenOptions {
        // Long enough that a request waiting on a refusal would show as one.
        acquire_timeout: std::time::Duration::from_secs(10),
        ..OpenOptions::default()
    };
    let store = PostgresStore::connect(&login, &options).await.unwrap();
    let opened = store.pool().options().get_max_connections();
    assert!(
        (3..=5).contains(&opened),
        "the pool may open {opened} connections of a login limited to 5"
    );
    // 24 requests at once, each needing a connection: every one is served, in good time.
    let started = std::time::Instant::now();
    let work = (0..24).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut input = PushInput {
                project_name: format!("room-{i}"),
                session_id: "__blueprint__".into(),
                ..PushInput::default()
            };
            input.artifacts = [("spec_md".to_owned(), format!("# Spec {i}\n"))].into();
            let id = store.push(input, Utc::now()).await?.project_id;
            store.pull(id, None).await?;
            store.projects().await.map(|_| ())
        })
    });
    for done in futures::future::join_all(work).await {
        done.unwrap().unwrap();
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(store.projects().await.unwrap().len(), 24);
    store.pool().close().await;

    for sql in [
        format!("ALTER DATABASE {name} OWNER TO CURRENT_USER"),
        format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
}
