//! AuthZEN 1.0's limits: the statuses (400 where the native API answers 422, 413 past the body limit), the size of flattened signals, the bounds on a boxcar (a thousand evaluations, what it expands to, the names it would make), a boxcar answered on its timeout, and a reload refused when it no longer fits the mapping.

use serde_json::{Value, json};

use crate::authzen_serve::{
    POLICY, RECORDS_POLICY, TWO_POLICIES, authzen_deployment, authzen_deployment_with, request,
    root,
};
use crate::harness::{Served, parmana};

#[test]
fn authzen_answers_400_where_the_native_api_answers_422_and_413_past_the_body_limit() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token", "--max-body-bytes", "512"]);
    let token = served.token.as_deref();
    let mut refused_signals = request("viewer", "read");
    refused_signals["subject"]["properties"] = json!({});
    let mut big = request("viewer", "read");
    big["context"]["pad"] = json!("x".repeat(600));
    // (route, body, status, code); every answer is also checked against /openapi.json.
    let cases = [
        (
            "/access/v1/evaluation",
            &refused_signals,
            400,
            "policy.signal_missing",
        ),
        (
            "/access/v1/evaluations",
            &refused_signals,
            400,
            "policy.signal_missing",
        ),
        ("/access/v1/evaluation", &big, 413, "server.body_too_large"),
        ("/access/v1/evaluations", &big, 413, "server.body_too_large"),
    ];
    for (route, body, status, code) in cases {
        let reply = served.post(route, token, &body.to_string());
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{route}: {}",
            reply.text
        );
    }
}

/// The signals an evaluation flattens to are measured as the JSON they are, as on the native
/// API: a 600,000-character `resource.id` (600 KB of signals) is decided, 1,100,000 characters
/// are `413 runtime.request_too_large` (the body limit raised past both).
#[test]
fn authzen_signals_are_limited_by_their_own_size() {
    let temp = authzen_deployment();
    let served = Served::start(
        &root(&temp),
        &["--dev-token", "--max-body-bytes", "2097152"],
    );
    let token = served.token.as_deref();
    for (length, status, code) in [
        (600_000, 200, ""),
        (1_100_000, 413, "runtime.request_too_large"),
    ] {
        let mut body = request("viewer", "read");
        body["resource"]["id"] = json!("r".repeat(length));
        let reply = served.post("/access/v1/evaluation", token, &body.to_string());
        assert_eq!(reply.status, status, "{length}: {}", reply.text);
        if status == 200 {
            assert_eq!(reply.json()["decision"], true);
        } else {
            assert_eq!(reply.code(), code);
        }
    }
}

/// A boxcar carries at most 1,000 evaluations: one more is refused whole before any is decided
/// (`413 server.batch_too_large`), whatever its semantic; an execution id is an evaluation's own,
/// never a default for all of them.
#[test]
fn a_boxcar_carries_at_most_a_thousand_evaluations() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let boxcar = |count: usize, semantic: &str| {
        let mut body = request("viewer", "read");
        body["evaluations"] = json!(vec![json!({"action": {"name": "read"}}); count]);
        body["options"] = json!({"evaluations_semantic": semantic});
        body.to_string()
    };
    let full = served.post(
        "/access/v1/evaluations",
        token,
        &boxcar(1_000, "execute_all"),
    );
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.json()["evaluations"].as_array().unwrap().len(), 1_000);
    // A top-level execution id would be every evaluation's: refused, nothing executed.
    let mut shared_id: serde_json::Value = serde_json::from_str(&boxcar(2, "execute_all")).unwrap();
    shared_id["context"]["execution_id"] = json!("shared-1");
    let refused = served.post("/access/v1/evaluations", token, &shared_id.to_string());
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "server.invalid_request"),
        "{}",
        refused.text
    );
    assert_eq!(served.get("/v1/executions/shared-1", token).status, 404);
    for semantic in [
        "execute_all",
        "deny_on_first_deny",
        "permit_on_first_permit",
    ] {
        let over = served.post("/access/v1/evaluations", token, &boxcar(1_001, semantic));
        assert_eq!(
            (over.status, over.code().as_str()),
            (413, "server.batch_too_large"),
            "{semantic}: {}",
            over.text
        );
    }
    // Counted before the body is parsed: an evaluation past the 1,000th is never read (here
    // one the strict parser refuses whole with 400: an integer past 2^53).
    let mut unread: serde_json::Value =
        serde_json::from_str(&boxcar(1_000, "execute_all")).unwrap();
    unread["evaluations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"context": {"n": "UNREAD"}}));
    let unread = unread
        .to_string()
        .replace(r#""UNREAD""#, "9007199254740993");
    // Within the count, the same fault is the whole body's: one JSON text the strict reader
    // refuses (400), even inside one evaluation.
    let faulty = boxcar(1, "execute_all").replacen(
        r#""evaluations":["#,
        r#""evaluations":[{"context":{"n":9007199254740993}},"#,
        1,
    );
    assert!(faulty.contains("9007199254740993"), "{faulty}");
    let refused = served.post("/access/v1/evaluations", token, &faulty);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "canon.integer_out_of_range"),
        "{}",
        refused.text
    );
    let over = served.post("/access/v1/evaluations", token, &unread);
    assert_eq!(
        (over.status, over.code().as_str()),
        (413, "server.batch_too_large"),
        "{}",
        over.text
    );
}

/// A boxcar is bounded by what it expands to, not only by its body: each evaluation takes the
/// top-level defaults it lacks, so ~900 KiB of top-level `context` under 1,000 evaluations `{}`
/// (a body under 1 MiB) would be ~900 MB of signals. Past eight times `max_body_bytes` once
/// expanded, it is refused whole (`413 server.batch_too_large`) before anything is resolved,
/// and the server keeps answering; a boxcar that expands to less is decided — the usual list
/// filter, a thousand short evaluations under kilobytes of subject and context, included.
#[test]
fn a_boxcar_is_bounded_by_what_it_expands_to() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let boxcar = |pad: usize, count: usize| {
        let mut body = request("viewer", "read");
        body["context"]["pad"] = json!("x".repeat(pad));
        body["evaluations"] = json!(vec![json!({}); count]);
        body.to_string()
    };
    let amplifying = boxcar(900 * 1024, 1_000);
    assert!(amplifying.len() < 1024 * 1024, "{}", amplifying.len());
    // (body, the number of decisions or the refusing code): 1,000 evaluations of ~9.2 KB each
    // expand to ~9.2 MB, past 8 MiB; of ~3.2 KB (more than the body limit once expanded) and
    // ~7.2 KB each, to ~3.2 MB and ~7.2 MB.
    let cases: [(String, Result<usize, &str>); 4] = [
        (amplifying, Err("server.batch_too_large")),
        (boxcar(9_000, 1_000), Err("server.batch_too_large")),
        (boxcar(3_000, 1_000), Ok(1_000)),
        (boxcar(7_000, 1_000), Ok(1_000)),
    ];
    for (body, expected) in &cases {
        let reply = served.post("/access/v1/evaluations", token, body);
        match expected {
            Err(code) => assert_eq!(
                (reply.status, reply.code().as_str()),
                (413, *code),
                "{}",
                reply.text
            ),
            Ok(count) => {
                assert_eq!(reply.status, 200, "{}", reply.text);
                let decisions = reply.json()["evaluations"].as_array().unwrap().clone();
                assert_eq!(decisions.len(), *count);
                assert!(decisions.iter().all(|d| d["decision"] == true));
            }
        }
        // The server keeps answering.
        let after = served.post(
            "/access/v1/evaluation",
            token,
            &request("viewer", "read").to_string(),
        );
        assert_eq!(after.json()["decision"], true, "{}", after.text);
    }
    // One evaluation flattening to more than the signals limit (a 100 KB key over 1,000 leaves:
    // each signal name repeats it) is refused while it is flattened, not after.
    let mut long_names = request("viewer", "read");
    let leaves: serde_json::Map<String, serde_json::Value> =
        (0..1_000).map(|n| (format!("a{n}"), json!(0))).collect();
    long_names["context"]["k".repeat(100 * 1024)] = serde_json::Value::Object(leaves);
    // The same on /access/v1/evaluations without `evaluations`: one evaluation, answered alike.
    for route in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        let refused = served.post(route, token, &long_names.to_string());
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (413, "runtime.request_too_large"),
            "{route}: {}",
            refused.text
        );
    }
}

/// The mapping is checked against every environment before it is in force: a reload whose
/// release changes what `true` means for an answering policy (its signed `permit`), makes it
/// declare a signal no request can give a value, or drops the policy, is refused (`422 runtime.environment_refused`) and the old environment keeps
/// answering as before; a release that keeps both is taken.
#[test]
fn a_reload_that_no_longer_fits_the_mapping_is_refused() {
    let temp = authzen_deployment_with(
        &[
            ("documents-access", POLICY),
            ("records-access", RECORDS_POLICY),
        ],
        TWO_POLICIES,
    );
    let root = root(&temp);
    let served = Served::start(&root, &["--dev-token"]);
    let token = served.token.as_deref();
    let owner = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "r-1"},
        "context": {"tier": "gold"}
    });
    let owner_decides = || {
        let reply = served.post("/access/v1/evaluation", token, &owner.to_string());
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["decision"].clone()
    };
    assert_eq!(owner_decides(), true);
    let records = root.join("policies/records-access/1.0.0");
    let release =
        |version: &str| crate::harness::release_sign(&root, version, "2035-01-01T00:00:00Z");
    // Writes `policy` as `policies/<id>/1.0.0/policy.json` and signs that bundle again.
    let resign = |id: &str, policy: &str| {
        let dir = format!("policies/{id}/1.0.0");
        std::fs::write(root.join(&dir).join("policy.json"), policy).unwrap();
        let (code, _, stderr) = parmana(
            &root,
            &["bundle", "sign", &dir, "--key", "trust/keys/policy.pem"],
        );
        assert_eq!(code, 0, "{stderr}");
    };
    let resign_records = |policy: &str| resign("records-access", policy);
    let resign_documents = |policy: &str| resign("documents-access", policy);
    let reload = || served.post("/v1/admin/reload", token, "");
    // (what changes, the release version, what the refusal names)
    let refused: [(&str, &dyn Fn(), &str, &str); 4] = [
        (
            "a release whose documents-access no longer decides `allow`, the deployment's permit",
            &|| {
                resign_documents(
                    &POLICY
                        .replace(
                            r#""decisions": ["allow", "deny"]"#,
                            r#""decisions": ["grant", "deny"]"#,
                        )
                        .replace(r#""decision": "allow""#, r#""decision": "grant""#),
                )
            },
            "3",
            r#"`permit` names \"allow\", which is not one of its decisions"#,
        ),
        (
            "a release whose records-access permits `refuse`",
            &|| {
                resign_records(
                    &RECORDS_POLICY.replace(r#""permit": ["grant"]"#, r#""permit": ["refuse"]"#),
                )
            },
            "4",
            "permits [refuse] where the server answers true for [grant]",
        ),
        (
            "a release whose documents-access declares a signal no request can give a value",
            &|| {
                resign_documents(&POLICY.replace(
                    r#""action.name": {"type": "string", "required": true}"#,
                    r#""action.name": {"type": "string", "required": true},
    "subject.role": {"type": "string", "required": false}"#,
                ))
            },
            "5",
            r#"declares the signal \"subject.role\", which no AuthZEN request can give a value"#,
        ),
        (
            "a release without records-access",
            &|| std::fs::rename(&records, root.join("records-access-withdrawn")).unwrap(),
            "6",
            "records-access@1.0.0, which answers AuthZEN requests",
        ),
    ];
    for (index, (what, change, version, says)) in refused.into_iter().enumerate() {
        // Each refusal alone: the policy the case before changed fits again first.
        match index {
            1 | 3 => resign_documents(POLICY),
            2 => resign_records(RECORDS_POLICY),
            _ => {}
        }
        change();
        release(version);
        let reply = reload();
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "runtime.environment_refused"),
            "{what}: {}",
            reply.text
        );
        assert!(reply.text.contains(says), "{what}: {}", reply.text);
        assert_eq!(owner_decides(), true, "{what}: the old environment answers");
    }
    // Back to a release that fits: taken.
    std::fs::rename(root.join("records-access-withdrawn"), &records).unwrap();
    resign_records(RECORDS_POLICY);
    release("7");
    let reply = reload();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["release_manifest"], json!([2, 7]));
    assert_eq!(owner_decides(), true);
}

/// A boxcar answered on its timeout starts none of the evaluations it had not reached: the one
/// already handed to the runtime completes (held up by the store's write lock, taken from
/// outside), the ids after it are never consumed — the client that saw `503 server.timeout`
/// acted on no decision, and reads each id back to learn which ran.
#[test]
fn a_boxcar_answered_on_its_timeout_starts_no_evaluation_it_had_not_reached() {
    use parmana_runtime::replay::SqliteReplayStore;
    let temp = authzen_deployment();
    let root = root(&temp);
    let served = Served::start(&root, &["--dev-token", "--request-timeout-ms", "300"]);
    let token = served.token.clone();
    let token = token.as_deref();
    let executions = || {
        crate::harness::metric_or_zero(
            &served,
            token,
            "parmana_runtime_call_duration_seconds_count{operation=\"execute\"}",
        )
    };
    let before = executions();
    let evaluation =
        |id: &str| json!({"action": {"name": "read"}, "context": {"execution_id": id}});
    let body = json!({
        "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": "viewer"}},
        "resource": {"type": "document", "id": "1"},
        "evaluations": [evaluation("boxcar-1"), evaluation("boxcar-2"), evaluation("boxcar-3")]
    });
    let held = SqliteReplayStore::hold_writes(root.join(".parmana/replay.sqlite3")).unwrap();
    let reply = served.post("/access/v1/evaluations", token, &body.to_string());
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (503, "server.timeout"),
        "{}",
        reply.text
    );
    // It names no execution, and says one of the boxcar's may still complete (the first has).
    assert!(
        reply
            .text
            .contains("an evaluation of the boxcar handed to the runtime may still complete")
            && reply.header("location").is_none(),
        "{}",
        reply.text
    );
    drop(held);
    // The boxcar's runtime call ends (polled, bounded: 2,400 × 25 ms) once its first execution,
    // let go by the lock, has completed.
    let ended = (0..2_400).any(|_| {
        let now = executions() > before;
        if !now {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        now
    });
    assert!(ended, "{}", served.stderr());
    assert_eq!(served.get("/v1/executions/boxcar-1", token).status, 200);
    for id in ["boxcar-2", "boxcar-3"] {
        let read = served.get(&format!("/v1/executions/{id}"), token);
        assert_eq!(read.status, 404, "{id} was executed: {}", read.text);
    }
    assert!(
        served
            .stderr()
            .contains("the evaluations left are not started"),
        "{}",
        served.stderr()
    );
}

/// What a boxcar's evaluations would flatten to is bounded before any is decided: a long key
/// over many leaves is repeated in every leaf's signal name, so a small body can ask for far more
/// names than it holds. At `--max-body-bytes 131072` the names may add up to 1 MiB in all: 30
/// evaluations of about 21 KB of names each are decided, 100 are `413 server.batch_too_large`.
#[test]
fn a_boxcar_whose_names_would_pass_the_bound_is_refused_before_anything_is_decided() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token", "--max-body-bytes", "131072"]);
    let token = served.token.as_deref();
    let leaves: serde_json::Map<String, Value> =
        (0..20).map(|n| (format!("l{n:02}"), json!(0))).collect();
    let evaluation = json!({"context": {"k".repeat(1_000): leaves}});
    for (count, status) in [(30, 200), (100, 413)] {
        let body = json!({
            "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": "viewer"}},
            "action": {"name": "read"},
            "resource": {"type": "document", "id": "1"},
            "evaluations": vec![evaluation.clone(); count]
        });
        let reply = served.post("/access/v1/evaluations", token, &body.to_string());
        assert_eq!(reply.status, status, "{count}: {}", reply.text);
        if status == 200 {
            assert_eq!(reply.json()["evaluations"].as_array().unwrap().len(), count);
        } else {
            assert_eq!(reply.code(), "server.batch_too_large");
            assert!(reply.text.contains("signal names"), "{}", reply.text);
        }
    }
}

/// A value given where another shape belongs is refused without being repeated whole: serde's
/// message quotes a string it refuses (escaped: a DEL byte becomes `\u{7f}`, and JSON escapes
/// that again), so an answer could be seven times the body, once for each of a boxcar's
/// thousand entries. Each message is cut at 512 characters; `/v1/verify` reads its body the
/// same way.
#[test]
fn a_refused_shape_is_not_repeated_whole() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let delete = "\u{7f}";
    let mut single = request("viewer", "read");
    single["subject"] = json!(delete.repeat(1_000_000));
    let verify = json!({"attestation": {}, "check_bundle": delete.repeat(1_000_000)});
    for (route, body) in [
        ("/access/v1/evaluation", &single),
        ("/access/v1/evaluations", &single),
        ("/v1/verify", &verify),
    ] {
        let reply = served.post(route, token, &body.to_string());
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "server.invalid_request"),
            "{route}: {}",
            &reply.text[..reply.text.len().min(300)]
        );
        assert!(
            reply.text.len() < 4096,
            "{route}: {} bytes",
            reply.text.len()
        );
        assert!(reply.text.contains('…'), "{route}: {}", reply.text);
    }
    let entry = json!({"subject": delete.repeat(1_000)});
    let boxcar = json!({
        "action": {"name": "read"},
        "resource": {"type": "document", "id": "1"},
        "evaluations": vec![entry; 1_000],
    });
    let reply = served.post("/access/v1/evaluations", token, &boxcar.to_string());
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.text[..reply.text.len().min(300)]
    );
    let answers = reply.json()["evaluations"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 1_000);
    for answer in &answers {
        assert_eq!(answer["decision"], false, "{answer}");
        let message = answer["context"]["error"]["message"].as_str().unwrap();
        assert!(
            message.chars().count() <= 600,
            "{} characters",
            message.chars().count()
        );
    }
}
