//! The transparency log's signed formats: C2SP `signed-note` (Ed25519), `tlog-checkpoint`, `tlog-cosignature` (witnesses) and `tlog-proof` (see `docs/transparency-log.md`).
//!
//! The Merkle tree itself (leaf and node hashes, proofs) is `parmana_canon::merkle`; this module
//! signs and verifies what binds a tree head to the log's key, and checks proofs against it.

mod checkpoint;
mod cosignature;
mod note;
mod proof;
mod witness;

pub use checkpoint::{
    CHECKPOINT_CACHE_CAPACITY, Checkpoint, CheckpointCache, LogVerifier, VerifiedCheckpoint,
    sign_checkpoint,
};
pub use cosignature::{
    Cosignature, CosignerKey, cosign_checkpoint, cosign_verified_checkpoint, verify_cosignatures,
};
pub use note::{
    MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, Note, NoteKeyName, NoteSignature, NoteVerifierKey,
    VerifiedNote, cosign_note, note_key_id, open_note, sign_note,
};
pub use proof::{
    MAX_TLOG_PROOF_BYTES, TLOG_PROOF_HEADER, TlogProof, VerifiedInclusion, tlog_hash_text,
    verify_tlog_proof, verify_tlog_proof_cached,
};
pub use witness::{AddCheckpoint, MAX_ADD_CHECKPOINT_BYTES, MAX_WITNESS_PROOF_LINES};
