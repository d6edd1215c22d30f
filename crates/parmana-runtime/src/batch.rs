//! The batch line format of `execute --batch`: one JSON object per line, `{"execution_id"?, "policy"?, "signals"}`, and the refusal line written in its place.

use parmana_canon::{ExecutionId, PolicyRef, parse_strict, to_canonical_vec};
use serde_json::Value;

use crate::{ExecutionError, ExecutionRequest, Signals, parse_execution_id, parse_policy_ref};

/// One line of a batch: an optional execution id (a fresh one is made when absent), the
/// policy (the line's own or the batch default) and the signals.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLine {
    /// The execution id the line names, if any.
    pub execution_id: Option<ExecutionId>,
    /// The policy to decide under.
    pub policy: PolicyRef,
    /// The signals.
    pub signals: Signals,
}

impl BatchLine {
    /// Reads one line strictly: a JSON object with only `execution_id`, `policy` and `signals`;
    /// the line's `policy` wins over `default_policy`, and one of them must be there.
    pub fn parse(line: &[u8], default_policy: Option<&PolicyRef>) -> Result<Self, ExecutionError> {
        let invalid = |message: String| ExecutionError::BatchLineInvalid { message };
        let Value::Object(mut map) = parse_strict(line)? else {
            return Err(invalid("a batch line is a JSON object".to_owned()));
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "execution_id" | "policy" | "signals"))
        {
            return Err(invalid(format!(
                "unknown field {unknown:?} (expected execution_id, policy, signals)"
            )));
        }
        let mut text_field = |name: &str| match map.remove(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(invalid(format!("{name} is not a string"))),
        };
        let execution_id = text_field("execution_id")?
            .map(|id| parse_execution_id(&id))
            .transpose()?;
        let policy = match text_field("policy")? {
            Some(text) => parse_policy_ref(&text)?,
            None => default_policy.cloned().ok_or_else(|| {
                invalid("the line names no policy and no default policy is given".to_owned())
            })?,
        };
        let signals = map
            .remove("signals")
            .ok_or_else(|| invalid("the line has no signals".to_owned()))?;
        Ok(Self {
            execution_id,
            policy,
            signals: Signals::from_value(signals),
        })
    }

    /// The request of this line, with `fresh_id` when the line names no execution id.
    pub fn into_request(
        self,
        fresh_id: impl FnOnce() -> ExecutionId,
        include_signals: bool,
    ) -> ExecutionRequest {
        ExecutionRequest::new(
            self.execution_id.unwrap_or_else(fresh_id),
            self.policy,
            self.signals,
        )
        .with_signals_included(include_signals)
    }
}

/// The non-blank lines of a batch with their 1-based line numbers (a trailing `\r` is dropped).
pub fn batch_lines(input: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// The longest batch line read: the signals limit plus room for the id and the policy.
pub const MAX_BATCH_LINE_BYTES: usize = crate::MAX_SIGNALS_JSON_BYTES + 4096;

/// Reads a batch from a stream one line at a time, so that a batch of any length is executed
/// (and its results written) as it is read, holding at most one line of at most
/// [`MAX_BATCH_LINE_BYTES`]; a longer line is skipped unread and reported as
/// `runtime.request_too_large`. Blank lines are skipped; numbers are 1-based.
#[derive(Debug)]
pub struct BatchReader<R> {
    input: R,
    line_number: usize,
    limit: usize,
    failed: bool,
}

impl<R: std::io::BufRead> BatchReader<R> {
    /// A reader of `input` with the standard line limit.
    pub fn new(input: R) -> Self {
        Self::with_limit(input, MAX_BATCH_LINE_BYTES)
    }

    /// A reader of `input` refusing lines longer than `limit` bytes.
    pub fn with_limit(input: R, limit: usize) -> Self {
        Self {
            input,
            line_number: 0,
            limit,
            failed: false,
        }
    }

    /// The next non-blank line with its number: its bytes, or why it was refused. `None` at the
    /// end of the input; an IO error of the stream is returned once as `Some(Err)` with
    /// `runtime.io`, and the reader ends there.
    pub fn next_line(&mut self) -> Option<(usize, Result<Vec<u8>, ExecutionError>)> {
        if self.failed {
            return None;
        }
        loop {
            let mut line = Vec::new();
            let mut length = 0usize;
            let mut ended = false;
            loop {
                let buffer = match self.input.fill_buf() {
                    Ok(buffer) => buffer,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.failed = true;
                        self.line_number += 1;
                        return Some((
                            self.line_number,
                            Err(ExecutionError::Io {
                                action: "read",
                                path: "the batch input".to_owned(),
                                message: e.to_string(),
                            }),
                        ));
                    }
                };
                if buffer.is_empty() {
                    break;
                }
                let (chunk, found) = match buffer.iter().position(|&b| b == b'\n') {
                    Some(at) => (&buffer[..at], true),
                    None => (buffer, false),
                };
                length = length.saturating_add(chunk.len());
                if length <= self.limit {
                    line.extend_from_slice(chunk);
                }
                let consumed = chunk.len() + usize::from(found);
                self.input.consume(consumed);
                if found {
                    ended = true;
                    break;
                }
            }
            if !ended && length == 0 {
                return None;
            }
            self.line_number += 1;
            if length > self.limit {
                return Some((
                    self.line_number,
                    Err(ExecutionError::RequestTooLarge {
                        size: length,
                        limit: self.limit,
                    }),
                ));
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some((self.line_number, Ok(line)));
            }
        }
    }
}

/// The line written in place of a refused batch line: `{"error":{"code","message"},"line":N}`,
/// canonical JSON, with `"execution_id"` when the refusal may have come after the line's id was
/// claimed ([`ExecutionError::may_follow_a_claim`]): where its outcome reads back, the id made
/// for a line without one included.
pub fn batch_refusal_line(
    line: usize,
    code: &str,
    message: &str,
    execution_id: Option<&str>,
) -> Result<Vec<u8>, ExecutionError> {
    #[derive(serde::Serialize)]
    struct Refusal<'a> {
        error: RefusalError<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        execution_id: Option<&'a str>,
        line: usize,
    }
    #[derive(serde::Serialize)]
    struct RefusalError<'a> {
        code: &'a str,
        message: &'a str,
    }
    let refusal = Refusal {
        error: RefusalError { code, message },
        execution_id,
        line,
    };
    Ok(to_canonical_vec(&refusal)?)
}
