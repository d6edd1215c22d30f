//! Canonicalization cost: a ~600-byte attestation-like document and a 64 KiB document, from a value and from text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;

fn attestation_like() -> Value {
    json!({
        "execution_id": "exec-0001-claims-2026-11-28",
        "policy": {
            "id": "claims-approval",
            "version": "1.0.0",
            "policy_digest": "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
            "bundle_digest": "sha256:d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"
        },
        "signals_digest": "sha256:4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce",
        "decision": "approve",
        "rule_id": "vip",
        "reason": "VIP customer under the VIP ceiling",
        "evaluator": {"name": "parmana-policy", "version": "0.1.0", "semantics": "2"},
        "runtime": {"name": "parmana-runtime", "version": "0.1.0"},
        "trust_root": {"version": 2, "digest": "sha256:4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a"},
        "release_manifest": {"version": 1, "digest": "sha256:ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d"},
        "executed_at": "2026-11-28T21:00:00Z"
    })
}

fn large_document() -> Value {
    let items: Vec<Value> = (0..560)
        .map(|i| {
            json!({
                "id": format!("item-{i:05}"),
                "amount": f64::from(i) * 13.37,
                "flags": [i % 2 == 0, i % 3 == 0],
                "note": "ünïcödé text with \"quotes\" and \\ slashes"
            })
        })
        .collect();
    json!({ "items": items })
}

fn bench(c: &mut Criterion) {
    for (name, value) in [
        ("attestation_600b", attestation_like()),
        ("document_64kib", large_document()),
    ] {
        let text = serde_json::to_vec(&value).unwrap_or_default();
        let mut group = c.benchmark_group(format!("canon/{name}"));
        group.throughput(criterion::Throughput::Bytes(text.len() as u64));
        group.bench_function("from_value", |b| {
            b.iter(|| parmana_canon::to_canonical_vec(black_box(&value)))
        });
        group.bench_function("from_text", |b| {
            b.iter(|| parmana_canon::canonicalize(black_box(&text)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
