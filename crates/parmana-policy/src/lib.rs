//! `parmana-policy`: the policy language — parse, validate, compile, evaluate, explain and test (no IO, no crypto).
//!
//! ```
//! let policy = parmana_policy::compile(br#"{
//!   "schema_version": "2.0.0", "policy_id": "demo", "policy_version": "1.0.0",
//!   "decisions": ["approve", "escalate"], "permit": ["approve"],
//!   "signals": {"amount": {"type": "number", "required": true, "minimum": 0}},
//!   "rules": [{"id": "small", "when": {"signal": "amount", "le": 1000},
//!              "then": {"decision": "approve"}}],
//!   "default": {"decision": "escalate", "reason": "no rule matched"}
//! }"#).unwrap();
//! let signals = policy.validate_signals_json(br#"{"amount": 250}"#).unwrap();
//! let decision = signals.evaluate().unwrap();
//! assert_eq!((decision.decision, decision.rule_id), ("approve", "small"));
//! assert_eq!(signals.explain().unwrap().decision, decision);
//! assert_eq!(policy.permit(), Some(&["approve".to_owned()][..]));
//! ```
//!
//! The pipeline is: bytes → [`check`] (strict JSON, schema 2.0.0 or legacy 1.0.0,
//! every static check, warnings) → [`CompiledPolicy`] → signals validated into
//! [`ValidatedSignals`] → [`ValidatedSignals::evaluate`] (or [`ValidatedSignals::explain`])
//! → [`Decision`]. Policy test cases run with [`run_policy_tests`].

mod analysis;
mod compile;
mod declare;
mod diagnostic;
mod document;
mod error;
mod eval;
mod fast;
mod legacy;
mod model;
mod names;
mod parse;
mod signals;
mod suggest;
mod testing;

pub use compile::CompiledPolicy;
pub use diagnostic::{Diagnostic, DiagnosticCode, Severity, render_diagnostics};
pub use error::{MAX_REPORTED_SIGNAL_PROBLEMS, PolicyError, SignalError};
pub use eval::{ConditionTrace, DEFAULT_RULE_ID, Decision, Explanation, Fault, RuleTrace};
pub use legacy::{LEGACY_FALSE_DECISION, LEGACY_RULE_ID};
pub use model::{AdditionalSignals, SchemaVersion, SignalDecl, SignalType};
pub use signals::{SignalValue, ValidatedSignals};
pub use testing::{
    CaseOutcome, CaseReport, ConditionCoverage, Coverage, Expectation, RuleCoverage, TestReport,
    read_case, run_policy_tests, run_tests,
};

/// The name of this evaluator, recorded in every attestation.
pub const EVALUATOR_NAME: &str = "parmana-policy";

/// The version of this evaluator crate, recorded in every attestation.
pub const EVALUATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the evaluation semantics, recorded in every attestation and accepted
/// by release manifests. It changes whenever the same policy and signals could decide
/// differently.
pub const EVALUATOR_SEMANTICS: &str = "parmana-policy/2";

/// The documented bounds of a policy. A policy beyond any of them is refused.
pub mod limits {
    /// Largest policy document, in bytes.
    pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
    /// Most rules in one policy.
    pub const MAX_RULES: usize = 10_000;
    /// Most declared signals.
    pub const MAX_SIGNALS: usize = 1_024;
    /// Most declared decisions.
    pub const MAX_DECISIONS: usize = 256;
    /// Deepest nesting of conditions; a rule's `when` is at depth 1.
    pub const MAX_CONDITION_DEPTH: usize = 32;
    /// Most condition nodes in the whole policy.
    pub const MAX_CONDITION_NODES: usize = 100_000;
    /// Longest list: items of `all`/`any`, `in`/`not_in` operands, `enum` values (decisions and
    /// `permit` entries have their own, smaller bound).
    pub const MAX_LIST_LEN: usize = 1_024;
    /// Longest string constant (operands, reasons, descriptions), in Unicode scalar values.
    pub const MAX_STRING_LEN: usize = 4_096;
    /// Longest name: policy id, version, signal name, decision, rule id (ASCII characters).
    pub const MAX_NAME_LEN: usize = 128;
}

/// The outcome of static validation: every diagnostic, and the compiled policy when there is no error.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Every finding: errors in the order the document is read (its members in the reader's
    /// fixed order — `policy_id`, `policy_version`, … — list items in order; the checks across
    /// rules after them), then warnings; at most 1,000 listed per reader, then one more saying
    /// how many were not.
    pub diagnostics: Vec<Diagnostic>,
    policy: Option<CompiledPolicy>,
}

impl CheckReport {
    /// Whether the policy was accepted (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.policy.is_some()
    }
    /// The compiled policy, when accepted.
    pub fn policy(&self) -> Option<&CompiledPolicy> {
        self.policy.as_ref()
    }
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
    /// The diagnostics rendered for a terminal (see [`render_diagnostics`]).
    pub fn render(&self) -> String {
        render_diagnostics(&self.diagnostics)
    }
    /// The compiled policy, or the refusal with every diagnostic.
    pub fn into_result(self) -> Result<CompiledPolicy, PolicyError> {
        match self.policy {
            Some(p) => Ok(p),
            None => Err(PolicyError::Invalid {
                diagnostics: self.diagnostics,
            }),
        }
    }
}

fn report_of(
    (model, mut diagnostics): (Option<model::PolicyModel>, Vec<Diagnostic>),
) -> CheckReport {
    let accepted = !diagnostics.iter().any(Diagnostic::is_error);
    let policy = match model.filter(|_| accepted).map(compile::compile_model) {
        Some(Ok(policy)) => Some(policy),
        Some(Err(refused)) => {
            diagnostics.push(refused);
            None
        }
        None => None,
    };
    diagnostics.sort_by_key(|d| d.severity);
    CheckReport {
        policy,
        diagnostics,
    }
}

/// Reads policy bytes (strict JSON, schema 2.0.0 or legacy 1.0.0) and runs every static check.
pub fn check(policy: &[u8]) -> CheckReport {
    report_of(document::read_policy(policy))
}

/// Like [`check`], for a policy already parsed (for example with `parmana_canon::parse_strict`).
///
/// The value is checked as its canonical text is, so that one built in code meets every rule
/// the text meets: the size limit, and numbers a double holds exactly (an integer past
/// ±(2^53−1) is `policy.invalid_json`, never rounded to a neighbour).
pub fn check_value(policy: &serde_json::Value) -> CheckReport {
    // Encoding recurses through the value: one nested past what the text may be is refused
    // before (looked at no deeper than one level past the bound; the text's parser then
    // decides at the bound itself).
    if nests_deeper(policy, parmana_canon::MAX_DEPTH + 1) {
        return report_of((
            None,
            vec![Diagnostic::new(
                DiagnosticCode::InvalidJson,
                "",
                format!(
                    "not strict JSON: nested deeper than {} levels (canon.too_deep)",
                    parmana_canon::MAX_DEPTH
                ),
            )],
        ));
    }
    match parmana_canon::canonicalize_value(policy) {
        Ok(text) => check(&text),
        Err(e) => report_of((None, vec![document::not_strict_json(&e)])),
    }
}

/// Whether `value` holds arrays or objects nested more than `limit` deep.
fn nests_deeper(value: &serde_json::Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
        serde_json::Value::Array(items) => Box::new(items.iter()),
        serde_json::Value::Object(members) => Box::new(members.values()),
        _ => return false,
    };
    match limit.checked_sub(1) {
        None => true,
        Some(left) => children.into_iter().any(|child| nests_deeper(child, left)),
    }
}

/// Reads, checks and compiles policy bytes; warnings are dropped (see [`check`] to see them).
pub fn compile(policy: &[u8]) -> Result<CompiledPolicy, PolicyError> {
    check(policy).into_result()
}
