//! The log the `/log/*` and proof routes serve: one snapshot shared by every request, brought up to date at most once per sequencer cadence by reading only the records appended since, instead of the whole ledger read and its tree rebuilt for each request.
//!
//! A snapshot is fresh for `ttl` (the sequencer's cadence) and goes stale as soon as this
//! server's own sequencer integrates entries, so what this server sequences is served at once;
//! entries another server sequenced appear within one cadence (until then a proof answers
//! `runtime.not_yet_sequenced` with `Retry-After`, as it does for an entry not yet sequenced).
//!
//! The first request reads the whole ledger, verified ([`read_log`]). A stale snapshot then
//! catches up ([`LogSnapshot::catch_up`]): the records after its last one, each checked as the
//! sequencer checks the records it appends. When there are none, nothing is copied; otherwise
//! the snapshot is extended in place when no request still holds it, in a copy otherwise. A
//! ledger rewritten or cut under it is read whole and taken only if it extends the snapshot, so
//! the log served never forks or shrinks; until then every request answers
//! `trust.tlog_inconsistent` (and reads the ledger again). A catch-up that fails answers its
//! error and keeps the snapshot, still stale, to catch up at the next request. Requests arriving
//! during a read wait for it and share it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parmana_runtime::replay::ReplayStore;
use parmana_runtime::{ExecutionError, LogSnapshot, read_log};

/// The cached log (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogCache {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<LogSnapshot>)>>,
    /// Set by [`expire`](LogCache::expire) without the lock (it is called from async code).
    expired: AtomicBool,
}

impl LogCache {
    /// A cache keeping each snapshot fresh for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
            expired: AtomicBool::new(false),
        }
    }

    /// `store`'s log: the kept snapshot while it is fresh; otherwise the kept one caught up, or
    /// the whole log read when none is kept (see the module documentation).
    pub(crate) fn get(&self, store: &dyn ReplayStore) -> Result<Arc<LogSnapshot>, ExecutionError> {
        self.get_with(|| read_log(store), |log| catch_up_shared(log, store))
    }

    /// [`get`](Self::get) with the whole read and the catch-up given.
    fn get_with(
        &self,
        read: impl FnOnce() -> Result<LogSnapshot, ExecutionError>,
        catch_up: impl FnOnce(&mut Arc<LogSnapshot>) -> Result<(), ExecutionError>,
    ) -> Result<Arc<LogSnapshot>, ExecutionError> {
        let mut slot = self.lock();
        // Taken under the lock: an expiry after this point makes the next request catch up.
        let expired = self.expired.swap(false, Ordering::AcqRel);
        if let Some((read_at, log)) = slot.as_ref()
            && !expired
            && read_at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(log));
        }
        let log = match slot.take() {
            Some((read_at, mut log)) => {
                if let Err(error) = catch_up(&mut log) {
                    // Kept as it was read (stale): the next request catches it up again.
                    *slot = Some((read_at, log));
                    self.expired.store(true, Ordering::Release);
                    return Err(error);
                }
                log
            }
            None => Arc::new(read()?),
        };
        *slot = Some((Instant::now(), Arc::clone(&log)));
        Ok(log)
    }

    /// Makes the kept snapshot stale: the next request catches it up.
    pub(crate) fn expire(&self) {
        self.expired.store(true, Ordering::Release);
    }

    /// The slot; after a read that panicked, empty (the next request reads the whole log).
    fn lock(&self) -> MutexGuard<'_, Option<(Instant, Arc<LogSnapshot>)>> {
        self.slot.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        })
    }
}

/// Catches the shared snapshot `log` up with `store` ([`LogSnapshot::catch_up`]), copying it
/// (when a request still holds it) only when the store holds a record after its last one.
fn catch_up_shared(
    log: &mut Arc<LogSnapshot>,
    store: &dyn ReplayStore,
) -> Result<(), ExecutionError> {
    if store.ledger_records(log.size(), 1)?.is_empty() {
        return Ok(());
    }
    Arc::make_mut(log).catch_up(store)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use std::cell::Cell;

    use parmana_runtime::replay::{MemoryReplayStore, ReplayError};

    use super::*;

    /// A cache on an empty store whose whole reads and catch-ups are counted.
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

        /// A request; its catch-up, if it makes one, fails when `store_down`.
        fn get(&self, store_down: bool) -> Result<Arc<LogSnapshot>, ExecutionError> {
            self.cache.get_with(
                || {
                    self.reads.set(self.reads.get() + 1);
                    read_log(&self.store)
                },
                |log| {
                    self.catch_ups.set(self.catch_ups.get() + 1);
                    if store_down {
                        return Err(ExecutionError::Store(ReplayError::Unavailable {
                            message: "a test store that is down".to_owned(),
                        }));
                    }
                    catch_up_shared(log, &self.store)
                },
            )
        }

        /// (whole reads, catch-ups) so far.
        fn counts(&self) -> (u32, u32) {
            (self.reads.get(), self.catch_ups.get())
        }
    }

    /// Which reads a sequence of requests makes: the first reads the whole log; a fresh snapshot
    /// is shared; a stale one (its ttl passed, or expired) is caught up; a catch-up that fails
    /// answers its error and keeps the snapshot, which the next request catches up.
    #[test]
    fn the_log_is_read_whole_once_then_caught_up() {
        let kept = Counted::new(Duration::from_secs(3_600));
        let first = kept.get(false).unwrap();
        let second = kept.get(false).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(kept.counts(), (1, 0), "a fresh snapshot is shared");
        kept.cache.expire();
        let third = kept.get(false).unwrap();
        assert!(
            Arc::ptr_eq(&first, &third),
            "nothing new: the same snapshot"
        );
        assert_eq!(kept.counts(), (1, 1), "an expired snapshot is caught up");
        assert!(Arc::ptr_eq(&kept.get(false).unwrap(), &first));
        assert_eq!(kept.counts(), (1, 1), "and fresh again");
        kept.cache.expire();
        let refused = kept.get(true).unwrap_err();
        assert_eq!(refused.code(), "replay.store_unavailable");
        assert_eq!(
            kept.counts(),
            (1, 2),
            "a store that is down answers its error"
        );
        assert!(Arc::ptr_eq(&kept.get(false).unwrap(), &first));
        assert_eq!(
            kept.counts(),
            (1, 3),
            "and the kept snapshot is caught up next"
        );

        let expiring = Counted::new(Duration::ZERO);
        for _ in 0..3 {
            expiring.get(false).unwrap();
        }
        assert_eq!(
            expiring.counts(),
            (1, 2),
            "a snapshot past its ttl is caught up"
        );
    }

    /// Appends the completed executions `cache-N` for each N of `names` to `store`'s ledger.
    fn append(store: &MemoryReplayStore, names: std::ops::Range<u32>) {
        parmana_testkit::append_sequenced(store, names.map(|n| format!("cache-{n}"))).unwrap();
    }

    /// Against a store: with nothing appended nothing is copied, even while a request holds the
    /// snapshot; records appended are taken in a copy while a request holds it, in place once
    /// none does.
    #[test]
    fn a_snapshot_is_copied_only_to_take_new_records() {
        let store = MemoryReplayStore::new();
        append(&store, 0..3);
        let mut shared = Arc::new(read_log(&store).unwrap());
        let held = Arc::clone(&shared);
        catch_up_shared(&mut shared, &store).unwrap();
        assert!(Arc::ptr_eq(&shared, &held), "nothing new: nothing copied");
        append(&store, 3..5);
        catch_up_shared(&mut shared, &store).unwrap();
        assert!(!Arc::ptr_eq(&shared, &held), "held: caught up in a copy");
        assert_eq!((held.size(), shared.size()), (3, 5));
        drop(held);
        append(&store, 5..6);
        let before = Arc::as_ptr(&shared);
        catch_up_shared(&mut shared, &store).unwrap();
        assert_eq!(
            Arc::as_ptr(&shared),
            before,
            "held by none: caught up in place"
        );
        assert_eq!(shared.size(), 6);
        // Through the cache: the records another integrator appends are served after a
        // catch-up, not a whole read.
        let cache = LogCache::new(Duration::ZERO);
        let mut reads = 0;
        let mut get = |cache: &LogCache| {
            cache
                .get_with(
                    || {
                        reads += 1;
                        read_log(&store)
                    },
                    |log| catch_up_shared(log, &store),
                )
                .unwrap()
                .size()
        };
        assert_eq!(get(&cache), 6);
        append(&store, 6..9);
        assert_eq!(get(&cache), 9);
        assert_eq!(reads, 1);
    }

    /// A failed whole read keeps nothing: the next request reads again.
    #[test]
    fn a_failed_read_is_not_kept() {
        let failed = LogCache::new(Duration::from_secs(3_600));
        let failing = || -> Result<LogSnapshot, ExecutionError> {
            Err(ExecutionError::NoCheckpoint {
                reason: "a test read that fails".to_owned(),
            })
        };
        assert!(failed.get_with(failing, |_| Ok(())).is_err());
        assert!(failed.lock().is_none(), "a failed read is not kept");
    }
}
