//! Test harnesses for every backend: open a fresh store, reopen it, and tamper with it behind its back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unused_imports
)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parmana_canon::{Digest, Timestamp};
use parmana_replay::{
    AcceptedVersions, ClaimRecord, ExecutionId, LedgerReport, MemoryReplayStore, ReplayError,
    ReplayStore, verify_ledger, verify_ledger_snapshot,
};

pub(crate) mod boundary;
pub(crate) mod log;
pub(crate) mod one_write;
pub(crate) mod sequencer;
pub(crate) mod suite;

/// A change made to a store without going through its API.
#[derive(Debug, Clone)]
pub(crate) enum Tamper {
    /// Replace the bytes of the record at `position`.
    ReplaceRecord { position: u64, bytes: Vec<u8> },
    /// Delete the record at `position`.
    DeleteRecord { position: u64 },
    /// Swap the records (and the executions they name) at two positions.
    SwapRecords { a: u64, b: u64 },
    /// Replace the stored attestation of an execution.
    ReplaceAttestation {
        execution_id: String,
        bytes: Vec<u8>,
    },
    /// Set the high-water marks row (an `UPDATE` of it: a reset when lower).
    ResetMarks { to: AcceptedVersions },
    /// File the record at `position` as the execution `execution_id`'s.
    FileAsExecution { position: u64, execution_id: String },
    /// File the record at `position` as a marks record.
    FileAsMarks { position: u64 },
    /// Set the root hash of the stored checkpoint of `size`.
    ReplaceCheckpointRoot { size: u64, root: Digest },
    /// Append a marks record saying `marks`, chained to the last record as a store would chain
    /// it (what a writer of the store can do without any key).
    AppendMarks { marks: AcceptedVersions },
    /// Append a byte-for-byte copy of the marks record at `from` after the last record (not
    /// chained: the bytes name the original's position and predecessor).
    CopyMarksRecord { from: u64 },
    /// File the record at `position` at the position `to` (any integer: the column is).
    MoveRecord { position: u64, to: i64 },
    /// Set the note of the stored checkpoint of `size`.
    ReplaceCheckpointNote { size: u64, note: String },
    /// File the stored checkpoint of `size` under the size `to` (any integer: the column is).
    ResizeCheckpoint { size: u64, to: i64 },
    /// Set the stored claim time of `execution_id`.
    ReplaceClaimedAt {
        execution_id: String,
        claimed_at: String,
    },
    /// Give the execution `execution_id` the id `to` (of any length: the storage's column is).
    RenameExecution { execution_id: String, to: String },
    /// Append `count` marks rows after the last record, each holding `{}` (what a writer of the
    /// store can insert; the store must refuse them by their number, unread).
    AppendMarksRows { count: u64 },
    /// Set the kind of the ledger row at `position` to any text, its CHECK constraint set aside
    /// as a writer of the database can (SQLite: `ignore_check_constraints`; PostgreSQL: the
    /// constraint dropped).
    ReplaceKind { position: u64, kind: String },
}

/// The marks record saying `marks` at `position` after the record `last`, as a store writes it.
pub(crate) fn chained_marks_record(position: u64, last: &[u8], marks: AcceptedVersions) -> Vec<u8> {
    format!(
        r#"{{"kind":"marks","position":{position},"previous":"{}","release_manifest":{},"trust_root":{}}}"#,
        Digest::of(last),
        marks.release_manifest,
        marks.trust_root
    )
    .into_bytes()
}

/// A raise of the marks row made behind the store's back in a transaction still open: the
/// store's writes wait for it (SQLite: the write lock; PostgreSQL: the row lock).
pub(crate) trait HeldRaise {
    /// Commits the raise.
    fn commit(self: Box<Self>);
}

/// One backend under test, with its own isolated storage.
pub(crate) trait Harness: Send + Sync {
    /// The store under test.
    fn store(&self) -> &dyn ReplayStore;
    /// Opens a second handle on the same storage (`None` for the memory backend, which has no storage).
    fn reopen(&self) -> Option<Result<Box<dyn ReplayStore>, ReplayError>>;
    /// Applies `tamper` behind the store's back, then verifies the ledger.
    fn tamper_and_verify(&self, tamper: &Tamper) -> LedgerReport;
    /// Applies `tamper` to the storage itself, verifying nothing (`false` for the memory
    /// backend, which has no storage to edit).
    fn tamper_storage(&self, tamper: &Tamper) -> bool;
    /// Writes an unreadable request digest for `execution_id` behind the store's back
    /// (`false` for the memory backend, which cannot be corrupted from outside).
    fn corrupt_claim(&self, execution_id: &str) -> bool;
    /// Sets the storage's schema version to `version` behind the store's back, and returns the
    /// schema version this build writes for the backend (`None` if not applicable).
    fn set_schema_version(&self, version: i64) -> Option<i64>;
    /// Whether [`Harness::tamper_and_verify`] changes the storage itself (`false` for the memory
    /// backend, which edits the snapshot it hands out).
    fn tampers_with_storage(&self) -> bool;
    /// Opens a transaction behind the store's back that sets the marks row to `to`, and leaves
    /// it open (`None` for the memory backend, which one mutex serializes).
    fn hold_raise(&self, to: AcceptedVersions) -> Option<Box<dyn HeldRaise>>;
}

/// The versions of a claim that neither raises the marks nor is refused by a fresh store's.
pub(crate) const V0: AcceptedVersions = AcceptedVersions::new(0, 0);

/// Races `threads` threads over the ids `0..ids`, all starting together: thread `t` tries id
/// `order(t, k)` as its `k`-th, by `claim(t, i)` (`true` when it won). Checks that each id was
/// won exactly once and returns which thread won each.
pub(crate) fn race_for_ids(
    threads: usize,
    ids: usize,
    order: impl Fn(usize, usize) -> usize + Sync,
    claim: impl Fn(usize, usize) -> bool + Sync,
) -> std::collections::HashMap<usize, usize> {
    let start = std::sync::Barrier::new(threads);
    let wins: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, order, claim) = (&start, &order, &claim);
                scope.spawn(move || {
                    start.wait();
                    (0..ids)
                        .map(|k| order(t, k))
                        .filter(|&i| claim(t, i))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut winner = std::collections::HashMap::new();
    for (t, won) in wins.iter().enumerate() {
        for &i in won {
            assert!(winner.insert(i, t).is_none(), "id {i} won twice");
        }
    }
    assert_eq!(winner.len(), ids, "every id has a winner");
    winner
}

pub(crate) fn id(text: &str) -> ExecutionId {
    ExecutionId::parse(text).unwrap()
}

pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_795_000_000 + seconds).unwrap()
}

/// A claim whose request digest and inputs are derived from `tag`.
pub(crate) fn claim_for(tag: &str) -> ClaimRecord {
    ClaimRecord::new(
        Digest::of(tag.as_bytes()),
        format!(r#"{{"inputs":"{tag}"}}"#).into_bytes(),
        at(i64::try_from(tag.len()).unwrap()),
    )
}

/// Runs the sequencer until every completed execution of `store` is in the ledger; returns the
/// number of records appended (no other integrator runs in these tests).
pub(crate) fn sequence(store: &dyn ReplayStore) -> u64 {
    parmana_replay::sequence_all(store)
        .unwrap()
        .expect("no other integrator holds the lock")
}

/// A process-unique suffix for storage names.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------- memory

pub(crate) struct MemoryHarness {
    store: MemoryReplayStore,
}

pub(crate) fn memory() -> Option<MemoryHarness> {
    Some(MemoryHarness {
        store: MemoryReplayStore::new(),
    })
}

impl Harness for MemoryHarness {
    fn store(&self) -> &dyn ReplayStore {
        &self.store
    }

    fn reopen(&self) -> Option<Result<Box<dyn ReplayStore>, ReplayError>> {
        None
    }

    fn tamper_and_verify(&self, tamper: &Tamper) -> LedgerReport {
        // The memory store has no storage to edit: edit the snapshot it hands out instead.
        let mut snapshot = self.store.ledger_snapshot().unwrap();
        let rows = &mut snapshot.rows;
        match tamper {
            Tamper::ReplaceRecord { position, bytes } => {
                rows[usize::try_from(*position).unwrap()].record = bytes.clone();
            }
            Tamper::DeleteRecord { position } => {
                rows.remove(usize::try_from(*position).unwrap());
            }
            Tamper::SwapRecords { a, b } => {
                let (a, b) = (usize::try_from(*a).unwrap(), usize::try_from(*b).unwrap());
                let (pa, pb) = (rows[a].position, rows[b].position);
                rows.swap(a, b);
                rows[a].position = pa;
                rows[b].position = pb;
            }
            Tamper::ReplaceAttestation {
                execution_id,
                bytes,
            } => {
                for row in rows
                    .iter_mut()
                    .filter(|r| r.execution_id.as_ref() == Some(execution_id))
                {
                    row.attestation = Some(bytes.clone());
                }
            }
            Tamper::ResetMarks { to } => snapshot.marks = *to,
            Tamper::FileAsExecution {
                position,
                execution_id,
            } => {
                rows[usize::try_from(*position).unwrap()].execution_id = Some(execution_id.clone());
            }
            Tamper::FileAsMarks { position } => {
                rows[usize::try_from(*position).unwrap()].execution_id = None;
            }
            Tamper::ReplaceCheckpointRoot { size, root } => {
                for checkpoint in &mut snapshot.checkpoints {
                    if checkpoint.size == *size {
                        checkpoint.root = *root;
                    }
                }
            }
            Tamper::ReplaceClaimedAt { .. }
            | Tamper::MoveRecord { .. }
            | Tamper::RenameExecution { .. }
            | Tamper::ResizeCheckpoint { .. }
            | Tamper::ReplaceKind { .. }
            | Tamper::AppendMarksRows { .. } => {}
            Tamper::ReplaceCheckpointNote { size, note } => {
                for checkpoint in &mut snapshot.checkpoints {
                    if checkpoint.size == *size {
                        checkpoint.note = note.clone();
                    }
                }
            }
            Tamper::AppendMarks { marks } => {
                let last = rows.last().unwrap();
                let record = chained_marks_record(last.position + 1, &last.record, *marks);
                let mut appended = last.clone();
                appended.position += 1;
                appended.execution_id = None;
                appended.attestation = None;
                appended.record = record;
                rows.push(appended);
            }
            Tamper::CopyMarksRecord { from } => {
                let record = rows[usize::try_from(*from).unwrap()].record.clone();
                let mut appended = rows.last().unwrap().clone();
                appended.position += 1;
                appended.execution_id = None;
                appended.attestation = None;
                appended.record = record;
                rows.push(appended);
            }
        }
        verify_ledger_snapshot(&snapshot)
    }

    fn tamper_storage(&self, _: &Tamper) -> bool {
        false
    }

    fn corrupt_claim(&self, _execution_id: &str) -> bool {
        false
    }

    fn set_schema_version(&self, _version: i64) -> Option<i64> {
        None
    }

    fn tampers_with_storage(&self) -> bool {
        false
    }

    fn hold_raise(&self, _to: AcceptedVersions) -> Option<Box<dyn HeldRaise>> {
        None
    }
}

// ---------------------------------------------------------------- sqlite

#[cfg(feature = "sqlite")]
pub(crate) use sqlite_harness::{SqliteHarness, sqlite};

#[cfg(feature = "sqlite")]
mod sqlite_harness {
    use super::*;
    use parmana_replay::SqliteReplayStore;

    pub(crate) struct SqliteHarness {
        pub dir: tempfile::TempDir,
        pub store: SqliteReplayStore,
    }

    pub(crate) fn sqlite() -> Option<SqliteHarness> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteReplayStore::open(dir.path().join("replay.sqlite")).unwrap();
        Some(SqliteHarness { dir, store })
    }

    impl SqliteHarness {
        pub(crate) fn raw(&self) -> rusqlite::Connection {
            let conn = rusqlite::Connection::open(self.store.path()).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            conn
        }
    }

    impl Harness for SqliteHarness {
        fn store(&self) -> &dyn ReplayStore {
            &self.store
        }

        fn reopen(&self) -> Option<Result<Box<dyn ReplayStore>, ReplayError>> {
            Some(
                SqliteReplayStore::open(self.store.path())
                    .map(|s| Box::new(s) as Box<dyn ReplayStore>),
            )
        }

        fn tamper_and_verify(&self, tamper: &Tamper) -> LedgerReport {
            self.tamper_storage(tamper);
            verify_ledger(&self.store).unwrap()
        }

        fn tamper_storage(&self, tamper: &Tamper) -> bool {
            let raw = self.raw();
            // Each tamper changes exactly one row: one that matched none would leave the
            // storage as it was, and a test expecting it intact would pass on nothing.
            let one =
                |changed| assert_eq!(changed, 1, "the tamper {tamper:?} changed {changed} rows");
            let as_i64 = |p: &u64| i64::try_from(*p).unwrap();
            match tamper {
                Tamper::ReplaceRecord { position, bytes } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET record = ?1 WHERE position = ?2",
                            rusqlite::params![bytes, as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::DeleteRecord { position } => {
                    one(raw
                        .execute("DELETE FROM ledger WHERE position = ?1", [as_i64(position)])
                        .unwrap());
                }
                Tamper::SwapRecords { a, b } => {
                    let read = |p: i64| -> (String, Vec<u8>) {
                        raw.query_row(
                            "SELECT execution_id, record FROM ledger WHERE position = ?1",
                            [p],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .unwrap()
                    };
                    let (ra, rb) = (read(as_i64(a)), read(as_i64(b)));
                    for (position, (execution_id, record)) in [(as_i64(a), rb), (as_i64(b), ra)] {
                        one(raw.execute(
                            "UPDATE ledger SET execution_id = ?1, record = ?2 WHERE position = ?3",
                            rusqlite::params![execution_id, record, position],
                        ).unwrap());
                    }
                }
                Tamper::ReplaceAttestation {
                    execution_id,
                    bytes,
                } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET attestation = ?1 WHERE id = ?2",
                            rusqlite::params![bytes, execution_id],
                        )
                        .unwrap());
                }
                Tamper::ResetMarks { to } => {
                    one(raw
                        .execute(
                            "UPDATE high_water_marks SET trust_root = ?1, release_manifest = ?2",
                            [as_i64(&to.trust_root), as_i64(&to.release_manifest)],
                        )
                        .unwrap());
                }
                Tamper::FileAsExecution {
                    position,
                    execution_id,
                } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET kind = 'execution', execution_id = ?1
                         WHERE position = ?2",
                            rusqlite::params![execution_id, as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::FileAsMarks { position } => {
                    one(raw.execute(
                        "UPDATE ledger SET kind = 'marks', execution_id = NULL WHERE position = ?1",
                        [as_i64(position)],
                    ).unwrap());
                }
                Tamper::ReplaceCheckpointRoot { size, root } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET root = ?1 WHERE size = ?2",
                            rusqlite::params![root.to_string(), as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ResizeCheckpoint { size, to } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET size = ?1 WHERE size = ?2",
                            rusqlite::params![to, as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ReplaceCheckpointNote { size, note } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET note = ?1 WHERE size = ?2",
                            rusqlite::params![note, as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ReplaceClaimedAt {
                    execution_id,
                    claimed_at,
                } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET claimed_at = ?1 WHERE id = ?2",
                            rusqlite::params![claimed_at, execution_id],
                        )
                        .unwrap());
                }
                Tamper::ReplaceKind { position, kind } => {
                    raw.pragma_update(None, "ignore_check_constraints", true)
                        .unwrap();
                    one(raw
                        .execute(
                            "UPDATE ledger SET kind = ?1 WHERE position = ?2",
                            rusqlite::params![kind, as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::RenameExecution { execution_id, to } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET id = ?1 WHERE id = ?2",
                            rusqlite::params![to, execution_id],
                        )
                        .unwrap());
                }
                Tamper::AppendMarksRows { count } => {
                    let appended = raw
                        .execute(
                            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                                                     WHERE i < ?1)
                             INSERT INTO ledger (position, kind, execution_id, record)
                             SELECT (SELECT max(position) FROM ledger) + i, 'marks', NULL,
                                    CAST('{}' AS BLOB)
                             FROM n",
                            [as_i64(count)],
                        )
                        .unwrap();
                    assert_eq!(appended, usize::try_from(*count).unwrap());
                }
                Tamper::AppendMarks { marks } => {
                    let (position, last): (i64, Vec<u8>) = raw
                        .query_row(
                            "SELECT position, record FROM ledger ORDER BY position DESC LIMIT 1",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .unwrap();
                    let next = u64::try_from(position).unwrap() + 1;
                    one(raw
                        .execute(
                            "INSERT INTO ledger (position, kind, execution_id, record)
                         VALUES (?1, 'marks', NULL, ?2)",
                            rusqlite::params![
                                as_i64(&next),
                                chained_marks_record(next, &last, *marks)
                            ],
                        )
                        .unwrap());
                }
                Tamper::CopyMarksRecord { from } => {
                    one(raw
                        .execute(
                            "INSERT INTO ledger (position, kind, execution_id, record)
                             SELECT (SELECT max(position) FROM ledger) + 1, 'marks', NULL, record
                             FROM ledger WHERE position = ?1",
                            [as_i64(from)],
                        )
                        .unwrap());
                }
                Tamper::MoveRecord { position, to } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET position = ?1 WHERE position = ?2",
                            rusqlite::params![to, as_i64(position)],
                        )
                        .unwrap());
                }
            }
            true
        }

        fn corrupt_claim(&self, execution_id: &str) -> bool {
            self.raw()
                .execute(
                    "UPDATE executions SET request_digest = 'sha1:nope' WHERE id = ?1",
                    [execution_id],
                )
                .unwrap();
            true
        }

        fn set_schema_version(&self, version: i64) -> Option<i64> {
            self.raw()
                .pragma_update(None, "user_version", version)
                .unwrap();
            Some(3)
        }

        fn tampers_with_storage(&self) -> bool {
            true
        }

        fn hold_raise(&self, to: AcceptedVersions) -> Option<Box<dyn HeldRaise>> {
            let raw = self.raw();
            raw.execute_batch("BEGIN IMMEDIATE").unwrap();
            raw.execute(
                "UPDATE high_water_marks SET trust_root = ?1, release_manifest = ?2",
                [
                    i64::try_from(to.trust_root).unwrap(),
                    i64::try_from(to.release_manifest).unwrap(),
                ],
            )
            .unwrap();
            Some(Box::new(SqliteHeld(raw)))
        }
    }

    struct SqliteHeld(rusqlite::Connection);

    impl HeldRaise for SqliteHeld {
        fn commit(self: Box<Self>) {
            self.0.execute_batch("COMMIT").unwrap();
        }
    }
}

// ---------------------------------------------------------------- postgres

/// The URL of the PostgreSQL server for tests. In CI (`CI=true`) a missing URL fails the
/// test; locally the PostgreSQL tests skip with a message.
pub(crate) fn postgres_url() -> Option<String> {
    env_url("PARMANA_TEST_POSTGRES_URL")
}

/// The same server over TLS (`sslmode=verify-full` against the throwaway CA of `.ci/services`).
pub(crate) fn postgres_tls_url() -> Option<String> {
    env_url("PARMANA_TEST_POSTGRES_TLS_URL")
}

/// A role that the server admits over TLS only (no options in the URL).
pub(crate) fn postgres_tls_only_url() -> Option<String> {
    env_url("PARMANA_TEST_POSTGRES_TLS_ONLY_URL")
}

/// Reads a test server URL from `var`: required under `CI=true`, otherwise skipped with a message.
pub(crate) fn env_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but {var} is not set: the PostgreSQL suite must run in CI \
             (.ci/services starts a server and exports it)"
        ),
        _ => {
            // Written to stderr directly, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL replay-store test — set {var}=postgres://… \
                 (for example by `source .ci/services`) to run it"
            );
            None
        }
    }
}

/// `url` with one more `key=value` query option.
pub(crate) fn with_option(url: &str, option: &str) -> String {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let separator = if url[after_credentials..].contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{url}{separator}{option}")
}

#[cfg(feature = "postgres")]
pub(crate) use postgres_harness::{PostgresHarness, postgres, postgres_raw, postgres_tls};

#[cfg(feature = "postgres")]
mod postgres_harness {
    use super::*;
    use parmana_replay::{PostgresOptions, PostgresReplayStore};

    pub(crate) struct PostgresHarness {
        /// The URL the store connects with.
        pub url: String,
        /// A plain URL of the same database, for editing behind the store's back.
        pub raw_url: String,
        pub options: PostgresOptions,
        pub store: PostgresReplayStore,
    }

    pub(crate) fn postgres() -> Option<PostgresHarness> {
        let url = postgres_url()?;
        Some(harness(url.clone(), url))
    }

    /// The store over TLS (`verify-full`); the harness edits the tables over a plain connection.
    pub(crate) fn postgres_tls() -> Option<PostgresHarness> {
        let url = postgres_tls_url()?;
        let raw_url = postgres_url()?;
        Some(harness(url, raw_url))
    }

    fn harness(url: String, raw_url: String) -> PostgresHarness {
        let options = PostgresOptions {
            schema: unique("t"),
            ..PostgresOptions::default()
        };
        let store = PostgresReplayStore::connect(&url, &options).unwrap();
        PostgresHarness {
            url,
            raw_url,
            options,
            store,
        }
    }

    /// A plain client with `search_path` set to `schema`, for editing behind the store's back.
    pub(crate) fn postgres_raw(url: &str, schema: &str) -> postgres::Client {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .unwrap();
        client
    }

    impl PostgresHarness {
        pub(crate) fn raw(&self) -> postgres::Client {
            postgres_raw(&self.raw_url, &self.options.schema)
        }
    }

    impl Drop for PostgresHarness {
        fn drop(&mut self) {
            if let Ok(mut client) = postgres::Client::connect(&self.raw_url, postgres::NoTls) {
                let _ = client.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    self.options.schema
                ));
            }
        }
    }

    impl Harness for PostgresHarness {
        fn store(&self) -> &dyn ReplayStore {
            &self.store
        }

        fn reopen(&self) -> Option<Result<Box<dyn ReplayStore>, ReplayError>> {
            Some(
                PostgresReplayStore::connect(&self.url, &self.options)
                    .map(|s| Box::new(s) as Box<dyn ReplayStore>),
            )
        }

        fn tamper_and_verify(&self, tamper: &Tamper) -> LedgerReport {
            self.tamper_storage(tamper);
            verify_ledger(&self.store).unwrap()
        }

        fn tamper_storage(&self, tamper: &Tamper) -> bool {
            let mut raw = self.raw();
            // Each tamper changes exactly one row: one that matched none would leave the
            // storage as it was, and a test expecting it intact would pass on nothing.
            let one =
                |changed| assert_eq!(changed, 1, "the tamper {tamper:?} changed {changed} rows");
            let as_i64 = |p: &u64| i64::try_from(*p).unwrap();
            match tamper {
                Tamper::ReplaceRecord { position, bytes } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET record = $1 WHERE position = $2",
                            &[bytes, &as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::DeleteRecord { position } => {
                    one(raw
                        .execute(
                            "DELETE FROM ledger WHERE position = $1",
                            &[&as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::SwapRecords { a, b } => {
                    let mut read = |p: i64| -> (String, Vec<u8>) {
                        let row = raw
                            .query_one(
                                "SELECT execution_id, record FROM ledger WHERE position = $1",
                                &[&p],
                            )
                            .unwrap();
                        (row.get(0), row.get(1))
                    };
                    let (ra, rb) = (read(as_i64(a)), read(as_i64(b)));
                    for (position, (execution_id, record)) in [(as_i64(a), rb), (as_i64(b), ra)] {
                        one(raw.execute(
                            "UPDATE ledger SET execution_id = $1, record = $2 WHERE position = $3",
                            &[&execution_id, &record, &position],
                        ).unwrap());
                    }
                }
                Tamper::ReplaceAttestation {
                    execution_id,
                    bytes,
                } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET attestation = $1 WHERE id = $2",
                            &[bytes, execution_id],
                        )
                        .unwrap());
                }
                Tamper::ResetMarks { to } => {
                    one(raw
                        .execute(
                            "UPDATE high_water_marks SET trust_root = $1, release_manifest = $2",
                            &[&as_i64(&to.trust_root), &as_i64(&to.release_manifest)],
                        )
                        .unwrap());
                }
                Tamper::FileAsExecution {
                    position,
                    execution_id,
                } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET kind = 'execution', execution_id = $1
                         WHERE position = $2",
                            &[execution_id, &as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::FileAsMarks { position } => {
                    one(raw.execute(
                        "UPDATE ledger SET kind = 'marks', execution_id = NULL WHERE position = $1",
                        &[&as_i64(position)],
                    ).unwrap());
                }
                Tamper::ReplaceCheckpointRoot { size, root } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET root = $1 WHERE size = $2",
                            &[&root.to_string(), &as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ResizeCheckpoint { size, to } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET size = $1 WHERE size = $2",
                            &[to, &as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ReplaceCheckpointNote { size, note } => {
                    one(raw
                        .execute(
                            "UPDATE checkpoints SET note = $1 WHERE size = $2",
                            &[note, &as_i64(size)],
                        )
                        .unwrap());
                }
                Tamper::ReplaceClaimedAt {
                    execution_id,
                    claimed_at,
                } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET claimed_at = $1 WHERE id = $2",
                            &[claimed_at, execution_id],
                        )
                        .unwrap());
                }
                Tamper::ReplaceKind { position, kind } => {
                    raw.batch_execute(
                        "ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_kind;
                         ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_kind_execution_id",
                    )
                    .unwrap();
                    one(raw
                        .execute(
                            "UPDATE ledger SET kind = $1 WHERE position = $2",
                            &[kind, &as_i64(position)],
                        )
                        .unwrap());
                }
                Tamper::RenameExecution { execution_id, to } => {
                    one(raw
                        .execute(
                            "UPDATE executions SET id = $1 WHERE id = $2",
                            &[to, execution_id],
                        )
                        .unwrap());
                }
                Tamper::AppendMarksRows { count } => {
                    let appended = raw
                        .execute(
                            "INSERT INTO ledger (position, kind, execution_id, record)
                             SELECT (SELECT max(position) FROM ledger) + i, 'marks', NULL,
                                    '{}'::bytea
                             FROM generate_series(1::bigint, $1::bigint) i",
                            &[&as_i64(count)],
                        )
                        .unwrap();
                    assert_eq!(appended, *count);
                    one(raw
                        .execute(
                            "UPDATE ledger_head SET next_position = next_position + $1",
                            &[&as_i64(count)],
                        )
                        .unwrap());
                }
                Tamper::AppendMarks { marks } => {
                    let row = raw
                        .query_one(
                            "SELECT position, record FROM ledger ORDER BY position DESC LIMIT 1",
                            &[],
                        )
                        .unwrap();
                    let (position, last): (i64, Vec<u8>) = (row.get(0), row.get(1));
                    let next = u64::try_from(position).unwrap() + 1;
                    let record = chained_marks_record(next, &last, *marks);
                    one(raw
                        .execute(
                            "INSERT INTO ledger (position, kind, execution_id, record)
                         VALUES ($1, 'marks', NULL, $2)",
                            &[&as_i64(&next), &record],
                        )
                        .unwrap());
                    one(raw
                        .execute(
                            "UPDATE ledger_head SET next_position = $1, previous = $2",
                            &[&as_i64(&(next + 1)), &Digest::of(&record).to_string()],
                        )
                        .unwrap());
                }
                Tamper::CopyMarksRecord { from } => {
                    one(raw
                        .execute(
                            "INSERT INTO ledger (position, kind, execution_id, record)
                             SELECT (SELECT max(position) FROM ledger) + 1, 'marks', NULL, record
                             FROM ledger WHERE position = $1",
                            &[&as_i64(from)],
                        )
                        .unwrap());
                }
                Tamper::MoveRecord { position, to } => {
                    one(raw
                        .execute(
                            "UPDATE ledger SET position = $1 WHERE position = $2",
                            &[to, &as_i64(position)],
                        )
                        .unwrap());
                }
            }
            true
        }

        fn corrupt_claim(&self, execution_id: &str) -> bool {
            self.raw()
                .execute(
                    "UPDATE executions SET request_digest = 'sha1:nope' WHERE id = $1",
                    &[&execution_id],
                )
                .unwrap();
            true
        }

        fn set_schema_version(&self, version: i64) -> Option<i64> {
            self.raw()
                .execute("UPDATE schema_version SET version = $1", &[&version])
                .unwrap();
            Some(4)
        }

        fn tampers_with_storage(&self) -> bool {
            true
        }

        fn hold_raise(&self, to: AcceptedVersions) -> Option<Box<dyn HeldRaise>> {
            let mut raw = self.raw();
            raw.batch_execute("BEGIN").unwrap();
            raw.execute(
                "UPDATE high_water_marks SET trust_root = $1, release_manifest = $2",
                &[
                    &i64::try_from(to.trust_root).unwrap(),
                    &i64::try_from(to.release_manifest).unwrap(),
                ],
            )
            .unwrap();
            Some(Box::new(PostgresHeld(raw)))
        }
    }

    struct PostgresHeld(postgres::Client);

    impl HeldRaise for PostgresHeld {
        fn commit(mut self: Box<Self>) {
            self.0.batch_execute("COMMIT").unwrap();
        }
    }
}
