//! A store cut under the log the server keeps: the sequencer's next run notices it, and from then on every execution is refused (`runtime.store_rewound`, `500`) and `/readyz` says why — the ids cut away would execute again — while evaluations, which consume nothing, go on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parmana_runtime::ExecutionRequest;
use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
use parmana_testkit::FixtureEnvironment;

use crate::readiness_tests::{SIGNALS, answer_of, bound, runtime_over, tokio_runtime};
use crate::settings::Limits;

fn post(path: &str, body: String) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap()
}

#[test]
fn a_store_cut_under_the_log_stops_executions_and_readiness() {
    let fixture = FixtureEnvironment::new().unwrap();
    let (store, visible) = parmana_testkit::CutLedger::new();
    let store: Arc<dyn ReplayStore> = Arc::new(store);
    let state = bound(runtime_over(&fixture, store), Limits::default(), None);
    state.started_up.store(true, Ordering::SeqCst);
    let tokio = tokio_runtime();
    execute_many(&state.runtime, "kept", 3);
    tokio.block_on(crate::lifecycle::sequence_all(&state, Duration::ZERO));
    assert_eq!(state.runtime.store_refused(), None);
    assert_eq!(tokio.block_on(crate::api::check_readiness(&state)), None);
    // The writer cuts the ledger's tail; nothing new comes. The next run notices.
    let size = parmana_runtime::replay::ledger_log(state.runtime.store())
        .unwrap()
        .size();
    visible.store(size - 1, Ordering::SeqCst);
    tokio.block_on(crate::lifecycle::sequence_all(&state, Duration::ZERO));
    assert!(state.runtime.store_refused().is_some());
    let reason = tokio.block_on(crate::api::check_readiness(&state)).unwrap();
    assert!(reason.contains("runtime.store_rewound"), "{reason}");
    let execution = format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS},"execution_id":"after-cut"}}"#
    );
    let (status, _, text) = tokio.block_on(answer_of(
        crate::lifecycle::router(Arc::clone(&state)),
        post("/v1/executions", execution),
    ));
    assert_eq!(status, 500, "{text}");
    assert!(text.contains(r#""code":"runtime.store_rewound""#), "{text}");
    // Nothing consumed, nothing to read back.
    assert!(matches!(
        state
            .runtime
            .store()
            .get(&parmana_runtime::canon::ExecutionId::parse("after-cut").unwrap())
            .unwrap(),
        parmana_runtime::replay::ExecutionState::Absent
    ));
    // Nothing is written into the store any more: an execution another server completed is
    // not integrated by this one's sequencer.
    let other = parmana_runtime::canon::ExecutionId::parse("other-server").unwrap();
    let claim = parmana_runtime::replay::ClaimRecord::new(
        parmana_runtime::canon::Digest::of(b"request"),
        b"{}".to_vec(),
        parmana_testkit::now(),
    );
    let environment = state.runtime.environment();
    let under = parmana_runtime::replay::AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    );
    assert_eq!(
        state.runtime.store().claim(&other, &claim, under).unwrap(),
        parmana_runtime::replay::ClaimOutcome::Claimed
    );
    state.runtime.store().complete(&other, b"{}").unwrap();
    let unsequenced = |state: &crate::state::AppState| {
        state.runtime.store().ledger_summary().unwrap().unsequenced
    };
    assert_eq!(unsequenced(&state), 1);
    tokio.block_on(crate::lifecycle::sequence_all(&state, Duration::ZERO));
    assert_eq!(
        unsequenced(&state),
        1,
        "the latched server wrote into the store"
    );
    // A decision that consumes nothing is still answered.
    let (status, _, text) = tokio.block_on(answer_of(
        crate::lifecycle::router(Arc::clone(&state)),
        post(
            "/v1/evaluations",
            format!(r#"{{"policy":"claims-approval@1.0.0","signals":{SIGNALS}}}"#),
        ),
    ));
    assert_eq!(status, 200, "{text}");
}

/// Executes `count` fresh ids named `prefix-N` on `runtime`.
fn execute_many(runtime: &parmana_runtime::Runtime, prefix: &str, count: usize) {
    for n in 0..count {
        let id = format!("{prefix}-{n}");
        let request = ExecutionRequest::parse(&id, "claims-approval@1.0.0", SIGNALS).unwrap();
        runtime.execute(&request).unwrap();
    }
}

/// A server of `fixture` (rotated to the fixture log, `log_key` its key) over a fresh memory
/// store reported as `store_kind`, whose sequencer signs with `log_key` and keeps `anchor`, and
/// which serves its log publicly, signed with the fixture log key too; not started.
fn bound_with_log(
    fixture: &FixtureEnvironment,
    log_key: parmana_runtime::trust::LocalSigningKey,
    anchor: Arc<parmana_runtime::LogAnchor>,
    store_kind: &str,
) -> Arc<crate::state::AppState> {
    let log = crate::settings::LogSettings {
        signers: Arc::new([fixture.key("root-1").unwrap()]),
        public: true,
        witnesses: Vec::new(),
        witness_roots: None,
    };
    let mut settings =
        crate::readiness_tests::settings_for(Limits::default(), Some(log), store_kind);
    settings.sequencer.log_keys = Some(Arc::from(vec![log_key]));
    settings.sequencer.anchor = Some(anchor);
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
    crate::readiness_tests::bound_with(runtime_over(fixture, store), settings)
}

/// A memory store (`serve --store memory`, a dry run) holds no history a log anchor could
/// record: with the deployment's anchor and log key configured, its executions are still taken
/// and sequenced, and its log routes sign, never refused as a store cut under the anchor — and
/// never written into the anchor (where none records anything yet, the file stays as it is).
#[test]
fn a_memory_store_is_never_held_against_the_log_anchor() {
    let anchored = format!(
        "parmana log anchor v1\n5\n{}\n",
        parmana_runtime::canon::Digest::of(b"the durable store's log")
    );
    // The deployment's anchor records a checkpoint of 5 entries (of its durable store), or none
    // yet (its file not made).
    for recorded in [Some(anchored), None] {
        let fixture = FixtureEnvironment::new().unwrap();
        let log_key = fixture.rotate_to_fixture_log().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let anchor_path = dir.path().join("log-anchor");
        if let Some(text) = &recorded {
            std::fs::write(&anchor_path, text).unwrap();
        }
        let anchor = Arc::new(parmana_runtime::LogAnchor::open(&anchor_path).unwrap());
        let state = bound_with_log(&fixture, log_key, anchor, "memory");
        state.started_up.store(true, Ordering::SeqCst);
        execute_many(&state.runtime, "dry-run", 1);
        let tokio = tokio_runtime();
        tokio.block_on(crate::lifecycle::sequence_all(&state, Duration::ZERO));
        assert_eq!(state.runtime.store_refused(), None);
        assert_eq!(
            state.runtime.store().ledger_summary().unwrap().unsequenced,
            0,
            "sequenced"
        );
        let (status, _, text) = tokio.block_on(answer_of(
            crate::lifecycle::router(Arc::clone(&state)),
            axum::http::Request::builder()
                .uri("/log/checkpoint")
                .body(axum::body::Body::empty())
                .unwrap(),
        ));
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            std::fs::read_to_string(&anchor_path).ok(),
            recorded,
            "the anchor file"
        );
    }
}

/// A store cut and grown again past the checkpoint the log anchor records holds enough records
/// for a size check, but another history: the server's start compares the whole ledger with the
/// anchored root, and does not start on it (`runtime.store_rewound`) — no execution is taken.
#[test]
fn a_store_cut_and_grown_again_past_the_anchor_is_refused_before_the_server_is_ready() {
    let fixture = FixtureEnvironment::new().unwrap();
    let log_key = fixture.rotate_to_fixture_log().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let anchor = Arc::new(parmana_runtime::LogAnchor::open(dir.path().join("log-anchor")).unwrap());
    // The log the key signed, anchored: three executions.
    let signed = runtime_over(&fixture, Arc::new(MemoryReplayStore::new()));
    execute_many(&signed, "signed", 3);
    let environment = signed.environment();
    let signers: [&dyn parmana_runtime::trust::Signer; 1] = [&log_key];
    parmana_runtime::LogSequencer::default()
        .run_all(
            signed.store(),
            Some(parmana_runtime::LogSigning {
                trust_root: environment.trust_root(),
                history: environment.trust_history(),
                now: parmana_testkit::now(),
                release_manifest: environment.release_manifest().version(),
                signers: &signers,
                anchor: Some(&anchor),
            }),
        )
        .unwrap();
    let (anchored, _) = anchor.recorded().unwrap();
    // The store the server starts on: another history, longer than the anchored log.
    let state = bound_with_log(&fixture, log_key, Arc::clone(&anchor), "sqlite");
    execute_many(&state.runtime, "other", 6);
    parmana_runtime::LogSequencer::default()
        .run_all(state.runtime.store(), None)
        .unwrap();
    assert!(
        parmana_runtime::replay::ledger_log(state.runtime.store())
            .unwrap()
            .size()
            > anchored
    );
    let tokio = tokio_runtime();
    let refused = tokio
        .block_on(crate::lifecycle::recover_then_ready(
            Arc::clone(&state),
            axum_server::Handle::new(),
            None,
        ))
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    assert!(refused.to_string().contains("another root"), "{refused}");
    assert!(state.runtime.store_refused().is_some());
    assert!(!state.is_started());
}
