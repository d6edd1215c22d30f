//! `ServerError` (why the server could not start) and `ApiError` (a refused request: HTTP status, stable code, message) with the status mapping of every runtime refusal.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parmana_runtime::{ErrorClass, ExecutionError};

/// Why `parmana serve` refused to start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No bearer token is configured and the server was not told to run without.
    #[error(
        "no bearer tokens are configured: name a tokens file (--tokens), or on a loopback address \
         only, pass --insecure-no-auth or --dev-token"
    )]
    NoTokens,
    /// Running without authentication was asked for on an address that is not loopback.
    #[error("{what} is allowed on a loopback address only, not on {listen}")]
    NotLoopback {
        /// `--insecure-no-auth` or `--dev-token`.
        what: &'static str,
        /// The listen address.
        listen: String,
    },
    /// The tokens file is not what `docs/server.md` describes.
    #[error("tokens file {path}: {message}")]
    TokensInvalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The TLS certificate, key or client CA could not be used.
    #[error("TLS: {0}")]
    TlsInvalid(String),
    /// The AuthZEN mapping is not usable (an unknown policy, an invalid reference).
    #[error("AuthZEN mapping: {0}")]
    AuthzenConfig(String),
    /// A limit outside the range the server can keep.
    #[error("{name} {value}: from {min} to {max}")]
    LimitOutOfRange {
        /// The setting, for example `max_header_bytes`.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The limit on open files is below what `max_connections` needs and cannot be raised:
    /// `accept` would fail at it before the connection limit is reached, and with it every file
    /// the server opens.
    #[error(
        "max_connections and max_concurrency need {needed} open files, and the process may open \
         at most {allowed} ({why}): lower max_connections, or raise the limit (`ulimit -n`, \
         systemd's LimitNOFILE=)"
    )]
    DescriptorLimit {
        /// Descriptors needed: one per connection and per request in flight, and a reserve.
        needed: u64,
        /// The most the process may open.
        allowed: u64,
        /// Why no more: the hard limit, or the system's refusal.
        why: String,
    },
    /// The listen address could not be bound, or serving failed.
    #[error("cannot {action} {address}: {message}")]
    Io {
        /// `bind`, `serve` …
        action: &'static str,
        /// The address.
        address: String,
        /// The operating system's message.
        message: String,
    },
    /// A witness could not be reached, or its answer not read (`parmana log cosign`).
    #[error("witness {url}: {message}")]
    WitnessUnreachable {
        /// The `add-checkpoint` URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// A witness refused to cosign (`parmana log cosign`): its status and answer.
    #[error("the witness refused the checkpoint: HTTP {status}: {message}")]
    WitnessRefused {
        /// The HTTP status.
        status: u16,
        /// The witness's answer.
        message: String,
    },
    /// The runtime refused at start (recovering leftovers).
    #[error("{0}")]
    Runtime(#[from] ExecutionError),
}

impl ServerError {
    /// The signal handlers of a server bound at `address` could not be installed.
    pub(crate) fn signals(address: std::net::SocketAddr, error: &std::io::Error) -> Self {
        Self::Io {
            action: "install the signal handlers of",
            address: address.to_string(),
            message: error.to_string(),
        }
    }

    /// The stable code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTokens => "server.no_tokens",
            Self::NotLoopback { .. } => "server.not_loopback",
            Self::TokensInvalid { .. } => "server.tokens_invalid",
            Self::TlsInvalid(_) => "server.tls_invalid",
            Self::AuthzenConfig(_) => "server.authzen_config",
            Self::LimitOutOfRange { .. } => "server.limit_out_of_range",
            Self::DescriptorLimit { .. } => "server.descriptor_limit",
            Self::Io { .. } => "server.io",
            Self::WitnessUnreachable { .. } => "server.witness_unreachable",
            Self::WitnessRefused { .. } => "server.witness_refused",
            Self::Runtime(error) => error.code(),
        }
    }

    /// The runtime class of this failure (for the CLI's exit code).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Runtime(error) => error.class(),
            Self::Io { .. } | Self::WitnessUnreachable { .. } => ErrorClass::Io,
            Self::WitnessRefused { .. } => ErrorClass::Trust,
            _ => ErrorClass::InvalidInput,
        }
    }
}

/// A refused request: the HTTP status, the stable code and a one-line message, sent as
/// `{"error": {"code", "message"}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    /// Extra headers: `Location` of a stored attestation, `Retry-After`, `WWW-Authenticate`.
    pub(crate) headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The most evaluations one request may carry (a native `batch`, an AuthZEN boxcar): more are
/// refused before any is decided (`413 server.batch_too_large`).
pub(crate) const MAX_BATCH_ITEMS: usize = 1_000;

/// Seconds a client is asked to wait before retrying a shed or pending request.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// A request body that is not what the route takes (`server.invalid_request`, 400).
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "server.invalid_request", message)
    }

    /// A request carrying more than [`MAX_BATCH_ITEMS`] evaluations (counted no further).
    pub(crate) fn batch_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.batch_too_large",
            format!("more than the {MAX_BATCH_ITEMS} evaluations allowed in one request: split it"),
        )
    }

    /// An AuthZEN boxcar whose evaluations, each with the top-level defaults it takes, add up
    /// to `size` bytes of JSON, more than `limit` (eight times the body limit): refused before
    /// any is resolved.
    pub(crate) fn batch_expands_too_far(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.batch_too_large",
            format!(
                "the evaluations, each with the top-level defaults it takes, add up to {size} \
                 bytes, more than the {limit} allowed (eight times the body limit): split the \
                 boxcar, or give a large member only to the evaluations that need it"
            ),
        )
    }

    /// A boxcar whose evaluations would flatten to more signal-name bytes than `limit`.
    pub(crate) fn batch_names_too_long(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "server.batch_too_large",
            format!(
                "the evaluations would flatten to {size} bytes of signal names (each repeating \
                 its whole dotted path), more than the {limit} allowed: split the boxcar, or use \
                 shorter keys or flatter members"
            ),
        )
    }

    /// `431`: a request head (request line and headers) over `max_header_bytes`.
    pub(crate) fn header_too_large(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "server.header_too_large",
            format!("a request head of {size} bytes, more than the {limit} allowed"),
        )
    }

    /// A request that arrived once the shutdown grace ran out: `503`, nothing started.
    pub(crate) fn after_the_grace(grace: std::time::Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.shutting_down",
            format!(
                "the server is stopping and its shutdown grace ({} ms) ran out before the \
                 request arrived: nothing was started; retry on another server",
                grace.as_millis()
            ),
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
    }

    /// Too many requests, or request bodies, in flight: shed with 503 and `Retry-After`.
    pub(crate) fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.overloaded",
            "too many requests or request bodies in flight; retry later",
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
    }

    /// A request whose body did not arrive within the request timeout: `408`, nothing started
    /// (the client was too slow to send it; the connection is closed, the body unread).
    pub(crate) fn body_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "server.body_timeout",
            format!(
                "the request body did not arrive within {} ms; nothing was started",
                timeout.as_millis()
            ),
        )
    }

    /// A request that needs the runtime, before leftover claims are recovered: refused with
    /// 503 and `Retry-After`, so that no request claims an id recovery is completing.
    pub(crate) fn starting() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.not_ready",
            "starting: recovering leftover claims; retry later",
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
    }

    /// A refusal of the runtime, with the status its code and class call for. The store's and
    /// the file system's own words — which can name hosts, users, databases and paths — go to
    /// the server's log, not to the caller (perhaps anonymous, on a public log), who is told the
    /// code ([`withheld_message`]), as `/readyz` and `/v1/status` tell it.
    pub(crate) fn from_execution(error: &ExecutionError) -> Self {
        let code = error.code();
        let status = status_of(error);
        let message = match withheld_message(error) {
            Some(message) => {
                // At most one a second at WARN (an outage refuses every request, a boxcar up to
                // a thousand evaluations), with the count of those since the line before; the
                // others at DEBUG.
                if let Some(withheld_since_last_line) = warn_now() {
                    tracing::warn!(
                        target: "parmana::server",
                        code,
                        error = %error,
                        withheld_since_last_line,
                        "a request was refused: the replay store or a file failed (the caller is \
                         told the code only)"
                    );
                } else {
                    tracing::debug!(
                        target: "parmana::server",
                        code,
                        error = %error,
                        "a request was refused: the replay store or a file failed"
                    );
                }
                message
            }
            // Bounded however long what the caller sent and the error quotes.
            None => bounded_message_within(error, MAX_REFUSAL_MESSAGE_CHARS),
        };
        let mut api = Self::new(status, code, message);
        // Overload, an unavailable store and an execution the sequencer has not integrated
        // yet are worth asking again.
        if status == StatusCode::SERVICE_UNAVAILABLE || code == "runtime.not_yet_sequenced" {
            api = api.with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS);
        }
        api
    }

    /// The error body, `{"error": {"code", "message"}}`.
    pub(crate) fn body(&self) -> crate::wire::ErrorBody {
        crate::wire::ErrorBody {
            error: crate::wire::ErrorDetail {
                code: self.code.clone(),
                message: self.message.clone(),
            },
        }
    }
}

/// Whether a withheld refusal is logged at WARN now: the first one in each second of the
/// process's life (the others at DEBUG), so that an outage does not double the log. `Some`
/// with how many were logged at DEBUG only since the last WARN line, which says so.
fn warn_now() -> Option<u64> {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    static WITHHELD: OncePerSecond = OncePerSecond::new();
    WITHHELD.due(
        STARTED
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs(),
    )
}

/// The first event of each second, and how many came since the one before.
struct OncePerSecond {
    last_second: std::sync::atomic::AtomicU64,
    since_last: std::sync::atomic::AtomicU64,
}

impl OncePerSecond {
    const fn new() -> Self {
        Self {
            last_second: std::sync::atomic::AtomicU64::new(u64::MAX),
            since_last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)` for the first event in `second` (`n` events came between it and the one
    /// before it was given `Some`), `None` for the others.
    fn due(&self, second: u64) -> Option<u64> {
        use std::sync::atomic::Ordering;
        if self.last_second.swap(second, Ordering::Relaxed) == second {
            self.since_last.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.since_last.swap(0, Ordering::Relaxed))
    }
}

/// Outside text (a witness's answer, a value of a request) as a message shows it: its first
/// `chars` characters, with `…` where there were more, and line ends and other control
/// characters escaped (it must not forge log lines), with the Unicode line and paragraph
/// separators and direction marks that would break a line or reorder how it reads, and `"` and
/// `\` (so that it reads unambiguously between quotes).
pub(crate) fn shown(text: &str, chars: usize) -> String {
    let mut shown: String = text
        .chars()
        .take(chars)
        .flat_map(|c| {
            if matches!(c, '"' | '\\') || breaks_a_line(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().nth(chars).is_some() {
        shown.push('…');
    }
    shown
}

/// Control characters, and the Unicode line and paragraph separators and direction marks that
/// would break a log line or reorder how it reads.
fn breaks_a_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// How many characters of a library's error message a caller is told.
pub(crate) const MAX_LIBRARY_MESSAGE_CHARS: usize = 512;

/// A library's error message as a caller is told it: serde's repeats a refused value whole (a
/// string given where an object belongs, escaped to several times its size), so the text kept
/// stops after [`MAX_LIBRARY_MESSAGE_CHARS`] characters — the answer bounded whatever the value
/// (serde made its whole message when it failed; that is dropped with the error) — with `…`
/// where there was more, and what would break or reorder a log line escaped.
pub(crate) fn bounded_message(error: &impl std::fmt::Display) -> String {
    bounded_message_within(error, MAX_LIBRARY_MESSAGE_CHARS)
}

/// How many characters of a runtime refusal's message a caller is told: room for the signal
/// problems a refusal lists (at most `MAX_REPORTED_SIGNAL_PROBLEMS`, each quoting at most 128
/// characters of the caller's), never megabytes.
pub(crate) const MAX_REFUSAL_MESSAGE_CHARS: usize = 8_192;

/// [`bounded_message`], cut at `max_chars` (`parmana_runtime::canon::bounded_display`: the formatting
/// stops there), what would break or reorder a log line escaped.
pub(crate) fn bounded_message_within(error: &impl std::fmt::Display, max_chars: usize) -> String {
    let bounded = parmana_runtime::canon::bounded_display(error, max_chars);
    if !bounded.chars().any(breaks_a_line) {
        return bounded;
    }
    let mut escaped = String::with_capacity(bounded.len());
    for c in bounded.chars() {
        if breaks_a_line(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// What the caller is told of a refusal whose own message the server's log keeps: a store or
/// a file that failed (`None` for every other refusal, whose message is the caller's).
pub(crate) fn withheld_message(error: &ExecutionError) -> Option<String> {
    withheld_message_of(error.code(), error.class())
}

/// [`withheld_message`] for a refusal known by its code and class: the same words wherever a
/// refusal is told — an answer, or `/v1/status`'s record of the last reload.
pub(crate) fn withheld_message_of(code: &str, class: ErrorClass) -> Option<String> {
    // The log anchor is a file of the server's: its refusals name its path.
    if code == "runtime.log_anchor_invalid" {
        return Some(format!(
            "the log anchor could not be used ({code}); the server's log says why"
        ));
    }
    match class {
        ErrorClass::Store => Some(format!(
            "the replay store failed ({code}); the server's log says why"
        )),
        ErrorClass::Io => Some(format!(
            "a file could not be read or written ({code}); the server's log says which and why"
        )),
        _ => None,
    }
}

/// Store refusals that no retry helps: what the store holds is not what Parmana wrote (a
/// record or the ledger changed, the marks reset, a store file linked twice or replaced under the
/// server), or the store as configured refuses what the server asks (`replay.invalid_configuration`:
/// a right revoked, a pooler dropping the session's settings, a SQLite file made unwritable, a
/// write on a connection opened before the database was switched to read-only). `500`, not
/// `503`: the store must be repaired or reconfigured first. (A schema, or a claim record, this
/// version does not read stays `503`: during a rolling upgrade a newer server of the deployment
/// answers.)
const STORE_INTEGRITY: [&str; 6] = [
    "replay.store_corrupt",
    "replay.ledger_broken",
    "replay.marks_reset",
    "replay.store_multiple_links",
    "replay.store_replaced",
    "replay.invalid_configuration",
];

/// The HTTP status of a runtime refusal (`docs/server.md`, "Errors"): malformed requests 400,
/// too large 413, policy and signals 422, replay 409, store 503 (500 for a store whose content
/// no retry mends), trust and defects 500.
pub(crate) fn status_of(error: &ExecutionError) -> StatusCode {
    let code = error.code();
    // The log: a tile past the tree or an execution not (yet) in it is not there.
    match code {
        "tile.beyond_tree" | "runtime.not_in_log" | "runtime.not_yet_sequenced" => {
            return StatusCode::NOT_FOUND;
        }
        "tile.entry_too_large" => return StatusCode::INTERNAL_SERVER_ERROR,
        _ if STORE_INTEGRITY.contains(&code) => return StatusCode::INTERNAL_SERVER_ERROR,
        // Another server of the deployment reloaded first: this one, once reloaded, or another,
        // answers.
        "runtime.environment_behind" => return StatusCode::SERVICE_UNAVAILABLE,
        _ => {}
    }
    match error.class() {
        ErrorClass::InvalidInput => {
            if code == "runtime.request_too_large" {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if code.starts_with("policy.") || code == "runtime.policy_not_found" {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            }
        }
        ErrorClass::Replay => StatusCode::CONFLICT,
        ErrorClass::Store => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Trust | ErrorClass::Io | ErrorClass::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = crate::wire::json_response(self.status, &self.body());
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(crate::observe::Outcome {
            code: Some(self.code),
            ..crate::observe::Outcome::default()
        });
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use parmana_runtime::canon::Timestamp;
    use parmana_runtime::canon::tile::TileError;
    use parmana_runtime::parse_execution_id;
    use parmana_runtime::replay::ReplayError;

    use super::*;

    /// Outside text shown: cut to its characters, on one line, quotes and backslashes escaped.
    #[test]
    fn outside_text_is_shown_bounded_on_one_line_and_unambiguous() {
        assert_eq!(shown("a\"b\\c\nd", 100), "a\\\"b\\\\c\\nd");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("abc", 3), "abc");
    }

    /// The first withheld refusal of each second is due, with how many came between it and the
    /// one due before: none is left uncounted at the default level.
    #[test]
    fn a_withheld_refusal_is_logged_once_a_second_with_the_count_since() {
        let throttle = OncePerSecond::new();
        let seen: Vec<Option<u64>> = [0, 0, 0, 1, 3, 3, 3, 3, 4]
            .into_iter()
            .map(|second| throttle.due(second))
            .collect();
        assert_eq!(
            seen,
            [
                Some(0),
                None,
                None,
                Some(2),
                Some(0),
                None,
                None,
                None,
                Some(3)
            ]
        );
    }

    /// One refusal of each kind the routes pass on, and the status `docs/server.md` ("Errors")
    /// gives it: input is never a 500, replay is 409, a store that fails is 503 with
    /// `Retry-After`, trust and defects are 500, and what is not (yet) in the log is 404.
    #[test]
    fn each_class_of_refusal_answers_its_status() {
        let at = Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
        let cases: Vec<(ExecutionError, u16, Option<&str>)> = vec![
            (parse_execution_id("").unwrap_err(), 400, None),
            (parse_execution_id("a b").unwrap_err(), 400, None),
            (
                ExecutionError::RequestTooLarge {
                    size: 2 << 20,
                    limit: 1 << 20,
                },
                413,
                None,
            ),
            (
                ExecutionError::PolicyNotFound {
                    policy: "nowhere@1.0.0".to_owned(),
                    reason: "release manifest version 1 does not list it".to_owned(),
                },
                422,
                None,
            ),
            (
                ExecutionError::ReplayDetected {
                    execution_id: "claim-1".to_owned(),
                },
                409,
                None,
            ),
            (
                ExecutionError::Store(ReplayError::Unavailable {
                    message: "connection refused".to_owned(),
                }),
                503,
                Some(RETRY_AFTER_SECONDS),
            ),
            (
                ExecutionError::Expired {
                    document: "trust root",
                    expires: at,
                    now: at,
                },
                500,
                None,
            ),
            (ExecutionError::NoStore, 503, Some(RETRY_AFTER_SECONDS)),
            // The store refuses what the server asks as configured: no retry mends it.
            (
                ExecutionError::Store(ReplayError::InvalidConfiguration {
                    message: "permission denied for table executions".to_owned(),
                }),
                500,
                None,
            ),
            (
                ExecutionError::Store(ReplayError::Corrupt {
                    message: "a record that is not Parmana's".to_owned(),
                }),
                500,
                None,
            ),
            (
                ExecutionError::NotInLog {
                    execution_id: "claim-1".to_owned(),
                    reason: "never completed".to_owned(),
                },
                404,
                None,
            ),
            (
                ExecutionError::NotYetSequenced {
                    execution_id: "claim-1".to_owned(),
                },
                404,
                Some(RETRY_AFTER_SECONDS),
            ),
            (
                ExecutionError::Tile(TileError::BeyondTree {
                    path: "tile/0/001".to_owned(),
                    size: 3,
                }),
                404,
                None,
            ),
        ];
        for (error, status, retry_after) in cases {
            let api = ApiError::from_execution(&error);
            assert_eq!(api.status.as_u16(), status, "{}: {error}", error.code());
            assert_eq!(api.code, error.code());
            let retry = api
                .headers
                .iter()
                .find(|(name, _)| name == header::RETRY_AFTER)
                .map(|(_, value)| value.to_str().unwrap());
            assert_eq!(retry, retry_after, "{}", error.code());
            if error.class() == ErrorClass::InvalidInput {
                assert!(api.status.is_client_error(), "{}", error.code());
            }
        }
    }

    /// A store's or a file's own words (hosts, users, databases, paths) never reach the
    /// caller: the code does, the rest goes to the server's log. Every other refusal keeps its
    /// message.
    #[test]
    fn the_store_and_file_system_words_stay_in_the_log() {
        let secret = "postgres://admin:secret@db.internal/parmana: password authentication failed";
        let withheld = [
            ExecutionError::Store(ReplayError::Unavailable {
                message: secret.to_owned(),
            }),
            ExecutionError::Store(ReplayError::Corrupt {
                message: secret.to_owned(),
            }),
            ExecutionError::io(
                "read",
                std::path::Path::new("/srv/db.internal/secret/trust-root.json"),
                &std::io::Error::other("permission denied"),
            ),
        ];
        for error in withheld {
            let api = ApiError::from_execution(&error);
            assert_eq!(api.code, error.code());
            assert!(
                !api.message.contains("secret") && !api.message.contains("db.internal"),
                "{}",
                api.message
            );
            assert!(api.message.contains(error.code()), "{}", api.message);
            assert!(api.message.contains("server's log"), "{}", api.message);
        }
        let kept = ExecutionError::PolicyNotFound {
            policy: "nowhere@1.0.0".to_owned(),
            reason: "release manifest version 1 does not list it".to_owned(),
        };
        assert_eq!(ApiError::from_execution(&kept).message, kept.to_string());
    }
}
