//! The batched sequencer's types: what one run integrated, and the signed checkpoints a store keeps (see `docs/transparency-log.md`, "The sequencer").
//!
//! A completion is durable in its own execution row and is "completed, not yet sequenced" until
//! a sequencer run ([`ReplayStore::sequence`](crate::ReplayStore::sequence)) gives it the next
//! ledger position and writes its chained record. One run integrates at most `max` completed
//! executions, in a deterministic order — claim time, then execution id, both in byte order —
//! and only one integrator runs at a time per store (the memory store's mutex, SQLite's write
//! lock under `BEGIN IMMEDIATE`, a PostgreSQL transaction-level advisory lock taken with
//! `pg_try_advisory_xact_lock`: a second integrator is told [`SequenceOutcome::Busy`] at once).

use parmana_canon::Digest;

use crate::LedgerRow;

/// The most executions one sequencer run integrates unless told otherwise.
pub const DEFAULT_SEQUENCE_BATCH: usize = 4096;

/// The most bytes of recorded inputs and attestations one sequencer run of the SQL stores reads
/// (at least one execution, however large): a backlog of executions with large signals is
/// integrated in several runs, never read whole into memory at once.
pub const MAX_SEQUENCE_BATCH_BYTES: i64 = 64 * 1024 * 1024;

/// What one sequencer run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a sequencer run reports what it integrated"]
pub enum SequenceOutcome {
    /// This run held the store's integrator lock and appended these records (none when nothing
    /// was waiting), in position order, each with the execution it names as the store holds it.
    Integrated(Vec<LedgerRow>),
    /// Another integrator holds the store's sequencer lock: this run changed nothing.
    Busy,
}

impl SequenceOutcome {
    /// The records appended (none for [`SequenceOutcome::Busy`]).
    pub fn rows(&self) -> &[LedgerRow] {
        match self {
            Self::Integrated(rows) => rows,
            Self::Busy => &[],
        }
    }
}

/// A signed checkpoint as a store keeps it: the tree size and root hash it commits to, and the
/// signed note (C2SP `tlog-checkpoint` text with its signatures) exactly as signed.
///
/// The store does not check it (it holds no keys); `verify_ledger` checks `size` and `root`
/// against the tree recomputed from the ledger, and the runtime checks the note's signatures
/// and that the note says the same size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size (number of ledger records) the checkpoint covers.
    pub size: u64,
    /// The RFC 9162 root hash of the first `size` records.
    pub root: Digest,
    /// The signed note.
    pub note: String,
}

/// Sequences every completed execution of `store` that is still waiting, in runs of
/// [`DEFAULT_SEQUENCE_BATCH`]: returns the number of records appended, or `None` when another
/// integrator held the lock (it integrates them instead).
pub fn sequence_all<S: crate::ReplayStore + ?Sized>(
    store: &S,
) -> Result<Option<u64>, crate::ReplayError> {
    let mut appended = 0u64;
    loop {
        match store.sequence(DEFAULT_SEQUENCE_BATCH)? {
            SequenceOutcome::Busy => return Ok(None),
            SequenceOutcome::Integrated(rows) => {
                if rows.is_empty() {
                    return Ok(Some(appended));
                }
                appended = appended.saturating_add(u64::try_from(rows.len()).unwrap_or(u64::MAX));
            }
        }
    }
}
