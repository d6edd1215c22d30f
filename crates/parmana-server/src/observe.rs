//! The middleware every request passes: load shedding (503 + `Retry-After` when the concurrency limit is reached), the per-request timeout, metrics, and one structured log event per request (never the signals unless configured).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::settings::Logging;
use crate::state::AppState;

/// What a handler decided, attached to its response for the log line and metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) execution_id: Option<String>,
    pub(crate) policy: Option<String>,
    pub(crate) decision: Option<String>,
    pub(crate) code: Option<String>,
    /// The signals as received, only when `Logging::signals` is on.
    pub(crate) signals: Option<String>,
}

/// The request identifier header (AuthZEN, "Request Identification"), echoed on the response.
const REQUEST_ID: &str = "x-request-id";

/// Routes that are never shed: probes must answer under load.
const NEVER_SHED: [&str; 2] = ["/healthz", "/readyz"];

/// Sheds, times out, measures and logs one request.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = matched
        .as_ref()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let request_id = request.headers().get(REQUEST_ID).cloned();
    let mut response = if NEVER_SHED.contains(&route.as_str()) {
        next.run(request).await
    } else {
        match Arc::clone(&state.in_flight).try_acquire_owned() {
            Err(_) => {
                state.metrics.shed();
                ApiError::overloaded().into_response()
            }
            Ok(_permit) => {
                match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server.timeout",
                        format!(
                            "no answer within {} ms; an execution may still complete: read its \
                             outcome with GET /v1/executions/{{id}}",
                            state.limits.request_timeout.as_millis()
                        ),
                    )
                    .with_header(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)
                    .into_response(),
                }
            }
        }
    };
    // A refusal that can leave the request body unread (shed, timed out, too large) ends the
    // connection; saying so keeps a client from reusing a connection the server is closing.
    if matches!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::PAYLOAD_TOO_LARGE
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // AuthZEN §10.1.3: a request identifier given is returned, on every route.
    if let Some(request_id) = request_id {
        response.headers_mut().insert(REQUEST_ID, request_id);
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.request(&route, &method, status, elapsed);
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .cloned()
        .unwrap_or_default();
    log_request(&state.logging, &route, &method, status, elapsed, &outcome);
    response
}

fn log_request(
    logging: &Logging,
    route: &str,
    method: &str,
    status: u16,
    elapsed: std::time::Duration,
    outcome: &Outcome,
) {
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    let signals = if logging.signals {
        field(&outcome.signals)
    } else {
        String::new()
    };
    tracing::info!(
        target: "parmana::request",
        route,
        method,
        status,
        latency_us,
        execution_id = field(&outcome.execution_id),
        policy = field(&outcome.policy),
        decision = field(&outcome.decision),
        code = field(&outcome.code),
        signals,
        "request"
    );
}

/// Installs the process's log subscriber: events on stderr, text or one JSON object per line.
/// A second call (a test starting two servers in one process) keeps the first.
pub(crate) fn init_logging(logging: &Logging) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true);
    let _ = if logging.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
