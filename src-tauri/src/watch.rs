//! File watching: any change under a workspace's `.idse` folder becomes one `Changed` event per
//! burst (100 ms), naming the projects it touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::desk::{DeskEvent, EventSink};

/// Changes closer together than this arrive as one event: editors and syncs write in bursts.
const BURST: Duration = Duration::from_millis(100);

/// The project folder (`…/.idse/projects/NAME`) a changed path belongs to.
pub fn project_dir(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|a| {
            let parent = a.parent();
            parent
                .and_then(Path::file_name)
                .is_some_and(|n| n == "projects")
                && parent
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == ".idse")
        })
        .map(Path::to_owned)
}

/// Starts watching `roots`; dropping the watcher stops it and its thread.
pub fn watch(roots: &[PathBuf], sink: EventSink) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if let Some(dir) = project_dir(&path) {
                let _ = tx.send(dir);
            }
        }
    })?;
    for root in roots {
        watcher.watch(root, RecursiveMode::Recursive)?;
    }
    std::thread::Builder::new()
        .name("idse-watch".into())
        .spawn(move || bursts(&rx, &sink))
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(watcher)
}

fn bursts(rx: &mpsc::Receiver<PathBuf>, sink: &EventSink) {
    while let Ok(first) = rx.recv() {
        let mut dirs = BTreeSet::from([first]);
        let end = Instant::now() + BURST;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(dir) => {
                    dirs.insert(dir);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    sink(DeskEvent::Changed {
                        dirs: dirs.into_iter().collect(),
                    });
                    return;
                }
            }
        }
        sink(DeskEvent::Changed {
            dirs: dirs.into_iter().collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_paths_to_their_project() {
        let p = Path::new("/r/.idse/projects/demo/sessions/s1/specs/spec.md");
        assert_eq!(
            project_dir(p),
            Some(PathBuf::from("/r/.idse/projects/demo"))
        );
        assert_eq!(
            project_dir(Path::new("/r/.idse/projects/demo")),
            Some(PathBuf::from("/r/.idse/projects/demo"))
        );
        assert_eq!(project_dir(Path::new("/r/.idse/config.json")), None);
        assert_eq!(project_dir(Path::new("/r/projects/x/y")), None);
    }
}
