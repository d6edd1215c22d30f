//! `/readyz` answers `503 server.not_ready` whenever the server must not get traffic — starting (leftovers not yet recovered), draining, its environment expired, its store unreachable or silent — and `200` only when none holds; a burst of probes asks the store once; while starting, every route that decides answers `503` too, an expired environment refuses a native batch whole, and the log's routes hold at most a quarter of the slots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use axum::extract::State;
use parmana_runtime::canon::{ExecutionId, Timestamp};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, LedgerRow, LedgerSummary,
    MemoryReplayStore, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
};
use parmana_runtime::{Clock, Runtime};
use parmana_testkit::{FixtureEnvironment, now};

use crate::settings::{
    Authentication, AuthzenSettings, Limits, Logging, SequencerSettings, ServerSettings,
};
use crate::state::AppState;

/// A store that cannot be reached: every call fails with `replay.store_unavailable`, except
/// reading the marks until it is `down` (the runtime reads them once when it is built). Reading
/// the marks (`/readyz`'s probe) is counted, and waits while `silent` holds `true`.
#[derive(Debug, Default)]
pub(crate) struct Unreachable {
    down: AtomicBool,
    pub(crate) probes: AtomicUsize,
    silent: (Mutex<bool>, Condvar),
}

impl Unreachable {
    pub(crate) fn set_silent(&self, silent: bool) {
        *self.silent.0.lock().unwrap() = silent;
        self.silent.1.notify_all();
    }
}

fn unreachable<T>() -> Result<T, ReplayError> {
    Err(ReplayError::Unavailable {
        message: "connection refused".to_owned(),
    })
}

impl ReplayStore for Unreachable {
    fn claim(
        &self,
        _: &ExecutionId,
        _: &ClaimRecord,
        _: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        unreachable()
    }
    fn complete(&self, _: &ExecutionId, _: &[u8]) -> Result<(), ReplayError> {
        unreachable()
    }
    fn sequence(&self, _: usize) -> Result<SequenceOutcome, ReplayError> {
        unreachable()
    }
    fn store_checkpoint(&self, _: &StoredCheckpoint) -> Result<(), ReplayError> {
        unreachable()
    }
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        unreachable()
    }
    fn get(&self, _: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        unreachable()
    }
    fn pending_after(
        &self,
        _: Option<&ExecutionId>,
        _: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        unreachable()
    }
    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        let (silent, wake) = &self.silent;
        let _answered = wake
            .wait_while(silent.lock().unwrap(), |silent| *silent)
            .unwrap();
        if self.down.load(Ordering::SeqCst) {
            unreachable()
        } else {
            Ok(AcceptedVersions::new(0, 0))
        }
    }
    fn accept_versions(&self, _: u64, _: u64) -> Result<AcceptedVersions, ReplayError> {
        unreachable()
    }
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        unreachable()
    }
    fn checkpoints_from(&self, _: u64, _: usize) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        unreachable()
    }
    fn ledger_rows(&self, _: u64, _: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        unreachable()
    }
}

/// A clock the test moves on: `now` (whole seconds since the epoch).
#[derive(Debug)]
pub(crate) struct MovingClock(pub(crate) Arc<AtomicI64>);

impl Clock for MovingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_seconds(self.0.load(Ordering::SeqCst)).unwrap()
    }
}

/// A started server of `fixture` over a memory store (bound on loopback, default limits, no
/// authentication), its leftovers taken as recovered.
/// Signals of the fixture's claims policy that decide by its rules (the server tests' common
/// request).
pub(crate) const SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;

pub(crate) fn started_over_memory(fixture: &FixtureEnvironment) -> Arc<AppState> {
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound(runtime_over(fixture, store), Limits::default(), None);
    state.started_up.store(true, Ordering::SeqCst);
    state
}

/// A runtime of `fixture` over `store`, its clock fixed.
pub(crate) fn runtime_over(fixture: &FixtureEnvironment, store: Arc<dyn ReplayStore>) -> Runtime {
    fixture.runtime_over(store).unwrap()
}

/// The state of a server bound on loopback over `store`, its clock reading `NOW` until `clock`
/// is moved, before it has recovered anything.
fn state_over(
    fixture: &FixtureEnvironment,
    store: Arc<dyn ReplayStore>,
    clock: &Arc<AtomicI64>,
) -> Arc<AppState> {
    bound(runtime_at(fixture, store, clock), Limits::default(), None)
}

/// A runtime of `fixture` over `store`, its clock reading `NOW` until `clock` is moved.
pub(crate) fn runtime_at(
    fixture: &FixtureEnvironment,
    store: Arc<dyn ReplayStore>,
    clock: &Arc<AtomicI64>,
) -> Runtime {
    clock.store(now().unix_seconds(), Ordering::SeqCst);
    Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(store)
        .clock(MovingClock(Arc::clone(clock)))
        .build()
        .unwrap()
}

/// The state of a server of `runtime` bound on loopback, without authentication, with `limits`
/// and the transparency log's read API when `log` is given; not started.
pub(crate) fn bound(
    runtime: Runtime,
    limits: Limits,
    log: Option<crate::settings::LogSettings>,
) -> Arc<AppState> {
    bound_as(runtime, limits, log, "memory")
}

/// [`bound`], the store reported as `store_kind` (one but `memory` is one whose calls may wait:
/// they run on the blocking pool).
pub(crate) fn bound_as(
    runtime: Runtime,
    limits: Limits,
    log: Option<crate::settings::LogSettings>,
    store_kind: &str,
) -> Arc<AppState> {
    bound_with(runtime, settings_for(limits, log, store_kind))
}

/// The state of a server of `runtime` with `settings`, bound; not started.
pub(crate) fn bound_with(runtime: Runtime, settings: ServerSettings) -> Arc<AppState> {
    Arc::clone(
        crate::lifecycle::Server::bind(runtime, settings)
            .unwrap()
            .state(),
    )
}

/// The settings of [`bound_as`]: loopback, no authentication, no AuthZEN mapping.
pub(crate) fn settings_for(
    limits: Limits,
    log: Option<crate::settings::LogSettings>,
    store_kind: &str,
) -> ServerSettings {
    ServerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        authentication: Authentication::InsecureNoAuth,
        tls: None,
        // Within any test machine's limit on open files (1,024 is common): no test here holds
        // that many connections.
        limits: Limits {
            max_connections: limits.max_connections.min(256),
            ..limits
        },
        logging: Logging::default(),
        authzen: AuthzenSettings::default(),
        store_kind: store_kind.to_owned(),
        log,
        sequencer: SequencerSettings::default(),
        config_file: None,
        store_timings: crate::StoreTimings::new(),
    }
}

/// `/readyz`'s status, error code and message.
fn readiness(state: &Arc<AppState>) -> (u16, String, String) {
    readiness_on(&tokio_runtime(), state)
}

/// A runtime as the server's (a probe left waiting for its store outlives the request that
/// started it, so a test that leaves one keeps its runtime until the store answers).
pub(crate) fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// [`readiness`] on `tokio`.
fn readiness_on(tokio: &tokio::runtime::Runtime, state: &Arc<AppState>) -> (u16, String, String) {
    tokio.block_on(async {
        status_code_message(crate::api::readyz(State(Arc::clone(state))).await).await
    })
}

/// A response's status, and its error's code and message (empty where it has none).
pub(crate) async fn status_code_message(
    response: axum::response::Response,
) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (
        status,
        text(&body["error"]["code"]),
        text(&body["error"]["message"]),
    )
}

#[test]
fn readyz_is_200_only_when_started_not_draining_unexpired_and_the_store_answers() {
    let fixture = FixtureEnvironment::new().unwrap();
    let memory = || -> Arc<dyn ReplayStore> { Arc::new(MemoryReplayStore::new()) };
    let started = |state: Arc<AppState>| {
        state.started_up.store(true, Ordering::SeqCst);
        state
    };
    let clock = Arc::new(AtomicI64::new(0));
    let later = Arc::new(AtomicI64::new(0));
    let expired = started(state_over(&fixture, memory(), &later));
    later.store(
        Timestamp::parse("2040-01-01T00:00:00Z")
            .unwrap()
            .unix_seconds(),
        Ordering::SeqCst,
    );
    let unreachable = Arc::new(Unreachable::default());
    let over_unreachable = state_over(
        &fixture,
        Arc::clone(&unreachable) as Arc<dyn ReplayStore>,
        &clock,
    );
    unreachable.down.store(true, Ordering::SeqCst);
    // Another server took a newer trust root: its claims raised the store's marks past this
    // one's environment.
    let raised: Arc<dyn ReplayStore> = memory();
    let behind = started(state_over(&fixture, Arc::clone(&raised), &clock));
    raised.accept_versions(99, 1).unwrap();
    // What a signal does (before the listener closes).
    let draining = |state: Arc<AppState>| {
        crate::lifecycle::start_draining(&state);
        state
    };
    // Its TLS certificate expired while it served (the clock reads NOW).
    let certificate_expired = started(state_over(&fixture, memory(), &clock));
    *certificate_expired.tls_not_after.lock().unwrap() =
        Some(Timestamp::parse("2026-11-28T20:59:59Z").unwrap());
    // (case, state, expected status, what the refusal says)
    let cases: Vec<(&str, Arc<AppState>, u16, &str)> = vec![
        (
            "starting",
            state_over(&fixture, memory(), &clock),
            503,
            "starting",
        ),
        (
            "ready",
            started(state_over(&fixture, memory(), &clock)),
            200,
            "",
        ),
        (
            "draining",
            draining(started(state_over(&fixture, memory(), &clock))),
            503,
            "draining",
        ),
        (
            "store unreachable",
            started(over_unreachable),
            503,
            "replay store: unavailable (replay.store_unavailable",
        ),
        ("trust root expired", expired, 503, "expired"),
        (
            "TLS certificate expired",
            certificate_expired,
            503,
            "TLS certificate: expired at 2026-11-28T20:59:59Z",
        ),
        (
            "behind the store",
            behind,
            503,
            "behind the replay store: it accepted trust root 99",
        ),
    ];
    for (case, state, status, says) in cases {
        // A scrape of /metrics alone sets the gauge, whatever it said before.
        state.metrics.set_ready(status != 200);
        assert_eq!(ready_gauge(&state), u8::from(status == 200), "{case}");
        let (got, code, message) = readiness(&state);
        assert_eq!(got, status, "{case}: {code} {message}");
        if status == 503 {
            assert_eq!(code, "server.not_ready", "{case}");
            assert!(message.contains(says), "{case}: {message}");
            // What the store said (it can name hosts and paths) is for the log, not for anyone.
            assert!(!message.contains("connection refused"), "{case}: {message}");
        }
    }
}

/// The `parmana_ready` gauge as a scrape of `/metrics` reads it.
fn ready_gauge(state: &Arc<AppState>) -> u8 {
    let text = metrics_text(&tokio_runtime(), state);
    text.lines()
        .find_map(|line| line.strip_prefix("parmana_ready "))
        .unwrap_or_else(|| panic!("no parmana_ready: {text}"))
        .parse()
        .unwrap()
}

/// The text of `/metrics` (answered `200`).
pub(crate) fn metrics_text(tokio: &tokio::runtime::Runtime, state: &Arc<AppState>) -> String {
    let (status, _, text) = tokio.block_on(answer_of(
        crate::lifecycle::router(Arc::clone(state)),
        axum::http::Request::builder()
            .uri("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    ));
    assert_eq!(status, 200, "{text}");
    text
}

/// `router`'s answer to `request`: its status, `Location` and body text.
pub(crate) async fn answer_of(
    router: axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, Option<String>, String) {
    use tower::ServiceExt;
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, location, String::from_utf8(body.to_vec()).unwrap())
}

/// A started server over an [`Unreachable`] store that answers (not `down`), its probes not yet
/// counted.
pub(crate) fn started_over_probed(
    fixture: &FixtureEnvironment,
) -> (Arc<AppState>, Arc<Unreachable>) {
    let store = Arc::new(Unreachable::default());
    let clock = Arc::new(AtomicI64::new(0));
    let state = state_over(fixture, Arc::clone(&store) as Arc<dyn ReplayStore>, &clock);
    state.started_up.store(true, Ordering::SeqCst);
    store.probes.store(0, Ordering::SeqCst);
    (state, store)
}

#[test]
fn a_burst_of_probes_asks_the_store_once() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (state, store) = started_over_probed(&fixture);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<u16> = tokio.block_on(async {
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let state = Arc::clone(&state);
                tokio::spawn(
                    async move { crate::api::readyz(State(state)).await.status().as_u16() },
                )
            })
            .collect();
        let mut statuses = Vec::new();
        for call in calls {
            statuses.push(call.await.unwrap());
        }
        statuses
    });
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    // One probe answers the burst (its answer is reused for a second; a machine stalled past
    // that between two calls may probe again, never once per call).
    let probes = store.probes.load(Ordering::SeqCst);
    assert!((1..8).contains(&probes), "{probes} probes for 64 calls");
}

#[test]
fn a_store_that_does_not_answer_is_not_ready_and_is_probed_once() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (state, store) = started_over_probed(&fixture);
    let tokio = tokio_runtime();
    store.set_silent(true);
    // Each call gives up after the deadline; the first probe still waits for the store, and no
    // second one is started beside it.
    for _ in 0..2 {
        let (status, code, message) = readiness_on(&tokio, &state);
        assert_eq!((status, code.as_str()), (503, "server.not_ready"));
        assert!(message.contains("no answer within"), "{message}");
    }
    assert_eq!(store.probes.load(Ordering::SeqCst), 1);
    // Once the store answers, so does `/readyz` (the waiting probe's answer, or a new one).
    store.set_silent(false);
    let ready = (0..200).any(|_| {
        let ready = readiness_on(&tokio, &state).0 == 200;
        if !ready {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        ready
    });
    assert!(ready);
}

/// `method path` with `body` through the server's router (its guard included), in process:
/// the status, the error code and whether `Retry-After` came with it.
pub(crate) fn through_router(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, bool) {
    let (status, body, retry_after) = answer_through_router(tokio, state, method, path, body);
    let code = body["error"]["code"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    (status, code, retry_after)
}

/// One request through the router: the status, the body (`null` when not JSON) and whether
/// `Retry-After` was sent.
pub(crate) fn answer_through_router(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value, bool) {
    answer_through_router_as(tokio, state, method, path, body, None)
}

/// [`answer_through_router`] with the bearer token `token`, if any.
pub(crate) fn answer_through_router_as(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value, bool) {
    use tower::ServiceExt;
    tokio.block_on(async {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let response = crate::lifecycle::router(Arc::clone(state))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&body).unwrap_or_default();
        (status, body, retry_after)
    })
}

#[test]
fn until_leftovers_are_recovered_only_the_routes_that_decide_nothing_answer() {
    let fixture = FixtureEnvironment::new().unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let state = state_over(&fixture, Arc::new(MemoryReplayStore::new()), &clock);
    let tokio = tokio_runtime();
    let execution =
        r#"{"policy": "claims-approval@1.0.0", "signals": {}, "execution_id": "early-1"}"#;
    let evaluation = r#"{"policy": "claims-approval@1.0.0", "signals": {}}"#;
    // (method, path, body): every route that reads an execution or decides.
    let deciding = [
        ("POST", "/v1/executions", execution),
        ("GET", "/v1/executions/early-1", ""),
        ("GET", "/v1/executions/early-1/proof", ""),
        ("GET", "/log/checkpoint", ""),
        ("GET", "/log/tile/0/000", ""),
        ("POST", "/v1/evaluations", evaluation),
        ("POST", "/v1/verify", "{}"),
        ("POST", "/v1/admin/reload", ""),
        ("POST", "/access/v1/evaluation", "{}"),
        ("POST", "/access/v1/evaluations", "{}"),
    ];
    for (method, path, body) in deciding {
        let (status, code, retry_after) = through_router(&tokio, &state, method, path, body);
        assert_eq!(
            (status, code.as_str(), retry_after),
            (503, "server.not_ready", true),
            "{method} {path} while starting"
        );
    }
    // Probes, metrics, the documents and a path no route serves answer as ever.
    for (path, status) in [
        ("/healthz", 200),
        ("/metrics", 200),
        ("/openapi.json", 200),
        ("/v1/status", 200),
        ("/nowhere", 404),
    ] {
        assert_eq!(
            through_router(&tokio, &state, "GET", path, "").0,
            status,
            "GET {path} while starting"
        );
    }
    assert_eq!(
        through_router(&tokio, &state, "GET", "/readyz", "").1,
        "server.not_ready"
    );
    // Started: the same requests reach their handlers (the execution is refused by the
    // policy's validation, not by the gate; nothing was claimed before).
    state.started_up.store(true, Ordering::SeqCst);
    let (status, code, _) = through_router(&tokio, &state, "GET", "/v1/executions/early-1", "");
    assert_eq!((status, code.as_str()), (404, "server.execution_unknown"));
    let (status, code, _) = through_router(&tokio, &state, "POST", "/v1/evaluations", evaluation);
    assert_eq!(status, 422, "{code}");
    assert!(code.starts_with("policy."), "{code}");
}

#[test]
fn a_native_batch_under_an_expired_environment_is_refused_whole() {
    let fixture = FixtureEnvironment::new().unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let state = state_over(&fixture, Arc::new(MemoryReplayStore::new()), &clock);
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    let batch = r#"{"policy": "claims-approval@1.0.0", "batch": [{}, {"x": 1}]}"#;
    // In force: each signal set is refused by the policy inside a 200.
    assert_eq!(
        through_router(&tokio, &state, "POST", "/v1/evaluations", batch).0,
        200
    );
    // Expired: no 200 carries refusals of the environment in place of decisions.
    clock.store(
        Timestamp::parse("2040-01-01T00:00:00Z")
            .unwrap()
            .unix_seconds(),
        Ordering::SeqCst,
    );
    let (status, code, _) = through_router(&tokio, &state, "POST", "/v1/evaluations", batch);
    assert_eq!((status, code.as_str()), (500, "runtime.expired"));
}

/// A memory store whose whole-ledger reads wait while `held` (a slow or locked database), and
/// say how many are waiting.
#[derive(Debug, Default)]
struct SlowLedger {
    inner: MemoryReplayStore,
    held: (Mutex<bool>, Condvar),
    waiting: AtomicUsize,
}

impl SlowLedger {
    fn hold(&self, held: bool) {
        *self.held.0.lock().unwrap() = held;
        self.held.1.notify_all();
    }
}

/// Lets held reads go when dropped, so a failed assertion ends its test instead of leaving a
/// runtime waiting, as it is dropped, for a read that is never let go.
struct LetGo<'a>(&'a SlowLedger);

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        self.0.hold(false);
    }
}

impl ReplayStore for SlowLedger {
    parmana_testkit::forward_store_writes!(inner);
    parmana_testkit::forward_store_reads!(@all_but_ledger_reads inner);
    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let (held, wake) = &self.held;
        drop(wake.wait_while(held.lock().unwrap(), |held| *held).unwrap());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.inner.ledger_summary()
    }
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.inner.ledger_rows(from, max)
    }
}

/// A started server over `store` with `limits`, serving a public log: the fixture environment
/// rotated to a trust root whose `log` role its key `root-1` holds, that key signing. The
/// environment is returned with it: its policies are read from there when first asked for.
pub(crate) fn serving_a_public_log(
    store: Arc<dyn ReplayStore>,
    limits: Limits,
) -> (Arc<AppState>, FixtureEnvironment) {
    let fixture = FixtureEnvironment::new().unwrap();
    let log_key = fixture.key("root-1").unwrap();
    fixture
        .rotate_with_log(
            parmana_runtime::trust::LogSpec::one_key("log.example/parmana", log_key.public_key()),
            Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
    let log = crate::settings::LogSettings {
        signers: Arc::new([log_key]),
        public: true,
        witnesses: Vec::new(),
        witness_roots: None,
    };
    let state = bound(runtime_over(&fixture, store), limits, Some(log));
    state.started_up.store(true, Ordering::SeqCst);
    (state, fixture)
}

/// A server with four slots (the log's share is one) serving a public log on a [`SlowLedger`],
/// answering within `request_timeout`.
fn serving_a_slow_log(request_timeout: std::time::Duration) -> (Arc<AppState>, Arc<SlowLedger>) {
    let store = Arc::new(SlowLedger::default());
    let limits = Limits {
        max_concurrency: 4,
        request_timeout,
        ..Limits::default()
    };
    let (state, _) = serving_a_public_log(Arc::clone(&store) as Arc<dyn ReplayStore>, limits);
    (state, store)
}

/// Waits until `count` reads wait on the store.
fn wait_for_readers(store: &SlowLedger, count: usize) {
    let waited = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.waiting.load(Ordering::SeqCst) == count
    });
    assert!(waited, "{count} log reads never reached the store");
}

#[test]
fn the_log_routes_hold_at_most_a_quarter_of_the_slots() {
    let (state, store) = serving_a_slow_log(Limits::default().request_timeout);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // An anonymous reader of the public log whose read waits on the store holds the log's one
    // place.
    let _let_go = LetGo(&store);
    store.hold(true);
    let slow = {
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            through_router(&tokio_runtime(), &state, "GET", "/log/checkpoint", "").0
        })
    };
    wait_for_readers(&store, 1);
    // Another log request is shed; a decision is not (three slots are still free).
    let (status, code, retry_after) = through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(
        (status, code.as_str(), retry_after),
        (503, "server.overloaded", true)
    );
    let evaluation = r#"{"policy": "claims-approval@1.0.0", "signals": {}}"#;
    let (status, code, _) = through_router(&tokio, &state, "POST", "/v1/evaluations", evaluation);
    assert_eq!(status, 422, "{code}");
    // The store answers: the waiting reader gets its checkpoint, and the log's place is free.
    store.hold(false);
    assert_eq!(slow.join().unwrap(), 200);
    let (status, _, _) = through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(status, 200);
}

#[test]
fn a_log_read_past_its_requests_timeout_keeps_its_place_of_the_logs_share() {
    // Before, the place was given back when the request was answered on its timeout while the
    // read went on holding a slot: log reads could take every slot, a quarter at a time.
    let (state, store) = serving_a_slow_log(std::time::Duration::from_millis(100));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _let_go = LetGo(&store);
    store.hold(true);
    let (status, code, _) = through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!((status, code.as_str()), (503, "server.timeout"));
    wait_for_readers(&store, 1);
    // The read goes on: its slot and its place of the log's share are both still held.
    assert_eq!(state.in_flight.available_permits(), 3);
    let (status, code, _) = through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!((status, code.as_str()), (503, "server.overloaded"));
    assert_eq!(store.waiting.load(Ordering::SeqCst), 1);
    // When the read is done, both are free again.
    store.hold(false);
    wait_for_readers(&store, 0);
    let freed = (0..2_000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        state.in_flight.available_permits() == 4 && state.log_in_flight.available_permits() == 1
    });
    assert!(freed, "the slot or the log's place was never given back");
    let (status, _, _) = through_router(&tokio, &state, "GET", "/log/checkpoint", "");
    assert_eq!(status, 200);
}

/// A store that does not answer does not hold a reload back (a trust root rotating a leaked key
/// out is in force at once): the reload is taken, and reported so, while `/readyz` still says the
/// store is down. A refusal the store made that the record holds is shown by its code only: what
/// the store said can name hosts and paths, for the server's log, not for every token that may
/// read the status.
#[test]
fn a_reload_is_taken_while_the_store_is_down_and_store_refusals_are_shown_by_code() {
    let fixture = FixtureEnvironment::new().unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let store = Arc::new(Unreachable::default());
    let state = state_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>, &clock);
    state.started_up.store(true, Ordering::SeqCst);
    store.down.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    let (status, code, _) = through_router(&tokio, &state, "POST", "/v1/admin/reload", "");
    assert_eq!((status, code.as_str()), (200, ""));
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_reload"]["outcome"], "ok", "{body}");
    assert_eq!(body["ready"], false, "{body}");
    state.runtime.record_reload_failure(
        "replay.store_unavailable",
        "connection refused by db.internal:5432".to_owned(),
    );
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    let reload = &body["last_reload"];
    assert_eq!(
        (&reload["outcome"], &reload["code"]),
        (
            &serde_json::Value::from("refused"),
            &serde_json::Value::from("replay.store_unavailable")
        ),
        "{body}"
    );
    let message = reload["message"].as_str().unwrap();
    assert!(!message.contains("connection refused"), "{message}");
    assert!(message.contains("server's log"), "{message}");
}

/// A reload refused because a file cannot be read tells the operator (the `admin` scope) which
/// file, and `/v1/status` (the `read` scope) only the code: the path stays in the server's log.
/// So for every refusal `/v1/status` records, and for the log anchor's refusals on every route.
#[test]
fn a_reload_a_file_refused_names_the_file_to_the_admin_only() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    std::fs::remove_file(fixture.root().join("release-manifest.json")).unwrap();
    let root = fixture.root().display().to_string();
    let tokio = tokio_runtime();
    let (status, body, _) = answer_through_router(&tokio, &state, "POST", "/v1/admin/reload", "");
    assert_eq!(status, 422, "{body}");
    let code = body["error"]["code"].as_str().unwrap().to_owned();
    assert!(code.ends_with(".io"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&root),
        "{body}"
    );
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    let reload = &body["last_reload"];
    assert_eq!(reload["code"], code.as_str(), "{body}");
    let message = reload["message"].as_str().unwrap();
    assert!(!message.contains(&root), "{message}");
    assert!(message.contains("server's log"), "{message}");
    // However the record came to hold the file's own words (the moment before the reload's
    // handler replaces them), `/v1/status` withholds them.
    state.runtime.record_reload_failure(
        "runtime.io",
        format!("cannot read {root}/release-manifest.json: No such file or directory"),
    );
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    let message = body["last_reload"]["message"].as_str().unwrap();
    assert!(!message.contains(&root), "{message}");
    assert!(message.contains("server's log"), "{message}");
    // So too a refusal of the trust files, whose words name a version's file.
    state.runtime.record_reload_failure(
        "trust.unexpected_version",
        format!("unexpected trust-root file {root}/trust/trust-root.d/5.json"),
    );
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    let message = body["last_reload"]["message"].as_str().unwrap();
    assert!(!message.contains(&root), "{message}");
    assert!(message.contains("trust.unexpected_version"), "{message}");
    // And an answer refused because of the log anchor (a file of the server's) names no path.
    let anchor = crate::error::withheld_message_of(
        "runtime.log_anchor_invalid",
        parmana_runtime::ErrorClass::Trust,
    )
    .unwrap();
    assert!(anchor.contains("runtime.log_anchor_invalid"), "{anchor}");
}

/// A burst of reload signals (a file watcher sending one per file written) while a reload
/// waits for its turn makes one reload, which reads the files as they are after the burst —
/// not one reload per signal, queued without bound.
#[test]
fn a_burst_of_reload_signals_makes_one_reload() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let reloads = |state: &Arc<AppState>| -> u64 {
        metrics_text(&tokio, state)
            .lines()
            .filter(|line| line.starts_with("parmana_reloads_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(reloads(&state), 0);
    tokio.block_on(async {
        // Another reload holds the turn while fifty signals come (each asks for a reload as
        // `reload_on_signal` does, in its task).
        let turn = Arc::clone(&state.reloading).lock_owned().await;
        for _ in 0..50 {
            drop(crate::reload::request_reload(&state));
        }
        drop(turn);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reloads(&state) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Time for any other queued reload to run, had the signals been queued one each.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(reloads(&state), 1);
}

/// A clock that does not answer while `stalled` is set (for at most a minute), then reads
/// [`NOW`](parmana_testkit::NOW): a reload reading it outlives its request.
#[derive(Debug, Default)]
struct StallingClock(Arc<AtomicBool>);

impl Clock for StallingClock {
    fn now(&self) -> Timestamp {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.0.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        now()
    }
}

/// A reload outlives its request when its work is slow (here the clock it reads; a slow disk
/// would do the same): the request is answered on its timeout, and the reload — which goes on,
/// under its turn — is still counted and recorded once it ends.
#[test]
fn a_reload_that_outlives_its_request_is_still_counted_and_recorded() {
    let fixture = FixtureEnvironment::new().unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    let runtime = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(Arc::new(MemoryReplayStore::new()))
        .clock(StallingClock(Arc::clone(&stalled)))
        .build()
        .unwrap();
    let limits = Limits {
        request_timeout: std::time::Duration::from_millis(50),
        ..Limits::default()
    };
    let state = bound(runtime, limits, None);
    state.started_up.store(true, Ordering::SeqCst);
    let reloads = r#"parmana_reloads_total{outcome="ok"} "#;
    // The reload reads the clock, which does not answer yet (until the test ends, even by a
    // failed assertion: a runtime is dropped only once its blocking work is done).
    stalled.store(true, Ordering::SeqCst);
    struct AnswersAtLast(Arc<AtomicBool>);
    impl Drop for AnswersAtLast {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    // Declared after the runtime, so dropped before it.
    let tokio = tokio_runtime();
    let _answers = AnswersAtLast(Arc::clone(&stalled));
    let (status, code, retry_after) =
        through_router(&tokio, &state, "POST", "/v1/admin/reload", "");
    assert_eq!(
        (status, code.as_str(), retry_after),
        (503, "server.timeout", true)
    );
    // (Read from the registry itself: `/metrics` would read the stalled clock too.)
    let counted_now = || {
        let text = state.metrics.encode().unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(reloads))
            .map(str::to_owned)
    };
    assert_eq!(
        counted_now().as_deref(),
        Some("0"),
        "at 0 from the start, not counted before it ended"
    );
    // The clock answers: the reload ends, on its own, counted and recorded.
    stalled.store(false, Ordering::SeqCst);
    let mut counted = None;
    for _ in 0..400 {
        counted = counted_now();
        if counted.as_deref() != Some("0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(counted.as_deref(), Some("1"));
    let (status, body, _) = answer_through_router(&tokio, &state, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_reload"]["outcome"], "ok", "{body}");
}

/// Only a small, unexplained evaluation runs on the async worker; one whose cost the request
/// chooses (large signals, a trace) goes to the blocking pool, and is answered the same.
#[test]
fn large_or_explained_evaluations_leave_the_async_workers_and_answer_the_same() {
    use crate::api::{INLINE_EVALUATION_BYTES, evaluates_inline};
    assert!(evaluates_inline(false, INLINE_EVALUATION_BYTES));
    assert!(!evaluates_inline(false, INLINE_EVALUATION_BYTES + 1));
    assert!(!evaluates_inline(true, 2));
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let small = SIGNALS;
    // The same signals, made large by whitespace.
    let padded = format!("{{{}{}", " ".repeat(INLINE_EVALUATION_BYTES), &small[1..]);
    let mut answers = Vec::new();
    // (signals, explained, handed to the blocking pool)
    for (signals, explain, handed) in [
        (small, false, false),
        (padded.as_str(), false, true),
        (small, true, true),
    ] {
        let before = state.blocking_handoffs.load(Ordering::SeqCst);
        let body = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{signals}}}"#);
        let path = if explain {
            "/v1/evaluations?explain=true"
        } else {
            "/v1/evaluations"
        };
        let (status, mut answer, _) = answer_through_router(&tokio, &state, "POST", path, &body);
        assert_eq!(status, 200, "{answer}");
        let trace = answer.as_object_mut().unwrap().remove("trace");
        assert_eq!(trace.is_some_and(|t| !t.is_null()), explain, "{answer}");
        let after = state.blocking_handoffs.load(Ordering::SeqCst);
        assert_eq!(
            after > before,
            handed,
            "explain {explain}, {} bytes",
            signals.len()
        );
        answers.push(answer);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

/// An explanation takes a place in the server's body budget (its trace's bound) beside its
/// request's body, before anything is evaluated: with the budget all but taken, an explained
/// evaluation is shed (`503 server.overloaded`) where the same one unexplained is answered; with
/// room, it is answered, and every place is given back once it is.
#[test]
fn an_explanation_takes_its_place_in_the_body_budget() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let small = SIGNALS;
    let body = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{small}}}"#);
    let total = state.body_bytes.available_permits();
    let held = Arc::clone(&state.body_bytes)
        .try_acquire_many_owned(u32::try_from(total - 1).unwrap())
        .unwrap();
    let explained = || {
        answer_through_router(
            &tokio,
            &state,
            "POST",
            "/v1/evaluations?explain=true",
            &body,
        )
    };
    let (status, answer, _) = explained();
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &serde_json::json!("server.overloaded")),
        "{answer}"
    );
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "POST", "/v1/evaluations", &body);
    assert_eq!(status, 200, "{answer}");
    drop(held);
    let (status, answer, _) = explained();
    assert_eq!(status, 200, "{answer}");
    assert!(answer["trace"]["rules"].is_array(), "{answer}");
    assert_eq!(state.body_bytes.available_permits(), total);
}

/// An answer keeps its request's place in the body budget until it is written, not just until
/// its handler returns: an explanation's (its trace's bound) and an attestation read back (its
/// size) stay taken while the answer's body is held unread — a client that does not read its
/// answer holds that memory within the budget — and are given back once it is dropped, its
/// `Content-Length` still exact. With no room for an attestation read back, the read is shed.
#[test]
fn an_answer_keeps_its_place_in_the_body_budget_until_it_is_written() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let total = state.body_bytes.available_permits();
    let (status, answer, _) = answer_through_router(
        &tokio,
        &state,
        "POST",
        "/v1/executions",
        &format!(
            r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"execution_id":"held-1"}}"#
        ),
    );
    assert_eq!(status, 201, "{answer}");
    let evaluation = format!(r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS}}}"#);
    for (method, path, body) in [
        ("POST", "/v1/evaluations?explain=true", evaluation.as_str()),
        ("GET", "/v1/executions/held-1", ""),
    ] {
        assert_answer_holds_its_place(&tokio, &state, method, path, body);
    }
    // No room for the attestation read back: shed.
    let held = Arc::clone(&state.body_bytes)
        .try_acquire_many_owned(u32::try_from(total).unwrap())
        .unwrap();
    let (status, answer, retry_after) =
        answer_through_router(&tokio, &state, "GET", "/v1/executions/held-1", "");
    assert_eq!(
        (status, &answer["error"]["code"], retry_after),
        (503, &serde_json::json!("server.overloaded"), true),
        "{answer}"
    );
    drop(held);
}

/// `method path` with `body` through the router answers `200`, its `Content-Length` exact, and
/// holds a place in the body budget — of the whole budget, of the share every caller may take,
/// and, for a log route, of the log's share — while the answer is unwritten (held here), given
/// back once it is dropped.
pub(crate) fn assert_answer_holds_its_place(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
) {
    use http_body::Body as _;
    use tower::ServiceExt;
    let total = state.body_bytes.available_permits();
    let shared = state.shared_body_bytes.available_permits();
    let log = state.log_body_bytes.available_permits();
    let log_route = path.starts_with("/log/") || path.ends_with("/proof");
    let response = tokio.block_on(async {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        crate::lifecycle::router(Arc::clone(state))
            .oneshot(request)
            .await
            .unwrap()
    });
    assert_eq!(response.status(), 200, "{path}");
    let length: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.body().size_hint().exact(), Some(length), "{path}");
    assert!(
        state.body_bytes.available_permits() < total,
        "{path}: the answer's place is given back before it is written"
    );
    assert!(
        state.shared_body_bytes.available_permits() < shared,
        "{path}: the answer's place of the share is given back before it is written"
    );
    assert_eq!(
        state.log_body_bytes.available_permits() < log,
        log_route,
        "{path}: the log's share"
    );
    drop(response);
    assert_eq!(state.body_bytes.available_permits(), total, "{path}");
    assert_eq!(
        state.shared_body_bytes.available_permits(),
        shared,
        "{path}"
    );
    assert_eq!(state.log_body_bytes.available_permits(), log, "{path}");
}

/// An answer larger than a frame is handed over in copies of at most a frame, its last frame
/// too: no frame is a slice of the answer's own allocation, which hyper would otherwise hold whole
/// in its write buffer once the body is dropped (and its place given back). An answer that fits
/// in one frame is handed over as it is (no copy), and the size is exact before the first frame.
#[test]
fn an_answer_is_handed_over_in_copied_frames() {
    use crate::state::{ANSWER_FRAME_BYTES, AnswerHolding};
    use http_body::Body as _;
    let tokio = tokio_runtime();
    for size in [100, ANSWER_FRAME_BYTES, 2 * ANSWER_FRAME_BYTES + 10] {
        let answer = axum::body::Bytes::from(vec![7u8; size]);
        let start = answer.as_ptr() as usize;
        let own = start..start + size;
        let mut holding =
            AnswerHolding::new(axum::body::Body::from(answer.clone()), Arc::default());
        assert_eq!(holding.size_hint().exact(), Some(size as u64), "{size}");
        let mut frames = Vec::new();
        tokio.block_on(async {
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut holding).poll_frame(cx)).await
            {
                frames.push(frame.unwrap().into_data().unwrap());
            }
        });
        assert!(holding.is_end_stream(), "{size}");
        assert_eq!(
            frames.iter().map(|f| f.len()).sum::<usize>(),
            size,
            "{size}"
        );
        assert!(
            frames.iter().all(|f| f.len() <= ANSWER_FRAME_BYTES),
            "{size}"
        );
        let sliced = frames
            .iter()
            .filter(|f| own.contains(&(f.as_ptr() as usize)))
            .count();
        if size <= ANSWER_FRAME_BYTES {
            assert_eq!(
                (frames.len(), sliced),
                (1, 1),
                "{size}: handed over as it is"
            );
        } else {
            assert_eq!(sliced, 0, "{size}: a frame is a slice of the answer");
        }
    }
}

/// Over a real HTTP/1.1 connection (hyper, its write buffer the server's 16 KiB, on an in-memory
/// stream of 4 KiB): an explained batch's answer (hundreds of KiB) that the client does not read
/// keeps its place in the body budget — hyper takes its frames only while its buffer has room,
/// the rest waits counted — and gives it back once the client has read it. (Handed to hyper
/// whole, the answer would leave the budget at once while hyper held all of it.)
#[test]
fn an_answer_its_client_does_not_read_keeps_its_place_over_http() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let total = state.body_bytes.available_permits();
    let batch = vec![SIGNALS; 400].join(",");
    let body = format!(r#"{{"policy":"claims-approval@1.0.0","batch":[{batch}]}}"#);
    let (answer_length, held) = tokio.block_on(async {
        let (client, server) = tokio::io::duplex(4096);
        let service = hyper_util::service::TowerToHyperService::new(crate::lifecycle::router(
            Arc::clone(&state),
        ));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(server), service),
        );
        let (mut read, mut write) = tokio::io::split(client);
        write
            .write_all(
                format!(
                    "POST /v1/evaluations?explain=true HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        // The answer is made, and waits for the client: its place is still taken.
        let mut first = [0u8; 1];
        read.read_exact(&mut first).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let held = total - state.body_bytes.available_permits();
        // Read it all: the head, then `Content-Length` bytes.
        let mut answer = first.to_vec();
        let mut chunk = [0u8; 8192];
        let (head_end, length) = loop {
            let n = read.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0, "closed before the head");
            answer.extend_from_slice(&chunk[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                break (end + 4, length);
            }
        };
        while answer.len() < head_end + length {
            let n = read.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0, "closed before the end of the answer");
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{:?}", &answer[..40]);
        (length, held)
    });
    assert!(answer_length > 100 * 1024, "{answer_length} bytes");
    assert!(
        held > 0,
        "the place was given back before the answer was read"
    );
    let freed = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        state.body_bytes.available_permits() == total
    });
    assert!(freed, "the place was never given back");
}

/// The ledger held by another integrator (runs told busy, the log not growing) while this server
/// has completed executions since its last run that integrated: not ready once that has lasted
/// [`held_ledger_limit`](crate::lifecycle::held_ledger_limit), with the reason; a run that
/// integrates, or a log that grows (another server integrating), clears it.
#[test]
fn a_ledger_held_while_completions_wait_is_not_ready() {
    use crate::lifecycle::{integration_stalled, watch_integrator};
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let report = |busy, size| parmana_runtime::SequenceReport {
        busy,
        size,
        ..parmana_runtime::SequenceReport::default()
    };
    let age = |state: &AppState, seconds| {
        let mut held = state.held_since.lock().unwrap();
        let watch = held.as_mut().unwrap();
        watch.since = watch
            .since
            .and_then(|since| since.checked_sub(std::time::Duration::from_secs(seconds)));
    };
    // A run that integrated: nothing held.
    watch_integrator(&state, &report(false, 4), 0);
    assert_eq!(integration_stalled(&state), None);
    // Held, long enough, but nothing completed here since: no alarm (another server's log).
    watch_integrator(&state, &report(true, 4), 0);
    age(&state, 60);
    watch_integrator(&state, &report(true, 4), 0);
    assert_eq!(integration_stalled(&state), None);
    // This server completed one meanwhile: not ready, saying why.
    state
        .completed_here
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let why = integration_stalled(&state).unwrap();
    assert!(why.contains("integrator lock has been held"), "{why}");
    let (status, code, message) = readiness(&state);
    assert_eq!((status, code.as_str()), (503, "server.not_ready"));
    assert!(message.contains("integrator lock"), "{message}");
    // Held, but not for long yet: no alarm.
    watch_integrator(&state, &report(true, 5), 0);
    assert_eq!(
        integration_stalled(&state),
        None,
        "the log grew: held afresh"
    );
    // A run that integrated everything completed before it: ready again.
    age(&state, 60);
    assert!(integration_stalled(&state).is_some());
    watch_integrator(&state, &report(false, 6), 1);
    assert_eq!(integration_stalled(&state), None);
    assert_eq!(readiness(&state).0, 200);
}

/// An address bound for the server refuses connections until the server listens on it (they
/// are not left unanswered while the store opens), and `Server::on` judges the settings against
/// the address bound, not the one the settings name: bound off loopback, settings that say
/// loopback do not let it run without authentication.
#[test]
fn an_address_bound_is_refused_until_served_and_judged_as_bound() {
    use crate::lifecycle::{Listening, Server};
    let fixture = FixtureEnvironment::new().unwrap();
    let runtime = || runtime_over(&fixture, Arc::new(MemoryReplayStore::new()));
    let listening = Listening::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let refused = std::net::TcpStream::connect(listening.local_addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let server = Server::on(
        runtime(),
        settings_for(Limits::default(), None, "memory"),
        listening,
    )
    .unwrap();
    std::net::TcpStream::connect(server.local_addr()).unwrap();
    drop(server);
    // Bound on every interface (never listened on: refused first).
    let wide = Listening::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let refused = Server::on(
        runtime(),
        settings_for(Limits::default(), None, "memory"),
        wide,
    )
    .unwrap_err();
    assert_eq!(refused.code(), "server.not_loopback", "{refused}");
}

/// A request that arrives once the shutdown grace has run out (its connection opened before
/// the drain) starts nothing — an execution begun then would outlive the grace —: `503
/// server.shutting_down` saying so, with `Retry-After`, its id never claimed; the probes still
/// answer.
#[test]
fn a_request_after_the_grace_starts_nothing() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    state.grace_over.send_replace(true);
    let body = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"execution_id":"late-1"}}"#
    );
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "POST", "/v1/executions", &body);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "server.shutting_down", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was started"),
        "{answer}"
    );
    let claimed = state
        .runtime
        .store()
        .get(&ExecutionId::parse("late-1").unwrap())
        .unwrap();
    assert_eq!(claimed, ExecutionState::Absent);
    let (status, _, _) = answer_through_router(&tokio, &state, "GET", "/healthz", "");
    assert_eq!(status, 200);
}
