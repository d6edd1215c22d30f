//! The service section of `BENCHMARKS.md`: rows and issue 14's ratios from one `cargo xtask loadtest` run, kept between markers so that `cargo xtask bench-report` and the load test each rewrite only their own part.

use std::fmt::Write as _;

use super::driver::Sample;
use crate::bench_report::Machine;

/// The first and last lines of the section; everything between belongs to the load test.
pub(crate) const BEGIN: &str = "<!-- service section: written by `cargo xtask loadtest` -->";
pub(crate) const END: &str = "<!-- end of service section -->";

/// One measured row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    /// `evaluate`, `execute/memory`, `execute/sqlite` or `in-process/execute`.
    pub(crate) name: String,
    /// Keep-alive connections (threads for the in-process row).
    pub(crate) connections: usize,
    pub(crate) sample: Sample,
    /// The median and 99th-percentile latency (nanoseconds) as an external driver reported them,
    /// for a row whose sample holds no latencies of its own (`wrk`).
    pub(crate) reported_ns: Option<(u64, u64)>,
    /// The upper bound (seconds) of the server's histogram bucket holding the median of this
    /// row's requests, from `/metrics`: the time inside the server, without the client.
    pub(crate) server_p50_le: Option<f64>,
    pub(crate) cpu: Cpu,
}

/// CPU time per request over a row (user and system, all threads, from `/proc`): the server
/// process's and the driver's own. Together they say what each request costs the shared cores.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Cpu {
    /// The server process (for the in-process row, this process: the runtime's calls).
    pub(crate) server: Option<std::time::Duration>,
    /// The load driver (this process), for the HTTP rows.
    pub(crate) driver: Option<std::time::Duration>,
}

/// What one run measured.
pub(crate) struct ServiceReport {
    pub(crate) machine: Machine,
    pub(crate) seconds: u64,
    pub(crate) measurements: Vec<Measurement>,
    /// The 1-minute load average as the run started (`/proc/loadavg`): other work on the machine.
    pub(crate) load_average: Option<String>,
    /// `cedar-agent --version` when its rows were measured.
    pub(crate) cedar_agent: Option<String>,
    /// `wrk -v`'s version when its rows were measured.
    pub(crate) wrk: Option<String>,
    /// The type of the filesystem the durable SQLite rows' store was on (`/proc/self/mounts`).
    pub(crate) store_filesystem: String,
}

impl Measurement {
    /// The median latency in nanoseconds: the driver's report where it gave one, else the
    /// sample's.
    pub(crate) fn p50_ns(&self) -> Option<u64> {
        self.reported_ns
            .map(|(p50, _)| p50)
            .or_else(|| self.sample.percentile_ns(0.5))
    }

    /// The 99th-percentile latency in nanoseconds, as [`p50_ns`](Self::p50_ns).
    pub(crate) fn p99_ns(&self) -> Option<u64> {
        self.reported_ns
            .map(|(_, p99)| p99)
            .or_else(|| self.sample.percentile_ns(0.99))
    }
}

/// The suffix of the rows `wrk` drove (`evaluate (wrk)`, `execute/memory (wrk)`).
pub(crate) const WRK: &str = " (wrk)";

/// The drivers of the evaluation and memory-execution rows: their rows' name suffix and how the
/// ratio rows name them.
const DRIVERS: [(&str, &str); 2] = [("", "our driver"), (WRK, "`wrk`, one thread")];

fn micros(ns: Option<u64>) -> String {
    ns.map_or_else(|| "—".to_owned(), |ns| format!("{:.0} µs", ns as f64 / 1e3))
}

fn status(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

impl ServiceReport {
    fn find(&self, name: &str, connections: usize) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.name == name && m.connections == connections)
    }

    /// The CPU per request of a row, in microseconds: (server, driver).
    fn cpu_us(&self, name: &str, connections: usize) -> (Option<f64>, Option<f64>) {
        let cpu = self
            .measurements
            .iter()
            .find(|m| m.name == name && m.connections == connections)
            .map(|m| m.cpu)
            .unwrap_or_default();
        let us = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        (us(cpu.server), us(cpu.driver))
    }

    /// What the CPU columns say bounds the two unmet-prone targets, from this run's figures:
    /// the p50 floor of evaluations at 8 connections, and the execution ratio were both rows
    /// given the same CPU.
    fn bounds(&self) -> String {
        let mut out = String::new();
        for (suffix, driver) in DRIVERS {
            out.push_str(&self.bounds_of(suffix, driver));
        }
        if !out.is_empty() {
            out.insert_str(0, "\nWhat bounds the rows, from this run's CPU columns.");
            out.push('\n');
        }
        out.push_str(&self.per_connection_bound());
        out
    }

    /// [`bounds`](Self::bounds) for the rows of one driver (`suffix`: its rows' name suffix).
    fn bounds_of(&self, suffix: &str, driver_name: &str) -> String {
        let mut out = String::new();
        let cores = self.machine.cpus.max(1) as f64;
        if let (Some(server), Some(driver)) = self.cpu_us(&format!("evaluate{suffix}"), 8) {
            let total = server + driver;
            let _ = write!(
                out,
                " With {driver_name}: an evaluation at 8 \
                 connections costs {server:.1} µs of server CPU and {driver:.1} µs of driver CPU, \
                 {total:.1} µs in all, so {cores:.0} cores answer at most {:.0} per second and, by \
                 Little's law, the mean latency at 8 connections cannot fall below 8 × {total:.1} ÷ \
                 {cores:.0} = {:.0} µs on this machine, whatever else runs on it (the median sits \
                 near the mean while the latencies are steady; target: a p50 of 100 µs).",
                cores / total * 1e6,
                8.0 * total / cores,
            );
        }
        if let ((Some(server), Some(driver)), (Some(inproc), _)) = (
            self.cpu_us(&format!("execute/memory{suffix}"), 8),
            self.cpu_us("in-process/execute", 8),
        ) {
            let _ = write!(
                out,
                " An execution costs {inproc:.1} µs of CPU in-process and {server:.1} µs (server) + \
                 {driver:.1} µs (driver) over HTTP: given the same CPU, the HTTP row reaches at \
                 most {:.2} of the in-process row ({:.2} counting the server alone, as with \
                 clients on other machines); the throughput ratio above differs from that as far \
                 as the two rows got different shares of the cores.",
                inproc / (server + driver),
                inproc / server,
            );
        }
        out
    }

    /// What one connection beside one thread says of 8 beside 8 on a machine with cores to
    /// spare: each connection and each thread waits for its answer before the next, so their
    /// round trips, not the cores, set the ratio there (an estimate: it takes 8 in-process
    /// threads to do 8 times what 1 does, and a round trip no shorter at 8 connections than at 1;
    /// the second is read from this run).
    fn per_connection_bound(&self) -> String {
        let mean_us = |name: &str, connections: usize| {
            let sample = &self.find(name, connections)?.sample;
            (sample.throughput() > 0.0).then(|| connections as f64 * 1e6 / sample.throughput())
        };
        let (Some(http), Some(inproc)) = (
            mean_us("execute/memory", 1),
            mean_us("in-process/execute", 1),
        ) else {
            return String::new();
        };
        let at_8 = mean_us("execute/memory", 8).map_or_else(String::new, |at_8| {
            format!(
                " (here the mean round trip at 8 connections, 8 ÷ throughput, was {at_8:.1} µs: \
                 {})",
                if at_8 >= http {
                    "no shorter"
                } else {
                    "shorter, so this estimate is low for this run"
                }
            )
        });
        format!(
            "\nWhat the execution ratio comes to with cores to spare: a connection waits for each \
             answer before it sends the next, as an in-process thread waits for each call. At 1 \
             connection an execution took {http:.1} µs from request to answer on average (1 ÷ \
             throughput; our driver), an in-process call with 1 thread {inproc:.1} µs. On a \
             machine with cores to spare, where 8 threads do about 8 times what 1 does (the \
             calls share nothing but the store), 8 connections reach at most 8 ÷ {http:.1} µs \
             per second where 8 threads reach about 8 ÷ {inproc:.1} µs: about {:.2} of the \
             in-process row, unless the round trip itself gets shorter under load{at_8}.\n",
            inproc / http,
        )
    }

    fn throughput_ratio(&self, a: (&str, usize), b: (&str, usize)) -> Option<f64> {
        let (a, b) = (&self.find(a.0, a.1)?.sample, &self.find(b.0, b.1)?.sample);
        (b.throughput() > 0.0).then(|| a.throughput() / b.throughput())
    }

    /// The section, markers included: a pure function of the report.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}");
        out.push_str("## Service (`parmana serve`, issue 14)\n\n");
        let _ = writeln!(
            out,
            "Generated by `cargo xtask loadtest` from one run ({} s per row after a 0.5 s warm-up; \
             commit {}, {} CPUs, {}, 1-minute load average {} as it started): release `parmana serve` on the bundled test trust, \
             `127.0.0.1`, `--dev-token`, logs on (to /dev/null); the driver (`xtask/src/loadtest/http.rs`, \
             a minimal HTTP/1.1 client in the manner of `wrk`: each request one write, each \
             answer read by its `Content-Length`) drives every keep-alive connection of a row \
             from one thread's event loop (tokio, current-thread), in the same {}-core machine \
             as the server, so client and server compete for the cores. `cargo xtask \
             bench-report` keeps this section as it is.\n",
            self.seconds,
            self.machine.commit,
            self.machine.cpus,
            self.machine.cpu_model,
            self.load_average.as_deref().unwrap_or("unknown"),
            self.machine.cpus,
        );
        out.push_str(
            "| row | connections | requests | throughput | p50 | p99 | p50 inside the server | server CPU / request | driver CPU / request |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for m in &self.measurements {
            let inside = m
                .server_p50_le
                .map_or_else(|| "—".to_owned(), |le| format!("≤ {:.0} µs", le * 1e6));
            let cpu = |d: Option<std::time::Duration>| {
                d.map_or_else(
                    || "—".to_owned(),
                    |d| format!("{:.1} µs", d.as_secs_f64() * 1e6),
                )
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {:.0} /s | {} | {} | {inside} | {} | {} |",
                m.name,
                m.connections,
                m.sample.requests,
                m.sample.throughput(),
                micros(m.p50_ns()),
                micros(m.p99_ns()),
                cpu(m.cpu.server),
                cpu(m.cpu.driver),
            );
        }
        out.push_str(
            "\nHow to read it: with `c` connections each waiting for its answer, the mean latency \
             is `c` ÷ throughput (Little's law), and the median sits near it while the latencies \
             are steady, so where the client and the server share two cores, the p50 at 8 and 64 \
             connections measures throughput more than the server's own latency. The last column is the time inside the server \
             (its `/metrics` histogram, from the request reaching the router to its response, \
             read before and after the row): the bucket holding the row's median. The CPU \
             columns are the user and system time (every thread, kernel network stack included, \
             from `/proc`, in 10 ms ticks) the server process and the driver used over the row, \
             per request; for the in-process row, the runtime's own CPU per call. Their sum is \
             what one request costs the machine's cores, so the cores ÷ that sum bounds the \
             throughput, and with it, by Little's law, the latency at 8 and 64 connections. \
             The driver's CPU counts against the HTTP rows and not against the in-process one. ",
        );
        let _ = writeln!(
            out,
            "The durable rows (their store in the build's target directory, on {}, never the \
             temporary directory, which may be kept in memory) wait on the disk's flushes, which \
             other work on a shared machine also makes: the 1-connection SQLite row, and so its \
             ratio, moves the most between runs.",
            self.store_filesystem
        );
        out.push_str("\n| ratio | value | target | status |\n| --- | --- | --- | --- |\n");
        for (suffix, driver) in DRIVERS {
            let p50 = self
                .find(&format!("evaluate{suffix}"), 8)
                .and_then(Measurement::p50_ns);
            let _ = writeln!(
                out,
                "| `POST /v1/evaluations` p50 at 8 connections ({driver}) | {} | at most 100 µs | {} |",
                micros(p50),
                status(p50.map(|ns| ns <= 100_000))
            );
        }
        let memory = |suffix: &str| {
            self.throughput_ratio(
                (&format!("execute/memory{suffix}"), 8),
                ("in-process/execute", 8),
            )
        };
        let sqlite = self.throughput_ratio(("execute/sqlite", 64), ("execute/sqlite", 1));
        let one = self.throughput_ratio(("execute/memory", 1), ("in-process/execute", 1));
        let _ = writeln!(
            out,
            "| `POST /v1/executions` (memory store) at 1 connection ÷ in-process `Runtime::execute` \
             with 1 thread (our driver): about what the 8-connection ratio comes to on a machine \
             with cores to spare | {} | — | {} |",
            one.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}")),
            if one.is_some() { "—" } else { "not measured" },
        );
        for (label, value, bar, target) in [
            (
                "`POST /v1/executions` (memory store) at 8 connections ÷ in-process \
                 `Runtime::execute` with 8 threads (our driver)",
                memory(""),
                0.7,
                "at least 0.70",
            ),
            (
                "`POST /v1/executions` (memory store) at 8 connections ÷ in-process \
                 `Runtime::execute` with 8 threads (`wrk`, one thread)",
                memory(WRK),
                0.7,
                "at least 0.70",
            ),
            (
                "`POST /v1/executions` (durable SQLite) at 64 connections ÷ at 1 connection",
                sqlite,
                3.0,
                "at least 3×",
            ),
        ] {
            let shown = value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "| {label} | {shown} | {target} | {} |",
                status(value.map(|v| v >= bar))
            );
        }
        for connections in [1, 8, 64] {
            let ratio =
                self.throughput_ratio(("evaluate", connections), ("cedar-agent", connections));
            let shown = ratio.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "| `POST /v1/evaluations` ÷ `cedar-agent` `POST /v1/is_authorized`, the same claims \
                 policy and signals: throughput at {connections} connection{} | {shown} | side by side | {} |",
                if connections == 1 { "" } else { "s" },
                if ratio.is_some() {
                    "—"
                } else {
                    "not measured"
                }
            );
        }
        out.push_str(&self.bounds());
        match &self.cedar_agent {
            Some(version) => {
                let _ = writeln!(
                    out,
                    "\n`cedar-agent` rows: `{version}` (built from crates.io with its own lock file: \
                     `cedar-policy` 2.x on Rocket), started on `127.0.0.1` by the load test, the six \
                     rules of `claims-approval@1.0.0` loaded as Cedar `permit`s through its policy \
                     API. It answers Allow/Deny with the satisfied policies; the first of them in \
                     rule order is the decision, and before timing its decision and rule for the \
                     measured signals are checked to equal ours. No authentication on its side, \
                     a bearer token on ours; both log each request."
                );
            }
            None => out.push_str(
                "\n`cedar-agent` rows are measured when `--cedar-agent PATH` names its binary \
                 (`cargo install --locked cedar-agent@0.2.0`; its latest release, 0.2.2, is \
                 marked pre-release). Not in this run.\n",
            ),
        }
        match &self.wrk {
            Some(version) => {
                let _ = writeln!(
                    out,
                    "\nRows marked `(wrk)`: `{version}` (Debian's package), one thread (`-t1`) and \
                     `--latency`, driving the same server, route and bodies (each execution id \
                     once, made in its Lua script) after a 1 s warm-up; their percentiles are \
                     `wrk`'s own and their driver CPU is `wrk`'s. Each runs right after our \
                     driver's row of the same kind. Both drive every connection from one thread's \
                     event loop (`wrk`'s `epoll` loop in C, ours tokio's), so they take about the \
                     same share of the cores for themselves (compare the driver CPU columns); \
                     what else differs between two rows, the server's CPU per request among it, \
                     is the machine's noise between their turns."
                );
            }
            None => out.push_str(
                "\nRows marked `(wrk)` are measured when `--wrk PATH` names Debian's `wrk` \
                 (`apt-get install wrk`): an external driver beside ours, as the issue allows. \
                 Not in this run.\n",
            ),
        }
        let _ = writeln!(out, "{END}");
        out
    }
}

/// `old` (a whole `BENCHMARKS.md`, or nothing) with its service section replaced by `section`,
/// or `section` appended (after a blank line) when `old` has none.
pub(crate) fn keep_service_section(section: &str, old: &str) -> String {
    match split(old) {
        Some((before, _, after)) => format!("{before}{section}{after}"),
        None if old.is_empty() => section.to_owned(),
        None => format!("{}\n\n{section}", old.trim_end()),
    }
}

/// The cumulative buckets `(le, count)` of `parmana_http_request_duration_seconds` for `route`,
/// method POST and `status`, in the order `/metrics` lists them (`+Inf` last, as infinity).
pub(crate) fn histogram_buckets(metrics: &str, route: &str, status: u16) -> Vec<(f64, u64)> {
    let route = format!("route=\"{route}\"");
    let status = format!("status=\"{status}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with("parmana_http_request_duration_seconds_bucket{"))
        .filter(|line| {
            line.contains(&route) && line.contains(&status) && line.contains("method=\"POST\"")
        })
        .filter_map(|line| {
            let le = line
                .split("le=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()?;
            let count = line.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect()
}

/// `after − before`, bucket by bucket (the requests of one measurement).
pub(crate) fn histogram_difference(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(le, count)| {
            let earlier = before.iter().find(|(l, _)| *l == le).map_or(0, |(_, c)| *c);
            (le, count.saturating_sub(earlier))
        })
        .collect()
}

/// The upper bound of the first cumulative bucket holding at least half of the requests; `None`
/// when the median is beyond the last finite bucket or nothing was counted.
pub(crate) fn histogram_median(buckets: &[(f64, u64)]) -> Option<f64> {
    let total = buckets.iter().map(|(_, c)| *c).max()?;
    if total == 0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, count)| count * 2 >= total)
        .map(|(le, _)| *le)
        .filter(|le| le.is_finite())
}

/// A freshly rendered `BENCHMARKS.md` (`cargo xtask bench-report`) with the service section of
/// the `old` one carried over, when it had one.
pub(crate) fn carry_service_section(report: String, old: &str) -> String {
    match split(old) {
        Some((_, section, _)) => keep_service_section(section, &report),
        None => report,
    }
}

/// `text` around its service section: (before, section, after); `None` without a whole section.
pub(crate) fn split(text: &str) -> Option<(&str, &str, &str)> {
    let start = text.find(BEGIN)?;
    let end = start + text[start..].find(END)? + END.len();
    let end = if text[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    Some((&text[..start], &text[start..end], &text[end..]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sample(requests: u64, seconds: u64, latencies_us: &[u64]) -> Sample {
        Sample {
            requests,
            elapsed: Duration::from_secs(seconds),
            latencies_ns: latencies_us.iter().map(|us| us * 1000).collect(),
        }
    }

    fn report(evaluate_p50_us: u64, memory: u64, inproc: u64, sqlite: (u64, u64)) -> ServiceReport {
        let row = |name: &str, connections, sample| Measurement {
            name: name.to_owned(),
            connections,
            sample,
            reported_ns: None,
            server_p50_le: Some(0.0001),
            cpu: Cpu {
                server: Some(Duration::from_micros(40)),
                driver: None,
            },
        };
        ServiceReport {
            machine: Machine {
                cpus: 2,
                cpu_model: "Test CPU".to_owned(),
                rustc: "rustc 1.95.0".to_owned(),
                commit: "`abc1234`".to_owned(),
            },
            seconds: 3,
            cedar_agent: None,
            wrk: None,
            load_average: Some("0.50".to_owned()),
            store_filesystem: "ext4".to_owned(),
            measurements: vec![
                row(
                    "evaluate",
                    8,
                    sample(3, 1, &[evaluate_p50_us, evaluate_p50_us, 900]),
                ),
                row("execute/memory", 1, sample(1_750, 1, &[])),
                row("execute/memory", 8, sample(memory, 1, &[])),
                row("in-process/execute", 1, sample(5_000, 1, &[])),
                row("in-process/execute", 8, sample(inproc, 1, &[])),
                row("execute/sqlite", 1, sample(sqlite.0, 1, &[])),
                row("execute/sqlite", 64, sample(sqlite.1, 1, &[])),
            ],
        }
    }

    #[test]
    fn ratios_are_judged_against_the_issue_targets() {
        // (report, expected lines)
        let cases = [
            (
                report(80, 7_000, 10_000, (100, 300)),
                [
                    "| 80 µs | at most 100 µs | **met** |",
                    "| 0.70 | at least 0.70 | **met** |",
                    "| 3.00 | at least 3× | **met** |",
                ],
            ),
            (
                report(101, 6_900, 10_000, (100, 299)),
                [
                    "| 101 µs | at most 100 µs | **not met** |",
                    "| 0.69 | at least 0.70 | **not met** |",
                    "| 2.99 | at least 3× | **not met** |",
                ],
            ),
        ];
        for (report, expected) in cases {
            let text = report.render();
            for line in expected {
                assert!(text.contains(line), "{line} not in\n{text}");
            }
            assert!(text.starts_with(BEGIN) && text.trim_end().ends_with(END));
            assert!(text.contains("load average 0.50 as it started"), "{text}");
            assert!(text.contains("| 40.0 µs | — |"), "{text}");
            // 1 connection: 1,750 executions a second; 1 in-process thread: 5,000.
            assert!(
                text.contains("with cores to spare | 0.35 | — | — |"),
                "{text}"
            );
            assert!(
                text.contains("an execution took 571.4 µs from request to answer"),
                "{text}"
            );
            assert!(
                text.contains("in-process call with 1 thread 200.0 µs"),
                "{text}"
            );
            assert!(
                text.contains("µs: about 0.35 of the in-process row"),
                "{text}"
            );
            // Without the HTTP rows' CPU, no CPU bound is claimed.
            assert!(!text.contains("What bounds the rows"), "{text}");
        }
        let mut partial = report(80, 1, 1, (1, 1));
        partial.measurements.retain(|m| m.name == "evaluate");
        let text = partial.render();
        assert!(text.contains("| — | at least 0.70 | not measured |"));
        assert!(text.contains("with cores to spare | — | — | not measured |"));
        assert!(
            !text.contains("What the execution ratio comes to"),
            "{text}"
        );
    }

    /// `wrk`'s rows are judged on their own, beside ours, by the percentiles `wrk` reported; and
    /// the section says which `wrk` drove them, or that none did.
    #[test]
    fn rows_driven_by_wrk_are_judged_beside_ours() {
        let mut run = report(112, 7_000, 20_000, (100, 300));
        assert!(
            run.render()
                .contains("Rows marked `(wrk)` are measured when")
        );
        let driven = |name: &str, requests, p50_us: u64| Measurement {
            name: name.to_owned(),
            connections: 8,
            sample: sample(requests, 1, &[]),
            reported_ns: Some((p50_us * 1000, 2_700_000)),
            server_p50_le: None,
            cpu: Cpu {
                server: Some(Duration::from_micros(15)),
                driver: Some(Duration::from_micros(8)),
            },
        };
        run.measurements.push(driven("evaluate (wrk)", 70_000, 93));
        run.measurements
            .push(driven("execute/memory (wrk)", 8_000, 300));
        run.wrk = Some("wrk debian/4.1.0-3+b2 [epoll]".to_owned());
        let text = run.render();
        for line in [
            "| `POST /v1/evaluations` p50 at 8 connections (our driver) | 112 µs | at most 100 µs | **not met** |",
            "| `POST /v1/evaluations` p50 at 8 connections (`wrk`, one thread) | 93 µs | at most 100 µs | **met** |",
            "with 8 threads (our driver) | 0.35 | at least 0.70 | **not met** |",
            "with 8 threads (`wrk`, one thread) | 0.40 | at least 0.70 | **not met** |",
            "| `evaluate (wrk)` | 8 | 70000 | 70000 /s | 93 µs | 2700 µs |",
            // 23 µs per evaluation with wrk: p50 at 8 on 2 cores at least 92 µs.
            "With `wrk`, one thread: an evaluation at 8 connections costs 15.0 µs",
            "8 × 23.0 ÷ 2 = 92 µs",
            "`wrk debian/4.1.0-3+b2 [epoll]` (Debian's package)",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn the_server_median_comes_from_the_difference_of_two_metrics_readings() {
        let metrics = |counts: [u64; 4]| {
            let mut text = String::from("# TYPE parmana_http_request_duration_seconds histogram\n");
            for (le, count) in ["0.00005", "0.0001", "0.0002", "+Inf"].iter().zip(counts) {
                text.push_str(&format!(
                    "parmana_http_request_duration_seconds_bucket{{le=\"{le}\",route=\"/v1/evaluations\",method=\"POST\",status=\"200\"}} {count}\n"
                ));
            }
            // Another route and another status are not counted.
            text.push_str("parmana_http_request_duration_seconds_bucket{le=\"0.00005\",route=\"/v1/executions\",method=\"POST\",status=\"201\"} 99\n");
            text.push_str("parmana_http_request_duration_seconds_bucket{le=\"0.00005\",route=\"/v1/evaluations\",method=\"POST\",status=\"400\"} 99\n");
            text
        };
        let before = histogram_buckets(&metrics([10, 10, 10, 10]), "/v1/evaluations", 200);
        assert_eq!(
            before,
            vec![
                (0.00005, 10),
                (0.0001, 10),
                (0.0002, 10),
                (f64::INFINITY, 10)
            ]
        );
        // (after, expected median bucket): the 10 earlier requests are not counted.
        for (after, expected) in [
            ([10, 15, 20, 20], Some(0.0001)),
            ([11, 12, 20, 20], Some(0.0002)),
            ([10, 11, 12, 40], None),
            ([10, 10, 10, 10], None),
        ] {
            let now = histogram_buckets(&metrics(after), "/v1/evaluations", 200);
            assert_eq!(
                histogram_median(&histogram_difference(&now, &before)),
                expected,
                "{after:?}"
            );
        }
    }

    #[test]
    fn the_cpu_columns_bound_the_latency_and_the_ratio() {
        let mut run = report(80, 7_000, 10_000, (100, 300));
        let cpu = |server: u64, driver: Option<u64>| Cpu {
            server: Some(Duration::from_micros(server)),
            driver: driver.map(Duration::from_micros),
        };
        for m in &mut run.measurements {
            m.cpu = match m.name.as_str() {
                "evaluate" => cpu(20, Some(20)),
                "execute/memory" => cpu(60, Some(20)),
                "in-process/execute" => cpu(40, None),
                _ => m.cpu,
            };
        }
        let text = run.render();
        // 40 µs per evaluation on 2 cores: 50,000 per second, p50 at 8 at least 160 µs.
        assert!(text.contains("answer at most 50000 per second"), "{text}");
        assert!(text.contains("8 × 40.0 ÷ 2 = 160 µs"), "{text}");
        // 40 µs in-process against 60 + 20 over HTTP.
        assert!(
            text.contains("at most 0.50 of the in-process row (0.67"),
            "{text}"
        );
    }

    #[test]
    fn the_section_is_replaced_in_place_or_appended() {
        let section = format!("{BEGIN}\nnew\n{END}\n");
        // (old file, expected file)
        let cases = [
            (String::new(), section.clone()),
            (
                "# Benchmarks\n\nrows\n".to_owned(),
                format!("# Benchmarks\n\nrows\n\n{section}"),
            ),
            (
                format!("# Benchmarks\n\n{BEGIN}\nold\n{END}\n## Notes\n"),
                format!("# Benchmarks\n\n{section}## Notes\n"),
            ),
            // An unterminated section is not a section: appended, nothing lost.
            (
                format!("text\n{BEGIN}\nold\n"),
                format!("text\n{BEGIN}\nold\n\n{section}"),
            ),
        ];
        for (old, expected) in cases {
            assert_eq!(keep_service_section(&section, &old), expected, "{old:?}");
        }
        // bench-report's rewrite keeps the section of the file it replaces.
        let old = format!("# Benchmarks\n\nold rows\n\n{section}");
        assert_eq!(
            carry_service_section("# Benchmarks\n\nnew rows\n".to_owned(), &old),
            format!("# Benchmarks\n\nnew rows\n\n{section}")
        );
        assert_eq!(
            carry_service_section("new\n".to_owned(), "no section"),
            "new\n"
        );
    }
}
