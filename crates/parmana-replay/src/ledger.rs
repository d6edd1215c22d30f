//! The tamper-evident ledger: one canonical JSON record per completed execution and per raise of the high-water marks, each chained to the previous by digest.
//!
//! An execution record is the RFC 8785 encoding of
//! `{"attestation_digest","claimed_at","execution_id","inputs_digest","position","previous","request_digest"}`;
//! a marks record, of `{"kind":"marks","position","previous","release_manifest","trust_root"}`
//! (the marks after the raise). `previous` is the digest of the previous record's bytes
//! ([`LEDGER_GENESIS`] for position 0). [`verify_ledger`] walks the records in order and
//! cross-checks each execution record against the execution the store holds, so deleting,
//! reordering or editing a record (or the execution behind it) is reported at the first position
//! where it shows; and it checks that the store's marks row is not lower than the marks records
//! prove (a reset of the marks).

use std::fmt;

use parmana_canon::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

use crate::walk::Walk;
use crate::{AcceptedVersions, ClaimRecord, ReplayError, ReplayStore};

/// The `previous` digest of the first record: 32 zero bytes.
pub const LEDGER_GENESIS: Digest = Digest::from_bytes([0; 32]);

/// How the SQL backends file an execution record (the `kind` column of `ledger`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const KIND_EXECUTION: &str = "execution";

/// How the SQL backends file a marks record (the `kind` column of `ledger`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const KIND_MARKS: &str = "marks";

/// The wire form of one execution record (serialized only through `parmana_canon`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct LedgerRecordWire {
    position: u64,
    previous: Digest,
    execution_id: String,
    request_digest: Digest,
    inputs_digest: Digest,
    claimed_at: Timestamp,
    attestation_digest: Digest,
}

/// The one value of a marks record's `kind`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
enum MarksKind {
    #[serde(rename = "marks")]
    Marks,
}

/// The wire form of one marks record: the high-water marks after a raise.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct MarksRecordWire {
    kind: MarksKind,
    position: u64,
    previous: Digest,
    trust_root: u64,
    release_manifest: u64,
}

/// The position and digest of the newest ledger record, which the next record chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerHead {
    pub(crate) next_position: u64,
    pub(crate) previous: Digest,
}

impl LedgerHead {
    /// The head of an empty ledger.
    pub(crate) const EMPTY: Self = Self {
        next_position: 0,
        previous: LEDGER_GENESIS,
    };

    /// The head after the record `record_bytes` at `position`.
    pub(crate) fn after(position: u64, record_bytes: &[u8]) -> Self {
        Self {
            next_position: position.saturating_add(1),
            previous: Digest::of(record_bytes),
        }
    }
}

/// The canonical bytes of the ledger record for a completion at `head`.
pub(crate) fn encode_record(
    head: LedgerHead,
    execution_id: &str,
    claim: &ClaimRecord,
    attestation: &[u8],
) -> Result<Vec<u8>, ReplayError> {
    let wire = LedgerRecordWire {
        position: head.next_position,
        previous: head.previous,
        execution_id: execution_id.to_owned(),
        request_digest: claim.request_digest(),
        inputs_digest: Digest::of(claim.attestation_inputs()),
        claimed_at: claim.claimed_at(),
        attestation_digest: Digest::of(attestation),
    };
    parmana_canon::to_canonical_vec(&wire)
        .map_err(|e| ReplayError::corrupt(format!("cannot encode a ledger record: {e}")))
}

/// The canonical bytes of the marks record for a raise to `marks` at `head`.
pub(crate) fn encode_marks_record(
    head: LedgerHead,
    marks: AcceptedVersions,
) -> Result<Vec<u8>, ReplayError> {
    let wire = MarksRecordWire {
        kind: MarksKind::Marks,
        position: head.next_position,
        previous: head.previous,
        trust_root: marks.trust_root,
        release_manifest: marks.release_manifest,
    };
    parmana_canon::to_canonical_vec(&wire)
        .map_err(|e| ReplayError::corrupt(format!("cannot encode a marks record: {e}")))
}

/// The position, execution id and attestation digest of a canonical execution record; `None`
/// for a marks record or anything that is not a canonical execution record.
pub(crate) fn read_execution_record(record: &[u8]) -> Option<(u64, String, Digest)> {
    read_plain_execution_record(record).or_else(|| read_any_execution_record(record))
}

/// The general path of [`read_execution_record`]: any bytes, in any spelling, decided by
/// encoding what they say.
fn read_any_execution_record(record: &[u8]) -> Option<(u64, String, Digest)> {
    // Read straight into the typed record (repeated or unknown members refused), then prove it
    // canonical by encoding what was read: any other spelling, order, escape or member of the
    // same record gives other bytes. One pass, no `Value` tree (this runs once per proof).
    let wire: LedgerRecordWire = serde_json::from_slice(record).ok()?;
    if parmana_canon::to_canonical_vec(&wire).ok()? != record {
        return None;
    }
    Some((wire.position, wire.execution_id, wire.attestation_digest))
}

/// The fast path of [`read_execution_record`] (it runs once per proof a verifier checks): the
/// one spelling every execution record has when its execution id needs no escape — the members
/// in canonical order with no whitespace, each digest `sha256:` and 64 lowercase hex digits, the
/// timestamp in its one form, the position a canonical integer up to 2^53−1, and the
/// execution id a string with no `"`, `\` or control character (the strings RFC 8785 writes
/// unescaped). Bytes in exactly that form are the canonical encoding of what they say, so this
/// reads them without building and re-encoding the record; anything else gives `None`, and the
/// general path decides. A test compares the two paths on every one-byte change of records.
fn read_plain_execution_record(record: &[u8]) -> Option<(u64, String, Digest)> {
    let (attestation_digest, rest) = member(record, b"{\"attestation_digest\":", plain_string)?;
    let (claimed_at, rest) = member(rest, b",\"claimed_at\":", plain_string)?;
    let (execution_id, rest) = member(rest, b",\"execution_id\":", plain_string)?;
    let (inputs_digest, rest) = member(rest, b",\"inputs_digest\":", plain_string)?;
    let (position, rest) = member(rest, b",\"position\":", canonical_integer)?;
    let (previous, rest) = member(rest, b",\"previous\":", plain_string)?;
    let (request_digest, rest) = member(rest, b",\"request_digest\":", plain_string)?;
    if rest != b"}" {
        return None;
    }
    // `Digest` and `Timestamp` parse only their one text form, which is what they write.
    for digest in [inputs_digest, previous, request_digest] {
        digest.parse::<Digest>().ok()?;
    }
    Timestamp::parse(claimed_at).ok()?;
    let attestation_digest = attestation_digest.parse().ok()?;
    Some((position, execution_id.to_owned(), attestation_digest))
}

/// The value `read` reads after exactly `key` (the separator, the quoted name and the colon) at
/// the start of `bytes`, and the bytes after it.
fn member<'a, T>(
    bytes: &'a [u8],
    key: &[u8],
    read: impl FnOnce(&'a [u8]) -> Option<(T, &'a [u8])>,
) -> Option<(T, &'a [u8])> {
    read(bytes.strip_prefix(key)?)
}

/// A JSON string that RFC 8785 writes without escapes (no `"`, `\` or byte below 0x20, valid
/// UTF-8) at the start of `bytes`, and the bytes after it.
fn plain_string(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let body = bytes.strip_prefix(b"\"")?;
    let end = body
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let (text, rest) = body.split_at(end);
    let rest = rest.strip_prefix(b"\"")?;
    Some((std::str::from_utf8(text).ok()?, rest))
}

/// A non-negative integer in its canonical spelling (no sign, no leading zero, no fraction or
/// exponent) within 2^53−1 at the start of `bytes`, and the bytes after it.
fn canonical_integer(bytes: &[u8]) -> Option<(u64, &[u8])> {
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let (text, rest) = bytes.split_at(digits);
    // 16 digits hold every integer up to 2^53−1 (16 digits) without overflowing a u64.
    if digits == 0 || digits > 16 || (digits > 1 && text[0] == b'0') {
        return None;
    }
    let value = text
        .iter()
        .fold(0_u64, |n, &digit| n * 10 + u64::from(digit - b'0'));
    (value <= MAX_SAFE_INTEGER).then_some((value, rest))
}

/// The marks the store's marks records prove together: the highest of each version over all of
/// them — not the newest record's, which a writer of the store could make a lower one by
/// appending it (`replay.ledger_marks_lowered` in [`verify_ledger`]). `None` when there is none.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn marks_proven<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<AcceptedVersions>, ReplayError> {
    let mut proven: Option<AcceptedVersions> = None;
    for record in records {
        let marks = decode_marks_record(record)?;
        proven = Some(proven.map_or(marks, |before| before.max(marks)));
    }
    Ok(proven)
}

/// The marks a stored marks record proves (read on every claim; [`verify_ledger`] checks the
/// rest of it). Anything unreadable means the store is corrupt.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_marks_record(record: &[u8]) -> Result<AcceptedVersions, ReplayError> {
    let value = parmana_canon::parse_strict(record)
        .map_err(|e| ReplayError::corrupt(format!("stored marks record: {e}")))?;
    let wire: MarksRecordWire = serde_json::from_value(value)
        .map_err(|e| ReplayError::corrupt(format!("stored marks record: {e}")))?;
    Ok(AcceptedVersions::new(
        wire.trust_root,
        wire.release_manifest,
    ))
}

/// The position a stored marks record names inside its bytes (where the store appended it). A
/// copy of a record filed at another position names the original's: the PostgreSQL
/// one-statement claim recognises the newest record by its bytes *and* requires it at the
/// position it names, so that a copy of an older record appended by a writer of the database is
/// not taken for the newest one the store read.
#[cfg(feature = "postgres")]
pub(crate) fn marks_record_position(record: &[u8]) -> Result<u64, ReplayError> {
    let value = parmana_canon::parse_strict(record)
        .map_err(|e| ReplayError::corrupt(format!("stored marks record: {e}")))?;
    let wire: MarksRecordWire = serde_json::from_value(value)
        .map_err(|e| ReplayError::corrupt(format!("stored marks record: {e}")))?;
    Ok(wire.position)
}

/// The execution id a ledger row is filed under, from its `kind` and `execution_id` columns
/// (`None` for a marks record).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn filed_under(
    kind: &str,
    execution_id: Option<String>,
) -> Result<Option<String>, ReplayError> {
    match (kind, execution_id) {
        (KIND_MARKS, _) => Ok(None),
        (KIND_EXECUTION, Some(id)) => Ok(Some(id)),
        (kind, _) => Err(ReplayError::corrupt(format!(
            "a ledger row of kind {kind:?} without an execution id, or of an unknown kind"
        ))),
    }
}

/// One stored ledger record alone: its position, the execution id it is filed under, and its
/// bytes ([`ReplayStore::ledger_records`](crate::ReplayStore::ledger_records): what serving the
/// log's entries reads, without the executions' inputs and attestations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// The position the store files the record under.
    pub position: u64,
    /// The execution id the store files the record under; `None` for a marks record.
    pub execution_id: Option<String>,
    /// The record's bytes as stored.
    pub record: Vec<u8>,
}

/// One stored ledger record, with the execution it names as the store holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The position the store files the record under (0, 1, 2, …).
    pub position: u64,
    /// The execution id the store files the record under; `None` when the store files it as a
    /// marks record.
    pub execution_id: Option<String>,
    /// The record's bytes as stored.
    pub record: Vec<u8>,
    /// The claim of that execution, if the store has one.
    pub claim: Option<ClaimRecord>,
    /// The attestation of that execution, if the store has one.
    pub attestation: Option<Vec<u8>>,
}

/// A read of a store's whole ledger, taken by [`ReplayStore::ledger_snapshot`] (in memory: for
/// tests and small ledgers; [`verify_ledger`] and [`ledger_log`](crate::ledger_log) read page by
/// page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerSnapshot {
    /// The records in position order.
    pub rows: Vec<LedgerRow>,
    /// How many completed executions the store holds (each sequenced one must have one record).
    pub completed_executions: u64,
    /// How many of them are completed but not yet sequenced (no ledger position yet).
    pub unsequenced: u64,
    /// The stored checkpoints, by increasing size.
    pub checkpoints: Vec<crate::StoredCheckpoint>,
    /// The high-water marks as the store holds them (its marks row, read as stored: a reset
    /// is reported by [`verify_ledger`], not refused here).
    pub marks: AcceptedVersions,
}

/// What is wrong at the first broken ledger position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LedgerBreakKind {
    /// The store files the record under another position (a record was deleted or moved).
    PositionMismatch {
        /// The position the store gave.
        found: u64,
    },
    /// The record is not a well-formed ledger record.
    Malformed {
        /// Why it was refused.
        message: String,
    },
    /// The record parses but its bytes are not the canonical encoding.
    NotCanonical,
    /// The record's own `position` field disagrees with where it sits.
    PositionFieldMismatch {
        /// The position written in the record.
        found: u64,
    },
    /// The record's `previous` is not the digest of the record before it.
    ChainBroken,
    /// The record disagrees with the execution the store holds (`field` names what differs).
    ExecutionMismatch {
        /// The field that differs.
        field: &'static str,
    },
    /// The record names an execution the store does not hold as completed.
    ExecutionNotCompleted,
    /// The store files the record as one kind (an execution's, or a marks record) and its bytes
    /// are the other.
    KindMismatch {
        /// `true` when the store files it as a marks record.
        filed_as_marks: bool,
    },
    /// A second record for the same execution.
    DuplicateExecution,
    /// The store holds more completed executions than the ledger has records (records were cut off).
    RecordsMissing {
        /// Completed executions in the store.
        completed: u64,
    },
    /// The store's record at this position is not the entry a log read earlier holds there
    /// (its leaf hash differs, or it is gone): the ledger was rewritten or cut since.
    EntryChanged,
    /// A stored checkpoint does not commit to this ledger: its size is beyond the ledger's end,
    /// or its root hash is not the root recomputed over the first `size` records.
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The store's high-water marks are lower than the marks record at this position proves:
    /// the marks were reset behind the store's back (the store refuses to execute until then).
    MarksReset {
        /// The marks the store holds.
        found: AcceptedVersions,
        /// The marks this record proves.
        proven: AcceptedVersions,
    },
    /// A marks record lower than one before it: marks only rise, so a writer of the store
    /// appended it (to pass a reset of the marks row off as what the ledger proves).
    MarksLowered {
        /// The marks this record says.
        found: AcceptedVersions,
        /// The highest marks a record before it proves.
        before: AcceptedVersions,
    },
}

/// The first break found by [`verify_ledger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerBreak {
    /// The position (0-based, in walking order) where the ledger stops being trustworthy.
    pub position: u64,
    /// What is wrong there.
    pub kind: LedgerBreakKind,
}

impl LedgerBreak {
    /// The stable code of this break, for example `replay.ledger_chain_broken`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            LedgerBreakKind::PositionMismatch { .. } => "replay.ledger_position_mismatch",
            LedgerBreakKind::Malformed { .. } => "replay.ledger_record_malformed",
            LedgerBreakKind::NotCanonical => "replay.ledger_record_not_canonical",
            LedgerBreakKind::PositionFieldMismatch { .. } => "replay.ledger_position_mismatch",
            LedgerBreakKind::ChainBroken => "replay.ledger_chain_broken",
            LedgerBreakKind::ExecutionMismatch { .. } => "replay.ledger_execution_mismatch",
            LedgerBreakKind::ExecutionNotCompleted => "replay.ledger_execution_not_completed",
            LedgerBreakKind::KindMismatch { .. } => "replay.ledger_kind_mismatch",
            LedgerBreakKind::DuplicateExecution => "replay.ledger_duplicate_execution",
            LedgerBreakKind::RecordsMissing { .. } => "replay.ledger_records_missing",
            LedgerBreakKind::MarksReset { .. } => "replay.marks_reset",
            LedgerBreakKind::MarksLowered { .. } => "replay.ledger_marks_lowered",
            LedgerBreakKind::CheckpointMismatch { .. } => "replay.ledger_checkpoint_mismatch",
            LedgerBreakKind::EntryChanged => "replay.ledger_entry_changed",
        }
    }
}

impl fmt::Display for LedgerBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ledger broken at position {}: ", self.position)?;
        match &self.kind {
            LedgerBreakKind::PositionMismatch { found } => {
                write!(f, "the record is filed under position {found}")
            }
            LedgerBreakKind::Malformed { message } => write!(f, "malformed record: {message}"),
            LedgerBreakKind::NotCanonical => f.write_str("the record is not canonical JSON"),
            LedgerBreakKind::PositionFieldMismatch { found } => {
                write!(f, "the record says it is at position {found}")
            }
            LedgerBreakKind::ChainBroken => {
                f.write_str("`previous` is not the digest of the record before it")
            }
            LedgerBreakKind::ExecutionMismatch { field } => {
                write!(f, "`{field}` differs from the stored execution")
            }
            LedgerBreakKind::ExecutionNotCompleted => {
                f.write_str("the record names an execution that is not completed in the store")
            }
            LedgerBreakKind::DuplicateExecution => {
                f.write_str("a second record for the same execution")
            }
            LedgerBreakKind::KindMismatch { filed_as_marks } => f.write_str(if *filed_as_marks {
                "the store files an execution record as a marks record"
            } else {
                "the store files a marks record as an execution's"
            }),
            LedgerBreakKind::RecordsMissing { completed } => write!(
                f,
                "the store holds {completed} completed executions but the ledger ends here"
            ),
            LedgerBreakKind::EntryChanged => f.write_str(
                "the store's record here is not the entry the log read at this position: the \
                 ledger was rewritten or cut since",
            ),
            LedgerBreakKind::CheckpointMismatch { size } => write!(
                f,
                "the stored checkpoint of size {size} does not commit to the ledger's first \
                 {size} records (edited, or the ledger was rewritten since)"
            ),
            LedgerBreakKind::MarksReset { found, proven } => write!(
                f,
                "the store's high-water marks ({found}) are lower than this marks record proves \
                 ({proven}): they were reset"
            ),
            LedgerBreakKind::MarksLowered { found, before } => write!(
                f,
                "this marks record ({found}) is lower than one before it ({before}): marks only \
                 rise, so it was appended by a writer of the store"
            ),
        }
    }
}

/// The result of walking a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    /// How many records were walked (execution and marks records).
    pub records: u64,
    /// How many of them are execution records.
    pub executions: u64,
    /// How many of them are marks records.
    pub mark_records: u64,
    /// How many completed executions are not yet sequenced (not a break: the sequencer has not
    /// integrated them yet).
    pub unsequenced: u64,
    /// How many stored checkpoints were checked against the recomputed tree.
    pub checkpoints: u64,
    /// The highest marks the walked marks records prove (0 when none).
    pub marks: AcceptedVersions,
    /// The store's marks row as the walk read it. Lower than [`marks`](Self::marks) is a reset
    /// (a break); higher is [`marks_row_unproven`](Self::marks_row_unproven).
    pub marks_row: AcceptedVersions,
    /// The digest of the last record when the ledger is intact (anchor it elsewhere to
    /// detect a wholesale rewrite); `None` for an empty or broken ledger.
    pub head: Option<Digest>,
    /// The first break, if any.
    pub first_break: Option<LedgerBreak>,
}

impl LedgerReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }

    /// Whether the store's marks row holds a version above what the marks records prove, in an
    /// intact ledger (`false` for a broken one, whose walk stopped at its break). No
    /// store raises its row without appending the record (nor did a migrated one), so only a
    /// writer of the store raised it. It is no break: the row refuses the versions below it (a
    /// denial of service at most), and the next claim or raise under it appends the record it
    /// lacks. An audit reports it so that the writer is seen before then.
    pub fn marks_row_unproven(&self) -> bool {
        // (A broken ledger's walk stops at its break: what it proves is not known.)
        self.is_intact() && self.marks.is_below(self.marks_row)
    }
}

/// Verifies `store`'s ledger as [`verify_ledger_snapshot`] does, read page by page
/// ([`walk_ledger`](crate::walk_ledger)): its memory is a page's and the log's index, whatever the
/// ledger's size.
pub fn verify_ledger<S: ReplayStore + ?Sized>(store: &S) -> Result<LedgerReport, ReplayError> {
    Ok(crate::walk_ledger(store)?.report)
}

/// What one record is, once checked.
pub(crate) enum Entry {
    Execution,
    Marks(AcceptedVersions),
}

/// Walks `snapshot` in order and reports the first break, if any: in the chain, then missing
/// records, then a stored checkpoint that does not commit to the records, then a marks row
/// lower than a marks record proves.
pub fn verify_ledger_snapshot(snapshot: &LedgerSnapshot) -> LedgerReport {
    Walk::of_snapshot(snapshot).report
}

/// Checks the record at `index` of a ledger whose record before it has digest `previous`;
/// `first_record_of(id)` says whether an execution record is the first of its execution (and
/// remembers it).
pub(crate) fn check_row(
    index: u64,
    row: &LedgerRow,
    previous: Digest,
    first_record_of: &mut dyn FnMut(&str) -> bool,
) -> Result<Entry, LedgerBreakKind> {
    if row.position != index {
        return Err(LedgerBreakKind::PositionMismatch {
            found: row.position,
        });
    }
    let value =
        parmana_canon::parse_strict(&row.record).map_err(|e| LedgerBreakKind::Malformed {
            message: e.to_string(),
        })?;
    let canonical =
        parmana_canon::canonicalize_value(&value).map_err(|e| LedgerBreakKind::Malformed {
            message: e.to_string(),
        })?;
    if canonical != row.record {
        return Err(LedgerBreakKind::NotCanonical);
    }
    let malformed = |e: serde_json::Error| LedgerBreakKind::Malformed {
        message: e.to_string(),
    };
    if value.get("kind").is_some() {
        let wire: MarksRecordWire = serde_json::from_value(value).map_err(malformed)?;
        check_link(index, wire.position, wire.previous, previous)?;
        if row.execution_id.is_some() {
            return Err(LedgerBreakKind::KindMismatch {
                filed_as_marks: false,
            });
        }
        return Ok(Entry::Marks(AcceptedVersions::new(
            wire.trust_root,
            wire.release_manifest,
        )));
    }
    let wire: LedgerRecordWire = serde_json::from_value(value).map_err(malformed)?;
    check_link(index, wire.position, wire.previous, previous)?;
    let Some(execution_id) = &row.execution_id else {
        return Err(LedgerBreakKind::KindMismatch {
            filed_as_marks: true,
        });
    };
    if wire.execution_id != *execution_id {
        return Err(LedgerBreakKind::ExecutionMismatch {
            field: "execution_id",
        });
    }
    if !first_record_of(&wire.execution_id) {
        return Err(LedgerBreakKind::DuplicateExecution);
    }
    let (Some(claim), Some(attestation)) = (&row.claim, &row.attestation) else {
        return Err(LedgerBreakKind::ExecutionNotCompleted);
    };
    let mismatch = |field| Err(LedgerBreakKind::ExecutionMismatch { field });
    if wire.request_digest != claim.request_digest() {
        return mismatch("request_digest");
    }
    if wire.inputs_digest != Digest::of(claim.attestation_inputs()) {
        return mismatch("inputs_digest");
    }
    if wire.claimed_at != claim.claimed_at() {
        return mismatch("claimed_at");
    }
    if wire.attestation_digest != Digest::of(attestation) {
        return mismatch("attestation_digest");
    }
    Ok(Entry::Execution)
}

/// The record's own position and chain link.
fn check_link(
    index: u64,
    position: u64,
    previous: Digest,
    expected: Digest,
) -> Result<(), LedgerBreakKind> {
    if position != index {
        return Err(LedgerBreakKind::PositionFieldMismatch { found: position });
    }
    if previous != expected {
        return Err(LedgerBreakKind::ChainBroken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        let wire = LedgerRecordWire {
            position: 7,
            previous: LEDGER_GENESIS,
            execution_id: "claim-0007".to_owned(),
            request_digest: Digest::of(b"request"),
            inputs_digest: Digest::of(b"inputs"),
            claimed_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            attestation_digest: Digest::of(b"attestation"),
        };
        parmana_canon::to_canonical_vec(&wire).unwrap()
    }

    /// An execution record reads only in its one canonical spelling: every respelling of the
    /// same record, a repeated or unknown member, and a marks record read as nothing.
    #[test]
    fn an_execution_record_reads_only_in_its_canonical_spelling() {
        let canonical = String::from_utf8(record()).unwrap();
        assert_eq!(
            read_execution_record(canonical.as_bytes()),
            Some((7, "claim-0007".to_owned(), Digest::of(b"attestation")))
        );
        let respelled = [
            canonical.replacen('{', "{ ", 1),
            canonical.replacen("\"position\":7", "\"position\":7.0", 1),
            canonical.replacen("\"position\":7", "\"position\":7,\"position\":7", 1),
            canonical.replacen('{', "{\"zzz\":1,", 1),
            canonical.replacen("claim-0007", "claim\\u002d0007", 1),
            // Members out of order: `position` moved to the front.
            format!(
                "{{\"position\":7,{}",
                canonical[1..].replacen(",\"position\":7", "", 1)
            ),
        ];
        for text in respelled {
            assert_ne!(text, canonical);
            assert_eq!(read_execution_record(text.as_bytes()), None, "{text}");
        }
        let marks = encode_marks_record(LedgerHead::EMPTY, AcceptedVersions::new(1, 1)).unwrap();
        assert_eq!(read_execution_record(&marks), None);
    }

    /// The fast path reads what the general path reads, or leaves it to it: on records whose
    /// ids need escapes or not, at positions up to 2^53−1, and on every one-byte replacement,
    /// deletion and insertion of each. It does read the records whose ids need no escape.
    #[test]
    fn the_fast_path_reads_exactly_what_the_general_path_reads() {
        let ids = [
            ("claim-0007", true),
            ("ünïcödé \u{2028} \u{7f} ~", true),
            ("quote\"d", false),
            ("back\\slash", false),
            ("new\nline", false),
            ("nul\u{0}", false),
        ];
        let positions = [0, 7, 10, 1 << 40, (1 << 53) - 1];
        // Bytes that matter to JSON, digests and timestamps, and a few that do not.
        let replacements: Vec<u8> = b"\"\\/ ,:{}[]-+.0123456789aefzEZTtnu\x00\x1f\x7f"
            .iter()
            .copied()
            .chain([0x80, 0xc3, 0xe2, 0xff])
            .collect();
        let check = |bytes: &[u8]| {
            if let Some(fast) = read_plain_execution_record(bytes) {
                assert_eq!(
                    Some(fast),
                    read_any_execution_record(bytes),
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        };
        for (id, plain) in ids {
            for position in positions {
                let head = LedgerHead {
                    next_position: position,
                    previous: Digest::of(id.as_bytes()),
                };
                let claim = ClaimRecord::new(
                    Digest::of(b"request"),
                    id.as_bytes().to_vec(),
                    Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
                );
                let record = encode_record(head, id, &claim, b"attestation").unwrap();
                let expected = Some((position, id.to_owned(), Digest::of(b"attestation")));
                assert_eq!(read_any_execution_record(&record), expected);
                assert_eq!(read_execution_record(&record), expected);
                assert_eq!(
                    read_plain_execution_record(&record).is_some(),
                    plain,
                    "{id}"
                );
                for at in 0..record.len() {
                    for &byte in &replacements {
                        let mut changed = record.clone();
                        changed[at] = byte;
                        check(&changed);
                    }
                    let mut deleted = record.clone();
                    deleted.remove(at);
                    check(&deleted);
                    let mut inserted = record.clone();
                    inserted.insert(at, b' ');
                    check(&inserted);
                }
            }
        }
    }
}
