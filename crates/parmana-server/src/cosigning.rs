//! The log's side of witnessing in `parmana serve`: the checkpoint the server signs is sent to the configured witnesses at once, and the newest one cosigned by as many as the trust root requires is kept for the log routes to serve.

use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::{Runtime, RuntimeEnvironment};

use crate::error::ServerError;
use crate::state::{AppState, CosignedNote};

/// How long the server waits for a witness's answer (each request; a witness whose size moved
/// is asked twice; the witnesses of a round are asked at once): shorter than `parmana log cosign`'s, since a round in progress delays the
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

/// One round: the checkpoint the log routes would sign now, sent to every configured witness at
/// once (each on a thread of its own, with the log's signatures only: a slow or silent witness
/// delays none of the others), their cosignatures merged as they answer, and the result kept as
/// soon as it meets the trust root's witness threshold (and again with each later cosignature).
/// `None` where there is nothing new to cosign (or the trust root requires no witness); a
/// witness that fails is logged and the others still count. The round ends once every witness
/// has answered or timed out.
fn cosign_once(state: &AppState, runtime: &Runtime) -> Result<Option<CosignedNote>, ServerError> {
    let environment = runtime.environment();
    if !witnessed(state, &environment) {
        return Ok(None);
    }
    let Some(log_settings) = state.log.as_ref() else {
        return Ok(None);
    };
    let trust_root = environment.trust_root();
    let Some(role) = trust_root.log() else {
        return Ok(None);
    };
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
    let request = |old_size| {
        state
            .log_cache
            .get(runtime.store())?
            .witness_request(trust_root, note.as_bytes(), old_size)
    };
    let mut cosigned = note.clone();
    let mut kept = None;
    std::thread::scope(|scope| {
        let (answered, answers) = std::sync::mpsc::channel();
        for prefix in &log_settings.witnesses {
            // The size the witness cosigned last for this server (0 the first time): one
            // request a round where it has not moved, instead of a `409` and a second.
            let known = state
                .witness_sizes
                .lock()
                .ok()
                .and_then(|sizes| sizes.get(prefix).copied())
                .filter(|known| *known <= size)
                .unwrap_or(0);
            let (sender, request, note) = (answered.clone(), &request, &note);
            let asking = std::thread::Builder::new()
                .name("parmana-cosign".to_owned())
                .spawn_scoped(scope, move || {
                    let answer = crate::witness::request_cosignature(
                        request,
                        trust_root,
                        note.as_bytes(),
                        prefix,
                        known,
                        WITNESS_ANSWER_TIMEOUT,
                    );
                    // Received: the loop below reads until every sender is gone.
                    let _ = sender.send((prefix, answer));
                });
            if let Err(error) = asking {
                let _ = answered.send((
                    prefix,
                    Err(ServerError::Io {
                        action: "start a thread to ask the witness",
                        address: prefix.clone(),
                        message: error.to_string(),
                    }),
                ));
            }
        }
        drop(answered);
        for (prefix, answer) in answers {
            match answer.and_then(|more| merged(trust_root, &cosigned, &note, &more)) {
                Ok(more) => {
                    cosigned = more;
                    if let Ok(mut sizes) = state.witness_sizes.lock() {
                        sizes.insert(prefix.clone(), size);
                    }
                    // As far as the trust root requires: the log's signatures and the
                    // witnesses' threshold.
                    if role.verifier().open_checkpoint(cosigned.as_bytes()).is_ok() {
                        let note = CosignedNote {
                            size,
                            root,
                            trust_root_version: trust_root.version(),
                            note: cosigned.clone(),
                        };
                        keep(state, &note);
                        kept = Some(note);
                    }
                }
                Err(error) => witness_failed(state, prefix, &error),
            }
        }
    });
    if kept.is_some() {
        return Ok(kept);
    }
    // Short of the threshold: refused as the trust root's role refuses it.
    role.verifier()
        .open_checkpoint(cosigned.as_bytes())
        .map_err(|e| ServerError::Runtime(e.into()))?;
    Ok(None)
}

/// `cosigned` (the log's note `sent` with the cosignatures gathered so far) with the
/// cosignatures a witness added to `sent` in `answer` (each verified again, one line per witness
/// key: [`add_cosignatures`](parmana_runtime::add_cosignatures)).
fn merged(
    trust_root: &parmana_runtime::trust::VerifiedTrustRoot,
    cosigned: &str,
    sent: &str,
    answer: &str,
) -> Result<String, ServerError> {
    // `request_cosignature` returns `sent` with the witness's lines after its own.
    let lines = answer
        .strip_prefix(sent)
        .ok_or_else(|| ServerError::WitnessRefused {
            status: 200,
            message: "the cosigned checkpoint does not begin with the one sent".to_owned(),
        })?;
    Ok(parmana_runtime::add_cosignatures(
        trust_root,
        cosigned.as_bytes(),
        lines.as_bytes(),
    )?)
}

/// Keeps `note` as the newest cosigned checkpoint, unless one of a larger log is kept under the
/// same trust-root version (a reload may bring back an older trust root's note: that one is
/// replaced).
fn keep(state: &AppState, note: &CosignedNote) {
    if let Ok(mut slot) = state.cosigned_note.lock() {
        let newer = slot.as_ref().is_none_or(|old| {
            old.trust_root_version != note.trust_root_version || old.size <= note.size
        });
        if newer {
            *slot = Some(note.clone());
        }
    }
}

/// Says why the witness at `prefix` did not cosign.
fn witness_failed(state: &AppState, prefix: &str, error: &ServerError) {
    match error {
        // A witness that cosigned a larger checkpoint of this log than this store holds: another
        // server of the deployment ahead of this one's read of the log (read again for the next
        // round) — or this store rewound or restored from a backup, which is what witnesses are
        // there to catch. Both are said.
        ServerError::Runtime(error) if error.code() == "trust.tlog_inconsistent" => {
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
        error => tracing::warn!(
            target: "parmana::server",
            witness = %prefix,
            code = error.code(),
            %error,
            "a witness did not cosign the checkpoint"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parmana_runtime::canon::Timestamp;
    use parmana_runtime::replay::{MemoryReplayStore, ReplayStore};
    use parmana_testkit::FixtureEnvironment;

    use crate::error::ServerError;
    use crate::readiness_tests::{runtime_over, settings_for};
    use crate::settings::{Limits, LogSettings, MAX_WITNESSES};

    /// A server asks at most [`MAX_WITNESSES`] witnesses (a thread each a round): one more is
    /// refused at bind, naming the setting; as many are served.
    #[test]
    fn a_server_asks_at_most_max_witnesses() {
        let fixture = FixtureEnvironment::new().unwrap();
        let log_key = fixture.key("root-1").unwrap();
        fixture
            .rotate_with_log(
                parmana_runtime::trust::LogSpec::one_key(
                    "log.example/parmana",
                    log_key.public_key(),
                ),
                Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
            )
            .unwrap();
        let log_key = Arc::new([log_key]);
        for (count, allowed) in [(MAX_WITNESSES, true), (MAX_WITNESSES + 1, false)] {
            let log = LogSettings {
                signers: log_key.clone(),
                public: false,
                witnesses: (0..count)
                    .map(|n| format!("http://127.0.0.1:9/w{n}"))
                    .collect(),
            };
            let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
            let bound = crate::lifecycle::Server::bind(
                runtime_over(&fixture, store),
                settings_for(Limits::default(), Some(log), "memory"),
            );
            match bound {
                Ok(_) => assert!(allowed, "{count} witnesses bound"),
                Err(ServerError::LimitOutOfRange {
                    name, value, max, ..
                }) => {
                    assert!(!allowed, "{count} witnesses refused");
                    assert_eq!((name, value, max), ("witness_url", count, MAX_WITNESSES));
                }
                Err(other) => panic!("{count}: {other}"),
            }
        }
    }
}
