//! What a caller asks for: `ExecutionRequest` (execute) and `Signals` (JSON text on the fast path, or a value), with the size limit checked before any parsing (text) or any use (a value).

use parmana_canon::{ExecutionId, PolicyRef};
use parmana_policy::{CompiledPolicy, SignalError, ValidatedSignals};
use serde_json::Value;

use crate::ExecutionError;

/// The largest signals text accepted (1 MiB); longer text is refused with
/// `runtime.request_too_large` before it is parsed.
pub const MAX_SIGNALS_JSON_BYTES: usize = 1024 * 1024;

/// The signals of a request: JSON text (read straight into the policy's typed slots on the fast
/// path, strictly parsed otherwise) or an already parsed JSON value.
///
/// Text is bounded when it is given ([`Signals::from_json`] refuses more than
/// [`MAX_SIGNALS_JSON_BYTES`]), so holding text signals proves the limit was checked. A value
/// is bounded by the same limit when it is first used (validated, before anything is decided or
/// consumed): its compact JSON text may not be longer, or it is refused with the same
/// `runtime.request_too_large`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signals(SignalsInner);

#[derive(Debug, Clone, PartialEq)]
enum SignalsInner {
    Json(Box<[u8]>),
    Value(Value),
}

impl Signals {
    /// Signals as JSON text, refused unparsed when longer than [`MAX_SIGNALS_JSON_BYTES`].
    /// The text is parsed strictly when the request is decided (duplicate keys, lone
    /// surrogates, unsafe integers and non-finite numbers are refused).
    pub fn from_json(text: impl Into<Vec<u8>>) -> Result<Self, ExecutionError> {
        let text = text.into();
        if text.len() > MAX_SIGNALS_JSON_BYTES {
            return Err(ExecutionError::RequestTooLarge {
                size: text.len(),
                limit: MAX_SIGNALS_JSON_BYTES,
            });
        }
        Ok(Self(SignalsInner::Json(text.into_boxed_slice())))
    }

    /// Signals as a parsed JSON value (an object), held by the caller already. A value whose
    /// compact JSON text is longer than [`MAX_SIGNALS_JSON_BYTES`] is refused with
    /// `runtime.request_too_large` when it is used, as [`Signals::from_json`] refuses such text.
    pub fn from_value(value: Value) -> Self {
        Self(SignalsInner::Value(value))
    }

    /// Validates the signals against `policy`'s declarations.
    pub(crate) fn validate<'p>(
        &self,
        policy: &'p CompiledPolicy,
    ) -> Result<ValidatedSignals<'p>, ExecutionError> {
        Ok(match &self.0 {
            // Text that is not acceptable JSON keeps canon's own code, as when it was parsed first.
            SignalsInner::Json(text) => {
                policy.validate_signals_json(text).map_err(|e| match e {
                    SignalError::InvalidJson(canon) => ExecutionError::Canon(canon),
                    other => ExecutionError::Signals(other),
                })?
            }
            SignalsInner::Value(value) => {
                check_value_size(value)?;
                policy.validate_signals(value)?
            }
        })
    }
}

/// Refuses `value` when its compact JSON text is longer than [`MAX_SIGNALS_JSON_BYTES`]; the
/// text is counted, not kept, and counting stops at the first byte past the limit.
fn check_value_size(value: &Value) -> Result<(), ExecutionError> {
    /// Counts the bytes written; fails once past the limit (which stops the serializer).
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            if self.0 > MAX_SIGNALS_JSON_BYTES {
                return Err(std::io::Error::other("past the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        // A `Value` always has a JSON form: the only failure is the counter's own.
        Ok(()) if counter.0 <= MAX_SIGNALS_JSON_BYTES => Ok(()),
        _ => Err(ExecutionError::RequestTooLarge {
            size: counter.0,
            limit: MAX_SIGNALS_JSON_BYTES,
        }),
    }
}

impl From<Value> for Signals {
    fn from(value: Value) -> Self {
        Self::from_value(value)
    }
}

/// One request to execute: which execution id, which policy, which signals.
///
/// Its identifiers are parsed types, so a request that exists names a well-formed id and
/// policy; [`ExecutionRequest::parse`] builds one from text with the runtime's error codes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRequest {
    /// The execution id, used at most once.
    pub execution_id: ExecutionId,
    /// The policy to decide under, `id@version`.
    pub policy: PolicyRef,
    /// The signals.
    pub signals: Signals,
    /// Embed the validated signals in the attestation (their digest is always bound).
    pub include_signals: bool,
}

impl ExecutionRequest {
    /// A request for `policy` with `signals` under `execution_id`, signals not embedded.
    pub fn new(execution_id: ExecutionId, policy: PolicyRef, signals: impl Into<Signals>) -> Self {
        Self {
            execution_id,
            policy,
            signals: signals.into(),
            include_signals: false,
        }
    }

    /// A request from text: the execution id, the policy as `id@version` and the signals as
    /// JSON text. Refuses a malformed id (`runtime.invalid_execution_id`), a malformed policy
    /// reference (`runtime.invalid_policy_reference`) and text longer than
    /// [`MAX_SIGNALS_JSON_BYTES`] (`runtime.request_too_large`).
    pub fn parse(
        execution_id: &str,
        policy: &str,
        signals_json: impl Into<Vec<u8>>,
    ) -> Result<Self, ExecutionError> {
        Ok(Self::new(
            parse_execution_id(execution_id)?,
            parse_policy_ref(policy)?,
            Signals::from_json(signals_json)?,
        ))
    }

    /// Embeds (or not) the validated signals in the attestation.
    #[must_use]
    pub fn with_signals_included(mut self, include: bool) -> Self {
        self.include_signals = include;
        self
    }
}

/// A fresh execution id: a UUIDv7 (time-ordered, random), as the command line uses when a
/// request names none.
pub fn new_execution_id() -> ExecutionId {
    ExecutionId::from_uuid(uuid::Uuid::now_v7().as_u128())
}

/// Parses an execution id with the runtime's code, `runtime.invalid_execution_id`.
pub fn parse_execution_id(text: &str) -> Result<ExecutionId, ExecutionError> {
    ExecutionId::parse(text).map_err(ExecutionError::InvalidExecutionId)
}

/// Parses `id@version` with the runtime's code, `runtime.invalid_policy_reference`.
pub fn parse_policy_ref(text: &str) -> Result<PolicyRef, ExecutionError> {
    PolicyRef::parse(text).map_err(|error| ExecutionError::InvalidPolicyReference {
        reference: text.chars().take(160).collect(),
        source: error,
    })
}
