//! The AuthZEN 1.0 certification scenarios (`authzen_certification.json`, taken from the openid/authzen conformance document) run as written there against a deployment whose policy is the scenarios' fixture, each request sent byte for byte over its own connection; and the metadata's Policy Decision Point identifier — configured (`pdp_url`), from `Host`, refused, or absent where no policy answers — and the warning for a policy that refuses undeclared signals.

use serde_json::{Value, json};

use crate::authzen_serve::{authzen_deployment_with, root};
use crate::harness::{Served, parmana, raw_exchange as exchange};

/// The fixture policy of the scenarios (their "Required Policy Behaviour", decision rules 1–8):
/// alice and bob read record-1, alice writes it, bob does not; nobody writes an archived record
/// but an admin; a soft delete is allowed, a hard one is not.
const FIXTURE_POLICY: &str = r#"{
  "schema_version": "2.0.0",
  "policy_id": "authzen-fixture",
  "policy_version": "1.0.0",
  "description": "The AuthZEN certification fixture: decision rules 1 to 8.",
  "decisions": ["allow", "deny"],
  "permit": ["allow"],
  "additional_signals": "ignore",
  "signals": {
    "subject.id": {"type": "string", "required": true},
    "action.name": {"type": "string", "required": true},
    "subject.properties.role": {"type": "string", "required": false},
    "resource.properties.status": {"type": "string", "required": false},
    "action.properties.soft": {"type": "boolean", "required": false}
  },
  "rules": [
    {"id": "admin-writes", "when": {"all": [
      {"signal": "action.name", "eq": "write"},
      {"signal": "subject.properties.role", "present": true},
      {"signal": "subject.properties.role", "eq": "admin"}
    ]}, "then": {"decision": "allow", "reason": "rule 6: an admin writes even archived records"}},
    {"id": "archived", "when": {"all": [
      {"signal": "action.name", "eq": "write"},
      {"signal": "resource.properties.status", "present": true},
      {"signal": "resource.properties.status", "eq": "archived"}
    ]}, "then": {"decision": "deny", "reason": "rule 5: an archived record is not written"}},
    {"id": "alice-writes", "when": {"all": [
      {"signal": "subject.id", "eq": "alice"},
      {"signal": "action.name", "eq": "write"}
    ]}, "then": {"decision": "allow", "reason": "rule 2"}},
    {"id": "reads", "when": {"all": [
      {"signal": "action.name", "eq": "read"},
      {"signal": "subject.id", "in": ["alice", "bob"]}
    ]}, "then": {"decision": "allow", "reason": "rules 1 and 3"}},
    {"id": "soft-delete", "when": {"all": [
      {"signal": "action.name", "eq": "delete"},
      {"signal": "action.properties.soft", "present": true},
      {"signal": "action.properties.soft", "eq": true}
    ]}, "then": {"decision": "allow", "reason": "rule 7"}}
  ],
  "default": {"decision": "deny", "reason": "rules 4 and 8"}
}"#;

/// The fixture answers `record`, and is the default.
const MAPPING: &str = "\n[server.authzen]\ndefault_policy = \"authzen-fixture@1.0.0\"\n\
     [[server.authzen.policies]]\npolicy = \"authzen-fixture@1.0.0\"\n\
     resource_types = [\"record\"]\n";

/// `mapping` (a `[server.authzen]` table) with `pdp_url = "url"` in it.
fn with_pdp_url(mapping: &str, url: &str) -> String {
    mapping.replacen(
        "[server.authzen]\n",
        &format!("[server.authzen]\npdp_url = \"{url}\"\n"),
        1,
    )
}

/// Whether `answer` is one decision as the scenarios expect it: a boolean `decision` equal to
/// `expected` (any, when null), a `context` only as an object, no `evaluations`.
fn check_decision(scenario: &str, answer: &Value, expected: &Value) {
    assert!(answer["decision"].is_boolean(), "{scenario}: {answer}");
    if !expected.is_null() {
        assert_eq!(answer["decision"], *expected, "{scenario}: {answer}");
    }
    assert!(
        answer.get("context").is_none_or(Value::is_object),
        "{scenario}: {answer}"
    );
}

/// Runs one case of `authzen_certification.json`.
fn check(served: &Served, token: &str, case: &Value) {
    let scenario = case["scenario"].as_str().unwrap();
    let route = case["route"].as_str().unwrap();
    let authorization = format!("Bearer {token}");
    let mut headers = vec![
        ("Host", "pdp.test"),
        ("Authorization", authorization.as_str()),
    ];
    match case.get("content_type") {
        None => headers.push(("Content-Type", "application/json")),
        Some(Value::Null) => {}
        Some(other) => headers.push(("Content-Type", other.as_str().unwrap())),
    }
    let request_id = match case.get("request_id") {
        Some(Value::Null) => None,
        _ => Some(scenario),
    };
    if let Some(id) = request_id {
        headers.push(("X-Request-ID", id));
    }
    let body = match case.get("raw_body") {
        Some(raw) => raw.as_str().unwrap().to_owned(),
        None => case["body"].to_string(),
    };
    let reply = exchange(served, "POST", route, &headers, body.as_bytes());
    assert_eq!(
        reply.status,
        case["status"].as_u64().unwrap() as u16,
        "{scenario} {}: {}",
        case["title"],
        reply.text
    );
    // c-2-5-1 / c-2-5-2: the identifier given comes back; none given, the answer is still one.
    assert_eq!(reply.header("x-request-id"), request_id, "{scenario}");
    // c-2-6: the same request again, the same answer — a refusal too.
    let again = exchange(served, "POST", route, &headers, body.as_bytes());
    assert_eq!(
        (again.status, &again.text),
        (reply.status, &reply.text),
        "{scenario}"
    );
    if reply.status != 200 {
        // A refusal carries this server's stable code.
        if let Some(code) = case.get("code") {
            assert_eq!(
                reply.code(),
                code.as_str().unwrap(),
                "{scenario}: {}",
                reply.text
            );
        }
        return;
    }
    let answer = reply.json();
    if let Some(expected) = case.get("decision") {
        check_decision(scenario, &answer, expected);
        assert!(answer.get("evaluations").is_none(), "{scenario}: {answer}");
    }
    if let Some(expected) = case.get("decisions") {
        let expected = expected.as_array().unwrap();
        // c-3-2-1 to c-3-2-7: as many as asked, in order, each a decision, none at the top.
        let got = answer["evaluations"].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{scenario}: {answer}");
        for (got, expected) in got.iter().zip(expected) {
            check_decision(scenario, got, expected);
        }
        assert!(answer.get("decision").is_none(), "{scenario}: {answer}");
    }
}

#[test]
fn the_certification_scenarios_pass_as_written() {
    let temp = authzen_deployment_with(&[("authzen-fixture", FIXTURE_POLICY)], MAPPING);
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let token = served.token.clone().unwrap();
    let scenarios: Value =
        serde_json::from_str(include_str!("authzen_certification.json")).unwrap();
    let cases = scenarios["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "{}", cases.len());
    for case in cases {
        check(&served, &token, case);
    }
    // c-3-4-1: the evaluation missing its resource says why in its context.
    let missing = cases
        .iter()
        .find(|case| case["scenario"] == "c-3-4-1")
        .unwrap();
    let answer = served
        .post(
            "/access/v1/evaluations",
            Some(&token),
            &missing["body"].to_string(),
        )
        .json();
    assert_eq!(
        answer["evaluations"][1]["context"]["error"],
        json!({"status": 400, "code": "server.invalid_request",
               "message": "evaluation 1: `resource` is missing and has no top-level default"})
    );
    // Without `evaluations`, the one request lacking a member says so of the request, not of an
    // "evaluation 0" it never sent.
    let single = json!({"action": {"name": "read"}, "resource": {"type": "record", "id": "r-1"}});
    let reply = served.post("/access/v1/evaluations", Some(&token), &single.to_string());
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json()["error"]["message"],
        "request body: `subject` is missing",
        "{}",
        reply.text
    );
    // c-3-2-6: an evaluation's own context replaces the default whole (it is not merged).
    let overridden = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"},
        "context": {"time": "2025-06-27T18:03-07:00", "x": {"y": 1}},
        "evaluations": [{"context": {"x.y": 2}}, {}]
    });
    // Merged, `context.x.y` would be reached twice (refused); replaced, each is decided.
    let answer = served
        .post(
            "/access/v1/evaluations",
            Some(&token),
            &overridden.to_string(),
        )
        .json();
    assert_eq!(answer["evaluations"][0]["decision"], true, "{answer}");
    assert_eq!(answer["evaluations"][1]["decision"], true, "{answer}");
    // A reason is given; were a rule to give none, the member would be left out (not null).
    assert_eq!(
        answer["evaluations"][0]["context"]["reason"],
        "rules 1 and 3"
    );
}

#[test]
fn the_metadata_names_the_configured_identifier_or_the_requested_host() {
    // The identifier exactly as configured (AuthZEN §9.2.3: a client discards metadata whose
    // identifier is not the one it was given), a trailing `/` included; served where §9.2 puts
    // it for an identifier with a path (the well-known name between the host and the path), and
    // at the bare well-known name.
    // (pdp_url, the paths after the well-known name that answer, one that does not): a client
    // building the URL as RFC 8414 §3.1 does leaves a trailing `/` out.
    // The root identifier written with its `/` is discovered at the bare name and, inserted
    // literally, at the name and a `/`; written without it, at the bare name only.
    for (url, paths, not_this) in [
        (
            "https://pdp.example.com/authz/",
            &["/authz/", "/authz"][..],
            "/authz//",
        ),
        ("https://pdp.example.com/authz", &["/authz"][..], "/authz/"),
        ("https://pdp.example.com/", &["/"][..], "//"),
        ("https://pdp.example.com", &[][..], "/"),
    ] {
        let configured = with_pdp_url(MAPPING, url);
        let temp = authzen_deployment_with(&[("authzen-fixture", FIXTURE_POLICY)], &configured);
        let served = Served::start(&root(&temp), &["--dev-token"]);
        let endpoints = format!("{}/access/v1", url.trim_end_matches('/'));
        let expected = json!({
            "policy_decision_point": url,
            "access_evaluation_endpoint": format!("{endpoints}/evaluation"),
            "access_evaluations_endpoint": format!("{endpoints}/evaluations")
        });
        let answering = std::iter::once(String::new()).chain(paths.iter().map(|p| (*p).to_owned()));
        for path in answering {
            let at = format!("/.well-known/authzen-configuration{path}");
            let metadata = served.get(&at, None);
            assert_eq!(metadata.status, 200, "{url} at {at}: {}", metadata.text);
            assert_eq!(metadata.json(), expected, "{url} at {at}");
            assert_eq!(metadata.header("cache-control"), Some("max-age=300"));
        }
        // Another path after the well-known name names another Policy Decision Point.
        for other in [
            "/.well-known/authzen-configuration/tenant1".to_owned(),
            format!("/.well-known/authzen-configuration{not_this}"),
        ] {
            let absent = served.get(&other, None);
            assert_eq!(
                (absent.status, absent.code().as_str()),
                (404, "server.not_found"),
                "{url} at {other}: {}",
                absent.text
            );
        }
        drop(served);
    }

    // Without it: the scheme served and the request's Host, when that is a host.
    let fixture = authzen_deployment_with(&[("authzen-fixture", FIXTURE_POLICY)], MAPPING);
    let served = Served::start(&root(&fixture), &["--dev-token"]);
    let path = "/.well-known/authzen-configuration";
    let named = exchange(&served, "GET", path, &[("Host", "pdp.internal:8443")], b"");
    assert_eq!(named.status, 200, "{}", named.text);
    assert_eq!(
        named.json()["policy_decision_point"],
        "http://pdp.internal:8443"
    );
    // The scheme's default port is left out of the identifier: it is the URL without it.
    let default_port = exchange(&served, "GET", path, &[("Host", "pdp.internal:80")], b"");
    assert_eq!(
        default_port.json()["policy_decision_point"],
        "http://pdp.internal"
    );
    // Without a configured identifier there is no path: nothing below the well-known name.
    let below = served.get(&format!("{path}/authz"), None);
    assert_eq!(below.status, 404, "{}", below.text);
    for host in [
        Some("pdp.internal/evil"),
        Some("pdp.internal?x=1"),
        Some("user@pdp.internal"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        let refused = exchange(&served, "GET", path, &headers, b"");
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (400, "server.invalid_request"),
            "{host:?}: {}",
            refused.text
        );
    }
    drop(served);

    // Where no policy answers AuthZEN requests, there is no Policy Decision Point to describe.
    let bare = authzen_deployment_with(&[], "");
    let served = Served::start(&root(&bare), &["--dev-token"]);
    let absent = served.get(path, None);
    assert_eq!(
        (absent.status, absent.code().as_str()),
        (404, "server.not_found"),
        "{}",
        absent.text
    );

    // A configured identifier that is not an https URL without query or fragment is refused
    // at start.
    let config = root(&fixture).join("parmana.toml");
    let base = std::fs::read_to_string(&config)
        .unwrap()
        .replace(MAPPING, "");
    for (url, says) in [
        ("http://pdp.example.com", "https URL"),
        ("https://pdp.example.com/?tenant=a", "no query or fragment"),
        ("https://pdp.example.com/#top", "no query or fragment"),
        ("pdp.example.com", "https URL"),
        ("https://user@pdp.example.com", "needs a host"),
    ] {
        std::fs::write(&config, format!("{base}{}", with_pdp_url(MAPPING, url))).unwrap();
        let (code, _, stderr) = parmana(
            &root(&fixture),
            &["serve", "--listen", "127.0.0.1:0", "--dev-token"],
        );
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains("server.authzen_config"), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
    }
}

#[test]
fn a_policy_that_refuses_undeclared_signals_is_named_at_start() {
    let strict = FIXTURE_POLICY
        .replace("authzen-fixture", "strict-fixture")
        .replace(
            r#""additional_signals": "ignore""#,
            r#""additional_signals": "reject""#,
        );
    let temp = authzen_deployment_with(
        &[("strict-fixture", &strict)],
        &MAPPING.replace("authzen-fixture", "strict-fixture"),
    );
    let served = Served::start(&root(&temp), &["--dev-token"]);
    let stderr = served.stderr();
    assert!(
        stderr.contains("an AuthZEN policy refuses undeclared signals")
            && stderr.contains("strict-fixture@1.0.0"),
        "{stderr}"
    );
    // As warned: the scenario with more properties than the policy declares is refused.
    let extra = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales"}},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"}
    });
    let refused = served.post(
        "/access/v1/evaluation",
        served.token.as_deref(),
        &extra.to_string(),
    );
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "policy.signal_undeclared"),
        "{}",
        refused.text
    );
}
