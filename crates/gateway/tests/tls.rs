//! The gateway's own HTTPS (`--tls-cert`, `--tls-key`): served with the given certificate,
//! refused by clients that do not trust it, and a certificate or key that cannot be used is
//! named before anything listens.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;

use idse_gateway::testing::certificate_files;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn gateway(dir: &Path, cert: &Path, key: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idse-gateway"));
    cmd.args(["--addr", "127.0.0.1:0", "--database"])
        .arg(dir.join("gateway.sqlite3"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts the gateway and answers it with the URL of its first line.
async fn start(dir: &Path, cert: &Path, key: &Path) -> (Child, String) {
    let mut child = gateway(dir, cert, key).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
}

#[tokio::test]
async fn https_is_served_with_the_given_certificate_and_only_to_clients_that_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let (_child, url) = start(dir.path(), &files.cert, &files.key).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let trusting = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(files.authority_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let pushed = trusting
        .post(format!("{url}/sync/push"))
        .json(&json!({"project_name": "tls", "artifacts": {"intent_md": "# Intent\n"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let pushed: serde_json::Value = pushed.json().await.unwrap();
    let pulled: serde_json::Value = trusting
        .post(format!("{url}/sync/pull"))
        .json(&json!({"project_id": pushed["project_id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled["artifacts"]["intent_md"], "# Intent\n");

    // A client that does not know the authority refuses the certificate.
    let refused = reqwest::Client::new()
        .get(format!("{url}/sync/health"))
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    assert!(
        format!("{refused:?}").contains("UnknownIssuer"),
        "{refused:?}"
    );
    // Plain HTTP to the HTTPS port gets no answer, and the gateway serves on.
    let plain = url.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain}/sync/health")).await.is_err());
    let health = trusting
        .get(format!("{url}/sync/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Runs a gateway that must not start; answers its exit code and stderr.
async fn refused_start(dir: &Path, cert: &Path, key: &Path) -> (Option<i32>, String) {
    let out = gateway(dir, cert, key).output().await.unwrap();
    assert!(out.stdout.is_empty(), "it listened: {:?}", out.stdout);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_certificate_or_key_that_cannot_be_used_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let (cert, key) = (files.cert, files.key);

    let missing = dir.path().join("nowhere.key");
    let (code, stderr) = refused_start(dir.path(), &cert, &missing).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("private key file"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let (code, stderr) = refused_start(dir.path(), &not_pem, &key).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("certificate file"), "{stderr}");
    assert!(stderr.contains(&not_pem.display().to_string()), "{stderr}");

    // The key of another certificate.
    let other = tempfile::tempdir().unwrap();
    let other_key = certificate_files(other.path()).key;
    let (code, stderr) = refused_start(dir.path(), &cert, &other_key).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("does not fit"), "{stderr}");
    assert!(
        stderr.contains(&other_key.display().to_string()),
        "{stderr}"
    );
}
