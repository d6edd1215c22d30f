//! Name lookup without string ordering: a sorted table of 64-bit name hashes, checked by one equality compare.
//!
//! Used to find a signal's slot from a key of the signals text and a string's symbol;
//! comparing hashes first avoids a byte comparison per probe of a binary search.
//! The table is sorted, so lookups never depend on any hash-map iteration order.

/// A 64-bit hash of `bytes`, eight bytes at a time (length-seeded, multiply–rotate mixing).
///
/// Fixed, not randomized: lookups must be deterministic. Collisions only cost one extra
/// equality compare among the names that share a hash.
pub(crate) fn name_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = mix(hash, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        if let Some(head) = word.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        hash = mix(hash, u64::from_le_bytes(word));
    }
    hash
}

/// Up to this many names, lookups scan them in order instead of hashing.
const LINEAR_SCAN_MAX: usize = 8;

/// Finds names by hash; each entry is (hash, position of the name in its list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NameIndex {
    by_hash: Vec<(u64, u32)>,
}

impl NameIndex {
    /// Indexes `names` by position.
    pub(crate) fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut by_hash: Vec<(u64, u32)> = names
            .enumerate()
            .map(|(i, n)| {
                (
                    name_hash(n.as_bytes()),
                    u32::try_from(i).unwrap_or(u32::MAX),
                )
            })
            .collect();
        by_hash.sort_unstable();
        Self { by_hash }
    }

    /// The position of `key`, where `name_at` gives the name at a position.
    #[inline]
    pub(crate) fn find<'a>(
        &self,
        key: &str,
        name_at: impl Fn(usize) -> Option<&'a str>,
    ) -> Option<usize> {
        if self.by_hash.len() <= LINEAR_SCAN_MAX {
            // A few names: comparing lengths, then bytes, beats hashing.
            return (0..self.by_hash.len()).find(|i| name_at(*i) == Some(key));
        }
        let hash = name_hash(key.as_bytes());
        let first = self.by_hash.partition_point(|(h, _)| *h < hash);
        self.by_hash
            .get(first..)?
            .iter()
            .take_while(|(h, _)| *h == hash)
            .map(|(_, i)| *i as usize)
            .find(|i| name_at(*i) == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let many: Vec<String> = (0..40).map(|i| format!("signal_{i}")).collect();
        for names in [
            vec!["claim_amount", "country", "", "é", "country2"],
            many.iter().map(String::as_str).collect(),
        ] {
            let index = NameIndex::new(names.iter().copied());
            for (i, n) in names.iter().enumerate() {
                assert_eq!(index.find(n, |k| names.get(k).copied()), Some(i));
            }
            assert_eq!(index.find("countr", |k| names.get(k).copied()), None);
            assert_eq!(index.find("signal_40", |k| names.get(k).copied()), None);
        }
        // Trailing zero bytes and length are distinguished.
        assert_ne!(name_hash(b"a"), name_hash(b"a\0"));
        assert_ne!(name_hash(b""), name_hash(b"\0"));
        assert_eq!(name_hash(b"claim_amount"), name_hash(b"claim_amount"));
    }
}
