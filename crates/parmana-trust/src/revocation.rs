//! Revoking an attestation key as of a transparency-log checkpoint: the `revocations` of a trust root's `log` role, and the rule that admits an attestation of a revoked key only when the log proves it was logged before the revocation (`docs/trust-model.md` §6.2).

use std::collections::BTreeSet;

use parmana_canon::Digest;
use serde::{Deserialize, Serialize};

use crate::keys::{decode_base64, encode_base64};
use crate::trust_root::TRUST_ROOT_TYPE;
use crate::{Checkpoint, KeyId, NoteKeyName, TrustError, VerifiedInclusion};

/// The longest `reason` of a revocation, in characters.
pub const MAX_REVOCATION_REASON_CHARS: usize = 256;

/// One entry of `log.revocations` in a trust-root document.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevocationBody {
    keyid: String,
    tree_size: u64,
    root_hash: String,
    reason: String,
}

/// A revocation to write into a trust root (see [`LogSpec`](crate::LogSpec)): the attestation
/// key `keyid` is revoked as of the log's checkpoint of `tree_size` entries and root hash
/// `root_hash`; attestations whose log entries come before it stay valid with a log proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSpec {
    /// The revoked key.
    pub keyid: KeyId,
    /// The size of the checkpoint the revocation is as of.
    pub tree_size: u64,
    /// That checkpoint's root hash.
    pub root_hash: Digest,
    /// Why (1 to [`MAX_REVOCATION_REASON_CHARS`] characters, no control characters).
    pub reason: String,
}

impl RevocationSpec {
    /// Revokes `keyid` as of `checkpoint` (its size and root hash), for `reason`.
    pub fn at_checkpoint(keyid: KeyId, checkpoint: &Checkpoint, reason: &str) -> Self {
        Self {
            keyid,
            tree_size: checkpoint.size(),
            root_hash: checkpoint.root(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn to_body(&self) -> RevocationBody {
        RevocationBody {
            keyid: self.keyid.to_string(),
            tree_size: self.tree_size,
            root_hash: encode_base64(self.root_hash.as_bytes()),
            reason: self.reason.clone(),
        }
    }
}

/// An attestation key revoked by a verified trust-root version as of a checkpoint of its log:
/// the first `tree_size` entries of the log `origin` (the checkpoint of that size, whose root
/// hash is `root_hash`) were logged before the revocation; any later entry, and any attestation
/// that cannot show its entry, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    keyid: KeyId,
    origin: NoteKeyName,
    tree_size: u64,
    root_hash: Digest,
    reason: String,
    version: u64,
}

impl Revocation {
    /// The revoked key.
    pub fn keyid(&self) -> &KeyId {
        &self.keyid
    }

    /// The log the revocation is ordered in.
    pub fn origin(&self) -> &NoteKeyName {
        &self.origin
    }

    /// How many entries of the log stay valid: those at indexes below it.
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The root hash of the log at [`tree_size`](Self::tree_size).
    pub fn root_hash(&self) -> Digest {
        self.root_hash
    }

    /// Why the key was revoked.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The trust-root version that lists the revocation.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether an attestation signed by the revoked key stands, given the verified inclusion of
    /// its log entry (`None`: no log proof). Refused with `trust.key_revoked_unproven` without
    /// one — nothing else orders a signature against the revocation —, and with
    /// `trust.key_revoked` when the entry is in another log or at an index at or after the
    /// revocation's size. A proof against a checkpoint of exactly that size must carry its root
    /// hash (`trust.tlog_inconsistent` otherwise: the log, or the revocation, disagrees about
    /// that size); proofs against checkpoints of other sizes rely on the log being append-only,
    /// which its witnesses check, and which the runtime's signers of checkpoints check against
    /// the revocation (a log that does not extend its checkpoint is never signed).
    pub fn admits(&self, inclusion: Option<&VerifiedInclusion>) -> Result<String, TrustError> {
        let Some(inclusion) = inclusion else {
            return Err(TrustError::KeyRevokedUnproven {
                keyid: self.keyid.to_string(),
                version: self.version,
                origin: self.origin.to_string(),
                tree_size: self.tree_size,
                reason: self.reason.clone(),
            });
        };
        let head = inclusion.checkpoint().checkpoint();
        let refused = |found: String| TrustError::KeyRevoked {
            keyid: self.keyid.to_string(),
            version: self.version,
            origin: self.origin.to_string(),
            tree_size: self.tree_size,
            reason: self.reason.clone(),
            found,
        };
        if head.origin() != self.origin.as_str() {
            return Err(refused(format!(
                "the attestation is proven in log {}, which the revocation cannot be ordered in",
                head.origin()
            )));
        }
        if inclusion.index() >= self.tree_size {
            return Err(refused(format!(
                "the attestation is entry {}, not before it",
                inclusion.index()
            )));
        }
        if head.size() == self.tree_size && head.root() != self.root_hash {
            return Err(TrustError::TlogInconsistent {
                old_size: self.tree_size,
                new_size: head.size(),
                reason: parmana_canon::merkle::MerkleError::RootMismatch,
            });
        }
        Ok(format!(
            "key {} revoked by trust root version {} as of the checkpoint of size {} of {} ({}); the attestation is entry {}, logged before",
            self.keyid,
            self.version,
            self.tree_size,
            self.origin,
            self.reason,
            inclusion.index()
        ))
    }
}

/// Reads the revocations of the `log` role `origin` of trust-root version `version`: key ids,
/// each revoked once, a root hash of 32 bytes in canonical base64, a reason of 1 to
/// [`MAX_REVOCATION_REASON_CHARS`] characters without control characters (`trust.malformed`).
pub(crate) fn parse_revocations(
    bodies: &[RevocationBody],
    origin: &NoteKeyName,
    version: u64,
) -> Result<Vec<Revocation>, TrustError> {
    let bad = |message: String| TrustError::malformed(TRUST_ROOT_TYPE, message);
    let mut seen = BTreeSet::new();
    let mut revocations = Vec::with_capacity(bodies.len());
    for body in bodies {
        let keyid: KeyId = body.keyid.parse()?;
        if !seen.insert(keyid) {
            return Err(bad(format!("log revocations list key {keyid} twice")));
        }
        let root_hash = decode_base64(&body.root_hash)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Digest::from_bytes)
            .ok_or_else(|| {
                bad(format!(
                    "the revocation of {keyid}: root_hash is the base64 of 32 bytes"
                ))
            })?;
        let chars = body.reason.chars().count();
        if chars == 0
            || chars > MAX_REVOCATION_REASON_CHARS
            || body.reason.chars().any(char::is_control)
        {
            return Err(bad(format!(
                "the revocation of {keyid}: reason is 1 to {MAX_REVOCATION_REASON_CHARS} characters without control characters"
            )));
        }
        revocations.push(Revocation {
            keyid,
            origin: origin.clone(),
            tree_size: body.tree_size,
            root_hash,
            reason: body.reason.clone(),
            version,
        });
    }
    Ok(revocations)
}
