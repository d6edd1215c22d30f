//! Reading a whole policy document: size and strict JSON, schema dispatch, and the schema 2.0.0 top level, rules and outcomes.

use parmana_canon::{PolicyId, PolicyVersion};
use serde_json::{Map, Value};

use crate::declare::read_signals;
use crate::diagnostic::{Diagnostic, DiagnosticCode as Code, join_path};
use crate::limits;
use crate::model::{AdditionalSignals, Outcome, PolicyModel, Rule, SchemaVersion};
use crate::parse::{Dialect, Reader, check_fields, required, string, valid_label};

/// Reads a whole policy document of either schema.
pub(crate) fn read_policy(bytes: &[u8]) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    if bytes.len() > limits::MAX_POLICY_BYTES {
        return (
            None,
            vec![Diagnostic::new(
                Code::PolicyTooLarge,
                "",
                format!(
                    "the policy has {} bytes, more than {}",
                    bytes.len(),
                    limits::MAX_POLICY_BYTES
                ),
            )],
        );
    }
    match parmana_canon::parse_strict(bytes) {
        Ok(value) => read_policy_value(&value),
        Err(e) => (None, vec![not_strict_json(&e)]),
    }
}

/// The refusal of a policy that is not strict JSON (`policy.invalid_json`).
pub(crate) fn not_strict_json(e: &parmana_canon::CanonError) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidJson,
        "",
        format!("not strict JSON: {e} ({})", e.code()),
    )
}

/// Reads a parsed policy document of either schema.
pub(crate) fn read_policy_value(value: &Value) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    let Value::Object(map) = value else {
        return (
            None,
            vec![Diagnostic::new(
                Code::WrongJsonType,
                "",
                format!(
                    "a policy must be a JSON object, found {}",
                    crate::error::json_kind(value)
                ),
            )],
        );
    };
    match map.get("schema_version") {
        Some(Value::String(v)) if v == "2.0.0" => read_v2(map),
        Some(Value::String(v)) if v == "1.0.0" => crate::legacy::read_legacy(map),
        Some(other) => (
            None,
            vec![Diagnostic::new(
                Code::UnsupportedSchemaVersion,
                "/schema_version",
                format!(
                    "schema_version {} is not supported; expected \"2.0.0\" (or \"1.0.0\" for legacy policies)",
                    crate::diagnostic::snippet_of(other)
                ),
            )],
        ),
        None => (
            None,
            vec![Diagnostic::new(
                Code::UnsupportedSchemaVersion,
                "",
                "the document has no \"schema_version\": it is not a policy of a known schema",
            )],
        ),
    }
}

/// Reads an outcome `{"decision": D, "reason": R?}`.
pub(crate) fn read_outcome(reader: &mut Reader<'_>, value: &Value, path: &str) -> Option<Outcome> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "an outcome must be an object {{\"decision\", \"reason\"}}, found {}",
                crate::error::json_kind(value)
            ),
        );
        return None;
    };
    check_fields(reader, map, path, &["decision", "reason"]);
    let reason = match map.get("reason") {
        Some(r) => Some(string(reader, r, &join_path(path, "reason"))?.to_owned()),
        None => None,
    };
    let decision_value = required(reader, map, path, "decision")?;
    let decision = string(reader, decision_value, &join_path(path, "decision"))?;
    Some(Outcome {
        decision: decision.to_owned(),
        reason,
    })
}

fn read_v2(map: &Map<String, Value>) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    let mut top = Reader::new(Dialect::V2, &[]);
    check_fields(
        &mut top,
        map,
        "",
        &[
            "schema_version",
            "policy_id",
            "policy_version",
            "description",
            "decisions",
            "permit",
            "signals",
            "additional_signals",
            "rules",
            "default",
        ],
    );
    let policy_id = required(&mut top, map, "", "policy_id")
        .and_then(|v| string(&mut top, v, "/policy_id"))
        .map(str::to_owned);
    if let Some(id) = &policy_id
        && !PolicyId::is_valid(id)
    {
        top.report(
            Code::InvalidPolicyId,
            "/policy_id",
            format!("policy_id {id:?} must match [a-z0-9][a-z0-9-_.]* without \"..\""),
        );
    }
    let policy_version = required(&mut top, map, "", "policy_version")
        .and_then(|v| string(&mut top, v, "/policy_version"))
        .map(str::to_owned);
    if let Some(v) = &policy_version
        && !PolicyVersion::parse(v).is_ok_and(|v| v.is_semver())
    {
        top.report(
            Code::InvalidPolicyVersion,
            "/policy_version",
            format!("policy_version {v:?} is not a semantic version such as \"1.0.0\""),
        );
    }
    let description = map
        .get("description")
        .and_then(|d| string(&mut top, d, "/description"))
        .map(str::to_owned);
    let additional_signals = match map.get("additional_signals") {
        None => AdditionalSignals::Reject,
        Some(Value::String(s)) if s == "reject" => AdditionalSignals::Reject,
        Some(Value::String(s)) if s == "ignore" => AdditionalSignals::Ignore,
        Some(other) => {
            top.report(
                Code::InvalidAdditionalSignals,
                "/additional_signals",
                format!(
                    "additional_signals must be \"reject\" or \"ignore\", found {}",
                    crate::diagnostic::snippet_of(other)
                ),
            );
            AdditionalSignals::Reject
        }
    };
    let decisions = match required(&mut top, map, "", "decisions") {
        Some(v) => read_decisions(&mut top, v),
        None => Vec::new(),
    };
    let permit = map
        .get("permit")
        .map(|v| read_permit(&mut top, v, &decisions));
    let signals = match required(&mut top, map, "", "signals") {
        Some(v) => read_signals(&mut top, v, "/signals"),
        // Missing (reported): no condition is reported again as naming an undeclared signal.
        None => crate::declare::DeclaredSignals {
            all_refused: true,
            ..crate::declare::DeclaredSignals::default()
        },
    };
    let mut diagnostics = top.take_diagnostics();
    let mut reader = Reader::over(Dialect::V2, &signals);
    let mut rules = Vec::new();
    if let Some(v) = required(&mut reader, map, "", "rules") {
        match v {
            Value::Array(items) if items.len() > limits::MAX_RULES => reader.report(
                Code::TooMany,
                "/rules",
                format!("{} rules, more than {}", items.len(), limits::MAX_RULES),
            ),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) = read_rule(&mut reader, item, &format!("/rules/{i}")) {
                        rules.push(rule);
                    }
                }
            }
            other => reader.report(
                Code::WrongJsonType,
                "/rules",
                format!(
                    "\"rules\" must be a list, found {}",
                    crate::error::json_kind(other)
                ),
            ),
        }
    }
    let default = required(&mut reader, map, "", "default")
        .and_then(|v| read_outcome(&mut reader, v, "/default"));
    diagnostics.append(&mut reader.take_diagnostics());
    let model = match (policy_id, policy_version, default) {
        (Some(id), Some(version), Some(default)) => Some(PolicyModel {
            schema: SchemaVersion::V2,
            policy_id: Some(id),
            policy_version: Some(version),
            description,
            decisions,
            permit,
            signals: signals.decls,
            additional_signals,
            rules,
            default,
            default_path: "/default".to_owned(),
        }),
        _ => None,
    };
    crate::analysis::finish(model, diagnostics)
}

/// `permit`: the declared decisions that permit what was asked (an AuthZEN `"decision": true`),
/// each named once.
fn read_permit(reader: &mut Reader<'_>, value: &Value, decisions: &[String]) -> Vec<String> {
    let cells_left = std::cell::Cell::new(crate::suggest::SUGGESTION_CELLS);
    read_decision_list(
        reader,
        value,
        "permit",
        |name| {
            (!decisions.iter().any(|d| d == name)).then(|| {
                let mut cells = cells_left.get();
                let declared = crate::suggest::declared_decisions(name, decisions, &mut cells);
                cells_left.set(cells);
                (
                    Code::UndeclaredDecision,
                    format!("permit names {name:?}, which is not in \"decisions\" {declared}"),
                )
            })
        },
        |name| format!("permit names {name:?} twice"),
    )
}

fn read_decisions(reader: &mut Reader<'_>, value: &Value) -> Vec<String> {
    read_decision_list(
        reader,
        value,
        "decisions",
        |name| {
            (!valid_label(name)).then(|| {
                (
                    Code::InvalidName,
                    format!("decision {name:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"),
                )
            })
        },
        |name| format!("decision {name:?} is declared twice"),
    )
}

/// The non-empty list of decision names at `/{field}`: at most [`limits::MAX_DECISIONS`]
/// items (`policy.too_many`, checked before any item), each a string that `refuse` accepts (it
/// gives the code and message of a refusal) and named once (`policy.duplicate_decision`, with
/// the message `twice` gives). Refused items are reported and left out.
fn read_decision_list(
    reader: &mut Reader<'_>,
    value: &Value,
    field: &str,
    refuse: impl Fn(&str) -> Option<(Code, String)>,
    twice: impl Fn(&str) -> String,
) -> Vec<String> {
    let list_path = format!("/{field}");
    // Counted before the list's own bound (`policy.list_too_long` past 1,024 items), so that
    // every list too long for decisions is `policy.too_many`, as documented.
    let items = match value {
        Value::Array(items) if items.len() > limits::MAX_DECISIONS => items.as_slice(),
        _ => match reader.list(value, &list_path, field) {
            Some(items) => items,
            None => return Vec::new(),
        },
    };
    if items.len() > limits::MAX_DECISIONS {
        reader.report(
            Code::TooMany,
            &list_path,
            format!(
                "{} entries in \"{field}\", more than {}",
                items.len(),
                limits::MAX_DECISIONS
            ),
        );
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{list_path}/{i}");
        let Some(name) = string(reader, item, &path) else {
            continue;
        };
        if let Some((code, message)) = refuse(name) {
            reader.report(code, &path, message);
        } else if names.iter().any(|d| d == name) {
            reader.report(Code::DuplicateDecision, &path, twice(name));
        } else {
            names.push(name.to_owned());
        }
    }
    names
}

fn read_rule(reader: &mut Reader<'_>, value: &Value, path: &str) -> Option<Rule> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "a rule must be an object {{\"id\", \"when\", \"then\"}}, found {}",
                crate::error::json_kind(value)
            ),
        );
        return None;
    };
    check_fields(reader, map, path, &["id", "when", "then", "description"]);
    if let Some(d) = map.get("description") {
        string(reader, d, &join_path(path, "description"));
    }
    let id =
        required(reader, map, path, "id").and_then(|v| string(reader, v, &join_path(path, "id")));
    if let Some(id) = id
        && !valid_label(id)
    {
        reader.report(
            Code::InvalidName,
            &join_path(path, "id"),
            format!("rule id {id:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"),
        );
    }
    let when = required(reader, map, path, "when")
        .and_then(|v| reader.condition(v, &join_path(path, "when"), 1, &[]));
    let then = required(reader, map, path, "then")
        .and_then(|v| read_outcome(reader, v, &join_path(path, "then")));
    Some(Rule {
        id: id?.to_owned(),
        when: when?,
        then: then?,
        path: path.to_owned(),
    })
}
