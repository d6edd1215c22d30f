//! What the middleware tells of every request: one whose client goes away before its answer is still logged and counted (`499 server.client_closed`, with the execution it started), `/metrics` answers while every slot is taken, and a readiness probe still waiting when the shutdown grace runs out answers its own not-ready.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::{ExecutionState, MemoryReplayStore, ReplayError, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{
    answer_of, answer_through_router, bound_as, runtime_over, started_over_memory,
    started_over_probed, through_router, tokio_runtime,
};
use crate::settings::Limits;

/// A memory store whose completions wait while it is held; `entered` once one waits.
#[derive(Debug, Default)]
struct HeldCompletions {
    inner: MemoryReplayStore,
    held: (Mutex<bool>, Condvar),
    entered: std::sync::atomic::AtomicBool,
}

impl HeldCompletions {
    fn hold(&self, held: bool) {
        *self.held.0.lock().unwrap() = held;
        self.held.1.notify_all();
    }
}

impl ReplayStore for HeldCompletions {
    parmana_testkit::forward_store_writes!(inner: claim);
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.entered.store(true, Ordering::SeqCst);
        let (held, wake) = &self.held;
        drop(wake.wait_while(held.lock().unwrap(), |held| *held).unwrap());
        self.inner.complete(id, attestation)
    }
    parmana_testkit::forward_store_reads!(inner);
}

/// Releases the held store when dropped.
struct Released<'a>(&'a HeldCompletions);

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.0.hold(false);
    }
}

/// A client that closes its connection while its execution waits on the store: the request is
/// logged and counted as `499` (before, nothing was: hyper drops the request's future, and the
/// line and the count came after the handler), and the execution completes.
#[test]
fn a_request_its_client_abandons_is_counted() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store = Arc::new(HeldCompletions::default());
    // A store whose calls may wait: the execution runs on the blocking pool, as on SQLite.
    let state = bound_as(
        runtime_over(&fixture, Arc::clone(&store) as Arc<dyn ReplayStore>),
        Limits::default(),
        None,
        "sqlite",
    );
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    store.hold(true);
    // Released before the runtime is dropped (it waits for the held call), also on a failure.
    let _release = Released(&store);
    let body = r#"{"policy":"claims-approval@1.0.0","signals":{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400},"execution_id":"gone-1"}"#;
    let gone = tokio.block_on(async {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/executions")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        // The client goes away once the execution waits on the store: the request's future is
        // dropped unanswered.
        let entered = async {
            while !store.entered.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            _ = crate::lifecycle::router(Arc::clone(&state)).oneshot(request) => false,
            () = entered => true,
        }
    });
    assert!(gone, "answered while the store was held");
    let counted =
        r#"parmana_http_requests_total{route="/v1/executions",method="POST",status="499"} 1"#;
    let text = state.metrics.encode().unwrap();
    assert!(text.lines().any(|line| line == counted), "{text}");
    // The execution it started goes on, and completes once the store answers.
    store.hold(false);
    let id = ExecutionId::parse("gone-1").unwrap();
    let completed = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        matches!(
            state.runtime.store().get(&id).unwrap(),
            ExecutionState::Completed(_)
        )
    });
    assert!(completed, "the execution never completed");
}

/// With every slot taken (a store that hangs holds them all), a request is shed, and
/// `/metrics` still answers — with the shedding counted: the alerts on it see the overload
/// they are for.
#[test]
fn metrics_are_never_shed() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let slots = state.in_flight.available_permits();
    let _taken = tokio
        .block_on(Arc::clone(&state.in_flight).acquire_many_owned(u32::try_from(slots).unwrap()))
        .unwrap();
    let evaluation = r#"{"policy": "claims-approval@1.0.0", "signals": {}}"#;
    let (status, code, _) = through_router(&tokio, &state, "POST", "/v1/evaluations", evaluation);
    assert_eq!((status, code.as_str()), (503, "server.overloaded"));
    let (status, code, _) = through_router(&tokio, &state, "GET", "/metrics", "");
    assert_eq!(status, 200, "{code}");
    let text = state.metrics.encode().unwrap();
    assert!(
        text.lines()
            .any(|line| line == "parmana_requests_shed_total 1"),
        "{text}"
    );
    // Every slot held, as the scrape read it.
    assert!(
        text.lines()
            .any(|line| line == format!("parmana_requests_in_flight {slots}")),
        "{text}"
    );
}

/// A handler with a defect: it panics, saying what it should not.
async fn panics() -> axum::response::Response {
    panic!("postgres://admin:secret@db.internal/parmana")
}

/// [`panics`], once it noted the execution it handles.
async fn panics_after_noting_an_execution() -> axum::response::Response {
    crate::state::note_request(None, Some(&ExecutionId::parse("boom-2").unwrap()));
    panic!("postgres://admin:secret@db.internal/parmana")
}

/// A handler that panics on the async worker (a defect) is answered `500 server.internal`,
/// naming the execution it had noted, telling nothing the panic said, and is counted — before,
/// the panic unwound into the connection: reset, neither logged nor counted.
#[test]
fn a_handler_that_panics_is_answered_and_counted() {
    use axum::routing::post;
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let router = axum::Router::new()
        .route("/v1/evaluations", post(panics))
        .route("/v1/executions", post(panics_after_noting_an_execution))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::observe::guard,
        ));
    let tokio = tokio_runtime();
    for (path, location) in [
        ("/v1/evaluations", None),
        ("/v1/executions", Some("/v1/executions/boom-2")),
    ] {
        let (status, location_sent, body) = tokio.block_on(answer_of(
            router.clone(),
            axum::http::Request::builder()
                .method("POST")
                .uri(path)
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        ));
        assert_eq!(status, 500, "{path}: {body}");
        assert!(body.contains(r#""code":"server.internal""#), "{body}");
        assert!(!body.contains("secret"), "{body}");
        assert_eq!(location_sent.as_deref(), location, "{path}");
        let counted = format!(
            r#"parmana_http_requests_total{{route="{path}",method="POST",status="500"}} 1"#
        );
        let text = state.metrics.encode().unwrap();
        assert!(text.lines().any(|line| line == counted), "{text}");
    }
}

/// A refusal's error code reaches the request's log line and metrics even where the handler
/// adds what it decided (the execution id of a `404` or `423` read-back): before, the handler's
/// outcome replaced the refusal's, and the line had no code.
#[test]
fn a_refusals_code_survives_the_handlers_outcome() {
    use axum::response::IntoResponse;
    let refused = crate::error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "server.execution_unknown",
        "the store holds no execution \"gone\"",
    )
    .into_response();
    let noted = crate::observe::Outcome {
        execution_id: Some("gone".to_owned()),
        ..crate::observe::Outcome::default()
    };
    let response = crate::api::with_outcome(refused, noted);
    let outcome = response
        .extensions()
        .get::<crate::observe::Outcome>()
        .unwrap();
    assert_eq!(
        (outcome.code.as_deref(), outcome.execution_id.as_deref()),
        (Some("server.execution_unknown"), Some("gone"))
    );
}

/// A readiness probe still waiting for the store when the shutdown grace runs out is answered
/// then with the probe's own not-ready — `503 server.not_ready`, without `Retry-After`, which a
/// load balancer does not read there — not the `server.shutting_down` of other routes.
#[test]
fn a_probe_waiting_as_the_grace_runs_out_answers_not_ready() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (state, store) = started_over_probed(&fixture);
    store.set_silent(true);
    // One runtime for the probe and the test: dropped only once the store answers again (its
    // drop waits for the probe's store read).
    let tokio = Arc::new(tokio_runtime());
    // Dropped before the runtime, also when an assertion fails: the store answers again.
    struct AnswersWhenDropped<'a>(&'a crate::readiness_tests::Unreachable);
    impl Drop for AnswersWhenDropped<'_> {
        fn drop(&mut self) {
            self.0.set_silent(false);
        }
    }
    let _answers = AnswersWhenDropped(&store);
    let probe = {
        let (state, tokio) = (Arc::clone(&state), Arc::clone(&tokio));
        std::thread::spawn(move || answer_through_router(&tokio, &state, "GET", "/readyz", ""))
    };
    let waiting = (0..2_000).any(|_| {
        std::thread::sleep(Duration::from_millis(1));
        store.probes.load(Ordering::SeqCst) == 1
    });
    assert!(waiting, "the probe never reached the store");
    state.draining.store(true, Ordering::SeqCst);
    state.grace_over.send_replace(true);
    let (status, body, retry_after) = probe.join().unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str(), retry_after),
        (503, Some("server.not_ready"), false),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the shutdown grace ran out"),
        "{body}"
    );
}

/// A handler that panics (a defect) is answered `500 server.internal`; on a route that executes,
/// naming in `Location` the execution it had noted (the client may read its outcome there), and
/// on a read naming none — a read claimed nothing, and the advice would be wrong.
#[test]
fn a_panic_names_the_execution_only_on_a_route_that_executes() {
    let tokio = tokio_runtime();
    for (route, named) in [
        ("/v1/executions", true),
        ("/v1/executions/{id}", false),
        ("/access/v1/evaluation", true),
    ] {
        let notes = Mutex::new(crate::state::Notes {
            execution_id: Some("noted-1".to_owned()),
            ..crate::state::Notes::default()
        });
        let response = tokio.block_on(crate::observe::answered_despite_panics(
            async { panic!("a defect") },
            &notes,
            route,
        ));
        assert_eq!(response.status(), 500, "{route}");
        assert_eq!(
            response.headers().contains_key("location"),
            named,
            "{route}"
        );
        let body = tokio
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("server.internal"), "{route}: {text}");
        assert_eq!(text.contains("noted-1"), named, "{route}: {text}");
    }
}

/// `POST /v1/evaluations` takes one query parameter, `explain`, as `true` or `false` once: a
/// misspelt or unknown one, another spelling of the value, or the parameter twice is `400
/// server.invalid_request` (typed), never an answer without the trace asked for.
#[test]
fn the_evaluations_query_takes_explain_alone() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let body = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
        crate::readiness_tests::SIGNALS
    );
    for (query, status) in [
        ("", 200),
        ("?explain=true", 200),
        ("?explain=false", 200),
        ("?explian=true", 400),
        ("?trace=true", 400),
        ("?explain=True", 400),
        ("?explain=1", 400),
        ("?explain=true&explain=false", 400),
    ] {
        let (answered, answer, _) = answer_through_router(
            &tokio,
            &state,
            "POST",
            &format!("/v1/evaluations{query}"),
            &body,
        );
        assert_eq!(answered, status, "{query}: {answer}");
        if status == 400 {
            assert_eq!(
                answer["error"]["code"], "server.invalid_request",
                "{query}: {answer}"
            );
        } else {
            assert_eq!(
                answer.get("trace").is_some(),
                query == "?explain=true",
                "{query}: {answer}"
            );
        }
    }
}
