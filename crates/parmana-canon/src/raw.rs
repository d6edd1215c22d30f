//! `RawCanonical`: a value encoded once as RFC 8785 bytes, copied verbatim when it is a member of a larger canonical document.
//!
//! A document that embeds a large value it also needs on its own (an attestation embeds its
//! predicate, whose bytes are stored and hashed separately) would otherwise encode the value
//! twice. A `RawCanonical` is built only by [`RawCanonical::encode`], so its bytes are always
//! this crate's canonical output, and [`to_canonical_vec`](crate::to_canonical_vec) writes them
//! unchanged where the value appears — the result equals encoding the value in place.

use serde::Serialize;

use crate::jcs::to_canonical_pair;
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
        Self::from_canonical(to_canonical_vec(value)?)
    }

    /// Encodes `value`, an object, as RFC 8785 bytes, and returns them together with the RFC 8785
    /// bytes of the same object without its member `omit` (the same bytes when it has none),
    /// from one encoding: the members are encoded and sorted once, and written twice.
    ///
    /// An attestation's fingerprint is the digest of its predicate without `executed_at`; this
    /// gives both forms for the cost of one.
    ///
    /// ```
    /// use parmana_canon::{RawCanonical, to_canonical_vec};
    /// use serde_json::json;
    /// let value = json!({"b": 1, "at": "now", "a": [true]});
    /// let (whole, without) = RawCanonical::encode_omitting(&value, "at").unwrap();
    /// assert_eq!(whole.as_bytes(), to_canonical_vec(&value).unwrap());
    /// assert_eq!(without, br#"{"a":[true],"b":1}"#);
    /// assert!(RawCanonical::encode_omitting(&[1], "at").is_err());
    /// ```
    pub fn encode_omitting<T: Serialize + ?Sized>(
        value: &T,
        omit: &str,
    ) -> Result<(Self, Vec<u8>), CanonError> {
        let (whole, without) = to_canonical_pair(value, omit)?;
        Ok((Self::from_canonical(whole)?, without))
    }

    /// Wraps this crate's canonical output.
    fn from_canonical(bytes: Vec<u8>) -> Result<Self, CanonError> {
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

    /// The pair equals encoding the value, and encoding it with the member removed, for any
    /// key position (first, middle, last, absent, non-ASCII keys sorted by UTF-16).
    #[test]
    fn encoding_omitting_a_member_equals_removing_it_first() {
        let value = json!({"\u{10000}": 1, "\u{ffff}": {"x": [2]}, "b": null, "a": "s", "m": 1.5});
        for key in ["a", "b", "m", "\u{ffff}", "\u{10000}", "absent"] {
            let (whole, without) = RawCanonical::encode_omitting(&value, key).unwrap();
            assert_eq!(whole.as_bytes(), to_canonical_vec(&value).unwrap());
            let mut removed = value.clone();
            removed.as_object_mut().unwrap().remove(key);
            assert_eq!(without, to_canonical_vec(&removed).unwrap(), "{key}");
        }
        let single = json!({"only": 1});
        assert_eq!(
            RawCanonical::encode_omitting(&single, "only").unwrap().1,
            b"{}"
        );
        // Nested members of the same name stay; only the top level is affected.
        let nested = json!({"k": {"k": 1}, "z": [{"k": 2}]});
        let (_, without) = RawCanonical::encode_omitting(&nested, "k").unwrap();
        assert_eq!(without, br#"{"z":[{"k":2}]}"#);
        // A struct through serde derive, and a value that is not an object.
        #[derive(serde::Serialize)]
        struct S {
            b: u8,
            a: Option<u8>,
        }
        let (whole, without) = RawCanonical::encode_omitting(&S { b: 1, a: Some(2) }, "b").unwrap();
        assert_eq!(
            (whole.as_bytes(), without.as_slice()),
            (&br#"{"a":2,"b":1}"#[..], &br#"{"a":2}"#[..])
        );
        for bad in [json!([1]), json!("s"), json!(null)] {
            assert!(RawCanonical::encode_omitting(&bad, "k").is_err());
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
