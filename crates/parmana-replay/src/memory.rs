//! `MemoryReplayStore`: the in-process backend, for tests and embedding; nothing survives the process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use parmana_canon::Timestamp;

use crate::ledger::{LedgerHead, encode_marks_record, encode_record};
use crate::record::{GuardState, Raise};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId, ExecutionState,
    LedgerRow, LedgerSummary, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
};

/// A thread-safe replay store held in memory. One mutex guards all state, so every
/// operation is atomic; nothing is durable.
///
/// Completing an execution queues it for the sequencer (by claim time, then id); a sequencer run
/// ([`ReplayStore::sequence`]) or a raise of the high-water marks fixes a ledger position; the
/// record's bytes are a pure function of that position, the previous record and the execution
/// (or marks) held here, none of which can change afterwards, so they are encoded and chained
/// when the ledger is first read ([`ReplayStore::ledger_summary`], [`ReplayStore::ledger_rows`])
/// and kept from then on — the
/// same bytes an eager encoding would give, without canonical JSON and three SHA-256 digests on
/// every execution's path.
///
/// Nothing outside the process can write this store, so its marks cannot be reset behind its
/// back: the marks records it keeps are for the ledger's readers.
#[derive(Debug, Default)]
pub struct MemoryReplayStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    executions: BTreeMap<ExecutionId, ExecutionState>,
    /// What each ledger position records, in order.
    ledger: Vec<Entry>,
    /// The encoded records of the first `records.len()` ledger positions.
    records: Vec<Vec<u8>>,
    versions: AcceptedVersions,
    /// The newest clock reading of a claim held.
    newest_claim: Option<Timestamp>,
    /// Completed executions not yet sequenced, in the order the sequencer takes them.
    unsequenced: BTreeSet<(Timestamp, ExecutionId)>,
    /// The stored checkpoints, by size.
    checkpoints: BTreeMap<u64, StoredCheckpoint>,
}

/// What one ledger position records.
#[derive(Debug, Clone)]
enum Entry {
    /// The completion of this execution.
    Execution(ExecutionId),
    /// A raise of the high-water marks to these.
    Marks(AcceptedVersions),
}

impl MemoryState {
    /// Encodes and chains the records of the positions completed since the last read.
    fn materialize_records(&mut self) -> Result<(), ReplayError> {
        let Self {
            executions,
            ledger,
            records,
            ..
        } = self;
        for entry in ledger.iter().skip(records.len()) {
            let head = match records.last() {
                None => LedgerHead::EMPTY,
                Some(last) => {
                    let position = u64::try_from(records.len() - 1).unwrap_or(u64::MAX);
                    LedgerHead::after(position, last)
                }
            };
            let execution_id = match entry {
                Entry::Marks(marks) => {
                    records.push(encode_marks_record(head, *marks)?);
                    continue;
                }
                Entry::Execution(execution_id) => execution_id,
            };
            let Some(ExecutionState::Completed(done)) = executions.get(execution_id) else {
                return Err(ReplayError::corrupt(format!(
                    "ledger position {} names {execution_id}, which is not completed",
                    records.len()
                )));
            };
            records.push(encode_record(
                head,
                execution_id.as_str(),
                done.claim(),
                done.attestation(),
            )?);
        }
        Ok(())
    }

    /// The ledger row at `position` (its record must be materialized).
    fn row(&self, position: usize) -> Option<LedgerRow> {
        let record = self.records.get(position)?.clone();
        let position_number = u64::try_from(position).unwrap_or(u64::MAX);
        let Entry::Execution(id) = self.ledger.get(position)? else {
            return Some(LedgerRow {
                position: position_number,
                execution_id: None,
                record,
                claim: None,
                attestation: None,
            });
        };
        let (claim, attestation) = match self.executions.get(id) {
            Some(ExecutionState::Completed(done)) => (
                Some(done.claim().clone()),
                Some(done.attestation().to_vec()),
            ),
            Some(ExecutionState::Claimed(claim)) => (Some(claim.clone()), None),
            None | Some(ExecutionState::Absent) => (None, None),
        };
        Some(LedgerRow {
            position: position_number,
            execution_id: Some(id.to_string()),
            record,
            claim,
            attestation,
        })
    }

    fn guard(&self) -> GuardState {
        GuardState {
            marks: self.versions,
            // Nobody outside this process writes the marks: every raise appended its record,
            // and the records prove the marks as they are.
            proven: Some(self.versions),
            newest_claim: self.newest_claim,
        }
    }

    fn apply_raise(&mut self, raise: Raise) {
        if raise.changed {
            self.versions = raise.marks;
            self.ledger.push(Entry::Marks(raise.marks));
        }
    }
}

impl MemoryReplayStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, MemoryState>, ReplayError> {
        // A poisoned mutex means a thread panicked mid-update: fail closed.
        self.state
            .lock()
            .map_err(|_| ReplayError::corrupt("a thread panicked while updating the memory store"))
    }
}

impl ReplayStore for MemoryReplayStore {
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        crate::check_stored_size(
            crate::StoredValue::RecordedInputs,
            record.attestation_inputs().len(),
        )?;
        let mut state = self.lock()?;
        let raise = state.guard().claim(under, record.claimed_at())?;
        state.apply_raise(raise);
        if state.executions.contains_key(execution_id) {
            return Ok(ClaimOutcome::AlreadyClaimed);
        }
        state.executions.insert(
            execution_id.clone(),
            ExecutionState::Claimed(record.clone()),
        );
        state.newest_claim = state.newest_claim.max(Some(record.claimed_at()));
        Ok(ClaimOutcome::Claimed)
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        crate::check_stored_size(crate::StoredValue::Attestation, attestation.len())?;
        let mut state = self.lock()?;
        let Some(entry) = state.executions.get_mut(execution_id) else {
            return Err(ReplayError::NotClaimed {
                execution_id: execution_id.to_string(),
            });
        };
        // The claim moves into the completed state: its recorded inputs are not copied.
        let claimed_at = match std::mem::replace(entry, ExecutionState::Absent) {
            ExecutionState::Claimed(claim) => {
                let claimed_at = claim.claimed_at();
                *entry =
                    ExecutionState::Completed(CompletedExecution::new(claim, attestation.to_vec()));
                claimed_at
            }
            other => {
                let error = if matches!(other, ExecutionState::Completed(_)) {
                    ReplayError::AlreadyCompleted {
                        execution_id: execution_id.to_string(),
                    }
                } else {
                    ReplayError::NotClaimed {
                        execution_id: execution_id.to_string(),
                    }
                };
                *entry = other;
                return Err(error);
            }
        };
        state.unsequenced.insert((claimed_at, execution_id.clone()));
        Ok(())
    }

    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError> {
        // The one mutex is the integrator lock.
        let mut state = self.lock()?;
        let first = state.ledger.len();
        // As the SQL stores: at most `max`, and only while the payloads before stay under
        // MAX_SEQUENCE_BATCH_BYTES (the first always).
        let mut bytes_before: i64 = 0;
        for _ in 0..max {
            if bytes_before >= crate::MAX_SEQUENCE_BATCH_BYTES {
                break;
            }
            let Some((_, execution_id)) = state.unsequenced.pop_first() else {
                break;
            };
            if let Some(ExecutionState::Completed(done)) = state.executions.get(&execution_id) {
                let size = done.claim().attestation_inputs().len() + done.attestation().len();
                bytes_before = bytes_before.saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
            }
            state.ledger.push(Entry::Execution(execution_id));
        }
        state.materialize_records()?;
        let rows = (first..state.ledger.len())
            .filter_map(|position| state.row(position))
            .collect();
        Ok(SequenceOutcome::Integrated(rows))
    }

    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError> {
        self.lock()?
            .checkpoints
            .entry(checkpoint.size)
            .or_insert_with(|| checkpoint.clone());
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        Ok(self
            .lock()?
            .checkpoints
            .last_key_value()
            .map(|(_, checkpoint)| checkpoint.clone()))
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        Ok(self
            .lock()?
            .executions
            .get(execution_id)
            .cloned()
            .unwrap_or(ExecutionState::Absent))
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        use std::ops::Bound;
        let inner = self.lock()?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(inner
            .executions
            .range::<ExecutionId, _>((from, Bound::Unbounded))
            .filter(|(_, state)| matches!(state, ExecutionState::Claimed(_)))
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect())
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        Ok(self.lock()?.versions)
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        let mut state = self.lock()?;
        let raise = state
            .guard()
            .raise(AcceptedVersions::new(trust_root, release_manifest))?;
        state.apply_raise(raise);
        Ok(raise.marks)
    }

    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        let mut state = self.lock()?;
        state.materialize_records()?;
        let completed = state
            .executions
            .values()
            .filter(|s| matches!(s, ExecutionState::Completed(_)))
            .count();
        Ok(LedgerSummary {
            records: u64::try_from(state.records.len()).unwrap_or(u64::MAX),
            completed_executions: u64::try_from(completed).unwrap_or(u64::MAX),
            unsequenced: u64::try_from(state.unsequenced.len()).unwrap_or(u64::MAX),
            largest_checkpoint: state.checkpoints.keys().next_back().copied(),
            marks: state.versions,
        })
    }

    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        let state = self.lock()?;
        Ok(state
            .checkpoints
            .range(from..)
            .take(max)
            .map(|(_, checkpoint)| checkpoint.clone())
            .collect())
    }

    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        let mut state = self.lock()?;
        state.materialize_records()?;
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        // As the SQL stores page: at most `max` rows, and only those whose bytes before them
        // stay under MAX_LEDGER_PAGE_BYTES (the first always).
        let budget = usize::try_from(crate::MAX_LEDGER_PAGE_BYTES).unwrap_or(usize::MAX);
        let mut used = 0_usize;
        let mut rows = Vec::new();
        for row in (start..state.records.len())
            .take(max)
            .filter_map(|position| state.row(position))
        {
            if used >= budget {
                break;
            }
            used = used
                .saturating_add(row.record.len())
                .saturating_add(
                    row.claim
                        .as_ref()
                        .map_or(0, |c| c.attestation_inputs().len()),
                )
                .saturating_add(row.attestation.as_ref().map_or(0, Vec::len));
            rows.push(row);
        }
        Ok(rows)
    }
}
