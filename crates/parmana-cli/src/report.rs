//! How failures are reported on stderr: one human line `error[code]: message`, or one JSON object.

use std::process::ExitCode;

use crate::exit::ExitClass;

/// The output format for errors and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable line per error.
    Human,
    /// One JSON object per error: `{"code": ..., "message": ...}`.
    Json,
}

/// A failure of one command (or of one document in a bulk command).
#[derive(Debug)]
pub struct Failure {
    /// Stable error code, for example `canon.duplicate_key`.
    pub code: String,
    /// One-line human message.
    pub message: String,
    /// Which exit code the failure maps to.
    pub class: ExitClass,
    /// True when the details were already written on stderr (bulk commands report each document as it fails).
    pub reported: bool,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>, class: ExitClass) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            class,
            reported: false,
        }
    }

    pub fn io(what: &str, err: &std::io::Error) -> Self {
        Self::new("io.error", format!("{what}: {err}"), ExitClass::Io)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.class.code())
    }
}

/// Writes the failure on stderr in the chosen format.
pub fn print_failure(failure: &Failure, format: Format) {
    match format {
        Format::Human => eprintln!("error[{}]: {}", failure.code, failure.message),
        Format::Json => eprintln!(
            "{}",
            serde_json::json!({"code": failure.code, "message": failure.message})
        ),
    }
}
