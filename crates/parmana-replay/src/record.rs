//! What a store records about one execution: the claim, its outcome, and the rollback high-water marks.

use parmana_canon::{Digest, Timestamp};

use crate::error::VersionKind;
use crate::{ExecutionId, ReplayError};

/// Everything recorded when an execution id is claimed: enough to finish the execution
/// after a crash with byte-identical output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    request_digest: Digest,
    attestation_inputs: Vec<u8>,
    claimed_at: Timestamp,
}

impl ClaimRecord {
    /// A claim for the request with digest `request_digest`, carrying the canonical bytes of
    /// every attestation input (`attestation_inputs`, opaque to the store) and the clock reading.
    pub fn new(request_digest: Digest, attestation_inputs: Vec<u8>, claimed_at: Timestamp) -> Self {
        Self {
            request_digest,
            attestation_inputs,
            claimed_at,
        }
    }

    /// The digest of the request that claimed the id.
    pub fn request_digest(&self) -> Digest {
        self.request_digest
    }

    /// The canonical bytes of the attestation inputs, exactly as given to [`ClaimRecord::new`].
    pub fn attestation_inputs(&self) -> &[u8] {
        &self.attestation_inputs
    }

    /// The clock reading of the execution.
    pub fn claimed_at(&self) -> Timestamp {
        self.claimed_at
    }
}

/// The answer of [`ReplayStore::claim`](crate::ReplayStore::claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an execution may proceed only when the claim was won"]
pub enum ClaimOutcome {
    /// This caller reserved the id; it must now execute and [`complete`](crate::ReplayStore::complete) it.
    Claimed,
    /// Someone already reserved the id (now or earlier): executing again would be a replay.
    AlreadyClaimed,
}

impl ClaimOutcome {
    /// `Ok(())` for [`ClaimOutcome::Claimed`], `replay.replay_detected` otherwise.
    pub fn require_claimed(self, execution_id: &ExecutionId) -> Result<(), ReplayError> {
        match self {
            Self::Claimed => Ok(()),
            Self::AlreadyClaimed => Err(ReplayError::AlreadyClaimed {
                execution_id: execution_id.as_str().to_owned(),
            }),
        }
    }
}

/// A completed execution: its claim and the attestation recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedExecution {
    claim: ClaimRecord,
    attestation: Vec<u8>,
}

impl CompletedExecution {
    pub(crate) fn new(claim: ClaimRecord, attestation: Vec<u8>) -> Self {
        Self { claim, attestation }
    }

    /// The claim the execution started with.
    pub fn claim(&self) -> &ClaimRecord {
        &self.claim
    }

    /// The attestation bytes recorded by [`complete`](crate::ReplayStore::complete).
    pub fn attestation(&self) -> &[u8] {
        &self.attestation
    }
}

/// The state of one execution id in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    /// Never claimed.
    Absent,
    /// Claimed but not completed: in flight, or interrupted by a crash (see [`ReplayStore::pending`](crate::ReplayStore::pending)).
    Claimed(ClaimRecord),
    /// Claimed and completed.
    Completed(CompletedExecution),
}

/// The highest trust-root and release-manifest versions a store has accepted (0 when none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptedVersions {
    /// The highest trust-root version accepted.
    pub trust_root: u64,
    /// The highest release-manifest version accepted.
    pub release_manifest: u64,
}

impl AcceptedVersions {
    /// The marks after accepting `trust_root` and `release_manifest`, or the rollback refusal.
    ///
    /// Every backend applies this one rule inside its own atomic update.
    pub fn raised_to(self, trust_root: u64, release_manifest: u64) -> Result<Self, ReplayError> {
        for (kind, offered) in [
            (VersionKind::TrustRoot, trust_root),
            (VersionKind::ReleaseManifest, release_manifest),
        ] {
            if i64::try_from(offered).is_err() {
                return Err(ReplayError::VersionTooLarge { kind, offered });
            }
        }
        if trust_root < self.trust_root {
            return Err(ReplayError::VersionRollback {
                kind: VersionKind::TrustRoot,
                offered: trust_root,
                accepted: self.trust_root,
            });
        }
        if release_manifest < self.release_manifest {
            return Err(ReplayError::VersionRollback {
                kind: VersionKind::ReleaseManifest,
                offered: release_manifest,
                accepted: self.release_manifest,
            });
        }
        Ok(Self {
            trust_root,
            release_manifest,
        })
    }
}

/// Rebuilds a claim from its stored columns; anything unreadable means the store is corrupt.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_claim(
    request_digest: &str,
    attestation_inputs: Vec<u8>,
    claimed_at: &str,
) -> Result<ClaimRecord, ReplayError> {
    let request_digest = request_digest
        .parse::<Digest>()
        .map_err(|e| ReplayError::corrupt(format!("stored request digest: {e}")))?;
    let claimed_at = Timestamp::parse(claimed_at)
        .map_err(|e| ReplayError::corrupt(format!("stored claim time: {e}")))?;
    Ok(ClaimRecord::new(
        request_digest,
        attestation_inputs,
        claimed_at,
    ))
}

/// Rebuilds an execution id read back from a store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_execution_id(text: &str) -> Result<ExecutionId, ReplayError> {
    ExecutionId::parse(text)
        .map_err(|e| ReplayError::corrupt(format!("stored execution id {text:?}: {e}")))
}

/// Converts a version read back from a store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_version(value: i64) -> Result<u64, ReplayError> {
    u64::try_from(value).map_err(|_| ReplayError::corrupt(format!("stored version {value}")))
}

/// Converts a version for storage (already range-checked by [`AcceptedVersions::raised_to`]).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn encode_version(kind: VersionKind, value: u64) -> Result<i64, ReplayError> {
    i64::try_from(value).map_err(|_| ReplayError::VersionTooLarge {
        kind,
        offered: value,
    })
}

/// The migrations a store whose schema is at version `found` still needs, each with the version
/// it brings the schema to; refuses a version newer than `migrations` knows (a store written by a
/// newer build) with `replay.schema_version_unsupported`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn pending_migrations(
    found: i64,
    migrations: &'static [&'static str],
) -> Result<impl Iterator<Item = (i64, &'static str)>, ReplayError> {
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    if !(0..=supported).contains(&found) {
        return Err(ReplayError::SchemaVersionUnsupported { found, supported });
    }
    Ok((1i64..)
        .zip(migrations.iter().copied())
        .skip(usize::try_from(found).unwrap_or(0)))
}
