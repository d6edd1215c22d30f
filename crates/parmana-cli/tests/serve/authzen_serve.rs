//! AuthZEN 1.0: deployments with policies over dotted signal names and the mapping in `parmana.toml` (one policy that is also the default; two routed by `resource.type` with no default), single and boxcarred evaluations with the three semantics, evaluations that become executions (the `execute` scope they need, their metrics, log lines and replays), the mappings refused at start, and the metadata document.

use serde_json::{Value, json};

use crate::harness::{Served, parmana, tokens_file};
use crate::limits_serve::log_line;

/// The AuthZEN example policy over dotted signal names: anyone may read, editors may edit.
pub(crate) const POLICY: &str = parmana_testkit::DOCUMENTS_ACCESS_POLICY;

/// The mapping of [`authzen_deployment`]: one policy, also the default.
const DOCUMENTS_MAPPING: &str = "\n[server.authzen]\ndefault_policy = \"documents-access@1.0.0\"\n\
     [[server.authzen.policies]]\npolicy = \"documents-access@1.0.0\"\n\
     resource_types = [\"document\"]\npermit = [\"allow\"]\n";

/// A fresh deployment (`parmana init`) with the AuthZEN policy signed and released.
pub(crate) fn authzen_deployment() -> tempfile::TempDir {
    authzen_deployment_with(&[("documents-access", POLICY)], DOCUMENTS_MAPPING)
}

/// A fresh deployment (`parmana init`) with `policies` (id, `policy.json` of version 1.0.0)
/// signed and released, and `mapping` appended to its `parmana.toml`.
pub(crate) fn authzen_deployment_with(
    policies: &[(&str, &str)],
    mapping: &str,
) -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("d");
    let (code, _, stderr) = parmana(temp.path(), &["init", "d"]);
    assert_eq!(code, 0, "{stderr}");
    for (id, policy) in policies {
        let dir = format!("policies/{id}/1.0.0");
        std::fs::create_dir_all(root.join(&dir)).unwrap();
        std::fs::write(root.join(&dir).join("policy.json"), policy).unwrap();
        let (code, _, stderr) = parmana(
            &root,
            &["bundle", "sign", &dir, "--key", "trust/keys/policy.pem"],
        );
        assert_eq!(code, 0, "{id}: {stderr}");
    }
    crate::harness::release_sign(&root, "2", "2035-01-01T00:00:00Z");
    let mut config = std::fs::read_to_string(root.join("parmana.toml")).unwrap();
    config.push_str(mapping);
    std::fs::write(root.join("parmana.toml"), config).unwrap();
    temp
}

pub(crate) fn root(temp: &tempfile::TempDir) -> std::path::PathBuf {
    temp.path().join("d")
}

pub(crate) fn request(role: &str, action: &str) -> serde_json::Value {
    json!({
        "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": role}},
        "action": {"name": action},
        "resource": {"type": "document", "id": "boxcarring.md"},
        "context": {"time": "2024-05-31T15:22-07:00"},
        "unknown_member": "ignored, as AuthZEN requires"
    })
}

#[test]
fn authzen_evaluations_follow_the_mapping_and_the_semantics() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.clone();
    let token = token.as_deref();
    let post = |path: &str, body: &serde_json::Value| served.post(path, token, &body.to_string());
    // (role, action, decision)
    for (role, action, expected) in [
        ("viewer", "read", true),
        ("viewer", "edit", false),
        ("editor", "edit", true),
        ("editor", "delete", false),
    ] {
        let reply = post("/access/v1/evaluation", &request(role, action));
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["decision"], expected, "{role} {action}");
        assert_eq!(reply.json()["context"]["policy"], "documents-access@1.0.0");
        // The request identifier the client sent comes back.
        assert_eq!(reply.header("x-request-id"), Some("req-post"));
    }
    // A subject without the declared property: 400, a typed error.
    let mut missing = request("viewer", "read");
    missing["subject"]["properties"] = json!({});
    let refused = post("/access/v1/evaluation", &missing);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "policy.signal_missing")
    );
    // A request without a required member: 400.
    let refused = post(
        "/access/v1/evaluation",
        &json!({"subject": {"type": "user", "id": "a"}}),
    );
    assert_eq!(refused.status, 400);

    // The three semantics over boxcars of allowed (T), denied (F) and refused (E, a required
    // signal missing) evaluations of one viewer: `T` reads, `F` edits. A refused evaluation is
    // `false` with its error, and counts as a denial where a semantic stops.
    let entry = |kind: char| match kind {
        'T' => json!({"action": {"name": "read"}}),
        'F' => json!({"action": {"name": "edit"}}),
        _ => {
            json!({"action": {"name": "read"}, "subject": {"type": "user", "id": "nobody", "properties": {}}})
        }
    };
    let boxcar = |kinds: &str, semantic: Option<&str>| -> String {
        let mut body = json!({
            "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": "viewer"}},
            "resource": {"type": "document", "id": "1"},
            "evaluations": kinds.chars().map(entry).collect::<Vec<_>>()
        });
        if let Some(semantic) = semantic {
            body["options"] = json!({"evaluations_semantic": semantic});
        }
        let reply = post("/access/v1/evaluations", &body);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                match (
                    d["decision"].as_bool().unwrap(),
                    d["context"]["error"]["code"].as_str(),
                ) {
                    (true, _) => 'T',
                    (false, None) => 'F',
                    (false, Some(code)) => {
                        assert_eq!(code, "policy.signal_missing", "{d}");
                        'E'
                    }
                }
            })
            .collect()
    };
    // (evaluations, semantic, the decisions answered)
    let cases = [
        ("TFTF", None, "TFTF"),
        ("TFTF", Some("execute_all"), "TFTF"),
        ("TFTF", Some("deny_on_first_deny"), "TF"),
        ("TFTF", Some("permit_on_first_permit"), "T"),
        ("FFTF", Some("execute_all"), "FFTF"),
        ("FFTF", Some("deny_on_first_deny"), "F"),
        ("FFTF", Some("permit_on_first_permit"), "FFT"),
        ("TTTF", Some("deny_on_first_deny"), "TTTF"),
        ("FFFF", Some("permit_on_first_permit"), "FFFF"),
        ("TETF", Some("deny_on_first_deny"), "TE"),
        ("ETFT", Some("permit_on_first_permit"), "ET"),
        ("TETF", Some("execute_all"), "TETF"),
    ];
    for (kinds, semantic, answered) in cases {
        assert_eq!(boxcar(kinds, semantic), answered, "{kinds} {semantic:?}");
    }
    // A semantic AuthZEN does not define is refused.
    let unknown = post(
        "/access/v1/evaluations",
        &json!({
            "subject": {"type": "user", "id": "a", "properties": {"role": "viewer"}},
            "resource": {"type": "document", "id": "1"},
            "evaluations": [{"action": {"name": "read"}}],
            "options": {"evaluations_semantic": "first_one_wins"}
        }),
    );
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (400, "server.invalid_request"),
        "{}",
        unknown.text
    );
    // A refused evaluation inside a boxcar is `false` with the error in its context.
    let mixed = post(
        "/access/v1/evaluations",
        &json!({"evaluations": [request("viewer", "read"), missing.clone()]}),
    )
    .json();
    assert_eq!(mixed["evaluations"][1]["decision"], false);
    assert_eq!(
        mixed["evaluations"][1]["context"]["error"]["code"],
        "policy.signal_missing"
    );
    // Without `evaluations`, or with an empty one, the request is one evaluation (AuthZEN
    // §7.1: "If an evaluations array is NOT present or is empty, the Access Evaluations Request
    // behaves in a backwards-compatible manner with the (single) Access Evaluation API
    // Request"): one decision, never a 200 without one.
    let mut empty = request("viewer", "read");
    empty["evaluations"] = json!([]);
    for body in [request("viewer", "read"), empty] {
        let single = post("/access/v1/evaluations", &body).json();
        assert_eq!(single["decision"], true, "{body}");
        assert!(single.get("evaluations").is_none(), "{single}");
    }

    // With an execution id in the context, the evaluation is executed and attested.
    let mut execution = request("editor", "edit");
    execution["context"]["execution_id"] = json!("authzen-1");
    let executed = post("/access/v1/evaluation", &execution);
    assert_eq!(executed.status, 200, "{}", executed.text);
    assert_eq!(executed.json()["decision"], true);
    let attestation = executed.json()["context"]["attestation"].clone();
    let stored = served.get("/v1/executions/authzen-1", token);
    assert_eq!(stored.json(), attestation);
    // Embedded byte for byte as the store holds it.
    assert!(executed.text.contains(&stored.text), "{}", executed.text);
    let again = post("/access/v1/evaluation", &execution);
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "runtime.replay_detected")
    );

    let metadata = served
        .get("/.well-known/authzen-configuration", None)
        .json();
    assert_eq!(metadata["policy_decision_point"], served.base.as_str());
    assert_eq!(
        metadata["access_evaluations_endpoint"],
        format!("{}/access/v1/evaluations", served.base)
    );
}

#[test]
fn an_execution_id_needs_the_execute_scope_on_both_authzen_routes() {
    let temp = authzen_deployment();
    let root = root(&temp);
    let tokens = tokens_file(
        &root,
        &[
            ("evaluator", &["evaluate"]),
            ("reader", &["read"]),
            ("executor", &["evaluate", "execute"]),
        ],
    );
    let served = Served::start(&root, &["--tokens", tokens.to_str().unwrap()]);
    let plain = request("editor", "edit");
    let mut execution = plain.clone();
    execution["context"]["execution_id"] = json!("scoped-1");
    let boxcar = json!({"evaluations": [plain.clone(), execution.clone()]});
    // Members that cannot be flattened (`context.x.y` reached twice: 400): the missing scope is
    // answered first.
    let mut refused_execution = execution.clone();
    refused_execution["context"]["x.y"] = json!(1);
    refused_execution["context"]["x"] = json!({"y": 2});
    // (token, route, body, status, code): every refusal comes before anything is decided.
    let cases: [(&str, &str, &serde_json::Value, u16, &str); 8] = [
        (
            "evaluator",
            "/access/v1/evaluation",
            &refused_execution,
            403,
            "server.forbidden",
        ),
        (
            "evaluator",
            "/access/v1/evaluations",
            &refused_execution,
            403,
            "server.forbidden",
        ),
        (
            "evaluator",
            "/access/v1/evaluation",
            &execution,
            403,
            "server.forbidden",
        ),
        // Without `evaluations`, the request is one evaluation, refused as a whole.
        (
            "evaluator",
            "/access/v1/evaluations",
            &execution,
            403,
            "server.forbidden",
        ),
        (
            "reader",
            "/access/v1/evaluation",
            &plain,
            403,
            "server.forbidden",
        ),
        (
            "reader",
            "/access/v1/evaluations",
            &plain,
            403,
            "server.forbidden",
        ),
        (
            "reader",
            "/access/v1/evaluations",
            &boxcar,
            403,
            "server.forbidden",
        ),
        (
            "reader",
            "/access/v1/evaluation",
            &execution,
            403,
            "server.forbidden",
        ),
    ];
    for (token, route, body, status, code) in cases {
        let reply = served.post(route, Some(token), &body.to_string());
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{token} {route} {body}: {}",
            reply.text
        );
        // The challenge names the scope missing: `execute` for the evaluator, whose token may
        // evaluate; `evaluate` for the reader (RFC 6750 §3).
        let missing = if token == "evaluator" {
            "execute"
        } else {
            "evaluate"
        };
        assert_eq!(
            reply.header("www-authenticate"),
            Some(format!(
                r#"Bearer realm="parmana", error="insufficient_scope", scope="{missing}""#
            ))
            .as_deref(),
            "{token} {route}"
        );
    }
    // In a boxcar, the evaluation that asks for an execution is refused (`false`, the error in
    // its context), not executed; the others are decided.
    let mixed = served.post(
        "/access/v1/evaluations",
        Some("evaluator"),
        &boxcar.to_string(),
    );
    assert_eq!(mixed.status, 200, "{}", mixed.text);
    let mixed = mixed.json();
    assert_eq!(mixed["evaluations"][0]["decision"], true, "{mixed}");
    assert_eq!(mixed["evaluations"][1]["decision"], false, "{mixed}");
    assert_eq!(mixed["evaluations"][1]["context"]["error"]["status"], 403);
    assert_eq!(
        mixed["evaluations"][1]["context"]["error"]["code"],
        "server.forbidden"
    );
    // None of it used the id.
    let unused = served.get("/v1/executions/scoped-1", Some("reader"));
    assert_eq!(
        (unused.status, unused.code().as_str()),
        (404, "server.execution_unknown"),
        "{}",
        unused.text
    );
    // `execution_id: null` (a serializer's absent member) asks for no execution: decided with
    // `evaluate` alone, on both routes and at the top of a boxcar.
    let mut null_id = plain.clone();
    null_id["context"]["execution_id"] = json!(null);
    let null_boxcar =
        json!({"context": {"execution_id": null}, "evaluations": [plain.clone(), null_id.clone()]});
    for (route, body) in [
        ("/access/v1/evaluation", &null_id),
        ("/access/v1/evaluations", &null_id),
        ("/access/v1/evaluations", &null_boxcar),
    ] {
        let reply = served.post(route, Some("evaluator"), &body.to_string());
        assert_eq!(reply.status, 200, "{route} {body}: {}", reply.text);
        let reply = reply.json();
        let decisions: Vec<&serde_json::Value> = match reply.get("evaluations") {
            Some(all) => all.as_array().unwrap().iter().collect(),
            None => vec![&reply],
        };
        for decision in decisions {
            assert_eq!(decision["decision"], true, "{route}: {reply}");
            assert!(decision["context"].get("attestation").is_none(), "{reply}");
        }
    }
    // With `execute` too, the same request executes.
    let executed = served.post(
        "/access/v1/evaluation",
        Some("executor"),
        &execution.to_string(),
    );
    assert_eq!(executed.status, 200, "{}", executed.text);
    assert_eq!(executed.json()["context"]["execution_id"], "scoped-1");
    assert_eq!(
        served.get("/v1/executions/scoped-1", Some("reader")).status,
        200
    );
}

#[test]
fn authzen_executions_are_counted_logged_and_located_like_native_ones() {
    let temp = authzen_deployment();
    let root = root(&temp);
    let tokens = tokens_file(&root, &[("all", &["evaluate", "execute", "read"])]);
    let served = Served::start(
        &root,
        &["--tokens", tokens.to_str().unwrap(), "--log-format", "json"],
    );
    let all = Some("all");
    let allowed = r#"parmana_executions_total{decision="allow"}"#;
    let denied = r#"parmana_executions_total{decision="deny"}"#;
    let replayed = r#"parmana_execution_errors_total{code="runtime.replay_detected"}"#;
    // Runtime calls by operation: a request that asks for an execution is timed as one.
    let executing_calls = r#"parmana_runtime_call_duration_seconds_count{operation="execute"}"#;
    let evaluating_calls = r#"parmana_runtime_call_duration_seconds_count{operation="evaluate"}"#;
    let invalid = r#"parmana_execution_errors_total{code="server.invalid_request"}"#;
    let series = [
        allowed,
        denied,
        replayed,
        executing_calls,
        evaluating_calls,
        invalid,
    ];
    // (Labelled series, made when first counted.)
    let metric =
        |served: &Served, series: &str| crate::harness::metric_or_zero(served, all, series);
    let before = series.map(|s| metric(&served, s));
    let executing = |role: &str, action: &str, id: &str| {
        let mut body = request(role, action);
        body["context"]["execution_id"] = json!(id);
        body
    };
    let first = executing("editor", "edit", "authzen-m1");
    let executed = served.post("/access/v1/evaluation", all, &first.to_string());
    assert_eq!(executed.status, 200, "{}", executed.text);
    let boxcar = json!({"evaluations": [
        executing("viewer", "read", "authzen-m2"),
        executing("viewer", "edit", "authzen-m3"),
        request("viewer", "read"),
        first.clone(),
    ]});
    let decided = served.post("/access/v1/evaluations", all, &boxcar.to_string());
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert_eq!(
        decided.json()["evaluations"][3]["context"]["error"]["code"],
        "runtime.replay_detected"
    );
    // Inside a boxcar the refusal names where the stored outcome reads back, as `Location`
    // does alone; a refusal that consumed nothing names none.
    assert_eq!(
        decided.json()["evaluations"][3]["context"]["error"]["location"],
        "/v1/executions/authzen-m1"
    );
    assert!(
        decided.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .all(
                |e| e["context"]["error"]["code"] == "runtime.replay_detected"
                    || e["context"]["error"].get("location").is_none()
            ),
        "{}",
        decided.text
    );
    // A reused id, on both routes (without `evaluations`, one evaluation): 409 naming the
    // stored attestation, as on POST /v1/executions.
    for route in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        let again = served.post(route, all, &first.to_string());
        assert_eq!(
            (again.status, again.code().as_str()),
            (409, "runtime.replay_detected"),
            "{route}"
        );
        assert_eq!(
            again.header("location"),
            Some("/v1/executions/authzen-m1"),
            "{route}"
        );
    }
    // An execution refused before the runtime is called (an id that is not a string) is counted
    // as one refused, as on POST /v1/executions; nothing is consumed.
    let mut numeric = request("viewer", "read");
    numeric["context"]["execution_id"] = json!(5);
    let refused = served.post("/access/v1/evaluation", all, &numeric.to_string());
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "server.invalid_request"),
        "{}",
        refused.text
    );
    assert!(
        refused
            .text
            .contains("context.execution_id must be a string"),
        "{}",
        refused.text
    );
    // Executions by decision (m1 and m2 allow, m3 denies) and refusals by code (the replay in
    // the boxcar and the two above, the id that is not a string); the plain evaluation is not
    // an execution. Five requests asked for executions (m1, the boxcar, the two replays, the
    // refused one), each timed as one runtime call.
    let after = series.map(|s| metric(&served, s));
    let deltas: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(deltas, [2, 1, 3, 5, 0, 1]);
    // The log lines carry the caller (its token's name), the id, the policy, the policy's
    // decision and the error code.
    let (event, _) = log_line(&served, "/access/v1/evaluation", 200);
    assert_eq!(event["caller"], "all", "{event}");
    assert_eq!(event["execution_id"], "authzen-m1", "{event}");
    assert_eq!(event["policy"], "documents-access@1.0.0", "{event}");
    assert_eq!(event["decision"], "allow", "{event}");
    let (event, _) = log_line(&served, "/access/v1/evaluation", 409);
    assert_eq!(event["execution_id"], "authzen-m1", "{event}");
    assert_eq!(event["policy"], "documents-access@1.0.0", "{event}");
    assert_eq!(event["code"], "runtime.replay_detected", "{event}");
    // A boxcar's line lists its evaluations' values as JSON arrays, one entry per evaluation in
    // order (`null` where it has none); the policies each once.
    let (event, _) = log_line(&served, "/access/v1/evaluations", 200);
    let list =
        |field: &str| -> Value { serde_json::from_str(event[field].as_str().unwrap()).unwrap() };
    assert_eq!(
        list("execution_id"),
        json!(["authzen-m2", "authzen-m3", null, "authzen-m1"]),
        "{event}"
    );
    assert_eq!(event["policy"], "documents-access@1.0.0", "{event}");
    assert_eq!(
        list("decision"),
        json!(["allow", "deny", "allow", null]),
        "{event}"
    );
    assert_eq!(
        list("code"),
        json!([null, null, null, "runtime.replay_detected"]),
        "{event}"
    );
}

/// A second policy, answering records: it decides on the request's type and id members and on
/// a context member.
pub(crate) const RECORDS_POLICY: &str = r#"{
  "schema_version": "2.0.0",
  "policy_id": "records-access",
  "policy_version": "1.0.0",
  "description": "Only alice, as a user, may open record r-1, and only at the gold tier.",
  "decisions": ["grant", "refuse"],
  "permit": ["grant"],
  "additional_signals": "ignore",
  "signals": {
    "subject.type": {"type": "string", "required": true},
    "subject.id": {"type": "string", "required": true},
    "resource.type": {"type": "string", "required": true},
    "resource.id": {"type": "string", "required": true},
    "context.tier": {"type": "string", "required": true}
  },
  "rules": [
    {"id": "owner", "when": {"all": [
      {"signal": "subject.type", "eq": "user"},
      {"signal": "subject.id", "eq": "alice"},
      {"signal": "resource.type", "eq": "record"},
      {"signal": "resource.id", "eq": "r-1"},
      {"signal": "context.tier", "eq": "gold"}
    ]}, "then": {"decision": "grant", "reason": "the owner"}}
  ],
  "default": {"decision": "refuse", "reason": "not the owner"}
}"#;

/// Two policies routed by `resource.type`, no default: what `true` means for the first is the
/// deployment's `permit`, for the second the policy's own signed `permit`.
pub(crate) const TWO_POLICIES: &str = "\n[server.authzen]\n\
     [[server.authzen.policies]]\npolicy = \"documents-access@1.0.0\"\n\
     resource_types = [\"document\"]\npermit = [\"allow\"]\n\
     [[server.authzen.policies]]\npolicy = \"records-access@1.0.0\"\n\
     resource_types = [\"record\", \"archive\"]\n";

#[test]
fn each_resource_type_is_answered_by_its_policy_with_the_flattened_members() {
    let temp = authzen_deployment_with(
        &[
            ("documents-access", POLICY),
            ("records-access", RECORDS_POLICY),
        ],
        TWO_POLICIES,
    );
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let body = |subject: (&str, &str), resource: (&str, &str), tier: &str| {
        json!({
            "subject": {"type": subject.0, "id": subject.1, "properties": {"role": "viewer"}},
            "action": {"name": "read"},
            "resource": {"type": resource.0, "id": resource.1},
            "context": {"tier": tier}
        })
    };
    let owner = (("user", "alice"), ("record", "r-1"), "gold");
    // (subject, resource, context.tier, decision, policy, rule)
    let cases = [
        (
            ("user", "bob"),
            ("document", "d-1"),
            "none",
            true,
            "documents-access@1.0.0",
            "read",
        ),
        (
            owner.0,
            owner.1,
            owner.2,
            true,
            "records-access@1.0.0",
            "owner",
        ),
        (
            ("service", "alice"),
            owner.1,
            owner.2,
            false,
            "records-access@1.0.0",
            "default",
        ),
        (
            ("user", "bob"),
            owner.1,
            owner.2,
            false,
            "records-access@1.0.0",
            "default",
        ),
        (
            owner.0,
            ("record", "r-2"),
            owner.2,
            false,
            "records-access@1.0.0",
            "default",
        ),
        (
            owner.0,
            ("archive", "r-1"),
            owner.2,
            false,
            "records-access@1.0.0",
            "default",
        ),
        (
            owner.0,
            owner.1,
            "silver",
            false,
            "records-access@1.0.0",
            "default",
        ),
    ];
    for (subject, resource, tier, decision, policy, rule) in cases {
        let sent = body(subject, resource, tier);
        let reply = served.post("/access/v1/evaluation", token, &sent.to_string());
        assert_eq!(reply.status, 200, "{sent}: {}", reply.text);
        let reply = reply.json();
        assert_eq!(
            (
                &reply["decision"],
                &reply["context"]["policy"],
                &reply["context"]["rule_id"]
            ),
            (&json!(decision), &json!(policy), &json!(rule)),
            "{sent}"
        );
    }
    // No default: a resource type no policy names is refused, alone and in a boxcar.
    let unmapped = body(owner.0, ("folder", "f-1"), "gold");
    let refused = served.post("/access/v1/evaluation", token, &unmapped.to_string());
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "server.authzen_no_policy"),
        "{}",
        refused.text
    );
    let boxcar = json!({"evaluations": [unmapped, body(owner.0, owner.1, owner.2)]});
    let mixed = served
        .post("/access/v1/evaluations", token, &boxcar.to_string())
        .json();
    assert_eq!(
        mixed["evaluations"][0]["context"]["error"]["code"],
        "server.authzen_no_policy"
    );
    assert_eq!(mixed["evaluations"][1]["decision"], true, "{mixed}");
    // The refusal names the type it was given, cut to 128 characters and on one line: a
    // boxcar of a thousand evaluations taking a long type as their default does not answer a
    // thousand copies of it.
    let long_type = format!("line\n{}", "x".repeat(5_000));
    let unmapped = body(owner.0, (long_type.as_str(), "f-1"), "gold");
    let refused = served.post("/access/v1/evaluation", token, &unmapped.to_string());
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        message,
        format!(
            "no policy answers resource type \"line\\n{}…\"",
            "x".repeat(123)
        ),
        "{}",
        refused.text
    );
    // An evaluation's own context replaces the default whole (AuthZEN §7.1.1): the owner at the
    // gold tier by its own context is granted under a silver default, and refused where it
    // takes the default — so neither the default nor a merge can stand in for its own.
    let mut own = body(owner.0, owner.1, owner.2);
    own.as_object_mut().unwrap().remove("subject");
    own.as_object_mut().unwrap().remove("action");
    own.as_object_mut().unwrap().remove("resource");
    let defaults = body(owner.0, owner.1, "silver");
    let boxcar = json!({
        "subject": defaults["subject"],
        "action": defaults["action"],
        "resource": defaults["resource"],
        "context": defaults["context"],
        "evaluations": [own, {}, {"context": {"tier": "silver", "extra": 1}}],
    });
    let decided = served
        .post("/access/v1/evaluations", token, &boxcar.to_string())
        .json();
    let decisions: Vec<&Value> = (0..3)
        .map(|i| &decided["evaluations"][i]["decision"])
        .collect();
    assert_eq!(
        decisions,
        [&json!(true), &json!(false), &json!(false)],
        "{decided}"
    );
    // Its default is the top-level context, whole, where it gives none; and an evaluation's
    // context with the tier missing is refused (the policy requires it), not filled in from
    // the default.
    let boxcar = json!({
        "subject": defaults["subject"],
        "action": defaults["action"],
        "resource": defaults["resource"],
        "context": {"tier": "gold"},
        "evaluations": [{}, {"context": {"other": "x"}}],
    });
    let decided = served
        .post("/access/v1/evaluations", token, &boxcar.to_string())
        .json();
    assert_eq!(decided["evaluations"][0]["decision"], true, "{decided}");
    assert_eq!(decided["evaluations"][1]["decision"], false, "{decided}");
    assert_eq!(
        decided["evaluations"][1]["context"]["error"]["code"], "policy.signal_missing",
        "{decided}"
    );
}

#[test]
fn a_mapping_that_does_not_fit_the_environment_is_refused_at_start() {
    // Policies declaring a signal no AuthZEN request can give a value: the execution id, and a
    // name under a member that is a string.
    let declaring = |id: &str, name: &str| {
        POLICY.replace("documents-access", id).replace(
            r#""action.name": {"type": "string", "required": true}"#,
            &format!(
                r#""action.name": {{"type": "string", "required": true}},
    "{name}": {{"type": "string", "required": false}}"#
            ),
        )
    };
    let undeclarable = [
        ("execution-id-signal", "context.execution_id"),
        ("under-a-string", "subject.id.domain"),
        ("a-container", "resource.properties"),
        ("beside-the-members", "subject.role"),
    ];
    let texts: Vec<(&str, String)> = undeclarable
        .iter()
        .map(|(id, name)| (*id, declaring(id, name)))
        .collect();
    let mut policies = vec![
        ("documents-access", POLICY),
        ("records-access", RECORDS_POLICY),
    ];
    policies.extend(texts.iter().map(|(id, text)| (*id, text.as_str())));
    let temp = authzen_deployment_with(&policies, "");
    let config = root(&temp).join("parmana.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let entry = |policy: &str, types: &str, permit: &str| {
        format!(
            "[[server.authzen.policies]]\npolicy = \"{policy}\"\nresource_types = [{types}]\n\
             permit = [{permit}]\n"
        )
    };
    let documents = entry("documents-access@1.0.0", r#""document""#, r#""allow""#);
    // (the [server.authzen] table, what the refusal says)
    let cases = [
        (
            entry("documents-access@1.0.0", r#""document""#, r#""permit""#),
            "not one of its decisions",
        ),
        (
            entry("documents-access@1.0.0", r#""document""#, ""),
            "lists no decision",
        ),
        (
            "[[server.authzen.policies]]\npolicy = \"documents-access@1.0.0\"\n".to_owned(),
            "neither the policy (a signed `permit`) nor the deployment",
        ),
        (
            entry("records-access@1.0.0", r#""record""#, r#""refuse""#),
            "differs from the policy's signed `permit` [grant]",
        ),
        (
            entry(
                "records-access@1.0.0",
                r#""record""#,
                r#""grant", "refuse""#,
            ),
            "differs from the policy's signed `permit` [grant]",
        ),
        (
            entry("missing-policy@1.0.0", r#""document""#, r#""allow""#),
            "missing-policy@1.0.0",
        ),
        (
            entry("not a reference", r#""document""#, r#""allow""#),
            "not a reference",
        ),
        (
            format!(
                "{documents}{}",
                entry(
                    "records-access@1.0.0",
                    r#""record", "document""#,
                    r#""grant""#
                )
            ),
            "\"document\" is answered twice",
        ),
        (
            entry("documents-access@1.0.0", "", r#""allow""#),
            "names no resource type and is not the default_policy",
        ),
        (
            format!(
                "default_policy = \"documents-access@1.0.0\"\n{documents}{}",
                entry("documents-access@1.0.0", "", r#""allow""#)
            ),
            "documents-access@1.0.0 has two entries",
        ),
        (
            format!("default_policy = \"records-access@1.0.0\"\n{documents}"),
            "default_policy records-access@1.0.0 is not one of the configured policies",
        ),
    ];
    let undeclarable_cases = undeclarable.iter().map(|(id, name)| {
        (
            entry(&format!("{id}@1.0.0"), r#""document""#, r#""allow""#),
            format!("declares the signal \"{name}\", which no AuthZEN request can give"),
        )
    });
    let cases = cases
        .into_iter()
        .map(|(table, says)| (table, says.to_owned()))
        .chain(undeclarable_cases);
    for (table, says) in cases {
        std::fs::write(&config, format!("{base}\n[server.authzen]\n{table}")).unwrap();
        let (code, _, stderr) = parmana(
            &root(&temp),
            &["serve", "--listen", "127.0.0.1:0", "--dev-token"],
        );
        assert_eq!(code, 2, "{table}: {stderr}");
        assert!(
            stderr.contains("server.authzen_config"),
            "{table}: {stderr}"
        );
        assert!(stderr.contains(&says), "{table}: {stderr}");
    }
}

/// A Policy Decision Point served under a path prefix (`pdp_url` with a path, behind a proxy
/// that forwards that prefix): where an execution reads back — a replay's `Location`, and a
/// refused boxcar evaluation's `location` — is under the prefix too, so that, resolved against
/// the AuthZEN endpoint, it stays where the proxy forwards.
#[test]
fn an_execution_reads_back_under_the_pdp_url_path() {
    let mapping = DOCUMENTS_MAPPING.replacen(
        "[server.authzen]\n",
        "[server.authzen]\npdp_url = \"https://pdp.example.com/authz/\"\n",
        1,
    );
    let temp = authzen_deployment_with(&[("documents-access", POLICY)], &mapping);
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.clone();
    let token = token.as_deref();
    let mut execution = request("viewer", "read");
    execution["context"]["execution_id"] = json!("prefixed-1");
    let first = served.post("/access/v1/evaluation", token, &execution.to_string());
    assert_eq!(first.status, 200, "{}", first.text);
    let again = served.post("/access/v1/evaluation", token, &execution.to_string());
    assert_eq!(
        (again.status, again.header("location")),
        (409, Some("/authz/v1/executions/prefixed-1")),
        "{}",
        again.text
    );
    let boxcar = json!({"evaluations": [execution]});
    let decided = served.post("/access/v1/evaluations", token, &boxcar.to_string());
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert_eq!(
        decided.json()["evaluations"][0]["context"]["error"]["location"],
        "/authz/v1/executions/prefixed-1",
        "{}",
        decided.text
    );
    // Read back where the server itself serves it (the proxy strips the prefix).
    assert_eq!(served.get("/v1/executions/prefixed-1", token).status, 200);
    // Its attestation binds the flattened signals (the dotted map, without the execution id):
    // verified with those, not with the AuthZEN request.
    let attestation = first.json()["context"]["attestation"].clone();
    let flattened = json!({
        "subject.type": "user",
        "subject.id": "alice@example.com",
        "subject.properties.role": "viewer",
        "action.name": "read",
        "resource.type": "document",
        "resource.id": "boxcarring.md",
        "context.time": "2024-05-31T15:22-07:00",
    });
    let declared = json!({"subject.properties.role": "viewer", "action.name": "read"});
    for (signals, valid) in [
        (declared, true),
        (flattened, false),
        (execution.clone(), false),
    ] {
        let body = json!({"attestation": attestation, "signals": signals});
        let report = served.post("/v1/verify", token, &body.to_string());
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.json()["valid"], valid, "{}", report.text);
    }
}

/// With `--log-signals`, the line of a single evaluation carries its flattened signals; the line
/// of a boxcar of more than one evaluation carries none — even when its semantic stopped after
/// the first — and none of its evaluations writes them out.
#[test]
fn only_a_single_evaluation_logs_its_flattened_signals() {
    let temp = authzen_deployment();
    let served = Served::start(
        &root(&temp),
        &["--dev-token", "--log-format", "json", "--log-signals"],
    );
    let token = served.token.as_deref();
    let one = served.post(
        "/access/v1/evaluation",
        token,
        &request("viewer", "read").to_string(),
    );
    assert_eq!(one.status, 200, "{}", one.text);
    let (event, _) = log_line(&served, "/access/v1/evaluation", 200);
    let logged: Value = serde_json::from_str(event["signals"].as_str().unwrap()).unwrap();
    assert_eq!(logged["subject.properties.role"], "viewer", "{event}");
    assert_eq!(logged["action.name"], "read", "{event}");
    let boxcar = json!({
        "evaluations": [request("viewer", "edit"), request("viewer", "read")],
        "options": {"evaluations_semantic": "deny_on_first_deny"}
    });
    let decided = served.post("/access/v1/evaluations", token, &boxcar.to_string());
    assert_eq!(decided.status, 200, "{}", decided.text);
    let evaluations = decided.json()["evaluations"].clone();
    assert_eq!(
        evaluations.as_array().map(Vec::len),
        Some(1),
        "{evaluations}"
    );
    assert_eq!(evaluations[0]["decision"], false, "{evaluations}");
    // A boxcar's line holds arrays, one entry per evaluation decided: here one, its semantic
    // having stopped it after the first.
    let (event, _) = log_line(&served, "/access/v1/evaluations", 200);
    assert_eq!(event["decision"], r#"["deny"]"#, "{event}");
    assert_eq!(event["signals"], "", "{event}");
    // A boxcar of one evaluation too, whose id looks like an array itself: the line cannot be
    // read as two executions.
    let mut named = request("viewer", "read");
    named["context"]["execution_id"] = json!(r#"["a","b"]"#);
    let one_entry = json!({"evaluations": [named]});
    let executed = served.post("/access/v1/evaluations", token, &one_entry.to_string());
    assert_eq!(executed.status, 200, "{}", executed.text);
    let (event, _) =
        crate::limits_serve::log_line_where(&served, "/access/v1/evaluations", 200, |event| {
            event["execution_id"] != ""
        });
    assert_eq!(event["execution_id"], r#"["[\"a\",\"b\"]"]"#, "{event}");
    assert_eq!(event["decision"], r#"["allow"]"#, "{event}");
    assert_eq!(event["signals"], "", "{event}");
}

/// A semantic that stops a boxcar starts nothing after the evaluation that stopped it: that one
/// is executed and attested in the answer, and no later execution id is consumed.
#[test]
fn a_boxcar_stopped_by_its_semantic_consumes_no_later_id() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let executing = |id: &str, role: &str, action: &str| {
        let mut evaluation = request(role, action);
        evaluation["context"]["execution_id"] = json!(id);
        evaluation
    };
    // (semantic, evaluations, the ids executed, the ids never started)
    let cases = [
        (
            "deny_on_first_deny",
            vec![
                executing("s-1", "viewer", "edit"),
                executing("s-2", "viewer", "read"),
            ],
            vec!["s-1"],
            vec!["s-2"],
        ),
        (
            "permit_on_first_permit",
            vec![
                executing("p-1", "viewer", "edit"),
                executing("p-2", "viewer", "read"),
                executing("p-3", "viewer", "read"),
            ],
            vec!["p-1", "p-2"],
            vec!["p-3"],
        ),
    ];
    for (semantic, evaluations, executed, untouched) in cases {
        let boxcar = json!({
            "evaluations": evaluations,
            "options": {"evaluations_semantic": semantic}
        });
        let answer = served.post("/access/v1/evaluations", token, &boxcar.to_string());
        assert_eq!(answer.status, 200, "{semantic}: {}", answer.text);
        let answers = answer.json()["evaluations"].as_array().unwrap().clone();
        assert_eq!(answers.len(), executed.len(), "{semantic}: {answers:?}");
        for (answer, id) in answers.iter().zip(&executed) {
            assert!(
                answer["context"]["attestation"].is_object(),
                "{semantic}: {answer}"
            );
            let stored = served.get(&format!("/v1/executions/{id}"), token);
            assert_eq!(stored.status, 200, "{semantic} {id}: {}", stored.text);
        }
        for id in untouched {
            let unknown = served.get(&format!("/v1/executions/{id}"), token);
            assert_eq!(unknown.status, 404, "{semantic} {id}: {}", unknown.text);
        }
    }
}

/// How `null`, `{}` and arrays flatten (docs/server.md, "Signals"): `null` is a value no policy
/// declares; a `null` entity member is absent; an empty object makes no signal, and an object
/// under a declared name is refused as of the wrong type; an array is kept as one undeclared
/// signal (ignored by a policy that ignores undeclared ones).
#[test]
fn null_empty_objects_and_arrays_flatten_as_documented() {
    let temp = authzen_deployment();
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    type Edit = fn(&mut Value);
    // (case, the edit of a viewer's read, status, code or the decision)
    let cases: [(&str, Edit, u16, &str); 10] = [
        ("as sent", |_| {}, 200, "true"),
        (
            "a declared property null",
            |r| r["subject"]["properties"]["role"] = json!(null),
            400,
            "policy.signal_type",
        ),
        (
            "properties null",
            |r| r["subject"]["properties"] = json!(null),
            400,
            "policy.signal_missing",
        ),
        (
            "a declared property an empty object",
            |r| r["subject"]["properties"]["role"] = json!({}),
            400,
            "policy.signal_type",
        ),
        (
            "a declared property an object",
            |r| r["subject"]["properties"]["role"] = json!({"value": "viewer"}),
            400,
            "policy.signal_type",
        ),
        (
            "an undeclared empty object",
            |r| r["subject"]["properties"]["extra"] = json!({}),
            200,
            "true",
        ),
        ("context null", |r| r["context"] = json!(null), 200, "true"),
        ("context empty", |r| r["context"] = json!({}), 200, "true"),
        (
            "an undeclared array",
            |r| r["subject"]["properties"]["groups"] = json!(["a", "b"]),
            200,
            "true",
        ),
        (
            "an undeclared nested object",
            |r| r["context"]["address"] = json!({"country": "DE"}),
            200,
            "true",
        ),
    ];
    for (case, edit, status, expected) in cases {
        let mut body = request("viewer", "read");
        edit(&mut body);
        let reply = served.post("/access/v1/evaluation", token, &body.to_string());
        assert_eq!(reply.status, status, "{case}: {}", reply.text);
        let got = if status == 200 {
            reply.json()["decision"].to_string()
        } else {
            reply.code()
        };
        assert_eq!(got, expected, "{case}: {}", reply.text);
    }
    // An evaluation's `subject: null` is absent: it takes the top-level default.
    let mut boxcar = request("viewer", "read");
    boxcar["evaluations"] = json!([{"subject": null}]);
    let reply = served.post("/access/v1/evaluations", token, &boxcar.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json()["evaluations"][0]["decision"],
        true,
        "{}",
        reply.text
    );
}

/// A rule that gives no reason leaves `reason` out of the answer's context (AuthZEN omits null
/// members), on a single evaluation and in a boxcar.
#[test]
fn a_decision_without_a_reason_leaves_reason_out() {
    let unexplained = POLICY.replace(r#", "reason": "anyone may read""#, "");
    assert_ne!(
        unexplained, POLICY,
        "the example policy's read rule gives a reason"
    );
    let temp = authzen_deployment_with(&[("documents-access", &unexplained)], DOCUMENTS_MAPPING);
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.as_deref();
    let single = served.post(
        "/access/v1/evaluation",
        token,
        &request("viewer", "read").to_string(),
    );
    assert_eq!(single.status, 200, "{}", single.text);
    let boxcar = json!({"evaluations": [request("viewer", "read"), request("viewer", "edit")]});
    let boxcar = served.post("/access/v1/evaluations", token, &boxcar.to_string());
    assert_eq!(boxcar.status, 200, "{}", boxcar.text);
    let boxcar = boxcar.json();
    for (context, reason) in [
        (&single.json()["context"], None),
        (&boxcar["evaluations"][0]["context"], None),
        (&boxcar["evaluations"][1]["context"], Some("not allowed")),
    ] {
        assert!(context["rule_id"].is_string(), "{context}");
        let object = context.as_object().unwrap();
        assert_eq!(
            object.get("reason").and_then(Value::as_str),
            reason,
            "{context}"
        );
        assert!(
            reason.is_some() || !object.contains_key("reason"),
            "{context}"
        );
    }
}
