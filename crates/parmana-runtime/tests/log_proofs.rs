//! Attestation proofs through the runtime: an `AttestationProofVerifier` answers every proof of a batch exactly as `verify_attestation_proof` does while verifying their shared checkpoint once, and a revoked attestation key is judged by the proven log position through `verify_attestation_with_log`; a witness answer is added to a checkpoint only if the result still opens as one of the log.
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

/// The release-manifest version `env` has in force.
fn manifest(env: &RuntimeEnvironment) -> u64 {
    env.release_manifest().version()
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
    let checkpoint = sign_log_checkpoint(
        store,
        env.trust_history(),
        clock().0,
        manifest(env),
        &[&log_key()],
        None,
    )
    .unwrap();
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
        let checkpoint = sign_log_checkpoint(
            &store,
            env.trust_history(),
            clock().0,
            manifest(&env),
            &[&log_key()],
            None,
        )
        .unwrap();
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
    // An honest entry's inclusion, before the revocation, lent to the attestation made after it
    // (what a thief of the key would hand over): it proves nothing of that attestation.
    let borrowed = verify_attestation_proof(&before[0], &before_proofs[0], history).unwrap();
    let report =
        verify_attestation_with_log(&after[0], history, options, None, None, Some(&borrowed));
    let check = report
        .checks
        .iter()
        .find(|c| c.check == AttestationCheckKind::Revocation)
        .unwrap();
    assert_eq!(check.code, Some("trust.key_revoked_unproven"), "{check:?}");
}

/// A witness's answer is added to a checkpoint only if the result still opens as a checkpoint of
/// the log: a line naming a log key with a signature that is not that key's of this checkpoint
/// (here, the second log key's signature of another checkpoint) is refused, not written out as a
/// checkpoint every later reader refuses. It must add a valid cosignature of a witness the trust
/// root lists: an answer of lines by keys nobody lists alone is refused (a 200 of another
/// witness is no cosignature); beside a listed witness's, such a line is dropped (and so is a
/// valid line of the log's own key the answer repeats): only the listed witnesses'
/// cosignatures are added, one line per witness key.
#[test]
fn a_witness_answer_with_a_bad_log_key_line_is_refused() {
    use parmana_runtime::add_cosignatures;
    use parmana_runtime::trust::{NoteKeyName, sign_checkpoint};
    let fixture = Fixture::new();
    let second = LocalSigningKey::from_seed(&[31; 32]);
    let witness = LocalSigningKey::from_seed(&[32; 32]);
    let witness_name = NoteKeyName::parse("witness.example/w1").unwrap();
    fixture.rotate_with_log(
        &fixture.key("attestation"),
        LogSpec {
            keys: vec![log_key().public_key(), second.public_key()],
            witnesses: vec![(witness_name.to_string(), witness.public_key())],
            witness_threshold: 1,
            ..log_spec(vec![])
        },
    );
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let (_, _, checkpoint) = attested(&fixture, &env, &store, 1);
    // The last line of a note: its (only) signature line.
    let signature_line = |note: &str| format!("{}\n", note.trim_end().lines().last().unwrap());
    // The listed witness's valid cosignature of this checkpoint.
    let cosigned = parmana_runtime::trust::cosign_checkpoint(
        &checkpoint,
        &witness_name,
        &witness,
        1_700_000_000,
    )
    .unwrap();
    let cosignature = signature_line(&cosigned);
    let other = Checkpoint::new(ORIGIN, 99, parmana_runtime::canon::Digest::of(b"x")).unwrap();
    let name = NoteKeyName::parse(ORIGIN).unwrap();
    let forged = signature_line(&sign_checkpoint(&other, &name, &second).unwrap());
    let refused = add_cosignatures(
        env.trust_root(),
        checkpoint.as_bytes(),
        format!("{cosignature}{forged}").as_bytes(),
    );
    assert_eq!(
        refused.map_err(|e| e.code()),
        Err("trust.note_bad_signature")
    );
    let stranger_name = NoteKeyName::parse("someone.example/else").unwrap();
    let stranger = signature_line(&sign_checkpoint(&other, &stranger_name, &second).unwrap());
    let alone = add_cosignatures(env.trust_root(), checkpoint.as_bytes(), stranger.as_bytes());
    assert_eq!(alone.map_err(|e| e.code()), Err("trust.threshold_not_met"));
    let kept = add_cosignatures(
        env.trust_root(),
        checkpoint.as_bytes(),
        format!("{cosignature}{stranger}").as_bytes(),
    );
    assert_eq!(kept.unwrap(), format!("{checkpoint}{cosignature}"));
    let log_line = signature_line(&checkpoint);
    let repeated = add_cosignatures(
        env.trust_root(),
        checkpoint.as_bytes(),
        format!("{stranger}{cosignature}{log_line}").as_bytes(),
    );
    assert_eq!(repeated.unwrap(), format!("{checkpoint}{cosignature}"));
    // A witness's line repeated (by the witness, or replayed on the way) is kept once: repeats
    // must not fill the note's bounded count of lines and keep other witnesses' out.
    let thrice = add_cosignatures(
        env.trust_root(),
        checkpoint.as_bytes(),
        format!("{cosignature}{cosignature}{cosignature}").as_bytes(),
    );
    assert_eq!(thrice.unwrap(), format!("{checkpoint}{cosignature}"));
    // A witness that cosigned before cosigns again (a fresh timestamp): taken, not refused as
    // adding nothing.
    let again = signature_line(
        &parmana_runtime::trust::cosign_checkpoint(
            &checkpoint,
            &witness_name,
            &witness,
            1_700_000_100,
        )
        .unwrap(),
    );
    let cosigned_before = format!("{checkpoint}{cosignature}");
    assert_eq!(
        add_cosignatures(
            env.trust_root(),
            cosigned_before.as_bytes(),
            again.as_bytes()
        )
        .unwrap(),
        cosigned_before,
        "one line per witness key: the one the checkpoint carried stays"
    );
}

/// The one-off witness (`parmana log witness`) judges its state — the checkpoint it cosigned
/// last — by its size and root, as the served witness does: after the log's key is rotated out,
/// the next checkpoint (signed by the new key) extends that state and is cosigned, where
/// verifying the state again under the new key refused every checkpoint for ever. A clock
/// before 1970 cosigns nothing.
#[test]
fn the_one_off_witness_goes_on_after_a_log_key_rotation() {
    use parmana_runtime::trust::NoteKeyName;
    use parmana_runtime::witness_checkpoint;
    let fixture = Fixture::new();
    let attestation = fixture.key("attestation");
    fixture.rotate_with_log(&attestation, log_spec(vec![]));
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let (_, _, first) = attested(&fixture, &env, &store, 1);
    let witness = LocalSigningKey::from_seed(&[40; 32]);
    let name = NoteKeyName::parse("witness.example/w1").unwrap();
    let cosign = |env: &RuntimeEnvironment, previous: Option<&[u8]>, checkpoint: &str, now| {
        witness_checkpoint(
            &store,
            env.trust_root(),
            previous,
            checkpoint.as_bytes(),
            &name,
            &witness,
            now,
        )
    };
    let state = cosign(&env, None, &first, clock().0).unwrap();
    // The log key is rotated out; the log goes on under a new one.
    let new_key = LocalSigningKey::from_seed(&[32; 32]);
    fixture.rotate_with_log(&attestation, LogSpec::one_key(ORIGIN, new_key.public_key()));
    let env = fixture.environment();
    let request =
        ExecutionRequest::parse("after-rotation", "claims-approval@1.0.0", SIGNALS).unwrap();
    execute_from_signals(&request, &attestation, &store, &env, &clock()).unwrap();
    let second = sign_log_checkpoint(
        &store,
        env.trust_history(),
        clock().0,
        manifest(&env),
        &[&new_key],
        None,
    )
    .unwrap();
    let cosigned = cosign(&env, Some(state.as_bytes()), &second, clock().0).unwrap();
    assert!(cosigned.starts_with(second.trim_end()), "{cosigned}");
    let epoch = parmana_runtime::canon::Timestamp::UNIX_EPOCH;
    assert_eq!(
        cosign(&env, Some(state.as_bytes()), &second, epoch).map_err(|e| e.code()),
        Err("trust.note_malformed")
    );
    // A state is taken only as this witness wrote it: a log-signed checkpoint without this
    // witness's cosignature (bytes someone put in the file to choose what it extends), or one
    // of another log, is refused.
    let other_log = Checkpoint::new(
        "other.example/log",
        1,
        parmana_runtime::canon::Digest::of(b"x"),
    )
    .unwrap();
    let other_name = NoteKeyName::parse("other.example/log").unwrap();
    let other_state = parmana_runtime::trust::cosign_checkpoint(
        &parmana_runtime::trust::sign_checkpoint(&other_log, &other_name, &new_key).unwrap(),
        &name,
        &witness,
        1_700_000_000,
    )
    .unwrap();
    for foreign in [first.as_str(), other_state.as_str()] {
        let refused = cosign(&env, Some(foreign.as_bytes()), &second, clock().0).unwrap_err();
        assert_eq!(refused.code(), "runtime.witness_state_refused", "{refused}");
    }
    // A checkpoint of size 0 whose root is not the empty tree's is refused with no state too
    // (as the served witness refuses it): kept as the state, nothing could extend it.
    let empty_but_not = parmana_runtime::trust::sign_checkpoint(
        &Checkpoint::new(ORIGIN, 0, parmana_runtime::canon::Digest::of(b"not empty")).unwrap(),
        &NoteKeyName::parse(ORIGIN).unwrap(),
        &new_key,
    )
    .unwrap();
    let refused = cosign(&env, None, &empty_but_not, clock().0).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
}

/// A revocation's checkpoint is signed into the trust root, off the store: a log that does not
/// extend it — another root at its size (a writer of the store rewrote the ledger, perhaps with
/// an entry of the revoked key back-dated before it), or fewer entries — is never signed
/// (`trust.tlog_inconsistent`), whatever anchor or witnesses there are. The log it was written
/// against, grown since, is.
#[test]
fn a_log_that_does_not_extend_a_revocations_checkpoint_is_never_signed() {
    let fixture = Fixture::new();
    let attestation_key = fixture.key("attestation");
    fixture.rotate_with_log(&attestation_key, log_spec(vec![]));
    let store = MemoryReplayStore::new();
    let (_, _, revoked_at) = attested(&fixture, &fixture.environment(), &store, 2);
    let (text, _) = revoked_at.split_once("\n\n").unwrap();
    let note = Checkpoint::parse_text(&format!("{text}\n")).unwrap();
    let revocation = RevocationSpec::at_checkpoint(attestation_key.key_id(), &note, "stolen");
    let renewed = LocalSigningKey::from_seed(&[77; 32]);
    fixture.rotate_with_log(&renewed, log_spec(vec![revocation]));
    let env = fixture.environment();
    let execute_into = |store: &MemoryReplayStore, ids: &[&str]| {
        for id in ids {
            let request = ExecutionRequest::parse(id, "claims-approval@1.0.0", SIGNALS).unwrap();
            execute_from_signals(&request, &renewed, store, &env, &clock()).unwrap();
        }
    };
    let sign = |store: &MemoryReplayStore| {
        sign_log_checkpoint(
            store,
            env.trust_history(),
            clock().0,
            manifest(&env),
            &[&log_key()],
            None,
        )
        .map_err(|e| e.code())
    };
    // The log the revocation was written against, grown since: signed.
    execute_into(&store, &["after-the-revocation"]);
    assert!(sign(&store).is_ok());
    // A ledger rewritten from the start (more entries than the revocation's size, another root
    // at it), and a shorter one: refused, nothing signed or stored.
    let rewritten = MemoryReplayStore::new();
    execute_into(&rewritten, &["other-1", "other-2", "other-3", "other-4"]);
    assert_eq!(sign(&rewritten), Err("trust.tlog_inconsistent"));
    let shorter = MemoryReplayStore::new();
    assert_eq!(sign(&shorter), Err("trust.tlog_inconsistent"));
    use parmana_runtime::replay::ReplayStore as _;
    assert!(rewritten.latest_checkpoint().unwrap().is_none());
}

/// The newest stored checkpoint is given out (`parmana log checkpoint`, to publish or send to
/// witnesses) only when the trust root in force's log role signed it: one signed by a log key
/// rotated out since — perhaps because it leaked, and a writer of the store used it — is
/// refused, though an older version's role opens it. Once the log grows, a checkpoint signed
/// with a key in force is stored and given out.
#[test]
fn a_stored_checkpoint_of_a_rotated_out_log_key_is_not_given_out() {
    use parmana_runtime::verified_latest_log_checkpoint;
    let fixture = Fixture::new();
    let attestation = fixture.key("attestation");
    fixture.rotate_with_log(&attestation, log_spec(vec![]));
    let store = MemoryReplayStore::new();
    let env = fixture.environment();
    let (_, _, signed) = attested(&fixture, &env, &store, 1);
    let given = verified_latest_log_checkpoint(&store, env.trust_history()).unwrap();
    assert_eq!(given.note, signed);
    let renewed = LocalSigningKey::from_seed(&[31; 32]);
    fixture.rotate_with_log(&attestation, LogSpec::one_key(ORIGIN, renewed.public_key()));
    let env = fixture.environment();
    let refused = verified_latest_log_checkpoint(&store, env.trust_history()).unwrap_err();
    assert_eq!(
        refused.code(),
        "runtime.stored_checkpoint_invalid",
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("signed by a log key of an older trust-root version only"),
        "{refused}"
    );
    // The log grown, a checkpoint signed with the key in force is stored, and given out.
    let request =
        ExecutionRequest::parse("after-rotation", "claims-approval@1.0.0", SIGNALS).unwrap();
    execute_from_signals(&request, &attestation, &store, &env, &clock()).unwrap();
    let resigned = sign_log_checkpoint(
        &store,
        env.trust_history(),
        clock().0,
        manifest(&env),
        &[&renewed],
        None,
    )
    .unwrap();
    let given = verified_latest_log_checkpoint(&store, env.trust_history()).unwrap();
    assert_eq!(given.note, resigned);
}
