//! The replay store's latency by operation (`parmana_store_operation_duration_seconds`): a wrapper put around the store when the runtime is built, timing every call and forwarding it unchanged.

use std::sync::Arc;
use std::time::Instant;

use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, LedgerRecord, LedgerRow,
    LedgerSnapshot, LedgerSummary, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StoreOperation {
    operation: &'static str,
}

/// The store's latency histograms, one per operation, shared by the [`timed_store`] wrapper
/// that records them and the server's `/metrics`, which exports them (give the same value to
/// [`ServerSettings::store_timings`](crate::ServerSettings::store_timings)).
#[derive(Debug, Clone)]
pub struct StoreTimings {
    seconds: Family<StoreOperation, Histogram, fn() -> Histogram>,
}

impl Default for StoreTimings {
    fn default() -> Self {
        Self {
            seconds: Family::new_with_constructor(crate::metrics::latency_histogram),
        }
    }
}

impl StoreTimings {
    /// Histograms with nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The family `/metrics` registers.
    pub(crate) fn family(&self) -> Family<StoreOperation, Histogram, fn() -> Histogram> {
        self.seconds.clone()
    }

    /// Runs `call`, the store's `operation`, and records how long it took, failed or not.
    fn time<T>(&self, operation: &'static str, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = call();
        self.seconds
            .get_or_create(&StoreOperation { operation })
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// `store`, with every call timed into `timings` under the operation's name (`claim`,
/// `complete`, `claim_completed`, `get`, `pending_after`, `accepted_versions`,
/// `accept_versions`, `sequence`, `store_checkpoint`, `latest_checkpoint`, `checkpoints_from`,
/// `ledger_summary`, `ledger_rows`, `ledger_records`) and forwarded unchanged — what the store does in one write
/// it still does in one. For [`RuntimeBuilder::layer_store`](parmana_runtime::RuntimeBuilder::layer_store).
pub fn timed_store(store: Arc<dyn ReplayStore>, timings: &StoreTimings) -> Arc<dyn ReplayStore> {
    Arc::new(TimedStore {
        inner: store,
        timings: timings.clone(),
        executed: None,
    })
}

/// The store `parmana serve` runs on: [`timed_store`], and a claim of an id among `executed`
/// — the ids the server's sequencer has seen in the ledger's chained records — never handed to
/// the store's claim: answered as a replay (`AlreadyClaimed`) where the store holds the id's row,
/// and `replay.store_corrupt` where it holds none (a writer of the store deleted the row, which
/// would otherwise have the id claimed, decided and signed again; recorded as evidence in
/// `executed`, on which the server refuses the store). The runtime asks the store only after its
/// own checks (the store refused, the policy, the signals). The layer's own reads are not timed.
pub fn served_store(
    store: Arc<dyn ReplayStore>,
    timings: &StoreTimings,
    executed: &parmana_runtime::ExecutedIds,
) -> Arc<dyn ReplayStore> {
    Arc::new(TimedStore {
        inner: store,
        timings: timings.clone(),
        executed: Some(executed.clone()),
    })
}

#[derive(Debug)]
struct TimedStore {
    inner: Arc<dyn ReplayStore>,
    timings: StoreTimings,
    /// Ids claimed already, whatever the store says ([`served_store`]).
    executed: Option<parmana_runtime::ExecutedIds>,
}

impl TimedStore {
    /// The answer to a claim of `execution_id` where the ledger's records hold it: a replay
    /// where the store still holds its row; where it holds none, `replay.store_corrupt` — the
    /// row was deleted behind the store (evidence: refused, and said, not answered as an
    /// ordinary replay). `None` where the ledger does not hold it (the store answers).
    fn logged_claim(
        &self,
        execution_id: &ExecutionId,
    ) -> Option<Result<ClaimOutcome, ReplayError>> {
        let executed = self.executed.as_ref()?;
        if !executed.contains(execution_id) {
            return None;
        }
        Some(match self.inner.get(execution_id) {
            Ok(ExecutionState::Absent) => {
                let message = format!(
                    "the ledger records execution {:?}, but the store holds no row for it: \
                     it was deleted behind the store",
                    execution_id.as_str()
                );
                executed.note_evidence(message.clone());
                Err(ReplayError::Corrupt { message })
            }
            Ok(_) => Ok(ClaimOutcome::AlreadyClaimed),
            Err(error) => Err(error),
        })
    }
}

impl ReplayStore for TimedStore {
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        if let Some(answer) = self.logged_claim(execution_id) {
            return answer;
        }
        self.timings
            .time("claim", || self.inner.claim(execution_id, record, under))
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        self.timings.time("complete", || {
            self.inner.complete(execution_id, attestation)
        })
    }

    fn completes_in_one_write(&self) -> bool {
        self.inner.completes_in_one_write()
    }

    // The provided reads too (untimed: their parts are), so that a store's own way of making
    // them, should it have one, is kept.
    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError> {
        self.inner.pending()
    }

    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError> {
        self.inner.ledger_snapshot()
    }

    fn claim_completed(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: &[u8],
    ) -> Result<ClaimOutcome, ReplayError> {
        if let Some(answer) = self.logged_claim(execution_id) {
            return answer;
        }
        self.timings.time("claim_completed", || {
            self.inner
                .claim_completed(execution_id, record, under, attestation)
        })
    }

    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError> {
        self.timings.time("sequence", || self.inner.sequence(max))
    }

    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError> {
        self.timings.time("store_checkpoint", || {
            self.inner.store_checkpoint(checkpoint)
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        self.timings
            .time("latest_checkpoint", || self.inner.latest_checkpoint())
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        self.timings.time("get", || self.inner.get(execution_id))
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        self.timings
            .time("pending_after", || self.inner.pending_after(after, limit))
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        self.timings
            .time("accepted_versions", || self.inner.accepted_versions())
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        self.timings.time("accept_versions", || {
            self.inner.accept_versions(trust_root, release_manifest)
        })
    }

    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        self.timings
            .time("ledger_summary", || self.inner.ledger_summary())
    }

    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        self.timings.time("checkpoints_from", || {
            self.inner.checkpoints_from(from, max)
        })
    }

    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        self.timings
            .time("ledger_rows", || self.inner.ledger_rows(from, max))
    }

    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        self.timings
            .time("ledger_records", || self.inner.ledger_records(from, max))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_runtime::canon::{Digest, Timestamp};
    use parmana_runtime::replay::MemoryReplayStore;

    use super::*;

    /// Each call is timed under its operation and answered as the store answers it; a store
    /// that completes in one write still does (the claim and its attestation in one call).
    #[test]
    fn every_call_is_timed_under_its_operation_and_forwarded_unchanged() {
        let timings = StoreTimings::new();
        let store = timed_store(Arc::new(MemoryReplayStore::new()), &timings);
        let id = ExecutionId::parse("timed-1").unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
        );
        let inner = MemoryReplayStore::new();
        assert_eq!(
            store.completes_in_one_write(),
            inner.completes_in_one_write()
        );
        assert_eq!(
            store
                .claim_completed(&id, &claim, AcceptedVersions::new(1, 1), b"attestation")
                .unwrap(),
            ClaimOutcome::Claimed
        );
        assert!(matches!(
            store.get(&id).unwrap(),
            ExecutionState::Completed(_)
        ));
        assert_eq!(
            store
                .claim(&id, &claim, AcceptedVersions::new(1, 1))
                .unwrap(),
            ClaimOutcome::AlreadyClaimed
        );
        let count = |operation: &'static str| {
            let mut text = String::new();
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register("store_seconds", "test", timings.family());
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(&format!(
                        "store_seconds_count{{operation=\"{operation}\"}} "
                    ))
                })
                .map_or(0, |value| value.trim().parse::<u64>().unwrap())
        };
        assert_eq!(
            (count("claim_completed"), count("get"), count("claim")),
            (1, 1, 1)
        );
        assert_eq!(
            count("complete"),
            0,
            "one write, not a claim and a completion"
        );
    }

    /// `served_store`: a claim (either way: `claim`, or `claim_completed` for a store that
    /// writes an execution once) of an id the ledger's records hold is a replay where the store
    /// holds its row, `replay.store_corrupt` where it holds none (deleted behind the store),
    /// and never reaches the store's claim; any other id is the store's to answer.
    #[test]
    fn a_claim_of_a_logged_id_is_answered_from_the_ledger() {
        let under = AcceptedVersions::new(1, 1);
        let claim = ClaimRecord::new(
            Digest::of(b"request"),
            b"{}".to_vec(),
            Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
        );
        let logged = ExecutionId::parse("logged-1").unwrap();
        let fresh = ExecutionId::parse("fresh-1").unwrap();
        // A store whose ledger records `logged`, and the ids a sequencer reads from it.
        let with_row = Arc::new(MemoryReplayStore::new());
        assert_eq!(
            with_row
                .claim_completed(&logged, &claim, under, b"attestation")
                .unwrap(),
            ClaimOutcome::Claimed
        );
        assert!(matches!(
            with_row.sequence(16).unwrap(),
            SequenceOutcome::Integrated(rows) if !rows.is_empty()
        ));
        let executed = parmana_runtime::ExecutedIds::default();
        parmana_runtime::LogSequencer::default()
            .sharing(executed.clone())
            .load(with_row.as_ref(), None)
            .unwrap();
        assert!(executed.contains(&logged));
        let timings = StoreTimings::new();
        // Its row there: a replay, both ways.
        let served = served_store(with_row, &timings, &executed);
        assert_eq!(
            served.claim(&logged, &claim, under).unwrap(),
            ClaimOutcome::AlreadyClaimed
        );
        assert_eq!(
            served
                .claim_completed(&logged, &claim, under, b"again")
                .unwrap(),
            ClaimOutcome::AlreadyClaimed
        );
        // Its row gone (a store that holds none): refused as corrupt, both ways, and nothing
        // claimed.
        let without_row = Arc::new(MemoryReplayStore::new());
        let served = served_store(
            Arc::clone(&without_row) as Arc<dyn ReplayStore>,
            &timings,
            &executed,
        );
        for refused in [
            served.claim(&logged, &claim, under).map(|_| ()),
            served
                .claim_completed(&logged, &claim, under, b"again")
                .map(|_| ()),
        ] {
            assert_eq!(refused.map_err(|e| e.code()), Err("replay.store_corrupt"));
        }
        assert!(matches!(
            without_row.get(&logged).unwrap(),
            ExecutionState::Absent
        ));
        // An id the ledger does not hold: the store's.
        assert_eq!(
            served.claim(&fresh, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
    }
}
