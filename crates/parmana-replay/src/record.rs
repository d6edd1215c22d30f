//! What a store records about one execution: the claim, its outcome, and the rollback high-water marks.

use parmana_canon::{Digest, Timestamp};

use crate::error::VersionKind;
use crate::{ExecutionId, ReplayError};

/// Everything recorded when an execution id is claimed: enough to finish the execution
/// after a crash with byte-identical output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    request_digest: Digest,
    attestation_inputs: Vec<u8>,
    claimed_at: Timestamp,
}

impl ClaimRecord {
    /// A claim for the request with digest `request_digest`, carrying the canonical bytes of
    /// every attestation input (`attestation_inputs`, opaque to the store) and the clock reading.
    pub fn new(request_digest: Digest, attestation_inputs: Vec<u8>, claimed_at: Timestamp) -> Self {
        Self {
            request_digest,
            attestation_inputs,
            claimed_at,
        }
    }

    /// The digest of the request that claimed the id.
    pub fn request_digest(&self) -> Digest {
        self.request_digest
    }

    /// The canonical bytes of the attestation inputs, exactly as given to [`ClaimRecord::new`].
    pub fn attestation_inputs(&self) -> &[u8] {
        &self.attestation_inputs
    }

    /// The clock reading of the execution.
    pub fn claimed_at(&self) -> Timestamp {
        self.claimed_at
    }
}

/// The answer of [`ReplayStore::claim`](crate::ReplayStore::claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an execution may proceed only when the claim was won"]
pub enum ClaimOutcome {
    /// This caller reserved the id; it must now execute and [`complete`](crate::ReplayStore::complete) it.
    Claimed,
    /// Someone already reserved the id (now or earlier): executing again would be a replay.
    AlreadyClaimed,
}

impl ClaimOutcome {
    /// `Ok(())` for [`ClaimOutcome::Claimed`], `replay.replay_detected` otherwise.
    pub fn require_claimed(self, execution_id: &ExecutionId) -> Result<(), ReplayError> {
        match self {
            Self::Claimed => Ok(()),
            Self::AlreadyClaimed => Err(ReplayError::AlreadyClaimed {
                execution_id: execution_id.as_str().to_owned(),
            }),
        }
    }
}

/// A completed execution: its claim and the attestation recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedExecution {
    claim: ClaimRecord,
    attestation: Vec<u8>,
}

impl CompletedExecution {
    pub(crate) fn new(claim: ClaimRecord, attestation: Vec<u8>) -> Self {
        Self { claim, attestation }
    }

    /// The claim the execution started with.
    pub fn claim(&self) -> &ClaimRecord {
        &self.claim
    }

    /// The attestation bytes recorded by [`complete`](crate::ReplayStore::complete).
    pub fn attestation(&self) -> &[u8] {
        &self.attestation
    }
}

/// The state of one execution id in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    /// Never claimed.
    Absent,
    /// Claimed but not completed: in flight, or interrupted by a crash (see [`ReplayStore::pending`](crate::ReplayStore::pending)).
    Claimed(ClaimRecord),
    /// Claimed and completed.
    Completed(CompletedExecution),
}

/// A trust-root version and a release-manifest version: the highest a store has accepted (its
/// high-water marks, 0 when none yet), or those of the environment a claim is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptedVersions {
    /// The trust-root version.
    pub trust_root: u64,
    /// The release-manifest version.
    pub release_manifest: u64,
}

impl std::fmt::Display for AcceptedVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trust root {}, release manifest {}",
            self.trust_root, self.release_manifest
        )
    }
}

impl AcceptedVersions {
    /// The pair `(trust_root, release_manifest)`.
    pub const fn new(trust_root: u64, release_manifest: u64) -> Self {
        Self {
            trust_root,
            release_manifest,
        }
    }

    /// Whether either version is below the same version of `other`.
    pub fn is_below(self, other: Self) -> bool {
        self.trust_root < other.trust_root || self.release_manifest < other.release_manifest
    }

    /// The higher of each version of `self` and `other`.
    pub fn max(self, other: Self) -> Self {
        Self {
            trust_root: self.trust_root.max(other.trust_root),
            release_manifest: self.release_manifest.max(other.release_manifest),
        }
    }

    /// The marks after accepting `trust_root` and `release_manifest`, or the rollback refusal.
    ///
    /// Every backend applies this one rule inside its own atomic update.
    pub fn raised_to(self, trust_root: u64, release_manifest: u64) -> Result<Self, ReplayError> {
        for (kind, offered) in [
            (VersionKind::TrustRoot, trust_root),
            (VersionKind::ReleaseManifest, release_manifest),
        ] {
            if i64::try_from(offered).is_err() {
                return Err(ReplayError::VersionTooLarge { kind, offered });
            }
        }
        if trust_root < self.trust_root {
            return Err(ReplayError::VersionRollback {
                kind: VersionKind::TrustRoot,
                offered: trust_root,
                accepted: self.trust_root,
            });
        }
        if release_manifest < self.release_manifest {
            return Err(ReplayError::VersionRollback {
                kind: VersionKind::ReleaseManifest,
                offered: release_manifest,
                accepted: self.release_manifest,
            });
        }
        Ok(Self {
            trust_root,
            release_manifest,
        })
    }
}

/// What a store reads, inside the transaction of a claim or a raise, to decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GuardState {
    /// The marks row as stored.
    pub(crate) marks: AcceptedVersions,
    /// The marks its marks records prove together — the highest of each version over all of
    /// them (`None` when the ledger holds none: nothing is proven, and marks above `(0, 0)`
    /// are proven by the next step).
    pub(crate) proven: Option<AcceptedVersions>,
    /// The newest clock reading of a claim the store holds (`None` when it holds none).
    pub(crate) newest_claim: Option<Timestamp>,
}

impl GuardState {
    /// Refuses marks lower than the ledger proves (`replay.marks_reset`).
    pub(crate) fn check_not_reset(&self) -> Result<AcceptedVersions, ReplayError> {
        match self.proven {
            Some(proven) if self.marks.is_below(proven) => Err(ReplayError::MarksReset {
                found: self.marks,
                proven,
            }),
            _ => Ok(self.marks),
        }
    }

    /// Decides a raise of the marks to `offered` (without a clock check): the marks after it,
    /// and whether a marks record is appended (with the row written again) — when they rose,
    /// and when the marks in force are above what the marks records prove: a row raised behind
    /// the store (by a writer of the database, or before marks records were kept) is proven by
    /// the first step taken under it, so that lowering it afterwards is a reset the store
    /// refuses and `verify_ledger` reports. Refuses a reset store, a rollback and a version no
    /// backend can store.
    pub(crate) fn raise(&self, offered: AcceptedVersions) -> Result<Raise, ReplayError> {
        let marks = self.check_not_reset()?;
        let raised = marks.raised_to(offered.trust_root, offered.release_manifest)?;
        Ok(Raise {
            marks: raised,
            changed: raised != marks || raised != self.proven.unwrap_or_default(),
        })
    }

    /// Decides a claim made under `under` at `claimed_at`, before anything is written: the
    /// reset and rollback checks of [`GuardState::raise`], then the clock check — refused with
    /// `replay.clock_behind_store` when `claimed_at` is more than
    /// [`CLOCK_TOLERANCE_SECONDS`](crate::CLOCK_TOLERANCE_SECONDS) before the newest claim held.
    pub(crate) fn claim(
        &self,
        under: AcceptedVersions,
        claimed_at: Timestamp,
    ) -> Result<Raise, ReplayError> {
        let raise = self.raise(under)?;
        if let Some(newest) = self.newest_claim
            && claimed_at
                .unix_seconds()
                .saturating_add(crate::CLOCK_TOLERANCE_SECONDS)
                < newest.unix_seconds()
        {
            return Err(ReplayError::ClockBehindStore {
                now: claimed_at,
                newest,
            });
        }
        Ok(raise)
    }
}

/// The outcome of a raise decided by [`GuardState`]: the marks in force after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raise {
    /// The marks after the raise.
    pub(crate) marks: AcceptedVersions,
    /// Whether the store must write them and a marks record: they are higher than before, or
    /// above what the marks records proved (a row raised behind the store).
    pub(crate) changed: bool,
}

/// An execution whose stored row holds a value over its bound (a writer of the store's: nothing
/// this crate writes is that large), refused before it is read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn oversized_execution(execution_id: &ExecutionId) -> ReplayError {
    ReplayError::corrupt(format!(
        "the stored row of execution {execution_id} holds a value over its bound (inputs at most \
         {} bytes, its attestation {})",
        crate::MAX_STORED_EXECUTION_BYTES,
        crate::MAX_STORED_ATTESTATION_BYTES
    ))
}

/// The columns of a ledger row joined with its execution (`l` and `e`), each value bounded by its
/// length — over its bound it reads as NULL — and last whether any was over: the position, the
/// kind, the execution id, the record, the request digest, the inputs, the claim time, the
/// attestation, and the flag. `octet_length` — in both backends — counts a value's bytes without
/// reading it (SQLite's `length` of TEXT would read it whole and stop at a NUL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn bounded_ledger_columns() -> String {
    let length = "octet_length";
    let (id, record, execution, attestation) = (
        parmana_canon::MAX_EXECUTION_ID_LEN,
        crate::MAX_STORED_RECORD_BYTES,
        crate::MAX_STORED_EXECUTION_BYTES,
        crate::MAX_STORED_ATTESTATION_BYTES,
    );
    let bounded = [
        ("l.execution_id", id.to_string()),
        ("l.record", record.to_string()),
        ("e.request_digest", "128".to_owned()),
        ("e.attestation_inputs", execution.to_string()),
        ("e.claimed_at", "64".to_owned()),
        ("e.attestation", attestation.to_string()),
    ];
    let values = bounded
        .iter()
        .map(|(column, max)| format!("CASE WHEN {length}({column}) <= {max} THEN {column} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let over = bounded
        .iter()
        .map(|(column, max)| format!("{length}({column}) > {max}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    // The kind is one of two short words: a longer one (a writer's) is not read, and its
    // stand-in is refused as an unknown kind.
    let kind = format!("CASE WHEN {length}(l.kind) <= 16 THEN l.kind ELSE 'over its bound' END");
    format!("l.position, {kind}, {values}, coalesce({over}, false)")
}

/// The ledger rows at positions `?1`/`$1` on, at most `?2`/`$2` of them, and only those whose
/// bytes before them stay under `?3`/`$3` ([`crate::MAX_LEDGER_PAGE_BYTES`]; the first always):
/// the page's positions are chosen from the values' lengths alone, and only the chosen rows'
/// values are read ([`bounded_ledger_columns`], each bounded too). `placeholder` is `?` for
/// SQLite and `$` for PostgreSQL.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn ledger_page_query(placeholder: char) -> String {
    // Each length as a 64-bit integer: PostgreSQL's are 32-bit, and two values of a writer's
    // near the largest a column holds would overflow their sum (an error, not a refusal); the
    // running sum cast back to one (PostgreSQL sums 64-bit integers as `numeric`).
    let size = "coalesce(CAST(octet_length(l.record) AS BIGINT), 0) \
                + coalesce(CAST(octet_length(e.attestation_inputs) AS BIGINT), 0) \
                + coalesce(CAST(octet_length(e.attestation) AS BIGINT), 0)";
    format!(
        "WITH page AS (
           SELECT l.position AS position, {size} AS size
           FROM ledger l LEFT JOIN executions e ON e.id = l.execution_id
           WHERE l.position >= {placeholder}1 ORDER BY l.position LIMIT {placeholder}2),
         kept AS (
           SELECT position FROM (
             SELECT position, size,
                    CAST(sum(size) OVER (ORDER BY position) AS BIGINT) AS through FROM page
           ) sized
           WHERE through - size < {placeholder}3)
         SELECT {} FROM kept JOIN ledger l ON l.position = kept.position
           LEFT JOIN executions e ON e.id = l.execution_id
         ORDER BY l.position",
        bounded_ledger_columns()
    )
}

/// The ledger records alone at positions `?1`/`$1` on, at most `?2`/`$2` of them: the position,
/// the kind, the execution id and the record, each bounded as in [`bounded_ledger_columns`], and
/// last whether any was over.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn ledger_records_query(placeholder: char) -> String {
    let (id, record) = (
        parmana_canon::MAX_EXECUTION_ID_LEN,
        crate::MAX_STORED_RECORD_BYTES,
    );
    format!(
        "SELECT l.position,
                CASE WHEN octet_length(l.kind) <= 16 THEN l.kind ELSE 'over its bound' END,
                CASE WHEN octet_length(l.execution_id) <= {id} THEN l.execution_id END,
                CASE WHEN octet_length(l.record) <= {record} THEN l.record END,
                coalesce(octet_length(l.execution_id) > {id} OR octet_length(l.record) > {record},
                         false)
         FROM ledger l WHERE l.position >= {placeholder}1 ORDER BY l.position LIMIT {placeholder}2"
    )
}

/// A ledger row holding a value over its bound, refused before it is read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn oversized_ledger_row(position: i64) -> ReplayError {
    ReplayError::corrupt(format!(
        "the ledger row at position {position} holds a value over its bound (a record at most \
         {} bytes, an execution's inputs at most {}, its attestation {})",
        crate::MAX_STORED_RECORD_BYTES,
        crate::MAX_STORED_EXECUTION_BYTES,
        crate::MAX_STORED_ATTESTATION_BYTES
    ))
}

/// A completed execution waiting to be sequenced whose row holds a value over its bound: the
/// sequencer reads none of it and refuses the run (a writer's row: nothing is appended).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn oversized_waiting_execution() -> ReplayError {
    ReplayError::corrupt(format!(
        "a completed execution waiting to be sequenced holds a value over its bound (inputs at \
         most {} bytes, its attestation {})",
        crate::MAX_STORED_EXECUTION_BYTES,
        crate::MAX_STORED_ATTESTATION_BYTES
    ))
}

/// Rebuilds a stored checkpoint from its columns as [`BOUNDED_CHECKPOINT_COLUMNS`] reads them
/// (a root or note over its bound reads as `None`); anything unreadable means the store is
/// corrupt. The one decoding of both SQL backends.
///
/// [`BOUNDED_CHECKPOINT_COLUMNS`]: crate::BOUNDED_CHECKPOINT_COLUMNS
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_stored_checkpoint(
    size: i64,
    root: Option<String>,
    note: Option<String>,
) -> Result<crate::StoredCheckpoint, ReplayError> {
    let (Some(root), Some(note)) = (root, note) else {
        return Err(oversized_checkpoint(size));
    };
    Ok(crate::StoredCheckpoint {
        size: decode_version(size)?,
        root: root
            .parse()
            .map_err(|e| ReplayError::corrupt(format!("stored checkpoint root: {e}")))?,
        note,
    })
}

/// A stored checkpoint whose root or note is over its bound, refused before it is read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn oversized_checkpoint(size: i64) -> ReplayError {
    ReplayError::corrupt(format!(
        "the stored checkpoint of size {size} holds a root or note over its bound (a note at \
         most 65536 bytes)"
    ))
}

/// A marks record over its bound, refused before it is read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn oversized_marks_record() -> ReplayError {
    ReplayError::corrupt(format!(
        "a stored marks record is over {} bytes",
        crate::MAX_STORED_RECORD_BYTES
    ))
}

/// Refuses more than [`crate::MAX_MARKS_RECORDS`] marks records (a query reads at most one more).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn check_marks_count(count: usize) -> Result<(), ReplayError> {
    if i64::try_from(count).unwrap_or(i64::MAX) > crate::MAX_MARKS_RECORDS {
        return Err(ReplayError::corrupt(format!(
            "the store holds more than {} marks records",
            crate::MAX_MARKS_RECORDS
        )));
    }
    Ok(())
}

/// Rebuilds a claim from its stored columns; anything unreadable means the store is corrupt.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_claim(
    request_digest: &str,
    attestation_inputs: Vec<u8>,
    claimed_at: &str,
) -> Result<ClaimRecord, ReplayError> {
    let request_digest = request_digest
        .parse::<Digest>()
        .map_err(|e| ReplayError::corrupt(format!("stored request digest: {e}")))?;
    let claimed_at = Timestamp::parse(claimed_at)
        .map_err(|e| ReplayError::corrupt(format!("stored claim time: {e}")))?;
    Ok(ClaimRecord::new(
        request_digest,
        attestation_inputs,
        claimed_at,
    ))
}

/// Reads a clock reading back from a store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_timestamp(text: &str) -> Result<Timestamp, ReplayError> {
    Timestamp::parse(text).map_err(|e| ReplayError::corrupt(format!("stored claim time: {e}")))
}

/// The schema version from which the ledger holds marks records; a store migrated from below it
/// gets one marks record for the marks it had raised before.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const MARKS_RECORDS_SINCE: i64 = 2;

/// Rebuilds an execution id read back from a store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_execution_id(text: &str) -> Result<ExecutionId, ReplayError> {
    ExecutionId::parse(text)
        .map_err(|e| ReplayError::corrupt(format!("stored execution id {text:?}: {e}")))
}

/// Converts an id a store read bounded by its length ([`crate::MAX_EXECUTION_ID_LEN`]; `None`
/// when it was longer, and then not read).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_bounded_execution_id(text: Option<&str>) -> Result<ExecutionId, ReplayError> {
    match text {
        Some(text) => decode_execution_id(text),
        None => Err(ReplayError::corrupt(format!(
            "a claimed execution's id is longer than {} bytes",
            crate::MAX_EXECUTION_ID_LEN
        ))),
    }
}

/// A page asked for from `from`, at most `max`, in SQL integers: `None` when `from` lies beyond
/// them (no row sits there: the page is empty), and `max` beyond them meaning "all".
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn sql_page(from: u64, max: usize) -> Option<(i64, i64)> {
    let from = i64::try_from(from).ok()?;
    Some((from, i64::try_from(max).unwrap_or(i64::MAX)))
}

/// What a SQL store's summary read, as its columns give it: the ledger's record count, the
/// completed and unsequenced execution counts, and the `min(size)` and `max(size)` of the
/// checkpoints table.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct SummaryCounts {
    pub(crate) records: i64,
    pub(crate) completed: i64,
    pub(crate) unsequenced: i64,
    pub(crate) smallest_checkpoint: Option<i64>,
    pub(crate) largest_checkpoint: Option<i64>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl SummaryCounts {
    /// The summary, every count decoded (a negative one is `replay.store_corrupt`): a checkpoint
    /// size below 0, which no page of sizes from 0 reads, is refused, not skipped.
    pub(crate) fn into_summary(
        self,
        marks: AcceptedVersions,
    ) -> Result<crate::LedgerSummary, ReplayError> {
        if let Some(size) = self.smallest_checkpoint.filter(|size| *size < 0) {
            return Err(ReplayError::corrupt(format!(
                "a stored checkpoint of size {size}"
            )));
        }
        Ok(crate::LedgerSummary {
            records: decode_version(self.records)?,
            completed_executions: decode_version(self.completed)?,
            unsequenced: decode_version(self.unsequenced)?,
            largest_checkpoint: self.largest_checkpoint.map(decode_version).transpose()?,
            marks,
        })
    }
}

/// Converts a version read back from a store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_version(value: i64) -> Result<u64, ReplayError> {
    u64::try_from(value).map_err(|_| ReplayError::corrupt(format!("stored version {value}")))
}

/// Converts a version for storage (already range-checked by [`AcceptedVersions::raised_to`]).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn encode_version(kind: VersionKind, value: u64) -> Result<i64, ReplayError> {
    i64::try_from(value).map_err(|_| ReplayError::VersionTooLarge {
        kind,
        offered: value,
    })
}

/// A store's schema version below 0: no build writes one (a writer of the store did).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn negative_schema_version(found: i64) -> ReplayError {
    ReplayError::corrupt(format!(
        "the store's schema version is {found}, which no build writes"
    ))
}

/// The migrations a store whose schema is at version `found` still needs, each with the version
/// it brings the schema to; refuses a version newer than `migrations` knows (a store written by a
/// newer build) with `replay.schema_version_unsupported`, and a negative one, which no build
/// writes, as `replay.store_corrupt`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn pending_migrations(
    found: i64,
    migrations: &'static [&'static str],
) -> Result<impl Iterator<Item = (i64, &'static str)>, ReplayError> {
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    if found < 0 {
        return Err(negative_schema_version(found));
    }
    if found > supported {
        return Err(ReplayError::SchemaVersionUnsupported { found, supported });
    }
    Ok((1i64..)
        .zip(migrations.iter().copied())
        .skip(usize::try_from(found).unwrap_or(0)))
}
