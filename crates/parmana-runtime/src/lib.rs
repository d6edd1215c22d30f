//! `parmana-runtime`: the facade — load a verified environment, execute signals under signed policy exactly once, verify attestations.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod anchor;
mod authoring;
mod batch;
mod batch_run;
mod clock;
mod environment;
mod error;
mod execute;
mod local_file;
mod log;
mod request;
mod runtime;
mod sequencer;
mod store;
mod verify;
mod witness;
mod witness_state;

pub use anchor::LogAnchor;
pub use authoring::{
    Rotation, rotate_trust_root_file, sign_bundle_verified, sign_release_manifest_verified,
};
pub use batch::{BatchLine, BatchReader, MAX_BATCH_LINE_BYTES, batch_lines, batch_refusal_line};
pub use batch_run::{
    BatchOptions, BatchOutcome, BatchStopped, BatchSummary, catch_panic, run_batch,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use environment::{
    HighestAccepted, LoadedPolicy, RuntimeEnvironment, RuntimeEnvironmentConfig,
};
pub use error::{ErrorClass, ExecutionError};
pub use execute::{
    Attestation, FinishReport, KeptCompletion, MAX_REFUSED_COMPLETIONS_PER_PASS, Recovered,
    RecoveryCounts, RecoveryReport, execute_from_signals, recover,
};
pub use log::{
    AttestationInclusion, AttestationProofVerifier, EntryBundle, LogConsistency, LogSnapshot,
    PendingProof, latest_log_checkpoint, log_consistency, prove_execution, read_log,
    sign_log_checkpoint, verified_latest_log_checkpoint, verify_attestation_proof,
    witness_checkpoint,
};
pub use request::{
    ExecutionRequest, MAX_SIGNALS_JSON_BYTES, Signals, new_execution_id, parse_execution_id,
    parse_policy_ref,
};
pub use runtime::{
    Evaluation, ExecutionStatus, ExplainedEvaluation, ReloadRecord, ReloadReport, Runtime,
    RuntimeBuilder, stored_execution_status,
};
pub use sequencer::{
    ExecutedIds, IntegratedEntry, LedgerAudit, LogSequencer, LogSigning, SequenceReport,
    audit_ledger, check_log_signer, signers_of,
};
pub use store::{StoreOpen, open_store};
pub use verify::{
    load_attested_bundle, load_attested_release_manifest, load_bundle, load_trust_history,
    load_trust_root, verify_attestation, verify_attestation_in_history,
    verify_attestation_with_log,
};
pub use witness::{
    WitnessCosigned, add_cosignatures, check_witness_state, witness_add_checkpoint,
    witness_request, witness_state_size,
};
pub use witness_state::{LockedWitnessState, WitnessStateOpen, read_witness_state};

/// The name of this runtime, recorded in every attestation.
pub const RUNTIME_NAME: &str = "parmana-runtime";

/// The version of this runtime, recorded in every attestation and checked against the
/// release manifest's minimum.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The canonical layer: strict JSON, RFC 8785 bytes, digests, timestamps and identifiers.
pub mod canon {
    pub use parmana_canon::{
        CanonError, Digest, ExecutionId, IdError, MAX_DEPTH, MAX_EXECUTION_ID_LEN,
        MAX_POLICY_ID_LEN, MAX_POLICY_VERSION_LEN, MAX_QUOTED_CHARS, PolicyId, PolicyRef,
        PolicyVersion, RawCanonical, Timestamp, bounded_display, canonicalize, canonicalize_value,
        excerpt, parse_strict, to_canonical_vec,
    };
    /// RFC 9162 Merkle tree hashing and C2SP `tlog-tiles` tiles (`docs/transparency-log.md`).
    pub use parmana_canon::{merkle, tile};
}

/// The policy language: what a caller needs to check, evaluate and explain policies offline.
pub mod policy {
    pub use parmana_policy::MAX_REPORTED_SIGNAL_PROBLEMS;
    /// The size and count limits of policy documents.
    pub use parmana_policy::limits;
    pub use parmana_policy::{
        AdditionalSignals, CaseOutcome, CheckReport, CompiledPolicy, Decision, Diagnostic,
        EVALUATOR_NAME, EVALUATOR_SEMANTICS, EVALUATOR_VERSION, Explanation, Fault, PolicyError,
        SignalDecl, SignalError, TestReport, ValidatedSignals, check, compile, render_diagnostics,
        run_policy_tests, run_tests,
    };
}

/// Keys, signers and the verified documents of the chain of trust.
pub mod trust {
    /// The transparency log's signed formats (`docs/transparency-log.md`).
    pub use parmana_trust::{
        AddCheckpoint, CHECKPOINT_CACHE_CAPACITY, Checkpoint, CheckpointCache, Cosignature,
        CosignerKey, LogRole, LogSpec, LogVerifier, MAX_ADD_CHECKPOINT_BYTES, MAX_NOTE_BYTES,
        MAX_REVOCATION_REASON_CHARS, MAX_TLOG_PROOF_BYTES, Note, NoteKeyName, NoteVerifierKey,
        Revocation, RevocationSpec, TlogProof, VerifiedCheckpoint, VerifiedInclusion,
        cosign_checkpoint, cosign_note, sign_checkpoint, tlog_hash_text, verify_cosignatures,
        verify_tlog_proof, verify_tlog_proof_cached,
    };
    pub use parmana_trust::{
        AttestationCheck, AttestationCheckKind, AttestationReport, BUNDLE_MANIFEST_FILE,
        BUNDLE_TESTS_DIR, BundleFiles, CLAIM_KEY_PURPOSE, ClaimKey, DecidedOn,
        EXECUTED_AT_TOLERANCE_SECONDS, ExecutionPredicate, KeyFile, KeyId, LocalSigningKey,
        MAX_ENVELOPE_BYTES, MAX_RELEASE_MANIFEST_BYTES, MAX_SIGNATURES, MAX_TRUST_CHAIN_VERSIONS,
        MAX_TRUST_ROOT_BYTES, NEW_DIRECTORY_MODE, NEW_FILE_MODE, POLICY_FILE, PublicKey,
        RELEASE_MANIFEST_FILE, Redecision, ReleaseManifestSpec, Role, RoleSpec,
        SignedReleaseManifest, Signer, SigningKeyStanding, TRUST_ROOT_CHAIN_DIR, TRUST_ROOT_FILE,
        TrustError, TrustRootSpec, TrustStanding, VerifiedBundle, VerifiedReleaseManifest,
        VerifiedTrustHistory, VerifiedTrustRoot, VerifyOptions, check_signer, check_signer_role,
        create_directories, create_file_durably, create_trust_root, decode_attestation_statement,
        open_regular_file, read_bundle_dir, read_key_file, read_legacy_bundle_dir,
        read_public_key_file, read_release_manifest_listing, read_release_manifest_version,
        remove_interrupted_writes, replace_file_durably, sign_bundle_dir, sign_checked,
        sign_release_manifest, signed_release_manifest_version, sync_directory_of,
        verify_attestations, verify_attestations_in_history, verify_legacy_bundle,
        write_public_key_file,
    };
}

/// Replay stores: exactly-once execution ids and the ledger.
pub mod replay {
    pub use parmana_replay::{
        AcceptedVersions, CHECKPOINT_PAGE, CLOCK_TOLERANCE_SECONDS, ClaimOutcome, ClaimRecord,
        CompletedExecution, ExecutionId, ExecutionState, LedgerBreak, LedgerBreakKind,
        LedgerRecord, LedgerReport, LedgerRow, LedgerSnapshot, LedgerSummary,
        MAX_STORED_ATTESTATION_BYTES, MAX_STORED_EXECUTION_BYTES, MemoryReplayStore, PENDING_PAGE,
        ReplayError, ReplayStore, WalkedLedger, for_each_checkpoint, is_store_location,
        store_hosts_unverified, unknown_store_kind, verify_ledger, verify_ledger_snapshot,
        walk_ledger, walk_ledger_with,
    };
    /// The ledger as a transparency log (`docs/transparency-log.md`).
    pub use parmana_replay::{CATCH_UP_BATCH, ExecutionEntry, LedgerLog, ledger_log};
    /// The batched sequencer and stored checkpoints (`docs/transparency-log.md`).
    pub use parmana_replay::{
        DEFAULT_SEQUENCE_BATCH, SequenceOutcome, StoredCheckpoint, sequence_all,
    };
    #[cfg(feature = "postgres")]
    pub use parmana_replay::{PostgresOptions, PostgresReplayStore};
    #[cfg(feature = "sqlite")]
    pub use parmana_replay::{SqliteReplayStore, WriteHold};
}

// A store keeps the recorded inputs of any execution this runtime makes (signals of at most
// `MAX_SIGNALS_JSON_BYTES`, twice when the predicate embeds them, and the predicate's fields),
// with room to spare.
const _: () =
    assert!(parmana_replay::MAX_STORED_EXECUTION_BYTES >= 4 * MAX_SIGNALS_JSON_BYTES as i64);

// A store keeps, and reads back, an attestation exactly as large as a verifier reads: the two
// bounds are one (the replay layer sits below the trust layer and cannot name it).
const _: () = assert!(
    parmana_replay::MAX_STORED_ATTESTATION_BYTES == parmana_trust::MAX_ENVELOPE_BYTES as i64
);
