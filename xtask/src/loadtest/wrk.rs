//! An external driver beside ours: Debian's `wrk` (`--wrk PATH`), one event-loop thread driving the same server over the same loopback, each row's latency percentiles as `wrk --latency` reports them.
//!
//! Both drive every connection from one thread's event loop (ours is tokio's, `wrk`'s its own
//! `epoll` loop in C): a second, independent client measuring the same server in the same run.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::driver;

/// What one `wrk` run reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrkRun {
    /// Requests completed.
    pub(crate) requests: u64,
    /// Requests per second, as `wrk` reports them.
    pub(crate) throughput: f64,
    /// The median and 99th-percentile latency, in nanoseconds.
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    /// The CPU time (user and system) `wrk` used, when `/proc` tells.
    pub(crate) cpu: Option<Duration>,
}

/// The request bodies of a `wrk` row: the same body every time, or an execution whose id is
/// `{prefix}-{n}` for the `n`th request (one thread, one Lua state: each id once).
pub(crate) enum Bodies<'a> {
    Fixed(&'a str),
    Executions {
        policy: &'a str,
        signals: &'a str,
        prefix: &'a str,
    },
}

/// The first line of `wrk -v` (`wrk debian/4.1.0-3+b2 [epoll] …`; it exits 1 after printing its
/// usage, so the line, not the status, says it is `wrk`).
pub(crate) fn version(wrk: &Path) -> Result<String, String> {
    let output = Command::new(wrk)
        .arg("-v")
        .output()
        .map_err(|e| format!("{}: {e}", wrk.display()))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .filter(|line| line.starts_with("wrk "))
        .map(|line| {
            line.split(" Copyright")
                .next()
                .unwrap_or(line)
                .trim()
                .to_owned()
        })
        .ok_or_else(|| format!("{} -v does not say it is wrk", wrk.display()))
}

/// A Lua string literal of `text`, byte for byte: a quoted string in which every byte but
/// printable ASCII other than `"` and `\` is a three-digit decimal escape, so nothing in `text` —
/// quotes, brackets, line ends, other bytes — can end it early or be changed as Lua reads it.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for byte in text.bytes() {
        match byte {
            0x20..=0x7e if byte != b'"' && byte != b'\\' => literal.push(char::from(byte)),
            _ => literal.push_str(&format!("\\{byte:03}")),
        }
    }
    literal.push('"');
    literal
}

/// The `wrk` script: `POST` with the token and JSON content type, and the bodies.
pub(crate) fn script(token: &str, bodies: &Bodies<'_>) -> String {
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    if !token.is_empty() {
        lua.push_str(&format!(
            "wrk.headers[\"Authorization\"] = {}\n",
            lua_string(&format!("Bearer {token}"))
        ));
    }
    match bodies {
        Bodies::Fixed(body) => lua.push_str(&format!("wrk.body = {}\n", lua_string(body))),
        Bodies::Executions {
            policy,
            signals,
            prefix,
        } => {
            lua.push_str(&format!(
                "local head = {}\nlocal tail = {}\nlocal n = 0\n\
                 request = function()\n  n = n + 1\n  \
                 return wrk.format(nil, nil, nil, head .. n .. tail)\nend\n",
                lua_string(&format!(
                    r#"{{"policy":"{policy}","signals":{signals},"execution_id":"{prefix}-"#
                )),
                lua_string(r#""}"#),
            ));
        }
    }
    lua
}

/// A `wrk` duration (`91.00us`, `2.70ms`, `1.02s`, `1.00m`) in nanoseconds.
fn duration_ns(text: &str) -> Option<u64> {
    let (number, scale) = [("us", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9)]
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))?;
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * scale).round() as u64)
}

/// The figures of `wrk --latency`'s report; a report that counts errors or answers other than
/// 2xx, or lacks a figure, is refused.
pub(crate) fn parse_report(report: &str) -> Result<WrkRun, String> {
    for refusal in ["Non-2xx or 3xx responses", "Socket errors"] {
        if let Some(line) = report.lines().find(|line| line.contains(refusal)) {
            return Err(format!("wrk: {}", line.trim()));
        }
    }
    let percentile = |label: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| duration_ns(rest.trim()))
            .ok_or_else(|| format!("wrk: no {label} latency in:\n{report}"))
    };
    let requests = report
        .lines()
        .find_map(|line| {
            let (count, rest) = line.trim().split_once(' ')?;
            rest.starts_with("requests in")
                .then(|| count.parse().ok())?
        })
        .ok_or_else(|| format!("wrk: no request count in:\n{report}"))?;
    let throughput = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| format!("wrk: no throughput in:\n{report}"))?;
    Ok(WrkRun {
        requests,
        throughput,
        p50_ns: percentile("50%")?,
        p99_ns: percentile("99%")?,
        cpu: None,
    })
}

/// Runs `wrk` once (one thread, `connections` connections, for `duration` in whole seconds, at
/// least one) against `url` with `bodies`; its CPU is the children's time this process gains
/// while waiting for it.
pub(crate) fn drive(
    wrk: &Path,
    url: &str,
    token: &str,
    bodies: &Bodies<'_>,
    connections: usize,
    duration: Duration,
) -> Result<WrkRun, String> {
    let dir = std::env::temp_dir().join(format!("parmana-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script_path = dir.join("request.lua");
    // Each run's execution ids are its own: `{prefix}-{run}-{n}`.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let serial = format!("{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let run_prefix;
    let bodies = match bodies {
        Bodies::Fixed(body) => Bodies::Fixed(body),
        Bodies::Executions {
            policy,
            signals,
            prefix,
        } => {
            run_prefix = format!("{prefix}-{serial}");
            Bodies::Executions {
                policy,
                signals,
                prefix: &run_prefix,
            }
        }
    };
    std::fs::write(&script_path, script(token, &bodies))
        .map_err(|e| format!("{}: {e}", script_path.display()))?;
    // `wrk` takes whole seconds.
    let run = |seconds: u64| -> Result<(String, Option<Duration>), String> {
        let before = driver::children_cpu();
        let output = Command::new(wrk)
            .args(["-t1", "-c", &connections.to_string(), "-d"])
            .arg(format!("{}s", seconds.max(1)))
            .arg("--latency")
            .arg("-s")
            .arg(&script_path)
            .arg(url)
            .output()
            .map_err(|e| format!("{}: {e}", wrk.display()))?;
        let after = driver::children_cpu();
        if !output.status.success() {
            return Err(format!(
                "wrk failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let used = after.zip(before).and_then(|(a, b)| a.checked_sub(b));
        Ok((String::from_utf8_lossy(&output.stdout).into_owned(), used))
    };
    let outcome = run(duration.as_secs());
    let _ = std::fs::remove_dir_all(&dir);
    let (report, cpu) = outcome?;
    let mut measured = parse_report(&report)?;
    measured.cpu = cpu;
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 4s test @ http://127.0.0.1:18080/v1/evaluations
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   127.82us  313.28us   8.12ms   98.21%
    Req/Sec    70.90k     3.15k   74.22k    87.50%
  Latency Distribution
     50%   91.00us
     75%  109.00us
     90%  139.00us
     99%    2.70ms
  282184 requests in 4.00s, 40.64MB read
Requests/sec:  70548.99
Transfer/sec:     10.16MB
";

    #[test]
    fn a_report_gives_its_count_throughput_and_percentiles() {
        let run = parse_report(REPORT).unwrap();
        assert_eq!(
            (run.requests, run.p50_ns, run.p99_ns),
            (282_184, 91_000, 2_700_000)
        );
        assert!((run.throughput - 70_548.99).abs() < 1e-6);
        assert_eq!(duration_ns("1.50s"), Some(1_500_000_000));
        assert_eq!(duration_ns("1.00m"), Some(60_000_000_000));
        assert_eq!(duration_ns("12"), None);
    }

    #[test]
    fn a_report_with_errors_or_other_answers_or_no_figures_is_refused() {
        let non_2xx = format!("{REPORT}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_report(&non_2xx).unwrap_err().contains("Non-2xx"));
        let errors = format!("{REPORT}  Socket errors: connect 0, read 3, write 0, timeout 0\n");
        assert!(parse_report(&errors).unwrap_err().contains("Socket errors"));
        let no_median = REPORT.replace("     50%   91.00us\n", "");
        assert!(parse_report(&no_median).unwrap_err().contains("50%"));
    }

    #[test]
    fn the_script_posts_json_with_the_token_and_fresh_execution_ids() {
        let fixed = script("t0k", &Bodies::Fixed(r#"{"a":"]]"}"#));
        assert!(fixed.contains("wrk.method = \"POST\""));
        assert!(fixed.contains("wrk.headers[\"Authorization\"] = \"Bearer t0k\""));
        assert!(
            fixed.contains(r#"wrk.body = "{\034a\034:\034]]\034}""#),
            "{fixed}"
        );
        // Quotes, backslashes, line ends and other bytes are escapes; the rest is as it is.
        assert_eq!(lua_string("x]"), r#""x]""#);
        assert_eq!(lua_string("a\"b\\c"), r#""a\034b\092c""#);
        assert_eq!(lua_string("\r\nx"), r#""\013\010x""#);
        assert_eq!(lua_string("é1"), r#""\195\1691""#);
        let executions = script(
            "",
            &Bodies::Executions {
                policy: "p@1.0.0",
                signals: "{}",
                prefix: "run",
            },
        );
        assert!(!executions.contains("Authorization"));
        assert!(
            executions.contains(
                r#""{\034policy\034:\034p@1.0.0\034,\034signals\034:{},\034execution_id\034:\034run-""#
            ),
            "{executions}"
        );
        assert!(executions.contains("head .. n .. tail"));
    }
}
