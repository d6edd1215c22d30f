//! A server whose clock is behind the replay store's: its executions are refused
//! (`replay.clock_behind_store`), and `/readyz` says not ready until its clock catches up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_runtime::{ExecutionRequest, Runtime};
use parmana_testkit::{FixtureEnvironment, now};

use crate::readiness_tests::{
    SIGNALS, answer_through_router, bound, runtime_at, status_code_message, tokio_runtime,
};
use crate::settings::Limits;

/// `/readyz`'s status and message on `tokio`.
fn readiness(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<crate::state::AppState>,
) -> (u16, String) {
    let (status, _, message) = tokio.block_on(async {
        status_code_message(crate::api::readyz(axum::extract::State(Arc::clone(state))).await).await
    });
    (status, message)
}

#[test]
fn a_server_whose_clock_is_behind_the_store_is_not_ready_until_it_catches_up() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let clock = Arc::new(AtomicI64::new(0));
    let state = bound(
        runtime_at(&fixture, Arc::clone(&store), &clock),
        Limits::default(),
        None,
    );
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    assert_eq!(readiness(&tokio, &state).0, 200);
    // Another server of the deployment, its clock two minutes ahead, claims an id.
    let ahead_clock = Arc::new(AtomicI64::new(0));
    let ahead: Runtime = runtime_at(&fixture, store, &ahead_clock);
    let ahead_at = now().unix_seconds() + 120;
    ahead_clock.store(ahead_at, Ordering::SeqCst);
    let request = ExecutionRequest::parse("ahead", "claims-approval@1.0.0", SIGNALS).unwrap();
    ahead.execute(&request).unwrap();
    // Here every execution is refused, and the probe says why.
    let body = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"execution_id":"behind"}}"#
    );
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "POST", "/v1/executions", &body);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (500, Some("replay.clock_behind_store")),
        "{answer}"
    );
    let (status, message) = readiness(&tokio, &state);
    assert_eq!(status, 503, "{message}");
    assert!(
        message.contains("clock behind the replay store"),
        "{message}"
    );
    // Within the tolerance of the newest claim: ready, and it executes again.
    clock.store(ahead_at - 60, Ordering::SeqCst);
    let (status, message) = readiness(&tokio, &state);
    assert_eq!(status, 200, "{message}");
    let (status, answer, _) =
        answer_through_router(&tokio, &state, "POST", "/v1/executions", &body);
    assert_eq!(status, 201, "{answer}");
}
