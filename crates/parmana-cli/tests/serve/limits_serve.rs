//! Request logs (JSON lines with id, policy, decision, status and latency; signal values only when configured; the start line naming the configuration file) and the transport limits (oversized request heads, connections over `--max-connections` or past their age, connections that send no request within `--idle-timeout-ms` or never read their answers, HTTP/2 in clear text refused, limits out of range refused at start, the limit on open files, invented methods counted as `OTHER`, a body cut short).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{README_SIGNALS, Served, deployment};

/// Signals with a value found nowhere else in a log (no timestamp or latency has `4321.5`);
/// decided by the default rule.
const MARKED_SIGNALS: &str =
    r#"{"claim_amount":4321.5,"vip_customer":false,"country":"NL","policy_age_days":400}"#;

/// The JSON log line of the request to `route` with `status`, waiting for it to be written.
pub(crate) fn log_line(served: &Served, route: &str, status: u64) -> (Value, String) {
    log_line_where(served, route, status, |_| true)
}

/// [`log_line`], the first one `also` takes.
pub(crate) fn log_line_where(
    served: &Served,
    route: &str,
    status: u64,
    also: impl Fn(&Value) -> bool,
) -> (Value, String) {
    for _ in 0..200 {
        let log = served.stderr();
        let found = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|event| event["route"] == route && event["status"] == status && also(event));
        if let Some(event) = found {
            return (event, log);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no log line for {route} {status}: {}", served.stderr());
}

/// A request its token may not make (`403`) names the token in its log line, as an accepted
/// one does: a valid token trying scopes it lacks can be traced.
#[test]
fn a_forbidden_request_names_its_caller() {
    let env = deployment("memory", "");
    let tokens = crate::harness::tokens_file(env.root(), &[("reader", &["read"])]);
    let served = Served::start(
        env.root(),
        &["--tokens", tokens.to_str().unwrap(), "--log-format", "json"],
    );
    let refused = served.post(
        "/v1/executions",
        Some("reader"),
        &crate::harness::execution_body("forbidden-1"),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    let (event, _) = log_line(&served, "/v1/executions", 403);
    assert_eq!(
        (&event["caller"], &event["code"]),
        (&Value::from("reader"), &Value::from("server.forbidden")),
        "{event}"
    );
    // A token that is not one names no caller.
    let refused = served.post(
        "/v1/executions",
        Some("not-a-token"),
        &crate::harness::execution_body("forbidden-2"),
    );
    assert_eq!(refused.status, 401, "{}", refused.text);
    let (event, _) = log_line(&served, "/v1/executions", 401);
    assert_eq!(event["caller"], "", "{event}");
}

/// `--log-level` says which events are written: at `warn` neither the lifecycle's lines nor a
/// request's; at `debug` also a sequencer run's `sequenced`, which `info` leaves out.
#[test]
fn the_log_level_chooses_the_events_written() {
    let env = deployment("memory", "");
    // (level, whether INFO lines are written, whether DEBUG lines are)
    for (level, info, debug) in [
        ("warn", false, false),
        ("info", true, false),
        ("debug", true, true),
    ] {
        let mut served = Served::start(
            env.root(),
            &[
                "--dev-token",
                "--log-level",
                level,
                "--sequence-interval-ms",
                "100",
            ],
        );
        let id = format!("level-{level}");
        let reply = served.post(
            "/v1/executions",
            served.token.as_deref(),
            &crate::harness::execution_body(&id),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
        // Sequenced within a few cadences (waited for where it is logged, bounded); then
        // stopped, every line written.
        for _ in 0..if debug { 500 } else { 40 } {
            if served.stderr().contains("sequenced") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        served.signal("TERM");
        assert_eq!(served.wait(), Some(0), "{}", served.stderr());
        let log = served.stderr();
        let has = |tag: &str| log.lines().any(|line| line.contains(tag));
        assert_eq!(
            (
                has(" INFO parmana::request: request "),
                has(" INFO parmana::server: listening"),
                has(" DEBUG parmana::server: sequenced")
            ),
            (info, info, debug),
            "{level}:\n{log}"
        );
    }
}

#[test]
fn request_logs_are_json_lines_without_signal_values_unless_configured() {
    let env = deployment("memory", "");
    // (extra arguments, whether signal values are logged)
    for (args, logged) in [
        (&["--log-format", "json"][..], false),
        (&["--log-format", "json", "--log-signals"], true),
    ] {
        let mut all = vec!["--dev-token"];
        all.extend(args);
        let served = Served::start(env.root(), &all);
        let body = format!(
            r#"{{"policy":"claims-approval@1.0.0","signals":{MARKED_SIGNALS},"execution_id":"log-{logged}"}}"#
        );
        let reply = served.post("/v1/executions", served.token.as_deref(), &body);
        assert_eq!(reply.status, 201, "{}", reply.text);
        let (event, log) = log_line(&served, "/v1/executions", 201);
        assert_eq!(event["execution_id"], format!("log-{logged}"), "{event}");
        assert_eq!(event["policy"], "claims-approval@1.0.0", "{event}");
        assert_eq!(event["decision"], "escalate", "{event}");
        assert_eq!(event["method"], "POST", "{event}");
        // The caller, by its token's name (`--dev-token` names its token `dev-token`).
        assert_eq!(event["caller"], "dev-token", "{event}");
        assert!(event["latency_us"].is_u64(), "{event}");
        assert_eq!(log.contains("4321.5"), logged, "{args:?}:\n{log}");
        // The start names the configuration file in force and how it was found.
        let listening = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|event| event["message"] == "listening")
            .unwrap_or_else(|| panic!("no start line: {log}"));
        let config = listening["config"].as_str().unwrap_or_default();
        assert!(
            config.ends_with("parmana.toml (found walking up from the current directory)"),
            "{listening}"
        );
        if logged {
            assert!(
                event["signals"]
                    .as_str()
                    .is_some_and(|s| s.contains("4321.5")),
                "{event}"
            );
        }
        // A refusal's line names the policy and the execution id too.
        let token = served.token.as_deref();
        let refused = served.post(
            "/v1/executions",
            token,
            &format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{{"x":1,"x":2}},"execution_id":"bad-{logged}"}}"#
            ),
        );
        assert_eq!(refused.status, 400, "{}", refused.text);
        let (event, _) = log_line(&served, "/v1/executions", 400);
        // With the signals logged, a refusal's line carries them as received too.
        let signals = |text: &str| Value::from(if logged { text } else { "" });
        assert_eq!(
            (
                &event["execution_id"],
                &event["policy"],
                &event["code"],
                &event["signals"]
            ),
            (
                &Value::from(format!("bad-{logged}")),
                &Value::from("claims-approval@1.0.0"),
                &Value::from(refused.code()),
                &signals(r#"{"x":1,"x":2}"#)
            ),
            "{event}"
        );
        let refused = served.post(
            "/v1/evaluations",
            token,
            r#"{"policy":"claims-approval@1.0.0","signals":{}}"#,
        );
        assert_eq!(refused.status, 422, "{}", refused.text);
        let (event, _) = log_line(&served, "/v1/evaluations", 422);
        assert_eq!(
            (&event["policy"], &event["code"], &event["signals"]),
            (
                &Value::from("claims-approval@1.0.0"),
                &Value::from(refused.code()),
                &signals("{}")
            ),
            "{event}"
        );
        // An execution refused for its id (before anything is looked up): the signals still.
        let refused = served.post(
            "/v1/executions",
            token,
            r#"{"policy":"claims-approval@1.0.0","signals":{"b":2},"execution_id":"has space"}"#,
        );
        assert_eq!(
            refused.code(),
            "runtime.invalid_execution_id",
            "{}",
            refused.text
        );
        let (event, _) = log_line_where(&served, "/v1/executions", 400, |event| {
            event["code"] == "runtime.invalid_execution_id"
        });
        assert_eq!(event["signals"], signals(r#"{"b":2}"#), "{event}");
        // Refused before the policy is known (its reference is not one): the signals still.
        let refused = served.post(
            "/v1/evaluations",
            token,
            r#"{"policy":"not-a-reference","signals":{"a":1}}"#,
        );
        assert_eq!(refused.status, 400, "{}", refused.text);
        let (event, _) = log_line(&served, "/v1/evaluations", 400);
        assert_eq!(
            (&event["code"], &event["signals"]),
            (&Value::from(refused.code()), &signals(r#"{"a":1}"#)),
            "{event}"
        );
    }
    // In the default text format too, the signal values stay out, of executions and
    // evaluations alike, while the line names the execution.
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    for (path, body, status) in [
        (
            "/v1/executions",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{MARKED_SIGNALS},"execution_id":"log-text"}}"#
            ),
            201,
        ),
        (
            "/v1/evaluations",
            format!(r#"{{"policy":"claims-approval@1.0.0","signals":{MARKED_SIGNALS}}}"#),
            200,
        ),
    ] {
        let reply = served.post(path, token, &body);
        assert_eq!(reply.status, status, "{}", reply.text);
    }
    // (The evaluation's line is written after its answer: polled, bounded.)
    let log = (0..200)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            served.stderr()
        })
        .find(|log| log.matches("/v1/e").count() >= 2)
        .unwrap_or_else(|| served.stderr());
    assert!(log.contains("log-text"), "{log}");
    assert!(log.contains("/v1/evaluations"), "{log}");
    assert!(!log.contains("4321.5"), "{log}");
}

/// A refused policy reference or execution id may be as long as the body: a log line names only
/// what passed its check, so a line never grows with what was refused.
#[test]
fn a_refused_policy_or_id_is_never_written_into_a_log_line() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--log-format", "json"]);
    let token = served.token.as_deref();
    let long = "x".repeat(100_000);
    let bodies = [
        (
            "/v1/executions",
            format!(r#"{{"policy":"{long}","signals":{README_SIGNALS}}}"#),
        ),
        (
            "/v1/evaluations",
            format!(r#"{{"policy":"{long}","signals":{README_SIGNALS}}}"#),
        ),
        (
            "/v1/executions",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS},"execution_id":"{long} "}}"#
            ),
        ),
    ];
    for (route, body) in &bodies {
        let refused = served.post(route, token, body);
        assert_eq!(refused.status, 400, "{route}: {}", refused.text);
    }
    let events = || -> Vec<Value> {
        served
            .stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["status"] == 400)
            .collect()
    };
    let mut logged = events();
    for _ in 0..200 {
        if logged.len() == bodies.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        logged = events();
    }
    assert_eq!(logged.len(), bodies.len(), "{}", served.stderr());
    for event in &logged {
        let line = event.to_string();
        assert!(line.len() < 2_000, "a {} byte log line", line.len());
        assert!(!line.contains("xxxxxxxx"), "{line}");
    }
    // What was checked is still named: the policy of the request whose id was refused.
    assert_eq!(
        logged[2]["policy"], "claims-approval@1.0.0",
        "{}",
        logged[2]
    );
    assert_eq!(
        logged[2]["code"], "runtime.invalid_execution_id",
        "{}",
        logged[2]
    );
    assert_eq!(logged[2]["execution_id"], "", "{}", logged[2]);
}

/// The `host:port` of a server.
pub(crate) fn address(served: &Served) -> String {
    served.base.trim_start_matches("http://").to_owned()
}

/// Sends `request` on `stream` and reads one response (head and `Content-Length` body); an empty
/// string when the server closed the connection instead. A whole answer to an ordinary request
/// (a standard method on a path) is checked against `/openapi.json`, as every other reply is.
pub(crate) fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    let answer = exchange_unchecked(stream, request);
    let line = String::from_utf8_lossy(request.split(|b| *b == b'\r').next().unwrap_or_default())
        .into_owned();
    let mut words = line.split(' ');
    if let (Some(method), Some(path), Some("HTTP/1.1")) = (words.next(), words.next(), words.next())
        && ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"].contains(&method)
        && path.starts_with('/')
        && answer.starts_with("HTTP/1.1 ")
        && answer.contains("\r\n\r\n")
    {
        let reply = crate::harness::reply_of_raw(answer.as_bytes());
        crate::harness::check_against_openapi("", method, path, &reply);
    }
    answer
}

/// [`exchange`] without the check (for an answer cut short on purpose).
fn exchange_unchecked(stream: &mut TcpStream, request: &[u8]) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if stream.write_all(request).is_err() {
        return String::new();
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// A server polled for readiness by a client that keeps no idle connection: the polls leave no
/// connection slot taken.
fn start_unpooled(root: &std::path::Path, args: &[&str]) -> Served {
    let unpooled: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A server that stops answering fails its test instead of hanging the run.
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .max_idle_connections_per_host(0)
        .build()
        .into();
    Served::start_with_agent(root, args, &[], unpooled)
}

pub(crate) const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn oversized_request_heads_are_refused() {
    let env = deployment("memory", "");
    // (the server's flags, header value length, expected status line prefix): 16 KiB by default,
    // `--max-header-bytes` otherwise.
    let default: &[&str] = &["--dev-token"];
    let raised: &[&str] = &["--dev-token", "--max-header-bytes", "65536"];
    for (args, rows) in [
        (default, [(1_000, "HTTP/1.1 200"), (20_000, "HTTP/1.1 431")]),
        (raised, [(20_000, "HTTP/1.1 200"), (70_000, "HTTP/1.1 431")]),
    ] {
        let served = Served::start(env.root(), args);
        // Refusals HTTP/1.1 made itself, before the router (a bare 431, no error body).
        let mut unrouted = 0;
        for (length, expected) in rows {
            let mut stream = TcpStream::connect(address(&served)).unwrap();
            let request = format!(
                "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
                "a".repeat(length)
            );
            let answer = exchange(&mut stream, request.as_bytes());
            assert!(
                answer.starts_with(expected),
                "{args:?} {length}: {answer:?}"
            );
            unrouted +=
                usize::from(answer.starts_with("HTTP/1.1 431") && !answer.contains("server."));
            let reply = crate::harness::reply_of_raw(answer.as_bytes());
            crate::harness::check_against_openapi(&served.base, "GET", "/healthz", &reply);
        }
        // HTTP/1.1's parser holds at most 100 header fields, however small (docs/server.md):
        // `Host` and 99 more pass, one more is a bare `431`.
        for (fields, expected) in [(99, "HTTP/1.1 200"), (100, "HTTP/1.1 431")] {
            let mut stream = TcpStream::connect(address(&served)).unwrap();
            let padding: String = (0..fields).map(|n| format!("X-F{n}: a\r\n")).collect();
            let request = format!("GET /healthz HTTP/1.1\r\nHost: test\r\n{padding}\r\n");
            let answer = exchange(&mut stream, request.as_bytes());
            assert!(
                answer.starts_with(expected),
                "{args:?} {fields}: {answer:?}"
            );
            unrouted +=
                usize::from(answer.starts_with("HTTP/1.1 431") && !answer.contains("server."));
        }
        assert!(
            unrouted >= 1,
            "{args:?}: no head was refused before the router"
        );
        // The heads refused before the router (one too large, one of too many fields) and a
        // connection that sends nothing are counted as connections without a request — the
        // requests answered are not.
        drop(TcpStream::connect(address(&served)).unwrap());
        let series = "parmana_connections_without_request_total";
        let expected = u64::try_from(unrouted).unwrap() + 1;
        let counted = (0..400).any(|_| {
            let done =
                crate::harness::metric_with(&served, served.token.as_deref(), series) == expected;
            if !done {
                std::thread::sleep(Duration::from_millis(25));
            }
            done
        });
        assert!(
            counted,
            "{series}: {} (expected {expected})",
            crate::harness::metric_with(&served, served.token.as_deref(), series)
        );
    }
}

#[test]
fn a_limit_outside_what_the_server_can_keep_stops_it_at_start() {
    let env = deployment("memory", "");
    // Each limit just outside its range (the server's unit tests walk every end); a count no
    // semaphore holds once made the server panic.
    for (flag, value) in [
        ("--max-header-bytes", "4096"),
        ("--max-header-bytes", "2000000"),
        ("--max-body-bytes", "0"),
        ("--max-concurrency", "18446744073709551615"),
        ("--max-connections", "0"),
        ("--request-timeout-ms", "0"),
        ("--idle-timeout-ms", "99"),
        ("--idle-timeout-ms", "3600001"),
        ("--shutdown-grace-ms", "18446744073709551615"),
        ("--sequence-interval-ms", "0"),
        ("--max-connection-age-ms", "999"),
        ("--max-connection-age-ms", "86400001"),
    ] {
        let (exit, _, stderr) = crate::harness::parmana(
            env.root(),
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--dev-token",
                flag,
                value,
            ],
        );
        assert_eq!(exit, 2, "{flag} {value}: {stderr}");
        let name = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            stderr.contains("server.limit_out_of_range") && stderr.contains(&name),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn connections_that_send_no_request_in_time_are_closed() {
    let env = deployment("memory", "");
    let served = start_unpooled(
        env.root(),
        &[
            "--dev-token",
            "--max-connections",
            "3",
            // Long enough that a loaded machine does not close the connections before the
            // watcher sees all three open.
            "--idle-timeout-ms",
            "3000",
        ],
    );
    let token = served.token.clone().unwrap();
    let metrics =
        format!("GET /metrics HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n");
    // A kept-alive connection that watches the count of open connections, once it is the only
    // one open: the readiness polls' connections, which the server notices closed
    // asynchronously, have let go of their slots by then.
    let kept = open_connections_become(&served, None, metrics.as_bytes(), 1);
    // One connection silent from the start and one trickling a request head it never ends:
    // both hold slots (all three are held then).
    let mut silent = TcpStream::connect(address(&served)).unwrap();
    let mut trickling = TcpStream::connect(address(&served)).unwrap();
    trickling.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut kept = open_connections_become(&served, kept, metrics.as_bytes(), 3);
    // Each is closed by the server (read: end of stream), the watcher too once it sends
    // nothing more after its answer.
    for (name, stream) in [
        ("silent", &mut silent),
        ("trickling", &mut trickling),
        ("kept alive", kept.as_mut().unwrap()),
    ] {
        // Closed within 8 s (the idle timeout is 3 s; the request timeout, 10 s, would not
        // close it in time).
        stream
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let mut rest = Vec::new();
        // Closed: the read ends, with no answer (or a 4xx, should HTTP/1.1 ever give one).
        let read = stream.read_to_end(&mut rest);
        assert!(read.is_ok(), "{name}: {read:?}");
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 4"),
            "{name}: {text:?}"
        );
    }
    // The three slots are free again: a new connection comes to be the only one open.
    open_connections_become(&served, None, metrics.as_bytes(), 1);
}

/// A kept-alive connection serves on until it is older than `max_connection_age_ms`; its first
/// answer after that says `Connection: close`, whole, and the server then closes it — the close a
/// client expects between two requests.
#[test]
fn a_connection_past_its_maximum_age_is_closed_after_its_next_answer() {
    let env = deployment("memory", "");
    let served = start_unpooled(
        env.root(),
        &["--dev-token", "--max-connection-age-ms", "1000"],
    );
    let mut stream = TcpStream::connect(address(&served)).unwrap();
    let young = exchange(&mut stream, HEALTHZ);
    assert!(young.starts_with("HTTP/1.1 200"), "{young}");
    assert!(
        !young.to_ascii_lowercase().contains("connection: close"),
        "{young}"
    );
    std::thread::sleep(Duration::from_millis(1_200));
    let old = exchange(&mut stream, HEALTHZ);
    assert!(old.starts_with("HTTP/1.1 200"), "{old}");
    assert!(
        old.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{old}"
    );
    // Then the end of the stream, with nothing more.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    assert!(stream.read_to_end(&mut rest).is_ok());
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // A new connection serves as before.
    let mut fresh = TcpStream::connect(address(&served)).unwrap();
    assert!(exchange(&mut fresh, HEALTHZ).starts_with("HTTP/1.1 200"));
}

/// A request still being answered when its connection passes its write deadline (its age and
/// an idle timeout after its last answer) is answered whole: while a request is being answered the
/// deadline waits. hyper flushes, with nothing to write, at every turn of a connection: a deadline
/// judged there cut the request off between its head and its answer, here when the first part of
/// its body came.
#[test]
fn a_request_being_answered_past_the_write_deadline_is_answered_whole_then_closed() {
    let env = deployment("memory", "");
    let served = start_unpooled(
        env.root(),
        &[
            "--dev-token",
            "--max-connection-age-ms",
            "1000",
            "--idle-timeout-ms",
            "2000",
        ],
    );
    let token = served.token.clone().unwrap();
    let mut stream = TcpStream::connect(address(&served)).unwrap();
    assert!(exchange(&mut stream, HEALTHZ).starts_with("HTTP/1.1 200"));
    // The write deadline: 3 s after the accept (the age, 1 s, later than that answer, then the
    // idle timeout). The next head comes well within the idle timeout, its body after the deadline,
    // in two parts.
    std::thread::sleep(Duration::from_millis(1_000));
    let body = r#"{"policy":"claims-approval@1.0.0","signals":{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}}"#;
    let head = format!(
        "POST /v1/evaluations HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(2_600));
    let (first, rest) = body.split_at(20);
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let answer = exchange(&mut stream, rest.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains(r#""decision":"#), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
}

/// A kept-alive connection (`watcher`, or a new one) over which `/metrics` (the `request`)
/// reads `parmana_connections_open` as `count`, retried a while (a connection closed
/// unanswered is replaced); the test fails if it never does.
fn open_connections_become(
    served: &Served,
    mut watcher: Option<TcpStream>,
    request: &[u8],
    count: u64,
) -> Option<TcpStream> {
    let mut seen = None;
    for _ in 0..400 {
        let stream = watcher.get_or_insert_with(|| TcpStream::connect(address(served)).unwrap());
        let answer = exchange(stream, request);
        if !answer.starts_with("HTTP/1.1 200") {
            watcher = None;
        } else {
            seen = answer
                .lines()
                .find_map(|line| line.strip_prefix("parmana_connections_open "))
                .map(|value| value.trim().parse::<u64>().unwrap());
            if seen == Some(count) {
                return watcher;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "parmana_connections_open never read {count} (last {seen:?}): {}",
        served.stderr()
    );
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_and_frees_its_slot() {
    let env = deployment("memory", "");
    // Unpooled: the harness keeps no connection of its own open to hold the one slot.
    let served = start_unpooled(
        env.root(),
        &[
            "--dev-token",
            "--max-connections",
            "1",
            // Long enough that a loaded machine (CI runs tests side by side on two cores) does not
            // close the connection before its first answer begins.
            "--idle-timeout-ms",
            "1000",
        ],
    );
    // The only connection pipelines far more answers than the socket buffers hold (each
    // `/openapi.json` is tens of KiB) and never reads one: the server's writes wait on a shut
    // window. The head-read timer does not run then; the write stall must close it.
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut pipelined = Vec::new();
    for _ in 0..300 {
        pipelined.extend_from_slice(request);
    }
    // Retried while the only slot is still held by a readiness poll's connection, which the
    // server notices closed asynchronously (a connection past the limit is closed unanswered).
    let greedy = (0..200).find_map(|_| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // A small receive buffer (set before connecting, so the window stays small): the
        // server's first answers fill it and its socket's send buffer, then every write waits.
        socket.set_recv_buffer_size(1024).unwrap();
        let target: std::net::SocketAddr = address(&served).parse().unwrap();
        socket.connect(&target.into()).unwrap();
        let mut greedy: TcpStream = socket.into();
        greedy
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // It holds the slot: its first answer begins (read a few bytes, then nothing more).
        let mut start = [0u8; 12];
        let held = greedy.write_all(&pipelined).is_ok()
            && greedy.read_exact(&mut start).is_ok()
            && &start == b"HTTP/1.1 200";
        if !held {
            std::thread::sleep(Duration::from_millis(25));
        }
        held.then_some(greedy)
    });
    let mut greedy = greedy.expect("no connection ever held the only slot");
    // Closed within 10 s (the stall limit is 1 s), its slot serving another client again.
    let fresh = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let mut fresh = TcpStream::connect(address(&served)).ok()?;
        fresh
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let answer = exchange(&mut fresh, HEALTHZ);
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    });
    assert!(fresh.is_some(), "the stalled connection kept the only slot");
    // What the greedy client reads ends: the server closed its side.
    greedy
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let read = greedy.read_to_end(&mut rest);
    assert!(
        !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "{read:?} after {} bytes",
        rest.len()
    );
}

#[test]
fn an_explanation_whose_trace_could_pass_its_budget_is_refused_before_it_is_made() {
    let env = deployment("memory", "");
    // The trace budget is four times the body limit: 2 KiB here, less than the policy's rules
    // and conditions written out (`trace_bytes_bound`) and its dozen conditions times the
    // signals' 82 bytes.
    let served = Served::start(env.root(), &["--dev-token", "--max-body-bytes", "512"]);
    let token = served.token.as_deref();
    let body = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{MARKED_SIGNALS}}}"#);
    assert_eq!(served.post("/v1/evaluations", token, &body).status, 200);
    let refused = served.post("/v1/evaluations?explain=true", token, &body);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (413, "server.explain_too_large"),
        "{}",
        refused.text
    );
    // With the default limits the same explanation is made.
    let roomy = Served::start(env.root(), &["--dev-token"]);
    let explained = roomy.post(
        "/v1/evaluations?explain=true",
        roomy.token.as_deref(),
        &body,
    );
    assert_eq!(explained.status, 200, "{}", explained.text);
    assert!(explained.json()["trace"].is_object() || explained.json()["trace"].is_array());
    // A batch: each signal set gets a trace of its own, the policy's rules and conditions
    // written out once per set. With a 256 KiB budget, ten sets are explained and a hundred
    // tiny ones are refused (counting the conditions' names once for the whole batch, as
    // before, let them through).
    let batched = Served::start(env.root(), &["--dev-token", "--max-body-bytes", "65536"]);
    let batch = |sets: usize| {
        let items = vec![MARKED_SIGNALS; sets].join(",");
        format!(r#"{{"policy":"claims-approval@1.0.0","batch":[{items}]}}"#)
    };
    let token = batched.token.as_deref();
    let ten = batched.post("/v1/evaluations?explain=true", token, &batch(10));
    assert_eq!(ten.status, 200, "{}", ten.text);
    let hundred = batched.post("/v1/evaluations?explain=true", token, &batch(100));
    assert_eq!(
        (hundred.status, hundred.code().as_str()),
        (413, "server.explain_too_large"),
        "{}",
        hundred.text
    );
    assert_eq!(
        batched.post("/v1/evaluations", token, &batch(100)).status,
        200
    );
}

#[test]
fn http2_in_clear_text_is_not_spoken() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    // HTTP/2 with prior knowledge: the connection preface, then an empty SETTINGS frame. An
    // HTTP/2 server answers with its own SETTINGS frame (binary); this one speaks HTTP/1.1 only,
    // whose limits and timeouts are the ones configured, and refuses the preface.
    let mut stream = TcpStream::connect(address(&served)).unwrap();
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let answer = exchange(&mut stream, &preface);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 "),
        "{answer:?}"
    );
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer:?}");
}

#[test]
fn any_method_a_client_invents_is_counted_as_other() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    // Each invented method, on a known path and an unknown one, without a token: labelled as
    // given, each would be a series `/metrics` keeps for the process's life.
    for n in 0..40 {
        for path in ["/healthz", "/no-such-route"] {
            let mut stream = TcpStream::connect(address(&served)).unwrap();
            let request = format!("INVENTED{n} {path} HTTP/1.1\r\nHost: test\r\n\r\n");
            let answer = exchange(&mut stream, request.as_bytes());
            assert!(answer.starts_with("HTTP/1.1 4"), "{answer:?}");
        }
    }
    let metrics = served.get("/metrics", served.token.as_deref()).text;
    assert!(!metrics.contains("INVENTED"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("parmana_http_requests_total")
                && line.contains(r#"method="OTHER""#)
                && line.contains(r#"route="/healthz""#)),
        "{metrics}"
    );
}

#[test]
fn connections_over_the_limit_are_closed_and_a_freed_slot_serves_again() {
    let env = deployment("memory", "");
    let served = start_unpooled(env.root(), &["--dev-token", "--max-connections", "2"]);
    // Two kept-alive connections take both slots (retried while the server is still releasing
    // the readiness polls' connections, which it notices closed asynchronously).
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..200 {
        if held.len() == 2 {
            break;
        }
        let mut stream = TcpStream::connect(address(&served)).unwrap();
        if exchange(&mut stream, HEALTHZ).starts_with("HTTP/1.1 200") {
            held.push(stream);
        } else {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    assert_eq!(
        held.len(),
        2,
        "two connections never held: {}",
        served.stderr()
    );
    // A third is closed when accepted, with no answer, and counted so.
    let token = served.token.clone().unwrap();
    let metrics =
        format!("GET /metrics HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut refused = || {
        let answer = exchange(&mut held[0], metrics.as_bytes());
        answer
            .lines()
            .find_map(|line| line.strip_prefix("parmana_connections_refused_total "))
            .map(|value| value.trim().parse::<u64>().unwrap())
            .unwrap()
    };
    let refused_before = refused();
    let mut third = TcpStream::connect(address(&served)).unwrap();
    assert_eq!(exchange(&mut third, HEALTHZ), "");
    assert_eq!(refused(), refused_before + 1);
    // Both held connections still serve.
    for stream in &mut held {
        assert!(exchange(stream, HEALTHZ).starts_with("HTTP/1.1 200"));
    }
    // Closing one frees its slot (the server notices the close asynchronously: retry).
    held.truncate(1);
    let served_again = (0..200).any(|_| {
        let mut stream = TcpStream::connect(address(&served)).unwrap();
        let answer = exchange(&mut stream, HEALTHZ);
        if answer.starts_with("HTTP/1.1 200") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
        false
    });
    assert!(
        served_again,
        "a freed slot never served: {}",
        served.stderr()
    );
}

/// `parmana serve ARGS` (with `--listen 127.0.0.1:0 --dev-token`) started by `sh` under `ulimits`
/// (a `ulimit` command line) in `dir`: the child, its stdout piped, and its stderr's file.
fn serve_under_ulimit(
    dir: &std::path::Path,
    ulimits: &str,
    args: &[&str],
) -> (std::process::Child, std::path::PathBuf) {
    let log = dir.join("ulimit-stderr.log");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ulimits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_parmana"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dev-token"])
        .args(args)
        .current_dir(dir)
        .env_remove("PARMANA_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// The soft and hard limits on open files of process `pid` (`u64::MAX`: unlimited).
pub(crate) fn open_files_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let values: Vec<u64> = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .map(|rest| {
            rest.split_whitespace()
                .take(2)
                .map(|value| value.parse().unwrap_or(u64::MAX))
                .collect()
        })
        .unwrap_or_else(|| panic!("{limits}"));
    (values[0], values[1])
}

/// Waits for the `listening on` line of a server started by [`serve_under_ulimit`]; then its
/// soft limit on open files and its stderr so far, the server stopped.
fn served_under_ulimit(mut child: std::process::Child, log: &std::path::Path) -> (u64, String) {
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(
        first.starts_with("listening on "),
        "{first:?}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let (soft, _) = open_files_limits(&child.id().to_string());
    // (The start's log lines are written before the address is printed.)
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    (soft, std::fs::read_to_string(log).unwrap())
}

/// `max_connections` needs a descriptor each (and the requests in flight and a reserve theirs):
/// under the common soft limit of 1,024 the server raises its soft limit as far as the defaults
/// need, and says so (before, `accept` failed at the limit before the connection limit was
/// reached, and so did every file the server opened); where the hard limit is lower, a
/// `max_connections` left at its default is lowered to fit, with a warning, and one that was set
/// refuses the start — before the store is created.
#[test]
fn the_limit_on_open_files_is_raised_for_max_connections_or_the_start_refused() {
    let env = deployment("memory", "");
    // 1,024 connections, 256 requests in flight, 64 in reserve.
    let needed = 1024 + 256 + 64;
    let (_, hard) = open_files_limits("self");
    if hard >= needed {
        let (child, log) =
            serve_under_ulimit(env.root(), "ulimit -S -n 1024", &["--store", "memory"]);
        let (soft, stderr) = served_under_ulimit(child, &log);
        assert_eq!(soft, needed, "{stderr}");
        assert!(
            stderr.contains("raised the limit on open files"),
            "{stderr}"
        );
    }
    // A hard limit of 512: the default is lowered to 512 - 256 - 64 = 192 connections.
    let (child, log) = serve_under_ulimit(env.root(), "ulimit -n 512", &["--store", "memory"]);
    let (soft, stderr) = served_under_ulimit(child, &log);
    assert!(soft <= 512, "{soft}");
    assert!(
        stderr.contains(
            "warning[server.max_connections_lowered]: max_connections lowered from 1024 to 192"
        ),
        "{stderr}"
    );
    // Set, it is kept: the start is refused, and no store is left behind.
    let (mut child, log) = serve_under_ulimit(
        env.root(),
        "ulimit -n 512",
        &[
            "--store",
            "sqlite:refused.sqlite3",
            "--max-connections",
            "1024",
        ],
    );
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("server.descriptor_limit")
            && stderr.contains(&format!("need {needed} open files")),
        "{stderr}"
    );
    assert!(
        !env.root().join("refused.sqlite3").exists(),
        "a store was left behind"
    );
    // `parmana config` shows the value `serve` would serve with, under the same limit.
    let shown = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 512 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_parmana"))
        .args(["--format", "json", "config"])
        .current_dir(env.root())
        .env_remove("PARMANA_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}");
    let config: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = &config["settings"]["server.max_connections"];
    assert_eq!(
        (&row["value"], &row["source"]),
        (&serde_json::json!(192), &serde_json::json!("default")),
        "{stdout}"
    );
}

/// A request body cut short — its client ends the connection before the `Content-Length` it
/// declared has arrived — is `400 server.invalid_request` (as nginx logs a client that
/// "prematurely closed connection" while sending its body): answered to a client that only shut
/// its sending side, logged so (or as `499`, had HTTP/1.1 dropped the request first) for one that
/// closed the connection whole, and nothing is executed either way.
#[test]
fn a_body_cut_short_is_a_bad_request_and_logged_as_one() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token", "--log-format", "json"]);
    let token = served.token.clone().unwrap();
    let head = format!(
        "POST /v1/executions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"policy\":"
    );
    // Shut for writing only: the answer still arrives.
    let mut half = TcpStream::connect(address(&served)).unwrap();
    half.write_all(head.as_bytes()).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    half.read_to_end(&mut answer).unwrap();
    let reply = crate::harness::reply_of_raw(&answer);
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (400, "server.invalid_request"),
        "{}",
        reply.text
    );
    crate::harness::check_against_openapi("", "POST", "/v1/executions", &reply);
    // Closed whole, after part of the body: no answer is read, and the request is logged as the
    // first one was.
    let mut whole = TcpStream::connect(address(&served)).unwrap();
    whole.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(whole);
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = served
            .stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["route"] == "/v1/executions")
            .collect();
        if lines.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(lines.len(), 2, "{}", served.stderr());
    assert_eq!(
        (&lines[0]["status"], &lines[0]["code"]),
        (&Value::from(400), &Value::from("server.invalid_request")),
        "{}",
        lines[0]
    );
    // Closed whole: 400 where the handler read the body's end before HTTP/1.1 dropped the
    // request, else 499 (the client closed before the answer) — never anything executed.
    let closed = (&lines[1]["status"], &lines[1]["code"]);
    assert!(
        closed == (&Value::from(400), &Value::from("server.invalid_request"))
            || closed == (&Value::from(499), &Value::from("server.client_closed")),
        "{}",
        lines[1]
    );
    let metrics = served.get("/metrics", Some(&token)).text;
    // The store was asked for nothing but what the server itself reads (no claim, no
    // completion), and no execution was counted.
    assert!(
        metrics.contains(
            r#"parmana_store_operation_duration_seconds_count{operation="accepted_versions"}"#
        ) && !metrics.contains(r#"operation="claim"#)
            && !metrics.contains(r#"operation="complete"#)
            && !metrics.contains("parmana_executions_total{"),
        "{metrics}"
    );
}
