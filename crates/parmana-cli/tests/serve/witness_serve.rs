//! The C2SP `tlog-witness` protocol through the binary: `parmana log witness --serve` on loopback, `parmana log cosign` submitting checkpoints with consistency proofs (409 then the proof), proofs verifying with a witness threshold, every refusal status of the specification from a real HTTP client, bounded bodies, a forked log refused, a restarted witness remembering its state and refusing to start without it (missing, a new one asked for beside it, one it did not cosign), silent connections closed after the idle timeout, bodies sent slowly holding no place among the requests decided at once, and `parmana serve --witness-url` serving the checkpoints and proofs its witnesses cosigned (one witness or two, down, or not required; its rounds are watched in witness_rounds_serve.rs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use parmana_runtime::canon::Digest;
use parmana_runtime::trust::{
    Checkpoint, LocalSigningKey, MAX_ADD_CHECKPOINT_BYTES, NoteKeyName, sign_checkpoint,
};

use crate::harness::{README_SIGNALS, deployment, eventually, parmana};
use crate::log_serve::{LOG_KEY, ORIGIN, name_a_log};

pub(crate) const WITNESS: &str = "witness.example/w1";

/// A running `parmana log witness --serve`; killed when dropped.
pub(crate) struct Witness {
    child: Child,
    pub(crate) base: String,
}

impl Witness {
    pub(crate) fn start(dir: &Path) -> Self {
        Self::start_with_state(dir, "witness-state.txt")
    }

    fn start_with_state(dir: &Path, state: &str) -> Self {
        Self::start_with(dir, state, &[])
    }

    /// Started on `state` (`--new-state` while there is none yet, as an operator starts a new
    /// witness) with `extra` arguments.
    fn start_with(dir: &Path, state: &str, extra: &[&str]) -> Self {
        Self::start_as(dir, state, extra, TEST_WITNESS)
    }

    /// [`start_with`](Self::start_with) for the witness of `(key, name)`.
    fn start_as(dir: &Path, state: &str, extra: &[&str], (key, name): (&str, &str)) -> Self {
        let new: &[&str] = if dir.join(state).exists() {
            &[]
        } else {
            &["--new-state"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_parmana"))
            .args(serve_args_as(state, (key, name)))
            .args([new, extra].concat())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its log, for the tests that read it (`witness.log` beside the state, appended to
            // by every witness started there).
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("witness.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address: {first:?}"))
            .to_owned();
        let mut key = String::new();
        stdout.read_line(&mut key).unwrap();
        // The key it prints is the one the trust root lists (`parmana log keys`).
        let (_, listed, _) = parmana(dir, &["log", "keys"]);
        let cosigner = key
            .trim()
            .strip_prefix("cosigner key: ")
            .unwrap_or_default();
        assert!(cosigner.starts_with(&format!("{name}+")), "{key}");
        assert!(
            listed.contains(&format!("witness {cosigner}\n")),
            "{key} / {listed}"
        );
        Self { child, base }
    }

    /// `POST /add-checkpoint` with `body`: status, content type, body.
    fn add(&self, body: &[u8]) -> (u16, String, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(&format!("{}/add-checkpoint", self.base))
            .send(body)
            .unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            response.status().as_u16(),
            content_type,
            response.body_mut().read_to_string().unwrap(),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent.get(&format!("{}{path}", self.base)).call().unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `parmana log witness --serve` on a free loopback port with the test witness's key and name.
fn serve_args(state: &str) -> [&str; 10] {
    serve_args_as(state, TEST_WITNESS)
}

/// The test witness's key file and name.
const TEST_WITNESS: (&str, &str) = ("trust/keys/policy.pem", WITNESS);

/// [`serve_args`] for the witness of `(key, name)`.
fn serve_args_as<'a>(state: &'a str, (key, name): (&'a str, &'a str)) -> [&'a str; 10] {
    [
        "log",
        "witness",
        "--serve",
        "127.0.0.1:0",
        "--key",
        key,
        "--name",
        name,
        "--state",
        state,
    ]
}

/// `parmana log witness --serve` on `state` with `extra` in `dir`, its stdout and stderr as given.
fn spawn_witness(dir: &Path, state: &str, extra: &[&str], stdout: Stdio, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_parmana"))
        .args(serve_args(state))
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The stderr of `parmana log witness --serve` on `state` with `extra`, which must refuse to
/// start (within 30 s: it refuses before it listens).
fn refused_start(dir: &Path, state: &str, extra: &[&str]) -> String {
    let mut child = spawn_witness(dir, state, extra, Stdio::null(), Stdio::piped());
    let exited = (0..1_200).find_map(|_| {
        let status = child.try_wait().unwrap();
        if status.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        status
    });
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the witness on {state} started");
    };
    assert!(!status.success(), "{state}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    parmana(dir, args)
}

fn execute(dir: &Path, store: &str, ids: &[String]) {
    for id in ids {
        let (code, out, err) = run(
            dir,
            &[
                "execute",
                "--policy",
                "claims-approval@1.0.0",
                "--signals",
                README_SIGNALS,
                "--execution-id",
                id,
                "--store",
                store,
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        std::fs::write(dir.join(format!("{id}.json")), out.trim_end()).unwrap();
    }
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Signs a checkpoint of `store` into `file`; its size.
fn checkpoint(dir: &Path, store: &str, file: &str) -> u64 {
    let (code, out, err) = run(
        dir,
        &["log", "checkpoint", "--key", LOG_KEY, "--store", store],
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.join(file), &out).unwrap();
    out.lines().nth(1).unwrap().parse().unwrap()
}

fn cosign(dir: &Path, store: &str, file: &str, url: &str, out: &str) -> (i32, String) {
    let (code, _, err) = run(
        dir,
        &[
            "log", "cosign", file, "--url", url, "--out", out, "--store", store,
        ],
    );
    (code, err)
}

fn state_size(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("witness-state.txt"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Names the log (as [`name_a_log`]) with the witness [`WITNESS`], threshold 1.
pub(crate) fn name_a_witnessed_log(dir: &Path) {
    name_a_log(
        dir,
        &[
            "--witness",
            &format!("{WITNESS}=trust/keys/policy.pub"),
            "--witness-threshold",
            "1",
        ],
    );
}

#[test]
fn a_witness_cosigns_over_http_refuses_forks_and_remembers_across_restarts() {
    const MAIN: &str = "sqlite:store.sqlite";
    let env = deployment(MAIN, "");
    let d = env.root();
    name_a_witnessed_log(d);
    execute(d, MAIN, &ids("w", 0..3));
    let size1 = checkpoint(d, MAIN, "cp1.txt");
    let witness = Witness::start(d);

    // A fresh witness cosigns the first checkpoint it sees (old size 0).
    let (code, err) = cosign(d, MAIN, "cp1.txt", &witness.base, "cp1-cosigned.txt");
    assert_eq!(code, 0, "{err}");
    let cosigned = std::fs::read_to_string(d.join("cp1-cosigned.txt")).unwrap();
    assert!(
        cosigned.contains(&format!("\n\u{2014} {WITNESS} ")),
        "{cosigned}"
    );
    assert_eq!(state_size(d), size1);
    // A proof against the cosigned checkpoint passes `verify --proof` with the witness threshold;
    // against the bare checkpoint it does not.
    for (checkpoint, expected) in [("cp1-cosigned.txt", 0), ("cp1.txt", 7)] {
        let (code, _, err) = run(
            d,
            &[
                "log",
                "prove",
                "w-0001",
                "--checkpoint",
                checkpoint,
                "--out",
                "w.tlog-proof",
                "--force",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = run(d, &["verify", "w-0001.json", "--proof", "w.tlog-proof"]);
        assert_eq!(code, expected, "{checkpoint}: {out}{err}");
    }

    // The log grows: the client learns the witness's size from its 409 and sends the proof.
    execute(d, MAIN, &ids("w", 3..7));
    let size2 = checkpoint(d, MAIN, "cp2.txt");
    // An `--out` that would be refused is refused before the witness is asked: it does not
    // move its state on for a cosignature that would be thrown away.
    std::fs::write(d.join("cp2-cosigned.txt"), "left from yesterday\n").unwrap();
    let (code, err) = cosign(d, MAIN, "cp2.txt", &witness.base, "cp2-cosigned.txt");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cli.output_exists"), "{err}");
    assert_eq!(state_size(d), size1);
    // So is one in a directory that is not there.
    let (code, err) = cosign(
        d,
        MAIN,
        "cp2.txt",
        &witness.base,
        "missing/cp2-cosigned.txt",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("io.error") && err.contains("missing/cp2-cosigned.txt"),
        "{err}"
    );
    assert_eq!(state_size(d), size1);
    std::fs::remove_file(d.join("cp2-cosigned.txt")).unwrap();
    let (code, err) = cosign(d, MAIN, "cp2.txt", &witness.base, "cp2-cosigned.txt");
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_size(d), size2);

    // Every refusal of the specification, from a plain HTTP client.
    let cp2 = std::fs::read_to_string(d.join("cp2.txt")).unwrap();
    let root_line = cp2.lines().nth(2).unwrap();
    let cases: Vec<(String, u16, &str)> = vec![
        // The old size is not the witness's: 409 with its size.
        (format!("old 0\n\n{cp2}"), 409, "text/x.tlog.size"),
        // An old size above the checkpoint's, a body that is no request: 400.
        (format!("old {}\n\n{cp2}", size2 + 1), 400, "text/plain"),
        ("hello\n".to_owned(), 400, "text/plain"),
        (format!("old 01\n\n{cp2}"), 400, "text/plain"),
        // Another log: 404. A signature that does not verify: 403.
        (
            format!(
                "old {size2}\n\n{}",
                cp2.replacen(ORIGIN, "log.example/other", 1)
            ),
            404,
            "text/plain",
        ),
        (
            format!(
                "old {size2}\n\n{}",
                cp2.replacen(root_line, &format!("{}=", "A".repeat(43)), 1)
            ),
            403,
            "text/plain",
        ),
        // A non-empty proof at the same size: 422.
        (
            format!("old {size2}\n{root_line}\n\n{cp2}"),
            422,
            "text/plain",
        ),
    ];
    for (body, status, media) in &cases {
        let (got, content_type, answer) = witness.add(body.as_bytes());
        assert_eq!(got, *status, "{body:?}: {answer}");
        assert!(content_type.starts_with(media), "{content_type}");
        if *status == 409 {
            assert_eq!(answer, format!("{size2}\n"));
        }
    }
    // The size it cosigned, with another root: a fork — 409 in plain text (not the size's
    // media type), nothing cosigned.
    let log_key = LocalSigningKey::read_pem_file(&d.join(LOG_KEY)).unwrap();
    let forked = sign_checkpoint(
        &Checkpoint::new(ORIGIN, size2, Digest::of(b"another tree")).unwrap(),
        &NoteKeyName::parse(ORIGIN).unwrap(),
        &log_key,
    )
    .unwrap();
    let (got, content_type, answer) = witness.add(format!("old {size2}\n\n{forked}").as_bytes());
    assert_eq!(got, 409, "{answer}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        answer.starts_with("runtime.witness_root_mismatch"),
        "{answer}"
    );
    assert_eq!(state_size(d), size2);
    // The witness's own log keeps both checkpoints, as evidence of the fork.
    let forked_root = forked.lines().nth(2).unwrap().to_owned();
    assert!(
        eventually(|| {
            std::fs::read_to_string(d.join("witness.log")).is_ok_and(|log| {
                log.lines().any(|line| {
                    line.contains("forks from the one this witness cosigned")
                        && line.contains(&forked_root)
                })
            })
        }),
        "{}",
        std::fs::read_to_string(d.join("witness.log")).unwrap_or_default()
    );
    // Bodies are bounded.
    let huge = vec![b'x'; MAX_ADD_CHECKPOINT_BYTES + 1];
    assert_eq!(witness.add(&huge).0, 413);
    // The same checkpoint again, from its own size with no proof, is cosigned again.
    let (got, _, answer) = witness.add(format!("old {size2}\n\n{cp2}").as_bytes());
    assert_eq!(got, 200, "{answer}");
    assert!(answer.starts_with(&format!("\u{2014} {WITNESS} ")) && answer.ends_with('\n'));
    // A requester's other signature lines (keys nobody listed, which verification ignores) are
    // not kept: a checkpoint padded to the note limit with them is cosigned, and the witness
    // keeps — and serves — the log's signature and its own only, so that its state never
    // passes what it may read back (it goes on answering, and starts again, below).
    let junk = format!("\u{2014} junk.example/x {}\n", "A".repeat(700));
    let mut padded = cp2.clone();
    while padded.len() + junk.len() < 65_000 {
        padded.push_str(&junk);
    }
    let (got, _, answer) = witness.add(format!("old {size2}\n\n{padded}").as_bytes());
    assert_eq!(got, 200, "{answer}");
    let state = std::fs::read_to_string(d.join("witness-state.txt")).unwrap();
    assert!(!state.contains("junk.example"), "{state}");
    assert_eq!(state.matches('\u{2014}').count(), 2, "{state}");
    // The monitoring endpoint serves the last cosigned checkpoint.
    let origin_hash = Digest::of(ORIGIN.as_bytes())
        .to_string()
        .replace("sha256:", "");
    let (got, latest) = witness.get(&format!("/{origin_hash}/checkpoint"));
    assert_eq!(got, 200);
    assert!(
        latest.starts_with(&cp2[..cp2.find("\n\n").unwrap()]),
        "{latest}"
    );
    assert!(!latest.contains("junk.example"), "{latest}");
    assert_eq!(witness.get("/0000/checkpoint").0, 404);

    // A log rewritten wholesale, signed by the same log key, larger than what the witness saw:
    // its consistency proof does not lead from the witness's root. Refused; the state stays.
    const FORK: &str = "sqlite:fork.sqlite";
    execute(d, FORK, &ids("fork", 0..12));
    assert!(checkpoint(d, FORK, "fork.txt") > size2);
    let (code, err) = cosign(d, FORK, "fork.txt", &witness.base, "fork-cosigned.txt");
    assert_ne!(code, 0);
    assert!(
        err.contains("server.witness_refused") && err.contains("422"),
        "{err}"
    );
    assert!(!d.join("fork-cosigned.txt").exists());
    assert_eq!(state_size(d), size2);

    // Restarted, the witness remembers the size it cosigned last and goes on from it.
    drop(witness);
    let witness = Witness::start(d);
    let (got, _, answer) = witness.add(format!("old 0\n\n{cp2}").as_bytes());
    assert_eq!((got, answer), (409, format!("{size2}\n")));
    execute(d, MAIN, &ids("w", 7..9));
    let size3 = checkpoint(d, MAIN, "cp3.txt");
    let (code, err) = cosign(d, MAIN, "cp3.txt", &witness.base, "cp3-cosigned.txt");
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_size(d), size3);
    // A one-off `parmana log witness` on the served witness's state file cosigns a newer
    // checkpoint: the served witness judges the next request against the file as it is then
    // (its lock is shared), not against what it cosigned last itself.
    execute(d, MAIN, &ids("w", 9..11));
    let size4 = checkpoint(d, MAIN, "cp4.txt");
    let (code, _, err) = run(
        d,
        &[
            "log",
            "witness",
            "cp4.txt",
            "--key",
            "trust/keys/policy.pem",
            "--name",
            WITNESS,
            "--state",
            "witness-state.txt",
            "--store",
            MAIN,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_size(d), size4);
    let cp4 = std::fs::read_to_string(d.join("cp4.txt")).unwrap();
    // Its monitoring endpoint serves the state as the file holds it now.
    let (got, latest) = witness.get(&format!("/{origin_hash}/checkpoint"));
    assert_eq!(got, 200);
    assert!(
        latest.starts_with(&cp4[..cp4.find("\n\n").unwrap()]),
        "{latest}"
    );
    let (got, _, answer) = witness.add(format!("old {size3}\n\n{cp4}").as_bytes());
    assert_eq!((got, answer), (409, format!("{size4}\n")));
    // A fresh witness: a checkpoint of size 0 must have the empty tree's root (422), and a
    // proof from 0 must be empty (422); the first checkpoint is then trusted (200).
    drop(witness);
    let fresh = Witness::start_with_state(d, "fresh-state.txt");
    let key = LocalSigningKey::read_pem_file(&d.join(LOG_KEY)).unwrap();
    let origin = NoteKeyName::parse(ORIGIN).unwrap();
    let wrong_empty = Checkpoint::new(ORIGIN, 0, Digest::of(b"not empty")).unwrap();
    let wrong_empty = sign_checkpoint(&wrong_empty, &origin, &key).unwrap();
    let (got, _, answer) = fresh.add(format!("old 0\n\n{wrong_empty}").as_bytes());
    assert_eq!(got, 422, "{answer}");
    let cp3 = std::fs::read_to_string(d.join("cp3.txt")).unwrap();
    let (got, _, answer) = fresh.add(format!("old 0\n{root_line}\n\n{cp3}").as_bytes());
    assert_eq!(got, 422, "{answer}");
    assert!(!d.join("fresh-state.txt").exists());
    let (got, _, answer) = fresh.add(format!("old 0\n\n{cp3}").as_bytes());
    assert_eq!(got, 200, "{answer}");
    drop(fresh);
    // The state is the witness's memory of what it cosigned: a start that would lose it — the
    // file missing without --new-state, --new-state beside one, a state this witness did not
    // cosign (a log-signed checkpoint put in its place) — is refused.
    for (state, extra, reason) in [
        ("lost-state.txt", &[][..], "a witness that lost its state"),
        (
            "fresh-state.txt",
            &["--new-state"][..],
            "has a state already",
        ),
        ("cp3.txt", &[][..], "no valid cosignature of this witness"),
    ] {
        let stderr = refused_start(d, state, extra);
        assert!(
            stderr.contains("runtime.witness_state_refused") && stderr.contains(reason),
            "{state}: {stderr}"
        );
    }
    // A store named to a serving witness, which reads none, is refused rather than ignored.
    let stderr = refused_start(d, "fresh-state.txt", &["--store", "memory"]);
    assert!(
        stderr.contains("'--serve <ADDRESS>' cannot be used with '--store <STORE>'"),
        "{stderr}"
    );
    // A witness that is not there is a typed failure.
    let (code, err) = cosign(d, MAIN, "cp3.txt", "http://127.0.0.1:9", "x.txt");
    assert_ne!(code, 0);
    assert!(err.contains("server.witness_unreachable"), "{err}");
}

#[test]
fn a_witness_closes_connections_that_send_no_request_in_time_and_answers_slow_bodies_503() {
    use std::io::Read;
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_witnessed_log(d);
    let witness = Witness::start_with(
        d,
        "witness-state.txt",
        // Long enough that a loaded machine sends the test's own requests in time.
        &["--idle-timeout-ms", "2000", "--request-timeout-ms", "3000"],
    );
    // Silent from the start, and trickling a head it never ends: each closed by the witness
    // within 10 s (the idle timeout is 2 s).
    let address = witness.base.trim_start_matches("http://");
    for partial in [&b""[..], b"POST /add-checkpoint HTTP/1.1\r\n"] {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        std::io::Write::write_all(&mut stream, partial).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let closed = stream.read_to_end(&mut rest);
        assert!(closed.is_ok(), "{partial:?}: {closed:?}");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    // Sixteen requests whose bodies never finish take no place among the sixteen decided at
    // once (a place is taken once a body is read): the next request is answered at once.
    let held: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            std::io::Write::write_all(
                &mut stream,
                b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 100\r\n\r\nold",
            )
            .unwrap();
            stream
        })
        .collect();
    let (status, _, body) = witness.add(b"old 0\n");
    assert_eq!(status, 400, "{body}");
    // A body that never finishes is answered at the request timeout (3 s): 503, asked to
    // retry, the connection closed.
    for mut stream in held.into_iter().take(1) {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.contains("no answer within 3000 ms"), "{answer}");
    }
    drop(witness);
    // Either timeout out of its range is refused at start.
    for flag in ["--idle-timeout-ms", "--request-timeout-ms"] {
        for value in ["0", "3600001"] {
            let mut args = serve_args("witness-state.txt").to_vec();
            args.extend([flag, value]);
            let (code, _, stderr) = run(d, &args);
            // Exit 2, as `serve` exits for the same code.
            assert_eq!(code, 2, "{flag} {value}: {stderr}");
            assert!(
                stderr.contains("server.limit_out_of_range"),
                "{flag} {value}: {stderr}"
            );
        }
    }
}

/// `parmana serve --witness-url`: where the trust root requires a witness, the server has each
/// checkpoint cosigned and serves the newest cosigned one — `/log/checkpoint` carries the
/// witness's cosignature and a served proof passes `verify --proof` offline — while before any
/// cosignature (the witness down) it answers `server.not_yet_cosigned` with `Retry-After`
/// instead of a checkpoint no verifier would take, says why in its log and counts the failed
/// round.
#[test]
fn the_server_serves_checkpoints_and_proofs_its_witnesses_cosigned() {
    use crate::harness::{Served, execution_body, metric_with};
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_witnessed_log(d);

    // A witness that does not answer (a port nothing listens on): nothing cosigned.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            &nowhere,
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();
    let executed = served.post("/v1/executions", token, &execution_body("wit-0001"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let failed_round = (0..400).any(|_| {
        let failed = metric_with(
            &served,
            token,
            r#"parmana_checkpoint_cosignings_total{outcome="failed"}"#,
        );
        if failed == 0 {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        failed > 0
    });
    assert!(failed_round, "{}", served.stderr());
    assert!(
        served
            .stderr()
            .contains("a witness did not cosign the checkpoint"),
        "{}",
        served.stderr()
    );
    let checkpoint = served.get("/log/checkpoint", token);
    assert_eq!(
        (checkpoint.status, checkpoint.code().as_str()),
        (503, "server.not_yet_cosigned"),
        "{}",
        checkpoint.text
    );
    assert_eq!(checkpoint.header("retry-after"), Some("1"));
    let proof = served.get("/v1/executions/wit-0001/proof", token);
    assert_eq!(
        (proof.status, proof.code().as_str()),
        (404, "server.not_yet_cosigned"),
        "{}",
        proof.text
    );
    drop(served);

    // With the witness running: cosigned, served, and verified offline.
    let witness = Witness::start(d);
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            &witness.base,
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();
    let proof = executed_and_proven(d, &served, "wit-0002");
    let checkpoint = served.get("/log/checkpoint", token);
    assert_eq!(checkpoint.status, 200, "{}", checkpoint.text);
    assert!(
        checkpoint.text.contains(&format!("\n\u{2014} {WITNESS} ")),
        "{}",
        checkpoint.text
    );
    assert!(proof.contains(&format!("\u{2014} {WITNESS} ")), "{proof}");
    assert!(
        metric_with(
            &served,
            token,
            r#"parmana_checkpoint_cosignings_total{outcome="cosigned"}"#,
        ) > 0,
        "{}",
        served.stderr()
    );

    // The witness gone: an execution after the newest cosigned checkpoint is not proven yet,
    // while the cosigned checkpoint stays served.
    drop(witness);
    let cosigned_size: u64 = checkpoint.text.lines().nth(1).unwrap().parse().unwrap();
    let later = served.post("/v1/executions", token, &execution_body("wit-0003"));
    assert_eq!(later.status, 201, "{}", later.text);
    let mut pending = None;
    for _ in 0..400 {
        let answer = served.get("/v1/executions/wit-0003/proof", token);
        if answer.code() == "server.not_yet_cosigned" {
            pending = Some(answer);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let pending = pending.unwrap_or_else(|| panic!("never sequenced: {}", served.stderr()));
    assert_eq!(pending.status, 404, "{}", pending.text);
    assert!(
        pending.text.contains(&format!("(size {cosigned_size})")),
        "{}",
        pending.text
    );
    assert_eq!(served.get("/log/checkpoint", token).text, checkpoint.text);

    // A reload to a new trust-root version whose log role is the same (the witness still
    // down): the kept cosigned checkpoint opens under it, and is still served.
    name_a_witnessed_log(d);
    let reloaded = served.post("/v1/admin/reload", token, "");
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    assert_eq!(served.get("/log/checkpoint", token).text, checkpoint.text);

    // The ledger's tail cut under the server: the cosigned checkpoint is no longer served (the
    // store no longer extends what was signed), as the log's own would not be.
    crate::witness_serve::cut_ledger_tail(&d.join("store.sqlite"));
    let mut refused = None;
    for _ in 0..400 {
        let answer = served.get("/log/checkpoint", token);
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let refused = refused.unwrap_or_else(|| panic!("still served: {}", served.stderr()));
    assert_eq!(refused.status, 500, "{}", refused.text);
}

/// Witnesses configured where the trust root requires none: the server says so at start, asks
/// them nothing, and serves the log's own checkpoints.
#[test]
fn witnesses_the_trust_root_does_not_require_are_not_asked() {
    use crate::harness::{Served, execution_body, metric_with};
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_log(d, &[]);
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            "http://127.0.0.1:9",
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();
    assert!(
        served.stderr().contains(
            "witnesses are configured (--witness-url) but the trust root's log role requires none"
        ),
        "{}",
        served.stderr()
    );
    let executed = served.post("/v1/executions", token, &execution_body("plain-0001"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let checkpoint = served.get("/log/checkpoint", token);
    assert_eq!(checkpoint.status, 200, "{}", checkpoint.text);
    assert!(!checkpoint.text.contains(WITNESS), "{}", checkpoint.text);
    // Past a round's cadence, still nothing asked.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    for outcome in ["cosigned", "failed"] {
        let series = format!(r#"parmana_checkpoint_cosignings_total{{outcome="{outcome}"}}"#);
        assert_eq!(
            metric_with(&served, token, &series),
            0,
            "{}",
            served.stderr()
        );
    }
}

/// Two witnesses required (threshold 2 of two): the server asks both, merges their
/// cosignatures, and serves a checkpoint carrying both, which a proof against it needs to pass
/// `verify --proof`.
#[test]
fn the_server_gathers_a_threshold_of_two_witnesses() {
    use crate::harness::Served;
    const SECOND: &str = "witness.example/w2";
    let env = deployment("sqlite:store.sqlite", "");
    let d = env.root();
    name_a_log(
        d,
        &[
            "--witness",
            &format!("{WITNESS}=trust/keys/policy.pub"),
            "--witness",
            &format!("{SECOND}=trust/keys/release.pub"),
            "--witness-threshold",
            "2",
        ],
    );
    let first = Witness::start(d);
    let second = Witness::start_as(
        d,
        "second-state.txt",
        &[],
        ("trust/keys/release.pem", SECOND),
    );
    let served = Served::start(
        d,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--witness-url",
            &first.base,
            "--witness-url",
            &second.base,
        ],
    );
    let token = served.token.clone();
    let token = token.as_deref();
    executed_and_proven(d, &served, "two-0001");
    let checkpoint = served.get("/log/checkpoint", token).text;
    for name in [WITNESS, SECOND] {
        assert_eq!(
            checkpoint.matches(&format!("\u{2014} {name} ")).count(),
            1,
            "{name}: {checkpoint}"
        );
    }
}

/// Deletes the last ledger record of the SQLite store at `database` (a writer of the store
/// cutting the log's tail under a running server).
pub(crate) fn cut_ledger_tail(database: &Path) {
    rusqlite::Connection::open(database)
        .unwrap()
        .execute(
            "DELETE FROM ledger WHERE position = (SELECT max(position) FROM ledger)",
            [],
        )
        .unwrap();
}

/// Executes `id` through `served`, waits (10 s at most) until its proof is served — each answer
/// before it `Retry-After: 1` — and checks it offline (`parmana verify --proof`, in `d`, with the
/// attestation and proof written as `{id}.json` and `{id}.tlog-proof`); the proof.
pub(crate) fn executed_and_proven(d: &Path, served: &crate::harness::Served, id: &str) -> String {
    executed_and_proven_then(d, served, id, || {})
}

/// [`executed_and_proven`], calling `at_proof` the moment the proof is first served (before it
/// is checked offline).
pub(crate) fn executed_and_proven_then(
    d: &Path,
    served: &crate::harness::Served,
    id: &str,
    at_proof: impl FnOnce(),
) -> String {
    let token = served.token.as_deref();
    let executed = served.post("/v1/executions", token, &crate::harness::execution_body(id));
    assert_eq!(executed.status, 201, "{}", executed.text);
    std::fs::write(
        d.join(format!("{id}.json")),
        executed.json()["attestation"].to_string(),
    )
    .unwrap();
    let path = format!("/v1/executions/{id}/proof");
    let mut proof = None;
    for _ in 0..400 {
        let answer = served.get(&path, token);
        if answer.status == 200 {
            proof = Some(answer.text);
            break;
        }
        assert_eq!(
            answer.header("retry-after"),
            Some("1"),
            "{}: {}",
            answer.status,
            answer.text
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let proof = proof.unwrap_or_else(|| panic!("never cosigned: {}", served.stderr()));
    at_proof();
    let (json, proof_file) = (format!("{id}.json"), format!("{id}.tlog-proof"));
    std::fs::write(d.join(&proof_file), &proof).unwrap();
    let (code, out, err) = run(d, &["verify", &json, "--proof", &proof_file]);
    assert_eq!(code, 0, "{out}{err}");
    proof
}

/// An `https://` witness is checked against the Web PKI roots built in, unless `--witness-ca`
/// (or `server.witness_ca`) names the authorities its certificate chains to: a server with a
/// certificate of a private CA (here `parmana serve` over TLS, which is no witness: it answers
/// `404`) is unreachable without them (`server.witness_unreachable`, the handshake refused) and
/// reached with them (its answer refused, `server.witness_refused`). A CA file that holds no
/// certificate is refused before anything is asked.
#[test]
fn an_https_witness_of_a_private_ca_is_reached_through_witness_ca() {
    use crate::tls_serve::{Authority, client, server_files};
    const MAIN: &str = "sqlite:store.sqlite";
    let env = deployment(MAIN, "");
    let d = env.root();
    name_a_witnessed_log(d);
    execute(d, MAIN, &ids("ca", 0..2));
    checkpoint(d, MAIN, "cp.txt");
    let ca = Authority::new("private witness CA");
    let https = deployment("memory", "");
    let (certificate, key) = server_files(https.root(), &ca);
    let (certificate, key) = (certificate.to_string_lossy(), key.to_string_lossy());
    let served = crate::harness::Served::start_with_agent(
        https.root(),
        &["--dev-token", "--tls-cert", &certificate, "--tls-key", &key],
        &[],
        client(&ca, None),
    );
    let url = format!("{}/witness", served.base);
    ca.write(&d.join("witness-ca.pem"));
    std::fs::write(d.join("empty.pem"), "").unwrap();
    std::fs::write(
        d.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cosign_with = |extra: &[&str]| {
        let mut args = vec!["log", "cosign", "cp.txt", "--url", &url, "--store", MAIN];
        args.extend_from_slice(extra);
        run(d, &args)
    };
    let (code, _, err) = cosign_with(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error[server.witness_unreachable]"), "{err}");
    let (code, _, err) = cosign_with(&["--witness-ca", "witness-ca.pem"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("error[server.witness_refused]") && err.contains("404"),
        "{err}"
    );
    for file in ["empty.pem", "garbage.pem"] {
        let (code, _, err) = cosign_with(&["--witness-ca", file]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains("error[server.tls_invalid]"), "{file}: {err}");
        assert!(err.contains("--witness-ca"), "{file}: {err}");
    }
    // From the deployment's `[server]` table too.
    std::fs::write(
        d.join("parmana.toml"),
        format!(
            "{}\n[server]\nwitness_ca = \"witness-ca.pem\"\n",
            std::fs::read_to_string(d.join("parmana.toml")).unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = cosign_with(&[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("error[server.witness_refused]"), "{err}");
    // `serve --witness-url`'s rounds alike: with the authorities (here from the file), the
    // witness is reached and refuses; with `PARMANA_WITNESS_CA` naming other ones, the
    // handshake is.
    let other = Authority::new("another CA");
    other.write(&d.join("other-ca.pem"));
    for (env, code) in [
        (None, "server.witness_refused"),
        (Some("other-ca.pem"), "server.witness_unreachable"),
    ] {
        let env: Vec<(&str, &str)> = env
            .map(|ca| ("PARMANA_WITNESS_CA", ca))
            .into_iter()
            .collect();
        let served = crate::harness::Served::start_with_env(
            d,
            &["--dev-token", "--log-key", LOG_KEY, "--witness-url", &url],
            &env,
        );
        assert!(
            eventually(|| served.stderr().contains(code)),
            "{code}: {}",
            served.stderr()
        );
    }
}
