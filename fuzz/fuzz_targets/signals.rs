//! Fuzz target: signal validation and evaluation of the fixture `claims-approval` policy never panic; accepted signals always decide one of the declared decisions.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use parmana_policy::CompiledPolicy;

static POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    parmana_policy::compile(include_bytes!(
        "../../policies/claims-approval/1.0.0/policy.json"
    ))
    .expect("the fixture policy compiles")
});

fuzz_target!(|data: &[u8]| {
    match POLICY.validate_signals_json(data) {
        Ok(signals) => {
            // A fault is a defect of the evaluator on validated signals: the fuzzer reports it.
            let decision = signals.evaluate().expect("validated signals evaluate");
            assert!(["approve", "deny", "escalate"].contains(&decision.decision));
            assert_eq!(
                signals
                    .explain()
                    .expect("validated signals explain")
                    .decision,
                decision,
                "the trace decides as the indexed evaluation"
            );
            let canonical = signals.canonical_bytes().expect("validated signals encode");
            let again = POLICY
                .validate_signals_json(&canonical)
                .expect("canonical validated signals validate again");
            assert_eq!(
                again
                    .evaluate()
                    .expect("validated signals evaluate")
                    .rule_id,
                decision.rule_id
            );
        }
        Err(error) => assert!(error.code().starts_with("policy.")),
    }
});
