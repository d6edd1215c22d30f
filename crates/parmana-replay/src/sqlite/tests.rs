//! The SQLite writer driven directly, and its failures sorted: a request whose rows a writer of the file corrupted is refused alone, the requests sharing its batch commit; only what a retry may mend is "unavailable".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;

use parmana_canon::{Digest, ExecutionId, Timestamp};

use super::writer::commit_batch;
use super::{FileIdentity, Watched, WriteAnswer, WriteOp, WriteRequest, connect};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, ReplayError, ReplayStore,
    SqliteReplayStore,
};

fn claim(id: &str) -> WriteOp {
    WriteOp::Claim(
        ExecutionId::parse(id).unwrap(),
        ClaimRecord::new(
            Digest::of(id.as_bytes()),
            b"{}".to_vec(),
            Timestamp::parse("2026-11-28T21:00:00Z").unwrap(),
        ),
        AcceptedVersions::new(1, 1),
    )
}

/// A poisoned row — a request digest that is no digest, or text that is not UTF-8 — refuses the
/// sequencer run that reads it (`replay.store_corrupt`), and it alone: the claims batched with it
/// are committed.
#[test]
fn a_poisoned_row_refuses_the_sequencer_run_alone() {
    for digest in ["'x'", "CAST(x'ff' AS TEXT)"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        drop(SqliteReplayStore::open(&path).unwrap());
        let conn = connect(&path, false).map_err(|f| f.error).unwrap();
        // A writer of the file: a completed, unsequenced execution whose request digest is no
        // digest. Every sequencer run now refuses it.
        conn.execute(
            &format!(
                "INSERT INTO executions (id, request_digest, attestation_inputs, claimed_at, attestation)
                 VALUES ('poisoned', {digest}, x'7b7d', '2026-11-28T21:00:00Z', x'7b7d')"
            ),
            [],
        )
        .unwrap();
        let (reply, _answers) = mpsc::sync_channel(8);
        let batch: Vec<WriteRequest> = [claim("before"), WriteOp::Sequence(16), claim("after")]
            .into_iter()
            .map(|op| WriteRequest {
                op,
                reply: reply.clone(),
            })
            .collect();
        let files = FileIdentity::of(&path).unwrap();
        let mut writer = Watched {
            conn,
            schema: super::SchemaWatch::default(),
        };
        let answers = commit_batch(&mut writer, &files, &batch);
        assert!(
            matches!(answers[0], Ok(WriteAnswer::Claim(ClaimOutcome::Claimed))),
            "{:?}",
            answers[0]
        );
        assert!(
            matches!(answers[1], Err(ReplayError::Corrupt { .. })),
            "{:?}",
            answers[1]
        );
        assert!(
            matches!(answers[2], Ok(WriteAnswer::Claim(ClaimOutcome::Claimed))),
            "{:?}",
            answers[2]
        );
        drop(writer);
        let store = SqliteReplayStore::open(&path).unwrap();
        for id in ["before", "after"] {
            assert!(
                matches!(
                    store.get(&ExecutionId::parse(id).unwrap()).unwrap(),
                    ExecutionState::Claimed(_)
                ),
                "{id} was not committed"
            );
        }
    }
}

/// What SQLite's failures are answered with: only what a retry may mend is "unavailable"; a
/// store someone changed is corrupt, a file or directory the process may not write a
/// configuration to fix.
#[test]
fn sqlite_failures_say_whether_a_retry_helps() {
    use rusqlite::ffi;
    let cases = [
        (
            ffi::SQLITE_BUSY,
            "database is locked",
            "replay.store_unavailable",
        ),
        (
            ffi::SQLITE_FULL,
            "database or disk is full",
            "replay.store_unavailable",
        ),
        (
            ffi::SQLITE_IOERR,
            "disk I/O error",
            "replay.store_unavailable",
        ),
        (ffi::SQLITE_ERROR, "interrupted", "replay.store_unavailable"),
        (
            ffi::SQLITE_CORRUPT,
            "database disk image is malformed",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_NOTADB,
            "file is not a database",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_CONSTRAINT,
            "UNIQUE constraint failed: ledger.position",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_ERROR,
            "no such table: high_water_marks",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_ERROR,
            "no such column: attestation",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_ERROR,
            "table executions has no column named attestation_inputs",
            "replay.store_corrupt",
        ),
        (
            ffi::SQLITE_READONLY,
            "attempt to write a readonly database",
            "replay.invalid_configuration",
        ),
        (
            ffi::SQLITE_PERM,
            "access permission denied",
            "replay.invalid_configuration",
        ),
        (
            ffi::SQLITE_AUTH,
            "not authorized",
            "replay.invalid_configuration",
        ),
    ];
    for (code, message, expected) in cases {
        let error = rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.to_owned()));
        assert_eq!(super::map_error(error).code(), expected, "{code} {message}");
    }
    // Text read back that is not UTF-8 (a blob a writer cast to text): not what the store wrote.
    let not_utf8 = String::from_utf8(vec![0xff]).unwrap_err().utf8_error();
    let error = rusqlite::Error::Utf8Error(0, not_utf8);
    assert_eq!(super::map_error(error).code(), "replay.store_corrupt");
}

/// Once a connection has read the store, its WAL and index exist while it is open: one missing
/// when the store takes its files' identity was unlinked by someone else (a new index made beside
/// the one in use would give the next opener a write lock of its own), and the open is refused.
#[test]
fn a_wal_or_index_missing_when_the_store_opens_is_refused() {
    for suffix in ["-wal", "-shm"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        drop(SqliteReplayStore::open(&path).unwrap());
        let conn = connect(&path, false).map_err(|f| f.error).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert!(version > 0);
        assert!(FileIdentity::of(&path).is_ok(), "{suffix}");
        std::fs::remove_file(format!("{}{suffix}", path.display())).unwrap();
        let refused = FileIdentity::of(&path).unwrap_err();
        assert_eq!(refused.code(), "replay.store_replaced", "{suffix}");
        assert!(refused.to_string().contains(suffix), "{refused}");
        drop(conn);
    }
}

/// Every connection of a store acknowledges only what is on disk: WAL, with `synchronous=FULL`
/// (a process kill loses nothing with less; a power cut does), read back from SQLite itself.
#[test]
fn a_store_connection_is_wal_with_full_synchronous_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let conn = connect(&path, true).map_err(|f| f.error).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
    assert_eq!((mode.as_str(), synchronous), ("wal", 2));
}
