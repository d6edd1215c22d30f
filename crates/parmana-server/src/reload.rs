//! Reloads (SIGHUP and `POST /v1/admin/reload`): one at a time, a burst coalesced into one more; the tokens file read first (a revocation never waits), then the environment verified and swapped, then the TLS files, each taken or refused on its own, each refusal recorded, counted and logged.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use parmana_runtime::{ReloadReport, Runtime};

use crate::error::ApiError;
use crate::state::AppState;

/// How a reload's record ends when files were refused beside an environment refused (`{the
/// environment's refusal}; and {the files, by code}` + this): `/v1/status` shows that part,
/// which names the files by their codes only, beside the environment's code.
pub(crate) const REFUSED_TOO: &str = " refused too (the server's log says why)";

/// What a reload asked for comes to, once it has run: the versions, or the refusal.
pub(crate) type ReloadOutcome = Result<ReloadReport, ApiError>;

/// Asks for a reload of the tokens file and the environment from disk (SIGHUP or `POST
/// /v1/admin/reload`), run in a task of its own; the outcome, once it has one. Each part is
/// taken or refused on its own: a tokens file taken is in force at once, one refused keeps the
/// tokens in force; an environment refused keeps the old one; TLS files refused keep the TLS in
/// force. Any refusal is answered with 422 (500 when the reload task failed; a store whose marks
/// cannot be read does not refuse it).
///
/// Reloads run one at a time (the turn), and those asked for while one waits for its turn are
/// that one: a burst of signals (a file watcher sending one per file written) or of requests (a
/// client retrying on its timeout) makes at most one more reload, which reads the files as they
/// are when its turn comes — never a queue without bound. The tokens file is read before that
/// too ([`read_tokens_soon`]): a revocation never waits for a reload still running. The task
/// holds the concurrency slot of the request that asked for it, if any (so that a shutdown waits
/// for it as for any call); a reload still waiting for its turn when the server stops is not
/// made.
pub(crate) fn request_reload(
    state: &Arc<AppState>,
) -> tokio::sync::watch::Receiver<Option<ReloadOutcome>> {
    read_tokens_soon(state);
    let mut queued = state
        .queued_reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // One whose task is gone (ended without an outcome: the runtime stopping) is not joined.
    if let Some(waiting) = &*queued
        && waiting.has_changed().is_ok()
    {
        return waiting.clone();
    }
    let (done, outcome) = tokio::sync::watch::channel(None);
    *queued = Some(outcome.clone());
    drop(queued);
    let state = Arc::clone(state);
    let slot = crate::state::SLOT.try_with(Arc::clone).ok();
    tokio::spawn(async move {
        let turn = Arc::clone(&state.reloading).lock_owned().await;
        // From now on a reload asked for is another one (it reads the files as they are after
        // this one has read them).
        state
            .queued_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let reloaded = reload_holding(&state, turn).await;
        drop(slot);
        let _ = done.send(Some(reloaded));
    });
    outcome
}

/// Starts a reload for a signal ([`request_reload`]), its outcome reported by the reload itself
/// (log, metrics, `/v1/status`).
pub(crate) fn reload_on_signal(state: &Arc<AppState>) {
    // In a task of its own: nothing that fails there (a blocking thread the system refuses)
    // can end the watcher of the signals, which would leave SIGTERM unheeded.
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let _ = request_reload(&state);
    });
}

/// The tokens file read again and put in force (where one is configured), at once, before the
/// reload asked for waits for its turn: a token removed is revoked however long a reload before
/// it waits on the store or verifies bundles. Only a file taken counts here: one refused (or a
/// read that fails) changes nothing and is reported by the read under the turn. At most one such read waits while another runs (they take
/// [`AppState::tokens_reloading`] in turn): a burst asks for one more, which reads the file as it
/// is then — a read that blocks (a file on a stalled network share) holds its thread and the one
/// waiting behind it (and the reload under the turn, which reads the file again, waits too), not
/// one per request.
fn read_tokens_soon(state: &Arc<AppState>) {
    if state.tokens_file().is_none() || state.tokens_read_waiting.swap(true, Ordering::SeqCst) {
        return;
    }
    let worker = Arc::clone(state);
    // Not timed as a runtime call: the reload under its turn is.
    drop(tokio::task::spawn_blocking(move || {
        let _one_at_a_time = worker
            .tokens_reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        worker.tokens_read_waiting.store(false, Ordering::SeqCst);
        if let Some(Ok(tokens)) = worker
            .tokens_file()
            .map(|file| crate::auth::Tokens::load(&file))
        {
            let count = tokens.len();
            worker.replace_tokens(tokens);
            tracing::info!(target: "parmana::server", tokens = count, "tokens file taken before the reload's turn");
        }
    }));
}

/// Reads the tokens file and puts it in force, as the start reads it (under
/// [`AppState::tokens_reloading`]); one refused keeps the tokens in force, and the caller
/// records, counts and logs the refusal with the reload's outcome.
fn swap_tokens(worker: &AppState) -> Result<(), crate::error::ServerError> {
    let _one_at_a_time = worker
        .tokens_reloading
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(tokens) = worker
        .tokens_file()
        .map(|file| crate::auth::Tokens::load(&file))
        .transpose()?
    {
        let count = tokens.len();
        worker.replace_tokens(tokens);
        tracing::info!(target: "parmana::server", tokens = count, "tokens file reloaded");
    }
    Ok(())
}

/// Reads the TLS files again and puts them in force for new handshakes ([`ServedTls::reload`]):
/// the end of the new certificate's validity, or why the files were refused (the TLS in force
/// then stays). The caller counts and records the reload's outcome.
///
/// [`ServedTls::reload`]: crate::tls::ServedTls::reload
fn swap_tls(worker: &AppState, runtime: &Runtime) -> Result<(), crate::error::ServerError> {
    let Some(tls) = &worker.tls else {
        return Ok(());
    };
    let not_after = tls.reload(runtime.clock().now())?;
    *worker
        .tls_not_after
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(not_after);
    worker.metrics.set_tls_expiry(not_after);
    tracing::info!(target: "parmana::server", %not_after, "TLS files reloaded");
    Ok(())
}

/// A reload ([`request_reload`]), its turn taken.
async fn reload_holding(
    state: &Arc<AppState>,
    turn: tokio::sync::OwnedMutexGuard<()>,
) -> Result<ReloadReport, ApiError> {
    let worker = Arc::clone(state);
    // Counted, recorded and logged by the reload's own work, under its turn: a reload that
    // outlives its request (answered on the timeout) is reported too, and a later one cannot
    // be overtaken by this one's report.
    let result = state
        .blocking("reload", move |runtime| {
            let _turn = turn;
            // The tokens file again, under the turn (edited since the read before it, by the
            // change a signal coalesced into this reload, say): one taken is in force at once,
            // whatever becomes of the environment — a token removed there is revoked even while
            // the store is down or the files on disk are refused.
            let tokens = swap_tokens(&worker);
            let reloaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.reload_checked(|fresh| worker.authzen.check_environment(fresh))
            }));
            // The TLS files again, as the start reads them, whatever became of the
            // environment: a renewed certificate is taken even while the files of the
            // environment are refused. Taken, the handshakes to come present them; refused, the
            // TLS in force stays. Each part is taken or refused on its own: a tokens file or TLS
            // files refused hold back no rotation of the trust root (a leaked key rotated out).
            let tls = swap_tls(&worker, runtime);
            worker.metrics.reload(
                matches!(reloaded, Ok(Ok(_))) && tls.is_ok() && tokens.is_ok(),
            );
            match &reloaded {
                Ok(Ok(report)) => {
                    // Its versions go into the store's marks once the executions in flight
                    // under the environment it replaced have finished (`record_reloaded_versions`).
                    worker.reloads_taken.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(
                        target: "parmana::server",
                        trust_root = report.trust_root.1,
                        release_manifest = report.release_manifest.1,
                        policies = report.policies,
                        "reloaded"
                    );
                }
                Ok(Err(error)) => {
                    tracing::warn!(target: "parmana::server", code = error.code(), %error, "reload refused; the old environment stays");
                    // What a `read` token sees in `/v1/status`: the store's and the file
                    // system's own words (hosts, paths) stay in the log, as on every route.
                    if let Some(withheld) = crate::error::withheld_message(error) {
                        runtime.record_reload_failure(error.code(), withheld);
                    }
                }
                // A defect: a refused reload too, recorded as one; the old environment stays.
                Err(_) => {
                    runtime.record_reload_failure(
                        "server.internal",
                        "the reload task failed".to_owned(),
                    );
                    tracing::warn!(target: "parmana::server", code = "server.internal", "reload failed; the old environment stays");
                }
            }
            // The files refused: logged, and recorded with the reload's outcome — as its outcome
            // when the environment was taken (the tokens file's code first), after the
            // environment's refusal otherwise — so that an operator revoking a token is told the
            // revocation did not take. `/v1/status` tells the codes; the files' paths and what was
            // wrong in them go to the log (and to the admin who asked).
            let files = Files {
                tokens: tokens.err(),
                tls: tls.err(),
            };
            for (what, error) in files.refused() {
                tracing::warn!(target: "parmana::server", code = error.code(), %error, "the {what} refused; what was in force stays");
            }
            if let Some(code) = files.code() {
                let refused = files.named();
                match (&reloaded, runtime.last_reload().map(|record| record.outcome)) {
                    (Ok(Ok(_)), _) => runtime.record_reload_failure(
                        code,
                        format!(
                            "{refused} refused (the server's log says why); the environment was \
                             reloaded"
                        ),
                    ),
                    (_, Some(Err((code, message)))) => runtime.record_reload_failure(
                        &code,
                        format!("{message}; and {refused}{REFUSED_TOO}"),
                    ),
                    _ => {}
                }
            }
            match reloaded {
                Ok(Ok(report)) if files.code().is_some() => {
                    Ok(Err(Box::new(Refused::Files { files, report })))
                }
                reloaded => reloaded.map(|outcome| {
                    outcome.map_err(|error| Box::new(Refused::Environment { error, files }))
                }),
            }
        })
        .await
        .inspect_err(|_| {
            // The task itself failed (outside the catch above): still a refused reload,
            // reported as every other one.
            state.metrics.reload(false);
            state
                .runtime
                .record_reload_failure("server.internal", "the reload task failed".to_owned());
        })?;
    let refused = match result {
        Ok(Ok(report)) => return Ok(report),
        Ok(Err(refused)) => *refused,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "the reload task failed; the old environment stays".to_owned(),
            ));
        }
    };
    match refused {
        Refused::Files { files, report } => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            files.code().unwrap_or("server.internal"),
            format!(
                "{} (the environment was reloaded: trust root version {}, release manifest \
                 version {})",
                files.told(),
                report.trust_root.1,
                report.release_manifest.1
            ),
        )),
        Refused::Environment { error, files } => {
            let mut api = ApiError::from_execution(&error);
            if api.status != StatusCode::SERVICE_UNAVAILABLE {
                api.status = StatusCode::UNPROCESSABLE_ENTITY;
            }
            // The caller holds the `admin` scope — the operator: told what failed in full, the
            // path of a file that could not be read included.
            api.message = error.to_string();
            if files.code().is_some() {
                api.message = format!("{}; and {}", api.message, files.told());
            }
            Err(api)
        }
    }
}

/// What refused a reload: the environment (the tokens and TLS files read all the same, and
/// perhaps refused too), or files alone — the tokens file, the TLS files or both — with the
/// environment taken (`report`).
enum Refused {
    Environment {
        error: parmana_runtime::ExecutionError,
        files: Files,
    },
    Files {
        files: Files,
        report: ReloadReport,
    },
}

/// The files a reload refused, if any.
struct Files {
    tokens: Option<crate::error::ServerError>,
    tls: Option<crate::error::ServerError>,
}

impl Files {
    /// Each file refused, named, with why.
    fn refused(&self) -> impl Iterator<Item = (&'static str, &crate::error::ServerError)> {
        [("tokens file", &self.tokens), ("TLS files", &self.tls)]
            .into_iter()
            .filter_map(|(what, error)| error.as_ref().map(|error| (what, error)))
    }

    /// The code a refusal of files alone answers: the tokens file's first.
    fn code(&self) -> Option<&'static str> {
        self.refused().next().map(|(_, error)| error.code())
    }

    /// The files refused, with their codes: `the tokens file (server.tokens_invalid)`.
    fn named(&self) -> String {
        self.refused()
            .map(|(what, error)| format!("the {what} ({})", error.code()))
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// What the admin who asked is told: each refusal in full (paths included), and what stays.
    fn told(&self) -> String {
        self.refused()
            .map(|(what, error)| {
                let stays = if what == "tokens file" {
                    "the tokens in force stay"
                } else {
                    "the TLS in force stays"
                };
                format!("{error}; {stays}")
            })
            .collect::<Vec<_>>()
            .join("; and ")
    }
}
