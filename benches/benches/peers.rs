//! Side by side with Cedar and regorus on the same claims policy: single decisions and scaling.
//!
//! Before anything is timed, every engine decides 1,000 generated signal sets (and the scaling
//! policies decide their own) from typed signals and from JSON text; if any engine disagrees with
//! the reference evaluator on decision or rule id, the bench panics. Rows (stable ids, read by
//! `cargo xtask bench-report`):
//!
//! * `decision/typed/{parmana,cedar,regorus,regorus-vm}`: one decision from pre-built typed input
//!   (our pre-validated signals, a Cedar `Request`, a regorus `Value`);
//! * `decision/json/{…}`: one decision from JSON text, parsing and validation included;
//! * `scaling/{10,100,1000}/{parmana,cedar,regorus}`: `n` rules, only the last relevant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code: a failed unwrap is a failed bench

#[path = "../engines/mod.rs"]
mod engines;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use engines::RegoMode;
use engines::cedar::CedarEngine;
use engines::parmana::ParmanaEngine;
use engines::rego::RegoEngine;
use parmana_benches::generate::SignalGenerator;
use parmana_benches::spec::{DEFAULT_RULE_ID, PolicySpec, SignalSet, signals_to_json};
use parmana_benches::{
    SCALING_RULE_COUNTS, claims_request, claims_spec, scaling_request, scaling_spec,
};

/// Signal sets the differential check runs before timing.
const CHECKED_SETS: usize = 1000;

/// Runs the differential check and returns how often each rule decided; panics on any disagreement.
fn differential_check(
    spec: &PolicySpec,
    sets: usize,
    seed: u64,
    extra: Option<SignalSet>,
    modes: &[RegoMode],
) -> BTreeMap<String, usize> {
    let mut sets = SignalGenerator::new(spec, seed).take_sets(sets);
    sets.extend(extra);
    match engines::check_agreement(spec, &sets, modes) {
        Ok(agreement) => {
            eprintln!(
                "differential check passed for {}: {} signal sets, decided by {:?}",
                spec.name(),
                agreement.sets,
                agreement.reached
            );
            agreement.reached
        }
        Err(disagreement) => panic!(
            "differential check FAILED for {}: {disagreement}",
            spec.name()
        ),
    }
}

fn decisions(c: &mut Criterion) {
    let spec = claims_spec().unwrap();
    let reached = differential_check(
        &spec,
        CHECKED_SETS,
        2026,
        None,
        &[RegoMode::Interpreter, RegoMode::Vm],
    );
    for rule in spec.rules() {
        assert!(
            reached.contains_key(&rule.id),
            "the generated sets never reach rule {}",
            rule.id
        );
    }
    assert!(
        reached.contains_key(DEFAULT_RULE_ID),
        "the generated sets never reach the default"
    );
    let signals = claims_request();
    let json = signals_to_json(&signals);
    let expected = spec.decide(&signals).unwrap();

    let ours = ParmanaEngine::new(&spec).unwrap();
    let validated = ours.typed_signals(&signals).unwrap();
    assert_eq!(
        engines::parmana::outcome(&ours.decide(&validated).unwrap()),
        expected
    );
    let cedar = CedarEngine::new(&spec).unwrap();
    let request = cedar.typed_request(&signals).unwrap();
    assert_eq!(cedar.decide(&request).unwrap(), expected);
    let mut regos: Vec<(&str, RegoEngine)> = vec![
        (
            "regorus",
            RegoEngine::new(&spec, RegoMode::Interpreter).unwrap(),
        ),
        ("regorus-vm", RegoEngine::new(&spec, RegoMode::Vm).unwrap()),
    ];
    let input = RegoEngine::typed_input(&signals).unwrap();

    let mut group = c.benchmark_group("decision/typed");
    group.bench_function("parmana", |b| b.iter(|| ours.decide(black_box(&validated))));
    group.bench_function("cedar", |b| b.iter(|| cedar.decide(black_box(&request))));
    for (name, rego) in &mut regos {
        group.bench_function(*name, |b| b.iter(|| rego.decide(black_box(input.clone()))));
    }
    group.finish();

    let mut group = c.benchmark_group("decision/json");
    group.bench_function("parmana", |b| b.iter(|| ours.decide_json(black_box(&json))));
    group.bench_function("cedar", |b| b.iter(|| cedar.decide_json(black_box(&json))));
    for (name, rego) in &mut regos {
        group.bench_function(*name, |b| b.iter(|| rego.decide_json(black_box(&json))));
    }
    group.finish();
}

fn scaling(c: &mut Criterion) {
    for count in SCALING_RULE_COUNTS {
        let spec = scaling_spec(count).unwrap();
        let signals = scaling_request(count);
        differential_check(
            &spec,
            50,
            11,
            Some(signals.clone()),
            &[RegoMode::Interpreter],
        );
        let ours = ParmanaEngine::new(&spec).unwrap();
        let validated = ours.typed_signals(&signals).unwrap();
        let cedar = CedarEngine::new(&spec).unwrap();
        let request = cedar.typed_request(&signals).unwrap();
        let mut rego = RegoEngine::new(&spec, RegoMode::Interpreter).unwrap();
        let input = RegoEngine::typed_input(&signals).unwrap();

        let mut group = c.benchmark_group(format!("scaling/{count}"));
        group.bench_function("parmana", |b| b.iter(|| ours.decide(black_box(&validated))));
        group.bench_function("cedar", |b| b.iter(|| cedar.decide(black_box(&request))));
        group.bench_function("regorus", |b| {
            b.iter(|| rego.decide(black_box(input.clone())))
        });
        group.finish();
    }
}

criterion_group!(benches, decisions, scaling);
criterion_main!(benches);
