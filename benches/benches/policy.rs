//! Policy evaluation cost: one claims decision from typed (validated) signals and from JSON text, and 10 / 100 / 1,000 rules with one relevant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

const CLAIMS_POLICY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../policies/claims-approval/1.0.0/policy.json"
));

const CLAIMS_SIGNALS: &[u8] = br#"{"claim_amount": 8000, "vip_customer": true, "fraud_score": 12, "country": "DE", "policy_age_days": 400}"#;

/// `n` rules, each keyed on its own product; only the last one is relevant to the signals.
fn rules_policy(n: usize) -> Vec<u8> {
    let rules: Vec<_> = (0..n)
        .map(|k| {
            json!({
                "id": format!("product-{k}"),
                "when": {"all": [
                    {"signal": "product", "eq": format!("p-{k}")},
                    {"signal": "amount", "le": 1000 + k}
                ]},
                "then": {"decision": if k % 2 == 0 { "approve" } else { "deny" }}
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schema_version": "2.0.0", "policy_id": "many-rules", "policy_version": "1.0.0",
        "decisions": ["approve", "deny", "escalate"],
        "signals": {
            "product": {"type": "string", "required": true},
            "amount": {"type": "number", "required": true, "minimum": 0}
        },
        "rules": rules,
        "default": {"decision": "escalate"}
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let claims = parmana_policy::compile(CLAIMS_POLICY).unwrap();
    let validated = claims.validate_signals_json(CLAIMS_SIGNALS).unwrap();
    assert_eq!(validated.evaluate().unwrap().rule_id, "vip");
    let mut group = c.benchmark_group("policy/claims");
    group.bench_function("typed_signals", |b| {
        b.iter(|| black_box(&validated).evaluate().unwrap())
    });
    group.bench_function("json_text", |b| {
        b.iter(|| {
            claims
                .validate_signals_json(black_box(CLAIMS_SIGNALS))
                .map(|s| s.evaluate().unwrap().decision.len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("policy/rules_one_relevant");
    for n in [10usize, 100, 1_000] {
        let policy = parmana_policy::compile(&rules_policy(n)).unwrap();
        let signals = json!({"product": format!("p-{}", n - 1), "amount": 500});
        let validated = policy.validate_signals(&signals).unwrap();
        assert_eq!(
            validated.evaluate().unwrap().rule_id,
            format!("product-{}", n - 1)
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &validated, |b, v| {
            b.iter(|| black_box(v).evaluate().unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
