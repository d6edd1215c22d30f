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

/// This build is one in which serde_json keeps a document's member order (Cedar turns on its
/// `preserve_order`, and Cargo unifies features): a refused policy's diagnostics, and with
/// them its code (the first error's), are still those of the shipped build, which reads
/// members in a fixed order of its own, not the document's.
#[test]
fn a_refused_policys_diagnostics_do_not_depend_on_serde_jsons_member_order() {
    let members: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
    assert_eq!(
        members.keys().next().map(String::as_str),
        Some("b"),
        "this build was to keep the document's member order"
    );
    let report = parmana_policy::check(
        br#"{"schema_version":"2.0.0","policy_id":"p","policy_version":"1.0.0","decisions":["y"],
            "signals":{"b":{"type":"text","required":true},"a":{"type":"number","required":"yes"}},
            "rules":[{"id":"r","when":{"signal":"b","zz":1,"eq":"x"},"then":{"decision":"y"}}],
            "default":{"decision":"y"},"z":1,"c":2}"#,
    );
    let found: Vec<(&str, &str)> = report
        .diagnostics
        .iter()
        .map(|d| (d.code.code(), d.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("policy.unknown_field", "/c"),
            ("policy.unknown_field", "/z"),
            ("policy.wrong_json_type", "/signals/a/required"),
            ("policy.unknown_signal_type", "/signals/b/type"),
            ("policy.unknown_operator", "/rules/0/when/zz"),
            // (Not `policy.undeclared_signal` at `/rules/0/when/signal`: `b` is declared, its
            // declaration refused with its own error above.)
        ],
        "{}",
        report.render()
    );
}
