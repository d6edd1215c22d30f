//! The log's side of witnessing in `parmana serve`: the checkpoint the server signs is sent to the configured witnesses in turn, and the newest one cosigned by as many as the trust root requires is kept for the log routes to serve.

use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::{Runtime, RuntimeEnvironment};

use crate::error::ServerError;
use crate::state::{AppState, CosignedNote};

/// How long the server waits for a witness's answer (each request; a witness whose size moved
/// is asked twice): shorter than `parmana log cosign`'s, since a round in progress delays the
/// end of a shutdown (the blocking pool is waited for).
const WITNESS_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The least time between two rounds of cosigning (the sequencer's cadence, when longer): a
/// witness is asked at most about once a second, whatever the cadence.
const MIN_COSIGN_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the log routes serve cosigned checkpoints: witnesses are configured and the `log` role
/// of the trust root in force requires their cosignatures (`witness_threshold` ≥ 1). Without
/// witnesses configured, the checkpoints served carry the log's signatures only.
pub(crate) fn witnessed(state: &AppState, environment: &RuntimeEnvironment) -> bool {
    state
        .log
        .as_ref()
        .is_some_and(|log| !log.witnesses.is_empty())
        && environment
            .trust_root()
            .log()
            .is_some_and(|role| role.witnesses().1 > 0)
}

/// The newest cosigned checkpoint kept, if it meets the `log` role of `environment`'s trust root:
/// kept for that trust root's version, or — after a reload to another version — opened again
/// under its role (a rotation that left the log role as it was keeps the note; one that changed
/// the witnesses or the log keys drops it until the next round).
pub(crate) fn kept_cosigned(
    state: &AppState,
    environment: &RuntimeEnvironment,
) -> Option<CosignedNote> {
    let trust_root = environment.trust_root();
    let version = trust_root.version();
    let mut slot = state.cosigned_note.lock().ok()?;
    let kept = slot.as_mut()?;
    if kept.trust_root_version != version {
        trust_root
            .log()?
            .verifier()
            .open_checkpoint(kept.note.as_bytes())
            .ok()?;
        kept.trust_root_version = version;
    }
    Some(kept.clone())
}

/// Every cadence (at least [`MIN_COSIGN_INTERVAL`]) once the server is ready, one round of
/// [`cosign_once`]; nothing where no witness is configured.
pub(crate) async fn cosign_periodically(state: Arc<AppState>) {
    if state
        .log
        .as_ref()
        .is_none_or(|log| log.witnesses.is_empty())
    {
        return;
    }
    let cadence = state.sequencer.cadence.max(MIN_COSIGN_INTERVAL);
    // Until the server is ready, the least interval; after a round that cosigned or found
    // nothing new, the cadence; after one that failed, twice the wait before it, from the least
    // interval up to the cadence (a witness that refuses for good is not asked every second).
    let mut wait = MIN_COSIGN_INTERVAL;
    let mut after_failure = MIN_COSIGN_INTERVAL;
    loop {
        tokio::time::sleep(wait).await;
        wait = MIN_COSIGN_INTERVAL;
        // A store seen cut or rewritten is not signed over again: no round until a restart.
        if !state.is_started() || state.is_draining() || state.runtime.store_refused().is_some() {
            continue;
        }
        let worker = Arc::clone(&state);
        let round = state
            .blocking("cosign", move |runtime| cosign_once(&worker, runtime))
            .await;
        let failed = matches!(round, Ok(Err(_)) | Err(_));
        if failed {
            wait = after_failure;
            after_failure = after_failure.saturating_mul(2).min(cadence);
        } else {
            after_failure = MIN_COSIGN_INTERVAL;
        }
        match round {
            Ok(Ok(Some(cosigned))) => {
                wait = cadence;
                state.metrics.cosigning("cosigned");
                tracing::info!(
                    target: "parmana::server",
                    size = cosigned.size,
                    "checkpoint cosigned by the witnesses"
                );
            }
            Ok(Ok(None)) => wait = cadence,
            Ok(Err(error)) => {
                state.metrics.cosigning("failed");
                tracing::warn!(
                    target: "parmana::server",
                    code = error.code(),
                    %error,
                    "checkpoint not cosigned as the trust root requires; the last cosigned one is still served"
                );
            }
            Err(_) => state.metrics.cosigning("failed"),
        }
    }
}

/// One round: the checkpoint the log routes would sign now, sent to each configured witness in
/// turn (each gets the cosignatures of those before it, as `parmana log cosign` sends them), then
/// kept if the cosignatures gathered meet the trust root's witness threshold. `None` where there
/// is nothing new to cosign (or the trust root requires no witness); a witness that fails is
/// logged and the others are still asked.
fn cosign_once(state: &AppState, runtime: &Runtime) -> Result<Option<CosignedNote>, ServerError> {
    let environment = runtime.environment();
    if !witnessed(state, &environment) {
        return Ok(None);
    }
    let Some(log_settings) = state.log.as_ref() else {
        return Ok(None);
    };
    let trust_root = environment.trust_root();
    let version = trust_root.version();
    let (log, note) =
        crate::tlog::signed_checkpoint(state, runtime, &environment, &log_settings.signers)?;
    let (size, root) = (log.size(), log.root());
    // The snapshot let go before any witness is asked: one held across their answers would be
    // copied whole by every catch-up meanwhile. Each request takes the log as it is then (a
    // larger one proves the same checkpoint).
    drop(log);
    if kept_cosigned(state, &environment).is_some_and(|kept| kept.size == size && kept.root == root)
    {
        return Ok(None);
    }
    let request = |checkpoint: &[u8], old_size| {
        state
            .log_cache
            .get(runtime.store())?
            .witness_request(trust_root, checkpoint, old_size)
    };
    let mut cosigned = note;
    for prefix in &log_settings.witnesses {
        // A shutdown does not wait for the witnesses not asked yet.
        if state.is_draining() {
            return Ok(None);
        }
        let sent = cosigned.clone();
        let request = |old_size| request(sent.as_bytes(), old_size);
        // The size the witness cosigned last for this server (0 the first time): one request a
        // round where it has not moved, instead of a `409` and a second.
        let known = state
            .witness_sizes
            .lock()
            .ok()
            .and_then(|sizes| sizes.get(prefix).copied())
            .filter(|known| *known <= size)
            .unwrap_or(0);
        match crate::witness::request_cosignature(
            &request,
            trust_root,
            sent.as_bytes(),
            prefix,
            known,
            WITNESS_ANSWER_TIMEOUT,
        ) {
            Ok(more) => {
                cosigned = more;
                if let Ok(mut sizes) = state.witness_sizes.lock() {
                    sizes.insert(prefix.clone(), size);
                }
            }
            // A witness that cosigned a larger checkpoint of this log than this store holds:
            // another server of the deployment ahead of this one's read of the log (read again
            // for the next round) — or this store rewound or restored from a backup, which is
            // what witnesses are there to catch. Both are said.
            Err(ServerError::Runtime(error)) if error.code() == "trust.tlog_inconsistent" => {
                state.log_cache.expire();
                tracing::warn!(
                    target: "parmana::server",
                    witness = %prefix,
                    code = error.code(),
                    %error,
                    "the witness holds a checkpoint of this log that this server's store does \
                     not extend: another server of the deployment ahead of this one (asked \
                     again at the next round), or this store rewound or restored from a backup"
                );
            }
            Err(error) => tracing::warn!(
                target: "parmana::server",
                witness = %prefix,
                code = error.code(),
                %error,
                "a witness did not cosign the checkpoint"
            ),
        }
    }
    // As far as the trust root requires: the log's signatures and the witnesses' threshold.
    let Some(role) = trust_root.log() else {
        return Ok(None);
    };
    role.verifier()
        .open_checkpoint(cosigned.as_bytes())
        .map_err(|e| ServerError::Runtime(e.into()))?;
    let kept = CosignedNote {
        size,
        root,
        trust_root_version: version,
        note: cosigned,
    };
    if let Ok(mut slot) = state.cosigned_note.lock() {
        // Never a smaller log than the one kept (two rounds do not overlap, but a reload may
        // bring back an older trust root's note: that one is replaced).
        let newer = slot
            .as_ref()
            .is_none_or(|old| old.trust_root_version != version || old.size <= size);
        if newer {
            *slot = Some(kept.clone());
        }
    }
    Ok(Some(kept))
}
