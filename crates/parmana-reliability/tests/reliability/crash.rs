//! Crash safety: a worker process executing against a SQLite store is SIGKILLed at seeded random moments, then the store is reopened and `recover` run — nothing acknowledged is lost, no id gets two outcomes, and after every restart the transparency log keeps every entry once, recomputes, and extends every checkpoint taken before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parmana_reliability::{fixed_clock, fixed_now, stream_request};
use parmana_replay::{
    ExecutionId, ExecutionState, MemoryReplayStore, ReplayStore, SqliteReplayStore, sequence_all,
    verify_ledger,
};
use parmana_runtime::{
    RuntimeEnvironment, execute_from_signals, recover, trust::LocalSigningKey, verify_attestation,
};
use parmana_testkit::{FixtureEnvironment, SeededRandom};

use crate::log_checks::{LogWatch, with_log};

/// How many times the worker is killed.
const KILLS: u64 = 50;
/// The seed of the kill moments (change it to explore other schedules).
const SEED: u64 = 0x5EED_C0DE_0000_0001;

/// The attestation a fresh, deterministic build gives for stream request `crash-<n>`.
fn fresh_build(id: &str, environment: &RuntimeEnvironment, signer: &LocalSigningKey) -> Vec<u8> {
    let n: u64 = id.strip_prefix("crash-").unwrap().parse().unwrap();
    let request = stream_request(id, n, n).unwrap();
    execute_from_signals(
        &request,
        signer,
        &MemoryReplayStore::new(),
        environment,
        &fixed_clock(),
    )
    .unwrap()
    .into_envelope()
}

/// Lines the worker printed in full (a line cut by the kill has no newline and does not count).
fn read_complete_lines(stdout: impl std::io::Read, sender: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.ends_with(b"\n") => {
                line.pop();
                if sender.send(String::from_utf8(line).unwrap()).is_err() {
                    return;
                }
            }
            Ok(_) => return,
        }
    }
}

#[derive(Debug, Default)]
struct Figures {
    kills: u64,
    killed_before_ready: u64,
    acknowledged: u64,
    completed_unacknowledged: u64,
    recovered: u64,
    replays_refused: u64,
    pending_retries_refused: u64,
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let started = Instant::now();
    let fixture = FixtureEnvironment::new().unwrap();
    with_log(&fixture);
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let mut log = LogWatch::default();
    let store_dir = tempfile::tempdir().unwrap();
    let db = store_dir.path().join("replay.sqlite");
    let worker = env!("CARGO_BIN_EXE_parmana-reliability-worker");
    let mut random = SeededRandom::new(SEED);
    let mut figures = Figures::default();
    // Every outcome seen so far: id → attestation bytes. Never allowed to change.
    let mut outcomes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut acknowledged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut next_index = 0u64;

    for round in 0..KILLS {
        let mut child = Command::new(worker)
            .args([
                "crash",
                fixture.root().to_str().unwrap(),
                db.to_str().unwrap(),
            ])
            .arg(next_index.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || read_complete_lines(stdout, &sender));
        // Even rounds: a moment counted from the spawn (every fourth round within 15 ms, so
        // that it falls while the worker starts, opens the store or loads the environment).
        // Odd rounds: a moment counted from READY.
        let mut lines = Vec::new();
        if round % 4 == 0 {
            // Early: usually while the worker starts, opens the store or loads the environment.
            std::thread::sleep(Duration::from_micros(random.below(15_000)));
        } else if round % 2 == 0 {
            std::thread::sleep(Duration::from_millis(random.below(400)));
        } else {
            let ready = receiver.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(ready, "READY");
            lines.push(ready);
            std::thread::sleep(Duration::from_millis(random.below(150)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(receiver.try_iter());
        figures.kills += 1;
        if !lines.iter().any(|l| l == "READY") {
            figures.killed_before_ready += 1;
        }

        // What the worker acknowledged must verify and be what a fresh build gives.
        for line in &lines {
            let Some(rest) = line.strip_prefix("ACK ") else {
                assert!(line == "READY", "unexpected worker line {line:?}");
                continue;
            };
            let (id, envelope) = rest.split_once(' ').unwrap();
            let report =
                verify_attestation(envelope.as_bytes(), environment.trust_root(), None, None);
            assert!(
                report.is_valid(),
                "acknowledged {id} does not verify: {report:?}"
            );
            assert_eq!(
                envelope.as_bytes(),
                fresh_build(id, &environment, &signer),
                "{id}"
            );
            assert!(
                acknowledged
                    .insert(id.to_owned(), envelope.as_bytes().to_vec())
                    .is_none()
            );
            figures.acknowledged += 1;
        }

        // Restart: reopen the file and finish every claimed id.
        let store = SqliteReplayStore::open(&db).unwrap();
        let pending = store.pending().unwrap();
        // A claim the kill cut stays refused before recovery too: a retry of it is a replay,
        // and leaves it pending for `recover` (checked just below: every pending id recovered).
        if let Some(cut) = pending.first() {
            let index: u64 = cut
                .as_str()
                .strip_prefix("crash-")
                .and_then(|n| n.parse().ok())
                .unwrap();
            let again = stream_request(cut.as_str(), index, index).unwrap();
            let refused =
                execute_from_signals(&again, &signer, &store, &environment, &fixed_clock())
                    .unwrap_err();
            assert_eq!(refused.code(), "runtime.replay_detected");
            assert_eq!(store.pending().unwrap(), pending);
            figures.pending_retries_refused += 1;
        }
        let report = recover(&store, &signer, &environment).unwrap();
        assert!(
            report.failed.is_empty(),
            "recovery failed: {:?}",
            report.failed
        );
        assert_eq!(report.completed.len(), pending.len());
        assert!(store.pending().unwrap().is_empty());
        for attestation in &report.completed {
            let id = attestation.predicate().execution_id.as_str().to_owned();
            assert_eq!(
                attestation.envelope(),
                fresh_build(&id, &environment, &signer),
                "recovered {id}"
            );
            assert!(
                !acknowledged.contains_key(&id),
                "{id} was acknowledged but still pending"
            );
            figures.recovered += 1;
        }

        // Every completed execution: one outcome, byte-identical to a fresh build, forever.
        // Recovery leaves its completions for the sequencer, as execution does: run it.
        sequence_all(&store).unwrap().unwrap();
        let ledger = verify_ledger(&store).unwrap();
        assert_eq!(ledger.unsequenced, 0);
        assert!(
            ledger.is_intact(),
            "ledger broken after round {round}: {ledger:?}"
        );
        let snapshot = store.ledger_snapshot().unwrap();
        assert_eq!(ledger.executions, snapshot.completed_executions);
        // The execution records (the marks records aside).
        for (row, execution_id) in snapshot
            .rows
            .iter()
            .filter_map(|row| Some((row, row.execution_id.clone()?)))
        {
            let stored = row.attestation.clone().unwrap();
            match outcomes.get(&execution_id) {
                Some(before) => assert_eq!(before, &stored, "{execution_id} changed outcome"),
                None => {
                    assert_eq!(stored, fresh_build(&execution_id, &environment, &signer));
                    if !acknowledged.contains_key(&execution_id)
                        && !report
                            .completed
                            .iter()
                            .any(|a| a.predicate().execution_id.as_str() == execution_id)
                    {
                        figures.completed_unacknowledged += 1;
                    }
                    outcomes.insert(execution_id.clone(), stored);
                }
            }
            let index: u64 = execution_id
                .strip_prefix("crash-")
                .unwrap()
                .parse()
                .unwrap();
            next_index = next_index.max(index + 1);
        }
        assert_eq!(outcomes.len() as u64, snapshot.completed_executions);
        // The log after the restart: nothing lost or doubled, every checkpoint so far extended.
        log.check(&format!("after kill {round}"), &store, &environment);
        for (id, bytes) in &acknowledged {
            match store.get(&ExecutionId::parse(id).unwrap()).unwrap() {
                ExecutionState::Completed(done) => assert_eq!(done.attestation(), bytes.as_slice()),
                other => panic!("acknowledged {id} is not completed: {other:?}"),
            }
        }

        // A completed id stays refused: submit the newest one again.
        if next_index > 0 {
            let id = format!("crash-{:06}", next_index - 1);
            let again = stream_request(&id, next_index - 1, next_index - 1).unwrap();
            let refused =
                execute_from_signals(&again, &signer, &store, &environment, &fixed_clock())
                    .unwrap_err();
            assert_eq!(refused.code(), "runtime.replay_detected");
            figures.replays_refused += 1;
        }
    }

    assert_eq!(figures.kills, KILLS);
    assert_eq!(log.checkpoints() as u64, KILLS);
    assert!(
        figures.acknowledged > 0,
        "the worker never acknowledged anything: {figures:?}"
    );
    // Recovery was taken, not only passed over: some kill landed between a claim and its
    // completion (about half of them do: 23 of 50 in a debug build; none in 50 would have odds
    // of about 10^-13), and those executions were completed byte-identically above.
    assert!(
        figures.recovered > 0,
        "no kill left a claim to recover, so recovery went unchecked: {figures:?}"
    );
    eprintln!(
        "crash figures: {figures:?}, executions completed {}, in {:.1} s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
}
