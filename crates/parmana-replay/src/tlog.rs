//! The ledger as a transparency log: an RFC 9162 Merkle tree with one leaf per ledger record, in position order (see `docs/transparency-log.md`).
//!
//! The entry of leaf `i` is the canonical ledger record at position `i`, byte for byte as the
//! store holds it — an execution record (position, previous, execution id, request, inputs and
//! attestation digests, clock reading) or a marks record — so every existing ledger is already a
//! log: migrating one adds no record and changes none. The tree is built only from a ledger that
//! [`verify_ledger_snapshot`](crate::verify_ledger_snapshot) finds intact.

use std::collections::HashMap;
use std::ops::Range;

use parmana_canon::Digest;
use parmana_canon::merkle::{MerkleTree, leaf_hash};

use crate::ledger::{Entry, LedgerBreak, LedgerBreakKind, check_row};
use crate::walk::Walk;
use crate::{AcceptedVersions, ExecutionId, LedgerRow, LedgerSnapshot, ReplayError, ReplayStore};

/// The Merkle tree over an intact ledger, and where each execution's record sits in it.
///
/// It keeps no entry: the tree's leaf hashes commit to them, and
/// [`read_entries`](LedgerLog::read_entries) reads them back from the store, each checked
/// against its leaf hash — so a log kept for a long-running server costs its tree (64 bytes of
/// hashes a record) and its execution index (a 32-byte key and a position, about 45 bytes a
/// record with the table's overhead), not the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLog {
    tree: MerkleTree,
    /// The digest of the last entry (what the next record's `previous` must be), or the
    /// genesis digest of an empty log.
    last: Digest,
    /// Where each execution's record sits, by [`id_key`] of its id.
    by_execution: HashMap<Digest, u64>,
    /// The highest marks a marks record of the log proves (a later one may not be lower).
    marks: AcceptedVersions,
}

/// The key an execution id is indexed under: its SHA-256 — 32 bytes whatever the id's length,
/// and two ids share one only through a SHA-256 collision, so a lookup by key is a lookup by id
/// (callers choose ids: a shorter key would let one who finds a collision of it make two
/// executions one entry).
pub(crate) fn id_key(id: &str) -> Digest {
    Digest::of(id.as_bytes())
}

/// The key a [`LedgerLog`] indexes the execution `id` under ([`LedgerLog::execution_keys`]).
pub fn execution_key(id: &ExecutionId) -> Digest {
    id_key(id.as_str())
}

impl LedgerLog {
    /// The log of `snapshot`, refused with `replay.ledger_broken` when its ledger is not intact.
    pub fn from_snapshot(snapshot: LedgerSnapshot) -> Result<Self, ReplayError> {
        Walk::of_snapshot(&snapshot).into_log()
    }

    /// The log of a walk that found the ledger intact.
    pub(crate) fn from_parts(
        tree: MerkleTree,
        last: Digest,
        by_execution: HashMap<Digest, u64>,
        marks: AcceptedVersions,
    ) -> Self {
        Self {
            tree,
            last,
            by_execution,
            marks,
        }
    }

    /// Extends the log with `rows`, the records a sequencer run just appended: each must sit at
    /// the next position, verify as a ledger record that chains to the log's last entry, and
    /// name an execution not in the log yet, as [`verify_ledger`](crate::verify_ledger) checks
    /// it. Refused with `replay.ledger_broken` otherwise (then the log is unchanged: rebuild it
    /// from a snapshot — another integrator may have appended records in between).
    pub fn extend(&mut self, rows: Vec<LedgerRow>) -> Result<(), ReplayError> {
        self.extend_noting(rows, None)
    }

    /// [`extend`](Self::extend), pushing onto `noted` the [`execution_key`] of each execution
    /// the log gains.
    pub fn extend_noting(
        &mut self,
        rows: Vec<LedgerRow>,
        noted: Option<&mut Vec<Digest>>,
    ) -> Result<(), ReplayError> {
        let mut previous = self.last;
        let mut marks = self.marks;
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
            let by_execution = &self.by_execution;
            let mut first_record_of = |id: &str| {
                let key = id_key(id);
                !by_execution.contains_key(&key) && seen.insert(key)
            };
            if let Entry::Marks(proven) =
                check_row(index, row, previous, &mut first_record_of).map_err(broken)?
            {
                if proven.is_below(marks) {
                    return Err(broken(LedgerBreakKind::MarksLowered {
                        found: proven,
                        before: marks,
                    }));
                }
                marks = marks.max(proven);
            }
            previous = Digest::of(&row.record);
        }
        self.push_all(rows, noted);
        self.marks = marks;
        Ok(())
    }

    /// Appends `rows`, already checked, as the next leaves (noting the executions' keys).
    fn push_all(&mut self, rows: Vec<LedgerRow>, mut noted: Option<&mut Vec<Digest>>) {
        for row in rows {
            self.tree.push(&row.record);
            self.last = Digest::of(&row.record);
            if let Some(id) = row.execution_id {
                let key = id_key(&id);
                if let Some(noted) = noted.as_deref_mut() {
                    noted.push(key);
                }
                self.by_execution.insert(key, row.position);
            }
        }
    }

    /// The [`execution_key`] of every execution the log holds.
    pub fn execution_keys(&self) -> impl Iterator<Item = &Digest> {
        self.by_execution.keys()
    }

    /// Reads the records `store` appended after this log's last entry
    /// ([`ReplayStore::ledger_rows`], [`CATCH_UP_BATCH`] at a time) and extends the log with them,
    /// each checked as [`extend`](Self::extend) checks it: what a reader that keeps the log reads
    /// instead of the whole ledger. Refused with `replay.ledger_broken` when a record does not
    /// extend this log (the store's ledger is no longer the one this log was read from: rebuild
    /// it from a snapshot, which verifies the whole ledger); the batches before it are kept, a
    /// longer prefix of the same log.
    pub fn catch_up<S: ReplayStore + ?Sized>(&mut self, store: &S) -> Result<(), ReplayError> {
        self.catch_up_in_batches(store, CATCH_UP_BATCH, None)
    }

    /// [`catch_up`](Self::catch_up), pushing onto `noted` the [`execution_key`] of each
    /// execution the log gains.
    pub fn catch_up_noting<S: ReplayStore + ?Sized>(
        &mut self,
        store: &S,
        noted: &mut Vec<Digest>,
    ) -> Result<(), ReplayError> {
        self.catch_up_in_batches(store, CATCH_UP_BATCH, Some(noted))
    }

    /// [`catch_up`](Self::catch_up), reading `batch` records at a time.
    fn catch_up_in_batches<S: ReplayStore + ?Sized>(
        &mut self,
        store: &S,
        batch: usize,
        mut noted: Option<&mut Vec<Digest>>,
    ) -> Result<(), ReplayError> {
        let batch = batch.max(1);
        loop {
            // A page may be short for its bytes: only an empty one is the end.
            let rows = store.ledger_rows(self.size(), batch)?;
            if rows.is_empty() {
                return Ok(());
            }
            self.extend_noting(rows, noted.as_deref_mut())?;
        }
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

    /// Whether `record` is the entry at `position`: its leaf hash is the one the tree holds
    /// there.
    pub fn holds(&self, position: u64, record: &[u8]) -> bool {
        self.tree.stored_hash(0, position) == Some(leaf_hash(record))
    }

    /// The entries at `positions` (those of them the log holds), read from `store` — the
    /// records alone ([`ReplayStore::ledger_records`]) — and each checked against its leaf hash: refused with
    /// `replay.ledger_broken` (break `replay.ledger_entry_changed`) at the first position where the store no longer holds the
    /// entry this log was built from (the ledger was rewritten or cut since it was read), so
    /// what is returned is exactly what the tree commits to.
    pub fn read_entries<S: ReplayStore + ?Sized>(
        &self,
        store: &S,
        positions: Range<u64>,
    ) -> Result<Vec<Vec<u8>>, ReplayError> {
        read_checked_entries(store, &self.entry_hashes(positions))
    }

    /// The leaf hashes of the entries at `positions` (those of them the log holds): what
    /// [`read_checked_entries`] checks the records it reads against, so that a reader can let
    /// go of the log before it reads the store.
    pub fn entry_hashes(&self, positions: Range<u64>) -> EntryHashes {
        let end = positions.end.min(self.size());
        let hashes = (positions.start..end)
            .map_while(|position| self.tree.stored_hash(0, position))
            .collect();
        EntryHashes {
            start: positions.start,
            hashes,
        }
    }

    /// The position of the record of the completed execution `execution_id`.
    pub fn position_of(&self, execution_id: &ExecutionId) -> Option<u64> {
        self.by_execution
            .get(&id_key(execution_id.as_str()))
            .copied()
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

/// How many records [`LedgerLog::catch_up`] reads at a time.
pub const CATCH_UP_BATCH: usize = 1_024;

/// The leaf hashes of a run of a log's entries, from `start` ([`LedgerLog::entry_hashes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHashes {
    start: u64,
    hashes: Vec<Digest>,
}

impl EntryHashes {
    /// The position of the first.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// The entries `hashes` names, read from `store` — the records alone
/// ([`ReplayStore::ledger_records`]) — and each checked against its leaf hash: refused with
/// `replay.ledger_broken` (break `replay.ledger_entry_changed`) at the first position where the store no longer holds the
/// entry the log was built from (the ledger was rewritten or cut since it was read), so what is
/// returned is exactly what the tree commits to.
pub fn read_checked_entries<S: ReplayStore + ?Sized>(
    store: &S,
    hashes: &EntryHashes,
) -> Result<Vec<Vec<u8>>, ReplayError> {
    let mut rows = Vec::new().into_iter();
    let mut entries = Vec::with_capacity(hashes.len());
    for (position, hash) in (hashes.start..).zip(&hashes.hashes) {
        // A page may be short for its bytes: the next one starts where it stopped.
        if rows.as_slice().is_empty() {
            let left = hashes.len() - entries.len();
            rows = store.ledger_records(position, left)?.into_iter();
        }
        match rows.next() {
            Some(row) if row.position == position && leaf_hash(&row.record) == *hash => {
                entries.push(row.record);
            }
            _ => {
                return Err(ReplayError::LedgerBroken(LedgerBreak {
                    position,
                    kind: LedgerBreakKind::EntryChanged,
                }));
            }
        }
    }
    Ok(entries)
}

/// Walks `store`'s ledger page by page ([`walk_ledger`](crate::walk_ledger)) and builds its log,
/// refused with `replay.ledger_broken` when the ledger is not intact: its memory is a page's and
/// the log's own, whatever the attestations the ledger names.
pub fn ledger_log<S: ReplayStore + ?Sized>(store: &S) -> Result<LedgerLog, ReplayError> {
    crate::walk_ledger(store)?.into_log()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_canon::Timestamp;

    use super::*;
    use crate::{AcceptedVersions, ClaimOutcome, ClaimRecord, MemoryReplayStore, sequence_all};

    /// A catch-up reads batch after batch until one comes back empty: from an empty log, with
    /// batches of 1, 2, 3 and more than the ledger, it ends at the log read whole.
    #[test]
    fn a_catch_up_reads_batch_after_batch() {
        let store = MemoryReplayStore::new();
        let empty = ledger_log(&store).unwrap();
        for i in 0..7 {
            let id = ExecutionId::parse(&format!("batch-{i}")).unwrap();
            let claim = ClaimRecord::new(
                Digest::of(id.as_str().as_bytes()),
                b"inputs".to_vec(),
                Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            );
            let outcome = store
                .claim_completed(&id, &claim, AcceptedVersions::new(0, 0), b"attestation")
                .unwrap();
            assert_eq!(outcome, ClaimOutcome::Claimed);
        }
        sequence_all(&store).unwrap();
        let whole = ledger_log(&store).unwrap();
        assert_eq!(whole.size(), 7);
        for batch in [1, 2, 3, 7, 8, 100] {
            let mut log = empty.clone();
            log.catch_up_in_batches(&store, batch, None).unwrap();
            assert_eq!(log, whole, "batches of {batch}");
        }
    }
}
