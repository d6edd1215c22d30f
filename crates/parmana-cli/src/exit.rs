//! The documented process exit codes of `parmana`, one per class of failure.

/// Exit codes. `0` is success; `2` is a usage error, reported by clap itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// `3`: an input file or document was refused (malformed JSON, invalid signals, bad policy).
    InvalidInput,
    /// `1`: reading or writing a file failed.
    Io,
}

impl ExitClass {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Io => 1,
            Self::InvalidInput => 3,
        }
    }
}
