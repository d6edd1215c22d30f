//! The documented process exit codes of `parmana`, one per class of failure.

use parmana_runtime::ErrorClass;

/// The exit codes, as printed at the end of `parmana --help` (a macro, so that commands can
/// `concat!` it after their examples).
macro_rules! exit_codes_help {
    () => {
        "\
Exit codes:
  0  success
  1  IO: a file or stream could not be read or written, or an output file already exists
  2  usage or configuration: the command line, parmana.toml, a PARMANA_* variable or a
     server setting (tokens, TLS files, limits) was refused
  3  invalid input: a policy, signals, execution id or JSON document was refused
  4  trust failure: a signature, key, role, digest, expiry or release manifest check failed
  5  replay: the execution id was already used (retries need a new id)
  6  store failure: the replay store could not be opened or failed
  7  verification failed: an attestation, ledger or policy test did not pass
  8  internal error: a defect of parmana itself (nothing was decided; please report it)

Errors are one line on stderr, `error[code]: message`, or `{\"code\",\"message\"}` with --format json
(the command line's own usage errors are clap's text, or {\"code\":\"cli.usage\"} with --format json)."
    };
}
pub(crate) use exit_codes_help;

/// The exit codes, as printed at the end of `parmana --help`.
pub(crate) const EXIT_CODES_HELP: &str = exit_codes_help!();

/// Exit codes. `0` is success; `2` is a usage error, reported by clap itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitClass {
    /// `1`: reading or writing a file failed (or an output file already exists).
    Io,
    /// `2`: the arguments do not fit together, or the configuration (file, variables, server
    /// settings) was refused (clap reports its own usage errors with `2` too).
    Usage,
    /// `3`: an input file or document was refused (malformed JSON, invalid signals, bad policy).
    InvalidInput,
    /// `4`: the chain of trust refused something.
    Trust,
    /// `5`: the execution id was already used.
    Replay,
    /// `6`: the replay store failed.
    Store,
    /// `7`: an attestation, the ledger or a policy's tests did not pass.
    VerificationFailed,
    /// `8`: a defect of parmana itself; nothing was decided.
    Internal,
}

impl ExitClass {
    /// The numeric process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Io => 1,
            Self::Usage => 2,
            Self::InvalidInput => 3,
            Self::Trust => 4,
            Self::Replay => 5,
            Self::Store => 6,
            Self::VerificationFailed => 7,
            Self::Internal => 8,
        }
    }
}

impl From<ErrorClass> for ExitClass {
    fn from(class: ErrorClass) -> Self {
        match class {
            ErrorClass::InvalidInput => Self::InvalidInput,
            ErrorClass::Trust => Self::Trust,
            ErrorClass::Replay => Self::Replay,
            ErrorClass::Store => Self::Store,
            ErrorClass::Io => Self::Io,
            ErrorClass::Internal => Self::Internal,
        }
    }
}
