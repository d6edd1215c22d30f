//! A transparency log of attestations for the `verify --proof` rows (shared by the runtime bench and the instruction-count driver): a fixture chain naming a log, executions in a memory store, one signed checkpoint, and the `.tlog-proof` of any entry.

use parmana_runtime::replay::{ExecutionId, MemoryReplayStore};
use parmana_runtime::trust::{LocalSigningKey, LogSpec};
use parmana_runtime::{
    ExecutionRequest, FixedClock, RuntimeEnvironment, execute_from_signals, prove_execution,
    sign_log_checkpoint,
};
use parmana_testkit::FixtureEnvironment;

/// A log of executions of the claims policy, all with the same signals, and its checkpoint.
pub(crate) struct ProofLog {
    /// The chain rotated to a version naming the log (kept: the environment was loaded from it).
    _fixture: FixtureEnvironment,
    pub(crate) environment: RuntimeEnvironment,
    store: MemoryReplayStore,
    checkpoint: String,
    envelopes: Vec<Vec<u8>>,
}

impl ProofLog {
    /// `entries` executions (`proof-0`, `proof-1`, …), sequenced, and one checkpoint of them all
    /// signed by the log key.
    pub(crate) fn new(entries: usize) -> Self {
        let fixture = FixtureEnvironment::new().unwrap();
        let log_key = LocalSigningKey::from_seed(&[30; 32]);
        let log = LogSpec::one_key("log.example/parmana", log_key.public_key());
        let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
        fixture.rotate_with_log(log, expires).unwrap();
        let environment = fixture.load().unwrap();
        let signer = fixture.attestation_signer().unwrap();
        let store = MemoryReplayStore::new();
        let clock = FixedClock(parmana_testkit::now());
        let signals = br#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;
        let envelopes = (0..entries)
            .map(|i| {
                let request = ExecutionRequest::parse(
                    &format!("proof-{i}"),
                    "claims-approval@1.0.0",
                    signals.to_vec(),
                )
                .unwrap();
                execute_from_signals(&request, &signer, &store, &environment, &clock)
                    .unwrap()
                    .into_envelope()
            })
            .collect();
        let checkpoint = sign_log_checkpoint(
            &store,
            environment.trust_history(),
            parmana_testkit::now(),
            environment.release_manifest().version(),
            &[&log_key],
            None,
        )
        .unwrap();
        Self {
            _fixture: fixture,
            environment,
            store,
            checkpoint,
            envelopes,
        }
    }

    /// The envelope and the `.tlog-proof` (against the checkpoint) of each entry of `entries`.
    pub(crate) fn proofs(&self, entries: impl Iterator<Item = usize>) -> Vec<(Vec<u8>, Vec<u8>)> {
        entries
            .map(|i| {
                let id: ExecutionId = format!("proof-{i}").parse().unwrap();
                let proof = prove_execution(
                    &self.store,
                    self.environment.trust_root(),
                    &id,
                    Some(self.checkpoint.as_bytes()),
                )
                .unwrap()
                .to_text()
                .into_bytes();
                (self.envelopes[i].clone(), proof)
            })
            .collect()
    }
}
