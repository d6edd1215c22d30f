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
///
/// Completing an execution fixes its ledger position (the completion order); the record's
/// bytes are a pure function of that position, the previous record and the execution held
/// here, none of which can change afterwards, so they are encoded and chained when the ledger
/// is first read ([`ReplayStore::ledger_snapshot`]) and kept from then on — the same bytes
/// an eager encoding at completion would give, without canonical JSON and three SHA-256
/// digests on every execution's path.
#[derive(Debug, Default)]
pub struct MemoryReplayStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    executions: BTreeMap<ExecutionId, ExecutionState>,
    /// The completed ids in completion order: position `i` of the ledger is `ledger[i]`.
    ledger: Vec<ExecutionId>,
    /// The encoded records of the first `records.len()` ledger positions.
    records: Vec<Vec<u8>>,
    versions: AcceptedVersions,
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
        for execution_id in ledger.iter().skip(records.len()) {
            let head = match records.last() {
                None => LedgerHead::EMPTY,
                Some(last) => {
                    let position = u64::try_from(records.len() - 1).unwrap_or(u64::MAX);
                    LedgerHead::after(position, last)
                }
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
        let Some(entry) = state.executions.get_mut(execution_id) else {
            return Err(ReplayError::NotClaimed {
                execution_id: execution_id.to_string(),
            });
        };
        // The claim moves into the completed state: its recorded inputs are not copied.
        match std::mem::replace(entry, ExecutionState::Absent) {
            ExecutionState::Claimed(claim) => {
                *entry =
                    ExecutionState::Completed(CompletedExecution::new(claim, attestation.to_vec()));
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
        }
        state.ledger.push(execution_id.clone());
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
        let mut state = self.lock()?;
        state.materialize_records()?;
        let rows = (0u64..)
            .zip(state.ledger.iter().zip(&state.records))
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
