//! The gateway binary sizes its async runtime for its store: on SQLite it leaves the writer
//! thread a CPU; `TOKIO_WORKER_THREADS` overrides that. It raises its limit of open files.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs `command` (which runs the gateway) on a SQLite file in `dir`, and waits until it
/// listens.
fn listening(mut command: Command, dir: &Path) -> Child {
    command
        .args(["--addr", "127.0.0.1:0", "--database"])
        .arg(dir.join("gateway.sqlite3"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("the gateway starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    child
}

/// Starts the gateway and counts its runtime threads.
fn runtime_threads(threads_env: Option<&str>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_idse-gateway"));
    command.env_remove("TOKIO_WORKER_THREADS");
    if let Some(n) = threads_env {
        command.env("TOKIO_WORKER_THREADS", n);
    }
    let mut child = listening(command, dir.path());
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

/// Started with a soft limit of 256 open files under a hard one of 4,096 (as `prlimit` sets
/// them, and as many systems start services with 1,024), the gateway raises its soft limit
/// to the hard one: each connection is an open file.
#[test]
fn the_limit_of_open_files_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    // prlimit (util-linux) sets the limits, then runs the gateway.
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=256:4096")
        .arg(env!("CARGO_BIN_EXE_idse-gateway"));
    let mut child = listening(command, dir.path());
    // prlimit executes the gateway in its own process, so the pid is the gateway's.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3) // "Max", "open", "files": then the soft and the hard limit
        .take(2)
        .collect();
    assert_eq!(open_files, ["4096", "4096"], "{limits}");
}
