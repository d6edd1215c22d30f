//! `cargo xtask bench-report`: runs the criterion suite once and rewrites `BENCHMARKS.md` from that run.
//!
//! The report holds the machine, the command, every row (median with its 95% confidence interval
//! and median absolute deviation, and executions per second where a bench declares a throughput),
//! and the ratios of issue 7 computed from the same run, each target marked met or not met.
//! Rendering is a pure function of the parsed criterion results ([`render_report`]); only
//! [`run`] touches processes and files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The feature of [`BENCH_PACKAGE`] that builds the peer engines and the `peers` bench; without it
/// cargo would skip that bench silently and the side-by-side rows would be missing.
const BENCH_FEATURES: &str = "peers";

/// The package whose benches the report covers.
const BENCH_PACKAGE: &str = "parmana-benches";

/// Hand-written analysis appended to the report (where time goes, what remains and why).
const NOTES_FILE: &str = "benches/REPORT_NOTES.md";

/// One benchmark's result as criterion estimated it (times in nanoseconds per iteration).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
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
    pub fn rate_per_second(&self) -> f64 {
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
pub struct Machine {
    /// Logical CPUs available (what `nproc` prints).
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `rustc -V`.
    pub rustc: String,
    /// The commit measured (Markdown, as shown).
    pub commit: String,
}

/// Parses one criterion result from its `new/benchmark.json` and `new/estimates.json`.
pub fn parse_result(benchmark_json: &str, estimates_json: &str) -> Result<BenchResult, String> {
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
pub fn collect_results(
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

/// How a ratio compares with its bar.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bar {
    AtMost(f64),
    AtLeast(f64),
}

/// Whether the ratio compares times (lower is better) or rates (elements per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Time,
    Rate,
}

/// One ratio of the report: numerator and denominator candidates (ids, the first present is
/// used; with `fastest_denominator` the fastest present denominator is used instead).
struct RatioSpec {
    label: &'static str,
    numerator: &'static [&'static str],
    denominator: &'static [&'static str],
    fastest_denominator: bool,
    measure: Measure,
    bar: Option<Bar>,
    target: &'static str,
}

const RATIOS: &[RatioSpec] = &[
    RatioSpec {
        label: "Decision from typed signals: ours ÷ Cedar",
        numerator: &["decision/typed/parmana"],
        denominator: &["decision/typed/cedar"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from typed signals: ours ÷ regorus (faster of interpreter and VM)",
        numerator: &["decision/typed/parmana"],
        denominator: &["decision/typed/regorus", "decision/typed/regorus-vm"],
        fastest_denominator: true,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from JSON text: ours ÷ Cedar",
        numerator: &["decision/json/parmana"],
        denominator: &["decision/json/cedar"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from JSON text: ours ÷ regorus (faster of interpreter and VM)",
        numerator: &["decision/json/parmana"],
        denominator: &["decision/json/regorus", "decision/json/regorus-vm"],
        fastest_denominator: true,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Scaling, ours: 1,000 rules ÷ 10 rules (one relevant)",
        numerator: &["scaling/1000/parmana"],
        denominator: &["scaling/10/parmana"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(3.0)),
        target: "at most 3×",
    },
    RatioSpec {
        label: "Scaling, Cedar: 1,000 rules ÷ 10 rules",
        numerator: &["scaling/1000/cedar"],
        denominator: &["scaling/10/cedar"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: None,
        target: "for comparison",
    },
    RatioSpec {
        label: "Scaling, regorus: 1,000 rules ÷ 10 rules",
        numerator: &["scaling/1000/regorus"],
        denominator: &["scaling/10/regorus"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: None,
        target: "for comparison",
    },
    RatioSpec {
        label: "End-to-end execute (JSON in, signed attestation out, memory store) ÷ Ed25519 sign",
        numerator: &["runtime/execute_memory", "execute/memory"],
        denominator: &["primitives/ed25519_sign", "ed25519/sign"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(1.5)),
        target: "at most 1.5×",
    },
    RatioSpec {
        label: "verify_attestation ÷ Ed25519 verify",
        numerator: &["runtime/verify", "verify/attestation"],
        denominator: &["primitives/ed25519_verify", "ed25519/verify"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(1.3)),
        target: "at most 1.3×",
    },
    RatioSpec {
        label: "Batch verify (64 attestations): attestations/s ÷ verify_attestation",
        numerator: &["runtime/verify_batch"],
        denominator: &["runtime/verify", "verify/attestation"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(1.5)),
        target: "at least 1.5×",
    },
    RatioSpec {
        label: "Durable SQLite execute: executions/s at 8 callers ÷ at 1 caller",
        numerator: &["durable/sqlite/8", "execute/sqlite/8_callers"],
        denominator: &["durable/sqlite/1", "execute/sqlite/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(3.0)),
        target: "at least 3×",
    },
    RatioSpec {
        label: "SQLite replay store alone (claim + complete): claims/s at 8 callers ÷ at 1 caller",
        numerator: &["replay/sqlite/claim_and_complete/8_callers"],
        denominator: &["replay/sqlite/claim_and_complete/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: None,
        target: "for comparison",
    },
    RatioSpec {
        label: "Durable PostgreSQL execute: executions/s at 8 callers ÷ at 1 caller",
        numerator: &["durable/postgres/8", "execute/postgres/8_callers"],
        denominator: &["durable/postgres/1", "execute/postgres/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: None,
        target: "reported (needs a server)",
    },
];

/// One computed ratio.
struct Ratio<'a> {
    spec: &'a RatioSpec,
    value: Option<(f64, &'a BenchResult, &'a BenchResult)>,
}

impl Ratio<'_> {
    fn status(&self) -> &'static str {
        match (self.value, self.spec.bar) {
            (None, _) => "not measured",
            (Some(_), None) => "—",
            (Some((value, _, _)), Some(Bar::AtMost(limit))) if value <= limit => "**met**",
            (Some((value, _, _)), Some(Bar::AtLeast(limit))) if value >= limit => "**met**",
            (Some(_), Some(_)) => "**not met**",
        }
    }
}

fn compute_ratios(results: &[BenchResult]) -> Vec<Ratio<'_>> {
    let by_id: BTreeMap<&str, &BenchResult> = results.iter().map(|r| (r.id.as_str(), r)).collect();
    RATIOS
        .iter()
        .map(|spec| {
            let numerator = spec.numerator.iter().find_map(|id| by_id.get(id).copied());
            let present = spec
                .denominator
                .iter()
                .filter_map(|id| by_id.get(id).copied());
            let denominator = if spec.fastest_denominator {
                present.min_by(|a, b| a.median_ns.total_cmp(&b.median_ns))
            } else {
                present.into_iter().next()
            };
            let value = match (numerator, denominator) {
                (Some(n), Some(d)) => {
                    let value = match spec.measure {
                        Measure::Time => n.median_ns / d.median_ns,
                        Measure::Rate => n.rate_per_second() / d.rate_per_second(),
                    };
                    value.is_finite().then_some((value, n, d))
                }
                _ => None,
            };
            Ratio { spec, value }
        })
        .collect()
}

/// A duration in the unit that keeps three significant digits readable.
pub fn format_duration(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

fn format_ratio(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

fn format_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k/s", rate / 1e3)
    } else {
        format!("{rate:.0} /s")
    }
}

/// The whole `BENCHMARKS.md`: a pure function of the machine, the command (Markdown, as shown),
/// the results and the hand-written notes.
pub fn render_report(
    machine: &Machine,
    command: &str,
    results: &[BenchResult],
    notes: &str,
) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(
        "Generated by `cargo xtask bench-report` from one run of the criterion suite; do not edit by hand \
         (the analysis at the end comes from `benches/REPORT_NOTES.md`). Every ratio is computed from \
         this same run. None of them is a test: CI runs each bench once in test mode and never asserts a time.\n\n",
    );
    out.push_str("## Machine and command\n\n| | |\n| --- | --- |\n");
    let _ = writeln!(out, "| CPUs (`nproc`) | {} |", machine.cpus);
    let _ = writeln!(out, "| CPU | {} |", machine.cpu_model);
    let _ = writeln!(out, "| rustc | `{}` |", machine.rustc);
    let _ = writeln!(out, "| commit | {} |", machine.commit);
    let _ = writeln!(out, "| command | {command} |");
    out.push('\n');

    let ratios = compute_ratios(results);
    out.push_str("## Targets of issue 7 and other ratios\n\n");
    out.push_str("| ratio | value | from | target | status |\n| --- | --- | --- | --- | --- |\n");
    for ratio in &ratios {
        let (value, from) = match ratio.value {
            Some((value, n, d)) => {
                let mut shown = format_ratio(value);
                if ratio.spec.measure == Measure::Time && value < 1.0 {
                    let _ = write!(shown, " ({:.1}× faster)", 1.0 / value);
                }
                (shown, format!("`{}` ÷ `{}`", n.id, d.id))
            }
            None => (
                "—".to_owned(),
                format!(
                    "absent: `{}` ÷ `{}`",
                    ratio.spec.numerator.join("` or `"),
                    ratio.spec.denominator.join("` or `")
                ),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {value} | {from} | {} | {} |",
            ratio.spec.label,
            ratio.spec.target,
            ratio.status()
        );
    }
    let judged: Vec<&Ratio<'_>> = ratios.iter().filter(|r| r.spec.bar.is_some()).collect();
    let met = judged.iter().filter(|r| r.status() == "**met**").count();
    let unmeasured = judged.iter().filter(|r| r.value.is_none()).count();
    let _ = writeln!(
        out,
        "\n**{met} of {} targets met**, {} not met, {unmeasured} not measured in this run.\n",
        judged.len(),
        judged.len() - met - unmeasured
    );

    out.push_str("## Rows\n\n");
    out.push_str(
        "Median time per iteration, the 95% confidence interval of the median, the median absolute \
         deviation (MAD) of the samples, and the rate where the bench counts elements.\n\n",
    );
    out.push_str("| benchmark | median | 95% CI of median | MAD | rate |\n| --- | ---: | --- | ---: | ---: |\n");
    for result in results {
        let rate = match result.elements {
            Some(_) => format_rate(result.rate_per_second()),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} – {} | {} | {rate} |",
            result.id,
            format_duration(result.median_ns),
            format_duration(result.median_lower_ns),
            format_duration(result.median_upper_ns),
            format_duration(result.mad_ns),
        );
    }
    if !notes.trim().is_empty() {
        out.push('\n');
        out.push_str(notes.trim_end());
        out.push('\n');
    }
    out
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn machine(root: &Path) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let root_text = root.display().to_string();
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        rustc: command_output(&rustc, &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
        commit: commit_description(&root_text),
    }
}

/// The short commit id (Markdown), marked when the working tree differs from it: the run measured
/// the working tree.
fn commit_description(root: &str) -> String {
    let Some(commit) = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    match command_output("git", &["-C", root, "status", "--porcelain"]) {
        Some(changes) if !changes.is_empty() => {
            format!("`{commit}` plus uncommitted changes in the working tree")
        }
        _ => format!("`{commit}`"),
    }
}

/// `cargo xtask bench-report [--no-run] [-- <criterion arguments>]`.
///
/// Runs `cargo bench -p parmana-benches --features peers` (every bench file of the package, the
/// side-by-side `peers` bench included; extra arguments passed to criterion), then rewrites `BENCHMARKS.md` from the results of that run. With `--no-run`,
/// rewrites it from the results already in `target/criterion` (and says so).
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let no_run = args.iter().any(|a| a == "--no-run");
    let criterion_args: Vec<&str> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(String::as_str)
        .collect();
    let mut command = format!("cargo bench -p {BENCH_PACKAGE} --features {BENCH_FEATURES}");
    if !criterion_args.is_empty() {
        let _ = write!(command, " -- {}", criterion_args.join(" "));
    }
    let shown_command = if no_run {
        format!("`{command}` (not re-run: the results an earlier run left in `target/criterion`)")
    } else {
        format!("`{command}`")
    };
    // What is measured is the tree as the run starts.
    let machine = machine(root);
    let since = if no_run {
        None
    } else {
        let started = SystemTime::now();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut bench = Command::new(cargo);
        bench
            .args(["bench", "-p", BENCH_PACKAGE, "--features", BENCH_FEATURES])
            .current_dir(root);
        if !criterion_args.is_empty() {
            bench.arg("--").args(&criterion_args);
        }
        let status = bench
            .status()
            .map_err(|e| format!("cannot run cargo bench: {e}"))?;
        if !status.success() {
            return Err(format!(
                "`{command}` failed ({status}); BENCHMARKS.md left as it was"
            ));
        }
        Some(started)
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let results = collect_results(&target.join("criterion"), since)?;
    if results.is_empty() {
        return Err("no criterion results found; BENCHMARKS.md left as it was".to_owned());
    }
    let notes = std::fs::read_to_string(root.join(NOTES_FILE)).unwrap_or_default();
    let report = render_report(&machine, &shown_command, &results, &notes);
    let path = root.join("BENCHMARKS.md");
    std::fs::write(&path, report).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {} ({} rows)", path.display(), results.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, median_ns: f64, elements: Option<u64>) -> BenchResult {
        BenchResult {
            id: id.to_owned(),
            median_ns,
            median_lower_ns: median_ns * 0.9,
            median_upper_ns: median_ns * 1.1,
            mad_ns: median_ns * 0.05,
            elements,
        }
    }

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            cpu_model: "Test CPU @ 1.00GHz".to_owned(),
            rustc: "rustc 1.95.0".to_owned(),
            commit: "`abc1234`".to_owned(),
        }
    }

    #[test]
    fn criterion_files_parse_into_a_result() {
        let benchmark = r#"{"group_id":"durable/sqlite","function_id":"8","value_str":null,
            "throughput":{"Elements":1},"full_id":"durable/sqlite/8","directory_name":"durable_sqlite/8","title":"durable/sqlite/8"}"#;
        let estimates = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.0,"standard_error":0.1},
            "median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":54.5,"upper_bound":60.25},"point_estimate":56.75,"standard_error":1.3},
            "median_abs_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":6.5,"upper_bound":17.5},"point_estimate":11.5,"standard_error":3.0},
            "slope":null,"std_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.2}}"#;
        let result = parse_result(benchmark, estimates).unwrap();
        assert_eq!(
            result,
            BenchResult {
                id: "durable/sqlite/8".to_owned(),
                median_ns: 56.75,
                median_lower_ns: 54.5,
                median_upper_ns: 60.25,
                mad_ns: 11.5,
                elements: Some(1),
            }
        );
        assert!(parse_result("{}", estimates).is_err());
        assert!(parse_result(benchmark, r#"{"mean": {}}"#).is_err());
    }

    #[test]
    fn results_are_collected_from_the_criterion_tree() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("decision_typed/parmana/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(dir.path().join("decision_typed/parmana/base")).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"full_id":"decision/typed/parmana","throughput":null}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"confidence_interval":{"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.0},
                "median_abs_dev":{"point_estimate":0.5}}"#,
        )
        .unwrap();
        let results = collect_results(dir.path(), None).unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].id, "decision/typed/parmana");
        assert_eq!(results[0].elements, None);
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(collect_results(dir.path(), Some(later)).unwrap().is_empty());
    }

    #[test]
    fn the_report_marks_each_target_from_the_same_run() {
        let results = vec![
            row("decision/typed/parmana", 60.0, None),
            row("decision/typed/cedar", 12_000.0, None),
            row("decision/typed/regorus", 7_000.0, None),
            row("decision/typed/regorus-vm", 3_000.0, None),
            row("decision/json/parmana", 2_000.0, None),
            row("decision/json/cedar", 40_000.0, None),
            row("decision/json/regorus", 10_000.0, None),
            row("decision/json/regorus-vm", 6_000.0, None),
            row("scaling/10/parmana", 60.0, None),
            row("scaling/1000/parmana", 120.0, None),
            row("scaling/10/cedar", 15_000.0, None),
            row("scaling/1000/cedar", 2_000_000.0, None),
            row("primitives/ed25519_sign", 20_000.0, None),
            row("runtime/execute_memory", 40_000.0, None),
            row("durable/sqlite/1", 4_000_000.0, Some(1)),
            row("durable/sqlite/8", 1_000_000.0, Some(1)),
        ];
        let report = render_report(
            &machine(),
            "`cargo bench -p parmana-benches`",
            &results,
            "## Analysis\n\nWhy.\n",
        );
        let line = |label: &str| {
            report
                .lines()
                .find(|l| l.starts_with(&format!("| {label} |")))
                .unwrap_or_else(|| panic!("no line for {label} in\n{report}"))
                .to_owned()
        };
        assert!(report.contains("| CPUs (`nproc`) | 2 |"));
        assert!(report.contains("| CPU | Test CPU @ 1.00GHz |"));
        assert!(report.contains("| commit | `abc1234` |"));
        assert!(report.contains("| command | `cargo bench -p parmana-benches` |"));
        assert_eq!(
            line("Decision from typed signals: ours ÷ Cedar"),
            "| Decision from typed signals: ours ÷ Cedar | 0.0050 (200.0× faster) | \
             `decision/typed/parmana` ÷ `decision/typed/cedar` | ours at least 10× faster | **met** |"
        );
        // The faster regorus mode is the one compared with.
        assert!(
            line("Decision from typed signals: ours ÷ regorus (faster of interpreter and VM)")
                .contains(
                    "0.0200 (50.0× faster) | `decision/typed/parmana` ÷ `decision/typed/regorus-vm`"
                )
        );
        let json = line("Decision from JSON text: ours ÷ regorus (faster of interpreter and VM)");
        assert!(
            json.contains("0.33 (3.0× faster)") && json.ends_with("| **not met** |"),
            "{json}"
        );
        assert!(line("Scaling, ours: 1,000 rules ÷ 10 rules (one relevant)").contains("| 2.00 |"));
        assert!(line("Scaling, Cedar: 1,000 rules ÷ 10 rules").ends_with("| for comparison | — |"));
        assert!(line("Scaling, regorus: 1,000 rules ÷ 10 rules").ends_with("| not measured |"));
        let e2e = line(
            "End-to-end execute (JSON in, signed attestation out, memory store) ÷ Ed25519 sign",
        );
        assert!(
            e2e.contains("| 2.00 |") && e2e.ends_with("| **not met** |"),
            "{e2e}"
        );
        let verify = line("verify_attestation ÷ Ed25519 verify");
        assert!(
            verify.contains("absent: `runtime/verify` or `verify/attestation`"),
            "{verify}"
        );
        // Rates: 8 callers take a quarter of the time per execution, so 4× the executions/s.
        assert!(
            line("Durable SQLite execute: executions/s at 8 callers ÷ at 1 caller").contains(
                "| 4.00 | `durable/sqlite/8` ÷ `durable/sqlite/1` | at least 3× | **met** |"
            )
        );
        assert!(report.contains("**5 of 9 targets met**, 2 not met, 2 not measured in this run."));
        assert!(
            report.contains(
                "| `decision/typed/parmana` | 60.0 ns | 54.0 ns – 66.0 ns | 3.00 ns |  |"
            )
        );
        assert!(
            report.contains(
                "| `durable/sqlite/8` | 1.00 ms | 900 µs – 1.10 ms | 50.0 µs | 1.0 k/s |"
            )
        );
        assert!(report.ends_with("## Analysis\n\nWhy.\n"));
    }

    #[test]
    fn durations_keep_three_significant_digits() {
        assert_eq!(format_duration(61.234), "61.2 ns");
        assert_eq!(format_duration(2_101.9), "2.10 µs");
        assert_eq!(format_duration(408_510.0), "409 µs");
        assert_eq!(format_duration(1_256_300.0), "1.26 ms");
        assert_eq!(format_duration(3.2e9), "3.20 s");
    }
}
