//! The load driver: keep-alive HTTP connections (`http::Connection`), all driven from one thread's event loop, sending requests for a bounded time and count, and the in-process baseline on threads, on the same clock; latency percentiles and throughput.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::http::Connection;

/// At most this many requests per measurement, whatever the duration.
pub(crate) const MAX_REQUESTS: u64 = 2_000_000;

/// What one measurement saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Requests completed.
    pub(crate) requests: u64,
    /// Wall time from the common start to the last worker's end.
    pub(crate) elapsed: Duration,
    /// Latencies in nanoseconds, sorted (empty for the in-process baseline).
    pub(crate) latencies_ns: Vec<u64>,
}

impl Sample {
    /// Requests per second.
    pub(crate) fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.requests as f64 / seconds
        } else {
            0.0
        }
    }

    /// The `q`-quantile latency (nearest rank), in nanoseconds; `None` with no latencies.
    pub(crate) fn percentile_ns(&self, q: f64) -> Option<u64> {
        percentile(&self.latencies_ns, q)
    }
}

/// Nearest-rank quantile of sorted values: the smallest value with at least `q` of the values
/// at or below it.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// One kind of request: where, with what token, the body of the `i`th request of a worker,
/// and the status every answer must have.
pub(crate) struct Load<'a> {
    pub(crate) base: &'a str,
    pub(crate) path: &'a str,
    pub(crate) token: &'a str,
    pub(crate) expected_status: u16,
    pub(crate) body: &'a (dyn Fn(usize, u64) -> String + Sync),
    /// Whether the server has parmana's `/metrics` (the time inside it is read around a row).
    pub(crate) metrics: bool,
    /// The server's process id, whose CPU time is read around a row.
    pub(crate) pid: Option<u32>,
}

/// Linux reports process times in `USER_HZ` ticks, 100 per second on every architecture it
/// exposes them for.
const TICKS_PER_SECOND: u64 = 100;

/// The CPU time (user and system, every thread) a process has used: this one (`None`) or
/// `pid`; `None` where `/proc` cannot tell.
pub(crate) fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |pid| format!("/proc/{pid}/stat"),
    );
    cpu_of_stat(&std::fs::read_to_string(path).ok()?)
}

/// The CPU time (user and system) of this process's children that it has waited for (`cutime`
/// and `cstime` of `/proc/self/stat`): an external driver's, read around its run.
pub(crate) fn children_cpu() -> Option<Duration> {
    children_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `utime + stime` of a `/proc/PID/stat` line (the 14th and 15th fields; the 2nd, the command
/// name in parentheses, may hold spaces).
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    ticks_after(stat, 11)
}

/// `cutime + cstime` of a `/proc/PID/stat` line (the 16th and 17th fields).
fn children_of_stat(stat: &str) -> Option<Duration> {
    ticks_after(stat, 13)
}

/// The sum of the two tick counts `skip` fields after the command name, as a duration.
fn ticks_after(stat: &str, skip: usize) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(skip);
    let first: u64 = fields.next()?.parse().ok()?;
    let second: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (first + second) * 1000 / TICKS_PER_SECOND,
    ))
}

/// Runs `workers` threads, each calling `work(worker, i)` in a loop until `duration` has passed
/// or [`MAX_REQUESTS`] have been made in all; returns the count, the wall time and (when `work`
/// returns them) the latencies. The first error stops every worker and is returned.
fn run_workers<W>(workers: usize, duration: Duration, work: W) -> Result<Sample, String>
where
    W: Fn(usize, u64) -> Result<Option<u64>, String> + Sync,
{
    let barrier = Barrier::new(workers + 1);
    let issued = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (started, outcomes) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let (barrier, issued, stop, work) = (&barrier, &issued, &stop, &work);
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    barrier.wait();
                    let deadline = Instant::now() + duration;
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && issued.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
                    {
                        match work(worker, i) {
                            Ok(Some(latency)) => latencies.push(latency),
                            Ok(None) => {}
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                        i += 1;
                    }
                    Ok((i, latencies, Instant::now()))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let outcomes: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a load worker panicked".to_owned()))
            })
            .collect();
        (started, outcomes)
    });
    sample_of(outcomes, started)
}

/// The sample of every worker's (or connection's) outcome, the first error if any: the requests
/// counted, the time from `started` to the last one's end, the latencies sorted.
fn sample_of(
    outcomes: impl IntoIterator<Item = LoopOutcome>,
    started: Instant,
) -> Result<Sample, String> {
    let mut sample = Sample {
        requests: 0,
        elapsed: Duration::ZERO,
        latencies_ns: Vec::new(),
    };
    for outcome in outcomes {
        let (requests, latencies, ended) = outcome?;
        sample.requests += requests;
        sample.elapsed = sample.elapsed.max(ended.duration_since(started));
        sample.latencies_ns.extend(latencies);
    }
    sample.latencies_ns.sort_unstable();
    Ok(sample)
}

/// Drives `load` over `connections` keep-alive connections (opened before the clock starts)
/// for `duration`, all from one thread: a tokio event loop, in which each connection sends its
/// next request as soon as its answer is read, until the time or [`MAX_REQUESTS`] is up. An error
/// stops every connection; the first in connection order is returned.
pub(crate) fn drive(
    load: &Load<'_>,
    connections: usize,
    duration: Duration,
) -> Result<Sample, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("the driver's event loop: {e}"))?;
    runtime.block_on(drive_all(load, connections, duration))
}

async fn drive_all(
    load: &Load<'_>,
    connections: usize,
    duration: Duration,
) -> Result<Sample, String> {
    let bearer = format!("Bearer {}", load.token);
    let mut headers = vec![("Content-Type", "application/json")];
    if !load.token.is_empty() {
        headers.push(("Authorization", bearer.as_str()));
    }
    let mut opened = (0..connections)
        .map(|_| Connection::open(load.base, load.path, &headers))
        .collect::<Result<Vec<_>, String>>()?;
    let issued = Cell::new(0_u64);
    let stopped = Cell::new(false);
    let started = Instant::now();
    let deadline = started + duration;
    let (issued, stopped) = (&issued, &stopped);
    let loops: Vec<ConnectionLoop<'_>> = opened
        .iter_mut()
        .enumerate()
        .map(|(worker, connection)| {
            Box::pin(async move {
                let mut latencies = Vec::new();
                let mut i = 0_u64;
                while !stopped.get() && Instant::now() < deadline && issued.get() < MAX_REQUESTS {
                    issued.set(issued.get() + 1);
                    let body = (load.body)(worker, i);
                    let start = Instant::now();
                    let answer = match connection.post(body.as_bytes()).await {
                        Ok(answer) => answer,
                        Err(e) => {
                            stopped.set(true);
                            return Err(format!("POST {}: {e}", load.path));
                        }
                    };
                    let latency = start.elapsed();
                    if answer.status != load.expected_status {
                        stopped.set(true);
                        return Err(format!(
                            "POST {} answered {}, not {}: {}",
                            load.path,
                            answer.status,
                            load.expected_status,
                            String::from_utf8_lossy(&answer.body)
                        ));
                    }
                    latencies.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                    i += 1;
                }
                Ok((i, latencies, Instant::now()))
            }) as ConnectionLoop<'_>
        })
        .collect();
    sample_of(join_all(loops).await, started)
}

/// What one connection's loop did: its request count, its latencies and when it ended.
type LoopOutcome = Result<(u64, Vec<u64>, Instant), String>;

/// One connection's loop.
type ConnectionLoop<'a> = Pin<Box<dyn Future<Output = LoopOutcome> + 'a>>;

/// Runs `loops` together on this task, each polled when the task wakes, until all are done: their
/// outcomes in order.
async fn join_all(mut loops: Vec<ConnectionLoop<'_>>) -> Vec<LoopOutcome> {
    let mut outcomes: Vec<Option<LoopOutcome>> = loops.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, outcome) in loops.iter_mut().zip(outcomes.iter_mut()) {
            if outcome.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(done) => *outcome = Some(done),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outcomes.into_iter().flatten().collect()
}

/// Runs `call(worker, i)` on `threads` threads for `duration`: the in-process baseline.
pub(crate) fn in_process<F>(threads: usize, duration: Duration, call: F) -> Result<Sample, String>
where
    F: Fn(usize, u64) -> Result<(), String> + Sync,
{
    run_workers(threads, duration, |worker, i| {
        call(worker, i).map(|()| None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        // (quantile, expected)
        for (q, expected) in [(0.5, 50), (0.99, 99), (1.0, 100), (0.0, 1), (0.001, 1)] {
            assert_eq!(percentile(&values, q), Some(expected), "q = {q}");
        }
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn process_cpu_is_user_plus_system_time() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 125 0 0 20 0 3";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(3750)));
        assert_eq!(cpu_of_stat("4242 (x) S 1"), None);
        assert!(process_cpu(None).is_some());
        let with_children = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 125 40 60 20 0 3";
        assert_eq!(
            children_of_stat(with_children),
            Some(Duration::from_millis(1000))
        );
        assert!(children_cpu().is_some());
    }

    #[test]
    fn workers_stop_at_the_first_error_and_report_it() {
        let result = in_process(2, Duration::from_secs(30), |_, i| {
            if i == 3 {
                Err("refused".to_owned())
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err("refused".to_owned()));
    }

    /// A loopback HTTP/1.1 server answering every request with `status` and `{}`, keeping
    /// connections open; its address and the number of connections it accepted.
    fn fixed_server(status: u16) -> (String, std::sync::Arc<AtomicU64>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(value) = lower.strip_prefix("content-length:") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{{}}"
                        );
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{address}"), accepted)
    }

    #[test]
    fn the_driver_keeps_one_connection_per_worker_and_refuses_unexpected_statuses() {
        let body = |worker: usize, i: u64| format!("{{\"worker\":{worker},\"i\":{i}}}");
        // (server status, expected status, whether the run succeeds)
        for (status, expected, succeeds) in [(200, 200, true), (503, 200, false)] {
            let (base, accepted) = fixed_server(status);
            let load = Load {
                base: &base,
                path: "/v1/evaluations",
                token: "t",
                expected_status: expected,
                body: &body,
                metrics: false,
                pid: None,
            };
            let result = drive(&load, 3, Duration::from_millis(200));
            if succeeds {
                let sample = result.unwrap();
                assert!(sample.requests >= 3, "{sample:?}");
                assert_eq!(sample.latencies_ns.len() as u64, sample.requests);
                assert_eq!(
                    accepted.load(Ordering::SeqCst),
                    3,
                    "keep-alive: one per worker"
                );
            } else {
                let error = result.unwrap_err();
                assert!(error.contains("answered 503, not 200"), "{error}");
            }
        }
    }

    #[test]
    fn workers_count_every_call_and_collect_latencies_sorted() {
        let calls = AtomicU64::new(0);
        let sample = run_workers(3, Duration::from_millis(20), |worker, i| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(Some(1000 - (worker as u64 * 100 + i % 100)))
        })
        .unwrap();
        assert_eq!(sample.requests, calls.load(Ordering::Relaxed));
        assert_eq!(sample.latencies_ns.len() as u64, sample.requests);
        assert!(sample.latencies_ns.windows(2).all(|w| w[0] <= w[1]));
    }
}
