//! `parmana trust rotate --revoke KEY=CHECKPOINT` and what `verify` makes of it: attestations of the revoked key logged before the revocation's checkpoint stay valid with `--proof`, later ones and any without a proof are refused; the revocation is carried into later versions and validates against the trust-root schema; the log still signs checkpoints over entries of the revoked key (its entry check leaves revocations to the verifier); malformed revocations are refused without writing anything.

use std::path::Path;

use parmana_runtime::trust::{LocalSigningKey, write_public_key_file};
use serde_json::Value;

use crate::common::{
    LOG_STORE as STORE, NOW, Run, checkpoint_logged as checkpoint, error_code as code,
    execute_logged as execute, fixture_rotate, rotate_with_log, run_in, temp_repo,
};

const REASON: &str = "attestation key compromised";

fn run(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, args, b"")
}

fn prove(dir: &Path, id: &str, checkpoint: &str, out: &str) {
    let proved = run(
        dir,
        &[
            "log",
            "prove",
            id,
            "--checkpoint",
            checkpoint,
            "--out",
            out,
            "--store",
            STORE,
        ],
    );
    assert_eq!(proved.code, 0, "{}", proved.transcript());
}

fn verify(dir: &Path, attestation: &str, proof: Option<&str>) -> Run {
    let mut args = vec!["verify", attestation, "--now", NOW];
    if let Some(proof) = proof {
        args.extend(["--proof", proof]);
    }
    run(dir, &args)
}

/// The log under version 3: executions 1 and 2, the checkpoint `revoke.txt` (the revocation's),
/// execution 3, the checkpoint `later.txt`, execution 4 (in no checkpoint yet); proofs of 1 and 3
/// against `later.txt` and of 2 against `revoke.txt`. Then version 4 rotates the attestation key out and revokes it as of
/// `revoke.txt`. Returns the TEST-ONLY key file of the new attestation key.
fn revoked_setup(d: &Path) -> &'static str {
    let out = rotate_with_log(d, "trust/keys/attestation.pub", &[]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    for id in ["rev-0001", "rev-0002"] {
        execute(d, id);
    }
    checkpoint(d, "revoke.txt");
    execute(d, "rev-0003");
    checkpoint(d, "later.txt");
    execute(d, "rev-0004");
    prove(d, "rev-0001", "later.txt", "rev-0001.tlog-proof");
    prove(d, "rev-0002", "revoke.txt", "rev-0002.tlog-proof");
    prove(d, "rev-0003", "later.txt", "rev-0003.tlog-proof");
    let new_key = "trust/keys/attestation-2.pub";
    write_public_key_file(
        &LocalSigningKey::from_seed(&[77; 32]).public_key(),
        &d.join(new_key),
    )
    .unwrap();
    let revoked = rotate_with_log(
        d,
        new_key,
        &[
            "--revoke",
            "trust/keys/attestation.pub=revoke.txt",
            "--revoke-reason",
            REASON,
        ],
    );
    assert_eq!(revoked.code, 0, "{}", revoked.transcript());
    new_key
}

/// One verification: the attestation, its proof, and the expected exit code and `revocation`
/// row (`None`: the attestation is valid and the row reads `ok`).
struct Case {
    attestation: &'static str,
    proof: Option<&'static str>,
    refused_with: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        attestation: "rev-0001.json",
        proof: Some("rev-0001.tlog-proof"),
        refused_with: None,
    },
    Case {
        attestation: "rev-0002.json",
        proof: Some("rev-0002.tlog-proof"),
        refused_with: None,
    },
    Case {
        attestation: "rev-0003.json",
        proof: Some("rev-0003.tlog-proof"),
        refused_with: Some("trust.key_revoked"),
    },
    Case {
        attestation: "rev-0001.json",
        proof: None,
        refused_with: Some("trust.key_revoked_unproven"),
    },
    Case {
        attestation: "rev-0003.json",
        proof: None,
        refused_with: Some("trust.key_revoked_unproven"),
    },
];

fn check(d: &Path, case: &Case) {
    let what = format!("{} with {:?}", case.attestation, case.proof);
    let out = verify(d, case.attestation, case.proof);
    let row = out
        .stdout
        .lines()
        .find(|line| line.starts_with("revocation "))
        .unwrap_or_else(|| panic!("{what}: no revocation row\n{}", out.transcript()));
    match case.refused_with {
        None => {
            assert_eq!(out.code, 0, "{what}: {}", out.transcript());
            assert!(row.contains(" ok "), "{what}: {row}");
        }
        Some(refusal) => {
            assert_eq!(
                (out.code, code(&out)),
                (7, "cli.verification_failed"),
                "{what}: {}",
                out.transcript()
            );
            assert!(
                row.contains(&format!("FAILED  [{refusal}]")),
                "{what}: {row}"
            );
        }
    }
}

#[test]
fn attestations_of_a_revoked_key_stand_only_when_logged_before_the_revocation() {
    let repo = temp_repo();
    let d = repo.root();
    let new_key = revoked_setup(d);
    let document: Value =
        serde_json::from_slice(&std::fs::read(d.join("trust/trust-root.json")).unwrap()).unwrap();
    let revocation = &document["signed"]["log"]["revocations"][0];
    assert_eq!(revocation["tree_size"], 3, "{document}");
    assert_eq!(revocation["reason"], REASON);
    let schema = crate::schema_cli::validator("trust-root.schema.json");
    let problems = crate::schema_cli::problems(&schema, &document);
    assert!(problems.is_empty(), "{problems}");

    for case in CASES {
        check(d, case);
    }
    // The log still signs a checkpoint over execution 4, which the revoked key signed after the
    // revocation's checkpoint: the log records what was signed, and the revocation is judged by
    // the verifier against the proven position (the log's entry check ignores revocations).
    checkpoint(d, "after.txt");
    prove(d, "rev-0004", "after.txt", "rev-0004.tlog-proof");
    check(
        d,
        &Case {
            attestation: "rev-0004.json",
            proof: Some("rev-0004.tlog-proof"),
            refused_with: Some("trust.key_revoked"),
        },
    );
    insta::assert_snapshot!(
        "verify_revoked_key_logged_before",
        verify(d, "rev-0001.json", Some("rev-0001.tlog-proof")).transcript()
    );
    insta::assert_snapshot!(
        "verify_revoked_key_logged_after",
        verify(d, "rev-0003.json", Some("rev-0003.tlog-proof")).transcript()
    );
    // JSON Lines carry no proofs: every attestation of the revoked key is refused, and --proof
    // is refused with them.
    let mut lines = std::fs::read(d.join("rev-0001.json")).unwrap();
    lines.extend(std::fs::read(d.join("rev-0003.json")).unwrap());
    std::fs::write(d.join("both.jsonl"), &lines).unwrap();
    let batch = verify(d, "both.jsonl", None);
    assert_eq!(batch.code, 7, "{}", batch.transcript());
    assert_eq!(
        batch.stdout.matches("NOT VALID").count(),
        2,
        "{}",
        batch.stdout
    );
    let with_proof = verify(d, "both.jsonl", Some("rev-0001.tlog-proof"));
    assert_eq!(
        (with_proof.code, code(&with_proof)),
        (2, "cli.usage"),
        "{}",
        with_proof.transcript()
    );

    // A later rotation may not give the attestation role back to the revoked key — not even
    // one naming another log, which carries no revocation: the revocation of version 4 stays in
    // force, and the chain with such a version is refused before it is written.
    let before = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    let back = run(
        d,
        &fixture_rotate(
            "trust/keys/root-2.pem",
            &[
                "--attestation-key",
                "trust/keys/attestation.pub",
                "--log-origin",
                "other.example/log",
                "--log-key",
                "trust/keys/root-1.pub",
                "--expires",
                "2036-01-01T00:00:00Z",
                "--now",
                NOW,
            ],
        ),
    );
    assert_eq!(code(&back), "trust.malformed", "{}", back.transcript());
    assert_ne!(back.code, 0);
    assert_eq!(
        std::fs::read(d.join("trust/trust-root.json")).unwrap(),
        before
    );
    // A later rotation without --revoke carries the revocation; the verdicts are unchanged.
    let carried = rotate_with_log(d, new_key, &[]);
    assert_eq!(carried.code, 0, "{}", carried.transcript());
    let document = std::fs::read_to_string(d.join("trust/trust-root.json")).unwrap();
    assert!(document.contains(REASON), "{document}");
    for case in CASES {
        check(d, case);
    }
}

/// A revocation reason one character too long.
const LONG_REASON: &str = concat!(
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
);

#[test]
fn malformed_revocations_are_refused_before_anything_is_written() {
    assert_eq!(LONG_REASON.len(), 257);
    let repo = temp_repo();
    let d = repo.root();
    let out = rotate_with_log(d, "trust/keys/attestation.pub", &[]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    execute(d, "rev-0001");
    checkpoint(d, "checkpoint.txt");
    // The size line changed after signing.
    let signed = std::fs::read_to_string(d.join("checkpoint.txt")).unwrap();
    let mut lines: Vec<String> = signed.split('\n').map(str::to_owned).collect();
    lines[1] = format!("{}0", lines[1]);
    std::fs::write(d.join("tampered.txt"), lines.join("\n")).unwrap();
    write_public_key_file(
        &LocalSigningKey::from_seed(&[77; 32]).public_key(),
        &d.join("new.pub"),
    )
    .unwrap();
    let before = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    let revoke = |spec: &'static str| -> Vec<&'static str> {
        vec!["--revoke", spec, "--revoke-reason", REASON]
    };
    let no_log = run(
        d,
        &fixture_rotate(
            "trust/keys/root-2.pem",
            &[
                "--attestation-key",
                "new.pub",
                "--expires",
                "2036-01-01T00:00:00Z",
                "--now",
                NOW,
                "--drop-log",
                "--revoke",
                "trust/keys/attestation.pub=checkpoint.txt",
                "--revoke-reason",
                REASON,
            ],
        ),
    );
    assert_eq!(
        (no_log.code, code(&no_log)),
        (2, "cli.invalid_revocation"),
        "{}",
        no_log.transcript()
    );
    for (name, attestation, extra, expected) in [
        (
            "not KEY=CHECKPOINT",
            "new.pub",
            revoke("trust/keys/attestation.pub"),
            "cli.invalid_revocation",
        ),
        (
            "a tampered checkpoint",
            "new.pub",
            revoke("trust/keys/attestation.pub=tampered.txt"),
            "trust.note_bad_signature",
        ),
        (
            "the revoked key keeps the attestation role",
            "trust/keys/attestation.pub",
            revoke("trust/keys/attestation.pub=checkpoint.txt"),
            "trust.malformed",
        ),
        // Nor any other: its thief could sign policies, or cosign a forked checkpoint.
        (
            "the revoked key keeps a policy key",
            "new.pub",
            [
                revoke("trust/keys/attestation.pub=checkpoint.txt"),
                vec!["--policy-key", "trust/keys/attestation.pub"],
            ]
            .concat(),
            "trust.malformed",
        ),
        (
            "the revoked key becomes a witness",
            "new.pub",
            [
                revoke("trust/keys/attestation.pub=checkpoint.txt"),
                vec!["--witness", "witness.example/w1=trust/keys/attestation.pub"],
            ]
            .concat(),
            "trust.malformed",
        ),
        (
            "a key id that is not one",
            "new.pub",
            revoke("sha256:00=checkpoint.txt"),
            "trust.invalid_key_id",
        ),
        (
            "no reason",
            "new.pub",
            vec!["--revoke", "trust/keys/attestation.pub=checkpoint.txt"],
            "cli.usage",
        ),
        (
            "an empty reason",
            "new.pub",
            vec![
                "--revoke",
                "trust/keys/attestation.pub=checkpoint.txt",
                "--revoke-reason",
                "",
            ],
            "cli.invalid_revocation",
        ),
        (
            "a reason of 257 characters",
            "new.pub",
            vec![
                "--revoke",
                "trust/keys/attestation.pub=checkpoint.txt",
                "--revoke-reason",
                LONG_REASON,
            ],
            "cli.invalid_revocation",
        ),
        (
            "a reason with a control character",
            "new.pub",
            vec![
                "--revoke",
                "trust/keys/attestation.pub=checkpoint.txt",
                "--revoke-reason",
                "stolen\u{1b}[2J",
            ],
            "cli.invalid_revocation",
        ),
    ] {
        let out = rotate_with_log(d, attestation, &extra);
        assert_ne!(out.code, 0, "{name}: {}", out.transcript());
        if expected == "cli.usage" {
            assert_eq!(out.code, 2, "{name}: {}", out.transcript());
        } else {
            assert_eq!(code(&out), expected, "{name}: {}", out.transcript());
        }
        assert_eq!(
            std::fs::read(d.join("trust/trust-root.json")).unwrap(),
            before,
            "{name}: nothing written"
        );
    }
    // Revoking by key id works as by key file.
    let id = LocalSigningKey::read_pem_file(
        &crate::common::repo_root().join("trust/keys/attestation.pem"),
    )
    .unwrap()
    .key_id()
    .to_string();
    let spec = format!("{id}=checkpoint.txt");
    let by_id = rotate_with_log(
        d,
        "new.pub",
        &["--revoke", &spec, "--revoke-reason", REASON],
    );
    assert_eq!(by_id.code, 0, "{}", by_id.transcript());
    let document = std::fs::read_to_string(d.join("trust/trust-root.json")).unwrap();
    assert!(document.contains(&id), "{document}");
}

/// A rotation that names no log carries the `log` role of the version in force forward
/// unchanged — its keys, witnesses and revocations, so attestations of a revoked key logged
/// before the revocation stay provable — and says so; `--drop-log` removes the role. (A rotation
/// without the log's flags once dropped the role without a word, and with it every proof.)
#[test]
fn a_rotation_naming_no_log_keeps_the_log_role_and_drop_log_removes_it() {
    let repo = temp_repo();
    let d = repo.root();
    let new_key = revoked_setup(d);
    let rotation = |extra: &[&'static str]| {
        let mut rest = vec![
            "--attestation-key",
            new_key,
            "--expires",
            "2036-01-01T00:00:00Z",
            "--now",
            NOW,
        ];
        rest.extend_from_slice(extra);
        run(d, &fixture_rotate("trust/keys/root-2.pem", &rest))
    };
    let kept = rotation(&[]);
    assert_eq!(kept.code, 0, "{}", kept.transcript());
    assert!(
        kept.stderr.contains(
            "note: the log role of trust root version 4 (log.example/parmana) is carried forward"
        ),
        "{}",
        kept.transcript()
    );
    let document = std::fs::read_to_string(d.join("trust/trust-root.json")).unwrap();
    assert!(document.contains(REASON), "{document}");
    for case in CASES {
        check(d, case);
    }
    // A later version may give a key an earlier one revoked nothing at all (a policy key here):
    // refused, nothing written.
    // With the log and its revocations carried forward, the version itself says so; dropped,
    // the chain does (a revocation stays in force).
    let before = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    for (extra, says) in [
        (
            &["--policy-key", "trust/keys/attestation.pub"][..],
            "is revoked and holds the policy role in the same version",
        ),
        (
            &["--policy-key", "trust/keys/attestation.pub", "--drop-log"],
            "gives the policy role to key",
        ),
    ] {
        let regiven = rotation(extra);
        assert_eq!(
            (regiven.code, code(&regiven)),
            (4, "trust.malformed"),
            "{}",
            regiven.transcript()
        );
        assert!(regiven.stderr.contains(says), "{}", regiven.transcript());
        assert_eq!(
            std::fs::read(d.join("trust/trust-root.json")).unwrap(),
            before
        );
    }
    // Named with --log-origin and --drop-log at once: refused, a usage error, nothing written.
    let both = rotation(&[
        "--drop-log",
        "--log-origin",
        "x.example/log",
        "--log-key",
        "trust/keys/root-1.pub",
    ]);
    assert_eq!(both.code, 2, "{}", both.transcript());
    assert!(
        both.stderr.contains("'--drop-log' cannot be used with"),
        "{}",
        both.transcript()
    );
    assert_eq!(
        std::fs::read(d.join("trust/trust-root.json")).unwrap(),
        before
    );
    // Dropped: the role is gone, and with it every proof of the revocation's order.
    let dropped = rotation(&["--drop-log"]);
    assert_eq!(dropped.code, 0, "{}", dropped.transcript());
    let keys = run(d, &["log", "keys"]);
    assert_eq!(
        code(&keys),
        "runtime.no_transparency_log",
        "{}",
        keys.transcript()
    );
}
