//! The fast path of signal validation from JSON text: a flat object of declared scalars read straight into slots.
//!
//! It accepts only what it can decide exactly as `parmana_canon::parse_strict` followed by
//! [`CompiledPolicy::validate_signals`] would: one object, JSON whitespace, keys and string
//! values without escapes or control characters, `true`/`false`, numbers in strict JSON
//! grammar (integers of at most 16 digits within ±(2^53−1), other numbers finite), every key
//! declared and seen once, and every value valid for its declaration. On anything else —
//! escapes, `null`, nesting, undeclared or repeated keys, a missing required signal, any
//! constraint violation, any syntax error — it answers `None` and the caller takes the strict
//! path, which produces the result (or the precise error). So the fast path can change speed,
//! never outcomes; a property test checks the two agree.

use crate::compile::CompiledPolicy;
use crate::signals::{Scalar, Slot};

/// Reads `text` as a flat signals object, or `None` when the strict path must decide.
pub(crate) fn read_flat_signals(policy: &CompiledPolicy, text: &[u8]) -> Option<Vec<Slot>> {
    let text = std::str::from_utf8(text).ok()?;
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let mut slots = Vec::with_capacity(policy.signals.len());
    slots.resize_with(policy.signals.len(), || Slot::Absent);
    cursor.skip_ws();
    cursor.expect(b'{')?;
    cursor.skip_ws();
    if cursor.peek() == Some(b'}') {
        cursor.pos += 1;
    } else {
        loop {
            let key = cursor.simple_string()?;
            let index = policy.slot_index(key)?;
            let decl = policy.signals.get(index)?;
            cursor.skip_ws();
            cursor.expect(b':')?;
            cursor.skip_ws();
            let scalar = cursor.scalar()?;
            let slot = slots.get_mut(index)?;
            if *slot != Slot::Absent {
                return None;
            }
            *slot = policy.check_scalar(decl, scalar).ok()?;
            cursor.skip_ws();
            match cursor.next()? {
                b',' => cursor.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_ws();
    if cursor.pos != cursor.bytes.len() {
        return None;
    }
    let complete = policy
        .signals
        .iter()
        .zip(&slots)
        .all(|(decl, slot)| !decl.required || *slot != Slot::Absent);
    complete.then_some(slots)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string without escapes or control characters; `None` for anything else.
    fn simple_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.pos = start + len + 1;
        self.text.get(start..start + len)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A scalar value; `None` for `null`, lists, objects, escapes and anything unusual.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b't' => self.word("true").map(|()| Scalar::Bool(true)),
            b'f' => self.word("false").map(|()| Scalar::Bool(false)),
            b'"' => self.simple_string().map(Scalar::Str),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word.as_bytes()).then(|| self.pos = end)
    }

    /// A number in strict JSON grammar, read as `parse_strict` reads it.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.bytes.get(int_start) == Some(&b'0')) {
            return None;
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        if integer {
            if int_digits > 16 {
                return None;
            }
            // At most 16 digits: no overflow. `-0` is 0, as the strict parser reads it.
            let digits = self.bytes.get(int_start..int_start + int_digits)?;
            let magnitude = digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            let n = if int_start > start {
                -magnitude
            } else {
                magnitude
            };
            let max = parmana_canon::MAX_SAFE_INTEGER;
            (-max..=max).contains(&n).then_some(Scalar::Int(n))
        } else {
            let f: f64 = self.text.get(start..self.pos)?.parse().ok()?;
            f.is_finite().then_some(Scalar::Float(f))
        }
    }
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
