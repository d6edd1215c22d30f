//! Lifecycle: reload (the same files, a newer release manifest, bad files, rollbacks; admin route and SIGHUP), graceful shutdown under load with no lost or doubled outcome, the shutdown delay (serving on with `/readyz` at 503), an execution outliving its request sequenced by the shutdown, recovery before ready (a claim left pending across a release stays claimed), the versions a server took recorded in the store at start and at a clean stop.

use crate::harness::{
    README_SIGNALS, Served, deployment, eventually, execution_body, parmana, tokens_file, try_call,
};

fn last_reload(served: &Served, token: Option<&str>) -> serde_json::Value {
    served.get("/v1/status", token).json()["last_reload"].clone()
}

/// A reload reads the tokens file again, first: a token removed there is refused from then on,
/// one added is taken — even when the environment on disk is refused; a file refused
/// (`server.tokens_invalid`) keeps every token as it was (and holds back nothing else). SIGHUP
/// does the same.
#[test]
fn reload_reads_the_tokens_file_again() {
    let env = deployment("memory", "");
    let root = env.root();
    let file = tokens_file(
        root,
        &[("admin", &["admin", "read"]), ("leaked", &["read"])],
    );
    let served = Served::start(root, &["--tokens", file.to_str().unwrap()]);
    let status = |token: &str| served.get("/v1/status", Some(token)).status;
    assert_eq!((status("admin"), status("leaked")), (200, 200));
    // The leaked token revoked, a new one issued.
    tokens_file(root, &[("admin", &["admin", "read"]), ("fresh", &["read"])]);
    let reply = served.post("/v1/admin/reload", Some("admin"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        (status("admin"), status("leaked"), status("fresh")),
        (200, 401, 200)
    );
    // Revoked while the environment on disk is refused (a tampered manifest): the token goes all
    // the same, and the environment in force stays.
    let manifest = std::fs::read(root.join("release-manifest.json")).unwrap();
    std::fs::write(
        root.join("release-manifest.json"),
        String::from_utf8(manifest.clone())
            .unwrap()
            .replace("2036", "2037"),
    )
    .unwrap();
    tokens_file(root, &[("admin", &["admin", "read"]), ("fresh", &["read"])]);
    let reply = served.post("/v1/admin/reload", Some("admin"), "");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (422, "trust.bad_signature"),
        "{}",
        reply.text
    );
    assert_eq!((status("admin"), status("fresh")), (200, 200));
    tokens_file(root, &[("admin", &["admin", "read"])]);
    let reply = served.post("/v1/admin/reload", Some("admin"), "");
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!((status("admin"), status("fresh")), (200, 401));
    std::fs::write(root.join("release-manifest.json"), &manifest).unwrap();
    tokens_file(root, &[("admin", &["admin", "read"]), ("fresh", &["read"])]);
    let reply = served.post("/v1/admin/reload", Some("admin"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A file refused (a token without scopes): refused, the tokens stay (the environment is
    // reloaded all the same, and the answer says so).
    std::fs::write(
        &file,
        "[[tokens]]\nname = \"admin\"\nsha256 = \"sha256:00\"\nscopes = []\n",
    )
    .unwrap();
    let reply = served.post("/v1/admin/reload", Some("admin"), "");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (422, "server.tokens_invalid"),
        "{}",
        reply.text
    );
    // The admin who asked is told what was wrong, and where; a `read` token reading the status
    // only the code.
    assert!(reply.text.contains("tokens.toml"), "{}", reply.text);
    assert!(
        reply.text.contains("the environment was reloaded"),
        "{}",
        reply.text
    );
    let reload = last_reload(&served, Some("admin"));
    assert_eq!(reload["code"], "server.tokens_invalid");
    let message = reload["message"].as_str().unwrap();
    assert!(!message.contains("tokens.toml"), "{message}");
    assert!(message.contains("server's log"), "{message}");
    assert_eq!((status("admin"), status("fresh")), (200, 200));
    // SIGHUP reads it too (polled: the reload runs in the background).
    tokens_file(root, &[("admin", &["admin", "read"])]);
    served.signal("HUP");
    let revoked = (0..400).any(|_| {
        let refused = status("fresh") == 401;
        if !refused {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        refused
    });
    assert!(revoked, "{}", served.stderr());
    assert_eq!(status("admin"), 200);
}

#[test]
fn reload_swaps_good_environments_and_keeps_the_old_one_on_refusal() {
    let env = deployment("memory", "");
    let root = env.root();
    let served = Served::start(root, &["--dev-token"]);
    let token = served.token.clone();
    let token = token.as_deref();
    // (what is done to the files, expected status, expected code)
    let manifest = std::fs::read(root.join("release-manifest.json")).unwrap();
    let trust_root = std::fs::read(root.join("trust/trust-root.json")).unwrap();
    let older_trust_root = std::fs::read(root.join("trust/trust-root.d/1.json")).unwrap();
    let cases: [(&str, &dyn Fn(), u16, &str); 4] = [
        ("unchanged", &|| {}, 200, ""),
        (
            "tampered manifest",
            &|| {
                let text = String::from_utf8(manifest.clone()).unwrap();
                std::fs::write(
                    root.join("release-manifest.json"),
                    text.replace("2036", "2037"),
                )
                .unwrap();
            },
            422,
            "trust.bad_signature",
        ),
        (
            "older trust root",
            &|| {
                std::fs::write(root.join("release-manifest.json"), &manifest).unwrap();
                std::fs::write(root.join("trust/trust-root.json"), &older_trust_root).unwrap();
            },
            422,
            "trust.version_rollback",
        ),
        (
            "restored",
            &|| std::fs::write(root.join("trust/trust-root.json"), &trust_root).unwrap(),
            200,
            "",
        ),
    ];
    for (what, change, status, code) in cases {
        change();
        let reply = served.post("/v1/admin/reload", token, "");
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        let last = last_reload(&served, token);
        if code.is_empty() {
            assert_eq!(
                reply.json()["trust_root"],
                serde_json::json!([2, 2]),
                "{what}"
            );
            assert_eq!(last["outcome"], "ok", "{what}");
        } else {
            assert_eq!(reply.code(), code, "{what}");
            assert_eq!(
                (last["outcome"].as_str(), last["code"].as_str()),
                (Some("refused"), Some(code)),
                "{what}"
            );
        }
        // The environment in force keeps serving either way.
        let id = format!("after-{}", what.replace(' ', "-"));
        assert_eq!(
            served
                .post("/v1/executions", token, &execution_body(&id))
                .status,
            201,
            "{what}"
        );
    }
    // `/metrics` reports the environment in force: each document's version and expiry, as the
    // status does.
    let document = |name: &str| {
        let version = crate::harness::metric_with(
            &served,
            token,
            &format!("parmana_environment_version{{document=\"{name}\"}}"),
        );
        let expiry = crate::harness::metric_with(
            &served,
            token,
            &format!("parmana_environment_expiry_timestamp_seconds{{document=\"{name}\"}}"),
        );
        (version, expiry)
    };
    let unix = |text: &serde_json::Value| {
        let at = parmana_runtime::canon::Timestamp::parse(text.as_str().unwrap()).unwrap();
        u64::try_from(at.unix_seconds()).unwrap()
    };
    let status = served.get("/v1/status", token).json();
    assert_eq!(
        (document("trust_root"), document("release_manifest")),
        (
            (2, unix(&status["trust_root"]["expires"])),
            (1, unix(&status["release_manifest"]["expires"]))
        ),
        "{status}"
    );
    // A newer release manifest, signed by the release key, is swapped in: the status reports
    // its version, and executions go on under it.
    crate::harness::release_sign(root, "2", "2036-01-01T00:00:00Z");
    let reply = served.post("/v1/admin/reload", token, "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        (
            &reply.json()["trust_root"],
            &reply.json()["release_manifest"]
        ),
        (&serde_json::json!([2, 2]), &serde_json::json!([1, 2]))
    );
    let status = served.get("/v1/status", token).json();
    assert_eq!(status["release_manifest"]["version"], 2, "{status}");
    assert_eq!(
        document("release_manifest"),
        (2, unix(&serde_json::json!("2036-01-01T00:00:00Z")))
    );
    assert_eq!(
        served
            .post(
                "/v1/executions",
                token,
                &execution_body("after-newer-manifest")
            )
            .status,
        201
    );
    // The older manifest is a rollback now.
    std::fs::write(root.join("release-manifest.json"), &manifest).unwrap();
    let reply = served.post("/v1/admin/reload", token, "");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (422, "trust.version_rollback"),
        "{}",
        reply.text
    );
    // The newer manifest stays in force.
    let status = served.get("/v1/status", token).json();
    assert_eq!(status["release_manifest"]["version"], 2, "{status}");
    // Version 2 signed again with other content (a later expiry, made beside and copied into
    // place: `release sign --force` itself refuses a version not higher): one version signed
    // twice is refused, and the one in force stays.
    let newer = parmana_testkit::release_sign_args("2", "2037-01-01T00:00:00Z");
    let mut args = newer.to_vec();
    let out = args.len() - 1;
    args[out] = "release-manifest.2-again.json";
    let (code, _, stderr) = parmana(root, &args);
    assert_eq!(code, 0, "{stderr}");
    std::fs::rename(
        root.join("release-manifest.2-again.json"),
        root.join("release-manifest.json"),
    )
    .unwrap();
    let reply = served.post("/v1/admin/reload", token, "");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (422, "trust.version_conflict"),
        "{}",
        reply.text
    );
    assert_eq!(
        document("release_manifest"),
        (2, unix(&serde_json::json!("2036-01-01T00:00:00Z")))
    );
    let reloads = |outcome| crate::harness::reloads(&served, token, outcome);
    assert_eq!((reloads("ok"), reloads("refused")), (3, 4));
    crate::harness::assert_families_declared(&served, token, &["parmana_reloads"]);

    // SIGHUP reloads too: a refused reload shows in the status.
    std::fs::write(root.join("trust/trust-root.json"), &older_trust_root).unwrap();
    served.signal("HUP");
    let mut seen = serde_json::Value::Null;
    for _ in 0..200 {
        seen = (reloads("refused") == 5).into();
        if seen == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(seen, true, "SIGHUP did not reload: {}", served.stderr());
    assert_eq!(
        last_reload(&served, token)["code"],
        "trust.version_rollback"
    );
}

/// The signals are the server's before it prints its address: a SIGHUP sent on seeing
/// `listening on` (a supervisor that reloads as soon as it knows the server started) reloads;
/// it never ends the process.
#[test]
fn a_sighup_sent_on_seeing_the_address_reloads() {
    let env = deployment("memory", "");
    let mut served = Served::start_signalled_on_listening(
        env.root(),
        &["--dev-token"],
        rustix::process::Signal::HUP,
    );
    let token = served.token.clone();
    let reloads = |served: &Served| {
        crate::harness::metric_with(
            served,
            token.as_deref(),
            "parmana_reloads_total{outcome=\"ok\"}",
        )
    };
    let mut count = 0;
    for _ in 0..200 {
        count = reloads(&served);
        if count == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(count, 1, "{}", served.stderr());
    assert!(!served.has_exited(), "{}", served.stderr());
}

#[test]
fn sigterm_under_load_loses_and_doubles_no_outcome() {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root().to_path_buf();
    // The periodic sequencer runs once an hour here: what is sequenced, the shutdown sequenced.
    let mut served = Served::start(
        &root,
        &[
            "--dev-token",
            "--shutdown-grace-ms",
            "20000",
            "--sequence-interval-ms",
            "3600000",
        ],
    );
    let token = served.token.clone().unwrap();
    let base = served.base.clone();
    let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (base, token, created) = (base.clone(), token.clone(), created.clone());
        workers.push(std::thread::spawn(move || {
            let mut answered = Vec::new();
            // The request a worker stopped at: its id and the refusal's code, or none when the
            // connection ended without an answer.
            let mut stopped_at = None;
            // Bounded: at most 200 requests per worker; it stops at the first refusal (the
            // shutdown observed).
            for n in 0..200 {
                let id = format!("w{worker}-{n}");
                match try_call(
                    &base,
                    "POST",
                    "/v1/executions",
                    Some(&token),
                    Some(&execution_body(&id)),
                ) {
                    Ok(reply) if reply.status == 201 => {
                        answered.push((id, reply.json()["attestation"].clone()));
                        created.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(reply) => {
                        assert_eq!(reply.status, 503, "{}", reply.text);
                        stopped_at = Some((id, Some(reply.code())));
                        break;
                    }
                    Err(_) => {
                        stopped_at = Some((id, None));
                        break;
                    }
                }
            }
            (answered, stopped_at)
        }));
    }
    // The signal comes under load: once twenty executions are answered (bounded wait).
    let loaded = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        created.load(std::sync::atomic::Ordering::SeqCst) >= 20
    });
    assert!(loaded, "no load: {}", served.stderr());
    served.signal("TERM");
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    let mut answered = Vec::new();
    let mut stopped = Vec::new();
    for worker in workers {
        let (a, s) = worker.join().unwrap();
        answered.extend(a);
        stopped.extend(s);
    }
    // The shutdown cut the load short: some worker was stopped before its 200 requests.
    assert!(
        !stopped.is_empty(),
        "every request was answered before the signal"
    );
    // Every answered id is stored with exactly the attestation the client got.
    for (id, attestation) in &answered {
        let (code, stdout, stderr) = parmana(&root, &["show", id]);
        assert_eq!(code, 0, "{id}: {stderr}");
        let stored: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(&stored, attestation, "{id}");
    }
    // A request the shutdown stopped was not executed: refused before anything was consumed,
    // or never read. (One executed without its answer reaching the client would be an outcome
    // lost: requests in flight are answered within the grace.)
    // (Only an answer on the request's timeout, `503 server.timeout`, says it may still
    // complete: counted with the answered ones when it did.)
    let mut completed_after_timeout = 0;
    for (id, refusal) in &stopped {
        let (code, _, stderr) = parmana(&root, &["show", id]);
        if refusal.as_deref() == Some("server.timeout") && code == 0 {
            completed_after_timeout += 1;
            continue;
        }
        assert!(
            code != 0 && stderr.contains("cli.execution_unknown"),
            "{id} ({refusal:?}) was executed without an answer: {stderr}"
        );
    }
    // The ledger holds the answered executions, each once, every one sequenced by the drain.
    let (code, stdout, stderr) = parmana(&root, &["--format", "json", "ledger", "verify"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (&report["executions"], &report["unsequenced"]),
        (
            &serde_json::Value::from(answered.len() + completed_after_timeout),
            &serde_json::Value::from(0)
        ),
        "{report}"
    );
}

/// With a shutdown delay, SIGTERM turns `/readyz` to 503 at once while the server goes on
/// taking new connections and executing (a load balancer still sending traffic is served, not
/// refused); a second SIGTERM ends the delay, and what was executed during it is stored.
#[test]
fn a_shutdown_delay_serves_on_with_readyz_503_until_a_second_signal() {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root().to_path_buf();
    // An hour's delay: only the second signal can end it within the test.
    let mut served = Served::start(&root, &["--dev-token", "--shutdown-delay-ms", "3600000"]);
    let token = served.token.clone();
    let ready_gauge =
        |served: &Served| crate::harness::metric_with(served, token.as_deref(), "parmana_ready");
    assert_eq!(served.get("/readyz", None).status, 200);
    assert_eq!(ready_gauge(&served), 1);
    served.signal("TERM");
    assert!(
        eventually(|| served.stderr().contains("draining: /readyz answers 503")),
        "{}",
        served.stderr()
    );
    // Each call below opens a new connection: the listener is still open.
    let probe = served.get("/readyz", None);
    assert_eq!(
        (probe.status, probe.code().as_str()),
        (503, "server.not_ready"),
        "{}",
        probe.text
    );
    assert!(probe.text.contains("draining"), "{}", probe.text);
    assert_eq!(ready_gauge(&served), 0);
    let executed = served.post(
        "/v1/executions",
        token.as_deref(),
        &execution_body("during-delay-1"),
    );
    assert_eq!(executed.status, 201, "{}", executed.text);
    let read_back = served.get("/v1/executions/during-delay-1", token.as_deref());
    assert_eq!(read_back.status, 200, "{}", read_back.text);
    assert!(!served.has_exited(), "{}", served.stderr());
    assert!(
        !served.stderr().contains("stopped accepting"),
        "{}",
        served.stderr()
    );
    served.signal("TERM");
    assert!(
        eventually(|| served.has_exited()),
        "the second signal did not end the delay: {}",
        served.stderr()
    );
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    let log = served.stderr();
    assert!(
        log.contains("a second signal: the shutdown delay is cut short"),
        "{log}"
    );
    assert!(
        log.contains("stopped accepting: requests in flight finish"),
        "{log}"
    );
    // What was executed during the delay is stored, with the attestation the client got.
    let (code, stdout, stderr) = parmana(&root, &["show", "during-delay-1"]);
    assert_eq!(code, 0, "{stderr}");
    let stored: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stored, executed.json()["attestation"]);
}

/// A shutdown delay that runs out ends in the ordinary drain, exiting cleanly on its own.
#[test]
fn a_shutdown_delay_that_runs_out_stops_accepting_and_exits_cleanly() {
    let env = deployment("memory", "");
    let mut served = Served::start(env.root(), &["--dev-token", "--shutdown-delay-ms", "200"]);
    served.signal("INT");
    assert!(eventually(|| served.has_exited()), "{}", served.stderr());
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    let log = served.stderr();
    let draining = log.find("draining: /readyz answers 503");
    let stopped = log.find("stopped accepting: requests in flight finish");
    assert!(
        draining.is_some() && stopped.is_some() && draining < stopped,
        "{log}"
    );
    assert!(!log.contains("a second signal"), "{log}");
}

/// An address in use is refused before the store is opened: no new store file is left behind.
#[test]
fn an_address_in_use_is_refused_before_a_store_is_created() {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = parmana(root, &["serve", "--listen", &address, "--dev-token"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("bind"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(!root.join("state").exists(), "a store was created");
    drop(taken);
}

#[test]
fn a_clean_shutdown_sequences_an_execution_that_outlived_its_request() {
    // SIGTERM and SIGINT drain alike.
    for signal in ["TERM", "INT"] {
        shutdown_on(signal);
    }
}

/// A server (`--dev-token`, `limit` at 300 ms, no background sequencing) on a SQLite
/// deployment whose write lock is held from outside, so that its executions wait on the store:
/// the deployment (removed when dropped), its root, the server and the hold.
fn held_sqlite_server(
    limit: &str,
) -> (
    parmana_testkit::FixtureEnvironment,
    std::path::PathBuf,
    Served,
    parmana_runtime::replay::WriteHold,
) {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root().to_path_buf();
    let served = Served::start(
        &root,
        &[
            "--dev-token",
            limit,
            "300",
            "--sequence-interval-ms",
            "3600000",
        ],
    );
    let held =
        parmana_runtime::replay::SqliteReplayStore::hold_writes(root.join("state/replay.sqlite3"))
            .unwrap();
    (env, root, served, held)
}

/// One execution held up by the store past its request, then `signal`: the drain waits for it
/// before its final sequencer pass.
fn shutdown_on(signal: &str) {
    // The execution waits on the store's lock past its request's time, and is still running
    // when the drain starts.
    let (_env, root, mut served, held) = held_sqlite_server("--request-timeout-ms");
    let token = served.token.clone();
    let late = served.post(
        "/v1/executions",
        token.as_deref(),
        &execution_body("late-1"),
    );
    assert_eq!(late.code(), "server.timeout", "{}", late.text);
    served.signal(signal);
    // The server says it waits for that execution before its final sequencer pass (polled,
    // bounded: 400 × 25 ms); only then is the store let go.
    let waiting = (0..400).any(|_| {
        let said = served
            .stderr()
            .contains("waiting for the runtime calls still running");
        if !said {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        said
    });
    assert!(waiting, "{signal}: {}", served.stderr());
    // Draining: said so, and no new connection is taken while the execution still runs (a load
    // balancer's next probe is refused).
    assert!(
        served
            .stderr()
            .contains("stopped accepting: requests in flight finish"),
        "{signal}: {}",
        served.stderr()
    );
    let address = served.base.trim_start_matches("http://").to_owned();
    // (A connect to a closed loopback port may, rarely, meet itself — the kernel choosing that
    // port as its source: that is no connection the server took.)
    let taken = std::net::TcpStream::connect(&address)
        .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok());
    assert!(!taken, "{signal}: a connection was taken while draining");
    drop(held);
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    // The execution completed, and the final pass sequenced it: nothing waits for a restart.
    let (code, _, stderr) = parmana(&root, &["show", "late-1"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = parmana(&root, &["ledger", "verify"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("not yet sequenced"), "{stdout}");
}

/// A request still running when the shutdown grace runs out is answered then — `503
/// server.shutting_down`, naming in `Location` the execution the server made an id for — not
/// left with a closed socket; the execution completes, and is read back after a restart.
#[test]
fn a_request_running_past_the_shutdown_grace_is_answered_with_its_execution() {
    // The execution waits on the store's lock past the grace.
    let (_env, root, mut served, held) = held_sqlite_server("--shutdown-grace-ms");
    let token = served.token.clone();
    // No execution id: the server makes one, which only the answer can name.
    let body = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    let answer = std::thread::scope(|scope| {
        let request = scope.spawn(|| served.post("/v1/executions", token.as_deref(), &body));
        // The drain starts once the request holds its slot, in its handler (polled, bounded:
        // 400 × 25 ms).
        let in_handler = (0..400).any(|_| {
            let metrics = served.get("/metrics", token.as_deref());
            let held = metrics
                .text
                .lines()
                .any(|line| line == "parmana_requests_in_flight 1");
            if !held {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            held
        });
        assert!(in_handler, "the request never reached its handler");
        served.signal("TERM");
        request.join().unwrap()
    });
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (503, "server.shutting_down"),
        "{}",
        answer.text
    );
    assert!(
        answer.header("retry-after").is_some(),
        "{:?}",
        answer.headers
    );
    let location = answer.header("location").unwrap_or_default().to_owned();
    let id = location
        .strip_prefix("/v1/executions/")
        .unwrap_or_else(|| panic!("no execution named: {:?}", answer.headers))
        .to_owned();
    assert!(answer.text.contains(&id), "{}", answer.text);
    drop(held);
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    // The execution completed: its attestation is stored under the id the answer named.
    let (code, _, stderr) = parmana(&root, &["show", &id]);
    assert_eq!(code, 0, "{stderr}");
    let restarted = Served::start(&root, &["--dev-token"]);
    let read = restarted.get(&location, restarted.token.as_deref());
    assert_eq!(read.status, 200, "{}", read.text);
}

#[test]
fn the_background_sequencer_signs_checkpoints_with_the_log_key() {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root().to_path_buf();
    env.rotate_to_fixture_log().unwrap();
    let served = Served::start(
        &root,
        &[
            "--dev-token",
            "--log-key",
            "trust/keys/root-1.pem",
            "--sequence-interval-ms",
            "20",
        ],
    );
    let token = served.token.clone();
    let reply = served.post(
        "/v1/executions",
        token.as_deref(),
        &execution_body("seq-served"),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    // Polled, not timed: the checkpoint covering the marks record and the execution appears.
    let mut stored = String::new();
    for _ in 0..500 {
        let (code, stdout, _) = parmana(&root, &["log", "checkpoint"]);
        if code == 0 && stdout.lines().nth(1) == Some("2") {
            stored = stdout;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(stored.starts_with("log.example/parmana\n2\n"), "{stored}");
    let (code, stdout, stderr) = parmana(&root, &["log", "prove", "seq-served"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("c2sp.org/tlog-proof@v1\n"), "{stdout}");
    // `/metrics` counts the sequencer's runs, none failed, and the log's two records.
    let metric = |series: &str| crate::harness::metric_with(&served, token.as_deref(), series);
    assert!(metric("parmana_sequencer_runs_total{outcome=\"ok\"}") >= 1);
    assert_eq!(
        metric("parmana_sequencer_runs_total{outcome=\"failed\"}"),
        0
    );
    assert_eq!(metric("parmana_log_entries"), 2);
    let version = parmana_runtime::RUNTIME_VERSION;
    assert_eq!(
        metric(&format!("parmana_build_info{{version=\"{version}\"}}")),
        1
    );
}

/// Leftovers are settled before the server says it is ready: an execution that crashed between
/// its claim and its completion is completed at start, byte for byte the attestation the
/// execution would have returned; a claimed row forged by whoever can write the store is
/// refused, signs nothing, and stays claimed (`423 server.execution_pending`) without keeping
/// the server from serving.
#[test]
fn leftover_claims_are_settled_before_the_server_is_ready() {
    use parmana_runtime::replay::{
        AcceptedVersions, ClaimOutcome, ClaimRecord, MemoryReplayStore, ReplayStore,
        SqliteReplayStore,
    };
    use parmana_runtime::{ExecutionRequest, execute_from_signals};
    use parmana_testkit::{CrashBeforeComplete, fixed_clock, now};

    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root();
    std::fs::create_dir_all(root.join("state")).unwrap();
    let environment = env.load().unwrap();
    let signer = env.attestation_signer().unwrap();
    let request = ExecutionRequest::parse(
        "crashed-1",
        "claims-approval@1.0.0",
        crate::harness::README_SIGNALS,
    )
    .unwrap();
    let expected = execute_from_signals(
        &request,
        &signer,
        &MemoryReplayStore::new(),
        &environment,
        &fixed_clock(),
    )
    .unwrap();
    {
        let store = SqliteReplayStore::open(root.join("state/replay.sqlite3")).unwrap();
        let crashed = execute_from_signals(
            &request,
            &signer,
            &CrashBeforeComplete(&store),
            &environment,
            &fixed_clock(),
        )
        .unwrap_err();
        assert_eq!(crashed.code(), "replay.store_unavailable");
        let forged = parmana_runtime::canon::ExecutionId::parse("forged-1").unwrap();
        let claim = ClaimRecord::new(
            parmana_runtime::canon::Digest::of(b"no such request"),
            br#"{"format":2,"predicate":{},"signals":{}}"#.to_vec(),
            now(),
        );
        let under = AcceptedVersions::new(
            environment.trust_root().version(),
            environment.release_manifest().version(),
        );
        assert_eq!(
            store.claim(&forged, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(store.pending().unwrap().len(), 2);
    }

    let served = Served::start(root, &["--dev-token"]);
    let token = served.token.as_deref();
    let completed = served.get("/v1/executions/crashed-1", token);
    assert_eq!(completed.status, 200, "{}", completed.text);
    assert_eq!(completed.bytes, expected.envelope());
    let forged = served.get("/v1/executions/forged-1", token);
    assert_eq!(forged.status, 423, "{}", forged.text);
    assert_eq!(forged.json()["error"]["code"], "server.execution_pending");
    assert!(
        served.stderr().contains("recovered"),
        "the start logs what recovery did: {}",
        served.stderr()
    );
}

/// The exit code and stderr of `parmana serve` in `dir`, which must refuse to start: it must end
/// without printing its address (one that prints it is stopped, and the test fails).
fn refused_start(dir: &std::path::Path) -> (i32, String) {
    use std::io::{BufRead, Read};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_parmana"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PARMANA_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--dev-token"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    if !first.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server started: {first}");
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code().unwrap_or(-1), stderr)
}

/// A server records the versions it took in the store — at start, once recovery is done, and
/// at a clean stop, and after a reload once its sequencer's tick finds nothing running under the
/// older environment — so that a server started later on older files is refused as a rollback,
/// though nothing was executed under the newer ones (a start that only evaluates, or a reload
/// that no execution followed, the server stopped cleanly or killed). A claim left pending under the older release manifest is not
/// recovered under the newer one: the log says it was claimed under other versions
/// (`runtime.recovery_environment_changed`), and it stays claimed.
#[test]
fn the_versions_a_server_took_are_recorded_and_older_files_refused() {
    use parmana_runtime::replay::SqliteReplayStore;
    use parmana_runtime::{ExecutionRequest, execute_from_signals};
    use parmana_testkit::{CrashBeforeComplete, fixed_clock};

    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root();
    std::fs::create_dir_all(root.join("state")).unwrap();
    let manifest_path = root.join("release-manifest.json");
    let first_manifest = std::fs::read(&manifest_path).unwrap();
    {
        let store = SqliteReplayStore::open(root.join("state/replay.sqlite3")).unwrap();
        let request =
            ExecutionRequest::parse("left-over", "claims-approval@1.0.0", README_SIGNALS).unwrap();
        let crashed = execute_from_signals(
            &request,
            &env.attestation_signer().unwrap(),
            &CrashBeforeComplete(&store),
            &env.load().unwrap(),
            &fixed_clock(),
        )
        .unwrap_err();
        assert_eq!(crashed.code(), "replay.store_unavailable");
    }
    // Release manifest 2 published while the claim was pending; the server starts on it, only
    // evaluates, and is killed (no clean stop).
    crate::harness::release_sign(root, "2", "2036-01-01T00:00:00Z");
    let second_manifest = std::fs::read(&manifest_path).unwrap();
    let mut served = Served::start(root, &["--dev-token"]);
    let token = served.token.clone();
    let left = served.get("/v1/executions/left-over", token.as_deref());
    assert_eq!(left.status, 423, "{}", left.text);
    let log = served.stderr();
    assert!(
        log.contains("runtime.recovery_environment_changed")
            && log.contains("claimed under trust root version 2 and release manifest version 1"),
        "{log}"
    );
    served.signal("KILL");
    served.wait();
    std::fs::write(&manifest_path, &first_manifest).unwrap();
    let (code, stderr) = refused_start(root);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("trust.version_rollback"), "{stderr}");

    // On manifest 2 again, a reload takes manifest 3, nothing is executed, and the server
    // stops cleanly: a start on manifest 2 is refused.
    std::fs::write(&manifest_path, &second_manifest).unwrap();
    let mut served = Served::start(root, &["--dev-token"]);
    crate::harness::release_sign(root, "3", "2036-01-01T00:00:00Z");
    let reply = served.post("/v1/admin/reload", served.token.as_deref(), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let third_manifest = std::fs::read(&manifest_path).unwrap();
    served.signal("TERM");
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    std::fs::write(&manifest_path, &second_manifest).unwrap();
    let (code, stderr) = refused_start(root);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("trust.version_rollback"), "{stderr}");

    // On manifest 3 again, a reload takes manifest 4, nothing is executed, and the server is
    // killed once its sequencer's tick has recorded the versions: a start on manifest 3 is
    // refused too.
    std::fs::write(&manifest_path, &third_manifest).unwrap();
    let mut served = Served::start(root, &["--dev-token", "--sequence-interval-ms", "20"]);
    crate::harness::release_sign(root, "4", "2036-01-01T00:00:00Z");
    let reply = served.post("/v1/admin/reload", served.token.as_deref(), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    const RECORDED: &str = "the versions the reload took are recorded in the store's marks";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !served.stderr().contains(RECORDED) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(served.stderr().contains(RECORDED), "{}", served.stderr());
    served.signal("KILL");
    served.wait();
    std::fs::write(&manifest_path, &third_manifest).unwrap();
    let (code, stderr) = refused_start(root);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("trust.version_rollback"), "{stderr}");
}
