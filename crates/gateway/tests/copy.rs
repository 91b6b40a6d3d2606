//! `idse-gateway copy`: a team moves its Agency copy from the embedded SQLite file to Postgres
//! (or, without a test server, to another SQLite file) and its clients go on with the same
//! project ids and base hashes against a gateway on the copy.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::Path;

use idse_protocol::content_hash;
use serde_json::{json, Value};

mod common;
use common::{answer, run_command, spawn_gateway, spawn_gateway_with};

async fn copy(from: &str, to: &str) -> (bool, String, String) {
    let args = ["--database", from, "copy", "--to", to];
    run_command(&args.map(OsStr::new)).await
}

async fn pull(url: &str, id: &str) -> Value {
    let http = reqwest::Client::new();
    let (status, body) = answer(
        http.post(format!("{url}/sync/pull"))
            .json(&json!({"project_id": id})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_moves_to_another_database_and_its_clients_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.sqlite3");
    let to = match idse_store::testing::postgres_database().await {
        Some(url) => url,
        None => dir.path().join("team.sqlite3").display().to_string(),
    };
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    {
        let (_gateway, url) = spawn_gateway(&db).await;
        for (name, spec) in [("alpha", "# Alpha spec\n"), ("beta", "# Beta spec\n")] {
            let (status, first) = answer(http.post(format!("{url}/sync/push")).json(&json!({
                "project_name": name,
                "artifacts": {"intent_md": "# Intent\n", "spec_md": spec},
            })))
            .await;
            assert_eq!(status, 200, "{first}");
            let id = first["project_id"].as_str().unwrap().to_owned();
            let (status, second) = answer(http.post(format!("{url}/sync/push")).json(&json!({
                "project_id": id, "project_name": name,
                "artifacts": {"spec_md": format!("{spec}more\n")},
                "base": first["hashes"],
            })))
            .await;
            assert_eq!(status, 200, "{second}");
            ids.push(id);
        }
    } // The gateway on the source stops here.
    let source = db.to_str().unwrap();

    let (ok, stdout, stderr) = copy(source, &to).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("Copied 2 project(s) with 6 revision(s) and 0 token(s)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("idse-test"),
        "the password is not printed: {stdout}"
    );
    assert!(
        stderr.starts_with(&format!("copying from {source} (sqlite) to ")),
        "{stderr}"
    );
    assert!(stderr.contains("copied project alpha"), "{stderr}");

    // Nothing to do the second time.
    let (ok, stdout, stderr) = copy(source, &to).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("Copied 0 project(s)"), "{stdout}");
    assert!(
        stdout.contains("2 project(s) and 0 token(s) were there already"),
        "{stdout}"
    );

    let (_before, old_url) = spawn_gateway(&db).await;
    let (_after, new_url) =
        spawn_gateway_with(Path::new(&to), &[OsStr::new("--hold-connections")]).await;
    for id in &ids {
        let (was, is) = (pull(&old_url, id).await, pull(&new_url, id).await);
        assert_eq!(is["artifacts"], was["artifacts"]);
        assert_eq!(is["hashes"], was["hashes"]);
        assert_eq!(is["revision"], was["revision"]);
        let (status, history) = answer(http.get(format!("{new_url}/sync/history/{id}"))).await;
        assert_eq!(status, 200);
        assert_eq!(
            history["revisions"].as_array().unwrap().len(),
            3,
            "{history}"
        );
    }
    // A client that last synced with the old gateway pushes to the new one on its base.
    let was = pull(&old_url, &ids[0]).await;
    let (status, pushed) = answer(http.post(format!("{new_url}/sync/push")).json(&json!({
        "project_id": ids[0], "project_name": "alpha",
        "artifacts": {"plan_md": "# Plan\n"},
        "base": was["hashes"],
    })))
    .await;
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(pushed["revision"], was["revision"].as_i64().unwrap() + 1);
    let (status, text) = answer(http.get(format!(
        "{new_url}/sync/history/{}/{}",
        ids[0],
        content_hash("# Alpha spec\n")
    )))
    .await;
    assert_eq!(status, 200, "the first spec came along: {text}");

    // That project has moved on in the copy: a third run leaves it, and says so.
    let (ok, _, stderr) = copy(source, &to).await;
    assert!(!ok);
    assert!(
        stderr.contains("not copied: project alpha") && stderr.contains("changed on one side"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_copy_from_nowhere_or_onto_itself_is_refused_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mistyped.sqlite3");
    let dest = dir.path().join("dest.sqlite3");
    let (ok, _, stderr) = copy(missing.to_str().unwrap(), dest.to_str().unwrap()).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "there is no database file at {}",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(!missing.exists() && !dest.exists(), "nothing was created");

    let db = dir.path().join("gateway.sqlite3");
    drop(spawn_gateway(&db).await);
    let other_spelling = format!("sqlite:{}/./gateway.sqlite3", dir.path().display());
    for to in [db.to_str().unwrap(), &other_spelling] {
        let (ok, _, stderr) = copy(db.to_str().unwrap(), to).await;
        assert!(!ok, "{to}");
        assert!(
            stderr.contains("names the database the copy is made from"),
            "{to}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_whose_name_is_taken_is_copied_under_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (db, team) = (dir.path().join("a.sqlite3"), dir.path().join("b.sqlite3"));
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (file, intent) in [(&db, "# Ours\n"), (&team, "# Theirs\n")] {
        let (_gateway, url) = spawn_gateway(file).await;
        let (status, pushed) = answer(http.post(format!("{url}/sync/push")).json(&json!({
            "project_name": "alpha", "artifacts": {"intent_md": intent},
        })))
        .await;
        assert_eq!(status, 200, "{pushed}");
        ids.push(pushed["project_id"].as_str().unwrap().to_owned());
    }
    let (from, to) = (db.to_str().unwrap(), team.to_str().unwrap());
    let with = |renames: &[&'static str]| {
        let mut args = vec!["--database", from, "copy", "--to", to];
        for r in renames {
            args.extend(["--rename", r]);
        }
        args.into_iter().map(OsStr::new).collect::<Vec<_>>()
    };

    let (ok, _, stderr) = run_command(&with(&[])).await;
    assert!(!ok);
    assert!(stderr.contains("`--rename alpha=NEW`"), "{stderr}");
    for (bad, says) in [
        ("alpha", "is not a rename; write it as OLD=NEW"),
        ("alpha=a/b", "`alpha` cannot be renamed to `a/b`"),
        (
            "alpah=alpha-ours",
            "the source has no project named `alpah`",
        ),
    ] {
        let (ok, stdout, stderr) = run_command(&with(&[bad])).await;
        assert!(!ok, "{bad}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
        assert!(
            !stderr.contains("copied project") && !stderr.contains("copied token"),
            "nothing was copied: {stderr}"
        );
        assert!(stdout.is_empty(), "{stdout}");
    }

    let (ok, stdout, stderr) = run_command(&with(&["alpha=alpha-ours"])).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("copied project alpha as alpha-ours ({}", ids[0])),
        "{stderr}"
    );
    assert!(stdout.starts_with("Copied 1 project(s)"), "{stdout}");
    let (_gateway, url) = spawn_gateway(&team).await;
    let (status, listed) = answer(http.get(format!("{url}/sync/projects"))).await;
    assert_eq!(status, 200);
    let mut names: Vec<(&str, &str)> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["id"].as_str().unwrap()))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [("alpha", ids[1].as_str()), ("alpha-ours", ids[0].as_str())]
    );
    assert_eq!(
        pull(&url, &ids[0]).await["artifacts"]["intent_md"],
        "# Ours\n"
    );
    assert_eq!(
        pull(&url, &ids[1]).await["artifacts"]["intent_md"],
        "# Theirs\n"
    );
}
