//! Consistent copies of the embedded database, taken while a gateway serves from it.
//!
//! Copying the file by hand is not a backup: in WAL mode the latest commits live in the `-wal`
//! file beside it until a checkpoint moves them. `VACUUM INTO` reads one snapshot through
//! SQLite (writers go on meanwhile) and writes it as a single compact file.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub projects: i64,
    pub revisions: i64,
}

/// Why a backup was not written; nothing is left at the destination in every case.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{} exists already; choose a new file name, so that no earlier backup is overwritten", .0.display())]
    Exists(PathBuf),
    #[error("there is no gateway database at {}", .0.display())]
    NoDatabase(PathBuf),
    #[error("the folder {} does not exist; create it, or choose a file in another folder", .0.display())]
    NoFolder(PathBuf),
    #[error("the database location `{0}` is not a SQLite file or `sqlite:` URL")]
    Location(String),
    #[error("could not write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not copy {}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the copy failed SQLite's integrity check ({verdict}); {} was not written", .dest.display())]
    Damaged { dest: PathBuf, verdict: String },
}

/// Copies the database at `database` to the new file `dest`, atomically: the copy is written
/// beside `dest` under a temporary name, synced and checked, then given its name (which fails,
/// rather than replaces, if `dest` appeared meanwhile).
pub fn backup(database: &Path, dest: &Path) -> Result<Backup, BackupError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_owned()));
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let io = |source| BackupError::Io {
        path: dest.to_owned(),
        source,
    };
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::NoFolder(dir.to_owned()));
    }
    // Empty, which VACUUM INTO accepts as its target; removed on any error below.
    let temp = tempfile::Builder::new()
        .prefix(".idse-backup-")
        .tempfile_in(dir)
        .map_err(io)?;
    let sqlite = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Sqlite { path, source }
    };
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(database))?;
    source
        .busy_timeout(super::BUSY_TIMEOUT)
        .map_err(sqlite(database))?;
    let target = temp.path().to_str().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the folder's path is not UTF-8",
        ))
    })?;
    source
        .execute("VACUUM INTO ?1", [target])
        .map_err(sqlite(database))?;
    drop(source);
    temp.as_file().sync_all().map_err(io)?;

    let (projects, revisions) = check(temp.path(), dest)?;
    let bytes = temp.as_file().metadata().map_err(io)?.len();
    temp.persist_noclobber(dest).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists(dest.to_owned())
        } else {
            io(e.error)
        }
    })?;
    // The new name is durable only once the folder is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(Backup {
        path: dest.to_owned(),
        bytes,
        projects,
        revisions,
    })
}

/// Opens the copy on its own and checks it: SQLite's quick check, then what it holds.
fn check(copy: &Path, dest: &Path) -> Result<(i64, i64), BackupError> {
    let failed = |source| BackupError::Sqlite {
        path: dest.to_owned(),
        source,
    };
    let conn =
        Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get(0)).map_err(failed);
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(failed)?;
    if verdict != "ok" {
        return Err(BackupError::Damaged {
            dest: dest.to_owned(),
            verdict,
        });
    }
    Ok((
        count("SELECT count(*) FROM projects")?,
        count("SELECT count(*) FROM revisions")?,
    ))
}
