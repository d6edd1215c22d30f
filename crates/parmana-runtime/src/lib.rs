//! `parmana-runtime`: the facade — load a verified environment, execute signals under signed policy exactly once, verify attestations.
#![doc = include_str!("../README.md")]

mod clock;
mod environment;
mod error;
mod execute;
mod verify;

pub use clock::{Clock, FixedClock, SystemClock};
pub use environment::{
    HighestAccepted, LoadedPolicy, RuntimeEnvironment, RuntimeEnvironmentConfig,
};
pub use error::{ErrorClass, ExecutionError};
pub use execute::{
    Attestation, ExecutionRequest, MAX_SIGNALS_JSON_BYTES, RecoveryReport, execute_from_signals,
    recover,
};
pub use verify::{load_bundle, load_trust_root, verify_attestation};

/// The name of this runtime, recorded in every attestation.
pub const RUNTIME_NAME: &str = "parmana-runtime";

/// The version of this runtime, recorded in every attestation and checked against the
/// release manifest's minimum.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The canonical layer: strict JSON, RFC 8785 bytes, digests and timestamps.
pub mod canon {
    pub use parmana_canon::{
        CanonError, Digest, Timestamp, canonicalize, parse_strict, to_canonical_vec,
    };
}

/// The policy language: what a caller needs to check, evaluate and explain policies offline.
pub mod policy {
    pub use parmana_policy::{
        CheckReport, CompiledPolicy, Decision, Diagnostic, EVALUATOR_NAME, EVALUATOR_SEMANTICS,
        EVALUATOR_VERSION, Explanation, PolicyError, SignalError, TestReport, ValidatedSignals,
        check, compile, render_diagnostics, run_policy_tests,
    };
}

/// Keys, signers and the verified documents of the chain of trust.
pub mod trust {
    pub use parmana_trust::{
        AttestationCheck, AttestationCheckKind, AttestationReport, ExecutionPredicate, KeyId,
        LocalSigningKey, PublicKey, Role, Signer, TrustError, VerifiedBundle,
        VerifiedReleaseManifest, VerifiedTrustRoot, verify_attestations,
    };
}

/// Replay stores: exactly-once execution ids and the ledger.
pub mod replay {
    #[cfg(feature = "sqlite")]
    pub use parmana_replay::SqliteReplayStore;
    pub use parmana_replay::{
        AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId,
        ExecutionState, LedgerReport, LedgerSnapshot, MemoryReplayStore, ReplayError, ReplayStore,
        verify_ledger,
    };
    #[cfg(feature = "postgres")]
    pub use parmana_replay::{PostgresOptions, PostgresReplayStore};
}
