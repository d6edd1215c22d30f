//! `parmana verify` as an auditor runs it: attestations verified after rotations and after every trust-root version expired, current trust required or not, the chain given as a file, a directory or any version's file, and the clock and chain refusals.

use std::path::Path;

use crate::common::{NOW, VIP_SIGNALS, run_in, temp_repo};
use parmana_runtime::canon::Timestamp;

/// Executes the VIP claim as `id` at `at` in `dir` (memory store) and returns the attestation.
fn execute_at(dir: &Path, id: &str, at: &str) -> String {
    let out = run_in(
        dir,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            VIP_SIGNALS,
            "--execution-id",
            id,
            "--store",
            "memory",
            "--now",
            at,
        ],
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
        &[
            "trust",
            "rotate",
            "--sign-with",
            "trust/keys/root-2.pem",
            "--root-key",
            "trust/keys/root-2.pem",
            "--policy-key",
            "trust/keys/policy.pub",
            "--release-key",
            "trust/keys/release.pub",
            "--attestation-key",
            attestation_key,
            "--expires",
            "2036-01-01T00:00:00Z",
            "--now",
            NOW,
        ],
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
    let out = run_in(
        d,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            VIP_SIGNALS,
            "--store",
            "memory",
            "--now",
            later,
        ],
        b"",
    );
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
    let execute = run_in(
        d,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            VIP_SIGNALS,
            "--store",
            "memory",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(execute.code, 4, "{}", execute.transcript());
    assert!(
        execute
            .stderr
            .starts_with("error[trust.unexpected_version]"),
        "{}",
        execute.stderr
    );
    // The directory itself is the chain: version 3 is the newest, and the attestation (made
    // under version 2) verifies.
    let as_directory = verify(d, &["--now", NOW, "--trust-root", "trust/trust-root.d"]);
    assert_eq!(as_directory.code, 0, "{}", as_directory.transcript());
}
