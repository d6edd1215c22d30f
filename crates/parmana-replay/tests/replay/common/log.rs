//! The conformance suite for the ledger as a transparency log: one Merkle leaf per record, append-only roots, proofs that verify, no log over a broken ledger, ledgers walked page by page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use parmana_canon::merkle::{
    MerkleTree, empty_root, leaf_hash, verify_consistency, verify_inclusion,
};
use std::sync::atomic::{AtomicUsize, Ordering};

use parmana_replay::{
    AcceptedVersions, CATCH_UP_BATCH, CHECKPOINT_PAGE, ClaimOutcome, ClaimRecord, ExecutionId,
    ExecutionState, LedgerBreak, LedgerBreakKind, LedgerLog, LedgerRecord, LedgerRow,
    LedgerSummary, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
    for_each_checkpoint, ledger_log, read_ledger_snapshot, verify_ledger, verify_ledger_snapshot,
    walk_ledger,
};

use super::{Harness, Tamper, V0, claim_for, id};

/// The versions after the raise in [`ledger_is_a_merkle_log`].
const V1: AcceptedVersions = AcceptedVersions::new(1, 1);

/// Claims and completes `log-{i}` for each `i` in `range`, under `under`, then sequences them.
fn complete(store: &dyn ReplayStore, range: std::ops::Range<u32>, under: AcceptedVersions) {
    for i in range {
        let exec = id(&format!("log-{i}"));
        store
            .claim(&exec, &claim_for(&format!("log request {i}")), under)
            .unwrap()
            .require_claimed(&exec)
            .unwrap();
        store
            .complete(&exec, format!("log attestation {i}").as_bytes())
            .unwrap();
    }
    super::sequence(store);
}

/// Every record is a leaf, in position order; every execution proves its inclusion; a later log
/// extends an earlier one (its root at the earlier size is the earlier root, and a consistency
/// proof between them verifies).
pub(crate) fn ledger_is_a_merkle_log(h: &dyn Harness) {
    let store = h.store();
    let empty = ledger_log(store).unwrap();
    assert_eq!((empty.size(), empty.root()), (0, empty_root()));

    complete(store, 0..3, V0);
    store.accept_versions(1, 1).unwrap();
    complete(store, 3..5, V1);
    let log = ledger_log(store).unwrap();
    let snapshot = store.ledger_snapshot().unwrap();
    assert_eq!(log.size(), 6, "five execution records and one marks record");
    let mut expected = MerkleTree::new();
    snapshot
        .rows
        .iter()
        .for_each(|row| expected.push(&row.record));
    assert_eq!(log.root(), expected.root());
    let records: Vec<Vec<u8>> = snapshot.rows.iter().map(|r| r.record.clone()).collect();
    for from in 0..=8 {
        for to in from..=8 {
            // Read back from the store, checked against the tree; past the log, nothing.
            let (start, end) = (from.min(6), to.min(6));
            assert_eq!(
                log.read_entries(store, from..to).unwrap(),
                records[usize::try_from(start).unwrap()..usize::try_from(end).unwrap()],
                "entries {from}..{to}"
            );
        }
    }
    for row in &snapshot.rows {
        assert!(log.holds(row.position, &row.record));
        assert!(!log.holds(row.position, b"another record"));
    }
    assert!(!log.holds(6, &snapshot.rows[0].record), "past the log");
    for i in 0..5 {
        let position = log.position_of(&id(&format!("log-{i}"))).unwrap();
        let entry = log
            .read_entries(store, position..position + 1)
            .unwrap()
            .pop()
            .unwrap();
        let record = parmana_canon::parse_strict(&entry).unwrap();
        assert_eq!(record["execution_id"], format!("log-{i}").as_str());
        let proof = log.tree().inclusion_proof(position, log.size()).unwrap();
        verify_inclusion(leaf_hash(&entry), position, log.size(), &proof, log.root()).unwrap();
    }
    assert_eq!(log.position_of(&id("log-99")), None);

    complete(store, 5..9, V1);
    let later = ledger_log(store).unwrap();
    assert_eq!(later.size(), 10);
    assert_eq!(later.tree().root_at(6).unwrap(), log.root());
    let proof = later.tree().consistency_proof(6, 10).unwrap();
    verify_consistency(6, 10, &proof, log.root(), later.root()).unwrap();
}

/// A ledger with a record edited has no log: `replay.ledger_broken`, with the break's position.
pub(crate) fn no_log_over_a_broken_ledger(h: &dyn Harness) {
    let store = h.store();
    complete(store, 0..4, V0);
    let mut snapshot = store.ledger_snapshot().unwrap();
    let edited = String::from_utf8(snapshot.rows[2].record.clone())
        .unwrap()
        .replacen("log-2", "log-X", 1);
    snapshot.rows[2].record = edited.clone().into_bytes();
    let err = LedgerLog::from_snapshot(snapshot).unwrap_err();
    assert_eq!(err.code(), "replay.ledger_broken");
    assert!(err.to_string().contains("position 2"), "{err}");

    let report = h.tamper_and_verify(&Tamper::ReplaceRecord {
        position: 2,
        bytes: edited.into_bytes(),
    });
    assert!(!report.is_intact());
    if h.tampers_with_storage() {
        assert_eq!(
            ledger_log(store).unwrap_err().code(),
            "replay.ledger_broken"
        );
    }
}

/// `ledger_records` reads the records `ledger_rows` holds, alone, page by page (from any
/// position, at most `max`, empty past the end); the log's entries are read through it, never
/// with the executions beside them; a record over its bound is refused unread.
pub(crate) fn ledger_records_are_the_records_alone(h: &dyn Harness) {
    let store = h.store();
    complete(store, 0..5, V0);
    let rows = store.ledger_rows(0, 100).unwrap();
    let alone = |rows: &[LedgerRow]| -> Vec<LedgerRecord> {
        rows.iter()
            .map(|row| LedgerRecord {
                position: row.position,
                execution_id: row.execution_id.clone(),
                record: row.record.clone(),
            })
            .collect()
    };
    assert_eq!(rows.len(), 5);
    assert_eq!(store.ledger_records(0, 100).unwrap(), alone(&rows));
    assert_eq!(store.ledger_records(2, 2).unwrap(), alone(&rows[2..4]));
    assert!(store.ledger_records(5, 10).unwrap().is_empty());
    assert!(store.ledger_records(0, 0).unwrap().is_empty());
    let log = ledger_log(store).unwrap();
    let records: Vec<Vec<u8>> = rows.iter().map(|row| row.record.clone()).collect();
    assert_eq!(log.read_entries(store, 0..5).unwrap(), records);
    if !h.tampers_with_storage() {
        return;
    }
    // An execution's claim made unreadable: the rows beside it are refused, the records alone
    // still read — and so do the log's entries, which never read the executions.
    assert!(h.corrupt_claim("log-2"));
    assert_eq!(
        store.ledger_rows(0, 100).unwrap_err().code(),
        "replay.store_corrupt"
    );
    assert_eq!(store.ledger_records(0, 100).unwrap(), alone(&rows));
    assert_eq!(log.read_entries(store, 0..5).unwrap(), records);
    h.tamper_storage(&Tamper::ReplaceRecord {
        position: 3,
        bytes: vec![b'x'; 5000],
    });
    let refused = store.ledger_records(0, 100).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(!refused.to_string().contains("xxxx"), "{refused}");
    assert_eq!(store.ledger_records(0, 3).unwrap(), alone(&rows[..3]));
}

/// A log keeps no entry: it reads them back from the store. A record rewritten, deleted or
/// moved after the log was read is refused at its position (`replay.ledger_entry_changed`),
/// never handed out as the log's entry; the entries before it still read back.
pub(crate) fn log_entries_read_back_are_checked(h: &dyn Harness) {
    let store = h.store();
    complete(store, 0..5, V0);
    let log = ledger_log(store).unwrap();
    let records: Vec<Vec<u8>> = store
        .ledger_snapshot()
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.record)
        .collect();
    assert_eq!(log.read_entries(store, 0..5).unwrap(), records);
    if !h.tampers_with_storage() {
        return;
    }
    let refused_at = |position: u64| {
        let err = log.read_entries(store, 0..5).unwrap_err();
        assert_eq!(err.code(), "replay.ledger_broken");
        match err {
            parmana_replay::ReplayError::LedgerBroken(LedgerBreak { position: at, kind }) => {
                assert_eq!((at, kind), (position, LedgerBreakKind::EntryChanged));
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            log.read_entries(store, 0..position).unwrap(),
            records[..usize::try_from(position).unwrap()]
        );
    };
    h.tamper_and_verify(&Tamper::SwapRecords { a: 3, b: 4 });
    refused_at(3);
    h.tamper_and_verify(&Tamper::SwapRecords { a: 3, b: 4 });
    assert_eq!(log.read_entries(store, 0..5).unwrap(), records, "restored");
    let edited = String::from_utf8(records[1].clone())
        .unwrap()
        .replacen("log-1", "log-Y", 1);
    h.tamper_and_verify(&Tamper::ReplaceRecord {
        position: 1,
        bytes: edited.into_bytes(),
    });
    refused_at(1);
    h.tamper_and_verify(&Tamper::ReplaceRecord {
        position: 1,
        bytes: records[1].clone(),
    });
    h.tamper_and_verify(&Tamper::DeleteRecord { position: 4 });
    refused_at(4);
}

/// A walk reads the ledger page by page, never whole: with pages of at most two records it finds
/// what a whole read finds (the same report, the same log). It walks only the records the
/// summary counted, so a writer appending meanwhile changes nothing it reports; and a ledger cut
/// after the summary is missing records.
pub(crate) fn ledgers_are_walked_page_by_page(h: &dyn Harness) {
    let store = h.store();
    complete(store, 0..3, V0);
    store.accept_versions(1, 1).unwrap();
    complete(store, 3..5, V1);
    let snapshot = store.ledger_snapshot().unwrap();
    let summary = store.ledger_summary().unwrap();
    assert_eq!(
        (
            summary.records,
            summary.completed_executions,
            summary.unsequenced,
            summary.marks
        ),
        (6, 5, 0, V1)
    );
    assert_eq!(snapshot.rows.len(), 6);
    let whole = ledger_log(store).unwrap();

    let paged = Paged::new(store, None, None);
    let walked = walk_ledger(&paged).unwrap();
    assert!(walked.report.is_intact(), "{:?}", walked.report);
    assert_eq!(walked.report, verify_ledger_snapshot(&snapshot));
    assert_eq!(walked.log.as_ref(), Some(&whole));
    assert_eq!(verify_ledger(&paged).unwrap(), walked.report);
    assert_eq!(ledger_log(&paged).unwrap(), whole);
    assert!(
        paged.pages.load(Ordering::SeqCst) >= 3 * 3,
        "three walks of three pages"
    );

    // Stored checkpoints are read a page (of two, here) at a time, each checked against the tree.
    for size in [2, 4, 6] {
        store
            .store_checkpoint(&StoredCheckpoint {
                size,
                root: whole.tree().root_at(size).unwrap(),
                note: format!("note of size {size}\n"),
            })
            .unwrap();
    }
    let walked = walk_ledger(&paged).unwrap();
    assert!(walked.report.is_intact(), "{:?}", walked.report);
    assert_eq!(walked.report.checkpoints, 3);
    // One stored past the ledger's end (by a writer: no log had that size) is a mismatch at its
    // size; one stored after the summary was read is not the walk's to check.
    let past = StoredCheckpoint {
        size: 7,
        root: whole.root(),
        note: "note of size 7\n".to_owned(),
    };
    store.store_checkpoint(&past).unwrap();
    assert_eq!(
        walk_ledger(&paged).unwrap().report.first_break,
        Some(LedgerBreak {
            position: 7,
            kind: LedgerBreakKind::CheckpointMismatch { size: 7 },
        })
    );
    let before_it = LedgerSummary {
        largest_checkpoint: Some(6),
        ..summary.clone()
    };
    let walked = walk_ledger(&Paged::new(store, Some(before_it), None)).unwrap();
    assert!(walked.report.is_intact(), "{:?}", walked.report);
    assert_eq!(walked.report.checkpoints, 3);

    // Appended after the summary was read: not walked.
    complete(store, 5..8, V1);
    let stale = Paged::new(store, Some(summary), None);
    let walked = walk_ledger(&stale).unwrap();
    assert!(walked.report.is_intact(), "{:?}", walked.report);
    assert_eq!(walked.report.records, 6);
    assert_eq!(walked.log, Some(whole));

    // Cut after the summary was read: the records it counted from position 7 on are missing.
    let cut = Paged::new(store, None, Some(7));
    let walked = walk_ledger(&cut).unwrap();
    assert_eq!(
        walked.report.first_break,
        Some(LedgerBreak {
            position: 7,
            kind: LedgerBreakKind::RecordsMissing { completed: 8 },
        })
    );
    assert_eq!(walked.log, None);
    assert_eq!(ledger_log(&cut).unwrap_err().code(), "replay.ledger_broken");
    // Nor is a snapshot of it taken (the trait's own `ledger_snapshot`, which reads as a walk).
    let cut = Paged { whole: true, ..cut };
    match cut.ledger_snapshot() {
        Err(ReplayError::LedgerBroken(found)) => assert_eq!(
            found,
            LedgerBreak {
                position: 7,
                kind: LedgerBreakKind::RecordsMissing { completed: 8 },
            }
        ),
        other => panic!("{other:?}"),
    }
}

/// Checkpoint pages that do not move on by increasing size — out of order, a size repeated, a
/// size below the one asked from — are `replay.store_corrupt`; pages that do are read to the
/// largest size asked, and no further.
pub(crate) fn checkpoint_pages_must_move_on_by_increasing_size(h: &dyn Harness) {
    let at = |size: u64| StoredCheckpoint {
        size,
        root: parmana_canon::Digest::of(b"root"),
        note: format!("note {size}\n"),
    };
    let answering = |pages: Vec<Vec<StoredCheckpoint>>| Paged {
        checkpoint_pages: Some(pages),
        ..Paged::new(h.store(), None, None)
    };
    let sizes_read = |store: &Paged<'_>, largest: u64| {
        let mut sizes = Vec::new();
        for_each_checkpoint(store, largest, |checkpoint| {
            sizes.push(checkpoint.size);
            true
        })
        .map(|()| sizes)
    };
    let good = answering(vec![vec![at(1), at(3)], vec![at(4), at(9)]]);
    assert_eq!(sizes_read(&good, 100).unwrap(), [1, 3, 4, 9]);
    assert_eq!(sizes_read(&good, 4).unwrap(), [1, 3, 4]);
    for (what, pages) in [
        ("out of order", vec![vec![at(3), at(1)]]),
        ("repeated", vec![vec![at(2), at(2)]]),
        ("below from", vec![vec![at(1), at(5)], vec![at(2), at(6)]]),
    ] {
        let refused = sizes_read(&answering(pages), 100).unwrap_err();
        assert_eq!(refused.code(), "replay.store_corrupt", "{what}: {refused}");
    }
}

/// A store read through pages of at most two records and two checkpoints (a walk asks for no
/// more than a page, counted), never whole unless `whole` is set (its `ledger_snapshot` fails the
/// test otherwise), with the summary it was given (read before a writer went on), the records
/// from `cut` on hidden (a writer cut the ledger after the summary was read), and, when set,
/// `checkpoint_pages` answered as its checkpoint pages (a store that pages as it likes).
#[derive(Debug)]
struct Paged<'a> {
    inner: &'a dyn ReplayStore,
    summary: Option<LedgerSummary>,
    cut: Option<u64>,
    checkpoint_pages: Option<Vec<Vec<StoredCheckpoint>>>,
    whole: bool,
    pages: AtomicUsize,
}

impl<'a> Paged<'a> {
    fn new(inner: &'a dyn ReplayStore, summary: Option<LedgerSummary>, cut: Option<u64>) -> Self {
        Self {
            inner,
            summary,
            cut,
            checkpoint_pages: None,
            whole: false,
            pages: AtomicUsize::new(0),
        }
    }
}

impl ReplayStore for Paged<'_> {
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        match &self.summary {
            Some(summary) => Ok(summary.clone()),
            None => self.inner.ledger_summary(),
        }
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        assert!(max <= CATCH_UP_BATCH, "a page of {max} records asked for");
        self.pages.fetch_add(1, Ordering::SeqCst);
        let mut rows = self.inner.ledger_rows(from, max.min(2))?;
        rows.retain(|row| self.cut.is_none_or(|cut| row.position < cut));
        Ok(rows)
    }
    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        assert!(
            max <= CHECKPOINT_PAGE,
            "a page of {max} checkpoints asked for"
        );
        self.pages.fetch_add(1, Ordering::SeqCst);
        match &self.checkpoint_pages {
            // The first page whose sizes reach `from`, or none.
            Some(pages) => Ok(pages
                .iter()
                .find(|page| page.last().is_some_and(|last| last.size >= from))
                .cloned()
                .unwrap_or_default()),
            None => self.inner.checkpoints_from(from, max.min(2)),
        }
    }
    fn ledger_snapshot(&self) -> Result<parmana_replay::LedgerSnapshot, ReplayError> {
        assert!(self.whole, "the ledger was read whole");
        read_ledger_snapshot(self)
    }
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        self.inner.claim(execution_id, record, under)
    }
    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.inner.complete(execution_id, attestation)
    }
    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError> {
        self.inner.sequence(max)
    }
    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError> {
        self.inner.store_checkpoint(checkpoint)
    }
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        self.inner.latest_checkpoint()
    }
    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        self.inner.get(execution_id)
    }
    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        self.inner.pending_after(after, limit)
    }
    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        self.inner.accepted_versions()
    }
    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        self.inner.accept_versions(trust_root, release_manifest)
    }
}
