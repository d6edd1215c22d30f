//! SHA-256 content digests, written `sha256:<64 lowercase hex>`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{CanonError, to_canonical_vec};

const PREFIX: &str = "sha256:";

/// A SHA-256 digest of some bytes, written `sha256:<64 lowercase hex>`.
///
/// Parsing is strict: upper-case hex, a wrong length or another algorithm is refused.
///
/// ```
/// use parmana_canon::Digest;
/// let d = Digest::of(b"abc");
/// assert_eq!(d.to_string(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
/// assert!("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD".parse::<Digest>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestParseError {
    /// The string does not start with `sha256:`.
    #[error("digest must start with \"sha256:\"")]
    UnsupportedAlgorithm,
    /// The hex part is not exactly 64 characters.
    #[error("digest must have exactly 64 hex characters, found {0}")]
    WrongLength(usize),
    /// The hex part has a character other than `0-9a-f`.
    #[error("digest must be lowercase hex")]
    NotLowercaseHex,
}

impl DigestParseError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedAlgorithm => "digest.unsupported_algorithm",
            Self::WrongLength(_) => "digest.wrong_length",
            Self::NotLowercaseHex => "digest.not_lowercase_hex",
        }
    }
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of the RFC 8785 canonical bytes of `value`.
    pub fn of_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Self, CanonError> {
        Ok(Self::of(&to_canonical_vec(value)?))
    }

    /// HMAC-SHA256 (RFC 2104) of `message` under `key`: a tag only a holder of the key can
    /// make. Compare tags with [`Digest::ct_eq`].
    ///
    /// ```
    /// use parmana_canon::Digest;
    /// // RFC 4231, test case 2.
    /// let tag = Digest::hmac(b"Jefe", b"what do ya want for nothing?");
    /// assert_eq!(tag.to_hex(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /// ```
    pub fn hmac(key: &[u8], message: &[u8]) -> Self {
        const BLOCK: usize = 64;
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.map(|b| b ^ byte);
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Self(
            Sha256::new()
                .chain_update(pad(0x5c))
                .chain_update(inner)
                .finalize()
                .into(),
        )
    }

    /// Whether two digests are equal, in time that does not depend on where they differ (for
    /// comparing a tag with the one expected).
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
    }

    /// A digest from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix.
    pub fn to_hex(&self) -> String {
        let mut out = [0u8; 64];
        self.write_hex(&mut out);
        out.iter().map(|&b| char::from(b)).collect()
    }

    /// Writes the 64 lowercase hex characters into `out`, without allocating.
    fn write_hex(&self, out: &mut [u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
    }

    /// The text form `sha256:<hex>` in a stack buffer.
    fn text(&self) -> [u8; 71] {
        let mut buffer = [0u8; 71];
        buffer[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        self.write_hex(&mut buffer[PREFIX.len()..]);
        buffer
    }

    /// Parses 64 lowercase hex characters (no prefix).
    pub fn from_hex(hex: &str) -> Result<Self, DigestParseError> {
        if !hex.is_ascii() {
            // A character outside 0-9a-f, whatever the length (a length in bytes would not be
            // the count of characters).
            return Err(DigestParseError::NotLowercaseHex);
        }
        if hex.len() != 64 {
            return Err(DigestParseError::WrongLength(hex.len()));
        }
        // Decode all 64 characters, then look once at whether any was not a digit (no branch
        // per character: this runs for every digest read).
        let mut out = [0u8; 32];
        let mut seen = 0u8;
        for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (high, low) = (
                HEX_DIGIT_VALUE[usize::from(pair[0])],
                HEX_DIGIT_VALUE[usize::from(pair[1])],
            );
            seen |= high | low;
            *slot = (high << 4) | low;
        }
        if seen > 0x0f {
            return Err(DigestParseError::NotLowercaseHex);
        }
        Ok(Self(out))
    }
}

/// Each byte's value as a lowercase hex digit (0–15), or [`NOT_HEX`] for any other byte.
const HEX_DIGIT_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut value = 0u8;
    while value < 16 {
        table[b"0123456789abcdef"[value as usize] as usize] = value;
        value += 1;
    }
    table
};

/// The [`HEX_DIGIT_VALUE`] of a byte that is not a lowercase hex digit (above any digit's).
const NOT_HEX: u8 = 0xf0;

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer is ASCII by construction.
        f.write_str(std::str::from_utf8(&self.text()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix(PREFIX)
            .ok_or(DigestParseError::UnsupportedAlgorithm)?;
        Self::from_hex(hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        // The buffer is ASCII by construction.
        let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Digest;

    #[test]
    fn hmac_matches_rfc_4231() {
        let long_key = [0xaa_u8; 131];
        let key_4: Vec<u8> = (1..=25).collect();
        // RFC 4231 §4: test cases 1, 2, 3, 4, 6 and 7 (HMAC-SHA-256; case 5 is truncated).
        let cases: [(&[u8], &[u8], &str); 6] = [
            (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (&[0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (&key_4, &[0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (&long_key, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (n, (key, message, expected)) in cases.iter().enumerate() {
            let tag = Digest::hmac(key, message);
            assert_eq!(tag.to_hex(), *expected, "case {n}");
            let same: Digest = format!("sha256:{expected}").parse().unwrap();
            assert!(tag.ct_eq(&same), "case {n}");
            assert!(!tag.ct_eq(&Digest::of(message)), "case {n}");
        }
    }
}
