//! How failures are reported on stderr: one human line `error[code]: message`, or one JSON object.

use std::process::ExitCode;

use parmana_runtime::canon::CanonError;
use parmana_runtime::policy::PolicyError;
use parmana_runtime::replay::ReplayError;
use parmana_runtime::trust::TrustError;
use parmana_runtime::{ErrorClass, ExecutionError};

use crate::exit::ExitClass;

/// The output format for errors and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Readable text: one line per error, tables for reports.
    Human,
    /// JSON: one object per error (`{"code": ..., "message": ...}`) and per report.
    Json,
}

/// A failure of one command (or of one document in a bulk command).
#[derive(Debug)]
pub(crate) struct Failure {
    /// Stable error code, for example `canon.duplicate_key`.
    pub code: String,
    /// One-line human message.
    pub message: String,
    /// Which exit code the failure maps to.
    pub class: ExitClass,
    /// True when the details were already written on stderr (bulk commands report each document as it fails).
    pub reported: bool,
    /// The execution this failure may have left consumed (`execute`: a failure that can follow
    /// the claim, or an attestation stored but not printed; `recover`: an execution it could not
    /// complete or print): the id a caller must not retry under another id. With
    /// `--format json`, printed as the failure's `execution_id` member.
    pub execution_id: Option<String>,
}

impl Failure {
    /// A failure with a code, a message and an exit class.
    pub(crate) fn new(
        code: impl Into<String>,
        message: impl Into<String>,
        class: ExitClass,
    ) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            class,
            reported: false,
            execution_id: None,
        }
    }

    /// A file or stream that could not be read or written.
    pub(crate) fn io(what: &str, err: &std::io::Error) -> Self {
        Self::new("io.error", format!("{what}: {err}"), ExitClass::Io)
    }

    /// A refusal of the runtime, with its stable code and the exit code of its class.
    pub(crate) fn execution(err: &ExecutionError) -> Self {
        let mut message = err.to_string();
        if let ExecutionError::ReplayDetected { execution_id } = err {
            message.push_str(&format!(
                "; its outcome: `parmana show {execution_id}` (with the same store)"
            ));
        }
        Self::new(err.code(), message, ExitClass::from(err.class()))
    }

    /// A refusal of the trust layer (authoring and verification commands): a trust failure,
    /// or IO when a file could not be read.
    pub(crate) fn trust(err: &TrustError) -> Self {
        Self::new(
            err.code(),
            err.to_string(),
            ExitClass::from(ErrorClass::of_trust(err)),
        )
    }

    /// A failure of the replay store (or its configuration).
    pub(crate) fn replay(err: &ReplayError) -> Self {
        Self::execution(&ExecutionError::from(err.clone()))
    }

    /// A refused policy document.
    pub(crate) fn policy(what: &str, err: &PolicyError) -> Self {
        Self::new(
            err.code(),
            format!("{what}: {err}"),
            ExitClass::InvalidInput,
        )
    }

    /// A refused JSON document, with the line and column of the problem in `input`.
    pub(crate) fn canon_in(what: &str, err: &CanonError, input: &[u8]) -> Self {
        Self::new(
            err.code(),
            format!("{what}: {}", err.describe(input)),
            ExitClass::InvalidInput,
        )
    }

    /// A refused JSON document.
    pub(crate) fn canon(what: &str, err: &CanonError) -> Self {
        Self::new(
            err.code(),
            format!("{what}: {err}"),
            ExitClass::InvalidInput,
        )
    }

    /// This failure, naming `execution_id` as the execution it concerns.
    pub(crate) fn of_execution(self, execution_id: impl std::fmt::Display) -> Self {
        Self {
            execution_id: Some(execution_id.to_string()),
            ..self
        }
    }

    /// The process exit code of this failure.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.class.code())
    }
}

/// Displays a value as canonical (RFC 8785) JSON: sorted keys, one line — the same bytes
/// whatever features `serde_json` was built with, so machine-readable output is deterministic.
pub(crate) struct Json<T>(pub T);

impl<T: serde::Serialize> std::fmt::Display for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes =
            parmana_runtime::canon::to_canonical_vec(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| std::fmt::Error)?)
    }
}

/// Prints what a command that writes files did: the readable `human` text (its lines as they
/// are), or under `--format json` the one object `json`.
pub(crate) fn print_written(
    format: Format,
    human: &str,
    json: &serde_json::Value,
) -> Result<(), Failure> {
    match format {
        Format::Human => outln!("{human}"),
        Format::Json => outln!("{}", Json(json)),
    }
    Ok(())
}

/// Text from outside (an attestation's decision, a refusal's detail naming what it was given)
/// as a terminal shows it: on the line it is written on, and unable to rewrite what the line
/// or the lines before it say — every control character (line ends, carriage returns, escape
/// sequences) and the Unicode line and paragraph separators and direction overrides are
/// written escaped (`\r`, `\u{1b}`, `\u{202e}`). A forged attestation's decision cannot make
/// `parmana verify` look valid on a terminal where its verdict is not.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_on_a_line = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !text.contains(unsafe_on_a_line) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_on_a_line(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Writes the failure on stderr in the chosen format (a human one on its one line: the
/// message [`printable`]).
pub(crate) fn print_failure(failure: &Failure, format: Format) {
    match format {
        Format::Human => {
            crate::report::errln!("error[{}]: {}", failure.code, printable(&failure.message))
        }
        Format::Json => crate::report::errln!("{}", Json(failure_json(failure))),
    }
}

/// The `{"code", "message"}` object of a failure, as batch commands print it inline, with
/// `execution_id` where the failure names the execution it leaves claimed or unprinted.
pub(crate) fn failure_json(failure: &Failure) -> serde_json::Value {
    let mut json = serde_json::json!({"code": failure.code, "message": failure.message});
    if let Some(id) = &failure.execution_id {
        json["execution_id"] = serde_json::Value::String(id.clone());
    }
    json
}

/// Writes to stdout. A reader that went away (`parmana … | head`) is not an error: there is
/// nobody left to print for.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::io("standard output", &e))
        }
        _ => Ok(()),
    }
}

/// Writes to stdout what reports a change of state (an attestation just stored, a checkpoint just
/// cosigned): unlike [`write_stdout`], a reader that went away is an error too, so that the
/// caller can say what was done but never delivered.
pub(crate) fn write_stdout_delivered(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("standard output", &e))
}

/// Standard output for the commands that print a stream of results, one per input
/// (`canon --lines`, `policy eval --batch`, `ledger export`): buffered, and a reader that went
/// away (`parmana … | head`) stops the stream quietly, as [`write_stdout`] does, since there is
/// nobody left to print for. The commands that report changes of state do not use it.
pub(crate) struct ResultStream {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    reader_gone: bool,
}

impl ResultStream {
    /// Standard output, locked for the stream.
    pub(crate) fn new() -> Self {
        Self {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            reader_gone: false,
        }
    }

    /// Writes `bytes`. `Ok(false)` once the reader went away: nothing more is worth computing.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<bool, Failure> {
        use std::io::Write as _;
        if self.reader_gone {
            return Ok(false);
        }
        let written = self.out.write_all(bytes);
        self.settle(written)
    }

    /// Writes `args` and a newline, as [`Self::write`].
    pub(crate) fn line(&mut self, args: std::fmt::Arguments<'_>) -> Result<bool, Failure> {
        use std::io::Write as _;
        if self.reader_gone {
            return Ok(false);
        }
        let written = self
            .out
            .write_fmt(args)
            .and_then(|()| self.out.write_all(b"\n"));
        self.settle(written)
    }

    /// Flushes what is buffered. `Ok(false)` when the reader went away.
    pub(crate) fn flush(&mut self) -> Result<bool, Failure> {
        use std::io::Write as _;
        if self.reader_gone {
            return Ok(false);
        }
        let flushed = self.out.flush();
        self.settle(flushed)
    }

    fn settle(&mut self, result: std::io::Result<()>) -> Result<bool, Failure> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                Ok(false)
            }
            Err(e) => Err(Failure::io("standard output", &e)),
        }
    }
}

/// `print!` that returns an IO [`Failure`] with `?` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::report::write_stdout(format_args!($($arg)*))?
    };
}
pub(crate) use out;

/// `println!` that returns an IO [`Failure`] with `?` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::report::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;

/// Writes to standard error and never panics (as `eprintln!` does when stderr is closed or
/// full): a message that cannot be written is dropped, and the exit code still says what
/// happened.
pub(crate) fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `eprint!` through [`write_stderr`].
macro_rules! errw {
    ($($arg:tt)*) => {
        $crate::report::write_stderr(format_args!($($arg)*))
    };
}
pub(crate) use errw;

/// `eprintln!` through [`write_stderr`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::report::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use errln;
