//! Group commit for the PostgreSQL hot path: while one caller (the leader) writes a batch, the claims that arrive queue up, and the next leader writes them together — one statement and one commit for the lot.
//!
//! There is no timer and no background thread. A caller queues its item; when no batch is being
//! written it becomes the leader, takes the oldest queued item and, in queue order, each later
//! one that [`Batchable::joins`] lets in (at most `max_batch`), writes them outside the lock,
//! posts one result per item and wakes
//! the others. A caller alone is a batch of one, written at once; callers arriving during a write
//! wait for it to finish and go out in the next, so the batch grows with the load and the commit's
//! fixed cost (a round trip, a WAL flush) is shared by everyone in it. One batch is written at a
//! time per store instance.
//!
//! A leader that fails before posting (a panic in the writer) answers every item of its batch
//! with `replay.store_unavailable` as it unwinds, so no caller waits forever.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::ReplayError;

/// An item that can share a batch with others.
pub(super) trait Batchable {
    /// Whether this item can join `batch` (never empty: its first item is the oldest queued).
    fn joins(&self, batch: &[Self]) -> bool
    where
        Self: Sized;
}

/// The queue of items waiting for a batch, and the results not yet collected.
struct Queue<T, R> {
    waiting: VecDeque<(u64, T)>,
    finished: HashMap<u64, Result<R, ReplayError>>,
    next_ticket: u64,
    leading: bool,
}

/// Groups concurrent writes into batches (see the module documentation).
pub(super) struct GroupCommit<T, R> {
    queue: Mutex<Queue<T, R>>,
    wake: Condvar,
    max_batch: usize,
}

impl<T: Batchable, R> GroupCommit<T, R> {
    /// A group commit writing at most `max_batch` items at a time (at least one).
    pub(super) fn new(max_batch: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                finished: HashMap::new(),
                next_ticket: 0,
                leading: false,
            }),
            wake: Condvar::new(),
            max_batch: max_batch.max(1),
        }
    }

    /// Writes `item` in a batch and returns its result. `write` is called (by whichever caller
    /// leads) with a batch of queued items, oldest first, and returns one result per item, in
    /// the same order; a missing result is `replay.store_unavailable`.
    pub(super) fn submit(
        &self,
        item: T,
        write: impl Fn(&[T]) -> Vec<Result<R, ReplayError>>,
    ) -> Result<R, ReplayError> {
        let mut queue = self.lock()?;
        let ticket = queue.next_ticket;
        queue.next_ticket = queue.next_ticket.wrapping_add(1);
        queue.waiting.push_back((ticket, item));
        loop {
            if let Some(result) = queue.finished.remove(&ticket) {
                return result;
            }
            if queue.leading {
                queue = self.wake.wait(queue).map_err(|_| poisoned())?;
                continue;
            }
            let (tickets, batch) = take_batch(&mut queue.waiting, self.max_batch);
            queue.leading = true;
            drop(queue);
            let mut leader = Leader {
                group: self,
                own: ticket,
                tickets,
                posted: false,
            };
            let results = write(&batch);
            drop(batch);
            queue = leader.post(results)?;
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Queue<T, R>>, ReplayError> {
        self.queue.lock().map_err(|_| poisoned())
    }
}

/// Takes the batch from the front of `waiting`: the oldest item, then each later one that joins
/// it, up to `max` items; the rest stay queued in their order.
fn take_batch<T: Batchable>(waiting: &mut VecDeque<(u64, T)>, max: usize) -> (Vec<u64>, Vec<T>) {
    let mut tickets = Vec::new();
    let mut batch: Vec<T> = Vec::new();
    let mut left = VecDeque::with_capacity(waiting.len());
    while let Some((ticket, item)) = waiting.pop_front() {
        if batch.len() < max && (batch.is_empty() || item.joins(&batch)) {
            tickets.push(ticket);
            batch.push(item);
        } else {
            left.push_back((ticket, item));
        }
    }
    *waiting = left;
    (tickets, batch)
}

/// The leader of one batch: posts its results, or, dropped without posting, an error for each.
struct Leader<'a, T, R> {
    group: &'a GroupCommit<T, R>,
    /// The leader's own ticket: unwinding, it collects no answer, so none is posted for it.
    own: u64,
    tickets: Vec<u64>,
    posted: bool,
}

impl<'a, T: Batchable, R> Leader<'a, T, R> {
    /// Posts one result per ticket, ends the lead and wakes the waiting callers.
    fn post(
        &mut self,
        results: Vec<Result<R, ReplayError>>,
    ) -> Result<MutexGuard<'a, Queue<T, R>>, ReplayError> {
        let mut queue = self.group.lock()?;
        let mut results = results.into_iter();
        for &ticket in &self.tickets {
            let result = results.next().unwrap_or_else(|| {
                Err(ReplayError::unavailable(
                    "the batch's write returned no result for this claim",
                ))
            });
            queue.finished.insert(ticket, result);
        }
        queue.leading = false;
        self.posted = true;
        self.group.wake.notify_all();
        Ok(queue)
    }
}

impl<T, R> Drop for Leader<'_, T, R> {
    fn drop(&mut self) {
        if self.posted {
            return;
        }
        // The write failed without results (it panicked): answer every item so none waits.
        let mut queue = match self.group.queue.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        // The leader's own item, if still queued, is withdrawn: its caller is gone.
        let own = self.own;
        queue.waiting.retain(|(ticket, _)| *ticket != own);
        for &ticket in self.tickets.iter().filter(|&&ticket| ticket != own) {
            queue.finished.insert(
                ticket,
                Err(ReplayError::unavailable(
                    "the batch writing this claim failed",
                )),
            );
        }
        queue.leading = false;
        self.group.wake.notify_all();
    }
}

fn poisoned() -> ReplayError {
    ReplayError::unavailable("the group commit's queue is poisoned")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;

    /// An item: a key that may appear once per batch, and a group that must match the batch's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Item {
        key: u32,
        group: u8,
    }

    impl Batchable for Item {
        fn joins(&self, batch: &[Self]) -> bool {
            batch[0].group == self.group && batch.iter().all(|other| other.key != self.key)
        }
    }

    fn item(key: u32, group: u8) -> (u64, Item) {
        (u64::from(key), Item { key, group })
    }

    /// Which items the front of a queue takes, and what it leaves in order.
    #[test]
    fn a_batch_takes_the_oldest_and_what_joins_it() {
        type Case = (&'static str, Vec<(u32, u8)>, usize, Vec<u32>, Vec<u32>);
        let cases: Vec<Case> = vec![
            ("one item", vec![(1, 0)], 8, vec![1], vec![]),
            (
                "all join",
                vec![(1, 0), (2, 0), (3, 0)],
                8,
                vec![1, 2, 3],
                vec![],
            ),
            (
                "bounded",
                vec![(1, 0), (2, 0), (3, 0)],
                2,
                vec![1, 2],
                vec![3],
            ),
            ("max zero is one", vec![(1, 0), (2, 0)], 0, vec![1], vec![2]),
            (
                "other group waits",
                vec![(1, 0), (2, 1), (3, 0)],
                8,
                vec![1, 3],
                vec![2],
            ),
            (
                "repeated key waits",
                vec![(1, 0), (1, 0), (2, 0)],
                8,
                vec![1, 2],
                vec![1],
            ),
        ];
        for (name, queued, max, taken, left) in cases {
            let group: GroupCommit<Item, ()> = GroupCommit::new(max);
            let mut waiting: VecDeque<_> = queued.iter().map(|&(k, g)| item(k, g)).collect();
            let (_, batch) = take_batch(&mut waiting, group.max_batch);
            let keys: Vec<u32> = batch.iter().map(|i| i.key).collect();
            assert_eq!(keys, taken, "{name}: taken");
            let rest: Vec<u32> = waiting.iter().map(|(_, i)| i.key).collect();
            assert_eq!(rest, left, "{name}: left");
        }
    }

    /// Waits until at least `wanted` callers queue behind the write in progress — bounded (10 s,
    /// a deadline, not an assertion: a test relying on the queue then says what it missed).
    fn wait_for_queued<T: Batchable, R>(group: &GroupCommit<T, R>, wanted: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while group.queue.lock().unwrap().waiting.len() < wanted
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Callers racing: each gets its own item's result, and callers arriving during a write share
    /// the next batch.
    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_results() {
        const CALLERS: u32 = 16;
        let group: Arc<GroupCommit<Item, u32>> = Arc::new(GroupCommit::new(64));
        let batches = Arc::new(Mutex::new(Vec::<usize>::new()));
        let start = Arc::new(Barrier::new(CALLERS as usize));
        let handles: Vec<_> = (0..CALLERS)
            .map(|key| {
                let (group, batches, start) =
                    (Arc::clone(&group), Arc::clone(&batches), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    group.submit(Item { key, group: 0 }, |batch| {
                        let written = {
                            let mut batches = batches.lock().unwrap();
                            batches.push(batch.len());
                            batches.iter().sum::<usize>()
                        };
                        // The write lasts until two callers queue behind it (as many as are
                        // left): the next batch is shared whatever the scheduler does.
                        wait_for_queued(&group, (CALLERS as usize - written).min(2));
                        batch.iter().map(|i| Ok(i.key * 10)).collect()
                    })
                })
            })
            .collect();
        for (key, handle) in (0..CALLERS).zip(handles) {
            assert_eq!(handle.join().unwrap(), Ok(key * 10));
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().sum::<usize>(), CALLERS as usize);
        assert!(
            batches.len() < CALLERS as usize,
            "no batch held more than one item: {batches:?}"
        );
    }

    /// A leader whose write panics answers every caller waiting in its batch with
    /// `replay.store_unavailable` (and withdraws its own item if another leader's batch left it
    /// queued): nothing waits forever, and the queue is left empty.
    #[test]
    fn a_panicking_leader_answers_the_callers_of_its_batch() {
        const CALLERS: u32 = 6;
        let group: Arc<GroupCommit<Item, u32>> = Arc::new(GroupCommit::new(64));
        let start = Arc::new(Barrier::new(CALLERS as usize));
        let written = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..CALLERS)
            .map(|key| {
                let (group, start, written) =
                    (Arc::clone(&group), Arc::clone(&start), Arc::clone(&written));
                std::thread::spawn(move || {
                    start.wait();
                    group.submit(Item { key, group: 0 }, |batch| {
                        // Two callers queue behind it (as many as are left), then it fails.
                        let written =
                            written.fetch_add(batch.len(), Ordering::SeqCst) + batch.len();
                        wait_for_queued(&group, (CALLERS as usize - written).min(2));
                        panic!("the write failed")
                    })
                })
            })
            .collect();
        let (mut answered, mut panicked) = (0, 0);
        for handle in handles {
            match handle.join() {
                Ok(result) => {
                    assert!(
                        matches!(result, Err(ReplayError::Unavailable { .. })),
                        "{result:?}"
                    );
                    answered += 1;
                }
                Err(_) => panicked += 1,
            }
        }
        // Six callers cannot all have led a batch of their own (each write lasts until two more
        // queue, and a leader takes every caller queued): some waited in a panicking leader's
        // batch and got its error.
        assert!(
            answered >= 1 && panicked >= 1,
            "{answered} answered, {panicked} panicked"
        );
        assert_eq!(answered + panicked, CALLERS);
        let queue = group.queue.lock().unwrap();
        assert!(queue.waiting.is_empty() && queue.finished.is_empty() && !queue.leading);
    }

    /// A write that returns too few results answers the rest with an error; one that panics
    /// answers its whole batch, and the queue goes on serving.
    #[test]
    fn a_failed_write_answers_every_item_and_the_queue_recovers() {
        let group: GroupCommit<Item, u32> = GroupCommit::new(8);
        let short = group.submit(Item { key: 1, group: 0 }, |_| Vec::new());
        assert!(matches!(short, Err(ReplayError::Unavailable { .. })));

        let calls = AtomicUsize::new(0);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.submit(Item { key: 2, group: 0 }, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("the write failed")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The panicked batch's answer was posted and is never handed to another caller, and
        // the next caller leads at once.
        assert_eq!(
            group.submit(Item { key: 3, group: 0 }, |batch| {
                batch.iter().map(|i| Ok(i.key)).collect()
            }),
            Ok(3)
        );
    }
}
