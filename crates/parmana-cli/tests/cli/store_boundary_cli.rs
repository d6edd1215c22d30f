//! The replay store outside the trust boundary, through the real binary: `ledger verify` reports the marks records beside the executions (and a marks row raised above them), `execute --now` cannot make time run backwards within one store, and the commands that only read or complete never migrate a store an older build left.

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
    // A writer of the store raises the marks row ahead of what the marks records prove: no
    // break (exit 0; it refuses more, at most), but the audit says so.
    rusqlite::Connection::open(dir.path().join("replay.sqlite3"))
        .unwrap()
        .execute(
            "UPDATE high_water_marks SET trust_root = 9 WHERE singleton = 1",
            [],
        )
        .unwrap();
    insta::assert_snapshot!(
        "ledger_verify_marks_row_unproven",
        run(&["ledger", "verify", "--store", &store]).transcript()
    );
    insta::assert_snapshot!(
        "ledger_verify_marks_row_unproven_json",
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

/// The commands that only read or complete a store open it as it is: a store an older build
/// left at an older schema version is refused (`replay.schema_version_outdated`, exit 6) and
/// left at that version: an audit never migrates the store older processes still write (a
/// command that executes does; `replay` tests the migrations).
#[test]
fn reading_commands_refuse_an_older_schema_and_leave_it_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    let store = format!("sqlite:{}", path.display());
    let executed = execute_at(&store, "old-1", VIP_SIGNALS, NOW);
    assert_eq!(executed.code, 0, "{}", executed.transcript());
    let version = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    };
    let current = version(&path);
    assert!(current > 1, "{current}");
    // As an older build left it: one schema version behind (its objects are this build's, so a
    // command that migrated would fail differently, or succeed).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {};", current - 1))
        .unwrap();
    for command in [
        &["show", "old-1", "--store", &store][..],
        &["ledger", "verify", "--store", &store],
        &["ledger", "export", "--store", &store],
        &["recover", "--store", &store, "--now", NOW],
    ] {
        let refused = run(command);
        assert_eq!(
            (refused.code, crate::common::error_code(&refused)),
            (6, "replay.schema_version_outdated"),
            "{command:?}: {}",
            refused.transcript()
        );
        assert_eq!(version(&path), current - 1, "{command:?}");
    }
}

/// A ledger record a writer of the store filled with a terminal escape sequence (in a member's
/// name, which the refusal quotes) is reported BROKEN on its line: the escape is written
/// escaped, so it cannot hide or overwrite the verdict on a terminal.
#[test]
fn a_broken_ledger_is_reported_on_its_line_whatever_the_record_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    let store = format!("sqlite:{}", path.display());
    for id in ["esc-1", "esc-2"] {
        let executed = execute_at(&store, id, VIP_SIGNALS, NOW);
        assert_eq!(executed.code, 0, "{}", executed.transcript());
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    let position: i64 = db
        .query_row("SELECT max(position) FROM ledger", [], |row| row.get(0))
        .unwrap();
    let record: Vec<u8> = db
        .query_row(
            "SELECT record FROM ledger WHERE position = ?1",
            [position],
            |row| row.get(0),
        )
        .unwrap();
    let mut forged: serde_json::Value = serde_json::from_slice(&record).unwrap();
    forged["zz\u{1b}[8m"] = serde_json::json!(1);
    db.execute(
        "UPDATE ledger SET record = ?1 WHERE position = ?2",
        rusqlite::params![
            parmana_runtime::canon::canonicalize_value(&forged).unwrap(),
            position
        ],
    )
    .unwrap();
    drop(db);
    let broken = run(&["ledger", "verify", "--store", &store]);
    assert_ne!(broken.code, 0, "{}", broken.transcript());
    assert!(
        broken.stdout.starts_with("ledger BROKEN"),
        "{}",
        broken.stdout
    );
    for stream in [&broken.stdout, &broken.stderr] {
        assert!(!stream.contains('\u{1b}'), "{stream:?}");
        assert!(stream.contains(r"zz\u{1b}[8m"), "{stream:?}");
    }
}

/// A `postgres://` store on a host away from the loopback, reached without checking its
/// certificate, is warned of by every command that opens it — through `--store` alone
/// (`ledger verify`) and through the runtime (`execute`) — and one whose URL verifies the
/// server is not. (`0.0.0.1:1` answers at once on Linux: the commands fail as the store's,
/// after the warning.)
#[cfg(target_os = "linux")]
#[test]
fn a_networked_store_reached_without_checking_its_certificate_is_warned_of() {
    const WARNING: &str = "warning[cli.store_identity_unchecked]: the replay store at 0.0.0.1";
    for (query, warned) in [
        ("", true),
        ("?sslmode=require", true),
        (
            "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            false,
        ),
    ] {
        let url = format!("postgres://parmana@0.0.0.1:1/parmana{query}");
        for command in [
            vec!["ledger", "verify", "--store", &url],
            vec![
                "execute",
                "--policy",
                "claims-approval@1.0.0",
                "--signals",
                VIP_SIGNALS,
                "--now",
                NOW,
                "--store",
                &url,
            ],
        ] {
            let out = run(&command);
            assert_ne!(out.code, 0, "{url}: {}", out.transcript());
            assert_eq!(
                out.stderr.contains(WARNING),
                warned,
                "{url}: {}",
                out.transcript()
            );
        }
    }
}
