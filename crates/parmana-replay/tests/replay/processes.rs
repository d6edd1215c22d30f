//! Several OS processes on one store: racing claims (exactly one winner per id) and SIGKILL in the middle of a claim loop (nothing acknowledged is lost).
//!
//! The child processes are this test binary itself, started with `--exact processes::<test>` and
//! `PARMANA_REPLAY_CHILD` set: each test first checks whether it is a child and, if so, does
//! the child's work and returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(any(feature = "sqlite", feature = "postgres"))]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{V0, claim_for, id};
use parmana_replay::{ClaimOutcome, ExecutionState, ReplayStore, verify_ledger};

const ROLE: &str = "PARMANA_REPLAY_CHILD";
const TARGET: &str = "PARMANA_REPLAY_TARGET";
const INDEX: &str = "PARMANA_REPLAY_CHILD_INDEX";
const START: &str = "PARMANA_REPLAY_START_FILE";

const RACE_PROCESSES: usize = 4;
const RACE_IDS: usize = 400;

/// Opens the store a child was pointed at: `sqlite:<path>` or `postgres:<schema>`.
fn open_target(target: &str) -> Box<dyn ReplayStore> {
    match target.split_once(':') {
        #[cfg(feature = "sqlite")]
        Some(("sqlite", path)) => Box::new(parmana_replay::SqliteReplayStore::open(path).unwrap()),
        #[cfg(feature = "postgres")]
        Some(("postgres", schema)) => {
            let url = std::env::var("PARMANA_TEST_POSTGRES_URL").unwrap();
            let options = parmana_replay::PostgresOptions {
                schema: schema.to_owned(),
                pool_size: 2,
                ..Default::default()
            };
            Box::new(parmana_replay::PostgresReplayStore::connect(&url, &options).unwrap())
        }
        _ => panic!("unknown or disabled target {target}"),
    }
}

/// Runs the child's work when this process is a child; returns whether it was.
fn run_as_child() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let store = open_target(&std::env::var(TARGET).unwrap());
    let index: usize = std::env::var(INDEX).unwrap().parse().unwrap();
    match role.as_str() {
        "race" => {
            let start = std::env::var(START).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !Path::new(&start).exists() {
                assert!(Instant::now() < deadline, "never told to start");
                std::thread::sleep(Duration::from_millis(1));
            }
            let claim = claim_for(&format!("process {index}"));
            for k in 0..RACE_IDS {
                let i = if index.is_multiple_of(2) {
                    (k + index * 97) % RACE_IDS
                } else {
                    (RACE_IDS - 1 - k + index * 53) % RACE_IDS
                };
                let exec = id(&format!("race-{i}"));
                if store.claim(&exec, &claim, V0).unwrap() == ClaimOutcome::Claimed {
                    println!("WON race-{i}");
                }
            }
        }
        "kill" => {
            // Claims and completes until killed; each line is printed only after the store answered.
            for n in 0..1_000_000 {
                let exec = id(&format!("kill-{index}-{n}"));
                store
                    .claim(&exec, &claim_for(exec.as_str()), V0)
                    .unwrap()
                    .require_claimed(&exec)
                    .unwrap();
                println!("CLAIMED {exec}");
                store
                    .complete(&exec, format!("attestation {n}").as_bytes())
                    .unwrap();
                println!("COMPLETED {exec}");
            }
        }
        "claim-once" => {
            let exec = id("dup");
            match store.claim(&exec, &claim_for("child"), V0) {
                Ok(outcome) => println!("OUTCOME {outcome:?}"),
                Err(error) => println!("OUTCOME {}", error.code()),
            }
        }
        other => panic!("unknown child role {other}"),
    }
    true
}

fn spawn_child(test: &str, role: &str, target: &str, index: usize, start: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("processes::{test}"),
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(TARGET, target)
        .env(INDEX, index.to_string())
        .env(START, start)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Several processes race on the same ids: each id is won exactly once, by the process whose claim is stored.
fn processes_race(test: &str, target: &str, store: &dyn ReplayStore) {
    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start");
    let children: Vec<Child> = (0..RACE_PROCESSES)
        .map(|i| spawn_child(test, "race", target, i, &start))
        .collect();
    std::fs::write(&start, b"go").unwrap();
    let mut winner = HashMap::new();
    for (index, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "child {index} failed");
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            if let Some(name) = line.strip_prefix("WON ") {
                let previous = winner.insert(name.to_owned(), index);
                assert!(previous.is_none(), "{name} won by {previous:?} and {index}");
            }
        }
    }
    assert_eq!(winner.len(), RACE_IDS, "every id has exactly one winner");
    for (name, index) in winner {
        assert_eq!(
            store.get(&id(&name)).unwrap(),
            ExecutionState::Claimed(claim_for(&format!("process {index}"))),
            "{name}"
        );
    }
}

/// Kills a child with SIGKILL in the middle of its claim loop, three times, then checks that
/// every acknowledged claim and completion is there, the ledger verifies, and recovery works.
fn kill_mid_claim_loop(test: &str, target: &str, reopen: &dyn Fn() -> Box<dyn ReplayStore>) {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3usize {
        let mut child = spawn_child(test, "kill", target, round, &dir.path().join("unused"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut claimed, mut completed) = (Vec::new(), HashSet::new());
        let kill_after = 40 + round * 70;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(name) = line.strip_prefix("CLAIMED ") {
                claimed.push(name.to_owned());
                if claimed.len() == kill_after {
                    break;
                }
            } else if let Some(name) = line.strip_prefix("COMPLETED ") {
                completed.insert(name.to_owned());
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child must have been killed");
        // Lines printed before the kill are still in the pipe.
        for line in lines.map_while(Result::ok) {
            if let Some(name) = line.strip_prefix("CLAIMED ") {
                claimed.push(name.to_owned());
            } else if let Some(name) = line.strip_prefix("COMPLETED ") {
                completed.insert(name.to_owned());
            }
        }
        assert!(claimed.len() >= kill_after);

        let store = reopen();
        for name in &claimed {
            let n: usize = name.rsplit('-').next().unwrap().parse().unwrap();
            match store.get(&id(name)).unwrap() {
                ExecutionState::Absent => panic!("acknowledged claim {name} lost"),
                ExecutionState::Claimed(claim) => {
                    assert!(
                        !completed.contains(name),
                        "acknowledged completion {name} lost"
                    );
                    assert_eq!(claim, claim_for(name));
                }
                ExecutionState::Completed(done) => {
                    assert_eq!(done.claim(), &claim_for(name));
                    assert_eq!(done.attestation(), format!("attestation {n}").as_bytes());
                }
            }
        }
        // At most the one execution in flight is pending (its claim may or may not have been acknowledged).
        let pending = store.pending().unwrap();
        assert!(
            pending.len() <= 1,
            "pending after round {round}: {pending:?}"
        );
        let report = verify_ledger(&*store).unwrap();
        assert!(report.is_intact(), "round {round}: {report:?}");
        // Recovery: finish the interrupted execution from its recorded claim.
        for exec in pending {
            let ExecutionState::Claimed(claim) = store.get(&exec).unwrap() else {
                panic!("{exec} listed as pending but not claimed");
            };
            assert_eq!(claim, claim_for(exec.as_str()));
            store.complete(&exec, b"recovered").unwrap();
        }
        assert!(store.pending().unwrap().is_empty());
        assert!(verify_ledger(&*store).unwrap().is_intact());
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_processes_race_one_winner_per_id() {
    if run_as_child() {
        return;
    }
    let h = crate::common::sqlite().unwrap();
    let target = format!("sqlite:{}", h.store.path().display());
    processes_race("sqlite_processes_race_one_winner_per_id", &target, &h.store);
    h.store.check_integrity().unwrap();
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_survives_sigkill_mid_claim_loop() {
    if run_as_child() {
        return;
    }
    let h = crate::common::sqlite().unwrap();
    let path = h.store.path().to_path_buf();
    let target = format!("sqlite:{}", path.display());
    let reopen = || {
        let store = parmana_replay::SqliteReplayStore::open(&path).unwrap();
        store.check_integrity().unwrap();
        Box::new(store) as Box<dyn ReplayStore>
    };
    kill_mid_claim_loop("sqlite_survives_sigkill_mid_claim_loop", &target, &reopen);
}

#[cfg(feature = "postgres")]
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn postgres_processes_race_one_winner_per_id() {
    if run_as_child() {
        return;
    }
    let Some(h) = crate::common::postgres() else {
        return;
    };
    let target = format!("postgres:{}", h.options.schema);
    processes_race(
        "postgres_processes_race_one_winner_per_id",
        &target,
        &h.store,
    );
}

#[cfg(feature = "postgres")]
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn postgres_survives_sigkill_mid_claim_loop() {
    if run_as_child() {
        return;
    }
    let Some(h) = crate::common::postgres() else {
        return;
    };
    let target = format!("postgres:{}", h.options.schema);
    let reopen = || {
        Box::new(parmana_replay::PostgresReplayStore::connect(&h.url, &h.options).unwrap())
            as Box<dyn ReplayStore>
    };
    kill_mid_claim_loop("postgres_survives_sigkill_mid_claim_loop", &target, &reopen);
}

/// Two names of one SQLite file (a hard link) would each get their own `-wal` and `-shm`, so
/// two writers would not lock each other out and one id could be executed twice: a store file
/// with more than one link is refused when opened, and a store that gains a second name while
/// open refuses its next write.
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_refuses_a_store_file_with_two_names() {
    use parmana_replay::SqliteReplayStore;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("replay.sqlite3");
    let alias = dir.path().join("alias.sqlite3");
    {
        let store = SqliteReplayStore::open(&first).unwrap();
        assert_eq!(
            store
                .claim(&id("before-link"), &claim_for("a"), V0)
                .unwrap(),
            ClaimOutcome::Claimed
        );
    }
    // A second name made while no store is open: both names are refused.
    std::fs::hard_link(&first, &alias).unwrap();
    for name in [&first, &alias] {
        let refused = SqliteReplayStore::open(name).unwrap_err();
        assert_eq!(refused.code(), "replay.store_multiple_links", "{name:?}");
    }
    std::fs::remove_file(&alias).unwrap();

    // A second name made while a store is open: the open store refuses its next claim, and the
    // alias cannot be opened, so racing threads on both names never both win an id.
    let store = SqliteReplayStore::open(&first).unwrap();
    std::fs::hard_link(&first, &alias).unwrap();
    let outcomes: Vec<Result<ClaimOutcome, String>> = std::thread::scope(|scope| {
        let (first, alias, store) = (&first, &alias, &store);
        let racers: Vec<_> = [first, alias]
            .into_iter()
            .map(|name| {
                scope.spawn(move || {
                    if name == first {
                        store
                            .claim(&id("dup-1"), &claim_for("x"), V0)
                            .map_err(|e| e.code().to_owned())
                    } else {
                        SqliteReplayStore::open(name)
                            .map_err(|e| e.code().to_owned())
                            .and_then(|other| {
                                other
                                    .claim(&id("dup-1"), &claim_for("y"), V0)
                                    .map_err(|e| e.code().to_owned())
                            })
                    }
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        outcomes
            .iter()
            .all(|o| o == &Err("replay.store_multiple_links".to_owned())),
        "{outcomes:?}"
    );
    std::fs::remove_file(&alias).unwrap();
    // With one name again, the id is still free: nothing was claimed through either name.
    assert_eq!(store.get(&id("dup-1")).unwrap(), ExecutionState::Absent,);
    assert_eq!(
        store.claim(&id("dup-1"), &claim_for("x"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
}

/// The `-shm` file (the write lock and the WAL's index) unlinked under an open store: the next
/// process makes a new one and takes "the" write lock on it, so the two would write at once and
/// overwrite each other's commits. The open store refuses its next write and read instead of
/// claiming an id the other process claimed too (the claim of the same id by both once answered
/// `Claimed` twice).
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_refuses_to_go_on_once_its_index_file_is_replaced() {
    use parmana_replay::SqliteReplayStore;
    let test = "sqlite_refuses_to_go_on_once_its_index_file_is_replaced";
    if run_as_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    let store = SqliteReplayStore::open(&path).unwrap();
    assert_eq!(
        store.claim(&id("before"), &claim_for("a"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
    std::fs::remove_file(dir.path().join("replay.sqlite3-shm")).unwrap();
    let child = spawn_child(
        test,
        "claim-once",
        &format!("sqlite:{}", path.display()),
        0,
        dir.path(),
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    // The other process, on the index it made, claimed the id.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().any(|line| line == "OUTCOME Claimed"),
        "{stdout}"
    );
    // This store does not claim it again, nor read through files no longer the path's.
    let refused = store
        .claim(&id("dup"), &claim_for("parent"), V0)
        .unwrap_err();
    assert_eq!(refused.code(), "replay.store_replaced", "{refused}");
    // It is the index that was replaced (the database and the WAL are the ones opened).
    assert!(
        refused.to_string().contains("replay.sqlite3-shm"),
        "{refused}"
    );
    assert_eq!(
        store.get(&id("before")).unwrap_err().code(),
        "replay.store_replaced"
    );
    assert_eq!(
        store.accepted_versions().unwrap_err().code(),
        "replay.store_replaced"
    );
}

/// A held write lock stops every writer of the file (here a store of this process, as the
/// lock would another process's) until it is dropped; reads go on meanwhile.
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_writes_wait_while_the_write_lock_is_held() {
    if run_as_child() {
        return;
    }
    let h = crate::common::sqlite().unwrap();
    let store = std::sync::Arc::new(h.store);
    let held = parmana_replay::SqliteReplayStore::hold_writes(store.path()).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let writer = std::sync::Arc::clone(&store);
    let claimer = std::thread::spawn(move || {
        let outcome = writer.claim(&id("held"), &claim_for("held"), V0);
        done.send(()).unwrap();
        outcome
    });
    // The claim cannot commit while the lock is held (however long this waits).
    assert!(
        finished.recv_timeout(Duration::from_millis(200)).is_err(),
        "a claim committed under a held write lock"
    );
    assert_eq!(store.get(&id("held")).unwrap(), ExecutionState::Absent);
    drop(held);
    assert_eq!(claimer.join().unwrap().unwrap(), ClaimOutcome::Claimed);
    assert!(matches!(
        store.get(&id("held")).unwrap(),
        ExecutionState::Claimed(_)
    ));
    // A store that does not exist is not created by holding its lock.
    let missing = h.dir.path().join("missing.sqlite");
    assert!(parmana_replay::SqliteReplayStore::hold_writes(&missing).is_err());
    assert!(!missing.exists());
}

/// Many openers of one new store at once — switching it to WAL, creating and migrating its
/// schema — all open it: SQLite's "busy", answered at once to all but one of them, is waited out.
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_stores_opened_at_once_all_open() {
    const OPENERS: usize = 12;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.sqlite3");
        let barrier = std::sync::Barrier::new(OPENERS);
        let opened: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..OPENERS)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        parmana_replay::SqliteReplayStore::open(&path)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for result in opened {
            assert_eq!(result, Ok(()), "round {round}");
        }
    }
}
