//! The conformance suite for the batched sequencer and stored checkpoints: completions wait for the sequencer, batches are ordered and consecutive, racing sequencers neither double nor skip a position, and stored checkpoints that no longer commit to the ledger are breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;

use parmana_canon::Digest;
use parmana_canon::merkle::verify_consistency;
use parmana_replay::{
    ClaimRecord, ExecutionState, LedgerBreakKind, LedgerLog, ReplayStore, SequenceOutcome,
    StoredCheckpoint, ledger_log, verify_ledger,
};

use super::{Harness, Tamper, V0, at, claim_for, id, sequence};

/// Claims `name` at the clock reading `seconds` and completes it.
fn complete_at(store: &dyn ReplayStore, name: &str, seconds: i64) {
    let exec = id(name);
    let base = claim_for(name);
    let claim = parmana_replay::ClaimRecord::new(
        base.request_digest(),
        base.attestation_inputs().to_vec(),
        at(seconds),
    );
    store
        .claim(&exec, &claim, V0)
        .unwrap()
        .require_claimed(&exec)
        .unwrap();
    store
        .complete(&exec, format!("attestation of {name}").as_bytes())
        .unwrap();
}

/// A run reads at most `MAX_SEQUENCE_BATCH_BYTES` of payloads (the first execution always, the
/// next ones while the payloads before them stay under it): a backlog of large executions is
/// integrated in several runs, never read whole at once.
pub(crate) fn sequencer_batches_are_bounded_in_bytes(h: &dyn Harness) {
    let store = h.store();
    let mut kept = ledger_log(store).unwrap();
    // Executions whose recorded inputs are at their bound (an attestation's is far lower, 4 MiB),
    // as one claim time: the run takes them by id. `per_run` of them fill a run to its bound;
    // the next one starts past it.
    let bound = usize::try_from(parmana_replay::MAX_SEQUENCE_BATCH_BYTES).unwrap();
    let big = usize::try_from(parmana_replay::MAX_STORED_EXECUTION_BYTES).unwrap();
    assert_eq!(bound % big, 0);
    let per_run = bound / big;
    let names: Vec<String> = (0..=per_run).map(|n| format!("big-{n:02}")).collect();
    for (n, name) in names.iter().enumerate() {
        let exec = id(name);
        let mut inputs = vec![b'x'; big];
        inputs[0] = u8::try_from(n).unwrap();
        let claim = claim_for(name);
        let record = ClaimRecord::new(claim.request_digest(), inputs, claim.claimed_at());
        store
            .claim(&exec, &record, V0)
            .unwrap()
            .require_claimed(&exec)
            .unwrap();
        store
            .complete(&exec, format!("attestation of {name}").as_bytes())
            .unwrap();
    }
    complete_at(store, "small-d", 1_000_000);
    let ids = |outcome: SequenceOutcome| -> Vec<String> {
        outcome
            .rows()
            .iter()
            .map(|r| r.execution_id.clone().unwrap())
            .collect()
    };
    let (first, last) = names.split_at(per_run);
    let second: Vec<String> = last.iter().cloned().chain(["small-d".to_owned()]).collect();
    // A run fills to its bound; the execution past it waits for the next run, with the small one.
    assert_eq!(ids(store.sequence(4096).unwrap()), first);
    assert_eq!(ids(store.sequence(4096).unwrap()), second);
    assert!(ids(store.sequence(4096).unwrap()).is_empty());
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.executions, report.unsequenced),
        (u64::try_from(per_run).unwrap() + 2, 0)
    );
    // Reading the ledger back is bounded the same way (MAX_LEDGER_PAGE_BYTES): a page stops
    // once its rows pass the bound, at least one row however large, and a reader pages on
    // until a page is empty — catching up, and reading entries, across the short pages.
    let page_ids = |from: u64| -> Vec<String> {
        store
            .ledger_rows(from, 4096)
            .unwrap()
            .iter()
            .filter_map(|r| r.execution_id.clone())
            .collect()
    };
    let from = kept.size();
    let taken = u64::try_from(per_run).unwrap();
    assert_eq!(page_ids(from), first);
    assert_eq!(page_ids(from + taken), second);
    assert!(page_ids(from + taken + 2).is_empty());
    kept.catch_up(store).unwrap();
    let whole = ledger_log(store).unwrap();
    assert_eq!((kept.size(), kept.root()), (whole.size(), whole.root()));
    let entries = kept.read_entries(store, 0..kept.size()).unwrap();
    assert_eq!(u64::try_from(entries.len()).unwrap(), kept.size());
}

/// A checkpoint of `store`'s log as it is now (the note is a stand-in: the store does not
/// read it; the runtime signs real ones).
fn checkpoint_now(store: &dyn ReplayStore) -> StoredCheckpoint {
    let log = ledger_log(store).unwrap();
    StoredCheckpoint {
        size: log.size(),
        root: log.root(),
        note: format!("test.example/log\n{}\n", log.size()),
    }
}

/// A completion is readable at once and waits for the sequencer; one run takes at most `max`,
/// by claim time then id, at consecutive positions, and returns exactly the records the ledger
/// then holds.
pub(crate) fn sequencer_integrates_in_batches(h: &dyn Harness) {
    let store = h.store();
    // Completion order differs from the sequencer's order (claim time, then id).
    for (name, seconds) in [("c", 5), ("a", 9), ("b", 5), ("d", 1), ("e", 9)] {
        complete_at(store, name, seconds);
    }
    assert!(matches!(
        store.get(&id("c")).unwrap(),
        ExecutionState::Completed(_)
    ));
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.unsequenced), (0, 5));

    let SequenceOutcome::Integrated(first) = store.sequence(3).unwrap() else {
        panic!("no other integrator runs");
    };
    let names = |rows: &[parmana_replay::LedgerRow]| -> Vec<(u64, String)> {
        rows.iter()
            .map(|r| (r.position, r.execution_id.clone().unwrap()))
            .collect()
    };
    assert_eq!(
        names(&first),
        [
            (0, "d".to_owned()),
            (1, "b".to_owned()),
            (2, "c".to_owned())
        ]
    );
    let mut log = LedgerLog::from_snapshot(store.ledger_snapshot().unwrap()).unwrap();
    assert_eq!(store.ledger_snapshot().unwrap().rows, first);
    assert_eq!(verify_ledger(store).unwrap().unsequenced, 2);

    let second = store.sequence(3).unwrap();
    assert_eq!(
        names(second.rows()),
        [(3, "a".to_owned()), (4, "e".to_owned())]
    );
    // The log extends with the records the run returned, and equals the one rebuilt.
    log.extend(second.rows().to_vec()).unwrap();
    assert_eq!(log, ledger_log(store).unwrap());
    // Records out of place are refused and leave the log as it was.
    let err = log.extend(second.rows().to_vec()).unwrap_err();
    assert_eq!(err.code(), "replay.ledger_broken");
    assert_eq!(log.size(), 5);

    assert_eq!(
        store.sequence(3).unwrap(),
        SequenceOutcome::Integrated(vec![])
    );
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.unsequenced), (5, 0));
}

/// `ledger_rows` reads the ledger from a position on exactly as the snapshot holds it; a log
/// kept at any size catches up to the log read whole (through a marks record too); and records
/// rewritten after a kept log's end do not extend it.
pub(crate) fn logs_catch_up_from_any_size(h: &dyn Harness) {
    let store = h.store();
    for i in 0..6 {
        complete_at(store, &format!("rows-{i}"), i);
    }
    sequence(store);
    store.accept_versions(1, 1).unwrap();
    let rows = store.ledger_snapshot().unwrap().rows;
    let total = rows.len();
    assert_eq!(total, 7, "six execution records and a marks record");
    for from in 0..=total + 1 {
        for max in [0, 1, 3, total + 5] {
            let (start, end) = (from.min(total), (from + max).min(total));
            assert_eq!(
                store
                    .ledger_rows(u64::try_from(from).unwrap(), max)
                    .unwrap(),
                rows[start..end],
                "from {from}, at most {max}"
            );
        }
    }
    assert_eq!(store.ledger_rows(u64::MAX, usize::MAX).unwrap(), []);

    // A log kept at `size` entries: the snapshot cut there.
    let kept_at = |size: usize| {
        let mut partial = store.ledger_snapshot().unwrap();
        partial.rows.truncate(size);
        let executions = partial
            .rows
            .iter()
            .filter(|r| r.execution_id.is_some())
            .count();
        partial.completed_executions = u64::try_from(executions).unwrap();
        partial.unsequenced = 0;
        partial.checkpoints.clear();
        LedgerLog::from_snapshot(partial).unwrap()
    };
    let whole = ledger_log(store).unwrap();
    for size in 0..=total {
        let mut log = kept_at(size);
        log.catch_up(store).unwrap();
        assert_eq!(log, whole, "caught up from {size}");
    }

    if h.tampers_with_storage() {
        let mut log = kept_at(3);
        let rewritten = rows[4].record.clone();
        h.tamper_and_verify(&Tamper::ReplaceRecord {
            position: 5,
            bytes: rewritten,
        });
        let err = log.catch_up(store).unwrap_err();
        assert_eq!(err.code(), "replay.ledger_broken");
        assert_eq!(
            log.size(),
            3,
            "a batch that does not extend the log leaves it as it was"
        );
    }
}

/// Eight threads complete executions and run the sequencer at the same time, storing a
/// checkpoint after each run: no position is doubled or skipped, every completion has exactly
/// one record, and every stored checkpoint is consistent with every earlier one.
pub(crate) fn sequencers_race(h: &dyn Harness) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let store = h.store();
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for k in 0..PER_THREAD {
                    complete_at(store, &format!("race-{t}-{k}"), i64::try_from(k).unwrap());
                    if k % 5 == 4 {
                        // Busy (another integrator holds the lock) is an answer, not an error.
                        let _ = store.sequence(7).unwrap();
                        store.store_checkpoint(&checkpoint_now(store)).unwrap();
                    }
                }
            });
        }
    });
    sequence(store);
    store.store_checkpoint(&checkpoint_now(store)).unwrap();
    let total = u64::try_from(THREADS * PER_THREAD).unwrap();
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.records, report.executions, report.unsequenced),
        (total, total, 0)
    );
    let snapshot = store.ledger_snapshot().unwrap();
    let positions: Vec<u64> = snapshot.rows.iter().map(|r| r.position).collect();
    assert_eq!(positions, (0..total).collect::<Vec<_>>());
    assert!(report.checkpoints >= 2, "{report:?}");
    let log = ledger_log(store).unwrap();
    for pair in snapshot.checkpoints.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        assert!(old.size < new.size);
        let proof = log.tree().consistency_proof(old.size, new.size).unwrap();
        verify_consistency(old.size, new.size, &proof, old.root, new.root).unwrap();
    }
    assert_eq!(
        store.latest_checkpoint().unwrap().map(|c| c.size),
        Some(total)
    );
}

/// Stored checkpoints: the largest is the latest, a second one of a held size changes nothing,
/// and one whose root or size no longer commits to the ledger is a break at its size.
pub(crate) fn stored_checkpoints_are_checked(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(store.latest_checkpoint().unwrap(), None);
    for i in 0..3 {
        complete_at(store, &format!("cp-{i}"), i);
    }
    sequence(store);
    let at_three = checkpoint_now(store);
    store.store_checkpoint(&at_three).unwrap();
    let other = StoredCheckpoint {
        note: "another note".to_owned(),
        ..at_three.clone()
    };
    store.store_checkpoint(&other).unwrap();
    assert_eq!(store.latest_checkpoint().unwrap(), Some(at_three.clone()));
    for i in 3..6 {
        complete_at(store, &format!("cp-{i}"), i);
    }
    sequence(store);
    let at_six = checkpoint_now(store);
    store.store_checkpoint(&at_six).unwrap();
    assert_eq!(store.latest_checkpoint().unwrap(), Some(at_six));
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checkpoints, 2);

    let report = h.tamper_and_verify(&Tamper::ReplaceCheckpointRoot {
        size: 3,
        root: Digest::of(b"forged root"),
    });
    let found = report
        .first_break
        .expect("a forged checkpoint root is a break");
    assert_eq!(
        (found.position, found.code(), found.kind),
        (
            3,
            "replay.ledger_checkpoint_mismatch",
            LedgerBreakKind::CheckpointMismatch { size: 3 }
        )
    );
    // A checkpoint beyond the ledger's end commits to records the ledger does not hold.
    if h.tampers_with_storage() {
        h.tamper_and_verify(&Tamper::ReplaceCheckpointRoot {
            size: 3,
            root: at_three.root,
        });
        store
            .store_checkpoint(&StoredCheckpoint {
                size: 9,
                ..at_three
            })
            .unwrap();
        let report = verify_ledger(store).unwrap();
        let found = report.first_break.expect("a checkpoint beyond the end");
        assert_eq!(
            (found.position, found.code()),
            (9, "replay.ledger_checkpoint_mismatch")
        );
        // One filed under a negative size, which no page of sizes from 0 reads: refused by the
        // summary, not skipped.
        assert!(h.tamper_storage(&Tamper::ResizeCheckpoint { size: 9, to: -1 }));
        let refused = verify_ledger(store).unwrap_err();
        assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    }
}

/// Recovery-style completion of a claim left pending works while others wait for the
/// sequencer, and the sequencer then takes both.
pub(crate) fn unsequenced_completions_and_pending_claims(h: &dyn Harness) {
    let store = h.store();
    complete_at(store, "done", 1);
    let pending = id("pending");
    store
        .claim(&pending, &claim_for("pending"), V0)
        .unwrap()
        .require_claimed(&pending)
        .unwrap();
    assert_eq!(store.pending().unwrap(), vec![pending.clone()]);
    store.complete(&pending, b"recovered").unwrap();
    assert!(store.pending().unwrap().is_empty());
    assert_eq!(sequence(store), 2);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.executions, report.unsequenced), (2, 0));
}
