//! What is kept for executions: callers whose tokens cannot execute (`verify`, `evaluate`, `read`) take at most three quarters of the concurrency slots and of the body budget, so that they cannot shed every execution; a caller that may execute takes what is kept once the share is full.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{SIGNALS, bound_with, runtime_over, settings_for, tokio_runtime};
use crate::settings::{Authentication, Limits};
use crate::state::AppState;

/// A started server over a memory store with `max_concurrency` slots, whose tokens are
/// `executor` (scope `execute`), `reader` (`evaluate`, `verify`, `read`) and `operator`
/// (`admin`).
fn serving(
    fixture: &FixtureEnvironment,
    dir: &std::path::Path,
    max_concurrency: usize,
) -> Arc<AppState> {
    let path = dir.join("tokens.toml");
    let token = |name: &str, scopes: &str| {
        let digest = parmana_runtime::canon::Digest::of(name.as_bytes());
        format!("[[tokens]]\nname = \"{name}\"\nsha256 = \"{digest}\"\nscopes = [{scopes}]\n")
    };
    std::fs::write(
        &path,
        token("executor", "\"execute\"")
            + &token("reader", "\"evaluate\", \"verify\", \"read\"")
            + &token("operator", "\"admin\""),
    )
    .unwrap();
    let mut settings = settings_for(
        Limits {
            max_concurrency,
            ..Limits::default()
        },
        None,
        "memory",
    );
    settings.authentication = Authentication::Tokens(crate::auth::Tokens::load(&path).unwrap());
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound_with(runtime_over(fixture, store), settings);
    state.started_up.store(true, Ordering::SeqCst);
    state
}

/// `POST path` with `body` as `token`: the status and the error code (empty when none).
fn post(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let (status, answer, _) = crate::readiness_tests::answer_through_router_as(
        tokio,
        state,
        "POST",
        path,
        body,
        Some(token),
    );
    let code = answer["error"]["code"].as_str().unwrap_or_default();
    (status, code.to_owned())
}

fn evaluation() -> String {
    format!(r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS}}}"#)
}

fn execution(id: &str) -> String {
    format!(r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"execution_id":"{id}"}}"#)
}

/// What a reader's evaluation, an executor's execution (of `id`) and an operator's reload are
/// answered, each `(path, token, body)` with its status: `503` must be `server.overloaded`.
fn expect(
    tokio: &tokio::runtime::Runtime,
    state: &Arc<AppState>,
    cases: &[(&str, &str, String, u16)],
) {
    for (path, token, body, status) in cases {
        let (got, code) = post(tokio, state, path, token, body);
        assert_eq!(got, *status, "{token} {path}: {code}");
        if got == 503 {
            assert_eq!(code, "server.overloaded", "{token} {path}");
        }
    }
}

/// A reader's evaluation answered `status`.
fn read(status: u16) -> (&'static str, &'static str, String, u16) {
    ("/v1/evaluations", "reader", evaluation(), status)
}

/// An executor's execution of `id` answered `status`.
fn execute(id: &str, status: u16) -> (&'static str, &'static str, String, u16) {
    ("/v1/executions", "executor", execution(id), status)
}

#[test]
fn callers_that_cannot_execute_leave_a_quarter_of_the_slots_to_executions() {
    let fixture = FixtureEnvironment::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = serving(&fixture, dir.path(), 4);
    let tokio = tokio_runtime();
    // Three requests of other scopes in flight: the share every caller may take is full.
    let others: Vec<_> = (0..3)
        .map(|_| {
            (
                Arc::clone(&state.in_flight).try_acquire_owned().unwrap(),
                Arc::clone(&state.shared_in_flight)
                    .try_acquire_owned()
                    .unwrap(),
            )
        })
        .collect();
    // A reader is shed; the slot kept serves a caller that may execute, and an operator (a
    // reload that revokes the token flooding the server gets through).
    let reload = ("/v1/admin/reload", "operator", String::new(), 200);
    expect(&tokio, &state, &[read(503), execute("kept-1", 201), reload]);
    // Every slot taken: an execution is shed too.
    let last = Arc::clone(&state.in_flight).try_acquire_owned().unwrap();
    expect(&tokio, &state, &[execute("kept-2", 503)]);
    drop((others, last));
    // With the share free again, both are served.
    expect(&tokio, &state, &[read(200), execute("kept-3", 201)]);
}

#[test]
fn callers_that_cannot_execute_leave_a_quarter_of_the_body_budget_to_executions() {
    let fixture = FixtureEnvironment::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = serving(&fixture, dir.path(), 64);
    let tokio = tokio_runtime();
    // The share of the body budget every caller may take, held (bodies of other scopes still
    // arriving): a body of another scope finds no room, an execution's takes what is kept.
    let shared = state.shared_body_bytes.available_permits();
    assert!(shared < state.body_bytes.available_permits());
    let held = Arc::clone(&state.shared_body_bytes)
        .try_acquire_many_owned(u32::try_from(shared).unwrap())
        .unwrap();
    let also = Arc::clone(&state.body_bytes)
        .try_acquire_many_owned(u32::try_from(shared).unwrap())
        .unwrap();
    expect(&tokio, &state, &[read(503), execute("body-1", 201)]);
    drop((held, also));
    expect(&tokio, &state, &[read(200)]);
}

/// Whatever `max_body_bytes` is, the share every caller may take holds the largest body a route
/// takes (a verify body), so that no such body, nor an answer read back, is shed on an idle
/// server whoever sends it; and it is never more than the budget.
#[test]
fn the_shared_body_budget_holds_the_largest_body() {
    for max_body_bytes in [1, 1024, 16 * 1024, 21 * 1024, 256 * 1024, 1 << 20, 8 << 20] {
        let limits = Limits {
            max_body_bytes,
            ..Limits::default()
        };
        let shared = crate::state::shared_body_bytes(&limits);
        assert!(
            shared >= limits.max_verify_body_bytes(),
            "{max_body_bytes}: {shared}"
        );
        assert!(
            shared <= limits.max_body_bytes_in_flight(),
            "{max_body_bytes}"
        );
    }
}
