//! Request bodies: one larger than the inline bound is read (parsed, checked) on the blocking pool, not on the async worker that answers probes and new connections, on every route that reads one, a small one stays where it is, both answered the same; and the buffer a body is read into is charged to the body budget whole (its capacity).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parmana_runtime::replay::MemoryReplayStore;
use parmana_testkit::FixtureEnvironment;

use crate::api::INLINE_EVALUATION_BYTES;
use crate::readiness_tests::{SIGNALS, answer_through_router, started_over_memory, tokio_runtime};

#[test]
fn large_bodies_are_read_on_the_blocking_pool() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let tokio = tokio_runtime();
    let signals = SIGNALS;
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

/// A single AuthZEN evaluation whose small body flattens into large signal names (each leaf's
/// name repeats its whole dotted path) is decided on the blocking pool: what it costs is the
/// names, not the body. A small one that flattens small stays on the async worker.
#[test]
fn an_evaluation_that_flattens_large_leaves_the_async_worker() {
    let fixture = crate::defect_tests::authzen_fixture();
    let state = crate::defect_tests::answering_authzen(
        &fixture,
        Arc::new(MemoryReplayStore::new()),
        "memory",
    );
    let tokio = tokio_runtime();
    let leaves: Vec<String> = (0..100).map(|i| format!(r#""a{i}":0"#)).collect();
    let long_key = "k".repeat(2_000);
    let request = |properties: &str| {
        format!(
            r#"{{"subject":{{"type":"user","id":"alice","properties":{{"role":"viewer",{properties}}}}},"action":{{"name":"read"}},"resource":{{"type":"document","id":"d"}}}}"#
        )
    };
    let large = request(&format!(r#""{long_key}":{{{}}}"#, leaves.join(",")));
    assert!(large.len() < INLINE_EVALUATION_BYTES, "{}", large.len());
    let small = request(r#""team":"blue""#);
    for (body, handed) in [(small, 0), (large, 1)] {
        let before = state.blocking_handoffs.load(Ordering::SeqCst);
        let (status, answer, _) =
            answer_through_router(&tokio, &state, "POST", "/access/v1/evaluation", &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["decision"], true, "{answer}");
        assert_eq!(
            state.blocking_handoffs.load(Ordering::SeqCst) - before,
            handed,
            "{} bytes",
            body.len()
        );
    }
}

/// A body read in many small pieces holds no more memory than its place in the budget counts:
/// the buffer's capacity (not only its length) is charged before it is allocated, and a body
/// that declares its length is never charged past it.
#[test]
fn the_budget_counts_the_buffer_a_body_is_read_into() {
    let fixture = FixtureEnvironment::new().unwrap();
    let state = started_over_memory(&fixture);
    let piece = [b'x'; 1000];
    for declared in [None, Some(1_000_000)] {
        let ceiling = declared.unwrap_or(crate::Limits::default().max_body_bytes);
        let mut place = crate::state::BodyPlace::default();
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            let length = bytes.len() + piece.len();
            crate::api::make_room(&mut bytes, length, ceiling, &mut place, &state).unwrap();
            bytes.extend_from_slice(&piece);
            assert!(
                bytes.capacity() <= place.charged_bytes(),
                "{declared:?}: {} bytes held, {} charged",
                bytes.capacity(),
                place.charged_bytes()
            );
        }
        if let Some(declared) = declared {
            assert!(
                place.charged_bytes() < declared + 1024,
                "charged {} for a body of {declared}",
                place.charged_bytes()
            );
        }
    }
}
