//! `cargo xtask loadtest`: drives a release `parmana serve` over loopback with keep-alive connections and writes the service section of `BENCHMARKS.md` (issue 14's rows and ratios, one run).
//!
//! Measured in one run, on the bundled test trust, against servers this command starts on
//! `127.0.0.1` (port 0) and stops:
//! - `POST /v1/evaluations`: p50 and p99 latency and throughput at 1, 8 and 64 connections;
//! - `POST /v1/executions` with the memory store at 8 connections, against the in-process
//!   `Runtime::execute` with 8 threads (same environment, same signals, parsing included);
//! - `POST /v1/executions` with a durable SQLite store at 1 and 64 connections.
//!
//! Every measurement is bounded in time (`--seconds`, at most 60) and in count
//! ([`driver::MAX_REQUESTS`]); traffic goes to the loopback address only. Run from a debug build
//! (the `cargo xtask` alias), it re-runs itself with `--release`: the baseline and the server
//! must both be optimised builds. `--no-write` prints the section without touching
//! `BENCHMARKS.md`.

mod cedar;
mod driver;
mod http;
mod report;
mod wrk;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parmana_runtime::replay::MemoryReplayStore;
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{ExecutionRequest, Runtime, RuntimeEnvironmentConfig};

use driver::{Load, Sample};
use report::{Measurement, ServiceReport};
pub(crate) use report::{carry_service_section, keep_service_section};

/// The README's signals (decided by the default rule).
const SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;
const POLICY: &str = "claims-approval@1.0.0";

/// How long each measurement runs unless `--seconds` says otherwise, and the most it may.
const DEFAULT_SECONDS: u64 = 3;
const MAX_SECONDS: u64 = 60;
/// Warm-up before each measurement (connections opened, caches filled); not counted.
const WARM_UP: Duration = Duration::from_millis(500);

struct Options {
    seconds: u64,
    write: bool,
    binary: Option<PathBuf>,
    cedar_agent: Option<PathBuf>,
    wrk: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        write: true,
        binary: None,
        cedar_agent: None,
        wrk: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-write" => options.write = false,
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a value")?;
                options.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_SECONDS).contains(s))
                    .ok_or_else(|| format!("--seconds: 1 to {MAX_SECONDS}, not {value}"))?;
            }
            "--binary" => {
                options.binary = Some(PathBuf::from(args.next().ok_or("--binary needs a path")?));
            }
            "--cedar-agent" => {
                let path = args.next().ok_or("--cedar-agent needs a path")?;
                options.cedar_agent = Some(PathBuf::from(path));
            }
            "--wrk" => {
                options.wrk = Some(PathBuf::from(args.next().ok_or("--wrk needs a path")?));
            }
            other => {
                return Err(format!(
                    "loadtest: unknown argument {other} (usage: cargo xtask loadtest \
                     [--seconds N] [--no-write] [--binary PATH] [--cedar-agent PATH] [--wrk PATH])"
                ));
            }
        }
    }
    Ok(options)
}

/// `cargo xtask loadtest [--seconds N] [--no-write] [--binary PATH] [--cedar-agent PATH]
/// [--wrk PATH]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    if cfg!(debug_assertions) {
        // The in-process baseline runs in this process: it must be an optimised build.
        let status = Command::new(&cargo)
            .args([
                "run",
                "--quiet",
                "--release",
                "--locked",
                "--package",
                "xtask",
                "--",
                "loadtest",
            ])
            .args(args)
            .current_dir(root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("the release loadtest failed ({status})"))
        };
    }
    let binary = match options.binary {
        Some(binary) => binary,
        None => {
            let status = Command::new(&cargo)
                .args([
                    "build",
                    "--quiet",
                    "--release",
                    "--locked",
                    "--package",
                    "parmana-cli",
                ])
                .current_dir(root)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() {
                return Err(format!("building parmana failed ({status})"));
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("release/parmana")
        }
    };
    let duration = Duration::from_secs(options.seconds);
    let machine = crate::bench_report::machine(root);
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned));
    let cedar_agent = match &options.cedar_agent {
        Some(path) => Some(version_of(path)?),
        None => None,
    };
    let wrk = match &options.wrk {
        Some(path) => Some(wrk::version(path)?),
        None => None,
    };
    let drivers = Drivers {
        cedar_agent: options.cedar_agent.as_deref(),
        wrk: options.wrk.as_deref(),
    };
    let (store_dir, store_filesystem) = durable_store_dir(root)?;
    let measurements = measure(root, &binary, &drivers, &store_dir, duration);
    let _ = std::fs::remove_dir_all(&store_dir);
    let report = ServiceReport {
        machine,
        seconds: options.seconds,
        measurements: measurements?,
        cedar_agent,
        wrk,
        load_average,
        store_filesystem,
    };
    let section = report.render();
    print!("{section}");
    if options.write {
        let path = root.join("BENCHMARKS.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = keep_service_section(&section, &old);
        std::fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote the service section of {}", path.display());
    }
    Ok(())
}

/// What `PATH --version` prints (`cedar-agent 0.2.0`).
fn version_of(path: &Path) -> Result<String, String> {
    let output = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !version.is_empty() {
        Ok(version)
    } else {
        Err(format!("{} --version failed", path.display()))
    }
}

/// A `parmana serve` started for the measurement; stopped when dropped.
struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Server {
    fn start(root: &Path, binary: &Path, store: &str) -> Result<Self, String> {
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--dev-token",
                "--max-concurrency",
                "1024",
            ])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        // Held from here on, so that every early return below stops the process.
        let mut server = Self {
            child,
            base: String::new(),
            token: String::new(),
        };
        let stdout = server.child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut next = || -> Result<String, String> {
            lines
                .next()
                .ok_or("the server stopped before printing its address (run `parmana serve` by hand to see why)")?
                .map_err(|e| e.to_string())
        };
        let (first, second) = (next()?, next()?);
        match (
            first.strip_prefix("listening on "),
            second.strip_prefix("token: "),
        ) {
            (Some(base), Some(token)) => {
                server.base = base.to_owned();
                server.token = token.to_owned();
            }
            _ => return Err(format!("unexpected server output: {first:?}, {second:?}")),
        }
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        for _ in 0..400 {
            if let Ok(response) = agent.get(format!("{}/readyz", self.base)).call()
                && response.status() == 200
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err("the server never became ready".to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Warms up, then measures `load` over `connections` connections, with the server's own
/// latency histogram read before and after.
fn measured(
    name: &str,
    load: &Load<'_>,
    connections: usize,
    duration: Duration,
) -> Result<Measurement, String> {
    driver::drive(load, connections, WARM_UP)?;
    let before = if load.metrics {
        server_histogram(load)?
    } else {
        Vec::new()
    };
    let cpu_before = (
        driver::process_cpu(None),
        load.pid.and_then(|pid| driver::process_cpu(Some(pid))),
    );
    let sample = driver::drive(load, connections, duration)?;
    let cpu_after = (
        driver::process_cpu(None),
        load.pid.and_then(|pid| driver::process_cpu(Some(pid))),
    );
    let per_request = |before: Option<Duration>, after: Option<Duration>| {
        let used = after?.checked_sub(before?)?;
        let requests = u32::try_from(sample.requests).ok().filter(|n| *n > 0)?;
        Some(used / requests)
    };
    let cpu = report::Cpu {
        server: per_request(cpu_before.1, cpu_after.1),
        driver: per_request(cpu_before.0, cpu_after.0),
    };
    let server_p50_le = if load.metrics {
        let after = server_histogram(load)?;
        report::histogram_median(&report::histogram_difference(&after, &before))
    } else {
        None
    };
    eprintln!(
        "{name} at {connections}: {} requests, {:.0}/s",
        sample.requests,
        sample.throughput()
    );
    Ok(Measurement {
        name: name.to_owned(),
        connections,
        sample,
        reported_ns: None,
        server_p50_le,
        cpu,
    })
}

/// [`measured`], driven by `wrk` (one thread) instead of our driver: the same server and route,
/// the latency percentiles as `wrk` reports them, its CPU as the driver's.
fn measured_by_wrk(
    wrk_path: &Path,
    name: &str,
    load: &Load<'_>,
    bodies: &wrk::Bodies<'_>,
    connections: usize,
    duration: Duration,
) -> Result<Measurement, String> {
    let url = format!("{}{}", load.base, load.path);
    // A second's warm-up (`wrk` takes whole seconds), not counted.
    wrk::drive(wrk_path, &url, load.token, bodies, connections, WARM_UP)?;
    let before = server_histogram(load)?;
    let server_before = load.pid.and_then(|pid| driver::process_cpu(Some(pid)));
    let run = wrk::drive(wrk_path, &url, load.token, bodies, connections, duration)?;
    let server_after = load.pid.and_then(|pid| driver::process_cpu(Some(pid)));
    let after = server_histogram(load)?;
    let per_request =
        |used: Option<Duration>| Some(used? / u32::try_from(run.requests).ok().filter(|n| *n > 0)?);
    let cpu = report::Cpu {
        server: per_request(
            server_after
                .zip(server_before)
                .and_then(|(a, b)| a.checked_sub(b)),
        ),
        driver: per_request(run.cpu),
    };
    eprintln!(
        "{name} at {connections}: {} requests, {:.0}/s",
        run.requests, run.throughput
    );
    Ok(Measurement {
        name: name.to_owned(),
        connections,
        sample: Sample {
            requests: run.requests,
            elapsed: Duration::from_secs_f64(run.requests as f64 / run.throughput.max(1e-9)),
            latencies_ns: Vec::new(),
        },
        reported_ns: Some((run.p50_ns, run.p99_ns)),
        server_p50_le: report::histogram_median(&report::histogram_difference(&after, &before)),
        cpu,
    })
}

/// The server's cumulative `parmana_http_request_duration_seconds` buckets of `load`'s route
/// (POST, its expected status), from `/metrics`.
fn server_histogram(load: &Load<'_>) -> Result<Vec<(f64, u64)>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(format!("{}/metrics", load.base))
        .header("Authorization", &format!("Bearer {}", load.token))
        .call()
        .map_err(|e| format!("GET /metrics: {e}"))?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET /metrics: {e}"))?;
    Ok(report::histogram_buckets(
        &text,
        load.path,
        load.expected_status,
    ))
}

/// Execution bodies with ids fresh across workers, warm-up and measurement.
fn execution_body(prefix: &str) -> impl Fn(usize, u64) -> String + Sync + '_ {
    let next = AtomicU64::new(0);
    move |_, _| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        format!(r#"{{"policy":"{POLICY}","signals":{SIGNALS},"execution_id":"{prefix}-{n}"}}"#)
    }
}

/// The other programs a run drives or compares with, where given.
struct Drivers<'a> {
    cedar_agent: Option<&'a Path>,
    wrk: Option<&'a Path>,
}

/// Where the durable SQLite rows keep their store, and the type of the filesystem it is on: a
/// folder of the build's target directory (`CARGO_TARGET_DIR`, else `target/`), never the
/// temporary directory, which Debian 13 and many CI containers keep in memory (tmpfs), where a
/// flush costs nothing and the rows would not be durable. Refused on a filesystem in memory all
/// the same.
fn durable_store_dir(root: &Path) -> Result<(PathBuf, String), String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join(format!("loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let judged = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|canonical| {
            let mounts = std::fs::read_to_string("/proc/self/mounts")
                .map_err(|e| format!("/proc/self/mounts: {e}"))?;
            let filesystem = filesystem_of(&mounts, &canonical)
                .ok_or_else(|| format!("{}: on no mount /proc/self/mounts lists", dir.display()))?
                .to_owned();
            if IN_MEMORY_FILESYSTEMS.contains(&filesystem.as_str()) {
                return Err(format!(
                    "{} is on {filesystem}, in memory: the durable SQLite rows need a disk (set \
                     CARGO_TARGET_DIR to a folder on one)",
                    dir.display()
                ));
            }
            Ok(filesystem)
        });
    match judged {
        Ok(filesystem) => Ok((dir, filesystem)),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(error)
        }
    }
}

/// Filesystems kept in memory, where a flush costs nothing.
const IN_MEMORY_FILESYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

/// The type of the filesystem `path` (absolute, without `..` or links) is on, from the text of
/// `/proc/self/mounts`: that of the last-mounted of the longest mount points that are `path`
/// or a folder above it (a mount point's spaces and other bytes written as octal escapes,
/// `\040`, decoded).
fn filesystem_of<'m>(mounts: &'m str, path: &Path) -> Option<&'m str> {
    let mut best: Option<(usize, &str)> = None;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(_device), Some(point), Some(kind)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let point = PathBuf::from(unescape_mount_point(point));
        if path.starts_with(&point) {
            let depth = point.components().count();
            if best.is_none_or(|(deepest, _)| depth >= deepest) {
                best = Some((depth, kind));
            }
        }
    }
    best.map(|(_, kind)| kind)
}

/// A mount point as `/proc/self/mounts` writes it, its octal escapes (`\040` for a space)
/// decoded.
fn unescape_mount_point(written: &str) -> String {
    let bytes = written.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes
            .get(at + 1..at + 4)
            .filter(|digits| bytes[at] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn measure(
    root: &Path,
    binary: &Path,
    drivers: &Drivers<'_>,
    store_dir: &Path,
    duration: Duration,
) -> Result<Vec<Measurement>, String> {
    let run = format!("lt{}", std::process::id());
    let mut out = Vec::new();

    let memory = Server::start(root, binary, "memory")?;
    let evaluation = format!(r#"{{"policy":"{POLICY}","signals":{SIGNALS}}}"#);
    let evaluate_body = |_: usize, _: u64| evaluation.clone();
    let evaluate = Load {
        base: &memory.base,
        path: "/v1/evaluations",
        token: &memory.token,
        expected_status: 200,
        body: &evaluate_body,
        metrics: true,
        pid: Some(memory.child.id()),
    };
    let ours = decision_of_ours(&memory)?;
    // Each driver's row right after ours, so that both meet the server in the same state.
    let fixed = wrk::Bodies::Fixed(&evaluation);
    for connections in [1, 8, 64] {
        out.push(measured("evaluate", &evaluate, connections, duration)?);
        if let Some(wrk) = drivers.wrk {
            out.push(measured_by_wrk(
                wrk,
                "evaluate (wrk)",
                &evaluate,
                &fixed,
                connections,
                duration,
            )?);
        }
    }
    let prefix = format!("{run}-memory");
    let memory_body = execution_body(&prefix);
    let execute = Load {
        base: &memory.base,
        path: "/v1/executions",
        token: &memory.token,
        expected_status: 201,
        body: &memory_body,
        metrics: true,
        pid: Some(memory.child.id()),
    };
    // One connection as well: a connection waits for each answer, so what one connection does
    // beside one in-process thread bounds what 8 do beside 8 threads, whatever the cores.
    for connections in [1, 8] {
        out.push(measured("execute/memory", &execute, connections, duration)?);
    }
    if let Some(wrk) = drivers.wrk {
        let prefix = format!("{run}-wrk");
        let bodies = wrk::Bodies::Executions {
            policy: POLICY,
            signals: SIGNALS,
            prefix: &prefix,
        };
        out.push(measured_by_wrk(
            wrk,
            "execute/memory (wrk)",
            &execute,
            &bodies,
            8,
            duration,
        )?);
    }
    drop(memory);

    if let Some(path) = drivers.cedar_agent {
        out.extend(measure_cedar_agent(path, &ours, duration)?);
    }
    for threads in [1, 8] {
        out.push(in_process(root, &run, threads, duration)?);
    }

    out.extend(measure_sqlite(root, binary, &run, store_dir, duration)?);
    Ok(out)
}

/// Our `(decision, rule_id)` for the measured signals.
fn decision_of_ours(server: &Server) -> Result<(String, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("{}/v1/evaluations", server.base))
        .header("Authorization", &format!("Bearer {}", server.token))
        .header("Content-Type", "application/json")
        .send(format!(r#"{{"policy":"{POLICY}","signals":{SIGNALS}}}"#).as_str())
        .map_err(|e| format!("POST /v1/evaluations: {e}"))?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("POST /v1/evaluations: {e}"))?;
    let answer: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    match (answer["decision"].as_str(), answer["rule_id"].as_str()) {
        (Some(decision), Some(rule)) => Ok((decision.to_owned(), rule.to_owned())),
        _ => Err(format!("POST /v1/evaluations: no decision in {text}")),
    }
}

/// The same signals through `cedar-agent` at 1, 8 and 64 connections, once it has been shown to
/// reach our decision for them.
fn measure_cedar_agent(
    binary: &Path,
    ours: &(String, String),
    duration: Duration,
) -> Result<Vec<Measurement>, String> {
    let agent = cedar::CedarAgent::start(binary)?;
    let theirs = agent.decide(SIGNALS)?;
    if &theirs != ours {
        return Err(format!(
            "cedar-agent decides {theirs:?} where parmana decides {ours:?}: not comparable"
        ));
    }
    let request = cedar::request_body(SIGNALS)?;
    let body = |_: usize, _: u64| request.clone();
    let load = Load {
        base: &agent.base,
        path: "/v1/is_authorized",
        token: "",
        expected_status: 200,
        body: &body,
        metrics: false,
        pid: Some(agent.pid()),
    };
    let mut out = Vec::new();
    for connections in [1, 8, 64] {
        out.push(measured("cedar-agent", &load, connections, duration)?);
    }
    Ok(out)
}

fn measure_sqlite(
    root: &Path,
    binary: &Path,
    run: &str,
    dir: &Path,
    duration: Duration,
) -> Result<Vec<Measurement>, String> {
    let store = format!("sqlite:{}", dir.join("replay.sqlite3").display());
    let server = Server::start(root, binary, &store)?;
    let mut out = Vec::new();
    for connections in [1, 64] {
        let prefix = format!("{run}-sqlite-{connections}");
        let body = execution_body(&prefix);
        let execute = Load {
            base: &server.base,
            path: "/v1/executions",
            token: &server.token,
            expected_status: 201,
            body: &body,
            metrics: true,
            pid: Some(server.child.id()),
        };
        out.push(measured("execute/sqlite", &execute, connections, duration)?);
    }
    Ok(out)
}

/// In-process `Runtime::execute` on the memory store from `threads` threads, each with its own
/// execution ids and the same signals parsed from text each time, the runtime's CPU per call
/// measured from this process.
fn in_process(
    root: &Path,
    run: &str,
    threads: usize,
    duration: Duration,
) -> Result<Measurement, String> {
    let key = root.join("trust/keys/attestation.pem");
    let signer =
        LocalSigningKey::read_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let runtime = Runtime::builder(RuntimeEnvironmentConfig::standard_layout(root))
        .signer(signer)
        .store(MemoryReplayStore::new())
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let call = |prefix: &str, worker: usize, i: u64| -> Result<(), String> {
        let request = ExecutionRequest::parse(
            &format!("{prefix}-{worker}-{i}"),
            POLICY,
            SIGNALS.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        runtime
            .execute(&request)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let warm = format!("{run}-warm{threads}");
    driver::in_process(threads, WARM_UP, |w, i| call(&warm, w, i))?;
    let measured = format!("{run}-inproc{threads}");
    let before = driver::process_cpu(None);
    let sample: Sample = driver::in_process(threads, duration, |w, i| call(&measured, w, i))?;
    let after = driver::process_cpu(None);
    let per_call = (|| {
        let used = after?.checked_sub(before?)?;
        Some(used / u32::try_from(sample.requests).ok().filter(|n| *n > 0)?)
    })();
    eprintln!(
        "in-process execute at {threads} thread{}: {} calls, {:.0}/s",
        if threads == 1 { "" } else { "s" },
        sample.requests,
        sample.throughput()
    );
    Ok(Measurement {
        name: "in-process/execute".to_owned(),
        connections: threads,
        sample,
        reported_ns: None,
        server_p50_le: None,
        // The runtime works in this process: its CPU per call is the "server" side.
        cpu: report::Cpu {
            server: per_call,
            driver: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_bounded_and_unknown_ones_refused() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let parsed = options(&args(&["--seconds", "5", "--no-write"])).unwrap();
        assert_eq!((parsed.seconds, parsed.write), (5, false));
        assert_eq!(options(&[]).unwrap().seconds, DEFAULT_SECONDS);
        for refused in [
            &["--seconds", "0"][..],
            &["--seconds", "61"],
            &["--seconds"],
            &["--fast"],
        ] {
            assert!(options(&args(refused)).is_err(), "{refused:?}");
        }
    }

    /// The durable rows' store is judged by the mount it is on: the deepest mount point above
    /// it (by whole folders), the last mounted where two share one, its spaces unescaped.
    #[test]
    fn the_filesystem_of_a_path_is_its_deepest_mount() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      tmpfs /tmp tmpfs rw,nosuid 0 0\n\
                      /dev/vdb /work/my\\040disk xfs rw 0 0\n\
                      /dev/vdc /work ext4 rw 0 0\n\
                      overlay /work overlay rw 0 0\n\
                      a line too short\n";
        for (path, expected) in [
            ("/", Some("ext4")),
            ("/tmp/parmana", Some("tmpfs")),
            ("/tmpfoo/x", Some("ext4")),
            ("/work/main/target/loadtest-1", Some("overlay")),
            ("/work/my disk/target", Some("xfs")),
        ] {
            assert_eq!(filesystem_of(mounts, Path::new(path)), expected, "{path}");
        }
        assert_eq!(filesystem_of("", Path::new("/x")), None);
        assert!(IN_MEMORY_FILESYSTEMS.contains(&"tmpfs"));
        assert_eq!(
            unescape_mount_point(r"/a\040b\011c\\d\0"),
            "/a b\tc\\\\d\\0"
        );
    }
}
