//! The log the `/log/*` and proof routes serve: one snapshot shared by every request, brought up to date at most once per sequencer cadence by reading only the records appended since, instead of the whole ledger read and its tree rebuilt for each request.
//!
//! A snapshot is fresh for `ttl` (the sequencer's cadence) and goes stale as soon as this
//! server's own sequencer integrates entries, so what this server sequences is served at once;
//! entries another server sequenced appear within one cadence (until then a proof answers
//! `runtime.not_yet_sequenced` with `Retry-After`, as it does for an entry not yet sequenced).
//!
//! The first request reads the whole ledger, verified ([`read_log`]). A stale snapshot then
//! catches up ([`LogSnapshot::catch_up`]): the records after its last one, each checked as the
//! sequencer checks the records it appends, so the log served is always a verified prefix of
//! the store's and only ever grows. It is extended in place when no request still holds it, in
//! a copy otherwise. Records that do not extend it (the store's ledger was rewritten under it)
//! make the next read a whole, verified one again. A catch-up that fails otherwise (the store
//! unreachable) answers that error and keeps the snapshot, still stale, to catch up later.
//! Requests arriving during a read wait for it and share it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parmana_runtime::replay::{ReplayError, ReplayStore};
use parmana_runtime::{ExecutionError, LogSnapshot, read_log};

/// The cached log (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogCache {
    ttl: Duration,
    slot: Mutex<Slot>,
}

/// The kept snapshot and until when it is fresh.
#[derive(Debug, Default)]
struct Slot {
    log: Option<Arc<LogSnapshot>>,
    fresh_until: Option<Instant>,
}

impl LogCache {
    /// A cache keeping each snapshot fresh for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(Slot::default()),
        }
    }

    /// `store`'s log: the kept snapshot while it is fresh; otherwise the kept one caught up, or
    /// the whole log read when none is kept (see the module documentation).
    pub(crate) fn get(&self, store: &dyn ReplayStore) -> Result<Arc<LogSnapshot>, ExecutionError> {
        self.get_with(|| read_log(store), |log| log.catch_up(store))
    }

    /// [`get`](Self::get) with the whole read and the catch-up given.
    fn get_with(
        &self,
        read: impl FnOnce() -> Result<LogSnapshot, ExecutionError>,
        catch_up: impl FnOnce(&mut LogSnapshot) -> Result<(), ExecutionError>,
    ) -> Result<Arc<LogSnapshot>, ExecutionError> {
        let mut slot = self.lock();
        if let (Some(log), Some(fresh_until)) = (&slot.log, slot.fresh_until)
            && Instant::now() < fresh_until
        {
            return Ok(Arc::clone(log));
        }
        let log = match slot.log.take() {
            Some(mut log) => match catch_up(Arc::make_mut(&mut log)) {
                Ok(()) => log,
                // The store's records no longer extend the log: read it whole, verified.
                Err(ExecutionError::Store(ReplayError::LedgerBroken(_))) => Arc::new(read()?),
                Err(error) => {
                    slot.log = Some(log);
                    return Err(error);
                }
            },
            None => Arc::new(read()?),
        };
        slot.log = Some(Arc::clone(&log));
        slot.fresh_until = Instant::now().checked_add(self.ttl);
        Ok(log)
    }

    /// Makes the kept snapshot stale: the next request catches it up.
    pub(crate) fn expire(&self) {
        self.lock().fresh_until = None;
    }

    /// The slot; after a read that panicked, empty (the next request reads the whole log).
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = Slot::default();
            slot
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use std::cell::Cell;

    use parmana_runtime::replay::{LedgerBreak, LedgerBreakKind, MemoryReplayStore};

    use super::*;

    /// How a catch-up in a test ends.
    #[derive(Clone, Copy)]
    enum CatchUp {
        Extends,
        Broken,
        Unreachable,
    }

    /// A cache whose whole reads and catch-ups are counted, and whose catch-ups end as told.
    struct Counted {
        cache: LogCache,
        store: MemoryReplayStore,
        reads: Cell<u32>,
        catch_ups: Cell<u32>,
    }

    impl Counted {
        fn new(ttl: Duration) -> Self {
            Self {
                cache: LogCache::new(ttl),
                store: MemoryReplayStore::new(),
                reads: Cell::new(0),
                catch_ups: Cell::new(0),
            }
        }

        fn get(&self, outcome: CatchUp) -> Result<Arc<LogSnapshot>, ExecutionError> {
            self.cache.get_with(
                || {
                    self.reads.set(self.reads.get() + 1);
                    read_log(&self.store)
                },
                |log| {
                    self.catch_ups.set(self.catch_ups.get() + 1);
                    match outcome {
                        CatchUp::Extends => log.catch_up(&self.store),
                        CatchUp::Broken => Err(ExecutionError::Store(ReplayError::LedgerBroken(
                            LedgerBreak {
                                position: 0,
                                kind: LedgerBreakKind::NotCanonical,
                            },
                        ))),
                        CatchUp::Unreachable => {
                            Err(ExecutionError::Store(ReplayError::Unavailable {
                                message: "a test store that is down".to_owned(),
                            }))
                        }
                    }
                },
            )
        }

        /// (whole reads, catch-ups) so far.
        fn counts(&self) -> (u32, u32) {
            (self.reads.get(), self.catch_ups.get())
        }
    }

    /// Which reads a sequence of requests makes: the first reads the whole log; a fresh snapshot
    /// is shared; a stale one (its ttl passed, or expired) is caught up — in place when no
    /// request holds it, in a copy otherwise; a catch-up that finds the ledger broken reads the
    /// whole log again; one that fails otherwise answers its error and keeps the snapshot.
    #[test]
    fn the_log_is_read_whole_once_then_caught_up() {
        let kept = Counted::new(Duration::from_secs(3_600));
        let first = kept.get(CatchUp::Extends).unwrap();
        let second = kept.get(CatchUp::Extends).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(kept.counts(), (1, 0), "a fresh snapshot is shared");
        kept.cache.expire();
        let third = kept.get(CatchUp::Extends).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &third),
            "held by requests: caught up in a copy"
        );
        assert_eq!(kept.counts(), (1, 1));
        drop((first, second, third));
        kept.cache.expire();
        let fourth = kept.get(CatchUp::Unreachable).unwrap_err();
        assert_eq!(fourth.code(), "replay.store_unavailable");
        assert_eq!(
            kept.counts(),
            (1, 2),
            "an unreachable store answers its error"
        );
        kept.get(CatchUp::Extends).unwrap();
        assert_eq!(
            kept.counts(),
            (1, 3),
            "and the kept snapshot is caught up later"
        );
        kept.cache.expire();
        kept.get(CatchUp::Broken).unwrap();
        assert_eq!(
            kept.counts(),
            (2, 4),
            "a broken ledger: the whole log read again"
        );

        let expiring = Counted::new(Duration::ZERO);
        expiring.get(CatchUp::Extends).unwrap();
        expiring.get(CatchUp::Extends).unwrap();
        expiring.get(CatchUp::Extends).unwrap();
        assert_eq!(
            expiring.counts(),
            (1, 2),
            "a snapshot past its ttl is caught up"
        );
    }

    /// A snapshot nobody holds is caught up in place, and a failed whole read keeps nothing.
    #[test]
    fn a_snapshot_nobody_holds_is_caught_up_in_place() {
        let kept = Counted::new(Duration::ZERO);
        let address = Arc::as_ptr(&kept.get(CatchUp::Extends).unwrap());
        assert_eq!(Arc::as_ptr(&kept.get(CatchUp::Extends).unwrap()), address);

        let failed = LogCache::new(Duration::from_secs(3_600));
        let failing = || -> Result<LogSnapshot, ExecutionError> {
            Err(ExecutionError::NoCheckpoint {
                reason: "a test read that fails".to_owned(),
            })
        };
        assert!(failed.get_with(failing, |_| Ok(())).is_err());
        assert!(failed.lock().log.is_none(), "a failed read is not kept");
    }
}
