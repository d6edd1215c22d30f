//! The transparency-log checks the kill and race tests make during their runs: signed checkpoints taken through the runtime's log API, every entry kept byte for byte and none doubled, the Merkle tree recomputed from the entries, and every checkpoint consistent with every later one (RFC 9162 consistency proofs).

use std::collections::BTreeSet;

use parmana_canon::merkle::{MerkleTree, verify_consistency};
use parmana_replay::{ExecutionEntry, ReplayStore, ledger_log};
use parmana_runtime::trust::{LocalSigningKey, LogSpec, VerifiedCheckpoint};
use parmana_runtime::{RuntimeEnvironment, sign_log_checkpoint};
use parmana_testkit::FixtureEnvironment;

/// The origin of the fixture log.
const ORIGIN: &str = "log.example/reliability";

/// The TEST-ONLY key of the fixture log.
fn log_key() -> LocalSigningKey {
    LocalSigningKey::from_seed(&[31; 32])
}

/// Rotates `fixture` to a trust-root version naming the fixture log (its attestation key
/// unchanged), before the run loads it.
pub(crate) fn with_log(fixture: &FixtureEnvironment) {
    let log = LogSpec::one_key(ORIGIN, log_key().public_key());
    let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
    fixture.rotate_with_log(log, expires).unwrap();
}

/// Every checkpoint taken during a run, and the entries the log held at the newest.
#[derive(Default)]
pub(crate) struct LogWatch {
    checkpoints: Vec<VerifiedCheckpoint>,
    entries: Vec<Vec<u8>>,
}

impl LogWatch {
    /// How many checkpoints were taken.
    pub(crate) fn checkpoints(&self) -> usize {
        self.checkpoints.len()
    }

    /// Asserts that some checkpoint was taken while the log grew: its size above zero and
    /// below the last one's, so that the consistency of a checkpoint taken mid-race with every
    /// later one was checked, not only that of the empty log with the final one.
    pub(crate) fn assert_one_taken_midway(&self, label: &str) {
        let sizes: Vec<u64> = self
            .checkpoints
            .iter()
            .map(|c| c.checkpoint().size())
            .collect();
        let last = sizes.last().copied().unwrap_or(0);
        assert!(
            sizes.iter().any(|size| *size > 0 && *size < last),
            "{label}: no checkpoint taken while the log grew (sizes {sizes:?})"
        );
    }

    /// Takes a signed checkpoint of `store`'s log now (`sign_log_checkpoint`) and checks it:
    ///
    /// - no entry lost or changed: the log still holds every entry seen before, byte for byte,
    ///   at the same position, and holds at least as many;
    /// - none doubled: no execution id is recorded twice, every entry reads back at its position;
    /// - the Merkle tree recomputes: a tree built afresh from the entries has the checkpoint's
    ///   root, and the signed checkpoint verifies under the trust root's log role;
    /// - every checkpoint taken before is consistent with this one: an RFC 9162 consistency proof
    ///   from the store's tree verifies against both signed roots.
    pub(crate) fn check(
        &mut self,
        label: &str,
        store: &dyn ReplayStore,
        environment: &RuntimeEnvironment,
    ) {
        let trust = environment.trust_root();
        let note = sign_log_checkpoint(
            store,
            environment.trust_history(),
            // The latest clock reading the contenders execute under.
            parmana_testkit::now_plus_hour(),
            environment.release_manifest().version(),
            &[&log_key()],
            None,
        )
        .unwrap_or_else(|e| panic!("{label}: checkpoint: {e}"));
        let verifier = trust.log().unwrap().verifier();
        let checkpoint = verifier.open_checkpoint(note.as_bytes()).unwrap();
        // The log now; it may have grown since the checkpoint was signed, never shrunk.
        let log = ledger_log(store).unwrap();
        let head = checkpoint.checkpoint();
        assert!(log.size() >= head.size(), "{label}: the log shrank");
        let entries = log
            .read_entries(store, 0..log.size())
            .unwrap_or_else(|e| panic!("{label}: entries: {e}"));
        assert!(
            entries.len() >= self.entries.len(),
            "{label}: {} entries, {} before",
            entries.len(),
            self.entries.len()
        );
        for (position, (before, now)) in self.entries.iter().zip(&entries).enumerate() {
            assert_eq!(before, now, "{label}: entry {position} changed or was lost");
        }
        let mut executions = BTreeSet::new();
        let mut fresh = MerkleTree::new();
        for (position, entry) in entries.iter().enumerate() {
            if let Some(record) = ExecutionEntry::read(entry) {
                assert_eq!(record.position, position as u64, "{label}: misplaced entry");
                assert!(
                    executions.insert(record.execution_id.clone()),
                    "{label}: {} recorded twice",
                    record.execution_id
                );
            } else {
                // Every other entry is a marks record (canonical JSON: `kind` sorts first), so
                // that the checks above cannot pass by reading no execution at all.
                assert!(
                    entry.starts_with(br#"{"kind":"marks","#),
                    "{label}: entry {position} is neither an execution nor a marks record: {}",
                    String::from_utf8_lossy(entry)
                );
            }
            fresh.push(entry);
        }
        assert_eq!(
            (fresh.root_at(head.size()).unwrap(), fresh.root()),
            (head.root(), log.root()),
            "{label}: the tree does not recompute"
        );
        for older in &self.checkpoints {
            let (old, new) = (older.checkpoint(), head);
            let proof = log
                .tree()
                .consistency_proof(old.size(), new.size())
                .unwrap();
            verify_consistency(old.size(), new.size(), &proof, old.root(), new.root())
                .unwrap_or_else(|e| {
                    panic!(
                        "{label}: checkpoint {} is not consistent with {}: {e}",
                        new.size(),
                        old.size()
                    )
                });
            checkpoint.check_extends(older, &proof).unwrap();
        }
        self.checkpoints.push(checkpoint);
        self.entries = entries;
    }
}
