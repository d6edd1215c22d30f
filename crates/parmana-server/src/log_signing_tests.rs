//! Requests for the log's checkpoint that miss the kept signed note at the same time sign it once: the others wait and take its note, rather than each reading and verifying the log's entries again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use parmana_runtime::canon::Timestamp;
use parmana_runtime::replay::{
    LedgerRow, LedgerSummary, MemoryReplayStore, ReplayError, ReplayStore, sequence_all,
};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{answer_through_router, bound, runtime_over, tokio_runtime};
use crate::settings::Limits;

/// A memory store whose reads of ledger rows (the entries with their attestations, which a
/// checkpoint's signing verifies) are counted, and wait while held.
#[derive(Debug, Default)]
struct HeldRows {
    inner: MemoryReplayStore,
    held: (Mutex<bool>, Condvar),
    reads: AtomicUsize,
}

impl HeldRows {
    fn hold(&self, held: bool) {
        *self.held.0.lock().unwrap() = held;
        self.held.1.notify_all();
    }
}

impl ReplayStore for HeldRows {
    parmana_testkit::forward_store_writes!(inner);
    parmana_testkit::forward_store_reads!(@all_but_ledger_reads inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.inner.ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let (held, wake) = &self.held;
        drop(wake.wait_while(held.lock().unwrap(), |held| *held).unwrap());
        self.inner.ledger_rows(from, max)
    }
}

#[test]
fn checkpoint_requests_that_miss_together_sign_once() {
    let fixture = FixtureEnvironment::new().unwrap();
    let log_key = fixture.key("root-1").unwrap();
    fixture
        .rotate_with_log(
            parmana_runtime::trust::LogSpec::one_key("log.example/parmana", log_key.public_key()),
            Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
    let store = Arc::new(HeldRows::default());
    let runtime = runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
    let log = crate::settings::LogSettings {
        signers: Arc::new([log_key]),
        public: true,
    };
    let state = bound(runtime, Limits::default(), Some(log));
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    for id in ["signed-1", "signed-2"] {
        let body = format!(
            r#"{{"policy":"claims-approval@1.0.0","signals":{{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}},"execution_id":"{id}"}}"#
        );
        let (status, answer, _) =
            answer_through_router(&tokio, &state, "POST", "/v1/executions", &body);
        assert_eq!(status, 201, "{answer}");
    }
    sequence_all(&*store).unwrap();
    // The log snapshot read first (a tile: no signing), so that what follows reads rows only
    // to verify the entries for a signature.
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "GET", "/log/tile/0/000.p/3", "");
    assert_eq!(status, 200, "{answer}");
    let before = store.reads.load(Ordering::SeqCst);
    store.hold(true);
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                answer_through_router(&tokio_runtime(), &state, "GET", "/log/checkpoint", "").0
            })
        })
        .collect();
    // Every request in flight (the first waiting on its read, the others on it).
    let waiting = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.reads.load(Ordering::SeqCst) > before
    });
    assert!(waiting, "no request read the entries");
    std::thread::sleep(std::time::Duration::from_millis(300));
    store.hold(false);
    for request in requests {
        assert_eq!(request.join().unwrap(), 200);
    }
    // One verification of the entries (one page of rows), not one a request.
    assert_eq!(store.reads.load(Ordering::SeqCst) - before, 1);
}
