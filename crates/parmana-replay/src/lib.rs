//! `parmana-replay`: replay stores — exactly-once execution ids, rollback high-water marks and a tamper-evident ledger.
//!
//! The runtime claims each [`ExecutionId`] in a [`ReplayStore`] before it releases anything —
//! on most stores before it signs:
//!
//! 1. [`ReplayStore::claim`] atomically reserves the id together with a [`ClaimRecord`]
//!    (request digest, canonical attestation inputs, clock reading), or answers
//!    [`ClaimOutcome::AlreadyClaimed`] — two callers can never both win. In the same atomic step
//!    it checks the versions the claim is made under against the store's rollback high-water
//!    marks (raising them, with a marks record in the ledger, when they are newer), the marks
//!    against the highest marks the ledger proves, and the clock reading against the newest
//!    one the store holds.
//! 2. [`ReplayStore::complete`] records the attestation in the execution's own row: one
//!    single-row write, so completions never wait for each other. The execution is then
//!    "completed, not yet sequenced".
//! 3. [`ReplayStore::sequence`] — the batched sequencer, one integrator at a time per store —
//!    gives completed executions the next ledger positions and appends their chained records;
//!    the runtime then signs a checkpoint of the grown log and keeps it with
//!    [`ReplayStore::store_checkpoint`].
//!
//! A crash between the two leaves the id in [`ReplayStore::pending`]; completing it from the
//! recorded inputs gives byte-identical output. A store that
//! [completes in one write](ReplayStore::completes_in_one_write) (PostgreSQL) is given the
//! attestation with the claim instead ([`ReplayStore::claim_completed`]): the runtime signs
//! first and the row is written once, already completed, so nothing is left pending. A claimed id is never reopened: there is no
//! expiry and no delete.
//!
//! The ledger holds two kinds of record, chained together: one per completed execution and one
//! per raise of the high-water marks (see `ledger.rs` and `docs/replay-stores.md`). It is also a
//! transparency log: [`ledger_log`] builds the RFC 9162 Merkle tree with one leaf per record, from
//! which signed checkpoints and inclusion and consistency proofs are made
//! (`docs/transparency-log.md`).
//!
//! Backends: [`MemoryReplayStore`] (always), `SqliteReplayStore` (feature `sqlite`, on by
//! default) and `PostgresReplayStore` (feature `postgres`). Every one passes the same
//! behavioural conformance suite (`tests/conformance.rs`).
//!
//! ```
//! use parmana_canon::{Digest, Timestamp};
//! use parmana_replay::{
//!     AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, MemoryReplayStore, ReplayStore,
//! };
//!
//! let store = MemoryReplayStore::new();
//! let id = ExecutionId::parse("exec-1").unwrap();
//! let now = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
//! let claim = ClaimRecord::new(Digest::of(b"request"), b"{}".to_vec(), now);
//! // Made under trust root 2 and release manifest 1: the store's marks rise to them.
//! let under = AcceptedVersions::new(2, 1);
//! assert_eq!(store.claim(&id, &claim, under).unwrap(), ClaimOutcome::Claimed);
//! assert_eq!(store.claim(&id, &claim, under).unwrap(), ClaimOutcome::AlreadyClaimed);
//! store.complete(&id, b"attestation").unwrap();
//! // Completed, not yet sequenced: the ledger holds only the marks record of the raise.
//! assert_eq!(parmana_replay::verify_ledger(&store).unwrap().unsequenced, 1);
//! assert_eq!(store.sequence(100).unwrap().rows().len(), 1);
//! // An older release manifest is refused from now on.
//! let older = AcceptedVersions::new(2, 0);
//! let other = ExecutionId::parse("exec-2").unwrap();
//! assert_eq!(store.claim(&other, &claim, older).unwrap_err().code(), "replay.version_rollback");
//! let report = parmana_replay::verify_ledger(&store).unwrap();
//! assert!(report.is_intact());
//! assert_eq!((report.records, report.executions, report.mark_records), (2, 1, 1));
//! ```

mod error;
mod ledger;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod read_only;
mod record;
mod sequencer;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tlog;
mod walk;

pub use error::{ReplayError, VersionKind};
pub use ledger::{
    LEDGER_GENESIS, LedgerBreak, LedgerBreakKind, LedgerRecord, LedgerReport, LedgerRow,
    LedgerSnapshot, verify_ledger, verify_ledger_snapshot,
};
pub use memory::MemoryReplayStore;
/// Execution ids are defined once, in `parmana-canon` (one grammar for every layer).
pub use parmana_canon::{ExecutionId, MAX_EXECUTION_ID_LEN};
#[cfg(feature = "postgres")]
pub use postgres::{
    IDLE_IN_TRANSACTION_TIMEOUT as POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT,
    LOCK_TIMEOUT as POSTGRES_LOCK_TIMEOUT, PostgresOptions, PostgresReplayStore,
};
pub use read_only::ReadOnlyStore;

/// The hosts a store `location` reaches over the network without checking who answers: for a
/// `postgres://` URL whose TLS settings verify no certificate (`sslmode` absent, `disable`,
/// `prefer` or `require` without `sslrootcert`), its hosts away from the loopback and Unix
/// sockets — a man in the middle can answer for them, and ask for the password in clear. Empty
/// for every other store, and in builds without the `postgres` feature. A host warns of it
/// (`parmana` does, `warning[cli.store_identity_unchecked]`).
pub fn store_hosts_unverified(location: &str) -> Vec<String> {
    #[cfg(feature = "postgres")]
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return postgres::hosts_reached_unverified(location);
    }
    let _ = location;
    Vec::new()
}
pub use record::{AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionState};
pub use sequencer::{
    DEFAULT_SEQUENCE_BATCH, MAX_SEQUENCE_BATCH_BYTES, SequenceOutcome, StoredCheckpoint,
    sequence_all,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteReplayStore, WriteHold};
pub use tlog::{
    CATCH_UP_BATCH, EntryHashes, ExecutionEntry, LedgerLog, execution_key, ledger_log,
    read_checked_entries,
};
pub use walk::{
    CHECKPOINT_PAGE, LedgerSummary, WalkedLedger, for_each_checkpoint, walk_ledger,
    walk_ledger_with,
};

/// How far (in seconds) a claim's clock reading may lie before the newest one a store holds
/// before it is refused with `replay.clock_behind_store`.
///
/// Time must not run backwards within one store — otherwise setting the clock back (or passing
/// an old `--now`) would execute again under a trust root or release manifest that has since
/// expired. The tolerance is not zero because one store is shared by runtimes on several
/// machines whose clocks are synchronized only approximately (NTP keeps them within
/// milliseconds when it works, seconds after a restart or a pause of a virtual machine; leap
/// seconds are smeared differently by different time sources) and because the system clock is
/// read in whole seconds. A minute absorbs all of these, while every clock change that matters
/// for expiry (documents are valid for months) is far larger.
pub const CLOCK_TOLERANCE_SECONDS: i64 = 60;

/// How many ids [`ReplayStore::pending`] reads at a time, and recovery completes per page.
pub const PENDING_PAGE: usize = 256;

/// The most bytes of one execution's recorded inputs a store writes (`replay.value_too_large`
/// beyond) and reads back: 8 MiB, four times what a runtime records at most (signals of at most
/// 1 MiB, twice when embedded in the predicate, and the predicate's own fields: the runtime
/// checks the margin at compile time); an attestation has its own bound,
/// [`MAX_STORED_ATTESTATION_BYTES`]. The store is outside the trust boundary: a larger stored
/// value — a writer's — is `replay.store_corrupt`, refused by its length before it is read, so a
/// planted row costs a reader at most this and an attestation's bound.
pub const MAX_STORED_EXECUTION_BYTES: i64 = 8 * 1024 * 1024;

/// The bytes — records, recorded inputs and attestations together — after which a page of
/// [`ReplayStore::ledger_rows`] takes no further row (so a page holds at most this much and one
/// row more; at least one row, however large): a writer of the store who filled every execution
/// to its bound still costs a reader catching up a bounded read at a time, not a page's count
/// times the bound.
pub const MAX_LEDGER_PAGE_BYTES: i64 = MAX_SEQUENCE_BATCH_BYTES;

/// The columns a stored checkpoint is read from — its size, root and note — each bounded by its
/// length (a root at most 128 bytes, a note at most 64 KiB, a signed note's limit): over it, the
/// value reads as NULL, unread, and the checkpoint is `replay.store_corrupt`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const BOUNDED_CHECKPOINT_COLUMNS: &str = "size,
    CASE WHEN octet_length(root) <= 128 THEN root END,
    CASE WHEN octet_length(note) <= 65536 THEN note END";

/// The most bytes of one execution's attestation a store writes (`replay.value_too_large`
/// beyond) and reads back (`replay.store_corrupt`, refused by its length before it is read): the
/// most an attestation's verifier reads (`parmana_trust::MAX_ENVELOPE_BYTES`, equal, as the
/// runtime's tests check), far more than a runtime signs (one embedding 1 MiB of signals is
/// about 1.4 MiB).
pub const MAX_STORED_ATTESTATION_BYTES: i64 = 4 * 1024 * 1024;

/// Refuses recorded inputs over [`MAX_STORED_EXECUTION_BYTES`], or an attestation over
/// [`MAX_STORED_ATTESTATION_BYTES`], before it is written: a store never acknowledges what it
/// would refuse to read back.
pub(crate) fn check_stored_size(what: StoredValue, bytes: usize) -> Result<(), ReplayError> {
    let (what, max) = match what {
        StoredValue::RecordedInputs => ("recorded inputs", MAX_STORED_EXECUTION_BYTES),
        StoredValue::Attestation => ("attestation", MAX_STORED_ATTESTATION_BYTES),
    };
    match i64::try_from(bytes) {
        Ok(len) if len <= max => Ok(()),
        _ => Err(ReplayError::ValueTooLarge { what, bytes, max }),
    }
}

/// A value of an execution's row a store bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredValue {
    /// The claim's recorded inputs.
    RecordedInputs,
    /// The signed attestation.
    Attestation,
}

/// The most bytes a store reads back of one ledger record (a marks record is about 150 bytes, an
/// execution record a few hundred); a larger one is `replay.store_corrupt`, refused by its
/// length before it is read.
pub const MAX_STORED_RECORD_BYTES: i64 = 4096;

/// The most marks records a store reads to decide a claim or a raise (one per trust-root or
/// release-manifest version a deployment takes: a handful in its life); more — a writer's — is
/// `replay.store_corrupt`, refused before they are read.
pub const MAX_MARKS_RECORDS: i64 = 10_000;

/// A replay store: the one place that decides whether an execution id may be used.
///
/// Every method is atomic on its own. Implementations are shared between threads
/// (`Send + Sync`) and, for the SQL backends, between processes and machines.
///
/// The store is outside the trust boundary: whoever can write its database holds no key. What
/// it holds is checked where it matters — the ledger is chained, the high-water marks are
/// cross-checked against the marks records of the ledger on every claim, recovery decides
/// again (in the runtime) — see `docs/trust-model.md`, "The replay store".
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Reserves `execution_id` with `record`, made under the trust-root and release-manifest
    /// versions `under`, or reports that it is already claimed.
    ///
    /// Exactly one of any number of concurrent callers gets [`ClaimOutcome::Claimed`]; the
    /// record of a lost claim is not stored. `Ok(Claimed)` is returned only once the claim is
    /// durable in the backend.
    ///
    /// In the same atomic step, before the id is touched, it refuses (and then changes
    /// nothing): marks lower than the ledger proves (`replay.marks_reset`); either version of
    /// `under` older than the store's mark (`replay.version_rollback`) or above 2^63−1
    /// (`replay.version_too_large`); a clock reading ([`ClaimRecord::claimed_at`]) more than
    /// [`CLOCK_TOLERANCE_SECONDS`] before the newest one the store holds
    /// (`replay.clock_behind_store`). Versions newer than the marks raise them, appending a
    /// marks record to the ledger, as [`accept_versions`](ReplayStore::accept_versions) does —
    /// so no claim is ever recorded under versions older than marks accepted before it.
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError>;

    /// Records `attestation` as the outcome of the claimed `execution_id`, durably, in the
    /// execution's own row (a single-row write: completions do not wait for each other). The
    /// execution is then completed — [`get`](ReplayStore::get) returns it — and not yet
    /// sequenced: its ledger record is written by a later [`sequence`](ReplayStore::sequence).
    ///
    /// Refused with `replay.not_claimed` for an id never claimed and
    /// `replay.already_completed` for one completed before (the first outcome stands).
    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError>;

    /// Whether [`claim_completed`](ReplayStore::claim_completed) is one durable write in this
    /// store. The runtime then signs before it claims and writes the execution once, already
    /// completed; otherwise it claims, signs and completes (the default: `false`).
    ///
    /// A store answering `true` must implement `claim_completed` as one commit (the default,
    /// a claim then a completion, does not): the inputs of such a claim are recorded as never
    /// left pending, and recovery refuses them (`runtime.claim_not_authenticated`), so an id a
    /// two-write `claim_completed` left claimed could never be recovered.
    fn completes_in_one_write(&self) -> bool {
        false
    }

    /// Claims `execution_id` exactly as [`claim`](ReplayStore::claim) does — the same checks,
    /// the same refusals, the same one winner among concurrent callers — and records
    /// `attestation` as its outcome: on [`ClaimOutcome::Claimed`] the execution is completed
    /// (not yet sequenced); on [`ClaimOutcome::AlreadyClaimed`] nothing is stored and
    /// `attestation` is dropped.
    ///
    /// The default claims, then completes (two writes: a crash between them leaves the id in
    /// [`pending`](ReplayStore::pending)). A store whose
    /// [`completes_in_one_write`](ReplayStore::completes_in_one_write) is `true` writes the
    /// claimed and completed row in one commit, sending `attestation` to its storage only once
    /// the claim has won (a writer of the storage never sees the attestation of a claim that lost
    /// or was refused).
    fn claim_completed(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: &[u8],
    ) -> Result<ClaimOutcome, ReplayError> {
        // Nothing is claimed for an attestation the store would refuse to keep.
        check_stored_size(StoredValue::Attestation, attestation.len())?;
        let outcome = self.claim(execution_id, record, under)?;
        if outcome == ClaimOutcome::Claimed {
            self.complete(execution_id, attestation)?;
        }
        Ok(outcome)
    }

    /// One run of the batched sequencer: takes the integrator lock of the store (or answers
    /// [`SequenceOutcome::Busy`] at once when another integrator holds it), gives at most `max`
    /// completed, not yet sequenced executions the next ledger positions — ordered by claim
    /// time, then execution id, both in byte order — and appends their chained execution
    /// records, in one transaction. Returns the records appended.
    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError>;

    /// Keeps a signed checkpoint of the log. A store keeps one checkpoint per size: storing a
    /// second one of a size already held changes nothing.
    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError>;

    /// The stored checkpoint of the largest size, if any.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError>;

    /// The state of `execution_id`: absent, claimed (with its record) or completed.
    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError>;

    /// One page of the ids claimed but not completed (the executions to finish after a crash):
    /// at most `limit` of them, in the store's order of ids, each after `after` (from the first
    /// with `None`). Paging on from the last id of each page until a page comes back short visits
    /// every id that stayed claimed meanwhile, with memory bounded by the page: a writer of the
    /// store may have claimed any number. A stored id longer than [`MAX_EXECUTION_ID_LEN`] is
    /// `replay.store_corrupt`, refused before it is read.
    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError>;

    /// Every id claimed but not completed, in byte order, read page by page with
    /// [`pending_after`](Self::pending_after). Its memory grows with their number: recovery
    /// pages through them instead.
    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError> {
        let mut ids: Vec<ExecutionId> = Vec::new();
        loop {
            let page = self.pending_after(ids.last(), PENDING_PAGE)?;
            let done = page.len() < PENDING_PAGE;
            ids.extend(page);
            if done {
                break;
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The highest trust-root and release-manifest versions accepted so far; refused with
    /// `replay.marks_reset` when they are lower than the highest marks any of the ledger's marks
    /// records proves.
    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError>;

    /// Accepts a trust root and a release manifest, raising the high-water marks, or refuses
    /// with `replay.version_rollback` if either is older than one accepted before (then
    /// nothing changes) and `replay.marks_reset` when the marks are lower than the ledger
    /// proves. Equal versions are accepted. A raise appends a marks record to the ledger in
    /// the same transaction. Returns the marks now in force.
    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError>;

    /// One consistent read of how many ledger records the store holds, how many completed
    /// executions (and how many of those are not yet sequenced), the largest stored checkpoint's
    /// size and the marks row: what a walk of the ledger ([`walk_ledger`]) reads before the
    /// records themselves, page by page, up to that count.
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError>;

    /// The stored checkpoints of sizes `from` or more, by increasing size, at most `max` (empty
    /// when none is left: a reader pages on from the last size until a page is empty): what a
    /// walk of the ledger reads, page by page ([`CHECKPOINT_PAGE`]), to check them against its
    /// tree, and an audit to check their notes. Each value is bounded by its length, as in
    /// [`latest_checkpoint`](Self::latest_checkpoint).
    fn checkpoints_from(&self, from: u64, max: usize)
    -> Result<Vec<StoredCheckpoint>, ReplayError>;

    /// The whole ledger in memory, with the executions its records name: the
    /// [`ledger_summary`](Self::ledger_summary), then every record up to its count, page by page
    /// ([`ledger_rows`](Self::ledger_rows)), and every stored checkpoint up to the largest size it
    /// saw. Records below that count never change in an intact ledger, so this is the ledger as
    /// it was at the summary's read; fewer records than counted are `replay.ledger_broken`
    /// (records missing). Its memory grows with the ledger: [`verify_ledger`] and [`ledger_log`]
    /// walk it page by page instead.
    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError> {
        read_ledger_snapshot(self)
    }

    /// The first `max` ledger records at positions `from` or later, in position order, each with
    /// the execution it names as the store holds it now (as in
    /// [`ledger_snapshot`](ReplayStore::ledger_snapshot)): in an intact ledger, the records at
    /// `from`, `from + 1`, …; fewer once the bytes of those before (records, recorded inputs,
    /// attestations) reach [`MAX_LEDGER_PAGE_BYTES`], but at least one when the store holds
    /// one; empty when it
    /// holds none from `from` on — so a reader pages on until a page is empty, not short. What a
    /// reader that holds the log up to `from` reads to catch up ([`LedgerLog::catch_up`]) instead
    /// of the whole ledger; the reader checks each record's position and chain.
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError>;

    /// The first `max` ledger records at positions `from` or later (at most
    /// [`MAX_LEDGER_RECORDS_PAGE`] of them), in position order, each alone — without the
    /// execution's recorded inputs and attestation [`ledger_rows`](Self::ledger_rows) reads with
    /// it: what serving the log's entries and proofs reads, whose records are bounded
    /// ([`MAX_STORED_RECORD_BYTES`]; one over it is `replay.store_corrupt`, unread). Empty when
    /// the store holds none from `from` on. By default, [`ledger_rows`](Self::ledger_rows)
    /// without the rest; the SQL stores read the records alone.
    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        Ok(self
            .ledger_rows(from, max.min(MAX_LEDGER_RECORDS_PAGE))?
            .into_iter()
            .map(|row| LedgerRecord {
                position: row.position,
                execution_id: row.execution_id,
                record: row.record,
            })
            .collect())
    }
}

/// The most records one [`ReplayStore::ledger_records`] page holds (each at most
/// [`MAX_STORED_RECORD_BYTES`]: a page at most 4 MiB).
pub const MAX_LEDGER_RECORDS_PAGE: usize = 1024;

/// What [`ReplayStore::ledger_snapshot`] reads unless a store reads it otherwise: the summary,
/// then every record up to its count, page by page, and every stored checkpoint up to the largest
/// size it saw (`replay.ledger_broken`, records missing, when fewer records come back).
pub fn read_ledger_snapshot<S: ReplayStore + ?Sized>(
    store: &S,
) -> Result<LedgerSnapshot, ReplayError> {
    let summary = store.ledger_summary()?;
    let mut rows: Vec<LedgerRow> = Vec::new();
    let mut read = 0_u64;
    while read < summary.records {
        let left = usize::try_from(summary.records - read).unwrap_or(usize::MAX);
        // As a walk reads: from the number of records read (in an intact ledger, the next
        // position).
        let page = store.ledger_rows(read, left)?;
        if page.is_empty() {
            // Fewer records than the summary counted: not a snapshot of that ledger.
            return Err(ReplayError::LedgerBroken(LedgerBreak {
                position: read,
                kind: LedgerBreakKind::RecordsMissing {
                    completed: summary.completed_executions,
                },
            }));
        }
        for row in page.into_iter().take(left) {
            rows.push(row);
            read += 1;
        }
    }
    let mut checkpoints = Vec::new();
    if let Some(largest) = summary.largest_checkpoint {
        for_each_checkpoint(store, largest, |checkpoint| {
            checkpoints.push(checkpoint.clone());
            true
        })?;
    }
    Ok(LedgerSnapshot {
        rows,
        completed_executions: summary.completed_executions,
        unsequenced: summary.unsequenced,
        checkpoints,
        marks: summary.marks,
    })
}

/// Opens the store named by `location`, as the command line spells it:
/// `memory`, `sqlite:PATH`, or a `postgres://…` / `postgresql://…` URL (default [`PostgresOptions`]).
///
/// A backend this build was compiled without is `replay.invalid_configuration`.
///
/// ```
/// let store = parmana_replay::open_store("memory").unwrap();
/// assert!(store.pending().unwrap().is_empty());
/// assert_eq!(parmana_replay::open_store("redis://x").unwrap_err().code(), "replay.invalid_configuration");
/// ```
pub fn open_store(location: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    open_store_as(location, Opening::Create)
}

/// Like [`open_store`], for the commands that only read, complete or sequence: a store is
/// opened without DDL or any write of its own (`create: false` in [`PostgresOptions`],
/// [`SqliteReplayStore::open_existing`]; the caller may still write through it), and one not
/// there or at an older schema version is refused instead of created or migrated.
pub fn open_existing_store(location: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    open_store_as(location, Opening::Existing)
}

/// Like [`open_existing_store`], for the commands that only read (`ledger verify`, `ledger
/// export`, `show`, `log prove`): every write through the store is refused
/// (`replay.store_read_only`, [`ReadOnlyStore`]) whatever the backend; a SQLite store is opened
/// read-only (`SqliteReplayStore::open_read_only`: an auditor needs read access to its files,
/// not write access, while a process has it open); a PostgreSQL store is opened as
/// [`open_existing_store`] opens it (a role with `SELECT` alone reads it).
pub fn open_read_only_store(location: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Ok(Box::new(ReadOnlyStore::new(open_store_as(
        location,
        Opening::ReadOnly,
    )?)))
}

/// How a store is opened: whether it may be created or migrated, and whether it may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Create,
    Existing,
    ReadOnly,
}

fn open_store_as(location: &str, opening: Opening) -> Result<Box<dyn ReplayStore>, ReplayError> {
    if location == "memory" {
        return Ok(Box::new(MemoryReplayStore::new()));
    }
    if let Some(path) = location.strip_prefix("sqlite:") {
        return open_sqlite(path, opening);
    }
    let create = opening == Opening::Create;
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return open_postgres(location, create);
    }
    Err(ReplayError::InvalidConfiguration {
        message: unknown_store_kind(location),
    })
}

/// Whether `location` is of a kind a store can be (`memory`, `sqlite:PATH`, `postgres://…` or
/// `postgresql://…`) — what [`open_store`] opens, or refuses for what is there.
pub fn is_store_location(location: &str) -> bool {
    location == "memory"
        || location
            .strip_prefix("sqlite:")
            .is_some_and(|path| !path.is_empty())
        || location.starts_with("postgres://")
        || location.starts_with("postgresql://")
}

/// The refusal of a location of no known kind. Only what comes before its first separator is
/// echoed, at most 32 characters: the rest of a mistyped URL, or of a `key=value` string, may
/// hold a password.
pub fn unknown_store_kind(location: &str) -> String {
    let kind: String = location
        .split([':', '/', '@', '?', '=', ' '])
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect();
    format!("unknown store kind {kind:?}: expected memory, sqlite:PATH or postgres://…")
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &str, opening: Opening) -> Result<Box<dyn ReplayStore>, ReplayError> {
    if path.is_empty() {
        return Err(ReplayError::InvalidConfiguration {
            message: "sqlite: needs a file path".to_owned(),
        });
    }
    Ok(Box::new(match opening {
        Opening::Create => SqliteReplayStore::open(path)?,
        Opening::Existing => SqliteReplayStore::open_existing(path)?,
        Opening::ReadOnly => SqliteReplayStore::open_read_only(path)?,
    }))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_path: &str, _opening: Opening) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Err(ReplayError::InvalidConfiguration {
        message: "this build has no SQLite store (feature `sqlite`)".to_owned(),
    })
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str, create: bool) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Ok(Box::new(PostgresReplayStore::connect(
        url,
        &PostgresOptions {
            create,
            ..PostgresOptions::default()
        },
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str, _create: bool) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Err(ReplayError::InvalidConfiguration {
        message: "this build has no PostgreSQL store (feature `postgres`)".to_owned(),
    })
}
