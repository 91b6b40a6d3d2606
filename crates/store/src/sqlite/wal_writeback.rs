//! Writes the WAL to disk a little at a time while pushes append to it.
//!
//! With `synchronous = NORMAL` a commit does not sync the WAL; the background checkpoint does,
//! every half second, before it copies frames into the database. Under steady pushes that sync
//! had tens of MiB to write in one system call, which held a CPU for 3–5 ms (the kernel does
//! not preempt it at once), and the writer thread queued behind it: `perf sched` showed the
//! writer runnable but waiting 3 ms, and most of the slowest 1% of pushes fell in those
//! windows. Syncing what was appended every few milliseconds keeps each sync short and leaves
//! the checkpoint little to write. It only adds syncs, so durability is as before.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Duration;

/// Least time between two syncs: under load, a sync writes what ~3 ms of pushes appended.
pub(super) const EVERY: Duration = Duration::from_millis(3);

/// The writeback thread; it ends when the last clone of this is dropped.
#[derive(Debug, Clone)]
pub(super) struct WalWriteback {
    wake: SyncSender<()>,
}

impl WalWriteback {
    /// Syncs the file at `wal` after each `appended`, at most once per `every`. Idle, the
    /// thread sleeps until the next push, so an unused gateway does no work.
    pub(super) fn start(wal: PathBuf, every: Duration) -> io::Result<Self> {
        Self::start_with(every, move || sync(&wal))
    }

    fn start_with(
        every: Duration,
        mut sync: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        // One slot: pushes that come while a sync is pending add nothing to it.
        let (wake, woken) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("idse-wal-sync".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = sync() {
                        // The checkpoint syncs the WAL anyway; this only spreads the work.
                        tracing::debug!(error = %e, "syncing the WAL early failed");
                    }
                    std::thread::sleep(every);
                }
            })?;
        Ok(Self { wake })
    }

    /// Tells the thread that the WAL grew; never blocks.
    pub(super) fn appended(&self) {
        // Full: a sync is already due. Disconnected: cannot happen while `self` lives.
        let _ = self.wake.try_send(());
    }
}

/// Syncs the file at `wal`, if there is one yet (SQLite creates it at the first write).
fn sync(wal: &Path) -> io::Result<()> {
    match std::fs::File::open(wal).and_then(|file| file.sync_data()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn counting(every: Duration) -> (WalWriteback, Arc<AtomicUsize>) {
        let syncs = Arc::new(AtomicUsize::new(0));
        let counter = syncs.clone();
        let writeback = WalWriteback::start_with(every, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .expect("spawn");
        (writeback, syncs)
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn idle_it_does_not_sync() {
        let (_writeback, syncs) = counting(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(syncs.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_append_is_synced_and_a_burst_shares_syncs() {
        let every = Duration::from_millis(20);
        let (writeback, syncs) = counting(every);
        writeback.appended();
        assert!(wait_for(|| syncs.load(Ordering::SeqCst) == 1));
        let start = Instant::now();
        for _ in 0..10_000 {
            writeback.appended();
        }
        let burst = start.elapsed();
        assert!(
            wait_for(|| syncs.load(Ordering::SeqCst) >= 2),
            "the burst was not synced"
        );
        // Each sync is followed by `every` of sleep, so a burst costs at most one sync per
        // `every` it lasted, plus one for what it left pending; then the thread goes idle.
        std::thread::sleep(every * 3);
        let after = syncs.load(Ordering::SeqCst);
        let most = 1 + (burst.as_millis() / every.as_millis()) as usize + 2;
        assert!(after <= most, "{after} syncs for a burst of {burst:?}");
    }

    #[test]
    fn a_missing_wal_is_not_an_error_but_a_bad_path_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = dir.path().join("db-wal");
        assert!(sync(&wal).is_ok(), "no WAL yet");
        std::fs::write(&wal, b"frames").expect("write");
        assert!(sync(&wal).is_ok(), "a WAL");
        // A path through a file cannot be a WAL: that is reported.
        assert!(sync(&wal.join("x")).is_err());
    }

    #[test]
    fn it_stops_with_its_owner() {
        let (writeback, syncs) = counting(Duration::from_millis(1));
        writeback.appended();
        drop(writeback);
        // The thread held the only other reference, inside its closure.
        assert!(wait_for(|| Arc::strong_count(&syncs) == 1));
    }
}
