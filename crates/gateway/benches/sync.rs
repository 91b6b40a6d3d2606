//! Push and pull latency and throughput of a real `idse-gateway` process on loopback, on SQLite
//! and (with IDSE_TEST_POSTGRES_URL set to an admin URL) on Postgres.
//!
//! `cargo bench -p idse-gateway --bench sync` — prints p50/p99 latency and requests/s for a
//! 7-stage project (10 KiB per stage) with 1 and 16 concurrent clients; pushes send all seven
//! texts (one or all changed), and, in a last push row, only the changed one, as `idse` does.
//! Each client owns a project and pushes with base hashes, as the IDSE client does. Stage texts
//! are windows of real markdown (`IDSE_BENCH_TEXT=repeated`: one repeated line, the payload
//! before stop 14, which compresses ~50x). `IDSE_BENCH_SCALE=0.2` shortens it;
//! `IDSE_BENCH_STORES=postgres` runs one store,
//! `IDSE_BENCH_OPS=push,pull` some operations; `IDSE_BENCH_SLOW=1` lists each client's requests
//! slower than 1 ms as (ms since the start, µs), to see whether they come in bursts.
//! `IDSE_BENCH_CLIENTS=16` runs only that count of clients (to profile one phase alone).
//! `IDSE_BENCH_HTTPS=1` adds SQLite served over the gateway's own HTTPS (`--tls-cert`), to
//! compare with plain HTTP. On Postgres a last row, the commit floor, is the same server
//! without the gateway: one 10 KiB text inserted and committed per round trip, the least any
//! durable push costs on that machine that day. With IDSE_TEST_POSTGRES_SOCKET_URL set too
//! (`bash scripts/postgres.sh --socket`), Postgres is measured a second time over its Unix
//! socket, as a gateway on the database's machine would reach it. The gateway logs at its
//! default level, as a team runs it (`IDSE_BENCH_LOG=warn` sets `RUST_LOG` for it). The first
//! and last rows (`machine`) time fixed CPU work and a wake-up round trip between two threads,
//! neither with the gateway, so each run shows the state of the machine it ran on.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use bytes::Bytes;
use idse_protocol::content_hash;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const STAGES: [&str; 7] = [
    "intent_md",
    "context_md",
    "spec_md",
    "plan_md",
    "tasks_md",
    "implementation_md",
    "feedback_md",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// All seven texts sent, one of them changed (the usual edit).
    PushOneChanged,
    /// All seven texts sent and changed.
    PushAllChanged,
    /// One changed text sent with its base and the project's state, as the `idse` CLI and the
    /// desktop app push an edit (they leave out stages whose text matches their base).
    PushOneSent,
    Pull,
    /// A pull whose answer comes compressed, as the CLI and the app ask a gateway on another
    /// machine (on loopback they do not, as in `Pull`).
    PullCompressed,
    /// `GET` of a path with no route: HTTP on loopback and the gateway's layers, no store.
    Floor,
    /// `GET /sync/health`: one store round trip.
    Health,
}

/// Real markdown to cut stage texts from: this repository's README and benchmark notes.
const PROSE: &str = concat!(
    include_str!("../../../README.md"),
    include_str!("../../../docs/benchmarks.md")
);

/// Whether `IDSE_BENCH_TEXT=repeated` asks for the old payload (one line over and over).
fn repeated_payload() -> bool {
    std::env::var("IDSE_BENCH_TEXT").as_deref() == Ok("repeated")
}

/// 10 KiB of real markdown (a window of `PROSE`, at an offset that differs for every stage,
/// client and version), so texts compress as real docs do (lz4 ~1.5x) and not like a
/// repeated line (~50x), which flattered any store that compresses (Postgres TOAST).
fn text(stage: &str, client: usize, version: u64) -> String {
    const SIZE: usize = 10 * 1024;
    let mut s = format!("# {stage} of client {client}, version {version}\n\n");
    if repeated_payload() {
        // The payload of stop 13 and before, for comparison: one line over and over.
        let line =
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n";
        while s.len() < SIZE {
            s.push_str(line);
        }
        s.truncate(SIZE);
        return s;
    }
    let mixed = (client as u64 + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(version.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(stage.len() as u64 * 0x94D0_49BB_1331_11EB);
    let span = PROSE.len().saturating_sub(SIZE).max(1) as u64;
    let mut at = ((mixed >> 17) % span) as usize;
    while !PROSE.is_char_boundary(at) {
        at += 1;
    }
    for c in PROSE[at..].chars().chain(PROSE.chars()) {
        if s.len() + c.len_utf8() > SIZE {
            break;
        }
        s.push(c);
    }
    s
}

async fn start(args: &[String]) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idse-gateway"));
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(level) = std::env::var("IDSE_BENCH_LOG") {
        command.env("RUST_LOG", level);
    }
    let mut child = command.spawn().unwrap();
    // The gateway logs at its default level (a line for every push), as a team runs it, and its
    // log is read as a service manager reads it; only warnings and errors are shown.
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = log.next_line().await {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("gateway: {line}");
            }
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
}

/// One client with its own project. Request bodies are built before the clock starts (the
/// client knows its texts, so it computes the base hashes itself), so the timed loop measures
/// the gateway, not JSON building in the load generator.
struct Client {
    http: reqwest::Client,
    url: String,
    id: usize,
    project_id: String,
    version: u64,
    texts: Vec<String>,
}

#[derive(serde::Serialize)]
struct PushBody<'a> {
    project_id: &'a str,
    project_name: &'a str,
    artifacts: BTreeMap<&'a str, &'a str>,
    base: BTreeMap<&'a str, String>,
}

impl Client {
    /// `trust`: the PEM of the authority of a gateway served over HTTPS.
    async fn new(url: &str, id: usize, run: &str, trust: Option<&str>, compressed: bool) -> Self {
        let mut http = reqwest::Client::builder().gzip(compressed).zstd(compressed);
        if let Some(pem) = trust {
            http =
                http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        let http = http.build().unwrap();
        let texts: Vec<String> = STAGES.iter().map(|s| text(s, id, 0)).collect();
        let artifacts: BTreeMap<&str, &str> = STAGES
            .iter()
            .copied()
            .zip(texts.iter().map(String::as_str))
            .collect();
        let res: Value = http
            .post(format!("{url}/sync/push"))
            .json(&json!({"project_name": format!("bench-{run}-{id}"), "artifacts": artifacts}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            http,
            url: url.to_owned(),
            id,
            project_id: res["project_id"].as_str().unwrap().to_owned(),
            version: 0,
            texts,
        }
    }

    fn bodies(&mut self, op: Op, count: usize) -> Vec<(&'static str, Bytes)> {
        (0..count)
            .map(|_| match op {
                Op::Floor => ("/sync/none", Bytes::new()),
                Op::Health => ("/sync/health", Bytes::new()),
                Op::Pull | Op::PullCompressed => (
                    "/sync/pull",
                    Bytes::from(json!({"project_id": self.project_id}).to_string()),
                ),
                Op::PushOneSent => {
                    self.version += 1;
                    let i = (self.version % 7) as usize;
                    let base = BTreeMap::from([(STAGES[i], content_hash(&self.texts[i]))]);
                    self.texts[i] = text(STAGES[i], self.id, self.version);
                    let stages: serde_json::Map<String, Value> = STAGES
                        .iter()
                        .map(|s| (s.trim_end_matches("_md").to_owned(), json!("in_progress")))
                        .collect();
                    let body = json!({
                        "project_id": self.project_id,
                        "project_name": "bench",
                        "artifacts": {STAGES[i]: self.texts[i]},
                        "base": base,
                        "session_id": "__blueprint__",
                        "state_json": {"project_name": "bench", "stages": stages, "last_agent": "claude"},
                        "agent": "claude",
                    });
                    ("/sync/push", Bytes::from(body.to_string()))
                }
                Op::PushOneChanged | Op::PushAllChanged => {
                    let base: BTreeMap<&str, String> = STAGES
                        .iter()
                        .copied()
                        .zip(self.texts.iter().map(|t| content_hash(t)))
                        .collect();
                    self.version += 1;
                    let changed = if op == Op::PushAllChanged {
                        0..7
                    } else {
                        let i = (self.version % 7) as usize;
                        i..i + 1
                    };
                    for i in changed {
                        self.texts[i] = text(STAGES[i], self.id, self.version);
                    }
                    let body = PushBody {
                        project_id: &self.project_id,
                        project_name: "bench",
                        artifacts: STAGES
                            .iter()
                            .copied()
                            .zip(self.texts.iter().map(String::as_str))
                            .collect(),
                        base,
                    };
                    (
                        "/sync/push",
                        Bytes::from(serde_json::to_vec(&body).unwrap()),
                    )
                }
            })
            .collect()
    }

    async fn send(&self, path: &str, body: Bytes) {
        let url = format!("{}{path}", self.url);
        let (req, expected) = match path {
            "/sync/none" => (self.http.get(url), 404),
            "/sync/health" => (self.http.get(url), 200),
            _ => (
                self.http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body),
                200,
            ),
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let answer = res.bytes().await.unwrap();
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(&answer));
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

impl Figures {
    /// The figures of requests that took `all`, sent within `wall`.
    fn of(mut all: Vec<Duration>, wall: Duration) -> Self {
        all.sort();
        let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        Figures {
            p50: pick(0.50),
            p99: pick(0.99),
            per_sec: all.len() as f64 / wall.as_secs_f64(),
        }
    }

    /// One row of the printed table.
    fn print(&self, store: &str, operation: &str, clients: usize) {
        println!(
            "| {store} | {operation} | {clients} | {} | {} | {:.0} |",
            ms(self.p50),
            ms(self.p99),
            self.per_sec
        );
    }
}

/// Whether `IDSE_BENCH_OPS` (e.g. `push,pull`) asks for the operation named so; unset, all are.
fn wanted(operation: &str) -> bool {
    std::env::var("IDSE_BENCH_OPS").map_or(true, |only| {
        only.split(',').any(|o| operation.starts_with(o.trim()))
    })
}

/// The counts of clients to run an operation with: `IDSE_BENCH_CLIENTS` (e.g. `16`, or `32` to
/// see how throughput grows past the targets' count) or, unset, `usual`.
fn client_counts(usual: &[usize]) -> Vec<usize> {
    std::env::var("IDSE_BENCH_CLIENTS").map_or_else(
        |_| usual.to_vec(),
        |only| {
            only.split(',')
                .filter_map(|c| c.trim().parse().ok())
                .filter(|&c| c > 0)
                .collect()
        },
    )
}

async fn measure(
    url: &str,
    trust: Option<&str>,
    op: Op,
    clients: usize,
    per_client: usize,
    run: &str,
) -> Figures {
    let mut set = Vec::new();
    for c in 0..clients {
        let mut client = Client::new(url, c, run, trust, op == Op::PullCompressed).await;
        for (path, body) in client.bodies(op, 10) {
            client.send(path, body).await;
        }
        let bodies = client.bodies(op, per_client);
        set.push((client, bodies));
    }
    let started = Instant::now();
    let tasks: Vec<_> = set
        .into_iter()
        .map(|(client, bodies)| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(bodies.len());
                let mut slow = Vec::new();
                for (path, body) in bodies {
                    let t = Instant::now();
                    client.send(path, body).await;
                    let took = t.elapsed();
                    if took > Duration::from_millis(1) {
                        slow.push((t.duration_since(started).as_millis(), took.as_micros()));
                    }
                    lat.push(took);
                }
                if std::env::var_os("IDSE_BENCH_SLOW").is_some() {
                    eprintln!("slow: {slow:?}");
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Figures::of(all, started.elapsed())
}

/// The server's own floor for a durable write, without the gateway: one 10 KiB text of the
/// same prose inserted into a table of its own and committed, `count` times, one after the
/// other on one connection (as one client's pushes).
async fn commit_floor(url: &str, count: usize) -> Figures {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_commit_floor (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let texts: Vec<String> = (0..count + 10)
        .map(|i| text("spec_md", 99, i as u64))
        .collect();
    let insert = "INSERT INTO bench_commit_floor (text) VALUES ($1)";
    // The last ten warm the connection and the table first, and are not counted.
    for t in &texts[count..] {
        sqlx::query(insert)
            .bind(t)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut all = Vec::with_capacity(count);
    for t in &texts[..count] {
        let at = Instant::now();
        sqlx::query(insert)
            .bind(t)
            .execute(&mut conn)
            .await
            .unwrap();
        all.push(at.elapsed());
    }
    Figures::of(all, started.elapsed())
}

/// The machine's own jitter, without the gateway, a store or the network stack, `count` times
/// each: the same fixed CPU work (SHA-256 of one 10 KiB text, forty times: about 0.25 ms here),
/// and a wake-up round trip (one byte to a thread asleep in `read` on a Unix socket pair, and
/// back). Every request of the other rows waits on wake-ups like these, across three processes.
fn machine_floors(count: usize) -> (Figures, Figures) {
    use std::io::{Read, Write};
    let text = text("spec_md", 98, 0);
    let started = Instant::now();
    let work = (0..count)
        .map(|_| {
            let at = Instant::now();
            for _ in 0..40 {
                std::hint::black_box(content_hash(std::hint::black_box(&text)));
            }
            at.elapsed()
        })
        .collect();
    let work = Figures::of(work, started.elapsed());
    let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8];
        while theirs.read_exact(&mut byte).is_ok() && theirs.write_all(&byte).is_ok() {}
    });
    let mut byte = [0u8];
    let started = Instant::now();
    let trips = (0..count)
        .map(|_| {
            let at = Instant::now();
            ours.write_all(&byte).unwrap();
            ours.read_exact(&mut byte).unwrap();
            at.elapsed()
        })
        .collect();
    let trips = Figures::of(trips, started.elapsed());
    drop(ours);
    echo.join().unwrap();
    (work, trips)
}

/// Prints the rows of [`machine_floors`] (`IDSE_BENCH_OPS=machine` asks for them alone).
fn print_machine_floors(count: usize, when: &str) {
    if wanted("machine") {
        let (work, trips) = machine_floors(count);
        work.print("machine", &format!("fixed CPU work, {when}"), 1);
        trips.print("machine", &format!("wake-up round trip, {when}"), 1);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale: f64 = std::env::var("IDSE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: usize| ((x as f64 * scale) as usize).max(20);
    let dir = tempfile::tempdir().unwrap();
    // Label, the gateway's arguments, and the authority to trust when it serves HTTPS.
    let mut stores: Vec<(String, Vec<String>, Option<String>)> = vec![
        (
            "sqlite".into(),
            vec![
                "--database".into(),
                dir.path().join("normal.sqlite3").display().to_string(),
            ],
            None,
        ),
        (
            "sqlite (full sync)".into(),
            vec![
                "--database".into(),
                dir.path().join("full.sqlite3").display().to_string(),
                "--sqlite-full-sync".into(),
            ],
            None,
        ),
    ];
    if std::env::var_os("IDSE_BENCH_HTTPS").is_some() {
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        let files = idse_gateway::testing::certificate_files(&certs);
        stores.push((
            "sqlite (https)".into(),
            vec![
                "--database".into(),
                dir.path().join("https.sqlite3").display().to_string(),
                "--tls-cert".into(),
                files.cert.display().to_string(),
                "--tls-key".into(),
                files.key.display().to_string(),
            ],
            Some(files.authority_pem),
        ));
    }
    let mut floor_url = None;
    let mut socket_url = None;
    if std::env::var_os("IDSE_TEST_POSTGRES_URL").is_none() {
        eprintln!("IDSE_TEST_POSTGRES_URL is not set: Postgres skipped");
    } else if let Some(url) = idse_store::testing::postgres_database().await {
        // Postgres on this machine: over loopback without TLS, as every run before the
        // gateway could speak TLS (stop 20), and as README advises for a colocated database.
        // IDSE_BENCH_PG_TLS=1 keeps the default (`prefer`) to measure what TLS costs.
        let url = if std::env::var_os("IDSE_BENCH_PG_TLS").is_some() || url.contains("sslmode") {
            url
        } else {
            let join = if url.contains('?') { '&' } else { '?' };
            format!("{url}{join}sslmode=disable")
        };
        let tls = !url.contains("sslmode=disable");
        floor_url = Some(url.clone());
        stores.push((
            if tls { "postgres (tls)" } else { "postgres" }.into(),
            vec!["--database".into(), url],
            None,
        ));
        // The same server over its Unix socket, as a gateway on the database's machine would
        // reach it (`IDSE_TEST_POSTGRES_SOCKET_URL`), in a database of its own.
        if std::env::var_os("IDSE_TEST_POSTGRES_SOCKET_URL").is_some() {
            if let Some(url) = idse_store::testing::postgres_database().await {
                socket_url = idse_store::testing::over_socket(&url);
                if let Some(url) = &socket_url {
                    stores.push((
                        "postgres (unix socket)".into(),
                        vec!["--database".into(), url.clone()],
                        None,
                    ));
                }
            }
        }
    }
    // IDSE_BENCH_STORES=postgres (or sqlite) limits the run to stores whose label starts so.
    if let Ok(only) = std::env::var("IDSE_BENCH_STORES") {
        stores.retain(|(label, _, _)| only.split(',').any(|o| label.starts_with(o.trim())));
    }
    println!(
        "7 stages x 10 KiB of {}; latency in ms; {} cores",
        if repeated_payload() {
            "one repeated line"
        } else {
            "markdown prose"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| store | operation | clients | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|---|---|");
    print_machine_floors(n(2000), "start");
    let floor_too = floor_url.is_some()
        && stores
            .iter()
            .any(|(label, _, _)| label.starts_with("postgres"))
        && wanted("commit floor");
    for (label, args, trust) in stores {
        let (_child, url) = start(&args).await;
        for (op, name) in [
            (Op::Floor, "no route (HTTP floor)"),
            (Op::Health, "health (one store round trip)"),
            (Op::PushOneChanged, "push (1 of 7 changed)"),
            (Op::PushAllChanged, "push (7 of 7 changed)"),
            (
                Op::PushOneSent,
                "push, 1 stage sent (as idse sends an edit)",
            ),
            (Op::Pull, "pull"),
            (Op::PullCompressed, "pull, compressed (zstd)"),
        ] {
            if !wanted(name) {
                continue;
            }
            let counts = if matches!(op, Op::Floor | Op::Health) {
                // One client only: asked for other counts alone, these rows are left out.
                if client_counts(&[1]).contains(&1) {
                    vec![1]
                } else {
                    Vec::new()
                }
            } else {
                client_counts(&[1, 16])
            };
            for clients in counts {
                // 4,000 requests in all for several clients (250 each for sixteen).
                let per_client = if clients == 1 {
                    n(2000)
                } else {
                    (n(4000) / clients).max(20)
                };
                let run = format!("{}-{:?}-{clients}", label.replace(' ', ""), op);
                measure(&url, trust.as_deref(), op, clients, per_client, &run)
                    .await
                    .print(&label, name, clients);
            }
        }
    }
    if let Some(url) = socket_url {
        idse_store::testing::drop_postgres_database(&url).await;
    }
    if let Some(url) = floor_url {
        if floor_too {
            commit_floor(&url, n(2000)).await.print(
                "postgres",
                "commit floor (one 10 KiB insert, no gateway)",
                1,
            );
        }
        // Left in place, its tables would be vacuumed during the next run (a second run at once,
        // as in alternated comparisons), taking CPU from it.
        idse_store::testing::drop_postgres_database(&url).await;
    }
    print_machine_floors(n(2000), "end");
}
