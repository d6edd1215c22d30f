//! The transparency log's read API (C2SP `tlog-tiles`: the signed checkpoint, hash tiles, entry bundles, with their caching headers) and `GET /v1/executions/{id}/proof` (a C2SP `tlog-proof`), served when the server has a log key.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parmana_runtime::canon::tile::{Tile, TileKind};
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{
    ExecutionError, LogSigning, LogSnapshot, Runtime, RuntimeEnvironment, parse_execution_id,
};

use crate::auth::Scope;
use crate::error::ApiError;
use crate::settings::LogSettings;
use crate::state::{AppState, REFUSAL_KEPT_FOR, SignedNote};
use crate::wire::ErrorBody;

type Shared = State<Arc<AppState>>;

/// Full tiles and entry bundles never change.
const IMMUTABLE_PUBLIC: &str = "public, max-age=31536000, immutable";
/// The same when the log needs a token: no shared cache may store it for others.
const IMMUTABLE_PRIVATE: &str = "private, max-age=31536000, immutable";
/// The checkpoint moves on; partial tiles are replaced by wider ones.
const NO_CACHE: &str = "no-cache";

/// Refuses a kept checkpoint of `size` and `root` that `log`, the store's log as read now, no
/// longer extends (`trust.tlog_inconsistent`): cut or rewritten since it was signed. Defence in
/// depth: the log served only grows (a catch-up never takes a store that does not extend it),
/// and a store seen cut is refused before this, by the sequencer's latch.
fn check_still_extended(
    log: &LogSnapshot,
    size: u64,
    root: parmana_runtime::canon::Digest,
) -> Result<(), ApiError> {
    if log.root_at(size) == Some(root) {
        return Ok(());
    }
    let error: ExecutionError = parmana_runtime::trust::TrustError::TlogInconsistent {
        old_size: size,
        new_size: log.size(),
        reason: parmana_runtime::canon::merkle::MerkleError::RootMismatch,
    }
    .into();
    Err(ApiError::from_execution(&error))
}

/// `server.not_yet_cosigned` (with `Retry-After`): the trust root requires witnesses'
/// cosignatures and the configured witnesses have cosigned no checkpoint yet (`None`), or none
/// that holds the execution asked for (the size of the newest they cosigned).
fn not_yet_cosigned(status: StatusCode, cosigned_size: Option<u64>) -> ApiError {
    let what = match cosigned_size {
        None => "the witnesses have cosigned no checkpoint of this log yet".to_owned(),
        Some(size) => format!(
            "the execution's entry came after the newest checkpoint the witnesses cosigned \
             (size {size})"
        ),
    };
    ApiError::new(
        status,
        "server.not_yet_cosigned",
        format!(
            "{what}; the trust root requires their cosignatures, and the server asks the \
             configured witnesses every sequencer cadence (its log says why a round failed)"
        ),
    )
    .with_header(header::RETRY_AFTER, crate::error::RETRY_AFTER_SECONDS)
}

/// The log settings, or `404 server.log_disabled` when the server has no log key.
fn log_settings(state: &AppState) -> Result<&LogSettings, ApiError> {
    state.log.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "server.log_disabled",
            "this server serves no transparency log: start it with a log key (--log-key)",
        )
    })
}

/// Checks the token for `/log/*`: none needed when the operator made the log public. Without a
/// log, the token first: whether this server serves a log is told to readers only (`401`, then
/// `404 server.log_disabled`).
fn authorize_log(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    if state.log.as_ref().is_some_and(|log| log.public) {
        return Ok(true);
    }
    state.authorize(headers, Scope::Read)?;
    log_settings(state).map(|_| false)
}

/// A log route's answer, its place in the body budget taken and held until it is written (as an
/// attestation read back holds its own), of the log's share of the budget: a client that does
/// not read an entry bundle holds its memory within that share. `503 server.overloaded` when
/// there is no room for it now.
fn body_response(
    state: &AppState,
    content_type: &'static str,
    cache: &'static str,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    crate::state::BodyPlace::hold_log_answer(state, body.len())?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

/// The log's latest checkpoint, a C2SP `tlog-checkpoint` in a signed note.
#[utoipa::path(
    get, path = "/log/checkpoint", tag = "log",
    responses(
        (status = 200, description = "The signed checkpoint (origin, size, base64 root hash; note signatures): where the trust root's `log` role requires witnesses and the server has witnesses to ask (`--witness-url`), the newest one they cosigned, with their cosignatures", content_type = "text/plain; charset=utf-8", body = String,
            headers(("Cache-Control" = String, description = "`no-cache`: the checkpoint moves on"))),
        (status = 401, description = "No valid bearer token (unless the log is public)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "The server serves no log (`server.log_disabled`)", body = ErrorBody),
        (status = 500, description = "The trust root names no log, the log key no longer holds the `log` role, the store's ledger no longer extends the log served (`trust.tlog_inconsistent`), an entry past the newest checkpoint is not an attested execution (`runtime.log_entry_unattested`: no checkpoint is signed over it), a store whose content no retry mends (`replay.store_corrupt`, `replay.ledger_broken`, …), or one this server has seen cut, replaced or rewritten (`runtime.store_rewound`)", body = ErrorBody),
(status = 503, description = "Store unavailable (`replay.*`), starting (`server.not_ready`), overloaded (`server.overloaded`), timed out (`server.timeout`), or no checkpoint cosigned yet where the trust root requires witnesses (`server.not_yet_cosigned`)", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait before asking again"))),
    ),
    security((), ("bearer" = ["read"]))
)]
pub(crate) async fn checkpoint(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_log(&state, &headers)?;
    let signers = Arc::clone(&log_settings(&state)?.signers);
    let worker = Arc::clone(&state);
    let note = state
        .blocking("log", move |runtime| {
            let environment = runtime.environment();
            // The log's own checkpoint first: every refusal of the store, the anchor or the keys
            // stands whether or not witnesses are asked.
            let (log, note) = signed_checkpoint(&worker, runtime, &environment, &signers)
                .map_err(|e| ApiError::from_execution(&e))?;
            if !crate::cosigning::witnessed(&worker, &environment) {
                return Ok(note);
            }
            // Where the trust root requires witnesses and they are configured: the newest
            // checkpoint they cosigned, as long as the store's log still extends it.
            let kept = crate::cosigning::kept_cosigned(&worker, &environment)
                .ok_or_else(|| not_yet_cosigned(StatusCode::SERVICE_UNAVAILABLE, None))?;
            check_still_extended(&log, kept.size, kept.root)?;
            Ok(kept.note)
        })
        .await??;
    body_response(
        &state,
        "text/plain; charset=utf-8",
        NO_CACHE,
        note.into_bytes(),
    )
}

/// The log served and its checkpoint signed with each of `keys`: signed once per log size and root
/// (and trust root), then reused, so that asking for the checkpoint (without a token, with
/// `--log-public`) costs no signature and no anchor read. The snapshot may be behind what a
/// signer recorded a moment ago — this server's sequencer or another signer sharing the anchor,
/// or another server's sequencer storing a checkpoint: refused as inconsistent, it is read again
/// and signed once more, so only a store that no longer holds what the key signed is refused.
pub(crate) fn signed_checkpoint(
    state: &AppState,
    runtime: &Runtime,
    environment: &RuntimeEnvironment,
    keys: &[LocalSigningKey],
) -> Result<(Arc<LogSnapshot>, String), ExecutionError> {
    // A store this server has seen cut, replaced or rewritten is not signed over again.
    if let Some(reason) = runtime.store_refused() {
        return Err(ExecutionError::StoreRewound {
            reason: reason.to_owned(),
        });
    }
    let signers = parmana_runtime::signers_of(keys);
    // A memory store (a dry run) holds no history the anchor could record: never held against
    // it, nor written into it — as its sequencer's runs are not.
    let anchor = state
        .sequencer
        .anchor
        .as_deref()
        .filter(|_| state.store_kind != "memory");
    let trust_root_version = environment.trust_root().version();
    // Whether the last refusal was kept from before (not to be judged again at once).
    let kept_refusal = std::cell::Cell::new(false);
    let sign = || -> Result<(Arc<LogSnapshot>, String), ExecutionError> {
        kept_refusal.set(false);
        // A log that could not be read is not read again at once: the cache keeps its refusal
        // for up to a second (only a checkpoint refused against what a signer recorded is
        // retried).
        let log = served_log(state).inspect_err(|_| {
            kept_refusal.set(true);
        })?;
        let kept_for = |log: &LogSnapshot| {
            state
                .signed_note
                .lock()
                .ok()
                .and_then(|kept| kept.clone())
                .filter(|kept| {
                    kept.size == log.size()
                        && kept.root == log.root()
                        && kept.trust_root_version == trust_root_version
                        && (kept.note.is_ok() || kept.at.elapsed() < REFUSAL_KEPT_FOR)
                })
        };
        let answer = |kept: SignedNote, log: Arc<LogSnapshot>| match kept.note {
            Ok(note) => Ok((log, note)),
            Err((position, reason)) => {
                kept_refusal.set(true);
                Err(ExecutionError::LogEntryUnattested { position, reason })
            }
        };
        // The snapshot and the log this server's sequencer keeps (read at start, extended by
        // every run) are two reads of one append-only ledger: where they disagree, the store
        // was rewritten between them, and nothing is signed over it — nor is a note kept for
        // the snapshot served again.
        let agrees = |log: &LogSnapshot| -> Result<(), ExecutionError> {
            state.log_sequencer.check_agrees(log).inspect_err(|error| {
                // Evidence only where the sequencer recorded it (a comparison that could not
                // be made is read again, below).
                if state.log_sequencer.store_rewound().is_some() {
                    refuse_rewritten_store(runtime, error);
                }
            })
        };
        if let Some(kept) = kept_for(&log) {
            agrees(&log)?;
            return answer(kept, log);
        }
        // One signing at a time: a request that missed while another signed takes its note (or
        // its refusal) rather than read and verify the entries again.
        let _signing = state
            .signing_note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(kept) = kept_for(&log) {
            agrees(&log)?;
            return answer(kept, log);
        }
        // Signed through the sequencer: it agrees with the log the sequencer keeps, and it
        // extends every checkpoint signed in this process (the sequencer's and these routes'),
        // so that the key never signs two trees that fork, even where the snapshot runs ahead
        // of the sequencer (a writer's records, cut again before its next run).
        let signed = state.log_sequencer.sign_snapshot(
            &log,
            runtime.store(),
            LogSigning {
                trust_root: environment.trust_history().newest(),
                history: environment.trust_history(),
                now: runtime.clock().now(),
                release_manifest: environment.release_manifest().version(),
                signers: &signers,
                anchor,
            },
        );
        if signed.is_err()
            && let Some(reason) = state.log_sequencer.store_rewound()
        {
            refuse_rewritten_store(
                runtime,
                &ExecutionError::StoreRewound {
                    reason: reason.to_owned(),
                },
            );
        }
        // A signed note, or an entry that is not an attested execution, is kept for this log
        // and trust root: asking again (anonymously, with `--log-public`) reads and verifies
        // no entry again.
        let kept_note = match &signed {
            Ok(note) => Some(Ok(note.clone())),
            Err(ExecutionError::LogEntryUnattested { position, reason }) => {
                Some(Err((*position, reason.clone())))
            }
            Err(_) => None,
        };
        if let (Some(note), Ok(mut kept)) = (kept_note, state.signed_note.lock()) {
            *kept = Some(SignedNote {
                size: log.size(),
                root: log.root(),
                trust_root_version,
                note,
                at: std::time::Instant::now(),
            });
        }
        Ok((log, signed?))
    };
    match sign() {
        // Behind what a signer recorded a moment ago (the anchor, or a checkpoint another
        // server's sequencer stored past this snapshot): read again, once.
        // Or an entry the store no longer holds as the snapshot does (a ledger cut or rewritten
        // under the server): judged again on the log as the store holds it now.
        // (Not once the refusal showed the store rewritten: it is answered as it is.)
        Err(error)
            if !kept_refusal.get()
                && runtime.store_refused().is_none()
                && matches!(
                    error.code(),
                    "trust.tlog_inconsistent" | "runtime.log_entry_unattested"
                ) =>
        {
            state.log_cache.expire();
            sign()
        }
        signed => signed,
    }
}

/// Refuses the store for good once the log routes found it rewritten under the log this
/// server's sequencer keeps (as a sequencer run that shows it does): every execution refused,
/// `/readyz` not ready, until it is restored and the server restarted.
fn refuse_rewritten_store(runtime: &Runtime, error: &ExecutionError) {
    if runtime.store_refused().is_none() {
        tracing::error!(target: "parmana::server", code = error.code(), %error, "replay store rewritten under the log: the log routes' read disagrees with the sequencer's; executions refused until it is restored and the server restarted");
    }
    runtime.refuse_store(format!(
        "its ledger as the log routes read it contradicts the transparency log this server keeps \
         ({}): it was rewritten; the server's log says how",
        error.code()
    ));
}

/// The log the routes serve ([`LogCache::get`](crate::log_cache::LogCache::get)). A store whose
/// whole ledger no longer extends the snapshot served (`trust.tlog_inconsistent`: two verified
/// reads of an append-only ledger that fork, or the later one shorter) was rewritten or cut
/// between them: refused for good, as a sequencer run that shows it refuses it, rather than
/// kept executing while every log route answers the refusal.
pub(crate) fn served_log(state: &AppState) -> Result<Arc<LogSnapshot>, ExecutionError> {
    state
        .log_cache
        .get(state.runtime.store())
        .inspect_err(|error| {
            if matches!(
                error,
                ExecutionError::Trust(parmana_runtime::trust::TrustError::TlogInconsistent { .. })
            ) {
                if state.runtime.store_refused().is_none() {
                    tracing::error!(target: "parmana::server", code = error.code(), %error, "replay store rewritten under the log: its ledger no longer extends the log served; executions refused until it is restored and the server restarted");
                }
                state.runtime.refuse_store(format!(
                    "its ledger no longer extends the transparency log this server served ({}): \
                     it was cut or rewritten; the server's log says how",
                    error.code()
                ));
            }
        })
}

/// A hash tile (`<L>/<N>[.p/<W>]`) or an entry bundle (`entries/<N>[.p/<W>]`) of the log.
#[utoipa::path(
    get, path = "/log/tile/{tile_path}", tag = "log",
    params(("tile_path" = String, Path, description = "The rest of the path, several segments: `<L>/<N>[.p/<W>]` (level 0–63; index in three-digit groups, all but the last prefixed with `x`, e.g. `x001/234`; partial width 1–255) for a hash tile, `entries/<N>[.p/<W>]` for an entry bundle")),
    responses(
        (status = 200, description = "The tile: 32-byte hashes concatenated; or the entry bundle: each entry as a big-endian u16 length and its bytes", content_type = "application/octet-stream", body = Vec<u8>,
            headers(("Cache-Control" = String, description = "Full tiles within the newest checkpoint this server signed: `public, max-age=31536000, immutable` (`private, …` when the log needs a token); partial tiles, and tiles past it: `no-cache`"))),
        (status = 400, description = "Not a tile path, or one with percent escapes (`tile.malformed_path`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token (unless the log is public)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "Past the log (`tile.beyond_tree`), or the server serves no log", body = ErrorBody),
        (status = 500, description = "The store's ledger no longer extends the log served (`trust.tlog_inconsistent`), an entry too large to serve (`tile.entry_too_large`), a store whose content no retry mends (`replay.store_corrupt`, `replay.ledger_broken`, …), or one this server has seen cut, replaced or rewritten (`runtime.store_rewound`)", body = ErrorBody),
(status = 503, description = "Store unavailable (`replay.*`), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security((), ("bearer" = ["read"]))
)]
pub(crate) async fn tile(
    State(state): Shared,
    headers: HeaderMap,
    uri: axum::http::Uri,
    tile_path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let public = authorize_log(&state, &headers)?;
    // One spelling per tile: a percent-escaped path (`0%2F000`) is not it, even where it
    // decodes to one.
    if uri.path().contains('%') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "tile.malformed_path",
            "a tile path has no percent escapes",
        ));
    }
    let tile_path = crate::api::path_param(tile_path)?;
    let tile = Tile::parse_path(&tile_path).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            e.code(),
            crate::error::bounded_message(&e),
        )
    })?;
    // Immutable only within a checkpoint this server signed, of the log the tile is read from:
    // past it the entries are not yet committed to (one a writer of the store forged is never
    // signed over), and a log that no longer has the signed root there was rewritten.
    let signed = state.signed_note.lock().ok().and_then(|kept| {
        kept.as_ref()
            .filter(|k| k.note.is_ok())
            .map(|k| (k.size, k.root))
    });
    let worker = Arc::clone(&state);
    let (bytes, committed) = state
        .blocking("log", move |runtime| {
            // A store this server has seen cut, replaced or rewritten is not served from.
            if let Some(reason) = runtime.store_refused() {
                return Err(ExecutionError::StoreRewound {
                    reason: reason.to_owned(),
                });
            }
            let store = runtime.store();
            let log = served_log(&worker)?;
            let committed = signed.is_some_and(|(size, root)| {
                tile.is_within(size) && log.root_at(size) == Some(root)
            });
            let bytes = match tile.kind() {
                TileKind::Hashes { .. } => log.tile(store, &tile)?,
                // The snapshot let go before the store is read: one a request holds is copied
                // whole by the next catch-up.
                TileKind::Entries => {
                    let bundle = log.entry_bundle(&tile)?;
                    drop(log);
                    bundle.read(store)?
                }
            };
            Ok::<_, parmana_runtime::ExecutionError>((bytes, committed))
        })
        .await?
        // A tile not (yet) there may be soon: no cache keeps the refusal.
        .map_err(|e| ApiError::from_execution(&e).with_header(header::CACHE_CONTROL, "no-store"))?;
    let cache = match (tile.is_full() && committed, public) {
        (true, true) => IMMUTABLE_PUBLIC,
        (true, false) => IMMUTABLE_PRIVATE,
        (false, _) => NO_CACHE,
    };
    body_response(&state, "application/octet-stream", cache, bytes)
}

/// The `.tlog-proof` of a completed execution, against a checkpoint signed now.
#[utoipa::path(
    get, path = "/v1/executions/{id}/proof", tag = "log",
    params(("id" = String, Path, description = "The execution id")),
    responses(
        (status = 200, description = "The C2SP tlog-proof (c2sp.org/tlog-proof@v1): the execution's log entry, its index, the inclusion proof and the signed checkpoint; `parmana verify ATTESTATION --proof FILE` checks it offline", content_type = "text/plain; charset=utf-8", body = String),
        (status = 400, description = "Malformed execution id (`runtime.invalid_execution_id`), or one that does not decode as UTF-8 (`server.invalid_request`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 404, description = "No completed execution with this id (`runtime.not_in_log`), one completed but not yet in the log (`runtime.not_yet_sequenced`, with `Retry-After`), one not yet in a checkpoint the witnesses cosigned where the trust root requires them (`server.not_yet_cosigned`, with `Retry-After`), or the server serves no log", body = ErrorBody,
            headers(("Retry-After" = String, description = "With `runtime.not_yet_sequenced` or `server.not_yet_cosigned`: seconds to wait before asking again"))),
        (status = 500, description = "The trust root names no log, the log key no longer holds the `log` role, the store's ledger no longer extends the log served (`trust.tlog_inconsistent`), an entry past the newest checkpoint is not an attested execution (`runtime.log_entry_unattested`: no checkpoint is signed over it), a store whose content no retry mends (`replay.store_corrupt`, `replay.ledger_broken`, …), or one this server has seen cut, replaced or rewritten (`runtime.store_rewound`)", body = ErrorBody),
(status = 503, description = "Store unavailable (`replay.*`), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn proof(
    State(state): Shared,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Read)?;
    let id = crate::api::path_param(id)?;
    let signers = Arc::clone(&log_settings(&state)?.signers);
    let execution_id = parse_execution_id(&id).map_err(|e| ApiError::from_execution(&e))?;
    let worker = Arc::clone(&state);
    let proof = state
        .blocking("log", move |runtime| {
            let execution = |e: ExecutionError| ApiError::from_execution(&e);
            // One environment for both: a reload between them would have the proof checked
            // against another trust root than the checkpoint was signed under.
            let environment = runtime.environment();
            let (log, signed) =
                signed_checkpoint(&worker, runtime, &environment, &signers).map_err(execution)?;
            // Where the trust root requires witnesses and they are configured, an entry of the
            // log is proven against the newest checkpoint they cosigned (an entry after it is
            // not proven yet); an id the log does not hold is answered as without witnesses.
            let checkpoint = match log.position_of(&execution_id) {
                Some(position) if crate::cosigning::witnessed(&worker, &environment) => {
                    let kept = crate::cosigning::kept_cosigned(&worker, &environment)
                        .ok_or_else(|| not_yet_cosigned(StatusCode::NOT_FOUND, None))?;
                    if position >= kept.size {
                        return Err(not_yet_cosigned(StatusCode::NOT_FOUND, Some(kept.size)));
                    }
                    kept.note
                }
                _ => signed,
            };
            let pending = log
                .pending_proof(
                    environment.trust_root(),
                    &execution_id,
                    checkpoint.as_bytes(),
                )
                .map_err(execution)?;
            // The snapshot let go before the store is read: one a request holds is copied
            // whole by the next catch-up.
            drop(log);
            pending.read(runtime.store()).map_err(execution)
        })
        .await??;
    body_response(
        &state,
        "text/plain; charset=utf-8",
        NO_CACHE,
        proof.to_text().into_bytes(),
    )
}
