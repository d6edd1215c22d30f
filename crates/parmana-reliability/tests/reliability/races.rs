//! Races through the runtime: 64 threads, and 4 processes, submit the same 2,000 execution ids (even ids with identical signals, odd ids with signals that differ per contender) against SQLite and PostgreSQL — exactly one attestation per id, every other submission `runtime.replay_detected`, the ledger intact; checkpoints of the transparency log taken while the race runs are each consistent with every later one, and no log entry is lost or doubled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use parmana_canon::Digest;
use parmana_reliability::{
    fixed_clock, fixed_now, open_target, postgres_url, race_order, race_request, unique_name,
};
use parmana_replay::{ReplayStore, sequence_all, verify_ledger};
use parmana_runtime::{RuntimeEnvironment, execute_from_signals, verify_attestation};
use parmana_testkit::FixtureEnvironment;

use crate::log_checks::{LogWatch, with_log};

/// Counts a contender as finished when it ends, even by a panic (so that the checkpointing
/// thread stops and the panic is reported rather than waited on).
struct Finished<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Lets the paused contenders go when the watcher ends, even by a panic (so that a failed check
/// is reported rather than waited on).
struct Resumes<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Resumes<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The pause between two checkpoints taken while a race runs.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Execution ids raced on.
const IDS: u64 = 2_000;
/// Threads in the in-process race, each submitting every id.
const THREADS: u64 = 64;
/// Processes in the multi-process race.
const PROCESSES: u64 = 4;
/// How many of the 64 threads submit each id: all of them on SQLite; on PostgreSQL, where every
/// submission is a network round trip, 16 (CI's time budget; the id set and thread count stay).
const SQLITE_THREADS_PER_ID: u64 = THREADS;
/// See [`SQLITE_THREADS_PER_ID`].
const POSTGRES_THREADS_PER_ID: u64 = 16;

/// The winners, as `id → digest of the returned attestation`; refused submissions.
#[derive(Debug, Default)]
struct Outcome {
    wins: Vec<(String, Digest)>,
    replays: u64,
    other_errors: Vec<String>,
}

/// Checks the promise: one winner per id, the store holds exactly the winners' attestations,
/// every one verifies, nothing is pending, the ledger is intact.
fn check_outcome(
    label: &str,
    outcome: &Outcome,
    contenders: u64,
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
) {
    assert!(
        outcome.other_errors.is_empty(),
        "{label}: {:?}",
        outcome.other_errors
    );
    let mut winners = BTreeMap::new();
    for (id, digest) in &outcome.wins {
        assert!(
            winners.insert(id.clone(), *digest).is_none(),
            "{label}: {id} won twice"
        );
    }
    assert_eq!(
        winners.len() as u64,
        IDS,
        "{label}: every id has exactly one winner"
    );
    assert_eq!(
        outcome.replays,
        contenders * IDS - IDS,
        "{label}: every other submission is a replay"
    );
    assert!(
        store.pending().unwrap().is_empty(),
        "{label}: nothing left pending"
    );
    // Every completion enters the log through the sequencer, exactly once.
    sequence_all(store).unwrap().unwrap();
    let ledger = verify_ledger(store).unwrap();
    assert_eq!(ledger.unsequenced, 0, "{label}");
    assert!(ledger.is_intact(), "{label}: {ledger:?}");
    assert_eq!(ledger.executions, IDS);
    let snapshot = store.ledger_snapshot().unwrap();
    // The execution records (the marks records aside).
    for (row, execution_id) in snapshot
        .rows
        .iter()
        .filter_map(|row| Some((row, row.execution_id.as_ref()?)))
    {
        let attestation = row.attestation.as_ref().unwrap();
        assert_eq!(
            Some(&Digest::of(attestation)),
            winners.get(execution_id),
            "{label}: the stored attestation of {execution_id} is the one its winner got"
        );
        let report = verify_attestation(attestation, environment.trust_root(), None, None);
        assert!(report.is_valid(), "{label}: {execution_id} does not verify");
    }
    eprintln!(
        "{label}: {} submissions per id x {IDS} ids = {} submissions, {} won, {} replay_detected",
        contenders,
        contenders * IDS,
        winners.len(),
        outcome.replays
    );
}

/// Races the 64 threads; each id is submitted by `per_id` of them (a divisor of 64), each
/// thread visiting its ids in its own order.
fn race_threads(label: &str, store: &dyn ReplayStore, per_id: u64) {
    let started = Instant::now();
    let fixture = FixtureEnvironment::new().unwrap();
    with_log(&fixture);
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let clock = fixed_clock();
    let outcome = std::sync::Mutex::new(Outcome::default());
    let barrier = std::sync::Barrier::new(THREADS as usize);
    let finished = std::sync::atomic::AtomicU64::new(0);
    // Once every contender together has tried at most half the ids, each stops until the
    // watcher has taken a checkpoint: one taken mid-race for certain (the log partly written),
    // beside those taken while they run.
    let paused = std::sync::atomic::AtomicU64::new(0);
    let resume = std::sync::atomic::AtomicBool::new(false);
    let mut log = LogWatch::default();
    std::thread::scope(|scope| {
        // Checkpoints while the contenders run, each checked against every earlier one.
        let (watch, finished_ref, environment_ref) = (&mut log, &finished, &environment);
        let (paused_ref, resume_ref) = (&paused, &resume);
        scope.spawn(move || {
            use std::sync::atomic::Ordering::SeqCst;
            // However the watcher ends (a failed check panics), the contenders go on.
            let _resume = Resumes(resume_ref);
            while finished_ref.load(SeqCst) < THREADS {
                watch.check(label, store, environment_ref);
                if !resume_ref.load(SeqCst) && paused_ref.load(SeqCst) == THREADS {
                    watch.check(label, store, environment_ref);
                    resume_ref.store(true, SeqCst);
                }
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        });
        for contender in 0..THREADS {
            let (environment, signer, clock, outcome, barrier, finished) =
                (&environment, &signer, &clock, &outcome, &barrier, &finished);
            let (paused, resume) = (&paused, &resume);
            scope.spawn(move || {
                use std::sync::atomic::Ordering::SeqCst;
                let _finished = Finished(finished);
                let mut mine = Outcome::default();
                barrier.wait();
                let groups = THREADS / per_id;
                for k in 0..IDS {
                    if k == IDS / (2 * THREADS) {
                        paused.fetch_add(1, SeqCst);
                        // (A contender that ended before this point panicked: no one waits.)
                        while !resume.load(SeqCst) && finished.load(SeqCst) == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                    let index = race_order(k, contender, IDS);
                    if index % groups != contender % groups {
                        continue;
                    }
                    let request = race_request(index, contender).unwrap();
                    match execute_from_signals(&request, signer, store, environment, clock) {
                        Ok(attestation) => mine.wins.push((
                            request.execution_id.to_string(),
                            Digest::of(attestation.envelope()),
                        )),
                        Err(e) if e.code() == "runtime.replay_detected" => mine.replays += 1,
                        Err(e) => mine.other_errors.push(format!(
                            "{}: {}",
                            request.execution_id,
                            e.code()
                        )),
                    }
                }
                let mut all = outcome.lock().unwrap();
                all.wins.extend(mine.wins);
                all.replays += mine.replays;
                all.other_errors.extend(mine.other_errors);
            });
        }
    });
    let outcome = outcome.into_inner().unwrap();
    check_outcome(label, &outcome, per_id, store, &environment);
    log.check(label, store, &environment);
    eprintln!("{label}: {} checkpoints checked", log.checkpoints());
    log.assert_one_taken_midway(label);
    eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
}

/// Races `PROCESSES` worker processes of `threads_per_process` threads each, every thread
/// submitting every id.
fn race_processes(label: &str, target: &str, threads_per_process: u64) {
    let started = Instant::now();
    let fixture = FixtureEnvironment::new().unwrap();
    with_log(&fixture);
    let environment = fixture.load_at(fixed_now()).unwrap();
    let start_file = fixture.root().join("start");
    let worker = env!("CARGO_BIN_EXE_parmana-reliability-worker");
    let children: Vec<_> = (0..PROCESSES)
        .map(|contender| {
            Command::new(worker)
                .arg("race")
                .arg(fixture.root())
                .arg(target)
                .arg(contender.to_string())
                .arg(IDS.to_string())
                .arg(&start_file)
                .arg(threads_per_process.to_string())
                // Where they stop for the mid-race checkpoint: by then, every contender
                // together has tried at most half the ids, so the log is partly written.
                .arg((IDS / (2 * PROCESSES * threads_per_process)).to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&start_file, b"go").unwrap();
    // The workers' output is read while checkpoints are taken from this process.
    let readers: Vec<_> = children
        .into_iter()
        .map(|mut child| {
            std::thread::spawn(move || {
                let mut text = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                (child.wait().unwrap().success(), text)
            })
        })
        .collect();
    let watched = open_target(target, 1).unwrap();
    let mut log = LogWatch::default();
    let half = |contender: u64| fixture.root().join(format!("start.half.{contender}"));
    let mut resumed = false;
    while readers.iter().any(|reader| !reader.is_finished()) {
        log.check(label, watched.as_ref(), &environment);
        // Every worker stopped midway: a checkpoint now is one taken mid-race for certain.
        if !resumed && (0..PROCESSES).all(|contender| half(contender).exists()) {
            log.check(label, watched.as_ref(), &environment);
            std::fs::write(fixture.root().join("start.resume"), b"go").unwrap();
            resumed = true;
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
    let mut outcome = Outcome::default();
    let finished: Vec<(bool, String)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    // A worker that failed (its error is on stderr) is named before the pause it never reached.
    assert!(
        finished.iter().all(|(success, _)| *success),
        "{label}: a worker failed"
    );
    assert!(resumed, "{label}: the workers never stopped midway");
    for (_, text) in finished {
        for line in text.lines() {
            let mut words = line.split(' ');
            match words.next() {
                Some("WON") => {
                    let id = words.next().unwrap().to_owned();
                    let digest = words.next().unwrap().parse().unwrap();
                    outcome.wins.push((id, digest));
                }
                Some("DONE") => {
                    let replays = line.split("replay=").nth(1).unwrap();
                    outcome.replays += replays.split(' ').next().unwrap().parse::<u64>().unwrap();
                }
                _ => outcome.other_errors.push(line.to_owned()),
            }
        }
    }
    let store = open_target(target, 2).unwrap();
    check_outcome(
        label,
        &outcome,
        PROCESSES * threads_per_process,
        store.as_ref(),
        &environment,
    );
    log.check(label, store.as_ref(), &environment);
    eprintln!("{label}: {} checkpoints checked", log.checkpoints());
    log.assert_one_taken_midway(label);
    eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn threads_race_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_target(
        &format!("sqlite:{}", dir.path().join("race.sqlite").display()),
        1,
    )
    .unwrap();
    race_threads("sqlite, 64 threads", store.as_ref(), SQLITE_THREADS_PER_ID);
}

#[test]
fn processes_race_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    race_processes(
        "sqlite, 4 processes",
        &format!("sqlite:{}", dir.path().join("race.sqlite").display()),
        2,
    );
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn threads_race_on_postgres() {
    let Some(_url) = postgres_url().unwrap() else {
        return;
    };
    let store = open_target(&format!("postgres:{}", unique_name("race_threads")), 16).unwrap();
    race_threads(
        "postgres, 64 threads",
        store.as_ref(),
        POSTGRES_THREADS_PER_ID,
    );
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn processes_race_on_postgres() {
    let Some(_url) = postgres_url().unwrap() else {
        return;
    };
    race_processes(
        "postgres, 4 processes",
        &format!("postgres:{}", unique_name("race_procs")),
        1,
    );
}
