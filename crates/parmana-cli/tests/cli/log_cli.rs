//! `parmana log` and `verify --proof` as an auditor runs them: a trust root that names a log, signed checkpoints, offline proofs, consistency, a store rewritten wholesale caught by an older checkpoint, and tampered proofs refused.

use std::path::Path;

use crate::common::{
    CHECKPOINT_WITH_KEY, LOG_ORIGIN as ORIGIN, LOG_STORE as STORE, LostStdout, NOW, Run,
    checkpoint_logged as checkpoint, error_code as code, execute_logged as execute, execute_vip,
    fixture_rotate_to_2031, rotate_with_log, run_in, run_with_lost_stdout, temp_repo,
};

/// Rotates the fixture chain to a version naming the log (see [`rotate_with_log`]), with the
/// fixture's attestation key and the extra flags `extra`; the rotation must succeed.
fn name_the_log(dir: &Path, extra: &[&str]) {
    let out = rotate_with_log(dir, "trust/keys/attestation.pub", extra);
    assert_eq!(out.code, 0, "{}", out.transcript());
}

fn run(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, args, b"")
}

fn prove(dir: &Path, id: &str, checkpoint: &str) -> Run {
    let out = format!("{id}.tlog-proof");
    run(
        dir,
        &[
            "log",
            "prove",
            id,
            "--checkpoint",
            checkpoint,
            "--out",
            &out,
            "--force",
            "--store",
            STORE,
        ],
    )
}

fn verify(dir: &Path, attestation: &str, proof: &str) -> Run {
    run(
        dir,
        &["verify", attestation, "--proof", proof, "--now", NOW],
    )
}

/// `verify --proof` refused the proof with the library's `refusal`: one code for every failed
/// verification (`cli.verification_failed`, exit 7), the refusal named in its message.
pub(crate) fn assert_unproven(run: &Run, refusal: &str) {
    assert_eq!(
        (run.code, code(run)),
        (7, "cli.verification_failed"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains(&format!("not proven in the log: [{refusal}]")),
        "{}",
        run.transcript()
    );
}

#[test]
fn an_auditor_checks_an_attestation_in_the_log_offline() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    for id in ["log-0001", "log-0002", "log-0003"] {
        execute(d, id);
    }
    checkpoint(d, "checkpoint.txt");
    let text = std::fs::read_to_string(d.join("checkpoint.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], ORIGIN, "{text}");
    // Three execution records and the marks record of the first claim under version 3.
    assert_eq!(lines[1], "4", "{text}");
    assert!(
        lines[4].starts_with(&format!("\u{2014} {ORIGIN} ")),
        "{text}"
    );
    // `ledger verify` recomputes the same root from the records, and checks the checkpoint
    // `log checkpoint --key` stored.
    let ledger = run(d, &["ledger", "verify", "--store", STORE]);
    assert!(
        ledger.stdout.trim_end().ends_with(&format!(
            "log root {}, 1 stored checkpoint checked",
            lines[2]
        )),
        "{}",
        ledger.stdout
    );

    let proved = prove(d, "log-0002", "checkpoint.txt");
    assert_eq!(proved.code, 0, "{}", proved.transcript());
    let proof = std::fs::read_to_string(d.join("log-0002.tlog-proof")).unwrap();
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    assert!(proof.ends_with(&text), "the checkpoint is carried verbatim");

    let verified = verify(d, "log-0002.json", "log-0002.tlog-proof");
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    assert!(
        verified.stdout.contains(&format!(
            "log: included as entry 2 of the checkpoint of size 4 of {ORIGIN}"
        )),
        "{}",
        verified.stdout
    );

    // Another attestation with this proof, or this one with a tampered proof, is refused.
    let other = verify(d, "log-0003.json", "log-0002.tlog-proof");
    assert_unproven(&other, "runtime.proof_entry_mismatch");
    // The verdict is not valid (every other check passed).
    assert!(
        other.stdout.contains(
            "NOT VALID: all 7 checks passed, but the attestation is not proven in the log \
                 (runtime.proof_entry_mismatch)"
        ) && !other.stdout.contains("valid: all"),
        "{}",
        other.transcript()
    );
    let json = run(
        d,
        &[
            "--format",
            "json",
            "verify",
            "log-0003.json",
            "--proof",
            "log-0002.tlog-proof",
            "--now",
            NOW,
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(
        report["log"]["code"], "runtime.proof_entry_mismatch",
        "{report}"
    );
    assert_eq!(json.code, 7, "{}", json.transcript());
    // A character of the checkpoint's signature itself (past the key ID's first six base64
    // characters), changed to another base64 character: the log's key, a bad signature.
    let signature_at = proof.rfind(' ').unwrap() + 1 + 20;
    let mut forged = proof.clone().into_bytes();
    forged[signature_at] = if forged[signature_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(d.join("forged.tlog-proof"), forged).unwrap();
    let refused = verify(d, "log-0002.json", "forged.tlog-proof");
    assert_unproven(&refused, "trust.note_bad_signature");

    // An execution after the checkpoint is not in it; a newer checkpoint proves it.
    execute(d, "log-0004");
    let later = prove(d, "log-0004", "checkpoint.txt");
    assert_eq!(
        (later.code, code(&later)),
        (3, "runtime.not_in_log"),
        "{}",
        later.transcript()
    );
    checkpoint(d, "checkpoint-2.txt");
    assert_eq!(prove(d, "log-0004", "checkpoint-2.txt").code, 0);

    // The log extends the first checkpoint.
    let consistent = run(
        d,
        &["log", "consistency", "checkpoint.txt", "--store", STORE],
    );
    assert_eq!(consistent.code, 0, "{}", consistent.transcript());
    assert!(
        consistent
            .stdout
            .starts_with("consistent: the log of size 5 extends the checkpoint of size 4"),
        "{}",
        consistent.stdout
    );
}

/// A store rewritten wholesale (replaced by one with other executions, its chain intact) is
/// caught by anyone holding an earlier checkpoint.
#[test]
fn a_store_rewritten_wholesale_is_caught_by_an_older_checkpoint() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    execute(d, "honest-1");
    execute(d, "honest-2");
    checkpoint(d, "seen.txt");
    std::fs::remove_file(d.join("store.sqlite")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(d.join(format!("store.sqlite{suffix}")));
    }
    execute(d, "forged-1");
    execute(d, "forged-2");
    execute(d, "forged-3");
    let intact = run(d, &["ledger", "verify", "--store", STORE]);
    assert_eq!(
        intact.code,
        0,
        "the rewritten chain is intact: {}",
        intact.transcript()
    );
    let caught = run(d, &["log", "consistency", "seen.txt", "--store", STORE]);
    assert_eq!(
        (caught.code, code(&caught)),
        (4, "trust.tlog_inconsistent"),
        "{}",
        caught.transcript()
    );
    let prove = prove(d, "forged-1", "seen.txt");
    assert_eq!(
        code(&prove),
        "trust.tlog_inconsistent",
        "{}",
        prove.transcript()
    );
    // A checkpoint file past the largest signed note is refused naming that limit, unread.
    let limit = parmana_runtime::trust::MAX_NOTE_BYTES;
    std::fs::write(d.join("huge.txt"), vec![b'a'; limit + 1]).unwrap();
    let huge = run(d, &["log", "consistency", "huge.txt", "--store", STORE]);
    assert_eq!(
        (huge.code, code(&huge)),
        (4, "trust.note_malformed"),
        "{}",
        huge.transcript()
    );
    assert!(
        huge.stderr.contains(&format!(
            "a checkpoint is a signed note, at most {limit} bytes"
        )),
        "{}",
        huge.stderr
    );
}

#[test]
fn only_a_log_key_of_a_trust_root_with_a_log_signs_checkpoints() {
    let repo = temp_repo();
    let d = repo.root();
    execute(d, "no-log-1");
    let no_log = run(d, &CHECKPOINT_WITH_KEY);
    assert_eq!(
        (no_log.code, code(&no_log)),
        (4, "runtime.no_transparency_log"),
        "{}",
        no_log.transcript()
    );
    name_the_log(d, &[]);
    let wrong_key = run(
        d,
        &[
            "log",
            "checkpoint",
            "--key",
            "trust/keys/attestation.pem",
            "--store",
            STORE,
            "--now",
            NOW,
        ],
    );
    assert_eq!(
        (wrong_key.code, code(&wrong_key)),
        (4, "trust.key_lacks_role"),
        "{}",
        wrong_key.transcript()
    );
}

/// A trust root that requires a witness: proofs verify only against cosigned checkpoints; the
/// witness cosigns checkpoints that extend the last one it cosigned and refuses a store rewritten
/// wholesale, leaving its state as it was.
#[test]
fn a_witness_cosigns_consistent_checkpoints_and_catches_a_rewrite() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(
        d,
        &["--witness", "witness.example/w1=trust/keys/policy.pub"],
    );
    // (`--new-state` until the witness has one, as an operator starts a new witness.)
    let witness = |checkpoint: &str| {
        let mut args = vec![
            "log",
            "witness",
            checkpoint,
            "--key",
            "trust/keys/policy.pem",
            "--name",
            "witness.example/w1",
            "--state",
            "witness-state.txt",
            "--store",
            STORE,
            "--now",
            NOW,
        ];
        if !d.join("witness-state.txt").exists() {
            args.push("--new-state");
        }
        run(d, &args)
    };
    execute(d, "w-0001");
    execute(d, "w-0002");
    checkpoint(d, "cp1.txt");
    assert_eq!(prove(d, "w-0001", "cp1.txt").code, 0);
    let unwitnessed = verify(d, "w-0001.json", "w-0001.tlog-proof");
    assert_unproven(&unwitnessed, "trust.threshold_not_met");

    let cosigned = witness("cp1.txt");
    assert_eq!(cosigned.code, 0, "{}", cosigned.transcript());
    assert!(
        cosigned.stdout.contains("\u{2014} witness.example/w1 "),
        "{}",
        cosigned.stdout
    );
    std::fs::write(d.join("cp1-cosigned.txt"), &cosigned.stdout).unwrap();
    assert_eq!(prove(d, "w-0001", "cp1-cosigned.txt").code, 0);
    let witnessed = verify(d, "w-0001.json", "w-0001.tlog-proof");
    assert_eq!(witnessed.code, 0, "{}", witnessed.transcript());

    execute(d, "w-0003");
    checkpoint(d, "cp2.txt");
    let extended = witness("cp2.txt");
    assert_eq!(extended.code, 0, "{}", extended.transcript());
    let state = std::fs::read_to_string(d.join("witness-state.txt")).unwrap();

    // The store replaced wholesale, its own chain intact, and a checkpoint of it signed by the log.
    std::fs::remove_file(d.join("store.sqlite")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(d.join(format!("store.sqlite{suffix}")));
    }
    for id in ["f-0001", "f-0002", "f-0003", "f-0004"] {
        execute(d, id);
    }
    checkpoint(d, "forged.txt");
    let caught = witness("forged.txt");
    assert_eq!(
        (caught.code, code(&caught)),
        (4, "trust.tlog_inconsistent"),
        "{}",
        caught.transcript()
    );
    assert_eq!(
        std::fs::read_to_string(d.join("witness-state.txt")).unwrap(),
        state
    );
}

/// `parmana log keys` prints the log's note verifier keys and the witnesses' cosigner keys in
/// the forms the C2SP tools read, and refuses a trust root that names no log.
#[test]
fn log_keys_prints_the_verifier_and_cosigner_keys() {
    let repo = temp_repo();
    let d = repo.root();
    let none = run(d, &["log", "keys"]);
    assert_eq!(
        (none.code, code(&none)),
        (4, "runtime.no_transparency_log"),
        "{}",
        none.transcript()
    );
    // Reading the stored checkpoint of a trust root that names no log says so too (not that
    // no key signed one yet: none could).
    let none = run(d, &["log", "checkpoint", "--store", "memory"]);
    assert_eq!(
        (none.code, code(&none)),
        (4, "runtime.no_transparency_log"),
        "{}",
        none.transcript()
    );
    name_the_log(
        d,
        &["--witness", "witness.example/w1=trust/keys/policy.pub"],
    );
    let human = run(d, &["log", "keys"]);
    assert_eq!(human.code, 0, "{}", human.transcript());
    insta::assert_snapshot!("log_keys", human.stdout);
    let json = run(d, &["--format", "json", "log", "keys"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    insta::assert_snapshot!("log_keys_json", json.stdout);
}

/// `parmana execute` with `--log-key ID` (the argument list of [`execute`] and the key).
fn execute_with_log_key(dir: &Path, id: &str, key: &str) -> Run {
    run(
        dir,
        &execute_vip(&[
            "--execution-id",
            id,
            "--log-key",
            key,
            "--store",
            STORE,
            "--now",
            NOW,
        ]),
    )
}

#[test]
fn execute_with_a_log_key_stores_a_checkpoint_that_proves_it() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    // A log key without the log role is refused before the id is consumed.
    let refused = execute_with_log_key(d, "seq-0001", "trust/keys/root-2.pem");
    assert_eq!(
        (refused.code, code(&refused)),
        (4, "trust.key_lacks_role"),
        "{}",
        refused.transcript()
    );
    let none = run(d, &["log", "checkpoint", "--store", STORE]);
    assert_eq!(
        (none.code, code(&none)),
        (3, "runtime.no_checkpoint"),
        "{}",
        none.transcript()
    );

    let out = execute_with_log_key(d, "seq-0001", "trust/keys/root-1.pem");
    assert_eq!(out.code, 0, "{}", out.transcript());
    std::fs::write(d.join("seq-0001.json"), &out.stdout).unwrap();
    // The stored checkpoint covers the marks record of the first claim and the execution.
    let stored = run(d, &["log", "checkpoint", "--store", STORE]);
    assert_eq!(stored.code, 0, "{}", stored.transcript());
    assert_eq!(stored.stdout.lines().nth(1), Some("2"), "{}", stored.stdout);
    let proved = run(
        d,
        &[
            "log",
            "prove",
            "seq-0001",
            "--out",
            "seq-0001.tlog-proof",
            "--store",
            STORE,
        ],
    );
    assert_eq!(proved.code, 0, "{}", proved.transcript());
    // `--out` creates its file: a slip onto a key (or any file) replaces nothing.
    let key = std::fs::read(d.join("trust/keys/root-1.pem")).unwrap();
    for (out, force) in [
        ("trust/keys/root-1.pem", ""),
        ("trust/keys/root-1.pem", "--force"),
        ("seq-0001.json", "--force"),
        ("seq-0001.tlog-proof", ""),
    ] {
        let args = [
            "log", "prove", "seq-0001", "--out", out, "--store", STORE, force,
        ];
        let refused = run(d, &args[..args.len() - usize::from(force.is_empty())]);
        assert_eq!(refused.code, 1, "{}", refused.transcript());
        assert!(
            refused.stderr.starts_with("error[cli.output_exists]"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(std::fs::read(d.join("trust/keys/root-1.pem")).unwrap(), key);
    let verified = verify(d, "seq-0001.json", "seq-0001.tlog-proof");
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    assert!(
        verified
            .stdout
            .contains("included as entry 1 of the checkpoint of size 2"),
        "{}",
        verified.stdout
    );

    let idle = run(d, &["log", "sequence", "--store", STORE]);
    assert_eq!(idle.code, 0, "{}", idle.transcript());
    assert_eq!(idle.stdout, "nothing to integrate; log size 2\n");
    let ledger = run(d, &["ledger", "verify", "--store", STORE]);
    assert_eq!(ledger.code, 0, "{}", ledger.transcript());
    assert!(
        ledger.stdout.contains(", 1 stored checkpoint checked"),
        "{}",
        ledger.stdout
    );
}

/// A checkpoint signed (and stored), whose printing finds no reader (`parmana log checkpoint
/// --key … | publish` with the publisher gone), fails saying it was signed, and stored unless
/// one of its size was already — never exit 0 for a change of state nobody received — and is
/// read back by `log checkpoint`.
#[test]
fn a_checkpoint_signed_for_no_reader_fails_saying_it_was_stored() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    execute(d, "lost-0001");
    let lost = run_with_lost_stdout(d, &CHECKPOINT_WITH_KEY, LostStdout::ClosedPipe);
    assert_eq!(
        (lost.code, code(&lost)),
        (1, "io.error"),
        "{}",
        lost.transcript()
    );
    assert!(
        lost.stderr
            .contains("the checkpoint was signed, and stored unless one of its size was already"),
        "{}",
        lost.transcript()
    );
    let stored = run(d, &["log", "checkpoint", "--store", STORE]);
    assert_eq!(stored.code, 0, "{}", stored.transcript());
    assert_eq!(stored.stdout.lines().nth(1), Some("2"), "{}", stored.stdout);
}

/// Two witnesses required: the second one-off witness cosigns what the first printed, and keeps
/// the first's cosignature (a listed witness's that verifies) beside its own — so the checkpoint
/// reaches the threshold — while a line by a key nobody listed is dropped.
#[test]
fn witnesses_in_turn_reach_a_threshold_of_two() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(
        d,
        &[
            "--witness",
            "witness.example/w1=trust/keys/policy.pub",
            "--witness",
            "witness.example/w2=trust/keys/release.pub",
            "--witness-threshold",
            "2",
        ],
    );
    // A rotation naming the witnesses again without their threshold keeps 2 (it fell to 1
    // unsaid); naming one of them only is refused; a lower threshold given is said.
    let witness_threshold = || {
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("trust/trust-root.json")).unwrap())
                .unwrap();
        document["signed"]["log"]["witness_threshold"].clone()
    };
    let w1 = ["--witness", "witness.example/w1=trust/keys/policy.pub"];
    let w2 = ["--witness", "witness.example/w2=trust/keys/release.pub"];
    let again = rotate_with_log(d, "trust/keys/attestation.pub", &[&w1[..], &w2].concat());
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(witness_threshold(), 2);
    let one = rotate_with_log(d, "trust/keys/attestation.pub", &w1);
    assert_eq!(
        (one.code, code(&one)),
        (2, "cli.usage"),
        "{}",
        one.transcript()
    );
    assert!(
        one.stderr.contains("give --witness-threshold"),
        "{}",
        one.transcript()
    );
    let lowered = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &[&w1[..], &w2, &["--witness-threshold", "1"]].concat(),
    );
    assert_eq!(lowered.code, 0, "{}", lowered.transcript());
    assert!(
        lowered
            .stderr
            .contains("note: the witness threshold goes down from 2"),
        "{}",
        lowered.transcript()
    );
    assert_eq!(witness_threshold(), 1);
    let back = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &[&w1[..], &w2, &["--witness-threshold", "2"]].concat(),
    );
    assert_eq!(back.code, 0, "{}", back.transcript());
    // Witnesses carried forward (none named) with a lower threshold: said too.
    let carried = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &["--witness-threshold", "1"],
    );
    assert_eq!(carried.code, 0, "{}", carried.transcript());
    assert!(
        carried
            .stderr
            .contains("note: the witness threshold goes down from 2"),
        "{}",
        carried.transcript()
    );
    let back = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &["--witness-threshold", "2"],
    );
    assert_eq!(back.code, 0, "{}", back.transcript());
    let witness = |checkpoint: &str, key: &str, name: &str, state: &str| {
        run(
            d,
            &[
                "log",
                "witness",
                checkpoint,
                "--key",
                key,
                "--name",
                name,
                "--state",
                state,
                "--store",
                STORE,
                "--now",
                NOW,
                "--new-state",
            ],
        )
    };
    execute(d, "t-0001");
    checkpoint(d, "cp.txt");
    let first = witness(
        "cp.txt",
        "trust/keys/policy.pem",
        "witness.example/w1",
        "w1.txt",
    );
    assert_eq!(first.code, 0, "{}", first.transcript());
    // A line by a key nobody listed, added on the way.
    let padded = format!(
        "{}\u{2014} stranger.example/x {}\n",
        first.stdout,
        "A".repeat(96)
    );
    std::fs::write(d.join("cp-w1.txt"), padded).unwrap();
    let second = witness(
        "cp-w1.txt",
        "trust/keys/release.pem",
        "witness.example/w2",
        "w2.txt",
    );
    assert_eq!(second.code, 0, "{}", second.transcript());
    for witness in ["witness.example/w1", "witness.example/w2"] {
        assert!(
            second.stdout.contains(&format!("\u{2014} {witness} ")),
            "{witness}: {}",
            second.stdout
        );
    }
    assert!(
        !second.stdout.contains("stranger.example"),
        "{}",
        second.stdout
    );
    std::fs::write(d.join("cp-both.txt"), &second.stdout).unwrap();
    assert_eq!(prove(d, "t-0001", "cp-both.txt").code, 0);
    let verified = verify(d, "t-0001.json", "t-0001.tlog-proof");
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    // One witness's alone does not reach it.
    std::fs::write(d.join("cp-one.txt"), &first.stdout).unwrap();
    assert_eq!(prove(d, "t-0001", "cp-one.txt").code, 0);
    let short = verify(d, "t-0001.json", "t-0001.tlog-proof");
    assert_unproven(&short, "trust.threshold_not_met");
}

/// A log whose role needs two signatures (`--log-threshold 2`): one log key is refused before
/// the execution id is consumed (`trust.threshold_not_met`); two — as flags, as the variable (a
/// path list) or as a list in `parmana.toml` — sign every checkpoint, which carries both
/// signatures, and `verify --proof` accepts the proof against it.
#[test]
fn a_log_of_two_keys_is_signed_by_both_from_flags_the_variable_or_the_file() {
    use crate::common::run_with_env;
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(
        d,
        &["--log-key", "trust/keys/root-2.pub", "--log-threshold", "2"],
    );
    let executing = |id: &'static str, extra: &[&'static str], env: &[(&str, &str)]| {
        let mut rest = vec!["--execution-id", id, "--store", STORE, "--now", NOW];
        rest.extend_from_slice(extra);
        run_with_env(d, &execute_vip(&rest), b"", env)
    };
    let one = executing("two-0", &["--log-key", "trust/keys/root-1.pem"], &[]);
    assert_eq!(
        (one.code, code(&one)),
        (4, "trust.threshold_not_met"),
        "{}",
        one.transcript()
    );
    // Refused before the id was claimed: it was never used.
    let unused = run(d, &["show", "two-0", "--store", STORE]);
    assert_eq!(
        (unused.code, code(&unused)),
        (3, "cli.execution_unknown"),
        "{}",
        unused.transcript()
    );
    let both = [
        "--log-key",
        "trust/keys/root-1.pem",
        "--log-key",
        "trust/keys/root-2.pem",
    ];
    let paths = std::env::join_paths(["trust/keys/root-1.pem", "trust/keys/root-2.pem"]).unwrap();
    let paths = paths.to_str().unwrap();
    let from_flags = executing("two-1", &both, &[]);
    let from_variable = executing("two-2", &[], &[("PARMANA_LOG_KEY", paths)]);
    let mut config = std::fs::read_to_string(d.join("parmana.toml")).unwrap();
    config
        .push_str("\n[server]\nlog_key = [\"trust/keys/root-1.pem\", \"trust/keys/root-2.pem\"]\n");
    std::fs::write(d.join("parmana.toml"), config).unwrap();
    let from_file = executing("two-3", &[], &[]);
    for out in [&from_flags, &from_variable, &from_file] {
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert!(!out.stderr.contains("warning"), "{}", out.transcript());
    }
    std::fs::write(d.join("two-3.json"), &from_file.stdout).unwrap();
    let stored = run(d, &["log", "checkpoint", "--store", STORE]);
    assert_eq!(stored.code, 0, "{}", stored.transcript());
    let signatures = stored
        .stdout
        .matches(&format!("\u{2014} {ORIGIN} "))
        .count();
    assert_eq!(signatures, 2, "{}", stored.stdout);
    std::fs::write(d.join("checkpoint.txt"), &stored.stdout).unwrap();
    let proved = prove(d, "two-3", "checkpoint.txt");
    assert_eq!(proved.code, 0, "{}", proved.transcript());
    let verified = verify(d, "two-3.json", "two-3.tlog-proof");
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    // Signing goes on after the release manifest expires: its signature is what bounds the marks
    // records, not its expiry (a manifest expiring in 2030, a checkpoint signed in 2031).
    let released = run(d, &crate::common::release_sign("2", &["--force"]));
    assert_eq!(released.code, 0, "{}", released.transcript());
    let after_expiry = run(
        d,
        &[
            "log",
            "checkpoint",
            "--key",
            "trust/keys/root-1.pem",
            "--key",
            "trust/keys/root-2.pem",
            "--store",
            STORE,
            "--now",
            "2031-01-01T00:00:00Z",
        ],
    );
    assert_eq!(after_expiry.code, 0, "{}", after_expiry.transcript());
}

/// The log's commands warn, as the others do, when the trust root they sign or read under expires
/// within the window (`--expiry-warning-days`, default 30): from then on no checkpoint is signed.
#[test]
fn log_commands_warn_before_the_trust_root_expires() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    execute(d, "log-exp-1");
    // The version naming the log expires at 2036-01-01T00:00:00Z.
    let soon = "2035-12-20T00:00:00Z";
    let warning = "warning[cli.expires_soon]: the trust root (version 3) expires at \
                   2036-01-01T00:00:00Z, in 12 days (warning window: 30 days)\n";
    let key = ["--key", "trust/keys/root-1.pem"];
    for (args, warned) in [
        (&["log", "sequence", "--now", soon][..], false),
        (&["log", "sequence", key[0], key[1], "--now", soon], true),
        (&["log", "checkpoint", key[0], key[1], "--now", soon], true),
        (&["log", "checkpoint", "--now", soon], true),
        (
            &[
                "log",
                "checkpoint",
                key[0],
                key[1],
                "--now",
                soon,
                "--expiry-warning-days",
                "5",
            ],
            false,
        ),
    ] {
        let mut args = args.to_vec();
        args.extend(["--store", STORE]);
        let out = run(d, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.transcript());
        // (A sequence run without a key reads no trust root: nothing to warn about.)
        let expected = if warned { warning } else { "" };
        assert_eq!(out.stderr, expected, "{args:?}");
    }
}

/// The `log` role of the newest trust root: its witnesses' names and its witness threshold
/// (none and 0 when it lists none).
fn witnesses_in_force(d: &Path) -> (Vec<String>, u64) {
    let text = std::fs::read_to_string(d.join("trust/trust-root.json")).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let log = &document["signed"]["log"];
    assert_eq!(log["origin"], ORIGIN, "{text}");
    let names = log["witnesses"]
        .as_array()
        .map(|witnesses| {
            witnesses
                .iter()
                .map(|witness| witness["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (names, log["witness_threshold"].as_u64().unwrap_or(0))
}

/// A rotation that names the same log again (a log key rotated, say) without --witness carries
/// the witnesses of the version in force forward, and says so; --witness-threshold alone applies
/// to them; --drop-witnesses removes them, and with --witness is a usage error that writes
/// nothing. (Such a rotation once dropped the witnesses without a word.)
#[test]
fn a_rotation_of_the_same_log_keeps_its_witnesses_unless_dropped() {
    let repo = temp_repo();
    let d = repo.root();
    let both = ["witness.example/w1", "witness.example/w2"].map(str::to_owned);
    name_the_log(
        d,
        &[
            "--witness",
            "witness.example/w1=trust/keys/policy.pub",
            "--witness",
            "witness.example/w2=trust/keys/release.pub",
            "--witness-threshold",
            "2",
        ],
    );
    assert_eq!(witnesses_in_force(d), (both.to_vec(), 2));

    let kept = rotate_with_log(d, "trust/keys/attestation.pub", &[]);
    assert_eq!(kept.code, 0, "{}", kept.transcript());
    assert!(
        kept.stderr.contains(&format!(
            "note: the witnesses of log {ORIGIN} in trust root version 3 (2 of them, threshold 2) \
             are carried forward"
        )),
        "{}",
        kept.transcript()
    );
    assert_eq!(witnesses_in_force(d), (both.to_vec(), 2));

    let lowered = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &["--witness-threshold", "1"],
    );
    assert_eq!(lowered.code, 0, "{}", lowered.transcript());
    assert_eq!(witnesses_in_force(d), (both.to_vec(), 1));

    let before = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    let conflicting = rotate_with_log(
        d,
        "trust/keys/attestation.pub",
        &[
            "--drop-witnesses",
            "--witness",
            "witness.example/w1=trust/keys/policy.pub",
        ],
    );
    assert_eq!(conflicting.code, 2, "{}", conflicting.transcript());
    assert!(
        conflicting
            .stderr
            .contains("'--drop-witnesses' cannot be used with"),
        "{}",
        conflicting.transcript()
    );
    assert_eq!(
        std::fs::read(d.join("trust/trust-root.json")).unwrap(),
        before
    );

    let dropped = rotate_with_log(d, "trust/keys/attestation.pub", &["--drop-witnesses"]);
    assert_eq!(dropped.code, 0, "{}", dropped.transcript());
    assert!(
        !dropped.stderr.contains("carried forward"),
        "{}",
        dropped.transcript()
    );
    assert_eq!(witnesses_in_force(d), (Vec::new(), 0));
}

/// The log's flags that only qualify a log need --log-origin: without it, a usage error that
/// names it, and nothing written (they would otherwise be ignored, or apply to the role carried
/// forward without a word).
#[test]
fn the_log_qualifiers_need_a_log_origin() {
    let repo = temp_repo();
    let d = repo.root();
    name_the_log(d, &[]);
    let before = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    for flags in [
        &["--log-threshold", "2"][..],
        &["--witness-threshold", "1"],
        &["--witness", "witness.example/w1=trust/keys/policy.pub"],
        &["--log-key", "trust/keys/root-1.pub"],
        &["--drop-witnesses"],
    ] {
        let out = run(d, &fixture_rotate_to_2031("trust/keys/root-2.pem", flags));
        assert_eq!(out.code, 2, "{flags:?}: {}", out.transcript());
        assert!(
            out.stderr
                .contains("the following required arguments were not provided")
                && out.stderr.contains("--log-origin"),
            "{flags:?}: {}",
            out.transcript()
        );
        assert_eq!(
            std::fs::read(d.join("trust/trust-root.json")).unwrap(),
            before,
            "{flags:?}"
        );
    }
}
