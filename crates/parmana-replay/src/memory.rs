//! `MemoryReplayStore`: the in-process backend, for tests and embedding; nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::ledger::{LedgerHead, encode_record};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId, ExecutionState,
    LedgerRow, LedgerSnapshot, ReplayError, ReplayStore,
};

/// A thread-safe replay store held in memory. One mutex guards all state, so every
/// operation is atomic; nothing is durable.
#[derive(Debug, Default)]
pub struct MemoryReplayStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    executions: BTreeMap<ExecutionId, ExecutionState>,
    ledger: Vec<(ExecutionId, Vec<u8>)>,
    versions: AcceptedVersions,
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
    ) -> Result<ClaimOutcome, ReplayError> {
        let mut state = self.lock()?;
        if state.executions.contains_key(execution_id) {
            return Ok(ClaimOutcome::AlreadyClaimed);
        }
        state.executions.insert(
            execution_id.clone(),
            ExecutionState::Claimed(record.clone()),
        );
        Ok(ClaimOutcome::Claimed)
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        let mut state = self.lock()?;
        let claim = match state.executions.get(execution_id) {
            None | Some(ExecutionState::Absent) => {
                return Err(ReplayError::NotClaimed {
                    execution_id: execution_id.to_string(),
                });
            }
            Some(ExecutionState::Completed(_)) => {
                return Err(ReplayError::AlreadyCompleted {
                    execution_id: execution_id.to_string(),
                });
            }
            Some(ExecutionState::Claimed(claim)) => claim.clone(),
        };
        let head = match state.ledger.last() {
            None => LedgerHead::EMPTY,
            Some((_, last)) => {
                let position = u64::try_from(state.ledger.len() - 1).unwrap_or(u64::MAX);
                LedgerHead::after(position, last)
            }
        };
        let record = encode_record(head, execution_id.as_str(), &claim, attestation)?;
        state.ledger.push((execution_id.clone(), record));
        state.executions.insert(
            execution_id.clone(),
            ExecutionState::Completed(CompletedExecution::new(claim, attestation.to_vec())),
        );
        Ok(())
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        Ok(self
            .lock()?
            .executions
            .get(execution_id)
            .cloned()
            .unwrap_or(ExecutionState::Absent))
    }

    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError> {
        Ok(self
            .lock()?
            .executions
            .iter()
            .filter(|(_, state)| matches!(state, ExecutionState::Claimed(_)))
            .map(|(id, _)| id.clone())
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
        let raised = state.versions.raised_to(trust_root, release_manifest)?;
        state.versions = raised;
        Ok(raised)
    }

    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError> {
        let state = self.lock()?;
        let rows = (0u64..)
            .zip(&state.ledger)
            .map(|(position, (id, record))| {
                let (claim, attestation) = match state.executions.get(id) {
                    Some(ExecutionState::Completed(done)) => (
                        Some(done.claim().clone()),
                        Some(done.attestation().to_vec()),
                    ),
                    Some(ExecutionState::Claimed(claim)) => (Some(claim.clone()), None),
                    None | Some(ExecutionState::Absent) => (None, None),
                };
                LedgerRow {
                    position,
                    execution_id: id.to_string(),
                    record: record.clone(),
                    claim,
                    attestation,
                }
            })
            .collect();
        let completed = state
            .executions
            .values()
            .filter(|s| matches!(s, ExecutionState::Completed(_)))
            .count();
        Ok(LedgerSnapshot {
            rows,
            completed_executions: u64::try_from(completed).unwrap_or(u64::MAX),
        })
    }
}
