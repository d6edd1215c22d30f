//! The strict JSON parser: RFC 8259 text in, `serde_json::Value` out, with every ambiguity refused.

use serde_json::{Map, Number, Value};

use crate::CanonError;

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
/// literals outside ±(2^53−1) whose value a double cannot hold exactly (a
/// larger literal is accepted only when it is byte for byte the RFC 8785 form
/// of its double, such as `100000000000000000000`, so that canonical output
/// always parses again), numbers that overflow to infinity, nesting
/// deeper than [`MAX_DEPTH`], trailing data, and any other grammar violation.
/// Leading and trailing JSON whitespace is allowed. A byte-order mark is not.
///
/// Integer literals (no fraction, no exponent) become integer numbers; every
/// other number becomes an `f64`, parsed with correct rounding.
///
/// ```
/// use parmana_canon::{parse_strict, CanonError};
/// assert!(parse_strict(br#"{"a": 1}"#).is_ok());
/// assert!(matches!(parse_strict(br#"{"a": 1, "a": 2}"#), Err(CanonError::DuplicateKey { .. })));
/// ```
pub fn parse_strict(input: &[u8]) -> Result<Value, CanonError> {
    let text = std::str::from_utf8(input).map_err(|e| CanonError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(CanonError::TrailingData { offset: parser.pos });
    }
    Ok(value)
}

struct Parser<'a> {
    /// The whole input, already checked to be UTF-8.
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn end(&self) -> CanonError {
        CanonError::UnexpectedEnd {
            offset: self.bytes.len(),
        }
    }

    fn syntax(&self, message: &'static str) -> CanonError {
        if self.pos >= self.bytes.len() {
            self.end()
        } else {
            CanonError::Syntax {
                message,
                offset: self.pos,
            }
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(
        &mut self,
        literal: &'static [u8],
        value: Value,
    ) -> Result<Value, CanonError> {
        let end = self.pos + literal.len();
        if self.bytes.get(self.pos..end) == Some(literal) {
            self.pos = end;
            Ok(value)
        } else if end > self.bytes.len() && literal.starts_with(&self.bytes[self.pos..]) {
            Err(self.end())
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, CanonError> {
        match self.peek() {
            None => Err(self.end()),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), CanonError> {
        if depth > MAX_DEPTH {
            Err(CanonError::TooDeep {
                limit: MAX_DEPTH,
                offset: self.pos,
            })
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, CanonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '{'
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected an object key"));
            }
            let key_offset = self.pos;
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected ':' after an object key"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            if map.contains_key(&key) {
                return Err(CanonError::DuplicateKey {
                    key,
                    offset: key_offset,
                });
            }
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.syntax("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, CanonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("expected ',' or ']' in an array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, CanonError> {
        let mut code: u16 = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.syntax("expected four hex digits after \\u")),
            };
            code = (code << 4) | u16::from(digit);
            self.pos += 1;
        }
        Ok(code)
    }

    /// The run of plain characters from the current position: up to a quote, a backslash or a control byte.
    fn plain_run(&mut self) -> Result<&'a str, CanonError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            self.pos += 1;
        }
        // The run stops only at ASCII bytes, so both ends are character boundaries.
        self.text
            .get(start..self.pos)
            .ok_or(CanonError::InvalidUtf8 { offset: start })
    }

    fn string(&mut self) -> Result<String, CanonError> {
        self.pos += 1; // opening quote
        let first = self.plain_run()?;
        if self.peek() == Some(b'"') {
            // The common case: no escapes, one exact allocation.
            self.pos += 1;
            return Ok(first.to_owned());
        }
        let mut out = String::with_capacity(first.len() + 16);
        out.push_str(first);
        loop {
            match self.peek() {
                None => return Err(self.end()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => return Err(self.syntax("unescaped control character in a string")),
            }
            let run = self.plain_run()?;
            out.push_str(run);
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), CanonError> {
        let escape_offset = self.pos;
        self.pos += 1; // backslash
        let Some(kind) = self.peek() else {
            return Err(self.end());
        };
        self.pos += 1;
        let simple = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(escape_offset, out),
            _ => {
                self.pos -= 1;
                return Err(self.syntax("invalid escape sequence"));
            }
        };
        out.push(simple);
        Ok(())
    }

    fn unicode_escape(&mut self, escape_offset: usize, out: &mut String) -> Result<(), CanonError> {
        let lone = CanonError::LoneSurrogate {
            offset: escape_offset,
        };
        let first = self.hex4()?;
        let scalar = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(lone);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(lone);
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(lone),
            other => u32::from(other),
        };
        let ch = char::from_u32(scalar).ok_or(lone)?;
        out.push(ch);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Number, CanonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 {
            return Err(self.syntax("expected a digit"));
        }
        if int_digits > 1 && self.bytes[int_start] == b'0' {
            return Err(CanonError::Syntax {
                message: "leading zero in a number",
                offset: int_start,
            });
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit in the exponent"));
            }
        }
        // The slice is ASCII digits and signs only.
        let literal = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| CanonError::InvalidUtf8 { offset: start })?;
        if integer {
            // More than 16 digits can never be within ±(2^53−1); avoid overflowing i64 parsing.
            let parsed = if int_digits > 16 {
                None
            } else {
                literal.parse::<i64>().ok()
            };
            match parsed {
                Some(n) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) => {
                    Ok(Number::from(n))
                }
                _ => exact_large_integer(literal)
                    .ok_or(CanonError::IntegerOutOfRange { offset: start }),
            }
        } else {
            let value: f64 = literal.parse().map_err(|_| CanonError::Syntax {
                message: "invalid number",
                offset: start,
            })?;
            Number::from_f64(value).ok_or(CanonError::NumberOutOfRange { offset: start })
        }
    }
}

/// An integer literal beyond ±(2^53−1) is accepted only when it is exactly how
/// RFC 8785 (ECMAScript) writes the double it denotes — for example
/// `100000000000000000000` (1e20), which canonical encoding itself produces for
/// that double. Its value is then exact and re-encoding gives the same bytes.
/// Any other such literal (`9007199254740993`, which would round to
/// `9007199254740992`) is refused: nothing may change between what was parsed
/// and what is signed.
fn exact_large_integer(literal: &str) -> Option<Number> {
    let value: f64 = literal.parse().ok()?;
    let number = Number::from_f64(value)?;
    let rewritten = crate::to_canonical_vec(&number).ok()?;
    (rewritten == literal.as_bytes()).then_some(number)
}
