//! RFC 8785 (JSON Canonicalization Scheme) encoding, through `serde_jcs`.

use serde::Serialize;
use serde_json::Value;

use crate::{CanonError, parse_strict};

/// The RFC 8785 canonical bytes of any serializable value.
///
/// Object keys are sorted by UTF-16 code units, numbers are written as
/// ECMAScript's `Number.prototype.toString` writes them, strings use the
/// minimal escaping of RFC 8785, and there is no whitespace.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    serde_jcs::to_vec(value).map_err(|e| CanonError::NotRepresentable {
        message: e.to_string(),
    })
}

/// The RFC 8785 canonical bytes of a parsed JSON value.
pub fn canonicalize_value(value: &Value) -> Result<Vec<u8>, CanonError> {
    to_canonical_vec(value)
}

/// Parses JSON text strictly (see [`parse_strict`]) and returns its RFC 8785 canonical bytes.
pub fn canonicalize(text: &[u8]) -> Result<Vec<u8>, CanonError> {
    canonicalize_value(&parse_strict(text)?)
}
