use idse_protocol::StageConflict;
use uuid::Uuid;

/// The driver's error (sqlx, or rusqlite for the SQLite writer), for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a store; callers match on it to pick an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no project with id {0}")]
    ProjectNotFound(Uuid),
    #[error("project {project} has no session `{session}`")]
    SessionNotFound { project: Uuid, session: String },
    #[error("project {project} never held a text with hash {sha256}")]
    TextNotFound { project: Uuid, sha256: String },
    #[error("a token named `{0}` exists already")]
    TokenExists(String),
    #[error("{} stage(s) changed remotely since the pushed base", .0.len())]
    Conflict(Vec<StageConflict>),
    #[error("the database cannot be reached")]
    Unavailable(#[source] BoxError),
    /// The database's disk (or quota) is full: reads go on, writes fail until there is room.
    #[error("the database has no room left to write")]
    Full(#[source] BoxError),
    /// A row the write needs stayed locked by another database session past the lock timeout.
    #[error("a row the write needs is locked by another database session")]
    Busy(#[source] BoxError),
    #[error("the database failed")]
    Backend(#[source] BoxError),
    #[error("the database holds data this gateway cannot read: {0}")]
    Corrupt(String),
    #[error("the folder {} for the database file does not exist; create it, or choose another database file", .0.display())]
    NoFolder(std::path::PathBuf),
    /// Postgres reached through a pooler that gives each transaction any of its server
    /// connections; the store needs connections of its own. Holds the pooler's `host:port`.
    #[error("the database at {0} is reached through a connection pooler in transaction mode (such as Supabase's on port 6543), which does not keep a connection's prepared statements and settings from one transaction to the next; use the pooler's session mode (on Supabase, the same pooler address on port 5432) or a direct connection")]
    TransactionPooler(String),
    /// Fewer Postgres connections allowed than the store needs (the number it needs).
    #[error("the gateway needs at least {0} connections to Postgres (two write pushes in batches, the others serve reads and new projects); raise --max-connections")]
    TooFewConnections(u32),
    #[error("the database schema could not be brought up to date")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A copy found something else where a project or token would go (see [`crate::copy`]).
    #[error(transparent)]
    Clash(#[from] Clash),
}

/// What a copy found in the destination in place of a project or token of the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Clash {
    #[error("the destination holds project `{name}` ({id}) at revision {there}, the source at revision {from}: it changed on one side after an earlier copy, so it was not copied again; keep the destination's, or copy into a new, empty database")]
    ProjectMoved {
        name: String,
        id: Uuid,
        there: i64,
        from: i64,
    },
    #[error("the destination holds another project named `{name}` ({there}), so `{name}` ({id}) was not copied; copy it under another name (`--rename {name}=NEW`), or rename the destination's (its `name` in its database) and copy again")]
    ProjectName { name: String, id: Uuid, there: Uuid },
    #[error("the destination has a token named `{0}` with another secret, so the source's was not copied; create a token under another name on the destination if it is still needed")]
    Token(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // Postgres: disk_full (53100); SQLite: SQLITE_FULL (13).
        let full = matches!(&e, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c == "53100" || c == "13"));
        if full {
            return StoreError::Full(Box::new(e));
        }
        // Postgres: lock_not_available, as `lock_timeout` ends a wait.
        if matches!(&e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "55P03")) {
            return StoreError::Busy(Box::new(e));
        }
        let down = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // Postgres: connection exceptions (08), operator intervention such as a shutdown
            // (57P), insufficient resources (53).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
            }),
            _ => false,
        };
        if down {
            StoreError::Unavailable(Box::new(e))
        } else {
            StoreError::Backend(Box::new(e))
        }
    }
}
