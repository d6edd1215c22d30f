//! Offline verification of attestations: against a trust root, and optionally a policy bundle directory and the signals.

use std::path::Path;

use parmana_canon::Timestamp;
use parmana_trust::{
    AttestationReport, VerifiedBundle, VerifiedTrustRoot, load_trust_chain, read_bundle_dir,
    verify_bundle,
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
