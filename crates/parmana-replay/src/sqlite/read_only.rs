//! A SQLite store opened only to read, for an auditor without write access: one read-only connection, no writer thread, and the database read as it is where nothing can write it (a read-only file system).
//!
//! SQLite reads a WAL database through its shared-memory index (`-shm`) and log (`-wal`). While a
//! process has the store open, both are there, and a read-only connection uses them as they are
//! (readable is enough): an auditor in the store's group reads a running server's store,
//! commits and all. With neither there (no process has the store open) and a directory the
//! reader may not write, SQLite cannot make the index and refuses; on a read-only file system
//! (an evidence copy, a snapshot mounted read-only) nothing can change the file, so it is read as
//! immutable — but only with no log beside it, which would hold commits the file does not. On a
//! writable file system, reading the file as immutable could read pages a writer starting
//! meanwhile changes under the reader: refused, saying how to read it instead.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::watch::{FileIdentity, SchemaWatch, file_id, resolve_store_path};
use super::{BUSY_TIMEOUT, OpenFailure, SqliteReplayStore, Watched, check_existing};
use crate::ReplayError;

impl SqliteReplayStore {
    /// Opens the existing store at `path` only to read: no writer thread, no write of the
    /// database (SQLite may make its `-wal` and `-shm` files, empty, where the directory lets
    /// it), and every write refused (`replay.store_read_only`). For the commands that only read
    /// (`ledger verify`, `ledger export`, `show`, `log prove`): an auditor needs read access to
    /// the store's files, not write access. Refused as [`open_existing`](Self::open_existing)
    /// refuses (no store there, another schema version), and with
    /// `replay.invalid_configuration` where SQLite cannot read it without writing (no process
    /// has it open, and its directory may not be written) on a file system that is not
    /// read-only.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = resolve_store_path(path.as_ref())?;
        if !path.is_file() {
            return Err(ReplayError::InvalidConfiguration {
                message: format!("no SQLite store at {}", path.display()),
            });
        }
        // Told plainly: SQLite would say only that it cannot open the file.
        if let Err(e) = std::fs::File::open(&path) {
            return Err(ReplayError::InvalidConfiguration {
                message: format!("cannot read {}: {e}", path.display()),
            });
        }
        let index = PathBuf::from(format!("{}-shm", path.display()));
        // The file as it was before SQLite opened it: one swapped in meanwhile is refused below.
        let before = file_id(&path)?;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let (conn, files) = loop {
            match open_checked(&path, Reading::Shared) {
                Ok(conn) => break (conn, FileIdentity::of(&path)?),
                Err(failure) if failure.busy && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(failure) if failure.no_index && file_id(&index)?.is_none() => {
                    let conn = open_unchanging(&path)?;
                    break (conn, FileIdentity::database_only(&path)?);
                }
                Err(failure) => return Err(failure.error),
            }
        };
        if files.database() != before {
            return Err(ReplayError::Replaced {
                path: path.display().to_string(),
            });
        }
        files.check()?;
        Ok(Self {
            path,
            writer: None,
            writer_thread: None,
            reader: Mutex::new(Watched {
                conn,
                schema: SchemaWatch::default(),
            }),
            files,
        })
    }
}

/// How a read-only connection reads the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Through the WAL and its shared-memory index, as every other connection does.
    Shared,
    /// As a file nothing changes (SQLite's `immutable`): no index, no log, no locks.
    Unchanging,
}

/// Opens `path` read-only as `reading` says and checks it holds a store at this build's schema
/// version.
fn open_checked(path: &Path, reading: Reading) -> Result<Connection, OpenFailure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match reading {
        // Not `SQLITE_OPEN_URI` (`resolve_store_path` refused a name SQLite would read as one).
        Reading::Shared => Connection::open_with_flags(path, flags)?,
        Reading::Unchanging => Connection::open_with_flags(
            immutable_uri(&std::fs::canonicalize(path).map_err(|e| {
                ReplayError::unavailable(format!("cannot resolve {}: {e}", path.display()))
            })?),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    check_existing(&conn, path)?;
    Ok(conn)
}

/// The store at `path`, which SQLite cannot read through a shared-memory index (none is there
/// and none can be made), read as unchanging where that is safe: on a read-only file system,
/// with no log beside it.
fn open_unchanging(path: &Path) -> Result<Connection, ReplayError> {
    let log = PathBuf::from(format!("{}-wal", path.display()));
    let log_len = match std::fs::metadata(&log) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            return Err(ReplayError::unavailable(format!(
                "cannot look at {}: {e}",
                log.display()
            )));
        }
    };
    match unchanging_reading(on_read_only_file_system(path)?, log_len) {
        Ok(()) => open_checked(path, Reading::Unchanging).map_err(|failure| failure.error),
        Err(why) => Err(ReplayError::InvalidConfiguration {
            message: format!(
                "{} cannot be read without writing beside it: {why}. Read it while a process \
                 (the server) has the store open, as a user who may write its directory, or \
                 from a copy",
                path.display()
            ),
        }),
    }
}

/// Whether a store SQLite cannot read through a shared-memory index may be read as unchanging:
/// only on a read-only file system (nothing can write the file meanwhile) with no log holding
/// commits (`log_len` bytes) the file does not.
fn unchanging_reading(read_only_file_system: bool, log_len: u64) -> Result<(), &'static str> {
    match (read_only_file_system, log_len) {
        (true, 0) => Ok(()),
        (true, _) => Err(
            "its write-ahead log holds commits, which SQLite reads only through a shared-memory \
             index, and there is none",
        ),
        (false, _) => Err(
            "no process has it open, so its shared-memory index is not there, and this user may \
             not make one in its directory",
        ),
    }
}

/// Whether the file system holding `path` is mounted read-only.
#[cfg(unix)]
fn on_read_only_file_system(path: &Path) -> Result<bool, ReplayError> {
    use rustix::fs::{StatVfsMountFlags, statvfs};
    statvfs(path)
        .map(|stats| stats.f_flag.contains(StatVfsMountFlags::RDONLY))
        .map_err(|e| ReplayError::unavailable(format!("cannot look at {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn on_read_only_file_system(_path: &Path) -> Result<bool, ReplayError> {
    Ok(false)
}

/// The SQLite URI that opens the file at the absolute `path` read-only and as immutable, every
/// byte that is not unreserved in a URI or a `/` percent-encoded (`?`, `#` and `%` would be read
/// as the URI's own).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                uri.push(char::from(*byte));
            }
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::super::map_error;
    use super::*;

    #[test]
    fn a_uri_escapes_what_sqlite_would_read_as_its_own() {
        assert_eq!(
            immutable_uri(Path::new("/srv/audit 1/a?b#c%d.db")),
            "file:/srv/audit%201/a%3Fb%23c%25d.db?mode=ro&immutable=1"
        );
    }

    #[test]
    fn only_a_read_only_file_system_without_a_log_is_read_as_unchanging() {
        assert_eq!(unchanging_reading(true, 0), Ok(()));
        assert!(unchanging_reading(true, 4096).is_err());
        assert!(unchanging_reading(false, 0).is_err());
    }

    #[test]
    fn a_store_opened_read_only_reads_every_commit_and_refuses_every_write() {
        use crate::{
            AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, ExecutionState, ReplayStore,
        };
        use parmana_canon::{Digest, Timestamp};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = SqliteReplayStore::open(&path).unwrap();
        let id = |text: &str| ExecutionId::parse(text).unwrap();
        let record = ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse("2026-12-07T05:00:00Z").unwrap(),
        );
        let under = AcceptedVersions::new(1, 1);
        assert_eq!(
            writer.claim(&id("before"), &record, under).unwrap(),
            ClaimOutcome::Claimed
        );
        let reader = SqliteReplayStore::open_read_only(&path).unwrap();
        // What the writer commits after the reader opened is read too (the WAL, shared).
        assert_eq!(
            writer.claim(&id("after"), &record, under).unwrap(),
            ClaimOutcome::Claimed
        );
        for claimed in ["before", "after"] {
            assert!(
                matches!(
                    reader.get(&id(claimed)).unwrap(),
                    ExecutionState::Claimed(_)
                ),
                "{claimed}"
            );
        }
        assert_eq!(reader.accepted_versions().unwrap(), under);
        let database = std::fs::read(&path).unwrap();
        let refusals = [
            reader
                .claim(&id("through-the-reader"), &record, under)
                .err(),
            reader.complete(&id("before"), b"{}").err(),
            reader.accept_versions(2, 2).err(),
            reader.sequence(16).err(),
        ];
        for (refusal, operation) in
            refusals
                .iter()
                .zip(["claim", "complete", "accept_versions", "sequence"])
        {
            let refusal = refusal.as_ref().expect(operation);
            assert_eq!(refusal.code(), "replay.store_read_only", "{operation}");
            assert!(refusal.to_string().contains(operation), "{refusal}");
        }
        assert!(matches!(
            writer.get(&id("through-the-reader")).unwrap(),
            ExecutionState::Absent
        ));
        assert_eq!(std::fs::read(&path).unwrap(), database);
    }

    #[test]
    fn a_store_read_as_unchanging_reads_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        drop(SqliteReplayStore::open(&path).unwrap());
        let conn = open_checked(&path, Reading::Unchanging)
            .map_err(|failure| failure.error)
            .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(map_error)
            .unwrap();
        assert_eq!(version, super::super::watch::current_schema_version());
    }
}
