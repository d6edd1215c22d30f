//! Recovery signs only what the pipeline would sign: a claimed row that no runtime holding the attestation key recorded — a new row consistent in every field, one without a tag, with another key's tag, of an earlier build — is refused (`runtime.claim_not_authenticated`); rows that carry a valid tag but were edited — every field of the recorded predicate, the signals, the request digest, the timestamps — are decided again and refused (`runtime.recovery_mismatch`); all are left claimed, and a genuine crashed row is completed byte-identically (one another build of the runtime left, under the same semantics, as that build would have signed it). One table of forgeries, run on every backend: memory, SQLite and PostgreSQL (when configured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fixture, clock, postgres_store, postgres_url};
use parmana_runtime::canon::{Digest, ExecutionId, canonicalize_value, parse_strict};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, MemoryReplayStore, ReplayStore,
    SqliteReplayStore,
};
use parmana_runtime::trust::{ClaimKey, LocalSigningKey, Signer};
use parmana_runtime::{ExecutionRequest, Runtime, execute_from_signals, recover};
use parmana_testkit::CrashBeforeComplete;
use serde_json::{Value, json};

/// The versions of `environment`, which its claims are made under.
fn under(environment: &parmana_runtime::RuntimeEnvironment) -> AcceptedVersions {
    AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    )
}

/// Signals the `claims-approval` policy denies at its `ceiling` rule.
const BIG: &str =
    r#"{"claim_amount": 10000000, "vip_customer": false, "country": "DE", "policy_age_days": 400}"#;

/// One forgery: a name, and an edit of the recorded inputs (`{"format","predicate","signals"}`)
/// and of the request digest.
type Forgery = (&'static str, fn(&mut Value, &mut Digest));

/// The code recovery refuses `forgery` with: a row naming other trust-root or release-manifest
/// versions is said to be claimed under another environment (as a genuine one left over from
/// before a publication is); every other edit is a mismatch found by deciding again.
fn refused_with(forgery: &str) -> &'static str {
    match forgery {
        "trust root version" | "release manifest version" => "runtime.recovery_environment_changed",
        _ => "runtime.recovery_mismatch",
    }
}

fn forgeries() -> Vec<Forgery> {
    vec![
        ("decision", |v, _| {
            v["predicate"]["decision"] = json!("approve")
        }),
        ("rule", |v, _| v["predicate"]["rule_id"] = json!("small")),
        ("reason", |v, _| v["predicate"]["reason"] = json!("fine")),
        ("policy id never released", |v, _| {
            v["predicate"]["policy"]["id"] = json!("never-released")
        }),
        ("policy version", |v, _| {
            v["predicate"]["policy"]["version"] = json!("9.9.9")
        }),
        ("bundle digest", |v, _| {
            v["predicate"]["policy"]["bundle_digest"] = json!(Digest::of(b"x").to_string())
        }),
        ("policy digest", |v, _| {
            v["predicate"]["policy"]["policy_digest"] = json!(Digest::of(b"x").to_string())
        }),
        ("signals swapped, digest kept", |v, _| {
            v["signals"]["claim_amount"] = json!(10)
        }),
        ("signals digest", |v, _| {
            v["predicate"]["signals_digest"] = json!(Digest::of(b"x").to_string())
        }),
        ("signals refused", |v, _| {
            v["signals"] = json!({"claim_amount": "many"})
        }),
        ("trust root digest", |v, _| {
            v["predicate"]["trust_root"]["digest"] = json!(Digest::of(b"x").to_string())
        }),
        ("trust root version", |v, _| {
            v["predicate"]["trust_root"]["version"] = json!(1)
        }),
        ("release manifest version", |v, _| {
            v["predicate"]["release_manifest"]["version"] = json!(7)
        }),
        ("evaluator semantics", |v, _| {
            v["predicate"]["evaluator"]["semantics"] = json!("0")
        }),
        ("runtime name", |v, _| {
            v["predicate"]["runtime"]["name"] = json!("another-runtime")
        }),
        ("evaluator name", |v, _| {
            v["predicate"]["evaluator"]["name"] = json!("another-evaluator")
        }),
        (
            "runtime version below the release manifest's minimum",
            |v, _| v["predicate"]["runtime"]["version"] = json!("0.0.9"),
        ),
        ("runtime version that is no version", |v, _| {
            v["predicate"]["runtime"]["version"] = json!("nine")
        }),
        ("request digest", |_, d| *d = Digest::of(b"another request")),
    ]
}

/// The request digest of execution `id` of the claims policy with the recorded `inputs`'
/// signals.
fn request_digest(id: &str, inputs: &Value) -> Digest {
    Digest::of(
        &canonicalize_value(&json!({
            "execution_id": id,
            "policy_id": "claims-approval",
            "policy_version": "1.0.0",
            "signals_digest": inputs["predicate"]["signals_digest"],
        }))
        .unwrap(),
    )
}

/// Tags `inputs` as a runtime holding the key of `key` would: the tag of the canonical bytes
/// of everything but the tag.
fn retag(inputs: &mut Value, key: &ClaimKey) {
    inputs.as_object_mut().unwrap().remove("tag");
    let tag = key.tag(&canonicalize_value(inputs).unwrap()).to_hex();
    inputs["tag"] = json!(tag);
}

/// One row no runtime holding the attestation key recorded: a name, and an edit of the genuine
/// recorded inputs (whose `execution_id` is already the row's own).
type Unauthenticated = (&'static str, fn(&mut Value));

fn unauthenticated() -> Vec<Unauthenticated> {
    vec![
        // Every field consistent with its own id, the tag copied from the genuine row: what a
        // store writer would insert to have an execution it never asked for signed.
        ("a new row, the genuine tag copied", |_| {}),
        ("no tag", |v| {
            v.as_object_mut().unwrap().remove("tag");
        }),
        ("another key's tag", |v| {
            retag(
                v,
                &LocalSigningKey::from_seed(&[7; 32]).claim_key().unwrap(),
            )
        }),
        ("a tag that is not hex", |v| v["tag"] = json!("not hex")),
        ("an earlier build's format, untagged", |v| {
            v.as_object_mut().unwrap().remove("tag");
            v["format"] = json!(2);
        }),
    ]
}

/// Crashes a genuine execution of `signals` as `id` on `store`, returns its recorded inputs.
fn crash(fixture: &Fixture, store: &dyn ReplayStore, id: &str, signals: &str) -> (Value, Digest) {
    let environment = fixture.environment();
    let request = ExecutionRequest::parse(id, "claims-approval@1.0.0", signals).unwrap();
    let err = execute_from_signals(
        &request,
        &fixture.key("attestation"),
        &CrashBeforeComplete(store),
        &environment,
        &clock(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "replay.store_unavailable");
    let ExecutionState::Claimed(claim) = store.get(&request.execution_id).unwrap() else {
        panic!("{id} is not pending");
    };
    (
        parse_strict(claim.attestation_inputs()).unwrap(),
        claim.request_digest(),
    )
}

fn check_store(store: &dyn ReplayStore) {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let signer = fixture.key("attestation");
    // A genuine crash of an execution the policy denies, to forge from.
    let (genuine, genuine_digest) = crash(&fixture, store, "genuine", BIG);
    assert_eq!(genuine["predicate"]["decision"], "deny", "{genuine}");
    let expected = {
        let request = ExecutionRequest::parse("genuine", "claims-approval@1.0.0", BIG).unwrap();
        execute_from_signals(
            &request,
            &signer,
            &MemoryReplayStore::new(),
            &environment,
            &clock(),
        )
        .unwrap()
        .into_envelope()
    };
    let claim_key = signer.claim_key().unwrap();
    for (n, (name, forge)) in forgeries().into_iter().enumerate() {
        let id = format!("forged-{n}");
        let mut inputs = genuine.clone();
        inputs["predicate"]["execution_id"] = json!(id);
        let mut digest = request_digest(&id, &inputs);
        forge(&mut inputs, &mut digest);
        // Tagged with the attestation key's claim key, as if the key's holder had recorded it:
        // the second line of defence (deciding again) must refuse it on its own.
        retag(&mut inputs, &claim_key);
        let claim = ClaimRecord::new(digest, canonicalize_value(&inputs).unwrap(), clock().0);
        let forged_id = ExecutionId::parse(&id).unwrap();
        assert_eq!(
            store
                .claim(&forged_id, &claim, under(&environment))
                .unwrap(),
            ClaimOutcome::Claimed,
            "{name}"
        );
    }
    for (n, (name, edit)) in unauthenticated().into_iter().enumerate() {
        let id = format!("unauthenticated-{n}");
        let mut inputs = genuine.clone();
        inputs["predicate"]["execution_id"] = json!(id);
        edit(&mut inputs);
        let digest = request_digest(&id, &inputs);
        let claim = ClaimRecord::new(digest, canonicalize_value(&inputs).unwrap(), clock().0);
        assert_eq!(
            store
                .claim(
                    &ExecutionId::parse(&id).unwrap(),
                    &claim,
                    under(&environment)
                )
                .unwrap(),
            ClaimOutcome::Claimed,
            "{name}"
        );
    }
    // A claim another build of this runtime left (a crash, then an upgrade): its runtime and
    // evaluator versions are not this build's.
    let mut other_build = genuine.clone();
    other_build["predicate"]["execution_id"] = json!("other-build");
    other_build["predicate"]["runtime"]["version"] = json!("9.9.9");
    other_build["predicate"]["evaluator"]["version"] = json!("9.9.9");
    retag(&mut other_build, &claim_key);
    let claim = ClaimRecord::new(
        request_digest("other-build", &other_build),
        canonicalize_value(&other_build).unwrap(),
        clock().0,
    );
    assert_eq!(
        store
            .claim(
                &ExecutionId::parse("other-build").unwrap(),
                &claim,
                under(&environment)
            )
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let report = recover(store, &signer, &environment).unwrap();
    // The genuine row completes byte-identically; one another build left is decided again by
    // this one and signed as recorded, naming that build; every forged one is refused and stays
    // claimed.
    assert_eq!(report.completed.len(), 2, "{:?}", report.failed);
    let (genuine_done, other_done): (Vec<_>, Vec<_>) = report
        .completed
        .iter()
        .partition(|a| a.predicate().execution_id.as_str() == "genuine");
    assert_eq!(genuine_done[0].envelope(), &expected[..]);
    let other_done = other_done[0];
    let recorded: Value = serde_json::to_value(other_done.predicate()).unwrap();
    assert_eq!(recorded, other_build["predicate"]);
    let bundle = parmana_runtime::load_bundle(
        environment.trust_root(),
        &fixture.root().join("policies/claims-approval/1.0.0"),
    )
    .unwrap();
    let verified = parmana_runtime::verify_attestation(
        other_done.envelope(),
        environment.trust_root(),
        Some(&bundle),
        Some(&other_build["signals"]),
    );
    assert!(verified.is_valid(), "{verified:#?}");
    assert_eq!(
        report.failed.len(),
        forgeries().len() + unauthenticated().len()
    );
    for (n, (name, _)) in unauthenticated().into_iter().enumerate() {
        let id = format!("unauthenticated-{n}");
        let (_, error) = report
            .failed
            .iter()
            .find(|(failed, _)| *failed == id)
            .unwrap_or_else(|| panic!("{name}: not refused"));
        assert_eq!(
            error.code(),
            "runtime.claim_not_authenticated",
            "{name}: {error}"
        );
        assert!(matches!(
            store.get(&ExecutionId::parse(&id).unwrap()).unwrap(),
            ExecutionState::Claimed(_)
        ));
    }
    for (n, (name, _)) in forgeries().into_iter().enumerate() {
        let id = format!("forged-{n}");
        let (_, error) = report
            .failed
            .iter()
            .find(|(failed, _)| *failed == id)
            .unwrap_or_else(|| panic!("{name}: not refused"));
        assert_eq!(error.code(), refused_with(name), "{name}: {error}");
        assert!(matches!(
            store.get(&ExecutionId::parse(&id).unwrap()).unwrap(),
            ExecutionState::Claimed(_)
        ));
    }
    // A claim whose timestamp disagrees with its record is unreadable, not signed.
    let mut late = genuine.clone();
    late["predicate"]["execution_id"] = json!("late");
    retag(&mut late, &claim_key);
    let claim = ClaimRecord::new(
        genuine_digest,
        canonicalize_value(&late).unwrap(),
        parmana_runtime::canon::Timestamp::parse("2026-11-29T00:00:00Z").unwrap(),
    );
    let late_id = ExecutionId::parse("late").unwrap();
    assert_eq!(
        store.claim(&late_id, &claim, under(&environment)).unwrap(),
        ClaimOutcome::Claimed
    );
    let again = recover(store, &signer, &environment).unwrap();
    assert!(again.completed.is_empty());
    assert!(
        again
            .failed
            .iter()
            .any(|(id, e)| id == "late" && e.code() == "runtime.stored_claim_unreadable")
    );
    // The runtime object recovers the same way.
    let runtime = Runtime::builder(fixture.config())
        .signer(signer)
        .store(MemoryReplayStore::new())
        .clock(clock())
        .build()
        .unwrap();
    assert!(runtime.recover().unwrap().failed.is_empty());
}

#[test]
fn forged_claims_are_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteReplayStore::open(dir.path().join("replay.sqlite3")).unwrap();
    check_store(&store);
}

#[test]
fn forged_claims_are_refused_in_memory() {
    check_store(&MemoryReplayStore::new());
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn forged_claims_are_refused_on_postgres() {
    let Some(url) = postgres_url() else {
        return;
    };
    check_store(&postgres_store(&url, "recovery"));
}

/// A store on which another process completes each id, with the same bytes, just before this
/// one does: its own completion is refused as already completed.
#[derive(Debug)]
struct CompletedMeanwhile<'a>(&'a dyn ReplayStore);

impl ReplayStore for CompletedMeanwhile<'_> {
    parmana_testkit::forward_store_writes!(0: claim);
    fn complete(
        &self,
        id: &ExecutionId,
        attestation: &[u8],
    ) -> Result<(), parmana_runtime::replay::ReplayError> {
        self.0.complete(id, attestation)?;
        self.0.complete(id, attestation)
    }
    parmana_testkit::forward_store_reads!(0);
}

#[test]
fn a_leftover_another_process_completes_first_is_no_failure_of_recovery() {
    // Two servers starting together over the same leftovers (or recovery beside a live server
    // on SQLite): the one that loses the race to complete an id was reported as failing to
    // recover it, though it is completed.
    let fixture = Fixture::new();
    let store = MemoryReplayStore::new();
    crash(&fixture, &store, "raced", BIG);
    let report = recover(
        &CompletedMeanwhile(&store),
        &fixture.key("attestation"),
        &fixture.environment(),
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.completed.is_empty());
    let raced = ExecutionId::parse("raced").unwrap();
    assert!(matches!(
        store.get(&raced).unwrap(),
        ExecutionState::Completed(_)
    ));
    assert!(store.pending().unwrap().is_empty());
}

/// A memory store whose `get` or `complete` of one id fails `times` times, as a store that does
/// not answer (`replay.store_unavailable`), and that is `down` — its marks unreadable too — while
/// set; the attestation a refused completion was asked to write is noted.
#[derive(Debug, Default)]
struct Failing {
    inner: MemoryReplayStore,
    get_of: std::sync::Mutex<Option<(&'static str, u32)>>,
    complete_of: std::sync::Mutex<Option<(&'static str, u32)>>,
    down: std::sync::atomic::AtomicBool,
    /// Whether the store goes down at its first failure.
    goes_down: std::sync::atomic::AtomicBool,
    refused: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Failing {
    fn unavailable() -> parmana_runtime::replay::ReplayError {
        parmana_runtime::replay::ReplayError::Unavailable {
            message: "a lock held past the busy timeout".to_owned(),
        }
    }

    /// Whether `failing` fails for `id` now (counting the failure; the store going down with it
    /// if it goes down at its first failure).
    fn fails(
        &self,
        failing: &std::sync::Mutex<Option<(&'static str, u32)>>,
        id: &ExecutionId,
    ) -> bool {
        let mut failing = failing.lock().unwrap();
        match &mut *failing {
            Some((which, left)) if *which == id.as_str() && *left > 0 => {
                *left -= 1;
                if self.goes_down.load(std::sync::atomic::Ordering::SeqCst) {
                    self.down.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                true
            }
            _ => false,
        }
    }
}

impl ReplayStore for Failing {
    parmana_testkit::forward_store_writes!(inner: claim);
    fn complete(
        &self,
        id: &ExecutionId,
        attestation: &[u8],
    ) -> Result<(), parmana_runtime::replay::ReplayError> {
        if self.fails(&self.complete_of, id) {
            *self.refused.lock().unwrap() = Some(attestation.to_vec());
            return Err(Self::unavailable());
        }
        self.inner.complete(id, attestation)
    }
    fn get(
        &self,
        id: &ExecutionId,
    ) -> Result<ExecutionState, parmana_runtime::replay::ReplayError> {
        if self.fails(&self.get_of, id) {
            return Err(Self::unavailable());
        }
        self.inner.get(id)
    }
    fn accepted_versions(&self) -> Result<AcceptedVersions, parmana_runtime::replay::ReplayError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.accepted_versions()
    }
    parmana_testkit::forward_store_reads!(inner: pending_after, accept_versions, sequence,
        store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows,
        ledger_records);
}

/// A store that does not answer for a leftover, as recovery reads or completes it, says
/// nothing of that leftover. Failing once, the id is tried again and completed — with the
/// attestation the refused completion carried, byte for byte —, not left claimed until the next
/// restart. Failing whenever it is asked while the store answers a read of its marks, the
/// failure is the id's: it stays claimed and the ids after it are completed. When the store does
/// not answer that read either, it is down: the recovery stops with its error (a server's start
/// fails, for its supervisor to start it again), the ids settled before stay settled, and the
/// next recovery completes the others.
#[test]
fn a_store_not_answering_for_a_leftover_is_told_from_a_leftover_it_cannot_serve() {
    let fixture = Fixture::new();
    let ids = ["a-first", "b-failing", "c-after"];
    let claimed = |store: &Failing, id: &str| {
        matches!(
            store.inner.get(&ExecutionId::parse(id).unwrap()).unwrap(),
            ExecutionState::Claimed(_)
        )
    };
    let key = fixture.key("attestation");
    for failing in ["get", "complete"] {
        let setup = |times: u32| {
            let store = Failing::default();
            for id in ids {
                crash(&fixture, &store.inner, id, BIG);
            }
            let fail = if failing == "get" {
                &store.get_of
            } else {
                &store.complete_of
            };
            *fail.lock().unwrap() = Some(("b-failing", times));
            store
        };
        // Once: tried again, completed.
        let store = setup(1);
        let report = recover(&store, &key, &fixture.environment()).unwrap();
        assert!(report.failed.is_empty(), "{failing}: {:?}", report.failed);
        assert_eq!(report.completed.len(), 3, "{failing}");
        if let Some(refused) = store.refused.lock().unwrap().take() {
            let ExecutionState::Completed(stored) = store
                .inner
                .get(&ExecutionId::parse("b-failing").unwrap())
                .unwrap()
            else {
                panic!("b-failing is not completed");
            };
            assert_eq!(stored.attestation(), refused.as_slice());
        }
        // Always, the store answering otherwise: the id's failure alone.
        let store = setup(u32::MAX);
        let report = recover(&store, &key, &fixture.environment()).unwrap();
        assert_eq!(report.completed.len(), 2, "{failing}");
        assert_eq!(report.failed.len(), 1, "{failing}");
        assert_eq!(
            (report.failed[0].0.as_str(), report.failed[0].1.code()),
            ("b-failing", "replay.store_unavailable")
        );
        assert!(claimed(&store, "b-failing"), "{failing}");
        // The store going down at that id: stopped with its error, the ids after left for the
        // next recovery, which completes them once the store answers again.
        let store = setup(u32::MAX);
        store
            .goes_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let refused = recover(&store, &key, &fixture.environment()).unwrap_err();
        assert_eq!(
            refused.code(),
            "replay.store_unavailable",
            "{failing}: {refused}"
        );
        assert!(!claimed(&store, "a-first"), "{failing}");
        assert!(
            claimed(&store, "b-failing") && claimed(&store, "c-after"),
            "{failing}"
        );
        *store.get_of.lock().unwrap() = None;
        *store.complete_of.lock().unwrap() = None;
        store.down.store(false, std::sync::atomic::Ordering::SeqCst);
        let report = recover(&store, &key, &fixture.environment()).unwrap();
        assert_eq!(
            (report.completed.len(), report.failed.len()),
            (2, 0),
            "{failing}"
        );
    }
}

/// A memory store that records the limit of every page of pending ids read from it.
#[derive(Debug)]
struct PageCounting {
    inner: std::sync::Arc<MemoryReplayStore>,
    limits: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl ReplayStore for PageCounting {
    parmana_testkit::forward_store_writes!(inner);
    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, parmana_runtime::replay::ReplayError> {
        self.limits.lock().unwrap().push(limit);
        self.inner.pending_after(after, limit)
    }
    parmana_testkit::forward_store_reads!(@all_but_pending inner);
}

/// Recovery asked to stop (a server's shutdown while it recovers) stops before its next claim:
/// each one begun is settled, the ids not reached stay claimed for the next recovery, and the
/// counts say it stopped.
#[test]
fn recovery_asked_to_stop_stops_before_its_next_claim() {
    let fixture = Fixture::new();
    let store = std::sync::Arc::new(MemoryReplayStore::new());
    let leftovers = 8;
    for i in 0..leftovers {
        crash(&fixture, store.as_ref(), &format!("stop-{i:04}"), BIG);
    }
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .shared_store(std::sync::Arc::clone(&store) as std::sync::Arc<dyn ReplayStore>)
        .clock(clock())
        .build()
        .unwrap();
    // Asked to stop once five are settled.
    let settled = std::cell::Cell::new(0);
    let counts = runtime
        .recover_each_until(&mut |_| settled.set(settled.get() + 1), &|| {
            settled.get() >= 5
        })
        .unwrap();
    assert!(counts.stopped);
    assert_eq!(counts.completed, 5);
    assert_eq!(store.pending().unwrap().len(), 3);
    // The next recovery completes the rest.
    let counts = runtime.recover_each(&mut |_| {}).unwrap();
    assert_eq!((counts.completed, counts.stopped), (3, false));
    assert!(store.pending().unwrap().is_empty());
}

#[test]
fn recovery_pages_through_the_claimed_ids_and_hands_each_out_at_once() {
    // More leftovers than one page, a forged row among them: recovery reads them a page at a
    // time (memory bounded by the page, not by what a writer of the store claimed), completes
    // every genuine one, hands each out as it is settled, and names the forged one.
    use parmana_runtime::replay::PENDING_PAGE;
    use parmana_runtime::{Recovered, RecoveryCounts};
    let fixture = Fixture::new();
    let store = std::sync::Arc::new(MemoryReplayStore::new());
    let genuine = PENDING_PAGE + 5;
    for i in 0..genuine {
        crash(&fixture, store.as_ref(), &format!("left-{i:04}"), BIG);
    }
    let (inputs, digest) = crash(&fixture, store.as_ref(), "left-9999", BIG);
    let ExecutionState::Claimed(genuine_claim) = store
        .get(&ExecutionId::parse("left-9999").unwrap())
        .unwrap()
    else {
        panic!("left-9999 is not pending");
    };
    // A row a writer of the store added, consistent with its own id, the tag copied.
    let forged = ExecutionId::parse("left-0100x").unwrap();
    let mut forged_inputs = inputs;
    forged_inputs["predicate"]["execution_id"] = json!("left-0100x");
    let claim = ClaimRecord::new(
        digest,
        canonicalize_value(&forged_inputs).unwrap(),
        genuine_claim.claimed_at(),
    );
    assert_eq!(
        store
            .claim(&forged, &claim, under(&fixture.environment()))
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let limits = std::sync::Arc::default();
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .store(PageCounting {
            inner: std::sync::Arc::clone(&store),
            limits: std::sync::Arc::clone(&limits),
        })
        .clock(clock())
        .build()
        .unwrap();
    let mut completed = Vec::new();
    let mut failed = Vec::new();
    let counts = runtime
        .recover_each(&mut |recovered| match recovered {
            Recovered::Completed(attestation) => {
                // Handed out once stored: the store already holds it, byte for byte.
                let ExecutionState::Completed(done) =
                    store.get(&attestation.predicate().execution_id).unwrap()
                else {
                    panic!("handed out before it was stored");
                };
                assert_eq!(done.attestation(), attestation.envelope_str().as_bytes());
                completed.push(attestation.predicate().execution_id.clone());
            }
            Recovered::Failed {
                execution_id,
                error,
            } => failed.push((execution_id, error.code())),
        })
        .unwrap();
    assert_eq!(
        counts,
        RecoveryCounts {
            completed: u64::try_from(genuine + 1).unwrap(),
            failed: 1,
            stopped: false,
        }
    );
    assert_eq!(completed.len(), genuine + 1);
    assert!(
        completed.windows(2).all(|w| w[0] < w[1]),
        "each once, in order"
    );
    assert_eq!(
        failed,
        vec![("left-0100x".to_owned(), "runtime.claim_not_authenticated")]
    );
    let limits = limits.lock().unwrap().clone();
    assert_eq!(
        limits,
        vec![PENDING_PAGE, PENDING_PAGE],
        "two pages, each bounded"
    );
    assert_eq!(store.pending().unwrap(), vec![forged]);
}

/// A store whose pages of pending ids ignore where the last one ended, or (`wraps`) start again
/// from the first once they reach the end (a buggy or hostile one).
#[derive(Debug)]
struct IgnoresAfter(MemoryReplayStore, bool);

impl ReplayStore for IgnoresAfter {
    parmana_testkit::forward_store_writes!(0);
    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, parmana_runtime::replay::ReplayError> {
        if !self.1 {
            return self.0.pending_after(None, limit);
        }
        match self.0.pending_after(after, limit)? {
            page if page.is_empty() => self.0.pending_after(None, limit),
            page => Ok(page),
        }
    }
    parmana_testkit::forward_store_reads!(@all_but_pending 0);
}

#[test]
fn recovery_refuses_a_store_whose_pages_do_not_move_on() {
    // Full pages of ids that cannot be completed (no runtime recorded them), listed again
    // whatever id the next page is to follow, or again from the first once the last is
    // reached: recovery stops with store_corrupt instead of going round them for ever.
    use parmana_runtime::replay::PENDING_PAGE;
    let fixture = Fixture::new();
    let environment = fixture.environment();
    for wraps in [false, true] {
        let store = IgnoresAfter(MemoryReplayStore::new(), wraps);
        for i in 0..2 * PENDING_PAGE {
            let id = ExecutionId::parse(&format!("forged-{i:04}")).unwrap();
            let claim = ClaimRecord::new(
                Digest::of(b"forged"),
                b"{}".to_vec(),
                parmana_runtime::Clock::now(&clock()),
            );
            assert_eq!(
                store.claim(&id, &claim, under(&environment)).unwrap(),
                ClaimOutcome::Claimed
            );
        }
        let refused = recover(&store, &fixture.key("attestation"), &environment).unwrap_err();
        assert_eq!(
            refused.code(),
            "replay.store_corrupt",
            "wraps {wraps}: {refused}"
        );
    }
}

/// A runtime's recovery keeps a completion the store refused, as its executions do: a store
/// whose writes fail for a while (its reads going on) leaves the id claimed until the runtime
/// writes the completion again (`finish_completions`, a server's every tick), not until the
/// next recovery — and what is written is the attestation the refused completion carried.
#[test]
fn a_runtime_writes_a_recovered_completion_the_store_refused_again() {
    let fixture = Fixture::new();
    let store = std::sync::Arc::new(Failing::default());
    for id in ["a-first", "b-failing"] {
        crash(&fixture, &store.inner, id, BIG);
    }
    // Refused at the first try and at the retry.
    *store.complete_of.lock().unwrap() = Some(("b-failing", 2));
    let runtime = common::runtime_over(&fixture, store.clone());
    let mut failed = Vec::new();
    let counts = runtime
        .recover_each(&mut |recovered| {
            if let parmana_runtime::Recovered::Failed { execution_id, .. } = recovered {
                failed.push(execution_id);
            }
        })
        .unwrap();
    assert_eq!((counts.completed, counts.failed), (1, 1));
    assert_eq!(failed, ["b-failing"]);
    let b = ExecutionId::parse("b-failing").unwrap();
    assert!(matches!(
        store.inner.get(&b).unwrap(),
        ExecutionState::Claimed(_)
    ));
    let report = runtime.finish_completions();
    assert_eq!((report.finished, report.waiting), (1, 0));
    let ExecutionState::Completed(stored) = store.inner.get(&b).unwrap() else {
        panic!("b-failing is not completed");
    };
    let refused = store.refused.lock().unwrap().take().unwrap();
    assert_eq!(stored.attestation(), refused.as_slice());
}

/// A released policy whose bundle no longer loads (its files changed on disk) is the
/// environment's failure, said as it is — not a mismatch, the code of a forged row: nothing is
/// signed, and the id stays claimed for a recovery once the bundle is restored.
#[test]
fn a_bundle_that_no_longer_loads_is_not_called_a_forged_row() {
    let fixture = Fixture::new();
    let store = MemoryReplayStore::new();
    crash(&fixture, &store, "bundle-gone", BIG);
    let policy = fixture
        .root()
        .join("policies/claims-approval/1.0.0/policy.json");
    let original = std::fs::read(&policy).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(b" ");
    std::fs::write(&policy, &changed).unwrap();
    let report = recover(&store, &fixture.key("attestation"), &fixture.environment()).unwrap();
    let [(id, error)] = &report.failed[..] else {
        panic!("{:?}", report.failed);
    };
    assert_eq!(id, "bundle-gone");
    assert_ne!(error.code(), "runtime.recovery_mismatch", "{error}");
    assert!(error.code().starts_with("trust."), "{error}");
    assert!(matches!(
        store
            .get(&ExecutionId::parse("bundle-gone").unwrap())
            .unwrap(),
        ExecutionState::Claimed(_)
    ));
    std::fs::write(&policy, &original).unwrap();
    let report = recover(&store, &fixture.key("attestation"), &fixture.environment()).unwrap();
    assert_eq!(report.completed.len(), 1, "{:?}", report.failed);
}
