//! C2SP `tlog-tiles`: tile coordinates and their paths (`<L>/<N>[.p/<W>]`, `entries/<N>[.p/<W>]`), the bytes of a hash tile from a [`MerkleTree`](crate::merkle::MerkleTree), and entry bundles.
//!
//! A tile has height 8: the tile at level `L` and index `N` holds up to 256 consecutive Merkle
//! tree hashes, hash `i` being `MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L])` — the stored
//! hash of the complete subtree at tree level `8·L` and index `N·256 + i`. A full tile holds 256
//! hashes (8,192 bytes); a partial tile, `.p/<W>`, the first `W` (1–255). The index is written in
//! zero-padded groups of three digits, all but the last prefixed with `x` (1234067 is
//! `x001/x234/067`). An entry bundle holds the same range of log entries as the level-0 tile, each
//! as a big-endian `u16` length and the entry's bytes.
//!
//! ```
//! use parmana_canon::merkle::MerkleTree;
//! use parmana_canon::tile::Tile;
//!
//! let tile = Tile::parse_path("0/x001/x234/067.p/5").unwrap();
//! assert_eq!((tile.index(), tile.width(), tile.is_full()), (1_234_067, 5, false));
//! assert_eq!(tile.path(), "0/x001/x234/067.p/5");
//! assert_eq!(Tile::parse_path("0/x000/067").unwrap_err().code(), "tile.malformed_path");
//!
//! let mut tree = MerkleTree::new();
//! for i in 0u32..300 {
//!     tree.push(&i.to_be_bytes());
//! }
//! let full = Tile::parse_path("0/000").unwrap();
//! assert_eq!(full.hashes(&tree).unwrap().len(), 256 * 32);
//! let beyond = Tile::parse_path("0/001").unwrap(); // only 44 leaves there
//! assert_eq!(beyond.hashes(&tree).unwrap_err().code(), "tile.beyond_tree");
//! ```

use crate::merkle::MerkleTree;

/// The height of a tile: each level of tiles spans 8 levels of the tree.
pub const TILE_HEIGHT: u32 = 8;

/// The hashes (or entries) of a full tile.
pub const FULL_TILE_WIDTH: u16 = 256;

/// The highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// The longest entry an entry bundle can carry (its length is a `u16`).
pub const MAX_BUNDLED_ENTRY_BYTES: usize = u16::MAX as usize;

/// Why a tile could not be named or served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path is not a canonical tile path.
    #[error("{path:?} is not a tile path: {reason}")]
    MalformedPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tile reaches past the tree: the log does not hold those hashes or entries (yet).
    #[error("tile {path} reaches past the log of {size} entries")]
    BeyondTree {
        /// The tile's path.
        path: String,
        /// The log's size.
        size: u64,
    },
    /// An entry longer than an entry bundle's `u16` length can say.
    #[error("entry {position} is {length} bytes, more than an entry bundle can carry (65535)")]
    EntryTooLarge {
        /// The entry's position.
        position: u64,
        /// Its length in bytes.
        length: usize,
    },
}

impl TileError {
    /// The stable code of this error, for example `tile.beyond_tree`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedPath { .. } => "tile.malformed_path",
            Self::BeyondTree { .. } => "tile.beyond_tree",
            Self::EntryTooLarge { .. } => "tile.entry_too_large",
        }
    }
}

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Merkle tree hashes at this tile level (0–63): level 0 holds leaf hashes.
    Hashes {
        /// The tile level.
        level: u8,
    },
    /// Log entries (an entry bundle), covering the range of the level-0 tile.
    Entries,
}

/// A tile's coordinates: what it holds, its index in its level and its width (1–256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    kind: TileKind,
    index: u64,
    width: u16,
}

/// `text` as an ASCII decimal without leading zeros (`0` itself allowed), if it is one.
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

impl Tile {
    /// The tile of `kind` at `index` holding `width` hashes or entries (1 to 256; 256 is full).
    pub fn new(kind: TileKind, index: u64, width: u16) -> Option<Self> {
        let level_ok = match kind {
            TileKind::Hashes { level } => level <= MAX_TILE_LEVEL,
            TileKind::Entries => true,
        };
        (level_ok && (1..=FULL_TILE_WIDTH).contains(&width)).then_some(Self { kind, index, width })
    }

    /// Reads the part of a tile's URL after `tile/`: `<L>/<N>[.p/<W>]` or
    /// `entries/<N>[.p/<W>]`, in the one canonical spelling [`Tile::path`] writes
    /// (`tile.malformed_path` otherwise).
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let malformed = |reason| TileError::MalformedPath {
            path: path.to_owned(),
            reason,
        };
        let (head, rest) = path
            .split_once('/')
            .ok_or_else(|| malformed("a tile path is a level and an index"))?;
        let kind = if head == "entries" {
            TileKind::Entries
        } else {
            let level = decimal(head)
                .and_then(|level| u8::try_from(level).ok())
                .filter(|level| *level <= MAX_TILE_LEVEL)
                .ok_or_else(|| malformed("the level is a decimal from 0 to 63, or `entries`"))?;
            TileKind::Hashes { level }
        };
        let (index_text, width) = match rest.split_once(".p/") {
            Some((index_text, width)) => {
                let width = decimal(width)
                    .and_then(|w| u16::try_from(w).ok())
                    .filter(|w| (1..FULL_TILE_WIDTH).contains(w))
                    .ok_or_else(|| malformed("a partial width is a decimal from 1 to 255"))?;
                (index_text, width)
            }
            None => (rest, FULL_TILE_WIDTH),
        };
        let mut index: u64 = 0;
        let groups: Vec<&str> = index_text.split('/').collect();
        let last = groups.len() - 1;
        for (i, group) in groups.iter().enumerate() {
            let digits = if i < last {
                group
                    .strip_prefix('x')
                    .ok_or_else(|| malformed("every index group but the last starts with `x`"))?
            } else {
                group
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("an index group is three digits"));
            }
            let value: u64 = digits
                .parse()
                .map_err(|_| malformed("an index group is three digits"))?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(value))
                .ok_or_else(|| malformed("the index does not fit in 64 bits"))?;
        }
        let tile = Self { kind, index, width };
        if tile.path() != path {
            return Err(malformed(
                "not the canonical spelling (no leading `x000` group)",
            ));
        }
        Ok(tile)
    }

    /// The tile's path after `tile/`, as C2SP `tlog-tiles` spells it.
    pub fn path(&self) -> String {
        let mut n = self.index;
        let mut text = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            text = format!("x{:03}/{text}", n % 1000);
        }
        let head = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        if self.is_full() {
            format!("{head}/{text}")
        } else {
            format!("{head}/{text}.p/{}", self.width)
        }
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// The tile's index in its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many hashes or entries it holds.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether it holds 256: a full tile never changes and may be cached for good.
    pub fn is_full(&self) -> bool {
        self.width == FULL_TILE_WIDTH
    }

    /// Whether a log of `size` entries holds all of this tile — so that a checkpoint of that
    /// size commits to its bytes.
    pub fn is_within(&self, size: u64) -> bool {
        self.range_in(size).is_ok()
    }

    /// The tile level whose hashes count this tile's coverage (entries count as level 0).
    fn level(&self) -> u8 {
        match self.kind {
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        }
    }

    /// The range of positions in its level `[first, end)` this tile holds, if it fits in 64
    /// bits, and whether a log of `size` entries holds all of it.
    fn range_in(&self, size: u64) -> Result<(u64, u64), TileError> {
        let beyond = || TileError::BeyondTree {
            path: self.path(),
            size,
        };
        let available = hashes_at_level(self.level(), size);
        let first = self
            .index
            .checked_mul(u64::from(FULL_TILE_WIDTH))
            .ok_or_else(beyond)?;
        let end = first
            .checked_add(u64::from(self.width))
            .ok_or_else(beyond)?;
        if end > available {
            return Err(beyond());
        }
        Ok((first, end))
    }

    /// The tile's bytes from `tree`: its hashes, 32 bytes each, concatenated
    /// (`tile.beyond_tree` when the tree does not hold them all). An entry bundle is
    /// [`Tile::bundle`].
    pub fn hashes(&self, tree: &MerkleTree) -> Result<Vec<u8>, TileError> {
        let beyond = || TileError::BeyondTree {
            path: self.path(),
            size: tree.len(),
        };
        let TileKind::Hashes { level } = self.kind else {
            return Err(beyond());
        };
        let (first, end) = self.range_in(tree.len())?;
        let tree_level = usize::from(level) * TILE_HEIGHT as usize;
        let mut bytes = Vec::with_capacity(usize::from(self.width) * 32);
        for index in first..end {
            let hash = tree.stored_hash(tree_level, index).ok_or_else(beyond)?;
            bytes.extend_from_slice(hash.as_bytes());
        }
        Ok(bytes)
    }

    /// The positions of the entries this entry bundle holds in a log of `size` entries
    /// (`tile.beyond_tree` past the log, or for a hash tile).
    pub fn entry_positions(&self, size: u64) -> Result<std::ops::Range<u64>, TileError> {
        if self.kind != TileKind::Entries {
            return Err(TileError::BeyondTree {
                path: self.path(),
                size,
            });
        }
        let (first, end) = self.range_in(size)?;
        Ok(first..end)
    }

    /// The entry bundle of this tile for a log of `size` entries, `entry(position)` giving each
    /// entry's bytes: every entry as a big-endian `u16` length and the bytes
    /// (`tile.beyond_tree` past the log, `tile.entry_too_large` for an entry over 65535 bytes).
    pub fn bundle<'a>(
        &self,
        size: u64,
        entry: impl Fn(u64) -> Option<&'a [u8]>,
    ) -> Result<Vec<u8>, TileError> {
        let beyond = || TileError::BeyondTree {
            path: self.path(),
            size,
        };
        if self.kind != TileKind::Entries {
            return Err(beyond());
        }
        let (first, end) = self.range_in(size)?;
        let mut bytes = Vec::new();
        for position in first..end {
            let data = entry(position).ok_or_else(beyond)?;
            let length = u16::try_from(data.len()).map_err(|_| TileError::EntryTooLarge {
                position,
                length: data.len(),
            })?;
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(data);
        }
        Ok(bytes)
    }
}

/// How many hashes tile level `level` has in a tree of `size` leaves: `⌊size / 256^level⌋`.
pub fn hashes_at_level(level: u8, size: u64) -> u64 {
    let shift = u32::from(level) * TILE_HEIGHT;
    size.checked_shr(shift).unwrap_or(0)
}

/// Every hash tile a tree of `size` leaves is served as: the full tiles of each level and, where
/// the level's count is not a multiple of 256, the partial tile of that width — level by level,
/// index by index. (The entry bundles are those of level 0.)
pub fn hash_tiles(size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for level in 0..=MAX_TILE_LEVEL {
        let count = hashes_at_level(level, size);
        if count == 0 {
            break;
        }
        let kind = TileKind::Hashes { level };
        let full = count / u64::from(FULL_TILE_WIDTH);
        tiles.extend((0..full).map(|index| Tile {
            kind,
            index,
            width: FULL_TILE_WIDTH,
        }));
        let partial = count % u64::from(FULL_TILE_WIDTH);
        if let Ok(width) = u16::try_from(partial)
            && width > 0
        {
            tiles.push(Tile {
                kind,
                index: full,
                width,
            });
        }
    }
    tiles
}
