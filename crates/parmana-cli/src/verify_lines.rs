//! `parmana verify` of JSON Lines (what `execute --batch` prints): telling them from one attestation, streaming them line by line, batch signature verification, one report line per input line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use parmana_runtime::trust::{
    AttestationReport, MAX_ENVELOPE_BYTES, VerifiedTrustHistory, VerifyOptions,
    verify_attestations_in_history,
};
use parmana_runtime::{BatchReader, ExecutionError};
use serde_json::Value;

use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, failure_json, out, outln};
use crate::verify_cmd::{report_json, statement_json, statement_text};

/// At most this many attestations, or [`CHUNK_BYTES`] of them, are held and verified together
/// (their signatures in Ed25519 batches) before their report lines are printed.
const CHUNK_ATTESTATIONS: usize = 64;

/// The most bytes of attestations held at once (a chunk ends at the line that reaches it).
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// The most lines held at once, of any kind: batch error lines and unread lines carry nothing
/// to verify but wait for the attestations before them to be printed in order, so they count
/// too (a stream of them alone would otherwise be held to its end).
const CHUNK_LINES: usize = 4096;

/// What `parmana verify` was given.
pub(crate) enum Input {
    /// One attestation (possibly written over several lines), without trailing whitespace.
    Single(Vec<u8>),
    /// JSON Lines: more than one line, the first a whole JSON object.
    Lines(Lines),
}

/// JSON Lines being read: the first two lines already read, the rest streamed.
pub(crate) struct Lines {
    first: (usize, Vec<u8>),
    second: (usize, Result<Vec<u8>, ExecutionError>),
    rest: BatchReader<Box<dyn BufRead>>,
    /// Lines read before `rest` starts (its numbers count from 1).
    offset: usize,
}

/// Opens the input (`-`: standard input) and tells one attestation from JSON Lines: JSON Lines
/// when its first non-blank line is on its own a whole JSON object and another non-blank line
/// follows. Otherwise the whole input is one attestation, read up to one byte past
/// [`MAX_ENVELOPE_BYTES`] (a larger one is refused, not loaded). No line of JSON Lines is held
/// beyond that limit either (`runtime.request_too_large` for that line).
pub(crate) fn read_input(path: &Path) -> Result<Input, Failure> {
    let what = path.display().to_string();
    let io = |e: std::io::Error| Failure::io(&what, &e);
    let mut input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(std::fs::File::open(path).map_err(io)?))
    };
    let cap = u64::try_from(MAX_ENVELOPE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut blank_lines = 0;
    let mut first = Vec::new();
    loop {
        first.clear();
        (&mut input)
            .take(cap)
            .read_until(b'\n', &mut first)
            .map_err(io)?;
        let blank = first.iter().all(u8::is_ascii_whitespace);
        if first.last() != Some(&b'\n') || !blank {
            break;
        }
        blank_lines += 1;
    }
    let line = first.trim_ascii();
    if first.last() == Some(&b'\n') && is_json_object(line) {
        let line = line.to_vec();
        let mut rest = BatchReader::with_limit(input, MAX_ENVELOPE_BYTES);
        return Ok(match rest.next_line() {
            None => Input::Single(line),
            Some(second) => {
                let offset = blank_lines + 1;
                Input::Lines(Lines {
                    first: (offset, line),
                    second: (offset + second.0, second.1),
                    rest,
                    offset,
                })
            }
        });
    }
    let left = cap.saturating_sub(u64::try_from(first.len()).unwrap_or(u64::MAX));
    input.take(left).read_to_end(&mut first).map_err(io)?;
    if first.len() > MAX_ENVELOPE_BYTES {
        return Err(Failure::new(
            "trust.document_too_large",
            format!("{what}: an attestation is at most {MAX_ENVELOPE_BYTES} bytes"),
            // The class this code has wherever the library refuses it.
            ExitClass::Trust,
        ));
    }
    // A trailing newline from a pipe is not part of the attestation.
    Ok(Input::Single(first.trim_ascii_end().to_vec()))
}

/// Whether `line` is, on its own, one whole JSON object.
fn is_json_object(line: &[u8]) -> bool {
    line.first() == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// One input line, classified.
enum Entry {
    /// An attestation envelope to verify.
    Attestation(Vec<u8>),
    /// A batch error line `{"error":…,"line":N}`: nothing to verify.
    BatchError,
    /// A line that could not be read (too long, or the input failed).
    Unread(Failure),
}

impl Entry {
    fn of(line: Result<Vec<u8>, ExecutionError>) -> Self {
        match line {
            Err(error) => Self::Unread(Failure::execution(&error)),
            Ok(bytes) if is_batch_error(&bytes) => Self::BatchError,
            Ok(bytes) => Self::Attestation(bytes),
        }
    }
}

/// Whether a line is what `execute --batch` prints for a refused line: an object of exactly
/// `error` (an object), `line` (a number) and, when the refusal may follow the claim,
/// `execution_id` (a string).
fn is_batch_error(line: &[u8]) -> bool {
    if !line.starts_with(b"{\"error\":") {
        return false;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => {
            let with_id = map.get("execution_id").map(Value::is_string);
            map.len() == 2 + usize::from(with_id.is_some())
                && with_id != Some(false)
                && map.get("error").is_some_and(Value::is_object)
                && map.get("line").is_some_and(Value::is_u64)
        }
        _ => false,
    }
}

/// How the lines went.
#[derive(Default)]
struct Tally {
    lines: usize,
    valid: usize,
    not_valid: usize,
    skipped: usize,
}

/// Verifies JSON Lines chunk by chunk and prints one report line per input line, in order.
struct LineVerifier<'a> {
    history: &'a VerifiedTrustHistory,
    options: VerifyOptions,
    show: bool,
    format: Format,
    pending: Vec<(usize, Entry)>,
    pending_attestations: usize,
    pending_bytes: usize,
    tally: Tally,
}

impl LineVerifier<'_> {
    fn push(&mut self, line: usize, entry: Entry) -> Result<(), Failure> {
        if let Entry::Attestation(bytes) = &entry {
            self.pending_attestations += 1;
            self.pending_bytes = self.pending_bytes.saturating_add(bytes.len());
        }
        self.pending.push((line, entry));
        if self.pending_attestations >= CHUNK_ATTESTATIONS
            || self.pending_bytes >= CHUNK_BYTES
            || self.pending.len() >= CHUNK_LINES
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Verifies the pending attestations together and prints every pending line.
    fn flush(&mut self) -> Result<(), Failure> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_attestations = 0;
        self.pending_bytes = 0;
        let envelopes: Vec<&[u8]> = pending
            .iter()
            .filter_map(|(_, entry)| match entry {
                Entry::Attestation(bytes) => Some(bytes.as_slice()),
                _ => None,
            })
            .collect();
        let mut reports =
            verify_attestations_in_history(&envelopes, self.history, self.options).into_iter();
        for (line, entry) in &pending {
            self.tally.lines += 1;
            match entry {
                Entry::Attestation(bytes) => {
                    let Some(report) = reports.next() else {
                        return Err(Failure::new(
                            "cli.verification_failed",
                            format!("line {line}: no report for this attestation"),
                            ExitClass::VerificationFailed,
                        ));
                    };
                    self.print_report(*line, bytes, &report)?;
                }
                Entry::BatchError => {
                    self.tally.skipped += 1;
                    match self.format {
                        Format::Human => outln!("line {line}: skipped (a batch error line)"),
                        Format::Json => outln!(
                            "{}",
                            Json(serde_json::json!({"line": line, "skipped": "batch error"}))
                        ),
                    }
                }
                Entry::Unread(failure) => {
                    self.tally.not_valid += 1;
                    match self.format {
                        Format::Human => outln!(
                            "line {line}: NOT VALID [{}] {}",
                            failure.code,
                            crate::report::printable(&failure.message)
                        ),
                        Format::Json => outln!(
                            "{}",
                            Json(serde_json::json!({
                                "line": line,
                                "valid": false,
                                "error": failure_json(failure),
                            }))
                        ),
                    }
                }
            }
        }
        Ok(())
    }

    fn print_report(
        &mut self,
        line: usize,
        envelope: &[u8],
        report: &AttestationReport,
    ) -> Result<(), Failure> {
        if report.is_valid() {
            self.tally.valid += 1;
        } else {
            self.tally.not_valid += 1;
        }
        match self.format {
            Format::Human => {
                if self.show {
                    out!("{}", statement_text(envelope));
                }
                outln!("{}", summary_line(line, report));
            }
            Format::Json => {
                let mut json = report_json(report);
                json["line"] = Value::from(line);
                if self.show {
                    json["statement"] = statement_json(envelope);
                }
                outln!("{}", Json(json));
            }
        }
        Ok(())
    }
}

/// `line N: valid, execution "ID": DECISION` or `line N: NOT VALID (failed CHECKS), …`.
fn summary_line(line: usize, report: &AttestationReport) -> String {
    let verdict = if report.is_valid() {
        "valid".to_owned()
    } else {
        let failed: Vec<&str> = report.failures().map(|c| c.check.as_str()).collect();
        format!("NOT VALID (failed {})", failed.join(", "))
    };
    match report.predicate() {
        Some(p) => format!(
            "line {line}: {verdict}, execution {:?}: {}",
            p.execution_id.as_str(),
            crate::report::printable(&p.decision)
        ),
        None => format!("line {line}: {verdict}"),
    }
}

/// Verifies JSON Lines against the trust history: one report line per input line on stdout, a
/// summary on stderr; fails unless every attestation is valid (and there is at least one).
pub(crate) fn verify_lines(
    lines: Lines,
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    show: bool,
    format: Format,
) -> Result<(), Failure> {
    let Lines {
        first,
        second,
        mut rest,
        offset,
    } = lines;
    let mut verifier = LineVerifier {
        history,
        options,
        show,
        format,
        pending: Vec::new(),
        pending_attestations: 0,
        pending_bytes: 0,
        tally: Tally::default(),
    };
    verifier.push(first.0, Entry::of(Ok(first.1)))?;
    verifier.push(second.0, Entry::of(second.1))?;
    while let Some((number, line)) = rest.next_line() {
        verifier.push(offset + number, Entry::of(line))?;
    }
    verifier.flush()?;
    let Tally {
        lines,
        valid,
        not_valid,
        skipped,
    } = verifier.tally;
    crate::report::errln!(
        "verify: {lines} lines, {valid} valid, {not_valid} not valid, {skipped} skipped"
    );
    if not_valid > 0 {
        return Err(Failure::new(
            "cli.verification_failed",
            format!("{not_valid} of {lines} lines are not valid attestations"),
            ExitClass::VerificationFailed,
        ));
    }
    if valid == 0 {
        return Err(Failure::new(
            "cli.verification_failed",
            "no attestation to verify: every line is a batch error line",
            ExitClass::VerificationFailed,
        ));
    }
    Ok(())
}
