//! The sequencer driver: executions are readable at once and enter the log in batches; runs sign and store checkpoints with the `log` keys (as many as the role's threshold), never over an entry that is not an attested execution nor a marks raise no environment of the signer made; proofs come from stored checkpoints; `audit_ledger` refuses a tampered stored checkpoint; a log anchor refuses to sign a log that does not extend what the key signed, across restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::clock;
use parmana_runtime::canon::tile::Tile;
use parmana_runtime::canon::{Digest, ExecutionId, Timestamp};
use parmana_runtime::replay::{
    LedgerRow, LedgerSummary, MemoryReplayStore, ReplayError, ReplayStore, StoredCheckpoint,
};
use parmana_runtime::trust::{LocalSigningKey, LogSpec, Signer};
use parmana_runtime::{
    ExecutionRequest, ExecutionStatus, LogAnchor, LogSequencer, LogSigning, Runtime,
    RuntimeEnvironment, audit_ledger, latest_log_checkpoint, load_trust_history, prove_execution,
    read_log, sign_log_checkpoint, verify_attestation_proof,
};
use parmana_testkit::FixtureEnvironment;

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": false, "country": "DE", "policy_age_days": 400}"#;
const ORIGIN: &str = parmana_testkit::FIXTURE_LOG_ORIGIN;

/// A fixture environment rotated to a version whose log role holds `root-1`, and a runtime on
/// a memory store.
fn setup() -> (FixtureEnvironment, Runtime, LocalSigningKey) {
    setup_on(Arc::new(MemoryReplayStore::new()))
}

/// [`setup`] with the runtime on `store`.
fn setup_on(store: Arc<dyn ReplayStore>) -> (FixtureEnvironment, Runtime, LocalSigningKey) {
    let fixture = FixtureEnvironment::new().unwrap();
    let log_key = fixture.rotate_to_fixture_log().unwrap();
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap();
    (fixture, runtime, log_key)
}

/// Signing with `key` under `environment`'s trust root.
fn signing_with<'a>(
    environment: &'a RuntimeEnvironment,
    key: &'a LocalSigningKey,
) -> LogSigning<'a> {
    // One key, as the signers a `LogSigning` takes (leaked: a few bytes per test).
    let signers: &'a [&'a dyn Signer] = Box::leak(Box::new([key as &dyn Signer]));
    LogSigning {
        trust_root: environment.trust_root(),
        history: environment.trust_history(),
        now: clock().0,
        release_manifest: environment.release_manifest().version(),
        signers,
        anchor: None,
    }
}

fn execute(runtime: &Runtime, id: &str) -> Vec<u8> {
    let request = ExecutionRequest::parse(id, "claims-approval@1.0.0", SIGNALS).unwrap();
    runtime.execute(&request).unwrap().into_envelope()
}

fn id(text: &str) -> ExecutionId {
    ExecutionId::parse(text).unwrap()
}

#[test]
fn executions_enter_the_log_in_batches_with_stored_checkpoints() {
    let (fixture, runtime, log_key) = setup();
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let store = runtime.store();
    let first = execute(&runtime, "seq-1");
    // Read back at once, before it is sequenced; not provable yet.
    assert!(matches!(
        runtime.attestation(&id("seq-1")).unwrap(),
        ExecutionStatus::Completed(ref bytes) if *bytes == first
    ));
    assert_eq!(
        latest_log_checkpoint(store).unwrap_err().code(),
        "runtime.no_checkpoint"
    );
    let signed = store_a_checkpoint_of_nothing(store, signing);
    assert_eq!(
        prove_execution(
            store,
            environment.trust_root(),
            &id("seq-1"),
            Some(signed.as_bytes())
        )
        .unwrap_err()
        .code(),
        "runtime.not_yet_sequenced"
    );

    let sequencer = LogSequencer::new(2);
    for name in ["seq-2", "seq-3"] {
        execute(&runtime, name);
    }
    // Batches of two: the marks record of the first claim is already at position 0.
    let report = sequencer.run(store, Some(signing)).unwrap();
    let positions: Vec<(u64, &str)> = report
        .integrated
        .iter()
        .map(|e| (e.position, e.execution_id.as_str()))
        .collect();
    assert_eq!(positions, [(1, "seq-1"), (2, "seq-2")]);
    let checkpoint = report.checkpoint.clone().unwrap();
    assert_eq!((report.size, checkpoint.size), (3, 3));
    let report = sequencer.run(store, Some(signing)).unwrap();
    assert_eq!(report.integrated.len(), 1);
    assert_eq!(report.checkpoint.as_ref().unwrap().size, 4);
    // Nothing new: no run signs a second checkpoint of the same size.
    let idle = sequencer.run(store, Some(signing)).unwrap();
    assert_eq!((idle.integrated.len(), idle.checkpoint), (0, None));

    // A proof against the newest stored checkpoint verifies offline.
    let proof = prove_execution(store, environment.trust_root(), &id("seq-1"), None).unwrap();
    let history = load_trust_history(
        &fixture.root().join("trust/root.pub"),
        &fixture.root().join("trust/trust-root.json"),
    )
    .unwrap();
    let included = verify_attestation_proof(&first, proof.to_text().as_bytes(), &history).unwrap();
    assert_eq!(included.index(), 1);

    // The audit checks every stored checkpoint's signature and root.
    let audit = audit_ledger(store, || Ok(Some(history.clone()))).unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert_eq!(audit.report.checkpoints, 2);
    let stored = store.ledger_snapshot().unwrap().checkpoints;
    let audited =
        |edited: &EditedNote<'_>| audit_ledger(edited, || Ok(Some(history.clone()))).unwrap();
    let edited = EditedNote {
        inner: store,
        size: stored[0].size,
        note: stored[0].note.replacen('3', "2", 1),
    };
    let failure = audited(&edited)
        .checkpoint_failure
        .expect("an edited note is refused");
    assert_eq!(failure.code(), "runtime.stored_checkpoint_invalid");
    assert!(failure.to_string().contains("size 3"), "{failure}");
    // A note signed by a key outside every log role is refused too.
    let forger = fixture.key("root-2").unwrap();
    let forged = signing_with(&environment, &forger);
    let edited = EditedNote {
        inner: store,
        size: stored[1].size,
        note: forged_note(&stored[1], forged),
    };
    let failure = audited(&edited).checkpoint_failure.unwrap();
    assert_eq!(failure.code(), "runtime.stored_checkpoint_invalid");
    // The newest stored checkpoint is handed out only once its note checks out: a larger one a
    // writer of the store stored, signed by a key outside every log role, is refused.
    let newest = parmana_runtime::verified_latest_log_checkpoint(store, &history).unwrap();
    assert_eq!(newest.size, 4);
    let mut forged_newest = newest.clone();
    forged_newest.size = 5;
    forged_newest.note = forged_note(&forged_newest, forged);
    store.store_checkpoint(&forged_newest).unwrap();
    assert_eq!(latest_log_checkpoint(store).unwrap().size, 5);
    assert_eq!(
        parmana_runtime::verified_latest_log_checkpoint(store, &history)
            .unwrap_err()
            .code(),
        "runtime.stored_checkpoint_invalid"
    );
}

/// A checkpoint of the log before any sequencer run (size 1: the marks record of the first
/// claim), signed with the log key.
fn store_a_checkpoint_of_nothing(store: &dyn ReplayStore, signing: LogSigning<'_>) -> String {
    let log = parmana_runtime::replay::ledger_log(store).unwrap();
    assert_eq!(log.size(), 1, "only the marks record of the first claim");
    let checkpoint =
        parmana_runtime::trust::Checkpoint::new(ORIGIN, log.size(), log.root()).unwrap();
    let origin = parmana_runtime::trust::NoteKeyName::parse(ORIGIN).unwrap();
    parmana_runtime::trust::sign_checkpoint(&checkpoint, &origin, signing.signers[0]).unwrap()
}

/// The note of `stored`'s size and root signed by `signing.signer` (whatever its roles).
fn forged_note(stored: &StoredCheckpoint, signing: LogSigning<'_>) -> String {
    let checkpoint =
        parmana_runtime::trust::Checkpoint::new(ORIGIN, stored.size, stored.root).unwrap();
    let origin = parmana_runtime::trust::NoteKeyName::parse(ORIGIN).unwrap();
    parmana_runtime::trust::sign_checkpoint(&checkpoint, &origin, signing.signers[0]).unwrap()
}

#[test]
fn a_sequencer_refuses_a_key_without_the_log_role_and_an_inconsistent_stored_checkpoint() {
    let (fixture, runtime, log_key) = setup();
    let environment = runtime.environment();
    let store = runtime.store();
    execute(&runtime, "refused-1");
    let stranger = fixture.key("root-2").unwrap();
    let err = LogSequencer::default()
        .run(store, Some(signing_with(&environment, &stranger)))
        .unwrap_err();
    assert_eq!(err.code(), "trust.key_lacks_role");
    // Refused before anything was integrated.
    assert_eq!(store.ledger_snapshot().unwrap().unsequenced, 1);

    let signing = signing_with(&environment, &log_key);
    let sequencer = LogSequencer::default();
    let report = sequencer.run(store, Some(signing)).unwrap();
    assert_eq!(report.checkpoint.unwrap().size, 2);

    // A stored checkpoint that does not commit to the log (written behind the driver's back at
    // the size the next run reaches): the driver never signs past it.
    execute(&runtime, "refused-2");
    store
        .store_checkpoint(&StoredCheckpoint {
            size: 3,
            root: Digest::of(b"another history"),
            note: String::new(),
        })
        .unwrap();
    let err = sequencer.run(store, Some(signing)).unwrap_err();
    // No key of the log signed it: refused as a writer's row, never taken for a fork.
    assert_eq!(err.code(), "runtime.stored_checkpoint_invalid");
    assert_eq!(sequencer.store_rewound(), None);
    // A fresh driver reads the whole ledger, whose verification refuses the checkpoint too.
    let err = LogSequencer::default()
        .run(store, Some(signing))
        .unwrap_err();
    assert_eq!(err.code(), "replay.ledger_broken");
    assert!(err.to_string().contains("checkpoint of size 3"), "{err}");
}

/// What a writer of the store, holding no key, can do: claim `id` and complete it with
/// `attestation`, under `environment`'s versions.
fn insert_completion(
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
    execution_id: &str,
    attestation: &[u8],
) {
    let claim = parmana_runtime::replay::ClaimRecord::new(
        Digest::of(b"a request"),
        b"{}".to_vec(),
        clock().0,
    );
    let under = parmana_runtime::replay::AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    );
    let forged = id(execution_id);
    let _ = store.claim(&forged, &claim, under).unwrap();
    store.complete(&forged, attestation).unwrap();
}

/// A store whose writer re-spells every attestation it stores (a leading space: the same
/// signatures, the same payload, other bytes). A verifier takes either spelling; the ledger and
/// proofs bind the bytes.
#[derive(Debug)]
struct Respelling {
    inner: MemoryReplayStore,
}

impl Respelling {
    fn respelled(attestation: &[u8]) -> Vec<u8> {
        [b" ".as_slice(), attestation].concat()
    }
}

impl ReplayStore for Respelling {
    common::forward_store_writes!(inner: claim);
    fn completes_in_one_write(&self) -> bool {
        self.inner.completes_in_one_write()
    }
    fn claim_completed(
        &self,
        id: &ExecutionId,
        record: &parmana_runtime::replay::ClaimRecord,
        under: parmana_runtime::replay::AcceptedVersions,
        attestation: &[u8],
    ) -> Result<parmana_runtime::replay::ClaimOutcome, ReplayError> {
        self.inner
            .claim_completed(id, record, under, &Self::respelled(attestation))
    }
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.inner.complete(id, &Self::respelled(attestation))
    }
    common::forward_store_reads!(inner);
}

/// A genuine attestation re-spelled by a writer of the store is not read back as authentic,
/// and no checkpoint is signed over it: the log would bind the writer's bytes, and the
/// client's copy could never be proven.
#[test]
fn a_re_spelled_attestation_is_neither_read_back_nor_logged() {
    let (_fixture, runtime, log_key) = setup_on(Arc::new(Respelling {
        inner: MemoryReplayStore::new(),
    }));
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let genuine = execute(&runtime, "respelled-1");
    let report = runtime.verify(&Respelling::respelled(&genuine), None, None);
    assert!(report.is_valid(), "a verifier takes the re-spelling");
    let refused = runtime.attestation(&id("respelled-1")).unwrap_err();
    assert_eq!(refused.code(), "runtime.stored_attestation_invalid");
    assert!(refused.to_string().contains("spelled"), "{refused}");
    let refused = LogSequencer::default()
        .run(runtime.store(), Some(signing))
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.log_entry_unattested", "{refused}");
    assert!(refused.to_string().contains("spelled"), "{refused}");
}

/// A forged completion: a name, what the writer stores as the attestation (given a genuine
/// one), and what the refusal says.
type ForgedCompletion = (&'static str, fn(&[u8]) -> Vec<u8>, &'static str);

#[test]
fn no_checkpoint_is_signed_over_an_entry_a_writer_of_the_store_made() {
    let forgeries: [ForgedCompletion; 2] = [
        ("bytes of its own", |_| b"{}".to_vec(), "does not verify"),
        (
            "another execution's genuine attestation",
            |genuine| genuine.to_vec(),
            "another execution's",
        ),
    ];
    for (name, attestation, says) in forgeries {
        let (_fixture, runtime, log_key) = setup();
        let environment = runtime.environment();
        let signing = signing_with(&environment, &log_key);
        let store = runtime.store();
        let genuine = execute(&runtime, "genuine-1");
        let sequencer = LogSequencer::default();
        let signed = sequencer
            .run(store, Some(signing))
            .unwrap()
            .checkpoint
            .unwrap();
        // A writer of the store, holding no key, inserts a completed execution of its own.
        insert_completion(store, &environment, "forged-1", &attestation(&genuine));
        // The store integrates it (it holds no key either); no key signs over it.
        let refused = sequencer.run(store, Some(signing)).unwrap_err();
        assert_eq!(
            refused.code(),
            "runtime.log_entry_unattested",
            "{name}: {refused}"
        );
        assert!(refused.to_string().contains(says), "{name}: {refused}");
        let now = clock().0;
        let history = environment.trust_history();
        let manifest = environment.release_manifest().version();
        let refused =
            sign_log_checkpoint(store, history, now, manifest, &[&log_key], None).unwrap_err();
        assert_eq!(refused.code(), "runtime.log_entry_unattested", "{name}");
        let refused = read_log(store)
            .unwrap()
            .checkpoint(store, history, now, manifest, &[&log_key], None)
            .unwrap_err();
        assert_eq!(refused.code(), "runtime.log_entry_unattested", "{name}");
        assert_eq!(store.latest_checkpoint().unwrap(), Some(signed), "{name}");
    }

    // A stored checkpoint no key of the log signed (its size and root the log's, its note a
    // writer's): it does not stand for entries checked, and nothing is signed over it.
    let (_fixture, runtime, log_key) = setup();
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let store = runtime.store();
    execute(&runtime, "genuine-2");
    LogSequencer::default().run(store, Some(signing)).unwrap();
    execute(&runtime, "genuine-3");
    LogSequencer::default().run(store, None).unwrap();
    execute(&runtime, "genuine-4");
    let log = read_log(store).unwrap();
    store
        .store_checkpoint(&StoredCheckpoint {
            size: log.size(),
            root: log.root(),
            note: "log.example/parmana\n9\nnot a note\n".to_owned(),
        })
        .unwrap();
    let refused = sign_log_checkpoint(
        store,
        environment.trust_history(),
        clock().0,
        environment.release_manifest().version(),
        &[&log_key],
        None,
    )
    .unwrap_err();
    assert_eq!(
        refused.code(),
        "runtime.stored_checkpoint_invalid",
        "{refused}"
    );
}

/// A store whose stored checkpoint of `size` reads back, page by page, with `note`: a writer of
/// the store editing a note.
#[derive(Debug)]
struct EditedNote<'a> {
    inner: &'a dyn ReplayStore,
    size: u64,
    note: String,
}

impl ReplayStore for EditedNote<'_> {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, accept_versions,
        sequence, store_checkpoint, latest_checkpoint, ledger_summary, ledger_rows);
    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        let mut page = self.inner.checkpoints_from(from, max)?;
        for checkpoint in page.iter_mut().filter(|c| c.size == self.size) {
            checkpoint.note.clone_from(&self.note);
        }
        Ok(page)
    }
}

/// A memory store on which, the first time a driver asks for the newest stored checkpoint,
/// another server's driver integrates and signs first (`racer`): the race between one driver's
/// integration and its signing. With `refiled`, the ledger row at that position reads back
/// filed under another execution id (or as a marks record, `None`): a writer of the store
/// editing the row's columns, not its record.
struct RacedSigning {
    inner: Arc<MemoryReplayStore>,
    racer: std::sync::Mutex<Option<Racer>>,
    /// Reads of the newest checkpoint to let pass before the racer runs.
    racer_skips: AtomicUsize,
    refiled: std::sync::Mutex<Option<(u64, Option<String>)>>,
}

/// What another server does on the store, once.
type Racer = Box<dyn FnOnce(&MemoryReplayStore) + Send>;

impl std::fmt::Debug for RacedSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RacedSigning")
    }
}

impl ReplayStore for RacedSigning {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, accept_versions,
        sequence, store_checkpoint, checkpoints_from, ledger_summary);
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        let skipped = self
            .racer_skips
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let racer = if skipped {
            None
        } else {
            self.racer.lock().unwrap().take()
        };
        if let Some(racer) = racer {
            racer(&self.inner);
        }
        self.inner.latest_checkpoint()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        let mut rows = self.inner.ledger_rows(from, max)?;
        if let Some((position, filed)) = self.refiled.lock().unwrap().clone() {
            for row in rows.iter_mut().filter(|row| row.position == position) {
                row.execution_id = filed.clone();
            }
        }
        Ok(rows)
    }
}

/// A store of [`RacedSigning`] over a fresh memory store, nothing raced or refiled yet.
fn raced_store() -> Arc<RacedSigning> {
    Arc::new(RacedSigning {
        inner: Arc::new(MemoryReplayStore::new()),
        racer: std::sync::Mutex::new(None),
        racer_skips: AtomicUsize::new(0),
        refiled: std::sync::Mutex::new(None),
    })
}

#[test]
fn an_entry_is_judged_by_its_record_not_by_the_columns_it_is_filed_under() {
    let store = raced_store();
    let (_fixture, runtime, log_key) = setup_on(Arc::clone(&store) as Arc<dyn ReplayStore>);
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let genuine = execute(&runtime, "genuine-1");
    let driver = LogSequencer::default();
    driver.run(store.as_ref(), Some(signing)).unwrap();
    // A completion of the writer's own, carrying genuine-1's attestation: refused, and the
    // driver keeps the log it read (the entry in it).
    insert_completion(store.inner.as_ref(), &environment, "forged-1", &genuine);
    let refused = driver.run(store.as_ref(), Some(signing)).unwrap_err();
    assert_eq!(refused.code(), "runtime.log_entry_unattested", "{refused}");
    let position = read_log(store.as_ref()).unwrap().size() - 1;
    // The writer then refiles the entry's row: as a marks record, or under genuine-1 (whose
    // attestation it carries). Its record still names forged-1: refused each time.
    for filed in [None, Some("genuine-1".to_owned())] {
        *store.refiled.lock().unwrap() = Some((position, filed.clone()));
        let refused = driver.run(store.as_ref(), Some(signing)).unwrap_err();
        assert_eq!(
            refused.code(),
            "runtime.log_entry_unattested",
            "{filed:?}: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("files it under another execution"),
            "{filed:?}: {refused}"
        );
    }
}

#[test]
fn a_checkpoint_another_signer_stored_past_this_run_is_no_alarm() {
    let raced = raced_store();
    let (_fixture, runtime, log_key) = setup_on(Arc::clone(&raced) as Arc<dyn ReplayStore>);
    let environment = runtime.environment();
    execute(&runtime, "raced-1");
    let driver = LogSequencer::default();
    driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap();
    execute(&runtime, "raced-2");
    // Between this driver's integration of raced-2 and its signing, another server executes
    // raced-3, integrates it and signs the larger log.
    let (other_runtime, other_key) = (runtime.clone(), log_key.public_key());
    let racer_key = LocalSigningKey::from_pkcs8_pem(&log_key.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(racer_key.public_key(), other_key);
    *raced.racer.lock().unwrap() = Some(Box::new(move |store: &MemoryReplayStore| {
        execute(&other_runtime, "raced-3");
        let environment = other_runtime.environment();
        let signed = LogSequencer::default()
            .run_all(store, Some(signing_with(&environment, &racer_key)))
            .unwrap();
        assert!(signed.checkpoint.is_some());
    }));
    let report = driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap();
    // Nothing signed by this run (the other is ahead), no alarm; the next run catches up.
    assert!(report.checkpoint.is_none(), "{report:?}");
    let next = driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap();
    assert_eq!(next.size, read_log(raced.as_ref()).unwrap().size());
}

/// The same race one read later: another server stores a larger checkpoint between this run's
/// first look at the newest checkpoint and the look it takes as it signs. The run is refused
/// (`trust.tlog_inconsistent`: the newest checkpoint does not commit to its log), and that is no
/// evidence of a cut: the driver records none (a server goes on executing), and its next run
/// catches up.
#[test]
fn a_checkpoint_stored_past_this_run_while_it_signs_is_no_evidence_of_a_cut() {
    let raced = raced_store();
    let (_fixture, runtime, log_key) = setup_on(Arc::clone(&raced) as Arc<dyn ReplayStore>);
    let environment = runtime.environment();
    execute(&runtime, "late-1");
    let driver = LogSequencer::default();
    driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap();
    execute(&runtime, "late-2");
    let other_runtime = runtime.clone();
    let racer_key = LocalSigningKey::from_pkcs8_pem(&log_key.to_pkcs8_pem().unwrap()).unwrap();
    raced.racer_skips.store(1, Ordering::SeqCst);
    *raced.racer.lock().unwrap() = Some(Box::new(move |store: &MemoryReplayStore| {
        execute(&other_runtime, "late-3");
        let environment = other_runtime.environment();
        let signed = LogSequencer::default()
            .run_all(store, Some(signing_with(&environment, &racer_key)))
            .unwrap();
        assert!(signed.checkpoint.is_some());
    }));
    let refused = driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    assert_eq!(driver.store_rewound(), None, "behind is not cut");
    let next = driver
        .run(raced.as_ref(), Some(signing_with(&environment, &log_key)))
        .unwrap();
    assert_eq!(next.size, read_log(raced.as_ref()).unwrap().size());
    assert_eq!(driver.store_rewound(), None);
}

/// A memory store whose ledger reads fail while `failing` is set (the store not answering).
#[derive(Debug, Default)]
struct Unanswering {
    inner: MemoryReplayStore,
    failing: AtomicBool,
}

impl ReplayStore for Unanswering {
    common::forward_store_writes!(inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.inner.ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(ReplayError::Unavailable {
                message: "the store does not answer".to_owned(),
            });
        }
        self.inner.ledger_rows(from, max)
    }
    common::forward_store_reads!(@all_but_ledger_reads inner);
}

/// What is not evidence of a cut is not held as one: the store not answering the anchor's
/// check, and a checkpoint row no key of the log signed (a writer's), whose root disagrees with
/// the log at its size — refused as what it is (`runtime.stored_checkpoint_invalid`).
#[test]
fn a_store_not_answering_or_a_writers_checkpoint_is_no_evidence_of_a_cut() {
    let store = Arc::new(Unanswering::default());
    let (_fixture, runtime, log_key) = setup_on(Arc::clone(&store) as Arc<dyn ReplayStore>);
    let environment = runtime.environment();
    let dir = tempfile::tempdir().unwrap();
    let anchor = LogAnchor::open(dir.path().join("log-anchor")).unwrap();
    let anchored = LogSigning {
        anchor: Some(&anchor),
        ..signing_with(&environment, &log_key)
    };
    execute(&runtime, "quiet-1");
    LogSequencer::default()
        .run_all(store.as_ref(), Some(anchored))
        .unwrap();
    assert!(anchor.recorded().is_some());
    // A driver starting while the store does not answer.
    store.failing.store(true, Ordering::SeqCst);
    let driver = LogSequencer::default();
    let refused = driver.run(store.as_ref(), Some(anchored)).unwrap_err();
    assert_eq!(refused.code(), "replay.store_unavailable", "{refused}");
    assert_eq!(driver.store_rewound(), None);
    store.failing.store(false, Ordering::SeqCst);
    driver.run(store.as_ref(), Some(anchored)).unwrap();
    // A writer's checkpoint row at the size the next run reaches, another root, no log key's
    // signature.
    execute(&runtime, "quiet-2");
    let size = read_log(store.as_ref()).unwrap().size() + 1;
    store
        .store_checkpoint(&StoredCheckpoint {
            size,
            root: Digest::of(b"a writer's root"),
            note: "not a note\n".to_owned(),
        })
        .unwrap();
    let refused = driver.run(store.as_ref(), Some(anchored)).unwrap_err();
    assert_eq!(
        refused.code(),
        "runtime.stored_checkpoint_invalid",
        "{refused}"
    );
    assert_eq!(driver.store_rewound(), None);
}

/// A memory store that counts its whole-ledger reads (each begins with the ledger's summary).
#[derive(Debug)]
struct CountingSnapshots {
    inner: MemoryReplayStore,
    snapshots: Arc<AtomicUsize>,
}

impl ReplayStore for CountingSnapshots {
    common::forward_store_writes!(inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.snapshots.fetch_add(1, Ordering::SeqCst);
        self.inner.ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.inner.ledger_rows(from, max)
    }
    common::forward_store_reads!(@all_but_ledger_reads inner);
}

/// Two drivers on one store, as two servers sharing PostgreSQL: each reads the whole ledger
/// once, then catches up with the records the other appended instead of reading it whole again
/// — an idle run too; a log snapshot does the same; every checkpoint signed is of the log read
/// whole.
#[test]
fn drivers_catch_up_with_records_they_did_not_append() {
    let snapshots = Arc::new(AtomicUsize::new(0));
    let (_fixture, runtime, log_key) = setup_on(Arc::new(CountingSnapshots {
        inner: MemoryReplayStore::new(),
        snapshots: Arc::clone(&snapshots),
    }));
    let environment = runtime.environment();
    let signing = signing_with(&environment, &log_key);
    let store = runtime.store();
    let drivers = [LogSequencer::new(2), LogSequencer::new(2)];
    execute(&runtime, "two-0");
    for driver in &drivers {
        driver.run_all(store, Some(signing)).unwrap();
    }
    let mut snapshot = read_log(store).unwrap();
    let before = snapshots.load(Ordering::SeqCst);
    for round in 1..6 {
        for k in 0..3 {
            execute(&runtime, &format!("two-{round}-{k}"));
        }
        let report = drivers[round % 2].run_all(store, Some(signing)).unwrap();
        let whole = read_log(store).unwrap();
        assert_eq!(report.size, whole.size(), "round {round}");
        assert_eq!(
            report.checkpoint.unwrap().root,
            parmana_runtime::replay::ledger_log(store).unwrap().root()
        );
        snapshot.catch_up(store).unwrap();
        assert_eq!(snapshot.size(), whole.size());
        // The other driver, idle, catches up too.
        let idle = drivers[(round + 1) % 2].run(store, Some(signing)).unwrap();
        assert_eq!((idle.integrated.len(), idle.size), (0, whole.size()));
    }
    // The whole reads since, two per round, are the test's own.
    assert_eq!(snapshots.load(Ordering::SeqCst), before + 2 * 5);
}

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
    assert!(
        driver
            .store_rewound()
            .is_some_and(|why| why.contains("replay.ledger_broken")),
        "{:?}",
        driver.store_rewound()
    );
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

#[test]
fn a_log_anchor_refuses_a_log_that_does_not_extend_what_the_key_signed() {
    let (fixture, runtime, log_key) = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log-anchor");
    let anchor = LogAnchor::open(&path).unwrap();
    assert_eq!(anchor.recorded(), None);
    // Another signer sharing the file (another process), opened before anything was recorded.
    let sharing = LogAnchor::open(&path).unwrap();
    for n in 0..3 {
        execute(&runtime, &format!("anchored-{n}"));
    }
    let with = |environment, anchor| LogSigning {
        anchor: Some(anchor),
        ..signing_with(environment, &log_key)
    };
    let environment = runtime.environment();
    let report = LogSequencer::default()
        .run_all(runtime.store(), Some(with(&environment, &anchor)))
        .unwrap();
    let (size, root) = anchor.recorded().unwrap();
    assert_eq!(size, report.size);
    // Kept in the file: read again as a restarted signer reads it.
    let reopened = LogAnchor::open(&path).unwrap();
    assert_eq!(reopened.recorded(), Some((size, root)));

    // A store that does not hold that log (the ledger cut or rewritten; here another store,
    // shorter): the sequencer, a checkpoint asked now, and a snapshot's checkpoint are refused.
    let other = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(Arc::new(MemoryReplayStore::new()))
        .clock(clock())
        .build()
        .unwrap();
    execute(&other, "elsewhere-0");
    let other_environment = other.environment();
    // A driver starting on it refuses it before it writes anything into it: it does not reach
    // the anchored checkpoint (the ids cut away would execute again).
    assert_eq!(other.store().ledger_summary().unwrap().unsequenced, 1);
    let refused = LogSequencer::default()
        .run_all(other.store(), Some(with(&other_environment, &reopened)))
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    assert_eq!(
        other.store().ledger_summary().unwrap().unsequenced,
        1,
        "nothing integrated"
    );
    assert_eq!(
        reopened
            .check_store_reaches(other.store())
            .unwrap_err()
            .code(),
        "runtime.store_rewound"
    );
    reopened.check_store_reaches(runtime.store()).unwrap();
    let history = other_environment.trust_history();
    let now = clock().0;
    let manifest = other_environment.release_manifest().version();
    let sign = |anchor: Option<&LogAnchor>| {
        sign_log_checkpoint(other.store(), history, now, manifest, &[&log_key], anchor)
    };
    let refused = sign(Some(&reopened)).unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    let snapshot = read_log(other.store()).unwrap();
    let refused = snapshot
        .checkpoint(
            other.store(),
            history,
            now,
            manifest,
            &[&log_key],
            Some(&reopened),
        )
        .unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    // The signer sharing the file reads it again before it signs: refused too.
    let refused = sign(Some(&sharing)).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    // Without the anchor, that store's log is signed (what the anchor is for).
    assert!(sign(None).is_ok());
    assert_eq!(reopened.recorded(), Some((size, root)));
    // A log of the same size with another history, then a longer one: refused as well.
    for n in 1..3 {
        execute(&other, &format!("elsewhere-{n}"));
    }
    LogSequencer::default()
        .run_all(other.store(), None)
        .unwrap();
    assert_eq!(read_log(other.store()).unwrap().size(), size);
    for grow in [false, true] {
        if grow {
            execute(&other, "elsewhere-3");
        }
        let refused = sign(Some(&reopened)).unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
        // A driver on it reaches the anchored size and finds another root there: a fork, which
        // it holds as evidence of a store cut and grown again (a server stops executing on it)
        // — at its first run, even when a signer without the anchor has stored a checkpoint of
        // the whole forked log, so that this driver has nothing larger to sign.
        LogSequencer::default()
            .run_all(
                other.store(),
                Some(signing_with(&other_environment, &log_key)),
            )
            .unwrap();
        let driver = LogSequencer::default();
        let refused = driver
            .run_all(other.store(), Some(with(&other_environment, &reopened)))
            .unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
        assert!(driver.store_rewound().is_some(), "grown: {grow}");
    }

    // The log that extends it is signed, and the anchor follows it.
    execute(&runtime, "anchored-3");
    LogSequencer::default()
        .run_all(runtime.store(), Some(with(&environment, &reopened)))
        .unwrap();
    let (grown, _) = reopened.recorded().unwrap();
    assert!(grown > size, "{grown} {size}");
    assert_eq!(LogAnchor::open(&path).unwrap().recorded().unwrap().0, grown);

    // A file that is not an anchor is refused when it is read.
    let long = format!("parmana log anchor v1\n{}\n", "1".repeat(2000));
    let files: [&[u8]; 5] = [
        b"",
        b"parmana log anchor v1\n3\n",
        b"parmana log anchor v1\nx\nsha256:00\n",
        b"parmana log anchor v1\n3\n\xff\n",
        long.as_bytes(),
    ];
    for text in files {
        std::fs::write(&path, text).unwrap();
        let error = LogAnchor::open(&path).unwrap_err();
        assert_eq!(error.code(), "runtime.log_anchor_invalid", "{text:?}");
    }
    anchors_are_one_file_whatever_the_path(path.parent().unwrap());
}

/// Signers naming one anchor by different paths share it: through a linked directory the anchor
/// is the same file (resolved); a symbolic link to it, another name (a hard link) or a file
/// anyone may write is refused — a rename over a link would leave the file it names, and the
/// signers reading it, the old anchor.
#[cfg(unix)]
fn anchors_are_one_file_whatever_the_path(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let real = dir.join("real");
    std::fs::create_dir(&real).unwrap();
    let anchor = real.join("anchor.txt");
    std::fs::write(
        &anchor,
        format!(
            "parmana log anchor v1\n0\n{}\n",
            parmana_runtime::canon::merkle::empty_root()
        ),
    )
    .unwrap();
    let alias = dir.join("alias");
    std::os::unix::fs::symlink(&real, &alias).unwrap();
    let opened = LogAnchor::open(alias.join("anchor.txt")).unwrap();
    assert_eq!(opened.path(), std::fs::canonicalize(&anchor).unwrap());
    // In a directory not made yet: nothing recorded (as before; it is created at the first
    // signature), not refused — `execute` and `recover` open a configured anchor too.
    let unmade = LogAnchor::open(dir.join("not-yet").join("anchor.txt")).unwrap();
    assert_eq!(unmade.recorded(), None);
    let refused = |path: &std::path::Path| LogAnchor::open(path).map(|_| ()).map_err(|e| e.code());
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink(&anchor, &link).unwrap();
    assert_eq!(refused(&link), Err("runtime.log_anchor_invalid"));
    let hard = dir.join("hard.txt");
    std::fs::hard_link(&anchor, &hard).unwrap();
    assert_eq!(refused(&anchor), Err("runtime.log_anchor_invalid"));
    std::fs::remove_file(&hard).unwrap();
    std::fs::set_permissions(&anchor, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(refused(&anchor), Err("runtime.log_anchor_invalid"));
}

#[cfg(not(unix))]
fn anchors_are_one_file_whatever_the_path(_: &std::path::Path) {}

/// An audit reads the trust-root chain only for a ledger with a stored checkpoint, once, and a
/// chain that cannot be read then is an error, not a ledger reported intact.
#[test]
fn an_audit_reads_the_trust_root_only_for_a_ledger_with_checkpoints() {
    let store = MemoryReplayStore::new();
    let audit = audit_ledger(&store, || panic!("no checkpoint: no trust root is read")).unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert_eq!(audit.report.checkpoints, 0);
    store
        .store_checkpoint(&StoredCheckpoint {
            size: 0,
            root: parmana_runtime::canon::merkle::empty_root(),
            note: "a note\n".to_owned(),
        })
        .unwrap();
    let mut reads = 0;
    let refused = audit_ledger(&store, || {
        reads += 1;
        Err(parmana_runtime::ExecutionError::StoredCheckpointInvalid {
            size: 0,
            reason: "the trust root could not be read".to_owned(),
        })
    })
    .unwrap_err();
    assert_eq!(refused.code(), "runtime.stored_checkpoint_invalid");
    assert_eq!(reads, 1);
}

/// A log whose role needs two signatures: fewer keys than the threshold are refused before
/// anything is signed; with both, every checkpoint carries both signatures, so the next run
/// (which checks the stored one first), a proof against it and the audit all accept it — where
/// a note signed by one key of the two refused every later run.
#[test]
fn a_log_of_threshold_two_is_signed_by_both_keys_run_after_run() {
    use parmana_runtime::check_log_signer;
    let fixture = FixtureEnvironment::new().unwrap();
    let (first_key, second_key) = (
        fixture.key("root-1").unwrap(),
        fixture.key("root-2").unwrap(),
    );
    fixture
        .rotate_with_log(
            LogSpec {
                keys: vec![first_key.public_key(), second_key.public_key()],
                threshold: 2,
                ..LogSpec::one_key(ORIGIN, first_key.public_key())
            },
            Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(Arc::new(MemoryReplayStore::new()))
        .clock(clock())
        .build()
        .unwrap();
    let environment = runtime.environment();
    let signing = |signers| LogSigning {
        signers,
        ..signing_with(&environment, &first_key)
    };
    let one: [&dyn Signer; 1] = [&first_key];
    let twice_the_same: [&dyn Signer; 2] = [&first_key, &first_key];
    for short in [&one[..], &twice_the_same[..]] {
        assert_eq!(
            check_log_signer(signing(short)).map_err(|e| e.code()),
            Err("trust.threshold_not_met")
        );
        assert!(
            LogSequencer::default()
                .run_all(runtime.store(), Some(signing(short)))
                .is_err()
        );
    }
    // Both keys, one given twice: it signs once.
    let both: [&dyn Signer; 3] = [&first_key, &second_key, &first_key];
    check_log_signer(signing(&both)).unwrap();
    let store = runtime.store();
    let first = execute(&runtime, "both-1");
    for (run, name) in ["both-2", "both-3"].into_iter().enumerate() {
        let report = LogSequencer::default()
            .run_all(store, Some(signing(&both)))
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let note = report.checkpoint.unwrap().note;
        assert_eq!(
            note.matches("\n— log.example/parmana ").count(),
            2,
            "{note}"
        );
        execute(&runtime, name);
    }
    let history = environment.trust_history().clone();
    let proof = prove_execution(store, environment.trust_root(), &id("both-1"), None).unwrap();
    verify_attestation_proof(&first, proof.to_text().as_bytes(), &history).unwrap();
    let audit = audit_ledger(store, || Ok(Some(history.clone()))).unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert_eq!(audit.report.checkpoints, 2);
}

/// A writer of the store, holding no key, raises the marks past every version this deployment
/// verified (a marks record of its own): the store integrates the record, but no checkpoint is
/// signed over it — a raise no environment the signer holds made. A signer that holds the
/// versions named (another server's newer environment, after a reload) signs it.
#[test]
fn no_checkpoint_is_signed_over_a_marks_raise_no_environment_made() {
    for member in ["trust_root", "release_manifest"] {
        let (_fixture, runtime, log_key) = setup();
        let environment = runtime.environment();
        let signing = signing_with(&environment, &log_key);
        let store = runtime.store();
        execute(&runtime, "before-the-raise");
        LogSequencer::default()
            .run_all(store, Some(signing))
            .unwrap();
        let (trust_root, manifest) = (
            environment.trust_root().version(),
            environment.release_manifest().version(),
        );
        let raised = match member {
            "trust_root" => (99, manifest),
            _ => (trust_root, 99),
        };
        // The raise writes the marks row and appends a marks record.
        store.accept_versions(raised.0, raised.1).unwrap();
        let refused = LogSequencer::default()
            .run_all(store, Some(signing))
            .unwrap_err();
        assert_eq!(refused.code(), "runtime.log_entry_unattested", "{member}");
        assert!(
            refused
                .to_string()
                .contains(&format!("names {member} version 99")),
            "{member}: {refused}"
        );
        if member == "release_manifest" {
            let newer = LogSigning {
                release_manifest: 99,
                ..signing
            };
            let report = LogSequencer::default().run_all(store, Some(newer)).unwrap();
            assert!(report.checkpoint.is_some(), "{report:?}");
        }
    }
}
