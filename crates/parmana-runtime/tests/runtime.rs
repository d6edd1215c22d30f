//! The `Runtime` object: shared across threads, pure evaluate/explain, reading attestations back, several signers and thresholds, and hot reload (good, bad, rollback, in flight).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::{Fixture, clock, runtime_over};
use parmana_runtime::canon::{ExecutionId, Timestamp};
use parmana_runtime::replay::{
    ClaimOutcome, ClaimRecord, ExecutionState, MemoryReplayStore, ReplayError, ReplayStore,
};
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{Clock, ExecutionRequest, ExecutionStatus, Runtime, Signals};

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": false, "country": "DE", "policy_age_days": 400}"#;

fn request(id: &str) -> ExecutionRequest {
    ExecutionRequest::parse(id, "claims-approval@1.0.0", SIGNALS).unwrap()
}

fn runtime(fixture: &Fixture) -> Runtime {
    runtime_over(fixture, Arc::new(MemoryReplayStore::new()))
}

#[test]
fn a_runtime_is_shared_by_threads_and_each_id_is_won_once() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Runtime>();
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    let wins = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let runtime = runtime.clone();
            let wins = Arc::clone(&wins);
            std::thread::spawn(move || {
                for n in 0..20 {
                    // Every thread races for the same 20 shared ids and executes 20 of its own.
                    for id in [format!("shared-{n}"), format!("own-{t}-{n}")] {
                        if runtime.execute(&request(&id)).is_ok() {
                            wins.lock().unwrap().push(id);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut wins = wins.lock().unwrap().clone();
    wins.sort();
    let before = wins.len();
    wins.dedup();
    assert_eq!(before, wins.len(), "an id was won twice");
    assert_eq!(wins.len(), 20 + 8 * 20);
}

#[test]
fn evaluate_and_explain_decide_without_consuming_or_signing() {
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    let policy = "claims-approval@1.0.0".parse().unwrap();
    let signals = Signals::from_json(SIGNALS).unwrap();
    let evaluation = runtime.evaluate(&policy, &signals).unwrap();
    let explained = runtime.explain(&policy, &signals).unwrap();
    assert_eq!(explained.evaluation, evaluation);
    let trace: serde_json::Value = serde_json::from_slice(&explained.trace).unwrap();
    assert_eq!(trace["decision"]["rule_id"], evaluation.rule_id.as_str());
    assert!(!trace["rules"].as_array().unwrap().is_empty());
    assert!(explained.text.contains(&evaluation.rule_id));
    // The trace alone, as a server embeds it: the same decision and bytes, no text made.
    let (alone, trace) = runtime.explain_trace(&policy, &signals).unwrap();
    assert_eq!(alone, evaluation);
    assert_eq!(trace.as_bytes(), explained.trace.as_slice());
    // Nothing was claimed; executing afterwards decides the same.
    assert!(runtime.store().pending().unwrap().is_empty());
    let attestation = runtime.execute(&request("after-evaluate")).unwrap();
    assert_eq!(attestation.predicate().decision, evaluation.decision);
    assert_eq!(attestation.predicate().rule_id, evaluation.rule_id);
    // Refusals are the pipeline's own.
    let bad = Signals::from_json(r#"{"claim_amount": "many"}"#).unwrap();
    assert_eq!(
        runtime.evaluate(&policy, &bad).unwrap_err().code(),
        "policy.signal_type"
    );
    let unknown = "claims-approval@9.9.9".parse().unwrap();
    assert_eq!(
        runtime.evaluate(&unknown, &signals).unwrap_err().code(),
        "runtime.policy_not_found"
    );
}

/// Signals given as a value are bounded as text is: a value whose compact JSON text is longer
/// than `MAX_SIGNALS_JSON_BYTES` is refused with `runtime.request_too_large` (as the same text
/// given to `Signals::from_json`), by evaluate and by execute before the id is claimed; one at
/// the limit goes on to the policy.
#[test]
fn signals_given_as_a_value_are_bounded_as_text_is() {
    use parmana_runtime::MAX_SIGNALS_JSON_BYTES;
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    let policy = "claims-approval@1.0.0".parse().unwrap();
    // (padding so that the compact text is exactly the limit, plus `extra` bytes; refused)
    let with_text_len = |extra: usize| {
        let mut value: serde_json::Value = serde_json::from_str(SIGNALS).unwrap();
        value["pad"] = serde_json::Value::String(String::new());
        let bare = serde_json::to_string(&value).unwrap().len();
        value["pad"] = serde_json::Value::String("x".repeat(MAX_SIGNALS_JSON_BYTES - bare + extra));
        assert_eq!(
            serde_json::to_string(&value).unwrap().len(),
            MAX_SIGNALS_JSON_BYTES + extra
        );
        value
    };
    for (extra, refused) in [(0, false), (1, true), (MAX_SIGNALS_JSON_BYTES, true)] {
        let value = with_text_len(extra);
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(Signals::from_json(text).is_err(), refused, "text +{extra}");
        let signals = Signals::from_value(value);
        let evaluated = runtime.evaluate(&policy, &signals).map(|e| e.decision);
        let id = format!("value-{extra}");
        let executed = runtime
            .execute(&ExecutionRequest::new(
                ExecutionId::parse(&id).unwrap(),
                policy.clone(),
                signals,
            ))
            .map(|a| a.predicate().decision.clone());
        if refused {
            for got in [evaluated, executed] {
                assert_eq!(
                    got.unwrap_err().code(),
                    "runtime.request_too_large",
                    "+{extra}"
                );
            }
            // Nothing was claimed: the id is still free.
            assert!(runtime.execute(&request(&id)).is_ok(), "+{extra}");
        } else {
            // Past the size check, judged by the policy (which declares no `pad`).
            for got in [evaluated, executed] {
                assert_eq!(
                    got.unwrap_err().code(),
                    "policy.signal_undeclared",
                    "+{extra}"
                );
            }
        }
    }
}

/// A writer of the store (no key) who files execution `b`'s row — its claim and its genuine
/// attestation — under the id `a` too.
#[derive(Debug)]
struct FilesUnderAnotherId {
    inner: MemoryReplayStore,
    a: ExecutionId,
    b: ExecutionId,
}

impl ReplayStore for FilesUnderAnotherId {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner: pending_after, accepted_versions, accept_versions,
        sequence, store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary,
        ledger_rows);
    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        if *execution_id == self.a {
            return self.inner.get(&self.b);
        }
        self.inner.get(execution_id)
    }
}

/// The store is outside the trust boundary: an attestation is read back only as the execution's
/// own — another execution's genuine attestation filed under its id is refused, not handed out.
#[test]
fn a_stored_attestation_is_read_back_only_as_its_own_executions() {
    let fixture = Fixture::new();
    let id = |text: &str| ExecutionId::parse(text).unwrap();
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .store(FilesUnderAnotherId {
            inner: MemoryReplayStore::new(),
            a: id("swapped"),
            b: id("genuine"),
        })
        .clock(clock())
        .build()
        .unwrap();
    let genuine = runtime.execute(&request("genuine")).unwrap();
    assert_eq!(
        runtime.attestation(&id("genuine")).unwrap(),
        ExecutionStatus::Completed(genuine.envelope().to_vec())
    );
    let refused = runtime.attestation(&id("swapped")).unwrap_err();
    assert_eq!(refused.code(), "runtime.stored_attestation_invalid");
    assert!(
        refused.to_string().contains("another execution"),
        "{refused}"
    );
    assert_eq!(refused.class(), parmana_runtime::ErrorClass::Trust);
}

#[test]
fn attestations_are_read_back_and_pending_claims_are_told_apart() {
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    let done = runtime.execute(&request("done")).unwrap();
    let id = |text: &str| ExecutionId::parse(text).unwrap();
    assert_eq!(
        runtime.attestation(&id("done")).unwrap(),
        ExecutionStatus::Completed(done.envelope().to_vec())
    );
    assert_eq!(
        runtime.attestation(&id("never")).unwrap(),
        ExecutionStatus::Unknown
    );
    let claim = ClaimRecord::new(
        parmana_runtime::canon::Digest::of(b"r"),
        b"{}".to_vec(),
        clock().0,
    );
    let under = parmana_runtime::replay::AcceptedVersions::new(2, 1);
    let _claimed = runtime
        .store()
        .claim(&id("pending"), &claim, under)
        .unwrap();
    assert_eq!(
        runtime.attestation(&id("pending")).unwrap(),
        ExecutionStatus::Claimed {
            claimed_at: clock().0
        }
    );
}

#[test]
fn signers_are_chosen_by_role_and_must_meet_the_threshold_before_anything_is_consumed() {
    let fixture = Fixture::new();
    let second = LocalSigningKey::from_seed(&[42; 32]);
    fixture.rotate(&[&fixture.key("attestation"), &second], 2);
    let store = Arc::new(MemoryReplayStore::new());
    let one = Runtime::builder(fixture.config())
        .signer(fixture.key("policy")) // no attestation role: skipped
        .signer(fixture.key("attestation"))
        .shared_store(store.clone())
        .clock(clock())
        .build()
        .unwrap();
    let err = one.execute(&request("below-threshold")).unwrap_err();
    assert_eq!(err.code(), "runtime.signers_below_threshold");
    assert!(
        store.pending().unwrap().is_empty(),
        "nothing may be consumed"
    );
    assert_eq!(
        one.attestation(&ExecutionId::parse("below-threshold").unwrap())
            .unwrap(),
        ExecutionStatus::Unknown
    );
    let both = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .signer(second)
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap();
    let attestation = both.execute(&request("below-threshold")).unwrap();
    let report = both.verify(attestation.envelope(), None, None);
    assert!(report.is_valid(), "{report:?}");
    // Only role holders are used; with none, the first signer is named.
    let none = Runtime::builder(fixture.config())
        .signer(fixture.key("policy"))
        .store(MemoryReplayStore::new())
        .clock(clock())
        .build()
        .unwrap();
    assert_eq!(
        none.execute(&request("x")).unwrap_err().code(),
        "runtime.signer_lacks_role"
    );
}

#[test]
fn reload_swaps_a_verified_environment_and_keeps_the_old_one_on_refusal() {
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    assert_eq!(runtime.environment().trust_root().version(), 2);
    let before = runtime.execute(&request("before-reload")).unwrap();
    fixture.rotate(&[&fixture.key("attestation")], 1);
    let report = runtime.reload().unwrap();
    assert_eq!(report.trust_root, (2, 3));
    assert!(report.policies >= 1);
    let after = runtime.execute(&request("after-reload")).unwrap();
    assert_eq!(after.predicate().trust_root.version, 3);

    // A broken trust root on disk: refused, the old environment keeps serving.
    let path = fixture.root().join("trust/trust-root.json");
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"{}").unwrap();
    let err = runtime.reload().unwrap_err();
    let record = runtime.last_reload().unwrap();
    assert_eq!(record.outcome.unwrap_err().0, err.code());
    assert_eq!(runtime.environment().trust_root().version(), 3);
    runtime.execute(&request("still-serving")).unwrap();

    // Rolling back to version 2 on disk is refused.
    let archived = fixture.root().join("trust/trust-root.d/2.json");
    std::fs::write(&path, std::fs::read(&archived).unwrap()).unwrap();
    std::fs::remove_file(&archived).unwrap();
    assert_eq!(
        runtime.reload().unwrap_err().code(),
        "trust.version_rollback"
    );
    assert_eq!(runtime.environment().trust_root().version(), 3);
    std::fs::write(&archived, std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(&path, good).unwrap();
    assert_eq!(runtime.reload().unwrap().trust_root, (3, 3));
    assert!(runtime.last_reload().unwrap().outcome.is_ok());
    // A host whose reload task failed records it: the last reload reads refused, nothing else
    // changes.
    runtime.record_reload_failure("server.internal", "the reload task failed".to_owned());
    assert_eq!(
        runtime.last_reload().unwrap().outcome.unwrap_err(),
        (
            "server.internal".to_owned(),
            "the reload task failed".to_owned()
        )
    );
    assert_eq!(runtime.environment().trust_root().version(), 3);

    // A valid next version whose `attestation` role no longer holds this runtime's key (it was
    // rotated out, perhaps because it leaked): taken, and the key signs no more — every
    // execution is refused, nothing consumed, and the runtime says it cannot sign.
    runtime.check_can_sign().unwrap();
    let stranger = LocalSigningKey::from_seed(&[9; 32]);
    fixture.rotate(&[&stranger], 1);
    assert_eq!(runtime.reload().unwrap().trust_root, (3, 4));
    assert_eq!(
        runtime.check_can_sign().unwrap_err().code(),
        "runtime.signer_lacks_role"
    );
    assert_eq!(
        runtime.execute(&request("rotated-out")).unwrap_err().code(),
        "runtime.signer_lacks_role"
    );
    assert!(matches!(
        runtime.attestation(&ExecutionId::parse("rotated-out").unwrap()),
        Ok(ExecutionStatus::Unknown)
    ));
    // What it signed before is still read back: made under versions 2 and 3 (superseded), by
    // a key the newest version no longer trusts.
    for (id, made) in [("before-reload", &before), ("after-reload", &after)] {
        assert_eq!(
            runtime
                .attestation(&ExecutionId::parse(id).unwrap())
                .unwrap(),
            ExecutionStatus::Completed(made.envelope().to_vec()),
            "{id}"
        );
    }
}

/// Runtimes sharing a store reload one after another (a rolling reload): one that has not yet
/// reloaded reads an attestation made under the newer trust root as not yet readable here
/// (`runtime.environment_behind`, retryable), never as a forgery; once reloaded, it reads it.
#[test]
fn an_attestation_made_under_a_newer_trust_root_is_read_once_reloaded() {
    let fixture = Fixture::new();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let build = || {
        Runtime::builder(fixture.config())
            .signer(fixture.key("attestation"))
            .shared_store(Arc::clone(&store))
            .clock(clock())
            .build()
            .unwrap()
    };
    let (first, behind) = (build(), build());
    fixture.rotate(&[&fixture.key("attestation")], 1);
    assert_eq!(first.reload().unwrap().trust_root, (2, 3));
    let made = first.execute(&request("rolled")).unwrap();
    let id = ExecutionId::parse("rolled").unwrap();
    let refused = behind.attestation(&id).unwrap_err();
    assert_eq!(refused.code(), "runtime.environment_behind", "{refused}");
    assert!(refused.to_string().contains("version 3"), "{refused}");
    assert_eq!(behind.reload().unwrap().trust_root, (2, 3));
    assert_eq!(
        behind.attestation(&id).unwrap(),
        ExecutionStatus::Completed(made.envelope().to_vec())
    );
}

/// An attestation naming a trust-root version no runtime sharing the store accepted (its marks
/// are lower: a writer filed it there) is not "another server reloaded first": it is refused as
/// what it is, an attestation this runtime cannot verify.
#[test]
fn an_attestation_naming_a_version_the_store_never_accepted_is_refused() {
    let fixture = Fixture::new();
    // Made by a runtime on another store, after a rotation to version 3.
    let elsewhere = runtime(&fixture);
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let behind = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .shared_store(Arc::clone(&store))
        .clock(clock())
        .build()
        .unwrap();
    // Its own execution raises this store's marks to version 2.
    behind.execute(&request("own")).unwrap();
    fixture.rotate(&[&fixture.key("attestation")], 1);
    assert_eq!(elsewhere.reload().unwrap().trust_root, (2, 3));
    let made = elsewhere.execute(&request("filed")).unwrap();
    // Filed in this store (whose marks say version 2) by a writer of it.
    let id = ExecutionId::parse("filed").unwrap();
    let claim = ClaimRecord::new(
        parmana_runtime::canon::Digest::of(b"filed"),
        b"{}".to_vec(),
        made.predicate().executed_at,
    );
    assert_eq!(
        store
            .claim(&id, &claim, store.accepted_versions().unwrap())
            .unwrap(),
        ClaimOutcome::Claimed
    );
    store.complete(&id, made.envelope()).unwrap();
    assert_eq!(store.accepted_versions().unwrap().trust_root, 2);
    let refused = behind.attestation(&id).unwrap_err();
    assert_eq!(
        refused.code(),
        "runtime.stored_attestation_invalid",
        "{refused}"
    );
}

/// A clock that, on its first reading, waits until the test has reloaded the runtime.
struct PausingClock {
    reading: Timestamp,
    reached: Barrier,
    resume: Barrier,
    first: Mutex<bool>,
}

impl Clock for PausingClock {
    fn now(&self) -> Timestamp {
        let first = std::mem::replace(&mut *self.first.lock().unwrap(), false);
        if first {
            self.reached.wait();
            self.resume.wait();
        }
        self.reading
    }
}

/// A clock shared between a runtime and the test.
struct Shared(Arc<PausingClock>);

impl Clock for Shared {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

/// A runtime on a memory store whose next clock reading (the first execution's) waits for the
/// test, with `fixture` rotated to version 3 on disk (the runtime holds version 2 until it
/// reloads).
fn paused_at_its_first_clock_reading(fixture: &Fixture) -> (Runtime, Arc<PausingClock>) {
    let pausing = Arc::new(PausingClock {
        reading: clock().0,
        reached: Barrier::new(2),
        resume: Barrier::new(2),
        first: Mutex::new(false),
    });
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .store(MemoryReplayStore::new())
        .clock(Shared(Arc::clone(&pausing)))
        .build()
        .unwrap();
    fixture.rotate(&[&fixture.key("attestation")], 1);
    *pausing.first.lock().unwrap() = true;
    (runtime, pausing)
}

#[test]
fn an_execution_in_flight_finishes_on_the_environment_it_started_with() {
    let fixture = Fixture::new();
    let (runtime, pausing) = paused_at_its_first_clock_reading(&fixture);
    let in_flight = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.execute(&request("in-flight")))
    };
    // The execution has taken its environment and is reading the clock: reload under it.
    pausing.reached.wait();
    let reloaded = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.reload())
    };
    let report = reloaded.join().unwrap().unwrap();
    assert_eq!(report.trust_root, (2, 3));
    pausing.resume.wait();
    let attestation = in_flight.join().unwrap().unwrap();
    assert_eq!(attestation.predicate().trust_root.version, 2);
    assert_eq!(runtime.environment().trust_root().version(), 3);
    let next = runtime.execute(&request("next")).unwrap();
    assert_eq!(next.predicate().trust_root.version, 3);
}

#[test]
fn an_execution_overtaken_by_a_newer_claim_is_decided_again_under_the_new_environment() {
    let fixture = Fixture::new();
    let (runtime, pausing) = paused_at_its_first_clock_reading(&fixture);
    let overtaken = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.execute(&request("overtaken")))
    };
    // It holds version 2; the runtime reloads version 3 and another execution claims under it,
    // raising the store's marks past what the first one holds.
    pausing.reached.wait();
    let reloaded = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.reload())
    };
    assert_eq!(reloaded.join().unwrap().unwrap().trust_root, (2, 3));
    let newer = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.execute(&request("newer")))
    };
    let newer = newer.join().unwrap().unwrap();
    assert_eq!(newer.predicate().trust_root.version, 3);
    pausing.resume.wait();
    // Its claim under version 2 is refused as a rollback, consuming nothing; nothing rolled
    // back, so it is decided again under version 3 rather than answered as a trust failure.
    let attestation = overtaken.join().unwrap().unwrap();
    assert_eq!(attestation.predicate().trust_root.version, 3);
    // A genuine rollback (an environment older than the store, with no newer one in force)
    // is still refused: see `reload_swaps_a_verified_environment_and_keeps_the_old_one_on_refusal`
    // and the store-boundary tests.
}

#[test]
fn verify_judges_an_attestation_under_the_version_it_was_made_under() {
    let fixture = Fixture::new();
    let runtime = runtime(&fixture);
    let made_under_2 = runtime.execute(&request("before-rotation")).unwrap();
    let standing = |runtime: &Runtime| {
        let report = runtime.verify(made_under_2.envelope(), None, None);
        assert!(report.is_valid(), "{report:#?}");
        let standing = report.trust_standing().unwrap().clone();
        let trusted: Vec<bool> = standing
            .signing_keys
            .iter()
            .map(|k| k.trusted_by_newest)
            .collect();
        (standing.version, standing.newest_version, trusted)
    };
    assert_eq!(standing(&runtime), (2, 2, vec![true]));
    // Rotated with the attestation key kept: superseded, the key still trusted.
    fixture.rotate(&[&fixture.key("attestation")], 1);
    runtime.reload().unwrap();
    assert_eq!(standing(&runtime), (2, 3, vec![true]));
    // Rotated to another attestation key: still valid, the key no longer trusted.
    fixture.rotate(&[&LocalSigningKey::from_seed(&[42; 32])], 1);
    runtime.reload().unwrap();
    assert_eq!(standing(&runtime), (2, 4, vec![false]));
    assert_eq!(runtime.environment().trust_history().versions().count(), 4);
}

/// A memory store whose `complete` fails while `failing` holds (the store unreachable at that
/// moment, its write lock held elsewhere past the busy timeout, a full disk), and first waits for
/// `release` while `held` holds (`entered` once one waits); and that answers the completion of
/// the id in `corrupt` (every id it begins, for a name ending in `*`) with
/// `replay.store_corrupt` (a row it cannot take, every time).
#[derive(Debug, Default)]
struct FlakyComplete {
    inner: MemoryReplayStore,
    failing: std::sync::atomic::AtomicBool,
    held: std::sync::atomic::AtomicBool,
    entered: std::sync::atomic::AtomicBool,
    release: std::sync::atomic::AtomicBool,
    corrupt: std::sync::Mutex<Option<String>>,
}

impl ReplayStore for FlakyComplete {
    common::forward_store_writes!(inner: claim);
    fn complete(
        &self,
        id: &ExecutionId,
        attestation: &[u8],
    ) -> Result<(), parmana_runtime::replay::ReplayError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.held.load(SeqCst) {
            self.entered.store(true, SeqCst);
            while !self.release.load(SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        if self.failing.load(SeqCst) {
            return Err(parmana_runtime::replay::ReplayError::Unavailable {
                message: "the store does not answer".to_owned(),
            });
        }
        if self
            .corrupt
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|corrupt| {
                corrupt == id.as_str()
                    || corrupt
                        .strip_suffix('*')
                        .is_some_and(|prefix| id.as_str().starts_with(prefix))
            })
        {
            return Err(parmana_runtime::replay::ReplayError::Corrupt {
                message: "the row cannot be read".to_owned(),
            });
        }
        self.inner.complete(id, attestation)
    }
    common::forward_store_reads!(inner);
}

#[test]
fn a_completion_the_store_refused_is_written_again_once_it_answers() {
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    // What the execution would have returned.
    let expected = runtime
        .execute(&request("reference"))
        .unwrap()
        .into_envelope();
    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = runtime.execute(&request("flaky-1")).unwrap_err();
    assert_eq!(refused.code(), "replay.store_unavailable");
    let id = ExecutionId::parse("flaky-1").unwrap();
    assert!(matches!(
        runtime.attestation(&id).unwrap(),
        ExecutionStatus::Claimed { .. }
    ));
    // Still failing: kept.
    let report = runtime.finish_completions();
    assert_eq!((report.finished, report.waiting), (0, 1));
    // The store answers again: the attestation signed then is recorded, byte for byte what
    // the execution would have returned (the same signals and clock as the reference, another
    // id: compared by its predicate's id).
    store
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let report = runtime.finish_completions();
    assert_eq!((report.finished, report.waiting), (1, 0));
    let ExecutionStatus::Completed(bytes) = runtime.attestation(&id).unwrap() else {
        panic!("flaky-1 is not completed");
    };
    assert_ne!(bytes, expected);
    let report = runtime.verify(&bytes, None, None);
    assert!(report.is_valid(), "{report:#?}");
    assert_eq!(report.predicate().unwrap().execution_id.as_str(), "flaky-1");
    // Nothing left; a retry of the request is a replay of the recorded outcome.
    assert_eq!(runtime.finish_completions(), Default::default());
    // A kept completion is written only onto the claim it was signed for: completed meanwhile
    // by another (a `recover`), it is dropped and what is stored stands.
    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    runtime.execute(&request("flaky-2")).unwrap_err();
    let other = ExecutionId::parse("flaky-2").unwrap();
    store
        .inner
        .complete(&other, b"completed by another")
        .unwrap();
    store
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let report = runtime.finish_completions();
    assert_eq!((report.finished, report.waiting), (1, 0));
    assert!(matches!(
        store.inner.get(&other).unwrap(),
        ExecutionState::Completed(done) if done.attestation() == b"completed by another"
    ));
    // Which the runtime does not hand out as an attestation: it is none.
    assert_eq!(
        runtime.attestation(&other).unwrap_err().code(),
        "runtime.stored_attestation_invalid"
    );
    assert_eq!(
        runtime.execute(&request("flaky-1")).unwrap_err().code(),
        "runtime.replay_detected"
    );
}

/// A kept completion the store answers with a refusal of its row (a corrupt row, every time)
/// is kept, after the others, and the pass goes on past it: it holds back none of the completions
/// kept after it, and is written once the store takes it. One refused so at its first write is
/// kept too (nothing is given up: while it waits, the marks are not raised past its versions).
/// A store refusing every row costs a pass at most `MAX_REFUSED_COMPLETIONS_PER_PASS` calls.
#[test]
fn a_completion_the_store_refuses_for_its_row_holds_back_no_other() {
    use std::sync::atomic::Ordering::SeqCst;
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let state = |id: &str| {
        runtime
            .attestation(&ExecutionId::parse(id).unwrap())
            .unwrap()
    };
    let counts =
        |report: parmana_runtime::FinishReport| (report.finished, report.waiting, report.refused);
    store.failing.store(true, SeqCst);
    for id in ["refused-row", "after-it"] {
        let refused = runtime.execute(&request(id)).unwrap_err();
        assert_eq!(refused.code(), "replay.store_unavailable");
    }
    store.failing.store(false, SeqCst);
    *store.corrupt.lock().unwrap() = Some("refused-row".to_owned());
    assert_eq!(counts(runtime.finish_completions()), (1, 1, 1));
    let ExecutionStatus::Completed(bytes) = state("after-it") else {
        panic!("after-it is not completed");
    };
    assert!(runtime.verify(&bytes, None, None).is_valid());
    assert!(matches!(
        state("refused-row"),
        ExecutionStatus::Claimed { .. }
    ));
    // Refused again at the next pass: still kept; written once the store takes it.
    assert_eq!(counts(runtime.finish_completions()), (0, 1, 1));
    *store.corrupt.lock().unwrap() = None;
    assert_eq!(counts(runtime.finish_completions()), (1, 0, 0));
    let ExecutionStatus::Completed(bytes) = state("refused-row") else {
        panic!("refused-row is not completed");
    };
    assert!(runtime.verify(&bytes, None, None).is_valid());
    // Refused so at its first write: the refusal is the answer, and the completion is kept.
    *store.corrupt.lock().unwrap() = Some("refused-first".to_owned());
    let refused = runtime.execute(&request("refused-first")).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt");
    assert!(matches!(
        state("refused-first"),
        ExecutionStatus::Claimed { .. }
    ));
    assert_eq!(counts(runtime.finish_completions()), (0, 1, 1));
    *store.corrupt.lock().unwrap() = None;
    assert_eq!(counts(runtime.finish_completions()), (1, 0, 0));
    // A store refusing every row: a pass stops after so many refusals, the rest kept untried.
    let many = parmana_runtime::MAX_REFUSED_COMPLETIONS_PER_PASS + 4;
    store.failing.store(true, SeqCst);
    for n in 0..many {
        runtime
            .execute(&request(&format!("every-row-{n:02}")))
            .unwrap_err();
    }
    store.failing.store(false, SeqCst);
    *store.corrupt.lock().unwrap() = Some("*".to_owned());
    assert_eq!(
        counts(runtime.finish_completions()),
        (0, many, parmana_runtime::MAX_REFUSED_COMPLETIONS_PER_PASS)
    );
    *store.corrupt.lock().unwrap() = None;
    assert_eq!(counts(runtime.finish_completions()), (many, 0, 0));
    // More rows refused for ever than a pass goes past, kept before another: the refused ones
    // wait after the rest, so the other is written at the next pass, not never.
    store.failing.store(true, SeqCst);
    for id in (0..many)
        .map(|n| format!("stuck-{n:02}"))
        .chain(["free".to_owned()])
    {
        runtime.execute(&request(&id)).unwrap_err();
    }
    store.failing.store(false, SeqCst);
    *store.corrupt.lock().unwrap() = Some("stuck-*".to_owned());
    let cap = parmana_runtime::MAX_REFUSED_COMPLETIONS_PER_PASS;
    assert_eq!(counts(runtime.finish_completions()), (0, many + 1, cap));
    assert!(matches!(state("free"), ExecutionStatus::Claimed { .. }));
    assert_eq!(counts(runtime.finish_completions()), (1, many, cap));
    assert!(matches!(state("free"), ExecutionStatus::Completed(_)));
    // One kept after those passes is tried before the rows refused already: written at once.
    store.failing.store(true, SeqCst);
    runtime.execute(&request("late")).unwrap_err();
    store.failing.store(false, SeqCst);
    assert_eq!(counts(runtime.finish_completions()), (1, many, cap));
    assert!(matches!(state("late"), ExecutionStatus::Completed(_)));
}

/// Passes writing kept completions again run one at a time: a pass takes them out while it runs,
/// so one beside it would find none and report none waiting (a host deciding on that report —
/// whether to raise the store's marks — would be misled). The second waits for the first, then
/// reports the completion still waiting.
#[test]
fn passes_over_kept_completions_run_one_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    store.failing.store(true, SeqCst);
    runtime.execute(&request("kept")).unwrap_err();
    store.held.store(true, SeqCst);
    let first = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.finish_completions())
    };
    while !store.entered.load(SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.finish_completions())
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let waited = !second.is_finished();
    store.held.store(false, SeqCst);
    store.release.store(true, SeqCst);
    assert_eq!(first.join().unwrap().waiting, 1);
    assert!(waited, "the second pass ran beside the first");
    assert_eq!(second.join().unwrap().waiting, 1);
}

/// A claim left pending under one environment (its completion refused, and the runtime ended
/// before it was written again) is not recovered under the next: it is said to be claimed under
/// other versions (`runtime.recovery_environment_changed`), not forged, and stays claimed. A
/// runtime records the versions it took (`accept_environment`): one built on the older files
/// afterwards is refused as a rollback, though nothing was executed under the newer ones.
#[test]
fn a_claim_from_before_a_rotation_stays_claimed_and_the_versions_taken_are_recorded() {
    use std::sync::atomic::Ordering::SeqCst;
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let shared = Arc::clone(&store) as Arc<dyn ReplayStore>;
    let before = runtime_over(&fixture, Arc::clone(&shared));
    store.failing.store(true, SeqCst);
    assert_eq!(
        before.execute(&request("left-over")).unwrap_err().code(),
        "replay.store_unavailable"
    );
    store.failing.store(false, SeqCst);
    // Its kept completion ends with it.
    drop(before);
    fixture.rotate(&[&fixture.key("attestation")], 1);
    let after = runtime_over(&fixture, Arc::clone(&shared));
    let report = after.recover().unwrap();
    assert!(report.completed.is_empty(), "{:?}", report.completed);
    let [(id, error)] = &report.failed[..] else {
        panic!("{:?}", report.failed);
    };
    assert_eq!(id, "left-over");
    assert_eq!(
        error.code(),
        "runtime.recovery_environment_changed",
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("claimed under trust root version 2 and release manifest version 1"),
        "{error}"
    );
    assert!(matches!(
        after
            .attestation(&ExecutionId::parse("left-over").unwrap())
            .unwrap(),
        ExecutionStatus::Claimed { .. }
    ));
    // Nothing was executed under version 3: the marks say 2 until the runtime records it, once.
    assert_eq!(shared.accepted_versions().unwrap().trust_root, 2);
    let records = shared.ledger_summary().unwrap().records;
    assert_eq!(after.accept_environment().unwrap().trust_root, 3);
    assert_eq!(shared.accepted_versions().unwrap().trust_root, 3);
    assert_eq!(after.accept_environment().unwrap().trust_root, 3);
    assert_eq!(shared.ledger_summary().unwrap().records, records + 1);
    assert_trust_root_2_refused(&fixture, shared);
}

/// Puts trust root 2 back on disk in place of the one in force (3): a runtime built on it over
/// `store` is refused as a rollback.
fn assert_trust_root_2_refused(fixture: &Fixture, store: Arc<dyn ReplayStore>) {
    let current = fixture.root().join("trust/trust-root.json");
    let archived = fixture.root().join("trust/trust-root.d/2.json");
    std::fs::write(&current, std::fs::read(&archived).unwrap()).unwrap();
    std::fs::remove_file(&archived).unwrap();
    let refused = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap_err();
    assert_eq!(refused.code(), "trust.version_rollback", "{refused}");
}

/// After a reload, the versions taken are recorded once nothing still holds an environment of
/// older versions (an execution in flight under it finishes on it): until then
/// `accept_settled_environment` does nothing; once it is let go, the marks are raised, so that a
/// runtime built on the older files is refused though nothing was executed under the newer ones.
#[test]
fn after_a_reload_the_versions_are_recorded_once_the_older_environment_is_let_go() {
    let fixture = Fixture::new();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let runtime = runtime_over(&fixture, Arc::clone(&store));
    assert_eq!(
        runtime
            .accept_settled_environment()
            .unwrap()
            .unwrap()
            .trust_root,
        2
    );
    // An execution in flight under version 2 holds it across the reload to version 3.
    let in_flight = runtime.environment();
    fixture.rotate(&[&fixture.key("attestation")], 1);
    runtime.reload().unwrap();
    assert_eq!(runtime.environment().trust_root().version(), 3);
    let held_newer = runtime.environment();
    assert_eq!(runtime.accept_settled_environment().unwrap(), None);
    assert_eq!(store.accepted_versions().unwrap().trust_root, 2);
    drop(in_flight);
    let records = store.ledger_summary().unwrap().records;
    let marks = runtime.accept_settled_environment().unwrap().unwrap();
    assert_eq!(marks.trust_root, 3);
    assert_eq!(store.accepted_versions().unwrap(), marks);
    assert_eq!(store.ledger_summary().unwrap().records, records + 1);
    drop(held_newer);
    // Done once: asked again, nothing more is written.
    runtime.accept_settled_environment().unwrap().unwrap();
    assert_eq!(store.ledger_summary().unwrap().records, records + 1);
    assert_trust_root_2_refused(&fixture, store);
}

/// After a reload, the versions are not recorded while a completion the store refused still
/// waits (one claimed under the older environment is completed only under it, which raised
/// marks would refuse after a restart): once it is written, they are.
#[test]
fn after_a_reload_the_versions_wait_for_a_refused_completion() {
    use std::sync::atomic::Ordering::SeqCst;
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    store.failing.store(true, SeqCst);
    assert_eq!(
        runtime.execute(&request("waiting")).unwrap_err().code(),
        "replay.store_unavailable"
    );
    fixture.rotate(&[&fixture.key("attestation")], 1);
    runtime.reload().unwrap();
    // No older environment is held; the completion still waits (the store refuses it).
    assert_eq!(runtime.accept_settled_environment().unwrap(), None);
    assert_eq!(store.accepted_versions().unwrap().trust_root, 2);
    store.failing.store(false, SeqCst);
    let marks = runtime.accept_settled_environment().unwrap().unwrap();
    assert_eq!(marks.trust_root, 3);
    assert!(matches!(
        runtime
            .attestation(&ExecutionId::parse("waiting").unwrap())
            .unwrap(),
        ExecutionStatus::Completed(_)
    ));
}

/// A memory store whose marks cannot be read while `failing`: the store does not answer, or
/// (with `reset`) refuses its marks as reset behind its back.
#[derive(Debug, Default)]
struct MarksUnreadable {
    inner: MemoryReplayStore,
    failing: std::sync::atomic::AtomicBool,
    reset: bool,
}

impl ReplayStore for MarksUnreadable {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner: get, pending_after, accept_versions, sequence,
        store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows,
        ledger_records);
    fn accepted_versions(
        &self,
    ) -> Result<parmana_runtime::replay::AcceptedVersions, parmana_runtime::replay::ReplayError>
    {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(if self.reset {
                parmana_runtime::replay::ReplayError::MarksReset {
                    found: parmana_runtime::replay::AcceptedVersions::default(),
                    proven: parmana_runtime::replay::AcceptedVersions::new(2, 1),
                }
            } else {
                parmana_runtime::replay::ReplayError::Unavailable {
                    message: "the store does not answer".to_owned(),
                }
            });
        }
        self.inner.accepted_versions()
    }
}

/// A reload is not held back by a store whose marks cannot be read — it does not answer, or
/// refuses them as reset behind its back: the trust root that rotates a (leaked) attestation key
/// out is taken at once — the runtime signs with it no more — with the environment in force as
/// the floor; the claims check the marks.
#[test]
fn a_reload_is_taken_while_the_store_cannot_give_its_marks() {
    for reset in [false, true] {
        let fixture = Fixture::new();
        let store = Arc::new(MarksUnreadable {
            reset,
            ..MarksUnreadable::default()
        });
        let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
        store
            .failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let replacement = LocalSigningKey::generate().unwrap();
        fixture.rotate(&[&replacement], 1);
        let report = runtime.reload().unwrap();
        assert_eq!(report.trust_root, (2, 3), "reset {reset}");
        store
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // The old key holds no role in the trust root in force: nothing is signed with it.
        assert_eq!(
            runtime
                .execute(&request("after-rotation"))
                .unwrap_err()
                .code(),
            "runtime.signer_lacks_role",
            "reset {reset}"
        );
    }
}

/// Marks above the files on disk (raised by a writer of the store, or by a server of the
/// deployment further ahead) hold back no reload forward: the newer environment is taken (a
/// rotation that removes a leaked key is in force at once), and its executions are refused by
/// the claim, below the marks.
#[test]
fn marks_above_the_files_hold_back_no_reload_forward() {
    let fixture = Fixture::new();
    let store = Arc::new(MemoryReplayStore::new());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let marks = store.accepted_versions().unwrap();
    store
        .accept_versions(9, marks.release_manifest + 5)
        .unwrap();
    let replacement = LocalSigningKey::generate().unwrap();
    fixture.rotate(&[&replacement], 1);
    let report = runtime.reload().unwrap();
    assert_eq!(report.trust_root, (2, 3));
    // The old key holds no role in the trust root in force: nothing is signed with it.
    assert_eq!(
        runtime
            .execute(&request("after-rotation"))
            .unwrap_err()
            .code(),
        "runtime.signer_lacks_role"
    );
    // A runtime built on these files over that store is refused: the store is ahead.
    let renewed = Runtime::builder(fixture.config())
        .signer(replacement)
        .shared_store(Arc::clone(&store) as Arc<dyn ReplayStore>)
        .clock(clock());
    assert_eq!(
        renewed.build().unwrap_err().code(),
        "trust.version_rollback"
    );
}

/// A memory store on which another runtime raises the trust-root mark (to version 9) between
/// the first read of the marks and the first raise, as a server of the same deployment that
/// took a newer trust root would.
#[derive(Debug, Default)]
struct RaisedMeanwhile {
    inner: MemoryReplayStore,
    raised: std::sync::atomic::AtomicBool,
}

impl ReplayStore for RaisedMeanwhile {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, sequence,
        store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows,
        ledger_records);
    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<parmana_runtime::replay::AcceptedVersions, parmana_runtime::replay::ReplayError>
    {
        if !self.raised.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let marks = self.inner.accepted_versions()?;
            self.inner.accept_versions(9, marks.release_manifest)?;
        }
        self.inner.accept_versions(trust_root, release_manifest)
    }
}

/// When another runtime raised one of the marks past the versions a runtime took, between its
/// read and its raise, the refused raise is not made again with the other mark: the marks are
/// left as that runtime left them. An environment below the marks in one version is in force
/// nowhere (every claim under it is refused), and raising its other version would refuse the
/// runtimes that run the higher one, and prove for good a higher version that a writer of the
/// database may have planted.
#[test]
fn accepting_the_environment_leaves_marks_another_runtime_raised_past_it() {
    let fixture = Fixture::new();
    let store = Arc::new(RaisedMeanwhile::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    assert_eq!(store.accepted_versions().unwrap().release_manifest, 0);
    let marks = runtime.accept_environment().unwrap();
    assert_eq!((marks.trust_root, marks.release_manifest), (9, 0));
    assert_eq!(store.accepted_versions().unwrap(), marks);
    // One record: the other runtime's raise; none of this one.
    assert_eq!(
        parmana_runtime::replay::verify_ledger(store.as_ref())
            .unwrap()
            .mark_records,
        1
    );
}

/// A batch names every execution it may have consumed without printing its attestation: a line
/// whose completion the store refused carries the id (made for it when the line had none), and
/// when the output fails, the executions completed after are handed back, so that every
/// completed execution is either emitted or named.
#[test]
fn a_batch_names_every_execution_it_does_not_print() {
    use parmana_runtime::{BatchOptions, BatchReader, run_batch};
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let options = BatchOptions {
        jobs: 2,
        default_policy: Some("claims-approval@1.0.0".parse().unwrap()),
        include_signals: false,
    };
    let line = format!("{{\"signals\":{SIGNALS}}}\n");
    // The completion fails after the claim: the outcome names the id made for the line.
    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut outcomes = Vec::new();
    run_batch(
        &runtime,
        BatchReader::new(std::io::Cursor::new(line.clone().into_bytes())),
        &options,
        |outcome| {
            outcomes.push(outcome);
            Ok::<(), ()>(())
        },
    )
    .unwrap();
    let [outcome] = &outcomes[..] else {
        panic!("{outcomes:?}");
    };
    let error = outcome.result.as_ref().unwrap_err();
    assert!(error.may_follow_a_claim(), "{error}");
    let id = outcome
        .execution_id
        .clone()
        .expect("the id made for the line");
    assert!(matches!(
        store.get(&id).unwrap(),
        ExecutionState::Claimed(_)
    ));
    store
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The output fails at its first line (nothing is printed): that line, and whatever the
    // workers completed after it, are named — exactly the executions the store completed.
    let many = line.repeat(40);
    let stopped = run_batch(
        &runtime,
        BatchReader::new(std::io::Cursor::new(many.into_bytes())),
        &options,
        |_| Err("standard output closed"),
    )
    .unwrap_err();
    assert_eq!(stopped.error, "standard output closed");
    let mut named = stopped.unemitted;
    named.sort();
    assert!(!named.is_empty());
    parmana_runtime::replay::sequence_all(store.as_ref())
        .unwrap()
        .unwrap();
    let mut completed: Vec<ExecutionId> = store
        .ledger_snapshot()
        .unwrap()
        .rows
        .iter()
        .filter_map(|row| row.execution_id.as_deref())
        .map(|id| ExecutionId::parse(id).unwrap())
        .collect();
    completed.sort();
    assert_eq!(completed, named);
}

/// A memory store whose third claim panics (a defect of a store driver).
#[derive(Debug, Default)]
struct PanicsAtTheThirdClaim {
    inner: MemoryReplayStore,
    claims: std::sync::atomic::AtomicUsize,
}

impl ReplayStore for PanicsAtTheThirdClaim {
    fn claim(
        &self,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: parmana_runtime::replay::AcceptedVersions,
    ) -> Result<parmana_runtime::replay::ClaimOutcome, parmana_runtime::replay::ReplayError> {
        if self
            .claims
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 2
        {
            panic!("the store driver's defect");
        }
        self.inner.claim(id, record, under)
    }
    common::forward_store_writes!(inner: complete);
    common::forward_store_reads!(inner);
}

/// A panic in one execution of a batch (a defect of a store or signer given to the runtime)
/// refuses that line alone: the batch neither hangs waiting for its outcome nor loses the
/// outcomes of the lines after it.
#[test]
fn a_panic_in_one_execution_of_a_batch_refuses_that_line_alone() {
    use parmana_runtime::{BatchOptions, BatchReader, run_batch};
    let fixture = Fixture::new();
    let store = Arc::new(PanicsAtTheThirdClaim::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let options = BatchOptions {
        jobs: 2,
        default_policy: Some("claims-approval@1.0.0".parse().unwrap()),
        include_signals: false,
    };
    let lines = format!("{{\"signals\":{SIGNALS}}}\n").repeat(50);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut outcomes = Vec::new();
        let summary = run_batch(
            &runtime,
            BatchReader::new(std::io::Cursor::new(lines.into_bytes())),
            &options,
            |outcome| {
                outcomes.push(outcome);
                Ok::<(), ()>(())
            },
        );
        let _ = done.send((summary.map_err(|_| "stopped"), outcomes));
    });
    let (summary, outcomes) = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the batch ended");
    let summary = summary.unwrap();
    assert_eq!(summary.lines, 50);
    assert_eq!(outcomes.len(), 50);
    let refused: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| outcome.result.as_ref().err().map(|e| (outcome, e)))
        .collect();
    let [(outcome, error)] = &refused[..] else {
        panic!("{refused:?}");
    };
    assert_eq!(error.code(), "runtime.panicked", "{error}");
    assert!(
        error.to_string().contains("the store driver's defect"),
        "{error}"
    );
    assert!(error.may_follow_a_claim());
    assert!(outcome.execution_id.is_some());
}

/// A signer that fails (a hardware or remote key not answering) once `failing` is set; its
/// claim key is its key's, kept.
struct FailingSigner {
    inner: LocalSigningKey,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl parmana_runtime::trust::Signer for FailingSigner {
    fn public_key(&self) -> parmana_runtime::trust::PublicKey {
        self.inner.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], parmana_runtime::trust::TrustError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(parmana_runtime::trust::TrustError::SigningFailed {
                message: "the key did not answer".to_owned(),
            });
        }
        self.inner.sign(message)
    }
    fn claim_key(
        &self,
    ) -> Result<parmana_runtime::trust::ClaimKey, parmana_runtime::trust::TrustError> {
        self.inner.claim_key()
    }
}

/// A signer failing after the claim leaves the id claimed: the refusal says it may follow a
/// claim, so whoever reports it names the id (the server's `Location`, a batch line's id).
#[test]
fn a_signer_failing_after_the_claim_is_a_refusal_that_names_its_id() {
    let fixture = Fixture::new();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = Arc::new(MemoryReplayStore::new());
    let runtime = Runtime::builder(fixture.config())
        .signer(FailingSigner {
            inner: fixture.key("attestation"),
            failing: Arc::clone(&failing),
        })
        .shared_store(Arc::clone(&store) as Arc<dyn ReplayStore>)
        .clock(clock())
        .build()
        .unwrap();
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = runtime.execute(&request("signer-down")).unwrap_err();
    assert_eq!(refused.code(), "trust.signing_failed", "{refused}");
    assert!(refused.may_follow_a_claim());
    let id = ExecutionId::parse("signer-down").unwrap();
    assert!(matches!(
        store.get(&id).unwrap(),
        ExecutionState::Claimed(_)
    ));
    // The refusals before any claim name nothing.
    let unknown = runtime
        .execute(&ExecutionRequest::parse("x", "no-such@1.0.0", SIGNALS).unwrap())
        .unwrap_err();
    assert!(!unknown.may_follow_a_claim(), "{unknown}");
}

/// A memory store on which another process completes each claim just before this one does:
/// with the same bytes (its recovery of the claim decides again and signs the same attestation)
/// while `other_bytes` is unset, with other bytes while it is set.
#[derive(Debug, Default)]
struct CompletedFirstElsewhere {
    inner: MemoryReplayStore,
    other_bytes: std::sync::atomic::AtomicBool,
}

impl ReplayStore for CompletedFirstElsewhere {
    common::forward_store_writes!(inner: claim);
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        if self.other_bytes.load(std::sync::atomic::Ordering::SeqCst) {
            self.inner.complete(id, b"{\"another\":\"attestation\"}")?;
        } else {
            self.inner.complete(id, attestation)?;
        }
        self.inner.complete(id, attestation)
    }
    common::forward_store_reads!(inner);
}

/// An execution whose claim another process's recovery completes first, with the very bytes
/// this one signed, succeeded: its attestation is recorded as it was signed. With other bytes
/// it is the store's refusal (`replay.already_completed`).
#[test]
fn an_execution_completed_first_elsewhere_with_its_own_bytes_succeeds() {
    let fixture = Fixture::new();
    let store = Arc::new(CompletedFirstElsewhere::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let attestation = runtime.execute(&request("raced")).unwrap();
    let ExecutionState::Completed(done) = store.get(&ExecutionId::parse("raced").unwrap()).unwrap()
    else {
        panic!("raced is not completed");
    };
    assert_eq!(done.attestation(), attestation.envelope());
    store
        .other_bytes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = runtime.execute(&request("raced-other")).unwrap_err();
    assert_eq!(refused.code(), "replay.already_completed", "{refused}");
}

/// A completion kept after the store refused it is delivered by `complete_kept` only as this
/// runtime signed it, the store holding exactly those bytes: waiting while the store refuses,
/// and never the store's word alone — a claim a writer completed first with other bytes (a
/// genuine older attestation of the id, say) is `Unconfirmed`, not delivered as this execution's.
#[test]
fn a_kept_completion_is_delivered_only_as_it_was_signed() {
    use parmana_runtime::KeptCompletion;
    use std::sync::atomic::Ordering::SeqCst;
    let fixture = Fixture::new();
    let store = Arc::new(FlakyComplete::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let id = |text: &str| ExecutionId::parse(text).unwrap();
    assert!(matches!(
        runtime.complete_kept(&id("never")),
        KeptCompletion::NotKept
    ));
    store.failing.store(true, SeqCst);
    runtime.execute(&request("kept-1")).unwrap_err();
    assert!(matches!(
        runtime.complete_kept(&id("kept-1")),
        KeptCompletion::Waiting
    ));
    store.failing.store(false, SeqCst);
    let KeptCompletion::Recorded(attestation) = runtime.complete_kept(&id("kept-1")) else {
        panic!("kept-1 not recorded");
    };
    assert_eq!(attestation.predicate().execution_id.as_str(), "kept-1");
    let ExecutionStatus::Completed(stored) = runtime.attestation(&id("kept-1")).unwrap() else {
        panic!("kept-1 is not completed");
    };
    assert_eq!(attestation.envelope(), &stored[..]);
    // Given once: nothing is kept for it any more.
    assert!(matches!(
        runtime.complete_kept(&id("kept-1")),
        KeptCompletion::NotKept
    ));
    // Completed first by a writer of the store, with other bytes: never delivered.
    store.failing.store(true, SeqCst);
    runtime.execute(&request("kept-2")).unwrap_err();
    store.failing.store(false, SeqCst);
    store
        .inner
        .complete(&id("kept-2"), br#"{"planted":"by a writer"}"#)
        .unwrap();
    assert!(matches!(
        runtime.complete_kept(&id("kept-2")),
        KeptCompletion::Unconfirmed
    ));
}
