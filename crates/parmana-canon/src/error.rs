//! The error type of the canonical layer: one variant per refusal, each with a stable code.

/// Why a document was refused or could not be encoded.
///
/// Every variant has a stable machine-readable [`code`](CanonError::code); offsets
/// are byte offsets into the input where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonError {
    /// The input is not valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// An object has the same key twice.
    #[error("duplicate object key {key:?} at byte {offset}")]
    DuplicateKey {
        /// The repeated key (its first [`MAX_QUOTED_CHARS`] characters: [`excerpt`]).
        key: String,
        /// Byte offset of the second occurrence.
        offset: usize,
    },
    /// A `\uD800`–`\uDFFF` escape that is not part of a valid surrogate pair.
    #[error("lone surrogate escape at byte {offset}")]
    LoneSurrogate {
        /// Byte offset of the escape.
        offset: usize,
    },
    /// A number beyond ±(2^53−1) not written as its double: an integer literal that is not
    /// byte for byte how RFC 8785 writes its double (`9007199254740993`, `1152921504606846976`),
    /// or a number with a fraction or an exponent whose double is from 2^53 to 10^21 that is
    /// neither exactly that double nor its shortest digits (`9007199254740993.0`).
    #[error(
        "number beyond ±(2^53-1) not written as its double (RFC 8785's spelling of it, exactly \
         it, or its shortest digits) at byte {offset}"
    )]
    IntegerOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
    /// A number whose value overflows to infinity, or a number literal longer than
    /// [`MAX_NUMBER_CHARS`](crate::reader::MAX_NUMBER_CHARS) characters.
    #[error(
        "number overflows to infinity, or is written with more than 1024 characters, at byte {offset}"
    )]
    NumberOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("nesting deeper than {limit} at byte {offset}")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
        /// Byte offset of the opening bracket that went too deep.
        offset: usize,
    },
    /// Something other than whitespace after the document.
    #[error("trailing data after the document at byte {offset}")]
    TrailingData {
        /// Byte offset of the first trailing byte.
        offset: usize,
    },
    /// The input ended in the middle of a document (or was empty).
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEnd {
        /// Length of the input.
        offset: usize,
    },
    /// Any other violation of the JSON grammar (RFC 8259).
    #[error("invalid JSON at byte {offset}: {message}")]
    Syntax {
        /// What was expected or found.
        message: &'static str,
        /// Byte offset of the offending byte.
        offset: usize,
    },
    /// A timestamp not written exactly `YYYY-MM-DDTHH:MM:SSZ`, or out of the years 0000–9999.
    #[error("invalid timestamp {text:?}: expected YYYY-MM-DDTHH:MM:SSZ (UTC)")]
    InvalidTimestamp {
        /// The refused text (at most 40 characters of it).
        text: String,
    },
    /// A value could not be represented as JSON (for example a non-finite float or a map with non-string keys).
    #[error("value cannot be canonically encoded: {message}")]
    NotRepresentable {
        /// The serializer's explanation.
        message: String,
    },
}

impl CanonError {
    /// The stable code of this error, for example `canon.duplicate_key`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUtf8 { .. } => "canon.invalid_utf8",
            Self::DuplicateKey { .. } => "canon.duplicate_key",
            Self::LoneSurrogate { .. } => "canon.lone_surrogate",
            Self::IntegerOutOfRange { .. } => "canon.integer_out_of_range",
            Self::NumberOutOfRange { .. } => "canon.number_out_of_range",
            Self::TooDeep { .. } => "canon.too_deep",
            Self::TrailingData { .. } => "canon.trailing_data",
            Self::UnexpectedEnd { .. } => "canon.unexpected_end",
            Self::Syntax { .. } => "canon.syntax",
            Self::InvalidTimestamp { .. } => "canon.invalid_timestamp",
            Self::NotRepresentable { .. } => "canon.not_representable",
        }
    }

    /// Where in `input` the error is, as line and column, when it refers to a position.
    ///
    /// ```
    /// let input = b"{\"a\": 1,\n \"a\": 2}";
    /// let err = parmana_canon::parse_strict(input).unwrap_err();
    /// let at = err.location(input).unwrap();
    /// assert_eq!((at.line, at.column, at.offset), (2, 2, 10));
    /// assert_eq!(err.describe(input), "duplicate object key \"a\" at byte 10 (line 2, column 2)");
    /// ```
    pub fn location(&self, input: &[u8]) -> Option<Location> {
        self.offset().map(|offset| Location::of(input, offset))
    }

    /// The message with the line and column appended when the error has a position:
    /// `invalid JSON at byte 9: … (line 2, column 3)`.
    pub fn describe(&self, input: &[u8]) -> String {
        match self.location(input) {
            Some(at) => format!("{self} (line {}, column {})", at.line, at.column),
            None => self.to_string(),
        }
    }

    /// The byte offset the error refers to, when it refers to a position in the input.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::InvalidUtf8 { offset }
            | Self::DuplicateKey { offset, .. }
            | Self::LoneSurrogate { offset }
            | Self::IntegerOutOfRange { offset }
            | Self::NumberOutOfRange { offset }
            | Self::TooDeep { offset, .. }
            | Self::TrailingData { offset }
            | Self::UnexpectedEnd { offset }
            | Self::Syntax { offset, .. } => Some(*offset),
            Self::InvalidTimestamp { .. } | Self::NotRepresentable { .. } => None,
        }
    }
}

/// A position in an input: 1-based line and column (in characters) and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line: one more than the number of `\n` before the offset.
    pub line: usize,
    /// 1-based column: one more than the number of characters between the line start and the
    /// offset (a byte that is not UTF-8 counts as one).
    pub column: usize,
    /// The byte offset.
    pub offset: usize,
}

impl Location {
    /// The line and column of byte `offset` of `input` (an offset past the end is the end).
    pub fn of(input: &[u8], offset: usize) -> Self {
        let before = input.get(..offset).unwrap_or(input);
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        // Characters: every byte that does not continue a UTF-8 sequence starts one.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
            + 1;
        Self {
            line,
            column,
            offset,
        }
    }
}

/// How many characters of a caller's string an error quotes ([`excerpt`]).
pub const MAX_QUOTED_CHARS: usize = 128;

/// `value` as it displays, cut at `max_chars` characters (then `…`). The formatting stops
/// there, so a message that quotes a caller's megabyte (an error of serde, say) costs and
/// answers a bounded string however it was built.
pub fn bounded_display(value: &impl std::fmt::Display, max_chars: usize) -> String {
    /// Keeps what is written up to the bound, then fails, which stops the formatting.
    struct Bounded {
        text: String,
        left: usize,
        cut: bool,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, written: &str) -> std::fmt::Result {
            for c in written.chars() {
                if self.left == 0 {
                    self.cut = true;
                    return Err(std::fmt::Error);
                }
                self.text.push(c);
                self.left -= 1;
            }
            Ok(())
        }
    }
    let mut bounded = Bounded {
        text: String::new(),
        left: max_chars,
        cut: false,
    };
    // The only failure is the bound's own: what was kept is the text's start.
    let _ = std::fmt::Write::write_fmt(&mut bounded, format_args!("{value}"));
    if bounded.cut {
        bounded.text.push('…');
    }
    bounded.text
}

/// `text` as an error quotes it: whole up to [`MAX_QUOTED_CHARS`] characters, else its first
/// ones and `…`. A refusal then costs and answers a bounded message, however long the key,
/// name or value that caused it (a message formatted with `{:?}` escapes each control character
/// to six bytes or more, so a quoted megabyte would be answered as several).
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut kept = text.get(..end).unwrap_or_default().to_owned();
            kept.push('…');
            kept
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn lines_and_columns_count_characters() {
        for (input, offset, line, column) in [
            (&b""[..], 0, 1, 1),
            (b"abc", 2, 1, 3),
            (b"a\nbc", 2, 2, 1),
            (b"a\nbc", 4, 2, 3),
            ("\u{e9}\u{e9}x".as_bytes(), 4, 1, 3),
            (b"a\r\nb", 3, 2, 1),
            (b"ab", 99, 1, 3),
        ] {
            let at = Location::of(input, offset);
            assert_eq!((at.line, at.column), (line, column), "{input:?} @ {offset}");
        }
    }
}
