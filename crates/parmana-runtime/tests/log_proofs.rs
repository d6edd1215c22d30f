//! Attestation proofs through the runtime: an `AttestationProofVerifier` answers every proof of a batch exactly as `verify_attestation_proof` does while verifying their shared checkpoint once, and a revoked attestation key is judged by the proven log position through `verify_attestation_with_log`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fixture, clock};
use parmana_runtime::replay::{ExecutionId, MemoryReplayStore};
use parmana_runtime::trust::{
    AttestationCheckKind, Checkpoint, LocalSigningKey, LogSpec, RevocationSpec, TlogProof,
    VerifyOptions,
};
use parmana_runtime::{
    AttestationProofVerifier, ExecutionRequest, RuntimeEnvironment, execute_from_signals,
    prove_execution, sign_log_checkpoint, verify_attestation_proof, verify_attestation_with_log,
};

const ORIGIN: &str = "log.example/parmana";
const SIGNALS: &[u8] =
    br#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

fn log_key() -> LocalSigningKey {
    LocalSigningKey::from_seed(&[30; 32])
}

fn log_spec(revocations: Vec<RevocationSpec>) -> LogSpec {
    LogSpec {
        revocations,
        ..LogSpec::one_key(ORIGIN, log_key().public_key())
    }
}

/// `count` attestations executed into `store`, and the proof of each against one checkpoint.
fn attested(
    fixture: &Fixture,
    env: &RuntimeEnvironment,
    store: &MemoryReplayStore,
    count: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, String) {
    let signer = fixture.key("attestation");
    let envelopes: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let request =
                ExecutionRequest::parse(&format!("proof-{i}"), "claims-approval@1.0.0", SIGNALS)
                    .unwrap();
            execute_from_signals(&request, &signer, store, env, &clock())
                .unwrap()
                .into_envelope()
        })
        .collect();
    let checkpoint =
        sign_log_checkpoint(store, env.trust_history(), clock().0, &log_key(), None).unwrap();
    let proofs = (0..count)
        .map(|i| {
            let id: ExecutionId = format!("proof-{i}").parse().unwrap();
            prove_execution(store, env.trust_root(), &id, Some(checkpoint.as_bytes()))
                .unwrap()
                .to_text()
                .into_bytes()
        })
        .collect();
    (envelopes, proofs, checkpoint)
}

#[test]
fn a_proof_verifier_answers_as_single_verification_and_checks_a_checkpoint_once() {
    let fixture = Fixture::new();
    fixture.rotate_with_log(&fixture.key("attestation"), log_spec(vec![]));
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let (envelopes, proofs, _) = attested(&fixture, &env, &store, 6);
    let history = env.trust_history();
    let mut verifier = AttestationProofVerifier::new(history).unwrap();
    let mut tampered = proofs[2].clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x01;
    for (i, envelope) in envelopes.iter().enumerate() {
        let inclusion = verifier.verify(envelope, &proofs[i]).unwrap();
        assert_eq!(
            inclusion,
            verify_attestation_proof(envelope, &proofs[i], history).unwrap()
        );
        // The first claim under the new version wrote a marks record at position 0.
        assert_eq!(inclusion.index(), i as u64 + 1);
        // Another attestation's proof, and a tampered one, are refused alike.
        let other = &proofs[(i + 1) % proofs.len()];
        let crossed = verifier.verify(envelope, other).map_err(|e| e.code());
        assert_eq!(crossed, Err("runtime.proof_entry_mismatch"));
        assert_eq!(
            crossed,
            verify_attestation_proof(envelope, other, history).map_err(|e| e.code())
        );
        assert_eq!(
            verifier
                .verify(&envelopes[2], &tampered)
                .map_err(|e| e.code()),
            verify_attestation_proof(&envelopes[2], &tampered, history).map_err(|e| e.code())
        );
    }
    assert!(verifier.verify(&envelopes[2], &tampered).is_err());
    assert_eq!(verifier.cached_checkpoints(), 1);
}

#[test]
fn a_revoked_key_stands_only_with_a_proof_from_before_the_revocation() {
    let fixture = Fixture::new();
    let attestation_key = fixture.key("attestation");
    fixture.rotate_with_log(&attestation_key, log_spec(vec![]));
    let store = MemoryReplayStore::new();
    let (before, before_proofs, revoked_at) = attested(&fixture, &fixture.environment(), &store, 2);
    let (after, after_proofs, _) = {
        let signer = fixture.key("attestation");
        let env = fixture.environment();
        let request =
            ExecutionRequest::parse("proof-after", "claims-approval@1.0.0", SIGNALS).unwrap();
        let envelope = execute_from_signals(&request, &signer, &store, &env, &clock())
            .unwrap()
            .into_envelope();
        let checkpoint =
            sign_log_checkpoint(&store, env.trust_history(), clock().0, &log_key(), None).unwrap();
        let id: ExecutionId = "proof-after".parse().unwrap();
        let proof = prove_execution(&store, env.trust_root(), &id, Some(checkpoint.as_bytes()))
            .unwrap()
            .to_text()
            .into_bytes();
        (vec![envelope], vec![proof], checkpoint)
    };
    // The revocation is as of the checkpoint the two first proofs are against.
    let (text, _) = revoked_at.split_once("\n\n").unwrap();
    let note = Checkpoint::parse_text(&format!("{text}\n")).unwrap();
    assert_eq!(
        TlogProof::parse(&before_proofs[0]).unwrap().checkpoint(),
        revoked_at
    );
    let revocation = RevocationSpec::at_checkpoint(attestation_key.key_id(), &note, "stolen");
    fixture.rotate_with_log(
        &LocalSigningKey::from_seed(&[77; 32]),
        log_spec(vec![revocation]),
    );
    let env = fixture.environment();
    let history = env.trust_history();
    let options = VerifyOptions {
        now: parmana_testkit::now(),
        require_current_trust: false,
    };
    let revocation_code = |envelope: &[u8], proof: Option<&[u8]>| {
        let inclusion = proof.map(|p| verify_attestation_proof(envelope, p, history).unwrap());
        let report =
            verify_attestation_with_log(envelope, history, options, None, None, inclusion.as_ref());
        let check = report
            .checks
            .iter()
            .find(|c| c.check == AttestationCheckKind::Revocation)
            .unwrap();
        assert_eq!(report.is_valid(), check.passed);
        check.code
    };
    for (envelope, proof) in before.iter().zip(&before_proofs) {
        assert_eq!(revocation_code(envelope, Some(proof)), None);
        assert_eq!(
            revocation_code(envelope, None),
            Some("trust.key_revoked_unproven")
        );
    }
    assert_eq!(
        revocation_code(&after[0], Some(&after_proofs[0])),
        Some("trust.key_revoked")
    );
}
