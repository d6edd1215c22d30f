//! Legacy bundles through the facade: the edits their signature cannot see keep the verdict and every decision, the edits it cannot see but that change what would be read are refused.
//!
//! Each row of [`EDITS`] applies textual replacements to one file of a bundle signed by the
//! original tooling (`vectors/legacy-bundles/`) or by its JavaScript re-enactment
//! (`vectors/legacy-js/`), then checks one [`check`]: the legacy signature still verifies and the
//! policy decides every signal set of the bundle's table as before — or the edit is refused with
//! the row's code. `docs/trust-model.md` §7 lists these edits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use parmana_runtime::canon::Digest;
use parmana_runtime::policy::compile;
use parmana_runtime::trust::{read_bundle_dir, read_public_key_file, verify_legacy_bundle};
use parmana_testkit::repository_root;
use serde_json::{Value, json};

/// One edit: what it shows, the bundle (under `vectors/`), the file, the replacements (each
/// `from` must occur exactly once), and `None` when the bundle must still verify with the same
/// decisions, or the code it must be refused with.
struct Edit {
    what: &'static str,
    bundle: &'static str,
    file: &'static str,
    replace: &'static [(&'static str, &'static str)],
    refused: Option<&'static str>,
}

const CLAIMS: &str = "legacy-bundles/claims-approval/v1";
const TRIAGE: &str = "legacy-bundles/patient-triage/v1";
const NAMES: &str = "legacy-js/legacy-names/v1";

const EDITS: &[Edit] = &[
    // Whitespace between tokens.
    Edit {
        what: "whitespace in the policy",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[(
            "\"decision\": \"approve\",\n\n",
            "\"decision\"\t:\"approve\" ,\r\n",
        )],
        refused: None,
    },
    Edit {
        what: "whitespace in the manifest",
        bundle: CLAIMS,
        file: "bundle.manifest.json",
        replace: &[(
            "\"manifest_version\": \"1\",\n  ",
            "\"manifest_version\":\"1\",",
        )],
        refused: None,
    },
    Edit {
        what: "the signature's trailing line ends",
        bundle: CLAIMS,
        file: "bundle.sig",
        replace: &[("==\r\n\r\n", "==\n")],
        refused: None,
    },
    // Numbers respelt: any spelling of the same double.
    Edit {
        what: "70 as 7e1",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 7e1")],
        refused: None,
    },
    Edit {
        what: "70 as 70.0",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 70.0")],
        refused: None,
    },
    Edit {
        what: "70 as 7.0E+1",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 7.0E+1")],
        refused: None,
    },
    Edit {
        what: "70 as 700e-1",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 700e-1")],
        refused: None,
    },
    Edit {
        what: "70 as 70.000000000000001 (the same double)",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 70.000000000000001")],
        refused: None,
    },
    Edit {
        what: "8 as 0.8e1",
        bundle: TRIAGE,
        file: "policy.json",
        replace: &[("\"greater_than\": 8", "\"greater_than\": 0.8e1")],
        refused: None,
    },
    Edit {
        what: "1e2 as 100, -1.0 as -0.1E1, 0.5 as 5e-1",
        bundle: NAMES,
        file: "policy.json",
        replace: &[
            ("\"less_than\": 1e2", "\"less_than\": 100"),
            ("\"greater_than\": -1.0", "\"greater_than\": -0.1E1"),
            ("\"less_than\": 0.5", "\"less_than\": 5e-1"),
        ],
        refused: None,
    },
    // String escapes.
    Edit {
        what: "escapes in a signal name, a decision, a type and the schema version",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[
            ("\"insurance_active\": {", "\"\\u0069nsurance_active\": {"),
            (
                "\"decision\": \"approve\"",
                "\"decision\": \"appr\\u006Fve\"",
            ),
            (
                "\"signal\": \"vip_customer\"",
                "\"signal\": \"vip\\u005fcustomer\"",
            ),
            (
                "\"schema_version\": \"1.0.0\"",
                "\"schema_version\": \"1\\u002e0.0\"",
            ),
        ],
        refused: None,
    },
    Edit {
        what: "escapes in the manifest's id and artifact path",
        bundle: CLAIMS,
        file: "bundle.manifest.json",
        replace: &[
            ("\"claims-approval\"", "\"claims\\u002dapproval\""),
            ("\"policy.json\"", "\"policy\\u002Ejson\""),
        ],
        refused: None,
    },
    Edit {
        what: "escapes in legacy names: a surrogate pair written raw, a raw name escaped",
        bundle: NAMES,
        file: "policy.json",
        replace: &[
            ("\"\\ud834\\udd1e\": {", "\"\u{1d11e}\": {"),
            ("\"signal\": \"\\u00e9\"", "\"signal\": \"\\u00E9\""),
            ("\"4294967295\": {", "\"\\u0034294967295\": {"),
        ],
        refused: None,
    },
    // Key order.
    Edit {
        what: "the members of a leaf swapped",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[(
            "\"signal\": \"insurance_active\",\n        \"equals\": true\n",
            "\"equals\": true,\n        \"signal\": \"insurance_active\"\n",
        )],
        refused: None,
    },
    Edit {
        what: "policy_id and policy_version swapped in the manifest",
        bundle: CLAIMS,
        file: "bundle.manifest.json",
        replace: &[(
            "\"policy_id\": \"claims-approval\",\n  \"policy_version\": \"v1\",",
            "\"policy_version\": \"v1\",\n  \"policy_id\": \"claims-approval\",",
        )],
        refused: None,
    },
    Edit {
        what: "integer-like legacy names reordered, decision moved first",
        bundle: NAMES,
        file: "policy.json",
        replace: &[
            (
                "\"10\": { \"type\": \"number\", \"required\": true },\n    \"9\": { \"type\": \"boolean\", \"required\": true },",
                "\"9\": { \"type\": \"boolean\", \"required\": true },\n    \"10\": { \"type\": \"number\", \"required\": true },",
            ),
            (
                "{\n  \"schema_version\"",
                "{\n  \"decision\": \"approve\",\n  \"schema_version\"",
            ),
            ("  \"decision\": \"approve\",\n  \"rules\"", "  \"rules\""),
        ],
        refused: None,
    },
    // Invisible to the legacy signature, but they would change what is read: refused.
    Edit {
        what: "an earlier duplicate member (JSON.parse keeps the last)",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[(
            "\"risk_score\": {",
            "\"risk_score\": {\"type\": \"boolean\", \"required\": true},\n    \"risk_score\": {",
        )],
        refused: Some("trust.malformed"),
    },
    Edit {
        what: "a __proto__ member (the original's canonical form drops it)",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[(
            "\"signals\": {",
            "\"signals\": {\n    \"__proto__\": {\"type\": \"boolean\", \"required\": true},",
        )],
        refused: Some("trust.malformed"),
    },
    // Visible: the signature catches it.
    Edit {
        what: "70 changed to 71",
        bundle: CLAIMS,
        file: "policy.json",
        replace: &[("\"less_than\": 70", "\"less_than\": 71")],
        refused: Some("trust.digest_mismatch"),
    },
    Edit {
        what: "two integer-like names exchanged",
        bundle: NAMES,
        file: "policy.json",
        replace: &[(
            "\"10\": { \"type\": \"number\", \"required\": true },\n    \"9\": { \"type\": \"boolean\", \"required\": true },",
            "\"9\": { \"type\": \"number\", \"required\": true },\n    \"10\": { \"type\": \"boolean\", \"required\": true },",
        )],
        refused: Some("trust.digest_mismatch"),
    },
];

fn vectors() -> PathBuf {
    repository_root().join("vectors")
}

fn key_file(bundle: &str) -> PathBuf {
    if bundle.starts_with("legacy-js/") {
        vectors().join("legacy-js/legacy-js-signing.pub")
    } else {
        vectors().join("legacy-bundles/legacy-bundle-signing.pub")
    }
}

/// The signal sets of a bundle with the decisions its README (or `cases.json`) gives.
fn decision_table(bundle: &str) -> Vec<(Value, String)> {
    let rows = |rows: &[(Value, &str)]| {
        rows.iter()
            .map(|(s, d)| (s.clone(), (*d).to_owned()))
            .collect()
    };
    match bundle {
        CLAIMS => rows(&[
            (
                json!({"insurance_active": true, "risk_score": 42, "vip_customer": false}),
                "approve",
            ),
            (
                json!({"insurance_active": false, "risk_score": 42, "vip_customer": false}),
                "deny",
            ),
            (
                json!({"insurance_active": true, "risk_score": 95, "vip_customer": false}),
                "deny",
            ),
            (
                json!({"insurance_active": true, "risk_score": 95, "vip_customer": true}),
                "approve",
            ),
            (
                json!({"insurance_active": true, "risk_score": 69.9, "vip_customer": false}),
                "approve",
            ),
            (
                json!({"insurance_active": true, "risk_score": 70, "vip_customer": false}),
                "deny",
            ),
        ]),
        TRIAGE => rows(&[
            (
                json!({"symptom_severity": 9, "heart_rate_elevated": false}),
                "escalate",
            ),
            (
                json!({"symptom_severity": 8, "heart_rate_elevated": false}),
                "deny",
            ),
            (
                json!({"symptom_severity": 3, "heart_rate_elevated": true}),
                "escalate",
            ),
            (
                json!({"symptom_severity": 8.5, "heart_rate_elevated": false}),
                "escalate",
            ),
        ]),
        NAMES => {
            let text = std::fs::read(vectors().join("legacy-js/legacy-names/cases.json")).unwrap();
            let cases: Vec<Value> = serde_json::from_slice(&text).unwrap();
            cases
                .into_iter()
                .map(|c| {
                    (
                        c["signals"].clone(),
                        c["decision"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        }
        other => panic!("no decision table for {other}"),
    }
}

fn decisions(policy_json: &[u8], table: &[(Value, String)]) -> Vec<String> {
    let policy = compile(policy_json).unwrap();
    table
        .iter()
        .map(|(signals, _)| {
            let validated = policy.validate_signals(signals).unwrap();
            validated.evaluate().unwrap().decision.to_owned()
        })
        .collect()
}

fn check(edit: &Edit) {
    let what = edit.what;
    let key = read_public_key_file(&key_file(edit.bundle)).unwrap();
    let files = read_bundle_dir(&vectors().join(edit.bundle)).unwrap();
    let original = files[edit.file].clone();
    let mut text = String::from_utf8(original.clone()).unwrap();
    for (from, to) in edit.replace {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{what}: {from:?} must occur once"
        );
        text = text.replacen(from, to, 1);
    }
    assert_ne!(text.as_bytes(), original, "{what}: nothing changed");
    let mut edited = files.clone();
    edited.insert(edit.file.to_owned(), text.into_bytes());
    let verdict = verify_legacy_bundle(&edited, &key);
    if let Some(code) = edit.refused {
        assert_eq!(verdict.map(|_| ()).unwrap_err().code(), code, "{what}");
        return;
    }
    let verified = verdict.unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    let table = decision_table(edit.bundle);
    let expected: Vec<String> = table.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        decisions(&files["policy.json"], &table),
        expected,
        "{what}: unedited"
    );
    let policy_json = &verified.files()["policy.json"];
    assert_eq!(
        decisions(policy_json, &table),
        expected,
        "{what}: decisions"
    );
    if edit.file == "policy.json" {
        // What the legacy signature cannot see, the re-issued bundle's raw-byte digest can.
        assert_ne!(
            Digest::of(policy_json),
            Digest::of(&files["policy.json"]),
            "{what}"
        );
    }
}

#[test]
fn edits_the_legacy_signature_cannot_see() {
    for edit in EDITS {
        check(edit);
    }
    let kept = EDITS.iter().filter(|e| e.refused.is_none()).count();
    assert!(kept >= 15 && EDITS.len() - kept >= 4);
}

/// The bundles as signed, with every name `cases.json` uses, decide as the table says.
#[test]
fn the_signed_bundles_decide_as_their_tables_say() {
    for bundle in [CLAIMS, TRIAGE, NAMES] {
        let key = read_public_key_file(&key_file(bundle)).unwrap();
        let files = read_bundle_dir(&vectors().join(bundle)).unwrap();
        let verified = verify_legacy_bundle(&files, &key).unwrap();
        let table = decision_table(bundle);
        let expected: Vec<String> = table.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(
            decisions(&verified.files()["policy.json"], &table),
            expected,
            "{bundle}"
        );
    }
    assert_eq!(decision_table(NAMES).len(), 16);
}
