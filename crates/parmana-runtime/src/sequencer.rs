//! The sequencer driver: one run integrates completed executions into the ledger in a batch (the store's `sequence`), then signs a checkpoint of the grown log with a `log` key and stores it; and the audit of the stored checkpoints that `ledger verify` runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use parmana_canon::merkle::leaf_hash;
use parmana_canon::{Digest, Timestamp};
use parmana_replay::{
    LedgerLog, LedgerReport, LedgerRow, ReplayError, ReplayStore, SequenceOutcome,
    StoredCheckpoint, WalkedLedger, ledger_log, walk_ledger_with,
};
use parmana_trust::{
    AttestationCheckKind, Checkpoint, LocalSigningKey, NoteKeyName, Signer, TrustError,
    VerifiedTrustHistory, VerifiedTrustRoot, VerifyOptions, cosign_note, sign_checkpoint,
    verify_attestations_in_history,
};

use crate::ExecutionError;

/// The log keys a sequencer run signs checkpoints with, and the trust root whose `log` role they
/// must hold.
#[derive(Clone, Copy)]
pub struct LogSigning<'a> {
    /// The trust root in force (its `log` role names the origin and the keys).
    pub trust_root: &'a VerifiedTrustRoot,
    /// The trust-root chain it ends (the attestations of the entries signed are verified
    /// against the version each was made under).
    pub history: &'a VerifiedTrustHistory,
    /// The clock's reading (it bounds the entries' `executed_at`).
    pub now: Timestamp,
    /// The release-manifest version in force. A marks record past the newest checkpoint that
    /// names a higher one, or a trust-root version above `trust_root`'s, records a raise no
    /// environment this signer knows made (a writer's record, or another server's newer
    /// environment: reload this one), and is not signed (`runtime.log_entry_unattested`).
    pub release_manifest: u64,
    /// Keys of that role, each of which signs every checkpoint: at least as many distinct
    /// ones as the role's threshold (one, for the usual role of threshold 1).
    pub signers: &'a [&'a dyn Signer],
    /// The largest checkpoint these keys signed, kept outside the store: with one, a log that
    /// does not extend it is never signed (`trust.tlog_inconsistent`).
    pub anchor: Option<&'a crate::LogAnchor>,
}

/// `keys` as the signers a [`LogSigning`] takes.
pub fn signers_of(keys: &[LocalSigningKey]) -> Vec<&dyn Signer> {
    keys.iter().map(|key| key as &dyn Signer).collect()
}

impl std::fmt::Debug for LogSigning<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigning")
            .field("trust_root", &self.trust_root.version())
            .field(
                "keys",
                &self
                    .signers
                    .iter()
                    .map(|signer| signer.key_id().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One integrated ledger record, as a sequencer run reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegratedEntry {
    /// Its ledger position (its leaf index in the log).
    pub position: u64,
    /// The execution it records.
    pub execution_id: String,
}

/// The ids of the executions a [`LogSequencer`]'s kept log has held — read from the ledger's
/// chained records, verified, which a writer of the store cannot edit unseen, not from the
/// executions' rows: shared, so that whoever holds a clone asks it without waiting for a run.
/// Ids only ever join it (a log kept again after a failure holds them all again).
#[derive(Debug, Clone, Default)]
pub struct ExecutedIds(
    Arc<RwLock<HashSet<Digest>>>,
    Arc<std::sync::OnceLock<String>>,
);

impl ExecutedIds {
    /// Records `what` as evidence that the store's rows were changed behind it (an id among
    /// these whose row is gone), the first time; whoever holds a clone sees it
    /// ([`evidence`](Self::evidence)).
    pub fn note_evidence(&self, what: impl Into<String>) {
        let _ = self.1.set(what.into());
    }

    /// The evidence recorded, if any.
    pub fn evidence(&self) -> Option<&str> {
        self.1.get().map(String::as_str)
    }

    /// Whether `execution_id` is among them.
    pub fn contains(&self, execution_id: &parmana_canon::ExecutionId) -> bool {
        let key = parmana_replay::execution_key(execution_id);
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&key)
    }

    /// Adds `keys`: room for all of them made at once, then inserted [`NOTE_BATCH`] at a time,
    /// the lock let go between batches — a whole ledger's ids (millions, at a first read or
    /// after a fork) do not hold every claim's [`contains`](Self::contains) for the whole
    /// insert.
    fn note<'a>(&self, keys: impl IntoIterator<Item = &'a Digest>) {
        let mut keys = keys.into_iter().peekable();
        let write = || {
            self.0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        {
            // Room for those not held yet (a whole ledger after a fork is mostly ids held
            // already: no rehash of them all, no set twice the size).
            let mut set = write();
            let new = keys.size_hint().0.saturating_sub(set.len());
            set.reserve(new);
        }
        while keys.peek().is_some() {
            write().extend(keys.by_ref().take(NOTE_BATCH).copied());
        }
    }
}

/// How many ids [`ExecutedIds`] inserts under one hold of its lock.
const NOTE_BATCH: usize = 4_096;

/// What one sequencer run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceReport {
    /// The records this run appended, in position order.
    pub integrated: Vec<IntegratedEntry>,
    /// Another integrator held the store's lock: this run appended nothing and signed nothing.
    pub busy: bool,
    /// The size of the log as this run knows it (when busy, the kept log's, caught up).
    pub size: u64,
    /// The checkpoint this run signed and stored, if the log grew past the newest stored one.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// The runtime's sequencer: runs the store's batched sequencer and signs checkpoints. It keeps
/// the log it built (the Merkle tree over the ledger) between runs and extends it with the
/// records each run appends, so a run costs the batch, not the ledger; when the store holds
/// records it did not see (another integrator's, or a raise's marks record) it reads the
/// records after its last one ([`LedgerLog::catch_up`]), each checked. Only when the store's
/// records no longer extend its log does it read the whole ledger again, verified, and it takes
/// that ledger only if it extends the log it kept (`trust.tlog_inconsistent` otherwise, run after
/// run: a ledger rewritten or cut under a running driver is never signed).
///
/// Safe to share between threads; one run at a time per driver (and per store: the store's
/// integrator lock).
#[derive(Debug)]
pub struct LogSequencer {
    batch: usize,
    log: Mutex<Option<LedgerLog>>,
    /// The ids the kept log has held ([`ExecutedIds`]): what
    /// [`holds_execution`](LogSequencer::holds_execution) answers from, without waiting for a
    /// run (which holds `log` through its store I/O).
    executed: ExecutedIds,
    /// What showed the store cut, replaced or rewound under this driver, once something did
    /// ([`LogSequencer::store_rewound`]).
    rewound: std::sync::OnceLock<String>,
    /// The root of the kept log at each of its latest sizes (one entry a size, at most
    /// [`PUBLISHED_SIZES`], the last one its size after its latest read or run): what
    /// [`check_agrees`](LogSequencer::check_agrees) compares with, without waiting for a run
    /// (which holds `log` through its store calls).
    published: Mutex<std::collections::VecDeque<(u64, Digest)>>,
    /// How many sizes `published` keeps ([`PUBLISHED_SIZES`] unless set).
    kept_sizes: u64,
    /// The largest checkpoint signed through this driver — by its runs, and by
    /// [`sign_snapshot`](LogSequencer::sign_snapshot) for the readers of the same store (a
    /// server's log routes) —: its size and root. An anchor in memory, for the process: no tree
    /// that does not extend it is signed through this driver, with or without a [`LogAnchor`]
    /// file.
    ///
    /// [`LogAnchor`]: crate::LogAnchor
    signed: Mutex<Option<(u64, Digest)>>,
}

/// How many of its latest sizes a [`LogSequencer`] keeps the root of for
/// [`check_agrees`](LogSequencer::check_agrees) (40 bytes a size, 2.5 MiB in all): a reader's
/// snapshot is seldom further behind (one older is compared with the kept log, after the run in
/// progress).
const PUBLISHED_SIZES: u64 = 65_536;

impl Default for LogSequencer {
    fn default() -> Self {
        Self::new(parmana_replay::DEFAULT_SEQUENCE_BATCH)
    }
}

impl LogSequencer {
    /// A driver integrating at most `batch` executions per run (at least 1).
    pub fn new(batch: usize) -> Self {
        Self {
            batch: batch.max(1),
            log: Mutex::new(None),
            executed: ExecutedIds::default(),
            rewound: std::sync::OnceLock::new(),
            published: Mutex::new(std::collections::VecDeque::new()),
            kept_sizes: PUBLISHED_SIZES,
            signed: Mutex::new(None),
        }
    }

    /// This driver, keeping the root of its latest `sizes` sizes (at least 1) for
    /// [`check_agrees`](Self::check_agrees) instead of 65,536: a snapshot further behind is
    /// compared with the kept log itself.
    #[must_use]
    pub fn keeping_roots_of(mut self, sizes: u64) -> Self {
        self.kept_sizes = sizes.max(1);
        self
    }

    /// Notes the root of `log` at each size it reached since the last one noted (the latest
    /// [`PUBLISHED_SIZES`] of them), for [`check_agrees`](Self::check_agrees): a run costs a
    /// root per record it took.
    fn publish(&self, log: &LedgerLog) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = log.size();
        let from = published.back().map_or(1, |(size, _)| size + 1);
        let from = from.max(end.saturating_sub(self.kept_sizes - 1)).max(1);
        for size in from..=end {
            if let Ok(root) = log.tree().root_at(size) {
                if published.len() as u64 >= self.kept_sizes {
                    published.pop_front();
                }
                published.push_back((size, root));
            }
        }
    }

    /// Why the store is known to be cut, replaced or rewound under this driver, if a run showed
    /// it: the store did not reach the log anchor at the driver's first run, or, the store no
    /// longer holding the log the driver kept (its last record gone or changed, its chain
    /// broken), the store's whole ledger did not extend that log. Evidence only — a run refused
    /// because another signer got ahead (a larger checkpoint stored or anchored between two
    /// reads: `trust.tlog_inconsistent`, caught up at the next run) records nothing. A server
    /// stops executing on such a store ([`Runtime::refuse_store`](crate::Runtime::refuse_store)).
    pub fn store_rewound(&self) -> Option<&str> {
        self.rewound.get().map(String::as_str)
    }

    /// Refuses `snapshot` — the log as another reader of the store read it (a server's log
    /// routes) — where it disagrees with the log this driver keeps at the smaller of the two
    /// sizes (`trust.tlog_inconsistent`, recorded as evidence: two reads of an append-only
    /// ledger that fork show it rewritten between them, [`store_rewound`](Self::store_rewound)).
    /// For a signer of `snapshot`'s checkpoint, so that no key signs a tree that contradicts
    /// the one this driver signs and stores. Compared without waiting for a run in progress, at
    /// the smaller of the two sizes, from the roots the kept log had at each of its latest sizes;
    /// records a run in progress has appended but not yet taken are compared by that run (which
    /// checks that the store's records at its positions are the ones it appended). A snapshot
    /// older than those sizes is compared with the kept log when no run holds it. Where no
    /// comparison can be made (a run holds the kept log, or a run that panicked dropped it),
    /// refused, not as evidence (`trust.tlog_inconsistent`: read again; `store_rewound` stays
    /// unset). Nothing to compare before the log is first read.
    pub fn check_agrees(&self, snapshot: &crate::LogSnapshot) -> Result<(), ExecutionError> {
        let size = snapshot.size();
        // Not evidence: a comparison that could not be made (read again).
        let not_compared = |kept_from: u64| -> ExecutionError {
            TrustError::TlogInconsistent {
                old_size: size,
                new_size: kept_from,
                reason: parmana_canon::merkle::MerkleError::SizeOutOfRange {
                    size: kept_from,
                    limit: size,
                },
            }
            .into()
        };
        let (root, at) = {
            let published = self
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (Some(&(first, _)), Some(&(last, last_root))) =
                (published.front(), published.back())
            else {
                return Ok(());
            };
            if size == 0 {
                return Ok(());
            }
            if size > last {
                (last_root, last)
            } else if size >= first {
                let index = usize::try_from(size - first).unwrap_or(usize::MAX);
                match published.get(index) {
                    Some(&(at, root)) if at == size => (root, size),
                    _ => return Err(not_compared(first)),
                }
            } else {
                drop(published);
                // Older than every size kept (rare: a reader more than that many records
                // behind): the kept log itself, when no run holds it (not waited for: a
                // backlog's runs follow one another; read again).
                let Ok(kept) = self.log.try_lock() else {
                    return Err(not_compared(first));
                };
                match kept.as_ref().and_then(|log| log.tree().root_at(size).ok()) {
                    Some(root) => (root, size),
                    None => return Err(not_compared(first)),
                }
            }
        };
        if snapshot.root_at(at) == Some(root) {
            return Ok(());
        }
        let error = TrustError::TlogInconsistent {
            old_size: at,
            new_size: size,
            reason: parmana_canon::merkle::MerkleError::RootMismatch,
        };
        Err(self.rewound_by(error.into()))
    }

    /// The checkpoint of `snapshot` — the log as another reader of this driver's store read it
    /// (a server's log routes) — signed as [`LogSnapshot::checkpoint`] signs it, once it agrees
    /// with the kept log ([`check_agrees`](Self::check_agrees)) and extends the largest
    /// checkpoint signed through this driver, by its runs or by this (recorded here before the
    /// signature). So the one key never signs two trees that fork, though the snapshot may run
    /// ahead of the kept log: a writer of the store that planted records for a reader to sign,
    /// and cut them before the next run integrated others at their positions, gets that run
    /// refused, not a second root at that size. A tree with another root at a size signed
    /// before (or at the size its anchor records) is evidence
    /// ([`store_rewound`](Self::store_rewound)); one smaller than what was signed is refused
    /// (`trust.tlog_inconsistent`), not evidence: read again. Nothing is signed once the
    /// driver holds evidence (`runtime.store_rewound`).
    ///
    /// [`LogSnapshot::checkpoint`]: crate::LogSnapshot::checkpoint
    pub fn sign_snapshot(
        &self,
        snapshot: &crate::LogSnapshot,
        store: &dyn ReplayStore,
        signing: LogSigning<'_>,
    ) -> Result<String, ExecutionError> {
        self.sign_snapshot_checkpoint(snapshot, store, signing)
            .map(|stored| stored.note)
    }

    /// [`sign_snapshot`](Self::sign_snapshot), the checkpoint signed as a store keeps it.
    pub(crate) fn sign_snapshot_checkpoint(
        &self,
        snapshot: &crate::LogSnapshot,
        store: &dyn ReplayStore,
        signing: LogSigning<'_>,
    ) -> Result<StoredCheckpoint, ExecutionError> {
        if let Some(reason) = self.store_rewound() {
            return Err(ExecutionError::StoreRewound {
                reason: reason.to_owned(),
            });
        }
        check_log_signer(signing)?;
        self.check_agrees(snapshot)?;
        sign_stored_checkpoint(store, snapshot.ledger_log(), signing, Some(&self.signed))
            .map_err(|error| self.rewound_if_forked(error))
    }

    /// `error`, recorded as evidence when it shows a tree with another root at the size of a
    /// checkpoint signed before (stored, anchored or signed through this driver): the ledger
    /// forked under what the key signed. (One larger than the log is another signer ahead,
    /// caught up at the next run: not evidence.)
    fn rewound_if_forked(&self, error: ExecutionError) -> ExecutionError {
        if matches!(
            error,
            ExecutionError::Trust(TrustError::TlogInconsistent {
                reason: parmana_canon::merkle::MerkleError::RootMismatch,
                ..
            })
        ) {
            self.rewound_by(error)
        } else {
            error
        }
    }

    /// Records `error` as evidence that the store was cut under the log, and returns it.
    fn rewound_by(&self, error: ExecutionError) -> ExecutionError {
        let _ = self.rewound.set(format!("{} ({})", error, error.code()));
        error
    }

    /// Whether the log this driver keeps has held a record of `execution_id` — read from the
    /// ledger's chained records, which a writer of the store cannot edit unseen, not from the
    /// execution's row: an id whose row was deleted is still known here as executed. `false`
    /// before the log is first read (`load`, or a first run). Never waits for a run: a run adds the ids it
    /// took once its log is settled.
    pub fn holds_execution(&self, execution_id: &parmana_canon::ExecutionId) -> bool {
        self.executed.contains(execution_id)
    }

    /// This driver, noting the ids its kept log holds in `executed` (shared with whoever asks
    /// them: a store layer that refuses to claim them again, say).
    #[must_use]
    pub fn sharing(mut self, executed: ExecutedIds) -> Self {
        self.executed = executed;
        self
    }

    /// Adds `keys` to the ids known as executed.
    fn note_executed<'a>(&self, keys: impl IntoIterator<Item = &'a Digest>) {
        self.executed.note(keys);
    }

    /// Reads the log to keep, where none is kept yet, without integrating or signing anything:
    /// what a server does before it is ready, so that the ids the ledger records are known
    /// ([`holds_execution`](Self::holds_execution)) before its first execution. The same
    /// checks as a first run: the store must reach what `anchor` records, its whole ledger must
    /// be intact and hold the anchored root (each otherwise recorded as evidence,
    /// [`store_rewound`](Self::store_rewound)). Nothing is read when a log is kept already.
    pub fn load(
        &self,
        store: &dyn ReplayStore,
        anchor: Option<&crate::LogAnchor>,
    ) -> Result<(), ExecutionError> {
        let mut cached = self.lock();
        if cached.is_none() {
            self.check_anchor_reached(store, anchor)?;
            let log = self.read_whole(store, anchor)?;
            self.publish(&log);
            *cached = Some(log);
        }
        Ok(())
    }

    /// [`load`](Self::load) for a server's start with a log anchor, before it recovers leftovers
    /// or is ready: the store must extend the checkpoint `anchor` records — reach its size, and
    /// hold its root there — or it is refused with `runtime.store_rewound` (cut, replaced or
    /// rewound while no server kept its log); the whole ledger read for that check is the log
    /// kept (its ids noted), not read a second time. A store that does not extend it, or whose
    /// ledger is broken, is recorded as evidence ([`store_rewound`](Self::store_rewound)), as at
    /// a first run; the store failing to answer is returned as it is. Where a log is kept
    /// already, only the check is made.
    pub fn load_extending(
        &self,
        store: &dyn ReplayStore,
        anchor: &crate::LogAnchor,
    ) -> Result<(), ExecutionError> {
        let mut cached = self.lock();
        let log = anchor
            .read_extending_log(store)
            .map_err(|error| match error {
                ExecutionError::StoreRewound { .. }
                | ExecutionError::Store(ReplayError::LedgerBroken(_)) => self.rewound_by(error),
                other => other,
            })?;
        if cached.is_none() {
            self.note_executed(log.execution_keys());
            self.publish(&log);
            *cached = Some(log);
        }
        Ok(())
    }

    /// Refuses a `store` short of what `anchor` records ([`LogAnchor::check_store_reaches`]),
    /// recording that as evidence (the store failing to answer is not).
    ///
    /// [`LogAnchor::check_store_reaches`]: crate::LogAnchor::check_store_reaches
    fn check_anchor_reached(
        &self,
        store: &dyn ReplayStore,
        anchor: Option<&crate::LogAnchor>,
    ) -> Result<(), ExecutionError> {
        let Some(anchor) = anchor else {
            return Ok(());
        };
        anchor.check_store_reaches(store).map_err(|error| {
            if matches!(error, ExecutionError::StoreRewound { .. }) {
                self.rewound_by(error)
            } else {
                error
            }
        })
    }

    /// The whole ledger of `store`, read and verified where no log is kept yet — and, before
    /// anything is signed or stored, compared with the anchored checkpoint where it reaches that
    /// size: another root there is a store cut and grown again (its cut ids would execute
    /// again), seen at once rather than when this driver next signs a larger log. A ledger
    /// already broken (rows deleted or rewritten while no log was kept) is evidence too,
    /// recorded: not a failure to retry run after run. Its ids are noted as executed.
    fn read_whole(
        &self,
        store: &dyn ReplayStore,
        anchor: Option<&crate::LogAnchor>,
    ) -> Result<LedgerLog, ExecutionError> {
        // The anchor as it stands before the read: one this process advances meanwhile (a
        // checkpoint signed during the read) is not held against the ledger read before it.
        let anchored = anchor.and_then(crate::LogAnchor::recorded);
        let whole = ledger_log(store).map_err(|error| match error {
            ReplayError::LedgerBroken(_) => self.rewound_by(error.into()),
            other => other.into(),
        })?;
        self.note_executed(whole.execution_keys());
        // Read again after a run that panicked (the kept log was dropped): it must extend what
        // this driver kept before, as a caught-up log must.
        let kept_before = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .back()
            .copied();
        if let Some((size, root)) = kept_before
            && whole.tree().root_at(size).ok() != Some(root)
        {
            return Err(self.rewound_by(
                TrustError::TlogInconsistent {
                    old_size: size,
                    new_size: whole.size(),
                    reason: parmana_canon::merkle::MerkleError::RootMismatch,
                }
                .into(),
            ));
        }
        // Shorter than the anchored checkpoint: cut (between the check that it reached it and
        // this read, too).
        if let Some((size, _)) = anchored
            && size > whole.size()
        {
            return Err(self.rewound_by(ExecutionError::StoreRewound {
                reason: format!(
                    "its ledger holds {} records, fewer than the {size} of the checkpoint the log \
                     anchor records",
                    whole.size()
                ),
            }));
        }
        if let Some((size, root)) = anchored
            && whole.tree().root_at(size).ok() != Some(root)
        {
            return Err(self.rewound_by(
                TrustError::TlogInconsistent {
                    old_size: size,
                    new_size: whole.size(),
                    reason: parmana_canon::merkle::MerkleError::RootMismatch,
                }
                .into(),
            ));
        }
        Ok(whole)
    }

    /// The kept log; after a run that panicked, none (it is rebuilt from the store).
    fn lock(&self) -> MutexGuard<'_, Option<LedgerLog>> {
        self.log.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            // Rebuilt from the store from now on: the lock is no longer poisoned.
            self.log.clear_poison();
            guard
        })
    }

    /// One run: integrates at most the batch size of completed executions into `store`'s
    /// ledger; then, with `signing`, signs a checkpoint of the log when it grew past the newest
    /// stored checkpoint — after checking that that checkpoint commits to the log
    /// (`trust.tlog_inconsistent` otherwise: a log never signs a checkpoint inconsistent with
    /// one it signed before) — and stores it. A key without the `log` role is refused
    /// (`trust.key_lacks_role`) before anything is integrated.
    pub fn run(
        &self,
        store: &dyn ReplayStore,
        signing: Option<LogSigning<'_>>,
    ) -> Result<SequenceReport, ExecutionError> {
        self.run_anchored(store, signing, signing.and_then(|signing| signing.anchor))
    }

    /// [`run`](Self::run), with the first run's checks against `anchor` — the store reaches the
    /// anchored checkpoint, and holds its root there — made whether or not anything is signed
    /// (`signing`'s own anchor, where it gives one, is `anchor`): for a host with a log anchor
    /// but no log key (`parmana log sequence` without `--key`, `execute` after its executions),
    /// which must not integrate into a store cut or rewritten under the anchored log either.
    pub fn run_anchored(
        &self,
        store: &dyn ReplayStore,
        signing: Option<LogSigning<'_>>,
        anchor: Option<&crate::LogAnchor>,
    ) -> Result<SequenceReport, ExecutionError> {
        if let Some(signing) = signing {
            check_log_signer(signing)?;
        }
        let mut cached = self.lock();
        // No log kept yet (the first run, or one that panicked): before anything is integrated,
        // the store must reach what the log anchor records (a store cut, replaced or rewound
        // while no server kept its log is not written to).
        let anchor = signing.and_then(|signing| signing.anchor).or(anchor);
        if cached.is_none() {
            self.check_anchor_reached(store, anchor)?;
            // With an anchor, the whole ledger is read and compared with the anchored root
            // before anything is integrated: a store cut and grown again past the anchored size
            // (another root there) is not written to.
            if anchor.is_some() {
                let log = self.read_whole(store, anchor)?;
                self.publish(&log);
                *cached = Some(log);
            }
        }
        // Another integrator holding the ledger (PostgreSQL) integrates nothing here, but the
        // kept log is still followed and checked below: a holder of that lock — any role that
        // may connect can take it — must not turn off what sees a store cut or rewritten.
        let (rows, busy) = match store.sequence(self.batch)? {
            SequenceOutcome::Busy => (Vec::new(), true),
            SequenceOutcome::Integrated(rows) => (rows, false),
        };
        let integrated = rows
            .iter()
            .filter_map(|row| {
                row.execution_id.as_ref().map(|id| IntegratedEntry {
                    position: row.position,
                    execution_id: id.clone(),
                })
            })
            .collect();
        let log = match cached.take() {
            // No log kept yet: read the whole ledger — and, before anything is signed or
            // stored, compare it with the anchored checkpoint where it reaches that size: another
            // root there is a store cut and grown again (its cut ids would execute again), seen
            // at once rather than when this driver next signs a larger log.
            None => self.read_whole(store, anchor)?,
            Some(mut log) => match follow_noting(&mut log, store, rows, self) {
                Ok(true) => log,
                // The store's ledger no longer extends the kept log: read it whole, and take it
                // only if it extends the kept log (a log never forks or shrinks); otherwise keep
                // the kept one and refuse, run after run.
                Ok(false) => match ledger_log(store)
                    .map_err(ExecutionError::from)
                    .and_then(|whole| check_log_extends(&log, &whole).map(|()| whole))
                {
                    Ok(whole) => {
                        self.note_executed(whole.execution_keys());
                        whole
                    }
                    // The store no longer holds the log kept, and its whole ledger is broken or
                    // does not extend it: cut, replaced or rewritten — evidence, recorded.
                    // (The store failing to answer is not.)
                    Err(error)
                        if error.class() != crate::ErrorClass::Store
                            || matches!(
                                error,
                                ExecutionError::Store(ReplayError::LedgerBroken(_))
                            ) =>
                    {
                        *cached = Some(log);
                        return Err(self.rewound_by(error));
                    }
                    Err(error) => {
                        *cached = Some(log);
                        return Err(error);
                    }
                },
                Err(error) => {
                    *cached = Some(log);
                    return Err(error.into());
                }
            },
        };
        let log = cached.insert(log);
        self.publish(log);
        let checkpoint = match signing.filter(|_| !busy) {
            // A checkpoint signed before (stored, recorded by the anchor, or signed through this
            // driver) of a size this log holds, with another root there: the ledger forked
            // under what the key signed — evidence of a store cut and grown again, or rewritten.
            Some(signing) => sign_if_grown(store, log, signing, &self.signed)
                .map_err(|error| self.rewound_if_forked(error))?,
            None => None,
        };
        Ok(SequenceReport {
            integrated,
            busy,
            size: log.size(),
            checkpoint,
        })
    }

    /// Runs until nothing is waiting (or another integrator holds the lock): the reports of
    /// every run merged, with the last checkpoint signed.
    pub fn run_all(
        &self,
        store: &dyn ReplayStore,
        signing: Option<LogSigning<'_>>,
    ) -> Result<SequenceReport, ExecutionError> {
        self.run_all_anchored(store, signing, signing.and_then(|signing| signing.anchor))
    }

    /// [`run_all`](Self::run_all), each run [`run_anchored`](Self::run_anchored) on `anchor`.
    pub fn run_all_anchored(
        &self,
        store: &dyn ReplayStore,
        signing: Option<LogSigning<'_>>,
        anchor: Option<&crate::LogAnchor>,
    ) -> Result<SequenceReport, ExecutionError> {
        let mut total = SequenceReport::default();
        loop {
            let report = self.run_anchored(store, signing, anchor)?;
            let done = report.busy || report.integrated.is_empty();
            total.integrated.extend(report.integrated);
            total.busy = report.busy;
            total.size = total.size.max(report.size);
            if report.checkpoint.is_some() {
                total.checkpoint = report.checkpoint;
            }
            if done {
                return Ok(total);
            }
        }
    }
}

/// [`follow`], noting in `driver` the executions the kept log gains (whatever follow answers:
/// what it took stays in the log kept, or in the whole ledger that replaces it).
fn follow_noting(
    log: &mut LedgerLog,
    store: &dyn ReplayStore,
    rows: Vec<LedgerRow>,
    driver: &LogSequencer,
) -> Result<bool, ReplayError> {
    let mut noted = Vec::new();
    let followed = follow(log, store, rows, &mut noted);
    driver.note_executed(&noted);
    followed
}

/// Brings the kept `log` up to `store`'s ledger after a run that appended `rows`: `Ok(true)`
/// when it now holds them and every record before them. The run's records extend it directly;
/// when records this driver did not see come first (another integrator's, a raise's marks
/// record), or the run appended nothing (another integrator may have), it reads the records
/// after its last one ([`LedgerLog::catch_up`]) and then checks that this run's records are the
/// ones at their positions. `Ok(false)` when the store's records no longer extend the log (the
/// ledger was rewritten or cut under it); store failures are errors.
fn follow(
    log: &mut LedgerLog,
    store: &dyn ReplayStore,
    rows: Vec<LedgerRow>,
    noted: &mut Vec<Digest>,
) -> Result<bool, ReplayError> {
    let appended: Vec<(u64, Digest)> = rows
        .iter()
        .map(|row| (row.position, leaf_hash(&row.record)))
        .collect();
    if !appended.is_empty() && log.extend_noting(rows, Some(noted)).is_ok() {
        return Ok(true);
    }
    match log.catch_up_noting(store, noted) {
        Ok(()) if appended.is_empty() => still_holds_last(log, store),
        Ok(()) => Ok(appended
            .iter()
            .all(|(position, leaf)| log.tree().stored_hash(0, *position) == Some(*leaf))),
        Err(ReplayError::LedgerBroken(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether `store` still holds the last record of `log`, the same: a catch-up that finds nothing
/// after the log does not tell a quiet store from one cut below it (its tail deleted, the file
/// replaced), so a run that appends nothing reads that one record. A store cut and grown again
/// breaks the chain at the catch-up instead.
fn still_holds_last(log: &LedgerLog, store: &dyn ReplayStore) -> Result<bool, ReplayError> {
    let Some(last) = log.size().checked_sub(1) else {
        return Ok(true);
    };
    Ok(match store.ledger_records(last, 1)?.first() {
        Some(record) => {
            record.position == last
                && log.tree().stored_hash(0, last) == Some(leaf_hash(&record.record))
        }
        None => false,
    })
}

/// Refuses `new` unless it extends `old` — the same entries at every position `old` holds
/// (`trust.tlog_inconsistent`): a log never switches to a ledger that rewrote or cut what it
/// held.
pub(crate) fn check_log_extends(old: &LedgerLog, new: &LedgerLog) -> Result<(), ExecutionError> {
    let inconsistent = |reason| TrustError::TlogInconsistent {
        old_size: old.size(),
        new_size: new.size(),
        reason,
    };
    let root = new.tree().root_at(old.size()).map_err(inconsistent)?;
    if root != old.root() {
        return Err(inconsistent(parmana_canon::merkle::MerkleError::RootMismatch).into());
    }
    Ok(())
}

/// Refuses signers that cannot sign checkpoints `signing.trust_root`'s log accepts: a key that
/// is not one of its `log` role's (`trust.key_lacks_role`), or fewer distinct keys than the
/// role's threshold (`trust.threshold_not_met`); `runtime.no_transparency_log` when it names no
/// log — for callers that check the configured log keys before they execute anything.
pub fn check_log_signer(signing: LogSigning<'_>) -> Result<(), ExecutionError> {
    let role = crate::log::log_role(signing.trust_root)?;
    let mut distinct = Vec::with_capacity(signing.signers.len());
    for signer in signing.signers {
        let keyid = signer.key_id();
        if !role.holds(&keyid) {
            return Err(TrustError::KeyLacksRole {
                document: "checkpoint".to_owned(),
                keyid: keyid.to_string(),
                role: "log".to_owned(),
            }
            .into());
        }
        if !distinct.contains(&keyid) {
            distinct.push(keyid);
        }
    }
    let found = u64::try_from(distinct.len()).unwrap_or(u64::MAX);
    if found < role.threshold() {
        return Err(TrustError::ThresholdNotMet {
            document: "checkpoint".to_owned(),
            role: "log".to_owned(),
            threshold: role.threshold(),
            found,
        }
        .into());
    }
    Ok(())
}

/// Signs and stores a checkpoint of `log` when it is larger than the newest stored one, which
/// must commit to it.
fn sign_if_grown(
    store: &dyn ReplayStore,
    log: &LedgerLog,
    signing: LogSigning<'_>,
    signed: &Mutex<Option<(u64, Digest)>>,
) -> Result<Option<StoredCheckpoint>, ExecutionError> {
    // A reader of the store signed a larger tree through the driver (a server's log routes,
    // whose snapshot ran ahead of the kept log): nothing to sign until the kept log reaches it
    // — and at that size it must hold that root (checked when signing).
    if signed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some_and(|(size, _)| size > log.size())
    {
        return Ok(None);
    }
    let latest = store.latest_checkpoint()?;
    // Another signer of the same log (another server sharing the store) stored a checkpoint
    // past what this run's log holds, between its integration and now: nothing to sign here —
    // the next run catches up — once the note shows a key of the log signed it (a writer's
    // checkpoint stops the signing: `runtime.stored_checkpoint_invalid`).
    if let Some(latest) = &latest
        && latest.size > log.size()
        && !store.ledger_records(log.size(), 1)?.is_empty()
    {
        check_stored_note(latest, signing.history)?;
        return Ok(None);
    }
    // (A store that holds no more records than this log, under a checkpoint of more, was cut:
    // refused below, as every checkpoint that does not commit to the log is.)
    // Only a checkpoint a key of the log signed counts (a writer's row is
    // `runtime.stored_checkpoint_invalid`, never taken for a fork of the log).
    if let Some(latest) = &latest {
        check_stored_note(latest, signing.history)?;
        crate::log::check_commits(log, latest)?;
    }
    let newest_size = latest.map_or(0, |latest| latest.size);
    if log.size() <= newest_size {
        return Ok(None);
    }
    let stored = match sign_stored_checkpoint(store, log, signing, Some(signed)) {
        // The routes signed a larger tree through the driver while this run verified its
        // entries: as above, nothing to sign until the kept log reaches it (the run's report,
        // what it integrated, stands).
        Err(ExecutionError::Trust(TrustError::TlogInconsistent {
            reason: parmana_canon::merkle::MerkleError::SizeOutOfRange { .. },
            ..
        })) if signed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|(size, _)| size > log.size()) =>
        {
            return Ok(None);
        }
        signed => signed?,
    };
    store.store_checkpoint(&stored)?;
    Ok(Some(stored))
}

/// The checkpoint of `log` as it is now, signed with `signing` — once every entry it holds past
/// the newest checkpoint the log's keys signed is an attested execution
/// ([`check_entries_attested`]), `log` extends the checkpoint of every revocation the trust-root
/// chain lists for its origin ([`check_extends_revocations`]), the largest checkpoint `signed`
/// records (the driver's, recorded in memory: [`check_and_advance_signed`]) and the anchor's.
pub(crate) fn sign_stored_checkpoint(
    store: &dyn ReplayStore,
    log: &LedgerLog,
    signing: LogSigning<'_>,
    signed: Option<&Mutex<Option<(u64, Digest)>>>,
) -> Result<StoredCheckpoint, ExecutionError> {
    let role = crate::log::log_role(signing.trust_root)?;
    check_entries_attested(store, log, signing)?;
    check_extends_revocations(signing.history, role.origin(), log)?;
    let checkpoint = Checkpoint::new(role.origin().as_str(), log.size(), log.root())?;
    // Checked and recorded last before the signature (a signature that then fails leaves them
    // ahead, which only refuses more).
    if let Some(signed) = signed {
        check_and_advance_signed(signed, log)?;
    }
    if let Some(anchor) = signing.anchor {
        anchor.check_and_advance(log)?;
    }
    let note = sign_with_every_key(&checkpoint, role.origin(), signing.signers)?;
    Ok(StoredCheckpoint {
        size: log.size(),
        root: log.root(),
        note,
    })
}

/// Refuses `log` unless it extends the checkpoint of every revocation a version of `history`
/// lists for the log `origin` (`trust.tlog_inconsistent`: another root at that size, or a
/// smaller log). A revocation's checkpoint is signed into the trust root, off the store: a log
/// that does not extend it is not the log the revocation was written against, but one a writer
/// of the store rewrote — perhaps with entries the revoked key signed, back-dated before the
/// revocation's size, which a proof against a checkpoint of another size would present as
/// logged before it. Never signed, whatever the anchor or witnesses.
fn check_extends_revocations(
    history: &VerifiedTrustHistory,
    origin: &NoteKeyName,
    log: &LedgerLog,
) -> Result<(), ExecutionError> {
    let revocations = history
        .versions()
        .filter_map(parmana_trust::VerifiedTrustRoot::log)
        .flat_map(|role| role.revocations())
        .filter(|revocation| revocation.origin() == origin);
    for revocation in revocations {
        crate::anchor::grows_past(revocation.tree_size(), revocation.root_hash(), log)?;
    }
    Ok(())
}

/// Refuses `log` unless it extends the checkpoint `signed` records (`trust.tlog_inconsistent`:
/// another root at that size, or a smaller log), and records `log`'s size and root when it is
/// larger — under one hold of the lock, so that of two signers of trees that fork, one is
/// refused.
fn check_and_advance_signed(
    signed: &Mutex<Option<(u64, Digest)>>,
    log: &LedgerLog,
) -> Result<(), ExecutionError> {
    let mut signed = signed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((size, root)) = *signed
        && !crate::anchor::grows_past(size, root, log)?
    {
        return Ok(());
    }
    *signed = Some((log.size(), log.root()));
    Ok(())
}

/// `checkpoint` signed by each distinct key of `signers` in turn, as note key `name`: the first
/// signs, the others add their signatures (`cosign_note`; a key given twice signs once);
/// refused without any signer.
fn sign_with_every_key(
    checkpoint: &Checkpoint,
    name: &NoteKeyName,
    signers: &[&dyn Signer],
) -> Result<String, TrustError> {
    let Some((first, others)) = signers.split_first() else {
        return Err(TrustError::ThresholdNotMet {
            document: "checkpoint".to_owned(),
            role: "log".to_owned(),
            threshold: 1,
            found: 0,
        });
    };
    let mut note = sign_checkpoint(checkpoint, name, *first)?;
    let mut signed = vec![first.key_id()];
    for signer in others {
        let keyid = signer.key_id();
        if !signed.contains(&keyid) {
            note = cosign_note(&note, name, *signer)?;
            signed.push(keyid);
        }
    }
    Ok(note)
}

/// How many entries are read and verified at once by [`check_entries_attested`].
const ATTESTED_BATCH: u64 = 256;

/// Where the entries not yet known to be attested begin: the size of the newest stored
/// checkpoint when its note verifies under the `log` role of the newest trust-root version (a
/// checkpoint the log's key in force signed covers entries checked when it was signed); 0 when
/// there is none, or when a key of an earlier version signed it (a key rotated out, perhaps
/// leaked, vouches for nothing: the log is checked whole once, and the key in force then signs).
/// A stored checkpoint whose note no version's key signed is a writer's
/// (`runtime.stored_checkpoint_invalid`); one past `log`, or that does not commit to it, is
/// `trust.tlog_inconsistent` (a reader behind the store catches up and asks again): nothing is
/// signed over either.
fn attested_prefix(
    store: &dyn ReplayStore,
    log: &LedgerLog,
    history: &VerifiedTrustHistory,
) -> Result<u64, ExecutionError> {
    let Some(latest) = store.latest_checkpoint()? else {
        return Ok(0);
    };
    check_stored_note(&latest, history)?;
    crate::log::check_commits(log, &latest)?;
    let by_key_in_force = history.newest().log().is_some_and(|role| {
        role.verifier()
            .log_only()
            .open_checkpoint(latest.note.as_bytes())
            .is_ok()
    });
    Ok(if by_key_in_force { latest.size } else { 0 })
}

/// Refuses to sign `log` unless every execution entry past [`attested_prefix`] records the
/// digest of an attestation that verifies — signed by the `attestation` role of the trust-root
/// version it names — for that execution id at that clock reading, and the store still holds
/// the entry the log holds at each position (`runtime.log_entry_unattested`). So a writer of
/// the store, holding no key, cannot have the log key sign an entry of its own (a completed row
/// it inserted, a record it appended). What an entry is — an execution's record or a marks
/// record, and which execution — is read from the record's bytes (bound to the leaf), never
/// from the store's columns. A revoked key does not refuse an entry here: that is a verifier's
/// judgement of the attestation against the entry's place in the log (`docs/trust-model.md`
/// §6.2), which the log must record to make; nor does current trust. Verified in batches of
/// [`ATTESTED_BATCH`] with Ed25519 batch verification.
pub(crate) fn check_entries_attested(
    store: &dyn ReplayStore,
    log: &LedgerLog,
    signing: LogSigning<'_>,
) -> Result<(), ExecutionError> {
    let unattested =
        |position: u64, reason: String| ExecutionError::LogEntryUnattested { position, reason };
    let options = VerifyOptions {
        now: signing.now,
        require_current_trust: false,
    };
    let mut position = attested_prefix(store, log, signing.history)?;
    while position < log.size() {
        let count =
            usize::try_from((log.size() - position).min(ATTESTED_BATCH)).unwrap_or(usize::MAX);
        let rows = store.ledger_rows(position, count)?;
        if rows.is_empty() {
            return Err(unattested(
                position,
                "the store no longer holds it".to_owned(),
            ));
        }
        // (position, execution id, clock reading recorded) of each execution entry, beside its
        // attestation.
        let mut expected: Vec<(u64, String, String)> = Vec::new();
        let mut envelopes: Vec<&[u8]> = Vec::new();
        for (offset, row) in rows.iter().enumerate() {
            let at = position + u64::try_from(offset).unwrap_or(u64::MAX);
            if row.position != at || log.tree().stored_hash(0, at) != Some(leaf_hash(&row.record)) {
                return Err(unattested(
                    at,
                    "the store holds another entry there than the log".to_owned(),
                ));
            }
            let record = parmana_canon::parse_strict(&row.record)
                .map_err(|e| unattested(at, format!("the record is unreadable: {e}")))?;
            // A marks record (it names no execution): well-formed and never lowered, as the log
            // checked it when it took it, and no higher than the versions this signer holds.
            if record.get("kind").is_some() {
                check_marks_record(&record, signing).map_err(|why| unattested(at, why))?;
                continue;
            }
            let text = |member: &str| record.get(member).and_then(|v| v.as_str());
            let execution_id = text("execution_id")
                .ok_or_else(|| unattested(at, "the record names no execution".to_owned()))?;
            if row.execution_id.as_deref() != Some(execution_id) {
                return Err(unattested(
                    at,
                    "the store files it under another execution than its record names".to_owned(),
                ));
            }
            let attestation = row
                .attestation
                .as_deref()
                .ok_or_else(|| unattested(at, "no attestation is stored for it".to_owned()))?;
            if text("attestation_digest") != Some(Digest::of(attestation).to_string().as_str()) {
                return Err(unattested(
                    at,
                    "the stored attestation is not the one it records".to_owned(),
                ));
            }

            expected.push((
                at,
                execution_id.to_owned(),
                text("claimed_at").unwrap_or("").to_owned(),
            ));
            envelopes.push(attestation);
        }
        let reports = verify_attestations_in_history(&envelopes, signing.history, options);
        for ((report, (at, execution_id, claimed_at)), envelope) in
            reports.iter().zip(&expected).zip(&envelopes)
        {
            // Every check but the two a verifier judges against the log and the present.
            let failed = if report.checks.is_empty() {
                Some("no check could be made".to_owned())
            } else {
                report
                    .failures()
                    .find(|check| {
                        !matches!(
                            check.check,
                            AttestationCheckKind::Revocation | AttestationCheckKind::CurrentTrust
                        )
                    })
                    .map(|check| format!("{} ({})", check.detail, check.code.unwrap_or("")))
            };
            if let Some(why) = failed {
                return Err(unattested(
                    *at,
                    format!("its attestation does not verify: {why}"),
                ));
            }
            let matches = report.predicate().is_some_and(|predicate| {
                predicate.execution_id.as_str() == execution_id.as_str()
                    && predicate.executed_at.to_string() == *claimed_at
            });
            if !matches {
                return Err(unattested(
                    *at,
                    "its attestation is another execution's".to_owned(),
                ));
            }
            // The entry binds these bytes; the client holds the runtime's spelling of them.
            if !parmana_trust::is_emitted_attestation_encoding(envelope) {
                return Err(unattested(
                    *at,
                    "its attestation is not spelled as a runtime writes it (canonical JSON, \
                     signatures in key-id order)"
                        .to_owned(),
                ));
            }
        }
        position += u64::try_from(rows.len()).unwrap_or(u64::MAX);
    }
    Ok(())
}

/// Refuses a marks record naming a trust-root version above the one `signing` has in force, or
/// a release-manifest version above its `release_manifest`: a raise no environment this signer
/// verified made.
fn check_marks_record(record: &serde_json::Value, signing: LogSigning<'_>) -> Result<(), String> {
    let version = |member: &str| {
        record
            .get(member)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("the marks record names no {member} version"))
    };
    for (member, known) in [
        ("trust_root", signing.trust_root.version()),
        ("release_manifest", signing.release_manifest),
    ] {
        let named = version(member)?;
        if named > known {
            return Err(format!(
                "the marks record names {member} version {named}, above the {known} this signer \
                 holds (a raise no environment it verified made; reload it if another server \
                 took a newer one)"
            ));
        }
    }
    Ok(())
}

/// What `ledger verify` found: the walk of the chain, the log's root, and the first stored
/// checkpoint that is not a valid signed checkpoint of this log.
#[derive(Debug)]
pub struct LedgerAudit {
    /// The walk of the chain (with the stored checkpoints' sizes and roots checked against the
    /// recomputed tree).
    pub report: LedgerReport,
    /// The transparency log's root over every record, when the chain is intact.
    pub log_root: Option<Digest>,
    /// The first stored checkpoint (by size) whose note does not verify, when the chain is intact.
    pub checkpoint_failure: Option<ExecutionError>,
}

impl LedgerAudit {
    /// Whether neither the chain nor any stored checkpoint is broken.
    pub fn is_intact(&self) -> bool {
        self.report.is_intact() && self.checkpoint_failure.is_none()
    }
}

/// Walks `store`'s ledger ([`walk_ledger_with`](parmana_replay::walk_ledger_with): the chain, and
/// the stored checkpoints' sizes and roots) and, in the same pass, checks the note of every
/// stored checkpoint it counted against the trust-root chain `history` gives: signed by a
/// threshold of the `log` role of some version of the chain (cosignatures are not required), of
/// that role's origin, and saying the size and root it is stored under
/// (`runtime.stored_checkpoint_invalid` otherwise; the first by size is reported). `history` is
/// called at most once, at the first checkpoint (a ledger with none needs no trust root), and may
/// give none (the notes are then not checked). The roots all being the recomputed tree's makes
/// every checkpoint consistent with every earlier one. Store failures, and a failure of
/// `history`, are errors.
pub fn audit_ledger(
    store: &dyn ReplayStore,
    history: impl FnOnce() -> Result<Option<VerifiedTrustHistory>, ExecutionError>,
) -> Result<LedgerAudit, ExecutionError> {
    let mut history = Some(history);
    let mut loaded: Option<VerifiedTrustHistory> = None;
    let mut load_error = None;
    let mut checkpoint_failure = None;
    let walked = walk_ledger_with(store, &mut |stored| {
        if let Some(load) = history.take() {
            match load() {
                Ok(found) => loaded = found,
                Err(error) => load_error = Some(error),
            }
        }
        if let (Some(history), None) = (&loaded, &checkpoint_failure) {
            checkpoint_failure = check_stored_note(stored, history).err();
        }
    })?;
    if let Some(error) = load_error {
        return Err(error);
    }
    let WalkedLedger { report, log } = walked;
    Ok(LedgerAudit {
        // A broken ledger is reported by its break alone.
        checkpoint_failure: checkpoint_failure.filter(|_| report.is_intact()),
        log_root: log.as_ref().map(LedgerLog::root),
        report,
    })
}

/// Checks one stored checkpoint's note against the log roles of `history`, newest first.
pub(crate) fn check_stored_note(
    stored: &StoredCheckpoint,
    history: &VerifiedTrustHistory,
) -> Result<(), ExecutionError> {
    let invalid = |reason: String| ExecutionError::StoredCheckpointInvalid {
        size: stored.size,
        reason,
    };
    let mut last_refusal = None;
    let roles = history
        .versions()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter_map(VerifiedTrustRoot::log);
    for role in roles {
        match role
            .verifier()
            .log_only()
            .open_checkpoint(stored.note.as_bytes())
        {
            Ok(verified) => {
                let head = verified.checkpoint();
                if (head.size(), head.root()) != (stored.size, stored.root) {
                    return Err(invalid(format!(
                        "its note says size {} and another root than it is stored under",
                        head.size()
                    )));
                }
                return Ok(());
            }
            Err(error) => last_refusal = Some(error),
        }
    }
    Err(invalid(match last_refusal {
        Some(error) => format!("[{}] {error}", error.code()),
        None => "the trust-root chain names no transparency log".to_owned(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_replay::MemoryReplayStore;

    use super::*;

    /// A memory store holding the sequenced executions `names`.
    fn ledger_of(names: &[&str]) -> MemoryReplayStore {
        let store = MemoryReplayStore::new();
        parmana_testkit::append_sequenced(&store, names.iter().map(|name| (*name).to_owned()))
            .unwrap();
        store
    }

    /// What a run's records tell a kept log: records that extend it are taken; records another
    /// integrator appended first are caught up, then this run's found in place; a run that
    /// appended nothing catches up; and a run whose records sit at positions the log already
    /// holds — a tail cut and sequenced again — is the same log only if they are the same
    /// records.
    #[test]
    fn a_run_follows_the_ledger_only_while_it_extends_the_kept_log() {
        let store = ledger_of(&["a", "b", "c", "d"]);
        let rows = store.ledger_snapshot().unwrap().rows;
        let kept_at = |size: usize| {
            let mut snapshot = store.ledger_snapshot().unwrap();
            snapshot.rows.truncate(size);
            snapshot.completed_executions = u64::try_from(size).unwrap();
            snapshot.unsequenced = 0;
            LedgerLog::from_snapshot(snapshot).unwrap()
        };
        let whole = ledger_log(&store).unwrap();
        for (size, run, extends) in [
            (2, 2..4, true), // this run's records extend the log
            (1, 3..4, true), // another integrator's (1..3) came first
            (4, 4..4, true), // idle, nothing new
            (2, 4..4, true), // idle, another integrator's came
            (4, 3..4, true), // this run re-appended the record the log holds
        ] {
            let mut log = kept_at(size);
            let appended = rows[run.clone()].to_vec();
            assert_eq!(
                follow(&mut log, &store, appended, &mut Vec::new()).unwrap(),
                extends,
                "kept {size}, run {run:?}"
            );
            assert_eq!(log, whole, "kept {size}, run {run:?}");
        }
        // The tail cut and sequenced again differently: another record at position 3.
        let other = ledger_of(&["a", "b", "c", "e"]);
        let mut log = kept_at(4);
        let resequenced = other.ledger_snapshot().unwrap().rows[3..].to_vec();
        assert!(!follow(&mut log, &store, resequenced, &mut Vec::new()).unwrap());
        assert_eq!(log, whole, "the kept log is left as it was");
    }

    /// Every id noted is known, in batches or not (more than a batch here), and the noting
    /// leaves none out at a batch's edge.
    #[test]
    fn every_noted_id_is_known_across_batches() {
        let ids: Vec<parmana_canon::ExecutionId> = (0..NOTE_BATCH * 2 + 3)
            .map(|n| parmana_canon::ExecutionId::parse(&format!("id-{n}")).unwrap())
            .collect();
        let keys: Vec<Digest> = ids.iter().map(parmana_replay::execution_key).collect();
        let executed = ExecutedIds::default();
        executed.note(&keys);
        assert!(ids.iter().all(|id| executed.contains(id)));
        assert!(!executed.contains(&parmana_canon::ExecutionId::parse("id-x").unwrap()));
        assert_eq!(executed.0.read().unwrap().len(), keys.len());
    }
}
