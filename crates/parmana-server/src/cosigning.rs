//! The log's side of witnessing in `parmana serve`: the checkpoint the server signs is sent to the configured witnesses at once, and the newest one cosigned by as many as the trust root requires is kept for the log routes to serve.

use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::replay::ReplayError;
use parmana_runtime::{ExecutionError, RuntimeEnvironment};

use crate::error::ServerError;
use crate::state::{AppState, CosignedNote, WitnessProgress};

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
/// once (each on a thread of its own, with the log's signatures only) but one still answering
/// an earlier round's request, their cosignatures merged as they answer, and the result kept as
/// soon as it meets the trust root's witness threshold. Once it does, the witnesses still asked
/// get [`STRAGGLER_WAIT`] more to add theirs; a witness that answers later (within its
/// [`WITNESS_ANSWER_TIMEOUT`]) has its size remembered, or its failure logged. So a slow or
/// silent witness delays neither the others nor the next round, as long as the others meet the
/// threshold; a round short of it waits for every answer. `None` where there is nothing new to
/// cosign (or the trust root requires no witness, or every witness is still answering, or a
/// shutdown began while waiting); a witness that fails is logged and the others still count.
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
    let mut skipped = Vec::new();
    for prefix in &log_settings.witnesses {
        let Some(known) = start_asking(state, prefix, size) else {
            tracing::debug!(
                target: "parmana::server",
                witness = %prefix,
                "a witness still answering an earlier round's request is not asked again yet"
            );
            skipped.push(prefix.as_str());
            continue;
        };
        let asked = Asked {
            environment: Arc::clone(&environment),
            note: Arc::clone(&note),
            size,
            known,
        };
        match ask(state, prefix, asked, answered.clone()) {
            Ok(()) => pending += 1,
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
    if pending == 0 && !skipped.is_empty() {
        // Nothing asked: every witness is still answering (its own request logs its outcome).
        return Ok(None);
    }
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
        // A failure was logged by the witness's own thread.
        let Some(answer) = answer else { continue };
        match merged(trust_root, &cosigned, &note, &answer) {
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
    if !skipped.is_empty() {
        tracing::warn!(
            target: "parmana::server",
            witnesses = ?skipped,
            "not asked this round: each is still answering an earlier round's request (at most \
             twice the 10 s answer timeout)"
        );
    }
    // Short of the threshold: refused as the trust root's role refuses it.
    role.verifier()
        .open_checkpoint(cosigned.as_bytes())
        .map_err(|e| ServerError::Runtime(e.into()))?;
    Ok(None)
}

/// What a witness is asked in a round: the checkpoint `note` (of `size` entries, under
/// `environment`'s trust root), from the size it cosigned `known`.
struct Asked {
    environment: Arc<RuntimeEnvironment>,
    note: Arc<str>,
    size: u64,
    known: u64,
}

/// Asks the witness at `prefix` on a thread of its own, which sends the checkpoint it cosigned
/// (or `None`) to `answered`: the round's, or nobody's once the round is over. The thread logs a
/// failure itself, so that one after the round is not lost, remembers the size it cosigned, and
/// holds the server's state only while it reads the store or records the outcome — never across
/// the witness's answer, so that a server that stops is not kept alive by it. Fails only when
/// the thread cannot be started.
fn ask(
    state: &Arc<AppState>,
    prefix: &str,
    asked: Asked,
    answered: std::sync::mpsc::Sender<(String, Option<String>)>,
) -> std::io::Result<()> {
    let asking = Asking {
        state: Arc::downgrade(state),
        prefix: prefix.to_owned(),
        roots: state.log.as_ref().and_then(|log| log.witness_roots.clone()),
    };
    std::thread::Builder::new()
        .name("parmana-cosign".to_owned())
        .spawn(move || {
            let trust_root = asked.environment.trust_root();
            let request = |old_size| {
                let state = asking.state.upgrade().ok_or_else(|| {
                    ExecutionError::from(ReplayError::Unavailable {
                        message: "the server has stopped".to_owned(),
                    })
                })?;
                crate::tlog::served_log(&state)?.witness_request(
                    trust_root,
                    asked.note.as_bytes(),
                    old_size,
                )
            };
            let answer = crate::witness::request_cosignature(
                &request,
                trust_root,
                asked.note.as_bytes(),
                (&asking.prefix, asking.roots.as_ref()),
                asked.known,
                WITNESS_ANSWER_TIMEOUT,
            );
            if let Some(state) = asking.state.upgrade() {
                match &answer {
                    Ok(_) => with_progress(&state, &asking.prefix, |progress| {
                        progress.cosigned_size = asked.size;
                    }),
                    Err(error) => witness_failed(&state, &asking.prefix, error),
                }
            }
            let prefix = asking.prefix.clone();
            // No longer asking before the round hears of it.
            drop(asking);
            let _ = answered.send((prefix, answer.ok()));
        })
        .map(drop)
}

/// How long a round waits, once the threshold is met, for the witnesses still asked to add their
/// cosignatures to the checkpoint kept (healthy witnesses answer within milliseconds of each
/// other).
const STRAGGLER_WAIT: Duration = Duration::from_millis(500);

/// How often a round waiting for the witnesses' answers looks whether a shutdown began.
const ANSWER_POLL: Duration = Duration::from_millis(100);

/// `change` applied to what this server knows of the witness at `prefix` (a poisoned lock is
/// taken as it is: the progress is two plain values).
fn with_progress<T>(
    state: &AppState,
    prefix: &str,
    change: impl FnOnce(&mut WitnessProgress) -> T,
) -> T {
    let mut witnesses = state
        .witnesses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    change(witnesses.entry(prefix.to_owned()).or_default())
}

/// Marks the witness at `prefix` as asked, unless a request to it is still waiting for its
/// answer (`None`: not asked this round); the size to start its request from, the one it
/// cosigned last for this server if not beyond `size` (0 otherwise).
fn start_asking(state: &AppState, prefix: &str, size: u64) -> Option<u64> {
    with_progress(state, prefix, |progress| {
        if progress.asking {
            return None;
        }
        progress.asking = true;
        Some(
            Some(progress.cosigned_size)
                .filter(|known| *known <= size)
                .unwrap_or(0),
        )
    })
}

/// A witness being asked: no longer once this is dropped (its answer in, or its thread gone).
struct Asking {
    state: std::sync::Weak<AppState>,
    prefix: String,
    roots: Option<crate::witness::WitnessRoots>,
}

impl Drop for Asking {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            with_progress(&state, &self.prefix, |progress| progress.asking = false);
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
    // `request_cosignature` returns `sent` (signed here, in its canonical form) with the
    // witness's lines after its own; anything else is refused, not merged.
    let lines = answer.strip_prefix(sent).ok_or_else(|| {
        ServerError::Runtime(ExecutionError::from(
            parmana_runtime::trust::TrustError::NoteMalformed {
                message: "the cosigned checkpoint does not begin with the checkpoint sent"
                    .to_owned(),
            },
        ))
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

    use super::{Asking, start_asking, with_progress};
    use crate::error::ServerError;
    use crate::readiness_tests::{bound, runtime_over, settings_for};
    use crate::settings::{Limits, LogSettings, MAX_WITNESSES};
    use crate::state::AppState;

    /// A witness is asked once at a time — a round skips it while its request waits, until the
    /// request's guard is dropped — each request starting from the size it cosigned last for
    /// this server (0 where that is beyond the checkpoint sent, or never); witnesses are apart;
    /// a guard outliving its server does nothing.
    #[test]
    fn a_witness_is_asked_once_at_a_time_from_the_size_it_cosigned() {
        let fixture = FixtureEnvironment::new().unwrap();
        let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::new());
        let state = bound(runtime_over(&fixture, store), Limits::default(), None);
        let (w1, w2) = ("http://w1.example", "http://w2.example");
        let answered = |state: &Arc<AppState>, prefix: &str| {
            drop(Asking {
                state: Arc::downgrade(state),
                prefix: prefix.to_owned(),
                roots: None,
            });
        };
        assert_eq!(start_asking(&state, w1, 5), Some(0), "never cosigned");
        assert_eq!(start_asking(&state, w1, 5), None, "still asked");
        assert_eq!(start_asking(&state, w2, 5), Some(0), "another witness");
        with_progress(&state, w1, |progress| progress.cosigned_size = 5);
        answered(&state, w1);
        assert_eq!(start_asking(&state, w1, 7), Some(5));
        answered(&state, w1);
        assert_eq!(
            start_asking(&state, w1, 3),
            Some(0),
            "beyond the checkpoint"
        );
        let gone = Arc::downgrade(&state);
        drop(state);
        drop(Asking {
            state: gone,
            prefix: w1.to_owned(),
            roots: None,
        });
    }

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
                witness_roots: None,
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
