//! Running a batch on several threads: lines read one at a time, executed by `jobs` workers sharing one `Runtime`, results handed back strictly in input order, with a bounded window of lines in flight.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, mpsc};

use parmana_canon::{ExecutionId, PolicyRef};

use crate::execute::Attestation;
use crate::{BatchLine, BatchReader, ExecutionError, Runtime, new_execution_id};

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Worker threads (at least 1): executions in flight at once, so that a store's group
    /// commit can share one sync among them.
    pub jobs: usize,
    /// The policy of every line that names none.
    pub default_policy: Option<PolicyRef>,
    /// Embed the validated signals in every attestation.
    pub include_signals: bool,
}

/// The outcome of one batch line, handed back in input order.
#[derive(Debug)]
pub struct BatchOutcome {
    /// The 1-based line number in the input.
    pub line: usize,
    /// The execution id of the line's request, once it was read (its own, or the one made for
    /// it): with a refusal that may come after the claim, where its outcome reads back.
    pub execution_id: Option<ExecutionId>,
    /// The attestation, or why the line was refused.
    pub result: Result<Attestation, ExecutionError>,
}

/// What a batch did: lines, decisions and refusals by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Non-blank lines read.
    pub lines: usize,
    /// Executions by decision.
    pub decisions: BTreeMap<String, usize>,
    /// Refused lines by error code.
    pub refusals: BTreeMap<String, usize>,
}

impl BatchSummary {
    /// Lines executed (the sum of `decisions`).
    pub fn executed(&self) -> usize {
        self.decisions.values().sum()
    }

    /// Lines refused (the sum of `refusals`).
    pub fn refused(&self) -> usize {
        self.refusals.values().sum()
    }
}

/// Why [`run_batch`] stopped early: the caller's `emit` failed (the batch stops reading; lines
/// already executed stay executed and readable in the store).
#[derive(Debug)]
pub struct BatchStopped<E> {
    /// The caller's error.
    pub error: E,
    /// What had been emitted before it.
    pub summary: BatchSummary,
    /// The executions completed, or perhaps claimed (a refusal that
    /// [may follow a claim](ExecutionError::may_follow_a_claim)), and never emitted — the one whose
    /// emitting failed, and those the workers ran after it (they run ahead of the output): read
    /// back by their ids.
    pub unemitted: Vec<ExecutionId>,
}

/// Runs every line of `input` on `options.jobs` threads and calls `emit` with each outcome in
/// input order, as soon as it and every line before it are done. At most `4 × jobs` lines are
/// read ahead of the last one emitted, so memory stays bounded whatever the batch's length. A
/// read error of the input is emitted as that line's refusal (`runtime.io`) and ends the batch.
pub fn run_batch<R, E>(
    runtime: &Runtime,
    input: BatchReader<R>,
    options: &BatchOptions,
    mut emit: impl FnMut(BatchOutcome) -> Result<(), E>,
) -> Result<BatchSummary, BatchStopped<E>>
where
    R: BufRead + Send,
{
    let jobs = options.jobs.max(1);
    let window = jobs.saturating_mul(4);
    let reader = Mutex::new(Feed {
        input,
        next_sequence: 0,
    });
    // How many outcomes were emitted: a worker waits while it is `window` lines ahead of it.
    let emitted = Mutex::new(0usize);
    let progress = Condvar::new();
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<(usize, BatchOutcome)>();
    let mut summary = BatchSummary::default();
    let mut failure = None;
    let mut unemitted = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let (reader, emitted, progress, stop) = (&reader, &emitted, &progress, &stop);
            scope.spawn(move || {
                loop {
                    let next = {
                        let mut feed = reader.lock().unwrap_or_else(PoisonError::into_inner);
                        {
                            let mut done = emitted.lock().unwrap_or_else(PoisonError::into_inner);
                            while feed.next_sequence >= *done + window
                                && !stop.load(Ordering::Acquire)
                            {
                                done = progress.wait(done).unwrap_or_else(PoisonError::into_inner);
                            }
                        }
                        if stop.load(Ordering::Acquire) {
                            None
                        } else {
                            feed.input.next_line().map(|(line, bytes)| {
                                let sequence = feed.next_sequence;
                                feed.next_sequence += 1;
                                (sequence, line, bytes)
                            })
                        }
                    };
                    let Some((sequence, line, bytes)) = next else {
                        return;
                    };
                    let request = bytes.and_then(|bytes| {
                        Ok(BatchLine::parse(&bytes, options.default_policy.as_ref())?
                            .into_request(new_execution_id, options.include_signals))
                    });
                    let execution_id = request.as_ref().ok().map(|r| r.execution_id.clone());
                    // A panic (a defect, here or in a signer or store given to the runtime)
                    // refuses this line alone: were it to end the worker, its outcome would never
                    // arrive, and the emitter, waiting for it in order, would wait for ever.
                    let result =
                        request.and_then(|request| catch_panic(|| runtime.execute(&request)));
                    if sender
                        .send((
                            sequence,
                            BatchOutcome {
                                line,
                                execution_id,
                                result,
                            },
                        ))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut pending: HashMap<usize, BatchOutcome> = HashMap::new();
        let mut next = 0usize;
        for (sequence, outcome) in receiver.iter() {
            pending.insert(sequence, outcome);
            while let Some(outcome) = pending.remove(&next) {
                next += 1;
                if failure.is_some() {
                    // Completed (or perhaps claimed) after the output failed: never printed.
                    if named_if_unprinted(&outcome) {
                        unemitted.extend(outcome.execution_id);
                    }
                } else {
                    summary.lines += 1;
                    match &outcome.result {
                        Ok(attestation) => {
                            *summary
                                .decisions
                                .entry(attestation.predicate().decision.clone())
                                .or_default() += 1;
                        }
                        Err(error) => {
                            *summary.refusals.entry(error.code().to_owned()).or_default() += 1;
                        }
                    }
                    // (The one whose emitting failed was not printed either.)
                    let named = named_if_unprinted(&outcome)
                        .then(|| outcome.execution_id.clone())
                        .flatten();
                    if let Err(error) = emit(outcome) {
                        failure = Some(error);
                        stop.store(true, Ordering::Release);
                        unemitted.extend(named);
                    }
                }
                *emitted.lock().unwrap_or_else(PoisonError::into_inner) = next;
                progress.notify_all();
            }
        }
    });
    match failure {
        None => Ok(summary),
        Some(error) => Err(BatchStopped {
            error,
            summary,
            unemitted,
        }),
    }
}

/// Runs `run`, a panic in it (a defect) answered as [`ExecutionError::Panicked`]
/// (`runtime.panicked`, class internal) rather than ending the caller unreported: a command
/// executing one request can then name the id it may have claimed, as a batch names each line's.
pub fn catch_panic<T>(
    run: impl FnOnce() -> Result<T, ExecutionError>,
) -> Result<T, ExecutionError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        Err(ExecutionError::Panicked {
            message: panic_message(panic.as_ref()),
        })
    })
}

/// The message a panic carried (`panic!("…")` or with a formatted one), or a placeholder.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The reader and the sequence number of the next line it will give.
struct Feed<R> {
    input: BatchReader<R>,
    next_sequence: usize,
}

/// Whether an outcome that was not printed must be named: it completed, or its refusal may have
/// come after its id was claimed.
fn named_if_unprinted(outcome: &BatchOutcome) -> bool {
    match &outcome.result {
        Ok(_) => true,
        Err(error) => error.may_follow_a_claim(),
    }
}
