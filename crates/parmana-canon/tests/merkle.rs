//! RFC 9162 Merkle hashing against the transparency-dev known answers and against `ct-merkle`, an implementation we did not write; and every tampered proof refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use parmana_canon::Digest;
use parmana_canon::merkle::{
    MerkleTree, NodeHashMemo, empty_root, leaf_hash, verify_consistency, verify_inclusion,
    verify_inclusion_memo,
};
use sha2::Sha256;

/// The eight leaves of the reference tree of transparency-dev/merkle
/// (`testonly/reference_test.go`, the C++ `ReferenceMerkleTreeHash` vectors of Certificate
/// Transparency).
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `MTH` of the first 0, 1, …, 8 leaves (same source; size 0 is `SHA-256("")`).
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Inclusion proofs of the same source: (tree size, leaf index, proof hashes).
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (1, 0, &[]),
    (
        2,
        0,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        2,
        1,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        3,
        2,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        5,
        1,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        8,
        0,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        8,
        5,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// Consistency proofs of the same source: (old size, new size, proof hashes).
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hash(text: &str) -> Digest {
    Digest::from_bytes(unhex(text).try_into().unwrap())
}

fn hashes(texts: &[&str]) -> Vec<Digest> {
    texts.iter().map(|t| hash(t)).collect()
}

fn reference_tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    for leaf in LEAVES {
        tree.push(&unhex(leaf));
    }
    tree
}

#[test]
fn roots_match_the_reference_at_every_size() {
    let tree = reference_tree();
    assert_eq!(MerkleTree::new().root(), hash(ROOTS[0]));
    assert_eq!(empty_root(), hash(ROOTS[0]));
    for (size, root) in (0u64..).zip(ROOTS) {
        assert_eq!(tree.root_at(size).unwrap(), hash(root), "size {size}");
        let mut prefix = MerkleTree::new();
        for leaf in &LEAVES[..usize::try_from(size).unwrap()] {
            prefix.push(&unhex(leaf));
        }
        assert_eq!(prefix.root(), hash(root), "a tree grown to {size}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference_and_verify() {
    let tree = reference_tree();
    for &(size, index, expected) in INCLUSION {
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof, hashes(expected), "size {size}, index {index}");
        let leaf = leaf_hash(&unhex(LEAVES[usize::try_from(index).unwrap()]));
        let root = hash(ROOTS[usize::try_from(size).unwrap()]);
        verify_inclusion(leaf, index, size, &proof, root).unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_reference_and_verify() {
    let tree = reference_tree();
    for &(old, new, expected) in CONSISTENCY {
        let proof = tree.consistency_proof(old, new).unwrap();
        assert_eq!(proof, hashes(expected), "{old} → {new}");
        let old_root = hash(ROOTS[usize::try_from(old).unwrap()]);
        let new_root = hash(ROOTS[usize::try_from(new).unwrap()]);
        verify_consistency(old, new, &proof, old_root, new_root).unwrap();
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn flat(proof: &[Digest]) -> Vec<u8> {
    proof.iter().flat_map(|d| d.as_bytes().to_vec()).collect()
}

/// Every proof of every size up to 40 is byte-identical to ct-merkle's, and each side verifies
/// the other's.
#[test]
fn agrees_with_ct_merkle_at_every_size() {
    const N: u64 = 40;
    let mut ours = MerkleTree::new();
    let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    let mut their_roots = Vec::new();
    for i in 0..N {
        ours.push(&entry(i));
        theirs.push(entry(i));
        their_roots.push(theirs.root());
        let size = i + 1;
        assert_eq!(
            ours.root().as_bytes().as_slice(),
            theirs.root().as_bytes().as_slice()
        );
        for index in 0..size {
            let proof = ours.inclusion_proof(index, size).unwrap();
            let their_proof = theirs.prove_inclusion(usize::try_from(index).unwrap());
            assert_eq!(
                flat(&proof),
                their_proof.as_bytes(),
                "inclusion {index} of {size}"
            );
            theirs
                .root()
                .verify_inclusion(
                    &entry(index),
                    index,
                    &InclusionProof::from_bytes(flat(&proof)),
                )
                .unwrap();
        }
    }
    for new in 1..=N {
        for old in 1..=new {
            let proof = ours.consistency_proof(old, new).unwrap();
            let additions = usize::try_from(new - old).unwrap();
            let mut prefix = MemoryBackedTree::<Sha256, Vec<u8>>::new();
            (0..new).for_each(|i| prefix.push(entry(i)));
            let theirs_proof = prefix.prove_consistency(additions);
            assert_eq!(
                flat(&proof),
                theirs_proof.as_bytes(),
                "consistency {old} → {new}"
            );
            let new_root: &RootHash<Sha256> = &their_roots[usize::try_from(new - 1).unwrap()];
            let old_root = &their_roots[usize::try_from(old - 1).unwrap()];
            new_root
                .verify_consistency(
                    old_root,
                    &ConsistencyProof::try_from_bytes(flat(&proof)).unwrap(),
                )
                .unwrap();
            verify_consistency(
                old,
                new,
                &proof,
                ours.root_at(old).unwrap(),
                ours.root_at(new).unwrap(),
            )
            .unwrap();
        }
    }
}

/// Flipping any bit of any proof hash, the leaf or a root, changing the index, or dropping or
/// adding a hash is refused.
#[test]
fn tampered_proofs_are_refused() {
    let mut tree = MerkleTree::new();
    (0..13).for_each(|i| tree.push(&entry(i)));
    let size = 13;
    let root = tree.root();
    for index in 0..size {
        let leaf = leaf_hash(&entry(index));
        let proof = tree.inclusion_proof(index, size).unwrap();
        for position in 0..proof.len() {
            for bit in 0..256 {
                let mut bad = proof.clone();
                bad[position] = flip(bad[position], bit);
                assert_eq!(
                    verify_inclusion(leaf, index, size, &bad, root)
                        .unwrap_err()
                        .code(),
                    "merkle.root_mismatch"
                );
            }
        }
        assert!(verify_inclusion(flip(leaf, 3), index, size, &proof, root).is_err());
        assert!(verify_inclusion(leaf, index, size, &proof, flip(root, 200)).is_err());
        assert!(verify_inclusion(leaf, (index + 1) % size, size, &proof, root).is_err());
        // The tree size is not bound by an inclusion proof (a leaf of the left part has the same
        // path in the next larger tree): the signed checkpoint binds size and root together.
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(leaf, index, size, &longer, root).is_err());
        assert!(verify_inclusion(leaf, index, size, &proof[1..], root).is_err());
    }
    for old in 1..size {
        let proof = tree.consistency_proof(old, size).unwrap();
        let old_root = tree.root_at(old).unwrap();
        for position in 0..proof.len() {
            let mut bad = proof.clone();
            bad[position] = flip(bad[position], 77);
            assert!(verify_consistency(old, size, &bad, old_root, root).is_err());
        }
        assert!(verify_consistency(old, size, &proof, flip(old_root, 1), root).is_err());
        assert!(verify_consistency(old, size, &proof, old_root, flip(root, 1)).is_err());
        assert!(verify_consistency(old, size, &proof[1..], old_root, root).is_err());
    }
}

/// A memo of interior nodes changes no result: one memo shared by every inclusion proof of
/// trees of 1 to 40 leaves and by their tampered copies (each bit of each hash flipped, the
/// leaf flipped, the index moved, a hash added or dropped) — enough nodes to evict and collide —
/// gives exactly what `verify_inclusion` gives.
#[test]
fn memoised_inclusion_checks_agree() {
    let mut tree = MerkleTree::new();
    let mut memo = NodeHashMemo::new();
    let mut check = |leaf, index, size, proof: &[Digest], root| {
        let expected = verify_inclusion(leaf, index, size, proof, root);
        assert_eq!(
            verify_inclusion_memo(leaf, index, size, proof, root, &mut memo),
            expected,
            "index {index} of {size}"
        );
        expected.is_ok()
    };
    let (mut accepted, mut refused) = (0, 0);
    for size in 1..=40 {
        tree.push(&entry(size - 1));
        let root = tree.root();
        for index in 0..size {
            let leaf = leaf_hash(&entry(index));
            let proof = tree.inclusion_proof(index, size).unwrap();
            let mut cases = vec![
                (leaf, index, proof.clone()),
                (flip(leaf, 5), index, proof.clone()),
                (leaf, (index + 1) % size, proof.clone()),
                (leaf, index, [proof.as_slice(), &[root]].concat()),
            ];
            if let Some((_, rest)) = proof.split_first() {
                cases.push((leaf, index, rest.to_vec()));
            }
            for position in 0..proof.len() {
                for bit in (0..256).step_by(37) {
                    let mut bad = proof.clone();
                    bad[position] = flip(bad[position], bit);
                    cases.push((leaf, index, bad));
                }
            }
            // The valid proof again after its tampered copies: the memo still holds its nodes.
            cases.push((leaf, index, proof));
            for (leaf, index, proof) in cases {
                if check(leaf, index, size, &proof, root) {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    assert!(
        accepted > 1_000 && refused > 10_000,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn edge_cases_are_typed_refusals() {
    let mut tree = MerkleTree::new();
    (0..5).for_each(|i| tree.push(&entry(i)));
    let root = tree.root();
    let code = |r: Result<Vec<Digest>, parmana_canon::merkle::MerkleError>| r.unwrap_err().code();
    assert_eq!(
        code(tree.inclusion_proof(5, 5)),
        "merkle.index_out_of_range"
    );
    assert_eq!(code(tree.inclusion_proof(0, 6)), "merkle.size_out_of_range");
    assert_eq!(
        code(tree.consistency_proof(4, 6)),
        "merkle.size_out_of_range"
    );
    assert_eq!(
        code(tree.consistency_proof(5, 4)),
        "merkle.size_out_of_range"
    );
    assert_eq!(
        tree.root_at(6).unwrap_err().code(),
        "merkle.size_out_of_range"
    );
    // The empty tree is extended by any tree; equal sizes need equal roots and no hashes.
    verify_consistency(0, 5, &[], empty_root(), root).unwrap();
    assert!(verify_consistency(0, 5, &[root], empty_root(), root).is_err());
    verify_consistency(5, 5, &[], root, root).unwrap();
    // Two empty trees: the new root must be the empty root too (a witness at size 0 must not
    // take a signed size-0 checkpoint of any other root).
    verify_consistency(0, 0, &[], empty_root(), empty_root()).unwrap();
    assert_eq!(
        verify_consistency(0, 0, &[], empty_root(), root)
            .unwrap_err()
            .code(),
        "merkle.root_mismatch"
    );
    assert_eq!(
        verify_consistency(5, 5, &[], flip(root, 9), root)
            .unwrap_err()
            .code(),
        "merkle.root_mismatch"
    );
    assert_eq!(
        verify_inclusion(leaf_hash(b"x"), 0, 0, &[], root)
            .unwrap_err()
            .code(),
        "merkle.index_out_of_range"
    );
    assert_eq!(
        verify_inclusion(leaf_hash(b"x"), 0, 5, &[root; 65], root)
            .unwrap_err()
            .code(),
        "merkle.proof_wrong_length"
    );
    // Levels hold exactly the complete subtrees (what tlog-tiles serves).
    assert_eq!(tree.stored_hash(0, 4), Some(leaf_hash(&entry(4))));
    assert_eq!(tree.stored_hash(2, 0), Some(tree.root_at(4).unwrap()));
    assert_eq!(tree.stored_hash(1, 2), None);
}

fn flip(digest: Digest, bit: usize) -> Digest {
    let mut bytes = *digest.as_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    Digest::from_bytes(bytes)
}

/// A consistency proof holds at most one hash more than the tree has levels (⌈log2 n⌉ + 1):
/// `PROOF(3, D[4])` has three. At the largest sizes that is 65 hashes, verified, and 66 refused
/// (`MAX_CONSISTENCY_PROOF_HASHES`). The huge proof is built, as RFC 9162 §2.1.4.1 defines it, over
/// a tree of identical leaves, whose subtree hashes depend on their size alone.
#[test]
fn a_consistency_proof_may_hold_one_hash_more_than_the_levels() {
    let mut tree = MerkleTree::new();
    for leaf in 0..4_u8 {
        tree.push(&[leaf]);
    }
    assert_eq!(tree.consistency_proof(3, 4).unwrap().len(), 3);

    /// `MTH` of `size` identical leaves `x`.
    fn root(size: u64) -> Digest {
        if size == 1 {
            return leaf_hash(b"x");
        }
        if size.is_power_of_two() {
            let half = root(size / 2);
            return parmana_canon::merkle::node_hash(&half, &half);
        }
        let k = split(size);
        parmana_canon::merkle::node_hash(&root(k), &root(size - k))
    }
    /// The largest power of two below `size` (> 1).
    fn split(size: u64) -> u64 {
        1 << (63 - (size - 1).leading_zeros())
    }
    /// RFC 9162 `SUBPROOF(m, D[n], complete)` over identical leaves.
    fn subproof(m: u64, n: u64, complete: bool) -> Vec<Digest> {
        if m == n {
            return if complete { Vec::new() } else { vec![root(n)] };
        }
        let k = split(n);
        if m <= k {
            let mut proof = subproof(m, k, complete);
            proof.push(root(n - k));
            proof
        } else {
            let mut proof = subproof(m - k, n - k, false);
            proof.push(root(k));
            proof
        }
    }
    let (old, new) = (3, (1_u64 << 63) + 5);
    let proof = subproof(old, new, true);
    assert_eq!(proof.len(), 65);
    verify_consistency(old, new, &proof, root(old), root(new)).unwrap();
    // The small case checks the construction against the tree's own proof.
    let mut same = MerkleTree::new();
    for _ in 0..7 {
        same.push(b"x");
    }
    assert_eq!(same.consistency_proof(3, 7).unwrap(), subproof(3, 7, true));
    let mut longer = proof.clone();
    longer.push(root(1));
    assert!(matches!(
        verify_consistency(old, new, &longer, root(old), root(new)),
        Err(parmana_canon::merkle::MerkleError::WrongLength { found: 66 })
    ));
}
