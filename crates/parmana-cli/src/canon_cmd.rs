//! `parmana canon` and `parmana digest`: canonical bytes and digests of JSON documents.

use std::path::PathBuf;

use parmana_runtime::canon::{CanonError, Digest, canonicalize};

use crate::common::read_bounded;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, ResultStream, print_failure};

#[derive(Debug, clap::Args)]
pub(crate) struct CanonArgs {
    /// The JSON file to read; standard input when absent.
    file: Option<PathBuf>,
    /// Treat each input line as one document and write one canonical line each.
    /// A refused line is reported on stderr (with its line number) and skipped; the exit code is then non-zero.
    #[arg(long)]
    lines: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DigestArgs {
    /// The JSON file to read; standard input when absent.
    file: Option<PathBuf>,
    /// Treat each input line as one document and print one digest per line.
    #[arg(long)]
    lines: bool,
}

/// The largest input `canon` and `digest` read: 64 MiB (refused after one byte more).
const MAX_CANON_INPUT_BYTES: usize = 64 * 1024 * 1024;

fn read_input(file: Option<&PathBuf>) -> Result<Vec<u8>, Failure> {
    let path = file.map_or_else(|| PathBuf::from("-"), Clone::clone);
    let bytes = read_bounded(&path, MAX_CANON_INPUT_BYTES)?;
    if bytes.len() > MAX_CANON_INPUT_BYTES {
        return Err(Failure::new(
            "cli.input_too_large",
            format!(
                "{}: more than {MAX_CANON_INPUT_BYTES} bytes",
                if file.is_some() {
                    path.display().to_string()
                } else {
                    "standard input".to_owned()
                }
            ),
            ExitClass::InvalidInput,
        ));
    }
    Ok(bytes)
}

fn refused(err: &CanonError, input: &[u8], line: Option<usize>) -> Failure {
    let message = match (line, err.location(input)) {
        (Some(n), Some(at)) => format!("line {n}, column {}: {err}", at.column),
        (Some(n), None) => format!("line {n}: {err}"),
        (None, _) => err.describe(input),
    };
    Failure::new(err.code(), message, ExitClass::InvalidInput)
}

/// Runs `f` on every document (the whole input, or each non-empty line), writing its output line by line.
fn for_each_document(
    file: Option<&PathBuf>,
    lines: bool,
    format: Format,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), CanonError>,
) -> Result<(), Failure> {
    let input = read_input(file)?;
    let mut out = ResultStream::new();
    if !lines {
        let mut buffer = Vec::new();
        f(&input, &mut buffer).map_err(|e| refused(&e, &input, None))?;
        out.write(&buffer)?;
        out.flush()?;
        return Ok(());
    }
    let mut last_failure = None;
    for (index, line) in input.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut buffer = Vec::new();
        match f(line, &mut buffer) {
            Ok(()) => {
                buffer.push(b'\n');
                if !out.write(&buffer)? {
                    // Nobody reads on: the failures reported so far still decide the exit.
                    break;
                }
            }
            Err(e) => {
                let failure = refused(&e, line, Some(index + 1));
                print_failure(&failure, format);
                last_failure = Some(failure);
            }
        }
    }
    out.flush()?;
    match last_failure {
        // Every failure was already reported; exit with the class of the last one.
        Some(failure) => Err(Failure {
            reported: true,
            ..failure
        }),
        None => Ok(()),
    }
}

pub(crate) fn canon(args: &CanonArgs, format: Format) -> Result<(), Failure> {
    for_each_document(args.file.as_ref(), args.lines, format, |doc, out| {
        let bytes = canonicalize(doc)?;
        out.extend_from_slice(&bytes);
        Ok(())
    })
}

pub(crate) fn digest(args: &DigestArgs, format: Format) -> Result<(), Failure> {
    let result = for_each_document(args.file.as_ref(), args.lines, format, |doc, out| {
        let digest = Digest::of(&canonicalize(doc)?);
        out.extend_from_slice(digest.to_string().as_bytes());
        Ok(())
    });
    // A single digest is printed with a trailing newline, like other hash tools.
    if result.is_ok() && !args.lines {
        crate::report::write_stdout(format_args!("\n"))?;
    }
    result
}
