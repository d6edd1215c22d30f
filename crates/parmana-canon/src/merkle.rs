//! RFC 9162 (RFC 6962) Merkle tree hashing: leaf and node hashes, tree heads, inclusion and consistency proofs, built and checked.
//!
//! The transparency log (`docs/transparency-log.md`) is a Merkle tree over the ledger's records:
//! a leaf is `SHA-256(0x00 ‖ entry)`, an interior node `SHA-256(0x01 ‖ left ‖ right)`, the head of
//! an empty tree `SHA-256("")`, and a tree of `n > 1` leaves is split at the largest power of two
//! below `n` (RFC 9162 §2.1.1). [`MerkleTree`] keeps the hashes of every complete subtree by level,
//! exactly the hashes C2SP `tlog-tiles` serves, and proves inclusion and consistency for any tree
//! size up to its own from them in `O(log n)` hashes; [`verify_inclusion`] and
//! [`verify_consistency`] are the verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2,
//! step for step.
//!
//! This is written here rather than taken from `ct-merkle` because proofs are made from stored
//! subtree hashes addressed by (level, index) as `tlog-tiles` addresses them, for any earlier tree
//! size, and every failure is a typed error; `ct-merkle` proves only from a whole tree in memory in
//! its own node numbering and panics on sizes out of range. It is the differential oracle of this
//! module in the tests, beside the transparency-dev known-answer vectors.
//!
//! ```
//! use parmana_canon::merkle::{MerkleTree, leaf_hash, verify_consistency, verify_inclusion};
//!
//! let mut tree = MerkleTree::new();
//! for entry in [b"a".as_slice(), b"b", b"c"] {
//!     tree.push(entry);
//! }
//! let root = tree.root();
//! let proof = tree.inclusion_proof(1, 3).unwrap();
//! assert!(verify_inclusion(leaf_hash(b"b"), 1, 3, &proof, root).is_ok());
//! assert_eq!(verify_inclusion(leaf_hash(b"x"), 1, 3, &proof, root).unwrap_err().code(), "merkle.root_mismatch");
//! let old = tree.root_at(2).unwrap();
//! let consistency = tree.consistency_proof(2, 3).unwrap();
//! assert!(verify_consistency(2, 3, &consistency, old, root).is_ok());
//! ```

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// The most hashes an inclusion proof for a tree of at most 2^64 − 1 leaves can hold: one per
/// level (⌈log2 n⌉ for a tree of `n` leaves).
pub const MAX_PROOF_HASHES: usize = 64;

/// The most hashes a consistency proof for a tree of at most 2^64 − 1 leaves can hold: one per
/// level and the old tree's root side (⌈log2 n⌉ + 1; RFC 9162's `PROOF(3, D[7])` has four).
pub const MAX_CONSISTENCY_PROOF_HASHES: usize = MAX_PROOF_HASHES + 1;

/// Why a Merkle proof could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size larger than the tree (or, for consistency, an old size above the new one).
    #[error("tree size {size} is out of range (at most {limit})")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The largest size allowed there.
        limit: u64,
    },
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("the proof has the wrong number of hashes ({found})")]
    WrongLength {
        /// How many hashes it has.
        found: usize,
    },
    /// The proof does not lead to the expected root hash (or, for consistency, to both roots).
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    /// An entry whose leaf hash is not the one the tree holds at its index.
    #[error("the entry at leaf {index} is not the one the tree holds there")]
    LeafMismatch {
        /// The leaf index.
        index: u64,
    },
}

impl MerkleError {
    /// The stable code of this error, for example `merkle.root_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IndexOutOfRange { .. } => "merkle.index_out_of_range",
            Self::SizeOutOfRange { .. } => "merkle.size_out_of_range",
            Self::WrongLength { .. } => "merkle.proof_wrong_length",
            Self::RootMismatch => "merkle.root_mismatch",
            Self::LeafMismatch { .. } => "merkle.leaf_mismatch",
        }
    }
}

/// The leaf hash of `entry`: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Digest::from_bytes(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    Digest::from_bytes(hasher.finalize().into())
}

/// The root hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Digest {
    Digest::of(b"")
}

/// The largest power of two strictly below `n`; called only with `n > 1`.
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree holding the hash of every complete subtree, level by level.
///
/// Level 0 holds the leaf hashes; level `L` at index `N` holds the hash of the `2^L` leaves from
/// `N·2^L` — the hashes C2SP `tlog-tiles` serves. Every root and proof for a size up to
/// [`len`](MerkleTree::len) is computed from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Digest>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `entry` as the next leaf.
    pub fn push(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    /// Appends a leaf by its leaf hash, completing every subtree it closes.
    pub fn push_leaf_hash(&mut self, hash: Digest) {
        let mut hash = hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            let (Some(left), Some(right)) = (row.get(row.len() - 2), row.last()) else {
                return;
            };
            hash = node_hash(left, right);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels
            .first()
            .map_or(0, |leaves| u64::try_from(leaves.len()).unwrap_or(u64::MAX))
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of the complete subtree at `level` and `index` (`2^level` leaves from
    /// `index·2^level`), if the tree holds it.
    pub fn stored_hash(&self, level: usize, index: u64) -> Option<Digest> {
        let index = usize::try_from(index).ok()?;
        self.levels.get(level)?.get(index).copied()
    }

    /// The root hash of the whole tree.
    pub fn root(&self) -> Digest {
        self.subtree(0, self.len())
    }

    /// The root hash the tree had when it held `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Digest, MerkleError> {
        self.check_size(size)?;
        Ok(self.subtree(0, size))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 §2.1.3.1, `PATH(index, D[size])`).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof between the trees of the first `old_size` and `new_size` leaves
    /// (RFC 9162 §2.1.4.1, `PROOF(old_size, D[new_size])`; empty when `old_size` is 0 or equal).
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Digest>, MerkleError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(MerkleError::SizeOutOfRange {
                size: old_size,
                limit: new_size,
            });
        }
        let mut proof = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.len() {
            return Err(MerkleError::SizeOutOfRange {
                size,
                limit: self.len(),
            });
        }
        Ok(())
    }

    /// `MTH(D[start:start+n])` for a range the recursion produces: `start` is a multiple of a
    /// power of two at least `n`, so every left part is a complete, stored subtree.
    fn subtree(&self, start: u64, n: u64) -> Digest {
        match n {
            0 => empty_root(),
            _ if n.is_power_of_two() => {
                let level = n.trailing_zeros() as usize;
                self.stored_hash(level, start >> level)
                    .unwrap_or_else(empty_root)
            }
            _ => {
                let k = split(n);
                node_hash(&self.subtree(start, k), &self.subtree(start + k, n - k))
            }
        }
    }

    /// `PATH(m, D[start:start+n])`, appended to `proof` leaf side first.
    fn path(&self, m: u64, start: u64, n: u64, proof: &mut Vec<Digest>) {
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, k, proof);
            proof.push(self.subtree(start + k, n - k));
        } else {
            self.path(m - k, start + k, n - k, proof);
            proof.push(self.subtree(start, k));
        }
    }

    /// `SUBPROOF(m, D[start:start+n], b)`, appended to `proof` leaf side first.
    fn subproof(&self, m: u64, start: u64, n: u64, whole: bool, proof: &mut Vec<Digest>) {
        if m == n {
            if !whole {
                proof.push(self.subtree(start, n));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, k, whole, proof);
            proof.push(self.subtree(start + k, n - k));
        } else {
            self.subproof(m - k, start + k, n - k, false, proof);
            proof.push(self.subtree(start, k));
        }
    }
}

/// Checks that `leaf` (a [`leaf_hash`]) is leaf `index` of the tree of `size` leaves whose root
/// is `root`, by RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: Digest,
) -> Result<(), MerkleError> {
    check_inclusion(leaf, index, size, proof, root, node_hash)
}

/// [`verify_inclusion`], each interior node taken from `memo` when it holds that node's
/// children, hashed (and remembered) otherwise: the same result for every input, cheaper for a
/// batch of proofs in one tree, whose paths share the nodes near the root (consecutive entries
/// share nearly all of them).
pub fn verify_inclusion_memo(
    leaf: Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: Digest,
    memo: &mut NodeHashMemo,
) -> Result<(), MerkleError> {
    check_inclusion(leaf, index, size, proof, root, |left, right| {
        memo.node_hash(left, right)
    })
}

/// The RFC 9162 §2.1.3.2 check, interior nodes computed by `node` (always [`node_hash`]'s
/// value: directly or through a [`NodeHashMemo`]).
fn check_inclusion(
    leaf: Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: Digest,
    mut node: impl FnMut(&Digest, &Digest) -> Digest,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(MerkleError::WrongLength { found: proof.len() });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::WrongLength { found: proof.len() });
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::WrongLength { found: proof.len() });
    }
    if r != root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// How many interior nodes a [`NodeHashMemo`] remembers.
pub const NODE_HASH_MEMO_SLOTS: usize = 256;

/// Interior node hashes remembered by their children: a pure-function cache of [`node_hash`]
/// (`SHA-256(0x01 ‖ left ‖ right)`), so it returns exactly what hashing would, whatever the
/// children (a hit compares both children in full). Direct-mapped: [`NODE_HASH_MEMO_SLOTS`]
/// slots picked by bytes of the children, a new node replacing the slot's old one, so hostile
/// children cost at most a miss each and the memo never grows.
#[derive(Debug, Clone)]
pub struct NodeHashMemo {
    slots: Vec<Option<[Digest; 3]>>,
}

impl Default for NodeHashMemo {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeHashMemo {
    /// An empty memo (its slots are allocated on first use: a verifier that checks one proof
    /// and is dropped never pays for them).
    pub fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// [`node_hash`] of `left` and `right`, remembered.
    pub fn node_hash(&mut self, left: &Digest, right: &Digest) -> Digest {
        if self.slots.is_empty() {
            self.slots = vec![None; NODE_HASH_MEMO_SLOTS];
        }
        let (l, r) = (left.as_bytes(), right.as_bytes());
        let at = usize::from(u16::from_le_bytes([l[0] ^ r[1], l[1] ^ r[0]])) % NODE_HASH_MEMO_SLOTS;
        let Some(slot) = self.slots.get_mut(at) else {
            return node_hash(left, right);
        };
        if let Some([seen_left, seen_right, node]) = slot
            && seen_left == left
            && seen_right == right
        {
            return *node;
        }
        let node = node_hash(left, right);
        *slot = Some([*left, *right, node]);
        node
    }
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root`, by RFC 9162 §2.1.4.2. Equal sizes need equal roots and an empty
/// proof; an empty old tree (root `SHA-256("")`) is extended by every tree, with an empty proof
/// (an empty new tree only with the empty root too).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Digest],
    old_root: Digest,
    new_root: Digest,
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeOutOfRange {
            size: old_size,
            limit: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::WrongLength { found: proof.len() });
        }
        // Two empty trees: both roots are the empty root (the new one is checked too).
        let roots_agree = if old_size == 0 {
            old_root == empty_root() && (new_size > 0 || new_root == empty_root())
        } else {
            old_root == new_root
        };
        return if roots_agree {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    if proof.is_empty() || proof.len() > MAX_CONSISTENCY_PROOF_HASHES {
        return Err(MerkleError::WrongLength { found: proof.len() });
    }
    let wrong_length = || MerkleError::WrongLength { found: proof.len() };
    let mut hashes = proof.iter().copied();
    let first = if old_size.is_power_of_two() {
        old_root
    } else {
        hashes.next().ok_or_else(wrong_length)?
    };
    let mut f = old_size - 1;
    let mut s = new_size - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = first;
    let mut sr = first;
    for c in hashes {
        if s == 0 {
            return Err(wrong_length());
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(&c, &fr);
            sr = node_hash(&c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, &c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length());
    }
    if fr != old_root || sr != new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}
