//! C2SP `tlog-cosignature` with Ed25519 (signature type 0x04): a witness's timestamped statement that a checkpoint is the largest consistent tree head it has seen of the log.
//!
//! The signed message is `cosignature/v1\n`, `time <POSIX seconds>\n`, then the checkpoint's note
//! text; the signature line is `— <witness name> base64(key ID ‖ u64 timestamp, big-endian ‖
//! 64-byte Ed25519 signature)`, with the key ID `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`.

use std::fmt;

use crate::tlog::checkpoint::VerifiedCheckpoint;
use crate::tlog::note::{
    MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, Note, NoteKeyName, NoteSignature, parse_typed_key,
    typed_key_id, write_typed_key,
};
use crate::{PublicKey, Signer, TrustError};

/// The signature type byte of Ed25519 cosignatures.
const COSIGNATURE_V1: u8 = 0x04;

/// The largest timestamp a cosignature may carry (2^63 − 1).
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// A witness (cosigner): its name and its Ed25519 public key.
///
/// ```
/// use parmana_trust::{CosignerKey, LocalSigningKey, NoteKeyName};
/// let key = CosignerKey::new(NoteKeyName::parse("witness.example/w1").unwrap(), LocalSigningKey::from_seed(&[5; 32]).public_key());
/// assert_eq!(CosignerKey::parse(&key.to_string()).unwrap(), key);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: NoteKeyName,
    id: u32,
    key: PublicKey,
}

impl CosignerKey {
    /// The cosigner `name` with the Ed25519 key `key`.
    pub fn new(name: NoteKeyName, key: PublicKey) -> Self {
        let id = typed_key_id(&name, COSIGNATURE_V1, &key);
        Self { name, id, key }
    }

    /// Reads `<name>+<8 lowercase hex digits>+base64(0x04 ‖ 32-byte key)`
    /// (`trust.note_key_invalid` otherwise).
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let (name, id, key) = parse_typed_key(
            text,
            "a cosigner key",
            COSIGNATURE_V1,
            "a cosigner key has signature type 0x04 (Ed25519 cosignature/v1)",
        )?;
        Ok(Self { name, id, key })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &NoteKeyName {
        &self.name
    }

    /// The key ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }
}

impl fmt::Display for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_typed_key(f, &self.name, self.id, COSIGNATURE_V1, &self.key)
    }
}

/// The message a cosignature signs: the header, the time line and the checkpoint's note text.
fn cosigned_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// Adds the cosignature of `signer` as the witness `name`, at `timestamp` (POSIX seconds), to the
/// signed checkpoint `note`. The caller has checked that the checkpoint is consistent with every
/// one it cosigned before (`VerifiedCheckpoint::check_extends`).
pub fn cosign_checkpoint(
    note: &str,
    name: &NoteKeyName,
    signer: &dyn Signer,
    timestamp: u64,
) -> Result<String, TrustError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(TrustError::NoteMalformed {
            message: "a cosignature timestamp is at most 2^63-1".to_owned(),
        });
    }
    let mut parsed = Note::parse(note.as_bytes())?;
    if parsed.signatures().len() >= MAX_NOTE_SIGNATURES {
        return Err(TrustError::NoteMalformed {
            message: format!("a note carries at most {MAX_NOTE_SIGNATURES} signatures"),
        });
    }
    let key = signer.public_key();
    let cosigner = CosignerKey::new(name.clone(), key);
    let mut signature = timestamp.to_be_bytes().to_vec();
    signature.extend_from_slice(&crate::keys::sign_checked(
        signer,
        &key,
        &cosigned_message(timestamp, parsed.text()),
    )?);
    parsed.push_signature(NoteSignature::new(name.clone(), cosigner.id, signature));
    Ok(parsed.to_text())
}

/// Cosigns a checkpoint a witness has verified (signed by the log's keys, consistent with what
/// it cosigned before): the note returned — which a witness keeps as its state — carries the
/// checkpoint's text, the signature lines by the log keys that verified it, the cosignatures of
/// the other `witnesses` (those the trust root lists) that verify, one each, and this
/// cosignature; no other line. A requester's other lines (unknown keys, which verification
/// ignores) would otherwise be kept and grow the state past what the witness may read back
/// ([`MAX_NOTE_BYTES`]); a note that would still pass it is refused (`trust.note_malformed`).
pub fn cosign_verified_checkpoint(
    verified: &VerifiedCheckpoint,
    witnesses: &[CosignerKey],
    name: &NoteKeyName,
    signer: &dyn Signer,
    timestamp: u64,
) -> Result<String, TrustError> {
    let opened = verified.note();
    let mut kept: Note = opened.note().clone();
    let text = opened.text().to_owned();
    let mut cosigned_by: Vec<PublicKey> = Vec::new();
    kept.retain_signatures(|line| {
        if opened
            .verified_by()
            .iter()
            .any(|key| key.name() == line.name() && key.id() == line.id())
        {
            return true;
        }
        // Another listed witness's cosignature that verifies, once per witness (this witness's
        // own earlier one gives way to the one added below).
        let Some(witness) = witnesses
            .iter()
            .find(|w| w.name == *line.name() && w.id == line.id() && w.name != *name)
        else {
            return false;
        };
        let fresh = !cosigned_by.contains(&witness.key);
        if fresh && cosignature_time(line, witness, &text).is_some() {
            cosigned_by.push(witness.key);
            return true;
        }
        false
    });
    let cosigned = cosign_checkpoint(&kept.to_text(), name, signer, timestamp)?;
    if cosigned.len() > MAX_NOTE_BYTES {
        return Err(TrustError::NoteMalformed {
            message: format!(
                "cosigned, the checkpoint would be {} bytes, more than the {MAX_NOTE_BYTES} a \
                 note may have",
                cosigned.len()
            ),
        });
    }
    Ok(cosigned)
}

/// The time `line` states, if it is `witness`'s cosignature of the note text `text` and verifies.
fn cosignature_time(line: &NoteSignature, witness: &CosignerKey, text: &str) -> Option<u64> {
    let (time, signature) = line.signature().split_first_chunk::<8>()?;
    let timestamp = u64::from_be_bytes(*time);
    (timestamp <= MAX_TIMESTAMP
        && witness
            .key
            .verify_signature(&cosigned_message(timestamp, text), signature))
    .then_some(timestamp)
}

/// One verified cosignature: who, and the time it states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness.
    pub cosigner: CosignerKey,
    /// The time of the statement, POSIX seconds.
    pub timestamp: u64,
}

/// Verifies the cosignatures on `note` by `witnesses`: every line whose name and key ID match a
/// witness must verify (`trust.note_bad_signature`), the others are ignored, and at least
/// `threshold` distinct witnesses must have cosigned (`trust.threshold_not_met`, role `witness`).
pub fn verify_cosignatures(
    note: &Note,
    witnesses: &[CosignerKey],
    threshold: u64,
) -> Result<Vec<Cosignature>, TrustError> {
    let mut verified: Vec<Cosignature> = Vec::new();
    for line in note.signatures() {
        for witness in witnesses {
            if witness.name != *line.name() || witness.id != line.id() {
                continue;
            }
            let Some(timestamp) = cosignature_time(line, witness, note.text()) else {
                return Err(TrustError::NoteBadSignature {
                    name: line.name().to_string(),
                });
            };
            if !verified.iter().any(|c| c.cosigner.key == witness.key) {
                verified.push(Cosignature {
                    cosigner: witness.clone(),
                    timestamp,
                });
            }
        }
    }
    let found = u64::try_from(verified.len()).unwrap_or(u64::MAX);
    if found < threshold {
        return Err(TrustError::ThresholdNotMet {
            document: "checkpoint".to_owned(),
            role: "witness".to_owned(),
            threshold,
            found,
        });
    }
    Ok(verified)
}
