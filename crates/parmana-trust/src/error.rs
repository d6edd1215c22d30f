//! The error type of the trust layer: one variant per refusal class, each with a stable code.

use parmana_canon::merkle::MerkleError;
use parmana_canon::{CanonError, IdError, Timestamp};

/// Why a key, signature or signed document was refused.
///
/// Every variant has a stable machine-readable [`code`](TrustError::code). Messages never
/// contain private key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A signature did not verify (wrong bytes, wrong key, or not a canonical Ed25519 signature).
    #[error("bad signature by key {keyid} on {document}")]
    BadSignature {
        /// The document kind (`parmana/bundle`, an attestation, ...).
        document: String,
        /// The key id the signature claims.
        keyid: String,
    },
    /// A signature names a key the trust root does not know.
    #[error("unknown key {keyid} signed {document}")]
    UnknownKey {
        /// The document kind.
        document: String,
        /// The unknown key id.
        keyid: String,
    },
    /// A known key signed, but it does not hold the role this document needs.
    #[error("key {keyid} does not hold the {role} role needed for {document}")]
    KeyLacksRole {
        /// The document kind.
        document: String,
        /// The key id.
        keyid: String,
        /// The role it lacks.
        role: String,
    },
    /// Fewer distinct keys of the role signed validly than its threshold.
    #[error("{document} needs {threshold} valid signature(s) from the {role} role, found {found}")]
    ThresholdNotMet {
        /// The document kind.
        document: String,
        /// The role whose threshold was not met.
        role: String,
        /// Signatures needed.
        threshold: u64,
        /// Distinct keys of the role that signed validly.
        found: u64,
    },
    /// The document's `expires` time is not after `now`.
    #[error("{document} expired at {expires} (now {now})")]
    Expired {
        /// The document kind.
        document: String,
        /// When it expired.
        expires: Timestamp,
        /// The time it was checked at.
        now: Timestamp,
    },
    /// The document's version is lower than one already accepted, or a rotation skips a version.
    #[error("{document} version {version} is older than or does not follow version {highest}")]
    VersionRollback {
        /// The document kind.
        document: String,
        /// The version offered.
        version: u64,
        /// The highest (or previous) version it was compared with.
        highest: u64,
    },
    /// The document's `_type` is not the kind expected here.
    #[error("expected a {expected} document, found _type {found:?}")]
    WrongType {
        /// The kind expected.
        expected: String,
        /// The `_type` found (empty when absent).
        found: String,
    },
    /// Content does not have the digest the signed document records.
    #[error("digest mismatch for {subject}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was hashed (a bundle file path, `bundle`, `fingerprint`, ...).
        subject: String,
        /// The digest recorded in the signed document.
        expected: String,
        /// The digest of the content presented.
        found: String,
    },
    /// The bundle directory holds no `bundle.json`: it was never signed (`parmana bundle sign`).
    #[error("the bundle has no bundle.json: it is not signed (sign it with `parmana bundle sign`)")]
    BundleNotSigned,
    /// A bundle path that is not a directory.
    #[error("{path} is not a directory (a bundle is a directory holding policy.json)")]
    NotABundleDirectory {
        /// The path given.
        path: String,
    },
    /// A file the bundle manifest lists is not in the bundle.
    #[error("bundle file {path:?} listed in the manifest is missing")]
    BundleFileMissing {
        /// The relative path.
        path: String,
    },
    /// A file in the bundle is not listed in the bundle manifest.
    #[error("bundle file {path:?} is not listed in the manifest{hint}")]
    BundleFileUnexpected {
        /// The relative path.
        path: String,
        /// Empty, or how to clear it when it is an interrupted write's temporary file.
        hint: &'static str,
    },
    /// The policy bundle is not listed in the release manifest, or is listed with another digest.
    #[error("policy {policy} is not in the release manifest{detail}")]
    NotInReleaseManifest {
        /// `<id>@<version>`.
        policy: String,
        /// Empty, or `" with this digest"` when it is listed with another bundle digest.
        detail: String,
    },
    /// The release manifest does not accept this runtime.
    #[error("runtime not accepted by the release manifest: {message}")]
    RuntimeIncompatible {
        /// What differs.
        message: String,
    },
    /// A document does not have the documented shape: not strict JSON, missing or extra fields,
    /// a value of the wrong JSON type (the refusals that have no code of their own).
    #[error("malformed {document}: {message}")]
    Malformed {
        /// The document kind (or file).
        document: String,
        /// What is wrong.
        message: String,
    },
    /// A key id is not `sha256:` followed by 64 lowercase hex characters.
    #[error("invalid key id {text:?}: {message}")]
    InvalidKeyId {
        /// The text offered as a key id.
        text: String,
        /// What is wrong with it.
        message: String,
    },
    /// A trust root lists a key under an id that is not the digest of that key.
    #[error("key id {keyid} does not match its public key")]
    KeyIdMismatch {
        /// The id the document gives the key.
        keyid: String,
    },
    /// A base64 field (an attestation payload, a signature) is not canonical standard base64
    /// of the expected length.
    #[error("{document}: {field} is not {expected}")]
    InvalidEncoding {
        /// The document kind.
        document: String,
        /// The field (`payload`, `sig`).
        field: &'static str,
        /// What it should be, for example `64 bytes of canonical base64`.
        expected: &'static str,
    },
    /// An attestation payload is not byte for byte its own RFC 8785 form.
    #[error("{document} payload is not in RFC 8785 canonical form")]
    NotCanonical {
        /// The document kind.
        document: String,
    },
    /// An attestation statement's subject is not exactly one entry named after its execution.
    #[error("attestation subject: {message}")]
    SubjectMismatch {
        /// What differs.
        message: String,
    },
    /// A policy id in a signed document is outside the grammar.
    #[error("{document}: {error}")]
    InvalidPolicyId {
        /// The document kind.
        document: String,
        /// Why the id is refused.
        error: IdError,
    },
    /// A policy version in a signed document is outside the grammar.
    #[error("{document}: {error}")]
    InvalidPolicyVersion {
        /// The document kind.
        document: String,
        /// Why the version is refused.
        error: IdError,
    },
    /// A policy name in a release manifest is not `<id>@<version>`.
    #[error("{document}: policy name {name:?}: {error}")]
    InvalidPolicyRef {
        /// The document kind.
        document: String,
        /// The name found.
        name: String,
        /// Why it is refused.
        error: IdError,
    },
    /// A bundle manifest does not list `policy.json`.
    #[error("the bundle manifest does not list policy.json")]
    PolicyFileNotListed,
    /// A bundle directory holds more entries (files, subdirectories, links) or bytes than allowed.
    #[error("bundle directory exceeds {max_entries} entries or {max_bytes} bytes")]
    BundleTooLarge {
        /// The limit on entries (files, subdirectories and links).
        max_entries: usize,
        /// The limit on the bytes of all files together.
        max_bytes: u64,
    },
    /// A role's threshold is 0 or above the number of its distinct keys.
    #[error("{role} threshold {threshold} must be between 1 and its {available} distinct key(s)")]
    InvalidThreshold {
        /// The role.
        role: String,
        /// The threshold found.
        threshold: u64,
        /// Distinct keys of the role.
        available: u64,
    },
    /// A document version that is never valid where it appears (0, or a chain not starting at 1).
    #[error("{document}: {message}")]
    InvalidVersion {
        /// The document kind.
        document: String,
        /// What is wrong.
        message: String,
    },
    /// A key file or key bytes could not be read as an Ed25519 key.
    #[error("invalid key: {message}")]
    InvalidKey {
        /// What is wrong (never the key material).
        message: String,
    },
    /// An Ed25519 public key written in a form other than the one canonical encoding of its
    /// point (`y` not reduced below p, or the sign bit set on `x = 0`): the same point would
    /// have a second key id.
    #[error(
        "non-canonical Ed25519 public key encoding {key_id}: the point's encoding is {canonical_key_id}"
    )]
    NonCanonicalPublicKey {
        /// The key id of the bytes given.
        key_id: String,
        /// The key id of the point's canonical encoding.
        canonical_key_id: String,
    },
    /// A small-order ("weak") Ed25519 public key: one of the eight points of order 1, 2, 4 or 8,
    /// for which a signature can be valid on many messages.
    #[error("weak Ed25519 public key {key_id} (small-order, or with a small-order component)")]
    WeakPublicKey {
        /// The key id of the bytes given.
        key_id: String,
    },
    /// Two key ids of one trust root resolve to the same Ed25519 point.
    #[error("key ids {first} and {second} are the same public key")]
    DuplicatePublicKey {
        /// The first key id (in key-id order).
        first: String,
        /// The second key id.
        second: String,
    },
    /// A path inside a bundle or trust directory is unsafe (`..`, absolute, a symlink leaving the directory).
    #[error("unsafe path {path:?}: {message}")]
    UnsafePath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        message: String,
    },
    /// A signer could not produce a signature (for example a hardware or remote key failed).
    #[error("signing failed: {message}")]
    SigningFailed {
        /// What the signer reported.
        message: String,
    },
    /// A document carries more signatures than keys that may sign it (or than
    /// [`MAX_SIGNATURES`](crate::MAX_SIGNATURES)): refused before any signature is checked.
    #[error("{document} carries {found} signature(s), more than the {limit} allowed")]
    TooManySignatures {
        /// The document kind.
        document: String,
        /// Signatures found (at least; counting stops being exact past the hard limit).
        found: usize,
        /// Signatures allowed.
        limit: usize,
    },
    /// A document carries the same key id twice, or the same signature bytes twice.
    #[error("{document} carries a duplicate signature ({what})")]
    DuplicateSignature {
        /// The document kind.
        document: String,
        /// The repeated key id, or `the same signature bytes`.
        what: String,
    },
    /// The trust-root files disagree with the current trust root: a version newer than it in
    /// `trust-root.d/`, or another document under its number.
    #[error("unexpected trust-root file {path}: {message}")]
    UnexpectedVersion {
        /// The file.
        path: String,
        /// What disagrees.
        message: String,
    },
    /// A document read again (a reload) holds a version already in force with other content:
    /// the same version signed twice, which only a holder of the signing key can make.
    #[error(
        "{document} version {version} on disk is not the one in force (digest {offered}, in \
         force {held}): one version was signed twice with different content"
    )]
    VersionConflict {
        /// The document kind.
        document: String,
        /// The version both carry.
        version: u64,
        /// The digest of the one in force.
        held: String,
        /// The digest of the one offered.
        offered: String,
    },
    /// A trust-root chain longer than [`MAX_TRUST_CHAIN_VERSIONS`](crate::MAX_TRUST_CHAIN_VERSIONS).
    #[error("the trust-root chain holds more than {limit} versions")]
    ChainTooLong {
        /// The limit.
        limit: usize,
    },
    /// A trust-root file larger than [`MAX_TRUST_ROOT_BYTES`](crate::MAX_TRUST_ROOT_BYTES), an
    /// attestation envelope larger than [`MAX_ENVELOPE_BYTES`](crate::MAX_ENVELOPE_BYTES), a
    /// release manifest larger than
    /// [`MAX_RELEASE_MANIFEST_BYTES`](crate::MAX_RELEASE_MANIFEST_BYTES), or a `bundle.json`
    /// larger than [`MAX_BUNDLE_MANIFEST_BYTES`](crate::MAX_BUNDLE_MANIFEST_BYTES).
    #[error("{path} is larger than {limit} bytes")]
    DocumentTooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// An attestation's `executed_at` is at or after the expiry of the trust-root version it
    /// was made under.
    #[error(
        "executed at {executed_at}, when {document} version {version} had expired (at {expires})"
    )]
    ExecutedAfterExpiry {
        /// Which document: `trust root`, or `release manifest`.
        document: &'static str,
        /// The version the attestation names.
        version: u64,
        /// When that version expired.
        expires: Timestamp,
        /// The attestation's `executed_at`.
        executed_at: Timestamp,
    },
    /// An attestation's `executed_at` is later than the verifier's clock plus the tolerance.
    #[error(
        "executed at {executed_at}, more than {tolerance_seconds} s after the verifier's clock ({now})"
    )]
    ExecutedInFuture {
        /// The attestation's `executed_at`.
        executed_at: Timestamp,
        /// The verifier's clock reading.
        now: Timestamp,
        /// The tolerance allowed, in seconds.
        tolerance_seconds: i64,
    },
    /// The trust-root version an attestation was made under has been superseded (only refused
    /// when current trust is required).
    #[error("trust root version {version} is superseded by version {newest}")]
    Superseded {
        /// The version the attestation was made under.
        version: u64,
        /// The newest verified version.
        newest: u64,
    },
    /// A key that signed an attestation no longer holds the `attestation` role in the newest
    /// trust-root version (only refused when current trust is required).
    #[error("key {keyid} is no longer trusted for attestations by trust root version {newest}")]
    KeyNoLongerTrusted {
        /// The signing key.
        keyid: String,
        /// The newest verified version.
        newest: u64,
    },
    /// An attestation key was revoked as of a transparency-log checkpoint, and the
    /// attestation's proven log entry is not before it (a later entry, or another log).
    #[error(
        "key {keyid} was revoked by trust root version {version} as of the checkpoint of size {tree_size} of log {origin} ({reason}): {found}"
    )]
    KeyRevoked {
        /// The revoked key.
        keyid: String,
        /// The trust-root version listing the revocation.
        version: u64,
        /// The log the revocation is ordered in.
        origin: String,
        /// Entries below this index stay valid.
        tree_size: u64,
        /// Why the key was revoked.
        reason: String,
        /// What the attestation's proof showed.
        found: String,
    },
    /// An attestation key was revoked as of a transparency-log checkpoint, and the attestation
    /// comes without a proof of its log entry: nothing shows it was signed before.
    #[error(
        "key {keyid} was revoked by trust root version {version} as of the checkpoint of size {tree_size} of log {origin} ({reason}); without a proof that the attestation's entry is in that log before it (verify --proof), the attestation cannot show it was signed before the revocation"
    )]
    KeyRevokedUnproven {
        /// The revoked key.
        keyid: String,
        /// The trust-root version listing the revocation.
        version: u64,
        /// The log the revocation is ordered in.
        origin: String,
        /// Entries below this index stay valid.
        tree_size: u64,
        /// Why the key was revoked.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("IO error on {path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A signed note (C2SP `signed-note`) is not well formed: not UTF-8, a control character,
    /// no blank line before the signatures, a malformed signature line, too large or too many
    /// signatures.
    #[error("malformed signed note: {message}")]
    NoteMalformed {
        /// What is wrong.
        message: String,
    },
    /// A note key name or verifier key (`name+hash+base64`) is not well formed, is not an Ed25519
    /// key (type 0x01), or its key ID does not match its name and key.
    #[error("invalid note key: {message}")]
    NoteKeyInvalid {
        /// What is wrong.
        message: String,
    },
    /// A signature line of a known note key (name and key ID both match) does not verify.
    #[error("the signature of note key {name} does not verify")]
    NoteBadSignature {
        /// The key name.
        name: String,
    },
    /// No signature of a known note key is on the note.
    #[error("the note carries no signature of a trusted key")]
    NoteUnverified,
    /// The text of a checkpoint (C2SP `tlog-checkpoint`) is not well formed.
    #[error("malformed checkpoint: {message}")]
    CheckpointMalformed {
        /// What is wrong.
        message: String,
    },
    /// A checkpoint of another log than the one expected.
    #[error("checkpoint of log {found:?}, expected {expected:?}")]
    CheckpointOriginMismatch {
        /// The origin expected.
        expected: String,
        /// The origin the checkpoint names.
        found: String,
    },
    /// A C2SP `tlog-witness` `add-checkpoint` request body is not well formed.
    #[error("malformed add-checkpoint request: {message}")]
    WitnessRequestMalformed {
        /// What is wrong.
        message: String,
    },
    /// A transparency-log proof file (C2SP `tlog-proof`) is not well formed.
    #[error("malformed tlog proof: {message}")]
    TlogProofMalformed {
        /// What is wrong.
        message: String,
    },
    /// An entry is not included in the signed checkpoint at the index the proof names.
    #[error("the entry is not included in the checkpoint at index {index}: {reason}")]
    TlogNotIncluded {
        /// The index the proof names.
        index: u64,
        /// Why the inclusion proof failed.
        reason: MerkleError,
    },
    /// Two checkpoints of one log are not consistent: the log forked or rewrote its history.
    #[error(
        "checkpoint of size {new_size} is not consistent with the one of size {old_size}: {reason}"
    )]
    TlogInconsistent {
        /// The older (smaller) checkpoint's size.
        old_size: u64,
        /// The newer checkpoint's size.
        new_size: u64,
        /// Why the consistency proof failed.
        reason: MerkleError,
    },
    /// Given the attested signals, the bundle's policy decides otherwise than the attestation
    /// says it decided: its decision, rule or reason differ.
    #[error(
        "the attestation says the policy decided {attested}; for {signals} it decides {decided}"
    )]
    DecisionMismatch {
        /// What the attestation says: decision, rule and reason.
        attested: String,
        /// What the policy decides.
        decided: String,
        /// Which signals were decided (given, or embedded in the attestation).
        signals: &'static str,
    },
    /// The attested decision cannot be worked out again from the bundle's policy and the
    /// signals: the policy refuses the signals, does not compile, or the attestation was made
    /// by evaluator semantics other than the verifier's.
    #[error("the decision cannot be worked out again: {reason}")]
    DecisionNotReproduced {
        /// Why.
        reason: String,
    },
    /// Canonical encoding failed.
    #[error(transparent)]
    Canon(#[from] CanonError),
}

impl TrustError {
    /// The stable code of this error, for example `trust.bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature { .. } => "trust.bad_signature",
            Self::UnknownKey { .. } => "trust.unknown_key",
            Self::KeyLacksRole { .. } => "trust.key_lacks_role",
            Self::ThresholdNotMet { .. } => "trust.threshold_not_met",
            Self::Expired { .. } => "trust.expired",
            Self::VersionRollback { .. } => "trust.version_rollback",
            Self::WrongType { .. } => "trust.wrong_type",
            Self::DigestMismatch { .. } => "trust.digest_mismatch",
            Self::BundleFileMissing { .. } => "trust.bundle_file_missing",
            Self::BundleNotSigned => "trust.bundle_not_signed",
            Self::NotABundleDirectory { .. } => "trust.not_a_bundle_directory",
            Self::BundleFileUnexpected { .. } => "trust.bundle_file_unexpected",
            Self::NotInReleaseManifest { .. } => "trust.not_in_release_manifest",
            Self::RuntimeIncompatible { .. } => "trust.runtime_incompatible",
            Self::Malformed { .. } => "trust.malformed",
            Self::InvalidKey { .. } => "trust.invalid_key",
            Self::NonCanonicalPublicKey { .. } => "trust.non_canonical_public_key",
            Self::WeakPublicKey { .. } => "trust.weak_public_key",
            Self::DuplicatePublicKey { .. } => "trust.duplicate_public_key",
            Self::InvalidKeyId { .. } => "trust.invalid_key_id",
            Self::KeyIdMismatch { .. } => "trust.key_id_mismatch",
            Self::InvalidEncoding { .. } => "trust.invalid_encoding",
            Self::NotCanonical { .. } => "trust.not_canonical",
            Self::SubjectMismatch { .. } => "trust.subject_mismatch",
            Self::InvalidPolicyId { .. } => "trust.invalid_policy_id",
            Self::InvalidPolicyVersion { .. } => "trust.invalid_policy_version",
            Self::InvalidPolicyRef { .. } => "trust.invalid_policy_ref",
            Self::PolicyFileNotListed => "trust.policy_file_not_listed",
            Self::BundleTooLarge { .. } => "trust.bundle_too_large",
            Self::InvalidThreshold { .. } => "trust.invalid_threshold",
            Self::InvalidVersion { .. } => "trust.invalid_version",
            Self::UnsafePath { .. } => "trust.unsafe_path",
            Self::SigningFailed { .. } => "trust.signing_failed",
            Self::TooManySignatures { .. } => "trust.too_many_signatures",
            Self::DuplicateSignature { .. } => "trust.duplicate_signature",
            Self::UnexpectedVersion { .. } => "trust.unexpected_version",
            Self::VersionConflict { .. } => "trust.version_conflict",
            Self::ChainTooLong { .. } => "trust.chain_too_long",
            Self::DocumentTooLarge { .. } => "trust.document_too_large",
            Self::ExecutedAfterExpiry { .. } => "trust.executed_after_expiry",
            Self::ExecutedInFuture { .. } => "trust.executed_in_future",
            Self::Superseded { .. } => "trust.superseded",
            Self::KeyNoLongerTrusted { .. } => "trust.key_no_longer_trusted",
            Self::KeyRevoked { .. } => "trust.key_revoked",
            Self::KeyRevokedUnproven { .. } => "trust.key_revoked_unproven",
            Self::Io { .. } => "trust.io",
            Self::NoteMalformed { .. } => "trust.note_malformed",
            Self::NoteKeyInvalid { .. } => "trust.note_key_invalid",
            Self::NoteBadSignature { .. } => "trust.note_bad_signature",
            Self::NoteUnverified => "trust.note_unverified",
            Self::CheckpointMalformed { .. } => "trust.checkpoint_malformed",
            Self::CheckpointOriginMismatch { .. } => "trust.checkpoint_origin_mismatch",
            Self::TlogProofMalformed { .. } => "trust.tlog_proof_malformed",
            Self::WitnessRequestMalformed { .. } => "trust.witness_request_malformed",
            Self::TlogNotIncluded { .. } => "trust.tlog_not_included",
            Self::TlogInconsistent { .. } => "trust.tlog_inconsistent",
            Self::DecisionMismatch { .. } => "trust.decision_mismatch",
            Self::DecisionNotReproduced { .. } => "trust.decision_not_reproduced",
            Self::Canon(inner) => inner.code(),
        }
    }

    pub(crate) fn malformed(document: &str, message: impl Into<String>) -> Self {
        Self::Malformed {
            document: document.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }
}
