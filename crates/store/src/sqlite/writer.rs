//! The SQLite store's one writing connection, on a thread of its own. A write is one hand-off to
//! that thread and one back: through sqlx, every statement was a hop to its worker thread and
//! back, and thread wake-ups were most of a push's time on a 2-core VM (store level, push
//! p50 0.31 ms against 0.15–0.22 ms measured with this design). A job also runs to its end
//! on the thread even if its caller goes away, so no transaction is ever left half done.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::StoreError;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Sends jobs to the writer thread; the thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the database `file` (which must exist, migrated) on a new thread. Past `backstop`
    /// frames of WAL the writer checkpoints by itself, between two writes: should the
    /// background checkpoint, at the lowest CPU priority, get no CPU on a saturated machine,
    /// the WAL still starts over.
    pub(super) async fn start(
        file: &Path,
        full_sync: bool,
        backstop: i64,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, opening) = oneshot::channel();
        let file: PathBuf = file.to_owned();
        std::thread::Builder::new()
            .name("idse-sqlite-writer".to_owned())
            .spawn(move || {
                let mut conn = match connect(&file, full_sync, backstop) {
                    Ok(conn) => {
                        let _ = opened.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    // A job that panics drops its reply, so its caller gets an error.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                    // No job may leave a transaction open (a panic, or a rollback that failed
                    // as its transaction was dropped): every later write would fail to begin.
                    if !conn.is_autocommit() {
                        if let Err(e) = conn.execute_batch("ROLLBACK") {
                            tracing::error!(error = %e, "the writer could not roll back; reopening");
                            match connect(&file, full_sync, backstop) {
                                Ok(fresh) => conn = fresh,
                                Err(e) => tracing::error!(error = %e, "the writer could not reopen"),
                            }
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        opening.await.map_err(|_| writer_gone())??;
        Ok(Self { jobs })
    }

    /// Runs `job` on the writer connection and answers what it returns.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(job)?.await.map_err(|_| job_panicked())?
    }

    /// `run`, for a thread outside the async runtime.
    pub(super) fn run_blocking<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(job)?
            .blocking_recv()
            .map_err(|_| job_panicked())?
    }

    fn send<T, F>(&self, job: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(job(conn));
            }))
            .map_err(|_| writer_gone())?;
        Ok(answer)
    }
}

/// The job dropped its reply without sending: it panicked (see `start`).
fn job_panicked() -> StoreError {
    StoreError::Backend("a write failed inside the gateway".into())
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".into())
}

/// Opens `file` with the settings of the store's sqlx connections (`super::pragmas`);
/// `autocheckpoint` is SQLite's `wal_autocheckpoint`, in frames (0: never).
pub(super) fn connect(
    file: &Path,
    full_sync: bool,
    autocheckpoint: i64,
) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    for (name, value) in super::pragmas(full_sync) {
        conn.pragma_update(None, name, value)?;
    }
    conn.pragma_update(None, "wal_autocheckpoint", autocheckpoint)?;
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        if e.sqlite_error_code() == Some(C::DiskFull) {
            return StoreError::Full(Box::new(e));
        }
        let down = matches!(
            e.sqlite_error_code(),
            Some(
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::CannotOpen
                    | C::SystemIoFailure
                    | C::ReadOnly
                    | C::OutOfMemory
            )
        );
        if down {
            StoreError::Unavailable(Box::new(e))
        } else {
            StoreError::Backend(Box::new(e))
        }
    }
}

/// A database file in WAL mode made by `schema`, in a folder deleted with the answered guard.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) fn test_database(schema: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.sqlite3");
    Connection::open(&file)
        .unwrap()
        .execute_batch(&format!("PRAGMA journal_mode = WAL; {schema}"))
        .unwrap();
    (dir, file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn writer() -> (tempfile::TempDir, Writer) {
        let (dir, file) = test_database("CREATE TABLE t (n INTEGER NOT NULL)");
        let writer = Writer::start(&file, false, 1000).await.unwrap();
        (dir, writer)
    }

    #[tokio::test]
    async fn a_job_that_panics_leaves_no_transaction_open() {
        let (_dir, writer) = writer().await;
        let panicked = writer
            .run(|conn| -> Result<(), StoreError> {
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")?;
                panic!("a bug in a job");
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Backend(_))));
        // The thread lives on, and the panicked job's insert was rolled back.
        let (open, rows) = writer
            .run(|conn| {
                let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                Ok((!conn.is_autocommit(), rows))
            })
            .await
            .unwrap();
        assert!(!open);
        assert_eq!(rows, 0);
    }

    #[test]
    fn the_writer_has_the_settings_of_every_connection() {
        let (_dir, file) = test_database("");
        for (full_sync, synchronous) in [(false, 1), (true, 2)] {
            let conn = connect(&file, full_sync, 64).unwrap();
            let get = |pragma: &str| -> String {
                conn.query_row(&format!("PRAGMA {pragma}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
            };
            assert_eq!(get("journal_mode"), "Text(\"wal\")");
            assert_eq!(get("synchronous"), format!("Integer({synchronous})"));
            assert_eq!(get("foreign_keys"), "Integer(1)");
            let limit = super::super::WAL_LIMIT_BYTES;
            assert_eq!(get("journal_size_limit"), format!("Integer({limit})"));
            assert_eq!(get("wal_autocheckpoint"), "Integer(64)");
        }
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_not_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sqlite3");
        assert!(Writer::start(&missing, false, 1000).await.is_err());
        assert!(!missing.exists());
    }

    #[tokio::test]
    async fn errors_are_told_apart() {
        let (_dir, writer) = writer().await;
        let bad = writer
            .run(|conn| Ok(conn.execute("INSERT INTO t VALUES (NULL)", [])?))
            .await;
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        // A database with no room left (here: at the page count it may reach) is full, not
        // down, and the writer goes on once there is room.
        let full = writer
            .run(|conn| {
                conn.execute_batch("PRAGMA max_page_count = 8")?;
                for _ in 0..64 {
                    conn.execute("INSERT INTO t VALUES (?1)", [i64::MAX])?;
                    conn.execute_batch("INSERT INTO t SELECT n FROM t")?;
                }
                Ok(())
            })
            .await;
        assert!(matches!(full, Err(StoreError::Full(_))), "{full:?}");
        let rows = writer
            .run(|conn| {
                conn.execute_batch("PRAGMA max_page_count = 1000000")?;
                conn.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            })
            .await
            .unwrap();
        assert!(rows > 1);
    }

    #[tokio::test]
    async fn past_the_backstop_the_writer_starts_the_wal_over_by_itself() {
        let (_dir, file) = test_database("CREATE TABLE t (b BLOB NOT NULL)");
        // No background checkpoint here: only the writer's own can start the WAL over.
        let writer = Writer::start(&file, false, 16).await.unwrap();
        let insert = |writer: Writer| async move {
            writer
                .run(|conn| Ok(conn.execute("INSERT INTO t VALUES (?1)", [vec![7u8; 8192]])?))
                .await
                .unwrap()
        };
        insert(writer.clone()).await;
        // The WAL header's checkpoint sequence grows by one each time the WAL starts over.
        let sequence = || {
            let header = std::fs::read(super::super::wal_file(&file)).unwrap();
            u32::from_be_bytes([header[12], header[13], header[14], header[15]])
        };
        let first = sequence();
        for _ in 0..20 {
            insert(writer.clone()).await;
        }
        assert!(sequence() > first, "the WAL never started over");
    }
}
