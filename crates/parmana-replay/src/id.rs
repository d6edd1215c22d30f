//! `ExecutionId`: the validated name of one execution, built only by its parser.

use std::fmt;
use std::str::FromStr;

use crate::ReplayError;

/// The longest execution id, in bytes (all of them ASCII).
pub const MAX_EXECUTION_ID_LEN: usize = 128;

/// An execution id: 1 to 128 printable ASCII characters without spaces (bytes `0x21..=0x7E`).
///
/// Only [`ExecutionId::parse`] (or `str::parse`) builds one, so holding an `ExecutionId`
/// proves it is well formed.
///
/// ```
/// use parmana_replay::ExecutionId;
/// assert_eq!(ExecutionId::parse("exec-2026-0001").unwrap().as_str(), "exec-2026-0001");
/// assert_eq!(ExecutionId::parse("has space").unwrap_err().code(), "replay.invalid_execution_id");
/// assert!(ExecutionId::parse("").is_err());
/// assert!(ExecutionId::parse(&"x".repeat(129)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// Checks `text` and wraps it; refuses it with `replay.invalid_execution_id` otherwise.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        if text.is_empty() {
            return Err(ReplayError::InvalidExecutionId {
                reason: "it is empty",
            });
        }
        if text.len() > MAX_EXECUTION_ID_LEN {
            return Err(ReplayError::InvalidExecutionId {
                reason: "it is longer than 128 characters",
            });
        }
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ReplayError::InvalidExecutionId {
                reason: "only printable ASCII characters other than space are allowed",
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ExecutionId {
    type Err = ReplayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for ExecutionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecutionId({:?})", self.0)
    }
}
