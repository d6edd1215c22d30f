//! The sequencer driver: executions are readable at once and enter the log in batches; runs sign and store checkpoints with the `log` keys (as many as the role's threshold), never over an entry that is not an attested execution nor a marks raise no environment of the signer made; proofs come from stored checkpoints; `audit_ledger` refuses a tampered stored checkpoint; a log anchor refuses to sign a log that does not extend what the key signed, across restarts (`anchor.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anchor;
#[path = "../common/mod.rs"]
mod common;
mod cuts;

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

/// `driver` holds a broken ledger (`replay.ledger_broken`) as evidence of a cut: what a server
/// latches on.
fn assert_broken_ledger_recorded(driver: &LogSequencer) {
    assert!(
        driver
            .store_rewound()
            .is_some_and(|why| why.contains("replay.ledger_broken")),
        "{:?}",
        driver.store_rewound()
    );
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
