//! `parmana policy check|eval|explain|test` on the example claims policy, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use crate::common::{VIP_SIGNALS, repo_root, run, run_in};

const CLAIMS: &str = "policies/claims-approval/1.0.0";

#[test]
fn check_accepts_the_example_and_renders_diagnostics_of_a_broken_policy() {
    insta::assert_snapshot!("check_ok", run(&["policy", "check", CLAIMS]).transcript());
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("policy.json");
    std::fs::write(
        &broken,
        r#"{"schema_version": "2.0.0", "policy_id": "demo", "policy_version": "1.0.0",
  "decisions": ["approve", "escalate"],
  "signals": {"amount": {"type": "number", "required": true}},
  "rules": [
    {"id": "small", "when": {"signal": "amout", "le": 1000}, "then": {"decision": "approve"}},
    {"id": "all", "when": {"signal": "amount", "ge": 0}, "then": {"decision": "approve"}},
    {"id": "never", "when": {"signal": "amount", "lt": 0}, "then": {"decision": "aprove"}}
  ],
  "default": {"decision": "escalate"}}"#,
    )
    .unwrap();
    let out = run_in(dir.path(), &["policy", "check", "policy.json"], b"");
    insta::assert_snapshot!("check_broken", out.transcript());
    let json = run_in(
        dir.path(),
        &["--format", "json", "policy", "check", "."],
        b"",
    );
    assert_eq!(json.code, 3);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(!report["diagnostics"].as_array().unwrap().is_empty());
}

#[test]
fn eval_prints_the_decision() {
    let out = run(&["policy", "eval", CLAIMS, "--signals", VIP_SIGNALS]);
    insta::assert_snapshot!(out.transcript(), @r#"
    exit: 0
    --- stdout
    {"decision":"approve","reason":"VIP customer under the VIP ceiling","rule_id":"vip"}

    --- stderr
    "#);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"claim_amount":60000,"vip_customer":true,"country":"FR","policy_age_days":4}"#,
    )
    .unwrap();
    let out = run(&[
        "policy",
        "eval",
        &format!("{CLAIMS}/policy.json"),
        "--signals",
        file.path().to_str().unwrap(),
    ]);
    insta::assert_snapshot!(out.transcript(), @r#"
    exit: 0
    --- stdout
    {"decision":"deny","reason":"claim amount above the 50000 ceiling","rule_id":"ceiling"}

    --- stderr
    "#);
}

#[test]
fn eval_batch_goes_on_after_a_refused_line() {
    let batch = format!(
        "{VIP_SIGNALS}\n{{\"claim_amount\":1}}\n{{\"a\":1,\"a\":2}}\n\n{}\n",
        r#"{"claim_amount":10,"vip_customer":false,"country":"KP","policy_age_days":1}"#
    );
    let out = run_in(
        &repo_root(),
        &["policy", "eval", CLAIMS, "--batch", "-"],
        batch.as_bytes(),
    );
    insta::assert_snapshot!("eval_batch", out.transcript());
    // Input that cannot be read (a directory) is a refused line too; the exit is its class (IO,
    // 1), as `execute --batch` exits, not that of refused signals.
    let unreadable = run(&["policy", "eval", CLAIMS, "--batch", "policies"]);
    assert_eq!(
        (unreadable.code, crate::common::error_code(&unreadable)),
        (1, "cli.batch_refused"),
        "{}",
        unreadable.transcript()
    );
    let line: serde_json::Value = serde_json::from_str(unreadable.stdout.trim_end()).unwrap();
    assert_eq!(line["error"]["code"], "runtime.io", "{line}");
}

#[test]
fn explain_shows_every_rule_tried() {
    let human = run(&["policy", "explain", CLAIMS, "--signals", VIP_SIGNALS]);
    insta::assert_snapshot!("explain_human", human.transcript());
    let json = run(&[
        "--format",
        "json",
        "policy",
        "explain",
        CLAIMS,
        "--signals",
        VIP_SIGNALS,
    ]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let trace: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(trace["decision"]["rule_id"], "vip");
    assert_eq!(trace["rules"].as_array().unwrap().len(), 6);
    let refused = run(&[
        "policy",
        "explain",
        CLAIMS,
        "--signals",
        r#"{"claim_amount":-1}"#,
    ]);
    insta::assert_snapshot!("explain_refused", refused.transcript());
}

/// An explanation that could pass its bound — each condition shows the value it read — is
/// refused before anything is evaluated; the same policy explains small signals.
#[test]
fn explain_refuses_an_explanation_past_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let leaves: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"signal": "s", "eq": "v{i}"}}"#))
        .collect();
    std::fs::write(
        dir.path().join("policy.json"),
        format!(
            r#"{{"schema_version": "2.0.0", "policy_id": "wide", "policy_version": "1.0.0",
  "decisions": ["yes", "no"],
  "signals": {{"s": {{"type": "string", "required": true}}}},
  "rules": [{{"id": "any", "when": {{"any": [{}]}}, "then": {{"decision": "yes"}}}}],
  "default": {{"decision": "no"}}}}"#,
            leaves.join(", ")
        ),
    )
    .unwrap();
    // 300 conditions, each showing a value of 1,000,000 bytes: past 256 MiB.
    let large = format!(r#"{{"s": "{}"}}"#, "a".repeat(1_000_000));
    std::fs::write(dir.path().join("large.json"), large).unwrap();
    let refused = run_in(
        dir.path(),
        &["policy", "explain", ".", "--signals", "large.json"],
        b"",
    );
    assert_eq!(
        (refused.code, crate::common::error_code(&refused)),
        (3, "cli.explain_too_large"),
        "{}",
        refused.transcript()
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    let small = run_in(
        dir.path(),
        &["policy", "explain", ".", "--signals", r#"{"s": "v299"}"#],
        b"",
    );
    assert_eq!(small.code, 0, "{}", small.transcript());
    assert!(small.stdout.contains("decision: yes"), "{}", small.stdout);
}

#[test]
fn test_runs_the_cases_with_coverage() {
    insta::assert_snapshot!("test_plain", run(&["policy", "test", CLAIMS]).transcript());
    let covered = run(&["policy", "test", CLAIMS, "--coverage", "--threshold", "100"]);
    insta::assert_snapshot!("test_coverage", covered.transcript());
    let json = run(&["--format", "json", "policy", "test", CLAIMS]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["passed"], 14);
    assert_eq!(report["coverage"]["rule_percent"], 100.0);
    // A threshold that is no percentage would fail the gate always (NaN, 101) or never (-5).
    for threshold in ["NaN", "101", "-5", "inf"] {
        let refused = run(&[
            "policy",
            "test",
            CLAIMS,
            &format!("--threshold={threshold}"),
        ]);
        assert_eq!(refused.code, 2, "{threshold}: {}", refused.transcript());
        assert!(
            refused.stderr.contains("is not a percentage from 0 to 100"),
            "{threshold}: {}",
            refused.stderr
        );
    }
}

#[test]
fn test_fails_on_a_wrong_expectation_and_on_low_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join(CLAIMS);
    std::fs::copy(root.join("policy.json"), dir.path().join("policy.json")).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::copy(
        root.join("tests/small-approve.json"),
        dir.path().join("tests/small-approve.json"),
    )
    .unwrap();
    let low = run_in(
        dir.path(),
        &["policy", "test", ".", "--threshold", "90"],
        b"",
    );
    insta::assert_snapshot!("test_low_coverage", low.transcript());
    std::fs::write(
        dir.path().join("tests/wrong.json"),
        format!(
            r#"{{"signals": {VIP_SIGNALS}, "expect": {{"decision": "deny", "rule_id": "vip"}}}}"#
        ),
    )
    .unwrap();
    let failed = run_in(dir.path(), &["policy", "test", "."], b"");
    insta::assert_snapshot!("test_failed", failed.transcript());
}

/// Without `--coverage`, the report is its cases and their count, whatever a case's name holds:
/// one named like the coverage section (sorted first) cut the text there, leaving `test `.
#[test]
fn a_case_named_like_the_coverage_section_keeps_the_report_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join(CLAIMS);
    std::fs::copy(root.join("policy.json"), dir.path().join("policy.json")).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    for name in ["rule coverage: smoke.json", "small-approve.json"] {
        std::fs::copy(
            root.join("tests/small-approve.json"),
            dir.path().join("tests").join(name),
        )
        .unwrap();
    }
    let out = run_in(dir.path(), &["policy", "test", "."], b"");
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(
        out.stdout,
        "test rule coverage: smoke.json ... ok\ntest small-approve.json ... ok\n2 passed, 0 failed\n",
        "{}",
        out.transcript()
    );
}

/// A policy that declares a decision no rule gives: a warning.
const SHADOWED: &str = r#"{"schema_version": "2.0.0", "policy_id": "shadow", "policy_version": "1.0.0",
  "decisions": ["approve", "deny", "escalate"],
  "signals": {"amount": {"type": "integer", "required": true}},
  "rules": [
    {"id": "any", "when": {"signal": "amount", "ge": 0}, "then": {"decision": "approve"}},
    {"id": "small", "when": {"signal": "amount", "le": 10}, "then": {"decision": "approve"}}
  ],
  "default": {"decision": "escalate"}}"#;

#[test]
fn check_and_test_take_several_policies_and_a_policies_root() {
    let root = crate::common::temp_repo();
    let policies = root.root().join("policies");
    let shadow = policies.join("shadow/1.0.0");
    std::fs::create_dir_all(&shadow).unwrap();
    std::fs::write(shadow.join("policy.json"), SHADOWED).unwrap();
    let mut transcript = String::new();
    let cases: &[&[&str]] = &[
        &["policy", "check", "policies"],
        &["policy", "check", "--deny-warnings", "policies"],
        &[
            "policy",
            "check",
            "--deny-warnings",
            CLAIMS,
            "policies/patient-triage/1.0.0",
        ],
        &[
            "--format",
            "json",
            "policy",
            "check",
            CLAIMS,
            "policies/shadow/1.0.0",
        ],
        &["policy", "check", "trust"],
        &["policy", "test", CLAIMS, "policies/patient-triage/1.0.0"],
        &["policy", "test", "policies/shadow/1.0.0"],
        &["policy", "test", "policies"],
    ];
    for args in cases {
        let out = run_in(root.root(), args, b"");
        transcript.push_str(&format!(
            "$ parmana {}\n{}\n",
            args.join(" "),
            out.transcript()
        ));
    }
    insta::assert_snapshot!("several_policies", transcript);
}

#[test]
fn type_names_take_their_article() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.json"),
        r#"{"schema_version": "2.0.0", "policy_id": "art", "policy_version": "1.0.0",
  "decisions": ["approve"],
  "signals": {"n": {"type": "integer", "required": true}},
  "rules": [{"id": "r", "when": {"signal": "n", "gt": "ten"}, "then": {"decision": "approve"}}],
  "default": {"decision": "approve"}}"#,
    )
    .unwrap();
    let out = run_in(dir.path(), &["policy", "check", "policy.json"], b"");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("expected an integer operand, found a string"),
        "{}",
        out.stdout
    );
}

#[test]
fn every_invalid_signal_is_reported_with_a_suggestion_for_a_typo() {
    let out = run(&[
        "policy",
        "eval",
        CLAIMS,
        "--signals",
        r#"{"claim_amout": 500, "vip_customer": "no", "country": "DE", "policy_age_days": 400}"#,
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    insta::assert_snapshot!("all_signal_problems", out.transcript());
}

/// A test case that is not a regular file — a named pipe, or a link to one or to a device — is
/// refused unread (`io.error`): read, a pipe would wait for a writer and a link to
/// `/proc/self/fd/1` read the terminal or wait on a pipe. Run with a deadline.
#[cfg(target_os = "linux")]
#[test]
fn a_test_case_that_is_not_a_regular_file_is_refused_unread() {
    let root = repo_root().join(CLAIMS);
    for (name, make) in [
        ("pipe.json", None),
        ("to-a-pipe.json", Some("fifo")),
        ("to-a-device.json", Some("/dev/null")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(root.join("policy.json"), dir.path().join("policy.json")).unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let case = dir.path().join("tests").join(name);
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(if make.is_none() { &case } else { &fifo })
            .status()
            .unwrap();
        assert!(made.success());
        match make {
            Some("fifo") => std::os::unix::fs::symlink(&fifo, &case).unwrap(),
            Some(device) => std::os::unix::fs::symlink(device, &case).unwrap(),
            None => {}
        }
        let out = crate::common::run_within_deadline(dir.path(), &["policy", "test", "."]);
        let stderr = &out.stderr;
        assert_eq!(out.code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains("io.error") && stderr.contains("not a regular file"),
            "{name}: {stderr}"
        );
    }
}
