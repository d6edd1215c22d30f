//! The native API handlers: executions, read-back, evaluations (single, batch, explained), verify, health, readiness, status, metrics, reload and the OpenAPI document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parmana_runtime::canon::{PolicyRef, parse_strict};
use parmana_runtime::{
    ExecutionError, ExecutionRequest, ExecutionStatus, RuntimeEnvironment, Signals,
    new_execution_id, parse_execution_id, parse_policy_ref,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Scope;
use crate::error::{ApiError, RETRY_AFTER_SECONDS, status_of};
use crate::metrics::EnvironmentDocument;
use crate::observe::Outcome;
use crate::state::AppState;
use crate::wire::{
    AttestationInput, BatchEvaluationResponse, BatchItem, DocumentStatus, EnvelopeObject,
    ErrorBody, EvaluationBody, EvaluationOutcome, EvaluationRequestBody, ExecutionRequestBody,
    ExecutionResponse, HealthBody, ReloadResponse, ReloadStatus, StatusBody, VerifyRequestBody,
    VerifyResponse, json_response, raw_json_response,
};

type Shared = State<Arc<AppState>>;

/// The body of `request`, read only when the handler calls this — after it has checked the
/// token, so that a caller without one never has a body buffered — and refused with 413 past
/// `limit`, the route's (at once when its `Content-Length` declares more). Each piece of it
/// takes its place in the server's body budget as it arrives, or the request is shed: the bytes
/// held, raw and parsed, stay within the budget, and a `Content-Length` declared but never sent
/// takes no place.
pub(crate) async fn read_body(
    state: &AppState,
    request: Request,
    limit: usize,
) -> Result<Bytes, ApiError> {
    crate::state::note_reading_body(true, false);
    let read = read_within_budget(state, request, limit).await;
    crate::state::note_reading_body(false, read.is_ok());
    read
}

async fn read_within_budget(
    state: &AppState,
    request: Request,
    limit: usize,
) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.body_too_large",
            "the request body is larger than the server's limit",
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|declared| declared > limit) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let mut bytes = Vec::new();
    let mut place = crate::state::BodyPlace::default();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| ApiError::invalid_request(format!("request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let length = bytes.len().saturating_add(data.len());
        if length > limit {
            return Err(too_large());
        }
        make_room(
            &mut bytes,
            length,
            declared.unwrap_or(limit),
            &mut place,
            state,
        )?;
        bytes.extend_from_slice(&data);
    }
    place.hold();
    Ok(Bytes::from(bytes))
}

/// Makes room for `length` bytes in `bytes`, charging what it allocates to `place` first: its
/// capacity, not only its length (a buffer growing by doubling would hold up to twice what the
/// budget counted). It grows geometrically, but never past `ceiling` (the body's declared
/// `Content-Length`, else the route's limit) unless `length` is past it.
pub(crate) fn make_room(
    bytes: &mut Vec<u8>,
    length: usize,
    ceiling: usize,
    place: &mut crate::state::BodyPlace,
    state: &AppState,
) -> Result<(), ApiError> {
    if length <= bytes.capacity() {
        return Ok(());
    }
    let target = bytes.capacity().saturating_mul(2).min(ceiling).max(length);
    place.grow(state, target)?;
    bytes.reserve_exact(target - bytes.len());
    Ok(())
}

/// Parses a request body strictly (canon's rules: duplicate keys, lone surrogates and unsafe
/// integers are refused with their `canon.*` code, 400), then into the route's shape.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_strict(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e.code(),
            format!("request body: {}", crate::error::bounded_message(&e)),
        )
    })?;
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid_request(format!(
            "request body: {}",
            crate::error::bounded_message(&e)
        ))
    })
}

pub(crate) fn execution_error(error: &ExecutionError) -> ApiError {
    ApiError::from_execution(error)
}

/// Whether an execution's refusal answers with `Location`: a replay names the stored
/// attestation; a failure that may come after the id was claimed — the store failing (its
/// commit may have happened: a connection lost after it), a file, a defect — names where the
/// outcome reads back, so that a client that let the server make the id can learn it (`200`
/// once completed, `423` while claimed, `404` if it was never claimed) instead of retrying
/// under a new id; so does the signer failing. Refusals made before the claim (input, policy,
/// the rest of trust) name nothing ([`ExecutionError::may_follow_a_claim`]).
pub(crate) fn names_the_execution(error: &ExecutionError) -> bool {
    matches!(error, ExecutionError::ReplayDetected { .. }) || error.may_follow_a_claim()
}

/// The path of an execution's stored attestation, the id percent-encoded.
/// The answer to a defect (a panic) in a runtime call: `500 server.internal` with a fixed
/// message (what the panic said, which may name hosts, paths or data, goes to the server's log
/// only), naming in `Location` the execution it may have claimed — read it back there.
pub(crate) fn defect(
    operation: &str,
    execution_id: Option<&str>,
    location: Option<String>,
) -> ApiError {
    match execution_id {
        Some(id) => {
            let location = location.unwrap_or_else(|| execution_location(id));
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                format!(
                    "the {operation} task failed (what it said is in the server's log); \
                     execution {id:?} may have been claimed: read its outcome with GET {location}"
                ),
            )
            .with_header(header::LOCATION, &location)
        }
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            format!("the {operation} task failed; what it said is in the server's log"),
        ),
    }
}

pub(crate) fn execution_location(execution_id: &str) -> String {
    let mut path = String::from("/v1/executions/");
    for byte in execution_id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// `response` with what the handler decided for the log line and the metrics; the error code a
/// refusal's response already carries is kept.
pub(crate) fn with_outcome(mut response: Response, mut outcome: Outcome) -> Response {
    if outcome.code.is_none() {
        outcome.code = response
            .extensions_mut()
            .remove::<Outcome>()
            .and_then(|refused| refused.code);
    }
    response.extensions_mut().insert(outcome);
    response
}

/// Execute signals under a signed policy exactly once; the signed attestation comes back.
#[utoipa::path(
    post, path = "/v1/executions", tag = "native",
    request_body = ExecutionRequestBody,
    responses(
        (status = 201, description = "Executed: the decision and the signed attestation", body = ExecutionResponse),
        (status = 400, description = "Malformed request, policy reference or execution id", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `execute` scope", body = ErrorBody),
        (status = 409, description = "The execution id was already used; `Location` names the stored attestation", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout (`server.body_timeout`): nothing was started", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Unknown policy, or signals the policy refuses", body = ErrorBody),
        (status = 500, description = "The environment refused (trust), a store whose content no retry mends (`replay.store_corrupt`, `replay.ledger_broken`, …: docs/server.md, Errors), a store seen cut under the log (`runtime.store_rewound`) or a defect; after the id may have been claimed, `Location` names where the outcome reads back", body = ErrorBody,
            headers(("Location" = String, description = "Where the execution's outcome reads back (a failure after the id may have been claimed)"))),
        (status = 503, description = "Store unavailable (`replay.*`; `Location` names where the outcome reads back: its commit may have happened), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["execute"]))
)]
pub(crate) async fn create_execution(
    State(state): Shared,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Execute)?;
    let body = read_body(&state, request, state.limits.max_body_bytes).await?;
    let bytes = body.len();
    let body = state
        .sized(bytes, move || ExecutionRequestBody::read(&body))
        .await?;
    // The line of any refusal from here on carries the signals too (where they are logged).
    crate::state::note_signals(&state.logging, || body.signals.clone());
    // Every refusal of the runtime's is counted, here or where the execution ran.
    let refused = |e: &ExecutionError| {
        state.metrics.execution_error(e.code());
        execution_error(e)
    };
    // Only what passed its check is noted for the log line (a refused one may be a megabyte).
    let policy = parse_policy_ref(&body.policy).map_err(|e| refused(&e))?;
    crate::state::note_request(Some(&policy), None);
    let execution_id = match &body.execution_id {
        Some(id) => parse_execution_id(id).map_err(|e| refused(&e))?,
        None => new_execution_id(),
    };
    // A server-made id too: an answer on the request's timeout names it.
    crate::state::note_request(None, Some(&execution_id));
    let mut outcome = Outcome {
        policy: Some(policy.to_string()),
        execution_id: Some(execution_id.as_str().to_owned()),
        ..Outcome::default()
    };
    // The signals' text goes to the runtime's strict parser as it is (as the CLI's does).
    let signals = Signals::from_json(body.signals).map_err(|e| refused(&e))?;
    let request = ExecutionRequest::new(execution_id.clone(), policy, signals)
        .with_signals_included(body.include_signals);
    // Counted where it runs: an execution that outlives its request's timeout is counted too.
    // A defect (a panic) too, counted where it happened and then passed on, to be answered.
    let execute =
        |state: &AppState, runtime: &parmana_runtime::Runtime, request: &ExecutionRequest| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                state.execute_once(runtime, request)
            }))
            .unwrap_or_else(|panic| {
                state.metrics.execution_error("server.internal");
                std::panic::resume_unwind(panic)
            });
            match &result {
                Ok(attestation) => state.metrics.execution(&attestation.predicate().decision),
                Err(error) => state.metrics.execution_error(error.code()),
            }
            result
        };
    let result = if !state.store_waits() && bytes <= INLINE_EVALUATION_BYTES {
        // The execution is bounded CPU work (decide, sign, one short lock) on small signals:
        // done here, without the hand-off to the blocking pool and back. A defect (a panic) is
        // answered, naming the execution, as on the blocking pool.
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(&state, &state.runtime, &request)
        }));
        state.metrics.runtime_call("execute", started.elapsed());
        result.map_err(|_| {
            tracing::error!(target: "parmana::server", operation = "execute", "a runtime call failed");
            defect("execute", Some(execution_id.as_str()), None)
        })?
    } else {
        let shared = Arc::clone(&state);
        state
            .blocking("execute", move |runtime| {
                execute(&shared, runtime, &request)
            })
            .await
            .map_err(|_| defect("execute", Some(execution_id.as_str()), None))?
    };
    let location = execution_location(execution_id.as_str());
    match result {
        Ok(attestation) => {
            let predicate = attestation.predicate();
            outcome.decision = Some(predicate.decision.clone());
            let body = ExecutionResponse {
                execution_id: execution_id.as_str().to_owned(),
                decision: predicate.decision.clone(),
                rule_id: predicate.rule_id.clone(),
                reason: predicate.reason.clone(),
                // Canonical already: copied into the answer as it is.
                attestation: attestation.envelope_canonical().clone(),
            };
            let mut response = json_response(StatusCode::CREATED, &body);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(with_outcome(response, outcome))
        }
        Err(error) => {
            let mut api = execution_error(&error);
            if names_the_execution(&error) {
                api = api.with_header(header::LOCATION, &location);
            }
            outcome.code = Some(api.code.clone());
            Ok(with_outcome(api.into_response(), outcome))
        }
    }
}

/// Read back what the store holds for an execution id.
#[utoipa::path(
    get, path = "/v1/executions/{id}", tag = "native",
    params(("id" = String, Path, description = "The execution id")),
    responses(
        (status = 200, description = "The stored attestation, byte for byte as it was returned, once it verifies under the trust-root chain as this execution's", body = Object),
        (status = 400, description = "Malformed execution id (`runtime.invalid_execution_id`), or one that does not decode as UTF-8 (`server.invalid_request`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "The id was never used (`server.execution_unknown`)", body = ErrorBody),
        (status = 423, description = "Claimed, not completed: in flight, or interrupted (run `parmana recover`)", body = ErrorBody),
        (status = 500, description = "The stored attestation is not this execution's: it does not verify, or attests another execution (`runtime.stored_attestation_invalid`); a store whose content no retry mends (`replay.store_corrupt`, …: also an id the ledger records whose row the store no longer holds); or a defect (`server.internal`)", body = ErrorBody),
        (status = 503, description = "Made under a trust-root version newer than this server has loaded (`runtime.environment_behind`: reload it), store unavailable or a row it cannot read (`replay.*`), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn read_execution(
    State(state): Shared,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Read)?;
    let id = path_param(id)?;
    let execution_id = parse_execution_id(&id).map_err(|e| execution_error(&e))?;
    crate::state::note_request(None, Some(&execution_id));
    let outcome = Outcome {
        execution_id: Some(execution_id.as_str().to_owned()),
        ..Outcome::default()
    };
    let status = state
        .blocking("read", move |runtime| runtime.attestation(&execution_id))
        .await?
        .map_err(|e| execution_error(&e))?;
    let response = match status {
        // Its place in the body budget, held until it is written (`AnswerHolding`): attestations
        // read back for clients that do not read them stay within the budget (up to about 2 MiB
        // each, with the signals); with no room, `503 server.overloaded`.
        ExecutionStatus::Completed(envelope) => {
            // At most the share every caller may take: one larger (a store another process with a
            // larger limit wrote) is read back alone, never refused on an idle server.
            crate::state::BodyPlace::hold_answer(&state, envelope.len())?;
            raw_json_response(StatusCode::OK, envelope)
        }
        ExecutionStatus::Claimed { claimed_at } => ApiError::new(
            StatusCode::LOCKED,
            "server.execution_pending",
            format!(
                "execution {id:?} was claimed at {claimed_at} and is not completed: in flight, \
                 or interrupted (`parmana recover` completes it)"
            ),
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
        .into_response(),
        // The ledger records it, the store holds no row: deleted behind the store, not
        // "never claimed" (a client must not resubmit under a new id).
        ExecutionStatus::Unknown
            if parse_execution_id(&id)
                .is_ok_and(|parsed| state.sequencer.executed.contains(&parsed)) =>
        {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "replay.store_corrupt",
                format!(
                    "the ledger records execution {id:?}, but the store holds no row for it: it \
                     was deleted behind the store; its attestation is in the transparency log"
                ),
            )
            .into_response()
        }
        ExecutionStatus::Unknown => ApiError::new(
            StatusCode::NOT_FOUND,
            "server.execution_unknown",
            format!("the store holds no execution {id:?}"),
        )
        .into_response(),
    };
    Ok(with_outcome(response, outcome))
}

/// `?explain=true`: the one query parameter taken (`true` or `false`, once), as the bodies take
/// no unknown member — a misspelt one (`?explian=true`) is `400 server.invalid_request`, not an
/// answer without what was asked for.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainQuery {
    /// Add the trace: every rule tried, every condition evaluated, with the values read
    /// (`true` or `false`; no other parameter is taken).
    #[serde(default)]
    explain: bool,
}

/// Refuses, before anything is evaluated, an explanation whose trace could pass the budget
/// (`413 server.explain_too_large`). Each signal set gets a trace of its own: the policy's
/// rules and conditions written out once per set (`trace_bytes_bound`), and, for each condition
/// evaluated, the value it read — so `sets × trace_bytes_bound + conditions × signals_bytes`
/// bounds the whole. The budget is four times `max_body_bytes` (4 MiB by default) for the whole
/// request, its batch included. What passes takes its place in the server's body budget, the
/// bound, beside the request's body until the request and its evaluation are done, or the
/// request is shed (`503 server.overloaded`): explanations held at once stay within that
/// budget, whatever `max_concurrency` is. (Four times `max_body_bytes` and a body fit the
/// budget, eight times it: an explanation that passes the check is never shed on an idle
/// server.)
fn check_explain_budget(
    state: &AppState,
    environment: &RuntimeEnvironment,
    policy: &PolicyRef,
    sets: usize,
    signals_bytes: usize,
) -> Result<(), ApiError> {
    let loaded = environment
        .policy(policy)
        .map_err(|e| execution_error(&e))?;
    let compiled = loaded.policy();
    let conditions = compiled.condition_count();
    let bound = sets
        .saturating_mul(compiled.trace_bytes_bound())
        .saturating_add(conditions.saturating_mul(signals_bytes));
    let budget = state.limits.max_body_bytes.saturating_mul(4);
    if bound > budget {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.explain_too_large",
            format!(
                "explanations of {sets} signal sets ({signals_bytes} bytes) under a policy of \
                 {conditions} conditions could make traces of {bound} bytes, more than the \
                 {budget} allowed: evaluate without explain=true, or explain fewer or smaller \
                 signal sets"
            ),
        ));
    }
    let mut place = crate::state::BodyPlace::default();
    place.grow(state, bound)?;
    place.hold();
    Ok(())
}

/// The largest request (signals, or an AuthZEN body) whose one evaluation runs on the async
/// worker that received it: a few microseconds, less than the hand-off to the blocking pool. A
/// larger one, or one explained (its trace is built, then read again), costs what the request
/// chooses, up to milliseconds, and goes to the blocking pool, so that it never holds up the
/// async workers that answer `/healthz`, `/readyz` and new connections.
pub(crate) const INLINE_EVALUATION_BYTES: usize = 16 * 1024;

/// Whether one evaluation of a request of `bytes` runs on the async worker (see
/// [`INLINE_EVALUATION_BYTES`]).
pub(crate) fn evaluates_inline(explain: bool, bytes: usize) -> bool {
    !explain && bytes <= INLINE_EVALUATION_BYTES
}

/// Decides one signal set, given as JSON text (read by the runtime's strict parser).
fn evaluate_one(
    runtime: &parmana_runtime::Runtime,
    environment: &RuntimeEnvironment,
    policy: &PolicyRef,
    signals: String,
    explain: bool,
) -> Result<EvaluationBody, ExecutionError> {
    let signals = Signals::from_json(signals)?;
    if explain {
        let (evaluation, trace) = runtime.explain_trace_under(environment, policy, &signals)?;
        Ok(EvaluationBody {
            decision: evaluation.decision,
            rule_id: evaluation.rule_id,
            reason: evaluation.reason,
            trace: Some(trace),
        })
    } else {
        let evaluation = runtime.evaluate_under(environment, policy, &signals)?;
        Ok(EvaluationBody {
            decision: evaluation.decision,
            rule_id: evaluation.rule_id,
            reason: evaluation.reason,
            trace: None,
        })
    }
}

/// A pure decision (nothing consumed, nothing signed); `batch` decides many signal sets.
#[utoipa::path(
    post, path = "/v1/evaluations", tag = "native",
    params(ExplainQuery),
    request_body = EvaluationRequestBody,
    responses(
        (status = 200, description = "The decision (with `signals`), or one result per signal set (with `batch`)", body = EvaluationOutcome),
        (status = 400, description = "Malformed request or policy reference", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `evaluate` scope", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout (`server.body_timeout`): nothing was started", body = ErrorBody),
        (status = 413, description = "The body is too large, a `batch` of more than 1,000 signal sets (`server.batch_too_large`), or an explanation whose trace could pass its budget (`server.explain_too_large`)", body = ErrorBody),
        (status = 422, description = "Unknown policy, or signals the policy refuses", body = ErrorBody),
        (status = 500, description = "The environment refused (`runtime.expired`, `trust.*`; for a `batch`, the whole batch) or a defect", body = ErrorBody),
        (status = 503, description = "Starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["evaluate"]))
)]
pub(crate) async fn evaluate(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<ExplainQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Evaluate)?;
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let body = read_body(&state, request, state.limits.max_body_bytes).await?;
    let body = state
        .sized(body.len(), move || EvaluationRequestBody::read(&body))
        .await?;
    // One set of signals: the line of any refusal from here on carries them too (where they are
    // logged); a batch's are not logged.
    if let Some(signals) = &body.signals {
        crate::state::note_signals(&state.logging, || signals.clone());
    }
    let policy = parse_policy_ref(&body.policy).map_err(|e| execution_error(&e))?;
    // A refusal's log line names the policy too (checked: a refused one may be a megabyte).
    crate::state::note_request(Some(&policy), None);
    let mut outcome = Outcome {
        policy: Some(policy.to_string()),
        ..Outcome::default()
    };
    // The shape first: a body with both or neither is malformed, whatever it would cost.
    if body.signals.is_some() == body.batch.is_some() {
        return Err(ApiError::invalid_request(
            "request body: give exactly one of `signals` and `batch`",
        ));
    }
    let explain = query.explain;
    // One environment for the request: the policy whose trace bound is checked is the one
    // evaluated, even when a reload swaps another in meanwhile.
    let environment = state.runtime.environment();
    if explain {
        let (sets, signals_bytes) = match (&body.signals, &body.batch) {
            (Some(signals), _) => (1, signals.len()),
            (None, Some(batch)) => (batch.len(), batch.iter().map(String::len).sum()),
            (None, None) => (0, 0),
        };
        check_explain_budget(&state, &environment, &policy, sets, signals_bytes)?;
    }
    match (body.signals, body.batch) {
        (Some(signals), None) => {
            // One small evaluation is pure and bounded by the policy limits (no store, no lock
            // held across it, no I/O): it runs here, on the async worker; a large or explained
            // one on the blocking pool.
            let decided = if evaluates_inline(explain, signals.len()) {
                let started = Instant::now();
                let runtime = &state.runtime;
                let decided = evaluate_one(runtime, &environment, &policy, signals, explain);
                state.metrics.runtime_call("evaluate", started.elapsed());
                decided
            } else {
                let policy = policy.clone();
                state
                    .blocking("evaluate", move |runtime| {
                        evaluate_one(runtime, &environment, &policy, signals, explain)
                    })
                    .await?
            };
            let decided = decided.map_err(|e| execution_error(&e))?;
            outcome.decision = Some(decided.decision.clone());
            Ok(with_outcome(
                json_response(StatusCode::OK, &decided),
                outcome,
            ))
        }
        (None, Some(batch)) => {
            // Reading the body counted the batch (`server.batch_too_large` past
            // `MAX_BATCH_ITEMS`, found while it was split) and refused an empty one.
            let results = state
                .blocking("evaluate", move |runtime| {
                    // Every signal set is decided under the environment the request took,
                    // even when a reload swaps another in meanwhile. An unknown or broken policy
                    // refuses the whole batch.
                    environment.policy(&policy)?;
                    let mut results = Vec::with_capacity(batch.len());
                    for signals in batch {
                        match evaluate_one(runtime, &environment, &policy, signals, explain) {
                            Ok(decided) => results.push(BatchItem::Decided(decided)),
                            // What refuses the environment rather than the signals (expired,
                            // `trust.*`, a defect: a 5xx) refuses the whole batch, as it would
                            // one evaluation: a 200 always carries decisions.
                            Err(error) if status_of(&error).is_server_error() => {
                                return Err(error);
                            }
                            Err(error) => {
                                results.push(BatchItem::Refused(execution_error(&error).body()));
                            }
                        }
                    }
                    Ok::<_, ExecutionError>(results)
                })
                .await?
                .map_err(|e| execution_error(&e))?;
            Ok(with_outcome(
                json_response(StatusCode::OK, &BatchEvaluationResponse { results }),
                outcome,
            ))
        }
        _ => Err(ApiError::invalid_request(
            "request body: give exactly one of `signals` and `batch`",
        )),
    }
}

/// Verify an attestation: the report `parmana --format json verify` prints (`valid`, `checks`,
/// `predicate`, `trust`).
#[utoipa::path(
    post, path = "/v1/verify", tag = "native",
    request_body = VerifyRequestBody,
    responses(
        (status = 200, description = "The report (`valid` is true only if every check passed)", body = VerifyResponse),
        (status = 400, description = "Malformed request; with `check_bundle`, a policy reference in the attestation that is not one", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `verify` scope", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout (`server.body_timeout`): nothing was started", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "With `check_bundle`: the policy the attestation names is not released (`runtime.policy_not_found`)", body = ErrorBody),
        (status = 500, description = "With `check_bundle`: the released bundle is refused (`trust.*`); or a defect (`server.internal`)", body = ErrorBody),
        (status = 503, description = "Starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["verify"]))
)]
pub(crate) async fn verify(
    State(state): Shared,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Verify)?;
    let body = read_body(&state, request, state.limits.max_verify_body_bytes()).await?;
    let (body, envelope) = state
        .sized(body.len(), move || {
            let body: VerifyRequestBody = parse_body(&body)?;
            let envelope = match &body.attestation {
                AttestationInput::Text(text) => text.as_bytes().to_vec(),
                AttestationInput::Envelope(EnvelopeObject(envelope)) => {
                    parmana_runtime::canon::to_canonical_vec(envelope).map_err(|e| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            e.code(),
                            format!("attestation: {e}"),
                        )
                    })?
                }
            };
            Ok((body, envelope))
        })
        .await?;
    let report = state
        .blocking("verify", move |runtime| {
            // One environment for the whole report: the trust-root chain that judges the
            // attestation is the one whose release manifest gives the bundle.
            let environment = runtime.environment();
            let plain = runtime.verify_under(&environment, &envelope, None, body.signals.as_ref());
            if !body.check_bundle {
                return Ok(plain);
            }
            let Some(predicate) = plain.predicate() else {
                // Nothing names the bundle: reported as `parmana verify --policy-bundle` does.
                return Ok(plain.with_bundle_check_not_run(body.signals.is_some()));
            };
            let reference = format!("{}@{}", predicate.policy.id, predicate.policy.version);
            let loaded = environment.policy(&parse_policy_ref(&reference)?)?;
            Ok::<_, ExecutionError>(runtime.verify_under(
                &environment,
                &envelope,
                Some(&loaded),
                body.signals.as_ref(),
            ))
        })
        .await?
        .map_err(|e| execution_error(&e))?;
    let to_value = |value: Result<Value, serde_json::Error>| {
        value.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                e.to_string(),
            )
        })
    };
    let response = VerifyResponse {
        valid: report.is_valid(),
        checks: to_value(serde_json::to_value(&report.checks))?,
        predicate: to_value(serde_json::to_value(report.predicate()))?,
        trust: to_value(serde_json::to_value(report.trust_standing()))?,
    };
    Ok(json_response(StatusCode::OK, &response))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Up", body = HealthBody),
        (status = 503, description = "Never shed, but still unanswered when the shutdown grace ran out (`server.shutting_down`, with `Retry-After`)", body = ErrorBody),
    ))]
pub(crate) async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        &HealthBody {
            status: "ok".to_owned(),
        },
    )
}

/// Why the server is not ready, if it is not, with the `parmana_ready` gauge set to match: every
/// route that reports readiness (`/readyz`, `/v1/status`, `/metrics`) works it out afresh (the
/// store's answer is cached for a second), so the gauge is never older than a scrape.
pub(crate) async fn check_readiness(state: &Arc<AppState>) -> Option<String> {
    let reason = not_ready_reason(state).await;
    // A drain that began while the store was probed wins.
    let reason = reason.or_else(|| {
        state
            .is_draining()
            .then(|| "draining: shutting down".to_owned())
    });
    state.metrics.set_ready(reason.is_none());
    // A drain sets its flag before it clears the gauge: one that began after the flag was read
    // above is seen here, and the gauge set again (whichever store comes last, it reads 0). The
    // fences order the gauge's own (relaxed) store with the flag, here and in the drain.
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if reason.is_none() && state.is_draining() {
        state.metrics.set_ready(false);
        return Some("draining: shutting down".to_owned());
    }
    reason
}

/// Why the server is not ready, if it is not.
pub(crate) async fn not_ready_reason(state: &Arc<AppState>) -> Option<String> {
    if state.is_draining() {
        return Some("draining: shutting down".to_owned());
    }
    if !state.is_started() {
        return Some("starting: recovering leftovers".to_owned());
    }
    let environment = state.runtime.environment();
    let now = state.runtime.clock().now();
    if let Err(error) = environment.trust_root().check_not_expired(now) {
        return Some(format!("trust root: {error}"));
    }
    if let Err(error) = environment.release_manifest().check_not_expired(now) {
        return Some(format!("release manifest: {error}"));
    }
    // Every client refuses an expired certificate: no traffic should come here then.
    let tls_not_after = *state
        .tls_not_after
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(not_after) = tls_not_after
        && now >= not_after
    {
        return Some(format!(
            "TLS certificate: expired at {not_after}; reload the server with a valid one"
        ));
    }
    if let Some(reason) = state.runtime.store_refused() {
        return Some(format!(
            "replay store refused (runtime.store_rewound): {reason}; executions are refused until \
             it is restored and the server restarted"
        ));
    }
    if let Some(reason) = crate::lifecycle::integration_stalled(state) {
        return Some(reason);
    }
    // A reload may take a trust root that rotated this server's keys out (a leaked key must stop
    // signing): it then refuses every execution, or signs no checkpoint, until it is restarted
    // with the new keys, and says so here.
    if let Err(error) = state.runtime.check_can_sign() {
        return Some(format!(
            "attestation keys: {error}; restart the server with the keys of the trust root in force"
        ));
    }
    if let Some(keys) = state.sequencer.log_keys.as_deref()
        && let Err(error) = parmana_runtime::check_log_signer(parmana_runtime::LogSigning {
            trust_root: environment.trust_root(),
            history: environment.trust_history(),
            now,
            release_manifest: environment.release_manifest().version(),
            signers: &parmana_runtime::signers_of(keys),
            anchor: None,
        })
    {
        return Some(format!(
            "log key: {error}; restart the server with the log key of the trust root in force"
        ));
    }
    store_not_ready(state).await
}

/// How long a store probe's answer is reused by `/readyz`.
pub(crate) const PROBE_FRESH: Duration = Duration::from_secs(1);
/// How long `/readyz` waits for the store probe before it answers not ready.
pub(crate) const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// Why the store is not ready, if it is not: one probe at a time, its answer reused for
/// [`PROBE_FRESH`], so that probes (never shed, needing no token) cannot pile store round trips
/// on the blocking pool. A caller waits at most [`PROBE_DEADLINE`]; a probe still waiting for
/// the store then goes on in its own task, holding the lock, and keeps its answer for the next.
async fn store_not_ready(state: &Arc<AppState>) -> Option<String> {
    let prober = Arc::clone(state);
    let probed = tokio::time::timeout(PROBE_DEADLINE, async move {
        let mut last = Arc::clone(&prober.probe).lock_owned().await;
        if let Some((answered, reason)) = last.as_ref()
            && answered.elapsed() < PROBE_FRESH
        {
            return reason.clone();
        }
        let probe = tokio::spawn(async move {
            let started = Instant::now();
            let probe = prober
                .blocking("probe", |runtime| runtime.store().accepted_versions())
                .await;
            prober.metrics.store_probe(started.elapsed());
            // The answer goes to anyone (`/readyz` needs no token): it names the store's error
            // code; its message, which can name hosts, paths and database errors, goes to the
            // server's log (at most once per probe, so once a second).
            let reason = match probe {
                // Another server of the deployment took a newer trust root or release manifest
                // (its claims raised the store's marks): every execution here would be refused
                // as a rollback until this server reloads.
                Ok(Ok(marks)) => {
                    let environment = prober.runtime.environment();
                    let (trust_root, manifest) = (
                        environment.trust_root().version(),
                        environment.release_manifest().version(),
                    );
                    (marks.trust_root > trust_root || marks.release_manifest > manifest).then(
                        || {
                            format!(
                                "behind the replay store: it accepted trust root {} and release \
                             manifest {}, this server holds {trust_root} and {manifest}; reload it \
                             (SIGHUP) after publishing the new files",
                                marks.trust_root, marks.release_manifest
                            )
                        },
                    )
                }
                Ok(Err(error)) => {
                    tracing::warn!(
                        target: "parmana::server",
                        code = error.code(),
                        %error,
                        "readiness probe: the replay store did not answer"
                    );
                    Some(format!(
                        "replay store: unavailable ({}; the server's log says why)",
                        error.code()
                    ))
                }
                Err(error) => Some(format!("replay store: the probe failed ({})", error.code)),
            };
            *last = Some((Instant::now(), reason.clone()));
            reason
        });
        probe
            .await
            .unwrap_or_else(|e| Some(format!("replay store: the probe failed: {e}")))
    })
    .await;
    probed.unwrap_or_else(|_| {
        Some(format!(
            "replay store: no answer within {} ms",
            PROBE_DEADLINE.as_millis()
        ))
    })
}

/// Ready: environment valid now, store reachable, started and not draining.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "Not ready: starting (recovering leftovers), draining, the environment expired, the store unreachable, ahead of this server's environment (reload it) or seen cut under the log (`runtime.store_rewound`), the ledger's integrator lock held elsewhere for ten sequencer cadences while this server's completions wait, the server's keys out of their roles, or its TLS certificate expired", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): Shared) -> Response {
    match check_readiness(&state).await {
        None => json_response(
            StatusCode::OK,
            &HealthBody {
                status: "ok".to_owned(),
            },
        ),
        Some(reason) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server.not_ready", reason)
            .into_response(),
    }
}

/// Versions and digests in force, policies, store, uptime, last reload.
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses(
        (status = 200, description = "The status", body = StatusBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 503, description = "Overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub(crate) async fn status(State(state): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Read)?;
    let ready = check_readiness(&state).await.is_none();
    let environment = state.runtime.environment();
    let trust_root = environment.trust_root();
    let manifest = environment.release_manifest();
    let last_reload = state
        .runtime
        .last_reload()
        .map(|record| match record.outcome {
            Ok(_) => ReloadStatus {
                at: record.at.to_string(),
                outcome: "ok".to_owned(),
                code: None,
                message: None,
            },
            Err((code, message)) => ReloadStatus {
                at: record.at.to_string(),
                outcome: "refused".to_owned(),
                // What the store, the file system or the trust files said can name hosts and
                // paths (a misplaced version's file, say): it went to the server's log, and to
                // the `admin` caller of a reload. Here, to any `read` token, the code alone —
                // also in the moment before the reload's own handler replaces the record.
                message: Some({
                    // The server's own words are kept: a file of its own refused beside an
                    // environment taken (`server.*`), and the files refused beside an
                    // environment refused — what `reload.rs` appends, naming them by code.
                    let files_too = message
                        .rsplit_once("; and ")
                        .map(|(_, files)| files)
                        .filter(|files| files.ends_with(crate::reload::REFUSED_TOO));
                    let said = if code.starts_with("server.") {
                        message.clone()
                    } else if code.starts_with("replay.") {
                        "the replay store refused; what it said is in the server's log".to_owned()
                    } else if code.ends_with(".io") || code.starts_with("io.") {
                        "a file could not be read; which, and why, is in the server's log"
                            .to_owned()
                    } else {
                        format!("refused ({code}); what was refused is in the server's log")
                    };
                    match files_too {
                        Some(files) if !code.starts_with("server.") => {
                            format!("{said}; and {files}")
                        }
                        _ => said,
                    }
                }),
                code: Some(code),
            },
        });
    let body = StatusBody {
        runtime_version: parmana_runtime::RUNTIME_VERSION.to_owned(),
        trust_root: DocumentStatus {
            version: trust_root.version(),
            digest: trust_root.digest().to_string(),
            expires: trust_root.expires().to_string(),
        },
        release_manifest: DocumentStatus {
            version: manifest.version(),
            digest: manifest.digest().to_string(),
            expires: manifest.expires().to_string(),
        },
        policies: manifest
            .policies()
            .keys()
            .map(ToString::to_string)
            .collect(),
        store: state.store_kind.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        ready,
        last_reload,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// Prometheus text exposition (OpenMetrics).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 500, description = "The metrics could not be encoded (a defect: `server.internal`)", body = ErrorBody),
        (status = 503, description = "Never shed, but still unanswered when the shutdown grace ran out (`server.shutting_down`, with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub(crate) async fn metrics(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Read)?;
    check_readiness(&state).await;
    // This route takes no slot of its own (never shed): what is held is other requests'.
    let requests_in_flight = state
        .limits
        .max_concurrency
        .max(1)
        .saturating_sub(state.in_flight.available_permits());
    let documents = || {
        let environment = state.runtime.environment();
        let (trust_root, manifest) = (environment.trust_root(), environment.release_manifest());
        [
            EnvironmentDocument {
                document: "trust_root",
                version: trust_root.version(),
                expires: trust_root.expires(),
            },
            EnvironmentDocument {
                document: "release_manifest",
                version: manifest.version(),
                expires: manifest.expires(),
            },
        ]
    };
    let text = state
        .metrics
        .scrape(documents, requests_in_flight)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                e.to_string(),
            )
        })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// Reload the tokens file, the trust root and release manifest, and the TLS files from disk,
/// each taken or refused on its own: a tokens file refused keeps the tokens in force; an
/// environment refused stays the old one; TLS files refused keep the TLS in force.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "operations",
    responses(
        (status = 200, description = "Reloaded: versions before and after", body = ReloadResponse),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 422, description = "Refused: the environment on disk (rollback, signature, expiry…: the old environment stays, a tokens file and TLS files taken stay taken); or files alone, the environment reloaded (the message names its versions): the tokens file (`server.tokens_invalid`: the tokens in force stay; named first when the TLS files were refused too) or the TLS files (`server.tls_invalid`: the TLS in force stays)", body = ErrorBody),
        (status = 500, description = "The reload task failed (a defect: `server.internal`); the old environment stays in force", body = ErrorBody),
        (status = 503, description = "Starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`: the reload goes on). A store that does not answer does not hold a reload back", body = ErrorBody),
    ),
    security(("bearer" = ["admin"])))]
pub(crate) async fn reload(State(state): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Admin)?;
    // In a task of its own (`request_reload`): a request answered on its timeout (or whose
    // client went away) still has its reload made, as a signal's is — a revocation asked for is
    // never dropped — and requests while one waits for its turn share it.
    let mut outcome = crate::reload::request_reload(&state);
    let report = outcome
        .wait_for(Option::is_some)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "the reload task failed; the old environment stays".to_owned(),
            )
        })?
        .clone()
        .unwrap_or_else(|| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "the reload task failed; the old environment stays".to_owned(),
            ))
        })?;
    Ok(json_response(
        StatusCode::OK,
        &ReloadResponse {
            trust_root: [report.trust_root.0, report.trust_root.1],
            release_manifest: [report.release_manifest.0, report.release_manifest.1],
            policies: report.policies,
        },
    ))
}

/// The OpenAPI 3.1 document of this server, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        (status = 500, description = "The document could not be encoded (a defect: `server.internal`)", body = ErrorBody),
        (status = 503, description = "Overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ))]
pub(crate) async fn openapi() -> Response {
    // Rendered once per process (the document is fixed at build time); each answer shares it.
    match crate::openapi::rendered() {
        Ok(bytes) => {
            let mut response = Response::new(axum::body::Body::from(bytes.clone()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            format!("the OpenAPI document could not be encoded: {error}"),
        )
        .into_response(),
    }
}

/// Any other path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "server.not_found", "no such route")
}

/// A known path with a method it does not take (axum adds `Allow`, naming the methods it does).
pub(crate) async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "server.method_not_allowed",
        format!("this route does not take {method}"),
    )
}

/// A path parameter, or `server.invalid_request` (400) when it does not decode (a
/// percent-encoded byte sequence that is not UTF-8); a route without the parameter is a defect
/// of the router (`server.internal`, 500), not the caller's input.
pub(crate) fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(value)| value)
        .map_err(|rejection| match rejection {
            PathRejection::FailedToDeserializePathParams(_) => {
                ApiError::invalid_request(format!("path: {}", rejection.body_text()))
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                format!("path: {}", other.body_text()),
            ),
        })
}
