//! Signers the runtime cannot take at their word (a hardware or remote key): one that signs with another key than it names is refused at build, and one that goes wrong later refuses the execution with `trust.signing_failed` before its signature is recorded or returned — nothing consumed where the store writes once, the id left claimed for `recover` where it claims first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use common::{Fixture, OneWriteMemory, clock};
use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_runtime::trust::{LocalSigningKey, PublicKey, Signer, TrustError};
use parmana_runtime::{ExecutionRequest, ExecutionStatus, Runtime};

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

const HONEST: u8 = 0;
/// Answers another key's signature (a key version rotated under its cached public key).
const OTHER_KEY: u8 = 1;
/// Fails with an error other than `trust.signing_failed`.
const FAILING: u8 = 2;
/// Added to the two above: only attestations (DSSE) go wrong, so the key that authenticates
/// claims is still derived and the id is claimed before the attestation's signing fails.
const ATTESTATIONS_ONLY: u8 = 4;

/// A remote signer naming the attestation key, behaving as `behaviour` says at each signature.
struct Remote {
    named: LocalSigningKey,
    other: LocalSigningKey,
    behaviour: Arc<AtomicU8>,
}

impl Signer for Remote {
    fn public_key(&self) -> PublicKey {
        self.named.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        let behaviour = self.behaviour.load(Ordering::SeqCst);
        if behaviour & ATTESTATIONS_ONLY != 0 && !message.starts_with(b"DSSEv1 ") {
            return self.named.sign(message);
        }
        match behaviour & !ATTESTATIONS_ONLY {
            HONEST => self.named.sign(message),
            OTHER_KEY => self.other.sign(message),
            _ => Err(TrustError::InvalidKey {
                message: "the remote key is gone".to_owned(),
            }),
        }
    }
}

fn runtime(fixture: &Fixture, store: Arc<dyn ReplayStore>, behaviour: &Arc<AtomicU8>) -> Runtime {
    Runtime::builder(fixture.config())
        .signer(Remote {
            named: fixture.key("attestation"),
            other: fixture.key("release"),
            behaviour: Arc::clone(behaviour),
        })
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap()
}

#[test]
fn a_signer_that_signs_with_another_key_is_refused_at_build() {
    let fixture = Fixture::new();
    let built = Runtime::builder(fixture.config())
        .signer(Remote {
            named: fixture.key("attestation"),
            other: fixture.key("release"),
            behaviour: Arc::new(AtomicU8::new(OTHER_KEY)),
        })
        .store(MemoryReplayStore::new())
        .clock(clock())
        .build();
    let Err(error) = built else {
        panic!("a signer signing with another key was taken");
    };
    assert_eq!(error.code(), "trust.signing_failed", "{error}");
}

#[test]
fn a_store_that_claims_first_consumes_nothing_when_the_claim_key_cannot_be_derived() {
    for failure in [OTHER_KEY, FAILING] {
        let fixture = Fixture::new();
        let store = Arc::new(MemoryReplayStore::new());
        let behaviour = Arc::new(AtomicU8::new(HONEST));
        let runtime = runtime(&fixture, Arc::clone(&store) as _, &behaviour);
        behaviour.store(failure, Ordering::SeqCst);
        let request = ExecutionRequest::parse("early", "claims-approval@1.0.0", SIGNALS).unwrap();
        let error = runtime.execute(&request).unwrap_err();
        let id = ExecutionId::parse("early").unwrap();
        assert_eq!(runtime.attestation(&id).unwrap(), ExecutionStatus::Unknown);
        // Refused before the claim: nothing names the id as possibly consumed.
        assert!(!error.may_follow_a_claim(), "{failure}: {error}");
        if failure == OTHER_KEY {
            assert_eq!(error.code(), "trust.signing_failed", "{error}");
        }
        behaviour.store(HONEST, Ordering::SeqCst);
        runtime.execute(&request).unwrap();
    }
}

#[test]
fn a_store_that_claims_first_keeps_the_id_claimed_for_recover() {
    for failure in [OTHER_KEY | ATTESTATIONS_ONLY, FAILING | ATTESTATIONS_ONLY] {
        let fixture = Fixture::new();
        let store = Arc::new(MemoryReplayStore::new());
        let behaviour = Arc::new(AtomicU8::new(HONEST));
        let runtime = runtime(&fixture, Arc::clone(&store) as _, &behaviour);
        behaviour.store(failure, Ordering::SeqCst);
        let request = ExecutionRequest::parse("turned", "claims-approval@1.0.0", SIGNALS).unwrap();
        let error = runtime.execute(&request).unwrap_err();
        assert_eq!(error.code(), "trust.signing_failed", "{failure}: {error}");
        assert!(error.may_follow_a_claim(), "{failure}: {error}");
        let id = ExecutionId::parse("turned").unwrap();
        assert!(
            matches!(
                runtime.attestation(&id).unwrap(),
                ExecutionStatus::Claimed { .. }
            ),
            "{failure}"
        );
        // Nothing was recorded as completed; once the key answers again, recovery completes
        // the id with a signature that verifies.
        behaviour.store(HONEST, Ordering::SeqCst);
        let report = runtime.recover().unwrap();
        assert!(report.failed.is_empty(), "{failure}: {:?}", report.failed);
        assert_eq!(report.completed.len(), 1, "{failure}");
        let ExecutionStatus::Completed(envelope) = runtime.attestation(&id).unwrap() else {
            panic!("{failure}: the id must read back completed");
        };
        assert!(
            runtime.verify(&envelope, None, None).is_valid(),
            "{failure}"
        );
    }
}

#[test]
fn a_store_that_writes_once_is_not_written() {
    let fixture = Fixture::new();
    let store = Arc::new(OneWriteMemory::default());
    let behaviour = Arc::new(AtomicU8::new(HONEST));
    let runtime = runtime(&fixture, Arc::clone(&store) as _, &behaviour);
    behaviour.store(OTHER_KEY, Ordering::SeqCst);
    let request = ExecutionRequest::parse("once", "claims-approval@1.0.0", SIGNALS).unwrap();
    let error = runtime.execute(&request).unwrap_err();
    assert_eq!(error.code(), "trust.signing_failed", "{error}");
    assert!(!error.may_follow_a_claim(), "{error}");
    assert!(store.ids().is_empty());
    let id = ExecutionId::parse("once").unwrap();
    assert_eq!(runtime.attestation(&id).unwrap(), ExecutionStatus::Unknown);
    // The same id executes once the key answers again.
    behaviour.store(HONEST, Ordering::SeqCst);
    let attestation = runtime.execute(&request).unwrap();
    assert!(
        runtime
            .verify(attestation.envelope(), None, None)
            .is_valid()
    );
    assert_eq!(store.ids(), ["once"]);
}

/// The free functions that take a signer at each call check it as a runtime's build does: a
/// signer that `check_signer` refuses is refused before anything is claimed or recovered.
#[test]
fn the_free_functions_check_the_signer_as_a_build_does() {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let store = MemoryReplayStore::new();
    // A remote signer that names the attestation key and signs with another.
    let other_key = Remote {
        named: fixture.key("attestation"),
        other: fixture.key("release"),
        behaviour: Arc::new(AtomicU8::new(OTHER_KEY)),
    };
    let request = ExecutionRequest::parse("free-1", "claims-approval@1.0.0", SIGNALS).unwrap();
    let error =
        parmana_runtime::execute_from_signals(&request, &other_key, &store, &environment, &clock())
            .expect_err("a signer signing with another key was taken");
    assert_eq!(error.code(), "trust.signing_failed", "{error}");
    assert!(store.pending().unwrap().is_empty());
    let error = parmana_runtime::recover(&store, &other_key, &environment)
        .expect_err("a signer signing with another key was taken");
    assert_eq!(error.code(), "trust.signing_failed", "{error}");
    // A key in memory passes as it is.
    parmana_runtime::execute_from_signals(
        &request,
        &fixture.key("attestation"),
        &store,
        &environment,
        &clock(),
    )
    .unwrap();
}
