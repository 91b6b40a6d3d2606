//! One contract, two stores: every test here runs against SQLite and against Postgres.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use idse_protocol::content_hash;
use idse_store::testing::{self, based, Backend};
use idse_store::{HistoryFilter, PushInput, Store, StoreError};
use serde_json::json;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).unwrap() + Duration::seconds(secs)
}

fn push(name: &str, artifacts: &[(&str, &str)]) -> PushInput {
    PushInput {
        project_name: name.to_owned(),
        session_id: "__blueprint__".to_owned(),
        artifacts: artifacts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PushInput::default()
    }
}

async fn creates_then_updates_per_stage(s: &dyn Store) {
    let first = s
        .push(
            push(
                "alpha",
                &[("intent_md", "# Intent\n"), ("spec_md", "# Spec\n")],
            ),
            t(0),
        )
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.revision, 1);
    assert_eq!(first.hashes["intent_md"], content_hash("# Intent\n"));

    let mut second = push("alpha", &[("spec_md", "# Spec v2\n")]);
    second.project_id = Some(first.project_id);
    let second = s.push(based(second, &first.hashes), t(1)).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.revision, 2);
    assert_eq!(second.changed, vec!["spec_md".to_owned()]);

    let pulled = s.pull(first.project_id, None).await.unwrap();
    assert_eq!(
        pulled.artifacts["intent_md"], "# Intent\n",
        "a per-stage push leaves other stages"
    );
    assert_eq!(pulled.artifacts["spec_md"], "# Spec v2\n");
    assert_eq!(pulled.hashes, second.hashes);
    assert_eq!(pulled.revision, 2);

    let history = s
        .history(first.project_id, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].artifact, "spec_md");
    assert_eq!(history[0].revision, 2);
    assert_eq!(history[0].bytes, "# Spec v2\n".len() as i64);
    let spec_only = HistoryFilter {
        artifact: Some("spec_md".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(
        s.history(first.project_id, &spec_only)
            .await
            .unwrap()
            .revisions
            .len(),
        2
    );
}

async fn a_push_by_name_finds_the_project(s: &dyn Store) {
    let a = s
        .push(push("beta", &[("intent_md", "a")]), t(0))
        .await
        .unwrap();
    let b = s
        .push(push("beta", &[("context_md", "b")]), t(1))
        .await
        .unwrap();
    assert_eq!(a.project_id, b.project_id);
    assert!(!b.created);
    assert_eq!(s.projects().await.unwrap().len(), 1);
    assert_eq!((a.name.as_str(), b.name.as_str()), ("beta", "beta"));
    // By id, under another name (a renamed local copy): the project keeps its name, and the
    // outcome says which it is; twice, as the second push may be checked without a read.
    for (n, text) in ["c1", "c2"].into_iter().enumerate() {
        let mut renamed = push("beta-renamed", &[("context_md", text)]);
        renamed.project_id = Some(a.project_id);
        let c = s.push(renamed, t(2 + n as i64)).await.unwrap();
        assert_eq!(c.name, "beta");
        assert_eq!(c.changed, ["context_md"]);
    }
    assert_eq!(s.project(a.project_id).await.unwrap().name, "beta");
}

async fn a_stale_base_is_refused_whole(s: &dyn Store) {
    let first = s
        .push(
            push("gamma", &[("intent_md", "i0"), ("spec_md", "s0")]),
            t(0),
        )
        .await
        .unwrap();
    let base = first.hashes.clone();
    // Someone else changes spec.
    s.push(based(push("gamma", &[("spec_md", "theirs")]), &base), t(1))
        .await
        .unwrap();
    // We push intent and spec on the old base: spec conflicts, so intent must not land either.
    let err = s
        .push(
            based(
                push("gamma", &[("intent_md", "mine-i"), ("spec_md", "mine-s")]),
                &base,
            ),
            t(2),
        )
        .await
        .unwrap_err();
    let StoreError::Conflict(conflicts) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].stage, "spec");
    assert_eq!(conflicts[0].remote_text, "theirs");
    assert_eq!(conflicts[0].remote_hash, content_hash("theirs"));
    assert_eq!(
        conflicts[0].base_hash.as_deref(),
        Some(content_hash("s0").as_str())
    );

    let pulled = s.pull(first.project_id, None).await.unwrap();
    assert_eq!(pulled.artifacts["intent_md"], "i0");
    assert_eq!(pulled.revision, 2);
    let history = s
        .history(first.project_id, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions;
    assert_eq!(history.len(), 3, "a refused push writes no history");
}

async fn same_text_never_conflicts_or_bumps(s: &dyn Store) {
    let first = s
        .push(push("delta", &[("plan_md", "p")]), t(0))
        .await
        .unwrap();
    let stale = BTreeMap::from([("plan_md".to_owned(), content_hash("older"))]);
    let again = s
        .push(based(push("delta", &[("plan_md", "p")]), &stale), t(1))
        .await
        .unwrap();
    assert_eq!(again.revision, first.revision);
    assert!(again.changed.is_empty());
}

async fn old_clients_overwrite_but_nothing_is_lost(s: &dyn Store) {
    let first = s
        .push(push("eps", &[("tasks_md", "- [ ] one\n")]), t(0))
        .await
        .unwrap();
    s.push(push("eps", &[("tasks_md", "- [x] one\n")]), t(1))
        .await
        .unwrap();
    let replaced = s
        .text_by_hash(first.project_id, &content_hash("- [ ] one\n"))
        .await
        .unwrap();
    assert_eq!(replaced, "- [ ] one\n");
    let missing = s
        .text_by_hash(first.project_id, &content_hash("never"))
        .await;
    assert!(matches!(missing, Err(StoreError::TextNotFound { .. })));
}

async fn sessions_are_kept_apart(s: &dyn Store) {
    let mut one = push("zeta", &[("intent_md", "blueprint intent")]);
    one.state_json = Some(json!({"stages": {"intent": "complete"}, "last_agent": "claude"}));
    let first = s.push(one, t(0)).await.unwrap();
    let mut two = push(
        "zeta",
        &[("intent_md", "session intent"), ("meta_md", "extra")],
    );
    two.session_id = "session-1736534123".into();
    two.agent = Some("codex".into());
    two.session_metadata = Some(json!({"owner": "ana"}));
    s.push(two, t(1)).await.unwrap();

    let latest = s.pull(first.project_id, None).await.unwrap();
    assert_eq!(latest.session_id, "session-1736534123");
    assert_eq!(latest.artifacts["intent_md"], "session intent");
    assert_eq!(
        latest.artifacts["meta_md"], "extra",
        "unknown keys come back as they were"
    );
    let blueprint = s
        .pull(first.project_id, Some("__blueprint__"))
        .await
        .unwrap();
    assert_eq!(blueprint.artifacts["intent_md"], "blueprint intent");
    assert!(!blueprint.artifacts.contains_key("meta_md"));

    let record = s.project(first.project_id).await.unwrap();
    assert_eq!(
        record.last_session_id.as_deref(),
        Some("session-1736534123")
    );
    assert_eq!(record.last_agent.as_deref(), Some("codex"));
    assert_eq!(record.last_synced, Some(t(1)));
    assert_eq!(record.created_at, t(0));
    let states = idse_store::stage_states(record.state_json.as_ref());
    assert_eq!(
        states["intent"], "completed",
        "state_json survives a push that sends none"
    );

    let unknown = s.pull(first.project_id, Some("session-9")).await;
    assert!(matches!(unknown, Err(StoreError::SessionNotFound { .. })));
}

async fn a_session_without_texts_pulls_empty(s: &dyn Store) {
    let mut empty = push("iota", &[]);
    empty.state_json = Some(json!({"stages": {"intent": "in_progress"}}));
    let created = s.push(empty, t(0)).await.unwrap();
    assert_eq!(created.revision, 0, "nothing changed");
    let pulled = s.pull(created.project_id, None).await.unwrap();
    assert_eq!(pulled.session_id, "__blueprint__");
    assert!(pulled.artifacts.is_empty(), "{:?}", pulled.artifacts);
    assert!(pulled.hashes.is_empty());
    assert_eq!(pulled.name, "iota");
    assert_eq!(
        idse_store::stage_states(pulled.state_json.as_ref())["intent"],
        "in_progress"
    );
    let named = s
        .pull(created.project_id, Some("__blueprint__"))
        .await
        .unwrap();
    assert!(named.artifacts.is_empty());
}

async fn agents_come_from_state_json_too(s: &dyn Store) {
    let mut p = push("eta", &[("spec_md", "x")]);
    p.state_json = Some(json!({"last_agent": "claude-code"}));
    p.author = Some("ci-token".into());
    let out = s.push(p, t(0)).await.unwrap();
    let history = s
        .history(out.project_id, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions;
    assert_eq!(history[0].agent.as_deref(), Some("claude-code"));
    assert_eq!(history[0].author.as_deref(), Some("ci-token"));
    assert_eq!(history[0].pushed_at, t(0));
    let record = s.project(out.project_id).await.unwrap();
    assert_eq!(record.last_author.as_deref(), Some("ci-token"));
    assert_eq!(record.last_agent.as_deref(), Some("claude-code"));
}

async fn projects_are_newest_first(s: &dyn Store) {
    s.push(push("old", &[("intent_md", "a")]), t(0))
        .await
        .unwrap();
    s.push(push("new", &[("intent_md", "b")]), t(5))
        .await
        .unwrap();
    s.push(push("mid", &[("intent_md", "c")]), t(2))
        .await
        .unwrap();
    let names: Vec<String> = s
        .projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["new", "mid", "old"]);
}

async fn unknown_projects_are_not_found(s: &dyn Store) {
    let id = uuid::Uuid::new_v4();
    assert!(matches!(s.pull(id, None).await, Err(StoreError::ProjectNotFound(x)) if x == id));
    assert!(matches!(
        s.project(id).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(matches!(
        s.history(id, &HistoryFilter::default()).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    let mut p = push("theta", &[("intent_md", "x")]);
    p.project_id = Some(id);
    assert!(matches!(
        s.push(p, t(0)).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(
        s.projects().await.unwrap().is_empty(),
        "a refused push creates nothing"
    );
}

async fn exact_bytes_are_kept(s: &dyn Store) {
    let text = "line one\r\nline two without newline – ünïcødé 🚀";
    let out = s
        .push(push("iota", &[("feedback_md", text)]), t(0))
        .await
        .unwrap();
    let pulled = s.pull(out.project_id, None).await.unwrap();
    assert_eq!(pulled.artifacts["feedback_md"], text);
    assert_eq!(pulled.hashes["feedback_md"], content_hash(text));
    assert!(s
        .health()
        .await
        .unwrap()
        .chars()
        .any(|c| c.is_ascii_digit()));
}

async fn tokens_are_kept_by_hash_and_revoked(s: &dyn Store) {
    s.create_token("ci", &content_hash("secret-1"), false, t(0))
        .await
        .unwrap();
    s.create_token("reader", &content_hash("secret-2"), true, t(1))
        .await
        .unwrap();
    assert!(matches!(
        s.create_token("ci", &content_hash("other"), false, t(2))
            .await,
        Err(StoreError::TokenExists(_))
    ));
    let found = s
        .token_by_hash(&content_hash("secret-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.name.as_str(), found.read_only), ("reader", true));
    assert!(s
        .token_by_hash(&content_hash("nope"))
        .await
        .unwrap()
        .is_none());
    assert!(s.revoke_token("ci", t(3)).await.unwrap());
    assert!(
        !s.revoke_token("ci", t(4)).await.unwrap(),
        "revoking twice does nothing"
    );
    assert!(s
        .token_by_hash(&content_hash("secret-1"))
        .await
        .unwrap()
        .is_none());
    let all = s.tokens().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].revoked_at, Some(t(3)));
}

/// Pushes in flight together (which the Postgres store writes as one batch) are each decided on
/// their own: a stale base, an unknown project or a second push to the same project fails only
/// that push.
async fn concurrent_pushes_are_decided_one_by_one(s: &dyn Store) {
    let mut made = Vec::new();
    for i in 0..12 {
        let name = format!("many-{i}");
        made.push(
            s.push(push(&name, &[("spec_md", "v1\n")]), t(0))
                .await
                .unwrap(),
        );
    }
    let stale: BTreeMap<String, String> = [("spec_md".to_owned(), content_hash("never"))].into();
    let mut pushes = Vec::new();
    for (i, m) in made.iter().enumerate() {
        let mut p = push(
            &format!("many-{i}"),
            &[("spec_md", &format!("v2 of {i}\n"))],
        );
        p.project_id = Some(m.project_id);
        pushes.push(based(p, if i % 3 == 0 { &stale } else { &m.hashes }));
    }
    let unknown = uuid::Uuid::new_v4();
    let mut lost = push("many-x", &[("spec_md", "x\n")]);
    lost.project_id = Some(unknown);
    pushes.push(lost);
    // A rival of push 1, on the same base: exactly one of the two may land.
    let mut rival = push("many-1", &[("spec_md", "rival\n")]);
    rival.project_id = Some(made[1].project_id);
    pushes.push(based(rival, &made[1].hashes));

    let results = futures::future::join_all(pushes.into_iter().map(|p| s.push(p, t(1)))).await;
    for (i, result) in results.iter().enumerate().take(12) {
        match result {
            Err(StoreError::Conflict(c)) if i % 3 == 0 => assert_eq!(c[0].remote_text, "v1\n"),
            Ok(outcome) if i % 3 != 0 => assert_eq!(outcome.revision, 2, "push {i}"),
            Err(StoreError::Conflict(c)) if i == 1 => assert_eq!(c[0].remote_text, "rival\n"),
            other => panic!("push {i}: {other:?}"),
        }
    }
    assert!(
        matches!(&results[12], Err(StoreError::ProjectNotFound(id)) if *id == unknown),
        "{:?}",
        results[12]
    );
    let rival_won = match &results[13] {
        Ok(outcome) => outcome.revision == 2,
        Err(StoreError::Conflict(c)) => {
            assert_eq!(c[0].remote_text, "v2 of 1\n");
            false
        }
        Err(e) => panic!("rival: {e:?}"),
    };
    assert_eq!(
        rival_won,
        results[1].is_err(),
        "exactly one of push 1 and its rival lands"
    );
    for (i, m) in made.iter().enumerate() {
        let pulled = s.pull(m.project_id, None).await.unwrap();
        let want = match i {
            _ if i % 3 == 0 => "v1\n".to_owned(),
            1 if rival_won => "rival\n".to_owned(),
            _ => format!("v2 of {i}\n"),
        };
        assert_eq!(pulled.artifacts["spec_md"], want, "project {i}");
        assert_eq!(pulled.revision, if i % 3 == 0 { 1 } else { 2 });
    }
}

/// A push whose caller goes away (its request was dropped) is written whole or not at all, and
/// the next push is not held up by what it left behind.
async fn a_dropped_push_is_whole_or_absent(s: &dyn Store) {
    use futures::FutureExt;
    let first = s
        .push(
            push("dropped", &[("spec_md", "v1\n"), ("plan_md", "p1\n")]),
            t(0),
        )
        .await
        .unwrap();
    for round in 0..12u64 {
        let mut gone = push("dropped", &[("spec_md", &format!("gone {round}\n"))]);
        gone.project_id = Some(first.project_id);
        // Started, given a little longer each round to get further, and dropped.
        {
            let mut pending = std::pin::pin!(s.push(gone, t(1)));
            for _ in 0..=round {
                if pending.as_mut().now_or_never().is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_micros(40 * round)).await;
            }
        }
        let mut next = push("dropped", &[("plan_md", &format!("p{round}\n"))]);
        next.project_id = Some(first.project_id);
        s.push(next, t(2)).await.unwrap();
    }
    let pulled = s.pull(first.project_id, None).await.unwrap();
    assert_eq!(pulled.artifacts["plan_md"], "p11\n");
    let spec = &pulled.artifacts["spec_md"];
    let history = s
        .history(first.project_id, &HistoryFilter::default())
        .await
        .unwrap()
        .revisions;
    let newest_spec = history.iter().find(|r| r.artifact == "spec_md").unwrap();
    assert_eq!(
        newest_spec.sha256,
        content_hash(spec),
        "the texts and the history agree"
    );
    assert!(spec == "v1\n" || spec.starts_with("gone "), "{spec}");
}

/// Pages of a history, each from the cursor of the one before, hold every revision once, newest
/// first, and the last page says there is no more; another project's revisions never show.
async fn history_pages_reach_the_first_revision(s: &dyn Store) {
    let first = s
        .push(push("iota", &[("intent_md", "i"), ("spec_md", "s1")]), t(0))
        .await
        .unwrap();
    let id = first.project_id;
    for n in 2..=6 {
        let mut p = push("iota", &[("spec_md", &format!("s{n}"))]);
        p.project_id = Some(id);
        s.push(p, t(n)).await.unwrap();
        // Interleaved, so the project's revisions are not one run of rows.
        s.push(push("kappa", &[("spec_md", &format!("k{n}"))]), t(n))
            .await
            .unwrap();
    }
    let pages = |artifact: Option<&str>, limit: i64| {
        let mut filter = HistoryFilter {
            artifact: artifact.map(str::to_owned),
            limit,
            ..HistoryFilter::default()
        };
        async move {
            let mut pages = Vec::new();
            loop {
                let page = s.history(id, &filter).await.unwrap();
                let revisions: Vec<(String, i64)> = page
                    .revisions
                    .iter()
                    .map(|r| (r.artifact.clone(), r.revision))
                    .collect();
                pages.push(revisions);
                match page.next_before {
                    Some(before) => filter.before = Some(before),
                    None => return pages,
                }
                assert!(pages.len() < 10, "the cursor does not move on: {pages:?}");
            }
        }
    };
    let spec = |revisions: &[i64]| -> Vec<(String, i64)> {
        revisions
            .iter()
            .map(|r| ("spec_md".to_owned(), *r))
            .collect()
    };
    // Six spec revisions in pages of three: exactly two pages, the second the last.
    assert_eq!(
        pages(Some("spec_md"), 3).await,
        [spec(&[6, 5, 4]), spec(&[3, 2, 1])]
    );
    assert_eq!(
        pages(Some("spec_md"), 4).await,
        [spec(&[6, 5, 4, 3]), spec(&[2, 1])]
    );
    // All seven, the intent of the first push among them, in pages of five.
    let all = pages(None, 5).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], spec(&[6, 5, 4, 3, 2]));
    assert_eq!(all[1].len(), 2);
    assert!(all[1].iter().all(|(_, revision)| *revision == 1));
    // One page for all: no cursor.
    let whole = s.history(id, &HistoryFilter::default()).await.unwrap();
    assert_eq!(whole.revisions.len(), 7);
    assert_eq!(whole.next_before, None);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::testing::open(super::Backend::Sqlite).await.unwrap();
                    super::$name(&*fixture.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(fixture) = super::testing::open(super::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(&*fixture.store).await;
                }
            )*
        }
    };
}

contract!(
    creates_then_updates_per_stage,
    a_push_by_name_finds_the_project,
    a_stale_base_is_refused_whole,
    same_text_never_conflicts_or_bumps,
    old_clients_overwrite_but_nothing_is_lost,
    sessions_are_kept_apart,
    a_session_without_texts_pulls_empty,
    agents_come_from_state_json_too,
    projects_are_newest_first,
    unknown_projects_are_not_found,
    exact_bytes_are_kept,
    tokens_are_kept_by_hash_and_revoked,
    concurrent_pushes_are_decided_one_by_one,
    a_dropped_push_is_whole_or_absent,
    history_pages_reach_the_first_revision,
);
