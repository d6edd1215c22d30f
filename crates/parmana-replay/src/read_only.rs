//! `ReadOnlyStore`: any replay store, opened for a command that only reads, with every write refused before it reaches the backend (`replay.store_read_only`).

use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, ExecutionState, LedgerRecord,
    LedgerRow, LedgerSnapshot, LedgerSummary, ReplayError, ReplayStore, SequenceOutcome,
    StoredCheckpoint,
};

/// A store whose reads go to the store it wraps and whose writes are refused, whatever the
/// backend: what [`open_read_only_store`](crate::open_read_only_store) opens, so that a command
/// that only reads cannot write through it by mistake (a SQLite store opened read-only also
/// refuses on its own; a PostgreSQL role may be granted writes, a memory store takes them).
#[derive(Debug)]
pub struct ReadOnlyStore {
    inner: Box<dyn ReplayStore>,
}

impl ReadOnlyStore {
    /// `inner`, read only.
    pub fn new(inner: Box<dyn ReplayStore>) -> Self {
        Self { inner }
    }
}

fn refused<T>(operation: &'static str) -> Result<T, ReplayError> {
    Err(ReplayError::ReadOnly { operation })
}

impl ReplayStore for ReadOnlyStore {
    fn claim(
        &self,
        _: &ExecutionId,
        _: &ClaimRecord,
        _: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        refused("claim")
    }

    fn complete(&self, _: &ExecutionId, _: &[u8]) -> Result<(), ReplayError> {
        refused("complete")
    }

    fn claim_completed(
        &self,
        _: &ExecutionId,
        _: &ClaimRecord,
        _: AcceptedVersions,
        _: &[u8],
    ) -> Result<ClaimOutcome, ReplayError> {
        refused("claim_completed")
    }

    fn sequence(&self, _: usize) -> Result<SequenceOutcome, ReplayError> {
        refused("sequence")
    }

    fn store_checkpoint(&self, _: &StoredCheckpoint) -> Result<(), ReplayError> {
        refused("store_checkpoint")
    }

    fn accept_versions(&self, _: u64, _: u64) -> Result<AcceptedVersions, ReplayError> {
        refused("accept_versions")
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        self.inner.latest_checkpoint()
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        self.inner.get(execution_id)
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        self.inner.pending_after(after, limit)
    }

    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError> {
        self.inner.pending()
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        self.inner.accepted_versions()
    }

    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.inner.ledger_summary()
    }

    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        self.inner.checkpoints_from(from, max)
    }

    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError> {
        self.inner.ledger_snapshot()
    }

    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.inner.ledger_rows(from, max)
    }

    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        self.inner.ledger_records(from, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryReplayStore;
    use parmana_canon::{Digest, Timestamp};

    #[test]
    fn every_write_is_refused_and_every_read_answered() {
        let inner = MemoryReplayStore::new();
        let id = ExecutionId::parse("held").unwrap();
        let record = ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse("2026-12-07T05:00:00Z").unwrap(),
        );
        let under = AcceptedVersions::new(1, 1);
        assert_eq!(
            inner.claim(&id, &record, under).unwrap(),
            ClaimOutcome::Claimed
        );
        let store = ReadOnlyStore::new(Box::new(inner));
        let other = ExecutionId::parse("other").unwrap();
        let checkpoint = StoredCheckpoint {
            size: 1,
            root: Digest::of(b"root"),
            note: "a note".to_owned(),
        };
        let refusals = [
            ("claim", store.claim(&other, &record, under).err()),
            ("complete", store.complete(&id, b"{}").err()),
            (
                "claim_completed",
                store.claim_completed(&other, &record, under, b"{}").err(),
            ),
            ("sequence", store.sequence(8).err()),
            (
                "store_checkpoint",
                store.store_checkpoint(&checkpoint).err(),
            ),
            ("accept_versions", store.accept_versions(2, 2).err()),
        ];
        for (operation, refusal) in refusals {
            let refusal = refusal.expect(operation);
            assert_eq!(refusal.code(), "replay.store_read_only", "{operation}");
            assert!(refusal.to_string().contains(operation), "{refusal}");
        }
        assert!(matches!(
            store.get(&id).unwrap(),
            ExecutionState::Claimed(_)
        ));
        assert!(matches!(store.get(&other).unwrap(), ExecutionState::Absent));
        assert_eq!(store.pending().unwrap(), vec![id]);
        assert_eq!(store.accepted_versions().unwrap(), under);
        assert_eq!(store.latest_checkpoint().unwrap(), None);
        assert_eq!(store.ledger_summary().unwrap().records, 1);
    }
}
