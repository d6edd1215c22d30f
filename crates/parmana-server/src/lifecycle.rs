//! The server's life: bind, refuse unsafe authentication, build the router, recover leftovers before ready, serve (plain or TLS, connections bounded), hand SIGHUP to the reload (`reload.rs`), drain on SIGTERM/SIGINT.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::RustlsAcceptor;
use parmana_runtime::canon::Timestamp;
use parmana_runtime::{LogSigning, Recovered, Runtime, RuntimeEnvironment, check_log_signer};
use tokio::sync::Semaphore;

use crate::authzen::AuthzenMapping;
use crate::connections::Limited;
use crate::error::ServerError;
use crate::metrics::{Metrics, SequencerRun};
use crate::settings::{Authentication, LIMIT_RANGES, Limits, ServerSettings};
use crate::state::AppState;
use crate::{api, authzen, observe, tlog};

/// A bound server, not yet serving: its address is known (so `--listen 127.0.0.1:0` can be
/// reported before the first request).
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    config_file: Option<String>,
}

/// A listen address bound, not yet listening: taken by [`Server::on`], which listens on it. A
/// caller that binds before it opens the replay store ([`Listening::bind`]) is refused an
/// address in use before it has created a store file; connections made before the server
/// listens are refused, not left unanswered.
#[derive(Debug)]
pub struct Listening {
    socket: socket2::Socket,
    local_addr: SocketAddr,
}

/// The connections the kernel keeps waiting to be accepted.
const LISTEN_BACKLOG: i32 = 1024;

impl Listening {
    /// Binds `address` (with `SO_REUSEADDR` on Unix, as the standard library binds), without
    /// listening yet.
    pub fn bind(address: SocketAddr) -> Result<Self, ServerError> {
        let io = |e: std::io::Error| ServerError::Io {
            action: "bind",
            address: address.to_string(),
            message: e.to_string(),
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(io)?;
        #[cfg(unix)]
        socket.set_reuse_address(true).map_err(io)?;
        socket.bind(&address.into()).map_err(io)?;
        let local_addr = socket
            .local_addr()
            .map_err(io)?
            .as_socket()
            .ok_or_else(|| io(std::io::Error::other("not an IP socket address")))?;
        Ok(Self { socket, local_addr })
    }

    /// Listens on the address bound.
    fn listen(self) -> Result<(std::net::TcpListener, SocketAddr), ServerError> {
        self.socket
            .listen(LISTEN_BACKLOG)
            .map_err(|e| ServerError::Io {
                action: "listen",
                address: self.local_addr.to_string(),
                message: e.to_string(),
            })?;
        Ok((self.socket.into(), self.local_addr))
    }

    /// The bound address (the port chosen when it was `0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// What [`checked`] made of the settings: the TLS configuration (and when its certificate
/// expires) and the AuthZEN mapping.
struct Checked {
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_not_after: Option<Timestamp>,
    authzen: AuthzenMapping,
}

/// Everything [`Server::bind`] refuses before it binds, against `environment` at `now`.
fn checked(
    settings: &ServerSettings,
    environment: &RuntimeEnvironment,
    now: Timestamp,
) -> Result<Checked, ServerError> {
    let loopback = settings.listen.ip().is_loopback();
    let listen = settings.listen.to_string();
    match &settings.authentication {
        Authentication::InsecureNoAuth if !loopback => {
            return Err(ServerError::NotLoopback {
                what: "--insecure-no-auth",
                listen,
            });
        }
        Authentication::DevToken(_) if !loopback => {
            return Err(ServerError::NotLoopback {
                what: "--dev-token",
                listen,
            });
        }
        Authentication::Tokens(tokens) | Authentication::DevToken(tokens) if tokens.is_empty() => {
            return Err(ServerError::NoTokens);
        }
        _ => {}
    }
    check_limits(&settings.limits, settings.sequencer.cadence)?;
    // Before the store is opened or created (`check_settings`): a start refused for its open
    // files leaves no store behind.
    crate::descriptors::ensure(&settings.limits)?;
    let tls = settings
        .tls
        .as_ref()
        .map(|files| crate::tls::server_config(files, now))
        .transpose()?;
    let tls_not_after = tls.as_ref().map(|(_, not_after)| *not_after);
    let tls = tls.map(|(config, _)| config);
    let authzen = AuthzenMapping::new(&settings.authzen, environment)?;
    if let Some(log) = &settings.log {
        if log.witnesses.len() > crate::settings::MAX_WITNESSES {
            return Err(ServerError::LimitOutOfRange {
                name: "witness_url",
                value: log.witnesses.len(),
                min: 0,
                max: crate::settings::MAX_WITNESSES,
            });
        }
        check_log_signer(LogSigning {
            trust_root: environment.trust_root(),
            history: environment.trust_history(),
            now,
            release_manifest: environment.release_manifest().version(),
            signers: &parmana_runtime::signers_of(&log.signers),
            anchor: None,
        })?;
    }
    // Every released policy read, verified and compiled now, as a reload does: a released
    // bundle that does not verify refuses the start rather than its first request, and no
    // request's first use of a policy reads and compiles it on an async worker.
    environment.preload_released_policies()?;
    Ok(Checked {
        tls,
        tls_not_after,
        authzen,
    })
}

/// Checks `settings` as [`Server::bind`] will, against an environment loaded for the purpose, at
/// `now`: listening off loopback without tokens, limits, the TLS files, the AuthZEN mapping,
/// the log key's role. `parmana serve` calls it before it opens (or creates) the replay store,
/// so that what it refuses at start leaves no store behind; `bind` checks all of it again
/// against the runtime it is given. Returns when the TLS certificate expires, when the server
/// serves TLS (for the warning ahead of it).
pub fn check_settings(
    settings: &ServerSettings,
    environment: &RuntimeEnvironment,
    now: Timestamp,
) -> Result<Option<Timestamp>, ServerError> {
    checked(settings, environment, now).map(|checked| checked.tls_not_after)
}

impl Server {
    /// Checks the settings against the runtime and binds the listen address. Refuses to run
    /// without tokens unless `--insecure-no-auth` on loopback, a dev token off loopback, an
    /// unusable TLS file or AuthZEN mapping.
    pub fn bind(runtime: Runtime, settings: ServerSettings) -> Result<Self, ServerError> {
        let listening = Listening::bind(settings.listen)?;
        Self::on(runtime, settings, listening)
    }

    /// [`bind`](Self::bind) on an address already bound ([`Listening::bind`]; the settings'
    /// `listen` is not bound again): the settings are checked against the address bound (the
    /// refusal to run without authentication off loopback among them), then it listens.
    pub fn on(
        runtime: Runtime,
        settings: ServerSettings,
        listening: Listening,
    ) -> Result<Self, ServerError> {
        let settings = ServerSettings {
            listen: listening.local_addr(),
            ..settings
        };
        let config_file = settings.config_file.clone();
        let Checked {
            tls,
            tls_not_after,
            authzen,
        } = checked(&settings, &runtime.environment(), runtime.clock().now())?;
        let (listener, local_addr) = listening.listen()?;
        let state = Arc::new(AppState {
            runtime,
            no_auth: matches!(settings.authentication, Authentication::InsecureNoAuth),
            authentication: std::sync::RwLock::new(settings.authentication),
            metrics: Metrics::new(&settings.store_timings, tls_not_after),
            limits: settings.limits,
            logging: settings.logging,
            authzen,
            store_kind: settings.store_kind,
            log: settings.log,
            scheme: if tls.is_some() { "https" } else { "http" },
            tls: settings
                .tls
                .clone()
                .zip(tls)
                .map(|(files, config)| crate::tls::ServedTls::new(files, config)),
            started: Instant::now(),
            in_flight: Arc::new(Semaphore::new(settings.limits.max_concurrency.max(1))),
            body_bytes: Arc::new(Semaphore::new(crate::state::body_permits(
                settings.limits.max_body_bytes_in_flight(),
            ))),
            shared_in_flight: Arc::new(Semaphore::new({
                let slots = settings.limits.max_concurrency.max(1);
                slots - crate::state::execution_reserve(slots)
            })),
            shared_body_bytes: Arc::new(Semaphore::new(crate::state::body_permits(
                crate::state::shared_body_bytes(&settings.limits),
            ))),
            log_body_bytes: Arc::new(Semaphore::new(crate::state::body_permits(
                settings.limits.max_body_bytes_in_flight() / 4,
            ))),
            log_in_flight: Arc::new(Semaphore::new((settings.limits.max_concurrency / 4).max(1))),
            started_up: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            grace_over: tokio::sync::watch::Sender::new(false),
            #[cfg(test)]
            blocking_handoffs: std::sync::atomic::AtomicUsize::new(0),
            log_cache: crate::log_cache::LogCache::new(settings.sequencer.cadence),
            probe: Arc::new(tokio::sync::Mutex::new(None)),
            signed_note: std::sync::Mutex::new(None),
            signing_note: std::sync::Mutex::new(()),
            cosigned_note: std::sync::Mutex::new(None),
            witnesses: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            completed_here: std::sync::atomic::AtomicU64::new(0),
            reloads_taken: std::sync::atomic::AtomicU64::new(0),
            reloads_recorded: std::sync::atomic::AtomicU64::new(0),
            reloads_warned: std::sync::atomic::AtomicU64::new(0),
            held_since: std::sync::Mutex::new(None),
            log_sequencer: parmana_runtime::LogSequencer::default()
                .sharing(settings.sequencer.executed.clone()),
            sequencer: settings.sequencer,
            sequencing: Arc::new(tokio::sync::Mutex::new(())),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
            queued_reload: std::sync::Mutex::new(None),
            tokens_reloading: std::sync::Mutex::new(()),
            tokens_read_waiting: AtomicBool::new(false),
            tls_not_after: std::sync::Mutex::new(tls_not_after),
        });
        Ok(Self {
            state,
            listener,
            local_addr,
            config_file,
        })
    }

    /// The shared state the router serves from (for the crate's tests).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The bound address (the port chosen when it was `0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.state.scheme
    }

    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` answers 503, the server serves
    /// on for the shutdown delay (zero unless set), then stops accepting, and requests in
    /// flight get the shutdown grace to finish, and every execution already
    /// handed to the runtime completes before this returns. Leftover claims are recovered
    /// before the server reports ready; a recovery that fails stops the server.
    ///
    /// `announce` is called once SIGHUP, SIGTERM and SIGINT are the server's — a SIGHUP from
    /// then on reloads, never ends the process — and before anything is served: where
    /// `parmana serve` prints `listening on`, so that whoever waits for that line may signal.
    /// When it returns `false` (it could not announce the server), nothing is served.
    pub fn run(self, announce: impl FnOnce() -> bool) -> Result<(), ServerError> {
        let limits = self.state.limits;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(limits.max_concurrency.saturating_add(16))
            .thread_name("parmana-serve")
            .build()
            .map_err(|e| ServerError::Io {
                action: "start",
                address: self.local_addr.to_string(),
                message: e.to_string(),
            })?;
        // Held here, so that the store is dropped last, below, outside the tokio runtime:
        // PostgreSQL's synchronous client closes its connections on a runtime of its own, which
        // cannot start inside another (a clean stop on PostgreSQL panicked as it ended). A
        // witness's request still waiting holds no reference to it (`cosigning::ask`); one
        // reading the store or recording its answer at this moment drops it on its own plain
        // thread, outside tokio too.
        let state = Arc::clone(&self.state);
        let served = runtime.block_on(self.serve(announce));
        // Dropping the tokio runtime waits for blocking tasks: an execution that started
        // finishes (claim, sign, complete) even when its client went away.
        drop(runtime);
        settle_after_stop(&state);
        drop(state);
        served
    }

    async fn serve(self, announce: impl FnOnce() -> bool) -> Result<(), ServerError> {
        // The signals first: until they are the server's, a SIGHUP would end the process.
        let signals = Signals::install().map_err(|e| ServerError::signals(self.local_addr, &e))?;
        if !announce() {
            return Ok(());
        }
        observe::init_logging(&self.state.logging);
        self.state.authzen.warn_of_strict_policies();
        let state = self.state;
        let handle: Handle<SocketAddr> = Handle::new();
        let app = router(Arc::clone(&state));
        let io_error = |action: &'static str, e: io::Error| ServerError::Io {
            action,
            address: self.local_addr.to_string(),
            message: e.to_string(),
        };
        let connections = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
        // Before the signals are watched (see `start_recovery`).
        let recovery = start_recovery(&state, handle.clone());
        let signals = tokio::spawn(watch_signals(signals, Arc::clone(&state), handle.clone()));
        let sequencer = tokio::spawn(sequence_periodically(Arc::clone(&state)));
        let cosigner = tokio::spawn(crate::cosigning::cosign_periodically(Arc::clone(&state)));
        // HTTP/1.1 only, as with TLS (ALPN offers `http/1.1` alone): without it, a client could
        // open HTTP/2 in clear text (h2c, prior knowledge), whose limits these are not.
        let accept_failures = crate::connections::AcceptFailures::new(
            state.metrics.connection_counts().accept_failures,
        );
        let mut server = axum_server::from_tcp(self.listener)
            .map_err(|e| io_error("serve", e))?
            .handle(handle.clone())
            .http1_only()
            // The listener's own failures only: a connection's (a TLS handshake refused, with its
            // address) is counted and logged by the acceptor.
            .accept_error_handler(move |peer: Option<&SocketAddr>, error: &io::Error| {
                if peer.is_none() {
                    accept_failures.record(error);
                }
            });
        server
            .http_builder()
            .http1()
            .max_buf_size(state.limits.max_header_bytes)
            // Counted from the connection's start or its previous answer: a connection that
            // sends no complete request head in time is closed, idle or trickling.
            .header_read_timeout(state.limits.idle_timeout);
        tracing::info!(
            target: "parmana::server",
            address = %self.local_addr,
            scheme = state.scheme,
            config = self.config_file.as_deref().unwrap_or("none"),
            "listening"
        );
        if state.store_kind == "memory" {
            tracing::warn!(
                target: "parmana::server",
                "the memory store keeps nothing across a restart: an execution id answered now \
                 can be executed again after one (use sqlite: or postgres: to keep them)"
            );
        }
        crate::descriptors::log_raise();
        if let Some(warning) = plaintext_tokens_warning(state.tls.is_some(), self.local_addr) {
            tracing::warn!(target: "parmana::server", "{warning}");
        }
        if state
            .log
            .as_ref()
            .is_some_and(|log| !log.witnesses.is_empty())
            && !crate::cosigning::witnessed(&state, &state.runtime.environment())
        {
            tracing::warn!(
                target: "parmana::server",
                "witnesses are configured (--witness-url) but the trust root's log role requires \
                 none: no checkpoint is sent to them, and the log's own are served (until a \
                 reload brings a trust root that lists witnesses)"
            );
        }
        let served = match state
            .tls
            .as_ref()
            .map(crate::tls::ServedTls::acceptor_config)
        {
            None => {
                server
                    .acceptor(
                        Limited::new(DefaultAcceptor, connections, state.limits.idle_timeout)
                            .retired_after(state.limits.max_connection_age)
                            .counted_in(state.metrics.connection_counts()),
                    )
                    .serve(app.into_make_service())
                    .await
            }
            Some(config) => {
                // A connection that completes no handshake within the idle timeout is closed, as
                // one that sends no request head is.
                let tls = RustlsAcceptor::new(config).handshake_timeout(state.limits.idle_timeout);
                server
                    .acceptor(
                        Limited::new(tls, connections, state.limits.idle_timeout)
                            .retired_after(state.limits.max_connection_age)
                            .counted_in(state.metrics.connection_counts()),
                    )
                    .serve(app.into_make_service())
                    .await
            }
        };
        signals.abort();
        sequencer.abort();
        cosigner.abort();
        // Stopping, however the server ended (a serving error sets no drain): a cosigning round
        // still waiting for witnesses stops waiting.
        state.draining.store(true, Ordering::SeqCst);
        let recovered = recovery.await;
        // Executions whose requests were answered on their timeout, or cut off by the end of the
        // grace period, may still be running: they finish first, so that the final pass
        // sequences them too.
        let all_returned = runtime_calls_finished(&state).await;
        // Before the final pass, so that its checkpoint covers the marks record a raise makes;
        // not while a call that outlived the grace may still leave a completion to write.
        if state.is_started() && all_returned {
            record_versions(&state, "stop").await;
        }
        // Everything completed before the drain enters the log (and a checkpoint) now, waiting
        // a while for another server's integrator to let go of the ledger — on a server that
        // started (one stopped before it read the log has checked nothing it would append to:
        // the next start sequences what its recovery completed).
        if state.is_started() {
            sequence_all(&state, FINAL_PASS_WAIT).await;
        }
        served.map_err(|e| io_error("serve", e))?;
        match recovered {
            Ok(result) => result,
            Err(e) => Err(io_error("recover", io::Error::other(e.to_string()))),
        }
    }
}

/// Records the trust-root and release-manifest versions in force in the store's marks
/// (`Runtime::accept_environment`), so that a server started later on older files is refused as
/// a rollback even when nothing was executed under these (a server that only evaluates, a
/// reload no execution followed): at start, once recovery is done and the log read, and at a
/// clean stop, once the runtime calls have returned and before the final sequencer pass (whose
/// checkpoint then covers the marks record). Not on a store the server refused, nor at a stop
/// while a completion the store refused still waits (one claimed under an older environment is
/// completed only under it). A failure is logged, not fatal: the first claim under these
/// versions records them too.
async fn record_versions(state: &Arc<AppState>, when: &'static str) {
    if state.runtime.store_refused().is_some() {
        return;
    }
    let recorded = state
        .blocking("accept", move |runtime| {
            if when == "stop" && runtime.finish_completions().waiting > 0 {
                return None;
            }
            Some(runtime.accept_environment())
        })
        .await;
    const NOT_RECORDED: &str = "the versions in force could not be recorded in the store's marks";
    match recorded {
        Ok(None | Some(Ok(_))) => {}
        Ok(Some(Err(error))) => {
            tracing::warn!(target: "parmana::server", when, code = error.code(), %error, "{NOT_RECORDED}");
        }
        Err(error) => {
            tracing::warn!(target: "parmana::server", when, code = %error.code, "{NOT_RECORDED}");
        }
    }
}

/// What a stop leaves in the store once the tokio runtime is gone, and with it every runtime
/// call (even one that outlived the shutdown grace and the final sequencer pass): the
/// completions the store refused are written once more — the last chance, as a completion kept
/// in memory ends with the process and its id stays claimed until `parmana recover`. Nothing is
/// done for a server that never became ready, or on a store it refused.
fn settle_after_stop(state: &AppState) {
    if !state.is_started() || state.runtime.store_refused().is_some() {
        return;
    }
    let finished = state.runtime.finish_completions();
    if finished.waiting > 0 {
        tracing::warn!(
            target: "parmana::server",
            waiting = finished.waiting,
            "completions the store refused at the stop are not recorded; their ids stay claimed until `parmana recover`"
        );
    }
}

/// Waits until no request's runtime call is running: each holds its request's concurrency slot
/// until it returns (`AppState::blocking`), so holding every slot means none is left (waited
/// for at most the shutdown grace; the tokio runtime's drop waits for its blocking pool anyway).
/// Whether every one returned within it.
async fn runtime_calls_finished(state: &AppState) -> bool {
    let total = state.limits.max_concurrency.max(1);
    let running = total.saturating_sub(state.in_flight.available_permits());
    if running > 0 {
        tracing::info!(
            target: "parmana::server",
            running,
            "waiting for the runtime calls still running before the final sequencer pass"
        );
    }
    // `check_limits` keeps `max_concurrency` within a `u32`; a closed semaphore (never, here)
    // has nothing left to wait for. A call stuck on its store is waited for at most the
    // shutdown grace: the final pass then runs without it (the process still waits for it to
    // return, and it is sequenced at the next start).
    let permits = u32::try_from(total).unwrap_or(u32::MAX);
    let waited = tokio::time::timeout(
        state.limits.shutdown_grace,
        state.in_flight.acquire_many(permits),
    )
    .await;
    if waited.is_err() {
        tracing::warn!(
            target: "parmana::server",
            grace_ms = millis_u64(state.limits.shutdown_grace),
            "runtime calls still running after the shutdown grace; the final sequencer pass goes on without them"
        );
    }
    waited.is_ok()
}

/// The warning for bearer tokens sent in clear text: plain HTTP on an address other machines
/// reach (meant where TLS is terminated in front of the server; a mistake where `--tls-cert` was
/// forgotten). `None` over TLS or on loopback.
fn plaintext_tokens_warning(tls: bool, listen: std::net::SocketAddr) -> Option<&'static str> {
    (!tls && !listen.ip().is_loopback()).then_some(
        "bearer tokens are accepted over plain HTTP on an address other machines reach: \
         terminate TLS in front of the server, or serve it (--tls-cert, --tls-key)",
    )
}

/// Refuses a limit outside [`LIMIT_RANGES`] (`server.limit_out_of_range`): a value the server
/// cannot keep (a zero that refuses everything, a count no semaphore holds, a duration no clock
/// adds) is refused at start rather than met by a panic or a silent change under load.
pub fn check_limits(limits: &Limits, sequence_interval: Duration) -> Result<(), ServerError> {
    let millis = |d: Duration| usize::try_from(d.as_millis()).unwrap_or(usize::MAX);
    for (name, min, max) in LIMIT_RANGES {
        let value = match name {
            "max_body_bytes" => limits.max_body_bytes,
            "max_header_bytes" => limits.max_header_bytes,
            "max_concurrency" => limits.max_concurrency,
            "max_connections" => limits.max_connections,
            "request_timeout_ms" => millis(limits.request_timeout),
            "idle_timeout_ms" => millis(limits.idle_timeout),
            "shutdown_grace_ms" => millis(limits.shutdown_grace),
            "shutdown_delay_ms" => millis(limits.shutdown_delay),
            "max_connection_age_ms" => millis(limits.max_connection_age),
            "sequence_interval_ms" => millis(sequence_interval),
            _ => continue,
        };
        if !(min..=max).contains(&value) {
            return Err(ServerError::LimitOutOfRange {
                name,
                value,
                min,
                max,
            });
        }
    }
    Ok(())
}

/// Starts the start-up recovery ([`recover_then_ready`]) in a task of its own, holding the
/// reloads' turn until the server is ready: a reload asked for while the server starts (a SIGHUP
/// once `listening on` is printed) waits until then, so that recovery completes the leftovers
/// under the environment the server started with — under a release a reload took meanwhile,
/// they would stay claimed for good — and the versions recorded at start are that
/// environment's. The turn is taken here, at once, before the signals are watched; the tokens
/// file is still read again at once.
pub(crate) fn start_recovery(
    state: &Arc<AppState>,
    handle: Handle<SocketAddr>,
) -> tokio::task::JoinHandle<Result<(), ServerError>> {
    let start_turn = Arc::clone(&state.reloading).try_lock_owned().ok();
    tokio::spawn(recover_then_ready(Arc::clone(state), handle, start_turn))
}

/// How many ids recovery could not complete are named in the log, one line each (the count of
/// all of them is in the line that follows).
const LOGGED_RECOVERY_FAILURES: usize = 100;

/// Completes leftover claims, then marks the server ready, holding `reload_turn` (the reloads'
/// turn, taken before the signals were watched) until then. A recovery that cannot run (the
/// store failing, or cut under the log anchor) stops the server: it never reports ready over a
/// store it could not recover. An id recovery runs over but cannot complete stays claimed and is
/// logged; the server is ready.
pub(crate) async fn recover_then_ready(
    state: Arc<AppState>,
    handle: Handle<SocketAddr>,
    reload_turn: Option<tokio::sync::OwnedMutexGuard<()>>,
) -> Result<(), ServerError> {
    // An id recovery cannot complete (its inputs unreadable, or made under keys or a trust root
    // this server does not hold) stays claimed and refused, as after `parmana recover`: named
    // here as it is met, the first ones one line each, so that one bad record neither stops
    // every server of a deployment nor passes unseen. (A row whose id cannot be read at all —
    // no id a request could use — is a corrupt store, `replay.store_corrupt`: recovery fails and
    // the server stops rather than report ready over a store it cannot read; only a writer of
    // the store makes such a row, and such a writer can always deny service.) Recovery pages through the
    // claimed ids: its memory does not grow with their number.
    // (A memory store holds no history the anchor could record: a dry run is not refused.)
    let anchor = state
        .sequencer
        .anchor
        .clone()
        .filter(|_| state.store_kind != "memory");
    let worker = Arc::clone(&state);
    let recovered = state
        .blocking("recover", move |runtime: &Runtime| {
            // A shutdown asked for before this began: nothing is read.
            if worker.is_draining() {
                return Ok(parmana_runtime::RecoveryCounts {
                    stopped: true,
                    ..parmana_runtime::RecoveryCounts::default()
                });
            }
            // A store that does not extend the checkpoint the log anchor records — shorter, or
            // another root at its size (cut and grown again) — was cut, replaced or rewound
            // while no server kept its log: the ids cut away would execute again. The server
            // does not start on it (`runtime.store_rewound`), nor on one whose ledger is broken.
            // The whole ledger is read once, taking no lock of the store (it only grows), and
            // kept as the sequencer's log (`load_log` then reads nothing).
            if let Some(anchor) = &anchor
                && let Err(error) = worker.log_sequencer.load_extending(runtime.store(), anchor)
            {
                if worker.log_sequencer.store_rewound().is_some() {
                    // Latched too: the final pass writes nothing into it either.
                    runtime.refuse_store(error.to_string());
                }
                return Err(error);
            }
            let mut logged_failures = 0_usize;
            // A shutdown asked for meanwhile stops it before its next leftover claim: the ids
            // not reached stay claimed, for the next start.
            let draining = || worker.is_draining();
            runtime.recover_each_until(
                &mut |recovered| {
                    if let Recovered::Failed {
                        execution_id,
                        error,
                    } = recovered
                    {
                        logged_failures += 1;
                        if logged_failures <= LOGGED_RECOVERY_FAILURES {
                            // A completion the store refused (it did not answer) is kept and
                            // written again at the sequencer's next ticks; any other failure
                            // leaves the claim as it is.
                            let what = if error.code() == "replay.store_unavailable" {
                                "leftover claim not completed now: the store did not take its completion, which is written again at the next ticks"
                            } else {
                                "leftover claim not recovered; it stays claimed"
                            };
                            tracing::warn!(
                                target: "parmana::server",
                                execution_id = %execution_id,
                                code = error.code(),
                                %error,
                                "{what}"
                            );
                        }
                    }
                },
                &draining,
            )
        })
        .await;
    match recovered {
        // Stopped by the shutdown (or one asked for as recovery ended): never ready, nothing
        // more read or recorded.
        Ok(Ok(counts)) if counts.stopped || state.is_draining() => {
            tracing::info!(
                target: "parmana::server",
                recovered = counts.completed,
                failed = counts.failed,
                "recovery stopped by the shutdown; the leftover claims not reached stay claimed for the next start"
            );
            Ok(())
        }
        Ok(Ok(counts)) => {
            // The log the sequencer keeps is read (the whole ledger, verified) before the first
            // execution is taken, so that an id the ledger records is refused from the first
            // request on, whatever its row says (`served_store`), and a ledger already broken
            // is seen now. Nothing is integrated or signed here. A log that cannot be read stops
            // the server, as a recovery that cannot run does: it never takes executions
            // without knowing the ids the ledger holds.
            if let Err(error) = load_log(&state).await {
                tracing::error!(target: "parmana::server", code = error.code(), %error, "the log could not be read before ready; stopping");
                handle.graceful_shutdown(Some(state.limits.shutdown_grace));
                return Err(error);
            }
            record_versions(&state, "start").await;
            if let Some(reason) = state.runtime.store_refused() {
                tracing::error!(
                    target: "parmana::server",
                    recovered = counts.completed,
                    failed = counts.failed,
                    reason,
                    "leftover claims recovered; the store is refused: not ready"
                );
            } else {
                tracing::info!(
                    target: "parmana::server",
                    recovered = counts.completed,
                    failed = counts.failed,
                    "leftover claims recovered; ready"
                );
            }
            state.started_up.store(true, Ordering::SeqCst);
            // A reload asked for meanwhile runs now.
            drop(reload_turn);
            state.metrics.set_ready(true);
            // A drain that began meanwhile wins (it sets its flag before it clears the gauge).
            std::sync::atomic::fence(Ordering::SeqCst);
            if state.is_draining() {
                state.metrics.set_ready(false);
            }
            Ok(())
        }
        Ok(Err(error)) => {
            tracing::error!(target: "parmana::server", code = error.code(), %error, "recovery failed; stopping");
            handle.graceful_shutdown(Some(state.limits.shutdown_grace));
            Err(ServerError::Runtime(error))
        }
        Err(error) => {
            handle.graceful_shutdown(Some(state.limits.shutdown_grace));
            Err(ServerError::Io {
                action: "recover",
                address: String::new(),
                message: error.message,
            })
        }
    }
}

/// The background sequencer: every cadence, one run (integrate a batch, sign and store a
/// checkpoint with the log key); a run that integrated a full batch is followed at once by the
/// next. A failed run is logged and tried again at the next tick (completions wait, nothing is
/// lost: they are durable in their own rows).
async fn sequence_periodically(state: Arc<AppState>) {
    let mut ticks = tokio::time::interval(state.sequencer.cadence.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !state.is_started() {
            continue;
        }
        // Before the run, so that its checkpoint covers the marks record a raise makes.
        record_reloaded_versions(&state).await;
        sequence_all(&state, Duration::ZERO).await;
    }
}

/// After a reload, records the versions it took in the store's marks
/// (`Runtime::accept_settled_environment`) once no execution still runs under an environment of
/// older versions, so that a server started later on the older files is refused as a rollback —
/// after a crash too, with nothing executed under the new versions. Tried on every sequencer
/// tick until it is done, as [`record_versions`] is at start: not on a store the server refused,
/// nor while a completion the store refused still waits (one claimed under an older environment
/// is completed only under it). A failure is logged once per reload, not fatal.
async fn record_reloaded_versions(state: &Arc<AppState>) {
    let taken = state.reloads_taken.load(Ordering::SeqCst);
    let recorded = state.reloads_recorded.load(Ordering::SeqCst);
    if taken == recorded || state.runtime.store_refused().is_some() {
        return;
    }
    // (Not while a refused completion waits either: the runtime checks that once no older
    // environment is held.)
    let outcome = state
        .blocking("accept", |runtime| runtime.accept_settled_environment())
        .await;
    const NOT_RECORDED: &str =
        "the versions a reload took could not be recorded in the store's marks; tried again";
    let failed = match outcome {
        Ok(Ok(None)) => return,
        Ok(Ok(Some(marks))) => {
            state.reloads_recorded.store(taken, Ordering::SeqCst);
            let environment = state.runtime.environment();
            if marks.trust_root > environment.trust_root().version()
                || marks.release_manifest > environment.release_manifest().version()
            {
                // Nothing recorded (`Runtime::accept_environment` raises no marks above the
                // environment in either version).
                tracing::warn!(
                    target: "parmana::server",
                    trust_root = marks.trust_root,
                    release_manifest = marks.release_manifest,
                    "the store's marks are above the versions the reload took: nothing recorded (another server took newer versions, or a writer of the store raised them; `ledger verify` tells which)"
                );
                return;
            }
            tracing::info!(
                target: "parmana::server",
                trust_root = marks.trust_root,
                release_manifest = marks.release_manifest,
                "the versions the reload took are recorded in the store's marks"
            );
            return;
        }
        Ok(Err(error)) => (error.code().to_owned(), error.to_string()),
        Err(error) => (error.code, error.message),
    };
    // Once per reload: the ticks go on trying.
    if state.reloads_warned.swap(taken, Ordering::SeqCst) != taken {
        tracing::warn!(target: "parmana::server", code = %failed.0, error = %failed.1, "{NOT_RECORDED}");
    }
}

/// Reads the log the sequencer keeps, before the server is ready ([`LogSequencer::load`]). A
/// store it shows cut or broken is refused from now on (the server starts, never ready, saying
/// why); any other failure (the store not answering, a value too large to read) is returned:
/// the server does not start.
///
/// [`LogSequencer::load`]: parmana_runtime::LogSequencer::load
async fn load_log(state: &Arc<AppState>) -> Result<(), ServerError> {
    let worker = Arc::clone(state);
    let loaded = state
        .blocking("load", move |runtime| {
            let anchor = worker
                .sequencer
                .anchor
                .as_deref()
                .filter(|_| worker.store_kind != "memory");
            worker.log_sequencer.load(runtime.store(), anchor)
        })
        .await;
    match loaded {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) if state.log_sequencer.store_rewound().is_some() => {
            tracing::error!(target: "parmana::server", code = error.code(), %error, "replay store cut or rewritten under the log; executions refused until it is restored and the server restarted");
            state.runtime.refuse_store(format!(
                "its ledger is broken or no longer extends what the log anchor records ({}): it \
                 was cut, replaced or rewritten; the server's log says how",
                error.code()
            ));
            Ok(())
        }
        Ok(Err(error)) => Err(ServerError::Runtime(error)),
        Err(error) => Err(ServerError::Io {
            action: "read the log",
            address: String::new(),
            message: error.message,
        }),
    }
}

/// How long the ledger may stay held by another integrator, with the log not growing while
/// this server has completed executions, before `/readyz` says so: ten sequencer cadences, at
/// least ten seconds (a healthy integrator integrates within one).
pub(crate) fn held_ledger_limit(cadence: Duration) -> Duration {
    cadence.saturating_mul(10).max(Duration::from_secs(10))
}

/// Follows runs that found the ledger held (PostgreSQL's advisory lock, which any role that may
/// connect can take): from the first such run, while the log does not grow. A run that
/// integrated, or a log that grew (another server integrating), ends it, and records how many
/// executions this server had completed when that run began (`completed_before`: all of them
/// are in the log after a run that integrated until nothing waited).
pub(crate) fn watch_integrator(
    state: &AppState,
    report: &parmana_runtime::SequenceReport,
    completed_before: u64,
) {
    let Ok(mut held) = state.held_since.lock() else {
        return;
    };
    let stalled = report.busy && report.integrated.is_empty();
    let previous = *held;
    let next = match previous {
        // Held since before, and the log no larger: still held.
        Some(watch) if stalled && watch.since.is_some() && report.size <= watch.size => watch,
        // Held from now (or again, the log having grown meanwhile: another server integrates).
        _ if stalled => crate::state::HeldLedger {
            since: Some(Instant::now()),
            size: report.size,
            completed: previous.map_or(0, |watch| watch.completed),
        },
        _ => crate::state::HeldLedger {
            since: None,
            size: report.size,
            completed: completed_before,
        },
    };
    *held = Some(next);
}

/// Why the ledger's integration is stalled, if it is: held by another integrator for longer
/// than [`held_ledger_limit`] while the log did not grow and this server completed executions
/// meanwhile — completions that wait unsequenced, whose rows a writer of the store could delete
/// unseen, and which no proof covers.
pub(crate) fn integration_stalled(state: &AppState) -> Option<String> {
    let watch = (*state.held_since.lock().ok()?)?;
    let since = watch.since?;
    let limit = held_ledger_limit(state.sequencer.cadence);
    let completed = state.completed_here.load(Ordering::Relaxed);
    (since.elapsed() >= limit && completed > watch.completed).then(|| {
        format!(
            "the ledger's integrator lock has been held by another session for over {} s while \
             the log did not grow and {} execution(s) of this server wait to be sequenced: \
             find the session holding it (PostgreSQL: pg_locks, advisory)",
            limit.as_secs(),
            completed - watch.completed
        )
    })
}

/// How long the final sequencer pass at shutdown waits, trying again, while another server's
/// integrator holds the ledger (PostgreSQL): when a whole deployment stops at once, completions
/// committed after another server's last read of them are integrated by the last to stop.
const FINAL_PASS_WAIT: Duration = Duration::from_secs(5);

/// Runs the sequencer until nothing waits, on the blocking pool — while another server's
/// integrator holds the lock, trying again for up to `wait_for_busy` (none: the periodic passes
/// leave it to the next tick); logs what it did or why it failed.
pub(crate) async fn sequence_all(state: &Arc<AppState>, wait_for_busy: Duration) {
    // A store seen cut, replaced or rewound is not written to any more (restored, the server is
    // restarted).
    if state.runtime.store_refused().is_some() {
        return;
    }
    let worker = Arc::clone(state);
    let turn = Arc::clone(&state.sequencing).lock_owned().await;
    // Every execution this server completed before the run begins is integrated by a run that
    // is not told busy.
    let completed_before = state.completed_here.load(Ordering::Relaxed);
    let result = state
        .blocking("sequence", move |runtime| {
            let _turn = turn;
            let deadline = std::time::Instant::now() + wait_for_busy;
            // Completions signed but not recorded (the store failed at that moment) are written
            // again first, so that their ids do not stay claimed until the next start.
            let finished = runtime.finish_completions();
            if finished.finished > 0 || finished.waiting > 0 {
                tracing::warn!(
                    target: "parmana::server",
                    finished = finished.finished,
                    waiting = finished.waiting,
                    refused = finished.refused,
                    "completions the store had refused written again"
                );
            }
            let environment = runtime.environment();
            // A memory store holds no history the anchor could record.
            let anchor = worker
                .sequencer
                .anchor
                .as_deref()
                .filter(|_| worker.store_kind != "memory");
            let signers = worker
                .sequencer
                .log_keys
                .as_deref()
                .map(parmana_runtime::signers_of);
            let signing = signers
                .as_deref()
                .map(|signers| parmana_runtime::LogSigning {
                    trust_root: environment.trust_root(),
                    history: environment.trust_history(),
                    now: runtime.clock().now(),
                    release_manifest: environment.release_manifest().version(),
                    signers,
                    anchor,
                })
                // A log key the trust root in force rotated out (a reload took it) signs no
                // more; the completions are still integrated into the ledger, so that none
                // waits unsequenced, and `/readyz` says why no checkpoint is signed.
                .filter(|signing| check_log_signer(*signing).is_ok());
            let mut total = parmana_runtime::SequenceReport::default();
            loop {
                // The anchor's first-run checks are made with no key able to sign too.
                let report =
                    worker
                        .log_sequencer
                        .run_all_anchored(runtime.store(), signing, anchor)?;
                total.integrated.extend(report.integrated);
                total.size = total.size.max(report.size);
                total.checkpoint = report.checkpoint.or(total.checkpoint);
                total.busy = report.busy;
                if !report.busy || std::time::Instant::now() >= deadline {
                    return Ok::<_, parmana_runtime::ExecutionError>(total);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await;
    state.metrics.sequencer_run(match &result {
        // Busy only when it did nothing: a run that integrated or signed before it found the
        // ledger held ran.
        Ok(Ok(report))
            if report.busy && report.integrated.is_empty() && report.checkpoint.is_none() =>
        {
            SequencerRun::Busy
        }
        Ok(Ok(report)) => SequencerRun::Ran { size: report.size },
        Ok(Err(_)) | Err(_) => SequencerRun::Failed,
    });
    match result {
        Ok(Ok(report)) => {
            watch_integrator(state, &report, completed_before);
            if !report.integrated.is_empty() {
                // The log routes serve the grown log from the next request on.
                state.log_cache.expire();
            }
            if !report.integrated.is_empty() || report.checkpoint.is_some() {
                tracing::debug!(
                    target: "parmana::server",
                    integrated = report.integrated.len(),
                    size = report.size,
                    checkpoint = report.checkpoint.as_ref().map(|c| c.size),
                    "sequenced"
                );
            }
        }
        Ok(Err(error)) if state.log_sequencer.store_rewound().is_some() => {
            // The run showed the store cut, replaced or rewound under the log this server kept
            // (or the anchor): the ids cut away would execute again. Every execution is refused
            // from now on, and `/readyz` says why, until the store is restored and the server
            // restarted. (A run refused only because another signer got ahead shows nothing,
            // and is tried again at the next tick.)
            if state.runtime.store_refused().is_none() {
                tracing::error!(target: "parmana::server", code = error.code(), %error, "replay store cut or rewritten under the log; executions refused until it is restored and the server restarted");
            }
            state.runtime.refuse_store(format!(
                "its ledger is broken or no longer extends the transparency log this server \
                 keeps ({}): it was cut, replaced or rewritten; the server's log says how",
                error.code()
            ));
        }
        Ok(Err(error)) => {
            tracing::warn!(target: "parmana::server", code = error.code(), %error, "sequencer run failed");
        }
        Err(error) => {
            tracing::warn!(target: "parmana::server", code = error.code, "sequencer task failed");
        }
    }
}

/// The server's handlers of SIGHUP, SIGTERM and SIGINT, installed before it serves.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the three handlers (inside the tokio runtime).
    fn install() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

/// SIGHUP reloads; SIGTERM and SIGINT drain and stop: `/readyz` turns to 503 at once, the server
/// goes on serving for the shutdown delay (a second SIGTERM or SIGINT cuts it short), then stops
/// accepting and gives the requests in flight the shutdown grace.
async fn watch_signals(signals: Signals, state: Arc<AppState>, handle: Handle<SocketAddr>) {
    let Signals {
        mut hangup,
        mut terminate,
        mut interrupt,
    } = signals;
    // A reload runs in its own task, so that SIGTERM is heeded while one reads and verifies
    // the files (up to the store's wait and every bundle); reloads run one after another
    // (`request_reload`: a turn each, one waiting at most), each reading the files as they are
    // when its turn comes.
    loop {
        tokio::select! {
            _ = hangup.recv() => crate::reload::reload_on_signal(&state),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    start_draining(&state);
    if !state.limits.shutdown_delay.is_zero() {
        let delay = tokio::time::sleep(state.limits.shutdown_delay);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                () = &mut delay => break,
                _ = hangup.recv() => crate::reload::reload_on_signal(&state),
                _ = terminate.recv() => {
                    tracing::info!(target: "parmana::server", "a second signal: the shutdown delay is cut short");
                    break;
                }
                _ = interrupt.recv() => {
                    tracing::info!(target: "parmana::server", "a second signal: the shutdown delay is cut short");
                    break;
                }
            }
        }
    }
    tracing::info!(
        target: "parmana::server",
        grace_ms = millis_u64(state.limits.shutdown_grace),
        "stopped accepting: requests in flight finish"
    );
    end_grace_after(&state, &handle);
}

/// How long the answers made when the shutdown grace runs out get to be written before the
/// connections are closed.
pub(crate) const ANSWERS_AFTER_GRACE: Duration = Duration::from_secs(1);

/// Stops accepting, lets the requests in flight finish for the shutdown grace, then answers each
/// still running (`503 server.shutting_down`, with the `Location` of an execution it started:
/// the only way a client that let the server make the id learns it) and closes the connections
/// [`ANSWERS_AFTER_GRACE`] later. The runtime calls those requests started go on; the process
/// waits for them before it exits.
fn end_grace_after(state: &Arc<AppState>, handle: &Handle<SocketAddr>) {
    let grace = state.limits.shutdown_grace;
    handle.graceful_shutdown(Some(grace.saturating_add(ANSWERS_AFTER_GRACE)));
    let state = Arc::clone(state);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        state.grace_over.send_replace(true);
    });
}

/// What SIGTERM and SIGINT do first: `/readyz` and the ready gauge turn to not ready
/// (`draining`), and the log says so. The listener closes after the shutdown delay.
pub(crate) fn start_draining(state: &AppState) {
    state.draining.store(true, Ordering::SeqCst);
    std::sync::atomic::fence(Ordering::SeqCst);
    state.metrics.set_ready(false);
    if state.limits.shutdown_delay.is_zero() {
        tracing::info!(
            target: "parmana::server",
            grace_ms = millis_u64(state.limits.shutdown_grace),
            "draining: /readyz answers 503; requests in flight finish"
        );
    } else {
        tracing::info!(
            target: "parmana::server",
            delay_ms = millis_u64(state.limits.shutdown_delay),
            grace_ms = millis_u64(state.limits.shutdown_grace),
            "draining: /readyz answers 503; new connections are accepted for the shutdown delay, then requests in flight finish"
        );
    }
}

/// A duration in whole milliseconds, for the log.
fn millis_u64(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Every route, the body limit, and the guard middleware (shedding, timeout, metrics, logs).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/executions", post(api::create_execution))
        .route("/v1/executions/{id}", get(api::read_execution))
        .route("/v1/executions/{id}/proof", get(tlog::proof))
        .route("/log/checkpoint", get(tlog::checkpoint))
        .route("/log/tile/{*tile_path}", get(tlog::tile))
        .route("/v1/evaluations", post(api::evaluate))
        // Its own limit, over the one of every other route below (the innermost wins): an
        // attestation with its signals embedded, and the signals, are larger than the request
        // that made it.
        .route(
            "/v1/verify",
            post(api::verify).layer(DefaultBodyLimit::max(state.limits.max_verify_body_bytes())),
        )
        .route("/v1/status", get(api::status))
        .route("/v1/admin/reload", post(api::reload))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route(authzen::WELL_KNOWN, get(authzen::configuration))
        .route(
            "/.well-known/authzen-configuration/{*pdp_path}",
            get(authzen::configuration_under_path),
        )
        // The catch-all takes no empty segment: the root identifier's own (`…/` as written).
        .route(
            "/.well-known/authzen-configuration/",
            get(authzen::configuration_under_path),
        )
        .fallback(api::not_found)
        // After every route: it applies to the routes registered before it.
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            observe::guard,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_clear_text_off_loopback_are_warned_of() {
        let at = |address: &str| address.parse::<std::net::SocketAddr>().unwrap();
        for (tls, listen, warned) in [
            (false, "0.0.0.0:8080", true),
            (false, "[::]:8080", true),
            (false, "10.1.2.3:8080", true),
            (true, "0.0.0.0:8443", false),
            (false, "127.0.0.1:8080", false),
            (false, "[::1]:8080", false),
        ] {
            assert_eq!(
                plaintext_tokens_warning(tls, at(listen)).is_some(),
                warned,
                "{tls} {listen}"
            );
        }
    }

    /// The default limits with the one named set to `value` (milliseconds for durations),
    /// and the sequencer's cadence.
    fn with(name: &str, value: usize) -> (Limits, Duration) {
        let mut limits = Limits::default();
        let mut cadence = Duration::from_secs(1);
        let millis = Duration::from_millis(value as u64);
        match name {
            "max_body_bytes" => limits.max_body_bytes = value,
            "max_header_bytes" => limits.max_header_bytes = value,
            "max_concurrency" => limits.max_concurrency = value,
            "max_connections" => limits.max_connections = value,
            "request_timeout_ms" => limits.request_timeout = millis,
            "idle_timeout_ms" => limits.idle_timeout = millis,
            "shutdown_grace_ms" => limits.shutdown_grace = millis,
            "shutdown_delay_ms" => limits.shutdown_delay = millis,
            "max_connection_age_ms" => limits.max_connection_age = millis,
            "sequence_interval_ms" => cadence = millis,
            other => panic!("no limit {other}"),
        }
        (limits, cadence)
    }

    #[test]
    fn every_limit_is_refused_outside_its_range_and_kept_at_its_ends() {
        assert!(check_limits(&Limits::default(), Duration::from_secs(1)).is_ok());
        for (name, min, max) in LIMIT_RANGES {
            for value in [min, max] {
                let (limits, cadence) = with(name, value);
                assert!(check_limits(&limits, cadence).is_ok(), "{name} {value}");
            }
            let outside = [min.checked_sub(1), Some(max + 1)];
            for value in outside.into_iter().flatten() {
                let (limits, cadence) = with(name, value);
                match check_limits(&limits, cadence) {
                    Err(ServerError::LimitOutOfRange { name: refused, .. }) => {
                        assert_eq!(refused, name, "{value}");
                    }
                    other => panic!("{name} {value}: {other:?}"),
                }
            }
        }
    }
}
