//! The transparency log over a store's ledger: signed checkpoints by the trust root's `log` role, inclusion proofs of executions, consistency with older checkpoints, witness cosignatures, and the offline check of an attestation's proof.

use parmana_canon::tile::{Tile, TileKind};
use parmana_canon::{Digest, Timestamp};

use parmana_canon::merkle::MerkleError;
use parmana_replay::{
    EntryHashes, ExecutionEntry, ExecutionId, ExecutionState, LedgerBreak, LedgerBreakKind,
    LedgerLog, ReplayError, ReplayStore, StoredCheckpoint, ledger_log, read_checked_entries,
};
use parmana_trust::{
    CheckpointCache, LogRole, NoteKeyName, Signer, TlogProof, TrustError, VerifiedCheckpoint,
    VerifiedInclusion, VerifiedTrustHistory, VerifiedTrustRoot, cosign_verified_checkpoint,
    verify_tlog_proof_cached,
};

use crate::ExecutionError;
use crate::anchor::LogAnchor;
use crate::sequencer::{LogSequencer, LogSigning, check_log_signer, sign_stored_checkpoint};

/// The `log` role of `trust_root`, or `runtime.no_transparency_log`.
pub(crate) fn log_role(trust_root: &VerifiedTrustRoot) -> Result<&LogRole, ExecutionError> {
    trust_root.log().ok_or(ExecutionError::NoTransparencyLog {
        trust_root_version: trust_root.version(),
    })
}

/// Integrates every completed execution still waiting (the batched sequencer), then signs the
/// checkpoint of `store`'s log as it is now (its size and root hash) with each of `signers`,
/// keys of the `log` role of `trust_root` (`trust.key_lacks_role` otherwise) at least as many
/// as its threshold (`trust.threshold_not_met` otherwise), and stores it when it is larger than
/// the newest stored checkpoint — which must commit to the log (`trust.tlog_inconsistent`).
/// Returns the signed note, C2SP `tlog-checkpoint` text, with one signature per key.
/// With an `anchor`, a log that does not extend the largest checkpoint it records is refused.
/// `history` is the trust-root chain `trust_root` (its newest version) ends, against which the
/// entries' attestations are verified at `now` before anything is signed
/// (`runtime.log_entry_unattested`); `release_manifest` is the release-manifest version in
/// force, which no marks record signed may pass ([`LogSigning::release_manifest`]).
pub fn sign_log_checkpoint(
    store: &dyn ReplayStore,
    history: &VerifiedTrustHistory,
    now: Timestamp,
    release_manifest: u64,
    signers: &[&dyn Signer],
    anchor: Option<&LogAnchor>,
) -> Result<String, ExecutionError> {
    let signing = LogSigning {
        trust_root: history.newest(),
        history,
        now,
        release_manifest,
        signers,
        anchor,
    };
    let driver = LogSequencer::default();
    let report = driver.run_all(store, Some(signing))?;
    if let Some(stored) = report.checkpoint {
        return Ok(stored.note);
    }
    // Nothing larger stored by the run (nothing grew, or another integrator held the ledger —
    // PostgreSQL's lock — so the run signed nothing): the current log's checkpoint, signed by
    // this key through the run's driver (it agrees with the log the run kept, and extends what
    // the run signed), after the same consistency check with the newest stored one, and stored
    // when it is larger, as a run stores it (a store keeps one per size: another signer's stays).
    let log = read_log(store)?;
    let latest = store.latest_checkpoint()?;
    if let Some(latest) = &latest {
        check_commits(log.ledger_log(), latest)?;
    }
    let signed = driver.sign_snapshot_checkpoint(&log, store, signing)?;
    if signed.size > latest.map_or(0, |latest| latest.size) {
        store.store_checkpoint(&signed)?;
    }
    Ok(signed.note)
}

/// Refuses a log whose root at `checkpoint`'s size is not its root (`trust.tlog_inconsistent`).
pub(crate) fn check_commits(
    log: &LedgerLog,
    checkpoint: &StoredCheckpoint,
) -> Result<(), ExecutionError> {
    let reason = match log.tree().root_at(checkpoint.size) {
        Ok(root) if root == checkpoint.root => return Ok(()),
        Ok(_) => parmana_canon::merkle::MerkleError::RootMismatch,
        Err(e) => e,
    };
    Err(TrustError::TlogInconsistent {
        old_size: checkpoint.size,
        new_size: log.size(),
        reason,
    }
    .into())
}

/// The newest checkpoint `store` holds (the largest), or `runtime.no_checkpoint`.
pub fn latest_log_checkpoint(store: &dyn ReplayStore) -> Result<StoredCheckpoint, ExecutionError> {
    store
        .latest_checkpoint()?
        .ok_or_else(|| ExecutionError::NoCheckpoint {
            reason: "yet: the sequencer signs one when a log key is configured \
                     (`parmana log sequence --key FILE`)"
                .to_owned(),
        })
}

/// [`latest_log_checkpoint`], once its note is checked: signed by a threshold of the `log`
/// role of the newest version of `history` (the trust root in force) and saying the size and
/// root it is stored under (`runtime.stored_checkpoint_invalid` otherwise). The store is outside
/// the trust boundary: a writer of it could store any note, which an operator might then publish
/// or send to witnesses — one signed by a log key rotated out (perhaps because it leaked) too,
/// which an older version's role would still open: it is refused, and says so (signing one with
/// a key in force, `parmana log checkpoint --key`, gives a checkpoint to publish).
pub fn verified_latest_log_checkpoint(
    store: &dyn ReplayStore,
    history: &VerifiedTrustHistory,
) -> Result<StoredCheckpoint, ExecutionError> {
    let stored = latest_log_checkpoint(store)?;
    crate::sequencer::check_stored_note(&stored, history)?;
    let role = log_role(history.newest())?;
    if let Err(error) = role
        .verifier()
        .log_only()
        .open_checkpoint(stored.note.as_bytes())
    {
        return Err(ExecutionError::StoredCheckpointInvalid {
            size: stored.size,
            reason: format!(
                "it is signed by a log key of an older trust-root version only, which the \
                 version in force ({}) no longer accepts — rotated out (as planned, or because \
                 it leaked), or its role changed ([{}] {error}): `parmana log checkpoint --key` \
                 prints one signed with a key in force now, and stores it once the log has \
                 grown past this one",
                history.newest().version(),
                error.code()
            ),
        });
    }
    Ok(stored)
}

/// The log as one read of the store sees it: what `parmana serve` serves (C2SP `tlog-tiles`
/// tiles and entry bundles, the checkpoint, execution proofs) and what the `log` commands prove
/// from.
///
/// The tree is built from the store's sequenced ledger by [`read_log`] and extended with the
/// records appended since by [`catch_up`](LogSnapshot::catch_up); the checkpoint is signed on demand with the log key ([`LogSnapshot::checkpoint`]). Ed25519 is
/// deterministic and a checkpoint holds only the origin, size and root, so at a size the
/// sequencer has stored a checkpoint for, the note is byte for byte the stored one.
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
    /// The root of the log's first `size` entries (`None` past the log).
    pub fn root_at(&self, size: u64) -> Option<Digest> {
        self.log.tree().root_at(size).ok()
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The position of `execution_id`'s record in the log (`None` where the log holds none).
    pub fn position_of(&self, execution_id: &ExecutionId) -> Option<u64> {
        self.log.position_of(execution_id)
    }

    /// The `add-checkpoint` body for a witness that last cosigned the checkpoint of `old_size`,
    /// as [`witness_request`](crate::witness_request) makes it, from this snapshot instead of
    /// the whole ledger read again.
    pub fn witness_request(
        &self,
        trust_root: &VerifiedTrustRoot,
        checkpoint: &[u8],
        old_size: u64,
    ) -> Result<String, ExecutionError> {
        crate::witness::witness_request_of(&self.log, trust_root, checkpoint, old_size)
    }

    /// The root hash of the tree at its size.
    pub fn root(&self) -> Digest {
        self.log.root()
    }

    /// Extends this snapshot with the records `store` appended since it was read, each checked
    /// as the sequencer checks the records it appends
    /// ([`LedgerLog::catch_up`](parmana_replay::LedgerLog::catch_up)), without reading the whole
    /// ledger again. When the store's records no longer extend it, it reads the whole ledger,
    /// verified, and takes it only if it extends this snapshot (`trust.tlog_inconsistent`
    /// otherwise, and the snapshot stays as it was: a log served never forks or shrinks). Store
    /// failures are errors; the records read before one stay, a longer prefix of the same log.
    pub fn catch_up(&mut self, store: &dyn ReplayStore) -> Result<(), ExecutionError> {
        match self.log.catch_up(store) {
            Err(ReplayError::LedgerBroken(_)) => {
                let whole = ledger_log(store)?;
                crate::sequencer::check_log_extends(&self.log, &whole)?;
                self.log = whole;
                Ok(())
            }
            caught_up => Ok(caught_up?),
        }
    }

    /// The signed checkpoint of the log at this snapshot's size, by each of `signers`, keys of
    /// the `log` role of the newest version of `history` (checked: `trust.key_lacks_role`, and
    /// `trust.threshold_not_met` with fewer than its threshold), once
    /// the entries past the newest checkpoint its keys signed are attested executions (read
    /// from `store`, verified at `now`, marks records no higher than `release_manifest` and the
    /// trust root's version); with an `anchor`, refused unless the log extends the largest
    /// checkpoint it records. A process that also runs a [`LogSequencer`] over the store signs
    /// through it instead ([`LogSequencer::sign_snapshot`]), so that no tree the sequencer's runs
    /// contradict is signed in the process.
    pub fn checkpoint(
        &self,
        store: &dyn ReplayStore,
        history: &VerifiedTrustHistory,
        now: Timestamp,
        release_manifest: u64,
        signers: &[&dyn Signer],
        anchor: Option<&LogAnchor>,
    ) -> Result<String, ExecutionError> {
        let signing = LogSigning {
            trust_root: history.newest(),
            history,
            now,
            release_manifest,
            signers,
            anchor,
        };
        check_log_signer(signing)?;
        Ok(sign_stored_checkpoint(store, &self.log, signing, None)?.note)
    }

    /// The log read.
    pub(crate) fn ledger_log(&self) -> &LedgerLog {
        &self.log
    }

    /// The bytes of a C2SP `tlog-tiles` tile of this log: its hashes, or for an entry bundle the
    /// length-prefixed entries, read back from `store` and each checked against the tree
    /// (`tile.beyond_tree` when the log does not hold it all yet; `trust.tlog_inconsistent` when
    /// the store no longer holds an entry the log was built from).
    pub fn tile(&self, store: &dyn ReplayStore, tile: &Tile) -> Result<Vec<u8>, ExecutionError> {
        match tile.kind() {
            TileKind::Hashes { .. } => Ok(tile.hashes(self.log.tree())?),
            TileKind::Entries => self.entry_bundle(tile)?.read(store),
        }
    }

    /// What the entry bundle `tile` is of this log — its size and the leaf hashes of the
    /// entries it holds — to be read from the store with [`EntryBundle::read`] once this
    /// snapshot is let go (a snapshot held while the store is read is copied whole by the next
    /// catch-up).
    pub fn entry_bundle(&self, tile: &Tile) -> Result<EntryBundle, ExecutionError> {
        let positions = tile.entry_positions(self.log.size())?;
        Ok(EntryBundle {
            tile: *tile,
            size: self.log.size(),
            hashes: self.log.entry_hashes(positions),
        })
    }

    /// The `.tlog-proof` of `execution_id` in the signed `checkpoint` of `trust_root`'s log:
    /// see [`prove_execution`].
    pub fn prove(
        &self,
        store: &dyn ReplayStore,
        trust_root: &VerifiedTrustRoot,
        execution_id: &ExecutionId,
        checkpoint: &[u8],
    ) -> Result<TlogProof, ExecutionError> {
        self.pending_proof(trust_root, execution_id, checkpoint)?
            .read(store)
    }

    /// [`prove`](Self::prove) as far as this snapshot holds it, without reading the store: the
    /// checkpoint verified and committing to this log, the execution's position in it, the
    /// inclusion proof — refused here when the entry came after the checkpoint — to be finished
    /// with [`PendingProof::read`] once the snapshot is let go.
    pub fn pending_proof(
        &self,
        trust_root: &VerifiedTrustRoot,
        execution_id: &ExecutionId,
        checkpoint: &[u8],
    ) -> Result<PendingProof, ExecutionError> {
        pending_proof(&self.log, trust_root, execution_id, checkpoint, true)
    }
}

/// An entry bundle of a log snapshot ([`LogSnapshot::entry_bundle`]): the tile, the log's size
/// and the leaf hashes of its entries — all its reading from the store needs.
#[derive(Debug, Clone)]
pub struct EntryBundle {
    tile: Tile,
    size: u64,
    hashes: EntryHashes,
}

impl EntryBundle {
    /// The bundle's bytes: each entry read back from `store` (the records alone) and checked
    /// against its leaf hash (`trust.tlog_inconsistent` when the store no longer holds it).
    pub fn read(&self, store: &dyn ReplayStore) -> Result<Vec<u8>, ExecutionError> {
        let entries = read_checked_entries(store, &self.hashes)
            .map_err(|error| inconsistent_entry(error, self.size))?;
        let start = self.hashes.start();
        Ok(self.tile.bundle(self.size, |position| {
            let index = usize::try_from(position.checked_sub(start)?).ok()?;
            entries.get(index).map(Vec::as_slice)
        })?)
    }
}

/// A record read back that is no longer the entry of the log of `size`:
/// `trust.tlog_inconsistent`; any other refusal as it is.
fn inconsistent_entry(error: ReplayError, size: u64) -> ExecutionError {
    match error {
        ReplayError::LedgerBroken(LedgerBreak {
            position,
            kind: LedgerBreakKind::EntryChanged,
        }) => TrustError::TlogInconsistent {
            old_size: size,
            new_size: size,
            reason: MerkleError::LeafMismatch { index: position },
        }
        .into(),
        other => other.into(),
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

/// The `.tlog-proof` of `execution_id` in the signed `checkpoint` of `trust_root`'s log — or,
/// without one, in the newest checkpoint `store` holds — from `store`: the checkpoint must
/// verify and the store's log must extend it; the proof carries the execution's log entry (its
/// ledger record) as its extra data, so that an auditor holding the attestation can check it
/// offline ([`verify_attestation_proof`]). Refused with `runtime.not_in_log` when the execution
/// is not completed, `runtime.not_yet_sequenced` when it is completed but not yet in the log,
/// and — for the entry after the checkpoint — `runtime.no_checkpoint` with the stored one,
/// `runtime.not_in_log` with a given one.
pub fn prove_execution(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    execution_id: &ExecutionId,
    checkpoint: Option<&[u8]>,
) -> Result<TlogProof, ExecutionError> {
    let stored;
    let given = checkpoint.is_some();
    let checkpoint = match checkpoint {
        Some(given) => given,
        None => {
            stored = latest_log_checkpoint(store)?;
            stored.note.as_bytes()
        }
    };
    prove_in(
        store,
        &ledger_log(store)?,
        trust_root,
        execution_id,
        checkpoint,
        given,
    )
}

/// [`prove_execution`] in `log`, read from `store`; `given`: the checkpoint was the caller's
/// (not the newest stored one).
fn prove_in(
    store: &dyn ReplayStore,
    log: &LedgerLog,
    trust_root: &VerifiedTrustRoot,
    execution_id: &ExecutionId,
    checkpoint: &[u8],
    given: bool,
) -> Result<TlogProof, ExecutionError> {
    pending_proof(log, trust_root, execution_id, checkpoint, given)?.read(store)
}

/// What the `.tlog-proof` of `execution_id` in the signed `checkpoint` is of `log`, found
/// without reading the store (see [`PendingProof`]); `given` as in [`prove_in`].
fn pending_proof(
    log: &LedgerLog,
    trust_root: &VerifiedTrustRoot,
    execution_id: &ExecutionId,
    checkpoint: &[u8],
    given: bool,
) -> Result<PendingProof, ExecutionError> {
    let verified = checked_against_store(log, trust_root, checkpoint)?;
    let size = verified.checkpoint().size();
    let pending = |found| PendingProof {
        execution_id: execution_id.clone(),
        checkpoint: String::from_utf8_lossy(checkpoint).into_owned(),
        log_size: log.size(),
        found,
    };
    let Some(position) = log.position_of(execution_id) else {
        return Ok(pending(None));
    };
    if position >= size {
        let reason = format!("its entry {position} came after the checkpoint of size {size}");
        return Err(if !given {
            ExecutionError::NoCheckpoint {
                reason: format!("covers it yet: {reason}"),
            }
        } else {
            not_in_log(execution_id, format!("{reason}; sign a newer one"))
        });
    }
    let inclusion = log
        .tree()
        .inclusion_proof(position, size)
        .map_err(|e| not_in_log(execution_id, e.to_string()))?;
    Ok(pending(Some(InLog {
        position,
        entry: log.entry_hashes(position..position.saturating_add(1)),
        inclusion,
    })))
}

/// `runtime.not_in_log` for `execution_id`, for `reason`.
fn not_in_log(execution_id: &ExecutionId, reason: String) -> ExecutionError {
    ExecutionError::NotInLog {
        execution_id: execution_id.as_str().to_owned(),
        reason,
    }
}

/// The `.tlog-proof` of an execution as far as a log snapshot holds it
/// ([`LogSnapshot::pending_proof`]) — the checkpoint, the execution's position, the inclusion
/// proof and its entry's leaf hash — to be finished from the store with [`PendingProof::read`]
/// once the snapshot is let go (a snapshot held while the store is read is copied whole by the
/// next catch-up).
#[derive(Debug, Clone)]
pub struct PendingProof {
    execution_id: ExecutionId,
    checkpoint: String,
    /// The size of the log it was found in.
    log_size: u64,
    /// Where the log holds the execution; `None` where its index does not.
    found: Option<InLog>,
}

/// Where a log holds an execution: its position, its entry's leaf hash and its inclusion
/// proof in the checkpoint.
#[derive(Debug, Clone)]
struct InLog {
    position: u64,
    entry: EntryHashes,
    inclusion: Vec<Digest>,
}

impl PendingProof {
    /// The proof, its entry read back from `store` (the record alone) and checked against its
    /// leaf hash (`trust.tlog_inconsistent` when the store no longer holds it) and as this
    /// execution's record (`runtime.proof_entry_mismatch`). For an execution the log does not
    /// hold, `runtime.not_yet_sequenced` when the store holds it completed, `runtime.not_in_log`
    /// otherwise.
    pub fn read(self, store: &dyn ReplayStore) -> Result<TlogProof, ExecutionError> {
        let execution_id = &self.execution_id;
        let Some(found) = self.found else {
            if matches!(store.get(execution_id)?, ExecutionState::Completed(_)) {
                return Err(ExecutionError::NotYetSequenced {
                    execution_id: execution_id.as_str().to_owned(),
                });
            }
            return Err(not_in_log(
                execution_id,
                "the store holds no completed execution with this id".into(),
            ));
        };
        let entry = read_checked_entries(store, &found.entry)
            .map_err(|error| inconsistent_entry(error, self.log_size))?
            .pop()
            .ok_or_else(|| not_in_log(execution_id, format!("no entry at {}", found.position)))?;
        // The index found the position; the entry there, which the tree commits to, must be
        // this execution's record — never another's handed out as its proof.
        if ExecutionEntry::read(&entry).is_none_or(|e| e.execution_id != execution_id.as_str()) {
            return Err(ExecutionError::ProofEntryMismatch {
                what: "execution id",
            });
        }
        Ok(TlogProof::new(found.position, found.inclusion, self.checkpoint).with_extra(entry))
    }
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
/// it, by a consistency proof taken from `store` and verified against both roots
/// (`trust.tlog_inconsistent` when the log forked, rewrote or shrank since; `previous` must be
/// a checkpoint of this log carrying this witness's own cosignature —
/// `runtime.witness_state_refused` otherwise — and is judged by its size and root). A clock before 1970
/// is refused (`trust.note_malformed`), as the served witness refuses it. Returns the
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
    let role = log_role(trust_root)?;
    let log_keys = role.verifier().log_only();
    let new = log_keys.open_checkpoint(checkpoint)?;
    // An empty log has one root, as the served witness judges it: a checkpoint of size 0 with
    // another, once cosigned and kept as the state, could never be extended.
    if new.checkpoint().size() == 0
        && new.checkpoint().root() != parmana_canon::merkle::empty_root()
    {
        return Err(TrustError::TlogInconsistent {
            old_size: 0,
            new_size: 0,
            reason: parmana_canon::merkle::MerkleError::RootMismatch,
        }
        .into());
    }
    if let Some(previous) = previous {
        // The witness's own record of what it cosigned last, verified when it cosigned it:
        // taken once it is a checkpoint of this log with this witness's own cosignature, then
        // judged by its size and root, its log signatures not verified again (a log key
        // rotated out since may have signed it), as the served witness judges its state.
        let old = crate::witness::own_state(previous, role.origin().as_str(), name, signer)?;
        let newer = new.checkpoint();
        let (old_size, new_size) = (old.size(), newer.size());
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
        parmana_canon::merkle::verify_consistency(
            old_size,
            new_size,
            &proof,
            old.root(),
            newer.root(),
        )
        .map_err(inconsistent)?;
    }
    let timestamp = crate::witness::cosignature_timestamp(now)?;
    Ok(cosign_verified_checkpoint(
        &new,
        role.witnesses().0,
        name,
        signer,
        timestamp,
    )?)
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
    ) -> Result<AttestationInclusion, ExecutionError> {
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
        let envelope_digest = Digest::of(envelope);
        if record.attestation_digest != envelope_digest {
            return Err(mismatch("attestation digest"));
        }
        let inclusion = verify_tlog_proof_cached(&proof, entry, &mut self.checkpoints)?;
        Ok(AttestationInclusion {
            envelope_digest,
            inclusion,
        })
    }
}

/// The proven inclusion of an attestation's log entry, bound to that attestation: only
/// [`AttestationProofVerifier::verify`] (and [`verify_attestation_proof`]) build one, once the
/// entry is proven to record the envelope they were given. What a revocation orders an
/// attestation by ([`verify_attestation_with_log`](crate::verify_attestation_with_log)), which
/// takes it for that envelope alone: a trust-layer [`VerifiedInclusion`] proves something of
/// *some* entry, and paired with another attestation would let a revoked key's forgery borrow
/// an honest entry's place.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationInclusion {
    envelope_digest: Digest,
    inclusion: VerifiedInclusion,
}

impl AttestationInclusion {
    /// The digest of the attestation envelope the entry records.
    pub fn envelope_digest(&self) -> Digest {
        self.envelope_digest
    }

    /// The verified inclusion: the entry's index and the checkpoint it is included in.
    pub fn inclusion(&self) -> &VerifiedInclusion {
        &self.inclusion
    }

    /// The entry's index in the log.
    pub fn index(&self) -> u64 {
        self.inclusion.index()
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
) -> Result<AttestationInclusion, ExecutionError> {
    AttestationProofVerifier::new(history)?.verify(envelope, proof)
}
