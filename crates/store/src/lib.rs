//! The Agency copy of every IDSE project: one [`Store`] trait with a SQLite and a Postgres
//! implementation, per-backend forward-only migrations, and the push rules (conflict check,
//! history) that both implementations share.

mod copy;
mod error;
mod hashes;
mod model;
mod postgres;
mod rules;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use copy::{copy, CopyError, CopyReport, CopyStep, RenameError, Renames};
pub use error::{BoxError, Clash, StoreError};
pub use model::*;
pub use postgres::PostgresStore;
pub use rules::stage_states;
pub use sqlite::{Backup, BackupError, SqliteStore};

/// Everything the gateway needs from a database. Implementations keep the check and the write of
/// a push in one transaction, so two pushes with the same base can never both win.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Round-trips to the database and returns its server version.
    async fn health(&self) -> Result<String, StoreError>;

    /// Applies a push, or refuses it whole with [`StoreError::Conflict`].
    async fn push(&self, push: PushInput, now: DateTime<Utc>) -> Result<PushOutcome, StoreError>;

    /// The texts of one session (the latest pushed one when `session` is `None`).
    async fn pull(&self, project: Uuid, session: Option<&str>) -> Result<Snapshot, StoreError>;

    async fn project(&self, project: Uuid) -> Result<ProjectRecord, StoreError>;

    /// Every project, most recently updated first.
    async fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError>;

    /// Accepted changes, newest first, a page at a time.
    async fn history(
        &self,
        project: Uuid,
        filter: &HistoryFilter,
    ) -> Result<HistoryPage, StoreError>;

    /// A text the project ever held, found by its SHA-256.
    async fn text_by_hash(&self, project: Uuid, sha256: &str) -> Result<String, StoreError>;

    /// Records a token by the SHA-256 of its secret.
    async fn create_token(
        &self,
        name: &str,
        sha256: &str,
        read_only: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every token, revoked ones included, by name.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; `false` when no live token has that name.
    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The live token whose secret hashes to `sha256`.
    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Everything held of one project, read at one moment, to copy it to another store.
    async fn export_project(&self, project: Uuid) -> Result<ProjectExport, StoreError>;

    /// Writes a project another store exported, under its id, whole or not at all. Answers
    /// [`Imported::AlreadyThere`] when an earlier copy wrote it as it is, and refuses with
    /// [`StoreError::Clash`] when the id or name holds something else here.
    async fn import_project(&self, export: ProjectExport) -> Result<Imported, StoreError>;

    /// Every token, revoked ones included, with its secret's hash.
    async fn export_tokens(&self) -> Result<Vec<TokenExport>, StoreError>;

    /// Writes a token another store exported; a name held with another secret is a
    /// [`StoreError::Clash`].
    async fn import_token(&self, token: TokenExport) -> Result<Imported, StoreError>;
}

/// Opens the store a URL names: `sqlite:…` or a plain path for SQLite, `postgres://…` or
/// `postgresql://…` for Postgres. Runs the migrations.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres(url) {
        Ok(Box::new(PostgresStore::connect(url, options).await?))
    } else {
        Ok(Box::new(SqliteStore::open(url, options).await?))
    }
}

/// Whether `url` names a Postgres database; anything else is a SQLite file.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// How many async runtime threads should serve the store `url` names on a machine with `cores`
/// CPUs; `None` for one per CPU (tokio's default). The SQLite store writes, and checkpoints,
/// on threads of its own, and its writer does best with a CPU to itself: on the 2-core test VM
/// one runtime thread instead of two took one-client pushes from p50 0.38–0.42 / p99
/// 0.63–1.10 ms to 0.34–0.40 / 0.54–0.73 ms, and 16 clients from 5,157–6,328 to 5,414–7,209
/// pushes/s; the price is 16-client pulls, whose JSON the runtime writes: about 10–20% fewer
/// per second (`docs/benchmarks.md`, stop 16).
pub fn runtime_threads(url: &str, cores: usize) -> Option<usize> {
    (!is_postgres(url)).then(|| cores.saturating_sub(1).max(1))
}

/// Tuning knobs shared by both stores.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Connections to Postgres, or SQLite readers.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: std::time::Duration,
    /// Postgres only: how long a write waits for a row another database session has locked
    /// before it gives up with [`StoreError::Busy`], so one forgotten transaction (say in a
    /// `psql` left open) cannot hold every push behind it.
    pub lock_timeout: std::time::Duration,
    /// SQLite only: fsync every commit (`FULL`) rather than at checkpoints (`NORMAL`, which still
    /// survives a killed process; only a power cut can lose the last commits).
    pub sqlite_full_sync: bool,
    /// Postgres only: open all `max_connections` at start and keep them for good, instead of
    /// opening them as requests need them and closing them when idle or old. On a server that
    /// other clients may fill up, the gateway then never needs a new connection to serve a
    /// burst (a refused one costs a request 3 s and a 503); on a shared pooler it takes slots
    /// other clients could use.
    pub hold_connections: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(3),
            lock_timeout: std::time::Duration::from_secs(5),
            sqlite_full_sync: false,
            hold_connections: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_leaves_its_writer_a_cpu_and_postgres_takes_them_all() {
        assert_eq!(runtime_threads("/data/gateway.sqlite3", 2), Some(1));
        assert_eq!(runtime_threads("sqlite:agency.db", 8), Some(7));
        assert_eq!(runtime_threads("agency.db", 1), Some(1));
        assert_eq!(runtime_threads("postgres://u@h/db", 2), None);
        assert_eq!(runtime_threads("postgresql://u@h/db", 8), None);
    }
}
