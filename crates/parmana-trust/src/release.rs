//! The release manifest: which bundles may run, on which runtime; signed by the `release` role.

use std::collections::{BTreeMap, BTreeSet};

use parmana_canon::{Digest, PolicyRef, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, sign_document};
use crate::{Role, Signer, TrustError, VerifiedBundle, VerifiedTrustRoot};

/// The `_type` of a release manifest.
pub(crate) const RELEASE_MANIFEST_TYPE: &str = "parmana/release-manifest";

/// The release manifest's file name at the repository root.
pub const RELEASE_MANIFEST_FILE: &str = "release-manifest.json";

/// The largest release manifest read or verified, in bytes (room for some 40,000 policies).
pub const MAX_RELEASE_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Refuses manifest bytes past [`MAX_RELEASE_MANIFEST_BYTES`] before any work is done on them.
fn check_size(bytes: &[u8]) -> Result<(), TrustError> {
    if bytes.len() > MAX_RELEASE_MANIFEST_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: "the release manifest".to_owned(),
            limit: MAX_RELEASE_MANIFEST_BYTES,
        });
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    #[serde(rename = "_type")]
    doc_type: String,
    version: u64,
    expires: Timestamp,
    runtime: RuntimeBody,
    policies: BTreeMap<PolicyRef, Digest>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeBody {
    evaluator_semantics: String,
    minimum_runtime_version: String,
}

/// The content of a release manifest to author.
#[derive(Debug, Clone)]
pub struct ReleaseManifestSpec {
    /// Version of this manifest (at least 1; higher than any released before).
    pub version: u64,
    /// When it expires.
    pub expires: Timestamp,
    /// The evaluator semantics the policies were released for.
    pub evaluator_semantics: String,
    /// The lowest runtime version (`MAJOR.MINOR.PATCH`) allowed to run them.
    pub minimum_runtime_version: String,
    /// `<id>@<version>` → bundle digest.
    pub policies: BTreeMap<PolicyRef, Digest>,
}

/// A release manifest signed by a threshold of the `release` role, unexpired and not older
/// than the highest version accepted before. Only [`verify_release_manifest`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReleaseManifest {
    version: u64,
    expires: Timestamp,
    digest: Digest,
    evaluator_semantics: String,
    minimum_runtime_version: String,
    policies: BTreeMap<PolicyRef, Digest>,
}

impl VerifiedReleaseManifest {
    /// The manifest version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it expires.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// The document digest (SHA-256 of the JCS bytes of `signed`).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The evaluator semantics it was released for.
    pub fn evaluator_semantics(&self) -> &str {
        &self.evaluator_semantics
    }

    /// The lowest runtime version allowed.
    pub fn minimum_runtime_version(&self) -> &str {
        &self.minimum_runtime_version
    }

    /// Every released policy: `<id>@<version>` → bundle digest.
    pub fn policies(&self) -> &BTreeMap<PolicyRef, Digest> {
        &self.policies
    }

    /// Refuses with [`TrustError::Expired`] when the manifest has expired at `now` (for a
    /// long-lived process that verified it earlier).
    pub fn check_not_expired(&self, now: Timestamp) -> Result<(), TrustError> {
        if now >= self.expires {
            return Err(TrustError::Expired {
                document: RELEASE_MANIFEST_TYPE.to_owned(),
                expires: self.expires,
                now,
            });
        }
        Ok(())
    }

    /// Refuses a bundle that is not listed, or is listed with another bundle digest.
    pub fn check_bundle(&self, bundle: &VerifiedBundle) -> Result<(), TrustError> {
        let name = bundle.policy_ref();
        match self.policies.get(&name) {
            None => Err(TrustError::NotInReleaseManifest {
                policy: name.to_string(),
                detail: String::new(),
            }),
            Some(digest) if *digest != bundle.bundle_digest() => {
                Err(TrustError::NotInReleaseManifest {
                    policy: name.to_string(),
                    detail: format!(
                        " with bundle digest {} (listed: {digest})",
                        bundle.bundle_digest()
                    ),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Refuses a runtime whose evaluator semantics differ or whose version is below the minimum.
    pub fn check_runtime(
        &self,
        evaluator_semantics: &str,
        runtime_version: &str,
    ) -> Result<(), TrustError> {
        if evaluator_semantics != self.evaluator_semantics {
            return Err(TrustError::RuntimeIncompatible {
                message: format!(
                    "evaluator semantics {evaluator_semantics:?}, released for {:?}",
                    self.evaluator_semantics
                ),
            });
        }
        let ours =
            parse_version(runtime_version).ok_or_else(|| TrustError::RuntimeIncompatible {
                message: format!("runtime version {runtime_version:?} is not MAJOR.MINOR.PATCH"),
            })?;
        let minimum = parse_version(&self.minimum_runtime_version).unwrap_or((u64::MAX, 0, 0));
        if ours < minimum {
            return Err(TrustError::RuntimeIncompatible {
                message: format!(
                    "runtime version {runtime_version} is below the minimum {}",
                    self.minimum_runtime_version
                ),
            });
        }
        Ok(())
    }
}

/// Parses `MAJOR.MINOR.PATCH` (decimal, no leading zeros, nothing else).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| {
        let ok = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        if ok { p.parse::<u64>().ok() } else { None }
    });
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

fn check_body(body: &ReleaseBody) -> Result<(), TrustError> {
    let bad = |message: String| TrustError::malformed(RELEASE_MANIFEST_TYPE, message);
    if body.version == 0 {
        return Err(TrustError::InvalidVersion {
            document: RELEASE_MANIFEST_TYPE.to_owned(),
            message: "version must be at least 1".to_owned(),
        });
    }
    if body.runtime.evaluator_semantics.is_empty() {
        return Err(bad("evaluator_semantics is empty".to_owned()));
    }
    if parse_version(&body.runtime.minimum_runtime_version).is_none() {
        return Err(bad(format!(
            "minimum_runtime_version {:?} is not MAJOR.MINOR.PATCH",
            body.runtime.minimum_runtime_version
        )));
    }
    Ok(())
}

/// When a body does not read, whether it is because of a policy name: those have a code of
/// their own (the typed body refuses them with a generic message).
fn policy_name_error(signed: &Value) -> Option<TrustError> {
    let Some(Value::Object(policies)) = signed.get("policies") else {
        return None;
    };
    policies.keys().find_map(|name| {
        PolicyRef::parse(name)
            .err()
            .map(|error| TrustError::InvalidPolicyRef {
                document: RELEASE_MANIFEST_TYPE.to_owned(),
                name: name.clone(),
                error,
            })
    })
}

/// Verifies a release manifest: `_type`, a threshold of the `release` role, well-formed content,
/// not expired at `now`, and a version not below `highest_accepted`.
pub fn verify_release_manifest(
    trust_root: &VerifiedTrustRoot,
    bytes: &[u8],
    now: Timestamp,
    highest_accepted: Option<u64>,
) -> Result<VerifiedReleaseManifest, TrustError> {
    let verified = verify_release_manifest_signed(trust_root, bytes, highest_accepted)?;
    verified.check_not_expired(now)?;
    Ok(verified)
}

/// The version of a release manifest signed by a threshold of `trust_root`'s `release` role and
/// well-formed, whatever its expiry: that this version was released, which is what a log signer
/// bounds the marks records it signs by (an expired manifest still proves it).
pub fn signed_release_manifest_version(
    trust_root: &VerifiedTrustRoot,
    bytes: &[u8],
) -> Result<u64, TrustError> {
    Ok(verify_release_manifest_signed(trust_root, bytes, None)?.version)
}

/// A release manifest signed by a threshold of the `release` role of a trust-root version and
/// well formed, whatever its expiry: evidence of what was released, for auditing an attestation
/// made under it ([`AttestationReport::with_release_manifest_check`]). It is not a manifest in
/// force (that is a [`VerifiedReleaseManifest`], its expiry checked): nothing runs under it.
/// Only [`verify_signed_release_manifest`] builds one.
///
/// [`AttestationReport::with_release_manifest_check`]: crate::AttestationReport::with_release_manifest_check
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReleaseManifest(VerifiedReleaseManifest);

impl SignedReleaseManifest {
    /// The manifest version.
    pub fn version(&self) -> u64 {
        self.0.version
    }

    /// When it expires (or expired).
    pub fn expires(&self) -> Timestamp {
        self.0.expires
    }

    /// The document digest (SHA-256 of the JCS bytes of `signed`).
    pub fn digest(&self) -> Digest {
        self.0.digest
    }

    /// The evaluator semantics it released for.
    pub fn evaluator_semantics(&self) -> &str {
        &self.0.evaluator_semantics
    }

    /// Every policy it released: `<id>@<version>` → bundle digest.
    pub fn policies(&self) -> &BTreeMap<PolicyRef, Digest> {
        &self.0.policies
    }
}

/// Verifies a release manifest as evidence of a release ([`SignedReleaseManifest`]): `_type`, a
/// threshold of `trust_root`'s `release` role, well-formed content — not its expiry, nor any
/// version floor (an auditor checks an attestation against the manifest it names, long after).
pub fn verify_signed_release_manifest(
    trust_root: &VerifiedTrustRoot,
    bytes: &[u8],
) -> Result<SignedReleaseManifest, TrustError> {
    verify_release_manifest_signed(trust_root, bytes, None).map(SignedReleaseManifest)
}

/// [`verify_release_manifest`] but for the expiry (private: a manifest in force is only ever
/// handed out after its expiry is checked).
fn verify_release_manifest_signed(
    trust_root: &VerifiedTrustRoot,
    bytes: &[u8],
    highest_accepted: Option<u64>,
) -> Result<VerifiedReleaseManifest, TrustError> {
    check_size(bytes)?;
    let envelope = Envelope::parse(bytes, RELEASE_MANIFEST_TYPE)?;
    let role = trust_root.role_keys(Role::Release)?;
    envelope.check_role(
        RELEASE_MANIFEST_TYPE,
        Role::Release.as_str(),
        &role.keys,
        trust_root.all_keys(),
        role.threshold,
    )?;
    let body: ReleaseBody = envelope
        .body(RELEASE_MANIFEST_TYPE)
        .map_err(|error| policy_name_error(&envelope.signed).unwrap_or(error))?;
    check_body(&body)?;
    if let Some(highest) = highest_accepted
        && body.version < highest
    {
        return Err(TrustError::VersionRollback {
            document: RELEASE_MANIFEST_TYPE.to_owned(),
            version: body.version,
            highest,
        });
    }
    let verified = VerifiedReleaseManifest {
        version: body.version,
        expires: body.expires,
        digest: envelope.digest(),
        evaluator_semantics: body.runtime.evaluator_semantics,
        minimum_runtime_version: body.runtime.minimum_runtime_version,
        policies: body.policies,
    };
    Ok(verified)
}

/// The version a release-manifest document states, read without checking its signatures or
/// its expiry: for authoring, where a new manifest must be numbered above the one it replaces —
/// which may have expired, or have been signed by a release key rotated out since. Refuses what
/// is not a well-formed release manifest (`_type`, shape, content), with the codes
/// [`verify_release_manifest`] would give.
pub fn read_release_manifest_version(bytes: &[u8]) -> Result<u64, TrustError> {
    Ok(read_unverified_body(bytes)?.version)
}

/// The version and the policies a release-manifest document states, read as
/// [`read_release_manifest_version`] reads it (no signature or expiry checked): for authoring,
/// to say which policies a new manifest no longer releases. Nothing read this way is ever run.
pub fn read_release_manifest_listing(
    bytes: &[u8],
) -> Result<(u64, BTreeSet<PolicyRef>), TrustError> {
    let body = read_unverified_body(bytes)?;
    Ok((body.version, body.policies.into_keys().collect()))
}

/// A well-formed release-manifest body, its signatures and expiry not checked.
fn read_unverified_body(bytes: &[u8]) -> Result<ReleaseBody, TrustError> {
    check_size(bytes)?;
    let envelope = Envelope::parse(bytes, RELEASE_MANIFEST_TYPE)?;
    let body: ReleaseBody = envelope
        .body(RELEASE_MANIFEST_TYPE)
        .map_err(|error| policy_name_error(&envelope.signed).unwrap_or(error))?;
    check_body(&body)?;
    Ok(body)
}

/// Authors a release manifest signed by `signers`.
pub fn sign_release_manifest(
    spec: &ReleaseManifestSpec,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    let body = ReleaseBody {
        doc_type: RELEASE_MANIFEST_TYPE.to_owned(),
        version: spec.version,
        expires: spec.expires,
        runtime: RuntimeBody {
            evaluator_semantics: spec.evaluator_semantics.clone(),
            minimum_runtime_version: spec.minimum_runtime_version.clone(),
        },
        policies: spec.policies.clone(),
    };
    check_body(&body)?;
    sign_document(&body, signers)
}
