//! Attestations through the native API: `include_signals` embeds the signals in the attested statement, and `POST /v1/verify` answers what `parmana verify --format json` prints (`422` for a `check_bundle` of a policy not released).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{README_SIGNALS, Served, deployment, execution_body, parmana};

/// The decoded in-toto statement of a DSSE envelope (its base64 `payload`).
fn statement(envelope: &Value) -> Value {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[test]
fn include_signals_embeds_the_signals_in_the_attestation() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let signals: Value = serde_json::from_str(README_SIGNALS).unwrap();
    // (the `include_signals` member, or none; whether the predicate carries the signals)
    for (index, (member, embedded)) in [
        ("", false),
        (r#","include_signals":false"#, false),
        (r#","include_signals":true"#, true),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(
            r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS},"execution_id":"inc-{index}"{member}}}"#
        );
        let executed = served.post("/v1/executions", token, &body);
        assert_eq!(executed.status, 201, "{member}: {}", executed.text);
        let envelope = &executed.json()["attestation"];
        let predicate = &statement(envelope)["predicate"];
        // The digest is always bound; the signals themselves only when asked for.
        assert!(predicate["signals_digest"].is_string(), "{predicate}");
        if embedded {
            assert_eq!(predicate["signals"], signals, "{member}");
        } else {
            assert!(predicate.get("signals").is_none(), "{member}: {predicate}");
        }
        // Verified without signals given, embedded signals are checked against their digest.
        let report = served
            .post(
                "/v1/verify",
                token,
                &json!({"attestation": envelope}).to_string(),
            )
            .json();
        assert_eq!(report["valid"], true, "{report}");
        let checked = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "signals_digest");
        assert_eq!(checked, embedded, "{member}: {report}");
    }
}

#[test]
fn verify_answers_what_the_cli_prints() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let executed = served.post("/v1/executions", token, &execution_body("parity-1"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let envelope = executed.json()["attestation"].clone();
    let mut forged = envelope.clone();
    let signature = forged["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    forged["signatures"][0]["sig"] = Value::String(format!("{flipped}{}", &signature[1..]));
    let other_signals = README_SIGNALS.replace("1200", "1201");
    // Signed by the attestation key's holder with a decision the policy did not make: only the
    // decision check, given the released policy and the signals, refuses it.
    let lie = parmana_testkit::re_signed_attestation(
        envelope.to_string().as_bytes(),
        &env.attestation_signer().unwrap(),
        |predicate| predicate["decision"] = json!("approve"),
    )
    .unwrap();
    let lie: Value = serde_json::from_slice(&lie).unwrap();
    // An envelope whose payload cannot be read: no predicate names a bundle, and the report
    // still carries the bundle check (not run), as the CLI's given the bundle does.
    let unreadable =
        json!({"payload": "!!!", "payloadType": "application/vnd.in-toto+json", "signatures": []});
    // (envelope, signals or none, check the released bundle, valid)
    let cases: &[(&Value, Option<&str>, bool, bool)] = &[
        (&envelope, None, false, true),
        (&envelope, Some(README_SIGNALS), false, true),
        (&envelope, Some(README_SIGNALS), true, true),
        (&envelope, Some(&other_signals), true, false),
        (&forged, Some(README_SIGNALS), false, false),
        (&lie, Some(README_SIGNALS), false, true),
        (&lie, Some(README_SIGNALS), true, false),
        (&lie, None, true, true),
        (&unreadable, Some(README_SIGNALS), true, false),
        (&unreadable, None, false, false),
    ];
    for (index, (attestation, signals, bundle, valid)) in cases.iter().enumerate() {
        let file = env.root().join(format!("attestation-{index}.json"));
        std::fs::write(&file, attestation.to_string()).unwrap();
        let mut args = vec!["--format", "json", "verify", file.to_str().unwrap()];
        if let Some(signals) = signals {
            args.extend(["--signals", signals]);
        }
        if *bundle {
            args.extend(["--policy-bundle", "policies/claims-approval/1.0.0"]);
        }
        let (exit, stdout, stderr) = parmana(env.root(), &args);
        assert_eq!(exit == 0, *valid, "{args:?}: {stderr}");
        let printed: Value = serde_json::from_str(&stdout).unwrap();

        let mut request = json!({"attestation": attestation, "check_bundle": bundle});
        if let Some(signals) = signals {
            request["signals"] = serde_json::from_str(signals).unwrap();
        }
        let answered = served.post("/v1/verify", token, &request.to_string());
        assert_eq!(answered.status, 200, "{}", answered.text);
        // Both judge against the same trust chain, at each one's clock; no member of the report
        // depends on the clock's reading while the chain is in force (the `executed_at` check
        // names the attestation's time and the version's expiry), so the documents are equal.
        assert_eq!(answered.json(), printed, "{args:?}");
        // The envelope's text — the file's bytes — is verified byte for byte, as the CLI does.
        request["attestation"] = Value::String(attestation.to_string());
        let as_text = served.post("/v1/verify", token, &request.to_string());
        assert_eq!(as_text.status, 200, "{}", as_text.text);
        assert_eq!(as_text.json(), printed, "{args:?} (as text)");
        assert_eq!(printed["valid"], *valid, "{args:?}");
        // Where the attestation stands in the chain, whenever its predicate could be read.
        assert_eq!(
            printed["trust"].is_object(),
            !printed["predicate"].is_null(),
            "{printed}"
        );
    }
    // Neither an envelope nor its text: refused, as the schema says.
    for attestation in [json!(null), json!(5), json!([]), json!(true)] {
        let refused = served.post(
            "/v1/verify",
            token,
            &json!({ "attestation": attestation }).to_string(),
        );
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (400, "server.invalid_request"),
            "{attestation}: {}",
            refused.text
        );
    }
}

#[test]
fn verify_with_check_bundle_of_a_policy_not_released_is_422() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let executed = served.post("/v1/executions", token, &execution_body("nope-1"));
    let mut envelope = executed.json()["attestation"].clone();
    // The predicate now names a policy that is not released (the signature no longer holds).
    let mut statement = statement(&envelope);
    statement["predicate"]["policy"]["id"] = json!("not-released");
    envelope["payload"] =
        json!(base64::engine::general_purpose::STANDARD.encode(statement.to_string().as_bytes()));
    // (check_bundle, status, code or "")
    for (bundle, status, code) in [(false, 200, ""), (true, 422, "runtime.policy_not_found")] {
        let request = json!({"attestation": envelope, "check_bundle": bundle});
        let reply = served.post("/v1/verify", token, &request.to_string());
        assert_eq!(reply.status, status, "{}", reply.text);
        if code.is_empty() {
            assert_eq!(reply.json()["valid"], false, "{}", reply.text);
        } else {
            assert_eq!(reply.code(), code);
        }
    }
}

/// `POST /v1/verify` takes back what the server issued: an attestation with its signals
/// embedded (base64, 4/3 of their size, beside its own fields), sent with the signals, is larger
/// than the execution request that made it, so the route takes three times `max_body_bytes` and
/// 64 KiB more (past it: `native_serve.rs`, with the other routes' limit).
#[test]
fn verify_takes_back_an_attestation_larger_than_the_request_that_made_it() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--max-body-bytes", "600"]);
    let token = served.token.as_deref();
    let body = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS},"execution_id":"large-1","include_signals":true}}"#
    );
    assert!(body.len() <= 600);
    let executed = served.post("/v1/executions", token, &body);
    assert_eq!(executed.status, 201, "{}", executed.text);
    let request = json!({
        "attestation": executed.json()["attestation"],
        "signals": serde_json::from_str::<Value>(README_SIGNALS).unwrap(),
    })
    .to_string();
    assert!(request.len() > 600, "{}", request.len());
    let report = served.post("/v1/verify", token, &request);
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.json()["valid"], true, "{}", report.text);
}
