//! A request body larger than the inline bound is read (parsed, checked) on the blocking pool, not on the async worker that answers probes and new connections, on every route that reads one; a small one stays where it is; both are answered the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::api::INLINE_EVALUATION_BYTES;
use crate::readiness_tests::{answer_through_router, bound, runtime_over, tokio_runtime};
use crate::settings::Limits;

#[test]
fn large_bodies_are_read_on_the_blocking_pool() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound(runtime_over(&fixture, store), Limits::default(), None);
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    let signals =
        r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;
    let pad = " ".repeat(INLINE_EVALUATION_BYTES);
    let handoffs = |path: &str, body: &str, status: u16| {
        let before = state.blocking_handoffs.load(Ordering::SeqCst);
        let (answered, answer, _) = answer_through_router(&tokio, &state, "POST", path, body);
        assert_eq!(answered, status, "{path}: {answer}");
        (
            state.blocking_handoffs.load(Ordering::SeqCst) - before,
            answer,
        )
    };
    // Executions on the memory store: a small one runs here; a large one is read, then
    // executed, on the blocking pool.
    let execution = |id: &str, pad: &str| {
        format!(
            r#"{{"policy":"claims-approval@1.0.0",{pad}"signals":{signals},"execution_id":"{id}"}}"#
        )
    };
    let (small, _) = handoffs("/v1/executions", &execution("small-1", ""), 201);
    let (large, executed) = handoffs("/v1/executions", &execution("large-1", &pad), 201);
    assert_eq!((small, large), (0, 2));
    // An evaluation: read on the blocking pool when large (and evaluated there too).
    let evaluation =
        |pad: &str| format!(r#"{{"policy":"claims-approval@1.0.0",{pad}"signals":{signals}}}"#);
    let (small, decided) = handoffs("/v1/evaluations", &evaluation(""), 200);
    let (large, decided_large) = handoffs("/v1/evaluations", &evaluation(&pad), 200);
    assert_eq!(
        (small, large),
        (0, 1),
        "its signals are small: decided here"
    );
    assert_eq!(decided, decided_large);
    // A verification always runs on the blocking pool; its body is read there when large.
    let attestation = executed["attestation"].to_string();
    let verify = |pad: &str| format!(r#"{{{pad}"attestation":{attestation}}}"#);
    let (small, report) = handoffs("/v1/verify", &verify(""), 200);
    let (large, report_large) = handoffs("/v1/verify", &verify(&pad), 200);
    assert_eq!((small, large), (1, 2));
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report, report_large);
    // A large body refused as malformed is refused there too, with the same code.
    let (large, refused) = handoffs("/v1/executions", &format!("{{{pad}"), 400);
    assert_eq!(large, 1);
    assert_eq!(
        refused["error"]["code"], "canon.unexpected_end",
        "{refused}"
    );
}
