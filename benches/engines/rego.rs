//! regorus (Rego, 0.14) behind the benchmark's calls: typed input, JSON text, the `result` rule.
//!
//! The module (see `parmana_benches::render`) is parsed and compiled once. Two ways of evaluating
//! it are offered, both pre-compiled: the interpreter (`Engine` with the policy added, input set
//! per evaluation, `eval_rule("data.<name>.result")`) and regorus's register VM (the same compiled
//! policy lowered to an RVM program once, then `set_input` + `execute`). The benchmark reports the
//! faster of the two as regorus's row, so the peer is measured at its best.

use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use std::sync::Arc;

use parmana_benches::render;
use parmana_benches::spec::{Outcome, PolicySpec, SignalSet, signals_to_json};

/// How regorus evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegoMode {
    /// The tree-walking interpreter, `Engine::eval_rule`.
    Interpreter,
    /// The register VM, `RegoVM::execute` over a program compiled once.
    Vm,
}

impl RegoMode {
    /// How the differential check names this mode's typed path.
    pub(crate) fn typed_label(self) -> &'static str {
        match self {
            Self::Interpreter => "regorus interpreter typed",
            Self::Vm => "regorus vm typed",
        }
    }

    /// How the differential check names this mode's JSON path.
    pub(crate) fn json_label(self) -> &'static str {
        match self {
            Self::Interpreter => "regorus interpreter json",
            Self::Vm => "regorus vm json",
        }
    }
}

/// A compiled Rego policy ready to decide.
pub(crate) struct RegoEngine {
    mode: RegoMode,
    engine: Engine,
    vm: RegoVM,
    rule_path: String,
}

impl RegoEngine {
    /// Parses and compiles the rendered module for `mode`.
    pub(crate) fn new(spec: &PolicySpec, mode: RegoMode) -> Result<Self, String> {
        let rule_path = render::rego_result_path(spec);
        let mut engine = Engine::new();
        engine
            .add_policy(format!("{}.rego", spec.name()), render::rego_module(spec))
            .map_err(|e| format!("rego policy: {e}"))?;
        let mut vm = RegoVM::new();
        if mode == RegoMode::Vm {
            let compiled = engine
                .compile_with_entrypoint(&rule_path.as_str().into())
                .map_err(|e| format!("rego compile: {e}"))?;
            let program: Arc<Program> =
                regorus::languages::rego::compiler::Compiler::compile_from_policy(
                    &compiled,
                    &[rule_path.as_str()],
                )
                .map_err(|e| format!("rego rvm compile: {e}"))?;
            vm.load_program(program);
        }
        Ok(Self {
            mode,
            engine,
            vm,
            rule_path,
        })
    }

    /// A typed input: the signals as a regorus value (built once, outside the timed loop).
    pub(crate) fn typed_input(signals: &SignalSet) -> Result<Value, String> {
        Value::from_json_str(&signals_to_json(signals)).map_err(|e| format!("rego input: {e}"))
    }

    /// How this engine evaluates.
    pub(crate) fn mode(&self) -> RegoMode {
        self.mode
    }

    /// One decision from an input (a cheap reference-counted clone of a pre-built one on the typed
    /// path); the result is regorus's `{"decision", "rule_id"}` object.
    pub(crate) fn decide(&mut self, input: Value) -> Result<Value, String> {
        match self.mode {
            RegoMode::Interpreter => {
                self.engine.set_input(input);
                self.engine
                    .eval_rule(self.rule_path.clone())
                    .map_err(|e| format!("rego eval: {e}"))
            }
            RegoMode::Vm => {
                self.vm.set_input(input);
                self.vm.execute().map_err(|e| format!("rego vm: {e}"))
            }
        }
    }

    /// One decision from JSON text (parsed into a regorus value first; Rego has no input schema to
    /// check it against, so this row holds parsing only).
    pub(crate) fn decide_json(&mut self, json: &str) -> Result<Value, String> {
        let input = Value::from_json_str(json).map_err(|e| format!("rego input: {e}"))?;
        self.decide(input)
    }
}

/// Reads `{"decision", "rule_id"}` out of a result.
pub(crate) fn outcome(result: &Value) -> Result<Outcome<'_>, String> {
    let field = |name: &str| {
        result[name]
            .as_string()
            .map(|s| s.as_ref())
            .map_err(|e| format!("rego result {name}: {e}"))
    };
    Ok(Outcome {
        decision: field("decision")?,
        rule_id: field("rule_id")?,
    })
}
