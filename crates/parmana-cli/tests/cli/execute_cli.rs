//! `parmana execute`, `verify` and `ledger verify` end to end through the real binary: every refusal of the pipeline (docs/design.md §4) and its exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::Path;

use crate::common::{
    LostStdout, NOW, README_SIGNALS, VIP_SIGNALS, execute_vip, repo_root, run, run_in,
    run_with_lost_stdout, temp_repo,
};
use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::{ExecutionState, ReplayStore, SqliteReplayStore};

/// The arguments of `parmana execute` of `signals` under claims-approval@1.0.0 as `id` on
/// `store`, at the fixed clock.
fn execute_args<'a>(store: &'a str, id: &'a str, signals: &'a str) -> Vec<&'a str> {
    vec![
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
        NOW,
    ]
}

/// `parmana execute` of `signals` under claims-approval@1.0.0 at the fixed clock, in `dir`.
fn execute_in(
    dir: &Path,
    store: &str,
    id: &str,
    signals: &str,
    extra: &[&str],
) -> crate::common::Run {
    let mut args = execute_args(store, id, signals);
    args.extend_from_slice(extra);
    run_in(dir, &args, b"")
}

fn sqlite_store(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("replay.sqlite3").display())
}

#[test]
fn execute_then_verify_passes() {
    let out = execute_in(&repo_root(), "memory", "claim-0001", VIP_SIGNALS, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one line of JSON");
    let attestation = out.stdout;
    let verified = run_in(
        &repo_root(),
        &["verify", "-", "--now", NOW],
        attestation.as_bytes(),
    );
    insta::assert_snapshot!("verify_report", verified.transcript());

    // With the bundle and the signals, three more checks run and pass (ten in all): the
    // bundle's digests, the signals' digest, and the decision the policy makes for them.
    let inputs = tempfile::tempdir().unwrap();
    let signals = inputs.path().join("signals.json");
    std::fs::write(&signals, VIP_SIGNALS).unwrap();
    let full = run_in(
        &repo_root(),
        &[
            "--format",
            "json",
            "verify",
            "-",
            "--policy-bundle",
            "policies/claims-approval/1.0.0",
            "--signals",
            signals.to_str().unwrap(),
            "--now",
            NOW,
        ],
        attestation.as_bytes(),
    );
    assert_eq!(full.code, 0, "{}", full.stderr);
    let report: serde_json::Value = serde_json::from_str(&full.stdout).unwrap();
    assert_eq!(report["valid"], true);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10);
    assert_eq!(checks[9]["check"], "decision");
    assert_eq!(checks[9]["passed"], true);
    assert_eq!(report["trust"]["version"], 2);
    assert_eq!(report["trust"]["superseded"], false);
    assert_eq!(report["predicate"]["decision"], "approve");
    assert_eq!(report["predicate"]["rule_id"], "vip");
}

#[test]
fn verify_refuses_other_signals_and_a_tampered_attestation() {
    let attestation = execute_in(&repo_root(), "memory", "claim-0002", VIP_SIGNALS, &[]).stdout;
    let out = run_in(
        &repo_root(),
        &["verify", "-", "--signals", README_SIGNALS, "--now", NOW],
        attestation.as_bytes(),
    );
    insta::assert_snapshot!("verify_other_signals", out.transcript());

    // Flip one character of the signature.
    let mut envelope: serde_json::Value = serde_json::from_str(&attestation).unwrap();
    let sig = envelope["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    envelope["signatures"][0]["sig"] = format!("{flipped}{}", &sig[1..]).into();
    let tampered = parmana_canon_json(&envelope);
    let out = run_in(
        &repo_root(),
        &["verify", "-", "--now", NOW],
        tampered.as_bytes(),
    );
    assert_eq!(out.code, 7, "{}", out.transcript());
    assert!(
        out.stdout.contains("signature       FAILED"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with("error[cli.verification_failed]"),
        "{}",
        out.stderr
    );
}

/// The envelope is canonical JSON: keys sorted, no spaces — serde_json's map is sorted too.
fn parmana_canon_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap()
}

#[test]
fn the_same_id_twice_is_a_replay_and_the_first_attestation_stands() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir);
    let first = execute_in(&repo_root(), &store, "claim-0003", VIP_SIGNALS, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = execute_in(&repo_root(), &store, "claim-0003", README_SIGNALS, &[]);
    insta::assert_snapshot!("replay_refused", second.transcript());

    let opened = SqliteReplayStore::open(dir.path().join("replay.sqlite3")).unwrap();
    let state = opened
        .get(&ExecutionId::parse("claim-0003").unwrap())
        .unwrap();
    let ExecutionState::Completed(done) = state else {
        panic!("expected a completed execution, found {state:?}");
    };
    assert_eq!(done.attestation(), first.stdout.trim_end().as_bytes());
    drop(opened);

    let ledger = run(&["ledger", "verify", "--store", &store]);
    assert_eq!(ledger.code, 0, "{}", ledger.stderr);
    assert!(
        ledger
            .stdout
            .starts_with("ledger intact: 2 records (1 execution, 1 marks record: trust root 2, release manifest 1), head sha256:"),
        "{}",
        ledger.stdout
    );
}

#[test]
fn invalid_signals_are_refused_and_the_id_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir);
    let bad = execute_in(
        &repo_root(),
        &store,
        "claim-0004",
        r#"{"claim_amount":"1200","vip_customer":true,"country":"DE","policy_age_days":400}"#,
        &[],
    );
    insta::assert_snapshot!("invalid_signals", bad.transcript());
    let undeclared = execute_in(
        &repo_root(),
        &store,
        "claim-0004",
        r#"{"claim_amount":1,"vip_customer":true,"country":"DE","policy_age_days":400,"x":1}"#,
        &["--format", "json"],
    );
    insta::assert_snapshot!("undeclared_signal_json", undeclared.transcript());
    let good = execute_in(&repo_root(), &store, "claim-0004", VIP_SIGNALS, &[]);
    assert_eq!(good.code, 0, "{}", good.stderr);
}

#[test]
fn a_policy_edited_after_signing_is_refused() {
    let repo = temp_repo();
    let policy = repo
        .root()
        .join("policies/claims-approval/1.0.0/policy.json");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("\"gt\": 50000", "\"gt\": 5000000")).unwrap();
    let out = execute_in(repo.root(), "memory", "claim-0005", VIP_SIGNALS, &[]);
    insta::assert_snapshot!("tampered_policy", out.transcript());
}

#[test]
fn a_bundle_not_in_the_release_manifest_is_refused() {
    let repo = temp_repo();
    let from = repo.root().join("policies/claims-approval/1.0.0");
    let to = repo.root().join("policies/claims-approval/1.0.1");
    crate::common::copy_tree(&from, &to);
    let text = std::fs::read_to_string(to.join("policy.json")).unwrap();
    std::fs::write(
        to.join("policy.json"),
        text.replace(
            "\"policy_version\": \"1.0.0\"",
            "\"policy_version\": \"1.0.1\"",
        ),
    )
    .unwrap();
    // Correctly signed by the policy role, but never released.
    let signed = run_in(
        repo.root(),
        &[
            "bundle",
            "sign",
            "policies/claims-approval/1.0.1",
            "--key",
            "trust/keys/policy.pem",
        ],
        b"",
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    assert!(
        signed.stdout.starts_with("claims-approval@1.0.1 sha256:"),
        "{}",
        signed.stdout
    );
    let out = run_in(
        repo.root(),
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.1",
            "--signals",
            VIP_SIGNALS,
            "--store",
            "memory",
            "--now",
            NOW,
        ],
        b"",
    );
    insta::assert_snapshot!("not_in_release_manifest", out.transcript());
}

#[test]
fn an_expired_trust_root_is_refused() {
    let out = run(&execute_vip(&[
        "--store",
        "memory",
        "--now",
        "2040-01-01T00:00:00Z",
    ]));
    insta::assert_snapshot!("expired_trust_root", out.transcript());
}

#[test]
fn a_key_without_the_attestation_role_is_refused() {
    let out = execute_in(
        &repo_root(),
        "memory",
        "claim-0006",
        VIP_SIGNALS,
        &["--key", "trust/keys/policy.pem"],
    );
    insta::assert_snapshot!("wrong_signing_key", out.transcript());
}

#[test]
fn unknown_policy_bad_id_and_bad_store_are_refused() {
    let unknown = run(&[
        "execute",
        "--policy",
        "claims-approval@9.9.9",
        "--signals",
        VIP_SIGNALS,
        "--store",
        "memory",
        "--now",
        NOW,
    ]);
    insta::assert_snapshot!("unknown_policy", unknown.transcript());
    let bad_id = execute_in(&repo_root(), "memory", "has space", VIP_SIGNALS, &[]);
    insta::assert_snapshot!("invalid_execution_id", bad_id.transcript());
    let bad_store = execute_in(&repo_root(), "redis://x", "claim-0007", VIP_SIGNALS, &[]);
    insta::assert_snapshot!("unknown_store", bad_store.transcript());
}

/// The batch summary with its elapsed time and rate (which vary from run to run) blanked.
fn without_timing(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match line.find(" in ") {
            Some(at) if line.starts_with("batch: ") => format!("{} in [elapsed]", &line[..at]),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn batch_goes_on_after_a_refused_line() {
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("requests.jsonl");
    std::fs::write(
        &batch,
        format!(
            "{{\"execution_id\":\"b-1\",\"signals\":{VIP_SIGNALS}}}\n\
             {{\"execution_id\":\"b-2\",\"signals\":{{\"claim_amount\":1}}}}\n\
             \n\
             {{\"execution_id\":\"b-1\",\"signals\":{VIP_SIGNALS}}}\n\
             {{\"execution_id\":\"b-3\",\"policy\":\"patient-triage@1.0.0\",\"signals\":{{}}}}\n\
             {{\"signals\":{README_SIGNALS}}}\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--batch",
        batch.to_str().unwrap(),
        "--jobs",
        "1",
        "--store",
        "memory",
        "--now",
        NOW,
    ]);
    assert_eq!(out.code, 3, "{}", out.transcript());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    for attestation in [lines[0], lines[4]] {
        let verified = run_in(
            &repo_root(),
            &["verify", "-", "--now", NOW],
            attestation.as_bytes(),
        );
        assert_eq!(verified.code, 0, "{}", verified.transcript());
    }
    let refusals = format!(
        "{}\n{}\n{}\n--- stderr\n{}",
        lines[1],
        lines[2],
        lines[3],
        without_timing(&out.stderr)
    );
    insta::assert_snapshot!("batch_refusals", refusals);
}

#[test]
fn the_default_store_lives_under_dot_parmana_and_ids_are_fresh_uuidv7() {
    let repo = temp_repo();
    let args = [
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        README_SIGNALS,
    ];
    let first = run_in(repo.root(), &args, b"");
    let second = run_in(repo.root(), &args, b"");
    assert_eq!(
        (first.code, second.code),
        (0, 0),
        "{}{}",
        first.stderr,
        second.stderr
    );
    assert!(repo.root().join(".parmana/replay.sqlite3").is_file());
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|out| {
            let report = run_in(
                repo.root(),
                &["--format", "json", "verify", "-"],
                out.stdout.as_bytes(),
            );
            assert_eq!(report.code, 0, "{}", report.transcript());
            let value: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
            value["predicate"]["execution_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        // 8-4-4-4-12 hex digits, version 7.
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "7", "{id}");
    }
    let ledger = run_in(repo.root(), &["ledger", "verify"], b"");
    assert_eq!(ledger.code, 0, "{}", ledger.stderr);
    assert!(
        ledger
            .stdout
            .starts_with("ledger intact: 3 records (2 executions, 1 marks record:"),
        "{}",
        ledger.stdout
    );
}

#[test]
fn ledger_verify_reports_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "ledger",
            "verify",
            "--store",
            "sqlite:.parmana/replay.sqlite3",
        ],
        b"",
    );
    insta::assert_snapshot!("ledger_missing_store", out.transcript());
}

#[test]
fn include_signals_embeds_them_and_verify_checks_them() {
    let out = execute_in(
        &repo_root(),
        "memory",
        "claim-0008",
        VIP_SIGNALS,
        &["--include-signals"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = run_in(
        &repo_root(),
        &["--format", "json", "verify", "-", "--now", NOW],
        out.stdout.as_bytes(),
    );
    assert_eq!(report.code, 0, "{}", report.transcript());
    let value: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(value["predicate"]["signals"]["claim_amount"], 1200);
    let checks: Vec<&str> = value["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "envelope",
            "signature",
            "key_role",
            "trust_root",
            "fingerprint",
            "executed_at",
            "current_trust",
            "signals_digest"
        ]
    );
}

/// `execute --batch -` executes each line as it is read and prints (and flushes) its result
/// before reading the next: the first attestation arrives while the input is still open.
#[test]
fn batch_results_are_written_as_each_line_completes() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = temp_repo();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parmana"))
        .args([
            "execute",
            "--batch",
            "-",
            "--policy",
            "claims-approval@1.0.0",
            "--store",
            "sqlite:stream.sqlite3",
            "--now",
            NOW,
        ])
        .current_dir(dir.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for n in 0..3 {
        writeln!(
            stdin,
            r#"{{"execution_id":"stream-{n}","signals":{README_SIGNALS}}}"#
        )
        .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with(r#"{"payload":"#), "line {n}: {line}");
    }
    // A line longer than the limit is refused on its own line; the batch goes on.
    let long = format!(
        r#"{{"signals":{{"claim_amount":1,"pad":"{}"}}}}"#,
        "x".repeat(parmana_runtime::MAX_BATCH_LINE_BYTES)
    );
    writeln!(stdin, "{long}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        rest.starts_with(r#"{"error":{"code":"runtime.request_too_large""#),
        "{rest}"
    );
    assert!(rest.trim_end().ends_with(r#""line":4}"#), "{rest}");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

/// `--jobs 4` on a durable SQLite store: results come out in input order, every unique id is
/// executed once, and of eight lines naming the same id exactly one wins.
#[test]
fn batch_jobs_keep_input_order_and_one_winner_per_id() {
    use base64::Engine as _;
    let dir = temp_repo();
    let mut input = String::new();
    let mut expected_ids = Vec::new();
    for n in 0..120 {
        let id = if n % 15 == 7 {
            "shared".to_owned()
        } else {
            format!("job-{n}")
        };
        input.push_str(&format!(
            "{{\"execution_id\":\"{id}\",\"signals\":{README_SIGNALS}}}\n"
        ));
        expected_ids.push(id);
    }
    let out = run_in(
        dir.root(),
        &[
            "execute",
            "--batch",
            "-",
            "--jobs",
            "4",
            "--policy",
            "claims-approval@1.0.0",
            "--store",
            "sqlite:jobs.sqlite3",
            "--now",
            NOW,
        ],
        input.as_bytes(),
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 120, "{}", out.transcript());
    let mut shared_wins = 0;
    for (n, (line, id)) in lines.iter().zip(&expected_ids).enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(payload) = value["payload"].as_str() {
            let statement: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(
                statement["predicate"]["execution_id"],
                id.as_str(),
                "line {n}"
            );
            if id == "shared" {
                shared_wins += 1;
            }
        } else {
            assert_eq!(id, "shared", "line {n}: {line}");
            assert_eq!(value["error"]["code"], "runtime.replay_detected");
            assert_eq!(value["line"], n + 1);
        }
    }
    assert_eq!(shared_wins, 1);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("batch: 120 lines, 113 executed, 7 refused"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_human_summary_goes_to_stderr_and_the_attestation_is_unchanged() {
    let repo = crate::common::temp_repo();
    let plain = execute_in(repo.root(), "memory", "sum-1", VIP_SIGNALS, &[]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    // Not a terminal: no summary by default.
    assert_eq!(plain.stderr, "");
    let summary = execute_in(
        repo.root(),
        "sqlite:.parmana/replay.sqlite3",
        "sum-1",
        VIP_SIGNALS,
        &["--summary", "always"],
    );
    assert_eq!(summary.code, 0, "{}", summary.stderr);
    assert_eq!(summary.stdout, plain.stdout);
    insta::assert_snapshot!("execute_summary", summary.stderr);
}

#[test]
fn a_missing_reason_is_absent_in_eval_explain_and_the_attestation() {
    let repo = crate::common::temp_repo();
    let d = repo.root();
    let bundle = d.join("policies/plain/1.0.0");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("policy.json"),
        r#"{"schema_version": "2.0.0", "policy_id": "plain", "policy_version": "1.0.0",
  "decisions": ["ok"], "signals": {"n": {"type": "integer", "required": true}},
  "rules": [{"id": "big", "when": {"signal": "n", "gt": 10}, "then": {"decision": "ok"}}],
  "default": {"decision": "ok"}}"#,
    )
    .unwrap();
    let now = ["--now", NOW];
    for args in [
        vec![
            "bundle",
            "sign",
            "policies/plain/1.0.0",
            "--key",
            "trust/keys/policy.pem",
        ],
        [
            &parmana_testkit::release_sign_args("2", "2036-01-01T00:00:00Z")[..],
            &["--force"],
        ]
        .concat(),
    ] {
        let out = run_in(d, &[&args[..], &now[..]].concat(), b"");
        assert_eq!(out.code, 0, "{args:?}: {}", out.transcript());
    }
    let eval = run_in(
        d,
        &[
            "policy",
            "eval",
            "policies/plain/1.0.0",
            "--signals",
            r#"{"n":11}"#,
        ],
        b"",
    );
    assert_eq!(eval.stdout.trim(), r#"{"decision":"ok","rule_id":"big"}"#);
    let explain = run_in(
        d,
        &[
            "--format",
            "json",
            "policy",
            "explain",
            "policies/plain/1.0.0",
            "--signals",
            r#"{"n":11}"#,
        ],
        b"",
    );
    let explained: serde_json::Value = serde_json::from_str(&explain.stdout).unwrap();
    assert!(
        explained["decision"].get("reason").is_none(),
        "{}",
        explain.stdout
    );
    let executed = run_in(
        d,
        &[
            "execute",
            "--policy",
            "plain@1.0.0",
            "--signals",
            r#"{"n":11}"#,
            "--execution-id",
            "plain-1",
            "--store",
            "memory",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(executed.code, 0, "{}", executed.transcript());
    let report = run_in(
        d,
        &["--format", "json", "verify", "-", "--now", NOW],
        executed.stdout.as_bytes(),
    );
    assert_eq!(report.code, 0, "{}", report.transcript());
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["predicate"]["rule_id"], "big");
    assert!(
        report["predicate"].get("reason").is_none(),
        "{}",
        report["predicate"]
    );
}

/// Standard output lost after the execution was stored (a full device, a reader gone) is an
/// error that names the execution and how to read it back: a caller who took exit 1 for "not
/// executed" and retried under a new id would execute a second time.
#[test]
fn a_lost_standard_output_names_the_execution_it_completed() {
    let temp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&temp);
    let lost = [
        ("lost-to-a-closed-pipe", LostStdout::ClosedPipe),
        #[cfg(target_os = "linux")]
        ("lost-to-a-full-device", LostStdout::FullDevice),
    ];
    for (id, lost) in lost {
        let out = run_with_lost_stdout(
            &repo_root(),
            &execute_args(&store, id, README_SIGNALS),
            lost,
        );
        assert_eq!(out.code, 1, "{lost:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!(
                "error[io.error]: execution {id} completed, but its attestation was not printed \
                 (standard output: "
            )) && out
                .stderr
                .contains(&format!("`parmana show {id}` reads it back")),
            "{lost:?}: {}",
            out.stderr
        );
        let shown = run(&["show", id, "--store", &store]);
        assert_eq!(shown.code, 0, "{}", shown.transcript());
        let verified = run_in(
            &repo_root(),
            &["verify", "-", "--now", NOW],
            shown.stdout.as_bytes(),
        );
        assert_eq!(verified.code, 0, "{}", verified.transcript());
    }
    // With --format json, the execution is a member of the failure: a script need not read it
    // out of the message.
    let mut args = vec!["--format", "json"];
    args.extend(execute_args(&store, "lost-in-json", README_SIGNALS));
    let out = run_with_lost_stdout(&repo_root(), &args, LostStdout::ClosedPipe);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let failure: serde_json::Value = serde_json::from_str(out.stderr.trim_end()).unwrap();
    assert_eq!(
        (&failure["code"], &failure["execution_id"]),
        (
            &serde_json::json!("io.error"),
            &serde_json::json!("lost-in-json")
        ),
        "{failure}"
    );
}

/// Standard error that cannot be written (a full device) never turns an outcome into a panic:
/// an execution still completes and exits 0 with its summary lost, a refusal still exits with
/// its own code.
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_standard_error_changes_no_exit_code() {
    let temp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&temp);
    let with_full_stderr = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_parmana"))
            .args(args)
            .current_dir(repo_root())
            .env_remove("PARMANA_STORE")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create("/dev/full").unwrap())
            .status()
            .unwrap()
            .code()
    };
    let execute = |id: &str| with_full_stderr(&execute_args(&store, id, README_SIGNALS));
    assert_eq!(execute("full-stderr"), Some(0));
    // The same id again: a replay, exit 5, its message lost.
    assert_eq!(execute("full-stderr"), Some(5));
}

/// A batch whose standard output is lost names every execution it completed but did not print
/// — under `--format json` as failure objects with their `execution_id`, the only lines a
/// script reads there — so that none is retried under a new id.
#[test]
fn a_batch_that_lost_its_output_names_every_execution_it_did_not_print() {
    for format in ["human", "json"] {
        let temp = tempfile::tempdir().unwrap();
        let store = sqlite_store(&temp);
        let batch = temp.path().join("requests.jsonl");
        // Ids given on the first lines, then lines that get fresh ids.
        let mut lines = String::new();
        for n in 0..4 {
            lines.push_str(&format!(
                "{{\"execution_id\":\"lost-{n}\",\"signals\":{VIP_SIGNALS}}}\n"
            ));
        }
        for _ in 0..4 {
            lines.push_str(&format!("{{\"signals\":{README_SIGNALS}}}\n"));
        }
        std::fs::write(&batch, lines).unwrap();
        let args = [
            "--format",
            format,
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--batch",
            batch.to_str().unwrap(),
            "--jobs",
            "2",
            "--store",
            &store,
            "--now",
            NOW,
        ];
        let out = run_with_lost_stdout(&repo_root(), &args, LostStdout::ClosedPipe);
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        let named: std::collections::BTreeSet<String> = match format {
            "json" => out
                .stderr
                .lines()
                .filter(|line| line.starts_with('{'))
                .filter_map(|line| {
                    let failure: serde_json::Value = serde_json::from_str(line).unwrap();
                    assert_eq!(failure["code"], "io.error", "{line}");
                    failure["execution_id"].as_str().map(str::to_owned)
                })
                .collect(),
            _ => out
                .stderr
                .lines()
                .filter_map(|line| {
                    line.strip_prefix("executed (or perhaps claimed) but not printed: ")
                })
                .map(|rest| rest.split(' ').next().unwrap().to_owned())
                .collect(),
        };
        assert!(
            out.stderr.contains(&format!(
                "{} execution(s) completed (or perhaps claimed) but not printed",
                named.len()
            )),
            "{format}: {}",
            out.stderr
        );
        // Every execution the store completed is named (nothing was printed).
        let exported = run(&["ledger", "export", "--store", &store]);
        assert_eq!(exported.code, 0, "{}", exported.transcript());
        let completed: std::collections::BTreeSet<String> = exported
            .stdout
            .lines()
            .filter_map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["execution_id"].as_str().map(str::to_owned)
            })
            .collect();
        assert!(!completed.is_empty(), "{format}: {}", out.stderr);
        assert!(
            completed.is_subset(&named),
            "{format}: completed {completed:?}, named {named:?}\n{}",
            out.stderr
        );
    }
}

/// A setting refused is refused before the store is opened: no SQLite file is created by a
/// command that then fails on a warning window that is no number of days.
#[test]
fn a_refused_setting_creates_no_store() {
    let temp = tempfile::tempdir().unwrap();
    let store = sqlite_store(&temp);
    let out = crate::common::run_with_env(
        &repo_root(),
        &execute_args(&store, "never", README_SIGNALS),
        b"",
        &[("PARMANA_EXPIRY_WARNING_DAYS", "abc")],
    );
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(out.stderr.contains("cli.invalid_config"), "{}", out.stderr);
    assert!(!temp.path().join("replay.sqlite3").exists());
}
