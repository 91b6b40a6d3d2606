//! The gateway binary sizes its async runtime for its store: on SQLite it leaves the writer
//! thread a CPU; `TOKIO_WORKER_THREADS` overrides that.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts the gateway on a SQLite file, waits for its first line and counts its runtime
/// threads.
fn runtime_threads(threads_env: Option<&str>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_idse-gateway"));
    command
        .args(["--addr", "127.0.0.1:0", "--database"])
        .arg(dir.path().join("gateway.sqlite3"))
        .env("RUST_LOG", "warn")
        .env_remove("TOKIO_WORKER_THREADS")
        .stdout(Stdio::piped());
    if let Some(n) = threads_env {
        command.env("TOKIO_WORKER_THREADS", n);
    }
    let mut child: Child = command.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap();
    let count = tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "tokio-rt-worker")
        })
        .count();
    child.kill().unwrap();
    child.wait().unwrap();
    count
}

#[test]
fn on_sqlite_the_runtime_leaves_the_writer_a_cpu() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(runtime_threads(None), cores.saturating_sub(1).max(1));
}

#[test]
fn tokio_worker_threads_is_the_operators_choice() {
    assert_eq!(runtime_threads(Some("3")), 3);
}
