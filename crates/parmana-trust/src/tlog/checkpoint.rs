//! C2SP `tlog-checkpoint`: the transparency log's signed tree head (origin, tree size, base64 root hash, extension lines), signed and opened as a note.

use std::sync::Arc;

use parmana_canon::Digest;
use parmana_canon::merkle::{NodeHashMemo, verify_consistency};

use crate::keys::{decode_base64, encode_base64};
use crate::tlog::cosignature::{CosignerKey, verify_cosignatures};
use crate::tlog::note::{NoteKeyName, NoteVerifierKey, VerifiedNote, open_note, sign_note};
use crate::{Signer, TrustError};

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::CheckpointMalformed {
        message: message.into(),
    }
}

/// A checkpoint's text: the log's origin, its size and its root hash at that size.
///
/// ```
/// use parmana_canon::merkle::empty_root;
/// use parmana_trust::Checkpoint;
/// let checkpoint = Checkpoint::new("example.com/log", 0, empty_root()).unwrap();
/// assert_eq!(checkpoint.to_text(), "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
/// assert_eq!(Checkpoint::parse_text(&checkpoint.to_text()).unwrap(), checkpoint);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Digest,
    extensions: Vec<String>,
}

/// Refuses a line that would not read back as itself: empty, or holding a control character.
fn check_line(what: &str, line: &str) -> Result<(), TrustError> {
    if line.is_empty() {
        return Err(malformed(format!("the {what} must not be empty")));
    }
    if line.chars().any(char::is_control) {
        return Err(malformed(format!(
            "the {what} must not hold control characters"
        )));
    }
    Ok(())
}

impl Checkpoint {
    /// The checkpoint of the log `origin` at `size` leaves with root hash `root`.
    pub fn new(origin: &str, size: u64, root: Digest) -> Result<Self, TrustError> {
        check_line("origin", origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Reads checkpoint text: at least three lines, each ending in a newline — a non-empty origin,
    /// the size in decimal without leading zeros, the canonical base64 of a 32-byte root hash —
    /// then non-empty extension lines. Anything else is `trust.checkpoint_malformed`.
    pub fn parse_text(text: &str) -> Result<Self, TrustError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("checkpoint text ends with a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed(
                "a checkpoint has an origin, a size and a root hash",
            ));
        };
        check_line("origin", origin)?;
        let size = parse_decimal(size)
            .ok_or_else(|| malformed("the tree size is a decimal number without leading zeros"))?;
        let root = decode_base64(root)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Digest::from_bytes)
            .ok_or_else(|| malformed("the root hash is the base64 of 32 bytes"))?;
        let extensions = lines
            .map(|line| check_line("extension line", line).map(|()| line.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint text, each line ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            encode_base64(self.root.as_bytes())
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash at that size.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// The extension lines (opaque; Parmana writes none).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

/// An ASCII decimal without leading zeros (`0` itself allowed) that fits in a `u64`.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Signs `checkpoint` as the note key `name` (which should equal the origin) with `signer`.
pub fn sign_checkpoint(
    checkpoint: &Checkpoint,
    name: &NoteKeyName,
    signer: &dyn Signer,
) -> Result<String, TrustError> {
    sign_note(&checkpoint.to_text(), name, signer)
}

/// A checkpoint of the expected log, signed by at least one of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: VerifiedNote,
}

impl VerifiedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The verified note it came in, with the keys that signed it.
    pub fn note(&self) -> &VerifiedNote {
        &self.note
    }

    /// Checks that this checkpoint extends `older` (same log, not smaller, `proof` an RFC 9162
    /// consistency proof between the two): refused with `trust.tlog_inconsistent` when the log
    /// forked or rewrote what `older` committed to.
    pub fn check_extends(&self, older: &Self, proof: &[Digest]) -> Result<(), TrustError> {
        let (old, new) = (&older.checkpoint, &self.checkpoint);
        if old.origin != new.origin {
            return Err(TrustError::CheckpointOriginMismatch {
                expected: old.origin.clone(),
                found: new.origin.clone(),
            });
        }
        verify_consistency(old.size, new.size, proof, old.root, new.root).map_err(|reason| {
            TrustError::TlogInconsistent {
                old_size: old.size,
                new_size: new.size,
                reason,
            }
        })
    }
}

/// What a verifier trusts about one log: its origin, its keys (note verifier keys, named by the
/// origin) and how many of them must sign a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifier {
    origin: String,
    keys: Vec<NoteVerifierKey>,
    threshold: u64,
    witnesses: Vec<CosignerKey>,
    witness_threshold: u64,
}

impl LogVerifier {
    /// Trusts checkpoints of `origin` signed by at least `threshold` (at least 1) of `keys`.
    pub fn new(origin: &str, keys: Vec<NoteVerifierKey>, threshold: u64) -> Self {
        Self {
            origin: origin.to_owned(),
            keys,
            threshold: threshold.max(1),
            witnesses: Vec::new(),
            witness_threshold: 0,
        }
    }

    /// The same verifier also requiring cosignatures of at least `threshold` distinct
    /// `witnesses` on every checkpoint (C2SP `tlog-cosignature`, see [`verify_cosignatures`]).
    pub fn with_witnesses(self, witnesses: Vec<CosignerKey>, threshold: u64) -> Self {
        Self {
            witnesses,
            witness_threshold: threshold,
            ..self
        }
    }

    /// The same verifier without the witness requirement: what a witness checks before it
    /// cosigns (the log's own signatures).
    pub fn log_only(&self) -> Self {
        Self {
            witnesses: Vec::new(),
            witness_threshold: 0,
            ..self.clone()
        }
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's keys.
    pub fn keys(&self) -> &[NoteVerifierKey] {
        &self.keys
    }

    /// Verifies a signed checkpoint of this log: every signature of a known key verifies (see
    /// [`open_note`]), at least `threshold` distinct known keys signed
    /// (`trust.threshold_not_met`), the text is a checkpoint of this origin, and — when
    /// witnesses are required — enough of them cosigned it.
    pub fn open_checkpoint(&self, bytes: &[u8]) -> Result<VerifiedCheckpoint, TrustError> {
        let note = open_note(bytes, &self.keys)?;
        if self.witness_threshold > 0 {
            verify_cosignatures(note.note(), &self.witnesses, self.witness_threshold)?;
        }
        let found = u64::try_from(note.verified_by().len()).unwrap_or(u64::MAX);
        if found < self.threshold {
            return Err(TrustError::ThresholdNotMet {
                document: "checkpoint".to_owned(),
                role: "log".to_owned(),
                threshold: self.threshold,
                found,
            });
        }
        let checkpoint = Checkpoint::parse_text(note.text())?;
        if checkpoint.origin != self.origin {
            return Err(TrustError::CheckpointOriginMismatch {
                expected: self.origin.clone(),
                found: checkpoint.origin,
            });
        }
        Ok(VerifiedCheckpoint { checkpoint, note })
    }
}

/// The most distinct checkpoints a [`CheckpointCache`] keeps.
pub const CHECKPOINT_CACHE_CAPACITY: usize = 16;

/// A [`LogVerifier`] that remembers the checkpoints it verified, so that a batch of proofs
/// against one checkpoint verifies its signatures once.
///
/// A checkpoint is remembered by its exact signed-note bytes: the same bytes always verify
/// alike, so a remembered checkpoint is the one [`LogVerifier::open_checkpoint`] would return.
/// Refusals are not remembered. At most [`CHECKPOINT_CACHE_CAPACITY`] checkpoints are kept (the
/// oldest is forgotten first), so many distinct checkpoints cost memory no more than that.
#[derive(Debug, Clone)]
pub struct CheckpointCache {
    log: LogVerifier,
    /// Shared, so that a proof checked against a remembered checkpoint costs no copy of it.
    opened: std::collections::VecDeque<(Vec<u8>, Arc<VerifiedCheckpoint>)>,
    /// The interior nodes of recent inclusion proofs: a batch of proofs in one tree shares the
    /// nodes near its root (a pure-function cache: results are those of hashing).
    nodes: NodeHashMemo,
}

impl CheckpointCache {
    /// An empty cache for checkpoints of `log`.
    pub fn new(log: LogVerifier) -> Self {
        Self {
            log,
            opened: std::collections::VecDeque::new(),
            nodes: NodeHashMemo::new(),
        }
    }

    /// The log verifier behind the cache.
    pub fn verifier(&self) -> &LogVerifier {
        &self.log
    }

    /// How many checkpoints are remembered.
    pub fn len(&self) -> usize {
        self.opened.len()
    }

    /// Whether no checkpoint is remembered.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty()
    }

    /// [`LogVerifier::open_checkpoint`], verifying each distinct note once.
    pub fn open_checkpoint(&mut self, bytes: &[u8]) -> Result<VerifiedCheckpoint, TrustError> {
        self.open_shared(bytes).map(Arc::unwrap_or_clone)
    }

    /// The memo of interior node hashes the cached proof checks share.
    pub(crate) fn nodes(&mut self) -> &mut NodeHashMemo {
        &mut self.nodes
    }

    /// [`open_checkpoint`](Self::open_checkpoint), sharing the remembered checkpoint: bytes
    /// equal to a remembered note's (compared in full) return it; any other bytes are opened by
    /// [`LogVerifier::open_checkpoint`] — every check, every refusal — and remembered only when
    /// they verify.
    pub(crate) fn open_shared(
        &mut self,
        bytes: &[u8],
    ) -> Result<Arc<VerifiedCheckpoint>, TrustError> {
        if let Some((_, verified)) = self.opened.iter().find(|(seen, _)| seen == bytes) {
            return Ok(Arc::clone(verified));
        }
        let verified = Arc::new(self.log.open_checkpoint(bytes)?);
        if self.opened.len() == CHECKPOINT_CACHE_CAPACITY {
            self.opened.pop_front();
        }
        self.opened
            .push_back((bytes.to_vec(), Arc::clone(&verified)));
        Ok(verified)
    }
}
