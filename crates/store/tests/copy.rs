//! Copying the Agency copy between stores, in all four directions: everything a client can see
//! (ids, texts, hashes, sessions, history, tokens) is the same on both sides, the copy goes on
//! where the source left off, a second copy skips what the first wrote, and a clash is refused
//! by name with the destination's data untouched.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use idse_protocol::content_hash;
use idse_store::testing::{self, based, Backend};
use idse_store::{
    copy, Clash, CopyError, CopyReport, CopyStep, HistoryFilter, PushInput, RenameError, Renames,
    Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).unwrap() + Duration::seconds(secs)
}

fn push(name: &str, session: &str, artifacts: &[(&str, &str)]) -> PushInput {
    PushInput {
        project_name: name.to_owned(),
        session_id: session.to_owned(),
        artifacts: artifacts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PushInput::default()
    }
}

/// Two projects with sessions, history, an overwrite by an old client, agents, authors, state
/// and metadata; three tokens, one revoked. Answers the project ids.
async fn fill(s: &dyn Store) -> Vec<Uuid> {
    let mut first = push(
        "alpha",
        "__blueprint__",
        &[("intent_md", "# Intent\n"), ("spec_md", "# Spec\n")],
    );
    first.stack = Some("rust".into());
    first.framework = Some("axum".into());
    first.agent = Some("claude".into());
    first.author = Some("ci".into());
    first.state_json = Some(json!({"stages": {"intent": "complete"}, "last_agent": "claude"}));
    first.session_metadata = Some(json!({"owner": "ana", "tags": ["a", "b"]}));
    let first = s.push(first, t(0)).await.unwrap();
    let alpha = first.project_id;

    let mut second = push("alpha", "__blueprint__", &[("spec_md", "# Spec v2 ✓\n")]);
    second.project_id = Some(alpha);
    let second = s.push(based(second, &first.hashes), t(1)).await.unwrap();

    let mut other = push(
        "alpha",
        "s-2",
        &[("plan_md", "# Plan\n"), ("notes_md", "notes")],
    );
    other.project_id = Some(alpha);
    other.agent = Some("codex".into());
    s.push(other, t(2)).await.unwrap();

    // An old client, no base: the replaced intent stays in the history.
    let mut old = push(
        "alpha",
        "__blueprint__",
        &[("intent_md", "# Intent, overwritten\n")],
    );
    old.project_id = Some(alpha);
    old.author = Some("lead".into());
    s.push(old, t(3)).await.unwrap();
    assert_eq!(second.revision, 2);

    let all: Vec<(String, String)> = idse_protocol::Stage::ALL
        .iter()
        .map(|stage| (stage.artifact_key().to_owned(), format!("# {stage:?}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let beta = s.push(push("beta", "main", &refs), t(4)).await.unwrap();

    s.create_token("ci", &content_hash("secret-ci"), false, t(5))
        .await
        .unwrap();
    s.create_token("reader", &content_hash("secret-reader"), true, t(6))
        .await
        .unwrap();
    s.create_token("old", &content_hash("secret-old"), false, t(7))
        .await
        .unwrap();
    assert!(s.revoke_token("old", t(8)).await.unwrap());
    vec![alpha, beta.project_id]
}

async fn run(from: &dyn Store, to: &dyn Store) -> (CopyReport, Vec<String>) {
    run_renaming(from, to, &[]).await.unwrap()
}

/// A copy with `renames` (`OLD=NEW`); answers its report and one line per step.
async fn run_renaming(
    from: &dyn Store,
    to: &dyn Store,
    renames: &[&str],
) -> Result<(CopyReport, Vec<String>), CopyError> {
    let mut steps = Vec::new();
    let renames = Renames::parse(renames)?;
    let report = copy(from, to, &renames, &mut |step| {
        steps.push(match step {
            CopyStep::Project {
                name,
                renamed: Some(new),
                outcome,
                ..
            } => format!("project {name} as {new}: {outcome:?}"),
            CopyStep::Project { name, outcome, .. } => format!("project {name}: {outcome:?}"),
            CopyStep::Token { name, outcome } => format!("token {name}: {outcome:?}"),
        });
    })
    .await?;
    Ok((report, steps))
}

fn sessions(export: &idse_store::ProjectExport) -> Vec<String> {
    export
        .sessions
        .iter()
        .map(|s| s.session_id.clone())
        .collect()
}

/// Everything a client can read of the projects `ids` is the same in both stores.
async fn same_everywhere(from: &dyn Store, to: &dyn Store, ids: &[Uuid]) {
    for &id in ids {
        let (a, b) = (
            from.export_project(id).await.unwrap(),
            to.export_project(id).await.unwrap(),
        );
        assert_eq!(a, b, "the project {id} as exported");
        assert_eq!(
            from.project(id).await.unwrap(),
            to.project(id).await.unwrap()
        );
        assert_eq!(
            from.pull(id, None).await.unwrap(),
            to.pull(id, None).await.unwrap()
        );
        for session in sessions(&a) {
            assert_eq!(
                from.pull(id, Some(&session)).await.unwrap(),
                to.pull(id, Some(&session)).await.unwrap(),
                "session {session}"
            );
        }
        let all = HistoryFilter::default();
        let history = from.history(id, &all).await.unwrap().revisions;
        assert_eq!(history, to.history(id, &all).await.unwrap().revisions);
        for revision in &history {
            assert_eq!(
                to.text_by_hash(id, &revision.sha256).await.unwrap(),
                from.text_by_hash(id, &revision.sha256).await.unwrap()
            );
        }
    }
}

async fn copies_everything_and_goes_on_from_there(from: &dyn Store, to: &dyn Store) {
    let ids = fill(from).await;
    let (report, steps) = run(from, to).await;
    assert_eq!(report.projects_copied, 2, "{steps:?}");
    assert_eq!(report.revisions_copied, 6 + 7);
    assert_eq!(report.tokens_copied, 3);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(steps.len(), 5, "one step per project and token: {steps:?}");
    same_everywhere(from, to, &ids).await;
    assert_eq!(
        from.export_tokens().await.unwrap(),
        to.export_tokens().await.unwrap()
    );
    let listed = |projects: Vec<idse_store::ProjectRecord>| {
        projects.into_iter().map(|p| p.id).collect::<Vec<_>>()
    };
    assert_eq!(
        listed(from.projects().await.unwrap()),
        listed(to.projects().await.unwrap())
    );
    let alpha = ids[0];
    let pulled = to.pull(alpha, None).await.unwrap();
    assert_eq!(pulled.artifacts["intent_md"], "# Intent, overwritten\n");
    assert_eq!(pulled.artifacts["spec_md"], "# Spec v2 ✓\n");
    assert_eq!(
        to.text_by_hash(alpha, &content_hash("# Intent\n"))
            .await
            .unwrap(),
        "# Intent\n",
        "the overwritten text came along in the history"
    );
    let live = to
        .token_by_hash(&content_hash("secret-reader"))
        .await
        .unwrap()
        .unwrap();
    assert!(live.read_only);
    assert_eq!(
        to.token_by_hash(&content_hash("secret-old")).await.unwrap(),
        None,
        "a revoked token stays revoked"
    );

    // A client that pulled from the source pushes to the copy on the same base.
    let mut next = push("alpha", "__blueprint__", &[("tasks_md", "# Tasks\n")]);
    next.project_id = Some(alpha);
    let next = to.push(based(next, &pulled.hashes), t(20)).await.unwrap();
    assert_eq!(next.revision, pulled.revision + 1);
    assert_eq!(next.changed, ["tasks_md"]);
    // A base older than the copy still conflicts there.
    let mut stale = push("alpha", "__blueprint__", &[("spec_md", "# Mine\n")]);
    stale.project_id = Some(alpha);
    let mut old_base = pulled.hashes.clone();
    old_base.insert("spec_md".into(), content_hash("# Spec\n"));
    let refused = to.push(based(stale, &old_base), t(21)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    // Run again: beta and the tokens are there as they were; alpha moved on in the copy and
    // is left as it is now.
    let history_there = to.history(alpha, &HistoryFilter::default()).await.unwrap();
    let (again, steps) = run(from, to).await;
    assert_eq!(again.projects_copied, 0, "{steps:?}");
    assert_eq!(again.projects_there, 1);
    assert_eq!(again.tokens_there, 3);
    assert_eq!(again.tokens_copied, 0);
    assert_eq!(
        again.refused,
        [Clash::ProjectMoved {
            name: "alpha".into(),
            id: alpha,
            there: next.revision,
            from: pulled.revision,
        }]
    );
    assert_eq!(
        to.history(alpha, &HistoryFilter::default()).await.unwrap(),
        history_there
    );
    assert_eq!(to.pull(alpha, None).await.unwrap().revision, next.revision);
    same_everywhere(from, to, &ids[1..]).await;
}

async fn a_taken_name_or_secret_is_refused_and_the_rest_copied(from: &dyn Store, to: &dyn Store) {
    let ids = fill(from).await;
    let theirs = to
        .push(push("beta", "main", &[("intent_md", "# Theirs\n")]), t(9))
        .await
        .unwrap();
    to.create_token("ci", &content_hash("another-secret"), false, t(9))
        .await
        .unwrap();
    let (report, steps) = run(from, to).await;
    assert_eq!(report.projects_copied, 1, "{steps:?}");
    assert_eq!(report.tokens_copied, 2);
    assert_eq!(
        report.refused,
        [
            Clash::Token("ci".into()),
            Clash::ProjectName {
                name: "beta".into(),
                id: ids[1],
                there: theirs.project_id,
            },
        ]
    );
    let message = report.refused[1].to_string();
    assert!(message.contains("`--rename beta=NEW`"), "{message}");
    // The destination's own project and token are as they were.
    let kept = to.pull(theirs.project_id, None).await.unwrap();
    assert_eq!(
        kept.artifacts,
        BTreeMap::from([("intent_md".to_owned(), "# Theirs\n".to_owned())])
    );
    assert_eq!(kept.revision, 1);
    assert!(matches!(
        to.project(ids[1]).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert_eq!(
        to.token_by_hash(&content_hash("another-secret"))
            .await
            .unwrap()
            .map(|t| t.name),
        Some("ci".to_owned())
    );
    assert_eq!(
        to.token_by_hash(&content_hash("secret-ci")).await.unwrap(),
        None
    );
    same_everywhere(from, to, &ids[..1]).await;
}

async fn a_taken_name_is_copied_under_a_new_one(from: &dyn Store, to: &dyn Store) {
    let ids = fill(from).await;
    let theirs = to
        .push(push("beta", "main", &[("intent_md", "# Theirs\n")]), t(9))
        .await
        .unwrap();
    // A rename that names no project of the source stops the copy before it writes anything.
    let typo = run_renaming(from, to, &["betta=beta-old"]).await;
    assert!(
        matches!(&typo, Err(CopyError::Rename(RenameError::NotInSource(n))) if n == "betta"),
        "{typo:?}"
    );
    assert_eq!(to.projects().await.unwrap().len(), 1);
    assert_eq!(to.export_tokens().await.unwrap().len(), 0);

    let (report, steps) = run_renaming(from, to, &["beta=beta-old"]).await.unwrap();
    assert_eq!(report.projects_copied, 2, "{steps:?}");
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(
        steps.contains(&"project beta as beta-old: Ok(Copied)".to_owned()),
        "{steps:?}"
    );
    let copied = to.project(ids[1]).await.unwrap();
    assert_eq!(copied.name, "beta-old");
    // Everything but the name is the source's: texts, hashes, history.
    let (a, b) = (
        from.pull(ids[1], None).await.unwrap(),
        to.pull(ids[1], None).await.unwrap(),
    );
    assert_eq!(
        (a.artifacts, a.hashes, a.revision),
        (b.artifacts, b.hashes, b.revision)
    );
    let all = HistoryFilter::default();
    assert_eq!(
        from.history(ids[1], &all).await.unwrap().revisions,
        to.history(ids[1], &all).await.unwrap().revisions
    );
    // The destination's own `beta` is as it was.
    let kept = to.pull(theirs.project_id, None).await.unwrap();
    assert_eq!(kept.artifacts["intent_md"], "# Theirs\n");
    assert_eq!(to.project(theirs.project_id).await.unwrap().name, "beta");
    same_everywhere(from, to, &ids[..1]).await;

    // Run again, with the rename or without: it is there already, under its new name.
    for renames in [&["beta=beta-old"][..], &[]] {
        let (again, steps) = run_renaming(from, to, renames).await.unwrap();
        assert_eq!(again.projects_copied, 0, "{steps:?}");
        assert_eq!(again.projects_there, 2, "{steps:?}");
        assert!(again.refused.is_empty(), "{:?}", again.refused);
    }
    assert_eq!(to.project(ids[1]).await.unwrap().name, "beta-old");
    assert_eq!(to.projects().await.unwrap().len(), 3);
}

macro_rules! directions {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                async fn between(from: Backend, to: Backend) {
                    let (Some(a), Some(b)) = (testing::open(from).await, testing::open(to).await)
                    else {
                        return;
                    };
                    super::$name(&*a.store, &*b.store).await;
                }

                #[tokio::test]
                async fn sqlite_to_postgres() {
                    between(Backend::Sqlite, Backend::Postgres).await;
                }

                #[tokio::test]
                async fn postgres_to_sqlite() {
                    between(Backend::Postgres, Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn sqlite_to_sqlite() {
                    between(Backend::Sqlite, Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres_to_postgres() {
                    between(Backend::Postgres, Backend::Postgres).await;
                }
            }
        )*
    };
}

directions!(
    copies_everything_and_goes_on_from_there,
    a_taken_name_or_secret_is_refused_and_the_rest_copied,
    a_taken_name_is_copied_under_a_new_one,
);

/// Postgres keeps the latest session's texts in the `projects` row for older clients; a copied
/// row must too.
#[tokio::test]
async fn the_copied_row_mirrors_its_latest_session_for_older_clients() {
    let (source, Some(dest)) = (
        testing::open(Backend::Sqlite).await.unwrap(),
        testing::open(Backend::Postgres).await,
    ) else {
        return;
    };
    let ids = fill(&*source.store).await;
    run(&*source.store, &*dest.store).await;
    let raw = sqlx::PgPool::connect(&dest.url).await.unwrap();
    for id in ids {
        let pulled = dest.store.pull(id, None).await.unwrap();
        let row = sqlx::query(
            "SELECT intent_md, context_md, spec_md, plan_md, tasks_md, implementation_md, \
             feedback_md FROM projects WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&raw)
        .await
        .unwrap();
        for stage in idse_protocol::Stage::ALL {
            let key = stage.artifact_key();
            let column: Option<String> = sqlx::Row::try_get(&row, key).unwrap();
            assert_eq!(column.as_ref(), pulled.artifacts.get(key), "{key} of {id}");
        }
    }
}

/// A team's row from before IDSE Desk (texts in its columns, no history) is copied as the
/// gateway adopts it at a first push; a second row of the same name is refused by name.
#[tokio::test]
async fn legacy_rows_are_copied_as_their_first_push_would_adopt_them() {
    let Some(url) = testing::postgres_database().await else {
        return;
    };
    let legacy = testing::seed_legacy_table(&url).await;
    let source = idse_store::PostgresStore::connect(&url, &idse_store::OpenOptions::default())
        .await
        .unwrap();
    let dest = testing::open(Backend::Sqlite).await.unwrap();
    let (report, steps) = run(&source, &*dest.store).await;
    assert_eq!(report.projects_copied, 2, "{steps:?}");
    assert!(
        matches!(&report.refused[..], [Clash::ProjectName { name, .. }] if name == "dup"),
        "{:?}",
        report.refused
    );

    let before = source.pull(legacy, None).await.unwrap();
    let after = dest.store.pull(legacy, None).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after.session_id, "session-1");
    assert_eq!(
        dest.store
            .pull(legacy, Some("session-1"))
            .await
            .unwrap()
            .artifacts,
        before.artifacts
    );
    let history = dest
        .store
        .history(legacy, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions;
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .all(|r| r.revision == 0 && r.author.as_deref() == Some("imported")));
    assert_eq!(
        dest.store.export_project(legacy).await.unwrap().constraints,
        Some("keep me".to_owned())
    );
    // The source is only read: its row is still unadopted.
    assert!(source
        .history(legacy, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions
        .is_empty());
    // A client of the legacy row goes on against the copy.
    let mut next = push("legacy", "session-1", &[("spec_md", "# New spec")]);
    next.project_id = Some(legacy);
    let next = dest
        .store
        .push(based(next, &before.hashes), t(30))
        .await
        .unwrap();
    assert_eq!(next.revision, 1);
    // Run again: the adopted row is recognised as copied, not as a clash.
    let mut second = run(&source, &*dest.store).await.0;
    assert_eq!(second.projects_there, 1);
    second
        .refused
        .retain(|c| !matches!(c, Clash::ProjectName { name, .. } if name == "dup"));
    assert_eq!(
        second.refused,
        [Clash::ProjectMoved {
            name: "legacy".into(),
            id: legacy,
            there: 1,
            from: 0
        }]
    );
}
