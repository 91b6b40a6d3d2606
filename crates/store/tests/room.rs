//! A database that leaves the gateway fewer connections than `--max-connections`: the store
//! opens no more than it may, and requests wait for one of its own instead of meeting the
//! server's refusal ("too many connections"), which failed them with 503 after 3 s. With
//! `--hold-connections` that holds also when other clients fill the server after start.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, Store};
use sqlx::Connection;

/// A login limited to `limit` sessions, owning a fresh test database so the migrations can
/// run; dropped again by [`Login::drop_role`].
struct Login {
    admin: sqlx::PgPool,
    role: String,
    database: String,
    url: String,
}

impl Login {
    async fn limited_to(limit: u32) -> Option<Self> {
        let url = testing::postgres_database().await?;
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        let role = format!("idse_t_room_{}", uuid::Uuid::new_v4().simple());
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&admin)
            .await
            .unwrap();
        for sql in [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'room' CONNECTION LIMIT {limit}"),
            format!("ALTER DATABASE {database} OWNER TO {role}"),
        ] {
            sqlx::query(&sql).execute(&admin).await.unwrap();
        }
        let url = testing::with_login(&url, &role, "room");
        Some(Self {
            admin,
            role,
            database,
            url,
        })
    }

    async fn drop_role(self) {
        let (role, database) = (&self.role, &self.database);
        for sql in [
            format!("ALTER DATABASE {database} OWNER TO CURRENT_USER"),
            format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
            format!("DROP ROLE {role}"),
        ] {
            sqlx::query(&sql).execute(&self.admin).await.unwrap();
        }
    }
}

/// 24 requests at once, each needing a connection (a new project, a pull, the list); every
/// one must be served.
async fn burst(store: &PostgresStore, tag: &str) {
    let work = (0..24).map(|i| {
        let store = store.clone();
        let name = format!("{tag}-{i}");
        tokio::spawn(async move {
            let mut input = PushInput {
                project_name: name,
                session_id: "__blueprint__".into(),
                ..PushInput::default()
            };
            input.artifacts = [("spec_md".to_owned(), format!("# Spec {i}\n"))].into();
            let id = store.push(input, Utc::now()).await?.project_id;
            store.pull(id, None).await?;
            store.projects().await.map(|_| ())
        })
    });
    for (i, done) in futures::future::join_all(work)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err(e) = done.unwrap() {
            panic!("request {i} of {tag} failed: {e:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_allowed_few_connections_is_served_within_them() {
    let Some(login) = Login::limited_to(5).await else {
        return;
    };
    let options = OpenOptions {
        // Long enough that a request waiting on a refusal would show as one.
        acquire_timeout: std::time::Duration::from_secs(10),
        ..OpenOptions::default()
    };
    let store = PostgresStore::connect(&login.url, &options).await.unwrap();
    let opened = store.pool().options().get_max_connections();
    assert!(
        (3..=5).contains(&opened),
        "the pool may open {opened} connections of a login limited to 5"
    );
    let started = std::time::Instant::now();
    burst(&store, "room").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(store.projects().await.unwrap().len(), 24);
    store.pool().close().await;
    login.drop_role().await;
}

/// Other clients take every session the server has left after the gateway started. A store
/// that holds its connections serves a burst with them; one that opens them as needed would
/// meet refusals, retried for the 3 s of `acquire_timeout` and then failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_serve_a_burst_after_others_fill_the_server() {
    let Some(login) = Login::limited_to(9).await else {
        return;
    };
    let options = OpenOptions {
        max_connections: 5,
        hold_connections: true,
        ..OpenOptions::default()
    };
    let store = PostgresStore::connect(&login.url, &options).await.unwrap();
    assert_eq!(store.pool().size(), 5, "all five opened at start");

    // Other clients of the same login, until the server refuses one more.
    let mut others = Vec::new();
    let refused = loop {
        match sqlx::PgConnection::connect(&login.url).await {
            Ok(conn) if others.len() < 9 => others.push(conn),
            Ok(_) => panic!("the server admitted more than its limit of 9"),
            Err(e) => break e,
        }
    };
    assert!(!others.is_empty(), "nothing was left to fill: {refused}");
    assert!(
        refused.to_string().contains("too many connections"),
        "{refused}"
    );

    burst(&store, "held").await;
    assert_eq!(store.projects().await.unwrap().len(), 24);
    assert_eq!(store.pool().size(), 5, "still the five it opened");

    for conn in others {
        conn.close().await.unwrap();
    }
    store.pool().close().await;
    login.drop_role().await;
}
