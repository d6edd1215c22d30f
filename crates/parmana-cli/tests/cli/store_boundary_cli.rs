//! The replay store outside the trust boundary, through the real binary: `ledger verify` reports the marks records beside the executions, and `execute --now` cannot make time run backwards within one store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use crate::common::{NOW, README_SIGNALS, VIP_SIGNALS, run};

/// `parmana execute` of `signals` under claims-approval@1.0.0 as `id` on `store` at `now`.
fn execute_at(store: &str, id: &str, signals: &str, now: &str) -> crate::common::Run {
    run(&[
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        signals,
        "--execution-id",
        id,
        "--store",
        store,
        "--now",
        now,
    ])
}

/// `NOW` moved by `seconds`.
fn now_plus(seconds: i64) -> String {
    let now = parmana_runtime::canon::Timestamp::parse(NOW).unwrap();
    parmana_runtime::canon::Timestamp::from_unix_seconds(now.unix_seconds() + seconds)
        .unwrap()
        .to_string()
}

#[test]
fn ledger_verify_counts_marks_records_beside_executions() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("replay.sqlite3").display());
    for (id, signals) in [("marks-1", VIP_SIGNALS), ("marks-2", README_SIGNALS)] {
        let out = execute_at(&store, id, signals, NOW);
        assert_eq!(out.code, 0, "{}", out.transcript());
    }
    // The first execution raised the marks to the fixtures' trust root 2 and release manifest 1.
    insta::assert_snapshot!(
        "ledger_verify_marks",
        run(&["ledger", "verify", "--store", &store]).transcript()
    );
    insta::assert_snapshot!(
        "ledger_verify_marks_json",
        run(&["--format", "json", "ledger", "verify", "--store", &store]).transcript()
    );
}

#[test]
fn execute_refuses_a_clock_behind_the_store_and_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("replay.sqlite3").display());
    let first = execute_at(&store, "clock-1", VIP_SIGNALS, &now_plus(3_600));
    assert_eq!(first.code, 0, "{}", first.transcript());
    // An hour back, with --now: refused, exit 4 (trust), and the id is not consumed.
    let back = execute_at(&store, "clock-2", VIP_SIGNALS, NOW);
    insta::assert_snapshot!("clock_behind_store", back.transcript());
    // Within the tolerance (a minute): executed.
    let skewed = execute_at(&store, "clock-2", VIP_SIGNALS, &now_plus(3_540));
    assert_eq!(skewed.code, 0, "{}", skewed.transcript());
    let ledger = run(&["ledger", "verify", "--store", &store]);
    assert_eq!(ledger.code, 0, "{}", ledger.transcript());
}
