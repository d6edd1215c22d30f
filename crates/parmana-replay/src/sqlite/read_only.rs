//! A SQLite store opened only to read, for an auditor without write access: one connection, no writer thread, no write through it, and no file left behind that the server's user could not write.
//!
//! SQLite reads a WAL database through its log (`-wal`) and shared-memory index (`-shm`). While
//! a process (the server) has the store open, both are there, and a read-only connection uses
//! them as they are — readable is enough (`readonly_shm`): an auditor in the store's group reads a
//! running server's store, commits and all. With neither there, a read-only connection would make
//! them where the directory lets it, and leave them (it may not remove what a checkpoint needs)
//! owned by the auditor, where the server's user might then not write them: so they are made only
//! by a connection of the store's owner or root that may write the database and its directory —
//! one that removes them as it closes, as every connection of the store does (and folds a log left
//! alone into the database first, as any first connection does) — and otherwise the store is
//! refused, saying how to read it. The rule takes the server to run as the database's owner (the
//! user that made it), as `parmana serve` and `execute` make it. A store in rollback-journal mode (a `VACUUM INTO` copy) needs neither.
//! Reading the file alone as unchanging (SQLite's `immutable`) is never done: a read-only mount
//! (a bind mount, a container volume, NFS) can hide a writer that changes it meanwhile.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::watch::{FileIdentity, SchemaWatch, file_id, resolve_store_path};
use super::{BUSY_TIMEOUT, OpenFailure, SqliteReplayStore, Watched, check_existing, connect};
use crate::ReplayError;

impl SqliteReplayStore {
    /// Opens the existing store at `path` only to read: no writer thread, and every write
    /// refused (`replay.store_read_only`). For the commands that only read (`ledger verify`,
    /// `ledger export`, `show`, `log prove`): an auditor needs read access to the store's files,
    /// not write access, while a process has the store open (its `-wal` and `-shm` are there).
    /// Otherwise a WAL store is read by its owner or root, whose connection makes the two files
    /// (or folds a log left alone into the database, as any first connection does) and removes
    /// them as it closes, and refused for any other user (`replay.invalid_configuration`, saying
    /// how to read it): files made by another user would stay, where the server's user might not
    /// write them. Refused as [`open_existing`](Self::open_existing) refuses (no store there,
    /// another schema version), and a file of the store the process may not read as such.
    ///
    /// Not for a process that has the store open already: reading the database's header, and
    /// checking its `-wal` and `-shm` can be read, close descriptors of those files, which drops
    /// the POSIX locks SQLite holds on them in this process.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = resolve_store_path(path.as_ref())?;
        if !path.is_file() {
            return Err(ReplayError::InvalidConfiguration {
                message: format!("no SQLite store at {}", path.display()),
            });
        }
        let (log, index) = (beside(&path, "-wal"), beside(&path, "-shm"));
        // Told plainly: SQLite would say only that it cannot open the database.
        let wal_mode = in_wal_mode(&path)?;
        let owner = is_owner(&path);
        // The file as it was before SQLite opened it: one swapped in meanwhile is refused below.
        let before = file_id(&path)?;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut looked_again = false;
        let conn = loop {
            let (log_there, index_there) = (file_id(&log)?.is_some(), file_id(&index)?.is_some());
            for file in [(log_there, &log), (index_there, &index)]
                .into_iter()
                .filter_map(|(there, file)| there.then_some(file))
            {
                readable(file)?;
            }
            let reading = match (wal_mode, log_there, index_there) {
                (false, ..) | (true, true, true) => Reading::Shared,
                (true, ..) if owner && may_write(&path) => Reading::Writable,
                (true, false, false) => {
                    return Err(cannot_read_alone(
                        &path,
                        "no process has it open, so its write-ahead log and shared-memory index are \
                     not there, and only its owner (or root), who may write it and its \
                     directory, makes them to read it",
                    ));
                }
                (true, ..) => {
                    return Err(cannot_read_alone(
                        &path,
                        "its write-ahead log and shared-memory index are not both there (left by a \
                     process that ended, or copied apart): reading it would write the database, \
                     which only its owner (or root) does",
                    ));
                }
            };
            match open_checked(&path, reading) {
                Ok(conn) => break conn,
                Err(failure) if failure.busy && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // The server closed the store between the look and the open (its index is gone),
                // and SQLite may have made an empty log for this read, owned by this user where
                // the directory let it: taken away again (the server, the owner, makes its own as
                // its own user), and the look made anew, once.
                Err(_) if reading == Reading::Shared && !looked_again => {
                    looked_again = true;
                    if !owner && file_id(&index)?.is_none() {
                        remove_own_empty_file(&log);
                    }
                }
                Err(failure) => return Err(failure.error),
            }
        };
        // The database alone is watched: a reader loses no commit to a replaced log or index
        // (what the watch guards a writer against), and a store in rollback-journal mode has
        // neither.
        let files = FileIdentity::database_only(&path)?;
        files.check_opened(&path, before)?;
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

/// How the connection of a store opened only to read reads the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Read-only, through the log and index already there (opened read-only: `readonly_shm`), or
    /// a store in rollback-journal mode, which has neither.
    Shared,
    /// A connection that may write, of the store's owner or root: it makes the log and index for
    /// the read (or folds a log left alone into the database, as any first connection does) and
    /// removes them as it closes. No store write goes through it (the store has no writer).
    Writable,
}

/// Opens `path` as `reading` says and checks it holds a store at this build's schema version.
fn open_checked(path: &Path, reading: Reading) -> Result<Connection, OpenFailure> {
    let conn = match reading {
        Reading::Shared => {
            let conn = Connection::open_with_flags(
                read_only_uri(&std::fs::canonicalize(path).map_err(|e| {
                    ReplayError::unavailable(format!("cannot resolve {}: {e}", path.display()))
                })?),
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn
        }
        Reading::Writable => connect(path, false)?,
    };
    check_existing(&conn, path)?;
    Ok(conn)
}

/// The file beside the store at `path` named `path` followed by `suffix` (`-wal`, `-shm`), as
/// SQLite names it — byte for byte, whatever the path's encoding.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether the database at `path` is in WAL mode: its header's read and write versions
/// (bytes 18 and 19) are 2 — 1 in rollback-journal mode. A file shorter than SQLite's 100-byte
/// header holds no store (nothing is opened on it: a connection that may write would write a
/// header into it).
fn in_wal_mode(path: &Path) -> Result<bool, ReplayError> {
    let mut header = [0u8; 100];
    let mut file = readable(path)?;
    match file.read_exact(&mut header) {
        Ok(()) => Ok(header[18] == 2 || header[19] == 2),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(ReplayError::InvalidConfiguration {
                message: format!(
                    "no SQLite store at {} (the file holds none)",
                    path.display()
                ),
            })
        }
        Err(e) => Err(ReplayError::unavailable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The file at `path`, opened to read; one the process may not read is a configuration to
/// mend (`replay.invalid_configuration`, naming it), not a store to retry.
fn readable(path: &Path) -> Result<std::fs::File, ReplayError> {
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ReplayError::InvalidConfiguration {
            message: format!("cannot read {}: {e}", path.display()),
        },
        _ => ReplayError::unavailable(format!("cannot read {}: {e}", path.display())),
    })
}

/// The refusal of a store this user cannot read without making files beside it, saying `why`
/// and how to read it.
fn cannot_read_alone(path: &Path, why: &str) -> ReplayError {
    ReplayError::InvalidConfiguration {
        message: format!(
            "{} cannot be read without writing beside it: {why}. Read it while the server has it \
             open, as its owner, or from a copy of the database file made while no -wal is \
             beside it (it then holds every commit)",
            path.display()
        ),
    }
}

/// Whether this process runs as root or as the owner of the file at `path`: the users whose
/// files beside the store (its log and index, made to read it) the server's user can use —
/// root's SQLite gives the database's owner.
#[cfg(unix)]
fn is_owner(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let us = rustix::process::geteuid();
    us.is_root() || std::fs::metadata(path).is_ok_and(|metadata| metadata.uid() == us.as_raw())
}

#[cfg(not(unix))]
fn is_owner(_path: &Path) -> bool {
    false
}

/// Removes the file at `path` when it is empty and this process's user owns it (an empty log
/// SQLite made for a read that then failed); whether it did.
#[cfg(unix)]
fn remove_own_empty_file(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|metadata| {
        metadata.is_file()
            && metadata.len() == 0
            && metadata.uid() == rustix::process::geteuid().as_raw()
    }) && std::fs::remove_file(path).is_ok()
}

#[cfg(not(unix))]
fn remove_own_empty_file(_path: &Path) -> bool {
    false
}

/// Whether this process may write the database at `path` and its directory (where SQLite makes
/// the log and index): on a read-only file system, neither.
#[cfg(unix)]
fn may_write(path: &Path) -> bool {
    use rustix::fs::{Access, access};
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    access(path, Access::WRITE_OK).is_ok() && access(directory, Access::WRITE_OK).is_ok()
}

#[cfg(not(unix))]
fn may_write(_path: &Path) -> bool {
    false
}

/// The SQLite URI that opens the file at the absolute `path` read-only with its shared-memory
/// index read-only too (`readonly_shm`), every byte that is not unreserved in a URI or a `/`
/// percent-encoded (`?`, `#` and `%` would be read as the URI's own).
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                uri.push(char::from(*byte));
            }
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.push_str("?mode=ro&readonly_shm=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, ExecutionState, ReplayStore,
        StoredCheckpoint,
    };
    use parmana_canon::{Digest, Timestamp};

    #[test]
    fn a_uri_escapes_what_sqlite_would_read_as_its_own() {
        assert_eq!(
            read_only_uri(Path::new("/srv/audit 1/a?b#c%d.db")),
            "file:/srv/audit%201/a%3Fb%23c%25d.db?mode=ro&readonly_shm=1"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_files_beside_a_store_keep_its_name_byte_for_byte() {
        use std::os::unix::ffi::OsStrExt as _;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/srv/caf\xe9.db"));
        assert_eq!(
            beside(path, "-wal").as_os_str().as_bytes(),
            b"/srv/caf\xe9.db-wal"
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_an_empty_file_of_this_user_is_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let (empty, written) = (dir.path().join("empty-wal"), dir.path().join("written-wal"));
        std::fs::write(&empty, b"").unwrap();
        std::fs::write(&written, b"commits").unwrap();
        assert!(remove_own_empty_file(&empty) && !empty.exists());
        assert!(!remove_own_empty_file(&written) && written.exists());
        assert!(!remove_own_empty_file(&dir.path().join("none")));
    }

    #[test]
    fn a_file_shorter_than_a_header_holds_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.db");
        std::fs::write(&path, b"").unwrap();
        let refused = SqliteReplayStore::open_read_only(&path).unwrap_err();
        assert_eq!(refused.code(), "replay.invalid_configuration", "{refused}");
        // Nothing was written into it, nor made beside it.
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(!beside(&path, "-wal").exists() && !beside(&path, "-shm").exists());
    }

    fn id(text: &str) -> ExecutionId {
        ExecutionId::parse(text).unwrap()
    }

    fn record() -> ClaimRecord {
        ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse("2026-12-07T05:00:00Z").unwrap(),
        )
    }

    #[test]
    fn a_store_opened_read_only_reads_every_commit_and_refuses_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = SqliteReplayStore::open(&path).unwrap();
        let under = AcceptedVersions::new(1, 1);
        assert_eq!(
            writer.claim(&id("before"), &record(), under).unwrap(),
            ClaimOutcome::Claimed
        );
        let reader = SqliteReplayStore::open_read_only(&path).unwrap();
        // What the writer commits after the reader opened is read too (the WAL, shared).
        assert_eq!(
            writer.claim(&id("after"), &record(), under).unwrap(),
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
        let checkpoint = StoredCheckpoint {
            size: 1,
            root: Digest::of(b"root"),
            note: "a note".to_owned(),
        };
        let refusals = [
            reader
                .claim(&id("through-the-reader"), &record(), under)
                .err(),
            reader.complete(&id("before"), b"{}").err(),
            reader.accept_versions(2, 2).err(),
            reader.sequence(16).err(),
            reader.store_checkpoint(&checkpoint).err(),
        ];
        for (refusal, operation) in refusals.iter().zip([
            "claim",
            "complete",
            "accept_versions",
            "sequence",
            "store_checkpoint",
        ]) {
            let refusal = refusal.as_ref().expect(operation);
            assert_eq!(refusal.code(), "replay.store_read_only", "{operation}");
            assert!(refusal.to_string().contains(operation), "{refusal}");
        }
        assert!(matches!(
            writer.get(&id("through-the-reader")).unwrap(),
            ExecutionState::Absent
        ));
        assert_eq!(writer.accepted_versions().unwrap(), under);
        assert_eq!(writer.latest_checkpoint().unwrap(), None);
    }

    /// A copy made by `VACUUM INTO` — the usual way to copy a store in use — is in
    /// rollback-journal mode: no log, no index, read as it is (it was refused as replaced, its
    /// log missing).
    #[test]
    fn a_copy_in_rollback_journal_mode_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = SqliteReplayStore::open(&path).unwrap();
        assert_eq!(
            writer
                .claim(&id("copied"), &record(), AcceptedVersions::new(1, 1))
                .unwrap(),
            ClaimOutcome::Claimed
        );
        let copy = dir.path().join("copy.db");
        Connection::open(&path)
            .unwrap()
            .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
            .unwrap();
        assert!(!in_wal_mode(&copy).unwrap());
        let reader = SqliteReplayStore::open_read_only(&copy).unwrap();
        assert!(matches!(
            reader.get(&id("copied")).unwrap(),
            ExecutionState::Claimed(_)
        ));
        assert!(!beside(&copy, "-wal").exists() && !beside(&copy, "-shm").exists());
    }
}
