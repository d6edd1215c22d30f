//! Overload and a failing store: a store that fails (`503` with `Retry-After`, not ready, evaluations going on), a store corrupt or its file replaced under the server (`500`, no retry, not ready), a burst past `--max-concurrency` (decided or shed, never queued), the per-request timeout (of an evaluation, and of an execution held up by the store's lock: answered, slot kept, completed once), and an id claimed elsewhere read as pending (`423`).

use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;

use parmana_runtime::canon::{Digest, ExecutionId};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ReplayStore, SqliteReplayStore,
};

use crate::harness::{README_SIGNALS, Served, deployment, execution_body, metric_with};
use crate::limits_serve::log_line;

#[test]
fn an_id_claimed_elsewhere_reads_as_pending() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    // Claimed by another process (sharing the store) and not completed yet.
    {
        let store = SqliteReplayStore::open(env.root().join("replay.sqlite3")).unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"a request elsewhere"),
            b"{}".to_vec(),
            parmana_testkit::now(),
        );
        let claimed = store
            .claim(
                &ExecutionId::parse("pending-1").unwrap(),
                &claim,
                AcceptedVersions::new(2, 1),
            )
            .unwrap();
        assert_eq!(claimed, ClaimOutcome::Claimed);
    }
    let pending = served.get("/v1/executions/pending-1", token);
    assert_eq!(pending.status, 423, "{}", pending.text);
    assert_eq!(pending.code(), "server.execution_pending");
    let replay = served.post("/v1/executions", token, &execution_body("pending-1"));
    assert_eq!(replay.status, 409, "{}", replay.text);
    assert_eq!(served.get("/v1/executions/never-1", token).status, 404);
}

#[test]
fn a_request_over_its_time_is_answered_503_and_the_server_goes_on() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--request-timeout-ms", "2"]);
    let token = served.token.as_deref();
    // A batch of 1,000 signal sets (the most one request may carry), each explained, takes well
    // over 2 ms to decide, even in an optimised build (about 5 µs a set, BENCHMARKS.md); its body
    // (about 80 KiB) arrives well within them, so the answer comes before the body is dropped (a
    // client still sending when the server closes may see no answer at all: on a stalled
    // machine, a transport error is retried, a few times).
    let sets = vec![crate::harness::README_SIGNALS; 1_000].join(",");
    let batch = format!(r#"{{"policy":"claims-approval@1.0.0","batch":[{sets}]}}"#);
    let slow = (0..5)
        .find_map(|_| {
            served
                .try_post("/v1/evaluations?explain=true", token, &batch)
                .ok()
        })
        .unwrap_or_else(|| panic!("no answer in five tries: {}", served.stderr()));
    assert_eq!(slow.status, 503, "{}", slow.text);
    assert_eq!(slow.code(), "server.timeout");
    // An evaluation starts no execution: its answer names none, nor tells to read one back.
    assert_eq!(
        slow.json()["error"]["message"],
        "no answer within 2 ms",
        "{}",
        slow.text
    );
    assert_eq!(slow.header("location"), None);
    assert!(slow.header("retry-after").is_some());
    assert_eq!(slow.header("connection"), Some("close"));
    // Probes have no timeout; the server still answers.
    assert_eq!(served.get("/readyz", None).status, 200);
}

/// A body that does not arrive within the request timeout is the client's slowness, not the
/// server's: `408 server.body_timeout`, nothing started, no `Retry-After`, the connection closed.
#[test]
fn a_body_that_does_not_arrive_in_time_is_408() {
    use std::io::{Read as _, Write as _};
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--request-timeout-ms", "300"]);
    let token = served.token.clone().unwrap();
    for path in ["/v1/executions", "/v1/evaluations", "/access/v1/evaluation"] {
        let address = served.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let reply = crate::harness::reply_of_raw(&answer);
        crate::harness::check_against_openapi(&served.base, "POST", path, &reply);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (408, "server.body_timeout"),
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.header("retry-after"), None, "{path}");
        assert_eq!(reply.header("connection"), Some("close"), "{path}");
    }
    assert_eq!(
        metric_with(
            &served,
            served.token.as_deref(),
            r#"parmana_http_requests_total{route="/v1/executions",method="POST",status="408"}"#
        ),
        1
    );
}

#[test]
fn an_execution_past_its_time_is_answered_503_keeps_its_slot_and_completes_once() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(
        env.root(),
        &[
            "--dev-token",
            // Every request of the test has this time, not only the two held ones: long enough
            // that a loaded machine answers the others (a replay waits on SQLite's write lock
            // behind the completions and the sequencer) before it.
            "--request-timeout-ms",
            "3000",
            "--max-concurrency",
            "2",
            "--log-format",
            "json",
        ],
    );
    let token = served.token.as_deref();
    // The store's write lock is held from outside the server: its claims wait (SQLite's busy
    // timeout), its reads go on.
    let held = SqliteReplayStore::hold_writes(env.root().join("replay.sqlite3")).unwrap();
    let slow = served.post("/v1/executions", token, &execution_body("held-1"));
    assert_eq!(slow.status, 503, "{}", slow.text);
    assert_eq!(slow.code(), "server.timeout");
    assert_eq!(slow.header("retry-after"), Some("1"));
    // The answer names the execution that may still complete, and so does its log line.
    assert_eq!(slow.header("location"), Some("/v1/executions/held-1"));
    let (event, _) = log_line(&served, "/v1/executions", 503);
    assert_eq!(
        (&event["execution_id"], &event["policy"], &event["code"]),
        (
            &Value::from("held-1"),
            &Value::from("claims-approval@1.0.0"),
            &Value::from("server.timeout")
        ),
        "{event}"
    );
    // Answered, and not consumed: nothing is claimed while the store is held.
    assert_eq!(served.get("/v1/executions/held-1", token).status, 404);
    // An execution whose id the server makes: the answer on its timeout is the only place the
    // client learns the id.
    let second = served.post(
        "/v1/executions",
        token,
        &format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#),
    );
    assert_eq!(second.code(), "server.timeout", "{}", second.text);
    let made = second
        .header("location")
        .and_then(|location| location.strip_prefix("/v1/executions/"))
        .unwrap_or_else(|| panic!("no location: {second:?}"))
        .to_owned();
    assert!(second.text.contains(&made), "{}", second.text);
    // Both runtime calls still hold their slots: more requests are shed, not started.
    let shed = served.post("/v1/executions", token, &execution_body("held-3"));
    assert_eq!(
        (shed.status, shed.code().as_str()),
        (503, "server.overloaded")
    );
    drop(held);
    // Each execution completes on its own once the store is free (bounded: 400 polls each).
    for id in ["held-1", made.as_str()] {
        let stored = (0..400)
            .map(|_| {
                let reply = served.get(&format!("/v1/executions/{id}"), token);
                if reply.status != 200 {
                    // Shed while the slots are held, or claimed and not yet completed.
                    assert!(matches!(reply.status, 503 | 423), "{}", reply.text);
                    std::thread::sleep(Duration::from_millis(25));
                }
                reply
            })
            .find(|reply| reply.status == 200)
            .unwrap_or_else(|| panic!("{id} never completed: {}", served.stderr()));
        // Exactly once: the same request again is a replay naming the stored attestation,
        // which verifies.
        let again = served.post("/v1/executions", token, &execution_body(id));
        assert_eq!(
            (again.status, again.code().as_str()),
            (409, "runtime.replay_detected")
        );
        assert_eq!(
            again.header("location"),
            Some(format!("/v1/executions/{id}").as_str())
        );
        let verified = served.post(
            "/v1/verify",
            token,
            &format!(r#"{{"attestation":{}}}"#, stored.text),
        );
        assert_eq!(verified.json()["valid"], true, "{}", verified.text);
    }
    // The shed request did nothing.
    assert_eq!(served.get("/v1/executions/held-3", token).status, 404);
    // Both executions are counted though their requests were answered first; so are their two
    // replays, and the time of all four runtime calls (each counted by its call just after its
    // completion is stored: read until they are, bounded).
    let counted = |series: &str| metric_with(&served, token, series);
    let series = [
        (r#"parmana_executions_total{decision="escalate"}"#, 2),
        (
            r#"parmana_execution_errors_total{code="runtime.replay_detected"}"#,
            2,
        ),
        (
            r#"parmana_runtime_call_duration_seconds_count{operation="execute"}"#,
            4,
        ),
    ];
    let all_counted = (0..400).any(|_| {
        let done = series
            .iter()
            .all(|(series, expected)| counted(series) == *expected);
        if !done {
            std::thread::sleep(Duration::from_millis(25));
        }
        done
    });
    let read: Vec<u64> = series.iter().map(|(series, _)| counted(series)).collect();
    assert!(all_counted, "{read:?}");
}

/// A store overwritten under the server is corrupt: every call that touches it is refused
/// `500 replay.store_corrupt` (no retry mends it: no `Retry-After`), naming the execution where
/// it may have been claimed, telling the caller the code only (the store's words, and its
/// path, go to the server's log); the server is not ready; pure evaluations go on. (A store
/// that cannot be reached is `503` with `Retry-After`: `readiness_tests.rs`.)
#[test]
fn a_corrupt_store_is_refused_and_the_server_is_not_ready() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let first = served.post("/v1/executions", token, &execution_body("before-1"));
    assert_eq!(first.status, 201, "{}", first.text);
    // (A durable store: no warning that ids are forgotten on a restart.)
    assert!(
        !served.stderr().contains("keeps nothing across a restart"),
        "{}",
        served.stderr()
    );
    // The store's file is overwritten in place (the server's connections keep it open): every
    // store call fails from now on.
    for name in ["replay.sqlite3", "replay.sqlite3-wal", "replay.sqlite3-shm"] {
        let path = env.root().join(name);
        if let Ok(length) = std::fs::metadata(&path).map(|m| m.len()) {
            let garbage = vec![0x5a_u8; usize::try_from(length).unwrap()];
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .write_all(&garbage)
                .unwrap();
        }
    }
    let failed = served.post("/v1/executions", token, &execution_body("after-1"));
    assert_eq!(
        (failed.status, failed.code().as_str()),
        (500, "replay.store_corrupt"),
        "{}",
        failed.text
    );
    assert_eq!(failed.header("retry-after"), None);
    let root = env.root().display().to_string();
    assert!(!failed.text.contains(&root), "{}", failed.text);
    assert!(
        failed.text.contains("the server's log says why"),
        "{}",
        failed.text
    );
    assert!(
        served
            .stderr()
            .contains("a request was refused: the replay store or a file failed"),
        "{}",
        served.stderr()
    );
    // The store failed where the id may have been claimed: the answer names where its outcome
    // reads back — also for an id the server made, which the client could learn nowhere else.
    assert_eq!(failed.header("location"), Some("/v1/executions/after-1"));
    // The README's request, with no id: the server makes one.
    let readme_request = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
        crate::harness::README_SIGNALS
    );
    let made = served.post("/v1/executions", token, &readme_request);
    assert_eq!(made.status, 500, "{}", made.text);
    let location = made.header("location").unwrap_or_default();
    assert!(
        location.starts_with("/v1/executions/") && location.len() > "/v1/executions/".len(),
        "{location:?}: {}",
        made.text
    );
    // A refusal before any claim names nothing.
    let refused = served.post(
        "/v1/executions",
        token,
        r#"{"policy":"claims-approval@1.0.0","signals":{"claim_amount":"many"}}"#,
    );
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.header("location"), None);
    let read = served.get("/v1/executions/before-1", token);
    assert_eq!(read.status, 500, "{}", read.text);
    // Not ready while its store fails (polled: a probe's answer is reused for a second).
    let not_ready = (0..200).any(|_| {
        let status = served.get("/readyz", None).status;
        if status != 503 {
            std::thread::sleep(Duration::from_millis(25));
        }
        status == 503
    });
    assert!(not_ready, "{}", served.stderr());
    // Pure evaluations touch no store and go on.
    let evaluated = served.post("/v1/evaluations", token, &readme_request);
    assert_eq!(evaluated.status, 200, "{}", evaluated.text);
}

/// A file of the SQLite store replaced or removed under a running server — the database renamed
/// over by a copy, or its `-shm` index unlinked (the next opener would make a new one and write
/// beside this server) — is `500 replay.store_replaced` from the next execution and read on: no
/// retry mends it (no `Retry-After`), the answer names the execution it may have claimed, and
/// the server is not ready until it is restarted; pure evaluations go on.
#[test]
fn a_store_file_replaced_under_the_server_is_refused_until_a_restart() {
    for (what, replace) in [
        (
            "the database renamed over by a copy",
            (|root: &std::path::Path| {
                let copy = root.join("replay.sqlite3.copy");
                std::fs::copy(root.join("replay.sqlite3"), &copy).unwrap();
                std::fs::rename(&copy, root.join("replay.sqlite3")).unwrap();
            }) as fn(&std::path::Path),
        ),
        ("its -shm index removed", |root: &std::path::Path| {
            std::fs::remove_file(root.join("replay.sqlite3-shm")).unwrap();
        }),
    ] {
        let env = deployment("sqlite:replay.sqlite3", "");
        let served = Served::start(env.root(), &["--dev-token"]);
        let token = served.token.as_deref();
        let first = served.post("/v1/executions", token, &execution_body("kept-1"));
        assert_eq!(first.status, 201, "{what}: {}", first.text);
        replace(env.root());
        let failed = served.post("/v1/executions", token, &execution_body("after-1"));
        assert_eq!(
            (failed.status, failed.code().as_str()),
            (500, "replay.store_replaced"),
            "{what}: {}",
            failed.text
        );
        assert_eq!(failed.header("retry-after"), None, "{what}");
        assert_eq!(
            failed.header("location"),
            Some("/v1/executions/after-1"),
            "{what}"
        );
        let read = served.get("/v1/executions/kept-1", token);
        assert_eq!(
            (read.status, read.code().as_str()),
            (500, "replay.store_replaced"),
            "{what}: {}",
            read.text
        );
        let not_ready = (0..200).any(|_| {
            let status = served.get("/readyz", None).status;
            if status != 503 {
                std::thread::sleep(Duration::from_millis(25));
            }
            status == 503
        });
        assert!(not_ready, "{what}: {}", served.stderr());
        let evaluated = served.post(
            "/v1/evaluations",
            token,
            &format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
                crate::harness::README_SIGNALS
            ),
        );
        assert_eq!(evaluated.status, 200, "{what}: {}", evaluated.text);
    }
}

/// Waits (10 s at most) until the log holds `entries` records, as the server's sequencer knows it.
fn wait_until_logged(served: &Served, entries: u64) {
    let logged = (0..400).any(|_| {
        let known = metric_with(served, served.token.as_deref(), "parmana_log_entries");
        if known < entries {
            std::thread::sleep(Duration::from_millis(25));
        }
        known >= entries
    });
    assert!(logged, "{}", served.stderr());
}

/// An id the ledger records stays used when a writer of the store deletes its execution row: the
/// server answers its claim from the log its sequencer keeps (read before it is ready, and after
/// each run), not from the row — refused as `replay.store_corrupt` where the row is gone (the
/// store alone would take the id again), and the store refused from then on, as a server
/// started on it refuses it.
#[test]
fn an_id_in_the_log_stays_used_though_its_row_was_deleted() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    let first = served.post("/v1/executions", token, &execution_body("logged-1"));
    assert_eq!(first.status, 201, "{}", first.text);
    // Wait until it is in the log (a marks record and the execution's).
    wait_until_logged(&served, 2);
    let database = rusqlite::Connection::open(env.root().join("replay.sqlite3")).unwrap();
    assert_eq!(
        database
            .execute("DELETE FROM executions WHERE id = 'logged-1'", [])
            .unwrap(),
        1
    );
    drop(database);
    // Refused, and said: the ledger holds the id, the store no row for it.
    let replayed = served.post("/v1/executions", token, &execution_body("logged-1"));
    assert_eq!(
        (replayed.status, replayed.code().as_str()),
        (500, "replay.store_corrupt"),
        "{}",
        replayed.text
    );
    assert!(
        served
            .stderr()
            .contains("replay store rows deleted behind it; executions refused"),
        "{}",
        served.stderr()
    );
    // Read back: not "never claimed" (a client would resubmit under a new id), but the same
    // evidence; and the store is refused from then on, as a restart would find it.
    let read = served.get("/v1/executions/logged-1", token);
    assert_eq!(
        (read.status, read.code().as_str()),
        (500, "replay.store_corrupt"),
        "{}",
        read.text
    );
    let other = served.post("/v1/executions", token, &execution_body("after-1"));
    assert_eq!(
        (other.status, other.code().as_str()),
        (500, "runtime.store_rewound"),
        "{}",
        other.text
    );
    let probe = served.get("/readyz", None);
    assert_eq!(probe.status, 503);
    // Neither another caller nor the probe (no token) is told the id: the server's log names it.
    for answer in [&other.text, &probe.text] {
        assert!(
            answer.contains("deleted behind the store") && !answer.contains("logged-1"),
            "{answer}"
        );
    }
    assert!(served.stderr().contains("logged-1"), "{}", served.stderr());
    // A server started on that store reads the log before it is ready, finds a record naming
    // an execution the store no longer holds, and refuses it for good: never ready, every
    // execution refused.
    drop(served);
    let served = Served::start_unready(env.root(), &["--dev-token"]);
    let refused = (0..400).find_map(|_| {
        let replayed = served.try_post(
            "/v1/executions",
            served.token.as_deref(),
            &execution_body("logged-1"),
        );
        match replayed {
            Ok(reply) if reply.code() == "runtime.store_rewound" => Some(reply),
            // Starting: nothing else may answer (never a 201: the id is the ledger's).
            Ok(reply) if reply.code() == "server.not_ready" => {
                std::thread::sleep(Duration::from_millis(25));
                None
            }
            Ok(reply) => panic!("{} {}: {}", reply.status, reply.text, served.stderr()),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(25));
                None
            }
        }
    });
    let refused = refused.unwrap_or_else(|| panic!("{}", served.stderr()));
    assert_eq!(refused.status, 500, "{}", refused.text);
    let probe = served.get("/readyz", None);
    assert_eq!(probe.status, 503);
    assert!(!probe.text.contains("logged-1"), "{}", probe.text);
}

/// A log that cannot be read before ready (here a ledger record over its bound, which a writer
/// of the store planted: refused unread) stops the start, as a recovery that cannot run does:
/// the server never takes executions without knowing the ids the ledger holds.
#[test]
fn a_log_that_cannot_be_read_before_ready_stops_the_start() {
    let env = deployment("sqlite:replay.sqlite3", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let first = served.post(
        "/v1/executions",
        served.token.as_deref(),
        &execution_body("read-1"),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    wait_until_logged(&served, 2);
    drop(served);
    let database = rusqlite::Connection::open(env.root().join("replay.sqlite3")).unwrap();
    assert_eq!(
        database
            .execute(
                "UPDATE ledger SET record = zeroblob(5000) WHERE kind = 'execution'",
                []
            )
            .unwrap(),
        1
    );
    drop(database);
    let mut refused = Served::start_unready(env.root(), &["--dev-token"]);
    let exited = (0..1_200).any(|_| {
        let exited = refused.has_exited();
        if !exited {
            std::thread::sleep(Duration::from_millis(25));
        }
        exited
    });
    assert!(exited, "still running: {}", refused.stderr());
    assert_ne!(refused.wait(), Some(0), "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("the log could not be read before ready; stopping"),
        "{}",
        refused.stderr()
    );
}

#[test]
fn a_burst_past_the_concurrency_limit_is_decided_or_shed_never_queued() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--max-concurrency", "2"]);
    let token = served.token.clone().unwrap();
    // A batch of 200 signal sets, explained: long enough that 12 clients at once overrun the
    // two slots (decided on the blocking pool).
    let sets = vec![crate::harness::README_SIGNALS; 200].join(",");
    let batch = format!(r#"{{"policy":"claims-approval@1.0.0","batch":[{sets}]}}"#);
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let (base, token, batch) = (served.base.clone(), token.clone(), batch.clone());
            std::thread::spawn(move || {
                (0..8)
                    .map(|_| {
                        let reply = crate::harness::try_call(
                            &base,
                            "POST",
                            "/v1/evaluations?explain=true",
                            Some(&token),
                            Some(&batch),
                        )
                        .unwrap();
                        (
                            reply.status,
                            reply.code(),
                            reply.header("retry-after").map(str::to_owned),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|client| client.join().unwrap())
        .collect();
    // Every answer is a decision or a shed (never a timeout, a defect or a wait in a queue).
    for (status, code, retry_after) in &answers {
        match status {
            200 => {}
            503 => {
                assert_eq!(code, "server.overloaded");
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            other => panic!("{other} {code}"),
        }
    }
    // Both happened: twelve clients on two slots are shed (slower machines shed more, not less).
    assert!(answers.iter().any(|(status, _, _)| *status == 200));
    assert!(answers.iter().any(|(status, _, _)| *status == 503));
    // After the burst, the server decides again.
    let after = served.post("/v1/evaluations", Some(&token), &batch);
    assert_eq!(after.status, 200, "{}", after.text);
}

/// The request bodies held and worked on at once are bounded across every request (a body's
/// JSON tree takes up to about 35 times the body): each piece of a body takes its place in the
/// budget (eight times `max_body_bytes`, and at least one body of `/v1/verify`) as it arrives,
/// until its request and its runtime call are done; with no room left, a request is shed (`503
/// server.overloaded`), never queued, and a place is free again once a runtime call ends. Bodies
/// declared and never sent hold none; a stalled body holds what came; executions held on the
/// store's write lock hold theirs while they wait.
#[test]
fn request_bodies_in_flight_are_bounded_and_past_the_bound_shed() {
    let env = deployment("sqlite:replay.sqlite3", "");
    // The default request timeout (10 s), far longer than the test waits for anything: no
    // request is answered on its timeout, and none gives its place back early.
    let served = Served::start(
        env.root(),
        &[
            "--dev-token",
            "--max-body-bytes",
            "1024",
            "--idle-timeout-ms",
            "10000",
        ],
    );
    let token = served.token.clone().unwrap();
    // The budget: one body of /v1/verify (3 × 1024 + 64 KiB, more than 8 × 1024), a place a KiB:
    // 67 places, one for each small execution.
    let places = (3 * 1024 + 64 * 1024_usize).div_ceil(1024);
    let evaluation = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS}}}"#);
    let address = served.base.trim_start_matches("http://").to_owned();
    let head = |path: &str, length: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    // Requests in flight (concurrency slots taken), as /metrics says.
    let wait_in_flight = |count: usize| {
        let line = format!("parmana_requests_in_flight {count}");
        let reached = (0..400).any(|_| {
            let metrics = served.get("/metrics", Some(token.as_str())).text;
            if metrics.lines().any(|l| l == line) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
            false
        });
        assert!(reached, "never {count} in flight: {}", served.stderr());
    };
    // Declared and never sent, bodies hold no place: more of them than the budget has places,
    // every one being read, shed nothing.
    let declared: Vec<std::net::TcpStream> = (0..places + 8)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .write_all(head("/v1/evaluations", 1024).as_bytes())
                .unwrap();
            stream
        })
        .collect();
    wait_in_flight(places + 8);
    let answered = served.post("/v1/evaluations", Some(token.as_str()), &evaluation);
    assert_eq!(answered.status, 200, "{}", answered.text);
    drop(declared);
    wait_in_flight(0);
    // Sent in part, a body holds the place of what came: a verify body stalled ten bytes short
    // of its end holds every place, and leaves no room for another body.
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    stalled
        .write_all(head("/v1/verify", places * 1024).as_bytes())
        .unwrap();
    stalled.write_all(&vec![b' '; places * 1024 - 10]).unwrap();
    let shed = (0..200)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(25));
            served.post("/v1/evaluations", Some(token.as_str()), &evaluation)
        })
        .find(|reply| reply.status == 503)
        .unwrap_or_else(|| panic!("never shed: {}", served.stderr()));
    assert_eq!(shed.code(), "server.overloaded", "{}", shed.text);
    drop(stalled);
    wait_in_flight(0);
    // Executions held on the store's write lock keep their places while they wait: with every
    // place taken, another body is shed; requests without one are not held back.
    let held = SqliteReplayStore::hold_writes(env.root().join("replay.sqlite3")).unwrap();
    std::thread::scope(|scope| {
        let executions: Vec<_> = (0..places)
            .map(|n| {
                let (served, token) = (&served, token.as_str());
                scope.spawn(move || {
                    served.post(
                        "/v1/executions",
                        Some(token),
                        &execution_body(&format!("held-{n}")),
                    )
                })
            })
            .collect();
        wait_in_flight(places);
        let shed = served.post("/v1/evaluations", Some(token.as_str()), &evaluation);
        assert_eq!(
            (shed.status, shed.code().as_str()),
            (503, "server.overloaded"),
            "{}",
            shed.text
        );
        assert!(shed.header("retry-after").is_some());
        assert_eq!(served.get("/readyz", None).status, 200);
        // The lock let go, every execution completes and gives its place back.
        drop(held);
        for execution in executions {
            let reply = execution.join().unwrap();
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
    });
    let decided = served.post("/v1/evaluations", Some(token.as_str()), &evaluation);
    assert_eq!(decided.json()["decision"], "escalate", "{}", decided.text);
}
