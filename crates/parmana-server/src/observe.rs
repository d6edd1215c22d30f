//! The middleware every request passes: load shedding (503 + `Retry-After` when the concurrency limit is reached), the per-request timeout, metrics, and one structured log event per request (never the signals unless configured).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::settings::{LogLevel, Logging};
use crate::state::{AnswerHolding, AppState, NOTES, Notes, SLOT, Slot};

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

/// Routes that are never shed: probes must answer under load, and so must the metrics — the
/// alerts on shedding and readiness read them exactly when every slot is taken. None of them
/// can pile work up: `/metrics` needs the `read` scope, and the store probe it and `/readyz`
/// share runs one at a time with its own deadline.
const NEVER_SHED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The log's routes: they hold at most a quarter of the concurrency slots (`AppState::log_in_flight`).
const LOG_ROUTES: [&str; 3] = [
    "/log/checkpoint",
    "/log/tile/{*tile_path}",
    "/v1/executions/{id}/proof",
];

/// Routes answered while the server starts (before leftover claims are recovered): they read
/// no execution and decide nothing (and a path no route serves is still `404`). Every other
/// route is `503 server.not_ready` until then, so that no request claims, reads or decides
/// beside recovery.
const SERVED_WHILE_STARTING: [&str; 9] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/status",
    "/.well-known/authzen-configuration",
    "/.well-known/authzen-configuration/{*pdp_path}",
    "/.well-known/authzen-configuration/",
    "unmatched",
];

/// Whether a request's head says a body follows: a `Content-Length` other than 0, or a
/// `Transfer-Encoding`.
fn has_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// Sheds, times out, measures and logs one request.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = route_label(matched.as_ref().map_or("unmatched", MatchedPath::as_str));
    let method = method_label(request.method());
    let request_id = request.headers().get(REQUEST_ID).cloned();
    let head = head_size(&request);
    let has_body = has_body(request.headers());
    // Who the request's token names, its policy and execution id, as soon as a handler knows
    // them (for the log line, whatever the answer).
    let notes = Arc::new(std::sync::Mutex::new(Notes::default()));
    // Logs and counts the request if its client goes away before the answer (hyper then drops
    // this future, the handler with it).
    let mut abandoned = Abandoned {
        state: Arc::clone(&state),
        route: route.clone(),
        method: method.clone(),
        started,
        notes: Arc::clone(&notes),
        answered: false,
    };
    let mut response = if head > state.limits.max_header_bytes {
        // HTTP/1.1's read buffer (as large as the limit) refuses most such heads before they
        // are parsed, with a bare 431; one that arrived whole in a single read is refused here.
        ApiError::header_too_large(head, state.limits.max_header_bytes).into_response()
    } else if let Some(refused) = state
        .no_auth
        .then(|| crate::auth::refuse_browser_requests(request.headers()).err())
        .flatten()
    {
        // Without authentication, on every route (the public log's and the probes' too): a
        // page rebound to 127.0.0.1 reads nothing.
        refused.into_response()
    } else if !state.is_started() && !SERVED_WHILE_STARTING.contains(&route.as_ref()) {
        ApiError::starting().into_response()
    } else if *state.grace_over.borrow() && !NEVER_SHED.contains(&route.as_ref()) {
        // A request whose head arrived once the shutdown grace ran out (its connection opened
        // before the drain): nothing is started — an execution begun now would outlive the
        // grace — and the caller is told so.
        ApiError::after_the_grace(state.limits.shutdown_grace).into_response()
    } else if NEVER_SHED.contains(&route.as_ref()) {
        let handled = answered_despite_panics(
            NOTES.scope(Arc::clone(&notes), next.run(request)),
            &notes,
            &route,
        );
        tokio::select! {
            biased;
            response = handled => response,
            // Answered as the server's own close, not left to be taken for the client's; the
            // readiness probe's answer is its own, not ready (without `Retry-After`, which a
            // load balancer does not read there).
            () = state.grace_over() => if route == "/readyz" {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server.not_ready",
                    "draining: the shutdown grace ran out before the probe's answer",
                )
                .into_response()
            } else {
                unanswered(&state, &route, &notes, Unanswered::ShuttingDown)
            },
        }
    } else {
        // A log route takes a place of the log's share first, then a slot like any request.
        let log_share = if LOG_ROUTES.contains(&route.as_ref()) {
            Arc::clone(&state.log_in_flight)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ())
        } else {
            Ok(None)
        };
        let slot = match log_share.and_then(|share| {
            Arc::clone(&state.in_flight)
                .try_acquire_owned()
                .map(|permit| (permit, share))
                .map_err(|_| ())
        }) {
            Err(()) => None,
            Ok((permit, log_share)) => {
                // A place of the share every caller may take, or — for a caller that may
                // execute, once it is full — one of the slots kept for executions.
                let shared = Arc::clone(&state.shared_in_flight).try_acquire_owned().ok();
                // Copied: a slice of the connection's read buffer would keep it alive with the
                // slot. Only a lone one: a request with several is refused whatever they hold.
                let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
                let authorization = match (values.next(), values.next()) {
                    (Some(value), None) => HeaderValue::from_bytes(value.as_bytes()).ok(),
                    _ => None,
                };
                Some(Slot::new(permit, log_share, shared, authorization))
                    .filter(|slot| slot.holds_a_shared_place() || slot.may_use_reserve(&state))
            }
        };
        match slot {
            None => {
                state.metrics.shed();
                ApiError::overloaded().into_response()
            }
            Some(slot) => {
                // Shared with the runtime call the request starts (`AppState::blocking`): the
                // slot, and the place of the log's share, are free again only when both are
                // done (a log read that outlives its request's timeout or its client keeps
                // its place).
                let slot = Arc::new(slot);
                let place = slot.body_place();
                let handled = tokio::time::timeout(
                    state.limits.request_timeout,
                    answered_despite_panics(
                        NOTES.scope(Arc::clone(&notes), next.run(request)),
                        &notes,
                        &route,
                    ),
                );
                let answer = tokio::select! {
                    // An answer ready as the grace ends is given, not the 503.
                    biased;
                    answered = SLOT.scope(slot, handled) => match answered {
                        Ok(response) => response,
                        Err(_) => unanswered(&state, &route, &notes, Unanswered::TimedOut),
                    },
                    () = state.grace_over() => unanswered(&state, &route, &notes, Unanswered::ShuttingDown),
                };
                // The request's place in the body budget is given back once its answer is
                // written, not before (a client that does not read it holds its memory there).
                answer.map(|body| axum::body::Body::new(AnswerHolding::new(body, place)))
            }
        }
    };
    // A refusal that can leave the request body unread (shed, timed out, its body too slow or too
    // large, or refused
    // before it was read: no token, or not its scope) ends the connection, as does any answer
    // to a request whose body no handler read to its end (a query or a `Content-Type` refused
    // first, a path no route serves, a route that takes no body); saying so keeps a client from
    // reusing a connection the server is closing.
    let body_unread = has_body && !notes.lock().is_ok_and(|notes| notes.body_read);
    if body_unread
        || matches!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
        )
    {
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
    let mut outcome = response
        .extensions_mut()
        .remove::<Outcome>()
        .unwrap_or_default();
    let notes = notes
        .lock()
        .map(|mut notes| std::mem::take(&mut *notes))
        .unwrap_or_default();
    // A refusal, or an answer on the timeout, names what the handler had noted.
    outcome.policy = outcome.policy.or(notes.policy);
    outcome.execution_id = outcome.execution_id.or(notes.execution_id);
    outcome.signals = outcome.signals.or(notes.signals);
    let caller = notes.caller;
    abandoned.answered = true;
    log_request(
        &state.logging,
        &route,
        &method,
        status,
        elapsed,
        &outcome,
        caller.as_deref(),
    );
    state.metrics.request(route, method, status, elapsed);
    response
}

/// `handled`, with a panic in it — a defect in a handler, on the async worker — answered `500
/// server.internal` (on a route that executes, naming in `Location` the execution the handler
/// had noted; a read names none: it claimed nothing) instead of unwinding into the connection's
/// task, which would reset the connection with the request neither logged nor counted. What the
/// panic said goes to the server's log only.
pub(crate) async fn answered_despite_panics(
    handled: impl std::future::Future<Output = Response>,
    notes: &std::sync::Mutex<Notes>,
    route: &str,
) -> Response {
    use std::task::Poll;
    let mut handled = std::pin::pin!(handled);
    let caught = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handled.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Some(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    })
    .await;
    caught.unwrap_or_else(|| {
        tracing::error!(target: "parmana::server", "a request handler panicked (a defect)");
        let (execution_id, location) = notes
            .lock()
            .ok()
            .filter(|_| EXECUTING_ROUTES.contains(&route))
            .map_or((None, None), |notes| {
                (notes.execution_id.clone(), notes.location.clone())
            });
        crate::api::defect("request", execution_id.as_deref(), location).into_response()
    })
}

/// The status and code a request is logged and counted with when its client closed the
/// connection before the answer (nginx's "client closed request"; no client receives it).
pub(crate) const CLIENT_CLOSED: (u16, &str) = (499, "server.client_closed");

/// A request in [`guard`] until it is answered: dropped before that — its client closed the
/// connection, and hyper dropped the request's future, its handler with it — it logs and counts
/// the request as [`CLIENT_CLOSED`], with what the handler had noted (its policy, its execution
/// id: an execution it started may still complete, and its log line ties the id to the request).
struct Abandoned {
    state: Arc<AppState>,
    route: Cow<'static, str>,
    method: Cow<'static, str>,
    started: Instant,
    notes: Arc<std::sync::Mutex<Notes>>,
    answered: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let elapsed = self.started.elapsed();
        let notes = self
            .notes
            .lock()
            .map(|mut notes| std::mem::take(&mut *notes))
            .unwrap_or_default();
        // Unwinding from a panic in this middleware itself is a defect, not the client's close.
        let (status, code) = if std::thread::panicking() {
            (500, "server.internal")
        } else {
            CLIENT_CLOSED
        };
        let outcome = Outcome {
            execution_id: notes.execution_id,
            policy: notes.policy,
            signals: notes.signals,
            code: Some(code.to_owned()),
            ..Outcome::default()
        };
        log_request(
            &self.state.logging,
            &self.route,
            &self.method,
            status,
            elapsed,
            &outcome,
            notes.caller.as_deref(),
        );
        self.state.metrics.request(
            std::mem::take(&mut self.route),
            std::mem::take(&mut self.method),
            status,
            elapsed,
        );
    }
}

/// Why a request is answered before its handler finished.
#[derive(Debug, Clone, Copy)]
enum Unanswered {
    /// Not answered within `request_timeout`.
    TimedOut,
    /// Still running when the shutdown grace ran out.
    ShuttingDown,
}

/// The routes whose requests may start an execution that outlives their answer.
const EXECUTING_ROUTES: [&str; 3] = [
    "/v1/executions",
    "/access/v1/evaluation",
    "/access/v1/evaluations",
];

/// The answer to a request its handler did not answer in time ([`Unanswered`]). Its runtime
/// call goes on; an execution it started may still complete, so on a route that executes the
/// answer names the execution (`Location`) whenever the handler had noted its id — the only
/// place a client that let the server make the id learns it — and says that nothing was started
/// when none was (no id noted yet). A body that had not arrived when the time ran out is the
/// client's slowness: `408 server.body_timeout`, nothing started.
fn unanswered(
    state: &AppState,
    route: &str,
    notes: &std::sync::Mutex<Notes>,
    why: Unanswered,
) -> Response {
    let (execution_id, reading_body, boxcar_executes, location) =
        notes.lock().map_or((None, false, false, None), |notes| {
            (
                notes.execution_id.clone(),
                notes.reading_body,
                notes.boxcar_executes,
                notes.location.clone(),
            )
        });
    if reading_body && matches!(why, Unanswered::TimedOut) {
        return ApiError::body_timeout(state.limits.request_timeout).into_response();
    }
    let (code, what) = match why {
        Unanswered::TimedOut => (
            "server.timeout",
            format!(
                "no answer within {} ms",
                state.limits.request_timeout.as_millis()
            ),
        ),
        Unanswered::ShuttingDown => (
            "server.shutting_down",
            format!(
                "the server is stopping and its shutdown grace ({} ms) ran out before the answer",
                state.limits.shutdown_grace.as_millis()
            ),
        ),
    };
    let executing = EXECUTING_ROUTES.contains(&route);
    // A boxcar notes no id of its own: each evaluation it carried may have an execution (where
    // one names an id the token may execute).
    let boxcar = route == "/access/v1/evaluations" && !reading_body && boxcar_executes;
    let error = match execution_id.filter(|_| executing) {
        Some(id) => {
            let location = location.unwrap_or_else(|| crate::api::execution_location(&id));
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                format!(
                    "{what}; execution {id:?} may still complete: read its outcome with GET \
                     {location}"
                ),
            )
            .with_header(header::LOCATION, &location)
        }
        None if boxcar => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!(
                "{what}; an evaluation of the boxcar handed to the runtime may still complete: \
                 read each execution id it carried with GET {}/v1/executions/{{id}} before \
                 retrying it",
                state.authzen.path_prefix()
            ),
        ),
        None if route == "/v1/admin/reload" && matches!(why, Unanswered::TimedOut) => {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                format!(
                    "{what}; the reload goes on (its tokens file read as soon as it was asked for): \
                 GET /v1/status tells its outcome (last_reload)"
                ),
            )
        }
        None if executing || reading_body => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("{what}; no execution was started"),
        ),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, what),
    };
    error
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
        .into_response()
}

/// The size of a request's head as HTTP/1.1 writes it: the request line (`METHOD target
/// HTTP/1.1`, the target in the form it came in: origin, absolute or authority), each header as
/// `name: value`, each line with its CRLF, and the blank line. Whitespace the parser trimmed
/// (around header values) is not counted.
fn head_size(request: &Request) -> usize {
    let uri = request.uri();
    let scheme = uri
        .scheme_str()
        .map_or(0, |scheme| scheme.len() + "://".len());
    let authority = uri
        .authority()
        .map_or(0, |authority| authority.as_str().len());
    let path = match uri.path_and_query() {
        Some(target) => target.as_str().len(),
        // An authority-form target (`CONNECT host:443`) has no path.
        None if authority > 0 => 0,
        None => 1,
    };
    let target = scheme + authority + path;
    let line = request.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// The routes the router serves, as metric labels (borrowed, so that counting a request
/// allocates nothing); a path not among them is labelled as given.
const ROUTES: [&str; 19] = [
    "/v1/executions",
    "/v1/executions/{id}",
    "/v1/executions/{id}/proof",
    "/log/checkpoint",
    "/log/tile/{*tile_path}",
    "/v1/evaluations",
    "/v1/verify",
    "/v1/status",
    "/v1/admin/reload",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/access/v1/evaluation",
    "/access/v1/evaluations",
    "/.well-known/authzen-configuration",
    "/.well-known/authzen-configuration/{*pdp_path}",
    "/.well-known/authzen-configuration/",
    "unmatched",
];

fn route_label(route: &str) -> Cow<'static, str> {
    ROUTES.iter().find(|known| **known == route).map_or_else(
        || Cow::Owned(route.to_owned()),
        |known| Cow::Borrowed(*known),
    )
}

/// The method as a metric label and in the log line: the standard methods by name, every other
/// one as `OTHER`. A client may send any token as a method, and each label value is a series
/// `/metrics` keeps for the process's life: labelled as given, a client without a token could
/// grow it without bound.
fn method_label(method: &Method) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    Cow::Borrowed(
        STANDARD
            .iter()
            .find(|known| **known == method.as_str())
            .copied()
            .unwrap_or("OTHER"),
    )
}

fn log_request(
    logging: &Logging,
    route: &str,
    method: &str,
    status: u16,
    elapsed: std::time::Duration,
    outcome: &Outcome,
    caller: Option<&str>,
) {
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    fn field(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or_default()
    }
    let signals = if logging.signals {
        field(&outcome.signals)
    } else {
        ""
    };
    tracing::info!(
        target: "parmana::request",
        route,
        method,
        status,
        latency_us,
        caller = caller.unwrap_or_default(),
        execution_id = field(&outcome.execution_id),
        policy = field(&outcome.policy),
        decision = field(&outcome.decision),
        code = field(&outcome.code),
        signals,
        "request"
    );
}

/// The fields of a text log line: the message, then `name=value` for each field, every one on
/// the line's one line — a control character in any of them (a PostgreSQL error's `DETAIL` on
/// a line of its own, say) is written escaped (`\n`), so a line-based log shipper never splits
/// one event in two, and no value can start a line that looks like another event.
pub(crate) fn text_fields() -> impl for<'writer> tracing_subscriber::fmt::FormatFields<'writer> {
    use std::fmt::Write as _;
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut line = OneLine(writer);
        match field.name() {
            "message" => write!(line, "{value:?}"),
            name => write!(line, "{name}={value:?}"),
        }
    })
    .delimited(" ")
}

/// The text log's subscriber (`--log-format text`): events at `level` and above, each one line
/// ([`text_fields`]) on `writer`.
fn text_subscriber<W>(level: tracing::Level, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(true)
        .fmt_fields(text_fields())
        .finish()
}

/// A writer that escapes every control character it is given (`\n`, `\r`, `\t`, `\u{1b}`).
struct OneLine<'a, W: std::fmt::Write>(&'a mut W);

impl<W: std::fmt::Write> std::fmt::Write for OneLine<'_, W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let control = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", control.escape_default())?;
            rest = &rest[at + control.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Installs the process's log subscriber: events on stderr, text or one JSON object per line.
/// A second call (a test starting two servers in one process) keeps the first.
pub(crate) fn init_logging(logging: &Logging) {
    let level = match logging.level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let installed = if logging.json {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level)
            .with_ansi(false)
            .with_target(true)
            .json()
            .flatten_event(true)
            .try_init()
    } else {
        tracing::subscriber::set_global_default(text_subscriber(level, std::io::stderr))
            .map_err(Into::into)
    };
    // With JSON logs, a panic (a defect) is logged as one JSON event too, not as the default
    // hook's plain text among them.
    if logging.json && installed.is_ok() {
        std::panic::set_hook(Box::new(|panic| {
            // With its backtrace when `RUST_BACKTRACE` asks for one, as the default hook.
            let backtrace = std::backtrace::Backtrace::capture();
            tracing::error!(
                target: "parmana::server",
                panic = %panic,
                backtrace = %backtrace,
                "a thread panicked (a defect)"
            );
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, as name and value.
    type Header = (&'static str, &'static str);

    #[test]
    fn a_head_is_measured_as_http_1_1_writes_it() {
        // (method, target, headers): each compared with the bytes of the same head on the wire.
        let cases: [(&str, &str, &[Header]); 5] = [
            ("GET", "/healthz", &[]),
            (
                "POST",
                "/v1/evaluations?explain=true",
                &[("host", "x"), ("authorization", "Bearer t")],
            ),
            (
                "INVENTED",
                "/",
                &[("x-padding", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")],
            ),
            ("GET", "http://example.com:8080/healthz?x=1", &[]),
            ("CONNECT", "example.com:443", &[]),
        ];
        for (method, target, headers) in cases {
            let mut builder = axum::http::Request::builder().method(method).uri(target);
            let mut wire = format!("{method} {target} HTTP/1.1\r\n");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
                wire.push_str(&format!("{name}: {value}\r\n"));
            }
            wire.push_str("\r\n");
            let request = builder.body(axum::body::Body::empty()).unwrap();
            assert_eq!(head_size(&request), wire.len(), "{wire:?}");
        }
    }

    /// Every text log event is one line: a control character in the message or in any field
    /// (a `%error` given with `Display`, whose text is not quoted) is written escaped, and the
    /// rest of the line is as the default format writes it.
    #[test]
    fn a_text_log_event_is_one_line_whatever_its_fields_hold() {
        #[derive(Clone, Default)]
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Shared::default();
        let writer = written.clone();
        // The subscriber the server installs for text logs.
        let subscriber = text_subscriber(tracing::Level::INFO, move || writer.clone());
        let error = "db error: ERROR: new row violates a check\nDETAIL: Failing row contains (x)";
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("below the level: not written");
            tracing::warn!(
                code = "replay.store_unavailable",
                error = %error,
                count = 3_u64,
                "refused:\r\n\u{1b}[31mforged\tline"
            );
        });
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        // After the time: the level, the target, the message and the fields, on one line.
        let (_, line) = text.split_once(' ').unwrap();
        assert_eq!(
            line,
            " WARN parmana_server::observe::tests: refused:\\r\\n\\u{1b}[31mforged\\tline code=\"replay.store_unavailable\" \
             error=db error: ERROR: new row violates a check\\nDETAIL: Failing row contains (x) \
             count=3\n"
        );
    }

    #[test]
    fn an_invented_method_is_labelled_other() {
        for (method, label) in [("GET", "GET"), ("PATCH", "PATCH"), ("INVENTED", "OTHER")] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(method_label(&method), label);
        }
    }
}
