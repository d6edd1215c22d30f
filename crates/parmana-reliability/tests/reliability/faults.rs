//! Fault injection under the runtime: a store wrapper that fails `claim`, `complete`, `accepted_versions` or `pending` on command, a SQLite store whose files disappear, and a full disk (RLIMIT_FSIZE) — refused with a store error, nothing signed without being recorded, nothing half-written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use parmana_reliability::{fixed_clock, fixed_now, stream_request};
use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, ExecutionState, LedgerSnapshot,
    MemoryReplayStore, ReplayError, ReplayStore, SqliteReplayStore, sequence_all, verify_ledger,
};
use parmana_runtime::{
    ErrorClass, ExecutionRequest, RuntimeEnvironment, execute_from_signals, recover,
    trust::LocalSigningKey, verify_attestation,
};
use parmana_testkit::FixtureEnvironment;

/// A store operation a [`FaultyStore`] can be told to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `claim` fails before reaching the store.
    Claim,
    /// `complete` fails before reaching the store.
    Complete,
    /// `complete` reaches the store and succeeds, but the answer is lost (an error is returned).
    CompleteReplyLost,
    /// `accepted_versions` fails.
    ReadVersions,
    /// `pending` fails.
    Pending,
}

/// Wraps a store and fails the operations it is told to.
#[derive(Debug)]
struct FaultyStore<S> {
    inner: S,
    faults: Mutex<BTreeSet<Fault>>,
}

impl<S: ReplayStore> FaultyStore<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            faults: Mutex::new(BTreeSet::new()),
        }
    }

    fn fail(&self, fault: Fault) {
        self.faults.lock().unwrap().insert(fault);
    }

    fn heal(&self) {
        self.faults.lock().unwrap().clear();
    }

    fn check(&self, fault: Fault) -> Result<(), ReplayError> {
        if self.faults.lock().unwrap().contains(&fault) {
            Err(ReplayError::Unavailable {
                message: format!("injected fault: {fault:?}"),
            })
        } else {
            Ok(())
        }
    }
}

impl<S: ReplayStore> ReplayStore for FaultyStore<S> {
    fn claim(
        &self,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        self.check(Fault::Claim)?;
        self.inner.claim(id, record, under)
    }

    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.check(Fault::Complete)?;
        self.inner.complete(id, attestation)?;
        self.check(Fault::CompleteReplyLost)
    }

    // The one-write pair is the inner store's, so that the runtime takes the path it takes in
    // production; its one write is both steps, and fails where either would.
    fn completes_in_one_write(&self) -> bool {
        self.inner.completes_in_one_write()
    }

    fn claim_completed(
        &self,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: &[u8],
    ) -> Result<ClaimOutcome, ReplayError> {
        self.check(Fault::Claim)?;
        self.check(Fault::Complete)?;
        let outcome = self.inner.claim_completed(id, record, under, attestation)?;
        self.check(Fault::CompleteReplyLost)?;
        Ok(outcome)
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        self.check(Fault::Pending)?;
        self.inner.pending_after(after, limit)
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        self.check(Fault::ReadVersions)?;
        self.inner.accepted_versions()
    }

    parmana_testkit::forward_store_reads!(inner: get, accept_versions, sequence, store_checkpoint,
        latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows, ledger_records);
}

struct Setup {
    _fixture: FixtureEnvironment,
    environment: RuntimeEnvironment,
    signer: LocalSigningKey,
    _dir: tempfile::TempDir,
    store: FaultyStore<SqliteReplayStore>,
}

fn setup() -> Setup {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        FaultyStore::new(SqliteReplayStore::open(dir.path().join("faults.sqlite")).unwrap());
    // The wrapper writes as the store it wraps does (claim then complete, or both at once).
    assert_eq!(
        store.completes_in_one_write(),
        store.inner.completes_in_one_write()
    );
    Setup {
        _fixture: fixture,
        environment,
        signer,
        _dir: dir,
        store,
    }
}

impl Setup {
    fn execute(
        &self,
        request: &ExecutionRequest,
    ) -> Result<Vec<u8>, parmana_runtime::ExecutionError> {
        execute_from_signals(
            request,
            &self.signer,
            &self.store,
            &self.environment,
            &fixed_clock(),
        )
        .map(|a| a.into_envelope())
    }

    /// What a fresh, deterministic build of `request` gives.
    fn fresh_build(&self, request: &ExecutionRequest) -> Vec<u8> {
        execute_from_signals(
            request,
            &self.signer,
            &MemoryReplayStore::new(),
            &self.environment,
            &fixed_clock(),
        )
        .unwrap()
        .into_envelope()
    }

    fn ledger(&self) -> LedgerSnapshot {
        sequence_all(&self.store).unwrap().unwrap();
        let report = verify_ledger(&self.store).unwrap();
        assert!(report.is_intact(), "{report:?}");
        self.store.ledger_snapshot().unwrap()
    }

    /// How many execution records the (intact) ledger holds (the marks records aside).
    fn executions_in_ledger(&self) -> usize {
        let ledger = self.ledger();
        ledger
            .rows
            .iter()
            .filter(|row| row.execution_id.is_some())
            .count()
    }
}

fn request(n: u64) -> ExecutionRequest {
    stream_request(&format!("fault-{n}"), n, n).unwrap()
}

fn id(n: u64) -> ExecutionId {
    ExecutionId::parse(&format!("fault-{n}")).unwrap()
}

#[test]
fn a_failing_claim_refuses_with_a_store_error_and_consumes_nothing() {
    let s = setup();
    s.execute(&request(0)).unwrap();
    let before = s.ledger();
    s.store.fail(Fault::Claim);
    let error = s.execute(&request(1)).unwrap_err();
    assert_eq!(
        (error.code(), error.class()),
        ("replay.store_unavailable", ErrorClass::Store)
    );
    assert_eq!(s.ledger(), before);
    assert_eq!(s.store.get(&id(1)).unwrap(), ExecutionState::Absent);
    s.store.heal();
    assert_eq!(s.execute(&request(1)).unwrap(), s.fresh_build(&request(1)));
}

/// The attestation key, counting the attestations it signs (DSSE; not the fixed message a
/// signer's check signs: `check_signer`), the claim key it hands out being the key's own.
struct CountingSigner<'a> {
    inner: &'a LocalSigningKey,
    signed: std::sync::atomic::AtomicUsize,
}

impl parmana_runtime::trust::Signer for CountingSigner<'_> {
    fn public_key(&self) -> parmana_runtime::trust::PublicKey {
        self.inner.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], parmana_runtime::trust::TrustError> {
        if message.starts_with(b"DSSEv1 ") {
            self.signed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.sign(message)
    }

    fn claim_key(
        &self,
    ) -> Result<parmana_runtime::trust::ClaimKey, parmana_runtime::trust::TrustError> {
        self.inner.claim_key()
    }
}

/// An execution reads and raises the marks inside its claim (a failing claim is above);
/// recovery reads them first, and refuses — before anything is signed — when it cannot.
#[test]
fn failing_version_marks_refuse_recovery_before_anything_is_signed() {
    let s = setup();
    s.store.fail(Fault::Complete);
    s.execute(&request(0)).unwrap_err();
    s.store.heal();
    s.store.fail(Fault::ReadVersions);
    let counting = CountingSigner {
        inner: &s.signer,
        signed: std::sync::atomic::AtomicUsize::new(0),
    };
    let error = recover(&s.store, &counting, &s.environment).unwrap_err();
    assert_eq!(
        (error.code(), error.class()),
        ("replay.store_unavailable", ErrorClass::Store)
    );
    assert_eq!(
        counting.signed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "recovery signed before it could read the marks"
    );
    assert_eq!(s.store.inner.pending().unwrap(), vec![id(0)]);
    assert_eq!(
        s.store.inner.accepted_versions().unwrap(),
        AcceptedVersions::new(2, 1)
    );
    s.store.heal();
    let report = recover(&s.store, &s.signer, &s.environment).unwrap();
    assert_eq!(report.completed.len(), 1);
    assert_eq!(
        report.completed[0].envelope(),
        s.fresh_build(&request(0)).as_slice()
    );
}

#[test]
fn a_failing_complete_returns_no_attestation_and_recover_finishes_it_identically() {
    let s = setup();
    s.execute(&request(0)).unwrap();
    s.store.fail(Fault::Complete);
    let error = s.execute(&request(1)).unwrap_err();
    assert_eq!(
        (error.code(), error.class()),
        ("replay.store_unavailable", ErrorClass::Store)
    );
    // Claimed with every input, nothing recorded as an outcome: not half-written.
    assert!(matches!(
        s.store.get(&id(1)).unwrap(),
        ExecutionState::Claimed(_)
    ));
    assert_eq!(s.store.inner.pending().unwrap(), vec![id(1)]);
    assert_eq!(s.executions_in_ledger(), 1);
    // The id is never reopened: a retry is a replay, even with the store healed.
    s.store.heal();
    assert_eq!(
        s.execute(&request(1)).unwrap_err().code(),
        "runtime.replay_detected"
    );
    // Recovery while the store still fails the completion (it answers a read of its marks: the
    // failure is the id's, tried twice) leaves it claimed; once healed it completes it.
    s.store.fail(Fault::Complete);
    let report = recover(&s.store, &s.signer, &s.environment).unwrap();
    assert!(report.completed.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].1.class(), ErrorClass::Store);
    assert!(matches!(
        s.store.get(&id(1)).unwrap(),
        ExecutionState::Claimed(_)
    ));
    s.store.heal();
    let report = recover(&s.store, &s.signer, &s.environment).unwrap();
    assert!(report.failed.is_empty());
    assert_eq!(report.completed.len(), 1);
    let expected = s.fresh_build(&request(1));
    assert_eq!(report.completed[0].envelope(), expected.as_slice());
    match s.store.get(&id(1)).unwrap() {
        ExecutionState::Completed(done) => assert_eq!(done.attestation(), expected.as_slice()),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.executions_in_ledger(), 2);
}

#[test]
fn a_lost_completion_reply_refuses_but_the_recorded_outcome_stands() {
    let s = setup();
    s.store.fail(Fault::CompleteReplyLost);
    let error = s.execute(&request(0)).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Store);
    s.store.heal();
    // The store recorded it; nothing is pending; the recorded attestation verifies and is the
    // deterministic one; the id stays used.
    assert!(s.store.pending().unwrap().is_empty());
    let report = recover(&s.store, &s.signer, &s.environment).unwrap();
    assert!(report.completed.is_empty() && report.failed.is_empty());
    let ExecutionState::Completed(done) = s.store.get(&id(0)).unwrap() else {
        panic!()
    };
    assert_eq!(done.attestation(), s.fresh_build(&request(0)).as_slice());
    assert!(
        verify_attestation(done.attestation(), s.environment.trust_root(), None, None).is_valid()
    );
    assert_eq!(
        s.execute(&request(0)).unwrap_err().code(),
        "runtime.replay_detected"
    );
    assert_eq!(s.executions_in_ledger(), 1);
}

#[test]
fn recover_refuses_when_the_store_cannot_list_pending_executions() {
    let s = setup();
    s.store.fail(Fault::Pending);
    let error = recover(&s.store, &s.signer, &s.environment).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Store);
}

#[test]
fn a_sqlite_store_that_cannot_be_opened_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be, and a parent that does not exist.
    std::fs::create_dir(dir.path().join("is-a-directory")).unwrap();
    for path in [
        dir.path().join("is-a-directory"),
        dir.path().join("missing").join("x.sqlite"),
    ] {
        let error = SqliteReplayStore::open(&path).unwrap_err();
        assert_eq!(
            error.code(),
            "replay.store_unavailable",
            "{}: {error}",
            path.display()
        );
    }
    // A file that is not a database.
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let error = SqliteReplayStore::open(&garbage).unwrap_err();
    assert!(
        matches!(
            error.code(),
            "replay.store_corrupt" | "replay.store_unavailable"
        ),
        "{error}"
    );
}

/// SQLite keeps writing to files it holds open after they are unlinked, so without a check an
/// execution after the deletion would be acknowledged into a file nobody can reopen, and its id
/// would be usable again. The store compares the path's files (device and inode) with the ones
/// it opened, under the write lock, before every batch, and before every read: once they are
/// gone, every execution and every read is refused with `replay.store_replaced` (no retry mends
/// it: a server answers `500` and is not ready) and nothing more is acknowledged.
#[test]
fn a_sqlite_store_whose_files_are_deleted_refuses_instead_of_writing_to_unlinked_files() {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vanishing.sqlite");
    let store = SqliteReplayStore::open(&path).unwrap();
    execute_from_signals(&request(0), &signer, &store, &environment, &fixed_clock()).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    for n in 1..4 {
        let error =
            execute_from_signals(&request(n), &signer, &store, &environment, &fixed_clock())
                .unwrap_err();
        assert_eq!(error.class(), ErrorClass::Store, "{error}");
        assert_eq!(error.code(), "replay.store_replaced", "{error}");
    }
    for refused in [
        store.get(&id(0)).map(|_| ()),
        store.accepted_versions().map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), "replay.store_replaced");
    }
    drop(store);
    // A store opened at the path again is a new, empty store: nothing was acknowledged into the
    // unlinked files, so there is nothing it could have lost since the deletion.
    let reopened = SqliteReplayStore::open(&path).unwrap();
    assert_eq!(reopened.get(&id(1)).unwrap(), ExecutionState::Absent);
    assert!(verify_ledger(&reopened).unwrap().is_intact());
}

/// Replacing the database file under an open store (a restore, a copy over it) is refused too.
#[test]
fn a_sqlite_store_whose_file_is_replaced_refuses() {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replaced.sqlite");
    let store = SqliteReplayStore::open(&path).unwrap();
    execute_from_signals(&request(0), &signer, &store, &environment, &fixed_clock()).unwrap();
    let other = dir.path().join("other.sqlite");
    drop(SqliteReplayStore::open(&other).unwrap());
    std::fs::rename(&other, &path).unwrap();
    let error = execute_from_signals(&request(1), &signer, &store, &environment, &fixed_clock())
        .unwrap_err();
    assert_eq!(error.code(), "replay.store_replaced", "{error}");
    // Its reads no longer come from the file the path no longer names.
    assert_eq!(
        store.get(&id(0)).unwrap_err().code(),
        "replay.store_replaced"
    );
}

/// A full disk, simulated without privileges: the worker runs under `ulimit -f` (RLIMIT_FSIZE)
/// with SIGXFSZ ignored, so a write past the limit fails with EFBIG inside SQLite, exactly where
/// ENOSPC would.
#[test]
fn a_full_disk_refuses_with_store_errors_and_loses_nothing() {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.sqlite");
    drop(SqliteReplayStore::open(&db).unwrap());
    let worker = env!("CARGO_BIN_EXE_parmana-reliability-worker");
    // 1 MiB per file: `ulimit -f` counts 512-byte blocks in POSIX sh (dash), 1 KiB in bash.
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 2048 && trap '' XFSZ && exec \"$0\" \"$@\"")
        .arg(worker)
        .args([
            "crash",
            fixture.root().to_str().unwrap(),
            db.to_str().unwrap(),
            "0",
            "150",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for line in stdout.lines().filter(|l| *l != "READY") {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        match words[0] {
            "ACK" => acknowledged.push((words[1].to_owned(), words[2].as_bytes().to_vec())),
            "REFUSED" => refused.push((words[1].to_owned(), words[2].to_owned())),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing executed before the disk filled: {stdout}"
    );
    assert!(!refused.is_empty(), "the disk never filled");
    for (id, why) in &refused {
        assert_eq!(
            why, "replay.store_unavailable Store",
            "{id}: refused for another reason"
        );
    }
    // Restart without the limit: nothing acknowledged is lost, the claimed ids are finished
    // identically, the rest were never consumed, the ledger is intact.
    let store = SqliteReplayStore::open(&db).unwrap();
    let report = recover(&store, &signer, &environment).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for (id, envelope) in &acknowledged {
        let ExecutionState::Completed(done) = store.get(&ExecutionId::parse(id).unwrap()).unwrap()
        else {
            panic!("acknowledged {id} lost")
        };
        assert_eq!(done.attestation(), envelope.as_slice());
    }
    let mut recovered = 0;
    for (id, _) in &refused {
        let n: u64 = id.strip_prefix("crash-").unwrap().parse().unwrap();
        match store.get(&ExecutionId::parse(id).unwrap()).unwrap() {
            ExecutionState::Absent => {}
            ExecutionState::Completed(done) => {
                let fresh = execute_from_signals(
                    &stream_request(id, n, n).unwrap(),
                    &signer,
                    &MemoryReplayStore::new(),
                    &environment,
                    &fixed_clock(),
                )
                .unwrap();
                assert_eq!(done.attestation(), fresh.envelope(), "{id}");
                recovered += 1;
            }
            ExecutionState::Claimed(_) => panic!("{id} still claimed after recovery"),
        }
    }
    sequence_all(&store).unwrap().unwrap();
    let ledger = verify_ledger(&store).unwrap();
    assert!(ledger.is_intact(), "{ledger:?}");
    assert_eq!(ledger.executions as usize, acknowledged.len() + recovered);
    eprintln!(
        "full disk: {} acknowledged, {} refused ({} of them claimed and recovered), codes {:?}",
        acknowledged.len(),
        refused.len(),
        recovered,
        refused
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<BTreeSet<_>>()
    );
}
