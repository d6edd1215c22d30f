//! The state every handler shares: the runtime, tokens, metrics, readiness and draining flags, and `blocking`, the way a handler calls the synchronous runtime when the call may block (on tokio's blocking pool, timed, holding the request's concurrency slot).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use parmana_runtime::Runtime;
use parmana_runtime::canon::{ExecutionId, PolicyRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Scope;
use crate::authzen::AuthzenMapping;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::settings::{Authentication, Limits, LogSettings, Logging};

tokio::task_local! {
    /// The concurrency slot of the request being handled (see `observe::guard`).
    pub(crate) static SLOT: Arc<Slot>;
    /// What is known of the request being handled, for its log line (see [`Notes`]).
    pub(crate) static NOTES: Arc<Mutex<Notes>>;
}

/// What is known of the request being handled as soon as it is known — the token's name (set by
/// [`AppState::authorize`]), the policy and the execution id (set by the handlers through
/// [`note_request`]) — read by `observe::guard` for the log line of any answer: a refusal, and
/// an answer on the request's timeout, name them too.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub(crate) caller: Option<String>,
    pub(crate) policy: Option<String>,
    pub(crate) execution_id: Option<String>,
    /// Whether the handler is reading the request's body (`api::read_body`): a request timed
    /// out meanwhile was never started, its client was too slow to send it.
    pub(crate) reading_body: bool,
    /// Whether an evaluation of the AuthZEN boxcar being handled may execute (one names an
    /// execution id, and the token may execute): a boxcar notes no id of its own.
    pub(crate) boxcar_executes: bool,
    /// Where the noted execution reads back, as the handler that noted it answers it (AuthZEN's
    /// routes: under `pdp_url`'s path); `/v1/executions/{id}` where none is noted.
    pub(crate) location: Option<String>,
    /// Whether a handler read the request's body to its end (`api::read_body`): an answer to a
    /// request with a body left unread closes the connection.
    pub(crate) body_read: bool,
    /// The request's one set of signals, noted only where the log writes them
    /// (`Logging::signals`): the line of a refusal carries them too.
    pub(crate) signals: Option<String>,
}

/// Notes the request's one set of signals for its log line, where the log writes them (a
/// no-op otherwise, and outside a request).
pub(crate) fn note_signals(logging: &crate::settings::Logging, signals: impl FnOnce() -> String) {
    if !logging.signals {
        return;
    }
    let signals = signals();
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            notes.signals = Some(signals);
        }
    });
}

/// Notes where the noted execution reads back (a no-op outside a request).
pub(crate) fn note_location(location: String) {
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            notes.location = Some(location);
        }
    });
}

/// Notes that the AuthZEN boxcar being handled may execute (a no-op outside a request).
pub(crate) fn note_boxcar_executes() {
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            notes.boxcar_executes = true;
        }
    });
}

/// Notes whether the request's body is being read, and once it is no longer, whether it was
/// read to its end (a no-op outside a request).
pub(crate) fn note_reading_body(reading: bool, read: bool) {
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            notes.reading_body = reading;
            notes.body_read = read;
        }
    });
}

/// Notes the policy and execution id of the request being handled (a no-op outside one). Only
/// checked values can be noted: an unchecked one may be as long as the body.
pub(crate) fn note_request(policy: Option<&PolicyRef>, execution_id: Option<&ExecutionId>) {
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            if let Some(policy) = policy {
                notes.policy = Some(policy.to_string());
            }
            if let Some(execution_id) = execution_id {
                notes.execution_id = Some(execution_id.as_str().to_owned());
            }
        }
    });
}

/// What a request holds while it, or a runtime call it started, runs: a concurrency slot, a
/// place of the share every caller may take (or none: a caller that may execute, on the slots
/// kept for executions) and, for the log's routes, a place of the log's share (see
/// `observe::guard`). They are given back only when the request and its runtime call are both
/// done. Its place in the body budget is given back only once its answer is written too
/// ([`AnswerHolding`]).
#[derive(Debug)]
pub(crate) struct Slot {
    _request: OwnedSemaphorePermit,
    _log_share: Option<OwnedSemaphorePermit>,
    /// A place of [`AppState::shared_in_flight`]: none when the request took one of the slots
    /// kept for callers that may execute.
    shared: Option<OwnedSemaphorePermit>,
    /// The request's `Authorization` header, to learn, when it is needed (a share found full),
    /// whether its caller may execute.
    authorization: Option<axum::http::HeaderValue>,
    /// Whether the caller may execute, once learned.
    may_use_reserve: std::sync::OnceLock<bool>,
    /// The body's place in [`AppState::body_bytes`] (and in [`AppState::shared_body_bytes`]),
    /// once the handler reads a body (and an explanation's, or an answer's, beside it): shared
    /// with the answer's body.
    body: BodyBudgetPlace,
}

/// The permits of a request's place in the body budget: of [`AppState::body_bytes`], and of
/// [`AppState::shared_body_bytes`] for what it took of the share every caller may take.
#[derive(Debug, Default)]
pub(crate) struct HeldBody {
    all: Option<OwnedSemaphorePermit>,
    shared: Option<OwnedSemaphorePermit>,
    /// Of [`AppState::log_body_bytes`], for a log route's answer.
    log: Option<OwnedSemaphorePermit>,
}

/// A request's place in [`AppState::body_bytes`], held by its [`Slot`] and by its answer's body.
pub(crate) type BodyBudgetPlace = Arc<std::sync::Mutex<HeldBody>>;

/// Merges `more` into `held`.
fn merge_permit(held: &mut Option<OwnedSemaphorePermit>, more: Option<OwnedSemaphorePermit>) {
    match (held.as_mut(), more) {
        (Some(held), Some(more)) => held.merge(more),
        (None, more) => *held = more,
        (Some(_), None) => {}
    }
}

/// An answer's body that keeps its request's place in the body budget until hyper has taken its
/// last frame, or dropped it (its connection closed): a client that reads its answer
/// slowly, or not at all, holds the memory of the answer — an explanation's trace, an
/// attestation read back — in the budget, not beside it, so that such answers held at once stay
/// within the budget as the bodies do. The answer is handed over in frames of at most
/// [`ANSWER_FRAME_BYTES`], each copied: hyper takes frames only while its write buffer
/// (`max_buf_size`, the header limit) has room, so the rest waits here, counted, until the
/// client reads; what hyper holds once this is dropped is at most that buffer and one frame, per
/// connection, and not the answer's whole allocation. A smaller answer is handed over as it is.
#[derive(Debug)]
pub(crate) struct AnswerHolding {
    inner: axum::body::Body,
    /// What was taken of `inner` and not yet handed over.
    pending: axum::body::Bytes,
    /// Whether `pending` is being handed over in frames: then every frame is a copy, its last
    /// too (a slice would keep the whole answer's allocation alive in hyper's buffer).
    framed: bool,
    _place: BodyBudgetPlace,
}

/// The most an answer's frame holds ([`AnswerHolding`]).
pub(crate) const ANSWER_FRAME_BYTES: usize = 8 * 1024;

impl AnswerHolding {
    /// `inner`, holding `place` until it is dropped.
    pub(crate) fn new(inner: axum::body::Body, place: BodyBudgetPlace) -> Self {
        Self {
            inner,
            pending: axum::body::Bytes::new(),
            framed: false,
            _place: place,
        }
    }

    /// The next frame of what is pending: the whole of it when it fits in one frame and was
    /// never split, else a copy of its first [`ANSWER_FRAME_BYTES`] (its last frame too).
    pub(crate) fn next_frame(&mut self) -> axum::body::Bytes {
        if !self.framed && self.pending.len() <= ANSWER_FRAME_BYTES {
            return std::mem::take(&mut self.pending);
        }
        self.framed = true;
        let size = self.pending.len().min(ANSWER_FRAME_BYTES);
        let first = self.pending.split_to(size);
        axum::body::Bytes::copy_from_slice(&first)
    }
}

impl http_body::Body for AnswerHolding {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        loop {
            if !self.pending.is_empty() {
                let frame = self.next_frame();
                return Poll::Ready(Some(Ok(http_body::Frame::data(frame))));
            }
            match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.pending = data;
                        self.framed = false;
                    }
                    // Trailers (none here) as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    // Exact for a whole answer (what is pending and what is left of it): its `Content-Length`
    // stays.
    fn size_hint(&self) -> http_body::SizeHint {
        let pending = u64::try_from(self.pending.len()).unwrap_or(u64::MAX);
        let left = self.inner.size_hint();
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(left.lower().saturating_add(pending));
        if let Some(upper) = left.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}

impl Slot {
    pub(crate) fn new(
        request: OwnedSemaphorePermit,
        log_share: Option<OwnedSemaphorePermit>,
        shared: Option<OwnedSemaphorePermit>,
        authorization: Option<axum::http::HeaderValue>,
    ) -> Self {
        Self {
            _request: request,
            _log_share: log_share,
            shared,
            authorization,
            may_use_reserve: std::sync::OnceLock::new(),
            body: Arc::new(std::sync::Mutex::new(HeldBody::default())),
        }
    }

    /// Whether the request took a place of the share every caller may take.
    pub(crate) fn holds_a_shared_place(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether the request's caller may take what is kept for executions, of the slots and of
    /// the body budget ([`AppState::may_use_reserve`]). Learned once, when first needed.
    pub(crate) fn may_use_reserve(&self, state: &AppState) -> bool {
        *self
            .may_use_reserve
            .get_or_init(|| state.may_use_reserve(self.authorization.as_ref()))
    }

    /// The request's place in the body budget, for its answer's body to hold.
    pub(crate) fn body_place(&self) -> BodyBudgetPlace {
        Arc::clone(&self.body)
    }

    /// Keeps the body's place until the request and its runtime call are both done, with any
    /// place it keeps already (an explanation's beside its request's body).
    fn hold_body(
        &self,
        all: OwnedSemaphorePermit,
        shared: Option<OwnedSemaphorePermit>,
        log: Option<OwnedSemaphorePermit>,
    ) {
        if let Ok(mut body) = self.body.lock() {
            merge_permit(&mut body.all, Some(all));
            merge_permit(&mut body.shared, shared);
            merge_permit(&mut body.log, log);
        }
    }
}

/// What is kept of `total` concurrency slots for callers that may execute: a quarter, at least
/// one where `total` is 2 or more.
pub(crate) fn execution_reserve(total: usize) -> usize {
    if total < 2 { 0 } else { (total / 4).max(1) }
}

/// The bytes of the body budget every caller may take: three quarters of it, but never less
/// than the largest body a route takes (a `POST /v1/verify` body) — so that one such body, or an
/// answer read back, is never shed on an idle server whoever sends it.
pub(crate) fn shared_body_bytes(limits: &Limits) -> usize {
    let total = limits.max_body_bytes_in_flight();
    let largest = limits
        .max_verify_body_bytes()
        .max(limits.max_body_bytes)
        .min(total);
    (total - total / 4).max(largest)
}

/// The request-body bytes a permit of [`AppState::body_bytes`] stands for (a permit a KiB,
/// rounded up: a semaphore counts in `u32`).
const BODY_PERMIT_BYTES: usize = 1024;

/// The permits of [`AppState::body_bytes`] that `bytes` of body take (at least one).
pub(crate) fn body_permits(bytes: usize) -> usize {
    bytes.div_ceil(BODY_PERMIT_BYTES).max(1)
}

/// The place a body being read holds in the server's body budget, grown as its bytes arrive,
/// and held, once the body is read, until its request and its runtime call are done.
#[derive(Debug, Default)]
pub(crate) struct BodyPlace {
    permit: Option<OwnedSemaphorePermit>,
    /// What it took of the share every caller may take ([`AppState::shared_body_bytes`]).
    shared: Option<OwnedSemaphorePermit>,
    /// What a log route's answer took of the log's share ([`AppState::log_body_bytes`]).
    log: Option<OwnedSemaphorePermit>,
    permits: usize,
}

impl BodyPlace {
    /// Grows the place to `bytes` of body: `503 server.overloaded` when the budget has no room
    /// for the rest now (never waited for; what was taken is given back).
    pub(crate) fn grow(&mut self, state: &AppState, bytes: usize) -> Result<(), ApiError> {
        let needed = body_permits(bytes).saturating_sub(self.permits);
        if needed == 0 {
            return Ok(());
        }
        let more = u32::try_from(needed).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&state.body_bytes).try_acquire_many_owned(more) else {
            state.metrics.shed();
            return Err(ApiError::overloaded());
        };
        // Of the share every caller may take too, or — for a caller that may execute, once the
        // share is full — of what is kept for executions. Outside a request (unit tests of a
        // handler) nothing is kept.
        let shared = match Arc::clone(&state.shared_body_bytes).try_acquire_many_owned(more) {
            Ok(shared) => Some(shared),
            // Outside a request no slot says who asks: nothing kept is taken.
            Err(_)
                if SLOT
                    .try_with(|slot| slot.may_use_reserve(state))
                    .unwrap_or(false) =>
            {
                None
            }
            Err(_) => {
                state.metrics.shed();
                return Err(ApiError::overloaded());
            }
        };
        merge_permit(&mut self.permit, Some(permit));
        merge_permit(&mut self.shared, shared);
        self.permits = self.permits.saturating_add(needed);
        Ok(())
    }

    /// Takes the place of an answer of `bytes` (a read-back attestation), held until the
    /// request's answer is written ([`AnswerHolding`]): at most the share every caller may take
    /// ([`shared_body_bytes`]), so that one larger is still answered alone, never refused on an
    /// idle server whoever asks; `503 server.overloaded` when the budget has no room for it now.
    pub(crate) fn hold_answer(state: &AppState, bytes: usize) -> Result<(), ApiError> {
        let mut place = Self::default();
        // At most what every caller may take (the share, not the whole budget), so that it is
        // answered on an idle server whoever asks.
        place.grow(state, bytes.min(shared_body_bytes(&state.limits)))?;
        place.hold();
        Ok(())
    }

    /// Takes the place of a log route's answer of `bytes` ([`hold_answer`](Self::hold_answer)),
    /// of the log's share of the budget first (a quarter of it, at least a permit): the log's
    /// readers — anonymous ones, with a public log — who do not read their answers hold at most
    /// that share, never the budget the other routes need. At most that share is taken, so that
    /// an answer larger is still answered alone.
    pub(crate) fn hold_log_answer(state: &AppState, bytes: usize) -> Result<(), ApiError> {
        let share = state.limits.max_body_bytes_in_flight() / 4;
        let bytes = bytes.min(share.max(BODY_PERMIT_BYTES));
        let wanted = u32::try_from(body_permits(bytes)).unwrap_or(u32::MAX);
        let Ok(log) = Arc::clone(&state.log_body_bytes).try_acquire_many_owned(wanted) else {
            state.metrics.shed();
            return Err(ApiError::overloaded());
        };
        let mut place = Self::default();
        place.grow(state, bytes)?;
        place.log = Some(log);
        place.hold();
        Ok(())
    }

    /// The bytes of budget the place holds.
    #[cfg(test)]
    pub(crate) fn charged_bytes(&self) -> usize {
        self.permits.saturating_mul(BODY_PERMIT_BYTES)
    }

    /// Keeps the place for the request being handled, until it and its runtime call are done
    /// (outside a request's scope — unit tests of a handler — it is given back at once).
    pub(crate) fn hold(self) {
        if let Some(permit) = self.permit {
            let (shared, log) = (self.shared, self.log);
            let _ = SLOT.try_with(|slot| slot.hold_body(permit, shared, log));
        }
    }
}

/// A store probe's answer: when it came, and why the store is not ready, if it is not.
pub(crate) type StoreProbe = (Instant, Option<String>);

/// Shared by every request.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) runtime: Runtime,
    /// Who may call: the tokens, replaced whole by a reload that reads the tokens file again.
    pub(crate) authentication: std::sync::RwLock<Authentication>,
    /// Served without authentication (`--insecure-no-auth`; fixed for the process): every
    /// route refuses what a browser sends for another site's page.
    pub(crate) no_auth: bool,
    pub(crate) metrics: Metrics,
    pub(crate) limits: Limits,
    pub(crate) logging: Logging,
    pub(crate) authzen: AuthzenMapping,
    pub(crate) store_kind: String,
    /// The transparency log served, if any.
    pub(crate) log: Option<LogSettings>,
    /// `https` with TLS, else `http` (for the AuthZEN metadata).
    pub(crate) scheme: &'static str,
    pub(crate) started: Instant,
    /// Requests in flight: a permit each; none left means shed.
    pub(crate) in_flight: Arc<Semaphore>,
    /// The request-body bytes held and worked on at once
    /// ([`Limits::max_body_bytes_in_flight`](crate::Limits::max_body_bytes_in_flight), a permit a
    /// KiB); no room means shed.
    pub(crate) body_bytes: Arc<Semaphore>,
    /// The share of `in_flight` every caller may hold: the rest (a quarter, at least one, where
    /// `max_concurrency` is 2 or more; [`execution_reserve`]) is kept for callers that may
    /// execute, so that callers of other scopes (`verify`, `evaluate`, `read`) cannot take every
    /// slot from executions.
    pub(crate) shared_in_flight: Arc<Semaphore>,
    /// The share of `body_bytes` every caller may hold, the rest kept for callers that may
    /// execute likewise.
    pub(crate) shared_body_bytes: Arc<Semaphore>,
    /// The share of `body_bytes` the log routes' answers may hold (a quarter, at least a
    /// permit; [`BodyPlace::hold_log_answer`]).
    pub(crate) log_body_bytes: Arc<Semaphore>,
    /// The share of `in_flight` the log's routes may hold (a quarter, at least one): anonymous
    /// readers of a public log cannot take the slots executions need.
    pub(crate) log_in_flight: Arc<Semaphore>,
    /// Set once leftovers are recovered and the server accepts traffic.
    pub(crate) started_up: AtomicBool,
    /// Set on SIGTERM/SIGINT: `/readyz` answers 503 while requests in flight finish.
    pub(crate) draining: AtomicBool,
    /// Set when the shutdown grace runs out: each request still unanswered is answered at once
    /// (`503 server.shutting_down`, naming its execution), before its connection is closed.
    pub(crate) grace_over: tokio::sync::watch::Sender<bool>,
    /// Runtime calls handed to the blocking pool: which path a request took, for the tests.
    #[cfg(test)]
    pub(crate) blocking_handoffs: std::sync::atomic::AtomicUsize,
    /// The background sequencer's settings and its driver (which keeps the log between runs).
    pub(crate) sequencer: crate::settings::SequencerSettings,
    pub(crate) log_sequencer: parmana_runtime::LogSequencer,
    /// One sequencer pass at a time, the turn held by the pass's blocking work itself: the final
    /// pass at shutdown waits for a periodic one the drain aborted while its work still runs.
    pub(crate) sequencing: Arc<tokio::sync::Mutex<()>>,
    /// One reload at a time, from a signal or `POST /v1/admin/reload` alike, the turn held by
    /// the reload's blocking work itself (a request answered on its timeout does not end it):
    /// each reads the files as they are when its turn comes, and the last reload recorded is
    /// the last made.
    pub(crate) reloading: Arc<tokio::sync::Mutex<()>>,
    /// The reload asked for and still waiting for its turn, if any: a reload asked for meanwhile
    /// is that one (`lifecycle::request_reload`).
    pub(crate) queued_reload: std::sync::Mutex<
        Option<tokio::sync::watch::Receiver<Option<crate::reload::ReloadOutcome>>>,
    >,
    /// Held while the tokens file is read and put in force: a reload does that first, before it
    /// waits for its turn (a revocation never waits on the store), and two such reads never
    /// put an older file back in force after a newer one.
    pub(crate) tokens_reloading: std::sync::Mutex<()>,
    /// A read of the tokens file before a reload's turn is waiting for [`Self::tokens_reloading`]:
    /// one asked for meanwhile is that one.
    pub(crate) tokens_read_waiting: std::sync::atomic::AtomicBool,
    /// The TLS served, when it is (read again by a reload).
    pub(crate) tls: Option<crate::tls::ServedTls>,
    /// When the server's TLS certificate in force stops being valid (`/readyz` turns 503 then).
    pub(crate) tls_not_after: std::sync::Mutex<Option<parmana_runtime::canon::Timestamp>>,
    /// The log the log routes serve, read at most once per sequencer cadence.
    pub(crate) log_cache: crate::log_cache::LogCache,
    /// The last store probe of `/readyz` (when it answered, and why the store is not ready,
    /// if it is not); held by the one probe running (`api::store_not_ready`).
    pub(crate) probe: Arc<tokio::sync::Mutex<Option<StoreProbe>>>,
    /// The last checkpoint the log routes signed, reused while the log and the trust root are
    /// the same (`tlog::signed_checkpoint`).
    pub(crate) signed_note: std::sync::Mutex<Option<SignedNote>>,
    /// Held while a checkpoint is signed for the log routes (its entries read and verified):
    /// requests that miss [`signed_note`](Self::signed_note) meanwhile wait and take its
    /// result, instead of each verifying the entries again.
    pub(crate) signing_note: std::sync::Mutex<()>,
    /// The newest checkpoint the configured witnesses cosigned as far as the trust root requires
    /// (`cosigning::cosign_periodically`), which the log routes serve where the trust root's `log`
    /// role lists witnesses.
    pub(crate) cosigned_note: std::sync::Mutex<Option<CosignedNote>>,
    /// Each witness (by its URL) as this server knows it: the size it cosigned last, and
    /// whether a request to it is still waiting for an answer.
    pub(crate) witnesses: std::sync::Mutex<std::collections::BTreeMap<String, WitnessProgress>>,
    /// Executions this server completed (what its sequencer expects to see integrated).
    pub(crate) completed_here: std::sync::atomic::AtomicU64,
    /// The reloads that took an environment, and how many of them the store's marks were
    /// raised after (`lifecycle::record_reloaded_versions`, on the sequencer's ticks).
    pub(crate) reloads_taken: std::sync::atomic::AtomicU64,
    pub(crate) reloads_recorded: std::sync::atomic::AtomicU64,
    /// The last of them whose failure to be recorded was logged.
    pub(crate) reloads_warned: std::sync::atomic::AtomicU64,
    /// Since when every sequencer run found the ledger held by another integrator without the
    /// log growing, and how many executions this server had completed then
    /// (`lifecycle::watch_integrator`).
    pub(crate) held_since: std::sync::Mutex<Option<HeldLedger>>,
}

/// What the sequencer's runs showed of the ledger's integration: since when every run found it
/// held by another integrator with the log not growing (`None` while runs integrate), the log's
/// size then, and how many executions this server had completed when the last run that
/// integrated began (all of them in the log since).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldLedger {
    pub(crate) since: Option<Instant>,
    pub(crate) size: u64,
    pub(crate) completed: u64,
}

/// A configured witness as the cosigning rounds left it (`cosigning::cosign_once`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WitnessProgress {
    /// The size it cosigned last for this server (0 until it has): the old size its next request
    /// starts from, one request instead of a `409` and a second.
    pub(crate) cosigned_size: u64,
    /// A request to it is still waiting for its answer (at most one at a time: a round skips
    /// it, so a witness that does not answer costs each round nothing).
    pub(crate) asking: bool,
}

/// A checkpoint cosigned by enough of the configured witnesses: its size and root, the version of
/// the trust root whose `log` role it meets, and the note.
#[derive(Debug, Clone)]
pub(crate) struct CosignedNote {
    pub(crate) size: u64,
    pub(crate) root: parmana_runtime::canon::Digest,
    pub(crate) trust_root_version: u64,
    pub(crate) note: String,
}

/// A signed checkpoint note and what it was signed for: the log's size and root, and the
/// version of the trust root whose `log` role the key held. Ed25519 signatures are
/// deterministic, so signing the same again would give the same note.
#[derive(Debug, Clone)]
pub(crate) struct SignedNote {
    pub(crate) size: u64,
    pub(crate) root: parmana_runtime::canon::Digest,
    pub(crate) trust_root_version: u64,
    /// The note, or why none is signed over this log: an entry that is not an attested
    /// execution (its position and the reason), refused again without reading the entries
    /// again until the log or the trust root changes, or [`REFUSAL_KEPT_FOR`] has passed — what
    /// refused it may depend on the clock or on what the store holds, which change without the
    /// log changing.
    pub(crate) note: Result<String, (u64, String)>,
    /// When it was signed or refused.
    pub(crate) at: Instant,
}

/// How long a refusal to sign over a log is answered without checking the entries again.
pub(crate) const REFUSAL_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl AppState {
    /// Whether a request with `authorization` (its header) may take what is kept for executions:
    /// without authentication, any; else one whose token holds the `execute` scope, or `admin`
    /// (an operator revoking a token that floods the server gets through).
    pub(crate) fn may_use_reserve(&self, authorization: Option<&axum::http::HeaderValue>) -> bool {
        let authentication = self
            .authentication
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*authentication {
            Authentication::InsecureNoAuth => true,
            Authentication::Tokens(tokens) | Authentication::DevToken(tokens) => {
                let mut headers = HeaderMap::new();
                if let Some(value) = authorization {
                    headers.insert(axum::http::header::AUTHORIZATION, value.clone());
                }
                [Scope::Execute, Scope::Admin]
                    .into_iter()
                    .any(|scope| tokens.authorize_noting(&headers, scope, |_| {}).is_ok())
            }
        }
    }

    /// Checks the request's bearer token for `scope` (nothing to check without authentication).
    /// Returns the token's name, for logs.
    pub(crate) fn authorize(
        &self,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<Option<String>, ApiError> {
        // A poisoned lock (a panic while replacing the tokens, which cannot happen: it is one
        // assignment) still holds a whole set.
        let authentication = self
            .authentication
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*authentication {
            Authentication::InsecureNoAuth => {
                crate::auth::refuse_browser_requests(headers)?;
                Ok(None)
            }
            Authentication::Tokens(tokens) | Authentication::DevToken(tokens) => {
                // Noted once the token is known, before its scope is checked: a `403`'s log line
                // names its caller too.
                let name = tokens.authorize_noting(headers, scope, |name| {
                    let _ = NOTES.try_with(|notes| {
                        if let Ok(mut notes) = notes.lock() {
                            notes.caller.get_or_insert_with(|| name.to_owned());
                        }
                    });
                })?;
                Ok(Some(name))
            }
        }
    }

    /// Runs `work` (a call into the synchronous runtime, which may block on the store) on the
    /// blocking pool, recording its latency under `operation`. The async workers never block.
    pub(crate) async fn blocking<T, F>(
        self: &Arc<Self>,
        operation: &'static str,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&Runtime) -> T + Send + 'static,
        T: Send + 'static,
    {
        let state = Arc::clone(self);
        // The request's concurrency slot goes with the call: a request answered on its timeout
        // keeps its slot until the runtime call it started has finished, so calls stuck on a
        // store never outnumber `max_concurrency` (more requests are shed, not started).
        // Its latency is recorded by the call itself, so a call that outlives its request's
        // timeout is counted too.
        let slot = SLOT.try_with(Arc::clone).ok();
        #[cfg(test)]
        self.blocking_handoffs.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            // Timed as it ends, a call that panics too.
            let _timed = TimedCall {
                state: &state,
                operation,
                started,
            };
            work(&state.runtime)
        })
        .await;
        joined.map_err(|e| {
            // A defect (a panic): what it said may name hosts, paths or data, so it goes to
            // the server's log only; the caller gets a fixed message.
            tracing::error!(target: "parmana::server", operation, error = %e, "a runtime task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                format!("the {operation} task failed; what it said is in the server's log"),
            )
        })
    }

    /// Runs `work`, which costs what a request body of `bytes` chooses (parsing it, checking
    /// what it expands to), here on the async worker when the body is small (at most
    /// [`INLINE_EVALUATION_BYTES`](crate::api::INLINE_EVALUATION_BYTES)) and on the blocking
    /// pool otherwise (timed as `parse`), so that no body holds up the workers that answer
    /// `/healthz`, `/readyz` and new connections.
    pub(crate) async fn sized<T, F>(self: &Arc<Self>, bytes: usize, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        if bytes <= crate::api::INLINE_EVALUATION_BYTES {
            return work();
        }
        self.blocking("parse", move |_| work()).await?
    }

    /// Executes `request` with `runtime`, counting the executions this server completes (what
    /// its sequencer expects to see integrated: `lifecycle::integration_stalled`). An id the
    /// ledger's records hold is refused as a replay by the store layer (`served_store`),
    /// whatever the store's rows say.
    pub(crate) fn execute_once(
        &self,
        runtime: &Runtime,
        request: &parmana_runtime::ExecutionRequest,
    ) -> Result<parmana_runtime::Attestation, parmana_runtime::ExecutionError> {
        let executed = runtime.execute(request);
        if executed.is_ok() {
            self.completed_here.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refuse_store_on_evidence(runtime);
        }
        executed
    }

    /// Refuses the store for good where the store layer found a row deleted behind it (an id
    /// the ledger records with no row): the same evidence a restart would find before ready.
    pub(crate) fn refuse_store_on_evidence(&self, runtime: &Runtime) {
        if let Some(evidence) = self.sequencer.executed.evidence()
            && runtime.store_refused().is_none()
        {
            tracing::error!(
                target: "parmana::server",
                code = "replay.store_corrupt",
                evidence,
                "replay store rows deleted behind it; executions refused until it is restored and the server restarted"
            );
            // What every later refusal and the unauthenticated `/readyz` say: not the id (a
            // client's, perhaps a business identifier), which the log line above names.
            runtime.refuse_store(
                "a row of an execution the ledger records was deleted behind the store \
                 (replay.store_corrupt; the server's log names the execution)"
                    .to_owned(),
            );
        }
    }

    /// Whether a store call may wait (on a disk, a lock of another process, a network): every
    /// store but `memory`, which holds one short lock of this process and nothing else.
    pub(crate) fn store_waits(&self) -> bool {
        self.store_kind != "memory"
    }

    /// The tokens file to read again on a reload (none without one: a dev token, or no
    /// authentication).
    pub(crate) fn tokens_file(&self) -> Option<std::path::PathBuf> {
        match &*self
            .authentication
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Authentication::Tokens(tokens) => tokens.file().map(std::path::Path::to_path_buf),
            Authentication::DevToken(_) | Authentication::InsecureNoAuth => None,
        }
    }

    /// Puts `tokens`, read again from the tokens file, in force (from the next request on).
    pub(crate) fn replace_tokens(&self, tokens: crate::auth::Tokens) {
        *self
            .authentication
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Authentication::Tokens(tokens);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Completes when the shutdown grace has run out (never before a shutdown).
    pub(crate) async fn grace_over(&self) {
        let mut over = self.grace_over.subscribe();
        if over.wait_for(|over| *over).await.is_err() {
            // The sender lives as long as the state: never.
            std::future::pending::<()>().await;
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started_up.load(Ordering::SeqCst)
    }
}

/// Records a runtime call's latency under its operation when dropped: as the call returns, or
/// as it unwinds from a panic (a defect), which is then timed too.
struct TimedCall<'a> {
    state: &'a AppState,
    operation: &'static str,
    started: Instant,
}

impl Drop for TimedCall<'_> {
    fn drop(&mut self) {
        self.state
            .metrics
            .runtime_call(self.operation, self.started.elapsed());
    }
}
