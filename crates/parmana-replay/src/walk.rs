//! The walk of a ledger, record by record: what [`verify_ledger`](crate::verify_ledger) checks and the log it builds, read from a store page by page or from a snapshot.
//!
//! A store's ledger is walked from its [`LedgerSummary`] (one consistent read of the counts, the
//! largest stored checkpoint's size and the marks row, and of how many records the ledger held
//! then) and then page by page ([`ReplayStore::ledger_rows`]) up to that many records: records
//! below that count never change in an intact ledger, so the walk sees the ledger as it was at
//! the summary's read. The stored checkpoints are then read page by page too
//! ([`ReplayStore::checkpoints_from`]), up to that largest size, each checked against the tree.
//! Memory: a page and the log's index (the tree's hashes and one key per execution), however
//! large the attestations the ledger names and however many checkpoints the store keeps.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;

use parmana_canon::Digest;
use parmana_canon::merkle::MerkleTree;

use crate::ledger::{Entry, check_row};
use crate::{
    AcceptedVersions, CATCH_UP_BATCH, LEDGER_GENESIS, LedgerBreak, LedgerBreakKind, LedgerReport,
    LedgerRow, ReplayError, ReplayStore, StoredCheckpoint,
};

/// One consistent read of what a ledger walk needs besides the records, taken by
/// [`ReplayStore::ledger_summary`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerSummary {
    /// How many ledger records the store held (the walk reads that many).
    pub records: u64,
    /// How many completed executions the store holds (each sequenced one must have one record).
    pub completed_executions: u64,
    /// How many of them are completed but not yet sequenced (no ledger position yet).
    pub unsequenced: u64,
    /// The size of the largest stored checkpoint, if the store holds any (those stored after
    /// this read are not the walk's to check).
    pub largest_checkpoint: Option<u64>,
    /// The high-water marks as the store holds them (its marks row, read as stored: a reset
    /// is reported by the walk, not refused here).
    pub marks: AcceptedVersions,
}

/// A store's ledger, walked: the report (with how many stored checkpoints it checked against the
/// tree; their notes are the runtime's to verify) and the transparency log when the ledger is
/// intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedLedger {
    /// What the walk found.
    pub report: LedgerReport,
    /// The log over every record: `Some` exactly when the ledger is intact.
    pub log: Option<crate::LedgerLog>,
}

/// How many stored checkpoints a walk reads at a time (each at most 64 KiB of note).
pub const CHECKPOINT_PAGE: usize = 256;

/// Reads `store`'s checkpoints of sizes up to `largest`, by increasing size, a page
/// ([`CHECKPOINT_PAGE`]) at a time, handing each to `each` until it answers `false`. A store whose
/// pages do not move on by increasing size is `replay.store_corrupt`.
pub fn for_each_checkpoint<S: ReplayStore + ?Sized>(
    store: &S,
    largest: u64,
    mut each: impl FnMut(&StoredCheckpoint) -> bool,
) -> Result<(), ReplayError> {
    let mut from = 0_u64;
    loop {
        let page = store.checkpoints_from(from, CHECKPOINT_PAGE)?;
        let Some(last) = page.last().map(|checkpoint| checkpoint.size) else {
            return Ok(());
        };
        let mut floor = from;
        for checkpoint in &page {
            if checkpoint.size < floor {
                return Err(ReplayError::corrupt(format!(
                    "the stored checkpoints from size {from} on came back out of order"
                )));
            }
            floor = checkpoint.size.saturating_add(1);
            // Stored after the summary's read, or past it: not this walk's.
            if checkpoint.size > largest || !each(checkpoint) {
                return Ok(());
            }
        }
        // Only an empty page is the end (a store may answer short pages).
        if last == u64::MAX {
            return Ok(());
        }
        from = last + 1;
    }
}

impl WalkedLedger {
    /// The log, refused with `replay.ledger_broken` when the ledger is not intact.
    pub fn into_log(self) -> Result<crate::LedgerLog, ReplayError> {
        match (self.report.first_break, self.log) {
            (Some(first_break), _) => Err(ReplayError::LedgerBroken(first_break)),
            (None, Some(log)) => Ok(log),
            // A walk that finds no break builds its log: never here.
            (None, None) => Err(ReplayError::corrupt("the ledger walk built no log")),
        }
    }
}

/// Walks `store`'s ledger page by page ([`CATCH_UP_BATCH`] records at most, and no record after
/// those before it reach [`MAX_LEDGER_PAGE_BYTES`](crate::MAX_LEDGER_PAGE_BYTES)), then its stored
/// checkpoints ([`for_each_checkpoint`]): every check of
/// [`verify_ledger_snapshot`](crate::verify_ledger_snapshot), with the memory of a page and the
/// log's index. Store failures are errors; a broken ledger is a report with its first break.
pub fn walk_ledger<S: ReplayStore + ?Sized>(store: &S) -> Result<WalkedLedger, ReplayError> {
    walk_ledger_with(store, &mut |_| {})
}

/// [`walk_ledger`], handing `each_checkpoint` every stored checkpoint whose size and root the
/// walk found to commit to the records, by increasing size, in the same read: what checks a
/// checkpoint's note checks exactly the checkpoints the report counts, each read once.
pub fn walk_ledger_with<S: ReplayStore + ?Sized>(
    store: &S,
    each_checkpoint: &mut dyn FnMut(&StoredCheckpoint),
) -> Result<WalkedLedger, ReplayError> {
    let summary = store.ledger_summary()?;
    let mut walk = Walk::new(summary.records, summary.marks, summary.unsequenced);
    while walk.walked < summary.records && walk.broken.is_none() {
        let left = usize::try_from(summary.records - walk.walked).unwrap_or(usize::MAX);
        let rows = store.ledger_rows(walk.walked, left.min(CATCH_UP_BATCH))?;
        if rows.is_empty() {
            break;
        }
        // A writer may have appended since the summary: nothing past its count is walked.
        for row in rows.into_iter().take(left) {
            if !walk.push(&row) {
                break;
            }
        }
    }
    if let (None, Some(largest)) = (&walk.broken, summary.largest_checkpoint) {
        for_each_checkpoint(store, largest, |checkpoint| {
            let commits = walk.checkpoint(checkpoint);
            if commits {
                each_checkpoint(checkpoint);
            }
            commits
        })?;
    }
    Ok(walk.finish(summary.completed_executions, summary.unsequenced))
}

/// A walk in progress: the chain so far, the tree over it and where each execution sits.
pub(crate) struct Walk {
    /// How many records were walked (the next one's position).
    walked: u64,
    /// The digest of the last record walked, or the genesis digest.
    previous: Digest,
    tree: MerkleTree,
    /// Where each execution's record sits, by the log's key of its id (also how a second record
    /// of one execution is found).
    by_execution: HashMap<Digest, u64>,
    /// The store's marks row, which no marks record may prove more than.
    marks_row: AcceptedVersions,
    /// The first marks record proving more than the marks row holds.
    reset: Option<(u64, AcceptedVersions)>,
    report: LedgerReport,
    broken: Option<LedgerBreak>,
    /// The first stored checkpoint that does not commit to the records.
    checkpoint_mismatch: Option<LedgerBreak>,
}

impl Walk {
    /// A walk of a ledger of `records` records (as the store counts them), whose store holds
    /// `marks_row` and `unsequenced` completed executions not yet sequenced.
    pub(crate) fn new(records: u64, marks_row: AcceptedVersions, unsequenced: u64) -> Self {
        Self {
            walked: 0,
            previous: LEDGER_GENESIS,
            tree: MerkleTree::new(),
            by_execution: HashMap::new(),
            marks_row,
            reset: None,
            report: LedgerReport {
                records,
                executions: 0,
                mark_records: 0,
                unsequenced,
                checkpoints: 0,
                marks: AcceptedVersions::default(),
                marks_row,
                head: None,
                first_break: None,
            },
            broken: None,
            checkpoint_mismatch: None,
        }
    }

    /// Checks the next stored checkpoint (by increasing size) against the tree of the records
    /// pushed; `false` once one does not commit to them (the first is the one reported).
    pub(crate) fn checkpoint(&mut self, checkpoint: &StoredCheckpoint) -> bool {
        if self.checkpoint_mismatch.is_some() {
            return false;
        }
        self.report.checkpoints += 1;
        let commits = self
            .tree
            .root_at(checkpoint.size)
            .is_ok_and(|root| root == checkpoint.root);
        if !commits {
            self.checkpoint_mismatch = Some(LedgerBreak {
                position: checkpoint.size,
                kind: LedgerBreakKind::CheckpointMismatch {
                    size: checkpoint.size,
                },
            });
        }
        commits
    }

    /// The walk of a snapshot read whole: its records, then its checkpoints by increasing size.
    pub(crate) fn of_snapshot(snapshot: &crate::LedgerSnapshot) -> WalkedLedger {
        let records = u64::try_from(snapshot.rows.len()).unwrap_or(u64::MAX);
        let mut walk = Self::new(records, snapshot.marks, snapshot.unsequenced);
        for row in &snapshot.rows {
            if !walk.push(row) {
                break;
            }
        }
        if walk.broken.is_none() {
            let mut checkpoints: Vec<&StoredCheckpoint> = snapshot.checkpoints.iter().collect();
            checkpoints.sort_by_key(|checkpoint| checkpoint.size);
            for checkpoint in checkpoints {
                if !walk.checkpoint(checkpoint) {
                    break;
                }
            }
        }
        walk.finish(snapshot.completed_executions, snapshot.unsequenced)
    }

    /// Checks the next record; `false` once the ledger is broken (the walk stops there).
    pub(crate) fn push(&mut self, row: &LedgerRow) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let index = self.walked;
        let by_execution = &mut self.by_execution;
        let mut first_record_of = |id: &str| match by_execution.entry(crate::tlog::id_key(id)) {
            MapEntry::Vacant(vacant) => {
                vacant.insert(index);
                true
            }
            MapEntry::Occupied(_) => false,
        };
        let kind = match check_row(index, row, self.previous, &mut first_record_of) {
            Err(kind) => Some(kind),
            Ok(Entry::Execution) => {
                self.report.executions += 1;
                None
            }
            Ok(Entry::Marks(proven)) if proven.is_below(self.report.marks) => {
                Some(LedgerBreakKind::MarksLowered {
                    found: proven,
                    before: self.report.marks,
                })
            }
            Ok(Entry::Marks(proven)) => {
                self.report.mark_records += 1;
                self.report.marks = self.report.marks.max(proven);
                if self.reset.is_none() && self.marks_row.is_below(proven) {
                    self.reset = Some((index, proven));
                }
                None
            }
        };
        if let Some(kind) = kind {
            self.broken = Some(LedgerBreak {
                position: index,
                kind,
            });
            return false;
        }
        self.previous = Digest::of(&row.record);
        self.tree.push(&row.record);
        self.walked += 1;
        true
    }

    /// The report once every record and checkpoint was pushed: the first break in the chain,
    /// then records missing (fewer walked than the store counted, or fewer execution records than
    /// it says are sequenced), then a stored checkpoint that does not commit to the records, then
    /// a marks row lower than a marks record proves.
    pub(crate) fn finish(self, completed_executions: u64, unsequenced: u64) -> WalkedLedger {
        let mut report = LedgerReport {
            unsequenced,
            ..self.report
        };
        let sequenced = completed_executions.saturating_sub(unsequenced);
        let missing = (self.walked < report.records || sequenced > report.executions).then_some(
            LedgerBreak {
                position: self.walked,
                kind: LedgerBreakKind::RecordsMissing {
                    completed: completed_executions,
                },
            },
        );
        let reset = self.reset.map(|(position, proven)| LedgerBreak {
            position,
            kind: LedgerBreakKind::MarksReset {
                found: self.marks_row,
                proven,
            },
        });
        let first_break = self
            .broken
            .or(missing)
            .or(self.checkpoint_mismatch)
            .or(reset);
        if let Some(first_break) = first_break {
            report.head = None;
            report.first_break = Some(first_break);
            return WalkedLedger { report, log: None };
        }
        report.head = (self.walked > 0).then_some(self.previous);
        let log =
            crate::LedgerLog::from_parts(self.tree, self.previous, self.by_execution, report.marks);
        WalkedLedger {
            report,
            log: Some(log),
        }
    }
}
