//! A defect (a panic) inside the server: a runtime task's panic tells the caller nothing it said; an execution it stops after the claim is answered `500 server.internal` with the execution's `Location`, on the native route and inside an AuthZEN boxcar — where it refuses that evaluation alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parmana_runtime::canon::{ExecutionId, PolicyRef};
use parmana_runtime::replay::{ExecutionState, MemoryReplayStore, ReplayError, ReplayStore};
use parmana_testkit::{DOCUMENTS_ACCESS_POLICY, FixtureEnvironment};
use serde_json::json;

use crate::readiness_tests::{
    answer_of, answer_through_router, bound, bound_as, bound_with, metrics_text, runtime_over,
    settings_for, tokio_runtime,
};
use crate::settings::{AuthzenPolicy, AuthzenSettings, Limits};
use crate::state::AppState;

/// Whether `execution` is claimed and not completed in `state`'s store.
fn left_claimed(state: &AppState, execution: &str) -> bool {
    let state_of = state
        .runtime
        .store()
        .get(&ExecutionId::parse(execution).unwrap())
        .unwrap();
    matches!(state_of, ExecutionState::Claimed(_))
}

/// A runtime task that panics (a defect) is answered `500 server.internal` with a fixed
/// message: what the panic said (it may name hosts, paths or data) stays in the server's log.
#[test]
fn a_panicking_runtime_task_tells_the_caller_nothing_it_said() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound(runtime_over(&fixture, store), Limits::default(), None);
    let refused = tokio_runtime().block_on(async {
        state
            .blocking("read", |_| -> u8 {
                panic!("postgres://admin:secret@db.internal/parmana refused")
            })
            .await
            .unwrap_err()
    });
    assert_eq!(
        (refused.status.as_u16(), refused.code.as_str()),
        (500, "server.internal")
    );
    assert!(!refused.message.contains("secret"), "{}", refused.message);
    assert!(
        refused.message.contains("server's log"),
        "{}",
        refused.message
    );
    // The call is timed all the same, in a bucket past the 6.5 s the histogram once ended at.
    let text = state.metrics.encode().unwrap();
    assert!(
        text.lines().any(
            |line| line == r#"parmana_runtime_call_duration_seconds_count{operation="read"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"parmana_runtime_call_duration_seconds_bucket{le="52.4288",operation="read"} 1"#
        ),
        "{text}"
    );
}

/// A store whose completion panics (a defect) after the claim went through: the claim stays.
#[derive(Debug)]
struct PanicsOnComplete(MemoryReplayStore);

impl ReplayStore for PanicsOnComplete {
    parmana_testkit::forward_store_writes!(0: claim);
    fn complete(&self, _: &ExecutionId, _: &[u8]) -> Result<(), ReplayError> {
        panic!("postgres://admin:secret@db.internal/parmana went away")
    }
    parmana_testkit::forward_store_reads!(0);
}

/// An execution a defect (a panic) stops after its claim — on the async worker (the memory
/// store's path) or on the blocking pool (a store whose calls may wait) — is answered `500
/// server.internal` naming the execution in `Location` (where a client that let the server make
/// the id learns it), counted as an execution error, and tells nothing the panic said.
#[test]
fn an_execution_a_defect_stops_after_its_claim_is_answered_with_its_location() {
    let fixture = FixtureEnvironment::new().unwrap();
    let tokio = tokio_runtime();
    for ((id, named), kind) in [(Some("boom-1"), "boom-1"), (None, "")]
        .into_iter()
        .flat_map(|case| [(case, "memory"), (case, "sqlite")])
    {
        let store: Arc<dyn ReplayStore> = Arc::new(PanicsOnComplete(MemoryReplayStore::new()));
        let state = bound_as(runtime_over(&fixture, store), Limits::default(), None, kind);
        state.started_up.store(true, Ordering::SeqCst);
        let handoffs = state.blocking_handoffs.load(Ordering::SeqCst);
        let body = match id {
            Some(id) => format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}},"execution_id":"{id}"}}"#
            ),
            None => r#"{"policy":"claims-approval@1.0.0","signals":{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}}"#.to_owned(),
        };
        let (status, location, text) = tokio.block_on(answer_of(
            crate::lifecycle::router(Arc::clone(&state)),
            axum::http::Request::builder()
                .method("POST")
                .uri("/v1/executions")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap(),
        ));
        assert_eq!(status, 500, "{text}");
        assert!(text.contains(r#""code":"server.internal""#), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let location = location.unwrap_or_else(|| panic!("no Location: {text}"));
        let id = location.strip_prefix("/v1/executions/").unwrap();
        if !named.is_empty() {
            assert_eq!(id, named);
        }
        // The id it names is the one the claim took: claimed, not completed.
        assert!(left_claimed(&state, id), "{id}");
        // The path it took, and the error counted.
        assert_eq!(
            state.blocking_handoffs.load(Ordering::SeqCst) > handoffs,
            kind != "memory",
            "{kind}"
        );
        let text = metrics_text(&tokio, &state);
        assert!(
            text.lines().any(|line| line
                .starts_with("parmana_execution_errors_total{code=\"server.internal\"} 1")),
            "{kind}: {text}"
        );
    }
}

/// The fixture environment with [`DOCUMENTS_ACCESS_POLICY`] released.
pub(crate) fn authzen_fixture() -> FixtureEnvironment {
    let fixture = FixtureEnvironment::new().unwrap();
    let policy: PolicyRef = "documents-access@1.0.0".parse().unwrap();
    fixture
        .release_policy(&policy, DOCUMENTS_ACCESS_POLICY)
        .unwrap();
    fixture
}

/// A started server of `fixture` (see [`authzen_fixture`]) over `store` reported as
/// `store_kind`, its AuthZEN requests for `document`s answered by [`DOCUMENTS_ACCESS_POLICY`] (`allow`
/// is `true`).
pub(crate) fn answering_authzen(
    fixture: &FixtureEnvironment,
    store: Arc<dyn ReplayStore>,
    store_kind: &str,
) -> Arc<AppState> {
    answering_authzen_with(runtime_over(fixture, store), store_kind)
}

/// [`answering_authzen`] with `runtime`.
fn answering_authzen_with(runtime: parmana_runtime::Runtime, store_kind: &str) -> Arc<AppState> {
    let mut settings = settings_for(Limits::default(), None, store_kind);
    settings.authzen = AuthzenSettings {
        policies: vec![AuthzenPolicy {
            policy: "documents-access@1.0.0".to_owned(),
            resource_types: vec!["document".to_owned()],
            permit: Some(vec!["allow".to_owned()]),
        }],
        default_policy: None,
        pdp_url: None,
    };
    let state = bound_with(runtime, settings);
    state.started_up.store(true, Ordering::SeqCst);
    state
}

/// A viewer's AuthZEN boxcar of `evaluations` about the document `document`, through the router:
/// the status and the answer.
fn post_viewer_boxcar(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    document: &str,
    evaluations: &[&serde_json::Value],
) -> (u16, serde_json::Value) {
    let body = json!({
        "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": "viewer"}},
        "resource": {"type": "document", "id": document},
        "evaluations": evaluations,
    });
    let (status, answer, _) = answer_through_router(
        tokio,
        state,
        "POST",
        "/access/v1/evaluations",
        &body.to_string(),
    );
    (status, answer)
}

/// What refuses every evaluation refuses an AuthZEN boxcar whole, as it does one evaluation and a
/// native batch — the environment expired: `500 runtime.expired`, not a `200` of refusals that
/// hides it from the client and from 5xx alerting — whether its first evaluation is a decision
/// or an execution (whose id is left unclaimed).
#[test]
fn a_boxcar_under_an_expired_environment_is_refused_whole() {
    let fixture = authzen_fixture();
    let tokio = tokio_runtime();
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = answering_authzen_with(
        crate::readiness_tests::runtime_at(&fixture, store, &clock),
        "memory",
    );
    let read = json!({"action": {"name": "read"}});
    let executed = json!({"action": {"name": "read"}, "context": {"execution_id": "expired-1"}});
    let post = |evaluations: [&serde_json::Value; 2]| {
        post_viewer_boxcar(&tokio, &state, "expiring.md", &evaluations)
    };
    let (status, answer) = post([&read, &read]);
    assert_eq!(status, 200, "in force: {answer}");
    clock.store(
        parmana_runtime::canon::Timestamp::parse("2040-01-01T00:00:00Z")
            .unwrap()
            .unix_seconds(),
        Ordering::SeqCst,
    );
    for evaluations in [[&read, &executed], [&executed, &read]] {
        let (status, answer) = post(evaluations);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (500, Some("runtime.expired")),
            "{answer}"
        );
    }
    let untouched = state
        .runtime
        .store()
        .get(&ExecutionId::parse("expired-1").unwrap())
        .unwrap();
    assert!(matches!(untouched, ExecutionState::Absent), "{untouched:?}");
    let text = metrics_text(&tokio, &state);
    assert!(
        text.lines()
            .any(|line| line
                .starts_with("parmana_execution_errors_total{code=\"runtime.expired\"} 2")),
        "counted once for each boxcar that would execute: {text}"
    );
}

/// A server-side refusal met while nothing of a boxcar may have been consumed — here its
/// execution refused before any claim, the store refused as cut (`runtime.store_rewound`) —
/// refuses the boxcar whole, whichever evaluation comes first: not a `200` whose refusals hide
/// the outage. (Once an evaluation may have consumed its id, refusals stay each evaluation's:
/// `a_boxcar_evaluation_a_defect_stops_is_refused_alone_with_its_location`.)
#[test]
fn a_boxcar_refused_before_any_claim_is_refused_whole() {
    let fixture = authzen_fixture();
    let tokio = tokio_runtime();
    let state = answering_authzen(&fixture, Arc::new(MemoryReplayStore::new()), "memory");
    state.runtime.refuse_store("cut under the log".to_owned());
    let read = json!({"action": {"name": "read"}});
    let executed = json!({"action": {"name": "read"}, "context": {"execution_id": "refused-1"}});
    for evaluations in [[&read, &executed], [&executed, &read]] {
        let (status, answer) = post_viewer_boxcar(&tokio, &state, "refused.md", &evaluations);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (500, Some("runtime.store_rewound")),
            "{answer}"
        );
    }
}

/// Inside an AuthZEN boxcar, an evaluation that a defect (a panic) stops after its claim is
/// refused alone — `false`, its error `server.internal` naming the execution's `Location`, and
/// nothing the panic said — while the evaluations beside it, before and after, are decided; the
/// claim stays, and the error is counted — whatever the store (a boxcar is decided on the
/// blocking pool).
#[test]
fn a_boxcar_evaluation_a_defect_stops_is_refused_alone_with_its_location() {
    let fixture = authzen_fixture();
    let tokio = tokio_runtime();
    for kind in ["memory", "sqlite"] {
        let store: Arc<dyn ReplayStore> = Arc::new(PanicsOnComplete(MemoryReplayStore::new()));
        let state = answering_authzen(&fixture, store, kind);
        let body = json!({
            "subject": {"type": "user", "id": "alice@example.com", "properties": {"role": "viewer"}},
            "resource": {"type": "document", "id": "boxcarring.md"},
            "evaluations": [
                {"action": {"name": "read"}},
                {"action": {"name": "read"}, "context": {"execution_id": "boom-1"}},
                {"action": {"name": "edit"}}
            ]
        });
        let (status, answer, _) = answer_through_router(
            &tokio,
            &state,
            "POST",
            "/access/v1/evaluations",
            &body.to_string(),
        );
        assert_eq!(status, 200, "{kind}: {answer}");
        assert!(!answer.to_string().contains("secret"), "{answer}");
        let evaluations = answer["evaluations"].as_array().unwrap();
        let outcomes: Vec<_> = evaluations
            .iter()
            .map(|evaluation| {
                (
                    evaluation["decision"].as_bool().unwrap(),
                    evaluation["context"]["outcome"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [(true, Some("allow")), (false, None), (false, Some("deny"))],
            "{kind}: {answer}"
        );
        let error = &evaluations[1]["context"]["error"];
        assert_eq!(
            (&error["status"], &error["code"], &error["location"]),
            (
                &json!(500),
                &json!("server.internal"),
                &json!("/v1/executions/boom-1")
            ),
            "{kind}: {answer}"
        );
        assert!(left_claimed(&state, "boom-1"), "{kind}");
        let text = metrics_text(&tokio, &state);
        assert!(
            text.lines().any(|line| line
                .starts_with("parmana_execution_errors_total{code=\"server.internal\"} 1")),
            "{kind}: {text}"
        );
    }
}

/// A memory store whose completions move `clock` past the environment's expiry once made: what
/// comes after the first execution is refused as expired (a server-side refusal, before any
/// claim of its own).
#[derive(Debug)]
struct ExpiresOnComplete {
    inner: MemoryReplayStore,
    clock: Arc<std::sync::atomic::AtomicI64>,
}

impl ReplayStore for ExpiresOnComplete {
    parmana_testkit::forward_store_writes!(inner: claim);
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.inner.complete(id, attestation)?;
        let expired = parmana_runtime::canon::Timestamp::parse("2040-01-01T00:00:00Z").unwrap();
        self.clock.store(expired.unix_seconds(), Ordering::SeqCst);
        Ok(())
    }
    parmana_testkit::forward_store_reads!(inner);
}

/// Once an evaluation of a boxcar has executed (its id consumed, its attestation made), a
/// server-side refusal of a later one — the environment expired meanwhile — is that evaluation's
/// alone, inside the `200`: refusing the boxcar whole would drop the attestation of an id already
/// consumed, and the client's retry would be a replay.
#[test]
fn a_server_refusal_after_an_execution_of_a_boxcar_keeps_the_attestation() {
    let fixture = authzen_fixture();
    let tokio = tokio_runtime();
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let store: Arc<dyn ReplayStore> = Arc::new(ExpiresOnComplete {
        inner: MemoryReplayStore::new(),
        clock: Arc::clone(&clock),
    });
    let state = answering_authzen_with(
        crate::readiness_tests::runtime_at(&fixture, store, &clock),
        "memory",
    );
    let executed = json!({"action": {"name": "read"}, "context": {"execution_id": "kept-1"}});
    let read = json!({"action": {"name": "read"}});
    let (status, answer) = post_viewer_boxcar(&tokio, &state, "kept.md", &[&executed, &read]);
    assert_eq!(status, 200, "{answer}");
    let evaluations = answer["evaluations"].as_array().unwrap();
    assert_eq!(evaluations[0]["decision"], true, "{answer}");
    assert_eq!(evaluations[0]["context"]["execution_id"], "kept-1");
    assert!(
        evaluations[0]["context"]["attestation"].is_object(),
        "{answer}"
    );
    assert_eq!(evaluations[1]["decision"], false, "{answer}");
    assert_eq!(
        (
            &evaluations[1]["context"]["error"]["status"],
            &evaluations[1]["context"]["error"]["code"]
        ),
        (&json!(500), &json!("runtime.expired")),
        "{answer}"
    );
    let done = state
        .runtime
        .store()
        .get(&ExecutionId::parse("kept-1").unwrap())
        .unwrap();
    assert!(matches!(done, ExecutionState::Completed(_)), "{done:?}");
}
