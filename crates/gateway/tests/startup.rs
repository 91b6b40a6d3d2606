//! A gateway that cannot open its database says why in one line naming the cause, without the
//! password or a stack trace, and exits 1.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use idse_store::testing::{PoolMode, Pooler};

/// Runs the gateway on `database` (with `RUST_BACKTRACE=1`, as developers' shells often
/// have) and answers its exit code, its stderr and how long it took.
fn start(database: &str) -> (Option<i32>, String, Duration) {
    let began = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_idse-gateway"))
        .args(["--addr", "127.0.0.1:0", "--database", database])
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "it listened: {:?}", out.stdout);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        began.elapsed(),
    )
}

fn assert_one_line(stderr: &str) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn a_postgres_server_that_refuses_is_named_with_its_cause() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, stderr, took) = start(&format!(
        "postgres://someone:secret-pw@127.0.0.1:{port}/agency"
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert_one_line(&stderr);
    assert!(
        stderr.contains(&format!("postgres://someone:***@127.0.0.1:{port}/agency")),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-pw"), "{stderr}");
    assert!(
        stderr.contains("the database cannot be reached") && stderr.contains("Connection refused"),
        "the cause is named, not the pool's timeout: {stderr}"
    );
    // Told at once, not after the pool's retries.
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "# not a database\n".repeat(100)).unwrap();
    let (code, stderr, _) = start(file.to_str().unwrap());
    assert_eq!(code, Some(1), "{stderr}");
    assert_one_line(&stderr);
    assert!(stderr.contains("file is not a database"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# not a database\n".repeat(100),
        "the file is left as it was"
    );
}

#[tokio::test]
async fn a_transaction_pooler_is_refused_with_the_address_to_use_instead() {
    let Some(database) = idse_store::testing::postgres_database().await else {
        return;
    };
    let Some(pooler) = Pooler::start(&database, PoolMode::Transaction) else {
        return;
    };
    let (code, stderr, took) = start(pooler.url());
    assert_eq!(code, Some(1), "{stderr}");
    assert_one_line(&stderr);
    assert!(
        stderr.contains("connection pooler in transaction mode")
            && stderr.contains("session mode (on Supabase, the same pooler address on port 5432)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("the database at 127.0.0.1:{} ", pooler.port())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("idse-test"),
        "the password is shown: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
