//! Fuzz target: the policy parser and validator (`check`, `compile`) never panic, and agree on whether a policy is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = parmana_policy::check(data);
    let compiled = parmana_policy::compile(data);
    if let Err(error) = &compiled {
        assert!(!error.code().is_empty());
    }
    // `check` and `compile` agree: a policy compiles exactly when the report has no error.
    assert_eq!(report.is_ok(), compiled.is_ok());
});
