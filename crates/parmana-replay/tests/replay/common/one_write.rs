//! The claim with its attestation (`ReplayStore::claim_completed`), on every backend: the outcome of a claim, the row already completed, the same refusals, one winner per id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Barrier;

use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, ReplayStore, verify_ledger,
};

use super::{Harness, V0, at, claim_for, id, race_for_ids, sequence};

/// A won claim is stored completed with its attestation, never pending; a second one (with
/// another attestation) is a replay and the first outcome stands; the sequencer integrates it.
pub(crate) fn claim_completed_writes_a_completed_execution(h: &dyn Harness) {
    let store = h.store();
    let exec = id("one-write");
    let claim = claim_for("one-write request");
    assert_eq!(
        store.claim_completed(&exec, &claim, V0, b"first").unwrap(),
        ClaimOutcome::Claimed
    );
    let ExecutionState::Completed(done) = store.get(&exec).unwrap() else {
        panic!("one-write must be completed");
    };
    assert_eq!((done.claim(), done.attestation()), (&claim, &b"first"[..]));
    assert!(store.pending().unwrap().is_empty());

    let other = claim_for("another request");
    assert_eq!(
        store.claim_completed(&exec, &other, V0, b"second").unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    assert_eq!(
        store.claim(&exec, &other, V0).unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    assert_eq!(
        store.complete(&exec, b"third").unwrap_err().code(),
        "replay.already_completed"
    );
    let ExecutionState::Completed(done) = store.get(&exec).unwrap() else {
        panic!("one-write must stay completed");
    };
    assert_eq!((done.claim(), done.attestation()), (&claim, &b"first"[..]));

    // A plain claim made before is taken too: claim_completed never completes it.
    let claimed = id("claimed-first");
    assert_eq!(
        store.claim(&claimed, &claim, V0).unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store
            .claim_completed(&claimed, &claim, V0, b"late")
            .unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    assert_eq!(
        store.get(&claimed).unwrap(),
        ExecutionState::Claimed(claim.clone())
    );
    assert_eq!(store.pending().unwrap(), vec![claimed]);

    assert_eq!(sequence(store), 1);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.executions, report.unsequenced), (1, 0));
}

/// Each case in order against one store: the refusals of a claim, with their codes, leave the
/// id absent; a raise is made and the row written completed under it.
pub(crate) fn claim_completed_is_decided_like_a_claim(h: &dyn Harness) {
    let store = h.store();
    store.accept_versions(2, 1).unwrap();
    let record =
        |seconds| ClaimRecord::new(parmana_canon::Digest::of(b"r"), b"{}".to_vec(), at(seconds));
    // (name, id, versions, clock seconds, expected code or None for a win)
    let cases: &[(&str, &str, AcceptedVersions, i64, Option<&str>)] = &[
        (
            "under the marks",
            "a",
            AcceptedVersions::new(2, 1),
            3_600,
            None,
        ),
        (
            "trust root rolled back",
            "b",
            AcceptedVersions::new(1, 1),
            3_600,
            Some("replay.version_rollback"),
        ),
        (
            "manifest rolled back",
            "c",
            AcceptedVersions::new(2, 0),
            3_600,
            Some("replay.version_rollback"),
        ),
        (
            "too large",
            "d",
            AcceptedVersions::new(u64::MAX, 1),
            3_600,
            Some("replay.version_too_large"),
        ),
        (
            "clock behind the store",
            "e",
            AcceptedVersions::new(2, 1),
            3_600 - 61,
            Some("replay.clock_behind_store"),
        ),
        ("a raise", "f", AcceptedVersions::new(2, 2), 3_601, None),
        (
            "under the raised marks",
            "g",
            AcceptedVersions::new(2, 2),
            3_602,
            None,
        ),
        (
            "under the old marks",
            "h",
            AcceptedVersions::new(2, 1),
            3_602,
            Some("replay.version_rollback"),
        ),
    ];
    for (name, exec, under, seconds, expected) in cases {
        let exec = id(exec);
        let found = store.claim_completed(&exec, &record(*seconds), *under, name.as_bytes());
        match expected {
            None => {
                assert_eq!(found, Ok(ClaimOutcome::Claimed), "{name}");
                assert!(
                    matches!(store.get(&exec).unwrap(), ExecutionState::Completed(_)),
                    "{name}"
                );
            }
            Some(code) => {
                assert_eq!(found.map_err(|e| e.code()), Err(*code), "{name}");
                assert_eq!(store.get(&exec).unwrap(), ExecutionState::Absent, "{name}");
            }
        }
    }
    assert_eq!(
        store.accepted_versions().unwrap(),
        AcceptedVersions::new(2, 2)
    );
    assert!(store.pending().unwrap().is_empty());
    assert_eq!(sequence(store), 3);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.mark_records, 2);
}

/// 8 threads race on the same 200 ids, each with its own attestation: exactly one winner per
/// id, its attestation is the one stored, and nothing is left claimed but not completed.
pub(crate) fn threads_race_claim_completed(h: &dyn Harness) {
    const THREADS: usize = 8;
    const IDS: usize = 200;
    let store = h.store();
    let ids: Vec<_> = (0..IDS).map(|i| id(&format!("once-{i}"))).collect();
    let winner = race_for_ids(
        THREADS,
        IDS,
        |t, k| (k + t * 29) % IDS,
        |t, i| {
            let attestation = format!("signed by thread {t}");
            let outcome = store
                .claim_completed(
                    &ids[i],
                    &claim_for(&format!("thread {t}")),
                    V0,
                    attestation.as_bytes(),
                )
                .unwrap();
            outcome == ClaimOutcome::Claimed
        },
    );
    for (i, t) in winner {
        let ExecutionState::Completed(done) = store.get(&ids[i]).unwrap() else {
            panic!("once-{i} not completed");
        };
        assert_eq!(done.claim(), &claim_for(&format!("thread {t}")));
        assert_eq!(
            done.attestation(),
            format!("signed by thread {t}").as_bytes()
        );
    }
    assert!(store.pending().unwrap().is_empty());
    assert_eq!(sequence(store), u64::try_from(IDS).unwrap());
    assert!(verify_ledger(store).unwrap().is_intact());
}
