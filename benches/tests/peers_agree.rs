//! The peer-equivalence check as a normal test: Parmana, Cedar and regorus decide the same (needs `--features peers`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../engines/mod.rs"]
mod engines;

use parmana_benches::generate::SignalGenerator;
use parmana_benches::{SCALING_RULE_COUNTS, claims_spec, scaling_request, scaling_spec};

#[test]
fn every_engine_decides_the_claims_policy_like_the_reference() {
    let spec = claims_spec().unwrap();
    let sets = SignalGenerator::new(&spec, 2026).take_sets(300);
    let agreement = engines::check_agreement(
        &spec,
        &sets,
        &[engines::RegoMode::Interpreter, engines::RegoMode::Vm],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(agreement.sets, 300);
    assert_eq!(
        agreement.reached.len(),
        spec.rules().len() + 1,
        "{:?}",
        agreement.reached
    );
}

#[test]
fn every_engine_decides_the_scaling_policies_like_the_reference() {
    for count in SCALING_RULE_COUNTS {
        let spec = scaling_spec(count).unwrap();
        let mut sets = SignalGenerator::new(&spec, 11).take_sets(20);
        sets.push(scaling_request(count));
        let agreement = engines::check_agreement(&spec, &sets, &[engines::RegoMode::Interpreter])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            agreement
                .reached
                .get(&format!("r{}", count - 1))
                .is_some_and(|n| *n >= 1)
        );
        assert!(
            agreement.reached.contains_key("default"),
            "{:?}",
            agreement.reached
        );
    }
}
