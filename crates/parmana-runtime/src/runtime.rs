//! `Runtime`: one shareable object holding the verified environment, the signers, the store and the clock — execute, evaluate, explain, recover, verify, read back, and reload while running.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use parmana_canon::{Digest, ExecutionId, PolicyRef, Timestamp};
use parmana_replay::{
    AcceptedVersions, CompletedExecution, ExecutionState, ReplayError, ReplayStore,
};
use parmana_trust::{
    AttestationCheckKind, AttestationReport, Role, Signer, TrustError, VerifiedTrustHistory,
    VerifyOptions,
};
use serde_json::Value;

use crate::environment::{HighestAccepted, LoadedPolicy};
use crate::execute::{
    Attestation, Recovered, RecoveryCounts, RecoveryReport, check_expiry,
    check_not_older_than_store,
};
use crate::{
    Clock, ExecutionError, ExecutionRequest, RuntimeEnvironment, RuntimeEnvironmentConfig, Signals,
    StoreOpen, SystemClock, open_store,
};

/// The Parmana runtime: a verified environment, the keys it signs with, the replay store that
/// consumes execution ids, and the clock — built once, shared by every thread.
///
/// `Runtime` is `Send + Sync` and cheap to clone (an [`Arc`] inside): a server holds one and
/// calls it from many tasks. Its environment can be replaced while it runs ([`reload`]);
/// an execution in flight finishes on the environment it started with.
///
/// [`reload`]: Runtime::reload
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeEnvironmentConfig,
    environment: RwLock<Arc<RuntimeEnvironment>>,
    signers: Vec<Arc<dyn Signer>>,
    store: Arc<dyn ReplayStore>,
    clock: Arc<dyn Clock>,
    last_reload: Mutex<Option<ReloadRecord>>,
    /// Completions signed but not recorded (the store failed), written again by
    /// [`Runtime::finish_completions`].
    unfinished: crate::execute::Unfinished,
    /// Why the store is refused, once it is ([`Runtime::refuse_store`]): for the runtime's life.
    store_refused: std::sync::OnceLock<String>,
    /// The environments reloads replaced, as long as anything (an execution in flight under
    /// one) still holds them: [`Runtime::accept_settled_environment`] waits for them.
    retired: Mutex<Vec<std::sync::Weak<RuntimeEnvironment>>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let environment = self.environment();
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .field("trust_root_version", &environment.trust_root().version())
            .field(
                "release_manifest_version",
                &environment.release_manifest().version(),
            )
            .field(
                "signers",
                &self
                    .inner
                    .signers
                    .iter()
                    .map(|s| s.key_id().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Runtime`] from explicit parts: where the environment is, the signers, the store
/// and the clock. Nothing is read from the process environment or the current directory.
#[must_use]
pub struct RuntimeBuilder {
    config: RuntimeEnvironmentConfig,
    signers: Vec<Arc<dyn Signer>>,
    store: Option<StoreSource>,
    clock: Arc<dyn Clock>,
    /// Wraps the store once it is open (what observes it: `parmana serve`'s timings).
    store_layer: Option<StoreLayer>,
}

/// A wrapper put around the store once it is open.
type StoreLayer = Box<dyn FnOnce(Arc<dyn ReplayStore>) -> Arc<dyn ReplayStore> + Send + Sync>;

/// Where the builder gets its store: given, or opened only once the environment verified.
enum StoreSource {
    Ready(Arc<dyn ReplayStore>),
    Location(String, StoreOpen),
}

impl RuntimeBuilder {
    /// Adds a signing key. At each execution, every signer whose key holds the `attestation`
    /// role in the trust root in force signs (so a runtime can hold the keys of both sides of
    /// a rotation, and meet a threshold above one).
    pub fn signer(self, signer: impl Signer + 'static) -> Self {
        self.shared_signer(Arc::new(signer))
    }

    /// Adds a signing key shared with other owners (a hardware or cloud key, for example).
    pub fn shared_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signers.push(signer);
        self
    }

    /// The replay store that consumes execution ids.
    pub fn store(self, store: impl ReplayStore + 'static) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// A replay store opened elsewhere (for example by [`open_store`](crate::open_store)).
    pub fn boxed_store(self, store: Box<dyn ReplayStore>) -> Self {
        self.shared_store(Arc::from(store))
    }

    /// A replay store shared with other owners.
    pub fn shared_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.store = Some(StoreSource::Ready(store));
        self
    }

    /// The replay store at `location` (see [`open_store`](crate::open_store)), opened by
    /// [`build`](Self::build) only after the environment verified — so a mistyped path or an
    /// expired trust root never creates a store.
    pub fn store_location(mut self, location: impl Into<String>, mode: StoreOpen) -> Self {
        self.store = Some(StoreSource::Location(location.into(), mode));
        self
    }

    /// Puts `layer` around the store once it is open or given (by [`build`](Self::build),
    /// whichever way the store was set): a wrapper that observes the store (timing its
    /// operations, say) or refuses more than it would (answering the claim of an id known used
    /// elsewhere), never less. One layer: a second call replaces the first (compose them in one
    /// closure).
    ///
    /// A layer forwards every write the store has, `completes_in_one_write` and
    /// `claim_completed` included: a layer around a store that writes an execution once
    /// (PostgreSQL) that answers the trait's default (`false`) puts the runtime back on claim,
    /// sign, complete, which records a claim's inputs before the claim is decided — the capture
    /// `docs/trust-model.md` §8.1 closes on that store.
    pub fn layer_store(
        mut self,
        layer: impl FnOnce(Arc<dyn ReplayStore>) -> Arc<dyn ReplayStore> + Send + Sync + 'static,
    ) -> Self {
        self.store_layer = Some(Box::new(layer));
        self
    }

    /// The clock (the [`SystemClock`] unless set).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Verifies the environment (trust chain from the pinned root key, release manifest,
    /// runtime compatibility) at the clock's reading, opens the store, refuses versions older
    /// than the store's high-water marks (`trust.version_rollback`) and a store whose marks
    /// are lower than its ledger proves (`replay.marks_reset`), and builds the runtime.
    /// Refuses a runtime without a store.
    pub fn build(self) -> Result<Runtime, ExecutionError> {
        let source = self.store.ok_or(ExecutionError::NoStore)?;
        // A signer that signs with another key than it names, or not deterministically, is
        // refused before anything is opened (`parmana_trust::check_signer`).
        for signer in &self.signers {
            parmana_trust::check_signer(signer.as_ref())?;
        }
        let environment = RuntimeEnvironment::load(&self.config, self.clock.now())?;
        let store = match source {
            StoreSource::Ready(store) => store,
            StoreSource::Location(location, mode) => Arc::from(open_store(&location, mode)?),
        };
        let store = match self.store_layer {
            Some(layer) => layer(store),
            None => store,
        };
        check_not_older_than_store(store.as_ref(), &environment)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                config: self.config,
                environment: RwLock::new(Arc::new(environment)),
                signers: self.signers,
                store,
                clock: self.clock,
                last_reload: Mutex::new(None),
                unfinished: crate::execute::Unfinished::default(),
                store_refused: std::sync::OnceLock::new(),
                retired: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// How many times [`Runtime::accept_environment`] raises the marks again after another runtime
/// raised them between its read and its raise.
const ACCEPT_ATTEMPTS: usize = 4;

/// A pure decision: what the policy decides for the signals. Nothing consumed, nothing signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evaluation {
    /// The decision, one of the policy's `decisions`.
    pub decision: String,
    /// The id of the first matching rule, or `default`.
    pub rule_id: String,
    /// The outcome's reason; absent when the policy gives none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A decision with its trace: every rule tried, every condition evaluated, with the values read.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedEvaluation {
    /// The decision (identical to [`Runtime::evaluate`]).
    pub evaluation: Evaluation,
    /// The trace as canonical JSON (`{"decision", "rules": [...]}`).
    pub trace: Vec<u8>,
    /// The trace as text, one line per rule and condition.
    pub text: String,
}

/// What the store holds for one execution id.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionStatus {
    /// Completed: the stored attestation envelope (the bytes `execute` returned).
    Completed(Vec<u8>),
    /// Claimed but not completed: in flight, or interrupted — run `recover`.
    Claimed {
        /// When it was claimed (the clock reading recorded with the claim).
        claimed_at: Timestamp,
    },
    /// Never used.
    Unknown,
}

/// The versions of a successful reload, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// Trust root version before and after.
    pub trust_root: (u64, u64),
    /// Release manifest version before and after.
    pub release_manifest: (u64, u64),
    /// How many released policies were loaded and verified before the swap.
    pub policies: usize,
}

/// The last reload attempt: when, and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    /// The clock's reading when it was attempted.
    pub at: Timestamp,
    /// The versions, or the stable code and message of the refusal (the old environment stays).
    pub outcome: Result<ReloadReport, (String, String)>,
}

impl Runtime {
    /// A builder for the environment at `config`, with the [`SystemClock`], no signer and no
    /// store yet.
    pub fn builder(config: RuntimeEnvironmentConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            signers: Vec::new(),
            store: None,
            clock: Arc::new(SystemClock),
            store_layer: None,
        }
    }

    /// The environment in force now. An execution holds the one it started with to the end.
    pub fn environment(&self) -> Arc<RuntimeEnvironment> {
        let guard = self
            .inner
            .environment
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// The replay store.
    pub fn store(&self) -> &dyn ReplayStore {
        self.inner.store.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Refuses the store for the rest of this runtime's life: every later
    /// [`execute`](Self::execute) and recovery is `runtime.store_rewound`, with `reason`. For a
    /// store shown cut, replaced or rewound under the log this deployment keeps (its ledger no
    /// longer extends the log a [`LogSequencer`](crate::LogSequencer) kept, or it does not reach
    /// a [`LogAnchor`](crate::LogAnchor)): the ids of the executions cut away would execute
    /// again. The first reason given stays; only a new runtime (a restart, once the store is
    /// restored) executes on the store again.
    pub fn refuse_store(&self, reason: String) {
        let _ = self.inner.store_refused.set(reason);
    }

    /// Why the store is refused, if it is ([`refuse_store`](Self::refuse_store)).
    pub fn store_refused(&self) -> Option<&str> {
        self.inner.store_refused.get().map(String::as_str)
    }

    fn check_store_not_refused(&self) -> Result<(), ExecutionError> {
        match self.store_refused() {
            Some(reason) => Err(ExecutionError::StoreRewound {
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Executes `request` exactly once: decides, claims the id, signs, records, returns the
    /// attestation (see [`execute_from_signals`](crate::execute_from_signals) for the order).
    /// Refused (`runtime.store_rewound`) once the store is ([`refuse_store`](Self::refuse_store)).
    pub fn execute(&self, request: &ExecutionRequest) -> Result<Attestation, ExecutionError> {
        self.check_store_not_refused()?;
        let environment = self.environment();
        let execute_under = |environment: &RuntimeEnvironment| {
            let signers = self.signers_for(environment)?;
            crate::execute::execute(
                request,
                &signers,
                self.inner.store.as_ref(),
                environment,
                self.inner.clock.as_ref(),
                Some(&self.inner.unfinished),
            )
        };
        match execute_under(&environment) {
            // The claim was refused as a rollback (nothing consumed) because another execution
            // claimed under a newer environment this runtime reloaded after this one took its
            // own: nothing rolled back, so it is decided once more, under the environment now in
            // force. Under the same environment, the refusal stands.
            Err(ExecutionError::Store(ReplayError::VersionRollback { .. }))
                if !Arc::ptr_eq(&self.environment(), &environment) =>
            {
                execute_under(&self.environment())
            }
            executed => executed,
        }
    }

    /// Writes again the completions this runtime signed but could not record because the store
    /// failed at that moment (an id it claimed then stays claimed — `GET` answers pending, a
    /// retry is a replay — until this, or a `recover`, records the attestation it signed). A
    /// server calls it on every sequencer tick and before its last one; at most 10,000 are kept
    /// (64 MiB), each written only onto the claim it was signed for. The first the store does
    /// not answer for ends the pass; one it refuses for its row is kept after the others and the
    /// pass goes on ([`FinishReport::refused`](crate::FinishReport::refused)).
    pub fn finish_completions(&self) -> crate::FinishReport {
        self.inner.unfinished.finish(self.inner.store.as_ref())
    }

    /// Writes again, now, the completion this runtime kept for `execution_id` alone (an
    /// [`execute`](Self::execute) whose completion the store refused): the attestation this
    /// runtime signed once the store holds exactly it ([`KeptCompletion::Recorded`]) — what a
    /// caller told of the failure can deliver as the execution's outcome — kept again when the
    /// store does not take it, and never the store's word alone
    /// ([`KeptCompletion::Unconfirmed`]).
    pub fn complete_kept(&self, execution_id: &ExecutionId) -> crate::KeptCompletion {
        self.inner
            .unfinished
            .complete_one(self.inner.store.as_ref(), execution_id)
    }

    /// Whether this runtime's attestation keys can sign under the environment in force: a
    /// trust root that rotated the `attestation` role away from them (or raised its threshold
    /// past them) is taken by a reload — a key rotated out, perhaps because it leaked, must stop
    /// signing — and every execution is then refused (`runtime.signer_lacks_role`,
    /// `runtime.signers_below_threshold`) until the runtime is built with the new keys.
    pub fn check_can_sign(&self) -> Result<(), ExecutionError> {
        let environment = self.environment();
        let signers = self.signers_for(&environment)?;
        crate::execute::check_signers(&signers, &environment)
    }

    /// Refuses, as [`evaluate`](Self::evaluate) and [`execute`](Self::execute) would, when the
    /// environment in force has expired now (`runtime.expired`: its trust root or its release
    /// manifest): what refuses every decision, checked once before many.
    pub fn check_current(&self) -> Result<(), ExecutionError> {
        self.check_current_under(&self.environment())
    }

    /// [`check_current`](Self::check_current) for `environment` — the one a request took (a
    /// reload may have swapped another in since) — at the clock's reading.
    pub fn check_current_under(
        &self,
        environment: &RuntimeEnvironment,
    ) -> Result<(), ExecutionError> {
        check_expiry(environment, self.inner.clock.now())
    }

    /// Decides without consuming or signing anything: validates the signals and evaluates the
    /// released policy. Refuses like `execute` would (unknown policy, invalid signals, expired
    /// environment), but never touches the store.
    pub fn evaluate(
        &self,
        policy: &PolicyRef,
        signals: &Signals,
    ) -> Result<Evaluation, ExecutionError> {
        self.evaluate_under(&self.environment(), policy, signals)
    }

    /// [`evaluate`](Self::evaluate) under `environment` — one that
    /// [`environment`](Self::environment) returned — rather than the one in force now: a batch
    /// decides every signal set under the environment it began with, even when a reload swaps
    /// another in meanwhile.
    pub fn evaluate_under(
        &self,
        environment: &RuntimeEnvironment,
        policy: &PolicyRef,
        signals: &Signals,
    ) -> Result<Evaluation, ExecutionError> {
        check_expiry(environment, self.inner.clock.now())?;
        let loaded = environment.policy(policy)?;
        let validated = signals.validate(loaded.policy())?;
        Ok(evaluation_of(validated.evaluate()?))
    }

    /// Like [`evaluate`](Self::evaluate), with the trace of every rule tried.
    pub fn explain(
        &self,
        policy: &PolicyRef,
        signals: &Signals,
    ) -> Result<ExplainedEvaluation, ExecutionError> {
        self.explained(&self.environment(), policy, signals, |explanation| {
            Ok(ExplainedEvaluation {
                evaluation: evaluation_of(explanation.decision),
                trace: parmana_canon::to_canonical_vec(explanation)?,
                text: explanation.to_string(),
            })
        })
    }

    /// Like [`explain`](Self::explain), with the trace as canonical JSON only (no text made):
    /// what a server embeds in its answer as it is, without reading it again.
    pub fn explain_trace(
        &self,
        policy: &PolicyRef,
        signals: &Signals,
    ) -> Result<(Evaluation, parmana_canon::RawCanonical), ExecutionError> {
        self.explain_trace_under(&self.environment(), policy, signals)
    }

    /// [`explain_trace`](Self::explain_trace) under `environment`, as
    /// [`evaluate_under`](Self::evaluate_under).
    pub fn explain_trace_under(
        &self,
        environment: &RuntimeEnvironment,
        policy: &PolicyRef,
        signals: &Signals,
    ) -> Result<(Evaluation, parmana_canon::RawCanonical), ExecutionError> {
        self.explained(environment, policy, signals, |explanation| {
            Ok((
                evaluation_of(explanation.decision),
                parmana_canon::RawCanonical::encode(explanation)?,
            ))
        })
    }

    /// The explanation of `signals` under `policy`, given to `made` (which makes what the
    /// caller returns of it).
    fn explained<T>(
        &self,
        environment: &RuntimeEnvironment,
        policy: &PolicyRef,
        signals: &Signals,
        made: impl FnOnce(&parmana_policy::Explanation<'_>) -> Result<T, ExecutionError>,
    ) -> Result<T, ExecutionError> {
        check_expiry(environment, self.inner.clock.now())?;
        let loaded = environment.policy(policy)?;
        let validated = signals.validate(loaded.policy())?;
        made(&validated.explain()?)
    }

    /// Completes every claimed-but-unfinished execution from its recorded inputs,
    /// byte-identically (see [`recover`](crate::recover)).
    pub fn recover(&self) -> Result<RecoveryReport, ExecutionError> {
        self.check_store_not_refused()?;
        let environment = self.environment();
        let signers = self.signers_for(&environment)?;
        crate::execute::recover_with(self.inner.store.as_ref(), &signers, &environment)
    }

    /// [`recover`](Self::recover) page by page: each execution settled is handed to `each` as
    /// soon as it is (its attestation stored first), and memory stays bounded by one page of ids
    /// however many the store lists as claimed. Returns how many were completed and how many
    /// could not be. Unlike [`recover`](Self::recover), a completion the store did not take
    /// (`replay.store_unavailable`, at the second try) is kept and written again by
    /// [`finish_completions`](Self::finish_completions), as an execution's is (a server's
    /// every tick); the id is handed to `each` as failed all the same.
    pub fn recover_each(
        &self,
        each: &mut dyn FnMut(Recovered),
    ) -> Result<RecoveryCounts, ExecutionError> {
        self.recover_each_until(each, &|| false)
    }

    /// [`recover_each`](Self::recover_each), stopped before its next id once `stop` says so (a
    /// server asked to shut down while it recovers: its wait is bounded by the id in hand, and
    /// the ids not reached stay claimed for the next start); the counts say whether it stopped.
    pub fn recover_each_until(
        &self,
        each: &mut dyn FnMut(Recovered),
        stop: &dyn Fn() -> bool,
    ) -> Result<RecoveryCounts, ExecutionError> {
        self.check_store_not_refused()?;
        let environment = self.environment();
        let signers = self.signers_for(&environment)?;
        crate::execute::recover_each_with(
            self.inner.store.as_ref(),
            &signers,
            &environment,
            Some(&self.inner.unfinished),
            each,
            stop,
        )
    }

    /// Verifies an attestation envelope offline against every version of the trust-root chain
    /// in force (one made under an earlier version still verifies, judged at its
    /// `executed_at`; the clock's reading bounds `executed_at`), and — when given — a released
    /// policy (its bundle's digests) and the signals. With the policy and the signals (given,
    /// or embedded in the attestation), the `decision` check too: the policy, evaluated again
    /// over the signals, decides what the attestation says. Every check is reported separately;
    /// the report says whether the version it was made under is superseded (current trust is
    /// not required here).
    pub fn verify(
        &self,
        envelope: &[u8],
        policy: Option<&LoadedPolicy>,
        signals: Option<&Value>,
    ) -> AttestationReport {
        self.verify_under(&self.environment(), envelope, policy, signals)
    }

    /// [`verify`](Self::verify) against `environment`'s trust-root chain — the one a request
    /// took, whose release manifest gave `policy` (a reload may have swapped another in since):
    /// a report judged by one environment throughout.
    pub fn verify_under(
        &self,
        environment: &RuntimeEnvironment,
        envelope: &[u8],
        policy: Option<&LoadedPolicy>,
        signals: Option<&Value>,
    ) -> AttestationReport {
        let options = VerifyOptions {
            now: self.inner.clock.now(),
            require_current_trust: false,
        };
        let report = parmana_trust::verify_attestation_in_history(
            envelope,
            environment.trust_history(),
            options,
            policy.map(LoadedPolicy::bundle),
            signals,
        );
        match policy {
            Some(policy) => {
                crate::verify::with_decision_check(report, signals, |predicate, signals, on| {
                    crate::verify::redecide(predicate, policy.policy(), signals, on)
                })
            }
            None => report,
        }
    }

    /// A released policy, verified and compiled (from the environment's cache, or loaded now):
    /// what [`verify`](Self::verify)'s bundle and decision checks take. Shared, not copied.
    pub fn policy(&self, policy: &PolicyRef) -> Result<Arc<LoadedPolicy>, ExecutionError> {
        self.environment().policy(policy)
    }

    /// What the store holds for `execution_id`: the stored attestation, a pending claim, or
    /// nothing. The store is outside the trust boundary, so a stored attestation is handed out
    /// only once it verifies under the trust-root chain as this execution's, made at the clock
    /// reading its claim records (`runtime.stored_attestation_invalid` otherwise: a row a writer
    /// of the store replaced — another execution's genuine attestation — or made). As for the
    /// log's entries, a revoked key and current trust are not judged here: a verifier judges
    /// them (`docs/trust-model.md` §6).
    pub fn attestation(
        &self,
        execution_id: &ExecutionId,
    ) -> Result<ExecutionStatus, ExecutionError> {
        stored_execution_status(
            self.inner.store.as_ref(),
            self.environment().trust_history(),
            self.inner.clock.now(),
            execution_id,
        )
    }

    /// Loads the trust root and release manifest from their files again, verifies them fully
    /// (chain from the pinned key, expiry, runtime compatibility, and every released bundle),
    /// refuses a version older than the one in force (`trust.version_rollback`; not the store's
    /// marks, which every claim checks in its own transaction: marks above the files hold back
    /// no reload forward, and the claims below them are refused), refuses a version in force that comes back with other content (a trust-root version
    /// of its chain or the release manifest's version signed twice: `trust.version_conflict`),
    /// and swaps the environment atomically. Executions in flight
    /// finish on the environment they started with. On any refusal the old environment stays.
    pub fn reload(&self) -> Result<ReloadReport, ExecutionError> {
        self.reload_checked(|_| Ok(()))
    }

    /// [`reload`](Runtime::reload), with `check` run on the new environment — verified, its
    /// policies loaded — before the swap: a refusal (`runtime.environment_refused`, with the
    /// reason it gives) keeps the old environment, like every other refusal. For a caller that
    /// holds settings checked against the environment at start (`parmana serve`'s AuthZEN
    /// mapping), so that no environment they no longer fit is ever in force.
    pub fn reload_checked(
        &self,
        check: impl FnOnce(&RuntimeEnvironment) -> Result<(), String>,
    ) -> Result<ReloadReport, ExecutionError> {
        let at = self.inner.clock.now();
        let outcome = self.try_reload(at, check);
        let record = ReloadRecord {
            at,
            outcome: outcome
                .as_ref()
                .map(|report| *report)
                .map_err(|e| (e.code().to_owned(), e.to_string())),
        };
        *self
            .inner
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(record);
        outcome
    }

    /// Records a reload that failed outside [`reload_checked`](Self::reload_checked) — the
    /// host's task running it failed (a defect) — as a refused reload at the clock's reading,
    /// so that [`last_reload`](Self::last_reload) reports every attempt. The environment in
    /// force is unchanged.
    pub fn record_reload_failure(&self, code: &str, message: String) {
        let record = ReloadRecord {
            at: self.inner.clock.now(),
            outcome: Err((code.to_owned(), message)),
        };
        *self
            .inner
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(record);
    }

    /// The last reload attempt, if any.
    pub fn last_reload(&self) -> Option<ReloadRecord> {
        self.inner
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records in the store that the trust-root and release-manifest versions in force were
    /// taken: raises its high-water marks to them where they are higher (a marks record in its
    /// ledger, as a claim under them would append), so that a runtime built later on older
    /// files is refused (`trust.version_rollback`) even when nothing was executed under these.
    /// Marks equal to them are asked for too: the store appends the marks record they lack, for
    /// a row a writer raised ahead of them. Marks above them in either version are left as they
    /// are, and nothing is raised (another runtime sharing the store may have taken a newer
    /// version; an environment below the marks in one version is in force nowhere, and raising
    /// its other version would prove for good a higher one that a writer of the database may
    /// have planted). A host calls it once its environment is settled — `parmana serve`
    /// at start, once recovery is done, and on a clean stop, once no execution is running
    /// (not at a reload: an execution still in flight under the environment it replaces would
    /// then be decided again under the new one; after a reload,
    /// [`accept_settled_environment`](Self::accept_settled_environment)). Returns the marks now in force; refused with
    /// the store's error (a read-only store refuses every raise).
    pub fn accept_environment(&self) -> Result<AcceptedVersions, ExecutionError> {
        self.accept_versions_of(&self.environment())
    }

    /// [`accept_environment`](Self::accept_environment) once the environment in force is
    /// settled: when no environment a reload replaced, of an older trust-root or
    /// release-manifest version, is still held — by an execution in flight under it, which
    /// finishes on it (a raise would refuse its claim as a rollback and decide it again under
    /// the new one) — and no completion the store refused still waits (written again here
    /// first: [`finish_completions`](Self::finish_completions)). Then the versions in force are
    /// recorded, as at a start, so that a process started later on the older files is refused
    /// (`trust.version_rollback`) even when nothing is executed under the new ones; until then
    /// `Ok(None)`, nothing done. A host calls it
    /// after a reload, again until it is done (`parmana serve`: on its sequencer's ticks).
    pub fn accept_settled_environment(&self) -> Result<Option<AcceptedVersions>, ExecutionError> {
        let environment = self.environment();
        let ours = crate::execute::versions_of(&environment);
        let older_in_use = {
            let retired = self.retired();
            retired
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .any(|held| {
                    let theirs = crate::execute::versions_of(&held);
                    theirs.trust_root < ours.trust_root
                        || theirs.release_manifest < ours.release_manifest
                })
        };
        if older_in_use {
            return Ok(None);
        }
        // Then (no execution under an older environment can leave one any more): not while a
        // completion the store refused still waits — one claimed under an older environment is
        // completed only under it, which the raised marks would then refuse after a restart.
        if self.finish_completions().waiting > 0 {
            return Ok(None);
        }
        self.accept_versions_of(&environment).map(Some)
    }

    /// The environments reloads replaced that something still holds (the others dropped from
    /// the list here).
    fn retired(&self) -> std::sync::MutexGuard<'_, Vec<std::sync::Weak<RuntimeEnvironment>>> {
        let mut retired = self
            .inner
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        retired.retain(|weak| weak.strong_count() > 0);
        retired
    }

    /// Raises the store's marks to `environment`'s versions ([`accept_environment`]).
    ///
    /// [`accept_environment`]: Self::accept_environment
    fn accept_versions_of(
        &self,
        environment: &RuntimeEnvironment,
    ) -> Result<AcceptedVersions, ExecutionError> {
        let ours = crate::execute::versions_of(environment);
        let mut marks = self.inner.store.accepted_versions()?;
        // A raise by another runtime between the read and this one's refuses it (as a
        // rollback): read again and judge the marks read, a few times at most (the last refusal
        // is returned).
        let mut refused = None;
        for _ in 0..ACCEPT_ATTEMPTS {
            // Marks equal to ours are asked for all the same: the store writes nothing when its
            // marks records prove them, and appends the record they lack when they do not (a
            // row a writer of the database raised ahead of this environment, to lower it again
            // before anything is claimed under it). Marks above ours in either version are left
            // as they are, and nothing is raised: an environment below the marks in one version
            // is in force nowhere (the store refuses every claim under it), so its other version
            // has nothing to record; and raising it would make the higher one — which a writer
            // of the database may have planted — proven for good, and refuse the runtimes that
            // do run the higher one.
            if marks.trust_root > ours.trust_root || marks.release_manifest > ours.release_manifest
            {
                return Ok(marks);
            }
            match self
                .inner
                .store
                .accept_versions(ours.trust_root, ours.release_manifest)
            {
                Ok(raised) => return Ok(raised),
                Err(error @ ReplayError::VersionRollback { .. }) => {
                    refused = Some(error);
                    marks = self.inner.store.accepted_versions()?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        match refused {
            Some(error)
                if ours.trust_root > marks.trust_root
                    || ours.release_manifest > marks.release_manifest =>
            {
                Err(error.into())
            }
            _ => Ok(marks),
        }
    }

    fn try_reload(
        &self,
        now: Timestamp,
        check: impl FnOnce(&RuntimeEnvironment) -> Result<(), String>,
    ) -> Result<ReloadReport, ExecutionError> {
        let current = self.environment();
        // The floor is the environment in force (the swap is never backwards for this runtime),
        // not the store's marks: every claim checks the marks in its own transaction, where a
        // version below them, or marks the store refuses, refuse it (`/readyz` says why), so
        // the marks as a floor would only refuse moves forward — marks above the files on disk
        // (raised by a writer of the store, or by a server of the deployment further ahead)
        // would keep the older environment deciding evaluations and reading attestations. So a
        // reload that takes a trust root rotating a leaked key out is in force at once, whatever
        // the store's state.
        let highest = HighestAccepted {
            trust_root: Some(current.trust_root().version()),
            release_manifest: Some(current.release_manifest().version()),
        };
        let fresh = RuntimeEnvironment::load_after(&self.inner.config, now, highest)?;
        conflict_with(&current, &fresh)?;
        let policies = fresh.preload_released_policies()?;
        check(&fresh).map_err(|reason| ExecutionError::EnvironmentRefused { reason })?;
        let report = ReloadReport {
            trust_root: (current.trust_root().version(), fresh.trust_root().version()),
            release_manifest: (
                current.release_manifest().version(),
                fresh.release_manifest().version(),
            ),
            policies,
        };
        let mut slot = self
            .inner
            .environment
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another reload may have swapped in between: never go below what is in force now.
        let older = if slot.trust_root().version() > fresh.trust_root().version() {
            Some((
                "trust root",
                fresh.trust_root().version(),
                slot.trust_root().version(),
            ))
        } else if slot.release_manifest().version() > fresh.release_manifest().version() {
            Some((
                "release manifest",
                fresh.release_manifest().version(),
                slot.release_manifest().version(),
            ))
        } else {
            None
        };
        if let Some((document, version, highest)) = older {
            return Err(ExecutionError::Trust(TrustError::VersionRollback {
                document: document.to_owned(),
                version,
                highest,
            }));
        }
        conflict_with(&slot, &fresh)?;
        // Listed as retired before the new environment can be seen (under the write lock), so
        // that `accept_settled_environment` never sees the new one without the one it replaced.
        self.retired().push(Arc::downgrade(&slot));
        *slot = Arc::new(fresh);
        Ok(report)
    }

    /// The signers whose keys hold the `attestation` role in `environment`'s trust root; the
    /// pipeline then checks they meet the threshold. With none, the first signer is reported.
    fn signers_for<'s>(
        &'s self,
        environment: &RuntimeEnvironment,
    ) -> Result<Vec<&'s dyn Signer>, ExecutionError> {
        let trust_root = environment.trust_root();
        let holding: Vec<&dyn Signer> = self
            .inner
            .signers
            .iter()
            .map(|s| s.as_ref() as &dyn Signer)
            .filter(|s| {
                let keyid = s.key_id();
                trust_root.has_role(&keyid, Role::Attestation)
                    && trust_root.key(&keyid) == Some(s.public_key())
            })
            .collect();
        match (holding.is_empty(), self.inner.signers.first()) {
            (true, Some(first)) => Err(ExecutionError::SignerLacksRole {
                keyid: first.key_id().to_string(),
                trust_root_version: trust_root.version(),
            }),
            _ => Ok(holding),
        }
    }
}

/// What `store` holds for `execution_id`: the stored attestation, a pending claim, or nothing.
/// The store is outside the trust boundary, so a stored attestation is handed out only once it
/// verifies under `history` as this execution's, made at the clock reading its claim records
/// (`runtime.stored_attestation_invalid` otherwise); `now` is the verifier's clock (a reading
/// earlier than the claim's counts as the claim's). What [`Runtime::attestation`] reads, for a
/// reader with the trust-root chain and no keys (`parmana show`).
pub fn stored_execution_status(
    store: &dyn ReplayStore,
    history: &VerifiedTrustHistory,
    now: Timestamp,
    execution_id: &ExecutionId,
) -> Result<ExecutionStatus, ExecutionError> {
    Ok(match store.get(execution_id)? {
        ExecutionState::Completed(done) => {
            check_stored_attestation(store, history, now, execution_id, &done)?;
            ExecutionStatus::Completed(done.attestation().to_vec())
        }
        ExecutionState::Claimed(claim) => ExecutionStatus::Claimed {
            claimed_at: claim.claimed_at(),
        },
        ExecutionState::Absent => ExecutionStatus::Unknown,
    })
}

/// Refuses a stored attestation that is not `execution_id`'s (see [`Runtime::attestation`]).
fn check_stored_attestation(
    store: &dyn ReplayStore,
    history: &VerifiedTrustHistory,
    now: Timestamp,
    execution_id: &ExecutionId,
    done: &CompletedExecution,
) -> Result<(), ExecutionError> {
    let refuse = |reason: String| ExecutionError::StoredAttestationInvalid {
        execution_id: execution_id.as_str().to_owned(),
        reason,
    };
    // A server whose clock lags the one that executed reads a genuine attestation back:
    // the verifier's clock judges nothing else here.
    let options = VerifyOptions {
        now: now.max(done.claim().claimed_at()),
        require_current_trust: false,
    };
    let report = parmana_trust::verify_attestation_in_history(
        done.attestation(),
        history,
        options,
        None,
        None,
    );
    if report.checks.is_empty() {
        return Err(refuse("no check could be made".to_owned()));
    }
    // Made under a trust-root version this runtime has not loaded yet, which a runtime
    // sharing the store accepted (it raised the store's marks before it executed): another
    // server of the deployment reloaded first. Not judged here, nor refused as a forgery. A
    // version no runtime accepted — the envelope is not verified yet — is judged below.
    if let Some(predicate) = report.predicate()
        && predicate.trust_root.version > history.newest().version()
        && predicate.trust_root.version <= store.accepted_versions()?.trust_root
    {
        return Err(ExecutionError::EnvironmentBehind {
            execution_id: execution_id.as_str().to_owned(),
            version: predicate.trust_root.version,
            newest: history.newest().version(),
        });
    }
    if let Some(check) = report.failures().find(|check| {
        !matches!(
            check.check,
            AttestationCheckKind::Revocation | AttestationCheckKind::CurrentTrust
        )
    }) {
        return Err(refuse(format!(
            "it does not verify: {} ({})",
            check.detail,
            check.code.unwrap_or("")
        )));
    }
    let own = report.predicate().is_some_and(|predicate| {
        predicate.execution_id == *execution_id
            && predicate.executed_at == done.claim().claimed_at()
    });
    if !own {
        return Err(refuse(
            "it attests another execution, or another clock reading than the claim records"
                .to_owned(),
        ));
    }
    // The ledger and log proofs bind these very bytes: another spelling of the same
    // attestation (a writer of the store's) would be logged in place of the client's copy.
    if !parmana_trust::is_emitted_attestation_encoding(done.attestation()) {
        return Err(refuse(
            "it is not spelled as a runtime writes it (canonical JSON, signatures in key-id \
             order): the store's bytes are not the ones returned"
                .to_owned(),
        ));
    }
    Ok(())
}

fn evaluation_of(decision: parmana_policy::Decision<'_>) -> Evaluation {
    Evaluation {
        decision: decision.decision.to_owned(),
        rule_id: decision.rule_id.to_owned(),
        reason: decision.reason.map(str::to_owned),
    }
}

/// Refuses a `fresh` environment that holds a version `held` has with other content — a
/// trust-root version of its chain, or its release manifest's version
/// (`trust.version_conflict`): one version signed twice, which would make attestations made under
/// the first stop verifying against the second. Versions are compared by document digest.
fn conflict_with(
    held: &RuntimeEnvironment,
    fresh: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let conflict = |document: &str, version: u64, held: Digest, offered: Digest| {
        ExecutionError::Trust(TrustError::VersionConflict {
            document: document.to_owned(),
            version,
            held: held.to_string(),
            offered: offered.to_string(),
        })
    };
    for offered in fresh.trust_history().versions() {
        if let Some(known) = held.trust_history().version(offered.version())
            && known.digest() != offered.digest()
        {
            return Err(conflict(
                "trust root",
                offered.version(),
                known.digest(),
                offered.digest(),
            ));
        }
    }
    let (known, offered) = (held.release_manifest(), fresh.release_manifest());
    if known.version() == offered.version() && known.digest() != offered.digest() {
        return Err(conflict(
            "release manifest",
            offered.version(),
            known.digest(),
            offered.digest(),
        ));
    }
    Ok(())
}
