//! Fixed workloads for instruction counting under `valgrind --tool=callgrind` (stable on a noisy machine).
//!
//! `instruction_counts WORKLOAD N` runs N iterations of one workload after the same set-up;
//! the difference between N and 0 iterations, divided by N, is the cost of one iteration.
//! Workloads: `sign`, `verify` (bare Ed25519 over an attestation's PAE), `execute` (memory
//! store), `verify-attestation`, `verify-batch` (N attestations, 64 distinct ones per
//! `verify_attestations` call), `verify-proof` (the transparency-log proof alone, as
//! `runtime/verify_proof` checks it on top of `verify-attestation`: one
//! `AttestationProofVerifier` kept across iterations, an entry in the middle of a 1,000-entry
//! log, the same proof each time), `verify-proof-batch` (the same, cycling through the distinct
//! proofs of 64 consecutive entries around the middle). `cargo xtask bench-report` does not use this; BENCHMARKS.md
//! quotes it where timings were too noisy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // measurement tool: a failed unwrap is a failed run

#[path = "../support/proof_log.rs"]
mod proof_log;
#[path = "../support/signed_message.rs"]
mod signed_message;

use proof_log::ProofLog;
use signed_message::signed_message;

use parmana_runtime::replay::MemoryReplayStore;
use parmana_runtime::trust::{LocalSigningKey, Signer, verify_attestations};
use parmana_runtime::{
    AttestationProofVerifier, ExecutionRequest, FixedClock, RuntimeEnvironment,
    RuntimeEnvironmentConfig, execute_from_signals, verify_attestation,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("execute", String::as_str);
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let root = parmana_testkit::repository_root();
    let now = parmana_testkit::now();
    let clock = FixedClock(now);
    let env =
        RuntimeEnvironment::load(&RuntimeEnvironmentConfig::standard_layout(&root), now).unwrap();
    let signer = LocalSigningKey::read_pem_file(&root.join("trust/keys/attestation.pem")).unwrap();
    let store = MemoryReplayStore::new();
    let signals =
        br#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;
    let request = |i: u64| {
        ExecutionRequest::parse(
            &format!("count-{i}"),
            "claims-approval@1.0.0",
            signals.to_vec(),
        )
        .unwrap()
    };
    let envelope = execute_from_signals(&request(u64::MAX), &signer, &store, &env, &clock)
        .unwrap()
        .into_envelope();
    // The floor signs and verifies the very bytes an attestation signs: DSSE's PAE of its payload.
    let message = signed_message(&envelope, &signer.public_key());
    let signature = signer.sign(&message).unwrap();
    let public = signer.public_key();
    let mut sink = 0usize;
    if let Some(distinct) = match workload {
        "verify-proof" => Some(1),
        "verify-proof-batch" => Some(64),
        _ => None,
    } {
        let (proofs, mut verifier) = proof_fixture(distinct);
        for (envelope, proof) in proofs.iter().cycle().take(usize::try_from(n).unwrap()) {
            sink += usize::from(verifier.verify(envelope, proof).is_ok());
        }
        println!("{workload} x{n}: {sink}");
        return;
    }
    if workload == "verify-batch" {
        let batch: Vec<Vec<u8>> = (0..64)
            .map(|i| {
                execute_from_signals(&request(u64::MAX - 1 - i), &signer, &store, &env, &clock)
                    .unwrap()
                    .into_envelope()
            })
            .collect();
        let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for _ in 0..n.div_ceil(64) {
            let reports = verify_attestations(&batch, env.trust_root());
            sink += reports.iter().filter(|r| r.is_valid()).count();
        }
        println!("{workload} x{}: {sink}", n.div_ceil(64) * 64);
        return;
    }
    for i in 0..n {
        sink += match workload {
            "sign" => signer.sign(&message).unwrap()[0] as usize,
            "verify" => usize::from(public.verify_signature(&message, &signature)),
            "execute" => execute_from_signals(&request(i), &signer, &store, &env, &clock)
                .unwrap()
                .envelope()
                .len(),
            "verify-attestation" => {
                usize::from(verify_attestation(&envelope, env.trust_root(), None, None).is_valid())
            }
            other => panic!("unknown workload {other}"),
        };
    }
    println!("{workload} x{n}: {sink}");
}

/// The set-up of `runtime/verify_proof` (benches/runtime.rs): a fixture chain rotated to a
/// version naming a log, 1,000 executions, one signed checkpoint, and the envelopes and proofs
/// of `distinct` consecutive entries from the middle one on, with a verifier that has already
/// verified the checkpoint once.
#[allow(clippy::type_complexity)]
fn proof_fixture(distinct: usize) -> (Vec<(Vec<u8>, Vec<u8>)>, AttestationProofVerifier) {
    const ENTRIES: usize = 1_000;
    let log = ProofLog::new(ENTRIES);
    let proofs = log.proofs(ENTRIES / 2..ENTRIES / 2 + distinct);
    let environment = &log.environment;
    let mut verifier = AttestationProofVerifier::new(environment.trust_history()).unwrap();
    let (envelope, proof) = &proofs[0];
    verifier.verify(envelope, proof).unwrap();
    (proofs, verifier)
}
