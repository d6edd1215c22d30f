//! The tamper-evident ledger: one canonical JSON record per completed execution, each chained to the previous by digest.
//!
//! A record is the RFC 8785 encoding of
//! `{"attestation_digest","claimed_at","execution_id","inputs_digest","position","previous","request_digest"}`.
//! `previous` is the digest of the previous record's bytes ([`LEDGER_GENESIS`] for position 0).
//! [`verify_ledger`] walks the records in order and cross-checks each against the execution
//! the store holds, so deleting, reordering or editing a record (or the execution behind it)
//! is reported at the first position where it shows.

use std::collections::HashSet;
use std::fmt;

use parmana_canon::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{ClaimRecord, ReplayError, ReplayStore};

/// The `previous` digest of the first record: 32 zero bytes.
pub const LEDGER_GENESIS: Digest = Digest::from_bytes([0; 32]);

/// The wire form of one ledger record (serialized only through `parmana_canon`).
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

/// One stored ledger record, with the execution it names as the store holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The position the store files the record under (0, 1, 2, …).
    pub position: u64,
    /// The execution id the store files the record under.
    pub execution_id: String,
    /// The record's bytes as stored.
    pub record: Vec<u8>,
    /// The claim of that execution, if the store has one.
    pub claim: Option<ClaimRecord>,
    /// The attestation of that execution, if the store has one.
    pub attestation: Option<Vec<u8>>,
}

/// A consistent read of a store's whole ledger, taken by [`ReplayStore::ledger_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerSnapshot {
    /// The records in position order.
    pub rows: Vec<LedgerRow>,
    /// How many completed executions the store holds (each must have one record).
    pub completed_executions: u64,
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
    /// A second record for the same execution.
    DuplicateExecution,
    /// The store holds more completed executions than the ledger has records (records were cut off).
    RecordsMissing {
        /// Completed executions in the store.
        completed: u64,
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
            LedgerBreakKind::DuplicateExecution => "replay.ledger_duplicate_execution",
            LedgerBreakKind::RecordsMissing { .. } => "replay.ledger_records_missing",
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
            LedgerBreakKind::RecordsMissing { completed } => write!(
                f,
                "the store holds {completed} completed executions but the ledger ends here"
            ),
        }
    }
}

/// The result of walking a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    /// How many records were walked.
    pub records: u64,
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
}

/// Reads `store`'s ledger in one consistent snapshot and verifies it with [`verify_ledger_snapshot`].
pub fn verify_ledger<S: ReplayStore + ?Sized>(store: &S) -> Result<LedgerReport, ReplayError> {
    Ok(verify_ledger_snapshot(&store.ledger_snapshot()?))
}

/// Walks `snapshot` in order and reports the first break, if any.
pub fn verify_ledger_snapshot(snapshot: &LedgerSnapshot) -> LedgerReport {
    let mut previous = LEDGER_GENESIS;
    let mut seen = HashSet::new();
    let records = u64::try_from(snapshot.rows.len()).unwrap_or(u64::MAX);
    for (index, row) in (0u64..).zip(&snapshot.rows) {
        if let Err(kind) = check_row(index, row, previous, &mut seen) {
            return LedgerReport {
                records,
                head: None,
                first_break: Some(LedgerBreak {
                    position: index,
                    kind,
                }),
            };
        }
        previous = Digest::of(&row.record);
    }
    if snapshot.completed_executions > records {
        return LedgerReport {
            records,
            head: None,
            first_break: Some(LedgerBreak {
                position: records,
                kind: LedgerBreakKind::RecordsMissing {
                    completed: snapshot.completed_executions,
                },
            }),
        };
    }
    LedgerReport {
        records,
        head: (records > 0).then_some(previous),
        first_break: None,
    }
}

fn check_row(
    index: u64,
    row: &LedgerRow,
    previous: Digest,
    seen: &mut HashSet<String>,
) -> Result<(), LedgerBreakKind> {
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
    let wire: LedgerRecordWire =
        serde_json::from_value(value).map_err(|e| LedgerBreakKind::Malformed {
            message: e.to_string(),
        })?;
    if wire.position != index {
        return Err(LedgerBreakKind::PositionFieldMismatch {
            found: wire.position,
        });
    }
    if wire.previous != previous {
        return Err(LedgerBreakKind::ChainBroken);
    }
    if wire.execution_id != row.execution_id {
        return Err(LedgerBreakKind::ExecutionMismatch {
            field: "execution_id",
        });
    }
    if !seen.insert(wire.execution_id.clone()) {
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
    Ok(())
}
