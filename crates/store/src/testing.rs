//! Fixtures: a fresh store of either kind. Postgres needs `IDSE_TEST_POSTGRES_URL` (an admin URL);
//! each fixture gets a database of its own. Under CI the variable is required, so the Postgres
//! half of the contract can never be skipped silently there.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{OpenOptions, PostgresStore, PushInput, SqliteStore, Store};

/// A store and what keeps it alive.
#[derive(Debug)]
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The URL the store was opened with (a file path for SQLite).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Which backend a fixture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.sqlite3").display().to_string();
    let store = SqliteStore::open(&path, &OpenOptions::default())
        .await
        .expect("open sqlite");
    TestStore {
        store: Arc::new(store),
        url: path,
        _dir: Some(dir),
    }
}

/// The admin URL, or `None` (with a note on stderr) outside CI when none is configured.
pub fn postgres_admin_url() -> Option<String> {
    configured("IDSE_TEST_POSTGRES_URL", "the Postgres half is skipped")
}

/// The same database as `url` (from [`postgres_database`]) reached over the test server's Unix
/// socket (`IDSE_TEST_POSTGRES_SOCKET_URL`, an admin URL: `bash scripts/postgres.sh --socket`),
/// or `None` (with a note on stderr) outside CI when none is configured.
pub fn over_socket(url: &str) -> Option<String> {
    let socket = configured(
        "IDSE_TEST_POSTGRES_SOCKET_URL",
        "the Unix socket is not tried",
    )?;
    Some(with_database(&socket, database_name(url)?))
}

/// A socket URL from [`over_socket`] (`…@%2Fvar%2Frun%2Fpostgresql:5432/db`) as libpq also
/// spells it: the socket's folder as a `host` parameter (`…@localhost:5432/db?host=/var/run/postgresql`).
pub fn with_host_parameter(socket_url: &str) -> String {
    let UrlParts {
        scheme,
        user,
        host,
        port,
        rest,
        ..
    } = UrlParts::of(socket_url);
    let join = if rest.contains('?') { '&' } else { '?' };
    format!(
        "{scheme}://{user}@localhost:{port}{rest}{join}host={}",
        host.replace("%2F", "/")
    )
}

/// The URL the environment variable `var` holds. Under CI it must be set (`scripts/test.sh`
/// sets it), so no test is skipped silently there; elsewhere `None`, and a note that says what
/// is `skipped`.
fn configured(var: &str, skipped: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set {var} (scripts/test.sh does)"
            );
            eprintln!("{var} is not set: {skipped}");
            None
        }
    }
}

/// Prefix of every database the tests and benchmarks create.
const TEST_DATABASE: &str = "idse_t_";

/// How old a test database must be before a later run drops it. No test uses one this long (a
/// whole gateway test run takes about a minute), and one still connected refuses anyway. Kept
/// short because autovacuum visits every database in turn: with a few hundred left from the
/// last runs, a worker started several times a second, noise on a 2-core benchmark.
const STALE_AFTER_SECS: u64 = 10 * 60;

/// A new, empty database on the test server; returns its URL. Its name carries its creation
/// time, and test databases older than ten minutes are dropped first: a database is still in use
/// while its store or gateway runs, so none is dropped when its test ends, and without this a
/// developer's server kept every run's databases (32 GB after a few hundred runs).
pub async fn postgres_database() -> Option<String> {
    let admin = postgres_admin_url()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("{TEST_DATABASE}{now}_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect admin");
    drop_stale_databases(&pool, now).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    Some(with_database(&admin, &name))
}

/// Whether test database `name` is older than `STALE_AFTER_SECS` at `now`; names without a
/// time come from builds before the time was added, so they are stale too.
fn is_stale(name: &str, now: u64) -> bool {
    let Some(rest) = name.strip_prefix(TEST_DATABASE) else {
        return false;
    };
    match rest
        .split_once('_')
        .and_then(|(secs, _)| secs.parse::<u64>().ok())
    {
        Some(created) => now.saturating_sub(created) > STALE_AFTER_SECS,
        None => true,
    }
}

/// Drops stale test databases; one still in use refuses, and is left for a later run.
async fn drop_stale_databases(pool: &sqlx::PgPool, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(TEST_DATABASE)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    for name in names.iter().filter(|n| is_stale(n, now)) {
        // Names come from the server's own catalogue and match our pattern; quoted anyway.
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .execute(pool)
            .await;
    }
}

/// Drops the test database that `url` (from [`postgres_database`]) names, closing its
/// connections, so a benchmark leaves no tables for autovacuum to visit during the next run;
/// anything else is left alone.
pub async fn drop_postgres_database(url: &str) {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let Some(name) = database_name(url).filter(|n| n.starts_with(TEST_DATABASE)) else {
        return;
    };
    let Ok(pool) = sqlx::PgPool::connect(&admin).await else {
        return;
    };
    // Names come from `postgres_database` and match our pattern; quoted anyway.
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&pool)
        .await;
    pool.close().await;
}

/// The database a Postgres URL names: its path's last part, without the URL's parameters.
fn database_name(url: &str) -> Option<&str> {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    base.rsplit('/').next()
}

/// The URL `admin` with its database replaced by `name`.
pub fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

pub async fn postgres() -> Option<TestStore> {
    let url = postgres_database().await?;
    let store = PostgresStore::connect(&url, &OpenOptions::default())
        .await
        .expect("open postgres");
    Some(TestStore {
        store: Arc::new(store),
        url,
        _dir: None,
    })
}

pub async fn open(backend: Backend) -> Option<TestStore> {
    match backend {
        Backend::Sqlite => Some(sqlite().await),
        Backend::Postgres => postgres().await,
    }
}

/// The test URL `url` logged in as `user` with `password` (a role a test made).
pub fn with_login(url: &str, user: &str, password: &str) -> String {
    UrlParts {
        user,
        password,
        ..UrlParts::of(url)
    }
    .to_url()
}

/// How a [`Pooler`] hands out the test server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// Each client connection keeps one server connection (Supabase's pooler on port 5432).
    Session,
    /// Each transaction gets any server connection, the most recently freed first
    /// (PgBouncer's default, Supabase's PgBouncer on port 6543).
    Transaction,
    /// Each transaction gets any of `servers` server connections kept open, in turn (as
    /// Supavisor on port 6543 takes them). PgBouncer opens them in its upkeep, once a first
    /// client has come.
    TransactionInTurn { servers: u32 },
}

/// A PgBouncer (Debian's `pgbouncer`) in front of the test server, as Supabase puts a pooler in
/// front of a project's database; stopped when dropped.
#[derive(Debug)]
pub struct Pooler {
    child: std::process::Child,
    url: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Pooler {
    /// A pooler in `mode` for `database` (a URL of [`postgres_database`]); `None` outside CI
    /// when PgBouncer is not installed (`scripts/postgres.sh` installs it).
    pub fn start(database: &str, mode: PoolMode) -> Option<Self> {
        Self::admitting(database, mode, 100)
    }

    /// [`Pooler::start`], refusing clients past the first `clients` at once, as Supabase's
    /// session pooler refuses past its pool size.
    pub fn admitting(database: &str, mode: PoolMode, clients: u32) -> Option<Self> {
        let Some(binary) = pgbouncer_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install pgbouncer (scripts/postgres.sh does)"
            );
            eprintln!("pgbouncer is not installed: pooler test skipped");
            return None;
        };
        let parts = UrlParts::of(database);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let (pool_mode, in_turn, kept) = match mode {
            PoolMode::Session => ("session", 0, 0),
            PoolMode::Transaction => ("transaction", 0, 0),
            PoolMode::TransactionInTurn { servers } => ("transaction", 1, servers),
        };
        let size = kept.max(4);
        let config = format!(
            "[databases]\n* = host={} port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = plain\nauth_file = {}\n\
             pool_mode = {pool_mode}\nserver_round_robin = {in_turn}\ndefault_pool_size = {size}\n\
             min_pool_size = {kept}\nmax_client_conn = {clients}\n\
             ignore_startup_parameters = extra_float_digits,options\n",
            parts.host,
            parts.port,
            dir.path().join("users.txt").display()
        );
        let users = format!("\"{}\" \"{}\"\n", parts.user, parts.password);
        std::fs::write(dir.path().join("pgbouncer.ini"), config).expect("write the config");
        std::fs::write(dir.path().join("users.txt"), users).expect("write the users");
        let mut command = std::process::Command::new(binary);
        // PgBouncer will not run as root; it reads its files before it changes user.
        if running_as_root() {
            command.args(["-u", "postgres"]);
        }
        let mut child = command
            .arg(dir.path().join("pgbouncer.ini"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let began = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("pgbouncer ended at start: {status}");
            }
            assert!(
                began.elapsed() < std::time::Duration::from_secs(10),
                "pgbouncer did not listen on port {port} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Self {
            child,
            url: UrlParts {
                host: "127.0.0.1",
                port,
                ..parts
            }
            .to_url(),
            port,
            _dir: dir,
        })
    }

    /// The URL of the database through the pooler.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pgbouncer_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The pieces of a test URL `scheme://user:password@host:port/database?query`.
#[derive(Debug)]
struct UrlParts<'a> {
    scheme: &'a str,
    user: &'a str,
    password: &'a str,
    host: &'a str,
    port: u16,
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Self {
        let (scheme, after) = url.split_once("://").expect("a URL with a scheme");
        let (login, address) = after.rsplit_once('@').expect("a URL with a user");
        let (user, password) = login.split_once(':').unwrap_or((login, ""));
        let at = address.find('/').unwrap_or(address.len());
        let (host_port, rest) = address.split_at(at);
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        Self {
            scheme,
            user,
            password,
            host,
            port: port.parse().expect("a port number"),
            rest,
        }
    }

    fn to_url(&self) -> String {
        let Self {
            scheme,
            user,
            password,
            host,
            port,
            rest,
        } = self;
        format!("{scheme}://{user}:{password}@{host}:{port}{rest}")
    }
}

/// Seeds the empty database `url` with a team's `projects` table from before IDSE Desk, in the
/// seed's schema: a row `legacy` with texts in its columns (`# Old intent`, `# Old spec`; its
/// state names session `session-1`; `constraints` is `keep me`), and two rows named `dup`, the
/// second a day younger. Answers the legacy row's id.
pub async fn seed_legacy_table(url: &str) -> uuid::Uuid {
    let raw = sqlx::PgPool::connect(url).await.expect("connect");
    sqlx::query(
        "CREATE TABLE projects (
          id UUID PRIMARY KEY DEFAULT gen_random_uuid(), name TEXT NOT NULL, stack TEXT,
          constraints TEXT, intent_md TEXT, context_md TEXT, spec_md TEXT, plan_md TEXT,
          tasks_md TEXT, feedback_md TEXT, state_json JSONB, created_at TIMESTAMPTZ DEFAULT NOW(),
          updated_at TIMESTAMPTZ DEFAULT NOW())",
    )
    .execute(&raw)
    .await
    .expect("create the seed's table");
    let legacy = sqlx::query_scalar(
        "INSERT INTO projects (name, stack, constraints, intent_md, spec_md, state_json) \
         VALUES ('legacy', 'python', 'keep me', '# Old intent', '# Old spec', \
         '{\"stages\": {\"intent\": \"complete\"}, \"session_id\": \"session-1\"}') RETURNING id",
    )
    .fetch_one(&raw)
    .await
    .expect("insert the legacy row");
    sqlx::query(
        "INSERT INTO projects (name, created_at) \
         VALUES ('dup', now() - interval '1 day'), ('dup', now())",
    )
    .execute(&raw)
    .await
    .expect("insert the duplicates");
    raw.close().await;
    legacy
}

/// `input` pushed on `base` (artifact key → hash), as a client that pulled `base` pushes.
pub fn based(mut input: PushInput, base: &BTreeMap<String, String>) -> PushInput {
    input.base = Some(base.clone());
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_databases_are_stale_after_ten_minutes_or_without_a_time() {
        let now = 1_800_000_000;
        assert!(!is_stale("idse_t_1800000000_ab12", now));
        assert!(!is_stale(
            &format!("idse_t_{}_ab12", now - STALE_AFTER_SECS),
            now
        ));
        assert!(is_stale(
            &format!("idse_t_{}_ab12", now - STALE_AFTER_SECS - 1),
            now
        ));
        assert!(is_stale("idse_t_0f3c9a2e5b7d4c1a8e6f2b9d0c3a5e7f", now));
        // Not ours, whatever its name looks like.
        assert!(!is_stale("postgres", now));
        assert!(!is_stale("team_1_db", now));
    }

    #[tokio::test]
    async fn a_new_test_database_drops_stale_ones_but_not_fresh_ones() {
        let Some(admin) = postgres_admin_url() else {
            return;
        };
        let pool = sqlx::PgPool::connect(&admin).await.expect("connect admin");
        let old = format!("{TEST_DATABASE}1_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {old}"))
            .execute(&pool)
            .await
            .expect("create an old test database");
        let first = postgres_database().await.expect("a database");
        let second = postgres_database().await.expect("a database");
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database")
            .fetch_all(&pool)
            .await
            .expect("list databases");
        assert!(
            !names.contains(&old),
            "the stale database {old} is still there"
        );
        for url in [first, second] {
            let name = database_name(&url).unwrap_or_default().to_owned();
            assert!(
                names.contains(&name),
                "the fresh database {name} was dropped"
            );
        }
    }

    #[tokio::test]
    async fn a_benchmark_drops_its_own_database_while_connected_and_nothing_else() {
        let Some(admin) = postgres_admin_url() else {
            return;
        };
        let pool = sqlx::PgPool::connect(&admin).await.expect("connect admin");
        let names = || async {
            sqlx::query_scalar::<_, String>("SELECT datname FROM pg_database")
                .fetch_all(&pool)
                .await
                .expect("list databases")
        };
        let url = postgres_database().await.expect("a database");
        let name = database_name(&url).unwrap_or_default().to_owned();
        // With parameters, as the benchmark's URL has.
        let join = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{join}application_name=idse-bench");
        // Still in use, as a benchmark's gateway may be when it ends.
        let held = sqlx::PgPool::connect(&url)
            .await
            .expect("connect to the test database");
        sqlx::query("SELECT 1")
            .execute(&held)
            .await
            .expect("use it");
        // Not a test database: left alone, whatever else the URL says.
        drop_postgres_database(&with_database(&admin, "postgres")).await;
        assert!(names().await.contains(&"postgres".to_owned()));
        drop_postgres_database(&url).await;
        assert!(
            !names().await.contains(&name),
            "the test database {name} is still there"
        );
    }
}
