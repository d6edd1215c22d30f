//! The C2SP `tlog-witness` protocol's two sides: the witness's decision on an `add-checkpoint` request against the last checkpoint it cosigned, and the log's request (with the consistency proof from the store) and the cosignatures it gets back.

use parmana_canon::Timestamp;
use parmana_canon::merkle::{empty_root, verify_consistency};
use parmana_replay::{ReplayStore, ledger_log};
use parmana_trust::{
    AddCheckpoint, Checkpoint, CosignerKey, Note, NoteKeyName, Signer, TrustError,
    VerifiedTrustRoot, cosign_verified_checkpoint, verify_cosignatures,
};

use crate::ExecutionError;

/// A checkpoint the witness cosigned: the note to keep as its state, and the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCosigned {
    /// The checkpoint with the witness's cosignature added: the witness's new state.
    pub checkpoint: String,
    /// The `add-checkpoint` response: the cosignature line, `— <name> <base64>` and a newline.
    pub signature_lines: String,
}

/// The checkpoint text of a signed note, unverified (the witness's own state, or a request's
/// checkpoint before its origin is known).
pub(crate) fn checkpoint_text(note: &[u8]) -> Result<Checkpoint, TrustError> {
    Checkpoint::parse_text(Note::parse(note)?.text())
}

/// A cosignature's timestamp: `now` in Unix seconds, refused when not after 1970
/// (`trust.note_malformed`).
pub(crate) fn cosignature_timestamp(now: Timestamp) -> Result<u64, TrustError> {
    u64::try_from(now.unix_seconds())
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| TrustError::NoteMalformed {
            message: "a cosignature's timestamp must be after 1970".to_owned(),
        })
}

/// The size of the checkpoint a witness cosigned last, from its state (`0` without one).
pub fn witness_state_size(state: Option<&[u8]>) -> Result<u64, ExecutionError> {
    Ok(match state {
        Some(note) => checkpoint_text(note)?.size(),
        None => 0,
    })
}

/// The checkpoint of a witness's state, once the state is shown to be its own: a checkpoint of
/// the log `origin` (a state kept for another log is not this log's history) carrying a valid
/// cosignature of this witness (`name`, `signer`'s key) — what this witness wrote, not bytes
/// someone else put in the file to choose what it extends (`runtime.witness_state_refused`).
pub(crate) fn own_state(
    state: &[u8],
    origin: &str,
    name: &NoteKeyName,
    signer: &dyn Signer,
) -> Result<Checkpoint, ExecutionError> {
    let refused = |reason: String| ExecutionError::WitnessStateRefused {
        path: "file".to_owned(),
        reason,
    };
    // Refused as the state's fault, never as the request's (a malformed request is a 400).
    let note = Note::parse(state).map_err(|e| refused(format!("it is not a signed note: {e}")))?;
    let checkpoint = Checkpoint::parse_text(note.text())
        .map_err(|e| refused(format!("it is not a checkpoint: {e}")))?;
    if checkpoint.origin() != origin {
        return Err(refused(format!(
            "it is a checkpoint of {:?}, not of the log {origin:?} this witness serves",
            checkpoint.origin()
        )));
    }
    let own = CosignerKey::new(name.clone(), signer.public_key());
    verify_cosignatures(&note, &[own], 1).map_err(|_| {
        refused(format!(
            "it carries no valid cosignature of this witness ({name}): it is not a state this \
             witness wrote"
        ))
    })?;
    Ok(checkpoint)
}

/// Checks a witness's `state` as [`witness_add_checkpoint`] takes it — a checkpoint of
/// `trust_root`'s log carrying this witness's own valid cosignature (`name`, `signer`'s key) —
/// and returns its size: for a witness to refuse, at start, a state it would refuse every
/// request by (`runtime.witness_state_refused`).
pub fn check_witness_state(
    state: &[u8],
    trust_root: &VerifiedTrustRoot,
    name: &NoteKeyName,
    signer: &dyn Signer,
) -> Result<u64, ExecutionError> {
    let role = trust_root.log().ok_or(ExecutionError::NoTransparencyLog {
        trust_root_version: trust_root.version(),
    })?;
    Ok(own_state(state, role.origin().as_str(), name, signer)?.size())
}

/// Decides an `add-checkpoint` request as C2SP `tlog-witness` says, for the log of
/// `trust_root`'s `log` role, the witness `name` signing with `signer` at `now`. `state` is the
/// checkpoint this witness cosigned last: taken only as a checkpoint of this log carrying this
/// witness's own valid cosignature (`runtime.witness_state_refused`, HTTP 500, otherwise). In
/// order:
///
/// - a body that does not parse: `trust.witness_request_malformed` (HTTP 400);
/// - a checkpoint of another origin: `trust.checkpoint_origin_mismatch` (404);
/// - no valid signature of the log's keys, or a bad one: `trust.note_unverified`,
///   `trust.note_bad_signature`, `trust.threshold_not_met` (403);
/// - an old size above the checkpoint's: `trust.witness_request_malformed` (400);
/// - an old size other than the state's: `runtime.witness_size_mismatch` (409, with the size);
/// - the state's size with another root (a fork): `runtime.witness_root_mismatch` (409);
/// - a size-0 checkpoint whose root is not the empty tree's, a proof that does not lead from the
///   state's root to the new one (a non-empty proof from 0 or at one size):
///   `trust.tlog_inconsistent` (422).
///
/// Then it cosigns (C2SP `tlog-cosignature`, Ed25519). The caller persists
/// [`WitnessCosigned::checkpoint`] before answering, atomically with the check of the state.
pub fn witness_add_checkpoint(
    trust_root: &VerifiedTrustRoot,
    state: Option<&[u8]>,
    body: &[u8],
    name: &NoteKeyName,
    signer: &dyn Signer,
    now: Timestamp,
) -> Result<WitnessCosigned, ExecutionError> {
    let role = trust_root.log().ok_or(ExecutionError::NoTransparencyLog {
        trust_root_version: trust_root.version(),
    })?;
    let request = AddCheckpoint::parse(body)?;
    let claimed = checkpoint_text(request.checkpoint().as_bytes())?;
    if claimed.origin() != role.origin().as_str() {
        return Err(TrustError::CheckpointOriginMismatch {
            expected: role.origin().to_string(),
            found: claimed.origin().to_owned(),
        }
        .into());
    }
    let verified = role
        .verifier()
        .log_only()
        .open_checkpoint(request.checkpoint().as_bytes())?;
    let new = verified.checkpoint();
    if request.old_size() > new.size() {
        return Err(TrustError::WitnessRequestMalformed {
            message: format!(
                "the old size {} is above the checkpoint's size {}",
                request.old_size(),
                new.size()
            ),
        }
        .into());
    }
    let stored = state
        .map(|state| own_state(state, role.origin().as_str(), name, signer))
        .transpose()?;
    let stored_size = stored.as_ref().map_or(0, Checkpoint::size);
    if request.old_size() != stored_size {
        return Err(ExecutionError::WitnessSizeMismatch {
            requested: request.old_size(),
            size: stored_size,
        });
    }
    let inconsistent = |reason| TrustError::TlogInconsistent {
        old_size: stored_size,
        new_size: new.size(),
        reason,
    };
    if new.size() == 0 && new.root() != empty_root() {
        return Err(inconsistent(parmana_canon::merkle::MerkleError::RootMismatch).into());
    }
    let old_root = stored.as_ref().map_or_else(empty_root, Checkpoint::root);
    // The size it cosigned, with another root: a fork (C2SP: 409, not a proof's 422).
    if new.size() == stored_size && new.root() != old_root {
        return Err(ExecutionError::WitnessRootMismatch { size: stored_size });
    }
    verify_consistency(
        stored_size,
        new.size(),
        request.proof(),
        old_root,
        new.root(),
    )
    .map_err(inconsistent)?;
    let timestamp = cosignature_timestamp(now)?;
    // Kept as the witness's state: the checkpoint, the log's verified signatures and this
    // cosignature, nothing a requester added.
    let checkpoint =
        cosign_verified_checkpoint(&verified, role.witnesses().0, name, signer, timestamp)?;
    let line = checkpoint
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or_default();
    Ok(WitnessCosigned {
        signature_lines: format!("{line}\n"),
        checkpoint,
    })
}

/// The `add-checkpoint` body a log sends for its signed `checkpoint` to a witness that last
/// cosigned the checkpoint of `old_size`: the checkpoint must be signed by `trust_root`'s log
/// keys and extended by `store`'s log, and the RFC 9162 consistency proof from `old_size` comes
/// from the store (`trust.tlog_inconsistent` when `old_size` is above the checkpoint's size).
pub fn witness_request(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
    old_size: u64,
) -> Result<String, ExecutionError> {
    witness_request_of(&ledger_log(store)?, trust_root, checkpoint, old_size)
}

/// [`witness_request`] over a log already read.
pub(crate) fn witness_request_of(
    log: &parmana_replay::LedgerLog,
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
    old_size: u64,
) -> Result<String, ExecutionError> {
    let verified = crate::log::checked_against_store(log, trust_root, checkpoint)?;
    let size = verified.checkpoint().size();
    let proof = if old_size == 0 {
        Vec::new()
    } else {
        log.tree()
            .consistency_proof(old_size, size)
            .map_err(|reason| TrustError::TlogInconsistent {
                old_size,
                new_size: size,
                reason,
            })?
    };
    let note = String::from_utf8_lossy(checkpoint);
    Ok(AddCheckpoint::new(old_size, proof, &note).to_text())
}

/// Adds a witness's `add-checkpoint` response (its signature lines) to the signed `checkpoint`.
/// Every line must be a note signature line; those of witnesses the `log` role of `trust_root`
/// lists must verify as their cosignatures of this checkpoint (`trust.note_bad_signature`),
/// and a line naming a key of the log must be its valid signature (`trust.note_bad_signature`).
/// Only the listed witnesses' cosignatures are added (as C2SP tlog-witness asks: the valid
/// signatures are moved across): a line of a key nobody lists — which the witness, or anyone
/// on a plain-HTTP path, may add — would otherwise travel in the checkpoint and its proofs, and
/// refuse them once a later trust root lists that key. Refused with `trust.note_malformed`
/// when the response holds no signature line.
pub fn add_cosignatures(
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
    response: &[u8],
) -> Result<String, ExecutionError> {
    let response = std::str::from_utf8(response).map_err(|_| TrustError::NoteMalformed {
        message: "the witness's response is not UTF-8".to_owned(),
    })?;
    if response.is_empty() || !response.ends_with('\n') {
        return Err(TrustError::NoteMalformed {
            message: "the witness's response is signature lines, each ending in a newline"
                .to_owned(),
        }
        .into());
    }
    let mut text = String::from_utf8_lossy(checkpoint).into_owned();
    text.push_str(response);
    let note = Note::parse(text.as_bytes())?;
    let witnesses: Vec<CosignerKey> = trust_root
        .log()
        .map(|role| role.witnesses().0.to_vec())
        .unwrap_or_default();
    verify_cosignatures(&note, &witnesses, 0)?;
    // The answer itself must carry a valid cosignature of a witness the trust root names: a 200
    // of another witness (a wrong URL, a witness with another key) is no cosignature.
    let answered = Note::parse(format!("{}\n{response}", note.text()).as_bytes())?;
    if verify_cosignatures(&answered, &witnesses, 1).is_err() {
        return Err(TrustError::ThresholdNotMet {
            document: "the witness's answer".to_owned(),
            role: "witness".to_owned(),
            threshold: 1,
            found: 0,
        }
        .into());
    }
    // The answer may add no line the log's own keys would refuse: the result still opens as a
    // checkpoint of the log (a line naming a log key must be its valid signature).
    if let Some(role) = trust_root.log() {
        role.verifier()
            .log_only()
            .open_checkpoint(note.to_text().as_bytes())?;
    }
    // Of the answer, only the listed witnesses' lines (all verified above) are kept, one per
    // witness key: a witness that repeats its line (or a network path that replays it) must not
    // fill the note's bounded count of lines and keep out the cosignatures of the others. The
    // checkpoint's own lines stay as they were.
    let own = Note::parse(checkpoint)?.signatures().len();
    let mut position = 0_usize;
    let mut seen: Vec<(String, u32)> = Vec::new();
    let mut note = note;
    note.retain_signatures(|line| {
        let key = (line.name().as_str().to_owned(), line.id());
        let keep = if position < own {
            true
        } else {
            witnesses
                .iter()
                .any(|w| w.name() == line.name() && w.id() == line.id())
                && !seen.contains(&key)
        };
        seen.push(key);
        position += 1;
        keep
    });
    Ok(note.to_text())
}
