//! Criterion's results as the report reads them: one row per benchmark, parsed from `new/benchmark.json` and `new/estimates.json`, and the machine they ran on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One benchmark's result as criterion estimated it (times in nanoseconds per iteration).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BenchResult {
    /// The stable id, e.g. `decision/typed/parmana`.
    pub id: String,
    /// Median time per iteration.
    pub median_ns: f64,
    /// Lower bound of the 95% confidence interval of the median.
    pub median_lower_ns: f64,
    /// Upper bound of the 95% confidence interval of the median.
    pub median_upper_ns: f64,
    /// Median absolute deviation of the samples.
    pub mad_ns: f64,
    /// Elements processed per iteration, when the bench declares a throughput in elements.
    pub elements: Option<u64>,
}

impl BenchResult {
    /// Elements per second at the median (one element per iteration when none is declared).
    pub(super) fn rate_per_second(&self) -> f64 {
        let elements = self.elements.unwrap_or(1) as f64;
        if self.median_ns > 0.0 {
            elements * 1e9 / self.median_ns
        } else {
            0.0
        }
    }
}

/// Where the benchmarks ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    /// Logical CPUs available (what `nproc` prints).
    pub(crate) cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub(crate) cpu_model: String,
    /// `rustc -V`.
    pub(crate) rustc: String,
    /// The commit measured (Markdown, as shown).
    pub(crate) commit: String,
}

/// Parses one criterion result from its `new/benchmark.json` and `new/estimates.json`.
pub(super) fn parse_result(
    benchmark_json: &str,
    estimates_json: &str,
) -> Result<BenchResult, String> {
    let benchmark: serde_json::Value =
        serde_json::from_str(benchmark_json).map_err(|e| format!("benchmark.json: {e}"))?;
    let estimates: serde_json::Value =
        serde_json::from_str(estimates_json).map_err(|e| format!("estimates.json: {e}"))?;
    let id = benchmark["full_id"]
        .as_str()
        .ok_or("benchmark.json has no full_id")?
        .to_owned();
    let number = |pointer: &str| {
        estimates
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("estimates.json of {id} has no {pointer}"))
    };
    Ok(BenchResult {
        median_ns: number("/median/point_estimate")?,
        median_lower_ns: number("/median/confidence_interval/lower_bound")?,
        median_upper_ns: number("/median/confidence_interval/upper_bound")?,
        mad_ns: number("/median_abs_dev/point_estimate")?,
        elements: benchmark
            .pointer("/throughput/Elements")
            .and_then(serde_json::Value::as_u64),
        id,
    })
}

/// Reads every `new/` result under `criterion_dir`, keeping only those written at or after
/// `since` when given (so rows of benches that no longer exist do not linger).
pub(super) fn collect_results(
    criterion_dir: &Path,
    since: Option<SystemTime>,
) -> Result<Vec<BenchResult>, String> {
    let mut found = Vec::new();
    find_new_dirs(criterion_dir, &mut found);
    let mut results = BTreeMap::new();
    for dir in found {
        let estimates_path = dir.join("estimates.json");
        if let Some(since) = since {
            let written = std::fs::metadata(&estimates_path)
                .and_then(|m| m.modified())
                .map_err(|e| format!("{}: {e}", estimates_path.display()))?;
            if written < since {
                continue;
            }
        }
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let result = parse_result(&read(dir.join("benchmark.json"))?, &read(estimates_path)?)?;
        results.insert(result.id.clone(), result);
    }
    Ok(results.into_values().collect())
}

fn find_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == "new" {
            if path.join("benchmark.json").is_file() && path.join("estimates.json").is_file() {
                out.push(path);
            }
        } else if entry.file_name() != "report" {
            find_new_dirs(&path, out);
        }
    }
}
