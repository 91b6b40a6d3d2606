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

/// A new, empty database on the test server; returns its URL.
pub async fn postgres_database() -> Option<String> {
    let admin = postgres_admin_url()?;
    let name = format!("idse_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect admin");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    Some(with_database(&admin, &name))
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
