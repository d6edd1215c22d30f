//! The error type of the replay layer: one variant per refusal or store failure, each with a stable code.

use parmana_canon::Timestamp;

use crate::{AcceptedVersions, LedgerBreak};

/// Which high-water mark a rollback check refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionKind {
    /// The trust-root version.
    TrustRoot,
    /// The release-manifest version.
    ReleaseManifest,
}

impl std::fmt::Display for VersionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TrustRoot => "trust root",
            Self::ReleaseManifest => "release manifest",
        })
    }
}

/// Why a replay-store operation was refused or failed.
///
/// Every variant has a stable machine-readable [`code`](ReplayError::code). Store
/// failures (`Unavailable`, `Corrupt`, `Replaced`, `MultipleLinks`, `TlsRefused`,
/// `SchemaVersionUnsupported`, `SchemaVersionOutdated`, `NotFound`, `MarksReset`) are
/// fail-closed: the caller must not execute when it sees one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The execution id was already claimed: a second use of it is a replay.
    #[error("execution id {execution_id:?} was already used (replay detected)")]
    AlreadyClaimed {
        /// The execution id.
        execution_id: String,
    },
    /// The SQLite store file has more than one name (hard link): each name would get its own
    /// `-wal` and `-shm` files, so two writers would not lock each other out and one id could
    /// be executed twice. A store has exactly one path.
    #[error(
        "{path} has {links} hard links; a replay store must have exactly one name (see docs/replay-stores.md)"
    )]
    MultipleLinks {
        /// The store file.
        path: String,
        /// Its link count.
        links: u64,
    },
    /// A file of a SQLite store (the database, its WAL or its shared-memory index) was removed
    /// or replaced while the store had it open: commits there would be lost to every later
    /// opener of the path, or made beside another writer's. No retry through this store helps;
    /// open the store again (restart the server) once its files are what they should be.
    #[error(
        "{path} was removed or replaced while the store had it open; open the store again (see docs/replay-stores.md)"
    )]
    Replaced {
        /// The file.
        path: String,
    },
    /// `complete` was called for an execution id that was never claimed.
    #[error("execution id {execution_id:?} was never claimed")]
    NotClaimed {
        /// The execution id.
        execution_id: String,
    },
    /// `complete` was called for an execution id that is already completed.
    #[error("execution id {execution_id:?} is already completed")]
    AlreadyCompleted {
        /// The execution id.
        execution_id: String,
    },
    /// An older trust root or release manifest than the store has already accepted.
    #[error(
        "{kind} version {offered} is older than the accepted version {accepted} (rollback refused)"
    )]
    VersionRollback {
        /// Which document.
        kind: VersionKind,
        /// The version offered now.
        offered: u64,
        /// The highest version accepted before.
        accepted: u64,
    },
    /// The store's high-water marks are lower than a marks record of its own ledger proves: they
    /// were reset behind the store's back (an `UPDATE` of the marks row). Nothing executes on this
    /// store until it is restored; `parmana ledger verify` reports the same break.
    #[error(
        "the store's high-water marks ({found}) are lower than its ledger proves ({proven}): they were reset behind the store's back (run `parmana ledger verify`)"
    )]
    MarksReset {
        /// The marks the store's marks row holds.
        found: AcceptedVersions,
        /// The marks its marks records prove together (the highest of each version over all of
        /// them).
        proven: AcceptedVersions,
    },
    /// The clock reads more than [`CLOCK_TOLERANCE_SECONDS`](crate::CLOCK_TOLERANCE_SECONDS)
    /// earlier than the newest claim the store holds: time must not run backwards within one store.
    #[error(
        "the clock reads {now}, more than {tolerance} s before the newest execution this store holds ({newest}): time must not run backwards within one store",
        tolerance = crate::CLOCK_TOLERANCE_SECONDS
    )]
    ClockBehindStore {
        /// The clock reading of the refused claim.
        now: Timestamp,
        /// The newest clock reading of a claim the store holds.
        newest: Timestamp,
    },
    /// Recorded inputs over [`MAX_STORED_EXECUTION_BYTES`](crate::MAX_STORED_EXECUTION_BYTES), or
    /// an attestation over [`MAX_STORED_ATTESTATION_BYTES`](crate::MAX_STORED_ATTESTATION_BYTES),
    /// offered to be stored: refused, nothing written (a store never acknowledges what it would refuse to
    /// read back).
    #[error("{what} of {bytes} bytes is larger than the {max} a store keeps")]
    ValueTooLarge {
        /// What was offered: `recorded inputs` or `attestation`.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The bound.
        max: i64,
    },
    /// A version above 2^63−1, which no backend can store.
    #[error("{kind} version {offered} is too large (at most 2^63-1)")]
    VersionTooLarge {
        /// Which document.
        kind: VersionKind,
        /// The version offered.
        offered: u64,
    },
    /// The store cannot be reached or refused the operation (IO error, lock timeout, lost connection).
    #[error("replay store unavailable: {message}")]
    Unavailable {
        /// The backend's explanation.
        message: String,
    },
    /// The store holds data this crate did not write (unreadable rows, a damaged database file).
    #[error("replay store corrupt: {message}")]
    Corrupt {
        /// What was found.
        message: String,
    },
    /// TLS to the store was required and could not be established as configured: the server
    /// offered no TLS, the handshake failed, or its certificate is not trusted by `sslrootcert`
    /// or does not name the host (`verify-full`).
    #[error("replay store refused: TLS could not be established as configured: {message}")]
    TlsRefused {
        /// The TLS layer's explanation.
        message: String,
    },
    /// The store's schema is newer than this build understands.
    #[error(
        "replay store schema version {found} is not supported (this build knows up to {supported})"
    )]
    SchemaVersionUnsupported {
        /// The version found in the store.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A store opened only to be read or completed (not created) is at an older schema version
    /// than this build's: a command of this build that executes migrates it; one that reads
    /// does not, so that an audit never changes a store older servers write.
    #[error(
        "replay store schema version {found} is older than this build's ({current}); a command \
         that executes (execute, serve) migrates it, one that only reads or completes does not"
    )]
    SchemaVersionOutdated {
        /// The version found in the store.
        found: i64,
        /// This build's version.
        current: i64,
    },
    /// A store opened only to be read or completed (not created) is not there: in PostgreSQL,
    /// the schema holds no store.
    #[error("no replay store in PostgreSQL schema {schema:?} (a command that executes creates it)")]
    NotFound {
        /// The schema named.
        schema: String,
    },
    /// The ledger is not intact, so no transparency log is built from it (`parmana ledger verify`
    /// reports the same break).
    #[error("no transparency log over a broken ledger: {0}")]
    LedgerBroken(LedgerBreak),
    /// A write asked of a store opened only to read ([`open_read_only_store`](crate::open_read_only_store)):
    /// nothing was written. The commands that open one never write; this is their defect, or a
    /// caller's that opened the wrong way.
    #[error("the replay store was opened only to read: no {operation} through it")]
    ReadOnly {
        /// The write asked for (`claim`, `complete`, `sequence`, …).
        operation: &'static str,
    },
    /// The store configuration is invalid (a malformed URL or schema name, a zero pool size;
    /// for SQLite a `file:` URI, a symbolic link to nothing, a file or directory a store opened
    /// to write may not write, a file of the store one opened only to read may not read, one
    /// that cannot be read without making files beside it this user may not make, or no store
    /// in a file opened only to read or complete).
    #[error("invalid replay store configuration: {message}")]
    InvalidConfiguration {
        /// What is wrong.
        message: String,
    },
}

impl ReplayError {
    /// The stable code of this error, for example `replay.replay_detected`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyClaimed { .. } => "replay.replay_detected",
            Self::NotClaimed { .. } => "replay.not_claimed",
            Self::MultipleLinks { .. } => "replay.store_multiple_links",
            Self::Replaced { .. } => "replay.store_replaced",
            Self::AlreadyCompleted { .. } => "replay.already_completed",
            Self::VersionRollback { .. } => "replay.version_rollback",
            Self::VersionTooLarge { .. } => "replay.version_too_large",
            Self::ValueTooLarge { .. } => "replay.value_too_large",
            Self::MarksReset { .. } => "replay.marks_reset",
            Self::ClockBehindStore { .. } => "replay.clock_behind_store",
            Self::Unavailable { .. } => "replay.store_unavailable",
            Self::Corrupt { .. } => "replay.store_corrupt",
            Self::TlsRefused { .. } => "replay.store_tls_refused",
            Self::SchemaVersionUnsupported { .. } => "replay.schema_version_unsupported",
            Self::SchemaVersionOutdated { .. } => "replay.schema_version_outdated",
            Self::NotFound { .. } => "replay.store_not_found",
            Self::InvalidConfiguration { .. } => "replay.invalid_configuration",
            Self::ReadOnly { .. } => "replay.store_read_only",
            Self::LedgerBroken(_) => "replay.ledger_broken",
        }
    }

    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        expect(dead_code, reason = "only the SQLite and PostgreSQL stores raise it")
    )]
    pub(crate) fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            message: message.to_string(),
        }
    }

    pub(crate) fn corrupt(message: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            message: message.to_string(),
        }
    }
}
