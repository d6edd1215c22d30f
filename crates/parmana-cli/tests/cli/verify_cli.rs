//! `parmana verify` as an auditor runs it: attestations verified after rotations and after every trust-root version expired, current trust required or not, the chain given as a file, a directory or any version's file, and the clock and chain refusals.

use std::path::Path;

use crate::common::{NOW, Run, VIP_SIGNALS, execute_vip, fixture_rotate, run_in, temp_repo};
use parmana_runtime::canon::Timestamp;

/// Executes the VIP claim as `id` at `at` in `dir` (memory store) and returns the attestation.
fn execute_at(dir: &Path, id: &str, at: &str) -> String {
    let out = run_in(
        dir,
        &execute_vip(&["--execution-id", id, "--store", "memory", "--now", at]),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    out.stdout
}

/// `parmana trust rotate` of the fixture chain (root key root-2, which signs) to a version
/// whose attestation role is the key at `attestation_key`.
fn rotate(dir: &Path, attestation_key: &str) {
    let out = run_in(
        dir,
        &fixture_rotate(
            "trust/keys/root-2.pem",
            &[
                "--attestation-key",
                attestation_key,
                "--expires",
                "2036-01-01T00:00:00Z",
                "--now",
                NOW,
            ],
        ),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
}

/// `parmana verify attestation.json ARGS` in `dir`.
fn verify(dir: &Path, args: &[&str]) -> crate::common::Run {
    let mut all = vec!["verify", "attestation.json"];
    all.extend_from_slice(args);
    run_in(dir, &all, b"")
}

fn timestamp(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

#[test]
fn an_auditor_verifies_an_attestation_after_rotations() {
    let repo = temp_repo();
    let d = repo.root();
    let attestation = execute_at(d, "audit-0001", NOW);
    std::fs::write(d.join("attestation.json"), &attestation).unwrap();

    // Version 3 keeps the attestation key: superseded, the key still trusted.
    rotate(d, "trust/keys/attestation.pub");
    let kept = verify(d, &["--now", NOW]);
    insta::assert_snapshot!("verify_after_rotation", kept.transcript());
    let strict = verify(d, &["--now", NOW, "--require-current-trust"]);
    insta::assert_snapshot!("verify_after_rotation_current_trust", strict.transcript());

    // Version 4 rotates the attestation key out (to root-1, a TEST-ONLY key): still valid,
    // reported as no longer trusted; required current trust fails.
    rotate(d, "trust/keys/root-1.pub");
    let rotated_out = verify(d, &["--now", NOW]);
    assert_eq!(rotated_out.code, 0, "{}", rotated_out.transcript());
    let json = run_in(
        d,
        &[
            "--format",
            "json",
            "verify",
            "attestation.json",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(json.code, 0, "{}", json.transcript());
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    insta::assert_json_snapshot!("verify_key_rotated_out_json", report["trust"]);
    let strict = verify(d, &["--now", NOW, "--require-current-trust"]);
    assert_eq!(strict.code, 7, "{}", strict.transcript());
    assert!(
        strict
            .stdout
            .contains("current_trust   FAILED  [trust.key_no_longer_trusted]"),
        "{}",
        strict.stdout
    );

    // The chain given as its directory, or as any version's file, reads the same chain.
    for trust_root in [
        "trust",
        "trust/trust-root.d/1.json",
        "trust/trust-root.d/2.json",
        "trust/trust-root.json",
    ] {
        let out = verify(d, &["--now", NOW, "--trust-root", trust_root]);
        assert_eq!(out.code, 0, "{trust_root}: {}", out.transcript());
        assert_eq!(out.stdout, rotated_out.stdout, "{trust_root}");
    }

    // A chain cut short before the rotations (versions 1 and 2 only) verifies on its own, and
    // the key rotated out looks still trusted: a floor from elsewhere refuses it.
    let cut = d.join("cut");
    std::fs::create_dir(&cut).unwrap();
    for version in ["1.json", "2.json"] {
        std::fs::copy(
            d.join("trust/trust-root.d").join(version),
            cut.join(version),
        )
        .unwrap();
    }
    let frozen = verify(
        d,
        &[
            "--now",
            NOW,
            "--trust-root",
            "cut",
            "--require-current-trust",
        ],
    );
    assert_eq!(frozen.code, 0, "{}", frozen.transcript());
    // (chain, floor, refused)
    for (chain, floor, refused) in [
        ("cut", "4", true),
        ("cut", "2", false),
        ("trust", "4", false),
        ("trust", "5", true),
    ] {
        let out = verify(
            d,
            &[
                "--now",
                NOW,
                "--trust-root",
                chain,
                "--min-trust-root-version",
                floor,
            ],
        );
        if refused {
            assert_eq!(out.code, 4, "{chain} {floor}: {}", out.transcript());
            assert!(
                out.stderr.starts_with("error[trust.version_rollback]"),
                "{chain} {floor}: {}",
                out.stderr
            );
            assert_eq!(out.stdout, "", "{chain} {floor}: nothing is judged");
        } else {
            assert_eq!(out.code, 0, "{chain} {floor}: {}", out.transcript());
        }
    }
}

#[test]
fn an_attestation_verifies_after_every_version_expired() {
    let repo = temp_repo();
    let d = repo.root();
    let signer = repo.attestation_signer().unwrap();
    repo.rotate_trust_root(&[&signer], 1, timestamp("2027-01-01T00:00:00Z"))
        .unwrap();
    let attestation = execute_at(d, "audit-0002", NOW);
    std::fs::write(d.join("attestation.json"), &attestation).unwrap();
    let later = "2030-01-01T00:00:00Z";
    // Executed while version 3 was valid: verifiable in 2030 without backdating the clock.
    let verified = verify(d, &["--now", later]);
    insta::assert_snapshot!("verify_after_expiry", verified.transcript());
    let strict = verify(d, &["--now", later, "--require-current-trust"]);
    assert_eq!(strict.code, 7, "{}", strict.transcript());
    assert!(
        strict
            .stdout
            .contains("current_trust   FAILED  [trust.expired]"),
        "{}",
        strict.stdout
    );
    // Executing is not weakened: the expired trust root refuses.
    let out = run_in(d, &execute_vip(&["--store", "memory", "--now", later]), b"");
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.starts_with("error[trust.expired]"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_attestation_from_beyond_the_clock_tolerance_is_refused() {
    let repo = temp_repo();
    let d = repo.root();
    let attestation = execute_at(d, "audit-0003", "2026-11-28T22:00:00Z");
    std::fs::write(d.join("attestation.json"), &attestation).unwrap();
    let early = verify(d, &["--now", NOW]);
    assert_eq!(early.code, 7, "{}", early.transcript());
    assert!(
        early
            .stdout
            .contains("executed_at     FAILED  [trust.executed_in_future]"),
        "{}",
        early.stdout
    );
    // Within the 5 minutes of tolerance.
    let close = verify(d, &["--now", "2026-11-28T21:55:00Z"]);
    assert_eq!(close.code, 0, "{}", close.transcript());
}

#[test]
fn a_newer_version_beside_the_current_trust_root_is_refused() {
    let repo = temp_repo();
    let d = repo.root();
    let attestation = execute_at(d, "audit-0004", NOW);
    std::fs::write(d.join("attestation.json"), &attestation).unwrap();
    let signer = repo.attestation_signer().unwrap();
    repo.rotate_trust_root(&[&signer], 1, timestamp("2036-01-01T00:00:00Z"))
        .unwrap();
    // Version 3 misplaced into trust-root.d, version 2 put back as the current file.
    let trust = d.join("trust");
    std::fs::rename(
        trust.join("trust-root.json"),
        trust.join("trust-root.d/3.json"),
    )
    .unwrap();
    std::fs::copy(
        trust.join("trust-root.d/2.json"),
        trust.join("trust-root.json"),
    )
    .unwrap();
    let refused = verify(d, &["--now", NOW, "--trust-root", "trust/trust-root.json"]);
    insta::assert_snapshot!("verify_newer_version_in_chain_dir", refused.transcript());
    let execute = run_in(d, &execute_vip(&["--store", "memory", "--now", NOW]), b"");
    assert_eq!(execute.code, 4, "{}", execute.transcript());
    assert!(
        execute
            .stderr
            .starts_with("error[trust.unexpected_version]"),
        "{}",
        execute.stderr
    );
    // Named as the directory, `trust-root.d` is read as one of its files is — with the current
    // file beside it — and refused alike.
    let as_directory = verify(d, &["--now", NOW, "--trust-root", "trust/trust-root.d"]);
    assert_eq!(as_directory.code, 4, "{}", as_directory.transcript());
    assert!(
        as_directory
            .stderr
            .starts_with("error[trust.unexpected_version]"),
        "{}",
        as_directory.transcript()
    );
    // The numbered files alone, as an auditor may be given them: version 3 is the newest, and
    // the attestation (made under version 2) verifies.
    let chain = d.join("chain");
    std::fs::create_dir(&chain).unwrap();
    for n in 1..=3 {
        let name = format!("{n}.json");
        std::fs::copy(trust.join("trust-root.d").join(&name), chain.join(&name)).unwrap();
    }
    let as_chain = verify(d, &["--now", NOW, "--trust-root", "chain"]);
    assert_eq!(as_chain.code, 0, "{}", as_chain.transcript());
}

#[test]
fn show_prints_the_decoded_statement_before_the_report() {
    let golden = "golden/claims-escalate.attestation.json";
    let human = crate::common::run(&["verify", "--show", golden, "--now", NOW]);
    insta::assert_snapshot!("verify_show", human.transcript());
    let json = crate::common::run(&["--format", "json", "verify", "--show", golden, "--now", NOW]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["statement"]["predicate"], report["predicate"]);
    assert_eq!(
        report["statement"]["subject"][0]["name"],
        "execution/golden-claims-0003"
    );
    // Without --show, no statement.
    let plain = crate::common::run(&["--format", "json", "verify", golden, "--now", NOW]);
    let plain: serde_json::Value = serde_json::from_str(&plain.stdout).unwrap();
    assert!(plain.get("statement").is_none());
}

/// The reports `verify --format json` printed for a batch, one per line, having passed.
fn json_reports(out: &Run) -> Vec<serde_json::Value> {
    assert_eq!(out.code, 0, "{}", out.transcript());
    out.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `execute --batch` of three lines in `dir` (the second refused), its output as written.
fn execute_batch(dir: &Path) -> String {
    let requests = [
        format!(r#"{{"execution_id":"lines-1","signals":{VIP_SIGNALS}}}"#),
        r#"{"execution_id":"lines-2","signals":{"claim_amount":100}}"#.to_owned(),
        format!(r#"{{"execution_id":"lines-3","signals":{VIP_SIGNALS}}}"#),
    ];
    std::fs::write(dir.join("requests.jsonl"), requests.join("\n") + "\n").unwrap();
    let out = run_in(
        dir,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--batch",
            "requests.jsonl",
            "--store",
            "memory",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.transcript());
    out.stdout
}

#[test]
fn a_batch_verifies_line_by_line_as_each_line_verifies_alone() {
    let repo = temp_repo();
    let d = repo.root();
    let batch = execute_batch(d);
    let human = run_in(d, &["verify", "-", "--now", NOW], batch.as_bytes());
    insta::assert_snapshot!("verify_lines", human.transcript());
    std::fs::write(d.join("attestations.jsonl"), &batch).unwrap();
    let json = run_in(
        d,
        &[
            "--format",
            "json",
            "verify",
            "--show",
            "attestations.jsonl",
            "--now",
            NOW,
        ],
        b"",
    );
    let reports = json_reports(&json);
    assert_eq!(
        reports[1],
        serde_json::json!({"line": 2, "skipped": "batch error"})
    );
    for (index, line) in batch.lines().enumerate().filter(|(i, _)| *i != 1) {
        std::fs::write(d.join("attestation.json"), line).unwrap();
        let single = verify(d, &["--format", "json", "--show", "--now", NOW]);
        let mut expected: serde_json::Value = serde_json::from_str(&single.stdout).unwrap();
        expected["line"] = serde_json::json!(index + 1);
        assert_eq!(reports[index], expected, "line {}", index + 1);
    }
}

#[test]
fn a_tampered_line_fails_alone_and_single_only_flags_are_refused() {
    let repo = temp_repo();
    let d = repo.root();
    let batch = execute_batch(d);
    let mut lines: Vec<String> = batch.lines().map(str::to_owned).collect();
    // Another signature on line 3: its own key's, over line 1's payload.
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let mut third: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    third["signatures"] = first["signatures"].clone();
    lines[2] = third.to_string();
    let tampered = lines.join("\n") + "\n";
    let out = run_in(d, &["verify", "-", "--now", NOW], tampered.as_bytes());
    insta::assert_snapshot!("verify_lines_tampered", out.transcript());
    let refused = run_in(
        d,
        &["verify", "-", "--signals", VIP_SIGNALS, "--now", NOW],
        batch.as_bytes(),
    );
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert!(
        refused.stderr.contains("error[cli.usage]"),
        "{}",
        refused.stderr
    );
    // Standard input read for the attestation cannot be read again for the signals or a proof.
    let single = lines[0].clone() + "\n";
    std::fs::write(d.join("single.json"), &single).unwrap();
    for args in [
        &["verify", "-", "--signals", "-"][..],
        &["verify", "-", "--proof", "-"],
        &["verify", "single.json", "--signals", "-", "--proof", "-"],
    ] {
        let flag = args.join(" ");
        let twice = run_in(d, args, single.as_bytes());
        assert_eq!(
            (twice.code, crate::common::error_code(&twice)),
            (2, "cli.usage"),
            "{flag}: {}",
            twice.transcript()
        );
    }
}

#[test]
fn a_batch_refusal_line_naming_its_execution_is_skipped_too() {
    // What `execute --batch` prints for a refusal that may follow the claim carries the
    // execution's id: still a refusal line, skipped; a line only resembling one is not.
    let repo = temp_repo();
    let d = repo.root();
    let mut batch = execute_batch(d);
    batch.push_str(
        "{\"error\":{\"code\":\"replay.store_unavailable\",\"message\":\"down\"},\"execution_id\":\"lines-9\",\"line\":4}\n",
    );
    let out = run_in(
        d,
        &["--format", "json", "verify", "-", "--now", NOW],
        batch.as_bytes(),
    );
    let reports = json_reports(&out);
    assert_eq!(
        reports[3],
        serde_json::json!({"line": 4, "skipped": "batch error"})
    );
    // Among genuine lines (JSON Lines, not one attestation), a line with an id that is not a
    // string is verified — and fails — rather than skipped.
    let genuine = execute_batch(d);
    let first = genuine.lines().next().unwrap();
    let odd = "{\"error\":{\"code\":\"x\",\"message\":\"y\"},\"execution_id\":9,\"line\":1}";
    let lines = format!("{first}\n{odd}\n{first}\n");
    let out = run_in(
        d,
        &["--format", "json", "verify", "-", "--now", NOW],
        lines.as_bytes(),
    );
    assert_eq!(out.code, 7, "{}", out.transcript());
    let reports: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reports.len(), 3, "{}", out.stdout);
    assert_eq!(reports[0]["valid"], true, "{}", reports[0]);
    assert_eq!(reports[1]["line"], 2, "{}", reports[1]);
    assert_eq!(reports[1]["valid"], false, "{}", reports[1]);
    assert!(reports[1].get("skipped").is_none(), "{}", reports[1]);
    assert_eq!(reports[2]["valid"], true, "{}", reports[2]);
}

/// A forged attestation whose decision carries a carriage return and a terminal escape
/// sequence (to overwrite or hide the verdict on a terminal) is refused as malformed (a decision
/// is a label), and what is printed of it is escaped — the refusal quoting it in the report of
/// one attestation, the statement `--show` decodes — in that report and in a JSON Lines summary:
/// the verdict still reads NOT VALID on the line it is written on.
#[test]
fn an_attestation_cannot_rewrite_the_verdict_a_terminal_shows() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    let repo = temp_repo();
    let d = repo.root();
    let genuine: serde_json::Value =
        serde_json::from_str(&execute_at(d, "spoof-0001", NOW)).unwrap();
    let payload = BASE64.decode(genuine["payload"].as_str().unwrap()).unwrap();
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    statement["predicate"]["decision"] =
        serde_json::json!("approve\rline 1: valid\u{1b}[8m\u{202e}\u{9b}2K");
    let mut forged = genuine.clone();
    forged["payload"] = serde_json::json!(
        BASE64.encode(parmana_runtime::canon::canonicalize_value(&statement).unwrap())
    );
    let forged = forged.to_string();
    std::fs::write(d.join("attestation.json"), &forged).unwrap();
    // One attestation, and JSON Lines (the forged line among genuine ones: each gets its line).
    let genuine_line = genuine.to_string();
    let lines = format!("{genuine_line}\n{forged}\n{genuine_line}\n");
    // With `--show` too: the decoded statement is outside text as much as the report's fields
    // (a C1 control such as U+009B, the 8-bit CSI, is not escaped by JSON). A JSON Lines
    // summary names the failed checks only, not the refusal quoting the decision.
    for (shown, quoted, out) in [
        (false, true, verify(d, &["--now", NOW])),
        (
            false,
            false,
            run_in(d, &["verify", "-", "--now", NOW], lines.as_bytes()),
        ),
        (true, true, verify(d, &["--now", NOW, "--show"])),
        (
            true,
            false,
            run_in(
                d,
                &["verify", "-", "--now", NOW, "--show"],
                lines.as_bytes(),
            ),
        ),
    ] {
        assert_eq!(out.code, 7, "{}", out.transcript());
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !stream.contains(['\r', '\u{1b}', '\u{202e}', '\u{9b}']),
                "{stream:?}"
            );
        }
        assert_eq!(
            out.stdout
                .contains(r"approve\rline 1: valid\u{1b}[8m\u{202e}\u{9b}2K"),
            quoted,
            "{}",
            out.stdout
        );
        if shown {
            // The statement as JSON shows it, with what JSON leaves raw escaped.
            assert!(
                out.stdout
                    .contains(r#""decision": "approve\rline 1: valid\u001b[8m\u{202e}\u{9b}2K""#),
                "{}",
                out.stdout
            );
        }
        assert!(out.stdout.contains("NOT VALID"), "{}", out.stdout);
    }
}

#[test]
fn a_decision_the_policy_did_not_make_is_not_valid_given_the_policy_and_the_signals() {
    let repo = temp_repo();
    let d = repo.root();
    let genuine = execute_at(d, "forged-0001", NOW);
    // The attestation key's holder signs a denial the policy did not decide.
    let forged = parmana_testkit::re_signed_attestation(
        genuine.as_bytes(),
        &repo.attestation_signer().unwrap(),
        |predicate| predicate["decision"] = serde_json::json!("deny"),
    )
    .unwrap();
    std::fs::write(d.join("attestation.json"), &forged).unwrap();
    std::fs::write(d.join("signals.json"), VIP_SIGNALS).unwrap();
    // Its signature is good: without the policy, nothing shows the lie.
    let alone = verify(d, &["--now", NOW]);
    assert_eq!(alone.code, 0, "{}", alone.transcript());
    let bundle = ["--policy-bundle", "policies/claims-approval/1.0.0"];
    let with_policy = |more: &[&str]| {
        let mut args = vec!["--now", NOW];
        args.extend_from_slice(&bundle);
        args.extend_from_slice(more);
        verify(d, &args)
    };
    // The bundle alone decides nothing: the signals are needed.
    let no_signals = with_policy(&[]);
    assert_eq!(no_signals.code, 0, "{}", no_signals.transcript());
    assert!(
        !no_signals.stdout.contains("decision"),
        "{}",
        no_signals.stdout
    );
    let refused = with_policy(&["--signals", "signals.json"]);
    insta::assert_snapshot!("verify_decision_mismatch", refused.transcript());
    // The genuine attestation passes the same check.
    std::fs::write(d.join("attestation.json"), &genuine).unwrap();
    let passed = with_policy(&["--signals", "signals.json"]);
    assert_eq!(passed.code, 0, "{}", passed.transcript());
    assert!(
        passed.stdout.contains("valid: all 10 checks passed"),
        "{}",
        passed.stdout
    );
}
