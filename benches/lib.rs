//! Shared inputs for the Parmana benchmarks; the benchmarks themselves are under `benches/benches/`.
//!
//! The side-by-side rows compare our engine with Cedar and regorus on the same policy. The policy
//! is defined once, as data, in `benches/claims/claims.json` ([`claims_spec`]); [`render`] writes
//! it in each engine's language, [`generate`] draws signal sets from it, and [`spec`] holds the
//! definition and a reference evaluator. The scaling rows use [`scaling_spec`]: `n` rules, exactly
//! one of which (the last) is relevant to [`scaling_request`].
//!
//! The peer engines are optional dependencies behind the `peers` feature, which this library never
//! uses; their adapters live in `benches/engines/`, shared by the `peers` bench and the
//! `peers_agree` test, both of which require the feature (`cargo test -p parmana-benches
//! --features peers --benches --tests`). Without it, `cargo build --workspace` does not compile
//! Cedar, regorus or lalrpop.

pub mod generate;
pub mod render;
pub mod spec;

use std::collections::BTreeMap;

use spec::{
    Leaf, Literal, Op, PolicySpec, RuleSpec, SignalKind, SignalSet, SignalValue, SpecError, Verdict,
};

/// The text of the benchmark claims policy definition.
pub const CLAIMS_JSON: &str = include_str!("claims/claims.json");

/// The benchmark claims policy (at least six rules: denials by fraud score, country list, amount
/// ceiling and policy age; approvals by amount and VIP status; default escalate).
pub fn claims_spec() -> Result<PolicySpec, SpecError> {
    PolicySpec::from_json(CLAIMS_JSON.as_bytes())
}

/// The rule counts of the scaling rows.
pub const SCALING_RULE_COUNTS: [usize; 3] = [10, 100, 1000];

/// A policy of `rule_count` rules `r0`, `r1`, …: rule `ri` holds when `region == "ri"` and
/// `claim_amount <= 1000`, approving for even `i` and denying for odd `i`; default escalate.
pub fn scaling_spec(rule_count: usize) -> Result<PolicySpec, SpecError> {
    let signals = BTreeMap::from([
        (
            "claim_amount".to_owned(),
            SignalKind::Integer {
                minimum: 0,
                maximum: 100_000,
            },
        ),
        ("region".to_owned(), SignalKind::String { one_of: None }),
    ]);
    let rules = (0..rule_count)
        .map(|i| RuleSpec {
            id: format!("r{i}"),
            when: vec![
                Leaf {
                    signal: "region".to_owned(),
                    op: Op::Eq,
                    value: Literal::String(format!("r{i}")),
                },
                Leaf {
                    signal: "claim_amount".to_owned(),
                    op: Op::Le,
                    value: Literal::Integer(1000),
                },
            ],
            verdict: Verdict {
                decision: if i % 2 == 0 { "approve" } else { "deny" }.to_owned(),
                reason: format!("region r{i}"),
            },
        })
        .collect();
    PolicySpec::new(
        format!("scaling_{rule_count}"),
        signals,
        vec![
            "approve".to_owned(),
            "deny".to_owned(),
            "escalate".to_owned(),
        ],
        rules,
        Verdict {
            decision: "escalate".to_owned(),
            reason: "no rule matched".to_owned(),
        },
    )
}

/// The request of the scaling rows: only the last of the `rule_count` rules is relevant to it.
pub fn scaling_request(rule_count: usize) -> SignalSet {
    SignalSet::from([
        ("claim_amount".to_owned(), SignalValue::Integer(500)),
        (
            "region".to_owned(),
            SignalValue::String(format!("r{}", rule_count.saturating_sub(1))),
        ),
    ])
}

/// The claims request of the single-decision rows: a VIP claim that passes every denial and the
/// small-claim approval, so an ordered engine reads every rule before the one that decides.
pub fn claims_request() -> SignalSet {
    SignalSet::from([
        ("claim_amount".to_owned(), SignalValue::Integer(4200)),
        ("country".to_owned(), SignalValue::String("FR".to_owned())),
        ("fraud_score".to_owned(), SignalValue::Integer(12)),
        ("policy_age_days".to_owned(), SignalValue::Integer(400)),
        ("vip_customer".to_owned(), SignalValue::Boolean(true)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SignalGenerator;
    use crate::spec::{DEFAULT_RULE_ID, signals_to_json};
    use std::collections::BTreeSet;

    #[test]
    fn claims_definition_loads_with_the_rules_issue_7_asks_for() {
        let spec = claims_spec().unwrap();
        let ids: Vec<&str> = spec.rules().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["fraud", "embargo", "ceiling", "new-policy", "small", "vip"]
        );
        assert_eq!(spec.default_verdict().decision, "escalate");
    }

    #[test]
    fn bad_definitions_are_refused_with_their_code() {
        let good: serde_json::Value = serde_json::from_str(CLAIMS_JSON).unwrap();
        let cases: &[(&str, &str, serde_json::Value)] = &[
            (
                "/rules/0/when/0/signal",
                "bench_spec.undeclared_signal",
                serde_json::json!("nope"),
            ),
            (
                "/rules/0/when/0/op",
                "bench_spec.shape",
                serde_json::json!("between"),
            ),
            (
                "/rules/0/when/0/value",
                "bench_spec.operator_mismatch",
                serde_json::json!("80"),
            ),
            (
                "/rules/1/when/0/op",
                "bench_spec.operator_mismatch",
                serde_json::json!("lt"),
            ),
            (
                "/rules/1/when/0/value",
                "bench_spec.empty_condition",
                serde_json::json!([]),
            ),
            (
                "/rules/0/when",
                "bench_spec.empty_condition",
                serde_json::json!([]),
            ),
            (
                "/rules/1/id",
                "bench_spec.duplicate_rule",
                serde_json::json!("fraud"),
            ),
            (
                "/rules/1/id",
                "bench_spec.duplicate_rule",
                serde_json::json!("default"),
            ),
            (
                "/rules/1/id",
                "bench_spec.bad_name",
                serde_json::json!("Embargo"),
            ),
            (
                "/rules/2/decision",
                "bench_spec.undeclared_decision",
                serde_json::json!("maybe"),
            ),
            (
                "/default/decision",
                "bench_spec.undeclared_decision",
                serde_json::json!("maybe"),
            ),
            (
                "/signals/country/type",
                "bench_spec.shape",
                serde_json::json!("text"),
            ),
            (
                "/name",
                "bench_spec.bad_name",
                serde_json::json!("claims-2"),
            ),
        ];
        for (pointer, code, replacement) in cases {
            let mut doc = good.clone();
            *doc.pointer_mut(pointer).unwrap() = replacement.clone();
            let text = serde_json::to_vec(&doc).unwrap();
            let err = PolicySpec::from_json(&text).unwrap_err();
            assert_eq!(err.code(), *code, "{pointer} = {replacement}: {err}");
        }
        let duplicate_key = br#"{"name": "a", "name": "b"}"#;
        assert_eq!(
            PolicySpec::from_json(duplicate_key).unwrap_err().code(),
            "bench_spec.json"
        );
    }

    #[test]
    fn the_reference_evaluator_takes_the_first_matching_rule() {
        let spec = claims_spec().unwrap();
        let outcome = spec.decide(&claims_request()).unwrap();
        assert_eq!((outcome.decision, outcome.rule_id), ("approve", "vip"));
        let mut fraud_too = claims_request();
        fraud_too.insert("fraud_score".to_owned(), SignalValue::Integer(81));
        fraud_too.insert("country".to_owned(), SignalValue::String("KP".to_owned()));
        let outcome = spec.decide(&fraud_too).unwrap();
        assert_eq!((outcome.decision, outcome.rule_id), ("deny", "fraud"));
        let mut wrong_type = claims_request();
        wrong_type.insert("fraud_score".to_owned(), SignalValue::Boolean(true));
        assert_eq!(
            spec.decide(&wrong_type).unwrap_err().code(),
            "bench_spec.bad_signal"
        );
        for count in SCALING_RULE_COUNTS {
            let spec = scaling_spec(count).unwrap();
            assert_eq!(spec.rules().len(), count);
            let outcome = spec.decide(&scaling_request(count)).unwrap();
            assert_eq!(outcome.rule_id, format!("r{}", count - 1));
        }
    }

    #[test]
    fn the_generator_is_deterministic_and_reaches_every_rule_and_the_default() {
        let spec = claims_spec().unwrap();
        let first = SignalGenerator::new(&spec, 7).take_sets(300);
        assert_eq!(first, SignalGenerator::new(&spec, 7).take_sets(300));
        assert_ne!(first, SignalGenerator::new(&spec, 8).take_sets(300));
        let mut reached = BTreeSet::new();
        for set in &first {
            assert_eq!(set.len(), spec.signals().len());
            reached.insert(spec.decide(set).unwrap().rule_id.to_owned());
        }
        let mut expected: BTreeSet<String> = spec.rules().iter().map(|r| r.id.clone()).collect();
        expected.insert(DEFAULT_RULE_ID.to_owned());
        assert_eq!(reached, expected);
    }

    #[test]
    fn signals_render_as_one_json_object() {
        let text = signals_to_json(&claims_request());
        assert_eq!(
            text,
            r#"{"claim_amount":4200,"country":"FR","fraud_score":12,"policy_age_days":400,"vip_customer":true}"#
        );
    }

    #[test]
    fn the_three_renderings_of_the_claims_policy() {
        let spec = claims_spec().unwrap();
        insta::assert_snapshot!("claims_parmana", render::parmana_policy_json(&spec));
        insta::assert_snapshot!("claims_cedar_schema", render::cedar_schema(&spec));
        insta::assert_snapshot!("claims_cedar", render::cedar_policies(&spec));
        insta::assert_snapshot!("claims_rego", render::rego_module(&spec));
    }
}
