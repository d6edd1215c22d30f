//! The transparency log over a store's ledger: signed checkpoints by the trust root's `log` role, inclusion proofs of executions, consistency with older checkpoints, witness cosignatures, and the offline check of an attestation's proof.

use parmana_canon::tile::{Tile, TileKind};
use parmana_canon::{Digest, Timestamp};
use parmana_replay::{ExecutionEntry, ExecutionId, LedgerLog, ReplayStore, ledger_log};
use parmana_trust::{
    Checkpoint, LogRole, NoteKeyName, Signer, TlogProof, TrustError, VerifiedCheckpoint,
    VerifiedInclusion, VerifiedTrustHistory, VerifiedTrustRoot, cosign_checkpoint, sign_checkpoint,
};

use crate::ExecutionError;

/// The `log` role of `trust_root`, or `runtime.no_transparency_log`.
fn log_role(trust_root: &VerifiedTrustRoot) -> Result<&LogRole, ExecutionError> {
    trust_root.log().ok_or(ExecutionError::NoTransparencyLog {
        trust_root_version: trust_root.version(),
    })
}

/// Refuses `signer` unless it is a key of the `log` role of `trust_root`
/// (`runtime.no_transparency_log` without the role, `trust.key_lacks_role` for another key).
/// `parmana serve --log-key` checks its key with this before it starts.
pub fn check_log_signer(
    trust_root: &VerifiedTrustRoot,
    signer: &dyn Signer,
) -> Result<(), ExecutionError> {
    let role = log_role(trust_root)?;
    if !role.holds(&signer.key_id()) {
        return Err(TrustError::KeyLacksRole {
            document: "checkpoint".to_owned(),
            keyid: signer.key_id().to_string(),
            role: "log".to_owned(),
        }
        .into());
    }
    Ok(())
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
    check_log_signer(trust_root, signer)?;
    read_log(store)?.checkpoint(trust_root, signer)
}

/// The log as one read of the store sees it: what `parmana serve` serves (C2SP `tlog-tiles`
/// tiles and entry bundles, the checkpoint, execution proofs) and what the `log` commands prove
/// from.
///
/// Today the tree is rebuilt from the store's ledger on every read ([`read_log`]) and the
/// checkpoint is signed on demand with a log key ([`LogSnapshot::checkpoint`]); a sequencer
/// that integrates the tree and stores signed checkpoints replaces these two, and everything
/// served from a snapshot stays as it is.
#[derive(Debug, Clone)]
pub struct LogSnapshot {
    log: LedgerLog,
}

/// Reads `store`'s log in one consistent snapshot of its ledger (`replay.ledger_broken` when
/// the ledger is not intact).
pub fn read_log(store: &dyn ReplayStore) -> Result<LogSnapshot, ExecutionError> {
    Ok(LogSnapshot {
        log: ledger_log(store)?,
    })
}

impl LogSnapshot {
    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The signed checkpoint of the log at this snapshot's size, by `signer`, a key of the
    /// `log` role of `trust_root` (checked: `trust.key_lacks_role`).
    pub fn checkpoint(
        &self,
        trust_root: &VerifiedTrustRoot,
        signer: &dyn Signer,
    ) -> Result<String, ExecutionError> {
        check_log_signer(trust_root, signer)?;
        let role = log_role(trust_root)?;
        let checkpoint = Checkpoint::new(role.origin().as_str(), self.log.size(), self.log.root())?;
        Ok(sign_checkpoint(&checkpoint, role.origin(), signer)?)
    }

    /// The bytes of a C2SP `tlog-tiles` tile of this log: its hashes, or for an entry bundle the
    /// length-prefixed entries (`tile.beyond_tree` when the log does not hold it all yet).
    pub fn tile(&self, tile: &Tile) -> Result<Vec<u8>, ExecutionError> {
        let bytes = match tile.kind() {
            TileKind::Hashes { .. } => tile.hashes(self.log.tree())?,
            TileKind::Entries => tile.bundle(self.log.size(), |p| self.log.entry(p))?,
        };
        Ok(bytes)
    }

    /// The `.tlog-proof` of `execution_id` in the signed `checkpoint` of `trust_root`'s log:
    /// see [`prove_execution`].
    pub fn prove(
        &self,
        trust_root: &VerifiedTrustRoot,
        execution_id: &ExecutionId,
        checkpoint: &[u8],
    ) -> Result<TlogProof, ExecutionError> {
        prove_in(&self.log, trust_root, execution_id, checkpoint)
    }
}

/// Verifies `checkpoint` (a signed note) as a checkpoint signed by `trust_root`'s log keys
/// (cosignatures are not required here), and that the
/// store's log extends it: its root at the checkpoint's size is the checkpoint's root
/// (`trust.tlog_inconsistent` when the store's ledger was rewritten or truncated since).
pub(crate) fn checked_against_store(
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
    prove_in(&ledger_log(store)?, trust_root, execution_id, checkpoint)
}

fn prove_in(
    log: &LedgerLog,
    trust_root: &VerifiedTrustRoot,
    execution_id: &ExecutionId,
    checkpoint: &[u8],
) -> Result<TlogProof, ExecutionError> {
    let verified = checked_against_store(log, trust_root, checkpoint)?;
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

/// Verifies offline that the attestation `envelope` is in the transparency log: the proof file
/// `proof` carries a log entry (its extra data) that records this envelope (its digest) at the
/// proof's index (`runtime.proof_entry_mismatch` otherwise), and that entry is included in a
/// checkpoint signed by a threshold of the `log` role of the newest trust-root version of
/// `history` (`trust.tlog_not_included`, `trust.threshold_not_met`, …).
pub fn verify_attestation_proof(
    envelope: &[u8],
    proof: &[u8],
    history: &VerifiedTrustHistory,
) -> Result<VerifiedInclusion, ExecutionError> {
    let proof = TlogProof::parse(proof)?;
    let mismatch = |what: &'static str| ExecutionError::ProofEntryMismatch { what };
    let entry = proof
        .extra()
        .ok_or(mismatch("entry (the proof carries none)"))?;
    let record = ExecutionEntry::read(entry).ok_or(mismatch("entry (not an execution record)"))?;
    if record.position != proof.index() {
        return Err(mismatch("position"));
    }
    if record.attestation_digest != Digest::of(envelope) {
        return Err(mismatch("attestation digest"));
    }
    let role = log_role(history.newest())?;
    Ok(parmana_trust::verify_tlog_proof(
        &proof,
        entry,
        &role.verifier(),
    )?)
}
