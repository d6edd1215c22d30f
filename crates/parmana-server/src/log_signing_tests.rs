//! Serving the log from its shared snapshot without multiplying work: requests for the log's checkpoint that miss the kept signed note at the same time sign it once (the others wait and take its note, rather than each reading and verifying the log's entries again), and an entry bundle or a proof lets go of the snapshot before it reads the store (one held is copied whole by the next catch-up); a snapshot that forks from the log the sequencer keeps is never signed, and the store is refused. Their answers take their place in the body budget until written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use parmana_runtime::replay::{
    LedgerRecord, LedgerRow, LedgerSummary, MemoryReplayStore, ReplayError, ReplayStore,
    sequence_all,
};

use crate::readiness_tests::{answer_through_router, serving_a_public_log, tokio_runtime};
use crate::settings::Limits;

/// A memory store whose reads of ledger rows (the entries with their attestations, which a
/// checkpoint's signing verifies) are counted, and wait while held; so do its reads of more
/// than one record alone (an entry bundle's, not the snapshot's probe for new records) and of
/// records before `records_held_below` (a proof's entry).
#[derive(Debug, Default)]
struct HeldRows {
    inner: MemoryReplayStore,
    held: (Mutex<bool>, Condvar),
    reads: AtomicUsize,
    record_reads: AtomicUsize,
    records_held_below: AtomicU64,
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
        if max > 1 || from < self.records_held_below.load(Ordering::SeqCst) {
            self.record_reads.fetch_add(1, Ordering::SeqCst);
            self.wait_while_held();
        }
        self.inner.ledger_records(from, max)
    }
}

/// A server serving the public log of a fixture environment over `store`, two executions
/// sequenced and its log snapshot read (a tile: no signing, so that what a test does next reads
/// the store only for what it tests); the environment it reads its policies from.
fn serving_a_log(
    store: &Arc<HeldRows>,
) -> (
    Arc<crate::state::AppState>,
    parmana_testkit::FixtureEnvironment,
) {
    let (state, fixture) =
        serving_a_public_log(Arc::clone(store) as Arc<dyn ReplayStore>, Limits::default());
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
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "GET", "/log/tile/0/000.p/3", "");
    assert_eq!(status, 200, "{answer}");
    (state, fixture)
}

/// `GET path` from a thread of its own; its status when joined.
fn get_in_thread(
    state: &Arc<crate::state::AppState>,
    path: &'static str,
) -> std::thread::JoinHandle<u16> {
    let state = Arc::clone(state);
    std::thread::spawn(move || answer_through_router(&tokio_runtime(), &state, "GET", path, "").0)
}

#[test]
fn an_entry_bundle_lets_go_of_the_snapshot_before_it_reads_the_store() {
    let store = Arc::new(HeldRows::default());
    let (state, _fixture) = serving_a_log(&store);
    store.hold(true);
    let bundle = get_in_thread(&state, "/log/tile/entries/000.p/3");
    lets_go_of_the_snapshot_while_it_reads(&state, &store, bundle);
}

/// A proof too: it reads its entry from the store once the snapshot is let go.
#[test]
fn a_proof_lets_go_of_the_snapshot_before_it_reads_the_store() {
    let store = Arc::new(HeldRows::default());
    let (state, _fixture) = serving_a_log(&store);
    let tokio = tokio_runtime();
    // The checkpoint signed first: the proof then reads nothing of the store but its entry.
    let (status, answer, _) = answer_through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(status, 200, "{answer}");
    store.records_held_below.store(3, Ordering::SeqCst);
    store.hold(true);
    let proof = get_in_thread(&state, "/v1/executions/signed-1/proof");
    lets_go_of_the_snapshot_while_it_reads(&state, &store, proof);
}

/// Once `request` reads records from `store` (held), the log's snapshot is held by the cache
/// alone (and by the check); then `request`, let go, answers `200`.
fn lets_go_of_the_snapshot_while_it_reads(
    state: &Arc<crate::state::AppState>,
    store: &Arc<HeldRows>,
    request: std::thread::JoinHandle<u16>,
) {
    let reading = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.record_reads.load(Ordering::SeqCst) > 0
    });
    assert!(reading, "the request never read the store");
    // While the request reads the store, only the cache (and this check) hold the snapshot.
    let snapshot = state.log_cache.get(&**store).unwrap();
    assert_eq!(Arc::strong_count(&snapshot), 2);
    drop(snapshot);
    store.hold(false);
    assert_eq!(request.join().unwrap(), 200);
}

#[test]
fn checkpoint_requests_that_miss_together_sign_once() {
    let store = Arc::new(HeldRows::default());
    let (state, _fixture) = serving_a_log(&store);
    let before = store.reads.load(Ordering::SeqCst);
    store.hold(true);
    let requests: Vec<_> = (0..4)
        .map(|_| get_in_thread(&state, "/log/checkpoint"))
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

/// The log routes read the ledger apart from the sequencer (which read it at start): where their
/// read forks from the log the sequencer keeps — the store rewritten between the two — no
/// checkpoint is signed over it (`500 trust.tlog_inconsistent`), and the store is refused
/// (`runtime.store_rewound` from then on), as when a sequencer run shows it.
#[test]
fn a_log_read_that_forks_from_the_sequencers_is_not_signed() {
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let (state, _fixture) = serving_a_public_log(Arc::clone(&store), Limits::default());
    let tokio = tokio_runtime();
    let ids = |names: &[&str]| {
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>()
    };
    parmana_testkit::append_sequenced(&*store, ids(&["a", "b", "c"])).unwrap();
    // What the sequencer kept: the same first record, others after (the store as it was before
    // a writer rewrote it, as the routes are about to read it).
    checkpoint_refused_once_the_sequencer_keeps_another_tree(&tokio, &state);
    let (status, answer, _) = answer_through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (500, Some("runtime.store_rewound")),
        "{answer}"
    );
}

/// A log route's answer takes its place in the body budget, held until it is written (as an
/// attestation read back does): a client that does not read an entry bundle holds its memory
/// within the budget; with no room, the route is shed.
#[test]
fn a_log_answer_keeps_its_place_in_the_body_budget_until_it_is_written() {
    let store = Arc::new(HeldRows::default());
    let (state, _fixture) = serving_a_log(&store);
    let tokio = tokio_runtime();
    let total = state.body_bytes.available_permits();
    let paths = [
        "/log/checkpoint",
        "/log/tile/0/000.p/3",
        "/log/tile/entries/000.p/3",
        "/v1/executions/signed-1/proof",
    ];
    for path in paths {
        crate::readiness_tests::assert_answer_holds_its_place(&tokio, &state, "GET", path, "");
    }
    let held = Arc::clone(&state.body_bytes)
        .try_acquire_many_owned(u32::try_from(total).unwrap())
        .unwrap();
    for path in paths {
        let (status, answer, retry_after) = answer_through_router(&tokio, &state, "GET", path, "");
        assert_eq!(
            (status, &answer["error"]["code"], retry_after),
            (503, &serde_json::json!("server.overloaded"), true),
            "{path}: {answer}"
        );
    }
    drop(held);
    // The log's share of the budget full (answers its readers do not read): the log routes are
    // shed, and the rest of the budget still serves the other routes.
    let log_share = state.log_body_bytes.available_permits();
    assert!(log_share < total);
    let held = Arc::clone(&state.log_body_bytes)
        .try_acquire_many_owned(u32::try_from(log_share).unwrap())
        .unwrap();
    for path in paths {
        let (status, answer, _) = answer_through_router(&tokio, &state, "GET", path, "");
        assert_eq!(
            (status, &answer["error"]["code"]),
            (503, &serde_json::json!("server.overloaded")),
            "{path}: {answer}"
        );
    }
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "GET", "/v1/executions/signed-1", "");
    assert_eq!(status, 200, "{answer}");
    drop(held);
}

/// A note kept for the routes' snapshot is served again only while the snapshot agrees with the
/// log the sequencer keeps: once the sequencer holds another tree at that size (the store
/// rewritten between the two reads), the kept note is not served, and the store is refused.
#[test]
fn a_kept_note_is_not_served_once_the_sequencer_holds_another_tree() {
    let store = Arc::new(HeldRows::default());
    let (state, _fixture) = serving_a_log(&store);
    let tokio = tokio_runtime();
    let (status, answer, _) = answer_through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(status, 200, "{answer}");
    // The sequencer's read of the ledger (kept from before the routes signed): others there.
    checkpoint_refused_once_the_sequencer_keeps_another_tree(&tokio, &state);
}

/// Loads `state`'s sequencer with a ledger of executions `a`, `x`, `y` (another tree than the
/// routes read: the store rewritten between the two reads); then `GET /log/checkpoint` is
/// `500 trust.tlog_inconsistent` and the store is refused.
fn checkpoint_refused_once_the_sequencer_keeps_another_tree(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<crate::state::AppState>,
) {
    let before = MemoryReplayStore::new();
    let ids = ["a", "x", "y"].map(str::to_owned);
    parmana_testkit::append_sequenced(&before, ids).unwrap();
    state.log_sequencer.load(&before, None).unwrap();
    let (status, answer, _) = answer_through_router(tokio, state, "GET", "/log/checkpoint", "");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (500, Some("trust.tlog_inconsistent")),
        "{answer}"
    );
    assert!(state.runtime.store_refused().is_some());
}

/// A memory store whose ledger reads answer from `second` once `swapped`: the ledger rewritten
/// behind the server (the other reads stay `first`'s).
#[derive(Debug, Default)]
struct Rewritten {
    first: MemoryReplayStore,
    second: MemoryReplayStore,
    swapped: std::sync::atomic::AtomicBool,
}

impl Rewritten {
    fn ledger(&self) -> &MemoryReplayStore {
        if self.swapped.load(Ordering::SeqCst) {
            &self.second
        } else {
            &self.first
        }
    }
}

impl ReplayStore for Rewritten {
    parmana_testkit::forward_store_writes!(first);
    parmana_testkit::forward_store_reads!(@all_but_ledger_reads first);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.ledger().ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.ledger().ledger_rows(from, max)
    }
    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        self.ledger().ledger_records(from, max)
    }
}

/// The routes' snapshot caught up with a ledger that no longer extends it — rewritten since it
/// was read — answers `trust.tlog_inconsistent`, and refuses the store for good (as a sequencer
/// run that shows it does), rather than keep executing while every log route refuses.
#[test]
fn a_ledger_that_no_longer_extends_the_log_served_refuses_the_store() {
    let store = Arc::new(Rewritten::default());
    let ids = |names: &[&str]| {
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>()
    };
    parmana_testkit::append_sequenced(&store.first, ids(&["a", "b", "c"])).unwrap();
    parmana_testkit::append_sequenced(&store.second, ids(&["a", "x", "y", "z"])).unwrap();
    let (state, _fixture) = serving_a_public_log(
        Arc::clone(&store) as Arc<dyn ReplayStore>,
        Limits::default(),
    );
    let tokio = tokio_runtime();
    let tile = |state| answer_through_router(&tokio, state, "GET", "/log/tile/0/000.p/3", "");
    let (status, answer, _) = tile(&state);
    assert_eq!(status, 200, "{answer}");
    store.swapped.store(true, Ordering::SeqCst);
    state.log_cache.expire();
    let (status, answer, _) = tile(&state);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (500, Some("trust.tlog_inconsistent")),
        "{answer}"
    );
    assert!(state.runtime.store_refused().is_some());
}
