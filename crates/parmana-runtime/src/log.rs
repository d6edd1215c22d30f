//! The transparency log over a store's ledger: signed checkpoints by the trust root's `log` role, inclusion proofs of executions, consistency with older checkpoints, witness cosignatures, and the offline check of an attestation's proof.

use parmana_canon::{Digest, Timestamp};
use parmana_replay::{ExecutionEntry, ExecutionId, LedgerLog, ReplayStore, ledger_log};
use parmana_trust::{
    Checkpoint, CheckpointCache, LogRole, NoteKeyName, Signer, TlogProof, TrustError,
    VerifiedCheckpoint, VerifiedInclusion, VerifiedTrustHistory, VerifiedTrustRoot,
    cosign_checkpoint, sign_checkpoint, verify_tlog_proof_cached,
};

use crate::ExecutionError;

/// The `log` role of `trust_root`, or `runtime.no_transparency_log`.
fn log_role(trust_root: &VerifiedTrustRoot) -> Result<&LogRole, ExecutionError> {
    trust_root.log().ok_or(ExecutionError::NoTransparencyLog {
        trust_root_version: trust_root.version(),
    })
}

/// Signs the checkpoint of `store`'s log as it is now (its size and root hash), with `signer`,
/// which must be a key of the `log` role of `trust_root` (`trust.key_lacks_role` otherwise).
/// Returns the signed note, C2SP `tlog-checkpoint` text. A log whose role needs several keys
/// gets the others' signatures with `parmana_trust::cosign_note`.
pub fn sign_log_checkpoint(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    signer: &dyn Signer,
) -> Result<String, ExecutionError> {
    let role = log_role(trust_root)?;
    if !role.holds(&signer.key_id()) {
        return Err(TrustError::KeyLacksRole {
            document: "checkpoint".to_owned(),
            keyid: signer.key_id().to_string(),
            role: "log".to_owned(),
        }
        .into());
    }
    let log = ledger_log(store)?;
    let checkpoint = Checkpoint::new(role.origin().as_str(), log.size(), log.root())?;
    Ok(sign_checkpoint(&checkpoint, role.origin(), signer)?)
}

/// Verifies `checkpoint` (a signed note) as a checkpoint signed by `trust_root`'s log keys
/// (cosignatures are not required here), and that the
/// store's log extends it: its root at the checkpoint's size is the checkpoint's root
/// (`trust.tlog_inconsistent` when the store's ledger was rewritten or truncated since).
fn checked_against_store(
    log: &LedgerLog,
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
) -> Result<VerifiedCheckpoint, ExecutionError> {
    // The log's own signatures: witnesses' cosignatures are the verifier's requirement.
    let verified = log_role(trust_root)?
        .verifier()
        .log_only()
        .open_checkpoint(checkpoint)?;
    let head = verified.checkpoint();
    let reason = match log.tree().root_at(head.size()) {
        Ok(root) if root == head.root() => return Ok(verified),
        Ok(_) => parmana_canon::merkle::MerkleError::RootMismatch,
        Err(e) => e,
    };
    Err(TrustError::TlogInconsistent {
        old_size: head.size(),
        new_size: log.size(),
        reason,
    }
    .into())
}

/// The `.tlog-proof` of `execution_id` in the signed `checkpoint` of `trust_root`'s log, from
/// `store`: the checkpoint must verify and the store's log must extend it; the proof carries the
/// execution's log entry (its ledger record) as its extra data, so that an auditor holding the
/// attestation can check it offline ([`verify_attestation_proof`]). Refused with
/// `runtime.not_in_log` when the execution is not completed or came after the checkpoint.
pub fn prove_execution(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    execution_id: &ExecutionId,
    checkpoint: &[u8],
) -> Result<TlogProof, ExecutionError> {
    let log = ledger_log(store)?;
    let verified = checked_against_store(&log, trust_root, checkpoint)?;
    let size = verified.checkpoint().size();
    let not_in_log = |reason: String| ExecutionError::NotInLog {
        execution_id: execution_id.as_str().to_owned(),
        reason,
    };
    let position = log
        .position_of(execution_id)
        .ok_or_else(|| not_in_log("the store holds no completed execution with this id".into()))?;
    if position >= size {
        return Err(not_in_log(format!(
            "its entry {position} came after the checkpoint of size {size}; sign a newer one"
        )));
    }
    let entry = log
        .entry(position)
        .ok_or_else(|| not_in_log(format!("no entry at {position}")))?;
    let hashes = log
        .tree()
        .inclusion_proof(position, size)
        .map_err(|e| not_in_log(e.to_string()))?;
    Ok(TlogProof::new(
        position,
        hashes,
        String::from_utf8_lossy(checkpoint).into_owned(),
    )
    .with_extra(entry.to_vec()))
}

/// How the store's log extends an older checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConsistency {
    /// The older checkpoint's size.
    pub old_size: u64,
    /// The store's log size now.
    pub new_size: u64,
    /// The store's root hash now.
    pub new_root: Digest,
    /// The RFC 9162 consistency proof from `old_size` to `new_size`.
    pub proof: Vec<Digest>,
}

/// Checks that the store's log now extends the signed checkpoint `old` of `trust_root`'s log
/// (`trust.tlog_inconsistent` when the ledger was rewritten since) and returns the consistency
/// proof from it to the current size.
pub fn log_consistency(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    old: &[u8],
) -> Result<LogConsistency, ExecutionError> {
    let log = ledger_log(store)?;
    let verified = checked_against_store(&log, trust_root, old)?;
    let old_size = verified.checkpoint().size();
    let proof = log
        .tree()
        .consistency_proof(old_size, log.size())
        .map_err(|reason| TrustError::TlogInconsistent {
            old_size,
            new_size: log.size(),
            reason,
        })?;
    Ok(LogConsistency {
        old_size,
        new_size: log.size(),
        new_root: log.root(),
        proof,
    })
}

/// Cosigns the signed checkpoint `checkpoint` of `trust_root`'s log as the witness `name` with
/// `signer`, at `now` (C2SP `tlog-cosignature`), after checking it: signed by the log's keys,
/// and — when `previous`, the last checkpoint this witness cosigned, is given — an extension of
/// it, by a consistency proof taken from `store` and verified against both signed roots
/// (`trust.tlog_inconsistent` when the log forked, rewrote or shrank since). Returns the
/// checkpoint with the cosignature added.
pub fn witness_checkpoint(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    previous: Option<&[u8]>,
    checkpoint: &[u8],
    name: &NoteKeyName,
    signer: &dyn Signer,
    now: Timestamp,
) -> Result<String, ExecutionError> {
    let log_keys = log_role(trust_root)?.verifier().log_only();
    let new = log_keys.open_checkpoint(checkpoint)?;
    if let Some(previous) = previous {
        let old = log_keys.open_checkpoint(previous)?;
        let (old_size, new_size) = (old.checkpoint().size(), new.checkpoint().size());
        let inconsistent = |reason| TrustError::TlogInconsistent {
            old_size,
            new_size,
            reason,
        };
        let proof = if old_size <= new_size {
            ledger_log(store)?
                .tree()
                .consistency_proof(old_size, new_size)
                .map_err(inconsistent)?
        } else {
            Vec::new()
        };
        new.check_extends(&old, &proof)?;
    }
    let timestamp = u64::try_from(now.unix_seconds()).unwrap_or(0);
    let note = String::from_utf8_lossy(checkpoint);
    Ok(cosign_checkpoint(&note, name, signer, timestamp)?)
}

/// Verifies offline that attestations are in the transparency log, checking each distinct
/// checkpoint's signatures once: a batch of proofs against one checkpoint costs one note
/// verification and, per proof, a few hashes.
///
/// Built from the `log` role of the newest trust-root version of a verified history; each
/// [`verify`](Self::verify) is [`verify_attestation_proof`].
#[derive(Debug, Clone)]
pub struct AttestationProofVerifier {
    checkpoints: CheckpointCache,
}

impl AttestationProofVerifier {
    /// The verifier of proofs against checkpoints of the log of `history`'s newest version
    /// (`runtime.no_transparency_log` when it names none).
    pub fn new(history: &VerifiedTrustHistory) -> Result<Self, ExecutionError> {
        let role = log_role(history.newest())?;
        Ok(Self {
            checkpoints: CheckpointCache::new(role.verifier()),
        })
    }

    /// How many distinct checkpoints this verifier has verified and remembers (at most
    /// `CHECKPOINT_CACHE_CAPACITY`).
    pub fn cached_checkpoints(&self) -> usize {
        self.checkpoints.len()
    }

    /// Verifies that the attestation `envelope` is in the log: the proof file `proof` carries a
    /// log entry (its extra data) that records this envelope (its digest) at the proof's index
    /// (`runtime.proof_entry_mismatch` otherwise), and that entry is included in a checkpoint
    /// signed by a threshold of the log's keys, and cosigned by its witnesses when the role
    /// requires them (`trust.tlog_not_included`, `trust.threshold_not_met`, …).
    pub fn verify(
        &mut self,
        envelope: &[u8],
        proof: &[u8],
    ) -> Result<VerifiedInclusion, ExecutionError> {
        let proof = TlogProof::parse(proof)?;
        let mismatch = |what: &'static str| ExecutionError::ProofEntryMismatch { what };
        let entry = proof
            .extra()
            .ok_or(mismatch("entry (the proof carries none)"))?;
        let record =
            ExecutionEntry::read(entry).ok_or(mismatch("entry (not an execution record)"))?;
        if record.position != proof.index() {
            return Err(mismatch("position"));
        }
        if record.attestation_digest != Digest::of(envelope) {
            return Err(mismatch("attestation digest"));
        }
        Ok(verify_tlog_proof_cached(
            &proof,
            entry,
            &mut self.checkpoints,
        )?)
    }
}

/// Verifies offline that the attestation `envelope` is in the transparency log: the proof file
/// `proof` carries a log entry (its extra data) that records this envelope (its digest) at the
/// proof's index (`runtime.proof_entry_mismatch` otherwise), and that entry is included in a
/// checkpoint signed by a threshold of the `log` role of the newest trust-root version of
/// `history` (`trust.tlog_not_included`, `trust.threshold_not_met`, …). For many proofs, an
/// [`AttestationProofVerifier`] checks each distinct checkpoint once.
pub fn verify_attestation_proof(
    envelope: &[u8],
    proof: &[u8],
    history: &VerifiedTrustHistory,
) -> Result<VerifiedInclusion, ExecutionError> {
    AttestationProofVerifier::new(history)?.verify(envelope, proof)
}
