//! Offline verification of attestations: against a trust root or the verified history of the trust-root chain, and optionally a policy bundle directory and the signals.

use std::path::Path;

use parmana_canon::{Digest, Timestamp};
use parmana_policy::{CompiledPolicy, EVALUATOR_SEMANTICS};
use parmana_trust::{
    AttestationReport, DecidedOn, ExecutionPredicate, MAX_RELEASE_MANIFEST_BYTES, Redecision,
    SignedReleaseManifest, TrustError, VerifiedBundle, VerifiedTrustHistory, VerifiedTrustRoot,
    VerifyOptions, load_trust_chain, read_bundle_dir, verify_bundle,
    verify_signed_release_manifest,
};
use serde_json::Value;

use crate::{AttestationInclusion, ExecutionError, Signals};

/// Loads and verifies the trust chain for verification alone (no release manifest needed):
/// the pinned root key (SPKI PEM) and the current trust root with its `trust-root.d/` chain.
pub fn load_trust_root(
    root_public_key: &Path,
    trust_root: &Path,
    now: Timestamp,
) -> Result<VerifiedTrustRoot, ExecutionError> {
    Ok(load_trust_chain(root_public_key, trust_root, now, None)?)
}

/// Loads and verifies every version of the trust-root chain, from the pinned root key (SPKI
/// PEM) through the chain at `trust_root` — the current file with `trust-root.d/` beside it, a
/// directory holding the chain, or any version's file (see `parmana_trust::read_trust_chain`).
/// No version's expiry is checked: an auditor verifies attestations against the version each
/// was made under, at its `executed_at` ([`verify_attestation_in_history`]).
pub fn load_trust_history(
    root_public_key: &Path,
    trust_root: &Path,
) -> Result<VerifiedTrustHistory, ExecutionError> {
    Ok(parmana_trust::load_trust_history(
        root_public_key,
        trust_root,
    )?)
}

/// Reads and verifies a policy bundle directory under `trust_root`.
pub fn load_bundle(
    trust_root: &VerifiedTrustRoot,
    dir: &Path,
) -> Result<VerifiedBundle, ExecutionError> {
    let files = read_bundle_dir(dir)?;
    Ok(verify_bundle(trust_root, &files)?)
}

/// Reads the policy bundle directory an attestation names, for its `bundle_digest` and
/// `decision` checks, and verifies it under the trust-root version the attestation names or,
/// refused there, under the newest version: a bundle signed again after the `policy` role's
/// keys rotated (its digest, of its `signed` part, unchanged) still checks the attestations made
/// before, as the runtime executing it now verifies it under the version in force. Not under a
/// version between them: a key that one trusted and a later one rotated out (stolen, say) signs
/// nothing an auditor accepts. Refused under both, the refusal is the named version's.
pub fn load_attested_bundle(
    history: &VerifiedTrustHistory,
    envelope: &[u8],
    dir: &Path,
) -> Result<VerifiedBundle, ExecutionError> {
    let files = read_bundle_dir(dir)?;
    let named = history.attestation_trust_root(envelope);
    let refused = match verify_bundle(named, &files) {
        Ok(bundle) => return Ok(bundle),
        Err(error) => error,
    };
    let newest = history.newest();
    if newest.version() > named.version()
        && let Ok(bundle) = verify_bundle(newest, &files)
    {
        return Ok(bundle);
    }
    Err(refused.into())
}

/// Reads the release manifest an attestation names, for its `release_manifest` check
/// ([`AttestationReport::with_release_manifest_check`]): signed by the `release` role of the
/// trust-root version the attestation names (the runtime verified it under that very version
/// when it executed), whatever its expiry — the check compares it with the attestation's
/// `executed_at`. At most `MAX_RELEASE_MANIFEST_BYTES` are read.
pub fn load_attested_release_manifest(
    history: &VerifiedTrustHistory,
    envelope: &[u8],
    path: &Path,
) -> Result<SignedReleaseManifest, ExecutionError> {
    let bytes = crate::environment::read_file(path, MAX_RELEASE_MANIFEST_BYTES)?;
    Ok(verify_signed_release_manifest(
        history.attestation_trust_root(envelope),
        &bytes,
    )?)
}

/// Verifies an attestation envelope: well-formed envelope, signature, the signer's
/// `attestation` role, the trust root version and digest, the fingerprint, and — when given —
/// the bundle digests and the signals digest. With a bundle and the signals (given, or embedded
/// in the attestation), the `decision` check too: the bundle's policy, evaluated again over the
/// signals, decides what the attestation says (decision, rule and reason). Every check is
/// reported separately; the attestation is valid only if all pass. Never panics on hostile
/// input.
pub fn verify_attestation(
    envelope: &[u8],
    trust_root: &VerifiedTrustRoot,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    let report = parmana_trust::verify_attestation(envelope, trust_root, bundle, signals);
    decided_under_bundle(report, bundle, signals)
}

/// Verifies an attestation envelope against every version of a verified trust-root chain: the
/// version it names must be one of them, its signatures must meet that version's `attestation`
/// threshold, and that version's expiry is judged at the attestation's `executed_at` (which may
/// lie at most `EXECUTED_AT_TOLERANCE_SECONDS` after `options.now`). The report says whether
/// the version is superseded and whether the newest version still trusts the signing keys;
/// `options.require_current_trust` makes either a failed check. For the bundle check, read the
/// bundle with [`load_attested_bundle`] (under the version the attestation names, else the
/// newest); with the bundle and the signals, the `decision` check is added as
/// [`verify_attestation`] adds it.
pub fn verify_attestation_in_history(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    let report =
        parmana_trust::verify_attestation_in_history(envelope, history, options, bundle, signals);
    decided_under_bundle(report, bundle, signals)
}

/// [`verify_attestation_in_history`] for an attestation whose log entry is proven included:
/// `inclusion` is what [`verify_attestation_proof`](crate::verify_attestation_proof) (or an
/// [`AttestationProofVerifier`](crate::AttestationProofVerifier)) returned for this envelope —
/// one proven for another envelope (its digest is not this one's) proves nothing of it and
/// counts as none. When a key that signed it is revoked as of a log checkpoint, the report's
/// `revocation` check passes only when that entry comes before the revocation; without an
/// inclusion it fails (`trust.key_revoked_unproven`). See `docs/trust-model.md` §6.2.
pub fn verify_attestation_with_log(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
    inclusion: Option<&AttestationInclusion>,
) -> AttestationReport {
    let digest = Digest::of(envelope);
    let inclusion = inclusion
        .filter(|proven| proven.envelope_digest() == digest)
        .map(AttestationInclusion::inclusion);
    let report = parmana_trust::verify_attestation_with_log(
        envelope, history, options, bundle, signals, inclusion,
    );
    decided_under_bundle(report, bundle, signals)
}

/// `report` with the `decision` check added when a bundle was given, its policy compiled for it
/// (see [`with_decision_check`]).
fn decided_under_bundle(
    report: AttestationReport,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    let Some(bundle) = bundle else {
        return report;
    };
    with_decision_check(report, signals, |predicate, signals, on| {
        let policy = parmana_policy::compile(bundle.policy_bytes()).map_err(|e| {
            not_reproduced(format!(
                "the bundle's policy does not compile: [{}] {e}",
                e.code()
            ))
        })?;
        redecide(predicate, &policy, signals, on)
    })
}

/// `report` with the `decision` check added — the policy's decision for the signals, worked out
/// by `redecide`, compared with the predicate's — when the signals are known: `given`, or
/// embedded in the attestation. For an attestation that could not be read, the check is added
/// not run when signals were given (as `signals_digest` is). Without signals there is nothing
/// to decide, and no check is added: the report shows which checks ran.
pub(crate) fn with_decision_check(
    report: AttestationReport,
    given: Option<&Value>,
    redecide: impl FnOnce(&ExecutionPredicate, &Value, DecidedOn) -> Result<Redecision, TrustError>,
) -> AttestationReport {
    let known = match report.predicate() {
        Some(predicate) => given.is_some() || predicate.signals.is_some(),
        None => given.is_some(),
    };
    if !known {
        return report;
    }
    report.with_decision_check(|predicate| {
        // The signals given, the verifier's own copy, before those the attestation embeds
        // (whose digest check runs beside this one: the two never disagree in a valid report).
        match (given, predicate.signals.as_ref()) {
            (Some(given), _) => redecide(predicate, given, DecidedOn::Given),
            (None, Some(embedded)) => redecide(predicate, embedded, DecidedOn::Embedded),
            (None, None) => Err(not_reproduced("no signals to decide for".to_owned())),
        }
    })
}

/// What `policy` decides for `signals`, validated as an execution validates them (the same
/// limits and codes), for the attestation whose `predicate` says what was decided. Refused when
/// the attestation was made by other evaluator semantics than this one's: its decision is not
/// this evaluator's to reproduce.
pub(crate) fn redecide(
    predicate: &ExecutionPredicate,
    policy: &CompiledPolicy,
    signals: &Value,
    on: DecidedOn,
) -> Result<Redecision, TrustError> {
    let semantics = predicate.evaluator.semantics.as_str();
    if semantics != EVALUATOR_SEMANTICS {
        // The attestation's own string, quoted bounded.
        let semantics = parmana_canon::excerpt(semantics);
        return Err(not_reproduced(format!(
            "the attestation was made by evaluator semantics {semantics:?}; this verifier evaluates {EVALUATOR_SEMANTICS:?}"
        )));
    }
    let refused = |e: ExecutionError| {
        not_reproduced(format!(
            "the policy refuses the signals: [{}] {e}",
            e.code()
        ))
    };
    let validated = Signals::from_value(signals.clone())
        .validate(policy)
        .map_err(refused)?;
    let decision = validated
        .evaluate()
        .map_err(|fault| refused(ExecutionError::from(fault)))?;
    Ok(Redecision {
        decision: decision.decision.to_owned(),
        rule_id: decision.rule_id.to_owned(),
        reason: decision.reason.map(str::to_owned),
        on,
    })
}

fn not_reproduced(reason: String) -> TrustError {
    TrustError::DecisionNotReproduced { reason }
}
