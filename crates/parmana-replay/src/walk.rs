//! The walk of a ledger, record by record: what [`verify_ledger`](crate::verify_ledger) checks and the log it builds, read from a store page by page or from a snapshot.
//!
//! A store's ledger is walked from its [`LedgerSummary`] (one consistent read of the counts, the
//! checkpoints and the marks row, and of how many records the ledger held then) and then page by
//! page ([`ReplayStore::ledger_rows`]) up to that many records: records below that count never
//! change in an intact ledger, so the walk sees the ledger as it was at the summary's read, with
//! memory bounded by a page and the log's index (the tree's hashes and one key per execution),
//! however large the attestations the ledger names.

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
    /// The stored checkpoints, by increasing size.
    pub checkpoints: Vec<StoredCheckpoint>,
    /// The high-water marks as the store holds them (its marks row, read as stored: a reset
    /// is reported by the walk, not refused here).
    pub marks: AcceptedVersions,
}

/// A store's ledger, walked: the report, the transparency log when the ledger is intact, and the
/// stored checkpoints the report checked (their notes are the runtime's to verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedLedger {
    /// What the walk found.
    pub report: LedgerReport,
    /// The log over every record: `Some` exactly when the ledger is intact.
    pub log: Option<crate::LedgerLog>,
    /// The stored checkpoints, by increasing size (each one's size and root checked against
    /// the log when the ledger is intact).
    pub checkpoints: Vec<StoredCheckpoint>,
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

/// Walks `store`'s ledger page by page ([`CATCH_UP_BATCH`] records at most, and at most
/// [`MAX_LEDGER_PAGE_BYTES`](crate::MAX_LEDGER_PAGE_BYTES) of them): every check of
/// [`verify_ledger_snapshot`](crate::verify_ledger_snapshot), with the memory of a page and the
/// log's index. Store failures are errors; a broken ledger is a report with its first break.
pub fn walk_ledger<S: ReplayStore + ?Sized>(store: &S) -> Result<WalkedLedger, ReplayError> {
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
    Ok(walk.finish(
        summary.completed_executions,
        summary.unsequenced,
        summary.checkpoints,
    ))
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
                head: None,
                first_break: None,
            },
            broken: None,
        }
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

    /// The report once every record was pushed: the first break in the chain, then records
    /// missing (fewer walked than the store counted, or fewer execution records than it says
    /// are sequenced), then a stored checkpoint that does not commit to the records, then a
    /// marks row lower than a marks record proves.
    pub(crate) fn finish(
        self,
        completed_executions: u64,
        unsequenced: u64,
        mut checkpoints: Vec<StoredCheckpoint>,
    ) -> WalkedLedger {
        checkpoints.sort_by_key(|checkpoint| checkpoint.size);
        let mut report = LedgerReport {
            unsequenced,
            checkpoints: u64::try_from(checkpoints.len()).unwrap_or(u64::MAX),
            ..self.report
        };
        let broken = |report: LedgerReport, position, kind| LedgerReport {
            head: None,
            first_break: Some(LedgerBreak { position, kind }),
            ..report
        };
        let first_break = self.broken.clone().or_else(|| {
            let sequenced = completed_executions.saturating_sub(unsequenced);
            if self.walked < report.records || sequenced > report.executions {
                return Some(LedgerBreak {
                    position: self.walked,
                    kind: LedgerBreakKind::RecordsMissing {
                        completed: completed_executions,
                    },
                });
            }
            checkpoints
                .iter()
                .find(|checkpoint| {
                    !self
                        .tree
                        .root_at(checkpoint.size)
                        .is_ok_and(|root| root == checkpoint.root)
                })
                .map(|checkpoint| LedgerBreak {
                    position: checkpoint.size,
                    kind: LedgerBreakKind::CheckpointMismatch {
                        size: checkpoint.size,
                    },
                })
                .or_else(|| {
                    self.reset.map(|(position, proven)| LedgerBreak {
                        position,
                        kind: LedgerBreakKind::MarksReset {
                            found: self.marks_row,
                            proven,
                        },
                    })
                })
        });
        if let Some(first_break) = first_break {
            report = broken(report, first_break.position, first_break.kind);
            return WalkedLedger {
                report,
                log: None,
                checkpoints,
            };
        }
        report.head = (self.walked > 0).then_some(self.previous);
        let log =
            crate::LedgerLog::from_parts(self.tree, self.previous, self.by_execution, report.marks);
        WalkedLedger {
            report,
            log: Some(log),
            checkpoints,
        }
    }
}
