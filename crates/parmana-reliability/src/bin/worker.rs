//! The reliability worker: a separate process executing requests through the runtime library, so that tests can SIGKILL it or race several of it.
//!
//! ```text
//! parmana-reliability-worker crash ENV_ROOT SQLITE_PATH FIRST_INDEX [COUNT]
//! parmana-reliability-worker race ENV_ROOT TARGET CONTENDER COUNT START_FILE THREADS PAUSE_AT
//! ```
//!
//! `crash` executes `crash-<n>` for n = FIRST_INDEX, FIRST_INDEX+1, … until killed (or COUNT
//! requests were made) and prints `ACK <id> <attestation>` only after `execute_from_signals`
//! returned it (acknowledged), `REFUSED <id> <code> <class>` otherwise.
//! `race` waits for START_FILE to exist, then submits every race id once from each of THREADS
//! threads (contenders CONTENDER*THREADS …) and prints `WON <id> <digest of attestation>` for
//! each win and a final `DONE won=… replay=… other=…`; after PAUSE_AT ids its threads stop
//! and write `START_FILE.half.CONTENDER` until `START_FILE.resume` exists (a mid-race checkpoint).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parmana_canon::Digest;
use parmana_reliability::{
    attestation_signer, fixed_clock, fixed_now, open_target, race_order, race_request,
    stream_request,
};
use parmana_runtime::{RuntimeEnvironment, RuntimeEnvironmentConfig, execute_from_signals};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("crash") => crash(&args[1..]),
        Some("race") => race(&args[1..]),
        _ => Err("usage: parmana-reliability-worker crash|race …".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("worker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn arg<'a>(args: &'a [String], index: usize, name: &str) -> Result<&'a str, String> {
    args.get(index)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {name}"))
}

fn number(args: &[String], index: usize, name: &str) -> Result<u64, String> {
    arg(args, index, name)?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

fn load(root: &str) -> Result<RuntimeEnvironment, String> {
    RuntimeEnvironment::load(
        &RuntimeEnvironmentConfig::standard_layout(Path::new(root)),
        fixed_now(),
    )
    .map_err(|e| format!("load: {} {e}", e.code()))
}

fn crash(args: &[String]) -> Result<(), String> {
    let root = arg(args, 0, "ENV_ROOT")?;
    let path = arg(args, 1, "SQLITE_PATH")?;
    let first = number(args, 2, "FIRST_INDEX")?;
    let count = if args.len() > 3 {
        number(args, 3, "COUNT")?
    } else {
        1_000_000
    };
    let environment = load(root)?;
    let signer = attestation_signer(Path::new(root)).map_err(|e| e.to_string())?;
    let store = open_target(&format!("sqlite:{path}"), 1).map_err(|e| e.to_string())?;
    let clock = fixed_clock();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for n in first..first.saturating_add(count) {
        let id = format!("crash-{n:06}");
        let line = match stream_request(&id, n, n).and_then(|request| {
            execute_from_signals(&request, &signer, store.as_ref(), &environment, &clock)
        }) {
            Ok(attestation) => format!("ACK {id} {}", attestation.envelope_str()),
            Err(error) => format!("REFUSED {id} {} {:?}", error.code(), error.class()),
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where a race's threads meet midway: how many arrived, whether the leader let them go, and
/// whether any thread ended (a panic before the meeting: then no one waits for it).
#[derive(Default)]
struct Midway {
    arrived: AtomicU64,
    go: std::sync::atomic::AtomicBool,
    ended: std::sync::atomic::AtomicBool,
}

/// Marks the meeting as one no thread waits at any more once its thread ends, by a panic too.
struct EndsMidway<'a>(&'a Midway);

impl Drop for EndsMidway<'_> {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

/// Every thread of the process stops here; the leader, once all arrived, says so in
/// `half_file`, waits for `resume_file` and lets them go. Nothing waits more than two minutes,
/// nor once a thread ended: a watcher that never answers, or a thread that panicked, does not
/// hang the race.
fn pause_midway(midway: &Midway, threads: u64, leader: bool, half_file: &str, resume_file: &str) {
    midway.arrived.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    let wait_for = |done: &dyn Fn() -> bool| {
        while !done() && !midway.ended.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    if leader {
        wait_for(&|| midway.arrived.load(Ordering::SeqCst) >= threads);
        let _ = std::fs::write(half_file, b"half");
        wait_for(&|| Path::new(resume_file).exists());
        midway.go.store(true, Ordering::SeqCst);
    } else {
        wait_for(&|| midway.go.load(Ordering::SeqCst));
    }
}

fn race(args: &[String]) -> Result<(), String> {
    let root = arg(args, 0, "ENV_ROOT")?;
    let target = arg(args, 1, "TARGET")?;
    let contender = number(args, 2, "CONTENDER")?;
    let count = number(args, 3, "COUNT")?;
    let start_file = arg(args, 4, "START_FILE")?;
    let threads = number(args, 5, "THREADS")?.max(1);
    // After PAUSE_AT ids, the threads stop, say so (`START_FILE.half.CONTENDER`) and wait for
    // `START_FILE.resume`: the race's watcher takes a checkpoint then, mid-race for certain
    // (the watcher chooses PAUSE_AT so that the ids tried by then are fewer than all of them).
    let pause_at = number(args, 6, "PAUSE_AT")?;
    let half_file = format!("{start_file}.half.{contender}");
    let resume_file = format!("{start_file}.resume");
    let midway = Midway::default();
    let environment = load(root)?;
    let signer = attestation_signer(Path::new(root)).map_err(|e| e.to_string())?;
    let pool = usize::try_from(threads).map_err(|e| e.to_string())?;
    let store = open_target(target, pool).map_err(|e| e.to_string())?;
    let clock = fixed_clock();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !Path::new(start_file).exists() {
        if Instant::now() > deadline {
            return Err("never told to start".to_owned());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (won, replay, other) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let lines = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let contender = contender * threads + thread;
            let (environment, signer, store, clock) = (&environment, &signer, &store, &clock);
            let (won, replay, other, lines) = (&won, &replay, &other, &lines);
            let (midway, half_file, resume_file) = (&midway, &half_file, &resume_file);
            scope.spawn(move || {
                let _ends = EndsMidway(midway);
                for k in 0..count {
                    if k == pause_at {
                        pause_midway(midway, threads, thread == 0, half_file, resume_file);
                    }
                    let index = race_order(k, contender, count);
                    let execution_id = parmana_reliability::race_id(index);
                    let line = match race_request(index, contender).and_then(|request| {
                        execute_from_signals(&request, signer, store.as_ref(), environment, clock)
                    }) {
                        Ok(attestation) => {
                            won.fetch_add(1, Ordering::Relaxed);
                            format!(
                                "WON {} {}",
                                execution_id,
                                Digest::of(attestation.envelope())
                            )
                        }
                        Err(error) if error.code() == "runtime.replay_detected" => {
                            replay.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(error) => {
                            other.fetch_add(1, Ordering::Relaxed);
                            format!("ERROR {} {}", execution_id, error.code())
                        }
                    };
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
    });
    let mut out = std::io::stdout().lock();
    for line in lines.lock().map_err(|e| e.to_string())?.iter() {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    writeln!(
        out,
        "DONE won={} replay={} other={}",
        won.load(Ordering::Relaxed),
        replay.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    )
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}
