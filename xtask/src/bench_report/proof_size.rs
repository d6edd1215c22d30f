//! The proof sizes of the report: the `.tlog-proof` of an entry in a log of n entries against the bound of 32·⌈log2 n⌉ bytes of hashes plus the checkpoint — built from a real tree for n = 1,000, computed for n = 1,000,000.

use parmana_canon::Digest;
use parmana_canon::merkle::MerkleTree;
use parmana_trust::{Checkpoint, LocalSigningKey, NoteKeyName, TlogProof, sign_checkpoint};

/// The log sizes reported.
pub(super) const SIZES: [u64; 2] = [1_000, 1_000_000];

/// Logs up to this size are built (every entry hashed, every inclusion proof made); larger ones
/// are computed from [`inclusion_proof_len`].
const BUILT_UP_TO: u64 = 1_000;

/// The bytes of a typical log entry: a ledger execution record is about this long.
const ENTRY_BYTES: usize = 400;

/// The origin the checkpoints of the report name.
const ORIGIN: &str = "log.example/parmana";

/// One row: the largest proof of any entry in a log of `entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProofSize {
    pub(super) entries: u64,
    /// The most hashes any entry's inclusion proof holds.
    pub(super) hashes: usize,
    /// The bound on the hashes: 32·⌈log2 n⌉ bytes.
    pub(super) bound_bytes: u64,
    /// The signed checkpoint (one signature), in bytes.
    pub(super) checkpoint_bytes: usize,
    /// The whole `.tlog-proof` file with a [`ENTRY_BYTES`]-byte entry as its extra data.
    pub(super) file_bytes: usize,
    /// Whether the tree was built (else the proof length was computed).
    pub(super) built: bool,
}

impl ProofSize {
    /// The hashes in bytes.
    pub(super) fn hash_bytes(&self) -> u64 {
        32 * self.hashes as u64
    }

    /// Whether the hashes fit the bound.
    pub(super) fn met(&self) -> bool {
        self.hash_bytes() <= self.bound_bytes
    }
}

/// ⌈log2 n⌉ (0 for n ≤ 1).
fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// The number of hashes of RFC 9162's `PATH(index, D[size])` (§2.1.3.1), without hashing: one
/// per split on the way from the root down to the leaf.
pub(super) fn inclusion_proof_len(mut index: u64, mut size: u64) -> usize {
    let mut hashes = 0;
    while size > 1 {
        let k = 1u64 << (63 - (size - 1).leading_zeros());
        if index < k {
            size = k;
        } else {
            index -= k;
            size -= k;
        }
        hashes += 1;
    }
    hashes
}

/// The longest inclusion proof of a log of `size` entries: built from a real tree up to
/// [`BUILT_UP_TO`] entries, computed beyond.
fn longest_proof(size: u64) -> (usize, bool) {
    if size <= BUILT_UP_TO {
        let mut tree = MerkleTree::new();
        for i in 0..size {
            tree.push(format!("entry {i}").as_bytes());
        }
        let longest = (0..size)
            .filter_map(|i| tree.inclusion_proof(i, size).ok())
            .map(|proof| proof.len())
            .max()
            .unwrap_or(0);
        (longest, true)
    } else {
        // The longest path is that of an entry in the left subtree of the deepest split;
        // checking every index keeps the computation honest for any size.
        let longest = (0..size)
            .map(|i| inclusion_proof_len(i, size))
            .max()
            .unwrap_or(0);
        (longest, false)
    }
}

/// The rows of the report, one per size of [`SIZES`]. Deterministic: the checkpoints are signed
/// by a key from a fixed seed (Ed25519 signing is deterministic).
pub(super) fn proof_sizes() -> Vec<ProofSize> {
    let key = LocalSigningKey::from_seed(&[30; 32]);
    SIZES
        .iter()
        .filter_map(|&entries| {
            let (hashes, built) = longest_proof(entries);
            let name = NoteKeyName::parse(ORIGIN).ok()?;
            let head = Checkpoint::new(ORIGIN, entries, Digest::of(b"root")).ok()?;
            let note = sign_checkpoint(&head, &name, &key).ok()?;
            let proof = TlogProof::new(
                entries / 2,
                vec![Digest::of(b"sibling"); hashes],
                note.clone(),
            )
            .with_extra(vec![b'x'; ENTRY_BYTES]);
            Some(ProofSize {
                entries,
                hashes,
                bound_bytes: 32 * u64::from(ceil_log2(entries)),
                checkpoint_bytes: note.len(),
                file_bytes: proof.to_text().len(),
                built,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_proof_lengths_equal_those_of_real_trees() {
        let mut tree = MerkleTree::new();
        for size in 1..=130u64 {
            tree.push(format!("entry {size}").as_bytes());
            for index in 0..size {
                assert_eq!(
                    inclusion_proof_len(index, size),
                    tree.inclusion_proof(index, size).unwrap().len(),
                    "index {index} of {size}"
                );
            }
        }
        assert_eq!(ceil_log2(1_000), 10);
        assert_eq!(ceil_log2(1_000_000), 20);
        assert_eq!(ceil_log2(1_024), 10);
    }

    #[test]
    fn the_rows_hold_the_bound() {
        let rows = proof_sizes();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].hashes, rows[0].built), (10, true));
        assert_eq!((rows[1].hashes, rows[1].built), (20, false));
        for row in &rows {
            assert!(row.met(), "{row:?}");
            assert!(row.file_bytes > row.checkpoint_bytes + ENTRY_BYTES);
        }
    }
}
