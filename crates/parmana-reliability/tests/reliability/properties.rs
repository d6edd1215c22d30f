//! Property-test versions of the fuzz targets (bounded case counts, so they run in CI): strict JSON, policy parsing and validation, signal validation, attestation verification, trust-root / bundle / release-manifest verification — no panic, and nothing verifies unless its signed content is authentic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use parmana_canon::{Digest, canonicalize, parse_strict, to_canonical_vec};
use parmana_policy::CompiledPolicy;
use parmana_reliability::{claims_signals, fixed_clock, fixed_now};
use parmana_replay::MemoryReplayStore;
use parmana_runtime::{RuntimeEnvironment, execute_from_signals};
use parmana_testkit::{FixtureEnvironment, repository_root};
use parmana_trust::{
    ExecutionPredicate, PublicKey, read_public_key_file, verify_attestation, verify_attestations,
    verify_bundle, verify_release_manifest, verify_trust_chain,
};
use proptest::prelude::*;
use serde_json::Value;

fn fixture_bytes(relative: &str) -> Vec<u8> {
    std::fs::read(repository_root().join(relative)).unwrap()
}

struct Fixtures {
    _fixture: FixtureEnvironment,
    environment: RuntimeEnvironment,
    pinned: PublicKey,
    claims: CompiledPolicy,
    attestation: Vec<u8>,
    predicate: ExecutionPredicate,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let request = parmana_reliability::request_of(
        "property-1",
        "claims-approval",
        "1.0.0",
        claims_signals(3),
        true,
    )
    .unwrap();
    let attestation = execute_from_signals(
        &request,
        &signer,
        &MemoryReplayStore::new(),
        &environment,
        &fixed_clock(),
    )
    .unwrap();
    Fixtures {
        pinned: read_public_key_file(&fixture.root().join("trust").join("root.pub")).unwrap(),
        claims: parmana_policy::compile(&fixture_bytes(
            "policies/claims-approval/1.0.0/policy.json",
        ))
        .unwrap(),
        predicate: attestation.predicate().clone(),
        attestation: attestation.into_envelope(),
        environment,
        _fixture: fixture,
    }
});

/// `original` with up to four bytes changed (positions and values chosen by proptest).
fn mutated(original: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = original.len();
    proptest::collection::vec((0..len, any::<u8>()), 1..=4).prop_map(move |edits| {
        let mut bytes = original.clone();
        for (position, value) in edits {
            bytes[position] = value;
        }
        bytes
    })
}

/// Arbitrary JSON values (bounded), as text generators feed the strict parser.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn strict_json_never_panics_and_canonical_output_is_a_fixed_point(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(value) = parse_strict(&bytes) {
            let canonical = to_canonical_vec(&value).unwrap();
            prop_assert_eq!(canonicalize(&canonical).unwrap(), canonical);
        }
    }

    #[test]
    fn generated_json_round_trips_through_the_strict_parser(value in json_value()) {
        let canonical = to_canonical_vec(&value).unwrap();
        let parsed = parse_strict(&canonical).unwrap();
        prop_assert_eq!(to_canonical_vec(&parsed).unwrap(), canonical);
    }

    #[test]
    fn signal_validation_never_panics_and_decides_a_declared_decision(value in json_value()) {
        let claims = &FIXTURES.claims;
        if let Ok(signals) = claims.validate_signals(&value) {
            prop_assert!(["approve", "deny", "escalate"].contains(&signals.evaluate().unwrap().decision));
        }
    }

}

/// Signals shaped like the claims policy's, each value valid more often than not (an amount from
/// 0 to 100,000, a country of its enum), else of another type or outside its range: each set
/// validates and decides a declared decision, or is refused with a `policy.signal*` code. At
/// least a quarter of the cases must validate, so that the decision is checked in every run
/// (drawn uniformly, about one case in a thousand would).
#[test]
fn valid_looking_signals_validate_or_refuse_with_a_policy_code() {
    use proptest::test_runner::{Config, TestRunner};
    const CASES: u32 = 1024;
    let strategy = (
        prop_oneof![
            6 => (0..=100_000i32).prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<i32>().prop_map(Value::from),
            1 => any::<bool>().prop_map(Value::from),
            1 => ".{0,4}".prop_map(Value::from),
        ],
        proptest::option::of(-5i64..110),
        prop_oneof![
            6 => proptest::sample::select(vec!["DE", "FR", "GB", "IR", "KP", "NL", "US"])
                .prop_map(str::to_owned),
            1 => "[A-Z]{2}",
        ],
        -3i64..100,
    );
    let decided = std::cell::Cell::new(0_u32);
    TestRunner::new(Config::with_cases(CASES))
        .run(&strategy, |(amount, fraud, country, age)| {
            let mut signals = serde_json::json!({"claim_amount": amount, "vip_customer": age % 2 == 0, "country": country, "policy_age_days": age});
            if let Some(fraud) = fraud {
                signals["fraud_score"] = fraud.into();
            }
            match FIXTURES.claims.validate_signals(&signals) {
                Ok(validated) => {
                    decided.set(decided.get() + 1);
                    prop_assert!(["approve", "deny", "escalate"]
                        .contains(&validated.evaluate().unwrap().decision));
                }
                Err(error) => prop_assert!(error.code().starts_with("policy.signal")),
            }
            Ok(())
        })
        .unwrap();
    assert!(
        decided.get() >= CASES / 4,
        "only {} of {CASES} cases validated",
        decided.get()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_policies_never_panic_and_check_agrees_with_compile(
        bytes in mutated(fixture_bytes("policies/claims-approval/1.0.0/policy.json"))
    ) {
        let report = parmana_policy::check(&bytes);
        prop_assert_eq!(report.is_ok(), parmana_policy::compile(&bytes).is_ok());
    }

    #[test]
    fn arbitrary_policy_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let report = parmana_policy::check(&bytes);
        prop_assert_eq!(report.is_ok(), parmana_policy::compile(&bytes).is_ok());
    }

    #[test]
    fn a_mutated_attestation_verifies_only_with_the_authentic_content(bytes in mutated(FIXTURES.attestation.clone())) {
        let report = verify_attestation(&bytes, FIXTURES.environment.trust_root(), None, None);
        if report.is_valid() {
            // Compared as RFC 8785 bytes (a number decoded as 2100 equals one built as 2100.0).
            let found = to_canonical_vec(report.predicate().unwrap()).unwrap();
            prop_assert_eq!(found, to_canonical_vec(&FIXTURES.predicate).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Batch verification reports exactly what one-by-one verification reports, on any mix of
    /// the authentic attestation and mutations of it (bad signatures, broken payloads, JSON).
    #[test]
    fn batch_verification_reports_what_single_verification_reports(
        envelopes in proptest::collection::vec(
            prop_oneof![
                Just(FIXTURES.attestation.clone()),
                mutated(FIXTURES.attestation.clone()),
            ],
            0..8,
        )
    ) {
        let trust_root = FIXTURES.environment.trust_root();
        let slices: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let single: Vec<_> = slices
            .iter()
            .map(|envelope| verify_attestation(envelope, trust_root, None, None))
            .collect();
        prop_assert_eq!(verify_attestations(&slices, trust_root), single);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_trust_documents_verify_only_with_the_authentic_content(
        root_1 in mutated(fixture_bytes("trust/trust-root.d/1.json")),
        root_2 in mutated(fixture_bytes("trust/trust-root.json")),
        release in mutated(fixture_bytes("release-manifest.json")),
        bundle in mutated(fixture_bytes("policies/patient-triage/1.0.0/bundle.json")),
    ) {
        let f = &*FIXTURES;
        let authentic_1 = verify_trust_chain(&f.pinned, &[fixture_bytes("trust/trust-root.d/1.json")], fixed_now(), None).unwrap();
        if let Ok(v1) = verify_trust_chain(&f.pinned, &[root_1], fixed_now(), None) {
            prop_assert_eq!(v1.digest(), authentic_1.digest());
        }
        if let Ok(v2) = verify_trust_chain(&f.pinned, &[fixture_bytes("trust/trust-root.d/1.json"), root_2], fixed_now(), None) {
            prop_assert_eq!(v2.digest(), f.environment.trust_root().digest());
        }
        if let Ok(manifest) = verify_release_manifest(f.environment.trust_root(), &release, fixed_now(), None) {
            prop_assert_eq!(manifest.digest(), f.environment.release_manifest().digest());
        }
        let dir = repository_root().join("policies/patient-triage/1.0.0");
        let mut files: BTreeMap<String, Vec<u8>> = parmana_trust::read_bundle_dir(&dir).unwrap();
        let authentic: Digest = verify_bundle(f.environment.trust_root(), &files).unwrap().bundle_digest();
        files.insert("bundle.json".to_owned(), bundle);
        if let Ok(verified) = verify_bundle(f.environment.trust_root(), &files) {
            prop_assert_eq!(verified.bundle_digest(), authentic);
        }
    }
}
