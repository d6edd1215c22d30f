//! The execution pipeline: resolve, verify, validate, evaluate, claim, sign, complete — and recovery after a crash.

use parmana_canon::{Digest, parse_strict, to_canonical_vec};
use parmana_replay::{ClaimOutcome, ClaimRecord, ExecutionId, ExecutionState, ReplayStore};
use parmana_trust::{
    AttestedPolicy, DocumentRef, EvaluatorRef, ExecutionPredicate, Role, RuntimeRef, Signer,
    build_attestation, prepare_attestation,
};
use serde_json::Value;

use crate::{Clock, ExecutionError, RUNTIME_NAME, RUNTIME_VERSION, RuntimeEnvironment};

/// The largest signals text [`ExecutionRequest::signals_from_json`] parses (1 MiB); longer text is
/// refused with `runtime.request_too_large` before it is parsed.
pub const MAX_SIGNALS_JSON_BYTES: usize = 1024 * 1024;

/// One request to execute: which policy, which execution id, which signals.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRequest {
    /// The execution id: 1 to 128 printable ASCII characters without spaces, used at most once.
    pub execution_id: String,
    /// The policy id.
    pub policy_id: String,
    /// The policy version.
    pub policy_version: String,
    /// The signals, a JSON object (see [`ExecutionRequest::signals_from_json`] for text).
    pub signals: Value,
    /// Embed the validated signals in the attestation (their digest is always bound).
    pub include_signals: bool,
}

impl ExecutionRequest {
    /// A request whose signals are given as JSON text, parsed strictly (duplicate keys,
    /// lone surrogates, unsafe integers and non-finite numbers are refused). Text longer than
    /// [`MAX_SIGNALS_JSON_BYTES`] is refused unparsed.
    pub fn signals_from_json(
        execution_id: impl Into<String>,
        policy_id: impl Into<String>,
        policy_version: impl Into<String>,
        signals_json: &[u8],
    ) -> Result<Self, ExecutionError> {
        if signals_json.len() > MAX_SIGNALS_JSON_BYTES {
            return Err(ExecutionError::RequestTooLarge {
                size: signals_json.len(),
                limit: MAX_SIGNALS_JSON_BYTES,
            });
        }
        Ok(Self {
            execution_id: execution_id.into(),
            policy_id: policy_id.into(),
            policy_version: policy_version.into(),
            signals: parse_strict(signals_json)?,
            include_signals: false,
        })
    }
}

/// A signed execution attestation: the DSSE envelope's canonical bytes and what it binds.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    envelope: Vec<u8>,
    predicate: ExecutionPredicate,
}

impl Attestation {
    /// The DSSE envelope, as RFC 8785 JSON bytes: what is stored, printed and verified.
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }

    /// The envelope as a string (it is always UTF-8 JSON).
    pub fn envelope_str(&self) -> &str {
        std::str::from_utf8(&self.envelope).unwrap_or_default()
    }

    /// Everything the attestation binds.
    pub fn predicate(&self) -> &ExecutionPredicate {
        &self.predicate
    }

    /// Consumes the attestation, returning the envelope bytes.
    pub fn into_envelope(self) -> Vec<u8> {
        self.envelope
    }
}

/// Executes `request` under the environment's signed policy, exactly once.
///
/// In order (DESIGN §4): the signer must hold the `attestation` role; the execution id must be
/// well formed; the policy bundle is resolved path-safely, verified against its signature and
/// the release manifest (cached per environment); the signals are validated and the policy
/// evaluated (pure — nothing is consumed when any of this fails); the trust root and release
/// manifest must not have expired at the clock's reading, nor be older than the store's
/// high-water marks; then the id is claimed atomically together with every attestation input,
/// the attestation is signed, recorded as completed, and returned.
///
/// A second use of an id is refused with `runtime.replay_detected` and the first outcome stands.
/// If signing or completion fails after the claim, the id stays claimed and
/// [`recover`] completes it with byte-identical output.
pub fn execute_from_signals(
    request: &ExecutionRequest,
    signer: &dyn Signer,
    replay_store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
    clock: &dyn Clock,
) -> Result<Attestation, ExecutionError> {
    check_signer(signer, environment)?;
    let execution_id =
        ExecutionId::parse(&request.execution_id).map_err(ExecutionError::InvalidExecutionId)?;
    let loaded = environment.policy(&request.policy_id, &request.policy_version)?;
    let signals = loaded.policy().validate_signals(&request.signals)?;
    let decision = signals.evaluate();
    let signals_value = signals.to_json_value();
    let signals_canonical = to_canonical_vec(&signals_value)?;

    let now = clock.now();
    check_expiry(environment, now)?;
    guard_rollback(replay_store, environment)?;

    let bundle = loaded.bundle();
    let predicate = ExecutionPredicate {
        execution_id: execution_id.clone(),
        policy: AttestedPolicy {
            id: bundle.policy_id().clone(),
            version: bundle.policy_version().clone(),
            policy_digest: bundle.policy_digest(),
            bundle_digest: bundle.bundle_digest(),
        },
        signals_digest: Digest::of(&signals_canonical),
        decision: decision.decision.to_owned(),
        rule_id: decision.rule_id.to_owned(),
        reason: decision.reason.unwrap_or_default().to_owned(),
        evaluator: EvaluatorRef {
            name: parmana_policy::EVALUATOR_NAME.to_owned(),
            version: parmana_policy::EVALUATOR_VERSION.to_owned(),
            semantics: parmana_policy::EVALUATOR_SEMANTICS.to_owned(),
        },
        runtime: RuntimeRef {
            name: RUNTIME_NAME.to_owned(),
            version: RUNTIME_VERSION.to_owned(),
        },
        trust_root: DocumentRef {
            version: environment.trust_root().version(),
            digest: environment.trust_root().digest(),
        },
        release_manifest: DocumentRef {
            version: environment.release_manifest().version(),
            digest: environment.release_manifest().digest(),
        },
        executed_at: now,
        signals: request.include_signals.then_some(signals_value),
    };
    let prepared = prepare_attestation(&predicate, environment.trust_root())?;
    let request_digest = request_digest(&execution_id, request, &signals_canonical)?;
    let claim = ClaimRecord::new(request_digest, prepared.canonical_predicate().to_vec(), now);
    match replay_store.claim(&execution_id, &claim)? {
        ClaimOutcome::Claimed => {}
        ClaimOutcome::AlreadyClaimed => {
            return Err(ExecutionError::ReplayDetected {
                execution_id: execution_id.as_str().to_owned(),
            });
        }
    }
    let envelope = prepared.sign(signer, environment.trust_root())?;
    replay_store.complete(&execution_id, &envelope)?;
    Ok(Attestation {
        envelope,
        predicate,
    })
}

/// The digest of what was asked: the execution id, the policy and the canonical validated signals.
fn request_digest(
    execution_id: &ExecutionId,
    request: &ExecutionRequest,
    signals_canonical: &[u8],
) -> Result<Digest, ExecutionError> {
    let mut map = serde_json::Map::new();
    map.insert(
        "execution_id".into(),
        Value::String(execution_id.as_str().to_owned()),
    );
    map.insert("policy_id".into(), Value::String(request.policy_id.clone()));
    map.insert(
        "policy_version".into(),
        Value::String(request.policy_version.clone()),
    );
    map.insert(
        "signals_digest".into(),
        Value::String(Digest::of(signals_canonical).to_string()),
    );
    Ok(Digest::of_canonical(&Value::Object(map))?)
}

fn check_signer(
    signer: &dyn Signer,
    environment: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let trust_root = environment.trust_root();
    let keyid = signer.key_id();
    if trust_root.has_role(&keyid, Role::Attestation)
        && trust_root.key(&keyid) == Some(signer.public_key())
    {
        Ok(())
    } else {
        Err(ExecutionError::SignerLacksRole {
            keyid: keyid.to_string(),
            trust_root_version: trust_root.version(),
        })
    }
}

fn check_expiry(
    environment: &RuntimeEnvironment,
    now: parmana_canon::Timestamp,
) -> Result<(), ExecutionError> {
    let trust_expires = environment.trust_root().expires();
    if now >= trust_expires {
        return Err(ExecutionError::Expired {
            document: "trust root",
            expires: trust_expires,
            now,
        });
    }
    let release_expires = environment.release_manifest().expires();
    if now >= release_expires {
        return Err(ExecutionError::Expired {
            document: "release manifest",
            expires: release_expires,
            now,
        });
    }
    Ok(())
}

/// Refuses to execute under a trust root or release manifest older than the store has
/// accepted, and raises the store's marks when ours are newer.
fn guard_rollback(
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let ours = (
        environment.trust_root().version(),
        environment.release_manifest().version(),
    );
    let marks = store.accepted_versions()?;
    if (marks.trust_root, marks.release_manifest) != ours {
        // Refuses atomically when either of ours is older than a mark.
        store.accept_versions(ours.0, ours.1)?;
    }
    Ok(())
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Ids completed now, with their attestations.
    pub completed: Vec<Attestation>,
    /// Ids that could not be completed, with why. They stay claimed (and refused).
    pub failed: Vec<(String, ExecutionError)>,
}

/// Completes every claimed-but-unfinished execution from its recorded inputs.
///
/// Ed25519 is deterministic and the recorded inputs include the clock reading, so the
/// attestation is byte-identical to the one the interrupted execution would have returned.
/// It must run with the environment (trust root) and signer of the interrupted execution;
/// otherwise that id fails here and stays claimed — a claimed id is never reopened. A signer
/// without the `attestation` role is refused before anything is read.
pub fn recover(
    replay_store: &dyn ReplayStore,
    signer: &dyn Signer,
    environment: &RuntimeEnvironment,
) -> Result<RecoveryReport, ExecutionError> {
    check_signer(signer, environment)?;
    let mut report = RecoveryReport::default();
    for execution_id in replay_store.pending()? {
        match recover_one(replay_store, signer, environment, &execution_id) {
            Ok(Some(attestation)) => report.completed.push(attestation),
            Ok(None) => {}
            Err(error) => report
                .failed
                .push((execution_id.as_str().to_owned(), error)),
        }
    }
    Ok(report)
}

fn recover_one(
    store: &dyn ReplayStore,
    signer: &dyn Signer,
    environment: &RuntimeEnvironment,
    execution_id: &ExecutionId,
) -> Result<Option<Attestation>, ExecutionError> {
    let ExecutionState::Claimed(claim) = store.get(execution_id)? else {
        // Completed (or, impossibly, absent) since it was listed: nothing to do.
        return Ok(None);
    };
    let unreadable = |message: String| ExecutionError::StoredClaimUnreadable {
        execution_id: execution_id.as_str().to_owned(),
        message,
    };
    let value = parse_strict(claim.attestation_inputs()).map_err(|e| unreadable(e.to_string()))?;
    let predicate: ExecutionPredicate =
        serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))?;
    if predicate.execution_id != *execution_id || predicate.executed_at != claim.claimed_at() {
        return Err(unreadable(
            "the recorded inputs belong to another execution".to_owned(),
        ));
    }
    let envelope = build_attestation(&predicate, signer, environment.trust_root())?;
    store.complete(execution_id, &envelope)?;
    Ok(Some(Attestation {
        envelope,
        predicate,
    }))
}
