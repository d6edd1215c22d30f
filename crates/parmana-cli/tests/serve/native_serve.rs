//! The native API: every route, every error status, the scopes of each token, the body limit and load shedding — a table of requests against one server — and evaluations that leave the store untouched.

use std::io::Write;
use std::net::TcpStream;

use parmana_runtime::replay::ReplayStore as _;

use crate::harness::{README_SIGNALS, Served, deployment, execution_body, tokens_file};

/// (method, path, token, body, expected status, expected error code or "")
type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, &'a str);

fn check(served: &Served, cases: &[Case<'_>]) {
    for (method, path, token, body, status, code) in cases {
        let reply = served.request(method, path, *token, body);
        assert_eq!(
            reply.status, *status,
            "{method} {path} {body}: {}",
            reply.text
        );
        if !code.is_empty() {
            assert_eq!(reply.code(), *code, "{method} {path} {body}");
        }
    }
}

#[test]
fn every_route_answers_with_the_documented_status_and_scope() {
    let env = deployment("memory", "");
    let tokens = tokens_file(
        env.root(),
        &[
            ("all", &["execute", "evaluate", "read", "verify", "admin"]),
            ("reader", &["read"]),
            ("evaluator", &["evaluate"]),
        ],
    );
    let served = Served::start(env.root(), &["--tokens", tokens.to_str().unwrap()]);
    let all = Some("all");
    let executed = served.post("/v1/executions", all, &execution_body("claim-1"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let body = executed.json();
    assert_eq!(body["decision"], "escalate");
    assert_eq!(body["rule_id"], "default");
    assert_eq!(executed.header("location"), Some("/v1/executions/claim-1"));
    // The read-back is the attestation byte for byte.
    let stored = served.get("/v1/executions/claim-1", Some("reader"));
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json(), body["attestation"]);
    // The answer embeds the envelope's canonical bytes as they are stored.
    assert!(
        executed
            .text
            .starts_with(&format!(r#"{{"attestation":{},"#, stored.text)),
        "{}",
        executed.text
    );
    // A replay is 409 and names the stored attestation.
    let replay = served.post("/v1/executions", all, &execution_body("claim-1"));
    assert_eq!(
        (replay.status, replay.code().as_str()),
        (409, "runtime.replay_detected")
    );
    assert_eq!(replay.header("location"), Some("/v1/executions/claim-1"));
    // An id with reserved characters is percent-encoded in Location and read back.
    let odd = served.post("/v1/executions", all, &execution_body("a/b?c"));
    assert_eq!(odd.header("location"), Some("/v1/executions/a%2Fb%3Fc"));
    assert_eq!(served.get("/v1/executions/a%2Fb%3Fc", all).status, 200);
    // `.` and `..` are refused: every client resolves them out of `Location` before asking.
    for dots in [".", ".."] {
        let refused = served.post("/v1/executions", all, &execution_body(dots));
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (400, "runtime.invalid_execution_id"),
            "{dots}"
        );
    }
    // Verify the attestation, with the signals and the bundle.
    let verify = format!(
        r#"{{"attestation":{},"signals":{README_SIGNALS},"check_bundle":true}}"#,
        body["attestation"]
    );
    let report = served.post("/v1/verify", all, &verify);
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.json()["valid"], true, "{}", report.text);
    let tampered = verify.replace(r#""claim_amount":1200"#, r#""claim_amount":1201"#);
    assert_eq!(
        served.post("/v1/verify", all, &tampered).json()["valid"],
        false
    );

    let evaluation = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    let explained = served.post(
        "/v1/evaluations?explain=true",
        Some("evaluator"),
        &evaluation,
    );
    assert_eq!(explained.json()["decision"], "escalate");
    assert!(explained.json()["trace"]["rules"].is_array());
    let batch = format!(
        r#"{{"policy":"claims-approval@1.0.0","batch":[{README_SIGNALS},{{"claim_amount":5}}]}}"#
    );
    let results = served
        .post("/v1/evaluations", Some("evaluator"), &batch)
        .json();
    assert_eq!(results["results"][0]["decision"], "escalate");
    assert_eq!(
        results["results"][1]["error"]["code"],
        "policy.signal_missing"
    );
    // A batch carries at most 1,000 signal sets: one more is refused before any is decided.
    let sized = |count: usize| {
        let sets = vec![README_SIGNALS; count].join(",");
        format!(r#"{{"policy":"claims-approval@1.0.0","batch":[{sets}]}}"#)
    };
    let full = served.post("/v1/evaluations", Some("evaluator"), &sized(1_000));
    assert_eq!(full.json()["results"].as_array().unwrap().len(), 1_000);
    let over = served.post("/v1/evaluations", Some("evaluator"), &sized(1_001));
    assert_eq!(
        (over.status, over.code().as_str()),
        (413, "server.batch_too_large"),
        "{}",
        over.text
    );
    // Counted while the body is split, before any entry is copied: a body under the limit
    // holding 500,000 entries is refused as one holding 1,001. An empty batch decides nothing:
    // 400, never a 200 without a decision.
    let zeros = format!(
        r#"{{"policy":"claims-approval@1.0.0","batch":[{}0]}}"#,
        "0,".repeat(500_000)
    );
    for (body, status, code) in [
        (zeros.as_str(), 413, "server.batch_too_large"),
        (
            r#"{"policy":"claims-approval@1.0.0","batch":[]}"#,
            400,
            "server.invalid_request",
        ),
    ] {
        let reply = served.post("/v1/evaluations", Some("evaluator"), body);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{}",
            reply.text
        );
    }

    let metric = |series: &str| crate::harness::metric_with(&served, Some("reader"), series);
    assert_eq!(
        (
            metric(r#"parmana_executions_total{decision="escalate"}"#),
            metric(r#"parmana_execution_errors_total{code="runtime.replay_detected"}"#)
        ),
        (2, 1)
    );
    // The whole ledger read before ready is timed once, as `load` (not as a sequencer run).
    assert_eq!(
        metric(r#"parmana_runtime_call_duration_seconds_count{operation="load"}"#),
        1
    );
    let metrics = served.get("/metrics", Some("reader"));
    assert!(
        metrics
            .text
            .contains("parmana_http_request_duration_seconds_bucket")
    );
    // The status says what is in force: the documents' digests (of their `signed` members'
    // canonical bytes, as attestations record them), the released policies, the store,
    // readiness, the runtime's version.
    let status = served.get("/v1/status", Some("reader")).json();
    for (member, file) in [
        ("trust_root", "trust/trust-root.json"),
        ("release_manifest", "release-manifest.json"),
    ] {
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.root().join(file)).unwrap()).unwrap();
        let signed = parmana_runtime::canon::canonicalize_value(&document["signed"]).unwrap();
        let digest = parmana_runtime::canon::Digest::of(&signed).to_string();
        assert_eq!(status[member]["digest"], digest, "{member}: {status}");
    }
    assert_eq!(status["store"], "memory", "{status}");
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(
        status["runtime_version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    assert!(
        status["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "claims-approval@1.0.0"),
        "{status}"
    );
    // Every family the harness knows is one the server writes (reloads: in the reload test).
    let families: Vec<&str> = crate::harness::METRIC_FAMILIES
        .into_iter()
        .filter(|family| *family != "parmana_reloads")
        .collect();
    crate::harness::assert_families_declared(&served, Some("reader"), &families);

    let cases: &[Case<'_>] = &[
        ("GET", "/healthz", None, "", 200, ""),
        ("GET", "/readyz", None, "", 200, ""),
        ("GET", "/openapi.json", None, "", 200, ""),
        // No policy answers AuthZEN requests in this deployment: no metadata.
        (
            "GET",
            "/.well-known/authzen-configuration",
            None,
            "",
            404,
            "server.not_found",
        ),
        ("GET", "/v1/status", Some("reader"), "", 200, ""),
        ("GET", "/v1/status", None, "", 401, "server.unauthorized"),
        (
            "GET",
            "/v1/status",
            Some("wrong"),
            "",
            401,
            "server.unauthorized",
        ),
        (
            "GET",
            "/v1/status",
            Some("evaluator"),
            "",
            403,
            "server.forbidden",
        ),
        (
            "GET",
            "/metrics",
            Some("evaluator"),
            "",
            403,
            "server.forbidden",
        ),
        (
            "POST",
            "/v1/executions",
            Some("reader"),
            "{}",
            403,
            "server.forbidden",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            "{",
            400,
            "canon.unexpected_end",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"x@1.0.0","policy":"y"}"#,
            400,
            "canon.duplicate_key",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"claims-approval@1.0.0"}"#,
            400,
            "server.invalid_request",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"../x","signals":{}}"#,
            400,
            "runtime.invalid_policy_reference",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"nope@1.0.0","signals":{}}"#,
            422,
            "runtime.policy_not_found",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"claims-approval@1.0.0","signals":{"claim_amount":1}}"#,
            422,
            "policy.signal_missing",
        ),
        (
            "POST",
            "/v1/executions",
            all,
            r#"{"policy":"claims-approval@1.0.0","signals":{},"execution_id":"has space"}"#,
            400,
            "runtime.invalid_execution_id",
        ),
        (
            "GET",
            "/v1/executions/never-used",
            all,
            "",
            404,
            "server.execution_unknown",
        ),
        (
            "GET",
            "/v1/executions/claim-1",
            Some("evaluator"),
            "",
            403,
            "server.forbidden",
        ),
        (
            "POST",
            "/v1/evaluations",
            Some("reader"),
            "{}",
            403,
            "server.forbidden",
        ),
        (
            "POST",
            "/v1/evaluations",
            all,
            r#"{"policy":"claims-approval@1.0.0"}"#,
            400,
            "server.invalid_request",
        ),
        // Both: malformed, and told so before anything is evaluated or budgeted (an unknown
        // policy too, with an explanation asked).
        (
            "POST",
            "/v1/evaluations?explain=true",
            all,
            r#"{"policy":"nope@1.0.0","signals":{},"batch":[{}]}"#,
            400,
            "server.invalid_request",
        ),
        (
            "POST",
            "/v1/evaluations",
            all,
            r#"{"policy":"claims-approval@1.0.0","signals":{},"batch":[{}]}"#,
            400,
            "server.invalid_request",
        ),
        (
            "POST",
            "/v1/evaluations?explain=maybe",
            all,
            r#"{"policy":"claims-approval@1.0.0","signals":{}}"#,
            400,
            "server.invalid_request",
        ),
        (
            "POST",
            "/v1/evaluations",
            all,
            r#"{"policy":"nope@1.0.0","batch":[{}]}"#,
            422,
            "runtime.policy_not_found",
        ),
        (
            "POST",
            "/v1/verify",
            Some("reader"),
            "{}",
            403,
            "server.forbidden",
        ),
        (
            "POST",
            "/v1/verify",
            all,
            r#"{"signals":{}}"#,
            400,
            "server.invalid_request",
        ),
        (
            "POST",
            "/v1/admin/reload",
            Some("reader"),
            "",
            403,
            "server.forbidden",
        ),
        ("POST", "/v1/admin/reload", all, "", 200, ""),
        ("GET", "/no/such/route", None, "", 404, "server.not_found"),
        (
            "DELETE",
            "/no/such/route",
            None,
            "",
            404,
            "server.not_found",
        ),
        // A percent-encoded id that is not UTF-8: the error body, not axum's plain text.
        (
            "GET",
            "/v1/executions/%FF",
            all,
            "",
            400,
            "server.invalid_request",
        ),
        (
            "GET",
            "/v1/executions/%C3%28/proof",
            all,
            "",
            400,
            "server.invalid_request",
        ),
        (
            "GET",
            "/v1/executions/%FF",
            None,
            "",
            401,
            "server.unauthorized",
        ),
    ];
    check(&served, cases);
}

#[test]
fn bodies_over_the_limit_are_413_and_a_full_server_sheds_with_503() {
    let env = deployment("memory", "");
    let served = Served::start(
        env.root(),
        &[
            "--dev-token",
            "--max-body-bytes",
            "512",
            "--max-concurrency",
            "1",
        ],
    );
    let token = served.token.clone();
    let padding = "x".repeat(600);
    let big = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{{"pad":"{padding}"}}}}"#);
    // `/v1/verify` takes three times the limit and 64 KiB more (an attestation with its
    // signals embedded is larger than the request that made it).
    let past_verify = format!(r#"{{"attestation":"{}"}}"#, "x".repeat(3 * 512 + 64 * 1024));
    // Every route that reads a body (AuthZEN's have their own test).
    for (route, body) in [
        ("/v1/evaluations", &big),
        ("/v1/executions", &big),
        ("/v1/verify", &past_verify),
    ] {
        let refused = served.post(route, token.as_deref(), body);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (413, "server.body_too_large"),
            "{route}: {}",
            refused.text
        );
        // The body was left unread: the server ends the connection and says so.
        assert_eq!(refused.header("connection"), Some("close"), "{route}");
    }
    // A body declared larger than the limit is refused at once, before any of it is read (a
    // client waiting to send it gets its answer first).
    {
        use std::io::Read as _;
        let address = served.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let token = token.as_deref().unwrap();
        stream
            .write_all(
                format!(
                    "POST /v1/evaluations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                     Content-Length: 100000000\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let reply = crate::harness::reply_of_raw(&answer);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (413, "server.body_too_large"),
            "{}",
            reply.text
        );
    }
    // Without a token the body is not even read: 401, never 413, whatever its size.
    for route in [
        "/v1/executions",
        "/v1/evaluations",
        "/v1/verify",
        "/access/v1/evaluation",
        "/access/v1/evaluations",
    ] {
        let refused = served.post(route, None, &big);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (401, "server.unauthorized"),
            "{route}: {}",
            refused.text
        );
        assert_eq!(refused.header("connection"), Some("close"), "{route}");
    }
    // Any answer to a request whose body no handler read ends the connection too, whatever its
    // status: a query refused first, a path no route serves, a method a route does not take,
    // AuthZEN's Content-Type refused first. An answer after the body was read keeps it open.
    let evaluation = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    for (method, path, status, close) in [
        ("POST", "/v1/evaluations?explain=maybe", 400, true),
        ("POST", "/v1/nowhere", 404, true),
        ("POST", "/v1/status", 405, true),
        ("POST", "/v1/evaluations", 200, false),
    ] {
        let reply = served.request(method, path, token.as_deref(), &evaluation);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        assert_eq!(
            reply.header("connection") == Some("close"),
            close,
            "{method} {path}: {:?}",
            reply.headers
        );
    }
    let authzen = crate::harness::raw_keep_alive(
        &served,
        "POST /access/v1/evaluation",
        &[
            (
                "Authorization",
                &format!("Bearer {}", token.as_deref().unwrap()),
            ),
            ("Content-Type", "text/plain"),
        ],
        b"{}",
    );
    assert_eq!(authzen.status, 400, "{}", authzen.text);
    assert_eq!(authzen.header("connection"), Some("close"));
    // Nor does it wait for one: a request announcing 100,000 bytes and sending ten, without a
    // token, is answered 401 at once (a server reading the body first would wait for the rest
    // until its 10 s request timeout).
    let address = served.base.trim_start_matches("http://").to_owned();
    for route in ["/v1/executions", "/access/v1/evaluations"] {
        let mut partial = TcpStream::connect(&address).unwrap();
        partial
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        write!(
            partial,
            "POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{\"policy\":"
        )
        .unwrap();
        partial.flush().unwrap();
        let mut received = Vec::new();
        let _ = std::io::Read::read_to_end(&mut partial, &mut received);
        let answer = String::from_utf8_lossy(&received).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 401"), "{route}: {answer}");
        assert!(answer.contains("connection: close"), "{route}: {answer}");
        // The whole answer, as /openapi.json says.
        let reply = crate::harness::reply_of_raw(&received);
        crate::harness::check_against_openapi(&served.base, "POST", route, &reply);
    }
    // Hold the only slot with a request whose body never finishes arriving, then ask again.
    // Bounded: at most 20 rounds of 5 requests.
    let address = served.base.trim_start_matches("http://").to_owned();
    let evaluation = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    let mut shed = None;
    'rounds: for _ in 0..20 {
        let mut slow = TcpStream::connect(&address).unwrap();
        write!(
            slow,
            "POST /v1/evaluations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            token.as_deref().unwrap()
        )
        .unwrap();
        slow.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        for _ in 0..5 {
            let reply = served.post("/v1/evaluations", token.as_deref(), &evaluation);
            if reply.status == 503 {
                shed = Some(reply);
                break 'rounds;
            }
        }
    }
    let shed = shed.unwrap_or_else(|| {
        panic!(
            "a request beyond the concurrency limit was not shed: {}",
            served.stderr()
        )
    });
    assert_eq!(shed.code(), "server.overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(shed.header("connection"), Some("close"));
    // Probes are never shed.
    assert_eq!(served.get("/readyz", None).status, 200);
    let shed_count =
        crate::harness::metric_with(&served, token.as_deref(), "parmana_requests_shed_total");
    assert!(shed_count >= 1, "{shed_count} shed");
}

#[test]
fn the_server_refuses_to_start_without_tokens_or_off_loopback_without_auth() {
    let env = deployment("memory", "");
    // Each refusal comes before the store is opened: a SQLite store it names is not created.
    let store = env.root().join("fresh/replay.sqlite3");
    let store_flag = format!("sqlite:{}", store.display());
    for (args, code) in [
        (vec!["--listen", "127.0.0.1:0"], "server.no_tokens"),
        (
            vec!["--listen", "0.0.0.0:0", "--insecure-no-auth"],
            "server.not_loopback",
        ),
        (
            vec!["--listen", "0.0.0.0:0", "--dev-token"],
            "server.not_loopback",
        ),
        (
            vec![
                "--dev-token",
                "--tls-cert",
                "missing-cert.pem",
                "--tls-key",
                "missing-key.pem",
            ],
            "server.tls_invalid",
        ),
    ] {
        let mut full = vec!["--format", "json", "serve", "--store", &store_flag];
        full.extend(args.iter().copied());
        let (exit, _, stderr) = crate::harness::parmana(env.root(), &full);
        assert_eq!(exit, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(code), "{args:?}: {stderr}");
        assert!(
            !store.parent().unwrap().exists(),
            "{args:?} created the store before refusing to start"
        );
    }
    // An expiry warning window that is not a number, too.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_parmana"))
        .args(["serve", "--dev-token", "--store", &store_flag])
        .env("PARMANA_EXPIRY_WARNING_DAYS", "soon")
        .current_dir(env.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cli.invalid_config"), "{stderr}");
    assert!(
        !store.parent().unwrap().exists(),
        "an unusable expiry window created the store before refusing to start"
    );
    // A key without the attestation role, too.
    let (exit, _, stderr) = crate::harness::parmana(
        env.root(),
        &[
            "serve",
            "--dev-token",
            "--store",
            &store_flag,
            "--key",
            "trust/keys/release.pem",
        ],
    );
    assert_ne!(exit, 0, "{stderr}");
    assert!(stderr.contains("runtime.signer_lacks_role"), "{stderr}");
    assert!(
        !store.parent().unwrap().exists(),
        "a key without the attestation role created the store before refusing to start"
    );
    // A released bundle that does not verify (its policy edited after signing), as a reload
    // would refuse it: the start is refused, before the store is made, not its first request.
    let tampered = deployment("sqlite:fresh/replay.sqlite3", "");
    let policy = tampered
        .root()
        .join("policies/claims-approval/1.0.0/policy.json");
    let mut text = std::fs::read(&policy).unwrap();
    text.push(b' ');
    std::fs::write(&policy, text).unwrap();
    let (exit, _, stderr) = crate::harness::parmana(
        tampered.root(),
        &["serve", "--dev-token", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(exit, 4, "{stderr}");
    assert!(
        stderr.starts_with("error[trust.digest_mismatch]") && stderr.contains("policy.json"),
        "{stderr}"
    );
    assert!(
        !tampered.root().join("fresh").exists(),
        "a released bundle that does not verify created the store before refusing to start"
    );
    // Tokens a deployment configures are never dropped silently by a trial flag.
    let configured = deployment("memory", "[server]\ntokens = \"tokens.toml\"\n");
    for flag in ["--insecure-no-auth", "--dev-token"] {
        let (exit, _, stderr) = crate::harness::parmana(
            configured.root(),
            &["--format", "json", "serve", "--listen", "127.0.0.1:0", flag],
        );
        assert_eq!(exit, 2, "{flag}: {stderr}");
        assert!(
            stderr.contains("cli.usage") && stderr.contains("tokens.toml"),
            "{flag}: {stderr}"
        );
    }
    // On loopback, --insecure-no-auth serves every route without a token.
    let open = Served::start(env.root(), &["--insecure-no-auth"]);
    assert_eq!(open.get("/v1/status", None).status, 200);
}

/// Without authentication, what a browser sends for a web page on another site — a cross-site
/// request (`Origin`, `Sec-Fetch-Site`) or one to a name rebound to 127.0.0.1 (`Host`) — is
/// refused before anything is read or consumed; a client that is not a browser, and a page of
/// a loopback origin, are served.
#[test]
fn without_authentication_browser_requests_from_other_sites_are_refused() {
    let env = deployment("memory", "");
    let open = Served::start(env.root(), &["--insecure-no-auth"]);
    let authority = open.base.trim_start_matches("http://").to_owned();
    let port = authority.rsplit_once(':').unwrap().1.to_owned();
    let send = |head: &str, body: &str| -> (u16, String) {
        let mut stream = TcpStream::connect(&authority).unwrap();
        write!(
            stream,
            "{head}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        let status = answer.get(9..12).unwrap_or_default().parse().unwrap_or(0);
        (status, answer)
    };
    let execute = |extra: &str| {
        send(
            &format!("POST /v1/executions HTTP/1.1\r\n{extra}"),
            &execution_body("csrf-1"),
        )
    };
    for extra in [
        format!("Host: {authority}\r\nOrigin: https://attacker.example"),
        format!("Host: {authority}\r\nOrigin: null"),
        format!("Host: {authority}\r\nSec-Fetch-Site: cross-site"),
        "Host: attacker.example".to_owned(),
        format!("Host: rebound.attacker.example:{port}"),
    ] {
        let (status, answer) = execute(&extra);
        assert_eq!(status, 403, "{extra}: {answer}");
        assert!(
            answer.contains(r#""code":"server.untrusted_origin""#),
            "{answer}"
        );
    }
    // Nothing was consumed: the id is free.
    assert_eq!(open.get("/v1/executions/csrf-1", None).status, 404);
    // Every route refuses a rebound name, those that need no token too.
    for path in ["/readyz", "/healthz", "/openapi.json"] {
        let (status, answer) = send(
            &format!("GET {path} HTTP/1.1\r\nHost: rebound.attacker.example:{port}"),
            "",
        );
        assert_eq!(status, 403, "{path}: {answer}");
    }
    // A page of a loopback origin (another local tool) is served, as is a plain client.
    let (status, answer) = execute(&format!(
        "Host: localhost:{port}\r\nOrigin: http://localhost:3000\r\nSec-Fetch-Site: same-site"
    ));
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = send(
        &format!("GET /v1/executions/csrf-1 HTTP/1.1\r\nHost: {authority}"),
        "",
    );
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_known_path_with_another_method_is_405_with_allow() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    // (method, path, the methods `Allow` names)
    let cases: &[(&str, &str, &[&str])] = &[
        ("GET", "/v1/executions", &["POST"]),
        ("PUT", "/v1/executions", &["POST"]),
        ("POST", "/healthz", &["GET", "HEAD"]),
        ("DELETE", "/v1/executions/claim-1", &["GET", "HEAD"]),
        ("POST", "/v1/executions/claim-1/proof", &["GET", "HEAD"]),
        ("GET", "/v1/verify", &["POST"]),
        ("PATCH", "/v1/evaluations", &["POST"]),
        ("GET", "/v1/admin/reload", &["POST"]),
        ("POST", "/openapi.json", &["GET", "HEAD"]),
        ("POST", "/log/tile/0/000", &["GET", "HEAD"]),
        ("GET", "/access/v1/evaluation", &["POST"]),
    ];
    for (method, path, allowed) in cases {
        // With and without a token: the method is refused before authentication.
        for token in [None, token] {
            let reply = served.request(method, path, token, "");
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (405, "server.method_not_allowed"),
                "{method} {path}: {}",
                reply.text
            );
            let mut allow: Vec<&str> = reply
                .header("allow")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .collect();
            allow.sort_unstable();
            assert_eq!(allow, *allowed, "{method} {path}");
        }
    }
}

#[test]
fn each_route_takes_exactly_its_scope() {
    // A token of only the route's scope gets past the check; a token of every other scope is
    // refused with 403. (Only a token of every scope, or of a wrong one, would let a check of
    // the wrong scope go unnoticed.)
    const SCOPES: [&str; 5] = ["execute", "evaluate", "read", "verify", "admin"];
    let env = deployment("memory", "");
    let mut tokens: Vec<(String, Vec<&str>)> = Vec::new();
    for scope in SCOPES {
        tokens.push((format!("only-{scope}"), vec![scope]));
        tokens.push((
            format!("all-but-{scope}"),
            SCOPES.into_iter().filter(|s| *s != scope).collect(),
        ));
    }
    let listed: Vec<(&str, &[&str])> = tokens
        .iter()
        .map(|(name, scopes)| (name.as_str(), scopes.as_slice()))
        .collect();
    let file = tokens_file(env.root(), &listed);
    let served = Served::start(env.root(), &["--tokens", file.to_str().unwrap()]);
    let executed = served.post(
        "/v1/executions",
        Some("only-execute"),
        &execution_body("scope-1"),
    );
    assert_eq!(executed.status, 201, "{}", executed.text);
    let attestation = executed.json()["attestation"].to_string();
    let evaluation = r#"{"policy":"claims-approval@1.0.0","signals":{}}"#.to_owned();
    let authzen = r#"{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}"#.to_owned();
    // (method, path, body, the scope it takes)
    let routes: [(&str, &str, String, &str); 9] = [
        (
            "POST",
            "/v1/executions",
            execution_body("scope-2"),
            "execute",
        ),
        ("GET", "/v1/executions/scope-1", String::new(), "read"),
        ("POST", "/v1/evaluations", evaluation, "evaluate"),
        (
            "POST",
            "/v1/verify",
            format!(r#"{{"attestation":{attestation}}}"#),
            "verify",
        ),
        ("GET", "/v1/status", String::new(), "read"),
        ("GET", "/metrics", String::new(), "read"),
        ("POST", "/v1/admin/reload", String::new(), "admin"),
        ("POST", "/access/v1/evaluation", authzen.clone(), "evaluate"),
        ("POST", "/access/v1/evaluations", authzen, "evaluate"),
    ];
    for (method, path, body, scope) in &routes {
        let allowed = served.request(method, path, Some(&format!("only-{scope}")), body);
        assert!(
            ![401, 403].contains(&allowed.status),
            "{method} {path} with only {scope}: {} {}",
            allowed.status,
            allowed.text
        );
        let refused = served.request(method, path, Some(&format!("all-but-{scope}")), body);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (403, "server.forbidden"),
            "{method} {path} without {scope}: {}",
            refused.text
        );
    }
}

/// The README's "As a service" block, run as written on a copy of the repository's deployment:
/// the command's arguments, its printed lines, and the `curl` it shows (its path, header and
/// body), answered `201` with a signed attestation. (Only the port differs: the harness listens
/// on a free one; the default the block prints is checked with `parmana config`.)
#[test]
fn the_readme_service_block_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("### As a service")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let lines: Vec<&str> = block.lines().collect();
    let command = lines
        .iter()
        .find_map(|line| line.strip_prefix("cargo run --release --locked -p parmana-cli -- "))
        .unwrap_or_else(|| panic!("no command in:\n{block}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args.first(), Some(&"serve"), "{command}");
    assert!(
        lines.contains(&"# listening on http://127.0.0.1:8080"),
        "{block}"
    );
    assert!(lines.contains(&"# token: <T>"), "{block}");
    // The curl: its URL's path, the bearer header, and the body after `-d '…'`.
    let curl = block.split("curl ").nth(1).unwrap().replace("\\\n", " ");
    assert!(curl.contains(r#"-H "Authorization: Bearer <T>""#), "{curl}");
    let path = curl
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://127.0.0.1:8080"))
        .unwrap();
    let body = curl
        .split("-d '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();

    // The repository's own deployment (its parmana.toml), copied.
    let env = parmana_testkit::FixtureEnvironment::new().unwrap();
    std::fs::copy(root.join("parmana.toml"), env.root().join("parmana.toml")).unwrap();
    let (code, config, stderr) = crate::harness::parmana(env.root(), &["config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        config
            .lines()
            .any(|line| line.starts_with("server.listen") && line.contains("127.0.0.1:8080")),
        "{config}"
    );
    let served = Served::start(env.root(), &args[1..]);
    assert!(
        served.base.starts_with("http://127.0.0.1:"),
        "{}",
        served.base
    );
    // A trial: the memory store forgets every id when the server stops, and it says so.
    assert!(
        served
            .stderr()
            .contains("the memory store keeps nothing across a restart"),
        "{}",
        served.stderr()
    );
    let token = served.token.as_deref().expect("--dev-token prints a token");
    // As curl sends it: `-d` makes it a form (`application/x-www-form-urlencoded`), and the
    // README's one header.
    let authorization = format!("Bearer {token}");
    let reply = crate::harness::raw_exchange(
        &served,
        "POST",
        path,
        &[
            ("Host", "127.0.0.1:8080"),
            ("User-Agent", "curl/8"),
            ("Accept", "*/*"),
            ("Authorization", &authorization),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let answer = reply.json();
    assert_eq!(answer["decision"], "escalate", "{answer}");
    assert!(answer["attestation"]["signatures"].is_array(), "{answer}");
}

/// A policy the release manifest does not list is the caller's input, whatever lies on disk:
/// `422 runtime.policy_not_found` in the same words for a version left in `policies/` unreleased
/// as for one that was never there (it was `500 trust.not_in_release_manifest`, which also
/// told which unreleased versions exist), on every route that names a policy.
#[test]
fn an_unreleased_policy_on_disk_is_not_found_as_an_absent_one() {
    let env = deployment("memory", "");
    parmana_testkit::copy_tree(
        &env.root().join("policies/claims-approval/1.0.0"),
        &env.root().join("policies/claims-approval/0.9.0"),
    )
    .unwrap();
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    for version in ["0.9.0", "9.9.9"] {
        let policy = format!("claims-approval@{version}");
        let one = format!(r#"{{"policy":"{policy}","signals":{README_SIGNALS}}}"#);
        for (path, body) in [
            ("/v1/evaluations", one.clone()),
            ("/v1/evaluations?explain=true", one.clone()),
            (
                "/v1/evaluations",
                format!(r#"{{"policy":"{policy}","batch":[{README_SIGNALS}]}}"#),
            ),
            (
                "/v1/executions",
                format!(
                    r#"{{"policy":"{policy}","signals":{README_SIGNALS},"execution_id":"u-{version}"}}"#
                ),
            ),
        ] {
            let reply = served.post(path, token, &body);
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (422, "runtime.policy_not_found"),
                "{path} {policy}: {}",
                reply.text
            );
            assert!(
                reply
                    .text
                    .contains("release manifest version 1 does not list it"),
                "{path} {policy}: {}",
                reply.text
            );
        }
    }
}

#[test]
fn evaluations_consume_nothing_and_sign_nothing() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let one = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    let batch = format!(
        r#"{{"policy":"claims-approval@1.0.0","batch":[{README_SIGNALS},{README_SIGNALS}]}}"#
    );
    for (path, body) in [
        ("/v1/evaluations", &one),
        ("/v1/evaluations?explain=true", &one),
        ("/v1/evaluations", &batch),
    ] {
        for _ in 0..3 {
            let reply = served.post(path, token, body);
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            assert!(
                !reply.text.contains("attestation"),
                "{path}: {}",
                reply.text
            );
        }
    }
    // The store holds nothing but what the start wrote — the marks record of the versions the
    // server took (`Runtime::accept_environment`) —: no claim, no completion, no other ledger
    // record; no execution counted.
    let store = parmana_runtime::replay::SqliteReplayStore::open(env.root().join("replay.sqlite3"))
        .unwrap();
    let summary = store.ledger_summary().unwrap();
    assert_eq!(
        (
            summary.records,
            summary.completed_executions,
            summary.unsequenced,
            summary.largest_checkpoint,
            (summary.marks.trust_root, summary.marks.release_manifest)
        ),
        (1, 0, 0, None, (2, 1)),
        "{summary:?}"
    );
    assert!(store.pending().unwrap().is_empty());
    let metrics = served.get("/metrics", token).text;
    assert!(!metrics.contains("parmana_executions_total{"), "{metrics}");
}

#[test]
fn store_operations_are_timed_by_operation() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let count = |operation: &str| {
        crate::harness::metric_or_zero(
            &served,
            token,
            &format!(
                r#"parmana_store_operation_duration_seconds_count{{operation="{operation}"}}"#
            ),
        )
    };
    let before = (count("claim"), count("complete"), count("get"));
    let executed = served.post("/v1/executions", token, &execution_body("timed-1"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    assert_eq!(served.get("/v1/executions/timed-1", token).status, 200);
    // SQLite claims, then completes: one of each for the execution; the read back is a `get`.
    assert_eq!(count("claim"), before.0 + 1);
    assert_eq!(count("complete"), before.1 + 1);
    assert!(count("get") > before.2);
    // The readiness probe's read and recovery's page at start are timed too.
    assert!(count("accepted_versions") > 0);
    assert!(count("pending_after") > 0);
}
