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
        /// The repeated key.
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
    /// An integer literal outside ±(2^53−1), which cannot round-trip through IEEE 754 doubles.
    #[error("integer outside ±(2^53-1) at byte {offset}")]
    IntegerOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
    /// A number whose value overflows to infinity.
    #[error("number overflows to infinity at byte {offset}")]
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
