//! End-to-end behaviour of the runtime through its public API: execute, verify, replay, tamper, expiry, keys, recovery.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{Fixture, clock};
use parmana_runtime::canon::{Digest, Timestamp};
use parmana_runtime::replay::{
    ExecutionId, ExecutionState, MemoryReplayStore, ReplayError, ReplayStore,
};
use parmana_runtime::trust::{LocalSigningKey, Signer};
use parmana_runtime::{
    ErrorClass, ExecutionError, ExecutionRequest, FixedClock, RuntimeEnvironment,
    execute_from_signals, load_bundle, recover, verify_attestation,
};
use serde_json::json;

const SIGNALS: &str =
    r#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

fn request_parts(
    id: &str,
    policy: &str,
    version: &str,
    signals: &[u8],
) -> Result<ExecutionRequest, ExecutionError> {
    ExecutionRequest::parse(id, &format!("{policy}@{version}"), signals.to_vec())
}

fn request(id: &str, signals: &str) -> ExecutionRequest {
    request_parts(id, "claims-approval", "1.0.0", signals.as_bytes()).unwrap()
}

/// Executes with the fixture's attestation key, the given store and the fixed clock.
fn execute(
    fixture: &Fixture,
    env: &RuntimeEnvironment,
    store: &dyn ReplayStore,
    req: &ExecutionRequest,
) -> Result<parmana_runtime::Attestation, ExecutionError> {
    execute_from_signals(req, &fixture.key("attestation"), store, env, &clock())
}

#[test]
fn execute_then_verify_with_bundle_and_signals() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let mut req = request("claim-1", SIGNALS);
    req.include_signals = true;
    let attestation = execute(&fixture, &env, &store, &req).unwrap();
    let p = attestation.predicate();
    assert_eq!(
        (p.decision.as_str(), p.rule_id.as_str()),
        ("approve", "vip")
    );
    assert_eq!(p.executed_at, clock().0);
    assert_eq!(p.trust_root.version, env.trust_root().version());
    assert_eq!(
        p.policy.policy_digest,
        Digest::of(
            &std::fs::read(
                fixture
                    .root()
                    .join("policies/claims-approval/1.0.0/policy.json")
            )
            .unwrap()
        )
    );
    let bundle = load_bundle(
        env.trust_root(),
        &fixture.root().join("policies/claims-approval/1.0.0"),
    )
    .unwrap();
    let signals = p.signals.clone().unwrap();
    let report = verify_attestation(
        attestation.envelope(),
        env.trust_root(),
        Some(&bundle),
        Some(&signals),
    );
    assert!(report.is_valid(), "{report:#?}");
    // Signals other than those executed do not verify.
    let other = json!({"claim_amount": 1201, "vip_customer": true, "country": "DE", "policy_age_days": 400});
    assert!(
        !verify_attestation(
            attestation.envelope(),
            env.trust_root(),
            Some(&bundle),
            Some(&other)
        )
        .is_valid()
    );
    // The store holds exactly what was returned.
    match store.get(&ExecutionId::parse("claim-1").unwrap()).unwrap() {
        ExecutionState::Completed(done) => assert_eq!(done.attestation(), attestation.envelope()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_inputs_give_byte_identical_attestations() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let a = execute(
        &fixture,
        &env,
        &MemoryReplayStore::new(),
        &request("same", SIGNALS),
    )
    .unwrap();
    let b = execute(
        &fixture,
        &env,
        &MemoryReplayStore::new(),
        &request("same", SIGNALS),
    )
    .unwrap();
    assert_eq!(a.envelope(), b.envelope());
    // Whitespace and key order of the request do not matter: the signals are canonicalized.
    let reordered = r#"{ "policy_age_days": 400, "country": "DE", "vip_customer": true, "claim_amount": 1200.0 }"#;
    let c = execute(
        &fixture,
        &env,
        &MemoryReplayStore::new(),
        &request("same", reordered),
    )
    .unwrap();
    assert_eq!(a.envelope(), c.envelope());
}

#[test]
fn a_second_use_of_an_id_is_refused_and_the_first_outcome_stands() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let first = execute(&fixture, &env, &store, &request("once", SIGNALS)).unwrap();
    for signals in [
        SIGNALS,
        r#"{"claim_amount": 99999, "vip_customer": false, "country": "FR", "policy_age_days": 1}"#,
    ] {
        let err = execute(&fixture, &env, &store, &request("once", signals)).unwrap_err();
        assert_eq!(err.code(), "runtime.replay_detected");
        assert_eq!(err.class(), ErrorClass::Replay);
    }
    match store.get(&ExecutionId::parse("once").unwrap()).unwrap() {
        ExecutionState::Completed(done) => assert_eq!(done.attestation(), first.envelope()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_before_the_claim_consume_nothing() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let cases = [
        (
            r#"{"claim_amount": 1200, "vip_customer": true, "country": "DE"}"#,
            "policy.signal_missing",
        ),
        (
            r#"{"claim_amount": "1200", "vip_customer": true, "country": "DE", "policy_age_days": 4}"#,
            "policy.signal_type",
        ),
        (
            r#"{"claim_amount": -1, "vip_customer": true, "country": "DE", "policy_age_days": 4}"#,
            "policy.signal_out_of_range",
        ),
        (
            r#"{"claim_amount": 1, "vip_customer": true, "country": "XX", "policy_age_days": 4}"#,
            "policy.signal_not_in_enum",
        ),
        (
            r#"{"claim_amount": 1, "vip_customer": true, "country": "DE", "policy_age_days": 4, "extra": 1}"#,
            "policy.signal_undeclared",
        ),
        (
            r#"{"claim_amount": 1, "vip_customer": true, "country": "DE", "policy_age_days": 4.5}"#,
            "policy.signal_not_integer",
        ),
    ];
    for (signals, code) in cases {
        let err = execute(&fixture, &env, &store, &request("reusable", signals)).unwrap_err();
        assert_eq!(err.code(), code, "{signals}");
        assert_eq!(err.class(), ErrorClass::InvalidInput);
    }
    assert_eq!(
        store.get(&ExecutionId::parse("reusable").unwrap()).unwrap(),
        ExecutionState::Absent
    );
    execute(&fixture, &env, &store, &request("reusable", SIGNALS)).unwrap();
}

#[test]
fn malformed_references_are_refused_before_any_file_is_read() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let cases: [(&str, &str, &str, &str); 8] = [
        (
            "ok-id",
            "../trust",
            "1.0.0",
            "runtime.invalid_policy_reference",
        ),
        ("ok-id", "/etc", "1.0.0", "runtime.invalid_policy_reference"),
        (
            "ok-id",
            "claims-approval",
            "../../x",
            "runtime.invalid_policy_reference",
        ),
        (
            "ok-id",
            "claims-approval",
            "%2e%2e",
            "runtime.invalid_policy_reference",
        ),
        (
            "ok-id",
            "Claims",
            "1.0.0",
            "runtime.invalid_policy_reference",
        ),
        (
            "ok-id",
            "unknown-policy",
            "1.0.0",
            "runtime.policy_not_found",
        ),
        (
            "",
            "claims-approval",
            "1.0.0",
            "runtime.invalid_execution_id",
        ),
        (
            "has space",
            "claims-approval",
            "1.0.0",
            "runtime.invalid_execution_id",
        ),
    ];
    for (id, policy, version, code) in cases {
        let err = request_parts(id, policy, version, SIGNALS.as_bytes())
            .and_then(|req| execute(&fixture, &env, &store, &req))
            .unwrap_err();
        assert_eq!(err.code(), code, "{id:?} {policy:?} {version:?}");
    }
    let long = "x".repeat(129);
    assert_eq!(
        request_parts(&long, "claims-approval", "1.0.0", SIGNALS.as_bytes())
            .unwrap_err()
            .code(),
        "runtime.invalid_execution_id"
    );
    assert!(store.pending().unwrap().is_empty());
}

#[test]
fn a_policy_edited_after_signing_is_refused() {
    let fixture = Fixture::new();
    let path = fixture
        .root()
        .join("policies/claims-approval/1.0.0/policy.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"gt\": 80", "\"gt\": 99");
    std::fs::write(&path, text).unwrap();
    let env = fixture.environment();
    let err = execute(
        &fixture,
        &env,
        &MemoryReplayStore::new(),
        &request("t", SIGNALS),
    )
    .unwrap_err();
    assert_eq!(err.code(), "trust.digest_mismatch");
    assert_eq!(err.class(), ErrorClass::Trust);
}

#[test]
fn a_signed_bundle_missing_from_the_release_manifest_is_refused() {
    let fixture = Fixture::new();
    let from = fixture.root().join("policies/claims-approval/1.0.0");
    let to = fixture.root().join("policies/claims-approval/1.0.1");
    std::fs::create_dir_all(&to).unwrap();
    let policy = std::fs::read_to_string(from.join("policy.json"))
        .unwrap()
        .replace("\"1.0.0\"", "\"1.0.1\"");
    std::fs::write(to.join("policy.json"), policy).unwrap();
    let policy_key = fixture.key("policy");
    parmana_trust::sign_bundle_dir(
        &to,
        &"claims-approval@1.0.1".parse().unwrap(),
        &[&policy_key as &dyn Signer],
    )
    .unwrap();
    let env = fixture.environment();
    let req = request_parts("n", "claims-approval", "1.0.1", SIGNALS.as_bytes()).unwrap();
    let err = execute(&fixture, &env, &MemoryReplayStore::new(), &req).unwrap_err();
    assert_eq!(err.code(), "runtime.policy_not_found");
    assert!(
        err.to_string()
            .ends_with("not found: release manifest version 1 does not list it"),
        "{err}"
    );
}

#[test]
fn a_bundle_the_release_manifest_does_not_list_is_refused_unread() {
    // Anyone who may name a policy (a client of the server) must not have a bundle left on
    // disk read and verified at every request: refused before its files are read — here a
    // `bundle.json` that is not even JSON, which reading it would refuse as malformed.
    let fixture = Fixture::new();
    let to = fixture.root().join("policies/claims-approval/9.9.9");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("bundle.json"), b"not a bundle").unwrap();
    std::fs::write(to.join("policy.json"), vec![b' '; 1 << 20]).unwrap();
    let env = fixture.environment();
    // Refused as a name with no bundle directory is, in the same words: what lies on disk
    // unreleased is neither read nor told.
    for version in ["9.9.9", "9.9.8"] {
        let req = request_parts("n", "claims-approval", version, SIGNALS.as_bytes()).unwrap();
        let err = execute(&fixture, &env, &MemoryReplayStore::new(), &req).unwrap_err();
        assert_eq!(
            (err.code(), err.to_string()),
            (
                "runtime.policy_not_found",
                format!(
                    "policy claims-approval@{version} not found: release manifest version 1 \
                     does not list it"
                )
            )
        );
    }
    // A released policy without its directory: the deployment's fault, refused as the file.
    std::fs::rename(
        fixture.root().join("policies/claims-approval/1.0.0"),
        fixture.root().join("policies/claims-approval/moved"),
    )
    .unwrap();
    let req = request_parts("n", "claims-approval", "1.0.0", SIGNALS.as_bytes()).unwrap();
    let err = execute(&fixture, &env, &MemoryReplayStore::new(), &req).unwrap_err();
    assert_eq!(err.code(), "trust.io", "{err}");
    assert!(err.to_string().contains("claims-approval/1.0.0"), "{err}");
}

#[test]
fn a_release_manifest_past_its_size_limit_is_refused_unread() {
    let fixture = Fixture::new();
    let config = fixture.config();
    let bytes = std::fs::read(&config.release_manifest).unwrap();
    // Whitespace after the document: still one JSON value, but a byte over the limit.
    let mut padded = bytes.clone();
    padded.resize(parmana_trust::MAX_RELEASE_MANIFEST_BYTES + 1, b' ');
    std::fs::write(&config.release_manifest, &padded).unwrap();
    let now = parmana_testkit::now();
    let err = RuntimeEnvironment::load(&config, now).unwrap_err();
    assert_eq!(err.code(), "trust.document_too_large", "{err}");
    // At the limit it is read and verified.
    padded.truncate(parmana_trust::MAX_RELEASE_MANIFEST_BYTES);
    std::fs::write(&config.release_manifest, &padded).unwrap();
    RuntimeEnvironment::load(&config, now).unwrap();
}

#[test]
fn expired_documents_refuse_at_load_and_at_execution() {
    let fixture = Fixture::new();
    let later = Timestamp::parse("2040-01-01T00:00:00Z").unwrap();
    let err = RuntimeEnvironment::load(&fixture.config(), later).unwrap_err();
    assert_eq!(err.code(), "trust.expired");
    // An environment loaded in time refuses once its clock passes the expiry.
    let env = fixture.environment();
    let err = execute_from_signals(
        &request("late", SIGNALS),
        &fixture.key("attestation"),
        &MemoryReplayStore::new(),
        &env,
        &FixedClock(later),
    )
    .unwrap_err();
    assert_eq!(err.code(), "runtime.expired");
}

#[test]
fn only_a_key_with_the_attestation_role_may_sign() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    for signer in [
        fixture.key("policy"),
        fixture.key("release"),
        LocalSigningKey::from_seed(&[42; 32]),
    ] {
        let err = execute_from_signals(&request("k", SIGNALS), &signer, &store, &env, &clock())
            .unwrap_err();
        assert_eq!(err.code(), "runtime.signer_lacks_role");
    }
    assert_eq!(
        store.get(&ExecutionId::parse("k").unwrap()).unwrap(),
        ExecutionState::Absent
    );
}

#[test]
fn a_store_that_accepted_newer_versions_refuses_older_ones() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    store
        .accept_versions(env.trust_root().version() + 1, 1)
        .unwrap();
    let err = execute(&fixture, &env, &store, &request("rb", SIGNALS)).unwrap_err();
    assert_eq!(err.code(), "replay.version_rollback");
    assert_eq!(err.class(), ErrorClass::Trust);
    assert_eq!(
        store.get(&ExecutionId::parse("rb").unwrap()).unwrap(),
        ExecutionState::Absent
    );
}

/// A store whose `complete` fails while `fail` is set: a crash between claim and completion.
#[derive(Debug)]
struct CrashingStore {
    inner: MemoryReplayStore,
    fail: AtomicBool,
}

impl ReplayStore for CrashingStore {
    fn claim(
        &self,
        id: &ExecutionId,
        record: &parmana_runtime::replay::ClaimRecord,
        under: parmana_runtime::replay::AcceptedVersions,
    ) -> Result<parmana_runtime::replay::ClaimOutcome, ReplayError> {
        self.inner.claim(id, record, under)
    }
    fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ReplayError::Unavailable {
                message: "simulated crash".into(),
            });
        }
        self.inner.complete(id, attestation)
    }
    common::forward_store_reads!(inner);
}

#[test]
fn recover_completes_a_crashed_execution_byte_identically() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let expected = execute(
        &fixture,
        &env,
        &MemoryReplayStore::new(),
        &request("crash", SIGNALS),
    )
    .unwrap();

    let store = CrashingStore {
        inner: MemoryReplayStore::new(),
        fail: AtomicBool::new(true),
    };
    let err = execute(&fixture, &env, &store, &request("crash", SIGNALS)).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Store);
    // The id stays claimed: a retry is a replay, never a second decision.
    assert_eq!(
        execute(&fixture, &env, &store, &request("crash", SIGNALS))
            .unwrap_err()
            .code(),
        "runtime.replay_detected"
    );
    let id = ExecutionId::parse("crash").unwrap();
    assert_eq!(store.pending().unwrap(), vec![id.clone()]);

    store.fail.store(false, Ordering::SeqCst);
    let report = recover(&store, &fixture.key("attestation"), &env).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.completed.len(), 1);
    assert_eq!(report.completed[0].envelope(), expected.envelope());
    match store.get(&id).unwrap() {
        ExecutionState::Completed(done) => assert_eq!(done.attestation(), expected.envelope()),
        other => panic!("{other:?}"),
    }
    assert!(store.pending().unwrap().is_empty());
    assert!(
        parmana_runtime::replay::verify_ledger(&store.inner)
            .unwrap()
            .is_intact()
    );
    // Recovery with a key that lacks the role is refused before anything is read.
    let store2 = CrashingStore {
        inner: MemoryReplayStore::new(),
        fail: AtomicBool::new(true),
    };
    execute(&fixture, &env, &store2, &request("crash2", SIGNALS)).unwrap_err();
    store2.fail.store(false, Ordering::SeqCst);
    let err = recover(&store2, &fixture.key("policy"), &env).unwrap_err();
    assert_eq!(err.code(), "runtime.signer_lacks_role");
    assert_eq!(store2.pending().unwrap().len(), 1);
}

#[test]
fn verified_bundles_are_cached_per_environment() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    assert_eq!(env.preload_released_policies().unwrap(), 2);
    // With the files gone, the cached environment still executes; a new one refuses.
    std::fs::remove_dir_all(fixture.root().join("policies")).unwrap();
    execute(&fixture, &env, &store, &request("cached", SIGNALS)).unwrap();
    let fresh = fixture.environment();
    assert_eq!(
        execute(&fixture, &fresh, &store, &request("fresh", SIGNALS))
            .unwrap_err()
            .code(),
        "trust.io"
    );
}

#[test]
fn every_example_policy_executes_and_verifies() {
    let fixture = Fixture::new();
    let env = fixture.environment();
    let store = MemoryReplayStore::new();
    let triage = request_parts(
        "triage-1",
        "patient-triage",
        "1.0.0",
        br#"{"symptom_severity": 3, "heart_rate_elevated": true}"#,
    )
    .unwrap();
    let attestation = execute(&fixture, &env, &store, &triage).unwrap();
    assert_eq!(attestation.predicate().decision, "escalate");
    assert!(verify_attestation(attestation.envelope(), env.trust_root(), None, None).is_valid());
}

/// A named pipe put in place of a deployment file — the release manifest, the current trust
/// root, the pinned root key — is refused at once (`runtime.io`, `trust.io`): opened as a file,
/// it would hold the load, and a server's reload with every one after it, until something wrote
/// to it. Loaded on a thread with a deadline, so that a regression fails instead of hanging.
#[cfg(unix)]
#[test]
fn a_named_pipe_in_place_of_a_deployment_file_is_refused_at_once() {
    for (file, code) in [
        ("release-manifest.json", "runtime.io"),
        ("trust/trust-root.json", "trust.io"),
        ("trust/root.pub", "trust.io"),
    ] {
        let fixture = Fixture::new();
        let path = fixture.root().join(file);
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {file}");
        let config = fixture.config();
        let (sender, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ =
                sender.send(RuntimeEnvironment::load(&config, parmana_testkit::now()).map(|_| ()));
        });
        let loaded = answer
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("loading with a named pipe at {file} hung"));
        let error = loaded.unwrap_err();
        assert_eq!(error.code(), code, "{file}: {error}");
        assert!(
            error.to_string().contains("not a regular file"),
            "{file}: {error}"
        );
    }
}

/// So too the files of the transparency log's keepers: a named pipe as the log anchor, as a
/// witness's state, or as the lock file beside a witness's state is refused at once (opened,
/// the anchor's and the state's would wait for a writer, the lock for a reader). Run on a thread
/// with a deadline, each.
#[cfg(unix)]
#[test]
fn a_named_pipe_as_a_log_keepers_file_is_refused_at_once() {
    use parmana_runtime::{LockedWitnessState, LogAnchor, WitnessStateOpen, read_witness_state};
    let dir = tempfile::tempdir().unwrap();
    let fifo = |name: &str| {
        let path = dir.path().join(name);
        // Its owner's alone, whatever the umask (one anyone may write is refused for that first).
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {name}");
        path
    };
    let within_deadline = |what: &str, run: Box<dyn FnOnce() -> Option<String> + Send>| {
        let (sender, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(run());
        });
        let refused = answer
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}: hung on a named pipe"));
        // Refused as no regular file, or — a pipe opened to write without a reader — as no
        // such device (`ENXIO`), at once either way.
        assert!(
            refused.as_ref().is_some_and(|message| {
                message.contains("not a regular file") || message.contains("No such device")
            }),
            "{what}: {refused:?}"
        );
    };
    let anchor = fifo("log.anchor");
    within_deadline(
        "the log anchor",
        Box::new(move || LogAnchor::open(&anchor).err().map(|e| e.to_string())),
    );
    let state = fifo("witness-state.txt");
    within_deadline(
        "a witness's state",
        Box::new(move || read_witness_state(&state).err().map(|e| e.to_string())),
    );
    let beside = dir.path().join("other-state.txt");
    fifo(".other-state.txt.lock");
    within_deadline(
        "the lock beside a witness's state",
        Box::new(move || {
            LockedWitnessState::lock(&beside, WitnessStateOpen::New)
                .err()
                .map(|e| e.to_string())
        }),
    );
    // A lock that is a device (through a link): refused as no regular file.
    let device = dir.path().join("third-state.txt");
    std::os::unix::fs::symlink("/dev/null", dir.path().join(".third-state.txt.lock")).unwrap();
    let refused = LockedWitnessState::lock(&device, WitnessStateOpen::New)
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_ref()
            .is_some_and(|message| message.contains("not a regular file")),
        "{refused:?}"
    );
}
