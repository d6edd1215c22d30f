//! `RawCanonical`: a value encoded once as RFC 8785 bytes, copied verbatim when it is a member of a larger canonical document.
//!
//! A document that embeds a large value it also needs on its own (an attestation embeds its
//! predicate, whose bytes are stored and hashed separately) would otherwise encode the value
//! twice. A `RawCanonical` is built only by [`RawCanonical::encode`], so its bytes are always
//! this crate's canonical output, and [`to_canonical_vec`](crate::to_canonical_vec) writes them
//! unchanged where the value appears — the result equals encoding the value in place.

use serde::Serialize;

use crate::{CanonError, to_canonical_vec};

/// The newtype-struct name the canonical serializer recognizes (no other type uses it).
pub(crate) const RAW_TOKEN: &str = "$parmana_canon::RawCanonical";

/// The RFC 8785 bytes of one value, encoded once.
///
/// Serializing it with [`to_canonical_vec`](crate::to_canonical_vec) copies its bytes as they
/// are (canonical output is valid JSON, so the enclosing document stays canonical). It is not
/// meant for other serializers: they see the canonical text as a JSON string. It cannot be an
/// object key.
///
/// ```
/// use parmana_canon::{RawCanonical, to_canonical_vec};
/// use serde_json::json;
/// let inner = json!({"b": 2, "a": [1.0, "x"]});
/// let raw = RawCanonical::encode(&inner).unwrap();
/// assert_eq!(raw.as_bytes(), br#"{"a":[1,"x"],"b":2}"#);
/// let outer = to_canonical_vec(&std::collections::BTreeMap::from([("z", &raw)])).unwrap();
/// assert_eq!(outer, to_canonical_vec(&json!({"z": inner})).unwrap());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawCanonical(String);

impl RawCanonical {
    /// Encodes `value` as RFC 8785 bytes.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CanonError> {
        let bytes = to_canonical_vec(value)?;
        // Canonical output is always UTF-8 (it is written from `str`s and ASCII only).
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|_| CanonError::NotRepresentable {
                message: "canonical output is not UTF-8".to_owned(),
            })
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The canonical bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

impl std::fmt::Debug for RawCanonical {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawCanonical({})", self.0)
    }
}

impl Serialize for RawCanonical {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(RAW_TOKEN, self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Embedding a raw value anywhere gives the same bytes as encoding the value in place.
    #[test]
    fn raw_members_equal_encoding_in_place() {
        let values = [
            json!(null),
            json!("a\u{7f}\"\\\n"),
            json!(1e21),
            json!([]),
            json!({"\u{10000}": 1, "\u{ffff}": 2, "b": {"d": [true, {}], "c": -0.0}}),
        ];
        for value in values {
            let raw = RawCanonical::encode(&value).unwrap();
            assert_eq!(raw.as_bytes(), to_canonical_vec(&value).unwrap());
            let nested = to_canonical_vec(&(
                &raw,
                std::collections::BTreeMap::from([("m", &raw), ("a", &raw)]),
                Some(&raw),
            ))
            .unwrap();
            let expected =
                to_canonical_vec(&json!([value, {"m": value, "a": value}, value])).unwrap();
            assert_eq!(nested, expected, "{value}");
            let reparsed: Value = serde_json::from_slice(&nested).unwrap();
            assert_eq!(to_canonical_vec(&reparsed).unwrap(), nested);
        }
    }

    #[test]
    fn raw_values_are_not_object_keys() {
        let raw = RawCanonical::encode("k").unwrap();
        let map = std::collections::HashMap::from([(raw, 1)]);
        assert_eq!(
            to_canonical_vec(&map).unwrap_err().code(),
            "canon.not_representable"
        );
    }
}
