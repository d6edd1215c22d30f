//! `parmana-trust`: keys, signatures, trust root, policy bundles, release manifest and attestations.
//!
//! This is the only crate that does cryptography (Ed25519 through `ed25519-dalek`, always
//! `verify_strict`). Everything it signs is RFC 8785 bytes from `parmana-canon`. The chain of
//! trust (see `docs/trust-model.md`):
//!
//! * the **pinned root key** (out of band) signs trust root version 1;
//! * each **trust root** version lists keys and the roles `root`, `policy`, `release`,
//!   `attestation` with thresholds; version N+1 is signed by a threshold of N's root keys and
//!   of its own ([`verify_trust_history`] → [`VerifiedTrustHistory`], every version, no clock;
//!   [`verify_trust_chain`] → the newest [`VerifiedTrustRoot`], in force when unexpired);
//! * the `policy` role signs **bundle manifests** ([`verify_bundle`] → [`VerifiedBundle`]);
//! * the `release` role signs the **release manifest** ([`verify_release_manifest`] →
//!   [`VerifiedReleaseManifest`], whose [`check_bundle`](VerifiedReleaseManifest::check_bundle)
//!   refuses bundles it does not list);
//! * the `attestation` role signs **execution attestations** ([`build_attestation`],
//!   [`verify_attestation`] → [`AttestationReport`]; [`verify_attestation_in_history`] judges an
//!   attestation under the trust-root version it names, at its `executed_at`, so it stays
//!   verifiable after rotations and expiry; [`verify_attestations`] checks many at once with
//!   Ed25519 batch verification and reports exactly what one-by-one verification reports).
//!
//! * the transparency log's signed tree heads are C2SP checkpoints in signed notes
//!   ([`sign_checkpoint`], [`LogVerifier::open_checkpoint`] → [`VerifiedCheckpoint`]; the
//!   trust root's optional `log` role, [`LogRole`], names the log and its keys), and an entry's offline
//!   proof is a C2SP `tlog-proof` ([`TlogProof`], [`verify_tlog_proof`] → [`VerifiedInclusion`]);
//!   see `docs/transparency-log.md`.
//!
//! Verified values have private fields: only the check that proves them builds them.
//!
//! ```
//! use parmana_trust::*;
//! use parmana_canon::Timestamp;
//! let root = LocalSigningKey::from_seed(&[1; 32]);
//! let other = LocalSigningKey::from_seed(&[2; 32]);
//! let role = |k: &LocalSigningKey| RoleSpec { keys: vec![k.public_key()], threshold: 1 };
//! let spec = TrustRootSpec {
//!     expires: Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
//!     root: role(&root), policy: role(&other), release: role(&other), attestation: role(&other),
//!     log: None,
//! };
//! let v1 = create_trust_root(&spec, &[&root]).unwrap();
//! let now = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
//! let trust = verify_trust_chain(&root.public_key(), &[v1], now, None).unwrap();
//! assert_eq!(trust.version(), 1);
//! ```

// `pub` is for the API re-exported below; everything else says `pub(crate)`.
#![warn(unreachable_pub)]

mod attestation;
mod authoring;
mod bundle;
mod durable;
mod envelope;
mod error;
mod keys;
mod legacy;
mod release;
mod revocation;
mod tlog;
mod trust_chain;
mod trust_root;

pub use attestation::{
    AttestationCheck, AttestationCheckKind, AttestationReport, AttestedPolicy, DecidedOn,
    DocumentRef, EXECUTED_AT_TOLERANCE_SECONDS, EvaluatorRef, ExecutionPredicate, MAX_DETAIL_CHARS,
    MAX_ENVELOPE_BYTES, PreparedAttestation, Redecision, RuntimeRef, SigningKeyStanding,
    TrustStanding, VerifyOptions, build_attestation, decode_attestation_statement,
    is_emitted_attestation_encoding, prepare_attestation, verify_attestation,
    verify_attestation_in_history, verify_attestation_with_log, verify_attestations,
    verify_attestations_in_history,
};
pub use authoring::check_signer_role;
pub use bundle::{
    BUNDLE_MANIFEST_FILE, BUNDLE_TESTS_DIR, BundleFiles, MAX_BUNDLE_MANIFEST_BYTES, POLICY_FILE,
    VerifiedBundle, read_bundle_dir, read_legacy_bundle_dir, sign_bundle, sign_bundle_dir,
    verify_bundle,
};
pub use durable::{
    NEW_DIRECTORY_MODE, NEW_FILE_MODE, create_directories, create_file_durably,
    create_private_directories, is_interrupted_write, open_lock_file, open_regular_file,
    remove_interrupted_writes, replace_file_durably, sync_directory_of,
};
pub use envelope::MAX_SIGNATURES;
pub use error::TrustError;
pub use keys::{
    CLAIM_KEY_PURPOSE, ClaimKey, KeyFile, KeyId, LocalSigningKey, PublicKey, PublicKeyDocument,
    Signer, check_signer, read_key_file, read_public_key_file, sign_checked, write_public_key_file,
};
pub use legacy::{MAX_LEGACY_FORM_BYTES, VerifiedLegacyBundle, verify_legacy_bundle};
pub use release::{
    MAX_RELEASE_MANIFEST_BYTES, RELEASE_MANIFEST_FILE, ReleaseManifestSpec, SignedReleaseManifest,
    VerifiedReleaseManifest, read_release_manifest_listing, read_release_manifest_version,
    sign_release_manifest, signed_release_manifest_version, verify_release_manifest,
    verify_signed_release_manifest,
};
pub use revocation::{MAX_REVOCATION_REASON_CHARS, Revocation, RevocationSpec};
pub use tlog::{
    AddCheckpoint, CHECKPOINT_CACHE_CAPACITY, Checkpoint, CheckpointCache, Cosignature,
    CosignerKey, LogVerifier, MAX_ADD_CHECKPOINT_BYTES, MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES,
    MAX_TLOG_PROOF_BYTES, MAX_WITNESS_PROOF_LINES, Note, NoteKeyName, NoteSignature,
    NoteVerifierKey, TLOG_PROOF_HEADER, TlogProof, VerifiedCheckpoint, VerifiedInclusion,
    VerifiedNote, cosign_checkpoint, cosign_note, cosign_verified_checkpoint, note_key_id,
    open_note, sign_checkpoint, sign_note, tlog_hash_text, verify_cosignatures, verify_tlog_proof,
    verify_tlog_proof_cached,
};
pub use trust_chain::{
    MAX_TRUST_CHAIN_BYTES, MAX_TRUST_CHAIN_VERSIONS, MAX_TRUST_ROOT_BYTES, TRUST_ROOT_CHAIN_DIR,
    TRUST_ROOT_FILE, VerifiedTrustHistory, load_trust_chain, load_trust_history, read_trust_chain,
    verify_trust_chain, verify_trust_history,
};
pub use trust_root::{
    LogRole, LogSpec, Role, RoleSpec, TrustRootSpec, VerifiedTrustRoot, create_trust_root,
    rotate_trust_root,
};
