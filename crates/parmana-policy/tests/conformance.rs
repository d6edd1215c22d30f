//! The data-driven conformance suite: every case in `tests/cases/` checked by one `check` helper.
//!
//! A case is a policy (`policy`, or raw `policy_text`), the exact diagnostics it must
//! produce (`expect_diagnostics`: `{code, path}`; none when omitted), and evaluations:
//! signals (`signals`, or raw `signals_text`) with the expected `decision`, `rule_id`
//! and optional `reason`, or the expected `error` code and optional `signal`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use parmana_policy::{DiagnosticCode, Severity, check};
use serde_json::Value;

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Checks one case file; returns the diagnostic codes and the number of evaluations it covered.
fn check_case(path: &Path) -> (Vec<String>, usize) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let allowed = [
        "description",
        "policy",
        "policy_text",
        "expect_diagnostics",
        "evaluations",
    ];
    for key in case.as_object().unwrap().keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{name}: unknown case field {key}"
        );
    }
    assert!(
        text(&case, "description").is_some(),
        "{name}: needs a description"
    );
    let bytes = match (case.get("policy"), text(&case, "policy_text")) {
        (Some(p), None) => serde_json::to_vec(p).unwrap(),
        (None, Some(t)) => t.as_bytes().to_vec(),
        _ => panic!("{name}: needs exactly one of policy, policy_text"),
    };
    let report = check(&bytes);
    let mut expected: Vec<(String, String)> = case
        .get("expect_diagnostics")
        .map(|d| {
            d.as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        text(e, "code").unwrap().to_owned(),
                        text(e, "path").unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut got: Vec<(String, String)> = report
        .diagnostics
        .iter()
        .map(|d| (d.code.code().to_owned(), d.path.clone()))
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "{name}: diagnostics\n{}", report.render());
    let expects_error = expected.iter().any(|(code, _)| {
        DiagnosticCode::ALL
            .iter()
            .any(|c| c.code() == code && c.severity() == Severity::Error)
    });
    assert_eq!(report.is_ok(), !expects_error, "{name}: accepted?");
    let evaluations = case
        .get("evaluations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if evaluations.is_empty() {
        return (got.into_iter().map(|(c, _)| c).collect(), 0);
    }
    let policy = report.policy().unwrap_or_else(|| panic!("{name}: refused"));
    for (i, ev) in evaluations.iter().enumerate() {
        for key in ev.as_object().unwrap().keys() {
            assert!(
                [
                    "signals",
                    "signals_text",
                    "decision",
                    "rule_id",
                    "reason",
                    "error",
                    "signal"
                ]
                .contains(&key.as_str()),
                "{name}#{i}: unknown evaluation field {key}"
            );
        }
        let validated = match (ev.get("signals"), text(ev, "signals_text")) {
            (Some(s), None) => policy.validate_signals(s),
            (None, Some(t)) => policy.validate_signals_json(t.as_bytes()),
            _ => panic!("{name}#{i}: needs exactly one of signals, signals_text"),
        };
        if let Some(code) = text(ev, "error") {
            let err = validated.expect_err(&format!("{name}#{i}: signals must be refused"));
            assert_eq!(err.code(), code, "{name}#{i}: {err}");
            assert_eq!(err.signal(), text(ev, "signal"), "{name}#{i}: signal named");
            continue;
        }
        let signals = validated.unwrap_or_else(|e| panic!("{name}#{i}: refused: {e}"));
        let decision = signals.evaluate().unwrap();
        assert_eq!(
            decision.decision,
            text(ev, "decision").unwrap(),
            "{name}#{i}: decision"
        );
        assert_eq!(
            decision.rule_id,
            text(ev, "rule_id").unwrap(),
            "{name}#{i}: rule"
        );
        assert_eq!(decision.reason, text(ev, "reason"), "{name}#{i}: reason");
        let explanation = signals.explain().unwrap();
        assert_eq!(explanation.decision, decision, "{name}#{i}: explain");
        // The bound a host checks before it explains holds.
        let signals_len = match (ev.get("signals"), text(ev, "signals_text")) {
            (Some(s), _) => serde_json::to_vec(s).unwrap().len(),
            (_, Some(t)) => t.len(),
            _ => unreachable!(),
        };
        let trace = parmana_canon::to_canonical_vec(&explanation).unwrap();
        let bound = policy.trace_bytes_bound() + policy.condition_count() * signals_len;
        assert!(
            trace.len() <= bound,
            "{name}#{i}: a trace of {} bytes, bound {bound}",
            trace.len()
        );
        // The JSON text path decides the same.
        let text_form = serde_json::to_vec(&signals.to_json_value()).unwrap();
        let again = policy.validate_signals_json(&text_form).unwrap();
        assert_eq!(again.evaluate().unwrap(), decision, "{name}#{i}: from text");
    }
    (got.into_iter().map(|(c, _)| c).collect(), evaluations.len())
}

#[test]
fn conformance_cases() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Every file is a case: a misnamed one would be skipped, not run.
    for path in &paths {
        assert!(
            path.extension().is_some_and(|x| x == "json"),
            "{}: not a .json case",
            path.display()
        );
    }
    paths.sort();
    assert!(paths.len() > 100, "expected the conformance cases");
    let mut codes_seen = BTreeSet::new();
    let mut evaluations = 0;
    let mut failures = Vec::new();
    for path in &paths {
        match std::panic::catch_unwind(|| check_case(path)) {
            Ok((codes, n)) => {
                codes_seen.extend(codes);
                evaluations += n;
            }
            Err(_) => failures.push(path.file_name().unwrap().to_string_lossy().into_owned()),
        }
    }
    assert!(failures.is_empty(), "failing cases: {failures:?}");
    assert!(evaluations > 150, "only {evaluations} evaluations");
    // Every diagnostic code appears in some case, except those checked in `diagnostics.rs`.
    let elsewhere = [
        "policy.too_large",
        "policy.too_many",
        "policy.analysis_incomplete",
    ];
    for code in DiagnosticCode::ALL {
        assert!(
            codes_seen.contains(code.code()) || elsewhere.contains(&code.code()),
            "no conformance case produces {code}"
        );
    }
}
