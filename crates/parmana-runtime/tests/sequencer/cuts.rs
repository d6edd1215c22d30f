//! Cuts and rewrites of the ledger under a running sequencer: a cut in a quiet moment is noticed and stops executions, a rewritten ledger is never taken by a running driver or snapshot, and a ledger read whole again (a page torn once) is taken with every id it holds, and a read of the log that forks from the driver's is refused as evidence.

use super::*;

/// A ledger cut under a running driver while nothing new comes is noticed at the next run, not
/// only once the log would grow (here `replay.ledger_broken`: the cut record's execution is
/// still there; a cut of both is `trust.tlog_inconsistent`); a runtime told so refuses every
/// execution and recovery from then on (`runtime.store_rewound`): the ids cut away would
/// execute again.
#[test]
fn a_ledger_cut_in_a_quiet_moment_is_noticed_and_stops_executions() {
    let (store, visible) = parmana_testkit::CutLedger::new();
    let (_fixture, runtime, log_key) = setup_on(Arc::new(store));
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    for n in 0..3 {
        execute(&runtime, &format!("cut-{n}"));
    }
    let driver = LogSequencer::default();
    let size = driver.run_all(runtime.store(), Some(signing)).unwrap().size;
    // Quiet: a run that finds nothing new is no alarm.
    driver.run(runtime.store(), Some(signing)).unwrap();
    // The tail record cut (its execution left completed: the ledger's chain is broken).
    visible.store(size - 1, Ordering::SeqCst);
    for _ in 0..2 {
        let refused = driver.run(runtime.store(), Some(signing)).unwrap_err();
        assert_eq!(refused.code(), "replay.ledger_broken", "{refused}");
    }
    // The driver holds it as evidence of a cut (what a server latches on).
    assert_broken_ledger_recorded(&driver);
    // What a server does with that: the runtime refuses the store for the rest of its life.
    assert_eq!(runtime.store_refused(), None);
    runtime.refuse_store("cut under the log".to_owned());
    runtime.refuse_store("a second reason does not replace the first".to_owned());
    assert_eq!(runtime.store_refused(), Some("cut under the log"));
    let request = ExecutionRequest::parse("cut-new", "claims-approval@1.0.0", SIGNALS).unwrap();
    let refused = runtime.execute(&request).unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    assert!(
        refused.to_string().contains("cut under the log"),
        "{refused}"
    );
    assert_eq!(
        runtime.recover().unwrap_err().code(),
        "runtime.store_rewound"
    );
    assert_eq!(
        runtime.attestation(&id("cut-new")).unwrap(),
        ExecutionStatus::Unknown,
        "refused before anything was claimed"
    );
}

/// A memory store whose ledger reads switch, while `forked` is set, to another store's ledger:
/// what a writer without a key who rewrites the ledger (or replaces it wholesale) shows readers.
#[derive(Debug)]
struct ForkingLedger {
    inner: MemoryReplayStore,
    fork: Arc<dyn ReplayStore>,
    forked: Arc<AtomicBool>,
}

impl ForkingLedger {
    fn ledger(&self) -> &dyn ReplayStore {
        if self.forked.load(Ordering::SeqCst) {
            self.fork.as_ref()
        } else {
            &self.inner
        }
    }
}

impl ReplayStore for ForkingLedger {
    common::forward_store_writes!(inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.ledger().ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.ledger().ledger_rows(from, max)
    }
    common::forward_store_reads!(@all_but_ledger_reads inner);
}

/// A ledger rewritten under a running driver and a kept log snapshot — another valid history,
/// longer than theirs — is refused (`trust.tlog_inconsistent`) run after run and read after
/// read, with nothing signed and nothing they hold changed: the snapshot, which keeps no entry,
/// hands out no entry bundle and no proof entry that its tree does not commit to. Back on the
/// ledger they hold, both go on from where they were.
#[test]
fn a_rewritten_ledger_is_never_taken_by_a_running_driver_or_snapshot() {
    let fork: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let (_other_fixture, other, _) = setup_on(Arc::clone(&fork));
    for i in 0..6 {
        execute(&other, &format!("other-{i}"));
    }
    LogSequencer::default()
        .run_all(fork.as_ref(), None)
        .unwrap();
    let forked = Arc::new(AtomicBool::new(false));
    let (_fixture, runtime, log_key) = setup_on(Arc::new(ForkingLedger {
        inner: MemoryReplayStore::new(),
        fork: Arc::clone(&fork),
        forked: Arc::clone(&forked),
    }));
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let store = runtime.store();
    let driver = LogSequencer::default();
    for i in 0..3 {
        execute(&runtime, &format!("ours-{i}"));
    }
    let signed = driver
        .run_all(store, Some(signing))
        .unwrap()
        .checkpoint
        .unwrap();
    let mut snapshot = read_log(store).unwrap();
    assert_eq!(snapshot.size(), signed.size);
    assert!(fork.ledger_snapshot().unwrap().rows.len() > usize::try_from(signed.size).unwrap());
    let trust_root = environment.trust_root();
    let (bundle, hashes) = (
        Tile::parse_path("entries/000.p/3").unwrap(),
        Tile::parse_path("0/000.p/3").unwrap(),
    );
    let records: Vec<Vec<u8>> = store
        .ledger_snapshot()
        .unwrap()
        .rows
        .into_iter()
        .map(|row| row.record)
        .collect();
    let mut expected_bundle = Vec::new();
    for record in &records[..3] {
        expected_bundle.extend_from_slice(&u16::try_from(record.len()).unwrap().to_be_bytes());
        expected_bundle.extend_from_slice(record);
    }
    assert_eq!(snapshot.tile(store, &bundle).unwrap(), expected_bundle);
    let hash_tile = snapshot.tile(store, &hashes).unwrap();
    let proof = snapshot
        .prove(store, trust_root, &id("ours-1"), signed.note.as_bytes())
        .unwrap();
    let entry = &records[usize::try_from(proof.index()).unwrap()];
    assert_eq!(proof.extra(), Some(&entry[..]));
    assert!(String::from_utf8_lossy(entry).contains(r#""execution_id":"ours-1""#));

    forked.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        // Without a key (nothing to sign, no stored checkpoint consulted) the driver's own
        // check refuses; with one, too.
        for signing in [None, Some(signing)] {
            let refused = driver.run(store, signing).unwrap_err();
            assert_eq!(refused.code(), "trust.tlog_inconsistent");
        }
        let refused = snapshot.catch_up(store).unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent");
        assert_eq!(snapshot.size(), signed.size);
        let refused = snapshot.tile(store, &bundle).unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent");
        assert!(refused.to_string().contains("leaf "), "{refused}");
        let refused = snapshot
            .prove(store, trust_root, &id("ours-1"), signed.note.as_bytes())
            .unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent");
        // Hash tiles come from the tree alone, and stay the log's.
        assert_eq!(snapshot.tile(store, &hashes).unwrap(), hash_tile);
    }
    assert_eq!(store.latest_checkpoint().unwrap(), Some(signed.clone()));

    forked.store(false, Ordering::SeqCst);
    execute(&runtime, "ours-3");
    let report = driver.run_all(store, Some(signing)).unwrap();
    assert_eq!(report.size, signed.size + 1);
    snapshot.catch_up(store).unwrap();
    assert_eq!(snapshot.size(), signed.size + 1);
    assert_eq!(snapshot.tile(store, &bundle).unwrap(), expected_bundle);
}

/// A ledger already broken when a driver first reads it — its tail cut while no log was kept,
/// as a server started after the cut finds it — is evidence, recorded at that first run (not a
/// failure retried run after run while the cut ids execute again).
#[test]
fn a_ledger_broken_before_the_first_run_is_recorded_as_a_cut() {
    let (store, visible) = parmana_testkit::CutLedger::new();
    let (_fixture, runtime, log_key) = setup_on(Arc::new(store));
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    for n in 0..3 {
        execute(&runtime, &format!("early-{n}"));
    }
    let size = LogSequencer::default()
        .run_all(runtime.store(), Some(signing))
        .unwrap()
        .size;
    visible.store(size - 1, Ordering::SeqCst);
    // A driver of a process started after the cut.
    let started_later = LogSequencer::default();
    let refused = started_later
        .run(runtime.store(), Some(signing))
        .unwrap_err();
    assert_eq!(refused.code(), "replay.ledger_broken", "{refused}");
    assert_broken_ledger_recorded(&started_later);
}

/// A memory store whose sequencer answers "another integrator holds the ledger" while `held` is
/// set: what any role that may connect to PostgreSQL makes of every server by taking the
/// integrator's advisory lock.
#[derive(Debug)]
struct HeldLedger {
    inner: parmana_testkit::CutLedger,
    held: Arc<AtomicBool>,
}

impl ReplayStore for HeldLedger {
    common::forward_store_writes!(inner);
    fn sequence(
        &self,
        max: usize,
    ) -> Result<parmana_runtime::replay::SequenceOutcome, ReplayError> {
        if self.held.load(Ordering::SeqCst) {
            return Ok(parmana_runtime::replay::SequenceOutcome::Busy);
        }
        self.inner.sequence(max)
    }
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, accept_versions,
        store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows,
        ledger_records);
}

/// A runtime over a [`HeldLedger`] that has executed `held-0` to `held-2` (not integrated), with
/// the switch that holds the integrator's lock and the one that cuts the ledger's tail.
fn held_ledger_with_three_executions() -> (
    parmana_testkit::FixtureEnvironment,
    parmana_runtime::Runtime,
    parmana_runtime::trust::LocalSigningKey,
    Arc<AtomicBool>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    let (cut, visible) = parmana_testkit::CutLedger::new();
    let held = Arc::new(AtomicBool::new(false));
    let (fixture, runtime, log_key) = setup_on(Arc::new(HeldLedger {
        inner: cut,
        held: Arc::clone(&held),
    }));
    for n in 0..3 {
        execute(&runtime, &format!("held-{n}"));
    }
    (fixture, runtime, log_key, held, visible)
}

/// The integrator's lock held from outside does not turn off what sees a cut: a run that finds
/// the ledger busy integrates and signs nothing, but still follows the kept log — a tail cut
/// meanwhile is recorded as evidence, as in a run that integrates.
#[test]
fn a_cut_is_seen_while_another_holds_the_integrators_lock() {
    let (_fixture, runtime, log_key, held, visible) = held_ledger_with_three_executions();
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let driver = LogSequencer::default();
    let size = driver.run_all(runtime.store(), Some(signing)).unwrap().size;
    held.store(true, Ordering::SeqCst);
    // Busy and quiet: no alarm, nothing signed.
    let busy = driver.run(runtime.store(), Some(signing)).unwrap();
    assert!(busy.busy && busy.checkpoint.is_none(), "{busy:?}");
    assert_eq!(busy.size, size);
    // The tail cut while the lock is held: seen, and recorded.
    visible.store(size - 1, Ordering::SeqCst);
    let refused = driver.run(runtime.store(), Some(signing)).unwrap_err();
    assert_eq!(refused.code(), "replay.ledger_broken", "{refused}");
    assert!(
        driver.store_rewound().is_some(),
        "{:?}",
        driver.store_rewound()
    );
}

/// `sign_log_checkpoint` (`parmana log checkpoint --key`) stores what it signs and prints when
/// the log grew past the newest stored checkpoint, also when another integrator holds the
/// ledger (so its run signed nothing): the note printed is the one stored.
#[test]
fn a_checkpoint_signed_while_another_holds_the_integrators_lock_is_stored() {
    let (_fixture, runtime, log_key, held, _visible) = held_ledger_with_three_executions();
    // Integrated by another integrator, which stored no checkpoint.
    let size = LogSequencer::default()
        .run_all(runtime.store(), None)
        .unwrap()
        .size;
    assert!(runtime.store().latest_checkpoint().unwrap().is_none());
    held.store(true, Ordering::SeqCst);
    let environment = runtime.environment();
    let sign = || {
        parmana_runtime::sign_log_checkpoint(
            runtime.store(),
            environment.trust_history(),
            clock().0,
            environment.release_manifest().version(),
            &[&log_key],
            None,
        )
        .unwrap()
    };
    let note = sign();
    let stored = runtime.store().latest_checkpoint().unwrap().unwrap();
    assert_eq!((stored.size, stored.note), (size, note.clone()));
    // Asked again: the same note, nothing more stored.
    assert_eq!(sign(), note);
}

/// The ids a driver's kept log has held are known without waiting for a run: those it
/// integrated, those another integrator appended (taken at its next run's catch-up), and, for a
/// driver started later, all of them from its first whole read.
#[test]
fn a_driver_knows_every_id_its_log_has_held() {
    let (_fixture, runtime, _log_key) = setup();
    let store = runtime.store();
    let ours = LogSequencer::default();
    let other = LogSequencer::default();
    assert!(!ours.holds_execution(&id("known-0")), "no log kept yet");
    execute(&runtime, "known-0");
    ours.run_all(store, None).unwrap();
    execute(&runtime, "known-1");
    other.run_all(store, None).unwrap();
    assert!(ours.holds_execution(&id("known-0")));
    assert!(
        !ours.holds_execution(&id("known-1")),
        "another's, not read yet"
    );
    ours.run_all(store, None).unwrap();
    assert!(
        ours.holds_execution(&id("known-1")),
        "taken at the catch-up"
    );
    execute(&runtime, "known-2");
    assert!(!ours.holds_execution(&id("known-2")), "not sequenced yet");
    ours.run_all(store, None).unwrap();
    assert!(ours.holds_execution(&id("known-2")), "its own run's rows");
    let later = LogSequencer::default();
    later.run(store, None).unwrap();
    for n in 0..3 {
        assert!(later.holds_execution(&id(&format!("known-{n}"))));
    }
    assert!(!later.holds_execution(&id("never-executed")));
}

/// A memory store whose ledger page read from `torn_at` comes back wrong once (its first record
/// replaced): a torn read, or a writer's edit undone before the next read.
#[derive(Debug)]
struct TornPage {
    inner: MemoryReplayStore,
    torn_at: Arc<std::sync::atomic::AtomicU64>,
}

impl ReplayStore for TornPage {
    common::forward_store_writes!(inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.inner.ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        let mut rows = self.inner.ledger_rows(from, max)?;
        let torn = self
            .torn_at
            .compare_exchange(from, u64::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if torn && let Some(first) = rows.first_mut() {
            first.record = b"{}".to_vec();
        }
        Ok(rows)
    }
    common::forward_store_reads!(@all_but_ledger_reads inner);
}

/// A run whose catch-up finds the ledger no longer extending its kept log reads the whole
/// ledger again, and takes it where it extends the kept log (here the page was torn once) —
/// noting every id it holds: one another integrator appended, read only in that whole read,
/// is known as executed from then on, and nothing is recorded as evidence.
#[test]
fn a_run_that_takes_the_whole_ledger_again_knows_its_ids() {
    let torn_at = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let (_fixture, runtime, _log_key) = setup_on(Arc::new(TornPage {
        inner: MemoryReplayStore::new(),
        torn_at: Arc::clone(&torn_at),
    }));
    let store = runtime.store();
    let ours = LogSequencer::default();
    execute(&runtime, "whole-0");
    let size = ours.run_all(store, None).unwrap().size;
    execute(&runtime, "whole-1");
    LogSequencer::default().run_all(store, None).unwrap();
    torn_at.store(size, Ordering::SeqCst);
    let report = ours.run(store, None).unwrap();
    assert_eq!(
        torn_at.load(Ordering::SeqCst),
        u64::MAX,
        "the catch-up read the torn page"
    );
    assert!(report.size > size, "{report:?}");
    assert!(ours.holds_execution(&id("whole-0")));
    assert!(
        ours.holds_execution(&id("whole-1")),
        "read only in the whole ledger"
    );
    assert_eq!(ours.store_rewound(), None);
}

/// A reader's read of the log (a server's log routes, before it signs) that forks from the log
/// a driver keeps — two reads of one append-only ledger that disagree: it was rewritten between
/// them — is refused (`trust.tlog_inconsistent`) and recorded as evidence; one that agrees with
/// it, as long or longer, is not.
#[test]
fn a_read_of_the_log_that_forks_from_the_drivers_is_refused_as_evidence() {
    let store = parmana_testkit::memory_store();
    append(&store, &["a", "b", "c"]);
    let driver = LogSequencer::default();
    driver.load(&store, None).unwrap();
    let behind = parmana_runtime::read_log(&store).unwrap();
    driver.check_agrees(&behind).unwrap();
    append(&store, &["d"]);
    driver
        .check_agrees(&parmana_runtime::read_log(&store).unwrap())
        .unwrap();
    // The driver ahead of a snapshot read before its run (the routes' read is up to a cadence
    // old): they agree where both reach.
    assert_eq!(driver.run(&store, None).unwrap().size, 4);
    driver.check_agrees(&behind).unwrap();
    assert!(driver.store_rewound().is_none());
    // The driver two records further in one run (4, then 6): a ledger that agrees with it up
    // to 4 and forks after is refused at its own size, 5, which no run ended at.
    append(&store, &["e", "f"]);
    assert_eq!(driver.run(&store, None).unwrap().size, 6);
    let late = log_of(&["a", "b", "c", "d", "z"]);
    assert_eq!(late.size(), 5);
    let refused = driver.check_agrees(&late).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    assert!(driver.store_rewound().is_some());
    // Another ledger at a size it reached: its second and third records are others.
    let refused = driver.check_agrees(&log_of(&["a", "x", "y"])).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
}

/// A snapshot older than every size whose root the driver keeps is compared with the kept log
/// itself: one that agrees with it is taken, one that forks is refused as evidence.
#[test]
fn a_snapshot_older_than_the_roots_kept_is_compared_with_the_kept_log() {
    let store = parmana_testkit::memory_store();
    append(&store, &["a", "b", "c"]);
    let old = parmana_runtime::read_log(&store).unwrap();
    append(&store, &["d", "e", "f"]);
    // Roots of its last two sizes only (5 and 6): size 3 is older than both.
    let driver = LogSequencer::default().keeping_roots_of(2);
    driver.load(&store, None).unwrap();
    driver.check_agrees(&old).unwrap();
    assert!(driver.store_rewound().is_none());
    let refused = driver.check_agrees(&log_of(&["a", "x", "y"])).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    assert!(driver.store_rewound().is_some());
}

/// Appends the executions `names` to `store`, sequenced (`parmana_testkit::append_sequenced`).
fn append(store: &dyn parmana_runtime::replay::ReplayStore, names: &[&str]) {
    let ids = names.iter().map(|name| (*name).to_owned());
    parmana_testkit::append_sequenced(store, ids).unwrap();
}

/// The log of a new memory store holding the executions `names`, sequenced.
fn log_of(names: &[&str]) -> parmana_runtime::LogSnapshot {
    let store = parmana_testkit::memory_store();
    append(&store, names);
    parmana_runtime::read_log(&store).unwrap()
}

/// The key never signs two trees that fork, even where a reader's snapshot runs ahead of the
/// driver (a server's log routes, whose snapshot holds records the driver has not integrated):
/// a writer of the store that planted a record at the head for the routes to sign, and cut it
/// before the next run integrated another execution at that position, gets that run refused as
/// evidence — not a second root signed at that size — and nothing more signed through the
/// driver. A snapshot behind what was signed is refused too, as no evidence (read again).
#[test]
fn a_snapshot_signed_ahead_of_the_driver_is_never_contradicted_by_its_runs() {
    // Two stores with one history up to "c": the planted one then holds "y" at the head; the
    // real one an execution "x" still to integrate there.
    let (_planted_fixture, planted_runtime, log_key) = super::setup();
    let (_fixture, runtime, _) = super::setup();
    for name in ["a", "b", "c"] {
        super::execute(&planted_runtime, name);
        super::execute(&runtime, name);
    }
    let environment = runtime.environment();
    let signing = super::signing_with(&environment, &log_key);
    let driver = LogSequencer::default();
    let report = driver.run_all(runtime.store(), Some(signing)).unwrap();
    assert_eq!(report.size, 4, "a marks record and three executions");
    super::execute(&planted_runtime, "y");
    LogSequencer::default()
        .run_all(planted_runtime.store(), None)
        .unwrap();
    let planted = parmana_runtime::read_log(planted_runtime.store()).unwrap();
    assert_eq!(planted.size(), 5);
    assert_eq!(
        planted.root_at(4),
        parmana_runtime::read_log(runtime.store())
            .unwrap()
            .root_at(4)
    );
    // The routes sign the planted head through the driver: it agrees with the kept log.
    driver
        .sign_snapshot(&planted, planted_runtime.store(), signing)
        .unwrap();
    // A run over the real store before anything reaches that size: nothing to sign, no alarm.
    let quiet = driver.run_all(runtime.store(), Some(signing)).unwrap();
    assert_eq!((quiet.size, quiet.checkpoint), (4, None));
    assert!(driver.store_rewound().is_none());
    // Cut again; the real execution integrated at that position: the run refuses to sign it.
    super::execute(&runtime, "x");
    let refused = driver.run_all(runtime.store(), Some(signing)).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    assert!(driver.store_rewound().is_some());
    let latest = runtime.store().latest_checkpoint().unwrap().unwrap();
    assert_eq!(
        latest.size, 4,
        "no checkpoint of size 5 signed over the real ledger"
    );
    // Nothing more is signed through the driver.
    let refused = driver
        .sign_snapshot(&planted, planted_runtime.store(), signing)
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");

    // A snapshot behind the largest checkpoint signed through a driver: refused, no evidence.
    let (_fixture, runtime, log_key) = super::setup();
    for name in ["a", "b"] {
        super::execute(&runtime, name);
    }
    let environment = runtime.environment();
    let signing = super::signing_with(&environment, &log_key);
    let driver = LogSequencer::default();
    driver.run_all(runtime.store(), Some(signing)).unwrap();
    let behind = parmana_runtime::read_log(runtime.store()).unwrap();
    super::execute(&runtime, "c");
    assert_eq!(
        driver.run_all(runtime.store(), Some(signing)).unwrap().size,
        4
    );
    let refused = driver
        .sign_snapshot(&behind, runtime.store(), signing)
        .unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    assert!(driver.store_rewound().is_none());
    let current = parmana_runtime::read_log(runtime.store()).unwrap();
    let note = driver
        .sign_snapshot(&current, runtime.store(), signing)
        .unwrap();
    assert_eq!(
        note,
        runtime.store().latest_checkpoint().unwrap().unwrap().note,
        "at a size the driver stored, the stored note byte for byte"
    );
}
