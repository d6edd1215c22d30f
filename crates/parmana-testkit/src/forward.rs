//! `forward_store_reads!` and `forward_store_writes!`: the `ReplayStore` methods a test's wrapper store forwards unchanged to the store it wraps, so that each wrapper writes out only what it observes or breaks.

/// The `ReplayStore` methods a wrapper store forwards unchanged to `self.$inner`: reads, marks,
/// the ledger and the sequencer. Each wrapper writes out only what it observes or breaks:
/// `forward_store_reads!(inner)` forwards every read; `forward_store_reads!(inner: get, …)`
/// only the ones named (`get`, `pending_after`, `accepted_versions`, `accept_versions`,
/// `sequence`, `store_checkpoint`, `latest_checkpoint`, `checkpoints_from`, `ledger_summary`,
/// `ledger_rows`, `ledger_records`);
/// `@all_but_ledger_reads` all but `ledger_summary`, `ledger_rows` and `ledger_records`
/// (`ledger_snapshot` is the trait's own, read through them, and so is the default
/// `ledger_records`); `@all_but_pending` all
/// but `pending_after`. The writes (`claim`, `complete`) are [`forward_store_writes!`]'s.
#[macro_export]
macro_rules! forward_store_reads {
    ($inner:tt) => {
        $crate::forward_store_reads!(@all_but_ledger_reads $inner);
        $crate::forward_store_reads!($inner: ledger_summary, ledger_rows, ledger_records);
    };
    // For a wrapper that observes or changes the pages of pending ids.
    (@all_but_pending $inner:tt) => {
        $crate::forward_store_reads!($inner: get, accepted_versions, accept_versions, sequence,
            store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows,
            ledger_records);
    };
    // For a wrapper that observes or changes what the ledger reads return.
    (@all_but_ledger_reads $inner:tt) => {
        $crate::forward_store_reads!($inner: get, pending_after, accepted_versions,
            accept_versions, sequence, store_checkpoint, latest_checkpoint, checkpoints_from);
    };
    ($inner:tt: $($method:ident),+ $(,)?) => {
        $($crate::forward_store_reads!(@one $inner $method);)+
    };
    (@one $inner:tt get) => {
        fn get(
            &self,
            id: &$crate::__runtime::canon::ExecutionId,
        ) -> Result<$crate::__runtime::replay::ExecutionState, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.get(id)
        }
    };
    (@one $inner:tt pending_after) => {
        fn pending_after(
            &self,
            after: Option<&$crate::__runtime::canon::ExecutionId>,
            limit: usize,
        ) -> Result<Vec<$crate::__runtime::canon::ExecutionId>, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.pending_after(after, limit)
        }
    };
    (@one $inner:tt accepted_versions) => {
        fn accepted_versions(
            &self,
        ) -> Result<
            $crate::__runtime::replay::AcceptedVersions,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.accepted_versions()
        }
    };
    (@one $inner:tt accept_versions) => {
        fn accept_versions(
            &self,
            trust_root: u64,
            release_manifest: u64,
        ) -> Result<
            $crate::__runtime::replay::AcceptedVersions,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.accept_versions(trust_root, release_manifest)
        }
    };
    (@one $inner:tt sequence) => {
        fn sequence(
            &self,
            max: usize,
        ) -> Result<
            $crate::__runtime::replay::SequenceOutcome,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.sequence(max)
        }
    };
    (@one $inner:tt store_checkpoint) => {
        fn store_checkpoint(
            &self,
            checkpoint: &$crate::__runtime::replay::StoredCheckpoint,
        ) -> Result<(), $crate::__runtime::replay::ReplayError> {
            self.$inner.store_checkpoint(checkpoint)
        }
    };
    (@one $inner:tt latest_checkpoint) => {
        fn latest_checkpoint(
            &self,
        ) -> Result<
            Option<$crate::__runtime::replay::StoredCheckpoint>,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.latest_checkpoint()
        }
    };
    (@one $inner:tt checkpoints_from) => {
        fn checkpoints_from(
            &self,
            from: u64,
            max: usize,
        ) -> Result<
            Vec<$crate::__runtime::replay::StoredCheckpoint>,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.checkpoints_from(from, max)
        }
    };
    (@one $inner:tt ledger_summary) => {
        fn ledger_summary(
            &self,
        ) -> Result<$crate::__runtime::replay::LedgerSummary, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.ledger_summary()
        }
    };
    (@one $inner:tt ledger_rows) => {
        fn ledger_rows(
            &self,
            from: u64,
            max: usize,
        ) -> Result<Vec<$crate::__runtime::replay::LedgerRow>, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.ledger_rows(from, max)
        }
    };
    (@one $inner:tt ledger_records) => {
        fn ledger_records(
            &self,
            from: u64,
            max: usize,
        ) -> Result<
            Vec<$crate::__runtime::replay::LedgerRecord>,
            $crate::__runtime::replay::ReplayError,
        > {
            self.$inner.ledger_records(from, max)
        }
    };
}

/// The writes forwarded unchanged to `self.$inner`, for a wrapper that observes or changes only
/// what the store reads back (or the other write): `forward_store_writes!(inner)` forwards every
/// write — `claim`, `complete`, and the one-write pair `completes_in_one_write` and
/// `claim_completed`, so that a wrapper around a store that writes an execution once (PostgreSQL)
/// keeps it writing once (and keeps what that protects: `docs/trust-model.md` §8.1);
/// `forward_store_writes!(inner: claim)` or `(inner: complete)` only the one named, for a wrapper
/// that breaks or observes the other (a wrapper writing out the one-write pair itself uses both).
#[macro_export]
macro_rules! forward_store_writes {
    ($inner:tt) => {
        $crate::forward_store_writes!($inner: claim);
        $crate::forward_store_writes!($inner: complete);
        fn completes_in_one_write(&self) -> bool {
            self.$inner.completes_in_one_write()
        }
        fn claim_completed(
            &self,
            id: &$crate::__runtime::canon::ExecutionId,
            record: &$crate::__runtime::replay::ClaimRecord,
            under: $crate::__runtime::replay::AcceptedVersions,
            attestation: &[u8],
        ) -> Result<$crate::__runtime::replay::ClaimOutcome, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.claim_completed(id, record, under, attestation)
        }
    };
    // For a wrapper that breaks or observes the claim.
    ($inner:tt: complete) => {
        fn complete(
            &self,
            id: &$crate::__runtime::canon::ExecutionId,
            attestation: &[u8],
        ) -> Result<(), $crate::__runtime::replay::ReplayError> {
            self.$inner.complete(id, attestation)
        }
    };
    // For a wrapper that breaks or observes the completion.
    ($inner:tt: claim) => {
        fn claim(
            &self,
            id: &$crate::__runtime::canon::ExecutionId,
            record: &$crate::__runtime::replay::ClaimRecord,
            under: $crate::__runtime::replay::AcceptedVersions,
        ) -> Result<$crate::__runtime::replay::ClaimOutcome, $crate::__runtime::replay::ReplayError>
        {
            self.$inner.claim(id, record, under)
        }
    };
}
