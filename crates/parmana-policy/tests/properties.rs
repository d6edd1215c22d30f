//! Property tests: a naive reference evaluator written from the spec agrees with the compiled evaluator on
//! random valid policies × signals (2,000 × 50 per run); explain on and off agree, and a trace stays within `trace_bytes_bound`; nothing panics on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};

use parmana_policy::{check, compile};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The fixed signal declarations of generated policies: (name, type, required).
const SIGNALS: [(&str, &str, bool); 8] = [
    ("b1", "boolean", true),
    ("b2", "boolean", false),
    ("n1", "number", true),
    ("n2", "number", false),
    ("i1", "integer", true),
    ("i2", "integer", false),
    ("s1", "string", true),
    ("s2", "string", false),
];

const NUMBERS: [f64; 8] = [-3.0, -1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 3.0];
const INTEGERS: [i64; 7] = [-3, -2, -1, 0, 1, 2, 3];
const STRINGS: [&str; 7] = ["", "a", "ab", "b", "ba", "abc", "c"];

fn declarations() -> Value {
    let mut map = Map::new();
    for (name, ty, required) in SIGNALS {
        let mut decl = json!({"type": ty, "required": required});
        if ty == "number" {
            decl["minimum"] = json!(-3);
            decl["maximum"] = json!(3);
        }
        if ty == "integer" {
            decl["minimum"] = json!(-3);
            decl["maximum"] = json!(3);
        }
        if ty == "string" {
            decl["max_length"] = json!(3);
        }
        map.insert(name.to_owned(), decl);
    }
    Value::Object(map)
}

/// A value of signal `sig`'s type chosen by `k`.
fn value_of(sig: usize, k: usize) -> Value {
    match SIGNALS[sig].1 {
        "boolean" => json!(k.is_multiple_of(2)),
        "number" => json!(NUMBERS[k % NUMBERS.len()]),
        "integer" => json!(INTEGERS[k % INTEGERS.len()]),
        _ => json!(STRINGS[k % STRINGS.len()]),
    }
}

/// The operators that fit signal `sig`'s type.
fn operators(sig: usize) -> &'static [&'static str] {
    match SIGNALS[sig].1 {
        "boolean" => &["eq", "ne", "in", "not_in"],
        "number" | "integer" => &["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"],
        _ => &["eq", "ne", "in", "not_in", "starts_with", "ends_with"],
    }
}

/// A generated condition, before optional reads are guarded.
#[derive(Debug, Clone)]
enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Leaf {
        sig: usize,
        op: usize,
        values: Vec<usize>,
    },
    Present(usize),
    Absent(usize),
}

fn leaf() -> impl Strategy<Value = Cond> {
    prop_oneof![
        6 => (0usize..8, 0usize..64, prop::collection::vec(0usize..16, 1..4))
            .prop_map(|(sig, op, values)| Cond::Leaf { sig, op, values }),
        1 => prop::sample::select(vec![1usize, 3, 5, 7]).prop_map(Cond::Present),
        1 => prop::sample::select(vec![1usize, 3, 5, 7]).prop_map(Cond::Absent),
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Cond::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Cond::Any),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

/// Renders a condition as policy JSON, wrapping every unguarded read of an optional
/// signal in `{"all": [{"signal": S, "present": true}, leaf]}`.
fn render(c: &Cond, guarded: &[usize]) -> Value {
    match c {
        Cond::All(items) => {
            let mut guarded_here = guarded.to_vec();
            let rendered: Vec<Value> = items
                .iter()
                .map(|item| {
                    let v = render(item, &guarded_here);
                    if let Cond::Present(sig) = item {
                        guarded_here.push(*sig);
                    }
                    v
                })
                .collect();
            json!({ "all": rendered })
        }
        Cond::Any(items) => {
            json!({"any": items.iter().map(|i| render(i, guarded)).collect::<Vec<_>>()})
        }
        Cond::Not(inner) => json!({"not": render(inner, guarded)}),
        Cond::Present(sig) => json!({"signal": SIGNALS[*sig].0, "present": true}),
        Cond::Absent(sig) => json!({"signal": SIGNALS[*sig].0, "absent": true}),
        Cond::Leaf { sig, op, values } => {
            let ops = operators(*sig);
            let op = ops[op % ops.len()];
            let operand = match op {
                "in" | "not_in" => {
                    Value::Array(values.iter().map(|k| value_of(*sig, *k)).collect())
                }
                _ => value_of(*sig, values[0]),
            };
            let mut leaf = Map::new();
            leaf.insert("signal".to_owned(), json!(SIGNALS[*sig].0));
            leaf.insert(op.to_owned(), operand);
            let leaf = Value::Object(leaf);
            if SIGNALS[*sig].2 || guarded.contains(sig) {
                leaf
            } else {
                json!({"all": [{"signal": SIGNALS[*sig].0, "present": true}, leaf]})
            }
        }
    }
}

/// A generated rule: its condition, an optional index key (signal 0/4/6, value), decision, reason.
type RuleSpec = (Cond, Option<(usize, usize)>, usize, bool);

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        cond(),
        prop::option::weighted(0.5, (prop::sample::select(vec![0usize, 4, 6]), 0usize..8)),
        0usize..3,
        any::<bool>(),
    )
}

fn policy_json(rules: &[RuleSpec], ignore_extra: bool) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .enumerate()
        .map(|(i, (c, key, decision, reason))| {
            let body = render(c, &[]);
            let when = match key {
                Some((sig, k)) => json!({"all": [
                    {"signal": SIGNALS[*sig].0, "eq": value_of(*sig, *k)},
                    body
                ]}),
                None => body,
            };
            let mut then = json!({"decision": format!("d{decision}")});
            if *reason {
                then["reason"] = json!(format!("reason of r{i}"));
            }
            json!({"id": format!("r{i}"), "when": when, "then": then})
        })
        .collect();
    let mut policy = json!({
        "schema_version": "2.0.0",
        "policy_id": "generated",
        "policy_version": "1.0.0",
        "decisions": ["d0", "d1", "d2"],
        "signals": declarations(),
        "rules": rules,
        "default": {"decision": "d2", "reason": "default reason"}
    });
    if ignore_extra {
        policy["additional_signals"] = json!("ignore");
    }
    policy
}

/// Signals from one choice per declared signal (optional ones absent a quarter of the time).
fn signals_json(choices: &[usize; 8], extra: bool) -> Value {
    let mut map = Map::new();
    for (sig, k) in choices.iter().enumerate() {
        if !SIGNALS[sig].2 && k.is_multiple_of(4) {
            continue;
        }
        map.insert(SIGNALS[sig].0.to_owned(), value_of(sig, k / 4));
    }
    if extra {
        map.insert("undeclared".to_owned(), json!([1, "x"]));
    }
    Value::Object(map)
}

// ---------------------------------------------------------------------------------------
// The reference evaluator, written straight from docs/policy-language.md, over the JSON documents.
// ---------------------------------------------------------------------------------------

fn ref_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap() == y.as_f64().unwrap(),
        _ => a == b,
    }
}

fn ref_condition(c: &Value, signals: &Map<String, Value>) -> bool {
    let c = c.as_object().unwrap();
    if let Some(items) = c.get("all") {
        return items
            .as_array()
            .unwrap()
            .iter()
            .all(|i| ref_condition(i, signals));
    }
    if let Some(items) = c.get("any") {
        return items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| ref_condition(i, signals));
    }
    if let Some(inner) = c.get("not") {
        return !ref_condition(inner, signals);
    }
    let value = signals.get(c["signal"].as_str().unwrap());
    let (op, operand) = c.iter().find(|(k, _)| k.as_str() != "signal").unwrap();
    if op == "present" {
        return value.is_some();
    }
    if op == "absent" {
        return value.is_none();
    }
    let value = value.expect("a validated policy reads optional signals only under a guard");
    let num = |v: &Value| v.as_f64().unwrap();
    match op.as_str() {
        "eq" => ref_equal(value, operand),
        "ne" => !ref_equal(value, operand),
        "lt" => num(value) < num(operand),
        "le" => num(value) <= num(operand),
        "gt" => num(value) > num(operand),
        "ge" => num(value) >= num(operand),
        "in" => operand
            .as_array()
            .unwrap()
            .iter()
            .any(|o| ref_equal(value, o)),
        "not_in" => !operand
            .as_array()
            .unwrap()
            .iter()
            .any(|o| ref_equal(value, o)),
        "starts_with" => value
            .as_str()
            .unwrap()
            .starts_with(operand.as_str().unwrap()),
        "ends_with" => value.as_str().unwrap().ends_with(operand.as_str().unwrap()),
        other => panic!("unknown operator {other}"),
    }
}

/// (decision, rule id, reason) by the spec: the first rule whose `when` holds, else the default.
fn ref_evaluate(policy: &Value, signals: &Value) -> (String, String, Option<String>) {
    let signals = signals.as_object().unwrap();
    let outcome = |then: &Value, id: &str| {
        (
            then["decision"].as_str().unwrap().to_owned(),
            id.to_owned(),
            then.get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
        )
    };
    for rule in policy["rules"].as_array().unwrap() {
        if ref_condition(&rule["when"], signals) {
            return outcome(&rule["then"], rule["id"].as_str().unwrap());
        }
    }
    outcome(&policy["default"], "default")
}

/// 2,000 policies × 50 signal sets: the compiled evaluator (indexed), `explain`, and
/// evaluation from JSON text all agree with the reference evaluator on every one.
#[test]
fn compiled_evaluator_agrees_with_reference() {
    let compared = AtomicUsize::new(0);
    let strategy = (
        prop::collection::vec(rule(), 1..14),
        any::<bool>(),
        prop::collection::vec((prop::array::uniform8(0usize..32), any::<bool>()), 50),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2_000));
    let result = runner.run(&strategy, |(rules, ignore_extra, signal_sets)| {
        let policy = policy_json(&rules, ignore_extra);
        let bytes = serde_json::to_vec(&policy).unwrap();
        let report = check(&bytes);
        prop_assert!(report.is_ok(), "{}\n{}", policy, report.render());
        let compiled = report.policy().unwrap();
        for (choices, extra) in &signal_sets {
            let signals = signals_json(choices, *extra && ignore_extra);
            let validated = compiled.validate_signals(&signals).unwrap();
            let decision = validated.evaluate().unwrap();
            let expected = ref_evaluate(&policy, &signals);
            prop_assert_eq!(
                (decision.decision, decision.rule_id, decision.reason),
                (
                    expected.0.as_str(),
                    expected.1.as_str(),
                    expected.2.as_deref()
                ),
                "policy {} signals {}",
                policy,
                signals
            );
            let explanation = validated.explain().unwrap();
            // The bound a host checks before it explains holds.
            let trace = parmana_canon::to_canonical_vec(&explanation).unwrap().len();
            let text_len = serde_json::to_vec(&signals).unwrap().len();
            prop_assert!(
                trace <= compiled.trace_bytes_bound() + compiled.condition_count() * text_len,
                "a trace of {} bytes over the bound",
                trace
            );
            prop_assert_eq!(explanation.decision, decision);
            prop_assert_eq!(
                explanation.rules.last().map(|r| r.matched),
                Some(decision.rule_id != "default")
            );
            let text = serde_json::to_vec(&signals).unwrap();
            let from_text = compiled.validate_signals_json(&text).unwrap();
            prop_assert_eq!(from_text.evaluate().unwrap(), decision);
            compared.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let compared = compared.load(Ordering::Relaxed);
    assert!(compared >= 100_000, "only {compared} comparisons");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary signal objects (any names, any JSON types) are validated or refused, never panic,
    /// and whatever is accepted evaluates identically with and without a trace.
    #[test]
    fn arbitrary_signals_never_panic(
        values in prop::collection::btree_map(
            prop::sample::select(vec!["b1", "b2", "n1", "n2", "i1", "i2", "s1", "s2", "zz"]),
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|i| json!(i)),
                (-1e6f64..1e6).prop_map(|f| json!(f)),
                "[a-c]{0,5}".prop_map(Value::String),
                Just(json!([1])),
            ],
            0..9,
        ),
        rules in prop::collection::vec(rule(), 1..6),
    ) {
        let policy = compile(&serde_json::to_vec(&policy_json(&rules, false)).unwrap()).unwrap();
        let signals = Value::Object(values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        if let Ok(validated) = policy.validate_signals(&signals) {
            prop_assert_eq!(validated.explain().unwrap().decision, validated.evaluate().unwrap());
        }
    }

    /// Arbitrary documents built from the policy vocabulary are accepted or refused with
    /// diagnostics, never a panic; an accepted one that takes no signal (the signals tried)
    /// evaluates, with and without a trace alike.
    #[test]
    fn arbitrary_policy_documents_never_panic(doc in arbitrary_document()) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        let report = check(&bytes);
        if let Some(policy) = report.policy() {
            if let Ok(validated) = policy.validate_signals(&json!({})) {
                prop_assert_eq!(validated.explain().unwrap().decision, validated.evaluate().unwrap());
            }
        } else {
            prop_assert!(report.errors().count() > 0);
        }
    }
}

fn arbitrary_document() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "schema_version",
        "policy_id",
        "policy_version",
        "decisions",
        "signals",
        "rules",
        "default",
        "decision",
        "id",
        "when",
        "then",
        "all",
        "any",
        "not",
        "signal",
        "eq",
        "gt",
        "in",
        "present",
        "type",
        "required",
        "x",
        "equals",
        "less_than",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|i| json!(i)),
        prop::sample::select(vec!["2.0.0", "1.0.0", "x", "number", "boolean", "d", ""])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Valid values for each declared key of the fast-path policy.
const VALID: [(&str, &[&str]); 5] = [
    ("\"b\"", &["true", "false"]),
    (
        "\"n\"",
        &["1.5", "-0", "-0.0", "1e0", "-10", "10", "2.5e-1", "0"],
    ),
    ("\"i\"", &["7", "-100", "100", "7.0", "1e1", "-0"]),
    (
        "\"s\"",
        &["\"a\"", "\"é\"", "\"\"", "\"abc\"", "\"a\\u00e9\""],
    ),
    ("\"t\"", &["\"a\"", "\"é\"", "\"\\u00e9\""]),
];

/// One `"key": value` entry of a generated signals text: mostly valid, sometimes tricky.
fn entry() -> impl Strategy<Value = String> {
    let tricky_keys = prop::sample::select(vec![
        "\"b\"",
        "\"n\"",
        "\"i\"",
        "\"s\"",
        "\"t\"",
        "\"zz\"",
        "\"\\u0062\"",
        "\"n \"",
        "b",
    ]);
    let tricky_values = prop::sample::select(vec![
        "true",
        "false",
        "null",
        "0",
        "-0",
        "-0.0",
        "1.5",
        "1e2",
        "1E+2",
        "2.5e-1",
        "01",
        "1.",
        "-",
        ".5",
        "9007199254740991",
        "9007199254740992",
        "12345678901234567",
        "1e400",
        "11",
        "-10",
        "100",
        "101",
        "7.0",
        "\"a\"",
        "\"é\"",
        "\"\\u00e9\"",
        "\"a\\\"b\"",
        "\"abcd\"",
        "\"\"",
        "[1]",
        "{}",
        "{\"x\": 1}",
        "\"tab\there\"",
        "tru",
        "1 2",
    ]);
    let valid = (0usize..VALID.len(), 0usize..8).prop_map(|(k, v)| {
        let (key, values) = VALID[k];
        (key, values[v % values.len()])
    });
    let pair = prop_oneof![4 => valid, 1 => (tricky_keys, tricky_values)];
    let ws = prop::sample::select(vec!["", " ", "\n\t", "\r\n  "]);
    (pair, ws.clone(), ws).prop_map(|((k, v), w1, w2)| format!("{k}{w1}:{w2}{v}"))
}

fn signals_text() -> impl Strategy<Value = String> {
    let tail = prop_oneof![
        6 => Just(""),
        1 => prop::sample::select(vec![" ", "\n", " x", ",", "}", "\u{feff}"]),
    ];
    let open = prop_oneof![6 => Just("{"), 1 => prop::sample::select(vec![" {", "[", "{{"])];
    (
        any::<bool>(),
        prop::collection::vec(entry(), 0..6),
        tail,
        open,
    )
        .prop_map(|(with_b, mut entries, tail, open)| {
            if with_b {
                entries.insert(0, "\"b\": true".to_owned());
            }
            format!("{open}{}}}{tail}", entries.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// `validate_signals_json` (with its fast path) gives exactly what the strict parser
    /// followed by `validate_signals` gives: the same validated signals or the same error.
    #[test]
    fn fast_signal_path_agrees_with_strict_path(text in signals_text(), ignore in any::<bool>()) {
        let mut policy = json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["yes", "no"],
            "signals": {
                "b": {"type": "boolean", "required": true},
                "n": {"type": "number", "required": false, "minimum": -10, "maximum": 10},
                "i": {"type": "integer", "required": false, "minimum": -100, "maximum": 100},
                "s": {"type": "string", "required": false, "max_length": 3},
                "t": {"type": "string", "required": false, "enum": ["a", "é"]}
            },
            "rules": [{"id": "r", "when": {"signal": "b", "eq": true}, "then": {"decision": "yes"}}],
            "default": {"decision": "no"}
        });
        if ignore {
            policy["additional_signals"] = json!("ignore");
        }
        let policy = compile(&serde_json::to_vec(&policy).unwrap()).unwrap();
        let fast = policy.validate_signals_json(text.as_bytes());
        let strict = parmana_canon::parse_strict(text.as_bytes())
            .map_err(parmana_policy::SignalError::InvalidJson)
            .and_then(|v| policy.validate_signals(&v));
        match (&fast, &strict) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a, b, "{}", text);
                prop_assert_eq!(a.canonical_bytes().unwrap(), b.canonical_bytes().unwrap());
                // Written from the slots, the bytes are those of the JSON tree, re-encoded.
                prop_assert_eq!(
                    a.canonical_bytes().unwrap(),
                    parmana_canon::to_canonical_vec(&a.to_json_value()).unwrap()
                );
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b, "{}", text),
            _ => prop_assert!(false, "{}: fast {:?} strict {:?}", text, fast, strict),
        }
    }
}
