//! The strict JSON parser: RFC 8259 text in, `serde_json::Value` out, with every ambiguity refused.

use serde_json::{Map, Number, Value};

use crate::CanonError;
use crate::reader::{JsonNumber, Reader, Token};

/// Deepest nesting of arrays and objects that [`parse_strict`] accepts.
///
/// A document nested 128 levels deep is accepted; one nested 129 levels deep is
/// refused with [`CanonError::TooDeep`]. Policies, signals and signed documents
/// are far shallower; the limit exists so that hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// The largest integer that an IEEE 754 double represents exactly together with all smaller ones: 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Parses one JSON document strictly.
///
/// Refuses, each with its own [`CanonError`] variant and byte offset:
/// invalid UTF-8, duplicate object keys, lone surrogate escapes, integer
/// literals outside ±(2^53−1) that are not byte for byte the RFC 8785 form of
/// their double (such as `100000000000000000000`, so that canonical output
/// always parses again), numbers with a fraction or an exponent beyond
/// ±(2^53−1) and up to 10^21 that are neither exactly their double nor its
/// shortest digits (`9007199254740993.0` would be rounded), numbers that
/// overflow to infinity, nesting
/// deeper than [`MAX_DEPTH`], trailing data, and any other grammar violation.
/// Leading and trailing JSON whitespace is allowed. A byte-order mark is not.
///
/// Integer literals (no fraction, no exponent) become integer numbers; every
/// other number becomes an `f64`, parsed with correct rounding. The tokens come
/// from [`Reader`](crate::reader::Reader), which applies every rule but the
/// duplicate-key one, checked here.
///
/// ```
/// use parmana_canon::{parse_strict, CanonError};
/// assert!(parse_strict(br#"{"a": 1}"#).is_ok());
/// assert!(matches!(parse_strict(br#"{"a": 1, "a": 2}"#), Err(CanonError::DuplicateKey { .. })));
/// ```
pub fn parse_strict(input: &[u8]) -> Result<Value, CanonError> {
    let mut reader = Reader::new(input)?;
    let value = value(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// Builds the value that starts at the reader's position.
fn value(reader: &mut Reader<'_>) -> Result<Value, CanonError> {
    Ok(match reader.value()? {
        Token::BeginObject => {
            let mut map = Map::new();
            while let Some(key) = reader.member()? {
                let key = key.value.to_owned();
                let key_offset = reader.token_offset();
                let value = value(reader)?;
                // Checked after the value, so that an error inside it is reported first.
                if map.contains_key(&key) {
                    return Err(CanonError::DuplicateKey {
                        key: crate::excerpt(&key),
                        offset: key_offset,
                    });
                }
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Token::BeginArray => {
            let mut items = Vec::new();
            while reader.element()? {
                items.push(value(reader)?);
            }
            Value::Array(items)
        }
        Token::String(text) => Value::String(text.value.to_owned()),
        Token::Number(JsonNumber::Int(n)) => Value::Number(Number::from(n)),
        Token::Number(JsonNumber::Float(f)) => {
            // The reader gives finite doubles only; this is its refusal of the others, kept.
            let number = Number::from_f64(f).ok_or(CanonError::NumberOutOfRange {
                offset: reader.token_offset(),
            })?;
            Value::Number(number)
        }
        Token::Bool(b) => Value::Bool(b),
        Token::Null => Value::Null,
    })
}
