//! Offline verification of attestations: against a trust root or the verified history of the trust-root chain, and optionally a policy bundle directory and the signals.

use std::path::Path;

use parmana_canon::Timestamp;
use parmana_trust::{
    AttestationReport, VerifiedBundle, VerifiedInclusion, VerifiedTrustHistory, VerifiedTrustRoot,
    VerifyOptions, load_trust_chain, read_bundle_dir, verify_bundle,
};
use serde_json::Value;

use crate::ExecutionError;

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

/// Verifies an attestation envelope: well-formed envelope, signature, the signer's
/// `attestation` role, the trust root version and digest, the fingerprint, and — when given —
/// the bundle digests and the signals digest. Every check is reported separately; the
/// attestation is valid only if all pass. Never panics on hostile input.
pub fn verify_attestation(
    envelope: &[u8],
    trust_root: &VerifiedTrustRoot,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    parmana_trust::verify_attestation(envelope, trust_root, bundle, signals)
}

/// Verifies an attestation envelope against every version of a verified trust-root chain: the
/// version it names must be one of them, its signatures must meet that version's `attestation`
/// threshold, and that version's expiry is judged at the attestation's `executed_at` (which may
/// lie at most `EXECUTED_AT_TOLERANCE_SECONDS` after `options.now`). The report says whether
/// the version is superseded and whether the newest version still trusts the signing keys;
/// `options.require_current_trust` makes either a failed check. For the bundle check, verify
/// the bundle under [`VerifiedTrustHistory::attestation_trust_root`].
pub fn verify_attestation_in_history(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    parmana_trust::verify_attestation_in_history(envelope, history, options, bundle, signals)
}

/// [`verify_attestation_in_history`] for an attestation whose log entry is proven included:
/// `inclusion` is what [`verify_attestation_proof`](crate::verify_attestation_proof) (or an
/// [`AttestationProofVerifier`](crate::AttestationProofVerifier)) returned for **this**
/// envelope. When a key that signed it is revoked as of a log checkpoint, the report's
/// `revocation` check passes only when that entry comes before the revocation; without an
/// inclusion it fails (`trust.key_revoked_unproven`). See `docs/trust-model.md` §6.2.
pub fn verify_attestation_with_log(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
    inclusion: Option<&VerifiedInclusion>,
) -> AttestationReport {
    parmana_trust::verify_attestation_with_log(
        envelope, history, options, bundle, signals, inclusion,
    )
}
