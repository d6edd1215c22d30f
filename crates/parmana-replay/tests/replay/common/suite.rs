//! The behavioural conformance suite, written once: every function here runs against every backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Barrier;

use parmana_canon::Digest;
use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, LedgerBreakKind, ReplayError,
    ReplayStore, VersionKind, verify_ledger,
};

use super::{Harness, Tamper, V0, claim_for, id, race_for_ids, sequence};

pub(crate) fn claim_complete_get(h: &dyn Harness) {
    let store = h.store();
    let exec = id("exec-1");
    assert_eq!(store.get(&exec).unwrap(), ExecutionState::Absent);

    let claim = claim_for("exec-1 request");
    assert_eq!(
        store.claim(&exec, &claim, V0).unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.get(&exec).unwrap(),
        ExecutionState::Claimed(claim.clone())
    );

    store.complete(&exec, b"signed attestation").unwrap();
    let ExecutionState::Completed(done) = store.get(&exec).unwrap() else {
        panic!("exec-1 must be completed");
    };
    assert_eq!(done.claim(), &claim);
    assert_eq!(done.attestation(), b"signed attestation");
    assert_eq!(store.get(&id("exec-2")).unwrap(), ExecutionState::Absent);
}

pub(crate) fn double_claim_is_a_replay(h: &dyn Harness) {
    let store = h.store();
    let exec = id("exec-dup");
    let first = claim_for("first");
    let second = claim_for("second caller");
    assert_eq!(
        store.claim(&exec, &first, V0).unwrap(),
        ClaimOutcome::Claimed
    );
    let outcome = store.claim(&exec, &second, V0).unwrap();
    assert_eq!(outcome, ClaimOutcome::AlreadyClaimed);
    let refusal = outcome.require_claimed(&exec).unwrap_err();
    assert_eq!(refusal.code(), "replay.replay_detected");
    assert!(
        matches!(refusal, ReplayError::AlreadyClaimed { ref execution_id } if execution_id == "exec-dup")
    );
    // The loser's record is not stored.
    assert_eq!(
        store.get(&exec).unwrap(),
        ExecutionState::Claimed(first.clone())
    );
    // A completed id is never reopened either.
    store.complete(&exec, b"a").unwrap();
    assert_eq!(
        store.claim(&exec, &first, V0).unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
}

pub(crate) fn complete_without_claim_is_refused(h: &dyn Harness) {
    let store = h.store();
    let exec = id("never-claimed");
    let err = store.complete(&exec, b"attestation").unwrap_err();
    assert_eq!(err.code(), "replay.not_claimed");
    assert_eq!(store.get(&exec).unwrap(), ExecutionState::Absent);
    assert_eq!(verify_ledger(store).unwrap().records, 0);
}

pub(crate) fn complete_twice_is_refused(h: &dyn Harness) {
    let store = h.store();
    let exec = id("twice");
    store
        .claim(&exec, &claim_for("twice"), V0)
        .unwrap()
        .require_claimed(&exec)
        .unwrap();
    store.complete(&exec, b"first outcome").unwrap();
    let err = store.complete(&exec, b"second outcome").unwrap_err();
    assert_eq!(err.code(), "replay.already_completed");
    let ExecutionState::Completed(done) = store.get(&exec).unwrap() else {
        panic!("must stay completed");
    };
    assert_eq!(done.attestation(), b"first outcome");
    // Completed, not yet sequenced: no record yet, and that is no break.
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.unsequenced), (0, 1));
    assert_eq!(sequence(store), 1);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.unsequenced), (1, 0));
    assert_eq!(sequence(store), 0, "a completion is sequenced once");
}

pub(crate) fn pending_lists_claimed_but_not_completed(h: &dyn Harness) {
    let store = h.store();
    assert!(store.pending().unwrap().is_empty());
    for name in ["c-3", "a-1", "b-2", "d-4"] {
        store
            .claim(&id(name), &claim_for(name), V0)
            .unwrap()
            .require_claimed(&id(name))
            .unwrap();
    }
    store.complete(&id("b-2"), b"done").unwrap();
    assert_eq!(
        store.pending().unwrap(),
        vec![id("a-1"), id("c-3"), id("d-4")]
    );
    // Recovery: finish a pending execution from its recorded claim.
    let ExecutionState::Claimed(recorded) = store.get(&id("c-3")).unwrap() else {
        panic!("c-3 must be pending");
    };
    assert_eq!(recorded, claim_for("c-3"));
    store.complete(&id("c-3"), b"recovered").unwrap();
    assert_eq!(store.pending().unwrap(), vec![id("a-1"), id("d-4")]);
}

/// Pages of pending ids continue after the last id of the one before, each id once, completed
/// ones left out, never more than the limit; a short page is the last.
pub(crate) fn pending_pages_continue_after_the_last_id(h: &dyn Harness) {
    let store = h.store();
    let names: Vec<String> = (0..23)
        .map(|i| format!("page-{:02}", (i * 7) % 23))
        .collect();
    for name in &names {
        store
            .claim(&id(name), &claim_for(name), V0)
            .unwrap()
            .require_claimed(&id(name))
            .unwrap();
    }
    for done in ["page-00", "page-05", "page-22"] {
        store.complete(&id(done), b"done").unwrap();
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.pending_after(seen.last(), 4).unwrap();
        assert!(page.len() <= 4, "a page of {}", page.len());
        pages += 1;
        let short = page.len() < 4;
        seen.extend(page);
        if short {
            break;
        }
    }
    assert_eq!(
        pages, 6,
        "20 pending ids in five pages of 4, then an empty one"
    );
    let mut expected: Vec<_> = names
        .iter()
        .filter(|n| !["page-00", "page-05", "page-22"].contains(&n.as_str()))
        .map(|n| id(n))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every pending id once, in order");
    assert_eq!(store.pending().unwrap(), expected);
    assert!(
        store
            .pending_after(Some(&id("page-21")), 4)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pending_after(None, 0).unwrap(), Vec::new());
}

pub(crate) fn version_high_water_marks_refuse_rollback(h: &dyn Harness) {
    let store = h.store();
    let marks = |t, r| AcceptedVersions {
        trust_root: t,
        release_manifest: r,
    };
    assert_eq!(store.accepted_versions().unwrap(), marks(0, 0));
    assert_eq!(store.accept_versions(1, 1).unwrap(), marks(1, 1));
    assert_eq!(store.accept_versions(3, 2).unwrap(), marks(3, 2));

    let err = store.accept_versions(2, 5).unwrap_err();
    assert_eq!(err.code(), "replay.version_rollback");
    assert_eq!(
        err,
        ReplayError::VersionRollback {
            kind: VersionKind::TrustRoot,
            offered: 2,
            accepted: 3
        }
    );
    // Refused atomically: the newer release manifest offered with it was not recorded.
    assert_eq!(store.accepted_versions().unwrap(), marks(3, 2));

    let err = store.accept_versions(4, 1).unwrap_err();
    assert_eq!(
        err,
        ReplayError::VersionRollback {
            kind: VersionKind::ReleaseManifest,
            offered: 1,
            accepted: 2
        }
    );
    assert_eq!(store.accepted_versions().unwrap(), marks(3, 2));

    // The same versions again are fine.
    assert_eq!(store.accept_versions(3, 2).unwrap(), marks(3, 2));
    let err = store.accept_versions(u64::MAX, 2).unwrap_err();
    assert_eq!(err.code(), "replay.version_too_large");
    assert_eq!(store.accepted_versions().unwrap(), marks(3, 2));

    if let Some(reopened) = h.reopen() {
        let reopened = reopened.unwrap();
        assert_eq!(reopened.accepted_versions().unwrap(), marks(3, 2));
        assert_eq!(
            reopened.accept_versions(2, 2).unwrap_err().code(),
            "replay.version_rollback"
        );
    }
}

/// Completes `count` executions named `ledger-<i>` in order, then sequences them.
fn fill_ledger(store: &dyn ReplayStore, count: usize) {
    for i in 0..count {
        let exec = id(&format!("ledger-{i}"));
        store
            .claim(&exec, &claim_for(&format!("ledger request {i}")), V0)
            .unwrap()
            .require_claimed(&exec)
            .unwrap();
        store
            .complete(&exec, format!("attestation {i}").as_bytes())
            .unwrap();
    }
    sequence(store);
}

pub(crate) fn ledger_appends_and_verifies(h: &dyn Harness) {
    let store = h.store();
    let empty = verify_ledger(store).unwrap();
    assert!(empty.is_intact());
    assert_eq!((empty.records, empty.head), (0, None));

    fill_ledger(store, 5);
    // A claimed but uncompleted execution has no record.
    store
        .claim(&id("in-flight"), &claim_for("x"), V0)
        .unwrap()
        .require_claimed(&id("in-flight"))
        .unwrap();
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 5);

    let snapshot = store.ledger_snapshot().unwrap();
    assert_eq!(snapshot.completed_executions, 5);
    let ids: Vec<_> = snapshot
        .rows
        .iter()
        .map(|r| r.execution_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["ledger-0", "ledger-1", "ledger-2", "ledger-3", "ledger-4"]
    );
    assert_eq!(report.head, Some(Digest::of(&snapshot.rows[4].record)));
    // Records are canonical JSON chained by digest.
    let second = parmana_canon::parse_strict(&snapshot.rows[1].record).unwrap();
    assert_eq!(second["position"], 1);
    assert_eq!(
        second["previous"],
        Digest::of(&snapshot.rows[0].record).to_string().as_str()
    );
    assert_eq!(
        second["attestation_digest"],
        Digest::of(b"attestation 1").to_string().as_str()
    );
    assert_eq!(
        parmana_canon::canonicalize(&snapshot.rows[1].record).unwrap(),
        snapshot.rows[1].record
    );
}

/// Replaces `from` by `to` inside the record at `position`.
fn edited_record(h: &dyn Harness, position: usize, from: &str, to: &str) -> Vec<u8> {
    let record = h.store().ledger_snapshot().unwrap().rows[position]
        .record
        .clone();
    let text = String::from_utf8(record).unwrap();
    assert!(text.contains(from), "{text} lacks {from}");
    text.replacen(from, to, 1).into_bytes()
}

/// One way of tampering with a five-record ledger and the first break it must cause.
pub(crate) fn ledger_tampering_is_detected(open: &dyn Fn() -> Option<Box<dyn Harness>>) {
    type Case = (&'static str, fn(&dyn Harness) -> Tamper, u64, &'static str);
    let cases: &[Case] = &[
        (
            "edit the attestation digest of record 2",
            |h| {
                let wrong = Digest::of(b"forged").to_string();
                let right = Digest::of(b"attestation 2").to_string();
                Tamper::ReplaceRecord {
                    position: 2,
                    bytes: edited_record(h, 2, &right, &wrong),
                }
            },
            2,
            "replay.ledger_execution_mismatch",
        ),
        (
            "edit the chain link of record 3",
            |h| {
                let snapshot = h.store().ledger_snapshot().unwrap();
                let right = Digest::of(&snapshot.rows[2].record).to_string();
                Tamper::ReplaceRecord {
                    position: 3,
                    bytes: edited_record(h, 3, &right, &Digest::of(b"x").to_string()),
                }
            },
            3,
            "replay.ledger_chain_broken",
        ),
        (
            "re-encode record 1 non-canonically",
            |h| Tamper::ReplaceRecord {
                position: 1,
                bytes: edited_record(h, 1, "{", "{ "),
            },
            1,
            "replay.ledger_record_not_canonical",
        ),
        (
            "replace record 0 with garbage",
            |_| Tamper::ReplaceRecord {
                position: 0,
                bytes: b"not json".to_vec(),
            },
            0,
            "replay.ledger_record_malformed",
        ),
        (
            "delete record 2",
            |_| Tamper::DeleteRecord { position: 2 },
            2,
            "replay.ledger_position_mismatch",
        ),
        (
            "delete the last record",
            |_| Tamper::DeleteRecord { position: 4 },
            4,
            "replay.ledger_records_missing",
        ),
        (
            "swap records 1 and 3",
            |_| Tamper::SwapRecords { a: 1, b: 3 },
            1,
            "replay.ledger_position_mismatch",
        ),
        (
            "edit the stored attestation of the execution at position 3",
            |_| Tamper::ReplaceAttestation {
                execution_id: "ledger-3".to_owned(),
                bytes: b"forged attestation".to_vec(),
            },
            3,
            "replay.ledger_execution_mismatch",
        ),
    ];
    for (what, tamper, position, code) in cases {
        let Some(h) = open() else { return };
        fill_ledger(h.store(), 5);
        assert!(verify_ledger(h.store()).unwrap().is_intact());
        let report = h.tamper_and_verify(&tamper(&*h));
        let found = report
            .first_break
            .unwrap_or_else(|| panic!("{what}: not detected"));
        assert_eq!(
            (found.position, found.code()),
            (*position, *code),
            "{what}: {found}"
        );
        assert_eq!(report.head, None, "{what}");
    }
}

pub(crate) fn execution_mismatch_names_the_field(h: &dyn Harness) {
    fill_ledger(h.store(), 3);
    let report = h.tamper_and_verify(&Tamper::ReplaceAttestation {
        execution_id: "ledger-1".to_owned(),
        bytes: b"other".to_vec(),
    });
    let found = report.first_break.unwrap();
    assert_eq!(
        found.kind,
        LedgerBreakKind::ExecutionMismatch {
            field: "attestation_digest"
        }
    );
    assert_eq!(
        found.to_string(),
        "ledger broken at position 1: `attestation_digest` differs from the stored execution"
    );
}

pub(crate) fn survives_reopen(h: &dyn Harness) {
    let Some(reopened) = h.reopen() else {
        return; // nothing to reopen for the memory backend
    };
    let store = h.store();
    fill_ledger(store, 3);
    store
        .claim(&id("pending-1"), &claim_for("p"), V0)
        .unwrap()
        .require_claimed(&id("pending-1"))
        .unwrap();
    drop(reopened);
    let again = h.reopen().unwrap().unwrap();
    assert_eq!(again.pending().unwrap(), vec![id("pending-1")]);
    assert_eq!(
        again.claim(&id("ledger-1"), &claim_for("x"), V0).unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    assert!(verify_ledger(&*again).unwrap().is_intact());
    // Both handles write to the same ledger.
    again
        .complete(&id("pending-1"), b"finished elsewhere")
        .unwrap();
    assert_eq!(sequence(store), 1);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 4);
}

pub(crate) fn unreadable_rows_are_corrupt(h: &dyn Harness) {
    let exec = id("to-corrupt");
    h.store()
        .claim(&exec, &claim_for("c"), V0)
        .unwrap()
        .require_claimed(&exec)
        .unwrap();
    if !h.corrupt_claim("to-corrupt") {
        return;
    }
    assert_eq!(
        h.store().get(&exec).unwrap_err().code(),
        "replay.store_corrupt"
    );
    // Completing writes the execution's own row only; the sequencer, which reads the claim to
    // write the record, fails closed: it refuses and appends nothing.
    h.store().complete(&exec, b"a").unwrap();
    assert_eq!(
        h.store().sequence(10).unwrap_err().code(),
        "replay.store_corrupt"
    );
    assert_eq!(h.store().ledger_snapshot().unwrap().rows.len(), 0);
}

/// A store written by a newer schema is refused as such; one whose schema version is negative,
/// which no build writes, as corrupt.
pub(crate) fn future_schema_is_refused(h: &dyn Harness) {
    let Some(supported) = h.set_schema_version(99) else {
        return;
    };
    let Err(err) = h.reopen().unwrap() else {
        panic!("a store written by a newer schema must be refused");
    };
    assert_eq!(err.code(), "replay.schema_version_unsupported");
    assert!(matches!(
        err,
        ReplayError::SchemaVersionUnsupported { found: 99, supported: current }
            if current == supported
    ));
    h.set_schema_version(-1);
    let Err(err) = h.reopen().unwrap() else {
        panic!("a store at a negative schema version must be refused");
    };
    assert_eq!(err.code(), "replay.store_corrupt", "{err}");
    assert!(err.to_string().contains("no build writes"), "{err}");
}

/// 32 threads race on the same 1,000 ids, each in its own order: exactly one winner per id,
/// and the stored claim is the winner's.
pub(crate) fn threads_race_one_winner_per_id(h: &dyn Harness) {
    const THREADS: usize = 32;
    const IDS: usize = 1_000;
    let store = h.store();
    let ids: Vec<_> = (0..IDS).map(|i| id(&format!("race-{i}"))).collect();
    let claims: Vec<ClaimRecord> = (0..THREADS)
        .map(|t| claim_for(&format!("thread {t}")))
        .collect();
    let winner = race_for_ids(
        THREADS,
        IDS,
        // Half the threads go forwards, half backwards, all from different offsets.
        |t, k| {
            if t.is_multiple_of(2) {
                (k + t * 31) % IDS
            } else {
                (IDS - 1 - k + t * 17) % IDS
            }
        },
        |t, i| store.claim(&ids[i], &claims[t], V0).unwrap() == ClaimOutcome::Claimed,
    );
    for (i, t) in winner {
        assert_eq!(
            store.get(&ids[i]).unwrap(),
            ExecutionState::Claimed(claims[t].clone())
        );
    }
    assert_eq!(store.pending().unwrap().len(), IDS);
}

/// 8 threads race to complete the same 100 claimed ids: one outcome per id, one record each,
/// and the ledger chain stays intact.
pub(crate) fn threads_race_to_complete(h: &dyn Harness) {
    const THREADS: usize = 8;
    const IDS: usize = 100;
    let store = h.store();
    let ids: Vec<_> = (0..IDS).map(|i| id(&format!("done-{i}"))).collect();
    for exec in &ids {
        store
            .claim(exec, &claim_for(exec.as_str()), V0)
            .unwrap()
            .require_claimed(exec)
            .unwrap();
    }
    let start = Barrier::new(THREADS);
    let completed: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (ids, start) = (&ids, &start);
                scope.spawn(move || {
                    start.wait();
                    let mut done = Vec::new();
                    for k in 0..IDS {
                        let i = (k + t * 13) % IDS;
                        match store.complete(&ids[i], format!("by thread {t}").as_bytes()) {
                            Ok(()) => done.push(i),
                            Err(e) => assert_eq!(e.code(), "replay.already_completed"),
                        }
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by = HashMap::new();
    for (t, done) in completed.iter().enumerate() {
        for &i in done {
            assert!(by.insert(i, t).is_none(), "done-{i} completed twice");
        }
    }
    assert_eq!(by.len(), IDS);
    for (i, t) in by {
        let ExecutionState::Completed(done) = store.get(&ids[i]).unwrap() else {
            panic!("done-{i} not completed");
        };
        assert_eq!(done.attestation(), format!("by thread {t}").as_bytes());
    }
    assert_eq!(sequence(store), u64::try_from(IDS).unwrap());
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, u64::try_from(IDS).unwrap());
}
