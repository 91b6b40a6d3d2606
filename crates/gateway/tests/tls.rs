//! The gateway's own HTTPS (`--tls-cert`, `--tls-key`): served with the given certificate,
//! refused by clients that do not trust it, and a certificate or key that cannot be used is
//! named before anything listens.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use common::{answer, gateway_command, spawn_gateway_with};
use idse_gateway::testing::{certificate_files, trusting};
use serde_json::json;

/// The arguments that make the gateway serve HTTPS with `cert` and `key`.
fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> [&'a OsStr; 4] {
    [
        OsStr::new("--tls-cert"),
        cert.as_os_str(),
        OsStr::new("--tls-key"),
        key.as_os_str(),
    ]
}

#[tokio::test]
async fn https_is_served_with_the_given_certificate_and_only_to_clients_that_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let db = dir.path().join("gateway.sqlite3");
    let (_child, url) = spawn_gateway_with(&db, &tls_args(&files.cert, &files.key)).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let client = trusting(&files.authority_pem);
    let (status, pushed) = answer(
        client
            .post(format!("{url}/sync/push"))
            .json(&json!({"project_name": "tls", "artifacts": {"intent_md": "# Intent\n"}})),
    )
    .await;
    assert_eq!(status, 200, "{pushed}");
    let (status, pulled) = answer(
        client
            .post(format!("{url}/sync/pull"))
            .json(&json!({"project_id": pushed["project_id"]})),
    )
    .await;
    assert_eq!(status, 200, "{pulled}");
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
    // Plain HTTP to the HTTPS port is told to use HTTPS, and the gateway serves on.
    let plain = url.replacen("https://", "http://", 1);
    let (status, told) = answer(
        reqwest::Client::new()
            .post(format!("{plain}/sync/push"))
            .json(&json!({"project_name": "plain", "artifacts": {"intent_md": "# Plain\n"}})),
    )
    .await;
    assert_eq!(status, 400, "{told}");
    assert_eq!(told["error"], "https_required", "{told}");
    assert!(
        told["message"].as_str().unwrap().contains("https://"),
        "{told}"
    );
    let (status, projects) = answer(client.get(format!("{url}/sync/projects"))).await;
    assert_eq!(status, 200, "{projects}");
    assert!(!projects.to_string().contains("\"plain\""), "{projects}");
    assert!(projects.to_string().contains("\"tls\""), "{projects}");
    let (status, health) = answer(client.get(format!("{url}/sync/health"))).await;
    assert_eq!(status, 200, "{health}");
    // Headers over hyper's limit, over TLS: the gateway's JSON answer, not hyper's empty one.
    let mut crowded = client.get(format!("{url}/sync/health"));
    for i in 0..120 {
        crowded = crowded.header(format!("x-header-{i}"), "y");
    }
    let (status, refused) = answer(crowded).await;
    assert_eq!(status, 431, "{refused}");
    assert_eq!(refused["error"], "headers_too_large", "{refused}");

    // /metrics tells when the certificate ends (certificate_files: 4096-01-01).
    let metrics = common::text(client.get(format!("{url}/metrics"))).await;
    let end = chrono::NaiveDate::from_ymd_opt(4096, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    assert!(
        metrics.contains(&format!(
            "idse_tls_certificate_not_after_timestamp_seconds {end}\n"
        )),
        "{metrics}"
    );
}

/// Runs a gateway that must not start; answers its exit code and stderr.
async fn refused_start(dir: &Path, cert: &Path, key: &Path) -> (Option<i32>, String) {
    let out = gateway_command(&dir.join("gateway.sqlite3"), &tls_args(cert, key))
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
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

async fn health(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    let res = client.get(format!("{url}/sync/health")).send().await?;
    Ok(res.status().as_u16())
}

#[tokio::test]
async fn sighup_makes_the_gateway_serve_its_renewed_certificate_and_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let first = certificate_files(dir.path());
    let db = dir.path().join("gateway.sqlite3");
    let mut more = tls_args(&first.cert, &first.key).to_vec();
    // Only SIGHUP reads the files again, so the test sees what the signal did.
    more.extend([OsStr::new("--tls-check-seconds"), OsStr::new("0")]);
    let (mut child, url) = spawn_gateway_with(&db, &more).await;
    let hang_up = |pid: u32| {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // At once after the first line: the signal is already the gateway's to handle.
    hang_up(child.id().unwrap());
    let old = trusting(&first.authority_pem);
    assert_eq!(health(&old, &url).await.unwrap(), 200);

    let renewed = tempfile::tempdir().unwrap();
    let next = certificate_files(renewed.path());
    std::fs::rename(&next.cert, &first.cert).unwrap();
    std::fs::rename(&next.key, &first.key).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        health(&old, &url).await.unwrap(),
        200,
        "read again without a signal"
    );

    hang_up(child.id().unwrap());
    let new = trusting(&next.authority_pem);
    let began = std::time::Instant::now();
    while health(&new, &url).await.is_err() {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(5),
            "the renewed certificate was not served 5 s after SIGHUP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused = health(&old, &url).await.unwrap_err();
    assert!(
        // The old authority did not sign the renewed certificate.
        format!("{refused:?}").contains("InvalidCertificate"),
        "{refused:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the gateway"
    );
}

#[tokio::test]
async fn a_certificate_past_its_end_is_reported_at_start_and_the_gateway_starts_anyway() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let files = idse_gateway::testing::certificate_files_ending(dir.path(), (2020, 1, 1));
    let mut child = gateway_command(
        &dir.path().join("gateway.sqlite3"),
        &tls_args(&files.cert, &files.key),
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("listening on https://"), "{first}");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let warning = tokio::time::timeout(std::time::Duration::from_secs(5), stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(warning.contains("ended on 2020-01-01"), "{warning}");
    assert!(
        warning.contains(&files.cert.display().to_string()),
        "{warning}"
    );
}
