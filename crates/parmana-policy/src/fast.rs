//! The fast path of signal validation from JSON text: a flat object of declared scalars read straight into slots.
//!
//! The text is read with `parmana_canon::reader::Reader`, the same strict tokenizer that
//! `parmana_canon::parse_strict` is built on, so every grammar and number rule is applied
//! exactly as there. It accepts only what it can decide exactly as `parse_strict` followed by
//! [`CompiledPolicy::validate_signals`] would: one object whose keys and string values hold no
//! escapes, with `true`/`false`, numbers and strings as values, every key declared and seen
//! once, and every value valid for its declaration. On anything else — escapes, `null`,
//! nesting, undeclared or repeated keys, a missing required signal, any constraint violation,
//! any refusal by the reader — it answers `None` and the caller takes the strict path, which
//! produces the result (or the precise error). So the fast path can change speed, never
//! outcomes; a property test checks the two agree.

use parmana_canon::reader::{JsonNumber, Reader, Token};

use crate::compile::CompiledPolicy;
use crate::signals::{Scalar, Slot};

/// Reads `text` as a flat signals object, or `None` when the strict path must decide.
pub(crate) fn read_flat_signals(policy: &CompiledPolicy, text: &[u8]) -> Option<Vec<Slot>> {
    let mut reader = Reader::new(text).ok()?;
    if reader.value().ok()? != Token::BeginObject {
        return None;
    }
    let mut slots = Vec::with_capacity(policy.signals.len());
    slots.resize_with(policy.signals.len(), || Slot::Absent);
    while let Some(key) = reader.member().ok()? {
        if key.escaped {
            return None;
        }
        let index = policy.slot_index(key.value)?;
        let decl = policy.signals.get(index)?;
        let scalar = match reader.value().ok()? {
            Token::String(text) if !text.escaped => Scalar::Str(text.value),
            Token::Number(JsonNumber::Int(n)) => Scalar::Int(n),
            Token::Number(JsonNumber::Float(f)) => Scalar::Float(f),
            Token::Bool(b) => Scalar::Bool(b),
            Token::String(_) | Token::Null | Token::BeginObject | Token::BeginArray => {
                return None;
            }
        };
        let slot = slots.get_mut(index)?;
        if *slot != Slot::Absent {
            return None;
        }
        *slot = policy.check_scalar(decl, scalar).ok()?;
    }
    reader.finish().ok()?;
    let complete = policy
        .signals
        .iter()
        .zip(&slots)
        .all(|(decl, slot)| !decl.required || *slot != Slot::Absent);
    complete.then_some(slots)
}

#[cfg(test)]
mod tests {
    use super::read_flat_signals;

    fn policy() -> crate::CompiledPolicy {
        crate::compile(
            br#"{"schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
                 "decisions": ["yes"],
                 "signals": {"a": {"type": "number", "required": true},
                             "c": {"type": "string", "required": true},
                             "v": {"type": "boolean", "required": false}},
                 "rules": [], "default": {"decision": "yes"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn plain_objects_take_the_fast_path() {
        let p = policy();
        for text in [
            r#"{"a": 1200, "c": "DE"}"#,
            " {\"c\":\"Zürich\",\n\t\"a\":-0.5e1, \"v\": false} ",
            r#"{"a": 9007199254740991, "c": ""}"#,
        ] {
            assert!(read_flat_signals(&p, text.as_bytes()).is_some(), "{text}");
        }
    }

    #[test]
    fn anything_unusual_goes_to_the_strict_path() {
        let p = policy();
        for text in [
            r#"{"a": 1, "c": "D\u0045"}"#,
            r#"{"a": 1, "c": "DE", "a": 2}"#,
            r#"{"a": 1, "c": "DE", "x": 2}"#,
            r#"{"a": 01, "c": "DE"}"#,
            r#"{"a": 1e999, "c": "DE"}"#,
            r#"{"a": 90071992547409910, "c": "DE"}"#,
            r#"{"a": null, "c": "DE"}"#,
            r#"{"a": 1}"#,
            r#"{"a": 1, "c": "DE"} x"#,
            r#"{"a": 1, "c": "DE",}"#,
            r#"{"a": "1", "c": "DE"}"#,
            "\u{feff}{\"a\": 1, \"c\": \"DE\"}",
        ] {
            assert!(read_flat_signals(&p, text.as_bytes()).is_none(), "{text}");
        }
    }
}
