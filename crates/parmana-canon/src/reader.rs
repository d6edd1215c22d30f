//! The strict streaming JSON reader: one tokenizer, pulled by the caller, that every strict JSON reader in Parmana is built on.
//!
//! [`Reader`] reads one RFC 8259 document token by token, applying every strictness
//! rule of [`parse_strict`](crate::parse_strict) as it goes: invalid UTF-8, lone surrogate
//! escapes, numbers beyond ±(2^53−1) not written as their double, numbers that overflow or
//! are written with more than [`MAX_NUMBER_CHARS`] characters,
//! nesting deeper than [`MAX_DEPTH`], trailing data and every grammar violation are
//! refused with the same [`CanonError`] variant and byte offset. Duplicate keys are the
//! one rule it leaves to the caller, who knows which keys an object has already had
//! (the reader keeps no per-object state, so it never allocates for structure).
//!
//! The caller drives it by the grammar, which is what makes a recursive-descent
//! consumer short and leaves no "cannot happen" cases in it:
//!
//! * [`Reader::value`] reads the start of a value: a whole scalar, or the opening
//!   bracket of an object or an array;
//! * after [`Token::BeginObject`], [`Reader::member`] yields each key (the `:` after it
//!   consumed) until it answers `None` at the closing `}`; read each member's value
//!   with [`Reader::value`];
//! * after [`Token::BeginArray`], [`Reader::element`] answers `true` before each element
//!   (read it with [`Reader::value`]) and `false` at the closing `]`;
//! * [`Reader::finish`] checks that only whitespace follows the document.
//!
//! Strings without escapes are borrowed from the input; a string with escapes is
//! decoded into a buffer the reader reuses, so reading allocates only for those.
//!
//! ```
//! use parmana_canon::reader::{JsonNumber, Reader, Token};
//! let mut reader = Reader::new(br#"{"a": [1, 2.5]}"#).unwrap();
//! assert_eq!(reader.value().unwrap(), Token::BeginObject);
//! assert_eq!(reader.member().unwrap().map(|key| key.value), Some("a"));
//! assert_eq!(reader.value().unwrap(), Token::BeginArray);
//! assert!(reader.element().unwrap());
//! assert_eq!(reader.value().unwrap(), Token::Number(JsonNumber::Int(1)));
//! assert!(reader.element().unwrap());
//! assert_eq!(reader.value().unwrap(), Token::Number(JsonNumber::Float(2.5)));
//! assert!(!reader.element().unwrap());
//! assert_eq!(reader.member().unwrap(), None);
//! reader.finish().unwrap();
//! ```

use crate::{CanonError, MAX_DEPTH, MAX_SAFE_INTEGER};

/// The bytes that end a run of plain string characters: `"`, `\\` and the control bytes.
static STOPS_RUN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A string as read: its decoded value and whether the text held escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<'r> {
    /// The decoded string.
    pub value: &'r str,
    /// Whether the literal held at least one escape (`\n`, `\u00e9`, …); when it did not,
    /// `value` is exactly the bytes between the quotes.
    pub escaped: bool,
}

/// A number as read, after its strictness checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonNumber {
    /// An integer literal (no fraction, no exponent) within ±(2^53−1). `-0` is `0`.
    Int(i64),
    /// Any other number: finite, correctly rounded. An integer literal beyond ±(2^53−1)
    /// is read only when it is exactly the RFC 8785 form of its double (such as
    /// `100000000000000000000`), and then it is that double.
    Float(f64),
}

/// The start of a value, as [`Reader::value`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'r> {
    /// `{`: read the members with [`Reader::member`].
    BeginObject,
    /// `[`: read the elements with [`Reader::element`].
    BeginArray,
    /// A string.
    String(Text<'r>),
    /// A number.
    Number(JsonNumber),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// A strict pull reader over one JSON document (see the [module documentation](self)).
///
/// After an error the reader's position is unspecified; read no further. The caller drives the
/// grammar — [`member`](Reader::member) only inside an object, [`element`](Reader::element)
/// only inside an array, one [`value`](Reader::value) after each key and each element announced,
/// [`finish`](Reader::finish) once the document is read whole — and the reader does not check
/// that it does (a check measured at 7% of reading a small signals object; the readers of this
/// workspace, `parse_strict` among them, drive it by the grammar).
#[derive(Debug)]
pub struct Reader<'a> {
    /// The whole input, checked to be UTF-8 when the reader was made.
    text: &'a str,
    pos: usize,
    /// Offset of the first byte of the last token read.
    token: usize,
    /// Open objects and arrays.
    depth: usize,
    /// Whether the container just opened has not yet had a member or element.
    first: bool,
    /// Decoded strings with escapes.
    scratch: String,
}

/// The longest number literal read, in characters.
pub const MAX_NUMBER_CHARS: usize = 1_024;

impl<'a> Reader<'a> {
    /// A reader over `input`; refuses input that is not UTF-8 as a whole
    /// ([`CanonError::InvalidUtf8`] at the first invalid byte), before any other check.
    #[inline]
    pub fn new(input: &'a [u8]) -> Result<Self, CanonError> {
        let text = std::str::from_utf8(input).map_err(|e| CanonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        Ok(Self {
            text,
            pos: 0,
            token: 0,
            depth: 0,
            first: false,
            scratch: String::new(),
        })
    }

    /// Byte offset of the first byte of the last token read: a value's first byte, or a key's opening quote.
    pub fn token_offset(&self) -> usize {
        self.token
    }

    /// Number of objects and arrays open at the current position.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Reads the start of the next value (leading whitespace skipped).
    ///
    /// Opening an object or array deeper than [`MAX_DEPTH`] is refused with
    /// [`CanonError::TooDeep`] at the offset of its bracket.
    #[inline(always)]
    pub fn value(&mut self) -> Result<Token<'_>, CanonError> {
        self.skip_whitespace();
        self.token = self.pos;
        match self.peek() {
            None => Err(self.end()),
            Some(b'{') => self.open(Token::BeginObject),
            Some(b'[') => self.open(Token::BeginArray),
            Some(b'"') => self.string().map(Token::String),
            Some(b't') => self.literal(b"true", Token::Bool(true)),
            Some(b'f') => self.literal(b"false", Token::Bool(false)),
            Some(b'n') => self.literal(b"null", Token::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Token::Number),
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    /// In an object: the next member's key, with the `:` after it consumed, or `None`
    /// at the closing `}` (which is consumed). Read the member's value with [`Reader::value`].
    #[inline(always)]
    pub fn member(&mut self) -> Result<Option<Text<'_>>, CanonError> {
        self.skip_whitespace();
        if std::mem::take(&mut self.first) {
            if self.peek() == Some(b'}') {
                self.close();
                return Ok(None);
            }
        } else {
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b'}') => {
                    self.close();
                    return Ok(None);
                }
                _ => return Err(self.syntax("expected ',' or '}' in an object")),
            }
        }
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expected an object key"));
        }
        self.token = self.pos;
        let key = self.scan_string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.syntax("expected ':' after an object key"));
        }
        self.pos += 1;
        Ok(Some(self.text_of(key)))
    }

    /// In an array: `true` when another element follows (read it with [`Reader::value`]),
    /// `false` at the closing `]` (which is consumed).
    #[inline]
    pub fn element(&mut self) -> Result<bool, CanonError> {
        self.skip_whitespace();
        if std::mem::take(&mut self.first) {
            if self.peek() == Some(b']') {
                self.close();
                return Ok(false);
            }
            return Ok(true);
        }
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b']') => {
                self.close();
                Ok(false)
            }
            _ => Err(self.syntax("expected ',' or ']' in an array")),
        }
    }

    /// Checks that only JSON whitespace follows ([`CanonError::TrailingData`] otherwise).
    #[inline]
    pub fn finish(mut self) -> Result<(), CanonError> {
        self.skip_whitespace();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(CanonError::TrailingData { offset: self.pos })
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn end(&self) -> CanonError {
        CanonError::UnexpectedEnd {
            offset: self.text.len(),
        }
    }

    fn syntax(&self, message: &'static str) -> CanonError {
        if self.pos >= self.text.len() {
            self.end()
        } else {
            CanonError::Syntax {
                message,
                offset: self.pos,
            }
        }
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Opens an object or array at the current position.
    #[inline]
    fn open<'r>(&mut self, token: Token<'r>) -> Result<Token<'r>, CanonError> {
        if self.depth >= MAX_DEPTH {
            return Err(CanonError::TooDeep {
                limit: MAX_DEPTH,
                offset: self.pos,
            });
        }
        self.depth += 1;
        self.pos += 1;
        self.first = true;
        Ok(token)
    }

    /// Closes the innermost object or array at its closing bracket.
    #[inline]
    fn close(&mut self) {
        self.pos += 1;
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline]
    fn literal<'r>(
        &mut self,
        literal: &'static [u8],
        token: Token<'r>,
    ) -> Result<Token<'r>, CanonError> {
        let bytes = self.text.as_bytes();
        let end = self.pos + literal.len();
        if bytes.get(self.pos..end) == Some(literal) {
            self.pos = end;
            Ok(token)
        } else if end > bytes.len()
            && bytes
                .get(self.pos..)
                .is_some_and(|rest| literal.starts_with(rest))
        {
            Err(self.end())
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    /// Reads a string at the current position (its opening quote).
    #[inline(always)]
    fn string(&mut self) -> Result<Text<'_>, CanonError> {
        let plain = self.scan_string()?;
        Ok(self.text_of(plain))
    }

    /// The [`Text`] of a string just scanned: `plain` as [`Self::scan_string`] returned it.
    #[inline]
    fn text_of(&self, plain: Option<&'a str>) -> Text<'_> {
        match plain {
            Some(value) => Text {
                value,
                escaped: false,
            },
            None => Text {
                value: &self.scratch,
                escaped: true,
            },
        }
    }

    /// End of the run of plain characters from `from`: the first quote, backslash or
    /// control byte (or the end of the input).
    #[inline(always)]
    fn plain_end(&self, from: usize) -> usize {
        let rest = self.text.as_bytes().get(from..).unwrap_or_default();
        from + rest
            .iter()
            .position(|&b| STOPS_RUN[usize::from(b)])
            .unwrap_or(rest.len())
    }

    /// Scans a string from its opening quote to just past its closing quote. Without
    /// escapes, answers the characters between the quotes, borrowed from the input;
    /// with escapes, decodes them into `scratch` and answers `None`.
    #[inline(always)]
    fn scan_string(&mut self) -> Result<Option<&'a str>, CanonError> {
        let text = self.text;
        let body = self.pos + 1;
        let mut run_end = self.plain_end(body);
        // Runs stop only at ASCII bytes, so both ends are character boundaries.
        let run = |start: usize, end: usize| match text.split_at_checked(end) {
            Some((head, _)) => match head.split_at_checked(start) {
                Some((_, run)) => Ok(run),
                None => Err(CanonError::InvalidUtf8 { offset: start }),
            },
            None => Err(CanonError::InvalidUtf8 { offset: start }),
        };
        if text.as_bytes().get(run_end) == Some(&b'"') {
            // The common case: no escapes, nothing to copy.
            self.pos = run_end + 1;
            return run(body, run_end).map(Some);
        }
        self.scratch.clear();
        let mut run_start = body;
        loop {
            self.scratch.push_str(run(run_start, run_end)?);
            self.pos = run_end;
            match self.peek() {
                None => return Err(self.end()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(None);
                }
                Some(b'\\') => self.escape()?,
                Some(_) => return Err(self.syntax("unescaped control character in a string")),
            }
            run_start = self.pos;
            run_end = self.plain_end(run_start);
        }
    }

    fn escape(&mut self) -> Result<(), CanonError> {
        let escape_offset = self.pos;
        self.pos += 1; // backslash
        let Some(kind) = self.peek() else {
            return Err(self.end());
        };
        let simple = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                self.pos += 1;
                return self.unicode_escape(escape_offset);
            }
            _ => return Err(self.syntax("invalid escape sequence")),
        };
        self.pos += 1;
        self.scratch.push(simple);
        Ok(())
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

    fn unicode_escape(&mut self, escape_offset: usize) -> Result<(), CanonError> {
        let lone = CanonError::LoneSurrogate {
            offset: escape_offset,
        };
        let first = self.hex4()?;
        let scalar = match first {
            0xD800..=0xDBFF => {
                if self.text.as_bytes().get(self.pos..self.pos + 2) != Some(b"\\u") {
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
        self.scratch.push(ch);
        Ok(())
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Reads a number in strict JSON grammar and applies the number rules.
    #[inline(always)]
    fn number(&mut self) -> Result<JsonNumber, CanonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 {
            return Err(self.syntax("expected a digit"));
        }
        if int_digits > 1 && self.text.as_bytes().get(int_start) == Some(&b'0') {
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
        if integer && int_digits <= 16 {
            // At most 16 digits: no overflow. `-0` is 0.
            let digits = self
                .text
                .as_bytes()
                .get(int_start..self.pos)
                .unwrap_or_default();
            let magnitude = digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            let n = if int_start > start {
                -magnitude
            } else {
                magnitude
            };
            if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) {
                return Ok(JsonNumber::Int(n));
            }
        }
        // The slice is ASCII digits, signs, '.' and 'e' only.
        let literal = self
            .text
            .get(start..self.pos)
            .ok_or(CanonError::InvalidUtf8 { offset: start })?;
        // No double needs more: RFC 8785 writes at most 25 characters. A longer literal is
        // refused unread — Rust's reading of one whose long run of digits offsets an exponent
        // of hundreds of thousands (`0.000…5e700001`) is not every reader's.
        if literal.len() > MAX_NUMBER_CHARS {
            return Err(CanonError::NumberOutOfRange { offset: start });
        }
        if integer {
            // Beyond ±(2^53−1): accepted only as exactly how RFC 8785 (ECMAScript) writes the
            // double it denotes — `100000000000000000000` (1e20); `4611686018427388000`, which
            // RFC 8785 defines as 2^62 — so that re-encoding gives the same bytes (every
            // document signed parses again). `9007199254740993`, which would round to
            // `9007199254740992`, is refused: nothing may change between what was parsed and
            // what is signed; so is `1152921504606846976`, 2^60's own digits, which RFC 8785
            // writes otherwise. (Canonical encoding writes a finite double with `ryu-js`.)
            return match literal.parse::<f64>() {
                Ok(value)
                    if value.is_finite()
                        && ryu_js::Buffer::new().format_finite(value).as_bytes()
                            == literal.as_bytes() =>
                {
                    Ok(JsonNumber::Float(value))
                }
                _ => Err(CanonError::IntegerOutOfRange { offset: start }),
            };
        }
        let value: f64 = literal.parse().map_err(|_| CanonError::Syntax {
            message: "invalid number",
            offset: start,
        })?;
        if !value.is_finite() {
            return Err(CanonError::NumberOutOfRange { offset: start });
        }
        // A fraction or an exponent reaching an integer past 53 bits that RFC 8785 writes as an
        // integer (up to 10^21): taken when it is exactly that double (`1e20`) or its shortest
        // spelling (`4.611686018427388e18`, as Python and serde_json write 2^62), refused when it
        // carries digits the double does not hold (`9007199254740993.0` would round to
        // `9007199254740992`).
        if crate::exact::is_wide_integer(value)
            && !crate::exact::denotes_exactly(literal, value)
            && !crate::exact::is_shortest_spelling(literal, value)
        {
            return Err(CanonError::IntegerOutOfRange { offset: start });
        }
        Ok(JsonNumber::Float(value))
    }
}
