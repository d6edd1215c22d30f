//! The conformance suite, continued: the store is outside the trust boundary — marks raises are chained ledger records, a reset of the marks is refused and reported, time does not run backwards, and the rollback check cannot interleave with the claim.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parmana_canon::{Digest, Timestamp};
use parmana_replay::{
    AcceptedVersions, CLOCK_TOLERANCE_SECONDS, ClaimOutcome, ClaimRecord, ExecutionState,
    LEDGER_GENESIS, LedgerBreakKind, ReplayError, ReplayStore, VersionKind, verify_ledger,
};

use super::{Harness, Tamper, at, claim_for, id};

fn v(trust_root: u64, release_manifest: u64) -> AcceptedVersions {
    AcceptedVersions::new(trust_root, release_manifest)
}

/// A claim like [`claim_for`] at the clock reading `claimed_at`.
fn claim_at(tag: &str, claimed_at: Timestamp) -> ClaimRecord {
    let base = claim_for(tag);
    ClaimRecord::new(
        base.request_digest(),
        base.attestation_inputs().to_vec(),
        claimed_at,
    )
}

/// Claims `name` under `under` (it must win); its id.
fn claim(
    store: &dyn ReplayStore,
    name: &str,
    under: AcceptedVersions,
) -> parmana_replay::ExecutionId {
    let exec = id(name);
    store
        .claim(&exec, &claim_for(name), under)
        .unwrap()
        .require_claimed(&exec)
        .unwrap();
    exec
}

/// Claims, completes and sequences `name` under `under`.
fn execute(store: &dyn ReplayStore, name: &str, under: AcceptedVersions) {
    let exec = claim(store, name, under);
    store
        .complete(&exec, format!("attestation of {name}").as_bytes())
        .unwrap();
    super::sequence(store);
}

/// Every raise — by `accept_versions` or by a claim under newer versions — appends one marks
/// record, chained with the execution records; an equal or refused offer appends none.
pub(crate) fn raises_are_chained_in_the_ledger(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(store.accept_versions(1, 1).unwrap(), v(1, 1));
    assert_eq!(store.accept_versions(1, 1).unwrap(), v(1, 1));
    execute(store, "first", v(2, 1));
    execute(store, "second", v(2, 1));
    assert_eq!(
        store.accept_versions(1, 5).unwrap_err().code(),
        "replay.version_rollback"
    );
    assert_eq!(store.accept_versions(3, 4).unwrap(), v(3, 4));
    assert_eq!(store.accepted_versions().unwrap(), v(3, 4));

    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (
            report.records,
            report.executions,
            report.mark_records,
            report.marks
        ),
        (5, 2, 3, v(3, 4))
    );
    let snapshot = store.ledger_snapshot().unwrap();
    assert_eq!(snapshot.marks, v(3, 4));
    let filed: Vec<_> = snapshot
        .rows
        .iter()
        .map(|r| r.execution_id.as_deref())
        .collect();
    assert_eq!(filed, [None, None, Some("first"), Some("second"), None]);
    // The record formats, byte for byte, as docs/replay-stores.md gives them.
    let record = |i: usize| String::from_utf8(snapshot.rows[i].record.clone()).unwrap();
    assert_eq!(
        record(0),
        format!(
            r#"{{"kind":"marks","position":0,"previous":"{LEDGER_GENESIS}","release_manifest":1,"trust_root":1}}"#
        )
    );
    let previous = Digest::of(&snapshot.rows[0].record);
    assert_eq!(
        record(1),
        format!(
            r#"{{"kind":"marks","position":1,"previous":"{previous}","release_manifest":1,"trust_root":2}}"#
        )
    );
    let claim = claim_for("first");
    assert_eq!(
        record(2),
        format!(
            r#"{{"attestation_digest":"{}","claimed_at":"{}","execution_id":"first","inputs_digest":"{}","position":2,"previous":"{}","request_digest":"{}"}}"#,
            Digest::of(b"attestation of first"),
            claim.claimed_at(),
            Digest::of(claim.attestation_inputs()),
            Digest::of(&snapshot.rows[1].record),
            claim.request_digest(),
        )
    );
    assert_eq!(report.head, Some(Digest::of(&snapshot.rows[4].record)));
}

/// A claim under newer versions raises the marks, under older ones is refused before the id is
/// touched (the id stays usable), under equal ones goes through.
pub(crate) fn claims_are_decided_under_the_marks(h: &dyn Harness) {
    let store = h.store();
    assert_eq!(
        store.claim(&id("a"), &claim_for("a"), v(2, 3)).unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(store.accepted_versions().unwrap(), v(2, 3));
    for (under, kind, offered, accepted) in [
        (v(1, 3), VersionKind::TrustRoot, 1, 2),
        (v(2, 2), VersionKind::ReleaseManifest, 2, 3),
        (v(9, 0), VersionKind::ReleaseManifest, 0, 3),
    ] {
        assert_eq!(
            store.claim(&id("b"), &claim_for("b"), under).unwrap_err(),
            ReplayError::VersionRollback {
                kind,
                offered,
                accepted
            },
            "{under}"
        );
    }
    assert_eq!(
        store
            .claim(&id("b"), &claim_for("b"), v(u64::MAX, 3))
            .unwrap_err()
            .code(),
        "replay.version_too_large"
    );
    // Nothing changed: not the id, not the marks, not the ledger.
    assert_eq!(store.get(&id("b")).unwrap(), ExecutionState::Absent);
    assert_eq!(store.accepted_versions().unwrap(), v(2, 3));
    assert_eq!(verify_ledger(store).unwrap().mark_records, 1);
    assert_eq!(
        store.claim(&id("b"), &claim_for("b"), v(2, 3)).unwrap(),
        ClaimOutcome::Claimed
    );
    // A replay under older versions is refused as a rollback; under the marks, as a replay.
    assert_eq!(
        store
            .claim(&id("a"), &claim_for("a"), v(1, 1))
            .unwrap_err()
            .code(),
        "replay.version_rollback"
    );
    assert_eq!(
        store.claim(&id("a"), &claim_for("a"), v(2, 3)).unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    if let Some(reopened) = h.reopen() {
        let reopened = reopened.unwrap();
        assert_eq!(
            reopened
                .claim(&id("c"), &claim_for("c"), v(2, 2))
                .unwrap_err()
                .code(),
            "replay.version_rollback"
        );
    }
}

/// An `UPDATE` lowering the marks row behind the store's back: `verify_ledger` reports the
/// reset at the first marks record proving more, and the store refuses to claim, to report its
/// marks and to raise them — under any versions — until it is restored.
pub(crate) fn marks_reset_is_refused_and_reported(h: &dyn Harness) {
    let store = h.store();
    execute(store, "before", v(2, 1));
    store.accept_versions(2, 3).unwrap();
    execute(store, "after", v(2, 3));
    // Positions: 0 marks (2,1), 1 "before", 2 marks (2,3), 3 "after".
    for (to, position, proven) in [
        (v(1, 1), 0, v(2, 1)),
        (v(2, 1), 2, v(2, 3)),
        (v(3, 2), 2, v(2, 3)),
        (v(0, 0), 0, v(2, 1)),
    ] {
        let report = h.tamper_and_verify(&Tamper::ResetMarks { to });
        let found = report
            .first_break
            .unwrap_or_else(|| panic!("a reset to {to} is not reported"));
        assert_eq!(
            (found.position, found.code(), found.kind),
            (
                position,
                "replay.marks_reset",
                LedgerBreakKind::MarksReset { found: to, proven }
            )
        );
        assert_eq!((report.head, report.marks), (None, v(2, 3)));
        if !h.tampers_with_storage() {
            continue;
        }
        // The store compares with what its marks records prove together (here, the newest).
        let refusal = ReplayError::MarksReset {
            found: to,
            proven: v(2, 3),
        };
        for under in [to, v(2, 3), v(5, 5)] {
            assert_eq!(
                store.claim(&id("later"), &claim_for("later"), under),
                Err(refusal.clone()),
                "claim under {under} after a reset to {to}"
            );
        }
        assert_eq!(store.accepted_versions(), Err(refusal.clone()));
        assert_eq!(store.accept_versions(2, 3), Err(refusal.clone()));
        assert_eq!(store.get(&id("later")).unwrap(), ExecutionState::Absent);
        let reopened = h.reopen().unwrap().unwrap();
        assert_eq!(reopened.accepted_versions(), Err(refusal));
    }
    // Marks above what the ledger proves are no reset (a denial of service at most), but the
    // audit sees them.
    let report = h.tamper_and_verify(&Tamper::ResetMarks { to: v(7, 7) });
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.marks, report.marks_row), (v(2, 3), v(7, 7)));
    assert!(report.marks_row_unproven(), "{report:?}");
    if h.tampers_with_storage() {
        assert_eq!(store.accepted_versions().unwrap(), v(7, 7));
        assert_eq!(
            store
                .claim(&id("later"), &claim_for("later"), v(2, 3))
                .unwrap_err()
                .code(),
            "replay.version_rollback"
        );
        // But the first step under them proves them: a claim under (7,7) — the versions a
        // rollout brings, which the writer raised the row to ahead of it — appends the marks
        // record the row lacked, so that lowering the row afterwards (to let a retired version
        // execute again) is a reset, refused and reported, not a row equal to what the ledger
        // proves.
        let records = || verify_ledger(store).unwrap().mark_records;
        let before = records();
        assert!(matches!(
            store.claim(&id("raised"), &claim_for("raised"), v(7, 7)),
            Ok(ClaimOutcome::Claimed)
        ));
        // One record, once: a second claim under them appends none.
        assert_eq!(records(), before + 1);
        assert!(!verify_ledger(store).unwrap().marks_row_unproven());
        assert!(matches!(
            store.claim(&id("raised-2"), &claim_for("raised-2"), v(7, 7)),
            Ok(ClaimOutcome::Claimed)
        ));
        assert_eq!(records(), before + 1);
        // A raise to marks planted ahead of it proves them too, once.
        h.tamper_and_verify(&Tamper::ResetMarks { to: v(8, 8) });
        assert_eq!(store.accept_versions(8, 8).unwrap(), v(8, 8));
        assert_eq!(store.accept_versions(8, 8).unwrap(), v(8, 8));
        assert_eq!(records(), before + 2);
        h.tamper_and_verify(&Tamper::ResetMarks { to: v(7, 7) });
        assert_eq!(
            store.accepted_versions(),
            Err(ReplayError::MarksReset {
                found: v(7, 7),
                proven: v(8, 8)
            })
        );
        h.tamper_and_verify(&Tamper::ResetMarks { to: v(8, 8) });
        let report = h.tamper_and_verify(&Tamper::ResetMarks { to: v(2, 3) });
        let found = report.first_break.expect("the lowered row is not reported");
        assert_eq!(
            found.kind,
            LedgerBreakKind::MarksReset {
                found: v(2, 3),
                proven: v(7, 7)
            }
        );
        assert_eq!(
            store.claim(&id("retired"), &claim_for("retired"), v(2, 3)),
            Err(ReplayError::MarksReset {
                found: v(2, 3),
                proven: v(8, 8)
            })
        );
    }
}

/// A writer appends a marks record chained as a store chains one, but lower than those before
/// it, and resets the marks row to it — to pass the reset off as what the ledger proves: the
/// ledger reports the lowered record, and the store, which judges the row against every marks
/// record (not only the newest), refuses to claim under any versions.
pub(crate) fn a_lower_marks_record_appended_is_refused_and_reported(h: &dyn Harness) {
    let store = h.store();
    execute(store, "before", v(2, 1));
    store.accept_versions(2, 3).unwrap();
    execute(store, "after", v(2, 3));
    // Positions: 0 marks (2,1), 1 "before", 2 marks (2,3), 3 "after"; then 4 marks (2,1).
    // A log read before the append (a running server's) refuses to take it in when it catches
    // up: no checkpoint is signed over it.
    let mut log = parmana_replay::ledger_log(store).unwrap();
    h.tamper_and_verify(&Tamper::ResetMarks { to: v(2, 1) });
    let report = h.tamper_and_verify(&Tamper::AppendMarks { marks: v(2, 1) });
    if h.tampers_with_storage() {
        let size = log.size();
        let refused = log.catch_up(store).unwrap_err();
        assert_eq!(refused.code(), "replay.ledger_broken", "{refused}");
        assert!(
            matches!(
                refused,
                ReplayError::LedgerBroken(parmana_replay::LedgerBreak {
                    position: 4,
                    kind: LedgerBreakKind::MarksLowered { .. }
                })
            ),
            "{refused:?}"
        );
        assert_eq!(log.size(), size);
    }
    let found = report
        .first_break
        .expect("a lowered marks record is reported");
    assert_eq!(
        (found.position, found.code(), found.kind),
        (
            4,
            "replay.ledger_marks_lowered",
            LedgerBreakKind::MarksLowered {
                found: v(2, 1),
                before: v(2, 3)
            }
        )
    );
    if !h.tampers_with_storage() {
        return;
    }
    let refusal = ReplayError::MarksReset {
        found: v(2, 1),
        proven: v(2, 3),
    };
    for under in [v(2, 1), v(2, 3)] {
        assert_eq!(
            store.claim(&id("later"), &claim_for("later"), under),
            Err(refusal.clone()),
            "claim under {under}"
        );
    }
    assert_eq!(store.accepted_versions(), Err(refusal.clone()));
    let reopened = h.reopen().unwrap().unwrap();
    assert_eq!(
        reopened.claim(&id("later"), &claim_for("later"), v(2, 1)),
        Err(refusal)
    );
    assert_eq!(store.get(&id("later")).unwrap(), ExecutionState::Absent);
}

/// A writer of the store resets the marks and appends a byte-for-byte copy of an older marks
/// record (a genuine one, proving the reset marks): a store that read that older record as the
/// newest before the raise (another instance than the one that raised) must not take the copy
/// for it — on PostgreSQL, whose one-statement claim recognises the newest record it read by its
/// bytes, the copy is newest at another position. Every claim is refused (`replay.marks_reset`).
pub(crate) fn a_copy_of_an_older_marks_record_appended_is_refused(h: &dyn Harness) {
    check_reset_behind_a_known_record(h, &Tamper::CopyMarksRecord { from: 0 });
}

/// A writer of the store resets the marks and moves the genuine raise record below the older
/// record a store read as the newest (to position -1): the newest marks record is then, byte
/// for byte and at its own position, the one that store read — but the records are one more,
/// and every claim is refused (`replay.marks_reset`), by the PostgreSQL one-statement claim as
/// by the transactional path.
pub(crate) fn a_raise_record_moved_below_the_known_one_is_refused(h: &dyn Harness) {
    check_reset_behind_a_known_record(
        h,
        &Tamper::MoveRecord {
            position: 3,
            to: -1,
        },
    );
}

/// One store reads and decides under the marks record at position 0; another instance raises
/// (positions 0 marks (2,1), 1 "before", 2 "known", 3 marks (2,3)); a writer resets the marks
/// row to (2,1) and applies `tamper` to the records. Every claim under (2,1), by either instance
/// and in one write too, is refused (`replay.marks_reset`), and nothing is claimed. (Backends
/// without storage to tamper with, or a second handle on it, skip.)
fn check_reset_behind_a_known_record(h: &dyn Harness, tamper: &Tamper) {
    let Some(other) = h.reopen() else {
        return;
    };
    let other = other.unwrap();
    let store = h.store();
    execute(store, "before", v(2, 1));
    execute(store, "known", v(2, 1));
    other.accept_versions(2, 3).unwrap();
    if !h.tamper_storage(&Tamper::ResetMarks { to: v(2, 1) }) || !h.tamper_storage(tamper) {
        return;
    }
    let refusal = ReplayError::MarksReset {
        found: v(2, 1),
        proven: v(2, 3),
    };
    assert_eq!(
        store.claim(&id("later"), &claim_for("later"), v(2, 1)),
        Err(refusal.clone()),
        "{tamper:?}"
    );
    if store.completes_in_one_write() {
        assert_eq!(
            store.claim_completed(&id("later"), &claim_for("later"), v(2, 1), b"{}"),
            Err(refusal.clone()),
            "{tamper:?}"
        );
    }
    assert_eq!(
        other.claim(&id("later"), &claim_for("later"), v(2, 1)),
        Err(refusal),
        "{tamper:?}"
    );
    assert_eq!(store.get(&id("later")).unwrap(), ExecutionState::Absent);
}

/// A writer of the store gives a value of any size to a row: one over its bound is refused by
/// its length, unread (`replay.store_corrupt`), never read into memory whole.
pub(crate) fn oversized_stored_values_are_refused_unread(h: &dyn Harness) {
    let store = h.store();
    execute(store, "big", v(1, 1));
    // An attestation's bound is the most a verifier reads (4 MiB), not the recorded inputs' one.
    let bound = usize::try_from(parmana_replay::MAX_STORED_ATTESTATION_BYTES).unwrap();
    let over = bound + 1;
    // At the bound: kept, and read back.
    let at_bound = claim(store, "at-bound", v(1, 1));
    store.complete(&at_bound, &vec![b'x'; bound]).unwrap();
    assert!(matches!(
        store.get(&at_bound).unwrap(),
        ExecutionState::Completed(completed) if completed.attestation().len() == bound
    ));
    // Offered to the store: refused, nothing written (it would not read it back).
    let exec = claim(store, "offered", v(1, 1));
    assert_eq!(
        store.complete(&exec, &vec![b'x'; over]).unwrap_err().code(),
        "replay.value_too_large"
    );
    assert!(matches!(
        store.get(&exec).unwrap(),
        ExecutionState::Claimed(_)
    ));
    // Claimed and completed at once: refused before anything is claimed.
    let spared = id("spared");
    assert_eq!(
        store
            .claim_completed(&spared, &claim_for("spared"), v(1, 1), &vec![b'x'; over])
            .unwrap_err()
            .code(),
        "replay.value_too_large"
    );
    assert_eq!(store.get(&spared).unwrap(), ExecutionState::Absent);
    // Recorded inputs past their own bound (8 MiB, four times what a runtime records): refused
    // before anything is claimed.
    let inputs_over = usize::try_from(parmana_replay::MAX_STORED_EXECUTION_BYTES).unwrap() + 1;
    let small = claim_for("too-much");
    let record = parmana_replay::ClaimRecord::new(
        small.request_digest(),
        vec![b'x'; inputs_over],
        small.claimed_at(),
    );
    assert_eq!(
        store
            .claim(&id("too-much"), &record, v(1, 1))
            .unwrap_err()
            .code(),
        "replay.value_too_large"
    );
    assert_eq!(store.get(&id("too-much")).unwrap(), ExecutionState::Absent);
    // Written behind the store's back: refused by its length, unread.
    if !h.tamper_storage(&Tamper::ReplaceAttestation {
        execution_id: "big".to_owned(),
        bytes: vec![b'x'; over],
    }) {
        return;
    }
    let refused = store.get(&id("big")).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(refused.to_string().contains("over its bound"), "{refused}");
    // A ledger row holding it: the ledger is not read (nor a log built) from it.
    let refused = verify_ledger(store).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(refused.to_string().contains("over its bound"), "{refused}");
    // A completed execution waiting to be sequenced, holding one: the sequencer reads none of it
    // and appends nothing.
    let waiting = claim(store, "waiting", v(1, 1));
    store.complete(&waiting, b"attestation of waiting").unwrap();
    h.tamper_storage(&Tamper::ReplaceAttestation {
        execution_id: "waiting".to_owned(),
        bytes: vec![b'x'; over],
    });
    let refused = store.sequence(16).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(
        refused.to_string().contains("waiting to be sequenced"),
        "{refused}"
    );
    // A stored checkpoint's note over its bound: refused, unread.
    let checkpoint = parmana_replay::StoredCheckpoint {
        size: 1,
        root: Digest::of(b"a root"),
        note: "a note\n".to_owned(),
    };
    store.store_checkpoint(&checkpoint).unwrap();
    h.tamper_storage(&Tamper::ReplaceCheckpointNote {
        size: 1,
        note: "x".repeat(65_537),
    });
    let refused = store.latest_checkpoint().unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(refused.to_string().contains("over its bound"), "{refused}");
    // A marks record over its bound: every claim refuses, nothing is decided.
    let record = vec![b' '; usize::try_from(parmana_replay::MAX_STORED_RECORD_BYTES).unwrap() + 1];
    h.tamper_storage(&Tamper::ReplaceRecord {
        position: 0,
        bytes: record,
    });
    let refused = store
        .claim(&id("next"), &claim_for("next"), v(1, 1))
        .unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(
        refused.to_string().contains("marks record is over"),
        "{refused}"
    );
    assert_eq!(store.get(&id("next")).unwrap(), ExecutionState::Absent);
}

/// A claim time a writer made long, and so the newest: the clock check cannot be made on it,
/// so no claim is decided — and the store reads at most 64 bytes of it.
pub(crate) fn a_long_claim_time_refuses_claims_unread(h: &dyn Harness) {
    let store = h.store();
    execute(store, "first", v(1, 1));
    if !h.tamper_storage(&Tamper::ReplaceClaimedAt {
        execution_id: "first".to_owned(),
        claimed_at: "9".repeat(2_000),
    }) {
        return;
    }
    let refused = store
        .claim(&id("later"), &claim_for("later"), v(1, 1))
        .unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    // What was read is the stand-in for a value over its bound, not the value.
    assert!(refused.to_string().contains("over its bound"), "{refused}");
    assert_eq!(store.get(&id("later")).unwrap(), ExecutionState::Absent);
}

/// A ledger row's kind a writer made long (its CHECK constraint set aside): the store reads at
/// most a few bytes of it, and the row is refused as one of an unknown kind, its kind named by the
/// stand-in for a value over its bound, not echoed.
pub(crate) fn a_long_ledger_kind_is_refused_unread(h: &dyn Harness) {
    let store = h.store();
    execute(store, "first", v(1, 1));
    if !h.tamper_storage(&Tamper::ReplaceKind {
        position: 1,
        kind: "k".repeat(100_000),
    }) {
        return;
    }
    let refused = verify_ledger(store).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    let message = refused.to_string();
    assert!(message.contains("over its bound"), "{message}");
    assert!(
        !message.contains("kkkk"),
        "{}",
        &message[..200.min(message.len())]
    );
    // A short unknown kind is refused the same way, named as it is.
    h.tamper_storage(&Tamper::ReplaceKind {
        position: 1,
        kind: "bogus".to_owned(),
    });
    let refused = verify_ledger(store).unwrap_err();
    assert!(refused.to_string().contains("\"bogus\""), "{refused}");
}

/// More marks records than a store reads ([`parmana_replay::MAX_MARKS_RECORDS`]; a deployment
/// takes a handful in its life, so more are a writer's) make the store refuse to claim or raise
/// (`replay.store_corrupt`, by their number: none of them is decoded — a query fetches at most
/// one more than the bound), and nothing is claimed.
pub(crate) fn more_marks_records_than_the_bound_are_refused_unread(h: &dyn Harness) {
    let store = h.store();
    execute(store, "first", v(1, 1));
    // With the raise's own record, one more than the bound.
    let count = u64::try_from(parmana_replay::MAX_MARKS_RECORDS).unwrap();
    if !h.tamper_storage(&Tamper::AppendMarksRows { count }) {
        return;
    }
    let bound = format!(
        "more than {} marks records",
        parmana_replay::MAX_MARKS_RECORDS
    );
    let refused = store
        .claim(&id("second"), &claim_for("second"), v(1, 1))
        .unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(refused.to_string().contains(&bound), "{refused}");
    let refused = store.accept_versions(2, 2).unwrap_err();
    assert!(refused.to_string().contains(&bound), "{refused}");
    assert_eq!(store.get(&id("second")).unwrap(), ExecutionState::Absent);
}

/// A claimed id a writer made longer than an id can be is refused unread when the pending ids
/// are listed (recovery stops there rather than skip it), and its message does not echo it.
pub(crate) fn a_long_pending_id_is_refused_unread(h: &dyn Harness) {
    let store = h.store();
    store
        .claim(&id("stuck"), &claim_for("stuck"), v(1, 1))
        .unwrap()
        .require_claimed(&id("stuck"))
        .unwrap();
    if !h.tamper_storage(&Tamper::RenameExecution {
        execution_id: "stuck".to_owned(),
        to: "x".repeat(100_000),
    }) {
        return;
    }
    for refused in [
        store.pending_after(None, 16).unwrap_err(),
        store.pending().unwrap_err(),
    ] {
        assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
        assert!(refused.to_string().len() < 400, "{refused}");
    }
}

/// Editing, deleting or refiling marks records breaks the chain where it shows.
pub(crate) fn marks_record_tampering_is_detected(open: &dyn Fn() -> Option<Box<dyn Harness>>) {
    type Case = (&'static str, fn(&dyn Harness) -> Tamper, u64, &'static str);
    let cases: &[Case] = &[
        (
            "lower the trust root in marks record 2",
            |h| {
                let record = h.store().ledger_snapshot().unwrap().rows[2].record.clone();
                let text = String::from_utf8(record).unwrap();
                assert!(text.contains(r#""trust_root":2"#), "{text}");
                Tamper::ReplaceRecord {
                    position: 2,
                    bytes: text
                        .replace(r#""trust_root":2"#, r#""trust_root":1"#)
                        .into_bytes(),
                }
            },
            3,
            "replay.ledger_chain_broken",
        ),
        (
            "delete marks record 2",
            |_| Tamper::DeleteRecord { position: 2 },
            2,
            "replay.ledger_position_mismatch",
        ),
        (
            "file marks record 2 as an execution's",
            |_| Tamper::FileAsExecution {
                position: 2,
                execution_id: "ghost".to_owned(),
            },
            2,
            "replay.ledger_kind_mismatch",
        ),
        (
            "file execution record 1 as a marks record",
            |_| Tamper::FileAsMarks { position: 1 },
            1,
            "replay.ledger_kind_mismatch",
        ),
        (
            "add an unknown member to marks record 0",
            |h| {
                let record = h.store().ledger_snapshot().unwrap().rows[0].record.clone();
                let text = String::from_utf8(record).unwrap();
                Tamper::ReplaceRecord {
                    position: 0,
                    bytes: text.replacen('{', r#"{"extra":1,"#, 1).into_bytes(),
                }
            },
            0,
            "replay.ledger_record_malformed",
        ),
    ];
    for (what, tamper, position, code) in cases {
        let Some(h) = open() else { return };
        execute(h.store(), "one", v(1, 1));
        h.store().accept_versions(2, 2).unwrap();
        execute(h.store(), "two", v(2, 2));
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
    }
}

/// A claim whose clock reading lies more than the tolerance before the newest claim held is
/// refused before anything changes; within the tolerance, or later, it goes through.
pub(crate) fn clock_must_not_run_backwards(h: &dyn Harness) {
    let store = h.store();
    let newest = at(10_000);
    assert_eq!(
        store
            .claim(&id("now"), &claim_at("now", newest), v(1, 1))
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let back = |seconds: i64| at(10_000 - seconds);
    // Within the tolerance: accepted.
    assert_eq!(
        store
            .claim(
                &id("skewed"),
                &claim_at("skewed", back(CLOCK_TOLERANCE_SECONDS)),
                v(1, 1)
            )
            .unwrap(),
        ClaimOutcome::Claimed
    );
    // Beyond it — even under newer versions, which are then not accepted: refused.
    for (name, seconds) in [
        ("a second more", CLOCK_TOLERANCE_SECONDS + 1),
        ("a year", 31_536_000),
    ] {
        assert_eq!(
            store.claim(&id("late"), &claim_at("late", back(seconds)), v(2, 2)),
            Err(ReplayError::ClockBehindStore {
                now: back(seconds),
                newest
            }),
            "{name}"
        );
    }
    assert_eq!(store.get(&id("late")).unwrap(), ExecutionState::Absent);
    assert_eq!(store.accepted_versions().unwrap(), v(1, 1));
    // A completed execution counts like a pending one, and a later reading moves the floor.
    store.complete(&id("now"), b"done").unwrap();
    assert_eq!(
        store
            .claim(&id("later"), &claim_at("later", at(20_000)), v(1, 1))
            .unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store
            .claim(&id("late"), &claim_at("late", newest), v(1, 1))
            .unwrap_err()
            .code(),
        "replay.clock_behind_store"
    );
    if let Some(reopened) = h.reopen() {
        assert_eq!(
            reopened
                .unwrap()
                .claim(&id("late"), &claim_at("late", newest), v(1, 1))
                .unwrap_err()
                .code(),
            "replay.clock_behind_store"
        );
    }
    assert_eq!(
        store
            .claim(&id("late"), &claim_at("late", at(20_000)), v(1, 1))
            .unwrap(),
        ClaimOutcome::Claimed
    );
}

/// The rollback check and the claim are one atomic step: a claim under (1, 1) made while a
/// raise to (2, 2) is being committed behind the store's back waits for it and is then refused
/// — it is never recorded after the raise under the older versions.
pub(crate) fn rollback_check_and_claim_do_not_interleave(h: &dyn Harness) {
    let store = h.store();
    store.accept_versions(1, 1).unwrap();
    let Some(held) = h.hold_raise(v(2, 2)) else {
        return; // the memory store: one mutex, nothing to interleave with
    };
    let outcome = std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::channel();
        let claimer = scope.spawn(move || {
            let outcome = store.claim(&id("old"), &claim_for("old"), v(1, 1));
            done.send(()).unwrap();
            outcome
        });
        // The claim cannot be decided while the raise is held, however long this waits: one
        // decided beside it (under the marks before it) would return now.
        assert!(
            finished.recv_timeout(Duration::from_millis(300)).is_err(),
            "a claim was decided beside a raise being committed"
        );
        held.commit();
        claimer.join().unwrap()
    });
    assert_eq!(
        outcome,
        Err(ReplayError::VersionRollback {
            kind: VersionKind::TrustRoot,
            offered: 1,
            accepted: 2
        })
    );
    assert_eq!(store.get(&id("old")).unwrap(), ExecutionState::Absent);
}

/// One thread raises the marks step by step while eight claim under the marks they last saw
/// and one below them: a claim under versions older than a raise that returned before it began
/// is always refused, no other error occurs, and the ledger holds one marks record per step.
pub(crate) fn threads_claim_while_the_marks_rise(h: &dyn Harness) {
    const STEPS: u64 = 20;
    const CLAIMERS: u64 = 8;
    const CLAIMS: u64 = 40;
    let store = h.store();
    store.accept_versions(1, 1).unwrap();
    let raised = AtomicU64::new(1);
    let start = Barrier::new(usize::try_from(CLAIMERS + 1).unwrap());
    let won: u64 = std::thread::scope(|scope| {
        let raiser = scope.spawn(|| {
            start.wait();
            for step in 2..=STEPS {
                store.accept_versions(step, step).unwrap();
                raised.store(step, Ordering::SeqCst);
            }
        });
        let claimers: Vec<_> = (0..CLAIMERS)
            .map(|t| {
                let (raised, start) = (&raised, &start);
                scope.spawn(move || {
                    start.wait();
                    let mut won = 0;
                    for k in 0..CLAIMS {
                        let floor = raised.load(Ordering::SeqCst);
                        let under = if k % 2 == 0 { floor } else { floor - 1 };
                        let name = format!("rise-{t}-{k}");
                        match store.claim(&id(&name), &claim_for(&name), v(under, under)) {
                            Ok(ClaimOutcome::Claimed) => {
                                assert!(under >= floor, "{name} claimed under {under} < {floor}");
                                won += 1;
                            }
                            Ok(ClaimOutcome::AlreadyClaimed) => panic!("{name} was claimed"),
                            Err(ReplayError::VersionRollback {
                                offered, accepted, ..
                            }) => assert!(offered == under && accepted > under, "{name}"),
                            Err(other) => panic!("{name}: {other}"),
                        }
                    }
                    won
                })
            })
            .collect();
        raiser.join().unwrap();
        claimers.into_iter().map(|c| c.join().unwrap()).sum()
    });
    assert!(won > 0, "no claim went through");
    assert_eq!(
        store.pending().unwrap().len(),
        usize::try_from(won).unwrap()
    );
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.mark_records, report.marks),
        (STEPS, v(STEPS, STEPS))
    );
}

/// Sixteen threads claim at once under versions newer than the marks: every claim is won, the
/// marks rise once, with one marks record.
pub(crate) fn threads_raise_the_marks_at_once(h: &dyn Harness) {
    const THREADS: usize = 16;
    let store = h.store();
    store.accept_versions(1, 1).unwrap();
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                let name = format!("raise-{t}");
                assert_eq!(
                    store.claim(&id(&name), &claim_for(&name), v(5, 5)).unwrap(),
                    ClaimOutcome::Claimed
                );
            });
        }
    });
    assert_eq!(store.accepted_versions().unwrap(), v(5, 5));
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.mark_records, report.marks), (2, v(5, 5)));
    assert_eq!(store.pending().unwrap().len(), THREADS);
}
