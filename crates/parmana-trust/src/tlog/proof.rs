//! C2SP `tlog-proof` (`c2sp.org/tlog-proof@v1`): an offline proof that one entry is in a transparency log — index, inclusion proof, signed checkpoint — written, read and verified.

use std::sync::Arc;

use parmana_canon::Digest;
use parmana_canon::merkle::{
    MAX_PROOF_HASHES, NodeHashMemo, leaf_hash, verify_inclusion, verify_inclusion_memo,
};

use crate::TrustError;
use crate::keys::{decode_base64, decode_hash, encode_base64};
use crate::tlog::checkpoint::{CheckpointCache, LogVerifier, VerifiedCheckpoint, parse_decimal};
use crate::tlog::note::MAX_NOTE_BYTES;

/// The first line of every proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The largest proof file read, in bytes: the header, an index, [`MAX_PROOF_HASHES`] hashes, a
/// note of at most [`MAX_NOTE_BYTES`] and up to 4 KiB of extra data.
pub const MAX_TLOG_PROOF_BYTES: usize = MAX_NOTE_BYTES + 64 * 46 + 8 * 1024;

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::TlogProofMalformed {
        message: message.into(),
    }
}

fn no_blank_line() -> TrustError {
    malformed("no blank line before the checkpoint")
}

/// The length of a proof hash line: the canonical base64 of 32 bytes.
const HASH_LINE: usize = 44;

/// `text` split around its first blank line (the first `\n\n`), as `str::split_once("\n\n")`
/// would, found by looking for each newline (`memchr`) and the byte after it. Only a refused
/// proof needs it (to refuse a text without a blank line as such); an accepted one is read in
/// one pass.
fn split_at_blank_line(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let at = text
        .match_indices('\n')
        .map(|(i, _)| i)
        .find(|&i| bytes.get(i + 1) == Some(&b'\n'))?;
    Some((text.get(..at)?, text.get(at + 2..)?))
}

/// A hash as the transparency-log formats write it: standard base64 with padding.
pub fn tlog_hash_text(hash: &Digest) -> String {
    encode_base64(hash.as_bytes())
}

/// A transparency-log proof as written in a `.tlog-proof` file (not yet verified).
///
/// ```
/// use parmana_trust::TlogProof;
/// let text = "c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/log\n1\nbjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\n\n— example.com/log AAAAAAAA\n";
/// let proof = TlogProof::parse(text.as_bytes()).unwrap();
/// assert_eq!(proof.index(), 0);
/// assert_eq!(proof.to_text(), text);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    hashes: Vec<Digest>,
    checkpoint: String,
}

impl TlogProof {
    /// A proof that the entry at `index` is in the tree of the signed checkpoint `checkpoint`
    /// (the note, verbatim), with the inclusion proof `hashes` (leaf's sibling first).
    pub fn new(index: u64, hashes: Vec<Digest>, checkpoint: String) -> Self {
        Self {
            extra: None,
            index,
            hashes,
            checkpoint,
        }
    }

    /// The same proof carrying `extra` as its (unauthenticated) extra data: Parmana puts the log
    /// entry there, which the inclusion proof then authenticates.
    pub fn with_extra(self, extra: Vec<u8>) -> Self {
        Self {
            extra: Some(extra),
            ..self
        }
    }

    /// Reads a proof file, refusing anything else with `trust.tlog_proof_malformed`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_TLOG_PROOF_BYTES {
            return Err(malformed(format!(
                "{} bytes, more than the {MAX_TLOG_PROOF_BYTES} allowed",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("a proof is UTF-8"))?;
        // A text without a blank line is refused as such, whatever else is wrong with it.
        Self::read(text).map_err(|refusal| match split_at_blank_line(text) {
            None => no_blank_line(),
            Some(_) => refusal,
        })
    }

    /// Reads the proof in one pass: the header, the optional `extra` line, the index, then hash
    /// lines up to the blank line (its first `\n\n`), the rest being the checkpoint. Each hash
    /// line is taken as the 44 characters before a newline, without searching for it: anything
    /// else is refused below as a line that is not a hash. The head lines are exactly the lines
    /// before that blank line, checked in order, so that with the blank-line check in
    /// [`parse`](Self::parse) this refuses as reading the head and the checkpoint apart would
    /// (the tests compare the two on every one-byte change of a proof).
    fn read(text: &str) -> Result<Self, TrustError> {
        /// The line at the start of `rest` and what follows its newline; with no newline left,
        /// the text has no blank line.
        fn line(rest: &str) -> Result<(&str, &str), TrustError> {
            rest.split_once('\n').ok_or_else(no_blank_line)
        }
        let mut rest = text
            .strip_prefix(TLOG_PROOF_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or_else(|| malformed(format!("the first line is {TLOG_PROOF_HEADER}")))?;
        let mut extra = None;
        if let Some(after) = rest.strip_prefix("extra ") {
            let (data, next) = line(after)?;
            extra = Some(
                decode_base64(data).ok_or_else(|| malformed("extra data is canonical base64"))?,
            );
            rest = next;
        }
        let bad_index = || malformed("`index N` follows, N decimal without leading zeros");
        let (digits, next) = line(rest.strip_prefix("index ").ok_or_else(bad_index)?)?;
        let index = parse_decimal(digits).ok_or_else(bad_index)?;
        rest = next;
        let mut hashes = Vec::new();
        let checkpoint = loop {
            if let Some(checkpoint) = rest.strip_prefix('\n') {
                break checkpoint;
            }
            if rest.is_empty() {
                return Err(no_blank_line());
            }
            // Canonical base64 of 32 bytes is 44 characters of its alphabet, so a line that
            // decodes here ends at the newline after them.
            let hash = rest
                .get(..HASH_LINE)
                .filter(|_| rest.as_bytes().get(HASH_LINE) == Some(&b'\n'))
                .and_then(decode_hash)
                .ok_or_else(|| malformed("each proof line is the base64 of a 32-byte hash"))?;
            hashes.push(Digest::from_bytes(hash));
            rest = rest.get(HASH_LINE + 1..).unwrap_or_default();
        };
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(malformed(format!(
                "{} proof hashes, more than any tree needs",
                hashes.len()
            )));
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The proof file's text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", encode_base64(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            text.push_str(&encode_base64(hash.as_bytes()));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// The entry's index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof, leaf's sibling first.
    pub fn hashes(&self) -> &[Digest] {
        &self.hashes
    }

    /// The signed checkpoint, verbatim.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// The extra data, if any: unauthenticated until the entry it holds is proven included.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }
}

/// An entry proven to be in a checkpoint signed by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    index: u64,
    /// Shared with the [`CheckpointCache`] that verified it (no copy per proof).
    checkpoint: Arc<VerifiedCheckpoint>,
}

impl VerifiedInclusion {
    /// The entry's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The checkpoint it is included in.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
}

/// Verifies offline that `entry` is in the log `log` trusts: the proof's checkpoint is signed as
/// [`LogVerifier::open_checkpoint`] requires and the inclusion proof leads from
/// `SHA-256(0x00 ‖ entry)` at the proof's index to its root hash (`trust.tlog_not_included`
/// otherwise).
pub fn verify_tlog_proof(
    proof: &TlogProof,
    entry: &[u8],
    log: &LogVerifier,
) -> Result<VerifiedInclusion, TrustError> {
    let checkpoint = Arc::new(log.open_checkpoint(proof.checkpoint.as_bytes())?);
    included(proof, entry, checkpoint, None)
}

/// [`verify_tlog_proof`] with the checkpoint's signatures checked through `cache`: once per
/// distinct checkpoint for a batch of proofs, whose inclusion proofs also share the interior
/// nodes the cache remembers (the same results as hashing them).
pub fn verify_tlog_proof_cached(
    proof: &TlogProof,
    entry: &[u8],
    cache: &mut CheckpointCache,
) -> Result<VerifiedInclusion, TrustError> {
    let checkpoint = cache.open_shared(proof.checkpoint.as_bytes())?;
    included(proof, entry, checkpoint, Some(cache.nodes()))
}

/// The inclusion proof of `proof` checked against the verified `checkpoint`, its interior nodes
/// through `memo` when given.
fn included(
    proof: &TlogProof,
    entry: &[u8],
    checkpoint: Arc<VerifiedCheckpoint>,
    memo: Option<&mut NodeHashMemo>,
) -> Result<VerifiedInclusion, TrustError> {
    let head = checkpoint.checkpoint();
    let (leaf, index, size, root) = (leaf_hash(entry), proof.index, head.size(), head.root());
    match memo {
        Some(memo) => verify_inclusion_memo(leaf, index, size, &proof.hashes, root, memo),
        None => verify_inclusion(leaf, index, size, &proof.hashes, root),
    }
    .map_err(|reason| TrustError::TlogNotIncluded { index, reason })?;
    Ok(VerifiedInclusion { index, checkpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse before the one-pass reader: the head and the checkpoint split at the first
    /// blank line, then the head's lines read in turn. [`TlogProof::parse`] must agree with it
    /// on every input, refusals and their messages included.
    fn reference_parse(bytes: &[u8]) -> Result<TlogProof, TrustError> {
        if bytes.len() > MAX_TLOG_PROOF_BYTES {
            return Err(malformed(format!(
                "{} bytes, more than the {MAX_TLOG_PROOF_BYTES} allowed",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("a proof is UTF-8"))?;
        let (head, checkpoint) = text.split_once("\n\n").ok_or_else(no_blank_line)?;
        let mut lines = head.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed(format!("the first line is {TLOG_PROOF_HEADER}")));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(data) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                decode_base64(data).ok_or_else(|| malformed("extra data is canonical base64"))?,
            );
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("`index N` follows, N decimal without leading zeros"))?;
        let hashes = lines
            .map(|l| {
                decode_base64(l)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(Digest::from_bytes)
                    .ok_or_else(|| malformed("each proof line is the base64 of a 32-byte hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(malformed(format!(
                "{} proof hashes, more than any tree needs",
                hashes.len()
            )));
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Proof texts to change: with and without extra data, no hashes, a few, more than any
    /// tree needs (and such a list ending in a bad line).
    fn proofs() -> Vec<Vec<u8>> {
        let checkpoint = "example.com/log\n5\nbjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\n\n\
                          \u{2014} example.com/log AAAAAAAA\n";
        let hashes = |n: u8| (0..n).map(|i| Digest::from_bytes([i; 32])).collect();
        let proof = |n, extra: Option<&[u8]>| {
            let proof = TlogProof::new(4, hashes(n), checkpoint.to_owned());
            match extra {
                Some(extra) => proof.with_extra(extra.to_vec()).to_text(),
                None => proof.to_text(),
            }
        };
        let too_many = proof(65, None);
        let bad_last = too_many.replacen("\n\nexample", "\n!\n\nexample", 1);
        vec![
            proof(3, Some(b"{\"position\":4}")),
            proof(2, None),
            proof(0, Some(b"")),
            proof(0, None),
            too_many,
            bad_last,
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    /// Every one-byte change of `proof`: each byte deleted, replaced and preceded by one of a
    /// few bytes (newlines, base64 characters, padding, a space, the start of a two-byte
    /// character, a lone continuation byte), and each prefix.
    fn changes(proof: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..=proof.len() {
            out.push(proof[..i].to_vec());
            for b in [b'\n', b'A', b'/', b'=', b' ', b'0', b'x', 0xc3, 0xa9] {
                let mut inserted = proof.to_vec();
                inserted.insert(i, b);
                out.push(inserted);
                if i < proof.len() {
                    let mut replaced = proof.to_vec();
                    replaced[i] = b;
                    out.push(replaced);
                }
            }
            if i < proof.len() {
                let mut deleted = proof.to_vec();
                deleted.remove(i);
                out.push(deleted);
            }
        }
        out
    }

    /// The one-pass reader accepts, reads and refuses exactly as the reference parse.
    #[test]
    fn parse_agrees_with_the_reference_parse() {
        let (mut accepted, mut refused) = (0, 0);
        for proof in proofs() {
            // The long lists only at their ends: their middles are more of the same lines.
            let texts = if proof.len() > 1_000 {
                let (start, end) = proof.split_at(proof.len() - 240);
                let head = changes(&start[..80])
                    .into_iter()
                    .map(|h| [&h, &start[80..], end].concat());
                let tail = changes(end).into_iter().map(|t| [start, &t].concat());
                head.chain(tail).collect()
            } else {
                changes(&proof)
            };
            for text in texts {
                let expected = reference_parse(&text);
                assert_eq!(
                    TlogProof::parse(&text),
                    expected,
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
                if expected.is_ok() {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
        assert!(
            accepted > 100 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }

    /// The newline scan splits exactly where `split_once("\n\n")` does.
    #[test]
    fn split_at_blank_line_is_split_once() {
        for text in [
            "",
            "\n",
            "\n\n",
            "a\n\nb",
            "a\nb\n\nc\n\nd",
            "\n\n\n",
            "a\n",
            "a\nb\nc\n",
            "a\n\n",
            "\na\n\n",
            "é\n\nü",
            "a\r\n\r\nb",
        ] {
            assert_eq!(
                split_at_blank_line(text),
                text.split_once("\n\n"),
                "{text:?}"
            );
        }
    }
}
