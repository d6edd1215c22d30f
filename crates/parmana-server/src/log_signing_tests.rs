//! Serving the log from its shared snapshot without multiplying work: requests for the log's checkpoint that miss the kept signed note at the same time sign it once (the others wait and take its note, rather than each reading and verifying the log's entries again), and an entry bundle lets go of the snapshot before it reads the store (one held is copied whole by the next catch-up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use parmana_runtime::canon::Timestamp;
use parmana_runtime::replay::{
    LedgerRecord, LedgerRow, LedgerSummary, MemoryReplayStore, ReplayError, ReplayStore,
    sequence_all,
};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{answer_through_router, bound, runtime_over, tokio_runtime};
use crate::settings::Limits;

/// A memory store whose reads of ledger rows (the entries with their attestations, which a
/// checkpoint's signing verifies) are counted, and wait while held; so do its reads of more
/// than one record alone (an entry bundle's, not the snapshot's probe for new records).
#[derive(Debug, Default)]
struct HeldRows {
    inner: MemoryReplayStore,
    held: (Mutex<bool>, Condvar),
    reads: AtomicUsize,
    record_reads: AtomicUsize,
}

impl HeldRows {
    fn hold(&self, held: bool) {
        *self.held.0.lock().unwrap() = held;
        self.held.1.notify_all();
    }

    fn wait_while_held(&self) {
        let (held, wake) = &self.held;
        drop(wake.wait_while(held.lock().unwrap(), |held| *held).unwrap());
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
        self.wait_while_held();
        self.inner.ledger_rows(from, max)
    }
    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        if max > 1 {
            self.record_reads.fetch_add(1, Ordering::SeqCst);
            self.wait_while_held();
        }
        self.inner.ledger_records(from, max)
    }
}

/// A server serving the log of a fixture environment with a log key over `store`, two
/// executions sequenced.
fn serving_a_log(store: &Arc<HeldRows>) -> Arc<crate::state::AppState> {
    let fixture = FixtureEnvironment::new().unwrap();
    let log_key = fixture.key("root-1").unwrap();
    fixture
        .rotate_with_log(
            parmana_runtime::trust::LogSpec::one_key("log.example/parmana", log_key.public_key()),
            Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
    let runtime = runtime_over(&fixture, Arc::clone(store) as Arc<dyn ReplayStore>);
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
    sequence_all(&**store).unwrap();
    state
}

#[test]
fn an_entry_bundle_lets_go_of_the_snapshot_before_it_reads_the_store() {
    let store = Arc::new(HeldRows::default());
    let state = serving_a_log(&store);
    let tokio = tokio_runtime();
    // The snapshot read first.
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "GET", "/log/tile/0/000.p/3", "");
    assert_eq!(status, 200, "{answer}");
    store.hold(true);
    let bundle = {
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            use tower::ServiceExt;
            tokio_runtime().block_on(async {
                let request = axum::http::Request::builder()
                    .uri("/log/tile/entries/000.p/3")
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = crate::lifecycle::router(state)
                    .oneshot(request)
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, bytes.len())
            })
        })
    };
    let reading = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.record_reads.load(Ordering::SeqCst) > 0
    });
    assert!(reading, "the bundle never read the store");
    // While the bundle reads the store, only the cache (and this test) hold the snapshot.
    let snapshot = state.log_cache.get(&*store).unwrap();
    assert_eq!(Arc::strong_count(&snapshot), 2);
    drop(snapshot);
    store.hold(false);
    let (status, length) = bundle.join().unwrap();
    assert_eq!(status, 200);
    assert!(length > 3 * 2, "{length}");
}

#[test]
fn checkpoint_requests_that_miss_together_sign_once() {
    let store = Arc::new(HeldRows::default());
    let state = serving_a_log(&store);
    let tokio = tokio_runtime();
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
