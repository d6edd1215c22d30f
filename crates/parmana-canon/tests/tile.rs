//! C2SP `tlog-tiles` against the specification's own examples and known answers: path spellings (C2SP's and Go's sumdb examples without the height), the tiles of a tree of 70,000 entries, and every tile hash against the root of its subtree computed by `ct-merkle`, an implementation we did not write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use parmana_canon::merkle::{MerkleTree, leaf_hash};
use parmana_canon::tile::{FULL_TILE_WIDTH, Tile, TileKind, hash_tiles, hashes_at_level};
use sha2::Sha256;

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn tree_of(size: u64) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for i in 0..size {
        tree.push(&entry(i));
    }
    tree
}

/// (path, kind, index, width): the spellings of C2SP `tlog-tiles` and of Go's
/// `sumdb/tlog` tests (`tile/4/0/001.p/5`, `tile/3/5/x123/x456/078.p/2`) without the height.
const PATHS: &[(&str, TileKind, u64, u16)] = &[
    ("0/000", TileKind::Hashes { level: 0 }, 0, 256),
    (
        "0/x001/x234/067",
        TileKind::Hashes { level: 0 },
        1_234_067,
        256,
    ),
    ("0/001.p/5", TileKind::Hashes { level: 0 }, 1, 5),
    (
        "5/x123/x456/078.p/2",
        TileKind::Hashes { level: 5 },
        123_456_078,
        2,
    ),
    ("63/999", TileKind::Hashes { level: 63 }, 999, 256),
    ("entries/000.p/1", TileKind::Entries, 0, 1),
    ("entries/x001/000", TileKind::Entries, 1000, 256),
    (
        "1/x018/x446/x744/x073/x709/x551/615",
        TileKind::Hashes { level: 1 },
        u64::MAX,
        256,
    ),
];

/// Paths that are not a tile in their one canonical spelling.
const MALFORMED: &[&str] = &[
    "",
    "0",
    "0/",
    "0/0",
    "0/0000",
    "0/x000/001",
    "0/001/002",
    "0/x1/002",
    "00/000",
    "64/000",
    "-1/000",
    "data/000",
    "entries/00a",
    "0/000.p/0",
    "0/000.p/256",
    "0/000.p/05",
    "0/000.p/",
    "0/000.p",
    "0/000/",
    "0/+12",
    "0/x018/x446/x744/x073/x709/x551/616",
    "1/x999/x999/x999/x999/x999/x999/x999/999",
];

#[test]
fn paths_read_and_write_in_the_canonical_spelling() {
    for (path, kind, index, width) in PATHS {
        let tile = Tile::parse_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (tile.kind(), tile.index(), tile.width()),
            (*kind, *index, *width),
            "{path}"
        );
        assert_eq!(tile.is_full(), *width == FULL_TILE_WIDTH);
        assert_eq!(tile.path(), *path);
        assert_eq!(Tile::new(*kind, *index, *width), Some(tile));
    }
    for path in MALFORMED {
        let error = Tile::parse_path(path).unwrap_err();
        assert_eq!(error.code(), "tile.malformed_path", "{path:?}");
    }
    assert_eq!(Tile::new(TileKind::Hashes { level: 64 }, 0, 1), None);
    assert_eq!(Tile::new(TileKind::Entries, 0, 0), None);
    assert_eq!(Tile::new(TileKind::Entries, 0, 257), None);
}

/// The example of C2SP `tlog-tiles`: "a tree of size 70,000 will be represented by 273 full level
/// 0 tiles, one partial level 0 tile of width 112, one full level 1 tile, one partial level 1 tile
/// of width 17, and one partial level 2 tile of width 1", and "a tree of size 256 will be
/// represented by a full level 0 tile and a partial level 1 tile of width 1".
#[test]
fn the_tiles_of_a_tree_are_those_of_the_specification() {
    let summary = |size: u64| -> Vec<(u8, usize, Option<u16>)> {
        let tiles = hash_tiles(size);
        (0..=2u8)
            .filter_map(|level| {
                let at: Vec<&Tile> = tiles
                    .iter()
                    .filter(|t| t.kind() == TileKind::Hashes { level })
                    .collect();
                if at.is_empty() {
                    return None;
                }
                let full = at.iter().filter(|t| t.is_full()).count();
                let partial = at.iter().find(|t| !t.is_full()).map(|t| t.width());
                Some((level, full, partial))
            })
            .collect()
    };
    assert_eq!(
        summary(70_000),
        vec![(0, 273, Some(112)), (1, 1, Some(17)), (2, 0, Some(1))]
    );
    assert_eq!(hash_tiles(70_000).len(), 273 + 1 + 1 + 1 + 1);
    assert_eq!(summary(256), vec![(0, 1, None), (1, 0, Some(1))]);
    assert!(hash_tiles(0).is_empty());
    assert_eq!(hashes_at_level(2, 70_000), 1);
    assert_eq!(hashes_at_level(63, u64::MAX), 0);
}

/// Every hash of every tile of a tree of 70,000 entries is the root of the subtree it stands for
/// (`MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L])`), that root computed by `ct-merkle`
/// from the entries themselves; tiles past the tree are refused.
#[test]
fn tile_hashes_are_the_roots_of_their_subtrees() {
    const SIZE: u64 = 70_000;
    let tree = tree_of(SIZE);
    let subtree_root = |first: u64, count: u64| -> Vec<u8> {
        let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        for i in first..first + count {
            theirs.push(entry(i));
        }
        theirs.root().as_bytes().to_vec()
    };
    for tile in hash_tiles(SIZE) {
        let TileKind::Hashes { level } = tile.kind() else {
            unreachable!()
        };
        let bytes = tile.hashes(&tree).unwrap();
        assert_eq!(bytes.len(), usize::from(tile.width()) * 32);
        let span = 256u64.pow(u32::from(level));
        // Level 0 against the leaf hashes; every level-1 and level-2 hash against ct-merkle.
        for (i, hash) in bytes.chunks(32).enumerate() {
            let first = (tile.index() * 256 + i as u64) * span;
            let expected = if level == 0 {
                leaf_hash(&entry(first)).as_bytes().to_vec()
            } else {
                subtree_root(first, span)
            };
            assert_eq!(hash, expected.as_slice(), "{} hash {i}", tile.path());
        }
    }
    // A level-2 tile's one hash is the root of the first 65,536 entries.
    let level2 = Tile::parse_path("2/000.p/1")
        .unwrap()
        .hashes(&tree)
        .unwrap();
    assert_eq!(
        level2.as_slice(),
        tree.root_at(65_536).unwrap().as_bytes().as_slice()
    );
    // Narrower partial tiles are prefixes of the wider ones.
    let wide = Tile::parse_path("0/273.p/112")
        .unwrap()
        .hashes(&tree)
        .unwrap();
    let narrow = Tile::parse_path("0/273.p/7")
        .unwrap()
        .hashes(&tree)
        .unwrap();
    assert_eq!(&wide[..7 * 32], narrow.as_slice());
    for beyond in [
        "0/273.p/113",
        "0/273",
        "0/274.p/1",
        "1/001",
        "1/001.p/18",
        "3/000.p/1",
    ] {
        let error = Tile::parse_path(beyond).unwrap().hashes(&tree).unwrap_err();
        assert_eq!(error.code(), "tile.beyond_tree", "{beyond}");
    }
    let far = Tile::parse_path("0/x018/x446/x744/x073/x709/x551/615").unwrap();
    assert_eq!(far.hashes(&tree).unwrap_err().code(), "tile.beyond_tree");
    // An entry bundle is not a hash tile, nor the reverse.
    let entries = Tile::parse_path("entries/000").unwrap();
    assert_eq!(
        entries.hashes(&tree).unwrap_err().code(),
        "tile.beyond_tree"
    );
}

#[test]
fn entry_bundles_are_length_prefixed_entries() {
    let entries: Vec<Vec<u8>> = (0..300).map(entry).collect();
    let size = entries.len() as u64;
    let get = |position: u64| {
        entries
            .get(usize::try_from(position).ok()?)
            .map(Vec::as_slice)
    };
    let full = Tile::parse_path("entries/000").unwrap();
    let bundle = full.bundle(size, get).unwrap();
    let mut rest = bundle.as_slice();
    for i in 0..256 {
        let (length, tail) = rest.split_first_chunk::<2>().unwrap();
        let length = usize::from(u16::from_be_bytes(*length));
        assert_eq!(&tail[..length], entry(i).as_slice());
        rest = &tail[length..];
    }
    assert!(rest.is_empty());
    let partial = Tile::parse_path("entries/001.p/44").unwrap();
    let bundle = partial.bundle(size, get).unwrap();
    assert_eq!(&bundle[..2], &[0, entry(256).len() as u8]);
    assert_eq!(&bundle[2..2 + entry(256).len()], entry(256).as_slice());
    for beyond in ["entries/001", "entries/001.p/45", "entries/002.p/1"] {
        let error = Tile::parse_path(beyond)
            .unwrap()
            .bundle(size, get)
            .unwrap_err();
        assert_eq!(error.code(), "tile.beyond_tree", "{beyond}");
    }
    let hashes = Tile::parse_path("0/000").unwrap();
    assert_eq!(
        hashes.bundle(size, get).unwrap_err().code(),
        "tile.beyond_tree"
    );
    // An entry too long for a u16 length is refused, never truncated.
    let long = [vec![7u8; 65_536]];
    let one = Tile::parse_path("entries/000.p/1").unwrap();
    let error = one
        .bundle(1, |p| long.get(usize::try_from(p).ok()?).map(Vec::as_slice))
        .unwrap_err();
    assert_eq!(error.code(), "tile.entry_too_large");
}
