//! Attestations: known answer (golden file), round trip, each check failing on its own, hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::key;
use parmana_canon::{Digest, Timestamp, canonicalize_value, parse_strict, to_canonical_vec};
use parmana_trust::*;
use serde_json::{Value, json};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/attestation.json")
}

/// The known answer's inputs, all but the trust root (`tests/golden/attestation.inputs.json`;
/// `cargo xtask golden` builds the golden file from the same file).
fn inputs() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/attestation.inputs.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn signals() -> Value {
    inputs()["signals"].clone()
}

/// Fixed inputs: only the trust-root reference comes from the committed fixtures.
fn predicate(root: &VerifiedTrustRoot) -> ExecutionPredicate {
    let mut inputs = inputs();
    inputs["trust_root"] = json!({"version": root.version(), "digest": root.digest().to_string()});
    serde_json::from_value(inputs).unwrap()
}

/// The inputs agree with themselves: their digest is of their signals, their time the fixtures'.
#[test]
fn the_known_answers_inputs_are_consistent() {
    let p = predicate(&common::trust_root());
    assert_eq!(p.signals_digest, Digest::of_canonical(&signals()).unwrap());
    assert_eq!(p.executed_at, common::now());
}

fn failed(report: &AttestationReport) -> Vec<&'static str> {
    report.failures().map(|c| c.check.as_str()).collect()
}

/// The DSSE `payloadType` of an attestation (docs/trust-model.md §6).
const DSSE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE's PAE, written out from the specification.
fn pae(payload: &[u8]) -> Vec<u8> {
    let mut pae = format!(
        "DSSEv1 {} {DSSE_PAYLOAD_TYPE} {} ",
        DSSE_PAYLOAD_TYPE.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// The fingerprint as the library computes it (through the public API).
fn attestation_fingerprint(p: &ExecutionPredicate) -> Result<Digest, TrustError> {
    Ok(prepare_attestation(p, &common::trust_root())?.fingerprint())
}

/// Rebuilds an envelope with the given payload bytes, signed (over the PAE) by `signer`.
fn envelope_with(payload: &[u8], signer: &dyn Signer) -> Vec<u8> {
    let sig = signer.sign(&pae(payload)).unwrap();
    to_canonical_vec(&json!({
        "payload": B64.encode(payload),
        "payloadType": DSSE_PAYLOAD_TYPE,
        "signatures": [{"keyid": signer.key_id().to_string(), "sig": B64.encode(sig)}],
    }))
    .unwrap()
}

fn payload_of(envelope: &[u8]) -> Vec<u8> {
    let value = parse_strict(envelope).unwrap();
    B64.decode(value["payload"].as_str().unwrap()).unwrap()
}

#[test]
fn known_answer_matches_the_golden_file() {
    let root = common::trust_root();
    let built = build_attestation(&predicate(&root), &key("attestation"), &root).unwrap();
    // Written only by `cargo xtask golden` (from the same inputs, written down there too).
    let golden =
        std::fs::read(golden_path()).expect("golden file missing: run `cargo xtask golden`");
    assert_eq!(
        String::from_utf8(built.clone()).unwrap(),
        String::from_utf8(golden).unwrap(),
        "the attestation changed: if on purpose, run `cargo xtask golden`"
    );
    // Same inputs and key, same bytes.
    assert_eq!(
        build_attestation(&predicate(&root), &key("attestation"), &root).unwrap(),
        built
    );
}

#[test]
fn golden_attestation_has_the_documented_shape() {
    let root = common::trust_root();
    let envelope = std::fs::read(golden_path()).unwrap();
    assert_eq!(
        canonicalize_value(&parse_strict(&envelope).unwrap()).unwrap(),
        envelope
    );
    let outer = parse_strict(&envelope).unwrap();
    assert_eq!(outer["payloadType"], DSSE_PAYLOAD_TYPE);
    assert_eq!(
        outer["signatures"][0]["keyid"],
        key("attestation").key_id().to_string()
    );
    let payload = payload_of(&envelope);
    let statement = parse_strict(&payload).unwrap();
    assert_eq!(
        canonicalize_value(&statement).unwrap(),
        payload,
        "payload is JCS"
    );
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["predicateType"],
        "urn:parmana:attestation:execution:v1"
    );
    assert_eq!(statement["subject"][0]["name"], "execution/exec-0001");
    // The fingerprint, recomputed by hand: SHA-256 of the JCS of the predicate minus executed_at.
    let mut without_time = statement["predicate"].clone();
    without_time.as_object_mut().unwrap().remove("executed_at");
    let fingerprint = Digest::of(&canonicalize_value(&without_time).unwrap());
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        fingerprint.to_hex()
    );
    assert_eq!(
        attestation_fingerprint(&predicate(&root)).unwrap(),
        fingerprint
    );
    // The fingerprint ignores the time of execution and nothing else.
    let mut later = predicate(&root);
    later.executed_at = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    assert_eq!(attestation_fingerprint(&later).unwrap(), fingerprint);
    later.reason = later.reason.map(|r| r + ".");
    assert_ne!(attestation_fingerprint(&later).unwrap(), fingerprint);
    let predicate_keys: Vec<&String> = statement["predicate"].as_object().unwrap().keys().collect();
    assert_eq!(
        predicate_keys,
        [
            "decision",
            "evaluator",
            "executed_at",
            "execution_id",
            "policy",
            "reason",
            "release_manifest",
            "rule_id",
            "runtime",
            "signals",
            "signals_digest",
            "trust_root"
        ]
    );
}

/// An independent verifier: the PAE written out by hand, checked with the OpenSSL command line.
#[test]
fn golden_attestation_verifies_with_openssl() {
    if !common::tool_present("openssl") {
        return;
    }
    let envelope = std::fs::read(golden_path()).unwrap();
    let payload = payload_of(&envelope);
    let outer = parse_strict(&envelope).unwrap();
    let sig = B64
        .decode(outer["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let mut pae = format!("DSSEv1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes();
    pae.extend_from_slice(&payload);
    assert!(pae.starts_with(b"DSSEv1 28 application/vnd.in-toto+json 1137 {"));
    assert_eq!(pae, self::pae(&payload));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pae"), &pae).unwrap();
    std::fs::write(dir.path().join("sig"), &sig).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(common::repo().join("trust/keys/attestation.pub"))
        .arg("-in")
        .arg(dir.path().join("pae"))
        .arg("-sigfile")
        .arg(dir.path().join("sig"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn round_trip_with_bundle_and_signals_passes_every_check() {
    let root = common::trust_root();
    let bundle = verify_bundle(&root, &common::signed_test_bundle()).unwrap();
    let mut inputs = predicate(&root);
    inputs.policy = AttestedPolicy {
        id: bundle.policy_id().clone(),
        version: bundle.policy_version().clone(),
        policy_digest: bundle.policy_digest(),
        bundle_digest: bundle.bundle_digest(),
    };
    let envelope = build_attestation(&inputs, &key("attestation"), &root).unwrap();
    let report = verify_attestation(&envelope, &root, Some(&bundle), Some(&signals()));
    assert!(report.is_valid(), "{report:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(
        names,
        [
            "envelope",
            "signature",
            "key_role",
            "trust_root",
            "fingerprint",
            "executed_at",
            "bundle_digest",
            "signals_digest"
        ]
    );
    assert_eq!(report.predicate(), Some(&inputs));
    // Another bundle: only the bundle check fails.
    let golden = std::fs::read(golden_path()).unwrap();
    let report = verify_attestation(&golden, &root, Some(&bundle), None);
    assert_eq!(failed(&report), ["bundle_digest"]);
    // Other signals: only the signals check fails.
    let report = verify_attestation(&golden, &root, None, Some(&json!({"claim_amount": 801})));
    assert_eq!(failed(&report), ["signals_digest"]);
    // Without signals embedded or given there is no signals check.
    let mut bare = predicate(&root);
    bare.signals = None;
    let envelope = build_attestation(&bare, &key("attestation"), &root).unwrap();
    let report = verify_attestation(&envelope, &root, None, None);
    assert!(report.is_valid());
    assert_eq!(report.checks.len(), 6);
    // The report serializes for `parmana verify --format json`.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["checks"][0]["check"], "envelope");
}

/// The `decision` check compares what a policy decides — worked out by a layer that evaluates
/// policies, given here — with the predicate: decision, rule and reason, a reason of `""` (as
/// earlier versions wrote for none) counting as none. Each case: what the policy decides, and
/// the code the check fails with (`None`: it passes).
#[test]
fn the_decision_check_compares_decision_rule_and_reason() {
    let root = common::trust_root();
    let attested = |reason: Option<&str>| {
        let mut p = predicate(&root);
        p.reason = reason.map(str::to_owned);
        build_attestation(&p, &key("attestation"), &root).unwrap()
    };
    let decided = |decision: &str, rule_id: &str, reason: Option<&str>| {
        Ok(Redecision {
            decision: decision.to_owned(),
            rule_id: rule_id.to_owned(),
            reason: reason.map(str::to_owned),
            on: DecidedOn::Given,
        })
    };
    let said = Some("claim at or below 1000");
    // (case, the attested reason, what the policy decides, the code the check fails with)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Result<Redecision, TrustError>,
        Option<&'a str>,
    );
    let cases: [Case<'_>; 9] = [
        ("as attested", said, decided("approve", "small", said), None),
        (
            "another decision",
            said,
            decided("deny", "small", said),
            Some("trust.decision_mismatch"),
        ),
        (
            "another rule",
            said,
            decided("approve", "vip", said),
            Some("trust.decision_mismatch"),
        ),
        (
            "another reason",
            said,
            decided("approve", "small", Some("other")),
            Some("trust.decision_mismatch"),
        ),
        (
            "no reason decided",
            said,
            decided("approve", "small", None),
            Some("trust.decision_mismatch"),
        ),
        (
            "no reason attested",
            None,
            decided("approve", "small", said),
            Some("trust.decision_mismatch"),
        ),
        (
            "empty attested reason is none",
            Some(""),
            decided("approve", "small", None),
            None,
        ),
        (
            "empty decided reason is none",
            None,
            decided("approve", "small", Some("")),
            None,
        ),
        (
            "not worked out",
            said,
            Err(TrustError::DecisionNotReproduced {
                reason: "the policy refuses the signals".to_owned(),
            }),
            Some("trust.decision_not_reproduced"),
        ),
    ];
    for (name, reason, redecided, code) in cases {
        let report = verify_attestation(&attested(reason), &root, None, None)
            .with_decision_check(|_| redecided);
        let row = report.checks.last().unwrap();
        assert_eq!(row.check.as_str(), "decision", "{name}");
        assert_eq!(row.code, code, "{name}: {row:?}");
        let expected_failures: &[&str] = if code.is_some() { &["decision"] } else { &[] };
        assert_eq!(failed(&report), expected_failures, "{name}");
    }
    // The check is added once; the caller's function sees the predicate.
    let report = verify_attestation(&attested(said), &root, None, None)
        .with_decision_check(|p| decided(&p.decision, &p.rule_id, p.reason.as_deref()))
        .with_decision_check(|_| decided("deny", "other", None));
    assert!(report.is_valid(), "{report:#?}");
    assert_eq!(
        report
            .checks
            .iter()
            .filter(|c| c.check.as_str() == "decision")
            .count(),
        1
    );
    // What the attestation says is shown escaped, never raw (a decision is a label: its
    // reason, any text).
    let mut hostile = predicate(&root);
    hostile.reason = Some("\u{1b}[2J\u{202e}".to_owned());
    let envelope = build_attestation(&hostile, &key("attestation"), &root).unwrap();
    let report = verify_attestation(&envelope, &root, None, None)
        .with_decision_check(|_| decided("approve", "small", said));
    let detail = &report.checks.last().unwrap().detail;
    assert!(detail.contains(r"\u{1b}[2J\u{202e}"), "{detail}");
    assert!(
        !detail.contains('\u{1b}') && !detail.contains('\u{202e}'),
        "{detail}"
    );
    // And bounded: a long string the attestation carries is shown as its start.
    let mut long = predicate(&root);
    long.reason = Some("d".repeat(100_000));
    let envelope = build_attestation(&long, &key("attestation"), &root).unwrap();
    let report = verify_attestation(&envelope, &root, None, None)
        .with_decision_check(|_| decided("approve", "small", said));
    let detail = &report.checks.last().unwrap().detail;
    assert!(
        detail.len() < 1_024 && detail.contains('…'),
        "{} bytes",
        detail.len()
    );
    // An envelope that cannot be read: not run, for the envelope's reason; so too when a
    // verifier that finds the bundle from the predicate reports it with signals given.
    let report = verify_attestation(b"{}", &root, None, None)
        .with_decision_check(|_| panic!("there is no predicate to decide for"));
    let row = report.checks.last().unwrap();
    assert_eq!((row.check.as_str(), row.passed), ("decision", false));
    assert!(row.detail.contains("not checked: "), "{row:?}");
    let names = |report: &AttestationReport| -> Vec<&'static str> {
        report.checks.iter().map(|c| c.check.as_str()).collect()
    };
    let unread = || verify_attestation(b"{}", &root, None, None);
    let with_signals = unread().with_bundle_check_not_run(true);
    assert_eq!(
        names(&with_signals)[names(&with_signals).len() - 2..],
        ["bundle_digest", "decision"]
    );
    let without = unread().with_bundle_check_not_run(false);
    assert_eq!(names(&without).last(), Some(&"bundle_digest"));
}

/// Every number the runtime can attest reads back as itself: the verifier reads the payload with
/// parmana-canon's correctly rounded reader. (serde_json's default reader, in a build without
/// its `float_roundtrip` feature, misread `999.9999999999999` as 1000, so the canonical check
/// refused attestations the runtime had signed.)
#[test]
fn embedded_signals_with_any_number_verify() {
    let root = common::trust_root();
    // Shortest round-trip decimals of 16 and 17 digits, and a seeded spread of finite doubles.
    let mut numbers = vec![
        json!(999.9999999999999),
        json!(0.9999999999999999),
        json!(1234.5678901234567),
        json!(5e-324),
        json!(f64::MAX),
        json!(-1.7976931348623157e308),
        json!(9007199254740991_i64),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while numbers.len() < 4_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f64::from_bits(state);
        if x.is_finite() {
            numbers.push(json!(x));
        }
        // And the same spread scaled to amounts: 15 to 17 significant digits.
        numbers.push(json!((state >> 11) as f64 / 1e9));
    }
    let signals = json!({ "amounts": numbers });
    let mut inputs = predicate(&root);
    inputs.signals_digest = Digest::of_canonical(&signals).unwrap();
    inputs.signals = Some(signals.clone());
    let envelope = build_attestation(&inputs, &key("attestation"), &root).unwrap();
    let report = verify_attestation(&envelope, &root, None, Some(&signals));
    assert!(report.is_valid(), "{:?}", failed(&report));
    // The same numbers (an integral double may come back as an integer: the same value).
    let read = report.predicate().unwrap().signals.as_ref().unwrap();
    assert_eq!(
        canonicalize_value(read).unwrap(),
        canonicalize_value(&signals).unwrap()
    );
}

/// The payload is read by parmana-canon's strict reader (the one every signed document goes
/// through): a member given twice is refused as malformed JSON, not read as one of its values.
#[test]
fn a_payload_with_a_member_given_twice_is_malformed() {
    let root = common::trust_root();
    let mut inputs = predicate(&root);
    inputs.signals = Some(json!({"a": 1}));
    inputs.signals_digest = Digest::of_canonical(&json!({"a": 1})).unwrap();
    let genuine = build_attestation(&inputs, &key("attestation"), &root).unwrap();
    let payload = String::from_utf8(payload_of(&genuine)).unwrap();
    assert_eq!(
        payload.matches(r#""signals":{"a":1}"#).count(),
        1,
        "{payload}"
    );
    let twice = payload.replace(r#""signals":{"a":1}"#, r#""signals":{"a":1,"a":1}"#);
    let report = verify_attestation(
        &envelope_with(twice.as_bytes(), &key("attestation")),
        &root,
        None,
        None,
    );
    let envelope = &report.checks[0];
    assert_eq!(
        (envelope.check.as_str(), envelope.passed, envelope.code),
        ("envelope", false, Some("trust.malformed")),
        "{report:#?}"
    );
    assert!(envelope.detail.contains("duplicate"), "{}", envelope.detail);
}

#[test]
fn build_refuses_what_verification_would_refuse() {
    let root = common::trust_root();
    let code = |r: Result<Vec<u8>, TrustError>| r.unwrap_err().code();
    for name in ["policy", "release", "root-2"] {
        assert_eq!(
            code(build_attestation(&predicate(&root), &key(name), &root)),
            "trust.key_lacks_role"
        );
    }
    let stranger = LocalSigningKey::from_seed(&[4; 32]);
    assert_eq!(
        code(build_attestation(&predicate(&root), &stranger, &root)),
        "trust.key_lacks_role"
    );
    // An invalid execution id cannot be put into a predicate at all.
    for bad_id in ["", "has space", "tab\t", "é", &"x".repeat(129)] {
        assert!(
            bad_id.parse::<parmana_canon::ExecutionId>().is_err(),
            "{bad_id:?}"
        );
    }
    let mut p = predicate(&root);
    p.trust_root.version = 1;
    assert_eq!(
        code(build_attestation(&p, &key("attestation"), &root)),
        "trust.digest_mismatch"
    );
    let mut p = predicate(&root);
    p.signals = Some(json!({"claim_amount": 1}));
    assert_eq!(
        code(build_attestation(&p, &key("attestation"), &root)),
        "trust.digest_mismatch"
    );
    // What the published schema forbids is not signed either.
    let forbidden: [fn(&mut ExecutionPredicate); 5] = [
        |p| p.decision = String::new(),
        |p| p.rule_id = "a b".to_owned(),
        |p| p.release_manifest.version = 0,
        |p| {
            let signals = json!([1, 2]);
            p.signals_digest = Digest::of_canonical(&signals).unwrap();
            p.signals = Some(signals);
        },
        |p| p.decision = "x".repeat(129),
    ];
    for (n, forbid) in forbidden.iter().enumerate() {
        let mut p = predicate(&root);
        forbid(&mut p);
        assert_eq!(
            code(build_attestation(&p, &key("attestation"), &root)),
            "trust.malformed",
            "{n}"
        );
    }
}

#[test]
fn re_encoded_payload_with_the_signature_kept_is_refused() {
    let root = common::trust_root();
    let golden = std::fs::read(golden_path()).unwrap();
    let mut outer = parse_strict(&golden).unwrap();
    let statement = parse_strict(&payload_of(&golden)).unwrap();
    for re_encoded in [
        serde_json::to_vec_pretty(&statement).unwrap(),
        [payload_of(&golden), b" ".to_vec()].concat(),
        [b" ".to_vec(), payload_of(&golden)].concat(),
    ] {
        outer["payload"] = json!(B64.encode(&re_encoded));
        let envelope = serde_json::to_vec(&outer).unwrap();
        let report = verify_attestation(&envelope, &root, None, None);
        assert!(!report.is_valid());
        let failures = failed(&report);
        assert!(failures.contains(&"signature"), "{failures:?}");
        assert!(failures.contains(&"envelope"), "{failures:?}");
    }
}

#[test]
fn each_check_fails_on_its_own() {
    let root = common::trust_root();
    let golden = std::fs::read(golden_path()).unwrap();
    let payload = payload_of(&golden);
    let attestation_key = key("attestation");

    // A key of the trust root without the attestation role.
    let report = verify_attestation(&envelope_with(&payload, &key("policy")), &root, None, None);
    assert_eq!(failed(&report), ["key_role"]);
    assert_eq!(
        report.failures().next().unwrap().code,
        Some("trust.key_lacks_role")
    );
    // A key the trust root does not know.
    let stranger = LocalSigningKey::from_seed(&[4; 32]);
    let report = verify_attestation(&envelope_with(&payload, &stranger), &root, None, None);
    assert_eq!(failed(&report), ["signature", "key_role"]);
    // A wrong fingerprint, properly signed.
    let mut statement = parse_strict(&payload).unwrap();
    statement["subject"][0]["digest"]["sha256"] = json!(Digest::of(b"x").to_hex());
    let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
    assert_eq!(
        failed(&verify_attestation(&forged, &root, None, None)),
        ["fingerprint"]
    );
    // A subject naming another execution.
    let mut statement = parse_strict(&payload).unwrap();
    statement["subject"][0]["name"] = json!("execution/exec-0002");
    let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
    assert_eq!(
        failed(&verify_attestation(&forged, &root, None, None)),
        ["fingerprint"]
    );
    // Another trust root.
    let mut statement = parse_strict(&payload).unwrap();
    statement["predicate"]["trust_root"]["version"] = json!(1);
    let mut without_time = statement["predicate"].clone();
    without_time.as_object_mut().unwrap().remove("executed_at");
    statement["subject"][0]["digest"]["sha256"] =
        json!(Digest::of(&canonicalize_value(&without_time).unwrap()).to_hex());
    let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
    assert_eq!(
        failed(&verify_attestation(&forged, &root, None, None)),
        ["trust_root"]
    );
    // Embedded signals that do not match the digest.
    let mut statement = parse_strict(&payload).unwrap();
    statement["predicate"]["signals"]["claim_amount"] = json!(900);
    let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
    let failures = failed(&verify_attestation(&forged, &root, None, None));
    assert_eq!(failures, ["fingerprint", "signals_digest"]);
    // Wrong statement or predicate type (whatever the predicate's shape: another kind of
    // statement is of the wrong type, not a malformed one of ours), unknown predicate field:
    // envelope, with its code.
    for (pointer, value, code) in [
        (
            "/_type",
            json!("https://in-toto.io/Statement/v0.1"),
            "trust.wrong_type",
        ),
        ("/predicateType", json!("urn:other"), "trust.wrong_type"),
        (
            "/predicate",
            json!({"buildDefinition": {"buildType": "https://example.com/build"}}),
            "trust.malformed",
        ),
        ("/predicate/extra", json!(1), "trust.malformed"),
        // Values the published schema forbids and no runtime signs: a verifier built from the
        // schema refuses them, and so does this one.
        ("/predicate/decision", json!(""), "trust.malformed"),
        (
            "/predicate/decision",
            json!("x".repeat(129)),
            "trust.malformed",
        ),
        (
            "/predicate/rule_id",
            json!("a b\u{202e}"),
            "trust.malformed",
        ),
        ("/predicate/rule_id", json!("_rule"), "trust.malformed"),
        ("/predicate/signals", json!([1, 2]), "trust.malformed"),
        ("/predicate/trust_root/version", json!(0), "trust.malformed"),
        (
            "/predicate/release_manifest/version",
            json!(0),
            "trust.malformed",
        ),
        (
            "/predicate/executed_at",
            json!("2026-11-28T21:00:00+00:00"),
            "trust.malformed",
        ),
    ] {
        let mut statement = parse_strict(&payload).unwrap();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut statement
        } else {
            statement.pointer_mut(parent).unwrap()
        };
        target[field] = value;
        let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
        let report = verify_attestation(&forged, &root, None, None);
        assert!(failed(&report).contains(&"envelope"), "{pointer}");
        assert_eq!(report.checks[0].code, Some(code), "{pointer}");
        assert!(!report.is_valid());
    }
    // A foreign statement whole (SLSA provenance): of the wrong type, its predicate unread.
    let mut statement = parse_strict(&payload).unwrap();
    statement["predicateType"] = json!("https://slsa.dev/provenance/v1");
    statement["predicate"] = json!({"buildDefinition": {}, "runDetails": {}});
    let forged = envelope_with(&to_canonical_vec(&statement).unwrap(), &attestation_key);
    let report = verify_attestation(&forged, &root, None, None);
    assert_eq!(report.checks[0].code, Some("trust.wrong_type"));
}

#[test]
fn hostile_envelopes_never_panic_and_never_pass() {
    let root = common::trust_root();
    let golden = std::fs::read(golden_path()).unwrap();
    let mut outer = parse_strict(&golden).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        vec![0xff; 64],
        "[".repeat(100_000).into_bytes(),
        golden[..golden.len() / 2].to_vec(),
        br#"{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[]}"#.to_vec(),
        br#"{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"x","sig":"y"}]}"#.to_vec(),
        format!(r#"{{"payload":"{}","payloadType":"application/vnd.in-toto+json","signatures":[{{"keyid":"{}","sig":"{}"}}]}}"#,
            B64.encode("[".repeat(10_000)), key("attestation").key_id(), B64.encode([0u8; 64])).into_bytes(),
    ];
    outer["signatures"] = json!([]);
    cases.push(serde_json::to_vec(&outer).unwrap());
    outer["signatures"] =
        json!([{"keyid": key("attestation").key_id().to_string(), "sig": B64.encode([0u8; 64])}]);
    cases.push(serde_json::to_vec(&outer).unwrap());
    outer["payloadType"] = json!("application/json");
    cases.push(serde_json::to_vec(&outer).unwrap());
    // The golden envelope's members as lists (DSSE's are objects): the whole envelope, and its
    // signature entries.
    let genuine = parse_strict(&golden).unwrap();
    let entries_as_lists: Vec<serde_json::Value> = genuine["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["keyid"], s["sig"]]))
        .collect();
    cases.push(
        serde_json::to_vec(&json!([
            genuine["payload"],
            genuine["payloadType"],
            genuine["signatures"]
        ]))
        .unwrap(),
    );
    let mut listed = genuine.clone();
    listed["signatures"] = json!(entries_as_lists);
    cases.push(serde_json::to_vec(&listed).unwrap());
    // Pseudo-random garbage and random single-byte changes (deterministic xorshift).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let len = (next() % 300) as usize;
        cases.push((0..len).map(|_| next() as u8).collect());
        let mut mutated = golden.clone();
        let at = (next() as usize) % mutated.len();
        mutated[at] = next() as u8;
        if mutated != golden {
            cases.push(mutated);
        }
    }
    for case in cases {
        let report = verify_attestation(&case, &root, None, Some(&signals()));
        assert!(!report.is_valid(), "{}", String::from_utf8_lossy(&case));
        assert!(report.checks.len() >= 5);
    }
}

/// The report a verifier prints, for an attestation signed by a key without the role.
#[test]
fn report_of_a_wrong_role_attestation_snapshot() {
    let root = common::trust_root();
    let golden = std::fs::read(golden_path()).unwrap();
    let forged = envelope_with(&payload_of(&golden), &key("release"));
    let report = verify_attestation(&forged, &root, None, Some(&signals()));
    insta::assert_json_snapshot!(report);
}

/// The envelope is assembled from canonical pieces; it must equal re-encoding it whole, for any
/// execution id (including quotes and backslashes) and with or without embedded signals.
#[test]
fn assembled_envelope_and_payload_are_exactly_canonical() {
    let root = common::trust_root();
    let signer = key("attestation");
    for (id, with_signals) in [
        ("exec-0001", true),
        (r#"a"b\c{}[],:"#, false),
        ("~!@#$%^&*()_+", true),
    ] {
        let mut p = predicate(&root);
        p.execution_id = id.parse().unwrap();
        if !with_signals {
            p.signals = None;
        }
        let envelope = build_attestation(&p, &signer, &root).unwrap();
        let value = parse_strict(&envelope).unwrap();
        assert_eq!(canonicalize_value(&value).unwrap(), envelope, "{id}");
        let payload = B64.decode(value["payload"].as_str().unwrap()).unwrap();
        let statement = parse_strict(&payload).unwrap();
        assert_eq!(canonicalize_value(&statement).unwrap(), payload, "{id}");
        assert_eq!(statement["subject"][0]["name"], format!("execution/{id}"));
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            attestation_fingerprint(&p).unwrap().to_hex()
        );
        assert_eq!(statement["predicate"], serde_json::to_value(&p).unwrap());
        assert!(
            verify_attestation(&envelope, &root, None, None).is_valid(),
            "{id}"
        );
    }
}

/// Envelopes that could be read two ways are refused even though their signature is intact.
#[test]
fn ambiguous_envelopes_are_refused() {
    let root = common::trust_root();
    let envelope = build_attestation(&predicate(&root), &key("attestation"), &root).unwrap();
    let text = String::from_utf8(envelope).unwrap();
    let payload = parse_strict(text.as_bytes()).unwrap()["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let duplicated = text.replacen("{", &format!("{{\"payload\":\"{payload}\","), 1);
    let with_unknown = text.replacen("{", "{\"extra\":1,", 1);
    let trailing = format!("{text} {{}}");
    let lone = text.replacen("\"payloadType\":\"", "\"payloadType\":\"\\ud800", 1);
    for bad in [duplicated, with_unknown, trailing, lone] {
        let report = verify_attestation(bad.as_bytes(), &root, None, None);
        assert!(!report.is_valid(), "{bad}");
        assert!(
            failed(&report).contains(&"envelope"),
            "{bad}: {:?}",
            failed(&report)
        );
    }
    // Whitespace around a well-formed envelope is fine: the signed bytes are the payload.
    let spaced = format!("  {text}\n");
    assert!(verify_attestation(spaced.as_bytes(), &root, None, None).is_valid());
}

/// `sig` with its `S` half replaced by `S + ℓ` (the group order): the same point equation, a
/// non-canonical scalar that strict verification refuses.
fn with_s_plus_order(sig: &[u8]) -> Vec<u8> {
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = sig.to_vec();
    let mut carry = 0u16;
    for (i, byte) in ORDER.iter().enumerate() {
        let sum = u16::from(out[32 + i]) + u16::from(*byte) + carry;
        out[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// Replaces the signature of a one-signature envelope (keeping everything else).
fn with_sig(envelope: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut value = parse_strict(envelope).unwrap();
    value["signatures"][0]["sig"] = json!(B64.encode(sig));
    to_canonical_vec(&value).unwrap()
}

/// Every kind of envelope the batch path must judge exactly as the single path does.
fn mixed_envelopes(root: &VerifiedTrustRoot) -> Vec<(&'static str, Vec<u8>)> {
    let signer = key("attestation");
    let valid = |i: u32| {
        let mut p = predicate(root);
        p.execution_id = format!("batch-{i}").parse().unwrap();
        build_attestation(&p, &signer, root).unwrap()
    };
    let good = valid(0);
    let payload = payload_of(&good);
    let sig = B64
        .decode(
            parse_strict(&good).unwrap()["signatures"][0]["sig"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let mut flipped = sig.clone();
    flipped[10] ^= 1;
    let mut r_identity = sig.clone();
    r_identity[..32].fill(0);
    r_identity[0] = 1;
    let mut other_subject = parse_strict(&payload).unwrap();
    other_subject["subject"][0]["name"] = json!("execution/someone-else");
    let mut spaced = payload.clone();
    spaced.insert(1, b' ');
    let mut two = parse_strict(&good).unwrap();
    let first = two["signatures"][0].clone();
    two["signatures"] = json!([first.clone(), first]);
    let mut unknown_and_valid = parse_strict(&good).unwrap();
    unknown_and_valid["signatures"] = json!([
        parse_strict(&envelope_with(
            &payload,
            &LocalSigningKey::from_seed(&[4; 32])
        ))
        .unwrap()["signatures"][0],
        unknown_and_valid["signatures"][0],
    ]);
    vec![
        ("valid", good.clone()),
        ("valid, other id", valid(1)),
        ("flipped signature bit", with_sig(&good, &flipped)),
        ("S + order", with_sig(&good, &with_s_plus_order(&sig))),
        ("small-order R", with_sig(&good, &r_identity)),
        (
            "other key of the trust root",
            envelope_with(&payload, &key("policy")),
        ),
        (
            "unknown key",
            envelope_with(&payload, &LocalSigningKey::from_seed(&[4; 32])),
        ),
        (
            "unknown key and a valid one",
            to_canonical_vec(&unknown_and_valid).unwrap(),
        ),
        ("one signature twice", to_canonical_vec(&two).unwrap()),
        (
            "signed subject of another execution",
            envelope_with(&to_canonical_vec(&other_subject).unwrap(), &signer),
        ),
        (
            "signed non-canonical payload",
            envelope_with(&spaced, &signer),
        ),
        ("not JSON", b"{\"payload\"".to_vec()),
        ("empty", Vec::new()),
    ]
}

/// Batch verification reports exactly what one-by-one verification reports, for every kind of
/// envelope alone, and mixed in seeded random orders and batch sizes (across several batches).
#[test]
fn batch_verification_equals_single_verification() {
    let root = common::trust_root();
    let kinds = mixed_envelopes(&root);
    for (name, envelope) in &kinds {
        let single = verify_attestation(envelope, &root, None, None);
        assert_eq!(
            verify_attestations(&[envelope.as_slice()], &root),
            vec![single.clone()],
            "{name}"
        );
        // Alone and next to a valid one (a batch of two that fails as a whole when it is bad).
        let pair = verify_attestations(&[envelope.as_slice(), kinds[0].1.as_slice()], &root);
        assert_eq!(pair[0], single, "{name}");
        assert!(pair[1].is_valid(), "{name}");
    }
    // A signature repeated is refused before any verification (trust.duplicate_signature).
    let expected_valid = |name: &str| name.starts_with("valid");
    for (name, envelope) in &kinds {
        assert_eq!(
            verify_attestation(envelope, &root, None, None).is_valid(),
            expected_valid(name),
            "{name}"
        );
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..12 {
        let len = [1, 3, 64, 65, 150][round % 5];
        let bad_share = [0, 1, 5, 50][round % 4];
        let picked: Vec<&[u8]> = (0..len)
            .map(|_| {
                let index = if next() % 100 < bad_share {
                    usize::try_from(next() % kinds.len() as u64).unwrap()
                } else {
                    usize::try_from(next() % 2).unwrap()
                };
                kinds[index].1.as_slice()
            })
            .collect();
        let batch = verify_attestations(&picked, &root);
        let single: Vec<AttestationReport> = picked
            .iter()
            .map(|envelope| verify_attestation(envelope, &root, None, None))
            .collect();
        assert_eq!(batch, single, "round {round}");
    }
    assert!(verify_attestations(&[], &root).is_empty());
}

/// Every row of a report is bounded, however long the strings the attestation carries: a
/// `payloadType` or a member of a megabyte (control characters, which a refusal escapes to
/// several bytes each) is quoted by its first characters, and the rows that carry the first
/// failure's words on are bounded too.
#[test]
fn a_report_quotes_the_attestations_strings_bounded() {
    let root = common::trust_root();
    // Within the envelope bound (1 MiB), so that it is read.
    let long = "\u{7f}".repeat(200_000);
    let wrong_type = serde_json::json!({
        "payload": "e30=",
        "payloadType": long,
        "signatures": [{"keyid": "x", "sig": "y"}],
    });
    let extra_member = serde_json::json!({
        "payload": "e30=",
        "payloadType": DSSE_PAYLOAD_TYPE,
        "signatures": [{"keyid": "x", "sig": "y"}],
        long.clone(): 1,
    });
    for envelope in [wrong_type, extra_member] {
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let report = verify_attestation(&bytes, &root, None, None);
        assert!(!report.is_valid());
        for row in &report.checks {
            assert!(
                row.detail.chars().count() <= parmana_trust::MAX_DETAIL_CHARS + 1,
                "{:?}: {} characters",
                row.check,
                row.detail.chars().count()
            );
        }
        assert!(serde_json::to_vec(&report.checks).unwrap().len() < 200_000);
    }
}
