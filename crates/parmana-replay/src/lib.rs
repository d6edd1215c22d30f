//! `parmana-replay`: replay stores — exactly-once execution ids, rollback high-water marks and a tamper-evident ledger.
//!
//! The runtime claims each [`ExecutionId`] in a [`ReplayStore`] before it signs anything:
//!
//! 1. [`ReplayStore::claim`] atomically reserves the id together with a [`ClaimRecord`]
//!    (request digest, canonical attestation inputs, clock reading), or answers
//!    [`ClaimOutcome::AlreadyClaimed`] — two callers can never both win.
//! 2. [`ReplayStore::complete`] records the attestation and appends a record to the ledger.
//!
//! A crash between the two leaves the id in [`ReplayStore::pending`]; completing it from the
//! recorded inputs gives byte-identical output. A claimed id is never reopened: there is no
//! expiry and no delete.
//!
//! Backends: [`MemoryReplayStore`] (always), `SqliteReplayStore` (feature `sqlite`, on by
//! default) and `PostgresReplayStore` (feature `postgres`). Every one passes the same
//! behavioural conformance suite (`tests/conformance.rs`).
//!
//! ```
//! use parmana_canon::{Digest, Timestamp};
//! use parmana_replay::{ClaimOutcome, ClaimRecord, ExecutionId, MemoryReplayStore, ReplayStore};
//!
//! let store = MemoryReplayStore::new();
//! let id = ExecutionId::parse("exec-1").unwrap();
//! let now = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
//! let claim = ClaimRecord::new(Digest::of(b"request"), b"{}".to_vec(), now);
//! assert_eq!(store.claim(&id, &claim).unwrap(), ClaimOutcome::Claimed);
//! assert_eq!(store.claim(&id, &claim).unwrap(), ClaimOutcome::AlreadyClaimed);
//! store.complete(&id, b"attestation").unwrap();
//! assert!(parmana_replay::verify_ledger(&store).unwrap().is_intact());
//! ```

mod error;
mod ledger;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use error::{ReplayError, VersionKind};
pub use ledger::{
    LEDGER_GENESIS, LedgerBreak, LedgerBreakKind, LedgerReport, LedgerRow, LedgerSnapshot,
    verify_ledger, verify_ledger_snapshot,
};
pub use memory::MemoryReplayStore;
/// Execution ids are defined once, in `parmana-canon` (one grammar for every layer).
pub use parmana_canon::{ExecutionId, MAX_EXECUTION_ID_LEN};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresReplayStore};
pub use record::{AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionState};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteReplayStore;

/// A replay store: the one place that decides whether an execution id may be used.
///
/// Every method is atomic on its own. Implementations are shared between threads
/// (`Send + Sync`) and, for the SQL backends, between processes and machines.
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Reserves `execution_id` with `record`, or reports that it is already claimed.
    ///
    /// Exactly one of any number of concurrent callers gets [`ClaimOutcome::Claimed`]; the
    /// record of a lost claim is not stored. `Ok(Claimed)` is returned only once the claim is
    /// durable in the backend.
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
    ) -> Result<ClaimOutcome, ReplayError>;

    /// Records `attestation` as the outcome of the claimed `execution_id` and appends its
    /// ledger record, atomically.
    ///
    /// Refused with `replay.not_claimed` for an id never claimed and
    /// `replay.already_completed` for one completed before (the first outcome stands).
    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError>;

    /// The state of `execution_id`: absent, claimed (with its record) or completed.
    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError>;

    /// Every id claimed but not completed, in byte order: the executions to finish after a crash.
    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError>;

    /// The highest trust-root and release-manifest versions accepted so far.
    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError>;

    /// Accepts a trust root and a release manifest, raising the high-water marks, or refuses
    /// with `replay.version_rollback` if either is older than one accepted before (then
    /// nothing changes). Equal versions are accepted. Returns the marks now in force.
    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError>;

    /// A consistent read of the whole ledger with the executions its records name,
    /// for [`verify_ledger`].
    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError>;
}

/// Opens the store named by `location`, as the command line spells it:
/// `memory`, `sqlite:PATH`, or a `postgres://…` / `postgresql://…` URL (default [`PostgresOptions`]).
///
/// A backend this build was compiled without is `replay.invalid_configuration`.
///
/// ```
/// let store = parmana_replay::open_store("memory").unwrap();
/// assert!(store.pending().unwrap().is_empty());
/// assert_eq!(parmana_replay::open_store("redis://x").unwrap_err().code(), "replay.invalid_configuration");
/// ```
pub fn open_store(location: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    if location == "memory" {
        return Ok(Box::new(MemoryReplayStore::new()));
    }
    if let Some(path) = location.strip_prefix("sqlite:") {
        return open_sqlite(path);
    }
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return open_postgres(location);
    }
    Err(ReplayError::InvalidConfiguration {
        message: format!(
            "unknown store {location:?}: expected memory, sqlite:PATH or postgres://…"
        ),
    })
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    if path.is_empty() {
        return Err(ReplayError::InvalidConfiguration {
            message: "sqlite: needs a file path".to_owned(),
        });
    }
    Ok(Box::new(SqliteReplayStore::open(path)?))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_path: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Err(ReplayError::InvalidConfiguration {
        message: "this build has no SQLite store (feature `sqlite`)".to_owned(),
    })
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Ok(Box::new(PostgresReplayStore::connect(
        url,
        &PostgresOptions::default(),
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str) -> Result<Box<dyn ReplayStore>, ReplayError> {
    Err(ReplayError::InvalidConfiguration {
        message: "this build has no PostgreSQL store (feature `postgres`)".to_owned(),
    })
}
