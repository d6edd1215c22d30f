//! Execution on a store that completes in one write (PostgreSQL): the runtime signs first and writes the execution once, already completed — nothing is left claimed, a replay is refused and the first outcome stands; other stores keep claim, sign, complete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Fixture, OneWriteMemory, postgres_store, postgres_url, runtime_over};
use parmana_runtime::ExecutionRequest;
use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, MemoryReplayStore, ReplayError,
    ReplayStore, SqliteReplayStore, verify_ledger,
};

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

/// A store that records which of its writes of an execution the runtime calls.
#[derive(Debug)]
struct Recorded {
    inner: Arc<dyn ReplayStore>,
    calls: Mutex<Vec<&'static str>>,
}

impl Recorded {
    fn note(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

impl ReplayStore for Recorded {
    fn claim(
        &self,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        self.note("claim");
        self.inner.claim(id, record, under)
    }
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.note("complete");
        self.inner.complete(id, attestation)
    }
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
        self.note("claim_completed");
        self.inner.claim_completed(id, record, under, attestation)
    }
    common::forward_store_reads!(inner);
}

/// Executes one id twice on `store`: the first returns the attestation that is stored, the
/// second is `runtime.replay_detected`, nothing is pending, and the store was written the way
/// it says it can be (`one_write`: one `claim_completed` per execute).
fn check(store: Arc<dyn ReplayStore>, one_write: bool) {
    assert_eq!(store.completes_in_one_write(), one_write);
    let fixture = Fixture::new();
    let recorded = Arc::new(Recorded {
        inner: Arc::clone(&store),
        calls: Mutex::new(Vec::new()),
    });
    let runtime = runtime_over(&fixture, Arc::clone(&recorded) as Arc<dyn ReplayStore>);
    let request = ExecutionRequest::parse("once", "claims-approval@1.0.0", SIGNALS).unwrap();
    let attestation = runtime.execute(&request).unwrap();
    let id = ExecutionId::parse("once").unwrap();
    let ExecutionState::Completed(done) = store.get(&id).unwrap() else {
        panic!("the execution must be stored completed");
    };
    assert_eq!(done.attestation(), attestation.envelope());
    let replay = runtime.execute(&request).unwrap_err();
    assert_eq!(replay.code(), "runtime.replay_detected");
    assert!(store.pending().unwrap().is_empty());
    let expected: &[&str] = if one_write {
        &["claim_completed", "claim_completed"]
    } else {
        &["claim", "complete", "claim"]
    };
    assert_eq!(*recorded.calls.lock().unwrap(), expected);
    parmana_runtime::replay::sequence_all(store.as_ref())
        .unwrap()
        .unwrap();
    let report = verify_ledger(store.as_ref()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.executions, 1);
}

#[test]
fn memory_claims_signs_and_completes() {
    check(Arc::new(MemoryReplayStore::new()), false);
}

#[test]
fn sqlite_claims_signs_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteReplayStore::open(dir.path().join("s.sqlite3")).unwrap();
    check(Arc::new(store), false);
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn postgres_signs_then_writes_once() {
    let Some(url) = postgres_url() else {
        return;
    };
    check(Arc::new(postgres_store(&url, "one_write")), true);
}

/// The inputs of a refused replay, captured on a one-write store and filed as a pending claim
/// of its id, are never signed by recovery: a claim that completes in one write is never left
/// pending, and its inputs say so under their tag.
#[test]
fn captured_inputs_of_a_one_write_claim_are_never_recovered() {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let store = Arc::new(OneWriteMemory::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let first = ExecutionRequest::parse("captured-1", "claims-approval@1.0.0", SIGNALS).unwrap();
    runtime.execute(&first).unwrap();
    let denied = r#"{"claim_amount": 10000000, "vip_customer": false, "country": "DE", "policy_age_days": 400}"#;
    let replay = ExecutionRequest::parse("captured-1", "claims-approval@1.0.0", denied).unwrap();
    assert_eq!(
        runtime.execute(&replay).unwrap_err().code(),
        "runtime.replay_detected"
    );
    let captured = store.records();
    assert_eq!(captured.len(), 2);
    // The writer files the replay's inputs as the id's pending claim (over the completed row).
    let filed = MemoryReplayStore::new();
    let id = ExecutionId::parse("captured-1").unwrap();
    let versions = AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    );
    assert_eq!(
        filed.claim(&id, &captured[1], versions).unwrap(),
        ClaimOutcome::Claimed
    );
    let report =
        parmana_runtime::recover(&filed, &fixture.key("attestation"), &environment).unwrap();
    assert!(
        report.completed.is_empty(),
        "recovery signed a refused request"
    );
    assert_eq!(report.failed.len(), 1);
    let error = &report.failed[0].1;
    assert_eq!(error.code(), "runtime.claim_not_authenticated", "{error}");
    assert!(error.to_string().contains("one write"), "{error}");
    assert!(matches!(
        filed.get(&id).unwrap(),
        ExecutionState::Claimed(_)
    ));
}

/// A wrapper that forwards every write (the testkit's `forward_store_writes!`).
#[derive(Debug, Default)]
struct Forwarding {
    inner: OneWriteMemory,
}

impl ReplayStore for Forwarding {
    common::forward_store_writes!(inner);
    common::forward_store_reads!(inner);
}

/// A wrapper that forwards every write keeps a store that writes an execution once writing it
/// once: the runtime signs first and hands the wrapper one `claim_completed`, never a claim whose
/// inputs a writer could file as pending.
#[test]
fn a_wrapper_forwarding_every_write_keeps_the_store_writing_once() {
    let fixture = Fixture::new();
    let store = Arc::new(Forwarding::default());
    assert!(store.completes_in_one_write());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let request = ExecutionRequest::parse("forwarded", "claims-approval@1.0.0", SIGNALS).unwrap();
    runtime.execute(&request).unwrap();
    assert_eq!(
        store.inner.ids(),
        ["forwarded"],
        "the execution was not written once"
    );
    assert!(store.inner.inner.pending().unwrap().is_empty());
}
