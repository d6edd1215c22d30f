//! Writes one [`PolicySpec`] in three languages: Parmana schema 2.0.0 JSON, Cedar, and Rego.
//!
//! The three renderings mean the same thing:
//!
//! * **Parmana**: the rules in order, first match wins, explicit default — the spec verbatim.
//! * **Cedar** has only `permit`/`forbid` and no rule order, so each rule becomes a `permit`
//!   annotated `@id("<rule id>")` whose condition reads the request context. Cedar names the
//!   policies of a parsed set `policy0`, `policy1`, … in text order; after
//!   `Authorizer::is_authorized` the deciding rule is the satisfied policy
//!   (`response.diagnostics().reason()`) that comes first in that order, and the default when none
//!   is satisfied. That is how first-match is obtained from Cedar.
//! * **Rego**: one `result` rule whose bodies form an `else` chain in rule order, each giving
//!   `{"decision", "rule_id"}`, with a `default` for the fall-through.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::spec::{DEFAULT_RULE_ID, Leaf, Literal, Op, PolicySpec, SignalKind};

/// The Cedar action every benchmark request uses.
pub const CEDAR_ACTION: &str = r#"Action::"decide""#;
/// The Cedar principal every benchmark request uses.
pub const CEDAR_PRINCIPAL: &str = r#"Caller::"bench""#;
/// The Cedar resource every benchmark request uses.
pub const CEDAR_RESOURCE: &str = r#"Claim::"bench""#;

/// The policy as our schema 2.0.0 JSON document, object keys sorted (so that the text does not
/// depend on whether another crate in the build turns on serde_json's `preserve_order`, as
/// `cedar-policy` does under the `peers` feature).
pub fn parmana_policy_json(spec: &PolicySpec) -> String {
    let signals: serde_json::Map<String, Value> = spec
        .signals()
        .iter()
        .map(|(name, kind)| {
            let declaration = match kind {
                SignalKind::Integer { minimum, maximum } => json!({
                    "type": "integer", "required": true, "minimum": minimum, "maximum": maximum
                }),
                SignalKind::Boolean => json!({"type": "boolean", "required": true}),
                SignalKind::String { one_of: Some(list) } => {
                    json!({"type": "string", "required": true, "enum": list})
                }
                SignalKind::String { one_of: None } => json!({"type": "string", "required": true}),
            };
            (name.clone(), declaration)
        })
        .collect();
    let rules: Vec<Value> = spec
        .rules()
        .iter()
        .map(|rule| {
            let when = match rule.when.as_slice() {
                [only] => parmana_leaf(only),
                many => json!({"all": many.iter().map(parmana_leaf).collect::<Vec<_>>()}),
            };
            json!({
                "id": rule.id,
                "when": when,
                "then": {"decision": rule.verdict.decision, "reason": rule.verdict.reason}
            })
        })
        .collect();
    let document = json!({
        "schema_version": "2.0.0",
        "policy_id": spec.name(),
        "policy_version": "1.0.0",
        "decisions": spec.decisions(),
        "signals": signals,
        "rules": rules,
        "default": {
            "decision": spec.default_verdict().decision,
            "reason": spec.default_verdict().reason
        }
    });
    let mut text = serde_json::to_string_pretty(&with_sorted_keys(document)).unwrap_or_default();
    text.push('\n');
    text
}

/// `value` with the keys of every object inserted in sorted order: the same map whichever
/// `serde_json::Map` implementation the build uses (sorted, or insertion-ordered).
fn with_sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> = map
                .into_iter()
                .map(|(key, item)| (key, with_sorted_keys(item)))
                .collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(with_sorted_keys).collect()),
        other => other,
    }
}

fn parmana_leaf(leaf: &Leaf) -> Value {
    let value = match &leaf.value {
        Literal::Integer(n) => json!(n),
        Literal::Boolean(b) => json!(b),
        Literal::String(s) => json!(s),
        Literal::StringList(list) => json!(list),
    };
    let mut object = serde_json::Map::new();
    object.insert("signal".to_owned(), json!(leaf.signal));
    object.insert(leaf.op.name().to_owned(), value);
    Value::Object(object)
}

/// The Cedar schema (human-readable syntax) that types the request context.
pub fn cedar_schema(spec: &PolicySpec) -> String {
    let mut text = String::from(
        "entity Caller;\nentity Claim;\naction \"decide\" appliesTo {\n  principal: [Caller],\n  resource: [Claim],\n  context: {\n",
    );
    for (name, kind) in spec.signals() {
        let ty = match kind {
            SignalKind::Integer { .. } => "Long",
            SignalKind::Boolean => "Bool",
            SignalKind::String { .. } => "String",
        };
        let _ = writeln!(text, "    {name}: {ty},");
    }
    text.push_str("  }\n};\n");
    text
}

/// The Cedar policies: one `permit` per rule, in rule order, each annotated with its rule id.
pub fn cedar_policies(spec: &PolicySpec) -> String {
    let mut text = String::new();
    for rule in spec.rules() {
        let condition = rule
            .when
            .iter()
            .map(cedar_leaf)
            .collect::<Vec<_>>()
            .join(" && ");
        let _ = write!(
            text,
            "@id({id})\npermit (principal, action == {CEDAR_ACTION}, resource)\nwhen {{ {condition} }};\n\n",
            id = cedar_string(&rule.id)
        );
    }
    text
}

fn cedar_leaf(leaf: &Leaf) -> String {
    let signal = format!("context.{}", leaf.signal);
    match &leaf.value {
        Literal::StringList(list) => {
            let items = list
                .iter()
                .map(|s| cedar_string(s))
                .collect::<Vec<_>>()
                .join(", ");
            format!("[{items}].contains({signal})")
        }
        literal => format!(
            "{signal} {} {}",
            comparison(leaf.op),
            cedar_literal(literal)
        ),
    }
}

fn cedar_literal(literal: &Literal) -> String {
    match literal {
        Literal::Integer(n) => n.to_string(),
        Literal::Boolean(b) => b.to_string(),
        Literal::String(s) => cedar_string(s),
        Literal::StringList(list) => list
            .iter()
            .map(|s| cedar_string(s))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A Cedar string literal (Cedar accepts Rust-style escapes).
fn cedar_string(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}

/// A Rego (JSON-style) string literal.
fn rego_string(s: &str) -> String {
    Value::from(s).to_string()
}

fn comparison(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::In => "in",
    }
}

/// The Rego module: package `<name>`, rule `result` as an `else` chain in rule order.
pub fn rego_module(spec: &PolicySpec) -> String {
    let result = |decision: &str, rule_id: &str| {
        format!(
            "{{\"decision\": {}, \"rule_id\": {}}}",
            rego_string(decision),
            rego_string(rule_id)
        )
    };
    let mut text = format!(
        "package {}\n\nimport rego.v1\n\ndefault result := {}\n",
        spec.name(),
        result(&spec.default_verdict().decision, DEFAULT_RULE_ID)
    );
    for (index, rule) in spec.rules().iter().enumerate() {
        let head = if index == 0 {
            "\nresult := "
        } else {
            " else := "
        };
        let _ = writeln!(
            text,
            "{head}{} if {{",
            result(&rule.verdict.decision, &rule.id)
        );
        for leaf in &rule.when {
            let _ = writeln!(text, "\t{}", rego_leaf(leaf));
        }
        text.push('}');
    }
    text.push('\n');
    text
}

/// The path of the rule that gives the result.
pub fn rego_result_path(spec: &PolicySpec) -> String {
    format!("data.{}.result", spec.name())
}

fn rego_leaf(leaf: &Leaf) -> String {
    let signal = format!("input.{}", leaf.signal);
    match &leaf.value {
        Literal::StringList(list) => {
            let items = list
                .iter()
                .map(|s| rego_string(s))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{signal} in {{{items}}}")
        }
        Literal::Integer(n) => format!("{signal} {} {n}", comparison(leaf.op)),
        Literal::Boolean(b) => format!("{signal} {} {b}", comparison(leaf.op)),
        Literal::String(s) => format!("{signal} {} {}", comparison(leaf.op), rego_string(s)),
    }
}
