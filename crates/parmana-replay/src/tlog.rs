//! The ledger as a transparency log: an RFC 9162 Merkle tree with one leaf per ledger record, in position order (see `docs/transparency-log.md`).
//!
//! The entry of leaf `i` is the canonical ledger record at position `i`, byte for byte as the
//! store holds it — an execution record (position, previous, execution id, request, inputs and
//! attestation digests, clock reading) or a marks record — so every existing ledger is already a
//! log: migrating one adds no record and changes none. The tree is built only from a ledger that
//! [`verify_ledger_snapshot`](crate::verify_ledger_snapshot) finds intact.

use std::collections::HashMap;

use parmana_canon::Digest;
use parmana_canon::merkle::MerkleTree;

use crate::ledger::{LedgerBreak, LedgerBreakKind, check_row};
use crate::{
    ExecutionId, LedgerRow, LedgerSnapshot, ReplayError, ReplayStore, verify_ledger_snapshot,
};

/// The Merkle tree over an intact ledger, with the records it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLog {
    tree: MerkleTree,
    entries: Vec<Vec<u8>>,
    by_execution: HashMap<String, u64>,
}

impl LedgerLog {
    /// The log of `snapshot`, refused with `replay.ledger_broken` when its ledger is not intact.
    pub fn from_snapshot(snapshot: LedgerSnapshot) -> Result<Self, ReplayError> {
        let report = verify_ledger_snapshot(&snapshot);
        if let Some(first_break) = report.first_break {
            return Err(ReplayError::LedgerBroken(first_break));
        }
        let mut tree = MerkleTree::new();
        let mut by_execution = HashMap::new();
        let mut entries = Vec::with_capacity(snapshot.rows.len());
        for row in snapshot.rows {
            tree.push(&row.record);
            if let Some(id) = row.execution_id {
                by_execution.insert(id, row.position);
            }
            entries.push(row.record);
        }
        Ok(Self {
            tree,
            entries,
            by_execution,
        })
    }

    /// Extends the log with `rows`, the records a sequencer run just appended: each must sit at
    /// the next position, verify as a ledger record that chains to the log's last entry, and
    /// name an execution not in the log yet, as [`verify_ledger`](crate::verify_ledger) checks
    /// it. Refused with `replay.ledger_broken` otherwise (then the log is unchanged: rebuild it
    /// from a snapshot — another integrator may have appended records in between).
    pub fn extend(&mut self, rows: Vec<LedgerRow>) -> Result<(), ReplayError> {
        let mut previous = self
            .entries
            .last()
            .map_or(crate::LEDGER_GENESIS, |last| Digest::of(last));
        // Executions new in this batch; those already in the log are in `by_execution`.
        let mut seen = std::collections::HashSet::new();
        let start = self.size();
        for (index, row) in (start..).zip(&rows) {
            let broken = |kind| {
                ReplayError::LedgerBroken(LedgerBreak {
                    position: index,
                    kind,
                })
            };
            check_row(index, row, previous, &mut seen).map_err(broken)?;
            if row
                .execution_id
                .as_ref()
                .is_some_and(|id| self.by_execution.contains_key(id))
            {
                return Err(broken(LedgerBreakKind::DuplicateExecution));
            }
            previous = Digest::of(&row.record);
        }
        for row in rows {
            self.tree.push(&row.record);
            if let Some(id) = row.execution_id {
                self.by_execution.insert(id, row.position);
            }
            self.entries.push(row.record);
        }
        Ok(())
    }

    /// The number of entries (ledger records).
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// The root hash of the whole log.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The Merkle tree, for roots at earlier sizes and proofs.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The entry at `position`: the ledger record's bytes.
    pub fn entry(&self, position: u64) -> Option<&[u8]> {
        let index = usize::try_from(position).ok()?;
        self.entries.get(index).map(Vec::as_slice)
    }

    /// The position of the record of the completed execution `execution_id`.
    pub fn position_of(&self, execution_id: &ExecutionId) -> Option<u64> {
        self.by_execution.get(execution_id.as_str()).copied()
    }
}

/// What an entry of the log says about the execution it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEntry {
    /// The entry's position (its leaf index).
    pub position: u64,
    /// The execution id.
    pub execution_id: String,
    /// The SHA-256 digest of the attestation envelope recorded for it.
    pub attestation_digest: Digest,
}

impl ExecutionEntry {
    /// Reads a log entry as an execution record; `None` for a marks record or bytes that are not
    /// a canonical execution record.
    pub fn read(entry: &[u8]) -> Option<Self> {
        let (position, execution_id, attestation_digest) =
            crate::ledger::read_execution_record(entry)?;
        Some(Self {
            position,
            execution_id,
            attestation_digest,
        })
    }
}

/// Reads `store`'s ledger in one consistent snapshot and builds its log ([`LedgerLog::from_snapshot`]).
pub fn ledger_log<S: ReplayStore + ?Sized>(store: &S) -> Result<LedgerLog, ReplayError> {
    LedgerLog::from_snapshot(store.ledger_snapshot()?)
}
