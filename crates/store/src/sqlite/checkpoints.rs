//! Copies the WAL into the database file in the background, on a thread of its own at the
//! lowest CPU priority, so that no push waits for a checkpoint.
//!
//! Why its own thread and priority: `perf sched` of a one-client benchmark on a 2-core VM
//! showed the writer thread ready to run but queued for 2–3.5 ms behind a checkpoint on one
//! CPU while the other CPU was idle; the scheduler does not move a thread it just woke. A
//! thread at `SCHED_IDLE` gives way to the writer as soon as the writer wakes.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use super::wal_file;
use super::writer::{self, Writer};
use crate::StoreError;

/// How often the background checkpoint runs.
pub(super) const EVERY: Duration = Duration::from_millis(500);

/// Frames a round may leave for the writer to copy: 512 KiB.
const FINISH_FRAMES: i64 = 128;

/// Runs until dropped (with the last clone of the store).
#[derive(Debug)]
pub(super) struct Checkpoints {
    _stop: [mpsc::Sender<()>; 2],
}

impl Checkpoints {
    /// Each round copies the WAL into the database on the checkpoint's own connection, which
    /// pushes do not wait for. The WAL starts over only at a push that begins with every frame
    /// copied; under steady pushes the background copy never catches up with the frames
    /// appended meanwhile, so the WAL would grow without end (measured: 100 MiB after 2,000
    /// back-to-back pushes). Past `restart_frames` the round therefore ends on the `writer`,
    /// between two pushes, where it copies what is left and the next push starts the WAL over.
    ///
    /// On a saturated machine the idle-priority thread gets no CPU, and the writer would end up
    /// copying the whole WAL itself (its backstop): 16 clients pushing all seven stages had p99
    /// 114–163 ms that way. A second thread, at normal priority, therefore runs the rounds
    /// whenever the WAL file has grown past four times its limit (SQLite cuts the file back to
    /// the limit each time the WAL starts over): p99 12–22 ms. At one client the idle thread
    /// keeps up and this one only looks at the file's size.
    pub(super) fn start(
        file: PathBuf,
        writer: Writer,
        restart_frames: i64,
        full_sync: bool,
    ) -> Result<Self, StoreError> {
        let round = Round {
            file,
            writer,
            restart_frames,
            full_sync,
        };
        let wal = wal_file(&round.file);
        let behind = u64::try_from(4 * super::WAL_LIMIT_BYTES).unwrap_or(u64::MAX);
        Ok(Self {
            _stop: [
                round
                    .clone()
                    .spawn("idse-sqlite-checkpoint", true, || true)?,
                round.spawn("idse-sqlite-catchup", false, move || larger(&wal, behind))?,
            ],
        })
    }
}

/// Whether `file` exists and holds more than `bytes`.
fn larger(file: &Path, bytes: u64) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.len() > bytes)
}

/// What a checkpoint thread needs.
#[derive(Debug, Clone)]
struct Round {
    file: PathBuf,
    writer: Writer,
    restart_frames: i64,
    full_sync: bool,
}

impl Round {
    /// A thread that checkpoints every `EVERY` while `due()`, until the answered sender drops.
    fn spawn(
        self,
        name: &str,
        idle: bool,
        due: impl Fn() -> bool + Send + 'static,
    ) -> Result<mpsc::Sender<()>, StoreError> {
        // No automatic checkpoint on this connection: it is the checkpoint.
        let conn = writer::connect(&self.file, self.full_sync, 0)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if idle {
                    lower_priority();
                }
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if !due() {
                        continue;
                    }
                    let round = checkpoint(&conn).and_then(|frames| {
                        if frames >= self.restart_frames {
                            finish_round(&conn, &self.writer, &self.file, frames)
                        } else {
                            Ok(frames)
                        }
                    });
                    if let Err(e) = round {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(stop)
    }
}

/// `SCHED_IDLE` on Linux (a waking thread of normal priority takes the CPU at once); the
/// lowest priority elsewhere. Only ever lowers, so it needs no privilege.
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let lowered = if cfg!(target_os = "linux") {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    } else {
        thread_priority::set_current_thread_priority(ThreadPriority::Min)
    };
    if let Err(e) = lowered {
        tracing::debug!(error = ?e, "the checkpoint thread keeps its priority");
    }
}

/// A passive checkpoint; answers how many frames the WAL holds.
pub(super) fn checkpoint(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))?)
}

/// Ends a round on the writer, which pushes wait for. The background copies again first while
/// pushes keep appending (each pass has less to copy, so less is appended during it) and syncs
/// the files, so the writer copies and syncs only the last few frames: measured under
/// back-to-back pushes, the writer's part went from 40–100 ms to about 20 ms, once per 64 MiB
/// of WAL.
fn finish_round(
    conn: &Connection,
    writer: &Writer,
    file: &Path,
    mut frames: i64,
) -> Result<i64, StoreError> {
    for _ in 0..8 {
        let now = checkpoint(conn)?;
        let appended = now - frames;
        frames = now;
        if appended <= FINISH_FRAMES {
            break;
        }
    }
    // The passes above leave the database file unsynced (SQLite syncs it only when a pass
    // copied the whole WAL, which under load none does), and the WAL holds what was appended
    // meanwhile. Syncing both here, off the writer, leaves the writer a few pages to sync
    // instead of tens of MiB.
    let synced = [file.to_owned(), wal_file(file)]
        .iter()
        .try_for_each(|f| std::fs::OpenOptions::new().write(true).open(f)?.sync_data());
    if let Err(e) = synced {
        tracing::warn!(error = %e, "syncing the database files failed");
    }
    writer.run_blocking(|conn| checkpoint(conn))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_catchup_acts_only_on_a_wal_past_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        assert!(!larger(&wal, 100), "no WAL yet");
        let file = std::fs::File::create(&wal).unwrap();
        file.set_len(100).unwrap();
        assert!(!larger(&wal, 100));
        file.set_len(101).unwrap();
        assert!(larger(&wal, 100));
    }

    #[tokio::test]
    async fn the_checkpoint_thread_runs_at_idle_priority() {
        let (_dir, file) = writer::test_database("CREATE TABLE t (n INTEGER)");
        let writer = Writer::start(&file, false, 1000).await.unwrap();
        let _checkpoints = Checkpoints::start(file, writer, 1000, false).unwrap();
        // The thread names itself and lowers its priority as it starts.
        let policy = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let tasks = std::fs::read_dir("/proc/self/task").unwrap();
            tasks.flatten().find_map(|task| {
                let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                if !comm.starts_with("idse-sqlite-che") {
                    return None;
                }
                // `policy` in /proc's sched file: 5 is SCHED_IDLE, 0 SCHED_OTHER.
                let sched = std::fs::read_to_string(task.path().join("sched")).ok()?;
                let line = sched.lines().find(|l| l.starts_with("policy"))?;
                let policy = line.rsplit(':').next()?.trim().to_owned();
                (policy != "0").then_some(policy)
            })
        });
        assert_eq!(policy.as_deref(), Some("5"));
    }
}
