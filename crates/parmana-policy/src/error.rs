//! The errors of the policy layer: a refused policy ([`PolicyError`]) and refused signals ([`SignalError`]), each with a stable code.

use crate::diagnostic::{Diagnostic, DiagnosticCode, render_diagnostics};

/// A policy was refused: it is not strict JSON, or static validation found at least one error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Static validation refused the policy; `diagnostics` holds every finding (errors and warnings).
    #[error("policy refused: {}", summary(.diagnostics))]
    Invalid {
        /// Every finding: errors first, in the order the document is read, then warnings.
        diagnostics: Vec<Diagnostic>,
    },
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    match errors.first() {
        Some(first) => {
            let at = if first.path.is_empty() {
                String::new()
            } else {
                format!(" at {}", first.path)
            };
            let more = if errors.len() > 1 {
                format!(" (and {} more)", errors.len() - 1)
            } else {
                String::new()
            };
            format!("[{}] {}{at}{more}", first.code, first.message)
        }
        None => "no errors".to_owned(),
    }
}

impl PolicyError {
    /// The stable code of the first error, for example `policy.unsupported_schema_version`;
    /// `policy.invalid` for a refusal that holds no error diagnostic (one built outside this
    /// crate: the compiler never makes one), as `docs/errors.md` says.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { diagnostics } => diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or("policy.invalid", |d| d.code.code()),
        }
    }

    /// The code of the first error as an enum (`InvalidJson` for a refusal that holds no error
    /// diagnostic, which has no enum code of its own: [`code`](Self::code) says
    /// `policy.invalid`).
    pub fn first_error_code(&self) -> DiagnosticCode {
        match self {
            Self::Invalid { diagnostics } => diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or(DiagnosticCode::InvalidJson, |d| d.code),
        }
    }

    /// Every finding (errors and warnings).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid { diagnostics } => diagnostics,
        }
    }

    /// Every finding rendered for a terminal (see [`render_diagnostics`]).
    pub fn render(&self) -> String {
        render_diagnostics(self.diagnostics())
    }
}

/// Signals were refused before evaluation. Every variant names the signal concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The signals text is not strict JSON.
    #[error("signals are not valid JSON: {0}")]
    InvalidJson(#[source] parmana_canon::CanonError),
    /// The signals are not a JSON object.
    #[error("signals must be a JSON object of name to value, found {found}")]
    NotAnObject {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// A required signal is missing.
    #[error("required signal {signal:?} is missing")]
    Missing {
        /// The missing signal.
        signal: String,
    },
    /// A signal has a JSON type other than its declared type.
    #[error("signal {signal:?} must be {expected}, found {found}")]
    WrongType {
        /// The signal.
        signal: String,
        /// The declared type.
        expected: &'static str,
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// An `integer` signal holds a number with a fraction or beyond ±(2^53−1).
    #[error("signal {signal:?} must be a whole number within ±(2^53-1), found {value}")]
    NotInteger {
        /// The signal.
        signal: String,
        /// The number found.
        value: String,
    },
    /// A numeric signal is below its `minimum` or above its `maximum`.
    #[error("signal {signal:?} = {value} is outside its declared range {range}")]
    OutOfRange {
        /// The signal.
        signal: String,
        /// The value found.
        value: String,
        /// The declared range, for example `[0, 100]`.
        range: String,
    },
    /// A signal's value is not one of its declared `enum` values.
    #[error("signal {signal:?} = {value} is not one of its declared values")]
    NotInEnum {
        /// The signal.
        signal: String,
        /// The value found, as JSON (its first characters: `parmana_canon::excerpt`).
        value: String,
    },
    /// A string signal is longer than its `max_length` (in Unicode scalar values).
    #[error("signal {signal:?} has {length} characters, more than its max_length {max_length}")]
    TooLong {
        /// The signal.
        signal: String,
        /// Its length in Unicode scalar values.
        length: usize,
        /// The declared limit.
        max_length: usize,
    },
    /// A signal the policy does not declare (and the policy does not say `"additional_signals": "ignore"`).
    #[error("signal {signal:?} is not declared by the policy{}", .suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    Undeclared {
        /// The undeclared signal (its first characters: `parmana_canon::excerpt`).
        signal: String,
        /// The declared signal it is probably a typo of.
        suggestion: Option<String>,
    },
    /// Several signals are refused: the first problem (whose code this error has) and the
    /// others, in the same order (declared signals by name, then undeclared ones), at most
    /// [`MAX_REPORTED_SIGNAL_PROBLEMS`] in all.
    #[error("{first}; {}", render_more(more, *unlisted))]
    Several {
        /// The first problem; [`code`](SignalError::code) and [`signal`](SignalError::signal) are its.
        first: Box<SignalError>,
        /// The other problems listed.
        more: Vec<SignalError>,
        /// How many further problems were found but not listed.
        unlisted: usize,
    },
}

/// The most signal problems one error lists (the rest are counted).
pub const MAX_REPORTED_SIGNAL_PROBLEMS: usize = 20;

fn render_more(more: &[SignalError], unlisted: usize) -> String {
    let listed: Vec<String> = more.iter().map(ToString::to_string).collect();
    let mut text = format!("and {} more: {}", more.len() + unlisted, listed.join("; "));
    if unlisted > 0 {
        text.push_str(&format!("; … {unlisted} not listed"));
    }
    text
}

impl SignalError {
    /// The stable code of this error, for example `policy.signal_missing`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "policy.signals_invalid_json",
            Self::NotAnObject { .. } => "policy.signals_not_object",
            Self::Missing { .. } => "policy.signal_missing",
            Self::WrongType { .. } => "policy.signal_type",
            Self::NotInteger { .. } => "policy.signal_not_integer",
            Self::OutOfRange { .. } => "policy.signal_out_of_range",
            Self::NotInEnum { .. } => "policy.signal_not_in_enum",
            Self::TooLong { .. } => "policy.signal_too_long",
            Self::Undeclared { .. } => "policy.signal_undeclared",
            Self::Several { first, .. } => first.code(),
        }
    }

    /// The signal concerned, when the error is about one signal.
    pub fn signal(&self) -> Option<&str> {
        match self {
            Self::InvalidJson(_) | Self::NotAnObject { .. } => None,
            Self::Missing { signal }
            | Self::WrongType { signal, .. }
            | Self::NotInteger { signal, .. }
            | Self::OutOfRange { signal, .. }
            | Self::NotInEnum { signal, .. }
            | Self::TooLong { signal, .. }
            | Self::Undeclared { signal, .. } => Some(signal),
            Self::Several { first, .. } => first.signal(),
        }
    }

    /// Every problem this error lists: itself, or the first and the others of
    /// [`Several`](SignalError::Several).
    pub fn problems(&self) -> Vec<&SignalError> {
        match self {
            Self::Several { first, more, .. } => {
                std::iter::once(first.as_ref()).chain(more.iter()).collect()
            }
            other => vec![other],
        }
    }
}

/// `word` with its indefinite article, for messages: "an integer", "a string".
pub(crate) fn with_article(word: impl std::fmt::Display) -> String {
    let word = word.to_string();
    let article = match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    };
    format!("{article} {word}")
}

/// The kind of a JSON value, for messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a number",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal with no error diagnostic (built outside the crate) is `policy.invalid`, the
    /// code the docs give it — not the code of a JSON error that did not happen.
    #[test]
    fn a_refusal_without_an_error_is_policy_invalid() {
        let empty = PolicyError::Invalid {
            diagnostics: Vec::new(),
        };
        assert_eq!(empty.code(), "policy.invalid");
        let refused = crate::compile(b"not json").unwrap_err();
        assert_eq!(refused.code(), "policy.invalid_json");
    }
}
