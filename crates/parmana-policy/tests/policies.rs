//! The example policies under `policies/` and the legacy bundles of the original tooling: decisions, tests and coverage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::Path;

use parmana_policy::{SchemaVersion, check, compile, run_policy_tests};

use parmana_testkit::{
    legacy_bundles as legacy_dir, legacy_js_bundles, repository_root as repo_root,
};

/// Reads every `tests/*.json` of a policy directory as (file name, bytes).
fn test_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn example_policies_pass_their_tests_with_full_coverage() {
    for name in ["claims-approval/1.0.0", "patient-triage/1.0.0"] {
        let dir = repo_root().join("policies").join(name);
        let bytes = std::fs::read(dir.join("policy.json")).unwrap();
        let report = check(&bytes);
        assert!(report.diagnostics.is_empty(), "{name}: {}", report.render());
        let files = test_files(&dir);
        assert!(files.len() >= 5, "{name}: too few test cases");
        let tests = run_policy_tests(&bytes, &files).unwrap();
        assert!(tests.all_passed(), "{name}:\n{tests}");
        assert!(tests.meets_threshold(100.0), "{name}:\n{tests}");
    }
}

#[test]
fn patient_triage_translation_agrees_with_the_legacy_policy() {
    let v2 = compile(
        &std::fs::read(repo_root().join("policies/patient-triage/1.0.0/policy.json")).unwrap(),
    )
    .unwrap();
    let v1 = compile(&std::fs::read(legacy_dir().join("patient-triage/v1/policy.json")).unwrap())
        .unwrap();
    for severity in [-1.0, 0.0, 3.0, 7.9, 8.0, 8.000_001, 9.0, 100.0] {
        for elevated in [false, true] {
            let signals =
                serde_json::json!({"symptom_severity": severity, "heart_rate_elevated": elevated});
            let a = v1.validate_signals(&signals).unwrap().evaluate().unwrap();
            let b = v2.validate_signals(&signals).unwrap().evaluate().unwrap();
            assert_eq!(a.decision, b.decision, "{signals}");
        }
    }
}

/// (policy, signals, expected decision) from the legacy bundles' README.
const LEGACY_DECISIONS: &[(&str, &str, &str)] = &[
    (
        "claims-approval/v1",
        r#"{"insurance_active": true, "risk_score": 42, "vip_customer": false}"#,
        "approve",
    ),
    (
        "claims-approval/v1",
        r#"{"insurance_active": false, "risk_score": 42, "vip_customer": false}"#,
        "deny",
    ),
    (
        "claims-approval/v1",
        r#"{"insurance_active": true, "risk_score": 95, "vip_customer": false}"#,
        "deny",
    ),
    (
        "claims-approval/v1",
        r#"{"insurance_active": true, "risk_score": 95, "vip_customer": true}"#,
        "approve",
    ),
    (
        "patient-triage/v1",
        r#"{"symptom_severity": 9, "heart_rate_elevated": false}"#,
        "escalate",
    ),
    (
        "patient-triage/v1",
        r#"{"symptom_severity": 8, "heart_rate_elevated": false}"#,
        "deny",
    ),
    (
        "patient-triage/v1",
        r#"{"symptom_severity": 3, "heart_rate_elevated": true}"#,
        "escalate",
    ),
];

#[test]
fn legacy_bundles_evaluate_to_the_documented_decisions() {
    for (bundle, signals, expected) in LEGACY_DECISIONS {
        let bytes = std::fs::read(legacy_dir().join(bundle).join("policy.json"))
            .expect("vectors/legacy-bundles must exist in the repository");
        let report = check(&bytes);
        assert!(
            report.diagnostics.is_empty(),
            "{bundle}: {}",
            report.render()
        );
        let policy = report.into_result().unwrap();
        assert_eq!(policy.schema_version(), SchemaVersion::Legacy1);
        let decision = policy
            .validate_signals_json(signals.as_bytes())
            .unwrap()
            .evaluate()
            .unwrap();
        assert_eq!(decision.decision, *expected, "{bundle} {signals}");
        let expected_rule = if *expected == "deny" {
            "default"
        } else {
            "rules"
        };
        assert_eq!(decision.rule_id, expected_rule, "{bundle} {signals}");
    }
}

#[test]
fn legacy_claims_signal_errors() {
    let bytes = std::fs::read(legacy_dir().join("claims-approval/v1/policy.json")).unwrap();
    let policy = compile(&bytes).unwrap();
    let missing = policy
        .validate_signals_json(br#"{"insurance_active": true, "vip_customer": false}"#)
        .unwrap_err();
    assert_eq!(missing.code(), "policy.signal_missing");
    assert_eq!(missing.signal(), Some("risk_score"));
    let wrong = policy
        .validate_signals_json(
            br#"{"insurance_active": true, "risk_score": "high", "vip_customer": false}"#,
        )
        .unwrap_err();
    assert_eq!(wrong.code(), "policy.signal_type");
    assert_eq!(wrong.signal(), Some("risk_score"));
}

#[test]
fn legacy_skeleton_is_refused_with_a_schema_error() {
    let bytes = std::fs::read(legacy_dir().join("claims-approval/v2/policy.json")).unwrap();
    let err = compile(&bytes).unwrap_err();
    assert_eq!(err.code(), "policy.unsupported_schema_version");
}

/// The bundle JavaScript signed with names outside 2.0.0's grammar (`vectors/legacy-js/`):
/// every case of its `cases.json` decides as the JavaScript re-enactment of schema 1.0.0 did,
/// from a JSON tree and from text whose keys are written with escapes.
#[test]
fn legacy_names_decide_as_javascript_did() {
    let dir = legacy_js_bundles().join("legacy-names");
    let policy = compile(&std::fs::read(dir.join("v1/policy.json")).unwrap()).unwrap();
    assert_eq!(policy.schema_version(), SchemaVersion::Legacy1);
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 16);
    for case in &cases {
        let (signals, expected) = (&case["signals"], case["decision"].as_str().unwrap());
        let decision = policy
            .validate_signals(signals)
            .unwrap()
            .evaluate()
            .unwrap();
        assert_eq!(decision.decision, expected, "{signals}");
        let rule = if expected == "deny" {
            "default"
        } else {
            "rules"
        };
        assert_eq!(decision.rule_id, rule, "{signals}");
        let escaped = serde_json::to_string(signals)
            .unwrap()
            .replace("\"10\"", "\"\\u0031\\u0030\"")
            .replace('é', "\\u00e9")
            .replace('\u{1d11e}', "\\ud834\\udd1e");
        let from_text = policy.validate_signals_json(escaped.as_bytes()).unwrap();
        assert_eq!(from_text.evaluate().unwrap(), decision, "{escaped}");
    }
}

/// In an explanation, a name outside 2.0.0's grammar is shown as a JSON string, so `"a b" lt 5`
/// or `"" eq true` cannot be misread; names within it are shown as before.
#[test]
fn legacy_names_in_explanations_are_quoted() {
    let dir = legacy_js_bundles().join("legacy-names");
    let policy = compile(&std::fs::read(dir.join("v1/policy.json")).unwrap()).unwrap();
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let validated = policy.validate_signals(&cases[0]["signals"]).unwrap();
    insta::assert_snapshot!(
        "explain_legacy_names",
        validated.explain().unwrap().to_string()
    );
}
