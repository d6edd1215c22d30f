//! The log the `/log/*` and proof routes serve: read from the store at most once per sequencer cadence and shared by every request, instead of the whole ledger read and its tree rebuilt for each one.
//!
//! A snapshot is kept for `ttl` (the sequencer's cadence) and dropped as soon as this server's
//! own sequencer integrates entries, so what this server sequences is served at once; entries
//! another server sequenced appear within one cadence (until then a proof answers
//! `runtime.not_yet_sequenced` with `Retry-After`, as it does for an entry not yet sequenced).
//! A log prefix never changes, so a snapshot that lags is still the log, only shorter. Requests
//! arriving while the log is read wait for that one read and share it. A failed read is not
//! kept: the next request reads again.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parmana_runtime::{ExecutionError, LogSnapshot};

/// The cached log (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogCache {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<LogSnapshot>)>>,
}

impl LogCache {
    /// A cache keeping each snapshot for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The kept snapshot if it was read less than `ttl` ago; otherwise `read`'s, which is kept.
    pub(crate) fn get(
        &self,
        read: impl FnOnce() -> Result<LogSnapshot, ExecutionError>,
    ) -> Result<Arc<LogSnapshot>, ExecutionError> {
        let mut slot = self.lock();
        if let Some((read_at, log)) = slot.as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(log));
        }
        *slot = None;
        let log = Arc::new(read()?);
        *slot = Some((Instant::now(), Arc::clone(&log)));
        Ok(log)
    }

    /// Drops the kept snapshot: the next request reads the log again.
    pub(crate) fn invalidate(&self) {
        *self.lock() = None;
    }

    /// The slot; after a read that panicked, empty (the next request reads again).
    fn lock(&self) -> MutexGuard<'_, Option<(Instant, Arc<LogSnapshot>)>> {
        self.slot.lock().unwrap_or_else(|poisoned| {
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use std::cell::Cell;

    use parmana_runtime::read_log;
    use parmana_runtime::replay::MemoryReplayStore;

    use super::*;

    /// Which reads a sequence of requests makes: a fresh snapshot is shared, an expired or
    /// dropped one is read again, and a failed read is not kept.
    #[test]
    fn the_log_is_read_once_per_ttl_or_invalidation() {
        let store = MemoryReplayStore::new();
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            read_log(&store)
        };
        let failing = || -> Result<LogSnapshot, ExecutionError> {
            Err(ExecutionError::NoCheckpoint {
                reason: "a test read that fails".to_owned(),
            })
        };

        let kept = LogCache::new(Duration::from_secs(3_600));
        let first = kept.get(read).unwrap();
        let second = kept.get(read).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(reads.get(), 1, "a fresh snapshot is shared");
        kept.invalidate();
        let third = kept.get(read).unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(reads.get(), 2, "an invalidated snapshot is read again");

        let expiring = LogCache::new(Duration::ZERO);
        expiring.get(read).unwrap();
        expiring.get(read).unwrap();
        assert_eq!(reads.get(), 4, "an expired snapshot is read again");

        let failed = LogCache::new(Duration::from_secs(3_600));
        assert!(failed.get(failing).is_err());
        failed.get(read).unwrap();
        assert_eq!(reads.get(), 5, "a failed read is not kept");
    }
}
