//! `parmana execute --store postgres://…`: the shared store through the real binary (needs `PARMANA_TEST_POSTGRES_URL`, which `.ci/run` sets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::io::Write as _;

use crate::common::{NOW, VIP_SIGNALS, run};

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_postgres_store_consumes_each_id_once() {
    let Ok(url) = std::env::var("PARMANA_TEST_POSTGRES_URL") else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but PARMANA_TEST_POSTGRES_URL is not set: .ci/services starts the server"
        );
        // Written to stderr directly, past the test harness's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: parmana execute --store postgres:// — PARMANA_TEST_POSTGRES_URL is not set"
        );
        return;
    };
    // The database outlives this test: a fresh id per run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("cli-pg-{}-{nanos}", std::process::id());
    let args = [
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        VIP_SIGNALS,
        "--execution-id",
        &id,
        "--store",
        &url,
        "--now",
        NOW,
    ];
    let first = run(&args);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let second = run(&args);
    assert_eq!(second.code, 5, "{}", second.transcript());
    assert!(
        second.stderr.starts_with("error[runtime.replay_detected]"),
        "{}",
        second.stderr
    );
    let ledger = run(&["ledger", "verify", "--store", &url]);
    assert_eq!(ledger.code, 0, "{}", ledger.transcript());
    assert!(
        ledger.stdout.starts_with("ledger intact: "),
        "{}",
        ledger.stdout
    );
    // Time does not run backwards within the store: a day before the execution above is
    // refused (exit 4) and writes nothing, so the shared database stays usable at NOW.
    let now = parmana_runtime::canon::Timestamp::parse(NOW).unwrap();
    let day_before =
        parmana_runtime::canon::Timestamp::from_unix_seconds(now.unix_seconds() - 86_400)
            .unwrap()
            .to_string();
    let earlier_id = format!("{id}-earlier");
    let mut earlier = args;
    earlier[6] = earlier_id.as_str();
    earlier[10] = day_before.as_str();
    let refused = run(&earlier);
    assert_eq!(refused.code, 4, "{}", refused.transcript());
    assert!(
        refused
            .stderr
            .starts_with("error[replay.clock_behind_store]"),
        "{}",
        refused.stderr
    );
}
