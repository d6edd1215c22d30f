//! A C2SP `tlog-witness` over HTTP (`parmana log witness --serve`): `POST /add-checkpoint` cosigns a checkpoint of the trust root's log that extends the last one it cosigned, whose record survives restarts (written, synced and renamed into place before the answer); and the client side a log uses to submit to a witness.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use parmana_runtime::canon::Digest;
use parmana_runtime::trust::{
    LocalSigningKey, MAX_ADD_CHECKPOINT_BYTES, NoteKeyName, VerifiedTrustRoot,
};
use parmana_runtime::{
    Clock, ExecutionError, LockedWitnessState, WitnessStateOpen, check_witness_state,
    read_witness_state, witness_add_checkpoint,
};

use crate::connections::Limited;
use crate::error::ServerError;
use crate::settings::DEFAULT_MAX_CONNECTION_AGE;

/// The media type of a witness's `409` body: the size it cosigned last.
pub const TLOG_SIZE_MEDIA_TYPE: &str = "text/x.tlog.size";

/// What a witness is started with.
pub struct WitnessSettings {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The witness's name (its cosigner key name).
    pub name: NoteKeyName,
    /// The witness's key.
    pub signer: Arc<LocalSigningKey>,
    /// The file holding the last checkpoint it cosigned: it must be there, and hold a
    /// checkpoint of the log with this witness's own cosignature — unless `new_state`.
    pub state: PathBuf,
    /// A new witness (`--new-state`): there must be no state file yet; the first cosignature
    /// makes it. (A witness that lost its state would otherwise cosign forks of what it
    /// cosigned before.)
    pub new_state: bool,
    /// The trust root whose `log` role names the log witnessed and its keys.
    pub trust_root: VerifiedTrustRoot,
    /// The clock of the cosignatures' timestamps.
    pub clock: Arc<dyn Clock>,
    /// How long a connection may take to send a complete request head (from when it opens or
    /// from its previous answer) before it is closed; within `idle_timeout_ms`'s range of
    /// [`LIMIT_RANGES`](crate::LIMIT_RANGES).
    pub idle_timeout: Duration,
    /// How long one request may take, its body's arrival included, before it is answered `503`
    /// (`Retry-After`, the connection closed); within `request_timeout_ms`'s range.
    pub request_timeout: Duration,
}

/// The most connections a witness holds open at once; more are closed when accepted.
pub(crate) const WITNESS_MAX_CONNECTIONS: usize = 1024;
/// The most `add-checkpoint` requests a witness handles at once (each waits for the state
/// file's lock and its sync); more are refused with `503` and `Retry-After`.
pub(crate) const WITNESS_MAX_IN_FLIGHT: usize = 16;
/// The most reads of its checkpoint (`GET /<origin hash>/checkpoint`, which needs no token) a
/// witness makes at once, apart from `add-checkpoint`'s places; more are refused with `503` and
/// `Retry-After`.
pub(crate) const WITNESS_MAX_READS: usize = 16;
/// The largest request head a witness reads (its requests carry a few short headers).
pub(crate) const WITNESS_MAX_HEAD_BYTES: usize = 16 * 1024;

impl std::fmt::Debug for WitnessSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessSettings")
            .field("listen", &self.listen)
            .field("name", &self.name)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

struct Witness {
    settings: WitnessSettings,
    /// `add-checkpoint` requests in flight: a permit each; none left means `503`.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Reads of the checkpoint in flight: a permit each; none left means `503`.
    reads_in_flight: Arc<tokio::sync::Semaphore>,
    /// Requests of this process take turns at the state (the state file's lock orders them with
    /// other processes): two cannot both pass the check against one state (C2SP's rollback
    /// race).
    turn: Mutex<()>,
    /// Whether this process has seen its state (written it, or found it written by another
    /// witness process): a new witness (`--new-state`) may find none only until then.
    seen_state: AtomicBool,
}

/// How a witness opens its state: at its start (`started`: false) as new when it is a new
/// witness (`new_state`); after it, as possibly still missing only while a new witness has not
/// seen its state yet (`seen`: written by it, or found written by another witness process).
fn state_open(new_state: bool, started: bool, seen: bool) -> WitnessStateOpen {
    match (new_state, started, seen) {
        (true, false, _) => WitnessStateOpen::New,
        (true, true, false) => WitnessStateOpen::NewOrWritten,
        _ => WitnessStateOpen::Existing,
    }
}

/// A bound witness, not yet serving.
#[derive(Debug)]
pub struct WitnessServer {
    witness: Arc<Witness>,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings.fmt(f)
    }
}

impl WitnessServer {
    /// Checks that the trust root names a log, reads the state (a state file that is not a
    /// checkpoint refuses to start) and binds the listen address.
    pub fn bind(settings: WitnessSettings) -> Result<Self, ServerError> {
        for (name, timeout) in [
            ("idle_timeout_ms", settings.idle_timeout),
            ("request_timeout_ms", settings.request_timeout),
        ] {
            let value = usize::try_from(timeout.as_millis()).unwrap_or(usize::MAX);
            if let Some((_, min, max)) = crate::LIMIT_RANGES
                .iter()
                .find(|(limit, ..)| *limit == name)
                .filter(|(_, min, max)| !(*min..=*max).contains(&value))
            {
                return Err(ServerError::LimitOutOfRange {
                    name,
                    value,
                    min: *min,
                    max: *max,
                });
            }
        }
        // Its connections need their file descriptors, as the server's do, and each request in
        // flight (a cosigning or a read of the state) one more: the soft limit is raised as far
        // as the hard one lets it (its connection count is fixed: a low hard limit holds fewer,
        // as before, rather than refusing the start).
        crate::descriptors::raise_toward(&crate::Limits {
            max_connections: WITNESS_MAX_CONNECTIONS,
            max_concurrency: WITNESS_MAX_IN_FLIGHT + WITNESS_MAX_READS,
            ..crate::Limits::default()
        });
        if settings.trust_root.log().is_none() {
            return Err(ServerError::Runtime(ExecutionError::NoTransparencyLog {
                trust_root_version: settings.trust_root.version(),
            }));
        }
        // A state missing (unless new), present where a new one was asked for, reached by a
        // link, writable by others, or not this witness's checkpoint of this log refuses the
        // start.
        let state = LockedWitnessState::lock(
            &settings.state,
            state_open(settings.new_state, false, false),
        )
        .map_err(ServerError::Runtime)?;
        if let Some(state) = state.state() {
            check_witness_state(
                state,
                &settings.trust_root,
                &settings.name,
                settings.signer.as_ref(),
            )
            .map_err(ServerError::Runtime)?;
        }
        drop(state);
        let listen = settings.listen.to_string();
        let bind_error = |e: std::io::Error| ServerError::Io {
            action: "bind",
            address: listen.clone(),
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(settings.listen).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            witness: Arc::new(Witness {
                settings,
                in_flight: Arc::new(tokio::sync::Semaphore::new(WITNESS_MAX_IN_FLIGHT)),
                reads_in_flight: Arc::new(tokio::sync::Semaphore::new(WITNESS_MAX_READS)),
                turn: Mutex::new(()),
                seen_state: AtomicBool::new(false),
            }),
            listener,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGTERM or SIGINT. `announce` is called once those signals are the
    /// witness's, before anything is served (where `parmana log witness` prints
    /// `listening on`); when it returns `false`, nothing is served.
    pub fn run(self, announce: impl FnOnce() -> bool) -> Result<(), ServerError> {
        let address = self.local_addr.to_string();
        let io = |e: std::io::Error| ServerError::Io {
            action: "serve",
            address: address.clone(),
            message: e.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io)?;
        runtime.block_on(async move {
            let stopped = stopped().map_err(|e| ServerError::signals(self.local_addr, &e))?;
            if !announce() {
                return Ok(());
            }
            crate::observe::init_logging(&crate::settings::Logging::default());
            crate::descriptors::log_raise();
            let idle_timeout = self.witness.settings.idle_timeout;
            let request_timeout = self.witness.settings.request_timeout;
            let app = Router::new()
                .route("/add-checkpoint", post(add_checkpoint))
                .route("/{origin_hash}/checkpoint", get(latest_checkpoint))
                .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_BYTES))
                .layer(axum::middleware::from_fn(move |request, next| {
                    bounded(request_timeout, request, next)
                }))
                .with_state(self.witness);
            // Bounded as `parmana serve` is: HTTP/1.1 only, a connection that sends no request
            // head within the idle timeout closed, at most WITNESS_MAX_CONNECTIONS held.
            let handle: Handle<SocketAddr> = Handle::new();
            // Logged as `parmana serve` logs them (the witness exports no metrics).
            let accept_failures = crate::connections::AcceptFailures::new(
                prometheus_client::metrics::counter::Counter::default(),
            );
            let mut server = axum_server::from_tcp(self.listener)
                .map_err(io)?
                .handle(handle.clone())
                .http1_only()
                .accept_error_handler(move |peer: Option<&SocketAddr>, error: &std::io::Error| {
                    if peer.is_none() {
                        accept_failures.record(error);
                    }
                });
            server
                .http_builder()
                .http1()
                .max_buf_size(WITNESS_MAX_HEAD_BYTES)
                .header_read_timeout(idle_timeout);
            let connections = Arc::new(tokio::sync::Semaphore::new(WITNESS_MAX_CONNECTIONS));
            let signals = tokio::spawn(async move {
                stopped.await;
                handle.graceful_shutdown(Some(request_timeout));
            });
            let served = server
                .acceptor(
                    Limited::new(DefaultAcceptor, connections, idle_timeout)
                        .retired_after(DEFAULT_MAX_CONNECTION_AGE),
                )
                .serve(app.into_make_service())
                .await;
            signals.abort();
            served.map_err(io)
        })
    }
}

/// Installs the handlers of SIGTERM and SIGINT (inside the tokio runtime): a future that
/// resolves on either.
fn stopped() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Where a checkpoint the log's keys signed has another root than the one this witness cosigned
/// at the same size, the witness's log keeps both, as evidence that the log signed two
/// histories: the party refused (the log itself, perhaps) may drop the answer, the witness's
/// operator sees this line. Both are signed notes, bounded by the request's and the state's
/// limits. (A proof that does not lead from the witness's checkpoint is not such evidence: anyone
/// can send a genuine checkpoint with a wrong proof.)
fn log_fork_evidence(error: &ExecutionError, cosigned: Option<&[u8]>, request: &[u8]) {
    if !matches!(error, ExecutionError::WitnessRootMismatch { .. }) {
        return;
    }
    tracing::error!(
        target: "parmana::witness",
        code = error.code(),
        %error,
        cosigned = %String::from_utf8_lossy(cosigned.unwrap_or_default()),
        presented = %String::from_utf8_lossy(request),
        "a checkpoint signed by the log's keys forks from the one this witness cosigned: keep \
         both as evidence"
    );
}

/// The HTTP status C2SP `tlog-witness` gives each refusal.
fn refusal(error: &ExecutionError) -> Response {
    if let ExecutionError::WitnessSizeMismatch { size, .. } = error {
        return text(
            StatusCode::CONFLICT,
            TLOG_SIZE_MEDIA_TYPE,
            format!("{size}\n"),
        );
    }
    let status = match error.code() {
        "runtime.witness_root_mismatch" => StatusCode::CONFLICT,
        "trust.witness_request_malformed"
        | "trust.note_malformed"
        | "trust.checkpoint_malformed" => StatusCode::BAD_REQUEST,
        "trust.checkpoint_origin_mismatch" => StatusCode::NOT_FOUND,
        "trust.note_unverified" | "trust.note_bad_signature" | "trust.threshold_not_met" => {
            StatusCode::FORBIDDEN
        }
        "trust.tlog_inconsistent" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => {
            // The witness's own failure (its state file, its key): the detail names paths on
            // its disk, for its operator's log, not for whoever asked.
            tracing::error!(target: "parmana::witness", code = error.code(), %error, "add-checkpoint failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!(
                    "{}: the witness could not cosign; its operator's log says why\n",
                    error.code()
                ),
            );
        }
    };
    text(
        status,
        "text/plain; charset=utf-8",
        format!("{}: {error}\n", error.code()),
    )
}

/// `503` with `Retry-After`, ending the connection (the body may be unread).
fn busy(message: &str) -> Response {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        format!("{message}\n"),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Every request: answered `503` past `timeout` (its body's arrival included).
async fn bounded(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => busy(&format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// `POST /add-checkpoint`.
async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return text(
                rejection.status(),
                "text/plain; charset=utf-8",
                format!("{}\n", rejection.body_text()),
            );
        }
    };
    // A place among the WITNESS_MAX_IN_FLIGHT, taken once the body is read (a client sending
    // its body slowly holds none) and kept by the blocking task until its work is done, also
    // when the request has timed out.
    let Ok(slot) = Arc::clone(&witness.in_flight).try_acquire_owned() else {
        return busy("too many requests in flight; retry later");
    };
    let decided = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let settings = &witness.settings;
        // One request at a time in this process (the file's lock orders processes); the lock
        // guards nothing a panic could leave half-done.
        let _turn = witness
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Judged against what the file holds under its lock: another witness process on the
        // same file (a one-off `parmana log witness`, a second server) may have cosigned since.
        let mut state = LockedWitnessState::lock(
            &settings.state,
            state_open(
                settings.new_state,
                true,
                witness.seen_state.load(Ordering::Acquire),
            ),
        )?;
        if state.state().is_some() {
            witness.seen_state.store(true, Ordering::Release);
        }
        let cosigned = witness_add_checkpoint(
            &settings.trust_root,
            state.state(),
            &body,
            &settings.name,
            settings.signer.as_ref(),
            settings.clock.now(),
        );
        if let Err(error) = &cosigned {
            log_fork_evidence(error, state.state(), &body);
        }
        // Persisted before the answer, under the lock that checked the old state; the next
        // request is judged against the file (once renamed into place, even when making the
        // rename durable then fails and this request is refused).
        cosigned.and_then(|cosigned| {
            let replaced = state.replace(cosigned.checkpoint.as_bytes());
            if state.state().is_some() {
                witness.seen_state.store(true, Ordering::Release);
            }
            replaced.map(|()| cosigned.signature_lines)
        })
    })
    .await;
    match decided {
        Ok(Ok(lines)) => text(StatusCode::OK, "text/plain; charset=utf-8", lines),
        Ok(Err(error)) => refusal(&error),
        Err(e) => {
            // A defect (a panic): what it said goes to the log only, as `parmana serve` keeps it.
            tracing::error!(target: "parmana::witness", error = %e, "an add-checkpoint task failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "server.internal: the checkpoint could not be cosigned; the witness's log says why\n"
                    .to_owned(),
            )
        }
    }
}

/// `GET /<origin hash>/checkpoint`: the last checkpoint cosigned, with every signature, when the
/// hash is the lowercase hex SHA-256 of the log's origin.
async fn latest_checkpoint(
    State(witness): State<Arc<Witness>>,
    UrlPath(origin_hash): UrlPath<String>,
) -> Response {
    let not_found = || {
        text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        )
    };
    let Some(role) = witness.settings.trust_root.log() else {
        return not_found();
    };
    let expected = Digest::of(role.origin().as_str().as_bytes()).to_string();
    if expected.strip_prefix("sha256:") != Some(origin_hash.as_str()) {
        return not_found();
    }
    // The file as it is now: another witness process on it (a one-off run, a second server) may
    // have cosigned since this one did.
    // A place among the WITNESS_MAX_READS, kept by the blocking read until it is done: a client
    // asking again and again (this route needs no token) never queues more reads than that, nor
    // takes a place `add-checkpoint` needs.
    let Ok(slot) = Arc::clone(&witness.reads_in_flight).try_acquire_owned() else {
        return busy("too many requests in flight; retry later");
    };
    let path = witness.settings.state.clone();
    let own = Arc::clone(&witness);
    let read = move || {
        let _slot = slot;
        let state = read_witness_state(&path)?;
        // Only what this witness cosigned, of this log (a state of another log, or one this
        // witness did not write, is not its view of this log).
        if let Some(state) = &state {
            let settings = &own.settings;
            check_witness_state(
                state,
                &settings.trust_root,
                &settings.name,
                settings.signer.as_ref(),
            )?;
        }
        Ok::<_, ExecutionError>(state)
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(Some(note))) => text(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            String::from_utf8_lossy(&note).into_owned(),
        ),
        Ok(Ok(None)) => not_found(),
        Ok(Err(error)) => refusal(&error),
        Err(e) => {
            tracing::error!(target: "parmana::witness", error = %e, "a checkpoint read failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "server.internal: the state could not be read\n".to_owned(),
            )
        }
    }
}

/// A witness's answer to `add-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// How long `parmana log cosign` waits for a witness's answer.
pub const WITNESS_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends an `add-checkpoint` body to the witness at `prefix` (its submission prefix:
/// `POST <prefix>/add-checkpoint`), answered within `timeout` (`server.witness_unreachable`
/// otherwise).
pub fn submit_add_checkpoint(
    prefix: &str,
    body: &str,
    timeout: Duration,
    roots: Option<&WitnessRoots>,
) -> Result<WitnessReply, ServerError> {
    submit_with(&witness_agent(timeout, roots), prefix, body)
}

/// The certificate authorities an `https://` witness's certificate must chain to, in place of
/// the Web PKI roots built into the binary: a private or enterprise CA (`serve --witness-ca`,
/// `log cosign --witness-ca`). Only [`WitnessRoots::read`] makes one.
#[derive(Clone)]
pub struct WitnessRoots(ureq::tls::RootCerts);

impl std::fmt::Debug for WitnessRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WitnessRoots(..)")
    }
}

impl WitnessRoots {
    /// Reads the PEM certificates of `path` (read as the TLS files are: a regular file, opened
    /// without waiting, at most 1 MiB, refused where anyone may write it; at least one
    /// certificate, each one a trust anchor rustls takes): refused as `server.tls_invalid` — at
    /// start, not as every witness unreachable later.
    pub fn read(path: &std::path::Path) -> Result<Self, ServerError> {
        let ders = crate::tls::certificates(path)?;
        let mut anchors = rustls::RootCertStore::empty();
        for der in &ders {
            anchors
                .add(der.clone())
                .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", path.display())))?;
        }
        let certificates: Vec<ureq::tls::Certificate<'static>> = ders
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        Ok(Self(ureq::tls::RootCerts::new_with_certs(&certificates)))
    }
}

/// A client for witnesses: no redirect followed (the answer must come from the witness asked),
/// every exchange answered within `timeout`; an `https://` witness's certificate checked against
/// `roots` when given, else against the Web PKI roots built in.
fn witness_agent(timeout: Duration, roots: Option<&WitnessRoots>) -> ureq::Agent {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout));
    match roots {
        Some(roots) => builder
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(roots.0.clone())
                    .build(),
            )
            .build()
            .into(),
        None => builder.build().into(),
    }
}

/// [`submit_add_checkpoint`] with `agent` (whose connection a second request reuses).
fn submit_with(agent: &ureq::Agent, prefix: &str, body: &str) -> Result<WitnessReply, ServerError> {
    let url = format!("{}/add-checkpoint", prefix.trim_end_matches('/'));
    let unreachable = |e: ureq::Error| ServerError::WitnessUnreachable {
        url: url.clone(),
        message: e.to_string(),
    };
    let mut response = agent
        .post(&url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(body)
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ADD_CHECKPOINT_BYTES as u64)
        .read_to_vec()
        .map_err(unreachable)?;
    Ok(WitnessReply {
        status,
        content_type,
        body,
    })
}

/// The most characters of a witness's refusal that an error (and so a log line) carries.
const SHOWN_ANSWER_CHARS: usize = 200;

/// A witness's answer as an error shows it: its first [`SHOWN_ANSWER_CHARS`] characters, on one
/// line ([`crate::error::shown`]: a witness's text must not forge log lines).
fn shown_answer(answer: &str) -> String {
    crate::error::shown(answer, SHOWN_ANSWER_CHARS)
}

/// Has the witness at `prefix` cosign the signed `checkpoint` of a log under `trust_root`:
/// first with the old size `old_size` (0 for a witness never asked; the size it cosigned last
/// for this log otherwise), then — when the witness answers `409` with the size it cosigned
/// last (`text/x.tlog.size`) — once more with the consistency proof from that size; `request`
/// makes the `add-checkpoint` body for an old size
/// ([`witness_request`](parmana_runtime::witness_request)). Returns the checkpoint with the
/// witness's cosignature added (only the lines of witnesses the trust root lists are kept:
/// [`add_cosignatures`](parmana_runtime::add_cosignatures)). Any other answer is
/// `server.witness_refused`; none within `timeout` (each request), `server.witness_unreachable`.
/// An `https://` witness's certificate is checked against `roots` when given
/// ([`WitnessRoots`]), else against the Web PKI roots built in.
pub fn request_cosignature(
    request: &dyn Fn(u64) -> Result<String, ExecutionError>,
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
    witness: (&str, Option<&WitnessRoots>),
    old_size: u64,
    timeout: Duration,
) -> Result<String, ServerError> {
    let (prefix, roots) = witness;
    let agent = witness_agent(timeout, roots);
    let mut old_size = old_size;
    for attempt in 0..2 {
        let body = request(old_size)?;
        let reply = submit_with(&agent, prefix, &body)?;
        let answer = String::from_utf8_lossy(&reply.body).trim_end().to_owned();
        if reply.status == 200 {
            return Ok(parmana_runtime::add_cosignatures(
                trust_root,
                checkpoint,
                &reply.body,
            )?);
        }
        let retry = (reply.status == 409
            && attempt == 0
            && reply.content_type.starts_with(TLOG_SIZE_MEDIA_TYPE))
        .then(|| answer.parse::<u64>().ok())
        .flatten();
        match retry {
            Some(size) => old_size = size,
            None => {
                return Err(ServerError::WitnessRefused {
                    status: reply.status,
                    message: shown_answer(&answer),
                });
            }
        }
    }
    Err(ServerError::WitnessRefused {
        status: 409,
        message: "the witness's size changed between two requests".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Reads of the checkpoint take a place of their own, apart from `add-checkpoint`'s: with
    /// every read place held, one is `503` with `Retry-After` (it needs no token, so a client
    /// asking again and again would otherwise queue reads without bound); with one free, it is
    /// answered — and reads holding every read place leave `add-checkpoint`'s free.
    #[test]
    fn reads_of_the_checkpoint_take_places_of_their_own() {
        let fixture = parmana_testkit::FixtureEnvironment::new().unwrap();
        let key = fixture.rotate_to_fixture_log().unwrap();
        let environment = parmana_runtime::RuntimeEnvironment::load(
            &fixture.config(),
            parmana_testkit::NOW.parse().unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server = WitnessServer::bind(WitnessSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            name: NoteKeyName::parse("witness.example/w1").unwrap(),
            signer: Arc::new(key),
            state: dir.path().join("state"),
            new_state: true,
            trust_root: environment.trust_root().clone(),
            clock: Arc::new(parmana_testkit::fixed_clock()),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        })
        .unwrap();
        let hash = Digest::of(parmana_testkit::FIXTURE_LOG_ORIGIN.as_bytes()).to_string();
        let hash = hash.trim_start_matches("sha256:").to_owned();
        let read = |witness: &Arc<Witness>| {
            crate::readiness_tests::tokio_runtime().block_on(latest_checkpoint(
                State(Arc::clone(witness)),
                UrlPath(hash.clone()),
            ))
        };
        let witness = server.witness;
        let held = Arc::clone(&witness.reads_in_flight)
            .try_acquire_many_owned(u32::try_from(WITNESS_MAX_READS).unwrap())
            .unwrap();
        assert_eq!(witness.in_flight.available_permits(), WITNESS_MAX_IN_FLIGHT);
        let busy = read(&witness);
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.headers().contains_key(header::RETRY_AFTER));
        drop(held);
        // A new witness has cosigned nothing yet: its checkpoint is not found, and read.
        assert_eq!(read(&witness).status(), StatusCode::NOT_FOUND);
    }

    /// A witness's refusal is shown bounded, its line ends escaped.
    #[test]
    fn a_witness_answer_is_shown_bounded_and_on_one_line() {
        assert_eq!(shown_answer("size mismatch"), "size mismatch");
        assert_eq!(
            shown_answer("one\nINFO forged line\r"),
            "one\\nINFO forged line\\r"
        );
        assert_eq!(shown_answer("a\u{2028}b\u{202E}c"), "a\\u{2028}b\\u{202e}c");
        let long = "x".repeat(5_000);
        let shown = shown_answer(&long);
        assert_eq!(shown.chars().count(), SHOWN_ANSWER_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    /// A new witness opens its state as new at its start, then as possibly missing until it has
    /// seen one (written by it or by another witness process on the file), then as existing; a
    /// witness that is not new always as existing.
    #[test]
    fn a_new_witness_may_find_no_state_only_until_it_has_seen_one() {
        use WitnessStateOpen::{Existing, New, NewOrWritten};
        for ((new_state, started, seen), open) in [
            ((true, false, false), New),
            ((true, true, false), NewOrWritten),
            ((true, true, true), Existing),
            ((false, false, false), Existing),
            ((false, true, false), Existing),
        ] {
            assert_eq!(
                state_open(new_state, started, seen),
                open,
                "{new_state} {started} {seen}"
            );
        }
    }
}
