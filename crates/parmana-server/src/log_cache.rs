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
//! the log served never forks or shrinks: otherwise the request answers
//! `trust.tlog_inconsistent`, and the server refuses the store (`tlog::served_log`). A read or catch-up that fails answers its error and keeps the
//! snapshot, still stale; the refusal is kept too, and answered without reading anything for
//! the shorter of `ttl` and a second (or until this server's sequencer expires the snapshot),
//! so that asking again and again (anonymously, with `--log-public`) reads the ledger once in
//! that time, not at every request. Requests
//! arriving during a read wait for it and share it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parmana_runtime::replay::ReplayStore;
use parmana_runtime::{ExecutionError, LogSnapshot, read_log};

/// The cached log (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogCache {
    ttl: Duration,
    slot: Mutex<Kept>,
    /// Set by [`expire`](LogCache::expire) without the lock (it is called from async code).
    expired: AtomicBool,
}

impl LogCache {
    /// A cache keeping each snapshot fresh for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(Kept::default()),
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
        let mut kept = self.lock();
        // Taken under the lock: an expiry after this point makes the next request catch up.
        let expired = self.expired.swap(false, Ordering::AcqRel);
        if !expired {
            // A refusal first: the snapshot kept beside it is stale.
            if let Some((refused_at, error)) = kept.refusal.as_ref()
                && refused_at.elapsed() < self.ttl.min(REFUSAL_KEPT_AT_MOST)
                && let Some(error) = copy_of(error)
            {
                return Err(error);
            }
            if let Some((read_at, log)) = kept.log.as_ref()
                && kept.refusal.is_none()
                && read_at.elapsed() < self.ttl
            {
                return Ok(Arc::clone(log));
            }
        }
        let read = match kept.log.take() {
            Some((read_at, mut log)) => match catch_up(&mut log) {
                Ok(()) => Ok(log),
                Err(error) => {
                    // Kept as it was read (stale): caught up again once the refusal's time is
                    // over.
                    kept.log = Some((read_at, log));
                    Err(error)
                }
            },
            None => read().map(Arc::new),
        };
        match read {
            Ok(log) => {
                kept.log = Some((Instant::now(), Arc::clone(&log)));
                kept.refusal = None;
                Ok(log)
            }
            Err(error) => {
                kept.refusal = copy_of(&error).map(|copy| (Instant::now(), copy));
                // Not kept: the next request reads again. (Kept: the flag is left as it is, so
                // that this server's sequencer expiring the snapshot meanwhile still counts.)
                if kept.refusal.is_none() {
                    self.expired.store(true, Ordering::Release);
                }
                Err(error)
            }
        }
    }

    /// Makes the kept snapshot stale: the next request catches it up.
    pub(crate) fn expire(&self) {
        self.expired.store(true, Ordering::Release);
    }

    /// The slot; after a read that panicked, empty (the next request reads the whole log).
    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.slot.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = Kept::default();
            // Read whole again once, not at every request from now on.
            self.slot.clear_poison();
            slot
        })
    }
}

/// The longest a refusal is kept, however long the cadence: the log's routes answer `503` with
/// `Retry-After: 1`, and a store back up or a ledger restored is served again a second later.
const REFUSAL_KEPT_AT_MOST: Duration = Duration::from_secs(1);

/// What the cache keeps: the snapshot, when it was read or last caught up, and the last read's
/// refusal, when it was made.
#[derive(Debug, Default)]
struct Kept {
    log: Option<(Instant, Arc<LogSnapshot>)>,
    refusal: Option<(Instant, ExecutionError)>,
}

/// A copy of a refusal to keep: the trust layer's and the store's (what reading and checking
/// the ledger refuses with); `None` for any other, which is not kept.
fn copy_of(error: &ExecutionError) -> Option<ExecutionError> {
    match error {
        ExecutionError::Trust(error) => Some(ExecutionError::Trust(error.clone())),
        ExecutionError::Store(error) => Some(ExecutionError::Store(error.clone())),
        _ => None,
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
    /// answers its error and keeps the snapshot, and the refusal, answered without a read until
    /// its ttl passes or the snapshot is expired; then the snapshot is caught up.
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
        for _ in 0..3 {
            assert_eq!(
                kept.get(false).unwrap_err().code(),
                "replay.store_unavailable"
            );
        }
        assert_eq!(kept.counts(), (1, 2), "the refusal is kept: nothing read");
        kept.cache.expire();
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
        // A refusal past its ttl is not kept either.
        assert!(expiring.get(true).is_err());
        expiring.get(false).unwrap();
        assert_eq!(expiring.counts(), (1, 4));
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

    /// A failed whole read keeps no snapshot. Its refusal is kept when the trust layer or the
    /// store made it (a ledger found broken, here a store that is down): the next requests are
    /// answered it without reading, for the ttl; any other is not, and the next request reads
    /// again.
    #[test]
    fn a_failed_read_keeps_its_refusal_for_a_while() {
        let failed = LogCache::new(Duration::from_secs(3_600));
        let reads = Cell::new(0);
        let failing = |error: fn() -> ExecutionError| {
            let reads = &reads;
            move || -> Result<LogSnapshot, ExecutionError> {
                reads.set(reads.get() + 1);
                Err(error())
            }
        };
        let other = || ExecutionError::NoCheckpoint {
            reason: "a test read that fails".to_owned(),
        };
        for _ in 0..2 {
            assert!(failed.get_with(failing(other), |_| Ok(())).is_err());
        }
        assert_eq!(reads.get(), 2, "not kept: read again");
        let broken = || {
            ExecutionError::Store(ReplayError::Unavailable {
                message: "a test store that is down".to_owned(),
            })
        };
        for _ in 0..3 {
            let refused = failed.get_with(failing(broken), |_| Ok(())).unwrap_err();
            assert_eq!(refused.code(), "replay.store_unavailable");
        }
        assert_eq!(reads.get(), 3, "kept: read once");
        assert!(
            failed.lock().log.is_none(),
            "a failed read keeps no snapshot"
        );
        failed.expire();
        assert!(failed.get_with(failing(broken), |_| Ok(())).is_err());
        assert_eq!(reads.get(), 4, "expired: read again");
        // Expired while a read fails (this server's sequencer integrated meanwhile): the next
        // request reads again, the refusal notwithstanding.
        let expiring_read = || -> Result<LogSnapshot, ExecutionError> {
            reads.set(reads.get() + 1);
            failed.expire();
            Err(broken())
        };
        failed.expire();
        assert!(failed.get_with(expiring_read, |_| Ok(())).is_err());
        assert!(failed.get_with(failing(broken), |_| Ok(())).is_err());
        assert_eq!(reads.get(), 6, "the expiry made during the read counts");
        // However long the ttl, a refusal is kept at most a second.
        std::thread::sleep(REFUSAL_KEPT_AT_MOST + Duration::from_millis(50));
        assert!(failed.get_with(failing(broken), |_| Ok(())).is_err());
        assert_eq!(reads.get(), 7, "kept at most a second");
    }
}
