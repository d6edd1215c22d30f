//! Signers that are not local keys (a hardware or remote key): every signature they return is verified under the key they name before it goes into a document, and `check_signer` refuses one that signs with another key or not deterministically.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{key, now, signed_test_bundle, small_claim_predicate, trust_root};
use parmana_trust::*;

/// What a signer does with the message it is asked to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Signs it with the key it names.
    Honest,
    /// Answers another key's signature (a key version rotated under a cached public key).
    OtherKey,
    /// Answers its own signature with one bit flipped.
    Corrupted,
    /// Honest at its first signature, corrupted after it.
    HonestOnce,
}

/// A signer that names `named`'s public key and is not a local key (its signatures are not
/// computed here as far as the crate knows).
struct Remote {
    named: LocalSigningKey,
    other: LocalSigningKey,
    behaviour: Behaviour,
    signed: AtomicUsize,
}

impl Remote {
    fn new(named: &str, behaviour: Behaviour) -> Self {
        Self {
            named: key(named),
            other: key("root-1"),
            behaviour,
            signed: AtomicUsize::new(0),
        }
    }
}

impl Signer for Remote {
    fn public_key(&self) -> PublicKey {
        self.named.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        let first = self.signed.fetch_add(1, Ordering::SeqCst) == 0;
        let mut signature = self.named.sign(message)?;
        match self.behaviour {
            Behaviour::Honest => {}
            Behaviour::OtherKey => signature = self.other.sign(message)?,
            Behaviour::Corrupted => signature[10] ^= 1,
            Behaviour::HonestOnce if first => {}
            Behaviour::HonestOnce => signature[10] ^= 1,
        }
        Ok(signature)
    }
}

/// Every document this crate signs, signed by a signer naming `named` that behaves as said.
fn sign_each(behaviour: Behaviour) -> Vec<(&'static str, Result<(), TrustError>)> {
    let root = trust_root();
    let name = NoteKeyName::parse("parmana.test/log").unwrap();
    let honest_note = sign_note("parmana.test/log\n1\n", &name, &key("attestation")).unwrap();
    let witness = NoteKeyName::parse("witness.test").unwrap();
    let attestation = Remote::new("attestation", behaviour);
    let policy = Remote::new("policy", behaviour);
    let note_key = Remote::new("release", behaviour);
    let bundle = signed_test_bundle();
    vec![
        (
            "attestation",
            build_attestation(
                &small_claim_predicate(&root, "remote-1", now()),
                &attestation,
                &root,
            )
            .map(drop),
        ),
        (
            "bundle",
            sign_bundle(&common::demo_ref(), &bundle, &[&policy]).map(drop),
        ),
        (
            "note",
            sign_note("parmana.test/log\n1\n", &name, &note_key).map(drop),
        ),
        (
            "note cosignature",
            cosign_note(&honest_note, &witness, &note_key).map(drop),
        ),
        (
            "checkpoint cosignature",
            cosign_checkpoint(&honest_note, &witness, &note_key, 1_700_000_000).map(drop),
        ),
    ]
}

#[test]
fn a_signature_that_does_not_verify_under_the_named_key_goes_into_no_document() {
    for (document, signed) in sign_each(Behaviour::Honest) {
        assert!(signed.is_ok(), "{document}: {signed:?}");
    }
    for behaviour in [Behaviour::OtherKey, Behaviour::Corrupted] {
        for (document, signed) in sign_each(behaviour) {
            let error = signed.expect_err(document);
            assert_eq!(error.code(), "trust.signing_failed", "{document}: {error}");
            assert!(
                error.to_string().contains("does not verify"),
                "{document}: {error}"
            );
        }
    }
}

#[test]
fn check_signer_refuses_another_key_and_a_signer_that_is_not_deterministic() {
    // (signer, what the refusal says, or None where it passes)
    let cases: [(&dyn Signer, Option<&str>); 5] = [
        (&key("attestation"), None),
        (&Remote::new("attestation", Behaviour::Honest), None),
        (
            &Remote::new("attestation", Behaviour::OtherKey),
            Some("signs with another key"),
        ),
        (
            &Remote::new("attestation", Behaviour::Corrupted),
            Some("signs with another key"),
        ),
        (
            &Remote::new("attestation", Behaviour::HonestOnce),
            Some("is not deterministic"),
        ),
    ];
    for (i, (signer, refused)) in cases.into_iter().enumerate() {
        match (check_signer(signer), refused) {
            (Ok(()), None) => {}
            (Err(error), Some(says)) => {
                assert_eq!(error.code(), "trust.signing_failed", "case {i}");
                assert!(error.to_string().contains(says), "case {i}: {error}");
            }
            (outcome, expected) => panic!("case {i}: {outcome:?}, expected {expected:?}"),
        }
    }
}

/// A signer that claims to be a key in memory but answers garbage from `sign`.
struct ClaimsLocal {
    local: LocalSigningKey,
    named: LocalSigningKey,
}

impl Signer for ClaimsLocal {
    fn public_key(&self) -> PublicKey {
        self.named.public_key()
    }

    fn sign(&self, _message: &[u8]) -> Result<[u8; 64], TrustError> {
        Ok([7; 64])
    }

    fn local_key(&self) -> Option<&LocalSigningKey> {
        Some(&self.local)
    }
}

#[test]
fn a_local_key_signs_itself_and_every_other_signature_is_verified() {
    let attestation = key("attestation");
    assert!(attestation.local_key().is_some());
    assert!(
        Remote::new("attestation", Behaviour::Honest)
            .local_key()
            .is_none()
    );
    // `sign_checked` is what every document's signing goes through: under the key the document
    // names, a remote signer's answer is verified.
    let named = attestation.public_key();
    let remote = Remote::new("attestation", Behaviour::OtherKey);
    let error = sign_checked(&remote, &named, b"m").unwrap_err();
    assert_eq!(error.code(), "trust.signing_failed");
    let honest = Remote::new("attestation", Behaviour::Honest);
    assert_eq!(
        sign_checked(&honest, &named, b"m").unwrap(),
        attestation.sign(b"m").unwrap()
    );
    // Verified under the key the document names, not the one the signer reports now.
    let error = sign_checked(&honest, &key("policy").public_key(), b"m").unwrap_err();
    assert_eq!(error.code(), "trust.signing_failed");
    // A key in memory whose public half is the one named signs itself: what the signer's `sign`
    // would answer is never used. One whose public half is another is not taken at its word.
    let claims = ClaimsLocal {
        local: key("attestation"),
        named: key("attestation"),
    };
    assert_eq!(
        sign_checked(&claims, &named, b"m").unwrap(),
        attestation.sign(b"m").unwrap()
    );
    let claims_other = ClaimsLocal {
        local: key("policy"),
        named: key("attestation"),
    };
    let error = sign_checked(&claims_other, &named, b"m").unwrap_err();
    assert_eq!(error.code(), "trust.signing_failed");
}

/// A signer whose key id is not its public key's.
struct Misnamed(LocalSigningKey, KeyId);

impl Signer for Misnamed {
    fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }

    fn key_id(&self) -> KeyId {
        self.1
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        self.0.sign(message)
    }
}

#[test]
fn check_signer_refuses_a_key_id_that_is_not_its_public_keys() {
    let misnamed = Misnamed(key("attestation"), key("policy").key_id());
    let error = check_signer(&misnamed).unwrap_err();
    assert_eq!(error.code(), "trust.signing_failed");
    assert!(error.to_string().contains("names key"), "{error}");
}
