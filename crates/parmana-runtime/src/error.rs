//! `ExecutionError`: why an execution, an environment load or a recovery was refused, with a stable code and a class.

use parmana_canon::IdError;
use parmana_policy::{PolicyError, SignalError};
use parmana_replay::ReplayError;
use parmana_trust::TrustError;

/// The class of a refusal: what kind of problem it is, for exit codes and alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request or an input document was refused (bad signals, bad ids, malformed policy, unknown policy).
    InvalidInput,
    /// The chain of trust refused something (signature, key, role, digest, expiry, rollback, release manifest).
    Trust,
    /// The execution id was already used.
    Replay,
    /// The replay store failed or refused to work (unavailable, corrupt, unsupported schema).
    Store,
    /// A file or stream could not be read or written.
    Io,
    /// A defect of Parmana itself (a state validated input cannot produce): nothing was decided.
    Internal,
}

/// Why the runtime refused. Nothing partially trusted executes: every variant means no
/// attestation was returned.
///
/// Each variant has a stable [`code`](ExecutionError::code); refusals that come from a lower
/// layer keep that layer's code (for example `policy.signal_missing` or `trust.bad_signature`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutionError {
    /// The execution id is not 1 to 128 printable ASCII characters without spaces, or is `.` or
    /// `..` for a new execution.
    #[error("{0}")]
    InvalidExecutionId(#[source] IdError),
    /// The policy reference is not `id@version` with a well-formed id and version (this also
    /// refuses path traversal).
    #[error("invalid policy reference {reference:?}: {source}")]
    InvalidPolicyReference {
        /// The reference as given (at most 160 characters of it).
        reference: String,
        /// What is wrong with it.
        #[source]
        source: IdError,
    },
    /// A policy that is not released: the release manifest does not list it. The caller named a
    /// policy that does not run here (input, never a fault of the deployment's; a released one
    /// whose files are missing is refused as the files are, `trust.io`).
    #[error("policy {policy} not found: {reason}")]
    PolicyNotFound {
        /// `<id>@<version>`.
        policy: String,
        /// Why (the release manifest's version that does not list it).
        reason: String,
    },
    /// The policy text in a verified bundle is not a valid policy, or names another policy.
    #[error("policy {policy} is invalid: {source}")]
    PolicyInvalid {
        /// `<id>@<version>`.
        policy: String,
        /// Every diagnostic.
        #[source]
        source: PolicyError,
    },
    /// The bundle's policy file declares another id or version than its manifest.
    #[error("policy {policy}: policy.json declares {declared}")]
    PolicyIdentityMismatch {
        /// `<id>@<version>` from the bundle manifest.
        policy: String,
        /// What policy.json declares.
        declared: String,
    },
    /// The signals were refused by the policy's declarations.
    #[error("signals refused: {0}")]
    Signals(#[from] SignalError),
    /// The evaluator met a state validated signals cannot produce (a defect): nothing is
    /// decided, nothing consumed.
    #[error("{0}")]
    EvaluationFault(#[from] parmana_policy::Fault),
    /// The signals text (or a signals value's compact JSON text) is longer than
    /// [`MAX_SIGNALS_JSON_BYTES`](crate::MAX_SIGNALS_JSON_BYTES).
    #[error("request refused: {size} bytes of signals text, more than {limit}")]
    RequestTooLarge {
        /// The size of the text, in bytes (a value's counted up to the first byte past the
        /// limit).
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request text is not acceptable JSON.
    #[error("request refused: {0}")]
    Canon(#[from] parmana_canon::CanonError),
    /// A trust check failed: signature, key, role, digest, expiry, rollback, release manifest, compatibility.
    #[error("trust check failed: {0}")]
    Trust(#[from] TrustError),
    /// The attestation's signing failed after the execution id was claimed, on a store that
    /// claims before it signs: the id stays claimed (consumed) until `recover` completes it.
    /// Its code is the signing failure's (`trust.signing_failed`).
    #[error(
        "{source}; execution {execution_id:?} was claimed before the signing failed: `recover` completes it"
    )]
    SigningFailedAfterClaim {
        /// The claimed id.
        execution_id: String,
        /// Why the signing failed.
        source: Box<TrustError>,
    },
    /// The signer does not hold the `attestation` role in the trust root: nothing executes.
    #[error(
        "the signing key {keyid} does not hold the attestation role in trust root version {trust_root_version}"
    )]
    SignerLacksRole {
        /// The signer's key id.
        keyid: String,
        /// The trust root consulted.
        trust_root_version: u64,
    },
    /// The trust root or release manifest in force has expired at the clock's reading.
    #[error("{document} expired at {expires} (now {now})")]
    Expired {
        /// `trust root` or `release manifest`.
        document: &'static str,
        /// When it expired.
        expires: parmana_canon::Timestamp,
        /// The clock's reading.
        now: parmana_canon::Timestamp,
    },
    /// The execution id was already used; the first outcome stands.
    #[error("replay detected: execution id {execution_id:?} was already used")]
    ReplayDetected {
        /// The refused id.
        execution_id: String,
    },
    /// The replay store refused or failed (including a trust-root or manifest version rollback,
    /// a reset of its high-water marks, or a clock reading behind its newest, which it detected).
    #[error("replay store: {0}")]
    Store(#[source] ReplayError),
    /// A stored claim could not be read back for recovery.
    #[error("stored claim for {execution_id:?} is unreadable: {message}")]
    StoredClaimUnreadable {
        /// The execution id.
        execution_id: String,
        /// What was wrong.
        message: String,
    },
    /// A checkpoint was not signed: an entry of the log past the newest checkpoint its keys
    /// signed is not an attested execution (a record a writer of the store made, or one whose
    /// attestation the store no longer holds as recorded).
    #[error(
        "the log's entry {position} is not an attested execution: {reason}; no checkpoint is signed over it"
    )]
    LogEntryUnattested {
        /// The entry's position.
        position: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A claimed execution whose recorded inputs carry no tag, or one this runtime's
    /// attestation key does not make: the row was not recorded by a runtime holding the key
    /// (a store writer's, or an earlier build's). Nothing is signed; the id stays claimed.
    #[error(
        "recovery of {execution_id:?} refused: the claim is not authenticated by this runtime's attestation key ({why})"
    )]
    ClaimNotAuthenticated {
        /// The execution id.
        execution_id: String,
        /// Why: no tag, or another one.
        why: &'static str,
    },
    /// Recovery decided a claimed execution again and did not arrive at what the store
    /// recorded: the row was written by something other than this pipeline (or under another
    /// environment). Nothing is signed; the id stays claimed.
    #[error(
        "recovery of {execution_id:?} refused: the recorded {what} does not match what this environment decides"
    )]
    RecoveryMismatch {
        /// The execution id.
        execution_id: String,
        /// What did not match.
        what: &'static str,
    },
    /// Recovery met a claim recorded under other trust-root or release-manifest versions than
    /// the environment in force (published or reloaded since it was claimed): it is decided
    /// again only under the environment it was claimed under, which a runtime whose store's
    /// marks have passed it refuses. Nothing is signed; the id stays claimed (never answered:
    /// a claim whose completion failed was refused to its caller).
    #[error(
        "recovery of {execution_id:?} refused: it was claimed under trust root version {recorded_trust_root} and release manifest version {recorded_release_manifest}, and this environment holds versions {trust_root} and {release_manifest}; it stays claimed"
    )]
    RecoveryEnvironmentChanged {
        /// The execution id.
        execution_id: String,
        /// The trust-root version its recorded inputs name.
        recorded_trust_root: u64,
        /// The release-manifest version its recorded inputs name.
        recorded_release_manifest: u64,
        /// The trust-root version in force.
        trust_root: u64,
        /// The release-manifest version in force.
        release_manifest: u64,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {message}")]
    Io {
        /// `read`, `write`, `create` …
        action: &'static str,
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A `sqlite:` store file that must exist does not: reading commands never create one, and
    /// no command creates one where a log anchor records a checkpoint of its entries.
    #[error("no replay store at {path}")]
    StoreNotFound {
        /// The store file.
        path: String,
    },
    /// A batch line is not `{"execution_id"?, "policy"?, "signals"}`.
    #[error("{message}")]
    BatchLineInvalid {
        /// What is wrong with it.
        message: String,
    },
    /// A runtime was built without a replay store.
    #[error("a runtime needs a replay store")]
    NoStore,
    /// More than one signer holds the same key.
    #[error("the signing key {keyid} is given twice")]
    DuplicateSigner {
        /// The repeated key id.
        keyid: String,
    },
    /// The signers given hold fewer distinct `attestation` keys than the trust root's threshold:
    /// the attestation could never verify, so nothing is consumed.
    #[error(
        "{signers} attestation signer(s) given, but trust root version {trust_root_version} requires {threshold}"
    )]
    SignersBelowThreshold {
        /// Distinct attestation-role keys among the signers.
        signers: usize,
        /// The attestation role's threshold.
        threshold: u64,
        /// The trust root consulted.
        trust_root_version: u64,
    },
    /// The log anchor file is not an anchor (`LogAnchor::open`).
    #[error("log anchor {path}: {reason}")]
    LogAnchorInvalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The trust root names no transparency log (it has no `log` role).
    #[error("trust root version {trust_root_version} names no transparency log (no log role)")]
    NoTransparencyLog {
        /// The trust root consulted.
        trust_root_version: u64,
    },
    /// The execution has no entry in the log or not in the checkpoint asked for.
    #[error("execution {execution_id:?} is not in the log: {reason}")]
    NotInLog {
        /// The execution id.
        execution_id: String,
        /// Why.
        reason: String,
    },
    /// A `.tlog-proof` whose entry is not the record of the attestation checked with it.
    #[error("the proof's log entry does not record this attestation: its {what} differs")]
    ProofEntryMismatch {
        /// What differs.
        what: &'static str,
    },
    /// A witness asked to extend a checkpoint of another size than the last one it cosigned
    /// (C2SP `tlog-witness`: HTTP 409 with that size).
    #[error(
        "the witness last cosigned a checkpoint of size {size}, not {requested}: send the consistency proof from {size}"
    )]
    WitnessSizeMismatch {
        /// The old size the request gave.
        requested: u64,
        /// The size of the last checkpoint the witness cosigned (0: none).
        size: u64,
    },
    /// A witness's state file that cannot be trusted as its memory of what it cosigned: missing
    /// (a witness that lost its state would cosign forks of what it cosigned before; a new
    /// witness says so with `--new-state`), present where a new one was asked for, reached by a
    /// link, writable by others, or not cosigned by this witness's key.
    #[error("witness state {path}: {reason}")]
    WitnessStateRefused {
        /// The state file.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A C2SP `tlog-witness` `add-checkpoint` of the size the witness cosigned last, with
    /// another root: the log forked (C2SP `tlog-witness`: HTTP 409).
    #[error(
        "the witness cosigned a checkpoint of size {size} with another root: the log presents two trees of one size"
    )]
    WitnessRootMismatch {
        /// The size of both checkpoints.
        size: u64,
    },
    /// A C2SP `tlog-tiles` tile that is malformed or not (yet) in the log.
    #[error("{0}")]
    Tile(#[from] parmana_canon::tile::TileError),
    /// The execution is completed but the sequencer has not integrated it into the log yet.
    #[error(
        "execution {execution_id:?} is completed but not yet sequenced into the log; run `parmana log sequence` (or wait for the server's sequencer) and try again"
    )]
    NotYetSequenced {
        /// The execution id.
        execution_id: String,
    },
    /// No stored checkpoint (or none covering the entry asked for).
    #[error("no stored checkpoint {reason}")]
    NoCheckpoint {
        /// What is missing, for example "covers entry 7 yet (the newest has size 5)".
        reason: String,
    },
    /// A stored checkpoint is not a checkpoint of this log signed by a `log` key of the chain,
    /// or says another size or root than it is stored under.
    #[error("the stored checkpoint of size {size} is invalid: {reason}")]
    StoredCheckpointInvalid {
        /// The size it is stored under.
        size: u64,
        /// Why, with the underlying code.
        reason: String,
    },
    /// A stored attestation read back is not this execution's: it does not verify under the
    /// trust-root chain, or it attests another execution or another clock reading than the
    /// store records for the id — a row a writer of the store replaced or made.
    #[error("the attestation the store holds for execution {execution_id:?} is refused: {reason}")]
    StoredAttestationInvalid {
        /// The execution id read.
        execution_id: String,
        /// Why, with the underlying code.
        reason: String,
    },
    /// A stored attestation read back names a trust-root version newer than this runtime has
    /// loaded: another runtime sharing the store took a newer trust root first. Reloading this
    /// one (or reading from one that has) reads it.
    #[error(
        "the attestation of execution {execution_id:?} was made under trust-root version {version}, newer than this runtime's newest ({newest}): reload it (its trust root), or read it from a runtime that has"
    )]
    EnvironmentBehind {
        /// The execution id read.
        execution_id: String,
        /// The version the attestation names.
        version: u64,
        /// The newest version this runtime has loaded.
        newest: u64,
    },
    /// A reload's new environment was refused by the caller's own check of it
    /// ([`Runtime::reload_checked`](crate::Runtime::reload_checked)): the old one stays.
    #[error("the new environment was refused: {reason}")]
    EnvironmentRefused {
        /// Why, from the caller's check.
        reason: String,
    },
    /// The replay store was cut, replaced or rewound under a log this deployment keeps: it does
    /// not reach the checkpoint a log anchor records, or its ledger no longer extends the log a
    /// running server kept ([`Runtime::refuse_store`](crate::Runtime::refuse_store)). Nothing
    /// executes or recovers on it: the ids of the executions cut away would execute again.
    #[error("the replay store is refused: {reason}")]
    StoreRewound {
        /// What shows it, and what to do.
        reason: String,
    },
    /// An execution of a batch ([`run_batch`](crate::run_batch)) was stopped by a panic: a
    /// defect of Parmana, or of a signer or store it was given. Its id may have been claimed.
    #[error("the execution was stopped by a panic (a defect; please report it): {message}")]
    Panicked {
        /// The panic's message, when it has one.
        message: String,
    },
}

impl ExecutionError {
    /// The stable code of this refusal, for example `runtime.replay_detected` or `policy.signal_missing`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidExecutionId(_) => "runtime.invalid_execution_id",
            Self::InvalidPolicyReference { .. } => "runtime.invalid_policy_reference",
            Self::PolicyNotFound { .. } => "runtime.policy_not_found",
            Self::PolicyInvalid { source, .. } => source.code(),
            Self::PolicyIdentityMismatch { .. } => "runtime.policy_identity_mismatch",
            Self::Signals(e) => e.code(),
            Self::EvaluationFault(e) => e.code(),
            Self::Panicked { .. } => "runtime.panicked",
            Self::StoreRewound { .. } => "runtime.store_rewound",
            Self::RequestTooLarge { .. } => "runtime.request_too_large",
            Self::Canon(e) => e.code(),
            Self::Trust(e) => e.code(),
            Self::SigningFailedAfterClaim { source, .. } => source.code(),
            Self::SignerLacksRole { .. } => "runtime.signer_lacks_role",
            Self::Expired { .. } => "runtime.expired",
            Self::ReplayDetected { .. } => "runtime.replay_detected",
            Self::Store(e) => e.code(),
            Self::StoredClaimUnreadable { .. } => "runtime.stored_claim_unreadable",
            Self::RecoveryMismatch { .. } => "runtime.recovery_mismatch",
            Self::RecoveryEnvironmentChanged { .. } => "runtime.recovery_environment_changed",
            Self::ClaimNotAuthenticated { .. } => "runtime.claim_not_authenticated",
            Self::LogEntryUnattested { .. } => "runtime.log_entry_unattested",
            Self::Io { .. } => "runtime.io",
            Self::StoreNotFound { .. } => "runtime.store_not_found",
            Self::BatchLineInvalid { .. } => "runtime.batch_line_invalid",
            Self::DuplicateSigner { .. } => "runtime.duplicate_signer",
            Self::NoStore => "runtime.no_store",
            Self::SignersBelowThreshold { .. } => "runtime.signers_below_threshold",
            Self::NoTransparencyLog { .. } => "runtime.no_transparency_log",
            Self::LogAnchorInvalid { .. } => "runtime.log_anchor_invalid",
            Self::NotInLog { .. } => "runtime.not_in_log",
            Self::ProofEntryMismatch { .. } => "runtime.proof_entry_mismatch",
            Self::Tile(e) => e.code(),
            Self::WitnessSizeMismatch { .. } => "runtime.witness_size_mismatch",
            Self::WitnessRootMismatch { .. } => "runtime.witness_root_mismatch",
            Self::WitnessStateRefused { .. } => "runtime.witness_state_refused",
            Self::NotYetSequenced { .. } => "runtime.not_yet_sequenced",
            Self::NoCheckpoint { .. } => "runtime.no_checkpoint",
            Self::StoredCheckpointInvalid { .. } => "runtime.stored_checkpoint_invalid",
            Self::StoredAttestationInvalid { .. } => "runtime.stored_attestation_invalid",
            Self::EnvironmentBehind { .. } => "runtime.environment_behind",
            Self::EnvironmentRefused { .. } => "runtime.environment_refused",
        }
    }

    /// Whether this refusal may come after the execution id was claimed — the store failing
    /// (its commit may have happened, its answer lost), a file, a defect, the signing failing
    /// once the id was claimed ([`SigningFailedAfterClaim`](Self::SigningFailedAfterClaim), on a
    /// store that claims before it signs) — so that the id may be consumed and its outcome
    /// stored: whoever reports it names the id, where the outcome reads back. The other refusals
    /// of the input, the policy and the trust (a signing that failed before the claim among them)
    /// come before any claim.
    pub fn may_follow_a_claim(&self) -> bool {
        matches!(self, Self::SigningFailedAfterClaim { .. })
            || matches!(
                self.class(),
                ErrorClass::Store | ErrorClass::Io | ErrorClass::Internal
            )
    }

    /// The class of this refusal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidExecutionId(_)
            | Self::InvalidPolicyReference { .. }
            | Self::PolicyNotFound { .. }
            | Self::PolicyInvalid { .. }
            | Self::Signals(_)
            | Self::RequestTooLarge { .. }
            | Self::Canon(_)
            | Self::BatchLineInvalid { .. }
            | Self::NotInLog { .. }
            | Self::Tile(_)
            | Self::WitnessSizeMismatch { .. }
            | Self::WitnessRootMismatch { .. } => ErrorClass::InvalidInput,
            Self::NotYetSequenced { .. } | Self::NoCheckpoint { .. } => ErrorClass::InvalidInput,
            Self::Io { .. } => ErrorClass::Io,
            Self::Trust(error) => ErrorClass::of_trust(error),
            Self::SigningFailedAfterClaim { source, .. } => ErrorClass::of_trust(source),
            Self::PolicyIdentityMismatch { .. }
            | Self::SignerLacksRole { .. }
            | Self::DuplicateSigner { .. }
            | Self::SignersBelowThreshold { .. }
            | Self::RecoveryMismatch { .. }
            | Self::RecoveryEnvironmentChanged { .. }
            | Self::ClaimNotAuthenticated { .. }
            | Self::LogEntryUnattested { .. }
            | Self::NoTransparencyLog { .. }
            | Self::LogAnchorInvalid { .. }
            | Self::ProofEntryMismatch { .. }
            | Self::StoredCheckpointInvalid { .. }
            | Self::StoredAttestationInvalid { .. }
            | Self::EnvironmentBehind { .. }
            | Self::EnvironmentRefused { .. }
            | Self::WitnessStateRefused { .. }
            | Self::StoreRewound { .. }
            | Self::Expired { .. } => ErrorClass::Trust,
            Self::ReplayDetected { .. } => ErrorClass::Replay,
            Self::EvaluationFault(_) | Self::Panicked { .. } => ErrorClass::Internal,
            // Rollbacks and a clock behind the store refuse untrustworthy time or documents, like
            // `runtime.expired`; a reset of the marks is a store that can no longer be trusted.
            Self::Store(ReplayError::VersionRollback { .. })
            | Self::Store(ReplayError::ClockBehindStore { .. }) => ErrorClass::Trust,
            Self::Store(_)
            | Self::StoredClaimUnreadable { .. }
            | Self::StoreNotFound { .. }
            | Self::NoStore => ErrorClass::Store,
        }
    }
}

impl ErrorClass {
    /// The class as records and JSON reports write it: `invalid_input`, `trust`, `replay`,
    /// `store` or `io`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::Trust => "trust",
            Self::Replay => "replay",
            Self::Store => "store",
            Self::Io => "io",
            Self::Internal => "internal",
        }
    }

    /// The class of a refusal of the trust layer: a file that could not be read is IO, anything
    /// else the chain of trust refuses (malformed documents included) is a trust failure.
    pub fn of_trust(error: &TrustError) -> Self {
        match error {
            TrustError::Io { .. } => Self::Io,
            _ => Self::Trust,
        }
    }
}

impl ExecutionError {
    /// A failed read, write or create of `path`.
    pub fn io(action: &'static str, path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }
}

impl From<ReplayError> for ExecutionError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::AlreadyClaimed { execution_id } => Self::ReplayDetected { execution_id },
            other => Self::Store(other),
        }
    }
}
