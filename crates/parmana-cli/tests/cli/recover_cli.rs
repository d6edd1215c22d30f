//! `parmana recover`: an execution claimed but never completed (a crash) is completed byte-identically.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{NOW, VIP_SIGNALS, repo_root, run};
use base64::Engine as _;
use parmana_runtime::canon::{Digest, ExecutionId, Timestamp, canonicalize_value, parse_strict};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ReplayStore, SqliteReplayStore,
};

#[test]
fn recover_completes_a_crashed_execution_with_the_identical_attestation() {
    // What the execution would have printed had it not crashed.
    let expected = run(&[
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        VIP_SIGNALS,
        "--execution-id",
        "crashed-1",
        "--store",
        "memory",
        "--now",
        NOW,
    ]);
    assert_eq!(expected.code, 0, "{}", expected.stderr);
    let envelope = parse_strict(expected.stdout.trim().as_bytes()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement = parse_strict(&payload).unwrap();
    // What a claim records: the predicate and the canonical validated signals (format 2), and
    // the digest of the request.
    let signals = parse_strict(VIP_SIGNALS.as_bytes()).unwrap();
    let inputs = canonicalize_value(&serde_json::json!({
        "format": 2,
        "predicate": statement["predicate"],
        "signals": signals,
    }))
    .unwrap();
    let request_digest = Digest::of(
        &canonicalize_value(&serde_json::json!({
            "execution_id": "crashed-1",
            "policy_id": "claims-approval",
            "policy_version": "1.0.0",
            "signals_digest": statement["predicate"]["signals_digest"],
        }))
        .unwrap(),
    );

    // The crash: the claim (with every input) is durable, the completion never happened.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        let id = ExecutionId::parse("crashed-1").unwrap();
        let claim = ClaimRecord::new(request_digest, inputs, Timestamp::parse(NOW).unwrap());
        // Under the fixtures' trust root 2 and release manifest 1, as the execution would have.
        let under = AcceptedVersions::new(2, 1);
        assert_eq!(
            store.claim(&id, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
    }
    let store_flag = format!("sqlite:{}", path.display());
    let repo = repo_root();
    // Before recovery, `show` says the id is claimed but not completed.
    let pending = crate::common::run_in(&repo, &["show", "crashed-1", "--store", &store_flag], b"");
    assert_eq!(pending.code, 6, "{}", pending.transcript());
    assert!(
        pending.stderr.starts_with("error[cli.execution_pending]")
            && pending.stderr.contains("parmana recover"),
        "{}",
        pending.stderr
    );
    let out = crate::common::run_in(
        &repo,
        &["recover", "--store", &store_flag, "--now", NOW],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, expected.stdout);
    // After it, `show` prints the attestation byte for byte; an unknown id is told apart.
    let shown = crate::common::run_in(&repo, &["show", "crashed-1", "--store", &store_flag], b"");
    assert_eq!((shown.code, &shown.stdout), (0, &expected.stdout));
    let unknown = crate::common::run_in(&repo, &["show", "never", "--store", &store_flag], b"");
    assert_eq!(unknown.code, 3, "{}", unknown.transcript());
    assert!(unknown.stderr.starts_with("error[cli.execution_unknown]"));
    // A replay names `show`.
    let replay = crate::common::run_in(
        &repo,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            VIP_SIGNALS,
            "--execution-id",
            "crashed-1",
            "--store",
            &store_flag,
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(replay.code, 5, "{}", replay.transcript());
    assert!(
        replay.stderr.contains("parmana show crashed-1"),
        "{}",
        replay.stderr
    );
    assert!(
        out.stderr
            .contains("recovered 1 execution(s); 0 could not be completed"),
        "{}",
        out.stderr
    );

    // Nothing is left to recover, the id stays refused, and the ledger verifies.
    let again = crate::common::run_in(
        &repo,
        &["recover", "--store", &store_flag, "--now", NOW],
        b"",
    );
    assert_eq!((again.code, again.stdout.as_str()), (0, ""));
    let replay = run(&[
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        VIP_SIGNALS,
        "--execution-id",
        "crashed-1",
        "--store",
        &store_flag,
        "--now",
        NOW,
    ]);
    assert_eq!(replay.code, 5, "{}", replay.stderr);
    assert_eq!(run(&["ledger", "verify", "--store", &store_flag]).code, 0);
}

#[test]
fn unreadable_claims_and_keys_without_the_role_complete_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        let id = ExecutionId::parse("crashed-2").unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse(NOW).unwrap(),
        );
        // Under the fixtures' trust root 2 and release manifest 1, as the execution would have.
        let under = AcceptedVersions::new(2, 1);
        assert_eq!(
            store.claim(&id, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
    }
    let store_flag = format!("sqlite:{}", path.display());
    let out = run(&["recover", "--store", &store_flag, "--now", NOW]);
    // The recorded inputs are not a predicate: reported, the id stays claimed.
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("runtime.stored_claim_unreadable"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("recovered 0 execution(s); 1 could not be completed"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "recover",
        "--store",
        &store_flag,
        "--now",
        NOW,
        "--key",
        "trust/keys/policy.pem",
    ]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("runtime.signer_lacks_role")
            || out.stderr.contains("runtime.stored_claim_unreadable"),
        "{}",
        out.stderr
    );
}
