//! The replay store is outside the trust boundary, seen through the runtime: the rollback check is part of the claim (a raise landing just before it refuses it), time does not run backwards within one store, and recovery refuses an environment older than the store's marks — on memory, SQLite and PostgreSQL (when configured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Fixture, clock, postgres_store, postgres_url};
use parmana_runtime::canon::{ExecutionId, Timestamp};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, MemoryReplayStore, ReplayError,
    ReplayStore, SqliteReplayStore, verify_ledger,
};
use parmana_runtime::{ErrorClass, ExecutionRequest, FixedClock, Runtime, recover};

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

fn request(id: &str) -> ExecutionRequest {
    ExecutionRequest::parse(id, "claims-approval@1.0.0", SIGNALS).unwrap()
}

fn id(text: &str) -> ExecutionId {
    ExecutionId::parse(text).unwrap()
}

/// A store on which another runtime raises the marks to `to` right before each claim lands —
/// the moment a separate rollback check followed by a claim would miss.
#[derive(Debug)]
struct RaiseBeforeClaim {
    inner: Arc<dyn ReplayStore>,
    to: AcceptedVersions,
}

impl ReplayStore for RaiseBeforeClaim {
    fn claim(
        &self,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        self.inner
            .accept_versions(self.to.trust_root, self.to.release_manifest)?;
        self.inner.claim(id, record, under)
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
        self.inner
            .accept_versions(self.to.trust_root, self.to.release_manifest)?;
        self.inner.claim_completed(id, record, under, attestation)
    }
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.inner.complete(id, attestation)
    }
    common::forward_store_reads!(inner);
}

/// The fixture environment is trust root 2, release manifest 1. A raise to trust root 3 that
/// lands between the runtime's decision and its claim refuses the claim: nothing is recorded
/// under versions older than a mark accepted before it.
fn a_raise_just_before_the_claim_refuses_it(store: Arc<dyn ReplayStore>) {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let racing = RaiseBeforeClaim {
        inner: Arc::clone(&store),
        to: AcceptedVersions::new(3, 1),
    };
    let error = parmana_runtime::execute_from_signals(
        &request("raced"),
        &fixture.key("attestation"),
        &racing,
        &environment,
        &clock(),
    )
    .unwrap_err();
    assert_eq!(
        (error.code(), error.class()),
        ("replay.version_rollback", ErrorClass::Trust),
        "{error}"
    );
    assert_eq!(store.get(&id("raced")).unwrap(), ExecutionState::Absent);
    let report = verify_ledger(store.as_ref()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.executions, report.marks),
        (0, AcceptedVersions::new(3, 1))
    );
}

/// A runtime whose clock reads more than a minute before the newest execution of its store is
/// refused (`replay.clock_behind_store`, class trust) before anything is consumed; within the
/// tolerance it executes.
fn time_does_not_run_backwards_within_one_store(store: Arc<dyn ReplayStore>) {
    let fixture = Fixture::new();
    let runtime_at = |seconds_back: i64| {
        let now = clock().0.unix_seconds() - seconds_back;
        Runtime::builder(fixture.config())
            .signer(fixture.key("attestation"))
            .shared_store(Arc::clone(&store))
            .clock(FixedClock(Timestamp::from_unix_seconds(now).unwrap()))
            .build()
            .unwrap()
    };
    runtime_at(0).execute(&request("now")).unwrap();
    for (name, seconds_back) in [("a minute and a second", 61), ("a day", 86_400)] {
        let error = runtime_at(seconds_back)
            .execute(&request("earlier"))
            .unwrap_err();
        assert_eq!(
            (error.code(), error.class()),
            ("replay.clock_behind_store", ErrorClass::Trust),
            "{name}: {error}"
        );
    }
    assert_eq!(store.get(&id("earlier")).unwrap(), ExecutionState::Absent);
    runtime_at(60).execute(&request("earlier")).unwrap();
    assert!(verify_ledger(store.as_ref()).unwrap().is_intact());
}

/// Recovery under an environment older than the store's marks signs nothing.
fn recovery_refuses_an_environment_older_than_the_store(store: Arc<dyn ReplayStore>) {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    store.accept_versions(3, 1).unwrap();
    let error = recover(store.as_ref(), &fixture.key("attestation"), &environment).unwrap_err();
    assert_eq!(
        (error.code(), error.class()),
        ("trust.version_rollback", ErrorClass::Trust),
        "{error}"
    );
    let error = Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap_err();
    assert_eq!(error.code(), "trust.version_rollback");
}

/// One `#[test]` per backend for each check: memory, SQLite, PostgreSQL (ignored without a
/// server outside CI).
macro_rules! on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $check() {
                    super::$check(std::sync::Arc::new(super::MemoryReplayStore::new()));
                }
            )*
        }
        mod sqlite {
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteReplayStore::open(dir.path().join("s.sqlite3"));
                    super::$check(std::sync::Arc::new(store.unwrap()));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(
                    parmana_no_postgres,
                    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
                )]
                fn $check() {
                    let Some(url) = super::postgres_url() else {
                        return;
                    };
                    super::$check(std::sync::Arc::new(super::postgres_store(&url, "boundary")));
                }
            )*
        }
    };
}

on_every_backend!(
    a_raise_just_before_the_claim_refuses_it,
    time_does_not_run_backwards_within_one_store,
    recovery_refuses_an_environment_older_than_the_store,
);

/// A store whose marks row reads `reported`, noting each raise asked of it.
#[derive(Debug)]
struct ReportedMarks {
    inner: MemoryReplayStore,
    reported: std::sync::Mutex<AcceptedVersions>,
    asked: std::sync::Mutex<Vec<AcceptedVersions>>,
}

impl ReplayStore for ReportedMarks {
    parmana_testkit::forward_store_reads!(inner: get, pending_after, sequence, store_checkpoint,
        latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows, ledger_records);
    parmana_testkit::forward_store_writes!(inner);

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        Ok(*self.reported.lock().unwrap())
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        let offered = AcceptedVersions::new(trust_root, release_manifest);
        self.asked.lock().unwrap().push(offered);
        Ok(offered.max(*self.reported.lock().unwrap()))
    }
}

/// `accept_environment` asks the store for marks equal to the environment's all the same (a
/// store proves them with a marks record where its records lack one: a row a writer raised ahead
/// of the rollout, to lower it again before anything is claimed under it — the store's side is
/// `parmana-replay`'s boundary suite), and leaves marks above them in either version alone, the
/// other version not raised (proving them would make a row planted above every real version the
/// deployment's own).
#[test]
fn accept_environment_asks_the_store_to_prove_marks_equal_to_its_own() {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let ours = AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    );
    let above = AcceptedVersions::new(ours.trust_root + 1, ours.release_manifest);
    let mixed = AcceptedVersions::new(ours.trust_root + 1, ours.release_manifest - 1);
    let below = AcceptedVersions::new(ours.trust_root, ours.release_manifest - 1);
    // (marks the store reports once the runtime is built — above: another runtime took a newer
    // version since, or a writer planted one; mixed: the same, with the other version below
    // ours —, the raises asked of it, the marks then in force)
    for (reported, asked, in_force) in [
        (ours, vec![ours], ours),
        (below, vec![ours], ours),
        (above, vec![], above),
        (mixed, vec![], mixed),
    ] {
        let store = Arc::new(ReportedMarks {
            inner: MemoryReplayStore::new(),
            reported: std::sync::Mutex::new(ours),
            asked: std::sync::Mutex::new(Vec::new()),
        });
        let runtime = common::runtime_over(&fixture, store.clone());
        *store.reported.lock().unwrap() = reported;
        store.asked.lock().unwrap().clear();
        assert_eq!(runtime.accept_environment().unwrap(), in_force);
        assert_eq!(*store.asked.lock().unwrap(), asked, "{reported}");
    }
}
