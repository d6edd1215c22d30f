//! The JSON bodies of the native API (requests and responses), their OpenAPI schemas, and the one way a response body is written: canonical JSON through `parmana-canon`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use parmana_runtime::canon::RawCanonical;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A refusal: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// The stable code (as in `docs/errors.md`) and a one-line message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorDetail {
    /// The stable code, for example `runtime.replay_detected` or `policy.signal_missing`.
    pub(crate) code: String,
    /// What went wrong, for people.
    pub(crate) message: String,
}

/// `POST /v1/executions`.
// Read by `body.rs` (the signals kept as their text); the `serde` attributes here only shape the
// OpenAPI schema (a plain comment: doc comments become the schema's description).
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutionRequestBody {
    /// The policy, `id@version`.
    #[schema(min_length = 3, max_length = 193)]
    pub(crate) policy: String,
    /// The signals: one JSON object of the policy's declared signals.
    #[schema(value_type = Object)]
    pub(crate) signals: String,
    /// The execution id, consumed at most once (a fresh UUIDv7 when absent): 1 to 128 printable
    /// ASCII characters, not `.` or `..`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub(crate) execution_id: Option<String>,
    /// Embed the validated signals in the attestation (their digest is always bound).
    #[serde(default)]
    pub(crate) include_signals: bool,
}

/// The outcome of `POST /v1/executions`: the decision and the signed attestation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ExecutionResponse {
    /// The execution id consumed.
    pub(crate) execution_id: String,
    /// The decision.
    pub(crate) decision: String,
    /// The deciding rule, or `default`.
    pub(crate) rule_id: String,
    /// The reason the deciding rule gives, when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The DSSE envelope, exactly as `parmana execute` prints it.
    #[schema(value_type = Object)]
    pub(crate) attestation: RawCanonical,
}

/// `POST /v1/evaluations`: one signal set, or many (`batch`) for one policy.
// Read by `body.rs` (each signal set kept as its text); the `serde` attributes here only shape
// the OpenAPI schema.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluationRequestBody {
    /// The policy, `id@version`.
    #[schema(min_length = 3, max_length = 193)]
    pub(crate) policy: String,
    /// The signals (exactly one of `signals` and `batch`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) signals: Option<String>,
    /// Many signal sets, each decided on its own (exactly one of `signals` and `batch`): 1 to
    /// 1,000.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>, min_items = 1, max_items = 1000)]
    pub(crate) batch: Option<Vec<String>>,
}

/// A pure decision: nothing consumed, nothing signed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EvaluationBody {
    /// The decision.
    pub(crate) decision: String,
    /// The deciding rule, or `default`.
    pub(crate) rule_id: String,
    /// The reason the deciding rule gives, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// With `?explain=true`: every rule tried and every condition evaluated, with the values read.
    /// Embedded as the runtime wrote it (canonical JSON), never read into a tree again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) trace: Option<RawCanonical>,
}

/// One result of a batch: a decision or a refusal.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BatchItem {
    /// The decision for this signal set.
    Decided(EvaluationBody),
    /// Why this signal set was refused.
    Refused(ErrorBody),
}

/// The outcome of a batch: one result per signal set, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct BatchEvaluationResponse {
    /// One result per signal set, in the order given.
    pub(crate) results: Vec<BatchItem>,
}

/// What `POST /v1/evaluations` answers: one decision (with `signals`) or the batch's results.
/// Only its schema is used: the route writes each answer as its own type.
#[expect(dead_code, reason = "the schema of the route's answer, never built")]
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum EvaluationOutcome {
    /// The decision for `signals`.
    Single(EvaluationBody),
    /// One result per signal set of `batch`.
    Batch(BatchEvaluationResponse),
}

/// The attestation `POST /v1/verify` checks: the envelope as a JSON object, or its text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum AttestationInput {
    /// The DSSE envelope, as `POST /v1/executions` or `parmana execute` returned it (verified as
    /// its canonical bytes).
    Envelope(EnvelopeObject),
    /// The envelope's text, verified byte for byte — as `parmana verify FILE` reads a file.
    Text(String),
}

/// A DSSE envelope as a JSON object.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct EnvelopeObject(pub(crate) serde_json::Map<String, Value>);

/// `POST /v1/verify`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequestBody {
    /// The DSSE envelope, as `POST /v1/executions` or `parmana execute` returned it, or its
    /// text (any other JSON value is `400 server.invalid_request`).
    pub(crate) attestation: AttestationInput,
    /// Also check that the attestation binds these signals.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) signals: Option<Value>,
    /// Also check that the attestation binds the released bundle of the policy it names, and,
    /// with the signals (given or embedded), that the policy decides what it says (`decision`).
    #[serde(default)]
    pub(crate) check_bundle: bool,
}

/// The per-check report, as `parmana --format json verify` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyResponse {
    /// True only if every check passed.
    pub(crate) valid: bool,
    /// One entry per check: `check`, `passed`, `detail` and, when failed, `code`.
    #[schema(value_type = Vec<Object>)]
    pub(crate) checks: Value,
    /// What the attestation binds, when its envelope could be read.
    #[schema(value_type = Option<Object>)]
    pub(crate) predicate: Value,
    /// Where the attestation stands in the trust-root chain in force: `version` (made under),
    /// `newest_version`, `superseded`, `newest_expired`, and `signing_keys` (each signature's
    /// `keyid` and whether the newest version still trusts it, `trusted_by_newest`); `null` when
    /// the attestation names no version of the chain.
    #[schema(value_type = Option<Object>)]
    pub(crate) trust: Value,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthBody {
    /// `ok`, or why the server is not ready.
    pub(crate) status: String,
}

/// A verified document in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentStatus {
    /// Its version.
    pub(crate) version: u64,
    /// The `sha256:` digest of the canonical bytes of its `signed` member (what attestations
    /// record of it).
    pub(crate) digest: String,
    /// When it expires.
    pub(crate) expires: String,
}

/// The last reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReloadStatus {
    /// When it was attempted.
    pub(crate) at: String,
    /// `ok` or `refused`.
    pub(crate) outcome: String,
    /// The stable code of the refusal (the old environment stayed in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    /// The refusal's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    /// The runtime's version.
    pub(crate) runtime_version: String,
    /// The trust root in force.
    pub(crate) trust_root: DocumentStatus,
    /// The release manifest in force.
    pub(crate) release_manifest: DocumentStatus,
    /// The released policies, `id@version`.
    pub(crate) policies: Vec<String>,
    /// The kind of replay store: `memory`, `sqlite` or `postgres`.
    pub(crate) store: String,
    /// Seconds since the server started.
    pub(crate) uptime_seconds: u64,
    /// Whether the server is ready (see `/readyz`).
    pub(crate) ready: bool,
    /// The last reload attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_reload: Option<ReloadStatus>,
}

/// `POST /v1/admin/reload`: the versions before and after.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReloadResponse {
    /// Trust root version before and after.
    pub(crate) trust_root: [u64; 2],
    /// Release manifest version before and after.
    pub(crate) release_manifest: [u64; 2],
    /// How many released policies were verified before the swap.
    pub(crate) policies: usize,
}

/// A response whose body is the canonical JSON of `value` (RFC 8785, through `parmana-canon`).
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match parmana_runtime::canon::to_canonical_vec(value) {
        Ok(bytes) => raw_json_response(status, bytes),
        // Only a non-finite float has no JSON form; none of our bodies holds one.
        Err(error) => {
            let fallback = serde_json::json!({"error": {
                "code": error.code(),
                "message": "the response could not be encoded",
            }});
            raw_json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::to_vec(&fallback).unwrap_or_default(),
            )
        }
    }
}

/// A response with `bytes` as its JSON body.
pub(crate) fn raw_json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
