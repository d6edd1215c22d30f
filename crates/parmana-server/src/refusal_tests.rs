//! Refusals answer a bounded message, however long what the caller sent and the refusal quotes: an undeclared signal's name, a key given twice, a value outside the enum, an attestation's evaluator semantics — each a megabyte of characters a message escapes to several bytes each (`\u{7f}`), answered in a few hundred.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{
    SIGNALS, answer_through_router, bound_with, runtime_over, settings_for, tokio_runtime,
};
use crate::settings::Limits;

/// How long an answer may be: the bound on a refusal's message (8,192 characters, each at most
/// a few bytes once escaped) and the route's own words — not the megabytes quoted whole.
const MESSAGE_BYTES: usize = 20_000;

#[test]
fn refusals_quote_what_the_caller_sent_bounded() {
    let fixture = FixtureEnvironment::new().unwrap();
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    let state = bound_with(
        runtime_over(&fixture, store),
        settings_for(Limits::default(), None, "memory"),
    );
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    // DEL: read as it is by the strict reader, escaped to `\u{7f}` by a debug form.
    let long = "\u{7f}".repeat(300_000);
    let signals_with = |extra: &str| {
        format!(
            "{},{extra}}}",
            SIGNALS.trim_end().strip_suffix('}').unwrap()
        )
    };
    // Many names, each quoted whole up to its bound: the message is bounded as a whole too.
    let many: Vec<String> = (0..200)
        .map(|i| format!(r#""{i}{}":1"#, "\u{7f}".repeat(200)))
        .collect();
    let cases = [
        (
            "/v1/evaluations",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
                signals_with(&many.join(","))
            ),
            422,
            "policy.signal_undeclared",
        ),
        (
            "/v1/evaluations",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
                signals_with(&format!(r#""{long}":1"#))
            ),
            422,
            "policy.signal_undeclared",
        ),
        (
            "/v1/executions",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{},"execution_id":"long-1"}}"#,
                signals_with(&format!(r#""{long}":1"#))
            ),
            422,
            "policy.signal_undeclared",
        ),
        (
            "/v1/evaluations",
            format!(r#"{{"policy":"claims-approval@1.0.0","signals":{{"{long}":1,"{long}":2}}}}"#),
            400,
            "canon.duplicate_key",
        ),
        (
            "/v1/evaluations",
            format!(r#"{{"{long}":1,"{long}":2}}"#),
            400,
            "canon.duplicate_key",
        ),
        (
            "/v1/evaluations",
            format!(r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"{long}":1}}"#),
            400,
            "server.invalid_request",
        ),
        (
            "/v1/evaluations",
            format!(
                r#"{{"policy":"claims-approval@1.0.0","signals":{}}}"#,
                SIGNALS.replace(r#""DE""#, &format!(r#""{long}""#))
            ),
            422,
            "policy.signal_not_in_enum",
        ),
    ];
    for (path, body, status, code) in cases {
        let (answered, answer, _) = answer_through_router(&tokio, &state, "POST", path, &body);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            (answered, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            message.chars().take(300).collect::<String>()
        );
        assert!(
            answer.to_string().len() < MESSAGE_BYTES,
            "{path} {code}: {} bytes answered",
            answer.to_string().len()
        );
    }
}
