//! Prometheus metrics (`prometheus-client`): requests and latency by route and status, executions by decision and by error code, runtime-call, store-operation and store-probe latency, reloads, shedding, connections, readiness, the environment's versions and expiry, the sequencer's runs and the log's size, the build.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's labels. The route and method are borrowed for the routes and methods the
/// server knows (no allocation per request), owned otherwise.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: Cow<'static, str>,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Which signed document of the environment: `trust_root` or `release_manifest`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DocumentLabels {
    document: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// How one run of the background sequencer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequencerRun {
    /// It ran; the log holds `size` records as it knows it.
    Ran { size: u64 },
    /// Another server's integrator held the ledger: nothing appended.
    Busy,
    /// It failed (logged as `sequencer run failed`); the completions wait in their rows.
    Failed,
}

/// One signed document of the environment in force, as a scrape exports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvironmentDocument {
    /// `trust_root` or `release_manifest`.
    pub(crate) document: &'static str,
    pub(crate) version: u64,
    pub(crate) expires: parmana_runtime::canon::Timestamp,
}

/// Buckets from 25 µs doubling to about 52 s: past twice the longest request timeout a
/// deployment commonly sets and a cosigning round's two 10 s answers, so that a timed-out request
/// or a stalled store lands in a bucket of its own, not only in `+Inf`.
pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_025, 2.0, LATENCY_BUCKETS))
}

/// How many finite buckets [`latency_histogram`] has.
pub(crate) const LATENCY_BUCKETS: u16 = 22;

/// Every metric the server exports, registered once.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    executions: Family<DecisionLabels, Counter>,
    execution_errors: Family<CodeLabels, Counter>,
    runtime_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    store_probe_seconds: Histogram,
    reloads: Family<OutcomeLabels, Counter>,
    shed: Counter,
    in_flight: Gauge,
    connections: ConnectionCounts,
    ready: Gauge,
    environment_version: Family<DocumentLabels, Gauge>,
    environment_expiry: Family<DocumentLabels, Gauge>,
    sequencer_runs: Family<OutcomeLabels, Counter>,
    cosignings: Family<OutcomeLabels, Counter>,
    log_entries: Gauge,
    /// When the TLS certificate in force expires, when the server serves TLS.
    tls_expiry: Option<Gauge>,
    /// Held by one scrape while it reads the environment and encodes (see [`Metrics::scrape`]).
    scrape_turn: tokio::sync::Mutex<()>,
}

/// The connection slots' counts, kept by the acceptor (`lifecycle::Limited`): the connections
/// holding a slot now, and those closed when accepted because none was free.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionCounts {
    pub(crate) open: Gauge,
    pub(crate) refused: Counter,
    /// Connections closed before any request of theirs reached the router.
    pub(crate) without_request: Counter,
    /// Failures of the listener to accept a connection (`accept(2)` refused), each retried.
    pub(crate) accept_failures: Counter,
}

impl Metrics {
    /// Every metric, the store's timings (`store_timings`, recorded by the store's wrapper)
    /// among them.
    /// The metrics of a server whose store is timed by `store_timings` and whose TLS
    /// certificate, when it serves TLS, expires at `tls_not_after`.
    pub(crate) fn new(
        store_timings: &crate::StoreTimings,
        tls_not_after: Option<parmana_runtime::canon::Timestamp>,
    ) -> Self {
        let mut registry = Registry::with_prefix("parmana");
        let tls_expiry = tls_not_after.map(|not_after| {
            // Read at start and by every reload: the one alert on expiry covers it beside the
            // environment's documents.
            let tls_expiry: Gauge = Gauge::default();
            tls_expiry.set(not_after.unix_seconds());
            registry.register(
                "tls_certificate_expiry_timestamp_seconds",
                "When the server's TLS certificate in force expires (Unix seconds): read at start \
                 and by each reload; after it, /readyz answers 503",
                tls_expiry.clone(),
            );
            tls_expiry
        });
        registry.register(
            "store_operation_duration_seconds",
            "Replay store latency, by operation (claim, complete, claim_completed, get, \
             pending_after, accepted_versions, accept_versions, sequence, store_checkpoint, \
             latest_checkpoint, checkpoints_from, ledger_summary, ledger_rows, ledger_records), \
             failed calls \
             included",
            store_timings.family(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route, method and status",
            request_seconds.clone(),
        );
        let executions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "executions",
            "Executions completed (attestation signed and recorded), by decision",
            executions.clone(),
        );
        let execution_errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "execution_errors",
            "Executions refused, by stable error code",
            execution_errors.clone(),
        );
        let runtime_seconds =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "runtime_call_duration_seconds",
            "Time in the runtime (on the blocking pool), by operation: execute (claim and \
             completion in the store included), evaluate, read, verify, reload, recover, log, \
             load (the whole ledger read before ready), sequence, cosign, probe, accept (the \
             versions in force recorded in the store's marks), parse (a request body over 16 \
             KiB, or an AuthZEN boxcar's, read on the blocking pool)",
            runtime_seconds.clone(),
        );
        let store_probe_seconds = latency_histogram();
        registry.register(
            "store_probe_duration_seconds",
            "Latency of the replay store's readiness probe (one read of its high-water marks)",
            store_probe_seconds.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reloads",
            "Environment reloads (SIGHUP or POST /v1/admin/reload), by outcome: ok or refused",
            reloads.clone(),
        );
        // At 0 from the start: an alert on `increase(…{outcome="refused"}[…]) > 0` sees a
        // process's first refused reload (a series that appears at 1 has no increase).
        for outcome in ["ok", "refused"] {
            let _ = reloads.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        let shed = Counter::default();
        registry.register(
            "requests_shed",
            "Requests refused with 503 because the concurrency limit or the request-body budget was reached",
            shed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests holding one of the max_concurrency slots as the metrics are read: being \
             answered, or an execution still running past its answer (read at each scrape)",
            in_flight.clone(),
        );
        let connections = ConnectionCounts::default();
        registry.register(
            "connections_open",
            "Connections holding one of the max_connections slots (TLS handshakes included)",
            connections.open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed when accepted because all max_connections slots were held",
            connections.refused.clone(),
        );
        registry.register(
            "accept_failures",
            "Failures of the listening socket to accept a connection (out of open files, \
             memory or buffers): no connection is taken until one succeeds, retried every 50 ms",
            connections.accept_failures.clone(),
        );
        registry.register(
            "connections_without_request",
            "Connections that held a slot and closed before any request of theirs reached the \
             router (so counted in no http_requests_total series): a failed TLS handshake, a \
             request head refused by HTTP/1.1 itself (400, 414, 431 unparsed) or not sent within \
             idle_timeout_ms, a client that sent nothing (TCP health checks count here)",
            connections.without_request.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /readyz answers 200, else 0 (worked out afresh for every scrape)",
            ready.clone(),
        );
        let environment_version = Family::<DocumentLabels, Gauge>::default();
        registry.register(
            "environment_version",
            "Version of the environment's signed documents in force, by document: trust_root or \
             release_manifest (worked out afresh for every scrape)",
            environment_version.clone(),
        );
        let environment_expiry = Family::<DocumentLabels, Gauge>::default();
        registry.register(
            "environment_expiry_timestamp_seconds",
            "When the environment's signed documents in force expire (Unix seconds), by \
             document: after that the server refuses to decide until a reload brings newer ones",
            environment_expiry.clone(),
        );
        let sequencer_runs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sequencer_runs",
            "Background sequencer runs, by outcome: ok, busy (another server's integrator held \
             the ledger) or failed (the completions wait, durable, for the next run)",
            sequencer_runs.clone(),
        );
        // Every outcome from the start, at 0: the family is there before the first run, and a
        // rate over a failure that has not happened yet reads 0, not nothing.
        for outcome in ["ok", "busy", "failed"] {
            let _ = sequencer_runs.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        let cosignings = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "checkpoint_cosignings",
            "Rounds of having the newest checkpoint cosigned by the configured witnesses \
             (--witness-url), by outcome: cosigned (the trust root's witness threshold met: the \
             log routes serve it) or failed (the last cosigned checkpoint is still served); a \
             round with nothing new to cosign is not counted",
            cosignings.clone(),
        );
        for outcome in ["cosigned", "failed"] {
            let _ = cosignings.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        let log_entries = Gauge::default();
        registry.register(
            "log_entries",
            "Records in the transparency log (the ledger) as the last sequencer run that ran \
             knew it",
            log_entries.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "build_info",
            "1, labelled with the runtime's version",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: parmana_runtime::RUNTIME_VERSION,
            })
            .set(1);
        Self {
            registry,
            requests,
            request_seconds,
            executions,
            execution_errors,
            runtime_seconds,
            store_probe_seconds,
            reloads,
            shed,
            in_flight,
            connections,
            ready,
            environment_version,
            environment_expiry,
            sequencer_runs,
            cosignings,
            log_entries,
            tls_expiry,
            scrape_turn: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn request(
        &self,
        route: Cow<'static, str>,
        method: Cow<'static, str>,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn execution(&self, decision: &str) {
        self.executions
            .get_or_create(&DecisionLabels {
                decision: decision.to_owned(),
            })
            .inc();
    }

    pub(crate) fn execution_error(&self, code: &str) {
        self.execution_errors
            .get_or_create(&CodeLabels {
                code: code.to_owned(),
            })
            .inc();
    }

    pub(crate) fn runtime_call(&self, operation: &'static str, elapsed: Duration) {
        self.runtime_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn store_probe(&self, elapsed: Duration) {
        self.store_probe_seconds.observe(elapsed.as_secs_f64());
    }

    /// The TLS certificate a reload put in force expires at `not_after`.
    pub(crate) fn set_tls_expiry(&self, not_after: parmana_runtime::canon::Timestamp) {
        if let Some(gauge) = &self.tls_expiry {
            gauge.set(not_after.unix_seconds());
        }
    }

    pub(crate) fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "refused" }.to_owned(),
            })
            .inc();
    }

    /// One round of cosigning, by outcome (`cosigned` or `failed`).
    pub(crate) fn cosigning(&self, outcome: &str) {
        self.cosignings
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub(crate) fn shed(&self) {
        self.shed.inc();
    }

    /// The counts the acceptor keeps (shared: they are the ones `/metrics` reports).
    pub(crate) fn connection_counts(&self) -> ConnectionCounts {
        self.connections.clone()
    }

    /// Sets how many requests hold a concurrency slot (read as the metrics are).
    fn set_requests_in_flight(&self, requests: usize) {
        self.in_flight
            .set(i64::try_from(requests).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The text of one scrape. The environment's documents are read by `documents` (each named
    /// `trust_root` or `release_manifest`, with its version and when it expires) while this
    /// scrape holds the scrapes' turn, and exported in the same turn: two scrapes beside a reload
    /// never export a trust root and a release manifest that were never in force together, and
    /// a later scrape never exports an older environment than an earlier one. Scrapes waiting
    /// for their turn wait as tasks, never blocking a worker thread.
    pub(crate) async fn scrape(
        &self,
        documents: impl FnOnce() -> [EnvironmentDocument; 2],
        requests_in_flight: usize,
    ) -> Result<String, std::fmt::Error> {
        let _turn = self.scrape_turn.lock().await;
        for document in documents() {
            self.set_document(document);
        }
        self.set_requests_in_flight(requests_in_flight);
        self.encode()
    }

    /// Sets the figures of one signed document of the environment in force.
    fn set_document(&self, document: EnvironmentDocument) {
        let EnvironmentDocument {
            document,
            version,
            expires,
        } = document;
        let labels = DocumentLabels { document };
        self.environment_version
            .get_or_create(&labels)
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.environment_expiry
            .get_or_create(&labels)
            .set(expires.unix_seconds());
    }

    /// Counts one run of the background sequencer, and the log's size after one that ran.
    pub(crate) fn sequencer_run(&self, run: SequencerRun) {
        let outcome = match run {
            SequencerRun::Ran { size } => {
                self.log_entries
                    .set(i64::try_from(size).unwrap_or(i64::MAX));
                "ok"
            }
            SequencerRun::Busy => "busy",
            SequencerRun::Failed => "failed",
        };
        self.sequencer_runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use parmana_runtime::canon::Timestamp;

    use super::{EnvironmentDocument, Metrics};

    fn documents(version: u64) -> [EnvironmentDocument; 2] {
        let expires = Timestamp::from_unix_seconds_saturating(4_102_444_800);
        [
            EnvironmentDocument {
                document: "trust_root",
                version,
                expires,
            },
            EnvironmentDocument {
                document: "release_manifest",
                version,
                expires,
            },
        ]
    }

    /// Runs `future` on a runtime of its own (each scrape of the test on its own thread).
    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn versions(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("parmana_environment_version{"))
            .collect();
        lines.sort_unstable();
        lines
    }

    /// A scrape that reads the environment while another one, which read an older environment,
    /// is still exporting it waits its turn: its text holds the newer pair whole, never the older
    /// scrape's trust root beside its own release manifest.
    #[test]
    fn a_scrape_reads_and_exports_the_environment_in_one_turn() {
        let metrics = &Metrics::new(&crate::StoreTimings::new(), None);
        let (inside, is_inside) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let older = scope.spawn(move || {
                block_on(metrics.scrape(
                    move || {
                        let read = documents(1);
                        inside.send(()).unwrap();
                        // A reload lands here, between this scrape's read and its export.
                        released.recv().unwrap();
                        read
                    },
                    0,
                ))
            });
            is_inside.recv().unwrap();
            let (done, is_done) = mpsc::channel();
            let newer = scope.spawn(move || {
                let text = block_on(metrics.scrape(|| documents(2), 0));
                done.send(()).unwrap();
                text
            });
            let waited = is_done.recv_timeout(Duration::from_millis(200)).is_err();
            release.send(()).unwrap();
            assert!(
                waited,
                "a scrape exported while another was between its read and its export"
            );
            let older = older.join().unwrap().unwrap();
            let newer = newer.join().unwrap().unwrap();
            assert_eq!(
                versions(&older),
                [
                    "parmana_environment_version{document=\"release_manifest\"} 1",
                    "parmana_environment_version{document=\"trust_root\"} 1",
                ]
            );
            assert_eq!(
                versions(&newer),
                [
                    "parmana_environment_version{document=\"release_manifest\"} 2",
                    "parmana_environment_version{document=\"trust_root\"} 2",
                ]
            );
        });
    }
}
