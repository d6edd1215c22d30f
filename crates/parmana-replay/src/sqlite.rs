//! `SqliteReplayStore`: the embedded default backend — one SQLite file (WAL, `synchronous=FULL`), group commit.
//!
//! All writes of a store go through one writer thread that owns the write connection. It
//! takes every request waiting in its queue (up to [`MAX_BATCH`]), applies them in order in
//! one `BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller through
//! its own channel. While one commit is being synced to disk the next batch gathers, so many
//! concurrent callers share one fsync instead of queueing for one each. Other processes
//! using the same file serialize on SQLite's write lock (with a busy timeout); a claim is an
//! `INSERT … ON CONFLICT DO NOTHING` inside that lock, so there is no check-then-set window —
//! and so are its rollback, marks-reset and clock checks, read in the same transaction.

mod read_only;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use watch::{
    FileIdentity, SchemaWatch, current_schema_version, file_id, refuse_multiple_links,
    resolve_store_path,
};
use writer::{append_marks_record, writer_loop};

use crate::error::VersionKind;
use crate::ledger::{
    KIND_EXECUTION, KIND_MARKS, LedgerHead, LedgerRecord, encode_marks_record, encode_record,
    filed_under, marks_proven,
};
use crate::record::{
    GuardState, MARKS_RECORDS_SINCE, Raise, decode_claim, decode_execution_id,
    decode_stored_checkpoint, decode_timestamp, decode_version, encode_version, pending_migrations,
};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId, ExecutionState,
    LedgerRow, LedgerSummary, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
};

/// The most requests committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema migrations, in order; the schema version is the number applied (`PRAGMA user_version`).
/// This build writes and reads schema version `MIGRATIONS.len()`.
const MIGRATIONS: &[&str] = &[
    // 1: executions, ledger, high-water marks.
    "CREATE TABLE executions (
        id TEXT PRIMARY KEY NOT NULL,
        request_digest TEXT NOT NULL,
        attestation_inputs BLOB NOT NULL,
        claimed_at TEXT NOT NULL,
        attestation BLOB,
        ledger_position INTEGER
    );
    CREATE INDEX executions_pending ON executions (id) WHERE attestation IS NULL;
    CREATE TABLE ledger (
        position INTEGER PRIMARY KEY NOT NULL,
        execution_id TEXT NOT NULL,
        record BLOB NOT NULL
    );
    CREATE TABLE high_water_marks (
        singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
        trust_root INTEGER NOT NULL,
        release_manifest INTEGER NOT NULL
    );
    INSERT INTO high_water_marks (singleton, trust_root, release_manifest) VALUES (1, 0, 0);",
    // 2: marks records in the ledger (`kind`; `execution_id` only on execution records), the
    // index that finds the newest marks record, and the one that finds the newest claim.
    // Execution records keep their bytes. (A marks record for marks raised before is appended
    // by `migrate`.)
    "CREATE TABLE ledger_v2 (
        position INTEGER PRIMARY KEY NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('execution', 'marks')),
        execution_id TEXT,
        record BLOB NOT NULL,
        CHECK ((kind = 'execution') = (execution_id IS NOT NULL))
    );
    INSERT INTO ledger_v2 (position, kind, execution_id, record)
        SELECT position, 'execution', execution_id, record FROM ledger;
    DROP TABLE ledger;
    ALTER TABLE ledger_v2 RENAME TO ledger;
    CREATE INDEX ledger_marks ON ledger (position) WHERE kind = 'marks';
    CREATE INDEX executions_claimed_at ON executions (claimed_at);",
    // 3: the batched sequencer. A completion writes only its execution row; the sequencer finds
    // the completed executions without a ledger position through `executions_unsequenced` (in
    // the order it takes them) and keeps the signed checkpoints in `checkpoints`. Every record
    // and every execution keeps its bytes.
    "CREATE INDEX executions_unsequenced ON executions (claimed_at, id)
        WHERE attestation IS NOT NULL AND ledger_position IS NULL;
    CREATE TABLE checkpoints (
        size INTEGER PRIMARY KEY NOT NULL,
        root TEXT NOT NULL,
        note TEXT NOT NULL
    );",
];

/// A replay store in one SQLite file, safe across threads and across processes on one machine.
///
/// Durability: WAL journal with `synchronous=FULL`, so an acknowledged claim or completion
/// survives a process kill or a power cut. Dropping the store finishes the queued writes and
/// stops its writer thread.
#[derive(Debug)]
pub struct SqliteReplayStore {
    path: PathBuf,
    /// The writer thread's queue; `None` for a store opened only to read
    /// ([`open_read_only`](Self::open_read_only)), which refuses every write.
    writer: Option<Sender<WriteRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    reader: Mutex<Watched>,
    files: FileIdentity,
}

/// A connection of the store with what it last verified of the schema.
#[derive(Debug)]
struct Watched {
    conn: Connection,
    schema: SchemaWatch,
}

/// The reader connection in a read transaction whose files and schema were checked, ended when
/// dropped: every read of the store goes through one.
struct ReadGuard<'a> {
    reader: MutexGuard<'a, Watched>,
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.reader.conn
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        // A read transaction wrote nothing; ending it cannot lose anything.
        let _ = self.reader.conn.execute_batch("ROLLBACK");
    }
}

#[derive(Debug)]
enum WriteOp {
    Claim(ExecutionId, ClaimRecord, AcceptedVersions),
    Complete(ExecutionId, Vec<u8>),
    AcceptVersions(u64, u64),
    Sequence(usize),
    StoreCheckpoint(StoredCheckpoint),
}

#[derive(Debug)]
enum WriteAnswer {
    Claim(ClaimOutcome),
    Complete,
    Versions(AcceptedVersions),
    Sequenced(Vec<LedgerRow>),
    Stored,
}

impl WriteOp {
    /// The write, as a refusal names it.
    fn name(&self) -> &'static str {
        match self {
            Self::Claim(..) => "claim",
            Self::Complete(..) => "complete",
            Self::AcceptVersions(..) => "accept_versions",
            Self::Sequence(_) => "sequence",
            Self::StoreCheckpoint(_) => "store_checkpoint",
        }
    }
}

#[derive(Debug)]
struct WriteRequest {
    op: WriteOp,
    reply: SyncSender<Result<WriteAnswer, ReplayError>>,
}

impl SqliteReplayStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    ///
    /// Refused with `replay.schema_version_unsupported` when the file was written by a newer
    /// build, `replay.store_corrupt` when it is not a usable database.
    ///
    /// A file with more than one hard link is refused (`replay.store_multiple_links`): SQLite
    /// keeps its write-ahead log and lock files per name, so two names of one file would let
    /// two writers work unaware of each other.
    ///
    /// Processes that open one store at once wait for each other: SQLite answers "busy" at
    /// once, without waiting on its own, while another connection switches a new file to WAL,
    /// recovers its log or migrates it, so opening is tried again, for up to the busy timeout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        Self::open_as(path.as_ref(), true)
    }

    /// Opens the existing store at `path` without creating or migrating anything, for the
    /// commands that only read or complete: a file that is not there or holds no store is
    /// `replay.invalid_configuration`, a store at an older schema version
    /// `replay.schema_version_outdated` (a command that executes migrates it), so that an audit
    /// never changes the schema of a store older processes write.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        Self::open_as(path.as_ref(), false)
    }

    fn open_as(path: &Path, create: bool) -> Result<Self, ReplayError> {
        let path = resolve_store_path(path)?;
        refuse_multiple_links(&path)?;
        if create {
            create_private_file(&path);
        } else if !path.is_file() {
            return Err(ReplayError::InvalidConfiguration {
                message: format!("no SQLite store at {}", path.display()),
            });
        }
        // The file as it was before SQLite opened it: one swapped in meanwhile is refused below.
        let before = file_id(&path)?;
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let (writer_conn, reader) = loop {
            let opened = connect(&path, create).and_then(|mut writer| {
                if create {
                    migrate(&mut writer)?;
                } else {
                    check_existing(&writer, &path)?;
                }
                Ok((writer, connect(&path, false)?))
            });
            match opened {
                Ok(connections) => break connections,
                Err(failure) if failure.busy && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(failure) => return Err(failure.error),
            }
        };
        let files = FileIdentity::of(&path)?;
        files.check_opened(&path, before)?;
        let mut writer = Watched {
            conn: writer_conn,
            schema: SchemaWatch::default(),
        };
        writer.schema.check(&writer.conn)?;
        let writer_files = files.clone();
        let (sender, receiver) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("parmana-sqlite-writer".to_owned())
            .spawn(move || writer_loop(writer, &writer_files, receiver))
            .map_err(|e| {
                ReplayError::unavailable(format!("cannot start the writer thread: {e}"))
            })?;
        Ok(Self {
            path,
            writer: Some(sender),
            writer_thread: Some(writer_thread),
            reader: Mutex::new(Watched {
                conn: reader,
                schema: SchemaWatch::default(),
            }),
            files,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the write lock of the existing store at `path` (`BEGIN IMMEDIATE` on a connection
    /// of its own) and holds it until the returned [`WriteHold`] is dropped, writing nothing.
    /// Meanwhile every writer of the file — a store open in this process or another, a server,
    /// the CLI — waits, up to its busy timeout; readers go on. For a consistent copy of a store
    /// in use, and for seeing what callers do while their store is slow.
    pub fn hold_writes(path: impl AsRef<Path>) -> Result<WriteHold, ReplayError> {
        let path = resolve_store_path(path.as_ref())?;
        let conn = connect(&path, false).map_err(|failure| failure.error)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(map_error)?;
        Ok(WriteHold { conn })
    }

    /// Runs SQLite's full `PRAGMA integrity_check`; `replay.store_corrupt` unless it reports `ok`.
    pub fn check_integrity(&self) -> Result<(), ReplayError> {
        let reader = self.reader()?;
        let mut statement = reader
            .prepare("PRAGMA integrity_check")
            .map_err(map_error)?;
        let findings: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        if findings == ["ok"] {
            Ok(())
        } else {
            Err(ReplayError::corrupt(format!(
                "integrity check: {}",
                findings.join("; ")
            )))
        }
    }

    /// The reader connection, in a read transaction, once the store's files are still the ones
    /// it opened and its schema is still this build's.
    fn reader(&self) -> Result<ReadGuard<'_>, ReplayError> {
        let reader = self
            .reader
            .lock()
            .map_err(|_| ReplayError::unavailable("the reader connection was poisoned"))?;
        self.files.check()?;
        reader.conn.execute_batch("BEGIN").map_err(map_error)?;
        let mut read = ReadGuard { reader };
        let Watched { conn, schema } = &mut *read.reader;
        schema.check(conn)?;
        Ok(read)
    }

    fn write(&self, op: WriteOp) -> Result<WriteAnswer, ReplayError> {
        let writer = self.writer.as_ref().ok_or(ReplayError::ReadOnly {
            operation: op.name(),
        })?;
        let (reply, answer) = mpsc::sync_channel(1);
        writer
            .send(WriteRequest { op, reply })
            .map_err(|_| ReplayError::unavailable("the writer thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| ReplayError::unavailable("the writer thread stopped before answering"))?
    }
}

impl Drop for SqliteReplayStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and return.
        drop(self.writer.take());
        if let Some(thread) = self.writer_thread.take() {
            // A writer thread cannot panic (no panicking code); nothing to report if it did.
            let _ = thread.join();
        }
    }
}

impl ReplayStore for SqliteReplayStore {
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        crate::check_stored_size(
            crate::StoredValue::RecordedInputs,
            record.attestation_inputs().len(),
        )?;
        match self.write(WriteOp::Claim(execution_id.clone(), record.clone(), under))? {
            WriteAnswer::Claim(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        crate::check_stored_size(crate::StoredValue::Attestation, attestation.len())?;
        match self.write(WriteOp::Complete(
            execution_id.clone(),
            attestation.to_vec(),
        ))? {
            WriteAnswer::Complete => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError> {
        // The writer applies it under `BEGIN IMMEDIATE`: the write lock is the integrator lock.
        match self.write(WriteOp::Sequence(max))? {
            WriteAnswer::Sequenced(rows) => Ok(SequenceOutcome::Integrated(rows)),
            other => Err(unexpected(&other)),
        }
    }

    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError> {
        match self.write(WriteOp::StoreCheckpoint(checkpoint.clone()))? {
            WriteAnswer::Stored => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        let reader = self.reader()?;
        let row: Option<(i64, Option<String>, Option<String>)> = reader
            .prepare_cached(&format!(
                "SELECT {} FROM checkpoints ORDER BY size DESC LIMIT 1",
                crate::BOUNDED_CHECKPOINT_COLUMNS
            ))
            .map_err(map_error)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()
            .map_err(map_error)?;
        row.map(|(size, root, note)| decode_stored_checkpoint(size, root, note))
            .transpose()
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        let reader = self.reader()?;
        // Every value bounded by its length before it is read (a writer of the store may have
        // made one of any size): over the bound, it reads as NULL and is refused below.
        let row = reader
            .prepare_cached(
                "SELECT CASE WHEN octet_length(request_digest) <= 128 THEN request_digest END,
                        CASE WHEN octet_length(attestation_inputs) <= ?2 THEN attestation_inputs END,
                        CASE WHEN octet_length(claimed_at) <= 64 THEN claimed_at END,
                        CASE WHEN octet_length(attestation) <= ?3 THEN attestation END,
                        attestation IS NOT NULL
                 FROM executions WHERE id = ?1",
            )
            .map_err(map_error)?
            .query_row(
                rusqlite::params![
                    execution_id.as_str(),
                    crate::MAX_STORED_EXECUTION_BYTES,
                    crate::MAX_STORED_ATTESTATION_BYTES
                ],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<Vec<u8>>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<Vec<u8>>>(3)?,
                        row.get::<_, bool>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(map_error)?;
        let Some((digest, inputs, claimed_at, attestation, completed)) = row else {
            return Ok(ExecutionState::Absent);
        };
        let (Some(digest), Some(inputs), Some(claimed_at)) = (digest, inputs, claimed_at) else {
            return Err(crate::record::oversized_execution(execution_id));
        };
        if completed && attestation.is_none() {
            return Err(crate::record::oversized_execution(execution_id));
        }
        let claim = decode_claim(&digest, inputs, &claimed_at)?;
        Ok(match attestation {
            None => ExecutionState::Claimed(claim),
            Some(attestation) => {
                ExecutionState::Completed(CompletedExecution::new(claim, attestation))
            }
        })
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        let reader = self.reader()?;
        // The ids in byte order (SQLite's BINARY collation), a range of the pending index (a
        // statement of its own for the first page, so that each page seeks rather than scans),
        // each read only when it is no longer than an id can be.
        let mut statement = reader
            .prepare_cached(if after.is_some() {
                "SELECT CASE WHEN octet_length(id) <= ?3 THEN id END FROM executions
                 WHERE attestation IS NULL AND id > ?1 ORDER BY id LIMIT ?2"
            } else {
                "SELECT CASE WHEN octet_length(id) <= ?3 THEN id END FROM executions
                 WHERE attestation IS NULL AND ?1 IS NULL ORDER BY id LIMIT ?2"
            })
            .map_err(map_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let max_len = i64::try_from(crate::MAX_EXECUTION_ID_LEN).unwrap_or(i64::MAX);
        let ids: Vec<Option<String>> = statement
            .query_map(
                rusqlite::params![after.map(ExecutionId::as_str), limit, max_len],
                |row| row.get::<_, Option<String>>(0),
            )
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        ids.iter()
            .map(|id| crate::record::decode_bounded_execution_id(id.as_deref()))
            .collect()
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        // One read transaction: the marks row and the marks records from one snapshot.
        let reader = self.reader()?;
        let guard = read_guard(&reader)?;
        drop(reader);
        guard.check_not_reset()
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        match self.write(WriteOp::AcceptVersions(trust_root, release_manifest))? {
            WriteAnswer::Versions(versions) => Ok(versions),
            other => Err(unexpected(&other)),
        }
    }

    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        // One read transaction: the counts, checkpoints and marks come from the same snapshot.
        let tx = self.reader()?;
        let records: i64 = tx
            .query_row("SELECT count(*) FROM ledger", [], |row| row.get(0))
            .map_err(map_error)?;
        let completed: i64 = tx
            .query_row(
                "SELECT count(*) FROM executions WHERE attestation IS NOT NULL",
                [],
                |row| row.get(0),
            )
            .map_err(map_error)?;
        let unsequenced: i64 = tx
            .query_row(
                "SELECT count(*) FROM executions
                 WHERE attestation IS NOT NULL AND ledger_position IS NULL",
                [],
                |row| row.get(0),
            )
            .map_err(map_error)?;
        let (smallest, largest): (Option<i64>, Option<i64>) = tx
            .query_row("SELECT min(size), max(size) FROM checkpoints", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(map_error)?;
        let marks = read_marks_row(&tx)?;
        drop(tx);
        crate::record::SummaryCounts {
            records,
            completed,
            unsequenced,
            smallest_checkpoint: smallest,
            largest_checkpoint: largest,
        }
        .into_summary(marks)
    }

    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        let Some((from, max)) = crate::record::sql_page(from, max) else {
            return Ok(Vec::new());
        };
        let reader = self.reader()?;
        let mut statement = reader
            .prepare_cached(&format!(
                "SELECT {} FROM checkpoints WHERE size >= ?1 ORDER BY size LIMIT ?2",
                crate::BOUNDED_CHECKPOINT_COLUMNS
            ))
            .map_err(map_error)?;
        let stored: Vec<(i64, Option<String>, Option<String>)> = statement
            .query_map([from, max], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        stored
            .into_iter()
            .map(|(size, root, note)| decode_stored_checkpoint(size, root, note))
            .collect()
    }

    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        let Some((from, max)) = crate::record::sql_page(from, max) else {
            return Ok(Vec::new());
        };
        let reader = self.reader()?;
        let mut statement = reader
            .prepare_cached(&crate::record::ledger_page_query('?'))
            .map_err(map_error)?;
        let query = statement
            .query(rusqlite::params![from, max, crate::MAX_LEDGER_PAGE_BYTES])
            .map_err(map_error)?;
        decode_ledger_rows(query)
    }

    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        let Some((from, max)) =
            crate::record::sql_page(from, max.min(crate::MAX_LEDGER_RECORDS_PAGE))
        else {
            return Ok(Vec::new());
        };
        let reader = self.reader()?;
        let mut statement = reader
            .prepare_cached(&crate::record::ledger_records_query('?'))
            .map_err(map_error)?;
        let mut query = statement
            .query(rusqlite::params![from, max])
            .map_err(map_error)?;
        let mut records = Vec::new();
        while let Some(row) = query.next().map_err(map_error)? {
            let position: i64 = row.get(0).map_err(map_error)?;
            if row.get::<_, bool>(4).map_err(map_error)? {
                return Err(crate::record::oversized_ledger_row(position));
            }
            let kind: String = row.get(1).map_err(map_error)?;
            records.push(LedgerRecord {
                position: decode_version(position)?,
                execution_id: filed_under(&kind, row.get(2).map_err(map_error)?)?,
                record: row.get(3).map_err(map_error)?,
            });
        }
        Ok(records)
    }
}

/// The rows of a query of [`bounded_ledger_columns`](crate::record::bounded_ledger_columns).
fn decode_ledger_rows(mut query: rusqlite::Rows<'_>) -> Result<Vec<LedgerRow>, ReplayError> {
    let mut rows = Vec::new();
    while let Some(row) = query.next().map_err(map_error)? {
        let position: i64 = row.get(0).map_err(map_error)?;
        if row.get::<_, bool>(8).map_err(map_error)? {
            return Err(crate::record::oversized_ledger_row(position));
        }
        let kind: String = row.get(1).map_err(map_error)?;
        let digest: Option<String> = row.get(4).map_err(map_error)?;
        let inputs: Option<Vec<u8>> = row.get(5).map_err(map_error)?;
        let claimed_at: Option<String> = row.get(6).map_err(map_error)?;
        let claim = match (digest, inputs, claimed_at) {
            (Some(d), Some(i), Some(c)) => Some(decode_claim(&d, i, &c)?),
            _ => None,
        };
        rows.push(LedgerRow {
            position: decode_version(position)?,
            execution_id: filed_under(&kind, row.get(2).map_err(map_error)?)?,
            record: row.get(3).map_err(map_error)?,
            claim,
            attestation: row.get(7).map_err(map_error)?,
        });
    }
    Ok(rows)
}

/// The write lock of a SQLite store, held until dropped ([`SqliteReplayStore::hold_writes`]);
/// dropping it rolls back its empty transaction.
#[derive(Debug)]
pub struct WriteHold {
    conn: Connection,
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        // Nothing was written: the rollback only ends the transaction (closing would too).
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

fn unexpected(answer: &WriteAnswer) -> ReplayError {
    ReplayError::unavailable(format!("the writer answered with {answer:?}"))
}

/// A failure while opening a store, and whether it is SQLite's "busy" (or "locked"), answered
/// at once while another connection switches the file to WAL, recovers its log or migrates it:
/// worth trying again.
struct OpenFailure {
    busy: bool,
    error: ReplayError,
}

impl From<ReplayError> for OpenFailure {
    fn from(error: ReplayError) -> Self {
        Self { busy: false, error }
    }
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(error: rusqlite::Error) -> Self {
        let busy = matches!(
            &error,
            rusqlite::Error::SqliteFailure(failure, _)
                if matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        );
        Self {
            busy,
            error: map_error(error),
        }
    }
}

/// Creates the store's file, empty, readable and writable by its owner only, when nothing is at
/// `path`: a claim records the request's signals in full (for `recover`), which an attestation
/// need not carry, so the store is not for other users to read. SQLite gives its `-wal` and
/// `-shm` files the mode of the database file. A file already there keeps its mode; any other
/// failure is left to SQLite's own open to report.
fn create_private_file(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// Opens one connection with the durability settings every connection of a store uses.
fn connect(path: &Path, create: bool) -> Result<Connection, OpenFailure> {
    // Not `SQLITE_OPEN_URI` (though the bundled SQLite reads a name that starts with `file:` as
    // a URI whatever the flags: `resolve_store_path` refuses such names before they get here).
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The store's tables declare no foreign key; one a writer of the file declares on a table
    // of its own, pointing into the store's, is not enforced (the bundled SQLite enforces them
    // by default): it would refuse the store's own writes.
    conn.pragma_update(None, "foreign_keys", false)?;
    // Before anything is written to the file (the WAL switch rewrites its header): another
    // application's database, or a store that lost its version, is refused untouched. One read
    // transaction: the version and the objects from one snapshot (another process may be
    // making the store meanwhile).
    conn.execute_batch("BEGIN")?;
    let unversioned = watch::check_unversioned_file(&conn);
    conn.execute_batch("COMMIT")?;
    unversioned?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ReplayError::unavailable(format!(
            "cannot switch {} to WAL (journal mode is {mode})",
            path.display()
        ))
        .into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Applies the missing migrations in one write transaction (safe when processes race to open).
/// A store that raised its marks before the ledger held marks records gets one now, so that the
/// ledger proves them from the upgrade on.
fn migrate(conn: &mut Connection) -> Result<(), OpenFailure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    // Again under the write lock (`connect` checked before it switched the file to WAL).
    watch::check_unversioned_file(&tx)?;
    for (applied, migration) in pending_migrations(found, MIGRATIONS)? {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", applied)?;
    }
    if (1..MARKS_RECORDS_SINCE).contains(&found) {
        let marks = read_marks_row(&tx)?;
        if marks != AcceptedVersions::default() {
            append_marks_record(&tx, |head| encode_marks_record(head, marks))?;
        }
    }
    Ok(tx.commit()?)
}

/// The marks row as stored (what a ledger snapshot reports beside the records, which
/// [`verify_ledger`](crate::verify_ledger) judges — a corrupt marks record among them is its
/// finding to report, not a failure to read).
fn read_marks_row(conn: &Connection) -> Result<AcceptedVersions, ReplayError> {
    let (trust_root, release_manifest): (i64, i64) = conn
        .prepare_cached(
            "SELECT trust_root, release_manifest FROM high_water_marks WHERE singleton = 1",
        )
        .map_err(map_error)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(map_error)?
        .ok_or_else(|| ReplayError::corrupt("the high-water marks row is missing"))?;
    Ok(AcceptedVersions::new(
        decode_version(trust_root)?,
        decode_version(release_manifest)?,
    ))
}

/// Reads, in the caller's transaction, what a claim or a raise is decided on: the marks row,
/// every marks record (through the partial index `ledger_marks`; one a raise) and the newest
/// claim time (through `executions_claimed_at`; the one spelling of a timestamp sorts as it
/// reads). What the marks records prove is the highest of each version over all of them, not
/// the newest one's: a writer of the store could append a lower one.
fn read_guard(conn: &Connection) -> Result<GuardState, ReplayError> {
    /// The marks row and the newest claim time, as stored (one over its bound — a writer's — is
    /// not read: its stand-in is refused as no timestamp).
    type GuardRow = (i64, i64, Option<String>);
    let row: Option<GuardRow> = conn
        .prepare_cached(
            "SELECT h.trust_root, h.release_manifest,
                    (SELECT CASE WHEN m.newest IS NULL OR octet_length(m.newest) <= 64
                                 THEN m.newest ELSE 'over its bound' END
                     FROM (SELECT max(e.claimed_at) AS newest FROM executions e) m)
             FROM high_water_marks h WHERE h.singleton = 1",
        )
        .map_err(map_error)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .map_err(map_error)?;
    let (trust_root, release_manifest, newest) =
        row.ok_or_else(|| ReplayError::corrupt("the high-water marks row is missing"))?;
    let records: Vec<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT CASE WHEN octet_length(record) <= ?1 THEN record END FROM ledger
             WHERE kind = 'marks' ORDER BY position LIMIT ?2",
        )
        .map_err(map_error)?
        .query_map(
            [crate::MAX_STORED_RECORD_BYTES, crate::MAX_MARKS_RECORDS + 1],
            |row| row.get(0),
        )
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)?;
    let records = records
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(crate::record::oversized_marks_record)?;
    crate::record::check_marks_count(records.len())?;
    Ok(GuardState {
        marks: AcceptedVersions::new(
            decode_version(trust_root)?,
            decode_version(release_manifest)?,
        ),
        proven: marks_proven(records.iter().map(Vec::as_slice))?,
        newest_claim: newest.as_deref().map(decode_timestamp).transpose()?,
    })
}

/// Sorts SQLite failures into "the data is bad", "the store is not set up to be used" and "the
/// store cannot be used right now" (the only one a retry may mend).
fn map_error(error: rusqlite::Error) -> ReplayError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => ReplayError::corrupt(error),
            // The store's own statements meet no constraint on a store it made (its inserts of
            // claims go by `ON CONFLICT`, a ledger position is taken under the write lock), nor
            // a table, column or index of its schema gone: someone changed the store.
            ErrorCode::ConstraintViolation => ReplayError::corrupt(error),
            ErrorCode::Unknown
                if message.as_deref().is_some_and(|message| {
                    ["no such table", "no such column", "no such index"]
                        .iter()
                        .any(|missing| message.starts_with(missing))
                        // An insert into a table a column of which was dropped or renamed.
                        || (message.starts_with("table ") && message.contains(" has no column named "))
                }) =>
            {
                ReplayError::corrupt(error)
            }
            // A file or directory the process may not write: SQLite writes the WAL and its index
            // beside the database.
            ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::AuthorizationForStatementDenied => ReplayError::InvalidConfiguration {
                message: format!(
                    "{error}: a SQLite store needs write access to its file and its directory \
                     to execute, recover or sequence (the commands that only read open it \
                     read-only)"
                ),
            },
            _ => ReplayError::unavailable(error),
        },
        // A value read back that is not what the store wrote: of another type, out of range, or
        // text that is not UTF-8 (SQLite stores a cast blob as text unchecked).
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => ReplayError::corrupt(error),
        _ => ReplayError::unavailable(error),
    }
}

/// Checks, writing nothing, that the existing store `conn` opened is at this build's schema
/// version.
fn check_existing(conn: &Connection, path: &Path) -> Result<(), OpenFailure> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = current_schema_version();
    match found {
        0 => Err(ReplayError::InvalidConfiguration {
            message: format!(
                "no SQLite store at {} (the file holds none)",
                path.display()
            ),
        }
        .into()),
        _ if found == current => Ok(()),
        ..0 => Err(crate::record::negative_schema_version(found).into()),
        1.. if found < current => Err(ReplayError::SchemaVersionOutdated { found, current }.into()),
        _ => Err(ReplayError::SchemaVersionUnsupported {
            found,
            supported: current,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests;
