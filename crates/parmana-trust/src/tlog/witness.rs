//! C2SP `tlog-witness`: the body of an `add-checkpoint` request (`old <size>`, consistency proof lines, a blank line, the signed checkpoint), read strictly and written back.

use parmana_canon::Digest;

use crate::TrustError;
use crate::keys::{decode_base64, encode_base64};
use crate::tlog::checkpoint::parse_decimal;
use crate::tlog::note::MAX_NOTE_BYTES;

/// The most consistency proof lines a request may carry (C2SP: "MUST NOT send more than 63").
pub const MAX_WITNESS_PROOF_LINES: usize = 63;

/// The largest `add-checkpoint` body: the old size line, 63 proof lines and a note.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = 32 + MAX_WITNESS_PROOF_LINES * 46 + MAX_NOTE_BYTES;

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::WitnessRequestMalformed {
        message: message.into(),
    }
}

/// An `add-checkpoint` request: the size of the last checkpoint the client believes the witness
/// cosigned, the consistency proof from it, and the new signed checkpoint (not yet verified).
///
/// ```
/// use parmana_trust::AddCheckpoint;
/// let body = "old 0\n\nexample.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAAAAAA\n";
/// let request = AddCheckpoint::parse(body.as_bytes()).unwrap();
/// assert_eq!((request.old_size(), request.proof().len()), (0, 0));
/// assert_eq!(request.to_text(), body);
/// assert_eq!(AddCheckpoint::parse(b"old 01\n\n").unwrap_err().code(), "trust.witness_request_malformed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    old_size: u64,
    proof: Vec<Digest>,
    checkpoint: String,
}

impl AddCheckpoint {
    /// The request for `checkpoint` (a signed note) extending the witness's checkpoint of
    /// `old_size` by `proof`.
    pub fn new(old_size: u64, proof: Vec<Digest>, checkpoint: &str) -> Self {
        Self {
            old_size,
            proof,
            checkpoint: checkpoint.to_owned(),
        }
    }

    /// Reads a request body: `old N` (ASCII decimal, no leading zeros), at most 63 lines of one
    /// base64 SHA-256 hash each, an empty line, then the checkpoint; every line ends in a newline,
    /// at most [`MAX_ADD_CHECKPOINT_BYTES`] in all (`trust.witness_request_malformed` otherwise;
    /// the checkpoint itself is read when it is opened).
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(malformed(format!(
                "a request is at most {MAX_ADD_CHECKPOINT_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("the body is not UTF-8"))?;
        let (first, mut rest) = text
            .split_once('\n')
            .ok_or_else(|| malformed("the body starts with an `old <size>` line"))?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| {
                malformed(
                    "the first line is `old <size>`, the size in decimal without leading zeros",
                )
            })?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or_else(|| malformed("the proof lines end with an empty line"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_WITNESS_PROOF_LINES {
                return Err(malformed(format!(
                    "at most {MAX_WITNESS_PROOF_LINES} consistency proof lines"
                )));
            }
            let hash = decode_base64(line)
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| malformed("a proof line is the base64 of a 32-byte hash"))?;
            proof.push(Digest::from_bytes(hash));
        }
        if rest.is_empty() {
            return Err(malformed("no checkpoint after the empty line"));
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The request body.
    pub fn to_text(&self) -> String {
        let mut text = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            text.push_str(&encode_base64(hash.as_bytes()));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// The size of the checkpoint the client believes the witness cosigned last (0: none).
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof from that size to the new checkpoint's.
    pub fn proof(&self) -> &[Digest] {
        &self.proof
    }

    /// The new signed checkpoint, as sent.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }
}
