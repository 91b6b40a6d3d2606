//! A project row locked by another database session (a transaction left open in `psql`, a
//! team's own job): pushes to it give up after the lock timeout with `Busy` and write nothing,
//! pushes to other projects go on meanwhile, and once the lock is gone the project takes pushes
//! again.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use idse_store::testing;
use idse_store::{OpenOptions, PostgresStore, PushInput, Store, StoreError};
use sqlx::Connection;
use uuid::Uuid;

fn push_of(name: &str, id: Option<Uuid>, text: &str) -> PushInput {
    PushInput {
        project_id: id,
        project_name: name.into(),
        session_id: "__blueprint__".into(),
        artifacts: BTreeMap::from([("intent_md".to_owned(), text.to_owned())]),
        ..PushInput::default()
    }
}

#[tokio::test]
async fn a_locked_project_is_refused_after_the_lock_timeout_and_others_go_on() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let patience = Duration::from_millis(300);
    let options = OpenOptions {
        lock_timeout: patience,
        ..OpenOptions::default()
    };
    let store = PostgresStore::connect(&url, &options).await.unwrap();
    let locked = store
        .push(push_of("locked", None, "# v1\n"), Utc::now())
        .await
        .unwrap()
        .project_id;
    let free = store
        .push(push_of("free", None, "# v1\n"), Utc::now())
        .await
        .unwrap()
        .project_id;
    // Known to the batch writers, so both pushes below take the batched path.
    for (id, name) in [(locked, "locked"), (free, "free")] {
        store
            .push(push_of(name, Some(id), "# v2\n"), Utc::now())
            .await
            .unwrap();
    }

    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE")
        .bind(locked)
        .execute(&mut *held)
        .await
        .unwrap();

    let began = Instant::now();
    let (blocked, meanwhile) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(
            store.push(push_of("locked", Some(locked), "# v3\n"), Utc::now()),
            store.push(push_of("free", Some(free), "# v3\n"), Utc::now()),
        )
    })
    .await
    .expect("a push waited on the locked row for 10 s");
    let took = began.elapsed();
    assert!(
        matches!(blocked, Err(StoreError::Busy(_))),
        "{blocked:?} after {took:?}"
    );
    // Tried in its batch, then alone: two lock waits, not an endless one.
    assert!(
        took < patience * 2 + Duration::from_secs(2),
        "took {took:?}"
    );
    assert_eq!(meanwhile.unwrap().revision, 3);

    held.rollback().await.unwrap();
    let pulled = store.pull(locked, None).await.unwrap();
    assert_eq!(
        pulled.artifacts["intent_md"], "# v2\n",
        "the refused push wrote"
    );
    assert_eq!(pulled.revision, 2);
    let after = store
        .push(push_of("locked", Some(locked), "# v3\n"), Utc::now())
        .await
        .unwrap();
    assert_eq!(after.revision, 3);
}
