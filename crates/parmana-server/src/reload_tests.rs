//! Reloads and the tokens file: a revocation is in force before the reload waits for its turn (a reload before it waiting on the store, say), a reload asked for by a request answered on its timeout still runs, and a tokens file refused holds back no rotation of the trust root. A batch, and a verification, are decided under the environment they began with, though a reload lands in their middle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{bound_with, runtime_over, settings_for, tokio_runtime};
use crate::settings::{Authentication, Limits};
use crate::state::AppState;

/// Writes a tokens file at `path` granting `admin` and `read` to each of `secrets`.
fn write_tokens(path: &std::path::Path, secrets: &[&str]) {
    let text: String = secrets
        .iter()
        .map(|secret| {
            let digest = parmana_runtime::canon::Digest::of(secret.as_bytes());
            format!(
                "[[tokens]]\nname = \"{secret}\"\nsha256 = \"{digest}\"\nscopes = [\"admin\", \"read\"]\n"
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// A started server of `fixture` over a memory store with `limits`, its tokens read from the
/// file `tokens` (no authentication without one).
fn serving(
    fixture: &FixtureEnvironment,
    limits: Limits,
    tokens: Option<&std::path::Path>,
) -> Arc<AppState> {
    let mut settings = settings_for(limits, None, "memory");
    if let Some(path) = tokens {
        settings.authentication = Authentication::Tokens(crate::auth::Tokens::load(path).unwrap());
    }
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound_with(runtime_over(fixture, store), settings);
    state.started_up.store(true, Ordering::SeqCst);
    state
}

/// Exactly one reload was made, and it was taken.
fn assert_one_reload_made(state: &AppState) {
    let text = state.metrics.encode().unwrap();
    assert!(
        text.lines()
            .any(|line| line == r#"parmana_reloads_total{outcome="ok"} 1"#),
        "{text}"
    );
}

/// `method path` through the router with `token`: the status, the error code and message.
fn call(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    token: &str,
) -> (u16, String, String) {
    use tower::ServiceExt;
    tokio.block_on(async {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = crate::lifecycle::router(Arc::clone(state))
            .oneshot(request)
            .await
            .unwrap();
        crate::readiness_tests::status_code_message(response).await
    })
}

/// While a reload holds its turn (one waiting on a store that does not answer, say), a token
/// removed from the file is refused as soon as a second reload is asked for — not once that
/// reload's turn comes — and the second reload, answered `503 server.timeout` while it waits,
/// still runs once the turn is free.
#[test]
fn a_revocation_does_not_wait_for_the_reload_before_it() {
    let fixture = FixtureEnvironment::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    write_tokens(&path, &["token-a", "token-b"]);
    let state = serving(
        &fixture,
        Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        Some(&path),
    );
    let tokio = tokio_runtime();
    assert_eq!(call(&tokio, &state, "GET", "/v1/status", "token-b").0, 200);

    // A reload before it holds the turn.
    let held = tokio.block_on(Arc::clone(&state.reloading).lock_owned());
    write_tokens(&path, &["token-a"]);
    let (status, code, message) = call(&tokio, &state, "POST", "/v1/admin/reload", "token-a");
    assert_eq!((status, code.as_str()), (503, "server.timeout"));
    assert!(message.contains("the reload goes on"), "{message}");
    // (The early read was started when the reload was asked for; the request does not wait
    // for it.)
    let revoked = (0..400).any(|_| {
        let (status, code, _) = call(&tokio, &state, "GET", "/v1/status", "token-b");
        let revoked = status == 401 && code == "server.unauthorized";
        if !revoked {
            std::thread::sleep(Duration::from_millis(10));
        }
        revoked
    });
    assert!(revoked, "not revoked while the reload waits for its turn");
    // The reload waiting holds the request's concurrency slot.
    assert_eq!(
        state.in_flight.available_permits(),
        state.limits.max_concurrency - 1
    );
    // More requests while it waits — a client retrying on its timeout — share it: one reload
    // queued, one slot held, however many ask.
    for _ in 0..3 {
        let (status, _, _) = call(&tokio, &state, "POST", "/v1/admin/reload", "token-a");
        assert_eq!(status, 503);
    }
    assert_eq!(
        state.in_flight.available_permits(),
        state.limits.max_concurrency - 1
    );
    // And a signal's revocation does not wait for it either.
    write_tokens(&path, &["token-c"]);
    tokio.block_on(async { crate::reload::reload_on_signal(&state) });
    let revoked = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        call(&tokio, &state, "GET", "/v1/status", "token-a").0 == 401
    });
    assert!(
        revoked,
        "a signal's revocation waited for the queued reload"
    );
    assert!(state.runtime.last_reload().is_none(), "not reloaded yet");

    // The turn free: the reload answered on its timeout runs.
    drop(held);
    let reloaded = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        state
            .runtime
            .last_reload()
            .is_some_and(|record| record.outcome.is_ok())
    });
    assert!(reloaded, "{:?}", state.runtime.last_reload());
    assert_eq!(call(&tokio, &state, "GET", "/v1/status", "token-c").0, 200);
    // One reload made for the five asked while it waited; every slot back.
    let settled = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        state.in_flight.available_permits() == state.limits.max_concurrency
    });
    assert!(settled, "a slot still held");
    assert_one_reload_made(&state);
}

/// Requests that ask for a reload while one waits for its turn share it: each gets its outcome
/// (`200` and the versions), and one reload is made.
#[test]
fn requests_waiting_for_a_reload_share_its_outcome() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = serving(&fixture, Limits::default(), None);
    let tokio = Arc::new(tokio_runtime());
    let held = tokio.block_on(Arc::clone(&state.reloading).lock_owned());
    let asks: Vec<_> = (0..2)
        .map(|_| {
            let (state, tokio) = (Arc::clone(&state), Arc::clone(&tokio));
            std::thread::spawn(move || call(&tokio, &state, "POST", "/v1/admin/reload", ""))
        })
        .collect();
    // Both asked (each has taken a slot) before the turn is free.
    let asked = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        state.in_flight.available_permits() == state.limits.max_concurrency - 2
    });
    assert!(asked);
    std::thread::sleep(Duration::from_millis(50));
    drop(held);
    for ask in asks {
        assert_eq!(ask.join().unwrap().0, 200);
    }
    assert_one_reload_made(&state);
}

/// A started server of a fixture environment, its tokens file (in the directory kept by the
/// returned guard) granting `token-a`: the environment, the guard, the file's path, the server.
fn serving_token_a() -> (
    FixtureEnvironment,
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<AppState>,
) {
    let fixture = FixtureEnvironment::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    write_tokens(&path, &["token-a"]);
    let state = serving(&fixture, Limits::default(), Some(&path));
    (fixture, dir, path, state)
}

/// A tokens file refused on a signal (written half, say) refuses that reload — counted and
/// recorded — and the next signal, once the file is whole, reloads it: a refusal never leaves
/// later signals ignored.
#[test]
fn a_signal_after_a_refused_tokens_file_reloads() {
    let (_fixture, _dir, path, state) = serving_token_a();
    let tokio = tokio_runtime();
    let signal = || tokio.block_on(async { crate::reload::reload_on_signal(&state) });
    let eventually = |done: &dyn Fn() -> bool| {
        (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            done()
        })
    };
    std::fs::write(&path, "[[tokens]]\nname = \"half").unwrap();
    signal();
    let refused = eventually(&|| {
        state
            .runtime
            .last_reload()
            .is_some_and(|record| record.outcome.is_err())
    });
    assert!(refused, "{:?}", state.runtime.last_reload());
    assert_eq!(
        state.runtime.last_reload().unwrap().outcome.unwrap_err().0,
        "server.tokens_invalid"
    );
    write_tokens(&path, &["token-a", "token-c"]);
    signal();
    let taken = eventually(&|| call(&tokio, &state, "GET", "/v1/status", "token-c").0 == 200);
    assert!(taken, "the signal after the refusal was ignored");
    let reloaded = eventually(&|| {
        state
            .runtime
            .last_reload()
            .is_some_and(|record| record.outcome.is_ok())
    });
    assert!(reloaded, "{:?}", state.runtime.last_reload());
}

/// A tokens file refused holds back nothing else: the environment on disk is reloaded all the
/// same (a trust root rotating a leaked key out is never delayed by a mistake in the tokens
/// file), the tokens in force stay, and the answer names the refusal and the versions taken.
#[test]
fn a_refused_tokens_file_holds_back_no_rotation_of_the_trust_root() {
    let (fixture, _dir, path, state) = serving_token_a();
    let tokio = tokio_runtime();
    assert_eq!(state.runtime.environment().trust_root().version(), 2);
    let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
    fixture
        .rotate_trust_root(&[&fixture.attestation_signer().unwrap()], 1, expires)
        .unwrap();
    std::fs::write(&path, "[[tokens]]\nname = \"half").unwrap();
    let (status, code, message) = call(&tokio, &state, "POST", "/v1/admin/reload", "token-a");
    assert_eq!(
        (status, code.as_str()),
        (422, "server.tokens_invalid"),
        "{message}"
    );
    assert!(
        message.contains("the environment was reloaded: trust root version 3"),
        "{message}"
    );
    assert_eq!(state.runtime.environment().trust_root().version(), 3);
    // The tokens in force stay; the refusal is recorded and counted once.
    assert_eq!(call(&tokio, &state, "GET", "/v1/status", "token-a").0, 200);
    let record = state.runtime.last_reload().unwrap();
    assert_eq!(record.outcome.unwrap_err().0, "server.tokens_invalid");
    let text = state.metrics.encode().unwrap();
    assert!(
        text.lines()
            .any(|line| line == r#"parmana_reloads_total{outcome="refused"} 1"#),
        "{text}"
    );
    // The environment refused as well: the answer is the environment's refusal, and it names the
    // tokens file's too (an operator revoking a token is told the revocation did not take), as
    // `/v1/status` does.
    std::fs::write(fixture.root().join("release-manifest.json"), "{}").unwrap();
    let (status, code, message) = call(&tokio, &state, "POST", "/v1/admin/reload", "token-a");
    assert_eq!(status, 422, "{code}: {message}");
    assert_ne!(code, "server.tokens_invalid", "{message}");
    assert!(message.contains("the tokens in force stay"), "{message}");
    let (recorded_code, recorded) = state.runtime.last_reload().unwrap().outcome.unwrap_err();
    assert_eq!(recorded_code, code);
    assert!(
        recorded.contains("the tokens file (server.tokens_invalid) refused too"),
        "{recorded}"
    );
    // `/v1/status` gives the environment's refusal by its code, and names the tokens file's.
    let (status, body, _) = crate::readiness_tests::answer_through_router_as(
        &tokio,
        &state,
        "GET",
        "/v1/status",
        "",
        Some("token-a"),
    );
    assert_eq!(status, 200, "{body}");
    let shown = body["last_reload"]["message"].as_str().unwrap();
    assert!(shown.contains(&format!("({code})")), "{shown}");
    assert!(
        shown.contains("the tokens file (server.tokens_invalid) refused too"),
        "{shown}"
    );
    assert!(
        !shown.contains(&fixture.root().display().to_string()),
        "{shown}"
    );
}

/// A clock that reloads its runtime at its first reading once armed: a reload that lands in the
/// middle of a request (each evaluation reads the clock to check expiry).
#[derive(Default)]
struct ReloadingClock {
    runtime: std::sync::OnceLock<parmana_runtime::Runtime>,
    armed: std::sync::atomic::AtomicBool,
}

/// A [`ReloadingClock`] shared between a runtime and the test.
struct Reloading(Arc<ReloadingClock>);

impl parmana_runtime::Clock for Reloading {
    fn now(&self) -> parmana_runtime::canon::Timestamp {
        if self.0.armed.swap(false, Ordering::SeqCst) {
            let report = self.0.runtime.get().unwrap().reload().unwrap();
            assert_eq!(report.release_manifest, (1, 2));
        }
        parmana_testkit::now()
    }
}

/// A started server of `fixture` over a memory store whose clock reloads it once armed
/// ([`ReloadingClock`]).
fn serving_with_a_reloading_clock(
    fixture: &FixtureEnvironment,
) -> (Arc<AppState>, Arc<ReloadingClock>) {
    let clock = Arc::new(ReloadingClock::default());
    let runtime = parmana_runtime::Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .store(MemoryReplayStore::new())
        .clock(Reloading(Arc::clone(&clock)))
        .build()
        .unwrap();
    clock.runtime.set(runtime.clone()).unwrap();
    let state = bound_with(runtime, settings_for(Limits::default(), None, "memory"));
    state.started_up.store(true, Ordering::SeqCst);
    (state, clock)
}

/// Every signal set of a native batch is decided under the environment in force when the batch
/// began: a reload that withdraws its policy after the first set is decided does not turn the
/// others into refusals (they were refused, `runtime.policy_not_found`, when each took the
/// environment anew). The next request is refused.
#[test]
fn a_batch_is_decided_under_the_environment_it_began_with() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (state, clock) = serving_with_a_reloading_clock(&fixture);
    let policy: parmana_runtime::canon::PolicyRef = "claims-approval@1.0.0".parse().unwrap();
    fixture.withdraw_policy(&policy).unwrap();
    clock.armed.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    let evaluate = |body: &str| {
        let (status, answer, _) = crate::readiness_tests::answer_through_router(
            &tokio,
            &state,
            "POST",
            "/v1/evaluations",
            body,
        );
        (status, answer)
    };
    let signals = crate::readiness_tests::SIGNALS;
    let (status, answer) = evaluate(&format!(
        r#"{{"policy":"{policy}","batch":[{signals},{signals},{signals}]}}"#
    ));
    assert_eq!(status, 200, "{answer}");
    assert!(!clock.armed.load(Ordering::SeqCst), "no reload was made");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{answer}");
    for result in results {
        assert!(
            result["decision"].is_string() && result.get("error").is_none(),
            "{answer}"
        );
    }
    assert_eq!(state.runtime.environment().release_manifest().version(), 2);
    let (status, answer) = evaluate(&format!(r#"{{"policy":"{policy}","signals":{signals}}}"#));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("runtime.policy_not_found")),
        "{answer}"
    );
}

/// A verification with `check_bundle` is judged by one environment throughout: a reload that
/// withdraws the policy after the attestation is first verified (at its first clock reading)
/// does not make the bundle come from one release manifest and the trust-root chain from
/// another; the report is the environment's it began with (the bundle check passed), and the
/// next request is refused (`422 runtime.policy_not_found`).
#[test]
fn a_verification_is_judged_under_the_environment_it_began_with() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (state, clock) = serving_with_a_reloading_clock(&fixture);
    let tokio = tokio_runtime();
    let call = |path: &str, body: &str| {
        let (status, answer, _) =
            crate::readiness_tests::answer_through_router(&tokio, &state, "POST", path, body);
        (status, answer)
    };
    let policy: parmana_runtime::canon::PolicyRef = "claims-approval@1.0.0".parse().unwrap();
    let signals = crate::readiness_tests::SIGNALS;
    let (status, executed) = call(
        "/v1/executions",
        &format!(r#"{{"policy":"{policy}","signals":{signals},"execution_id":"verified-1"}}"#),
    );
    assert_eq!(status, 201, "{executed}");
    let request = serde_json::json!({
        "attestation": executed["attestation"],
        "check_bundle": true,
    })
    .to_string();
    fixture.withdraw_policy(&policy).unwrap();
    clock.armed.store(true, Ordering::SeqCst);
    let (status, report) = call("/v1/verify", &request);
    assert!(!clock.armed.load(Ordering::SeqCst), "no reload was made");
    assert_eq!(state.runtime.environment().release_manifest().version(), 2);
    assert_eq!(
        (status, report["valid"].as_bool()),
        (200, Some(true)),
        "{report}"
    );
    let (status, answer) = call("/v1/verify", &request);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("runtime.policy_not_found")),
        "{answer}"
    );
}

/// A memory store whose pages of pending ids wait until `release` is set: the start-up recovery
/// held in its middle; `entered` says it got there.
#[derive(Debug, Default)]
struct HeldRecovery {
    inner: MemoryReplayStore,
    entered: std::sync::atomic::AtomicBool,
    release: std::sync::atomic::AtomicBool,
}

impl ReplayStore for HeldRecovery {
    parmana_testkit::forward_store_writes!(inner);
    parmana_testkit::forward_store_reads!(@all_but_pending inner);
    fn pending_after(
        &self,
        after: Option<&parmana_runtime::canon::ExecutionId>,
        limit: usize,
    ) -> Result<Vec<parmana_runtime::canon::ExecutionId>, parmana_runtime::replay::ReplayError>
    {
        self.entered.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.pending_after(after, limit)
    }
}

/// Leaves each of `ids` claimed and not completed in `store` under `fixture`'s environment, as a
/// crash between the claim and the completion does.
fn leave_claimed(fixture: &FixtureEnvironment, store: &dyn ReplayStore, ids: &[String]) {
    use parmana_runtime::{ExecutionRequest, execute_from_signals};
    let environment = fixture.load().unwrap();
    let signer = fixture.attestation_signer().unwrap();
    for id in ids {
        let request =
            ExecutionRequest::parse(id, "claims-approval@1.0.0", crate::readiness_tests::SIGNALS)
                .unwrap();
        execute_from_signals(
            &request,
            &signer,
            &parmana_testkit::CrashBeforeComplete(store),
            &environment,
            &parmana_testkit::fixed_clock(),
        )
        .unwrap_err();
    }
}

/// Lets a [`HeldRecovery`] go however a test ends: the tokio runtime's drop waits for the
/// recovery's thread.
struct Release(Arc<HeldRecovery>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release.store(true, Ordering::SeqCst);
    }
}

/// A server of `fixture` over the [`HeldRecovery`] store `store` (its calls on the blocking
/// pool), its start-up recovery started (holding the reloads' turn) and held in its first page
/// read, with what lets it go however the test ends.
fn recovering(
    fixture: &FixtureEnvironment,
    store: &Arc<HeldRecovery>,
    tokio: &tokio::runtime::Runtime,
) -> (
    Arc<AppState>,
    tokio::task::JoinHandle<Result<(), crate::error::ServerError>>,
    Release,
) {
    let shared: Arc<dyn ReplayStore> = Arc::clone(store) as Arc<dyn ReplayStore>;
    let state = bound_with(
        runtime_over(fixture, shared),
        settings_for(Limits::default(), None, "sqlite"),
    );
    let release = Release(Arc::clone(store));
    let recovery = {
        let _entered = tokio.enter();
        crate::lifecycle::start_recovery(&state, axum_server::Handle::new())
    };
    while !store.entered.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    (state, recovery, release)
}

/// A reload asked for while the server starts (a SIGHUP once `listening on` is printed) waits
/// until it is ready: the start-up recovery completes a claim left pending under trust root 2
/// under the environment the server started with, though trust root 3 is on disk when the
/// reload is asked for — taken meanwhile, the claim would stay claimed for good
/// (`runtime.recovery_environment_changed`) and the versions recorded at start would be 3's.
/// The reload then runs, and takes trust root 3.
#[test]
fn a_reload_asked_for_while_the_server_starts_waits_until_it_is_ready() {
    use parmana_runtime::replay::ExecutionState;
    let fixture = FixtureEnvironment::new().unwrap();
    let store = Arc::new(HeldRecovery::default());
    leave_claimed(&fixture, &store.inner, &["left-over".to_owned()]);
    let tokio = tokio_runtime();
    let (state, recovery, _release) = recovering(&fixture, &store, &tokio);
    let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
    fixture
        .rotate_trust_root(&[&fixture.attestation_signer().unwrap()], 1, expires)
        .unwrap();
    let mut outcome = {
        let _entered = tokio.enter();
        crate::reload::request_reload(&state)
    };
    // Given time to run, the reload has not: it waits for the start.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state.runtime.last_reload(), None);
    assert_eq!(state.runtime.environment().trust_root().version(), 2);
    store.release.store(true, Ordering::SeqCst);
    tokio.block_on(recovery).unwrap().unwrap();
    let id = parmana_runtime::canon::ExecutionId::parse("left-over").unwrap();
    assert!(
        matches!(store.inner.get(&id).unwrap(), ExecutionState::Completed(_)),
        "the leftover claim is completed"
    );
    assert_eq!(store.inner.accepted_versions().unwrap().trust_root, 2);
    let reloaded = tokio
        .block_on(outcome.wait_for(Option::is_some))
        .unwrap()
        .clone();
    let report = reloaded.unwrap().unwrap();
    assert_eq!(report.trust_root, (2, 3));
    assert_eq!(state.runtime.environment().trust_root().version(), 3);
}

/// A shutdown asked for before the start-up recovery stops it before anything is read: the
/// server is never ready, and the leftover claims stay claimed, for the next start. (One asked
/// for while it runs stops it before its next claim: `recovery.rs`.)
#[test]
fn a_shutdown_before_recovery_leaves_the_leftovers_for_the_next_start() {
    use parmana_runtime::replay::PENDING_PAGE;
    let fixture = FixtureEnvironment::new().unwrap();
    let store = Arc::new(MemoryReplayStore::new());
    let ids: Vec<String> = (0..PENDING_PAGE + 2)
        .map(|n| format!("left-{n:04}"))
        .collect();
    leave_claimed(&fixture, store.as_ref(), &ids);
    let shared: Arc<dyn ReplayStore> = Arc::clone(&store) as Arc<dyn ReplayStore>;
    let state = bound_with(
        runtime_over(&fixture, shared),
        settings_for(Limits::default(), None, "sqlite"),
    );
    state.draining.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    tokio
        .block_on(crate::lifecycle::recover_then_ready(
            Arc::clone(&state),
            axum_server::Handle::new(),
            None,
        ))
        .unwrap();
    assert!(!state.is_started());
    assert_eq!(store.pending().unwrap().len(), PENDING_PAGE + 2);
}

/// A shutdown asked for while the start-up recovery runs (here, while it reads its first page
/// of leftover claims) stops it before its next claim: none is completed, the server is never
/// ready, and they stay claimed for the next start.
#[test]
fn a_shutdown_during_recovery_stops_it_before_its_next_claim() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store = Arc::new(HeldRecovery::default());
    let ids: Vec<String> = (0..3).map(|n| format!("left-{n}")).collect();
    leave_claimed(&fixture, &store.inner, &ids);
    let tokio = tokio_runtime();
    let (state, recovery, _release) = recovering(&fixture, &store, &tokio);
    crate::lifecycle::start_draining(&state);
    store.release.store(true, Ordering::SeqCst);
    tokio.block_on(recovery).unwrap().unwrap();
    assert!(!state.is_started());
    assert_eq!(store.inner.pending().unwrap().len(), 3);
}
