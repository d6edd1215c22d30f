//! The rounds in which `parmana serve --witness-url` has its checkpoints cosigned, watched from the witness's side: every witness asked at once (a silent one delays neither the others nor the next round), one request a round (each starting from the size the witness cosigned last), rounds backing off after failures, and none once the store was seen cut.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Served, deployment, execution_body, metric_with};
use crate::log_serve::LOG_KEY;
use crate::witness_serve::{
    WITNESS, Witness, executed_and_proven, executed_and_proven_then, name_a_witnessed_log,
};

/// A witness that never answers, listed first, delays neither the others nor the next round:
/// the checkpoint the other witness cosigned is served while the silent witness's request is
/// still waiting for its answer, and so is a later checkpoint (with an execution's proof), the
/// silent witness not asked again meanwhile. Asked one after another, the second witness would
/// only be asked once the server had given up on the first, 10 s later, closing its connection;
/// with a round waiting for every answer, the second checkpoint would wait as long.
#[test]
fn a_silent_witness_delays_none_of_the_others() {
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_witnessed_log(d);
    let witness = Witness::start(d);
    // Accepts connections, reads what is sent, answers nothing; counts the connections the
    // server closed, and notes when it first accepted one.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_base = format!("http://{}", silent.local_addr().unwrap());
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let first_accept: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (counting_accepted, counting_closed, noting) = (
        Arc::clone(&accepted),
        Arc::clone(&closed),
        Arc::clone(&first_accept),
    );
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            let Ok(mut stream) = stream else { continue };
            noting.lock().unwrap().get_or_insert_with(Instant::now);
            counting_accepted.fetch_add(1, Ordering::SeqCst);
            let closed = Arc::clone(&counting_closed);
            std::thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                while matches!(std::io::Read::read(&mut stream, &mut buffer), Ok(n) if n > 0) {}
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            &silent_base,
            "--witness-url",
            &witness.base,
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();
    let mut checkpoint = None;
    for _ in 0..320 {
        let answer = served.get("/log/checkpoint", token);
        if answer.status == 200 {
            checkpoint = Some(answer.text);
            break;
        }
        assert_eq!(answer.code(), "server.not_yet_cosigned", "{}", answer.text);
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let checkpoint = checkpoint.unwrap_or_else(|| panic!("never cosigned: {}", served.stderr()));
    assert!(
        checkpoint.contains(&format!("\n\u{2014} {WITNESS} ")),
        "{checkpoint}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the silent witness was never asked"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "the server gave up on the silent witness before the other's cosignature was served"
    );
    // A later checkpoint, cosigned by the other witness while the silent one's single request
    // still waits (read the moment the proof is served).
    let mut at_proof = None;
    let proof = executed_and_proven_then(d, &served, "silent-0001", || {
        at_proof = Some((
            accepted.load(Ordering::SeqCst),
            closed.load(Ordering::SeqCst),
            first_accept.lock().unwrap().map(|at| at.elapsed()),
        ));
    });
    assert!(proof.contains(&format!("\u{2014} {WITNESS} ")), "{proof}");
    let (asked, given_up, since) = at_proof.unwrap();
    assert_eq!(
        (asked, given_up),
        (1, 0),
        "the silent witness asked again, or given up on, before a later checkpoint was served \
         ({since:?} after it was first asked; the server gives up after 10 s)"
    );

    // Once the server gives up on it (10 s), its thread says so, though the round is long over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = |stderr: &str| {
        stderr.lines().any(|line| {
            line.contains("a witness did not cosign the checkpoint") && line.contains(&silent_base)
        })
    };
    while !said(&served.stderr()) {
        assert!(Instant::now() < deadline, "{}", served.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `add-checkpoint` request as a [`Proxy`] saw it: when it was answered, the old size it
/// started from, the size of the checkpoint sent, and the status answered.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    old_size: u64,
    size: u64,
    status: u16,
}

/// A witness in front of a real one, on loopback: forwards each request to it, or answers `503`
/// while `failing` is set; records every request.
struct Proxy {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    failing: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (seen, failing) = (Arc::default(), Arc::new(AtomicBool::new(false)));
        let (target, recorded, fail) = (target.to_owned(), Arc::clone(&seen), Arc::clone(&failing));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (target, recorded, fail) =
                    (target.clone(), Arc::clone(&recorded), Arc::clone(&fail));
                std::thread::spawn(move || forward(stream, &target, &recorded, &fail));
            }
        });
        Self {
            base,
            seen,
            failing,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until `count` requests were seen; what was seen.
    fn wait_for(&self, count: usize, served: &Served) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen().len() < count {
            assert!(
                Instant::now() < deadline,
                "{} requests seen, not {count}: {:?}\n{}",
                self.seen().len(),
                self.seen(),
                served.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        self.seen()
    }
}

/// Answers the HTTP/1.1 requests of one connection (kept alive), as [`Proxy`] does.
fn forward(stream: TcpStream, target: &str, seen: &Mutex<Vec<Seen>>, failing: &AtomicBool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
        let mut length = 0_usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0_u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // `old N`, the proof's lines, a blank line, then the checkpoint (origin, size, root …).
        let text = String::from_utf8(body.clone()).unwrap();
        let old_size = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .unwrap()
            .parse()
            .unwrap();
        let (_, checkpoint) = text.split_once("\n\n").unwrap();
        let size = checkpoint.lines().nth(1).unwrap().parse().unwrap();
        let (status, content_type, answer) = if failing.load(Ordering::SeqCst) {
            (
                503,
                "text/plain".to_owned(),
                b"failing on purpose\n".to_vec(),
            )
        } else {
            let mut response = agent
                .post(&format!("{target}{path}"))
                .send(&body[..])
                .unwrap();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_owned();
            let status = response.status().as_u16();
            (
                status,
                content_type,
                response.body_mut().read_to_vec().unwrap(),
            )
        };
        seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            old_size,
            size,
            status,
        });
        let head = format!(
            "HTTP/1.1 {status} Answer\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Seen from the witness (behind a [`Proxy`]), with a sequencer cadence of 2 s:
/// - each round is one request, starting from the size the witness cosigned last, answered `200`
///   (never a `409` and a second request);
/// - while the witness fails, the rounds back off: 1 s, then 2 s (the cadence) between them,
///   each failed round counted;
/// - once the store is seen cut, no round is made (none counted, nothing asked).
#[test]
fn the_server_asks_once_a_round_backs_off_after_failures_and_stops_at_a_cut() {
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_witnessed_log(d);
    let witness = Witness::start(d);
    let proxy = Proxy::start(&witness.base);
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            &proxy.base,
            "--sequence-interval-ms",
            "2000",
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();

    // Two executions, each proven against a cosigned checkpoint.
    executed_and_proven(d, &served, "round-0001");
    executed_and_proven(d, &served, "round-0002");
    let seen = proxy.seen();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.status == 200), "{seen:?}");
    assert_eq!(seen[0].old_size, 0, "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(pair[1].old_size, pair[0].size, "{seen:?}");
    }

    // The witness failing: a third execution makes a new checkpoint, whose rounds fail and back
    // off (sleeps are never shorter than asked: each gap is at least the wait).
    proxy.failing.store(true, Ordering::SeqCst);
    let before = seen.len();
    let executed = served.post("/v1/executions", token, &execution_body("round-0003"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let failed: Vec<Seen> = proxy.wait_for(before + 4, &served)[before..].to_vec();
    assert!(failed.iter().all(|s| s.status == 503), "{failed:?}");
    let gaps: Vec<Duration> = failed.windows(2).map(|w| w[1].at - w[0].at).collect();
    let at_least = [900, 1_900, 1_900].map(Duration::from_millis);
    for (gap, least) in gaps.iter().zip(at_least) {
        assert!(*gap >= least, "gaps {gaps:?}, at least {at_least:?}");
    }
    // Each failed round counted (the proxy records a request before the server hears its
    // answer: the count may trail the requests a moment).
    let failed_series = r#"parmana_checkpoint_cosignings_total{outcome="failed"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_with(&served, token, failed_series) < 4 {
        assert!(Instant::now() < deadline, "{}", served.stderr());
        std::thread::sleep(Duration::from_millis(25));
    }

    // The witness back, then the ledger's tail cut under the server: once the server has seen
    // the cut, no round (none failed, nothing asked) for three cadences.
    proxy.failing.store(false, Ordering::SeqCst);
    crate::witness_serve::cut_ledger_tail(&d.join("store.sqlite"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while served.get("/readyz", None).status == 200 {
        assert!(Instant::now() < deadline, "{}", served.stderr());
        std::thread::sleep(Duration::from_millis(25));
    }
    // A round that had begun as the cut was seen may still end (a cadence and more).
    std::thread::sleep(Duration::from_millis(2_500));
    let (asked, failed) = (
        proxy.seen().len(),
        metric_with(&served, token, failed_series),
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(proxy.seen().len(), asked, "{:?}", proxy.seen());
    assert_eq!(
        metric_with(&served, token, failed_series),
        failed,
        "{}",
        served.stderr()
    );
    drop(witness);
}
