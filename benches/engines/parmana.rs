//! Our engine (`parmana-policy`) behind the benchmark's calls: pre-validated signals, JSON text.
//!
//! The rendered schema 2.0.0 policy is compiled once. The typed path evaluates signals that were
//! validated beforehand (`ValidatedSignals`, the only input `evaluate` accepts); the JSON path
//! includes strict parsing and validation against the declarations (`validate_signals_json`).

use parmana_benches::render;
use parmana_benches::spec::{Outcome, PolicySpec, SignalSet, signals_to_json};
use parmana_policy::{CompiledPolicy, Decision, ValidatedSignals};

/// A compiled policy ready to decide.
pub(crate) struct ParmanaEngine {
    policy: CompiledPolicy,
}

impl ParmanaEngine {
    /// Compiles the rendered policy; warnings are allowed, errors are not.
    pub(crate) fn new(spec: &PolicySpec) -> Result<Self, String> {
        let policy = parmana_policy::compile(render::parmana_policy_json(spec).as_bytes())
            .map_err(|e| format!("parmana policy: {e}"))?;
        Ok(Self { policy })
    }

    /// Typed input: the signals validated once, outside the timed loop.
    pub(crate) fn typed_signals(
        &self,
        signals: &SignalSet,
    ) -> Result<ValidatedSignals<'_>, String> {
        self.policy
            .validate_signals_json(signals_to_json(signals).as_bytes())
            .map_err(|e| format!("parmana signals: {e}"))
    }

    /// One decision from pre-validated signals.
    pub(crate) fn decide<'p>(
        &self,
        signals: &ValidatedSignals<'p>,
    ) -> Result<Decision<'p>, String> {
        signals
            .evaluate()
            .map_err(|e| format!("parmana evaluation: {e}"))
    }

    /// One decision from JSON text: strict parsing, validation, evaluation.
    pub(crate) fn decide_json(&self, json: &str) -> Result<Decision<'_>, String> {
        let signals = self
            .policy
            .validate_signals_json(json.as_bytes())
            .map_err(|e| format!("parmana signals: {e}"))?;
        signals
            .evaluate()
            .map_err(|e| format!("parmana evaluation: {e}"))
    }
}

/// The decision and rule id of one of our decisions.
pub(crate) fn outcome<'a>(decision: &Decision<'a>) -> Outcome<'a> {
    Outcome {
        decision: decision.decision,
        rule_id: decision.rule_id,
    }
}
