//! Execution attestations: a DSSE envelope around an in-toto Statement v1 whose predicate binds one execution.
//!
//! `statement.rs` holds the wire types and their encoding (every byte from `parmana-canon`),
//! `sign.rs` checks and signs a predicate, `verify.rs` reports every check of one attestation or
//! of many at once (Ed25519 batch verification with a per-attestation fallback), against one
//! trust root or a verified trust history, with one function per check in `checks.rs`.

mod checks;
mod sign;
mod statement;
mod verify;

pub use sign::{PreparedAttestation, build_attestation, prepare_attestation};
pub use statement::{
    AttestedPolicy, DocumentRef, EvaluatorRef, ExecutionPredicate, MAX_ENVELOPE_BYTES, RuntimeRef,
    decode_attestation_statement, is_emitted_attestation_encoding,
};
pub use verify::{
    AttestationCheck, AttestationCheckKind, AttestationReport, DecidedOn,
    EXECUTED_AT_TOLERANCE_SECONDS, MAX_DETAIL_CHARS, Redecision, SigningKeyStanding, TrustStanding,
    VerifyOptions, verify_attestation, verify_attestation_in_history, verify_attestation_with_log,
    verify_attestations, verify_attestations_in_history,
};

/// The document kind errors name.
const DOCUMENT: &str = "attestation";
