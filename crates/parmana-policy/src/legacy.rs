//! Schema 1.0.0 (the original format), read-compatible: translated to the same model as schema 2.0.0, fail-closed.
//!
//! A legacy policy is `{"schema_version": "1.0.0", "signals", "decision", "rules"}`
//! where `rules` is one condition tree of `all` / `any` / leaves with `equals`,
//! `greater_than` or `less_than`. It becomes one rule with id [`LEGACY_RULE_ID`]
//! producing `decision`, and a default of `"deny"`. Unlike the original evaluator,
//! empty lists, unknown operators, leaves without a signal, leaves with several
//! operators and undeclared signals are refused.

use serde_json::{Map, Value};

use crate::declare::read_signals;
use crate::diagnostic::{Diagnostic, DiagnosticCode as Code};
use crate::model::{AdditionalSignals, Outcome, PolicyModel, Rule, SchemaVersion};
use crate::parse::{Dialect, Reader, check_fields, required, string, valid_label};

/// The rule id of the single rule a legacy policy is translated to.
pub const LEGACY_RULE_ID: &str = "rules";

/// The decision of a legacy policy whose rule tree is false.
pub const LEGACY_FALSE_DECISION: &str = "deny";

pub(crate) fn read_legacy(map: &Map<String, Value>) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    let mut top = Reader::new(Dialect::Legacy1, &[]);
    check_fields(
        &mut top,
        map,
        "",
        &["schema_version", "signals", "decision", "rules"],
    );
    let signals = match required(&mut top, map, "", "signals") {
        Some(v) => read_signals(&mut top, v, "/signals"),
        // Missing (reported): no condition is reported again as naming an undeclared signal.
        None => crate::declare::DeclaredSignals {
            all_refused: true,
            ..crate::declare::DeclaredSignals::default()
        },
    };
    let decision = required(&mut top, map, "", "decision")
        .and_then(|v| string(&mut top, v, "/decision"))
        .map(str::to_owned);
    if let Some(d) = &decision
        && !valid_label(d)
    {
        top.report(
            Code::InvalidName,
            "/decision",
            format!("decision {d:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"),
        );
    }
    let mut diagnostics = top.take_diagnostics();
    let mut reader = Reader::over(Dialect::Legacy1, &signals);
    let when =
        required(&mut reader, map, "", "rules").and_then(|v| reader.condition(v, "/rules", 1, &[]));
    diagnostics.append(&mut reader.take_diagnostics());
    let model = match (decision, when) {
        (Some(decision), Some(when)) => {
            let mut decisions = vec![decision.clone()];
            if decision != LEGACY_FALSE_DECISION {
                decisions.push(LEGACY_FALSE_DECISION.to_owned());
            }
            Some(PolicyModel {
                schema: SchemaVersion::Legacy1,
                policy_id: None,
                policy_version: None,
                description: None,
                decisions,
                permit: None,
                signals: signals.decls,
                additional_signals: AdditionalSignals::Reject,
                rules: vec![Rule {
                    id: LEGACY_RULE_ID.to_owned(),
                    when,
                    then: Outcome {
                        decision,
                        reason: None,
                    },
                    path: "/rules".to_owned(),
                }],
                default: Outcome {
                    decision: LEGACY_FALSE_DECISION.to_owned(),
                    reason: None,
                },
                default_path: String::new(),
            })
        }
        _ => None,
    };
    crate::analysis::finish(model, diagnostics)
}
