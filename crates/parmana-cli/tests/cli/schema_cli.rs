//! The JSON Schemas of `docs/schema/` held against the code: each is a valid 2020-12 schema; every policy, test case, bundle manifest, release manifest, trust root, golden attestation predicate, legacy vector, valid conformance case and documentation example validates; and documents the code refuses for their shape are refused by the schema too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use parmana_runtime::canon::{Timestamp, canonicalize_value};
use parmana_runtime::policy::{CaseOutcome, check, run_policy_tests};
use parmana_runtime::trust::{
    LocalSigningKey, Signer as _, VerifiedTrustRoot, read_release_manifest_version,
};
use parmana_runtime::{load_bundle, load_trust_root, verify_attestation};
use serde_json::{Value, json};

use crate::common::repo_root;

/// Every schema of `docs/schema/`, by file name.
fn schemas() -> BTreeMap<String, Value> {
    let dir = repo_root().join("docs/schema");
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".schema.json"), "{name}: not a schema");
        let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        all.insert(name, schema);
    }
    all
}

/// The validator of one schema, by file name.
pub(crate) fn validator(name: &str) -> jsonschema::Validator {
    let path = repo_root().join("docs/schema").join(name);
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

/// Every problem the schema finds, one per line (empty when the document is valid).
pub(crate) fn problems(validator: &jsonschema::Validator, document: &Value) -> String {
    validator
        .iter_errors(document)
        .map(|e| format!("  {} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `document` (named `what`) is valid under `schema`.
fn check_valid(validator: &jsonschema::Validator, schema: &str, what: &str, document: &Value) {
    let found = problems(validator, document);
    assert!(found.is_empty(), "{what} is refused by {schema}:\n{found}");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = parmana_testkit::files_under(dir)
        .unwrap()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// The policy schema for a document: by its `schema_version` (2.0.0 when it names none, which
/// that schema refuses like the parser).
fn policy_schema(document: &Value) -> &'static str {
    match document.get("schema_version").and_then(Value::as_str) {
        Some("1.0.0") => "policy-1.0.0.schema.json",
        _ => "policy-2.0.0.schema.json",
    }
}

/// Checks one policy against the code and its schema: the schema accepts what the code
/// accepts, and refuses what the code refuses for a reason of shape (`structural`).
fn check_policy(what: &str, document: &Value) -> (bool, bool) {
    let bytes = serde_json::to_vec(document).unwrap();
    let report = check(&bytes);
    let schema = policy_schema(document);
    let found = problems(&validator(schema), document);
    if report.is_ok() {
        assert!(
            found.is_empty(),
            "{what}: accepted by the parser, refused by {schema}:\n{found}"
        );
    }
    let structural = report
        .diagnostics
        .iter()
        .any(|d| STRUCTURAL.contains(&d.code.code()));
    if structural {
        assert!(
            !found.is_empty(),
            "{what}: refused by the parser ({}), accepted by {schema}",
            report.render()
        );
    }
    (report.is_ok(), structural)
}

/// The parser's codes for what a schema can say: shape, names, list and string lengths.
/// (Not expressible, so not here: undeclared signals and decisions, duplicate rule ids, operand
/// and operator types against the signal's type, guards, depth, node counts, bounds against
/// each other.)
const STRUCTURAL: &[&str] = &[
    "policy.unsupported_schema_version",
    "policy.missing_field",
    "policy.unknown_field",
    "policy.wrong_json_type",
    "policy.invalid_policy_id",
    "policy.invalid_policy_version",
    "policy.invalid_name",
    "policy.empty_list",
    "policy.duplicate_decision",
    "policy.reserved_rule_id",
    "policy.unknown_signal_type",
    "policy.invalid_additional_signals",
    "policy.invalid_condition",
    "policy.missing_signal",
    "policy.unknown_operator",
    "policy.missing_operator",
    "policy.multiple_operators",
    "policy.invalid_presence",
    "policy.list_too_long",
    "policy.string_too_long",
];

#[test]
fn every_schema_is_a_2020_12_schema_with_its_own_id() {
    let all = schemas();
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "attestation-predicate.schema.json",
            "bundle.schema.json",
            "policy-1.0.0.schema.json",
            "policy-2.0.0.schema.json",
            "policy-test-case.schema.json",
            "release-manifest.schema.json",
            "trust-root.schema.json",
        ]
    );
    // Definitions of one name say the same thing in every schema (each file stands alone, so
    // that an editor never has to fetch another).
    let mut definitions: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (name, schema) in &all {
        jsonschema::draft202012::meta::validate(schema)
            .unwrap_or_else(|e| panic!("{name} is not a 2020-12 schema: {e}"));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(
            schema["$id"],
            format!("https://parmana.dev/schema/{name}"),
            "{name}"
        );
        for (def, body) in schema["$defs"].as_object().unwrap() {
            if let Some((first, seen)) = definitions.get(def) {
                assert_eq!(seen, body, "$defs/{def} differs between {first} and {name}");
            } else {
                definitions.insert(def.clone(), (name.clone(), body.clone()));
            }
        }
        jsonschema::draft202012::new(schema).unwrap();
    }
}

#[test]
fn every_policy_test_case_and_bundle_of_the_repository_validates() {
    let root = repo_root();
    let test_case = validator("policy-test-case.schema.json");
    let bundle = validator("bundle.schema.json");
    let mut counts = [0usize; 3];
    for path in files(&root.join("policies"), "/policy.json") {
        let (ok, _) = check_policy(&path.display().to_string(), &read_json(&path));
        assert!(ok, "{}", path.display());
        counts[0] += 1;
    }
    for path in files(&root.join("policies"), ".json") {
        let text = path.to_string_lossy();
        if text.contains("/tests/") {
            let what = path.display().to_string();
            check_valid(&test_case, "the test case schema", &what, &read_json(&path));
            counts[1] += 1;
        } else if text.ends_with("/bundle.json") {
            check_valid(&bundle, "the bundle schema", &text, &read_json(&path));
            counts[2] += 1;
        }
    }
    assert_eq!(counts, [2, 20, 2], "policies, test cases, bundles");
}

#[test]
fn the_release_manifest_and_every_trust_root_version_validate() {
    let root = repo_root();
    check_valid(
        &validator("release-manifest.schema.json"),
        "the release manifest schema",
        "release-manifest.json",
        &read_json(&root.join("release-manifest.json")),
    );
    let trust_root = validator("trust-root.schema.json");
    let mut versions = vec![root.join("trust/trust-root.json")];
    versions.extend(files(&root.join("trust/trust-root.d"), ".json"));
    assert_eq!(versions.len(), 2);
    for path in versions {
        let what = path.display().to_string();
        check_valid(
            &trust_root,
            "the trust root schema",
            &what,
            &read_json(&path),
        );
    }
}

/// The predicate of an attestation envelope: the DSSE payload decoded, its statement's
/// `predicate`.
fn predicate_of(envelope: &Value) -> Value {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        statement["predicateType"],
        "urn:parmana:attestation:execution:v1"
    );
    statement["predicate"].clone()
}

#[test]
fn every_golden_attestation_predicate_validates() {
    let schema = validator("attestation-predicate.schema.json");
    let goldens = files(&repo_root().join("golden"), ".attestation.json");
    assert_eq!(goldens.len(), 10);
    let mut with_signals = 0;
    for path in goldens {
        let predicate = predicate_of(&read_json(&path));
        with_signals += usize::from(predicate.get("signals").is_some());
        let what = path.display().to_string();
        check_valid(&schema, "the predicate schema", &what, &predicate);
    }
    assert_eq!(with_signals, 1, "the golden record embedding its signals");
}

#[test]
fn the_legacy_vectors_validate_except_the_skeleton_the_parser_refuses() {
    let root = repo_root();
    let mut policies = files(&root.join("vectors/legacy-bundles"), "/policy.json");
    policies.extend(files(&root.join("vectors/legacy-js"), "/policy.json"));
    assert_eq!(policies.len(), 5);
    for path in policies {
        let what = path.display().to_string();
        let (ok, structural) = check_policy(&what, &read_json(&path));
        // `claims-approval/v2` has no schema_version: refused by both.
        assert_eq!(
            ok,
            !what.ends_with("claims-approval/v2/policy.json"),
            "{what}"
        );
        assert_eq!(structural, !ok, "{what}");
    }
}

#[test]
fn conformance_cases_agree_with_the_schema() {
    let dir = repo_root().join("crates/parmana-policy/tests/cases");
    let (mut valid, mut refused) = (0, 0);
    for path in files(&dir, ".json") {
        let case = read_json(&path);
        // Cases written as raw text test the JSON parser, not the schema.
        let Some(policy) = case.get("policy") else {
            continue;
        };
        let (ok, structural) = check_policy(&path.display().to_string(), policy);
        valid += usize::from(ok);
        refused += usize::from(structural);
    }
    assert!(
        valid >= 70 && refused >= 40,
        "{valid} valid, {refused} refused"
    );
}

/// The ```json blocks of a Markdown file that are whole documents of `key`'s kind.
fn examples(markdown: &str, key: &str) -> Vec<Value> {
    markdown
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .filter(|value| value.get(key).is_some())
        .collect()
}

#[test]
fn the_examples_of_the_policy_language_reference_validate() {
    let text = std::fs::read_to_string(repo_root().join("docs/policy-language.md")).unwrap();
    let policies = examples(&text, "schema_version");
    assert_eq!(policies.len(), 2, "the 2.0.0 and the 1.0.0 example");
    for policy in &policies {
        let (ok, _) = check_policy("an example of docs/policy-language.md", policy);
        assert!(ok);
    }
    let cases = examples(&text, "expect");
    assert_eq!(cases.len(), 1);
    check_valid(
        &validator("policy-test-case.schema.json"),
        "the test case schema",
        "the test case example",
        &cases[0],
    );
}

/// `document` with the value at `pointer` replaced (`Some`) or removed (`None`).
fn edited(document: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut out = document.clone();
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    match out.pointer_mut(parent).unwrap() {
        Value::Object(map) => {
            match value {
                Some(v) => map.insert(last.replace("~1", "/"), v),
                None => map.remove(&last.replace("~1", "/")),
            };
        }
        Value::Array(items) => {
            let index: usize = last.parse().unwrap();
            match value {
                Some(v) => items[index] = v,
                None => drop(items.remove(index)),
            }
        }
        other => panic!("{pointer}: {other} is not a container"),
    }
    out
}

/// Documents the code refuses for their shape, each an edit of a valid document: the schema
/// refuses every one. Where the code reads the document without its signatures, it is asked
/// too (policies, test cases, release manifests); bundle manifests, trust roots and predicates
/// are read into types that refuse unknown members and bad identifiers the same way, after
/// the signatures they would break.
#[test]
fn documents_refused_for_their_shape_are_refused_by_the_schemas() {
    let root = repo_root();
    let policy = read_json(&root.join("policies/claims-approval/1.0.0/policy.json"));
    let case = read_json(&root.join("policies/claims-approval/1.0.0/tests/fraud-deny.json"));
    let bundle = read_json(&root.join("policies/claims-approval/1.0.0/bundle.json"));
    let manifest = read_json(&root.join("release-manifest.json"));
    let trust_root = read_json(&root.join("trust/trust-root.json"));
    let predicate = predicate_of(&read_json(
        &root.join("golden/claims-escalate.attestation.json"),
    ));
    let s = |text: &str| Some(json!(text));
    let table: Vec<(&str, &Value, &str, Option<Value>)> = vec![
        (
            "policy-2.0.0",
            &policy,
            "/$schema",
            s("https://parmana.dev/schema/policy-2.0.0.schema.json"),
        ),
        ("policy-2.0.0", &policy, "/policy_id", s("Claims")),
        ("policy-2.0.0", &policy, "/policy_version", s("v1")),
        (
            "policy-2.0.0",
            &policy,
            "/rules/0/when",
            Some(json!({"signal": "fraud_score"})),
        ),
        ("policy-2.0.0", &policy, "/rules/0/id", s("default")),
        ("policy-2.0.0", &policy, "/signals/country/type", s("text")),
        ("policy-2.0.0", &policy, "/default/decision", Some(json!(1))),
        ("policy-test-case", &case, "/expected", Some(json!({}))),
        (
            "policy-test-case",
            &case,
            "/expect/error",
            s("policy.signal_missing"),
        ),
        (
            "policy-test-case",
            &case,
            "/expect/decision",
            Some(json!(true)),
        ),
        ("policy-test-case", &case, "/signals", None),
        ("bundle", &bundle, "/signed/extra", s("x")),
        ("bundle", &bundle, "/signed/policy_id", s("../etc")),
        ("bundle", &bundle, "/signed/files/policy.json", None),
        ("bundle", &bundle, "/signed/files/..~1x", s("sha256:00")),
        ("bundle", &bundle, "/signatures/0/sig", s("AAAA")),
        (
            "release-manifest",
            &manifest,
            "/signed/version",
            Some(json!(0)),
        ),
        (
            "release-manifest",
            &manifest,
            "/signed/expires",
            s("2036-01-01T00:00:00+00:00"),
        ),
        (
            "release-manifest",
            &manifest,
            "/signed/policies/claims-approval",
            s("sha256:00"),
        ),
        (
            "release-manifest",
            &manifest,
            "/signed/runtime/minimum_runtime_version",
            s("1.0"),
        ),
        (
            "release-manifest",
            &manifest,
            "/signed/runtime/extra",
            s("x"),
        ),
        ("release-manifest", &manifest, "/extra", Some(json!([]))),
        ("trust-root", &trust_root, "/signed/roles/release", None),
        (
            "trust-root",
            &trust_root,
            "/signed/roles/root/threshold",
            Some(json!(0)),
        ),
        (
            "trust-root",
            &trust_root,
            "/signed/roles/admin",
            Some(json!({"keyids": [], "threshold": 1})),
        ),
        (
            "trust-root",
            &trust_root,
            "/signed/_type",
            s("parmana/bundle"),
        ),
        ("attestation-predicate", &predicate, "/extra", s("x")),
        (
            "attestation-predicate",
            &predicate,
            "/execution_id",
            s("has space"),
        ),
        (
            "attestation-predicate",
            &predicate,
            "/signals_digest",
            s("sha256:ABC"),
        ),
        ("attestation-predicate", &predicate, "/rule_id", None),
        (
            "attestation-predicate",
            &predicate,
            "/trust_root/version",
            s("2"),
        ),
    ];
    // Signed again unedited, each document is accepted: a refusal below is the edit's.
    for (schema, document) in [
        ("bundle", &bundle),
        ("trust-root", &trust_root),
        ("attestation-predicate", &predicate),
    ] {
        assert!(code_accepts(schema, document), "{schema}, signed again");
    }
    // And signed again after an edit the code accepts, so that the signatures are made anew
    // (Ed25519 is deterministic: unedited, they are the committed ones).
    assert!(
        code_accepts(
            "trust-root",
            &edited(&trust_root, "/signed/expires", s("2036-06-01T00:00:00Z"))
        ),
        "the trust root, its expiry moved and signed again"
    );
    for (schema, document, pointer, value) in table {
        let what = format!("{schema} with {pointer} = {value:?}");
        let document = edited(document, pointer, value);
        let found = problems(&validator(&format!("{schema}.schema.json")), &document);
        assert!(!found.is_empty(), "{what}: accepted by the schema");
        let bytes = serde_json::to_vec(&document).unwrap();
        match schema {
            "policy-2.0.0" => assert!(!check(&bytes).is_ok(), "{what}: accepted by the parser"),
            "policy-test-case" => {
                let policy_bytes = serde_json::to_vec(&policy).unwrap();
                let report = run_policy_tests(&policy_bytes, &[("case.json", &bytes)]).unwrap();
                assert!(
                    matches!(report.cases[0].outcome, CaseOutcome::Invalid { .. }),
                    "{what}: read by the test runner"
                );
            }
            "release-manifest" => assert!(
                read_release_manifest_version(&bytes).is_err(),
                "{what}: read by the release manifest reader"
            ),
            signed => assert!(
                !code_accepts(signed, &document),
                "{what}: accepted by the code's reader, signed again"
            ),
        }
    }
}

/// Whether the code accepts `document` of the signed kind `schema` once it is signed again by
/// the keys that signed it (so that what it refuses, it refuses for the content, not the
/// signature).
fn code_accepts(schema: &str, document: &Value) -> bool {
    match schema {
        "bundle" => {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("bundle.json"), resigned(document)).unwrap();
            std::fs::copy(
                repo_root().join("policies/claims-approval/1.0.0/policy.json"),
                dir.path().join("policy.json"),
            )
            .unwrap();
            load_bundle(&fixture_trust_root(), dir.path()).is_ok()
        }
        "trust-root" => {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("trust-root.d")).unwrap();
            for file in ["root.pub", "trust-root.d/1.json"] {
                std::fs::copy(repo_root().join("trust").join(file), dir.path().join(file)).unwrap();
            }
            std::fs::write(dir.path().join("trust-root.json"), resigned(document)).unwrap();
            load_trust_root(
                &dir.path().join("root.pub"),
                &dir.path().join("trust-root.json"),
                now(),
            )
            .is_ok()
        }
        "attestation-predicate" => {
            // The envelope check is the one that reads the predicate (the made-up subject
            // fails the fingerprint check whatever the predicate).
            let report = verify_attestation(
                &attestation_with(document),
                &fixture_trust_root(),
                None,
                None,
            );
            !report.failures().any(|c| c.check.as_str() == "envelope")
        }
        other => panic!("{other}: no reader of the code checks this schema's rows"),
    }
}

/// The fixture instant the committed signed documents are valid at.
fn now() -> Timestamp {
    Timestamp::parse(crate::common::NOW).unwrap()
}

fn fixture_trust_root() -> VerifiedTrustRoot {
    load_trust_root(
        &repo_root().join("trust/root.pub"),
        &repo_root().join("trust/trust-root.json"),
        now(),
    )
    .unwrap()
}

/// The TEST-ONLY fixture keys whose key ids sign `document`'s signatures.
fn fixture_signers(document: &Value) -> Vec<LocalSigningKey> {
    let named: Vec<&str> = document["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["keyid"].as_str().unwrap())
        .collect();
    let signers: Vec<LocalSigningKey> = ["root-1", "root-2", "policy", "release", "attestation"]
        .into_iter()
        .map(|name| {
            LocalSigningKey::read_pem_file(&repo_root().join(format!("trust/keys/{name}.pem")))
                .unwrap()
        })
        .filter(|key| named.contains(&key.key_id().to_string().as_str()))
        .collect();
    assert_eq!(signers.len(), named.len(), "a signature by no fixture key");
    signers
}

/// `document` (`{"signed", "signatures"}`) signed again over its `signed` part's canonical
/// bytes by the fixture keys that signed it (an edit of a signature itself is kept as it is).
fn resigned(document: &Value) -> Vec<u8> {
    let message = canonicalize_value(&document["signed"]).unwrap();
    let mut out = document.clone();
    let original: Vec<Value> = document["signatures"].as_array().unwrap().clone();
    let signers = fixture_signers(&original_of(document));
    out["signatures"] = original
        .iter()
        .map(|entry| {
            match signers
                .iter()
                .find(|key| entry["keyid"] == json!(key.key_id().to_string()))
            {
                // A signature the edit did not touch: signed again over the edited content.
                Some(key) if is_a_signature(&entry["sig"]) => json!({
                    "keyid": entry["keyid"],
                    "sig": base64::engine::general_purpose::STANDARD
                        .encode(key.sign(&message).unwrap()),
                }),
                _ => entry.clone(),
            }
        })
        .collect();
    serde_json::to_vec(&out).unwrap()
}

/// `document` with its signatures' key ids as committed (edits elsewhere kept).
fn original_of(document: &Value) -> Value {
    let mut out = document.clone();
    if let Some(entries) = out["signatures"].as_array_mut() {
        entries.retain(|entry| entry["keyid"].is_string());
    }
    out
}

/// Whether `sig` is a well-formed Ed25519 signature (64 bytes, base64): an edit that made it
/// another value is kept, so that the code meets the edit.
fn is_a_signature(sig: &Value) -> bool {
    sig.as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .is_some_and(|bytes| bytes.len() == 64)
}

/// A DSSE envelope of an in-toto statement whose predicate is `predicate`, signed by the
/// fixture attestation key over the PAE: the signature holds, so what is refused is the
/// predicate.
fn attestation_with(predicate: &Value) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "urn:parmana:attestation:execution:v1",
        "subject": [{"digest": {"sha256": "00".repeat(32)}, "name": "execution/edited"}],
        "predicate": predicate,
    });
    let key =
        LocalSigningKey::read_pem_file(&repo_root().join("trust/keys/attestation.pem")).unwrap();
    parmana_testkit::signed_attestation(&statement, &key).unwrap()
}
