//! Two gateways on one Postgres database (a team running more than one): what one gateway
//! remembers of its own writes never decides a push the other has made stale.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use idse_protocol::content_hash;
use idse_store::testing::{self, based};
use idse_store::{OpenOptions, PostgresStore, PushInput, Store, StoreError};
use sqlx::Row;
use uuid::Uuid;

fn push(id: Uuid, session: &str, artifacts: &[(&str, &str)]) -> PushInput {
    PushInput {
        project_id: Some(id),
        project_name: "team".into(),
        session_id: session.into(),
        artifacts: artifacts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PushInput::default()
    }
}

#[tokio::test]
async fn a_gateway_never_decides_on_what_another_made_stale() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let a = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    let b = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .unwrap();
    let created = a
        .push(
            PushInput {
                project_name: "team".into(),
                session_id: "s1".into(),
                artifacts: [
                    ("spec_md".to_owned(), "spec 1".to_owned()),
                    ("plan_md".to_owned(), "plan 1".to_owned()),
                ]
                .into(),
                ..PushInput::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let id = created.project_id;
    // Gateway A writes (and so remembers) revision 2.
    let on_a = a
        .push(
            based(push(id, "s1", &[("spec_md", "spec 2")]), &created.hashes),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(on_a.revision, 2);

    // Gateway B moves the project on to revision 3.
    let on_b = b
        .push(
            based(push(id, "s1", &[("spec_md", "spec 3 by b")]), &on_a.hashes),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(on_b.revision, 3);

    // A push on B's texts is current: A must take it although A last wrote revision 2.
    let fresh = a
        .push(
            based(push(id, "s1", &[("spec_md", "spec 4")]), &on_b.hashes),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(fresh.revision, 4);
    assert_eq!(fresh.changed, ["spec_md"]);

    // B moves on again; a push on revision 4's texts, which A wrote last, is now stale: A must
    // refuse it with B's text, not write it.
    let on_b = b
        .push(
            based(push(id, "s1", &[("spec_md", "spec 5 by b")]), &fresh.hashes),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(on_b.revision, 5);
    let stale = a
        .push(
            based(push(id, "s1", &[("spec_md", "spec 5 by a")]), &fresh.hashes),
            Utc::now(),
        )
        .await
        .unwrap_err();
    match stale {
        StoreError::Conflict(c) => {
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].remote_text, "spec 5 by b");
            assert_eq!(c[0].remote_hash, content_hash("spec 5 by b"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // The row mirrors the session pushed last. B starts session s2; A writes s1 again (and
    // remembers revision 7 mirroring s1); B re-pushes s2 unchanged, which keeps revision 7 but
    // points the row at s2. A's next push to s1 must mirror all of s1 again, not only the
    // stage it changed.
    let s2 = b
        .push(push(id, "s2", &[("plan_md", "plan of s2")]), Utc::now())
        .await
        .unwrap();
    assert_eq!(s2.revision, 6);
    let again = a
        .push(push(id, "s1", &[("spec_md", "spec 7")]), Utc::now())
        .await
        .unwrap();
    assert_eq!(again.revision, 7);
    let noop = b
        .push(push(id, "s2", &[("plan_md", "plan of s2")]), Utc::now())
        .await
        .unwrap();
    assert_eq!(noop.revision, 7);
    assert!(noop.changed.is_empty());
    let last = a
        .push(push(id, "s1", &[("spec_md", "spec 8")]), Utc::now())
        .await
        .unwrap();
    assert_eq!(last.revision, 8);
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    let row = sqlx::query("SELECT last_session_id, spec_md, plan_md FROM projects WHERE id = $1")
        .bind(id)
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("last_session_id"), "s1");
    assert_eq!(row.get::<String, _>("spec_md"), "spec 8");
    assert_eq!(
        row.get::<Option<String>, _>("plan_md").as_deref(),
        Some("plan 1"),
        "the row mirrors all of s1, not s2's plan"
    );

    // Every applied push is in the history, in order.
    let history = a.history(id, &Default::default()).await.unwrap().revisions;
    let specs: Vec<i64> = history
        .iter()
        .filter(|r| r.artifact == "spec_md")
        .map(|r| r.revision)
        .collect();
    assert_eq!(specs, [8, 7, 5, 4, 3, 2, 1]);
}
