//! AuthZEN 1.0 (OpenID Authorization API): the evaluation and evaluations endpoints, the metadata document, and the mapping — subject, action, resource and context flattened into dotted signal names, the answering policy chosen by `resource.type`, its permitting decisions from the server configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parmana_runtime::{
    ExecutionError, ExecutionRequest, Runtime, RuntimeEnvironment, Signals, parse_execution_id,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::{execution_error, parse_body, read_body};
use crate::auth::Scope;
use crate::body::array_exceeds;
use crate::error::{ApiError, MAX_BATCH_ITEMS};
use crate::observe::Outcome;
use crate::state::AppState;
use crate::wire::{ErrorBody, json_response};

mod flatten;
mod mapping;
mod wire;

use flatten::{Declared, Resolved, flattened_names_len, signals_of};
#[cfg(test)]
pub(crate) use flatten::{Flat, FlatError};
pub(crate) use mapping::AuthzenMapping;
pub(crate) use wire::{
    Action, Configuration, Decision, DecisionContext, EvaluationItem, EvaluationRequest,
    EvaluationsOptions, EvaluationsOutcome, EvaluationsRequest, EvaluationsResponse, RefusalDetail,
    Resource, Semantic, Subject,
};

/// The context member that turns an evaluation into an execution.
const EXECUTION_ID_KEY: &str = "execution_id";

/// The most characters of a request's value (a resource type no policy answers) that a refusal
/// repeats: a boxcar's thousand refusals of one long default stay small.
const SHOWN_VALUE_CHARS: usize = 128;

/// Whether a request's `context` asks for an execution (it names `execution_id`, not as `null`:
/// a member a client's serializer writes as `null` is absent, as AuthZEN's JSON considerations
/// and the native API read it).
fn names_execution(context: Option<&Map<String, Value>>) -> bool {
    context
        .and_then(|context| context.get(EXECUTION_ID_KEY))
        .is_some_and(|id| !id.is_null())
}

/// A refused evaluation: the HTTP status and the typed error.
fn refusal(status: StatusCode, code: &str, message: String) -> ApiError {
    ApiError::new(status, code, message)
}

/// Decides one evaluation (executes it when its context names an execution id), and what the
/// request's log line says of it: the policy, the execution id, the policy's decision or the
/// error code. An execution is counted in the metrics as on `POST /v1/executions`. A defect (a
/// panic) refuses this evaluation (`500 server.internal`, naming an execution it may have
/// claimed); the caller decides what that does to a boxcar: refused whole while nothing of it
/// may have been consumed, else the other evaluations, and what they consumed, stand.
fn decide(
    state: &AppState,
    runtime: &Runtime,
    environment: &RuntimeEnvironment,
    request: &Resolved<'_>,
    may_execute: bool,
    log_signals: bool,
) -> (Result<Decision, ApiError>, Outcome) {
    let mut outcome = Outcome::default();
    let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let noted = Noted {
            log_signals,
            outcome: &mut outcome,
        };
        decide_noting(state, runtime, environment, request, may_execute, noted)
    }))
    .unwrap_or_else(|_| {
        tracing::error!(target: "parmana::server", operation = "evaluate", "a runtime call failed");
        if outcome.execution_id.is_some() {
            state.metrics.execution_error("server.internal");
        }
        Err(crate::api::defect(
            "evaluation",
            outcome.execution_id.as_deref(),
            outcome
                .execution_id
                .as_deref()
                .map(|id| state.authzen.execution_location(id)),
        ))
    });
    if let Err(error) = &decided {
        outcome.code = Some(error.code.clone());
    }
    (decided, outcome)
}

/// What a decision notes for its request's log line: its outcome, and its signals where the
/// line will show them (`--log-signals`, and a request of one evaluation: a boxcar's line shows
/// none, so none of its evaluations writes them out).
struct Noted<'o> {
    log_signals: bool,
    outcome: &'o mut Outcome,
}

fn decide_noting(
    state: &AppState,
    runtime: &Runtime,
    environment: &RuntimeEnvironment,
    request: &Resolved<'_>,
    may_execute: bool,
    noted: Noted<'_>,
) -> Result<Decision, ApiError> {
    // The scope first: a token that may not execute learns nothing about the policy or the
    // signals from a request that asks for an execution.
    if request.names_execution() && !may_execute {
        return Err(execute_forbidden());
    }
    decide_checked(state, runtime, environment, request, noted)
}

/// A request that asks for an execution from a token without the `execute` scope.
fn execute_forbidden() -> ApiError {
    refusal(
        StatusCode::FORBIDDEN,
        "server.forbidden",
        "context.execution_id asks for an execution: the token lacks the `execute` scope"
            .to_owned(),
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        &crate::auth::scope_challenge(Scope::Execute),
    )
}

/// Notes, for the request's log line and an answer on its timeout, what a single evaluation
/// resolves to: the policy that answers it and, when it executes, its execution id — each only
/// once checked (a refused id may be as long as the body).
fn note_single(state: &AppState, request: &Resolved<'_>, may_execute: bool) {
    let policy = state
        .authzen
        .answering(&request.resource.kind)
        .map(|answering| &answering.policy);
    let execution_id = request
        .context
        .filter(|_| may_execute)
        .and_then(|context| context.get(EXECUTION_ID_KEY))
        .and_then(Value::as_str)
        .and_then(|id| parse_execution_id(id).ok());
    crate::state::note_request(policy, execution_id.as_ref());
    if let Some(id) = &execution_id {
        crate::state::note_location(state.authzen.execution_location(id.as_str()));
    }
}

/// [`decide_noting`] once the scope allows what the request asks.
/// An evaluation is decided under `environment` (a boxcar's evaluations all under the one it
/// began with); an execution under the environment in force as it runs, as on
/// `POST /v1/executions`.
fn decide_checked(
    state: &AppState,
    runtime: &Runtime,
    environment: &RuntimeEnvironment,
    request: &Resolved<'_>,
    noted: Noted<'_>,
) -> Result<Decision, ApiError> {
    let Noted {
        log_signals,
        outcome,
    } = noted;
    // An execution's refusals are counted as on `POST /v1/executions`: these here, the
    // runtime's where it ran.
    let counted = |error: ApiError| {
        if request.names_execution() {
            state.metrics.execution_error(&error.code);
        }
        error
    };
    let answering = state
        .authzen
        .answering(&request.resource.kind)
        .ok_or_else(|| {
            counted(refusal(
                StatusCode::BAD_REQUEST,
                "server.authzen_no_policy",
                format!(
                    "no policy answers resource type \"{}\"",
                    crate::error::shown(&request.resource.kind, SHOWN_VALUE_CHARS)
                ),
            ))
        })?;
    let policy = answering.policy.to_string();
    outcome.policy = Some(policy.clone());
    let fail = |e: &ExecutionError| {
        let mut api = execution_error(e);
        // AuthZEN's transport knows 400 for a request it cannot decide.
        if api.status == StatusCode::UNPROCESSABLE_ENTITY {
            api.status = StatusCode::BAD_REQUEST;
        }
        api
    };
    // The names the answering policy declares, in the environment that decides (an execution's
    // is the one in force): a member whose shape hides one is refused. A policy that does not
    // load there is refused, as its evaluation would be.
    let in_force;
    let deciding = if request.names_execution() {
        in_force = runtime.environment();
        in_force.as_ref()
    } else {
        environment
    };
    let loaded = deciding
        .policy(&answering.policy)
        .map_err(|e| counted(fail(&e)))?;
    let declared = Declared::of(loaded.policy().signals());
    let (signals, execution_id) = signals_of(request, &declared).map_err(counted)?;
    let signals = Value::Object(signals);
    if log_signals {
        outcome.signals = Some(signals.to_string());
    }
    let signals = Signals::from_value(signals);
    match execution_id {
        None => {
            let evaluation = runtime
                .evaluate_under(environment, &answering.policy, &signals)
                .map_err(|e| fail(&e))?;
            outcome.decision = Some(evaluation.decision.clone());
            Ok(Decision {
                decision: answering.permit.contains(&evaluation.decision),
                context: Some(DecisionContext::Decided {
                    policy,
                    outcome: evaluation.decision,
                    rule_id: evaluation.rule_id,
                    reason: evaluation.reason,
                    execution_id: None,
                    attestation: None,
                }),
            })
        }
        Some(id) => {
            let execution_id = parse_execution_id(&id).map_err(|e| counted(fail(&e)))?;
            outcome.execution_id = Some(execution_id.as_str().to_owned());
            let location = state.authzen.execution_location(execution_id.as_str());
            let request = ExecutionRequest::new(execution_id, answering.policy.clone(), signals);
            let attestation = match state.execute_once(runtime, &request) {
                Ok(attestation) => attestation,
                Err(error) => {
                    state.metrics.execution_error(error.code());
                    let mut api = fail(&error);
                    if crate::api::names_the_execution(&error) {
                        api = api.with_header(header::LOCATION, &location);
                    }
                    return Err(api);
                }
            };
            let predicate = attestation.predicate();
            state.metrics.execution(&predicate.decision);
            outcome.decision = Some(predicate.decision.clone());
            // Nothing after the id is consumed can fail: the attestation is embedded as its
            // canonical bytes are, as on `POST /v1/executions`.
            Ok(Decision {
                decision: answering.permit.contains(&predicate.decision),
                context: Some(DecisionContext::Decided {
                    policy,
                    outcome: predicate.decision.clone(),
                    rule_id: predicate.rule_id.clone(),
                    reason: predicate.reason.clone(),
                    execution_id: Some(id),
                    attestation: Some(attestation.envelope_canonical().clone()),
                }),
            })
        }
    }
}

/// The log line of a request to `/access/v1/evaluations`: without `evaluations`, its one
/// evaluation's own; of a boxcar — however many evaluations it had, or were decided before its
/// semantic stopped it — the execution ids, decisions and error codes as JSON arrays with one
/// entry per evaluation decided, in order (`null` where it has none: an id may hold a comma or
/// look like an array itself, and a list of only the values present would not say whose they
/// are), and the policies that answered, each once, comma-separated (the signals are not
/// logged).
fn boxcar_outcome(outcomes: Vec<Outcome>, boxcar: bool) -> Outcome {
    if !boxcar {
        return outcomes.into_iter().next().unwrap_or_default();
    }
    let each = |field: fn(&Outcome) -> &Option<String>| {
        outcomes.iter().any(|o| field(o).is_some()).then(|| {
            Value::from(outcomes.iter().map(field).cloned().collect::<Vec<_>>()).to_string()
        })
    };
    let mut policies: Vec<&str> = Vec::new();
    for policy in outcomes.iter().filter_map(|o| o.policy.as_deref()) {
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    Outcome {
        execution_id: each(|o| &o.execution_id),
        policy: (!policies.is_empty()).then(|| policies.join(",")),
        decision: each(|o| &o.decision),
        code: each(|o| &o.code),
        signals: None,
    }
}

/// A response carrying the outcome its log line and metrics read.
fn answer(result: Result<Response, ApiError>, outcome: Outcome) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(outcome);
    response
}

/// How many bytes of signal names a boxcar's evaluations may flatten to, in all, per byte of the
/// body limit (8 MiB of names at the default 1 MiB): a name repeats its whole dotted path, so
/// ordinary requests flatten to a few times their JSON; more is refused before anything is
/// decided (`413 server.batch_too_large`).
pub(crate) const FLATTENED_NAMES_PER_BODY_BYTE: usize = 8;

/// How many bytes of JSON a boxcar's evaluations may add up to, each with the top-level defaults
/// it takes, per byte of the body limit (8 MiB at the default 1 MiB). The usual boxcar filters a
/// list for one richly described subject — a kilobyte of subject and context under a thousand
/// short evaluations — and expands to about a megabyte; the evaluations are resolved one at a
/// time, borrowing the defaults, so only one evaluation's signals are held at once. More is
/// refused before anything is decided (`413 server.batch_too_large`).
pub(crate) const EXPANDED_PER_BODY_BYTE: usize = 8;

/// Sets its flag when dropped: held by a boxcar's request future, so that the work on the
/// blocking pool learns that the request was answered or dropped without waiting for it.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A refused evaluation inside a boxcar: `false`, with the error in its context (AuthZEN §7.2.1),
/// and the `Location` the refusal carries, if any.
fn refused_decision(error: &ApiError) -> Decision {
    Decision {
        decision: false,
        context: Some(DecisionContext::Refused {
            error: RefusalDetail {
                status: error.status.as_u16(),
                code: error.code.clone(),
                message: error.message.clone(),
                location: error
                    .headers
                    .iter()
                    .find(|(name, _)| name == header::LOCATION)
                    .and_then(|(_, value)| value.to_str().ok())
                    .map(str::to_owned),
            },
        }),
    }
}

/// The evaluations of a request, taken out of it: each entry of `evaluations` read on its own
/// (one that is not an evaluation object is refused alone: AuthZEN certification c-3-4-1), or —
/// without any (AuthZEN §7.1) — one that takes every member from the top level.
fn items_of(request: &mut EvaluationsRequest) -> Vec<Result<EvaluationItem, ApiError>> {
    match request.evaluations.take() {
        Some(entries) if !entries.is_empty() => entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value(entry).map_err(|e| {
                    ApiError::invalid_request(format!(
                        "evaluation {index}: {}",
                        crate::error::bounded_message(&e)
                    ))
                })
            })
            .collect(),
        _ => vec![Ok(EvaluationItem::default())],
    }
}

/// Evaluation `index` of `request`'s boxcar (`None`: the one evaluation of a request without
/// `evaluations`), each member its own or the top-level default (borrowed).
fn resolve<'a>(
    request: &'a EvaluationsRequest,
    item: &'a EvaluationItem,
    index: Option<usize>,
) -> Result<Resolved<'a>, ApiError> {
    let missing = |member: &str| {
        ApiError::invalid_request(match index {
            Some(index) => {
                format!("evaluation {index}: `{member}` is missing and has no top-level default")
            }
            None => format!("request body: `{member}` is missing"),
        })
    };
    Ok(Resolved {
        subject: item
            .subject
            .as_ref()
            .or(request.subject.as_ref())
            .ok_or_else(|| missing("subject"))?,
        action: item
            .action
            .as_ref()
            .or(request.action.as_ref())
            .ok_or_else(|| missing("action"))?,
        resource: item
            .resource
            .as_ref()
            .or(request.resource.as_ref())
            .ok_or_else(|| missing("resource"))?,
        context: item.context.as_ref().or(request.context.as_ref()),
    })
}

/// The length of `value`'s compact JSON text, counted, not kept.
fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // Every member read from JSON has a JSON form; were one not to, it counts as unbounded.
        Err(_) => usize::MAX,
    }
}

/// How many bytes of JSON the evaluations of `request` add up to once each takes the
/// top-level defaults it lacks: every evaluation's own members, plus each default's size times
/// the number of evaluations that take it (an entry refused as it was read takes none).
/// Computed from the parsed request without copying anything.
fn expanded_size(
    request: &EvaluationsRequest,
    items: &[Result<EvaluationItem, ApiError>],
) -> usize {
    let default = |size: usize, present: bool| if present { 0 } else { size };
    let subject = request.subject.as_ref().map_or(0, json_len);
    let action = request.action.as_ref().map_or(0, json_len);
    let resource = request.resource.as_ref().map_or(0, json_len);
    let context = request.context.as_ref().map_or(0, json_len);
    items.iter().flatten().fold(0usize, |total, item| {
        total
            .saturating_add(json_len(item))
            .saturating_add(default(subject, item.subject.is_some()))
            .saturating_add(default(action, item.action.is_some()))
            .saturating_add(default(resource, item.resource.is_some()))
            .saturating_add(default(context, item.context.is_some()))
    })
}

/// Decide one access request.
#[utoipa::path(
    post, path = "/access/v1/evaluation", tag = "authzen",
    request_body = EvaluationRequest,
    responses(
        (status = 200, description = "The decision", body = Decision),
        (status = 400, description = "Malformed request, no answering policy, or signals the policy refuses", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `evaluate` scope (or `execute`, with context.execution_id)", body = ErrorBody),
        (status = 409, description = "context.execution_id was already used; `Location` names the stored attestation", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout (`server.body_timeout`): nothing was started", body = ErrorBody),
        (status = 413, description = "The body is too large (`server.body_too_large`), or the signals it flattens to pass 1 MiB of JSON (`runtime.request_too_large`)", body = ErrorBody),
        (status = 500, description = "The environment refused (trust), a store whose content no retry mends (`replay.store_corrupt`, …) or a defect; with `context.execution_id`, after the id may have been claimed, `Location` names where the outcome reads back", body = ErrorBody,
            headers(("Location" = String, description = "Where the execution's outcome reads back (a failure after the id may have been claimed)"))),
        (status = 503, description = "Store unavailable (`replay.*`; with `context.execution_id`, `Location` names where the outcome reads back), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["evaluate"]))
)]
pub(crate) async fn evaluation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Evaluate)?;
    let may_execute = state.authorize(&headers, Scope::Execute).is_ok();
    require_json(&headers)?;
    let body = read_body(&state, request, state.limits.max_body_bytes).await?;
    let body_len = body.len();
    let request: EvaluationRequest = state.sized(body_len, move || parse_body(&body)).await?;
    // Flattening costs the names it makes — each leaf's whole dotted path — which a small body
    // can make large: both are counted (without making a name).
    // (A body past the bound alone is not walked here: it leaves the worker anyway.)
    let inline = crate::api::evaluates_inline(false, body_len)
        && crate::api::evaluates_inline(
            false,
            body_len.saturating_add(flattened_names_len(&request.resolved())),
        );
    let executes = names_execution(request.context.as_ref());
    if executes && !may_execute {
        return Err(execute_forbidden());
    }
    // Named on any answer, one on the request's timeout included.
    note_single(&state, &request.resolved(), may_execute);
    let (decided, outcome) = if inline && !executes {
        // One small evaluation is pure and bounded by the policy limits: decided here, on the
        // async worker, as `POST /v1/evaluations` does.
        let started = std::time::Instant::now();
        let runtime = &state.runtime;
        let environment = runtime.environment();
        let decided = decide(
            &state,
            runtime,
            &environment,
            &request.resolved(),
            may_execute,
            state.logging.signals,
        );
        state.metrics.runtime_call("evaluate", started.elapsed());
        decided
    } else {
        // An execution may block on the store, and a large evaluation costs what its body
        // chooses (flattening): the blocking pool.
        let operation = if executes { "execute" } else { "evaluate" };
        let shared = Arc::clone(&state);
        state
            .blocking(operation, move |runtime| {
                decide(
                    &shared,
                    runtime,
                    &runtime.environment(),
                    &request.resolved(),
                    may_execute,
                    shared.logging.signals,
                )
            })
            .await?
    };
    Ok(answer(
        decided.map(|decision| json_response(StatusCode::OK, &decision)),
        outcome,
    ))
}

/// Decide many access requests (boxcarring), with the three evaluation semantics.
#[utoipa::path(
    post, path = "/access/v1/evaluations", tag = "authzen",
    request_body = EvaluationsRequest,
    responses(
        (status = 200, description = "One decision per evaluation, in order (fewer when a short-circuiting semantic stopped early); without `evaluations`, one decision", body = EvaluationsOutcome),
        (status = 400, description = "Malformed request (not JSON, a top-level member of the wrong type, an unknown `evaluations_semantic`, an execution id at the top of a boxcar); without `evaluations`, as /access/v1/evaluation (a member missing, no answering policy, signals the policy refuses). A refused evaluation of a boxcar is inside the `200`", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `evaluate` scope; without `evaluations`, or `execute` with context.execution_id (in a boxcar, that evaluation is refused: `false`)", body = ErrorBody),
        (status = 409, description = "Without `evaluations`: context.execution_id was already used; `Location` names the stored attestation", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the request timeout (`server.body_timeout`): nothing was started", body = ErrorBody),
        (status = 413, description = "The body is too large (`server.body_too_large`), more than 1,000 evaluations, a boxcar that expands past eight times the body limit or whose flattened signal names would pass eight times it (`server.batch_too_large`); without `evaluations`, signals that flatten past 1 MiB of JSON (`runtime.request_too_large`)", body = ErrorBody),
        (status = 500, description = "Without `evaluations`: the environment refused (trust), or a store whose content no retry mends (`replay.store_corrupt`, …); or a defect (`Location` as on the single evaluation). With `evaluations`: the environment expired, or a server-side refusal met while nothing of the boxcar may have been consumed (the boxcar refused whole)", body = ErrorBody,
            headers(("Location" = String, description = "Where the execution's outcome reads back (a failure after the id may have been claimed)"))),
        (status = 503, description = "Starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`); without `evaluations`, store unavailable (`replay.*`)", body = ErrorBody),
    ),
    security(("bearer" = ["evaluate"]))
)]
pub(crate) async fn evaluations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Evaluate)?;
    let may_execute = state.authorize(&headers, Scope::Execute).is_ok();
    require_json(&headers)?;
    let body = read_body(&state, request, state.limits.max_body_bytes).await?;
    let max_body_bytes = state.limits.max_body_bytes;
    let Boxcar {
        request,
        items,
        semantic,
        boxcar,
    } = state
        // Always on the blocking pool: what a boxcar expands to (up to eight times
        // `max_body_bytes`) is not bounded by its body's size, and a boxcar is decided there
        // anyway.
        .blocking("parse", move |_| Boxcar::read(&body, max_body_bytes))
        .await??;
    // Without `evaluations`, the one evaluation is named on any answer, as on
    // /access/v1/evaluation (a boxcar's have a log line of their own).
    if !boxcar
        && let Some(Ok(item)) = items.first()
        && let Ok(resolved) = resolve(&request, item, None)
    {
        note_single(&state, &resolved, may_execute);
    }
    // Timed as an execution when any evaluation may run one (it may wait on the store).
    let executes = may_execute
        && (names_execution(request.context.as_ref())
            || items
                .iter()
                .flatten()
                .any(|item| names_execution(item.context.as_ref())));
    if boxcar && executes {
        crate::state::note_boxcar_executes();
    }
    let operation = if executes { "execute" } else { "evaluate" };
    let shared = Arc::clone(&state);
    // Set when this request's future is dropped before the boxcar is decided — answered on its
    // timeout, its client gone, the shutdown grace over: the evaluations not yet started are
    // then never started, so that no id is consumed for an answer nobody reads (an evaluation
    // already handed to the runtime completes).
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
    let decided = state
        .blocking(operation, move |runtime| {
            // Each evaluation borrows the defaults it takes, and its signals are built when it
            // is decided: one evaluation's signals are held at once, whatever the boxcar's size.
            // One that is not complete (a member missing with no default) or could not be read
            // is refused alone (AuthZEN certification c-3-4-1), as `false`, like any refusal.
            // What refuses every evaluation — the environment expired — refuses the boxcar
            // whole, as it would one evaluation: a 200 always carries decisions.
            // Its evaluations are all decided under the environment it began with, even when a
            // reload swaps another in meanwhile (its executions, each under the one in force as
            // it runs, as on `POST /v1/executions`): the one whose expiry is judged here.
            let environment = runtime.environment();
            if let Err(error) = runtime.check_current_under(&environment) {
                let error = execution_error(&error);
                // Counted as the refused execution it would have been.
                if executes {
                    shared.metrics.execution_error(&error.code);
                }
                return Err(error);
            }
            // The line of a boxcar shows no signals (of one evaluation or many): none is written
            // out for it.
            let log_signals = shared.logging.signals && !boxcar;
            let mut out = Vec::with_capacity(items.len());
            // Whether an evaluation of it has reached for an execution: from then on a refusal
            // stays that evaluation's, so that what was consumed is answered.
            let mut executed = false;
            for (index, item) in items.iter().enumerate() {
                if abandoned.load(Ordering::SeqCst) {
                    tracing::warn!(
                        target: "parmana::server",
                        decided = index,
                        left = items.len() - index,
                        "request answered or dropped before its boxcar was decided: the evaluations left are not started"
                    );
                    break;
                }
                let resolved = item
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|item| resolve(&request, item, boxcar.then_some(index)));
                let (decision, outcome) = match resolved {
                    Ok(resolved) => decide(
                        &shared,
                        runtime,
                        &environment,
                        &resolved,
                        may_execute,
                        log_signals,
                    ),
                    Err(error) => {
                        let outcome = Outcome {
                            code: Some(error.code.clone()),
                            ..Outcome::default()
                        };
                        (Err(error), outcome)
                    }
                };
                // Whether this evaluation may have consumed its id: executed, or refused where
                // its answer names the execution (`Location`: a replay, a failure after the
                // claim, a defect once the id was noted). A refusal before the claim (the store
                // refused, the signer out of its role) consumed nothing.
                executed |= match &decision {
                    Ok(_) => outcome.execution_id.is_some(),
                    Err(error) => error
                        .headers
                        .iter()
                        .any(|(name, _)| *name == header::LOCATION),
                };
                // A server-side refusal (a defect, the environment, the store) while nothing of
                // the boxcar may have been consumed refuses it whole, as on the native batch: not
                // a `200` of refusals that hides it.
                if let Err(error) = &decision
                    && error.status.is_server_error()
                    && !executed
                {
                    return Err(error.clone());
                }
                let permitted = decision.as_ref().is_ok_and(|d| d.decision);
                let stop = match semantic {
                    Semantic::ExecuteAll => false,
                    Semantic::DenyOnFirstDeny => !permitted,
                    Semantic::PermitOnFirstPermit => permitted,
                };
                out.push((decision, outcome));
                if stop {
                    break;
                }
            }
            Ok(out)
        })
        .await??;
    let (decisions, outcomes): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
    let outcome = boxcar_outcome(outcomes, boxcar);
    if boxcar {
        let evaluations = decisions
            .into_iter()
            .map(|decided| decided.unwrap_or_else(|error| refused_decision(&error)))
            .collect();
        Ok(answer(
            Ok(json_response(
                StatusCode::OK,
                &EvaluationsOutcome::Many(EvaluationsResponse { evaluations }),
            )),
            outcome,
        ))
    } else {
        // Without `evaluations`, the request is a single evaluation (AuthZEN §7.1): a refusal
        // is a transport-level error, as on /access/v1/evaluation.
        let decision = decisions
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::invalid_request("the request holds no evaluation"))?;
        Ok(answer(
            decision
                .map(|decision| json_response(StatusCode::OK, &EvaluationsOutcome::One(decision))),
            outcome,
        ))
    }
}

/// A boxcar read and checked before anything of it is decided: its request, its evaluations (each
/// read on its own), its semantic, and whether it is one (an empty `evaluations` is not).
struct Boxcar {
    request: EvaluationsRequest,
    items: Vec<Result<EvaluationItem, ApiError>>,
    semantic: Semantic,
    boxcar: bool,
}

impl Boxcar {
    /// Parses `body` and bounds what it asks for — its count, what it expands to, the signal
    /// names its flattening would build — against `max_body_bytes`; the work a body of that size
    /// chooses, run where [`AppState::sized`] puts it.
    fn read(body: &[u8], max_body_bytes: usize) -> Result<Self, ApiError> {
        // Counted before the body is parsed: the scan stops at evaluation 1,001.
        if array_exceeds(body, "evaluations", MAX_BATCH_ITEMS) {
            return Err(ApiError::batch_too_large());
        }
        let mut request: EvaluationsRequest = parse_body(body)?;
        // Counted again once parsed: the limit never rests on the scan agreeing with the parser.
        if request
            .evaluations
            .as_ref()
            .is_some_and(|evaluations| evaluations.len() > MAX_BATCH_ITEMS)
        {
            return Err(ApiError::batch_too_large());
        }
        let semantic = request
            .options
            .as_ref()
            .and_then(|o| o.evaluations_semantic)
            .unwrap_or_default();
        // An empty `evaluations` is no boxcar: AuthZEN §7.1 ("If an evaluations array is NOT
        // present or is empty, the Access Evaluations Request behaves in a backwards-compatible
        // manner with the (single) Access Evaluation API Request"), so it is decided once, as the
        // top-level request, and answered with one decision.
        let boxcar = request.evaluations.as_ref().is_some_and(|e| !e.is_empty());
        let items = items_of(&mut request);
        // One execution id names one execution: as a default it would be tried by every evaluation
        // (the first executes, the others are replays), so a boxcar takes it only per evaluation.
        if boxcar && names_execution(request.context.as_ref()) {
            return Err(ApiError::invalid_request(
                "context.execution_id at the top of a boxcar would be every evaluation's: give it \
                 in the context of the one evaluation it names",
            ));
        }
        // The work a boxcar asks for is what it expands to: bounded like a body, before anything is
        // resolved or decided. (One evaluation, without `evaluations`, is bounded by its body and
        // while it is flattened, as on /access/v1/evaluation.)
        let expanded = expanded_size(&request, &items);
        let expanded_limit = max_body_bytes.saturating_mul(EXPANDED_PER_BODY_BYTE);
        if boxcar && expanded > expanded_limit {
            return Err(ApiError::batch_expands_too_far(expanded, expanded_limit));
        }
        // And what its flattening would build: the signal names repeat their whole paths. (One
        // evaluation, without `evaluations`, is bounded while it is flattened, as on
        // /access/v1/evaluation: `runtime.request_too_large`.)
        let names = items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                resolve(&request, item.as_ref().ok()?, boxcar.then_some(index)).ok()
            })
            .map(|resolved| flattened_names_len(&resolved))
            .fold(0, usize::saturating_add);
        let names_limit = max_body_bytes.saturating_mul(FLATTENED_NAMES_PER_BODY_BYTE);
        if boxcar && names > names_limit {
            return Err(ApiError::batch_names_too_long(names, names_limit));
        }
        Ok(Self {
            request,
            items,
            semantic,
            boxcar,
        })
    }
}

/// The AuthZEN metadata: where the evaluation endpoints are.
#[utoipa::path(
    get, path = "/.well-known/authzen-configuration", tag = "authzen",
    responses(
        (status = 200, description = "The Policy Decision Point metadata", body = Configuration),
        (status = 400, description = "No `pdp_url` configured and the request's `Host` is absent or not a host (`server.invalid_request`)", body = ErrorBody),
        (status = 404, description = "No policy answers AuthZEN requests here (`server.not_found`)", body = ErrorBody),
        (status = 503, description = "Overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    )
)]
pub(crate) async fn configuration(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A server no policy answers for is no Policy Decision Point: no metadata (AuthZEN §9:
    // the absence of an endpoint tells the PEP the PDP cannot answer).
    if !state.authzen.answers_anything() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "server.not_found",
            "no policy answers AuthZEN requests here ([server.authzen] names none)",
        ));
    }
    let base = match &state.authzen.pdp_url {
        Some(url) => url.clone(),
        None => format!(
            "{}://{}",
            state.scheme,
            request_host(&headers, state.scheme)?
        ),
    };
    // The endpoints under the identifier's path, which may end with `/` (it is kept as given).
    let under = |path: &str| {
        if base.ends_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        }
    };
    let mut response = json_response(
        StatusCode::OK,
        &Configuration {
            access_evaluation_endpoint: under("access/v1/evaluation"),
            access_evaluations_endpoint: under("access/v1/evaluations"),
            policy_decision_point: base,
        },
    );
    // AuthZEN's metadata caching: a client may keep it a while (it changes only with the
    // server's configuration, at a restart).
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static(METADATA_CACHE_CONTROL),
    );
    Ok(response)
}

/// How long a client may keep the AuthZEN metadata.
const METADATA_CACHE_CONTROL: &str = "max-age=300";

/// The AuthZEN metadata of a Policy Decision Point whose identifier has a path: AuthZEN §9.2
/// puts its well-known URL between the host and that path
/// (`https://pdp.example.com/tenant1` → `/.well-known/authzen-configuration/tenant1`). Answered
/// only for the configured `pdp_url`'s own path, byte for byte — or without its trailing `/`,
/// which clients building the URL as RFC 8414 §3.1 does leave out (the bare well-known name, for
/// the root path `/`); any other suffix is `404`.
#[utoipa::path(
    get, path = "/.well-known/authzen-configuration/{pdp_path}", tag = "authzen",
    params(("pdp_path" = String, Path, description = "The path of the configured `pdp_url`, without its leading `/`; it may hold `/` (sent as it is, not percent-encoded: the route takes every segment after the well-known name), and it is empty for a `pdp_url` whose path is the root `/` as written")),
    responses(
        (status = 200, description = "The Policy Decision Point metadata", body = Configuration),
        (status = 404, description = "Not the path of the configured `pdp_url`, or no policy answers AuthZEN requests here (`server.not_found`)", body = ErrorBody),
        (status = 503, description = "Overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    )
)]
pub(crate) async fn configuration_under_path(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asked = uri.path().strip_prefix(WELL_KNOWN);
    let configured = state.authzen.pdp_url.as_deref().and_then(|url| {
        let path = url.parse::<axum::http::Uri>().ok()?.path().to_owned();
        // The root path as written (`https://pdp.example.com/`): §9.2's insertion gives the
        // well-known name and a `/`. An identifier with no path at all has only the bare name.
        (path.len() > 1 || url.ends_with('/')).then_some(path)
    });
    match (asked, configured) {
        (Some(asked), Some(path))
            if asked == path || (path.len() > 1 && asked == path.trim_end_matches('/')) =>
        {
            configuration(State(state), headers).await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "server.not_found",
            "no Policy Decision Point metadata here: the path after the well-known name must be \
             the configured pdp_url's",
        )),
    }
}

/// AuthZEN's well-known metadata path (§9.2).
pub(crate) const WELL_KNOWN: &str = "/.well-known/authzen-configuration";

/// The request's `Host`, when it is a host and port and nothing else (no path, query,
/// fragment or user information can enter the identifier the metadata names); the scheme's
/// default port is left out (`https://pdp.example.com`, not `https://pdp.example.com:443`).
fn request_host(headers: &HeaderMap, scheme: &str) -> Result<String, ApiError> {
    let refuse = |why: &str| {
        ApiError::invalid_request(format!(
            "{why}: the metadata names the endpoints under the request's Host (or configure \
             server.authzen.pdp_url)"
        ))
    };
    let host = headers
        .get(header::HOST)
        .ok_or_else(|| refuse("no Host header"))?
        .to_str()
        .map_err(|_| refuse("a Host header that is not text"))?;
    match host.parse::<axum::http::uri::Authority>() {
        Ok(authority) if !host.contains('@') && !authority.host().is_empty() => {
            let default_port = match scheme {
                "https" => 443,
                _ => 80,
            };
            Ok(if authority.port_u16() == Some(default_port) {
                authority.host().to_owned()
            } else {
                authority.as_str().to_owned()
            })
        }
        _ => Err(refuse(&format!("the Host header {host:?} is not a host"))),
    }
}

/// AuthZEN requests are JSON and say so: `Content-Type: application/json` (parameters such as
/// `charset` allowed); any other type, or none, is `400` (AuthZEN §10.1, certification c-2-4-3).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let media_type = headers.get(header::CONTENT_TYPE).map(|value| {
        // A value that is not visible ASCII is no media type (refused as one).
        value.to_str().map_or("(not visible ASCII)", |value| {
            value.split(';').next().unwrap_or_default().trim()
        })
    });
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(media_type) => Err(ApiError::invalid_request(format!(
            "Content-Type {:?}: AuthZEN requests are application/json",
            parmana_runtime::canon::excerpt(media_type)
        ))),
        None => Err(ApiError::invalid_request(
            "no Content-Type: AuthZEN requests are application/json",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod content_type_tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    /// A `Content-Type` that is not visible ASCII is refused as a media type that is not JSON,
    /// not reported as absent.
    #[test]
    fn a_content_type_that_is_not_visible_ascii_is_named_as_such() {
        let refused = |value: HeaderValue| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value);
            super::require_json(&headers).err().map(|e| e.message)
        };
        assert_eq!(
            refused(HeaderValue::from_static("application/json; charset=utf-8")),
            None
        );
        let opaque = refused(HeaderValue::from_bytes(b"application/json\xff").unwrap());
        assert_eq!(
            opaque.as_deref(),
            Some("Content-Type \"(not visible ASCII)\": AuthZEN requests are application/json")
        );
        assert_eq!(
            super::require_json(&HeaderMap::new())
                .err()
                .map(|e| e.message)
                .as_deref(),
            Some("no Content-Type: AuthZEN requests are application/json")
        );
    }
}
