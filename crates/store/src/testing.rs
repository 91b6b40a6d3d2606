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
    match std::env::var("IDSE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set IDSE_TEST_POSTGRES_URL (scripts/test.sh does)"
            );
            eprintln!("IDSE_TEST_POSTGRES_URL is not set: Postgres half skipped");
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
            let name = url.rsplit('/').next().unwrap_or_default().to_owned();
            assert!(
                names.contains(&name),
                "the fresh database {name} was dropped"
            );
        }
    }
}
