//! The log's side of witnessing in `parmana serve`: the checkpoint the server signs is sent to the configured witnesses at once, and the newest one cosigned by as many as the trust root requires is kept for the log routes to serve.

use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::RuntimeEnvironment;

use crate::error::ServerError;
use crate::state::{AppState, CosignedNote};

/// How long the server waits for a witness's answer (each request; a witness whose size moved
/// is asked twice): shorter than `parmana log cosign`'s, since a round short of its threshold
/// waits for the answers, and a witness still asked is not asked again.
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
            .blocking("cosign", move |_| cosign_once(&worker))
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
/// once (each on a thread of its own, with the log's signatures only), their cosignatures merged
/// as they answer, and the result kept as soon as it meets the trust root's witness threshold.
/// Once it does, the witnesses still asked get [`STRAGGLER_WAIT`] more to add theirs; a witness
/// that answers later (within its [`WITNESS_ANSWER_TIMEOUT`]) has its size remembered, and is
/// not asked again until it has answered. So a slow or silent witness delays neither the others
/// nor the next round. `None` where there is nothing new to cosign (or the trust root requires
/// no witness, or a shutdown began while waiting); a witness that fails is logged and the others
/// still count.
fn cosign_once(state: &Arc<AppState>) -> Result<Option<CosignedNote>, ServerError> {
    let runtime = &state.runtime;
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
    let note: Arc<str> = note.into();
    let (answered, answers) = std::sync::mpsc::channel();
    let mut pending = 0_usize;
    for prefix in &log_settings.witnesses {
        let Some(known) = start_asking(state, prefix, size) else {
            continue;
        };
        let asking = Asking {
            state: Arc::clone(state),
            prefix: prefix.clone(),
        };
        let (environment, note, answered) = (
            Arc::clone(&environment),
            Arc::clone(&note),
            answered.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("parmana-cosign".to_owned())
            .spawn(move || {
                let state = &asking.state;
                let trust_root = environment.trust_root();
                let request = |old_size| {
                    state.log_cache.get(state.runtime.store())?.witness_request(
                        trust_root,
                        note.as_bytes(),
                        old_size,
                    )
                };
                let answer = crate::witness::request_cosignature(
                    &request,
                    trust_root,
                    note.as_bytes(),
                    &asking.prefix,
                    known,
                    WITNESS_ANSWER_TIMEOUT,
                );
                if answer.is_ok() {
                    asking.cosigned(size);
                }
                // The round may be over: a late cosignature is only remembered (its size).
                let _ = answered.send((asking.prefix.clone(), answer));
            });
        match spawned {
            Ok(_) => pending += 1,
            Err(error) => witness_failed(
                state,
                prefix,
                &ServerError::Io {
                    action: "start a thread to ask the witness",
                    address: prefix.clone(),
                    message: error.to_string(),
                },
            ),
        }
    }
    drop(answered);
    let mut cosigned = note.to_string();
    let mut kept = None;
    let mut stragglers_until: Option<std::time::Instant> = None;
    while pending > 0 {
        let wait = stragglers_until.map_or(ANSWER_POLL, |until| {
            until
                .saturating_duration_since(std::time::Instant::now())
                .min(ANSWER_POLL)
        });
        let (prefix, answer) = match answers.recv_timeout(wait) {
            Ok(answer) => answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let stragglers_over =
                    stragglers_until.is_some_and(|until| std::time::Instant::now() >= until);
                // A shutdown does not wait for the witnesses' answers.
                if stragglers_over || state.is_draining() {
                    break;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        pending -= 1;
        match answer.and_then(|more| merged(trust_root, &cosigned, &note, &more)) {
            Ok(more) => {
                cosigned = more;
                // As far as the trust root requires: the log's signatures and the witnesses'
                // threshold.
                if role.verifier().open_checkpoint(cosigned.as_bytes()).is_ok() {
                    let note = CosignedNote {
                        size,
                        root,
                        trust_root_version: trust_root.version(),
                        note: cosigned.clone(),
                    };
                    keep(state, &note);
                    kept = Some(note);
                    stragglers_until
                        .get_or_insert_with(|| std::time::Instant::now() + STRAGGLER_WAIT);
                }
            }
            Err(error) => witness_failed(state, &prefix, &error),
        }
    }
    if kept.is_some() {
        return Ok(kept);
    }
    if state.is_draining() {
        return Ok(None);
    }
    // Short of the threshold: refused as the trust root's role refuses it.
    role.verifier()
        .open_checkpoint(cosigned.as_bytes())
        .map_err(|e| ServerError::Runtime(e.into()))?;
    Ok(None)
}

/// How long a round waits, once the threshold is met, for the witnesses still asked to add their
/// cosignatures to the checkpoint kept (healthy witnesses answer within milliseconds of each
/// other).
const STRAGGLER_WAIT: Duration = Duration::from_millis(500);

/// How often a round waiting for the witnesses' answers looks whether a shutdown began.
const ANSWER_POLL: Duration = Duration::from_millis(100);

/// Marks the witness at `prefix` as asked, unless a request to it is still waiting for its
/// answer (`None`: not asked this round); the size to start its request from, the one it
/// cosigned last for this server if not beyond `size` (0 otherwise).
fn start_asking(state: &AppState, prefix: &str, size: u64) -> Option<u64> {
    let mut witnesses = state.witnesses.lock().ok()?;
    let progress = witnesses.entry(prefix.to_owned()).or_default();
    if progress.asking {
        return None;
    }
    progress.asking = true;
    Some(
        Some(progress.cosigned_size)
            .filter(|known| *known <= size)
            .unwrap_or(0),
    )
}

/// A witness being asked: no longer once this is dropped (its answer in, or its thread gone).
struct Asking {
    state: Arc<AppState>,
    prefix: String,
}

impl Asking {
    /// The witness cosigned a checkpoint of `size`: its next request starts from there.
    fn cosigned(&self, size: u64) {
        if let Ok(mut witnesses) = self.state.witnesses.lock() {
            witnesses
                .entry(self.prefix.clone())
                .or_default()
                .cosigned_size = size;
        }
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        if let Ok(mut witnesses) = self.state.witnesses.lock()
            && let Some(progress) = witnesses.get_mut(&self.prefix)
        {
            progress.asking = false;
        }
    }
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
