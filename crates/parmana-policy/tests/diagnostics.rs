//! Terminal rendering of diagnostics, traces and test reports (insta snapshots), and the documented size limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use parmana_policy::{
    CheckReport, Diagnostic, DiagnosticCode, check, compile, limits, run_policy_tests,
};
use serde_json::json;

/// The diagnostics of `report` with `code`, in order.
fn diagnostics_with(report: &CheckReport, code: DiagnosticCode) -> Vec<&Diagnostic> {
    report
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .collect()
}

fn claims_policy() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../policies/claims-approval/1.0.0/policy.json"),
    )
    .unwrap()
}

#[test]
fn errors_render_with_code_path_and_snippet() {
    let policy = json!({
        "schema_version": "2.0.0",
        "policy_id": "claims-approval",
        "policy_version": "1.0.0",
        "decisions": ["approve", "deny"],
        "signals": {
            "amount": {"type": "number", "required": true},
            "fraud_score": {"type": "integer", "required": false},
            "vip": {"type": "boolean", "required": true}
        },
        "rules": [
            {"id": "fraud", "when": {"signal": "fraud_score", "gt": 80}, "then": {"decision": "deny"}},
            {"id": "vip", "when": {"all": [{"signal": "vip", "gt": 1}, {"signal": "amont", "le": 10}]}, "then": {"decision": "approve"}},
            {"id": "typo", "when": {"signal": "amount", "le": 5}, "then": {"decision": "aprove"}, "priority": 1}
        ],
        "default": {"decision": "deny"}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    assert!(!report.is_ok());
    insta::assert_snapshot!("errors", report.render());
    let err = report.into_result().unwrap_err();
    assert_eq!(err.code(), "policy.unguarded_optional_signal");
    insta::assert_snapshot!("error_display", err.to_string());
}

#[test]
fn warnings_render_and_do_not_refuse() {
    let policy = json!({
        "schema_version": "2.0.0",
        "policy_id": "w",
        "policy_version": "1.0.0",
        "decisions": ["approve", "deny", "escalate"],
        "signals": {"amount": {"type": "number", "required": true, "minimum": 0}},
        "rules": [
            {"id": "impossible", "when": {"all": [{"signal": "amount", "gt": 10}, {"signal": "amount", "lt": 5}]}, "then": {"decision": "deny"}},
            {"id": "everything", "when": {"signal": "amount", "ge": 0}, "then": {"decision": "approve"}},
            {"id": "big", "when": {"signal": "amount", "gt": 1000}, "then": {"decision": "deny"}}
        ],
        "default": {"decision": "approve"}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    assert!(report.is_ok());
    assert_eq!(report.errors().count(), 0);
    let codes: Vec<DiagnosticCode> = report.warnings().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            DiagnosticCode::RuleNeverMatches,
            DiagnosticCode::RuleShadowed,
            DiagnosticCode::DecisionUnused,
            DiagnosticCode::DecisionUnused
        ]
    );
    insta::assert_snapshot!("warnings", report.render());
}

#[test]
fn explain_trace_renders() {
    let policy = compile(&claims_policy()).unwrap();
    for (name, signals) in [
        (
            "explain_vip",
            json!({"claim_amount": 8000, "vip_customer": true, "fraud_score": 12, "country": "DE", "policy_age_days": 400}),
        ),
        (
            "explain_default",
            json!({"claim_amount": 5000, "vip_customer": false, "country": "US", "policy_age_days": 400}),
        ),
    ] {
        let validated = policy.validate_signals(&signals).unwrap();
        let explanation = validated.explain().unwrap();
        assert_eq!(explanation.decision, validated.evaluate().unwrap());
        insta::assert_snapshot!(name, explanation.to_string());
    }
    let validated = policy
        .validate_signals(&json!({"claim_amount": 500, "vip_customer": false, "fraud_score": 90, "country": "FR", "policy_age_days": 1}))
        .unwrap();
    insta::assert_json_snapshot!("explain_fraud_json", validated.explain().unwrap());
}

#[test]
fn test_report_renders_with_coverage() {
    let policy = claims_policy();
    let cases = [
        (
            "small.json",
            br#"{"signals": {"claim_amount": 10, "vip_customer": false, "country": "DE", "policy_age_days": 40}, "expect": {"decision": "approve", "rule_id": "small"}}"#.as_slice(),
        ),
        (
            "wrong.json",
            br#"{"signals": {"claim_amount": 5000, "vip_customer": false, "country": "DE", "policy_age_days": 40}, "expect": {"decision": "approve", "rule_id": "vip"}}"#.as_slice(),
        ),
        ("broken.json", br#"{"signals": {}, "expected": {}}"#.as_slice()),
        (
            "missing.json",
            br#"{"signals": {"claim_amount": 10}, "expect": {"error": "policy.signal_missing"}}"#.as_slice(),
        ),
    ];
    let report = run_policy_tests(&policy, &cases).unwrap();
    assert_eq!(report.passed(), 2);
    assert!(!report.all_passed());
    assert!(!report.meets_threshold(50.0));
    insta::assert_snapshot!("test_report", report.to_string());
}

fn policy_with_rules(n: usize) -> Vec<u8> {
    let rules: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("r{i}"), "when": {"signal": "x", "eq": i}, "then": {"decision": "yes"}}))
        .collect();
    serde_json::to_vec(&json!({
        "schema_version": "2.0.0", "policy_id": "big", "policy_version": "1.0.0",
        "decisions": ["yes", "no"],
        "signals": {"x": {"type": "integer", "required": true}},
        "rules": rules, "default": {"decision": "no"}
    }))
    .unwrap()
}

#[test]
fn size_limits_are_enforced() {
    assert!(check(&policy_with_rules(limits::MAX_RULES)).is_ok());
    let too_many = check(&policy_with_rules(limits::MAX_RULES + 1));
    assert_eq!(too_many.diagnostics[0].code.code(), "policy.too_many");
    assert_eq!(too_many.diagnostics[0].path, "/rules");

    let mut huge = b"{\"schema_version\": \"2.0.0\", \"x\": \"".to_vec();
    huge.resize(limits::MAX_POLICY_BYTES + 1, b'a');
    let too_large = check(&huge);
    assert_eq!(too_large.diagnostics[0].code.code(), "policy.too_large");

    let signals: serde_json::Map<String, serde_json::Value> = (0..=limits::MAX_SIGNALS)
        .map(|i| {
            (
                format!("s{i}"),
                json!({"type": "boolean", "required": false}),
            )
        })
        .collect();
    let too_many_signals = check(
        &serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["no"], "signals": signals, "rules": [], "default": {"decision": "no"}
        }))
        .unwrap(),
    );
    assert_eq!(
        too_many_signals.diagnostics[0].code.code(),
        "policy.too_many"
    );
    assert_eq!(too_many_signals.diagnostics[0].path, "/signals");

    let decisions: Vec<String> = (0..=limits::MAX_DECISIONS)
        .map(|i| format!("d{i}"))
        .collect();
    let too_many_decisions = check(
        &serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": decisions, "signals": {}, "rules": [], "default": {"decision": "d0"}
        }))
        .unwrap(),
    );
    assert_eq!(
        too_many_decisions.diagnostics[0].code.code(),
        "policy.too_many"
    );

    // Deep nesting within the limit is accepted.
    let mut deep = json!({"signal": "x", "eq": 1});
    for _ in 1..limits::MAX_CONDITION_DEPTH {
        deep = json!({"not": deep});
    }
    let ok = check(
        &serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["yes", "no"], "signals": {"x": {"type": "integer", "required": true}},
            "rules": [{"id": "r", "when": deep, "then": {"decision": "yes"}}], "default": {"decision": "no"}
        }))
        .unwrap(),
    );
    assert!(ok.is_ok(), "{}", ok.render());
}

/// The grammar of ids and versions is `parmana-canon`'s (tested there, one table each); a 2.0.0
/// document also requires a semantic version. Each refusal is its own diagnostic.
#[test]
fn ids_and_versions() {
    let document = |id: &str, version: &str| {
        serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": id, "policy_version": version,
            "decisions": ["yes", "no"], "signals": {},
            "rules": [], "default": {"decision": "no"}
        }))
        .unwrap()
    };
    for (id, version) in [
        ("claims-approval", "1.0.0"),
        ("a.b_c-d", "0.10.3"),
        ("0", "2.0.0-rc.1"),
    ] {
        let report = check(&document(id, version));
        assert!(report.is_ok(), "{id}@{version}: {}", report.render());
    }
    for bad in ["", "Claims", "-a", "a/b", "..", "a..b", "/abs", "a b"] {
        let report = check(&document(bad, "1.0.0"));
        let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code.code()).collect();
        assert_eq!(codes, ["policy.invalid_policy_id"], "{bad:?}");
    }
    for bad in [
        "",
        "1.0",
        "v1",
        "01.0.0",
        "1.0.0-",
        "1.0.0/..",
        "1.0.0-a..b",
        "1.0.0+b",
    ] {
        let report = check(&document("p", bad));
        let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code.code()).collect();
        assert_eq!(codes, ["policy.invalid_policy_version"], "{bad:?}");
    }
}

#[test]
fn validated_signals_canonical_form_drops_ignored_signals() {
    let policy = compile(
        &serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["no"], "additional_signals": "ignore",
            "signals": {"b": {"type": "number", "required": true}, "a": {"type": "string", "required": false}},
            "rules": [], "default": {"decision": "no"}
        }))
        .unwrap(),
    )
    .unwrap();
    let signals = policy
        .validate_signals_json(br#"{"zz": [1, 2], "b": 1.0E2, "a": "\u00e9"}"#)
        .unwrap();
    assert_eq!(
        signals.canonical_bytes().unwrap(),
        "{\"a\":\"é\",\"b\":100}".as_bytes()
    );
    assert_eq!(
        signals.digest().unwrap(),
        parmana_canon::Digest::of("{\"a\":\"é\",\"b\":100}".as_bytes())
    );
    let without_a = policy.validate_signals_json(br#"{"b": -0.0}"#).unwrap();
    assert_eq!(without_a.canonical_bytes().unwrap(), br#"{"b":0}"#);
    assert_eq!(without_a.get("a"), None);
}

#[test]
fn a_node_named_by_many_diagnostics_is_shown_by_the_first_hundred_and_shortened() {
    // One leaf with 150 unknown operators, one of them a long string: 150 diagnostics name it,
    // the first 100 show its start (the whole node is never written out), the rest its path.
    let mut leaf = serde_json::Map::new();
    leaf.insert("signal".into(), json!("amount"));
    leaf.insert("u000".into(), json!("x".repeat(100_000)));
    for i in 1..150 {
        leaf.insert(format!("u{i:03}"), json!(i));
    }
    let policy = json!({
        "schema_version": "2.0.0",
        "policy_id": "many",
        "policy_version": "1.0.0",
        "decisions": ["deny"],
        "signals": {"amount": {"type": "number", "required": true}},
        "rules": [{"id": "r", "when": leaf, "then": {"decision": "deny"}}],
        "default": {"decision": "deny"}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    let unknown = diagnostics_with(&report, DiagnosticCode::UnknownOperator);
    assert_eq!(unknown.len(), 150, "{}", report.render());
    let snippets: Vec<&str> = unknown
        .iter()
        .filter_map(|d| d.snippet.as_deref())
        .collect();
    assert_eq!(snippets.len(), 100);
    let expected = format!(
        "{{\"signal\":\"amount\",\"u000\":\"{}…",
        "x".repeat(100 - 27)
    );
    assert!(snippets.iter().all(|s| *s == expected), "{}", snippets[0]);
    assert!(
        unknown[100..]
            .iter()
            .all(|d| d.path.starts_with("/rules/0/when/u1")),
        "{:?}",
        unknown[100]
    );
}

/// A policy within every limit that is costly to analyse: a string signal with 1,024 enumerated
/// values and `rules` rules, each an `any` of `leaves` `eq` leaves on it, one per value (never
/// the last value).
fn costly_to_analyse(rules: usize, leaves: usize) -> Vec<u8> {
    let values: Vec<String> = (0..limits::MAX_LIST_LEN).map(|i| format!("v{i}")).collect();
    let any: Vec<_> = values[..leaves.min(values.len() - 1)]
        .iter()
        .map(|v| json!({"signal": "s", "eq": v}))
        .collect();
    let rules: Vec<_> = (0..rules)
        .map(|i| json!({"id": format!("r{i}"), "when": {"any": any}, "then": {"decision": "yes"}}))
        .collect();
    serde_json::to_vec(&json!({
        "schema_version": "2.0.0", "policy_id": "costly", "policy_version": "1.0.0",
        "decisions": ["yes", "no"],
        "signals": {"s": {"type": "string", "required": true, "enum": values}},
        "rules": rules, "default": {"decision": "no"}
    }))
    .unwrap()
}

#[test]
fn an_analysis_past_its_budget_stops_and_says_so() {
    // 97 rules of 1,023 leaves on a 1,024-value enum: about 10^11 comparisons analysed in full
    // (minutes of a core at every load of the policy). The analysis stops at its budget, the
    // policy compiles, and one warning says the rest got none.
    let policy = costly_to_analyse(97, 1_023);
    assert!(policy.len() <= limits::MAX_POLICY_BYTES, "{}", policy.len());
    let report = check(&policy);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.code()).collect();
    assert_eq!(codes, ["policy.analysis_incomplete"], "{}", report.render());
    assert!(report.is_ok());
    compile(&policy).unwrap();
    // Two rules of ten such leaves are analysed in full: no warning at all (neither rule
    // always matches, as the last value is left out, and none is shadowed).
    let small = check(&costly_to_analyse(2, 10));
    assert!(small.diagnostics.is_empty(), "{}", small.render());
    // Long strings cost by their length: 1,000 values of about 2 KB (480 four-byte characters)
    // sharing a prefix, read by 1,000 `eq` leaves of as long constants (about 4 MB in all):
    // each leaf compares every value with its constant, gigabytes in all — counted by the
    // bytes compared, the budget runs out.
    let value = |i: usize| format!("{}{i:05}", "\u{1F600}".repeat(480));
    let values: Vec<String> = (0..1_000).map(value).collect();
    let leaves: Vec<_> = values
        .iter()
        .map(|v| json!({"signal": "s", "eq": v}))
        .collect();
    let long = serde_json::to_vec(&json!({
        "schema_version": "2.0.0", "policy_id": "long", "policy_version": "1.0.0",
        "decisions": ["yes", "no"],
        "signals": {"s": {"type": "string", "required": true, "enum": values}},
        "rules": [{"id": "r", "when": {"any": leaves}, "then": {"decision": "yes"}}],
        "default": {"decision": "no"}
    }))
    .unwrap();
    assert!(long.len() <= limits::MAX_POLICY_BYTES, "{}", long.len());
    let report = check(&long);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.code()).collect();
    assert_eq!(codes, ["policy.analysis_incomplete"]);
}

#[test]
fn did_you_mean_suggestions_share_one_budget_per_policy() {
    // 1,024 declared signals and 20,000 leaves (20 rules of 1,000) naming an undeclared one a
    // typo away: each leaf is an error, the first ones suggest the near name, and once the
    // document's budget is spent the rest suggest nothing (each alone would compare with all
    // 1,024 names).
    let signals: serde_json::Map<String, serde_json::Value> = (0..limits::MAX_SIGNALS)
        .map(|i| {
            (
                format!("sig{i:05}"),
                json!({"type": "integer", "required": true}),
            )
        })
        .collect();
    let leaves: Vec<_> = (0..1_000)
        .map(|_| json!({"signal": "sig0000x", "eq": 1}))
        .collect();
    let rules: Vec<_> = (0..20)
        .map(|i| json!({"id": format!("r{i}"), "when": {"all": leaves}, "then": {"decision": "yes"}}))
        .collect();
    let policy = json!({
        "schema_version": "2.0.0", "policy_id": "typos", "policy_version": "1.0.0",
        "decisions": ["yes", "no"], "signals": signals,
        "rules": rules,
        "default": {"decision": "no"}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    let undeclared = diagnostics_with(&report, DiagnosticCode::UndeclaredSignal);
    // The first 1,000 are listed, then one that says how many more there were.
    assert_eq!(undeclared.len(), 1_001);
    assert!(
        undeclared[1_000]
            .message
            .ends_with("(and 18999 more diagnostics found past the first 1000, not listed)"),
        "{}",
        undeclared[1_000].message
    );
    let suggested = undeclared
        .iter()
        .take_while(|d| d.message.contains("did you mean \"sig00000\"?"))
        .count();
    assert!(suggested > 0, "{}", undeclared[0].message);
    assert!(suggested < 1_000, "every leaf searched all 1,024 names");
    assert!(
        undeclared[suggested..]
            .iter()
            .all(|d| !d.message.contains("did you mean")),
        "a suggestion after the budget was spent"
    );
}

#[test]
fn an_undeclared_decision_is_refused_in_a_message_of_bounded_size() {
    // 256 declared decisions of 128 characters, and every rule naming an undeclared one: each
    // message names the count and the closest decision, not all 33 KB of names (10,000 such
    // messages would have been 333 MB).
    let decisions: Vec<String> = (0..limits::MAX_DECISIONS)
        .map(|i| format!("d{i:03}{}", "x".repeat(limits::MAX_NAME_LEN - 4)))
        .collect();
    let near = format!("d007{}", "x".repeat(limits::MAX_NAME_LEN - 5));
    let rules: Vec<_> = (0..1_000)
        .map(|i| json!({"id": format!("r{i}"), "when": {"signal": "b", "eq": true}, "then": {"decision": near}}))
        .collect();
    let policy = json!({
        "schema_version": "2.0.0", "policy_id": "many", "policy_version": "1.0.0",
        "decisions": decisions, "permit": [near], "signals": {"b": {"type": "boolean", "required": true}},
        "rules": rules, "default": {"decision": decisions[0]}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    let undeclared = diagnostics_with(&report, DiagnosticCode::UndeclaredDecision);
    assert_eq!(undeclared.len(), 1_001, "{}", report.render());
    for d in &undeclared {
        assert!(d.message.len() < 600, "{}", d.message);
        assert!(d.message.contains("(256 declared)"), "{}", d.message);
    }
    // The first ones say which is closest; the suggestions share one budget for the document.
    let hint = format!("(256 declared) (did you mean \"{}\"?)", decisions[7]);
    assert!(
        undeclared[0].message.ends_with(&hint),
        "{}",
        undeclared[0].message
    );
    assert!(
        undeclared[1].message.ends_with(&hint),
        "{}",
        undeclared[1].message
    );
    // A short list is still given whole.
    let report = check(
        &serde_json::to_vec(&json!({
            "schema_version": "2.0.0", "policy_id": "few", "policy_version": "1.0.0",
            "decisions": ["approve", "deny"], "signals": {},
            "rules": [], "default": {"decision": "aprove"}
        }))
        .unwrap(),
    );
    assert_eq!(
        report.diagnostics[0].message,
        "decision \"aprove\" is not in \"decisions\" (approve, deny)"
    );
}

#[test]
fn a_policy_value_built_in_code_meets_the_rules_its_text_meets() {
    let policy = |operand: serde_json::Value| {
        json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["yes", "no"], "signals": {"n": {"type": "number", "required": true}},
            "rules": [{"id": "r", "when": {"signal": "n", "gt": operand}, "then": {"decision": "yes"}}],
            "default": {"decision": "no"}
        })
    };
    // Accepted as the text is.
    let value = policy(json!(1.5));
    let report = parmana_policy::check_value(&value);
    assert!(report.is_ok(), "{}", report.render());
    assert_eq!(
        report.diagnostics,
        check(&serde_json::to_vec(&value).unwrap()).diagnostics
    );
    // An integer no double holds is refused, not rounded to 2^53 (its text is refused too).
    let report = parmana_policy::check_value(&policy(json!(9_007_199_254_740_993_u64)));
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.code()).collect();
    assert_eq!(codes, ["policy.invalid_json"], "{}", report.render());
    let report = check(&serde_json::to_vec(&policy(json!(9_007_199_254_740_993_u64))).unwrap());
    assert!(!report.is_ok());
    // So does the depth limit, checked before the value is encoded (encoding recurses).
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut nested = policy(json!(1));
    nested["description"] = deep;
    let report = parmana_policy::check_value(&nested);
    assert_eq!(report.diagnostics.len(), 1, "{}", report.render());
    assert_eq!(report.diagnostics[0].code.code(), "policy.invalid_json");
    assert!(report.diagnostics[0].message.contains("canon.too_deep"));
    // The size limit holds for a value too.
    let mut big = policy(json!(1));
    big["description"] = json!("x".repeat(limits::MAX_POLICY_BYTES));
    let report = parmana_policy::check_value(&big);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.code()).collect();
    assert_eq!(codes, ["policy.too_large"], "{}", report.render());
}

/// A policy of exactly `MAX_CONDITION_NODES` condition nodes (100 rules, each an `any` of 999
/// leaves), and one rule more whose condition is `extra`, when given.
fn wide_policy(extra: Option<serde_json::Value>) -> Vec<u8> {
    let leaves = vec![json!({"signal": "n", "eq": 1}); 999];
    let mut rules: Vec<_> = (0..100)
        .map(|i| {
            json!({"id": format!("r{i}"), "when": {"any": leaves}, "then": {"decision": "yes"}})
        })
        .collect();
    if let Some(extra) = extra {
        rules.push(json!({"id": "extra", "when": extra, "then": {"decision": "yes"}}));
    }
    let policy = json!({
        "schema_version": "2.0.0", "policy_id": "wide", "policy_version": "1.0.0",
        "decisions": ["yes", "no"],
        "signals": {"n": {"type": "integer", "required": true}},
        "rules": rules,
        "default": {"decision": "no"}
    });
    let bytes = serde_json::to_vec(&policy).unwrap();
    assert!(bytes.len() <= limits::MAX_POLICY_BYTES, "{}", bytes.len());
    bytes
}

#[test]
fn the_condition_node_limit_refuses_the_first_node_past_it_and_reads_none_after() {
    assert_eq!(limits::MAX_CONDITION_NODES, 100_000);
    // Exactly at the limit: accepted.
    let report = check(&wide_policy(None));
    assert!(report.errors().next().is_none(), "{}", report.render());
    // One node past it: refused once, at that node.
    let report = check(&wide_policy(Some(json!({"signal": "n", "eq": 1}))));
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{}", report.render());
    assert_eq!(
        (errors[0].code, errors[0].path.as_str()),
        (DiagnosticCode::TooMany, "/rules/100/when")
    );
    // Past it, nothing more is read: 1,000 items that are no conditions at all add nothing.
    let report = check(&wide_policy(Some(json!({"any": vec![json!(1); 1000]}))));
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.code()).collect();
    assert_eq!(codes, ["policy.too_many"], "{}", report.render());
}

/// A document of a hundred thousand faults within its size limit lists the first 1,000 and one
/// that says how many more there were: the diagnostics' memory is bounded, not a multiple of the
/// input's.
#[test]
fn the_diagnostics_of_one_document_are_bounded() {
    let items = vec![json!(1); 1000];
    let rules: Vec<_> = (0..100)
        .map(
            |i| json!({"id": format!("r{i}"), "when": {"all": items}, "then": {"decision": "yes"}}),
        )
        .collect();
    let policy = json!({
        "schema_version": "2.0.0", "policy_id": "faults", "policy_version": "1.0.0",
        "decisions": ["yes", "no"],
        "signals": {"n": {"type": "integer", "required": true}},
        "rules": rules,
        "default": {"decision": "no"}
    });
    let report = check(&serde_json::to_vec(&policy).unwrap());
    assert_eq!(
        report.diagnostics.len(),
        1_001,
        "{}",
        report.diagnostics.len()
    );
    let last = report.diagnostics.last().unwrap();
    assert!(last.is_error(), "{last:?}");
    assert!(
        last.message
            .ends_with("(and 98900 more diagnostics found past the first 1000, not listed)"),
        "{}",
        last.message
    );
}

/// A message that names a value it refuses shows it as a snippet does: bounded, whatever the
/// value's size, and with its members sorted, whatever serde_json's features.
#[test]
fn a_message_naming_a_refused_value_is_bounded_and_sorted() {
    let huge = json!({"schema_version": vec!["x"; 100_000]});
    let report = check(&serde_json::to_vec(&huge).unwrap());
    let message = &report.diagnostics[0].message;
    assert_eq!(
        report.diagnostics[0].code,
        DiagnosticCode::UnsupportedSchemaVersion
    );
    assert!(message.len() < 400, "{} bytes", message.len());
    let typed = json!({
        "schema_version": "2.0.0", "policy_id": "t", "policy_version": "1.0.0",
        "decisions": ["yes"],
        "signals": {"s": {"type": {"b": 1, "a": 2}, "required": true}},
        "rules": [],
        "default": {"decision": "yes"}
    });
    let report = check(&serde_json::to_vec(&typed).unwrap());
    let typed = diagnostics_with(&report, DiagnosticCode::UnknownSignalType);
    assert!(
        typed[0].message.contains(r#"has type {"a":2,"b":1}"#),
        "{}",
        typed[0].message
    );
}

/// A refusal quotes the caller's undeclared name and refused enum value bounded
/// (`parmana_canon::excerpt`): a megabyte name costs and answers a message of a few hundred
/// bytes, not one that escapes each of its characters.
#[test]
fn refusals_quote_the_callers_strings_bounded() {
    let claims = compile(&claims_policy()).unwrap();
    let long = "\u{7f}".repeat(100_000);
    let mut undeclared = json!({
        "claim_amount": 1200, "vip_customer": false, "country": "DE", "policy_age_days": 400
    });
    undeclared[&long] = json!(1);
    let refused = claims.validate_signals(&undeclared).unwrap_err();
    assert_eq!(refused.code(), "policy.signal_undeclared");
    let mut not_in_enum = undeclared.clone();
    not_in_enum.as_object_mut().unwrap().remove(&long);
    not_in_enum["country"] = json!(long);
    let refused_value = claims.validate_signals(&not_in_enum).unwrap_err();
    assert_eq!(refused_value.code(), "policy.signal_not_in_enum");
    for refused in [refused, refused_value] {
        let message = refused.to_string();
        assert!(message.len() < 2_000, "{} bytes", message.len());
        assert!(message.contains('…'), "{message}");
    }
}
