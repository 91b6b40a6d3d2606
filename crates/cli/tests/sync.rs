//! The `idse` binary against a real gateway on 127.0.0.1:0: two workspaces editing one project,
//! conflicts and their resolution, a pull killed half-way, and working offline.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use idse_store::testing;
use tokio::process::Command;

struct Gw {
    url: String,
    fixture: testing::TestStore,
    _server: tokio::task::JoinHandle<()>,
}

async fn gateway() -> Gw {
    let fixture = testing::sqlite().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = idse_gateway::app(
        fixture.store.clone(),
        Default::default(),
        idse_gateway::AuthMode::Open,
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Gw {
        url,
        fixture,
        _server: server,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn idse(dir: &Path, url: &str, args: &[&str]) -> Out {
    idse_with(dir, url, args, &[]).await
}

/// `idse` with more environment variables.
async fn idse_with(dir: &Path, url: &str, args: &[&str], env: &[(&str, &Path)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_idse"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("IDSE_AGENCY_URL", url)
        .env("HOME", dir)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn stage_file(ws: &Path, rel: &str) -> PathBuf {
    ws.join(".idse/projects/demo/sessions/__blueprint__")
        .join(rel)
}

fn spec_text(lines: &[&str]) -> String {
    let mut s = "# Specification\n\n## Purpose\n".to_owned();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A project pushed from `a` and cloned (by pulling) into `b`.
async fn two_workspaces(gw: &Gw) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    assert_eq!(idse(&a, &gw.url, &["init", "demo"]).await.code, 0);
    std::fs::write(
        stage_file(&a, "specs/spec.md"),
        spec_text(&["one", "two", "three", "four", "five", "six"]),
    )
    .unwrap();
    let pushed = idse(&a, &gw.url, &["sync", "push"]).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    // b starts from a's folder without its sync state, as a teammate's copy would, then pulls.
    copy_dir(&a.join(".idse"), &b.join(".idse"));
    std::fs::remove_dir_all(b.join(".idse/projects/demo/.sync")).unwrap();
    let pulled = idse(&b, &gw.url, &["sync", "pull"]).await;
    assert_eq!(pulled.code, 0, "{}{}", pulled.stdout, pulled.stderr);
    (tmp, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_edits_merge_cleanly() {
    let gw = gateway().await;
    let (_tmp, a, b) = two_workspaces(&gw).await;
    let spec = |ws: &Path| stage_file(ws, "specs/spec.md");
    std::fs::write(
        spec(&a),
        spec_text(&["ONE by a", "two", "three", "four", "five", "six"]),
    )
    .unwrap();
    std::fs::write(
        spec(&b),
        spec_text(&["one", "two", "three", "four", "five", "SIX by b"]),
    )
    .unwrap();
    assert_eq!(idse(&a, &gw.url, &["sync", "push", "spec"]).await.code, 0);
    let refused = idse(&b, &gw.url, &["sync", "push", "spec"]).await;
    assert_eq!(
        refused.code, 1,
        "b's push must be refused: {}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains("idse sync pull"),
        "{}",
        refused.stdout
    );
    let last_sync = |ws: &Path| {
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(ws.join(".idse/projects/demo/session_state.json")).unwrap(),
        )
        .unwrap();
        state["last_sync"].as_str().unwrap_or_default().to_owned()
    };
    let before = last_sync(&b);
    let pulled = idse(&b, &gw.url, &["sync", "pull"]).await;
    assert_eq!(pulled.code, 0, "{}{}", pulled.stdout, pulled.stderr);
    assert!(pulled.stdout.contains("spec merged"), "{}", pulled.stdout);
    // The pull is b's last sync now (RFC 3339 times in UTC sort as text).
    assert!(last_sync(&b) > before, "{} then {}", before, last_sync(&b));
    let merged = spec_text(&["ONE by a", "two", "three", "four", "five", "SIX by b"]);
    assert_eq!(std::fs::read_to_string(spec(&b)).unwrap(), merged);
    assert_eq!(idse(&b, &gw.url, &["sync", "push"]).await.code, 0);
    assert_eq!(idse(&a, &gw.url, &["sync", "pull"]).await.code, 0);
    assert_eq!(std::fs::read_to_string(spec(&a)).unwrap(), merged);
    let status = idse(&a, &gw.url, &["sync", "status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["sync"] == "in_sync"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_edits_conflict_then_resolve_and_push() {
    let gw = gateway().await;
    let (_tmp, a, b) = two_workspaces(&gw).await;
    let theirs = spec_text(&["one", "two", "THREE by a", "four", "five", "six"]);
    let mine = spec_text(&["one", "two", "THREE by b", "four", "five", "six"]);
    std::fs::write(stage_file(&a, "specs/spec.md"), &theirs).unwrap();
    std::fs::write(stage_file(&b, "specs/spec.md"), &mine).unwrap();
    assert_eq!(idse(&a, &gw.url, &["sync", "push"]).await.code, 0);
    let pulled = idse(&b, &gw.url, &["sync", "pull"]).await;
    assert_eq!(
        pulled.code, 1,
        "a conflicting pull exits 1: {}",
        pulled.stdout
    );
    assert!(
        pulled.stdout.contains("conflict in spec"),
        "{}",
        pulled.stdout
    );
    // Both texts survive: b's file untouched, a's text kept beside it and on the gateway.
    assert_eq!(
        std::fs::read_to_string(stage_file(&b, "specs/spec.md")).unwrap(),
        mine
    );
    let remote_copy = b.join(".idse/projects/demo/.sync/remote/__blueprint__/spec_md");
    assert_eq!(std::fs::read_to_string(remote_copy).unwrap(), theirs);
    let status = idse(&b, &gw.url, &["status", "--json"]).await;
    assert!(status.stdout.contains("\"conflict\""), "{}", status.stdout);
    let blocked = idse(&b, &gw.url, &["sync", "push"]).await;
    assert_eq!(blocked.code, 2);
    assert!(
        blocked.stderr.contains("idse sync resolve"),
        "{}",
        blocked.stderr
    );

    let hand = b.join("hand.md");
    let resolution = spec_text(&["one", "two", "THREE by a and b", "four", "five", "six"]);
    std::fs::write(&hand, &resolution).unwrap();
    let take = hand.to_str().unwrap();
    let resolved = idse(&b, &gw.url, &["sync", "resolve", "spec", "--take", take]).await;
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    let pushed = idse(&b, &gw.url, &["sync", "push"]).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    assert_eq!(idse(&a, &gw.url, &["sync", "pull"]).await.code, 0);
    assert_eq!(
        std::fs::read_to_string(stage_file(&a, "specs/spec.md")).unwrap(),
        resolution
    );
}

/// A teammate who ran `idse init` with the team's project name and wrote into one stage before
/// any sync. Before, the push was refused ("pull to merge") and the pull refused too ("never
/// pushed, push first"): no way on. Now the pull finds the project by its name, takes the
/// team's text where the file is still the template, and records a conflict where it is not,
/// the file untouched; once that is settled, the push goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_made_with_init_pulls_the_teams_project_by_its_name() {
    let gw = gateway().await;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for ws in [&a, &b] {
        std::fs::create_dir_all(ws).unwrap();
        assert_eq!(idse(ws, &gw.url, &["init", "demo"]).await.code, 0);
    }
    let teams_spec = spec_text(&["one", "two", "three"]);
    std::fs::write(stage_file(&a, "specs/spec.md"), &teams_spec).unwrap();
    let teams_intent = "# Intent: demo\n\n## Purpose\n\nThe team's purpose.\n";
    std::fs::write(stage_file(&a, "intents/intent.md"), teams_intent).unwrap();
    assert_eq!(idse(&a, &gw.url, &["sync", "push"]).await.code, 0);

    let intent = stage_file(&b, "intents/intent.md");
    let mine = format!(
        "{}Written by b before any sync.\n",
        std::fs::read_to_string(&intent).unwrap()
    );
    std::fs::write(&intent, &mine).unwrap();
    let refused = idse(&b, &gw.url, &["sync", "push"]).await;
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("idse sync pull"),
        "{}",
        refused.stdout
    );

    // Before the pull, status already compares with the team's copy.
    let status = idse(&b, &gw.url, &["sync", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let row = |name: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("intent").contains("both changed"), "{}", status.stdout);
    assert!(row("context").contains("in sync"), "{}", status.stdout);

    let pulled = idse(&b, &gw.url, &["sync", "pull"]).await;
    assert_eq!(pulled.code, 1, "{}{}", pulled.stdout, pulled.stderr);
    assert!(
        pulled.stdout.contains("intent conflict"),
        "{}",
        pulled.stdout
    );
    assert!(pulled.stdout.contains("spec updated"), "{}", pulled.stdout);
    assert_eq!(
        std::fs::read_to_string(stage_file(&b, "specs/spec.md")).unwrap(),
        teams_spec
    );
    assert_eq!(std::fs::read_to_string(&intent).unwrap(), mine);

    let resolved = idse(
        &b,
        &gw.url,
        &["sync", "resolve", "intent", "--take", "local"],
    )
    .await;
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    let pushed = idse(&b, &gw.url, &["sync", "push"]).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    assert_eq!(idse(&a, &gw.url, &["sync", "pull"]).await.code, 0);
    assert_eq!(
        std::fs::read_to_string(stage_file(&a, "intents/intent.md")).unwrap(),
        mine
    );
    // One project on the gateway, not a second of the same name; the team's intent that b's
    // replaced is still in its history.
    let projects = gw.fixture.store.projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    let kept = gw
        .fixture
        .store
        .text_by_hash(projects[0].id, &idse_protocol::content_hash(teams_intent))
        .await
        .unwrap();
    assert_eq!(kept, teams_intent);

    // A name the gateway does not hold is still "never pushed".
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    assert_eq!(idse(&c, &gw.url, &["init", "other"]).await.code, 0);
    let never = idse(&c, &gw.url, &["sync", "pull"]).await;
    assert_eq!(never.code, 2, "{}{}", never.stdout, never.stderr);
    assert!(never.stderr.contains("never pushed"), "{}", never.stderr);

    // `fetch` takes the project's name as well as its id.
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    let fetched = idse(&d, &gw.url, &["sync", "fetch", "demo"]).await;
    assert_eq!(fetched.code, 0, "{}{}", fetched.stdout, fetched.stderr);
    assert_eq!(
        std::fs::read_to_string(stage_file(&d, "intents/intent.md")).unwrap(),
        mine
    );
    let unknown = idse(&d, &gw.url, &["sync", "fetch", "nothing-here"]).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no project named `nothing-here`"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pull_leaves_every_file_old_or_new() {
    let gw = gateway().await;
    let (_tmp, a, b) = two_workspaces(&gw).await;
    let stages = [
        "intents/intent.md",
        "contexts/context.md",
        "specs/spec.md",
        "plans/plan.md",
        "tasks/tasks.md",
        "implementation/README.md",
        "feedback/feedback.md",
    ];
    let read = |ws: &Path, s: &str| std::fs::read_to_string(stage_file(ws, s)).unwrap();
    let old: Vec<String> = stages.iter().map(|s| read(&b, s)).collect();
    let line = "a long line of new text for the pull to write\n";
    let new: Vec<String> = stages
        .iter()
        .map(|s| format!("# {s}, rewritten\n{}", line.repeat(15_000)))
        .collect();
    for (s, t) in stages.iter().zip(&new) {
        std::fs::write(stage_file(&a, s), t).unwrap();
    }
    assert_eq!(idse(&a, &gw.url, &["sync", "push"]).await.code, 0);
    let snapshot = b.parent().unwrap().join("b-before");
    copy_dir(&b, &snapshot);
    let mut partial = 0;
    for round in 0..25u64 {
        std::fs::remove_dir_all(&b).unwrap();
        copy_dir(&snapshot, &b);
        let mut child = Command::new(env!("CARGO_BIN_EXE_idse"))
            .arg("-C")
            .arg(&b)
            .args(["sync", "pull"])
            .env("IDSE_AGENCY_URL", &gw.url)
            .env("HOME", &b)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5 + round * 4)).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        let mut fresh = 0;
        for (i, s) in stages.iter().enumerate() {
            let now = read(&b, s);
            assert!(
                now == old[i] || now == new[i],
                "round {round}: {s} is torn ({} bytes)",
                now.len()
            );
            fresh += usize::from(now == new[i]);
        }
        partial += usize::from(fresh > 0 && fresh < stages.len());
        // Whatever the kill left, a second pull finishes the job.
        let again = idse(&b, &gw.url, &["sync", "pull"]).await;
        assert_eq!(
            again.code, 0,
            "round {round}: {}{}",
            again.stdout, again.stderr
        );
        for (i, s) in stages.iter().enumerate() {
            assert_eq!(read(&b, s), new[i], "round {round}: {s}");
        }
    }
    eprintln!("{partial} of 25 kills landed between two files' writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_is_normal() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    assert_eq!(idse(ws, &closed, &["init", "demo"]).await.code, 0);
    // Pretend it was pushed once, so pull and sync status get as far as the network.
    std::fs::write(
        ws.join(".idse/config.json"),
        r#"{"project_id": "0b6f3c1e-2d4a-4f5e-9a7b-1c2d3e4f5a6b"}"#,
    )
    .unwrap();
    let before = std::fs::read_to_string(stage_file(ws, "specs/spec.md")).unwrap();
    assert_eq!(idse(ws, &closed, &["status"]).await.code, 0);
    assert_eq!(
        idse(ws, &closed, &["validate"]).await.code,
        1,
        "templates hold markers"
    );
    for cmd in [
        &["sync", "push"][..],
        &["sync", "pull"],
        &["sync", "status"],
        &["projects"],
    ] {
        let started = Instant::now();
        let out = idse(ws, &closed, cmd).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{cmd:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(out.code, 2, "{cmd:?}");
        assert!(
            out.stderr.contains(&closed),
            "{cmd:?} must name the URL: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("Connection refused"),
            "{cmd:?} must say what happened: {}",
            out.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(stage_file(ws, "specs/spec.md")).unwrap(),
        before
    );
    assert!(
        !ws.join(".idse/projects/demo/.sync").exists(),
        "nothing local changed"
    );
}

/// `status` in a workspace of several projects: all of them at its top, the one whose folder it
/// is started in (before, it listed them all there too), or the one `--project` names.
#[tokio::test]
async fn status_shows_the_project_whose_folder_it_runs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let nowhere = "http://127.0.0.1:9";
    for name in ["demo", "second"] {
        assert_eq!(idse(ws, nowhere, &["init", name]).await.code, 0);
    }
    let names = |out: Out| -> Vec<String> {
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["project"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(idse(ws, nowhere, &["status", "--json"]).await),
        ["demo", "second"]
    );
    let inside = ws.join(".idse/projects/second/sessions");
    assert_eq!(
        names(idse(&inside, nowhere, &["status", "--json"]).await),
        ["second"]
    );
    assert_eq!(
        names(idse(&inside, nowhere, &["--project", "demo", "status", "--json"]).await),
        ["demo"]
    );
}

#[tokio::test]
async fn merge_file_follows_git_merge_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("base"), "a\nb\nc\n").unwrap();
    std::fs::write(d.join("local"), "a\nX\nc\n").unwrap();
    std::fs::write(d.join("remote"), "a\nY\nc\n").unwrap();
    let out = idse(
        d,
        "http://unused",
        &["merge-file", "-p", "local", "base", "remote"],
    )
    .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "a\n<<<<<<< local\nX\n=======\nY\n>>>>>>> remote\nc\n"
    );
    let git = std::process::Command::new("git")
        .current_dir(d)
        .args(["merge-file", "-p", "--diff3", "local", "base", "remote"])
        .output()
        .unwrap();
    let args = ["merge-file", "-p", "--diff3", "local", "base", "remote"];
    let ours = idse(d, "http://unused", &args).await;
    assert_eq!(ours.stdout, String::from_utf8(git.stdout).unwrap());
    // Without -p the result replaces LOCAL, as git does.
    std::fs::write(d.join("base"), "a\nb\nc\nd\ne\n").unwrap();
    std::fs::write(d.join("local"), "a\nX\nc\nd\ne\n").unwrap();
    std::fs::write(d.join("remote"), "a\nb\nc\nd\nE\n").unwrap();
    let clean = idse(
        d,
        "http://unused",
        &["merge-file", "local", "base", "remote"],
    )
    .await;
    assert_eq!(clean.code, 0);
    assert_eq!(
        std::fs::read_to_string(d.join("local")).unwrap(),
        "a\nX\nc\nd\nE\n"
    );
}

/// A gateway serving HTTPS with a certificate of the test's own authority, on the same store
/// as `gw`; answers its https URL.
async fn https_gateway(gw: &Gw, dir: &Path) -> (String, PathBuf) {
    let files = idse_gateway::testing::certificate_files(dir);
    let tls = idse_gateway::Tls::from_pem_files(&files.cert, &files.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let app = idse_gateway::app(
        gw.fixture.store.clone(),
        Default::default(),
        idse_gateway::AuthMode::Open,
    );
    tokio::spawn(idse_gateway::serve_tls(
        listener,
        app,
        idse_gateway::CancellationToken::new(),
        tls,
    ));
    (url, files.authority)
}

/// A team gateway on HTTPS: the CLI pushes and pulls over it when the machine trusts its
/// certificate, and otherwise says the certificate is the trouble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_https_is_reached_and_an_untrusted_certificate_is_named() {
    let gw = gateway().await;
    let tmp = tempfile::tempdir().unwrap();
    let (https, ca_file) = https_gateway(&gw, tmp.path()).await;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    assert_eq!(idse(&a, &https, &["init", "demo"]).await.code, 0);
    std::fs::write(
        stage_file(&a, "specs/spec.md"),
        spec_text(&["over", "https"]),
    )
    .unwrap();

    // Not trusted: the push fails, says why, and nothing reached the gateway.
    let refused = idse(&a, &https, &["sync", "push"]).await;
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("does not trust")
            && refused.stderr.contains("UnknownIssuer")
            && refused.stderr.contains("SSL_CERT_FILE"),
        "{}",
        refused.stderr
    );
    let listed = idse(&a, &gw.url, &["projects", "--json"]).await;
    assert!(!listed.stdout.contains("demo"), "{}", listed.stdout);

    // Trusted (the team's authority in SSL_CERT_FILE): push, list and pull over https.
    let trust = [("SSL_CERT_FILE", ca_file.as_path())];
    let pushed = idse_with(&a, &https, &["sync", "push"], &trust).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    let listed = idse_with(&a, &https, &["projects", "--json"], &trust).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("demo"), "{}", listed.stdout);
    copy_dir(&a.join(".idse"), &b.join(".idse"));
    std::fs::remove_dir_all(b.join(".idse/projects/demo/.sync")).unwrap();
    let pulled = idse_with(&b, &https, &["sync", "pull"], &trust).await;
    assert_eq!(pulled.code, 0, "{}{}", pulled.stdout, pulled.stderr);
    let newer = spec_text(&["over", "https", "again"]);
    std::fs::write(stage_file(&a, "specs/spec.md"), &newer).unwrap();
    let pushed = idse_with(&a, &https, &["sync", "push"], &trust).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    let pulled = idse_with(&b, &https, &["sync", "pull"], &trust).await;
    assert_eq!(pulled.code, 0, "{}{}", pulled.stdout, pulled.stderr);
    assert_eq!(
        std::fs::read_to_string(stage_file(&b, "specs/spec.md")).unwrap(),
        newer
    );
}

/// A TCP relay to `upstream` that keeps every byte the client sent: what went on the wire.
async fn recording_relay(upstream: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                    if server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move { tokio::io::copy(&mut server_rx, &mut client_tx).await });
        }
    });
    (url, sent)
}

/// Seven stages of 10 KiB of real prose (this repository's docs), `version` making each push
/// differ.
fn prose_push(version: usize, project_id: Option<String>) -> idse_protocol::PushRequest {
    let prose = include_str!("../../../README.md");
    let artifacts = idse_protocol::Stage::ALL
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let from = (i * 3_000 + version * 700) % (prose.len() - 12_000);
            let from = (from..).find(|&at| prose.is_char_boundary(at)).unwrap();
            let text: String = prose[from..].chars().take(10 * 1024).collect();
            (stage.artifact_key().to_owned(), Some(text))
        })
        .collect();
    idse_protocol::PushRequest {
        project_id,
        project_name: "wire".to_owned(),
        artifacts,
        ..Default::default()
    }
}

/// To a gateway on another machine, pushes go compressed (zstd) once the gateway has said in an
/// answer that it takes them; before that, and to a gateway that refuses them, they go plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_go_compressed_once_the_gateway_says_it_takes_them() {
    use idse_core::gateway::PushAnswer;
    let gw = gateway().await;
    let (relay, sent) = recording_relay(gw.url.trim_start_matches("http://").to_owned()).await;
    // As a gateway on another machine is reached; on loopback nothing is compressed.
    let client = idse_core::Gateway::with_compression(&relay, None, true);
    let requests = |sent: &[u8]| -> Vec<(String, usize)> {
        let text = String::from_utf8_lossy(sent).into_owned();
        text.split("POST /sync/push")
            .skip(1)
            .map(|req| {
                let head = req.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
                (head, req.len())
            })
            .collect()
    };

    let first = prose_push(0, None);
    let PushAnswer::Accepted(answer) = client.push(&first).await.unwrap() else {
        panic!("the first push conflicted");
    };
    let second = prose_push(1, Some(answer.project_id.clone()));
    let PushAnswer::Accepted(_) = client.push(&second).await.unwrap() else {
        panic!("the second push conflicted");
    };
    let pushes = requests(&sent.lock().unwrap());
    assert_eq!(pushes.len(), 2);
    assert!(
        !pushes[0].0.contains("content-encoding"),
        "nothing was known of the gateway yet: {}",
        pushes[0].0
    );
    assert!(
        pushes[1].0.contains("content-encoding: zstd"),
        "{}",
        pushes[1].0
    );
    let json = serde_json::to_vec(&second).unwrap().len();
    assert!(
        pushes[1].1 * 10 < json * 6,
        "{} bytes on the wire for {json} of JSON",
        pushes[1].1
    );
    // The gateway read it whole.
    let pulled = client.pull(&answer.project_id, None).await.unwrap();
    for (key, text) in &second.artifacts {
        assert_eq!(pulled.artifacts.get(key), text.as_ref(), "{key}");
    }

    // A client of a gateway on this machine sends plain JSON whatever the gateway says.
    sent.lock().unwrap().clear();
    let local = idse_core::Gateway::new(&relay, None);
    local.health().await.unwrap();
    let third = prose_push(2, Some(answer.project_id.clone()));
    let PushAnswer::Accepted(_) = local.push(&third).await.unwrap() else {
        panic!("the third push conflicted");
    };
    let pushes = requests(&sent.lock().unwrap());
    assert_eq!(pushes.len(), 1);
    assert!(!pushes[0].0.contains("content-encoding"), "{}", pushes[0].0);
}

/// Something on the way that says it takes zstd bodies and then refuses them (415): the push is
/// sent again plain and answered, and later pushes go plain without trying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_compressed_push_goes_again_plain_and_compression_stops() {
    use axum::http::{HeaderMap, StatusCode};
    use idse_core::gateway::PushAnswer;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let kept = seen.clone();
    // Stands for a proxy in front of a gateway: it cannot be made of the real one, which takes
    // what it says it takes.
    let app = axum::Router::new().route(
        "/sync/push",
        axum::routing::post(move |headers: HeaderMap| {
            let kept = kept.clone();
            async move {
                let encoding = headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap().to_owned());
                kept.lock().unwrap().push(encoding.clone());
                let said = [("accept-encoding", "zstd, gzip")];
                if encoding.is_some() {
                    let body = serde_json::json!({"error": "unsupported_encoding",
                        "message": "Not here.", "detail": ""});
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, said, axum::Json(body));
                }
                let body = serde_json::json!({"success": true, "project_id": "p",
                    "message": "ok", "synced_stages": ["spec"],
                    "timestamp": "2026-12-02T00:00:00Z", "revision": 1, "hashes": {}});
                (StatusCode::OK, said, axum::Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = idse_core::Gateway::with_compression(&url, None, true);
    for version in 0..3 {
        let answer = client.push(&prose_push(version, None)).await.unwrap();
        assert!(matches!(answer, PushAnswer::Accepted(_)), "{answer:?}");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [None, Some("zstd".to_owned()), None, None],
        "plain, compressed and refused, plain again, then plain"
    );
}
