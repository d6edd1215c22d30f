//! `parmana policy check|eval|explain|test`: author-side tools on a policy file, without signing or consuming ids.

use std::path::{Path, PathBuf};

use parmana_runtime::policy::limits::MAX_POLICY_BYTES;
use parmana_runtime::policy::{CompiledPolicy, TestReport, check, compile, run_tests};

use parmana_runtime::BatchReader;

use crate::common::{read_bounded, read_signals};
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, failure_json, out, outln};

const POLICY_HELP: &str = "\
POLICY_FILE_OR_DIR is a policy.json file, or a bundle directory holding one (for example
policies/claims-approval/1.0.0). Nothing here signs anything or consumes an execution id.

Examples:
  parmana policy check policies/claims-approval/1.0.0
  parmana policy eval policies/claims-approval/1.0.0 --signals '{\"claim_amount\":500,\"vip_customer\":false,\"country\":\"DE\",\"policy_age_days\":400}'
  parmana policy explain policies/claims-approval/1.0.0 --signals signals.json
  parmana policy test policies/claims-approval/1.0.0 --coverage --threshold 100";

/// `parmana policy …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate policies: print every diagnostic (errors and warnings); exit 3 on any error (or,
    /// with --deny-warnings, any warning).
    #[command(after_help = POLICY_HELP)]
    Check(CheckArgs),
    /// Decide without signing: print `{"decision","rule_id","reason"}` for the signals.
    #[command(after_help = POLICY_HELP)]
    Eval(EvalArgs),
    /// Decide and show how: every rule tried and every condition evaluated, with the values used
    /// (refused, cli.explain_too_large, where the explanation could pass 256 MiB: each condition
    /// shows the value it read).
    #[command(after_help = POLICY_HELP)]
    Explain(ExplainArgs),
    /// Run the policy's test cases (`tests/*.json` beside policy.json) and report rule and
    /// condition coverage.
    #[command(after_help = POLICY_HELP)]
    Test(TestArgs),
}

/// The policy to work on.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyFileArgs {
    /// A policy.json file, or the directory holding one.
    #[arg(value_name = "POLICY_FILE_OR_DIR")]
    policy: PathBuf,
}

/// Several policies: files, bundle directories, or a directory of bundles searched below it.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyPathsArgs {
    /// Policy.json files, directories holding one, or a policies root (every directory below it
    /// that holds a policy.json, for example `policies`).
    #[arg(value_name = "POLICY_FILE_OR_DIR", required = true)]
    policies: Vec<PathBuf>,
}

/// Arguments of `parmana policy check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    paths: PolicyPathsArgs,
    /// Treat warnings as errors (exit 3 with `cli.warnings_denied`), for CI.
    #[arg(long)]
    deny_warnings: bool,
}

/// Arguments of `parmana policy eval`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    policy: PolicyFileArgs,
    /// The signals: an inline JSON object, or a file holding one (`-` for standard input).
    #[arg(
        long,
        value_name = "JSON|FILE",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    signals: Option<String>,
    /// Evaluate every line of a JSON Lines file (each line one signals object), printing one
    /// decision line per input line, or `{"error":{"code","message"},"line":N}` for a line whose
    /// signals are refused. A refused line does not stop the batch; the exit code is then the
    /// class of the first refused line: 3 for refused signals, 1 for input that could not be
    /// read, 8 for an evaluation fault.
    #[arg(long, value_name = "FILE.jsonl")]
    batch: Option<PathBuf>,
}

/// Arguments of `parmana policy explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    policy: PolicyFileArgs,
    /// The signals: an inline JSON object, or a file holding one (`-` for standard input).
    #[arg(long, value_name = "JSON|FILE")]
    signals: String,
}

/// Arguments of `parmana policy test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    #[command(flatten)]
    paths: PolicyPathsArgs,
    /// Also print rule and condition coverage (which rules never decided, which conditions
    /// were never seen both true and false).
    #[arg(long)]
    coverage: bool,
    /// Fail (exit 7) unless both rule coverage and condition coverage reach N percent (a
    /// number from 0 to 100).
    #[arg(long, value_name = "N", value_parser = parse_percent)]
    threshold: Option<f64>,
}

/// A percentage, `0` to `100`: anything else (NaN, 101, -5) would make the gate always fail or
/// never, so it is a usage error.
fn parse_percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// Runs `parmana policy …`.
pub(crate) fn run(command: &PolicyCommand, format: Format) -> Result<(), Failure> {
    match command {
        PolicyCommand::Check(args) => check_policy(args, format),
        PolicyCommand::Eval(args) => eval(args),
        PolicyCommand::Explain(args) => explain(args, format),
        PolicyCommand::Test(args) => test(args, format),
    }
}

/// The policy file and the directory its tests live in.
fn locate(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.join("policy.json"), path.to_path_buf())
    } else {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (path.to_path_buf(), dir)
    }
}

/// Reads a policy document, refusing one larger than the policy limit after reading one byte
/// more (`policy.too_large`), so that a huge file is never loaded.
pub(crate) fn read_policy(file: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_bounded(file, MAX_POLICY_BYTES)?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(Failure::new(
            "policy.too_large",
            format!(
                "{}: a policy is at most {MAX_POLICY_BYTES} bytes",
                file.display()
            ),
            ExitClass::InvalidInput,
        ));
    }
    Ok(bytes)
}

fn load(path: &Path) -> Result<(CompiledPolicy, PathBuf), Failure> {
    let (file, dir) = locate(path);
    let bytes = read_policy(&file)?;
    let policy = compile(&bytes).map_err(|e| Failure::policy(&file.display().to_string(), &e))?;
    Ok((policy, dir))
}

/// How deep below a policies root `policy check`/`test` look for `policy.json` (`<id>/<version>/`
/// is two levels), and how many policies one command takes.
const MAX_SEARCH_DEPTH: usize = 4;
const MAX_POLICIES: usize = 10_000;

/// How many directories a search below the paths given may read (beside the policies' own).
const MAX_SEARCHED_DIRECTORIES: usize = 10 * MAX_POLICIES;

/// The policies the paths name: a file or a directory holding `policy.json` is one; another
/// directory is searched below for directories holding one (sorted). More than
/// [`MAX_POLICIES`] policies, or more than [`MAX_SEARCHED_DIRECTORIES`] directories searched,
/// is refused (`cli.usage`), never cut short: a gate that checks policies must not pass over
/// the ones past a limit.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    expand_within(paths, MAX_POLICIES, MAX_SEARCHED_DIRECTORIES)
}

/// [`expand`] with its limits given.
fn expand_within(
    paths: &[PathBuf],
    max_policies: usize,
    max_directories: usize,
) -> Result<Vec<PathBuf>, Failure> {
    struct Search {
        found: Vec<PathBuf>,
        directories: usize,
        max_policies: usize,
        max_directories: usize,
    }
    fn too_many(what: String) -> Failure {
        Failure::new("cli.usage", what, ExitClass::Usage)
    }
    fn search(dir: &Path, depth: usize, state: &mut Search) -> Result<(), Failure> {
        if dir.join(POLICY_FILE_NAME).is_file() {
            if state.found.len() >= state.max_policies {
                return Err(too_many(format!(
                    "more than {} policies in one command",
                    state.max_policies
                )));
            }
            state.found.push(dir.to_path_buf());
            return Ok(());
        }
        if depth == 0 {
            return Ok(());
        }
        state.directories += 1;
        if state.directories > state.max_directories {
            return Err(too_many(format!(
                "more than {} directories to search for policies in one command",
                state.max_directories
            )));
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| Failure::io(&dir.display().to_string(), &e))?;
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Failure::io(&dir.display().to_string(), &e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !entry.file_name().to_string_lossy().starts_with('.') {
                dirs.push(entry.path());
                if dirs.len() > state.max_directories {
                    return Err(too_many(format!(
                        "more than {} directories to search for policies in one command",
                        state.max_directories
                    )));
                }
            }
        }
        dirs.sort();
        for sub in dirs {
            search(&sub, depth - 1, state)?;
        }
        Ok(())
    }
    let mut state = Search {
        found: Vec::new(),
        directories: 0,
        max_policies,
        max_directories,
    };
    for path in paths {
        if path.is_dir() {
            let before = state.found.len();
            search(path, MAX_SEARCH_DEPTH, &mut state)?;
            if state.found.len() == before {
                return Err(Failure::new(
                    "cli.no_policies",
                    format!(
                        "no {POLICY_FILE_NAME} in {} or in the directories below it",
                        path.display()
                    ),
                    ExitClass::InvalidInput,
                ));
            }
        } else {
            if state.found.len() >= max_policies {
                return Err(too_many(format!(
                    "more than {max_policies} policies in one command"
                )));
            }
            state.found.push(path.clone());
        }
    }
    Ok(state.found)
}

const POLICY_FILE_NAME: &str = "policy.json";

/// Prints `== PATH` before each report when a command covers several policies.
fn header(policies: &[PathBuf], path: &Path, format: Format) -> Result<(), Failure> {
    if policies.len() > 1 && format == Format::Human {
        outln!("== {}", path.display());
    }
    Ok(())
}

fn check_policy(args: &CheckArgs, format: Format) -> Result<(), Failure> {
    let policies = expand(&args.paths.policies)?;
    let (mut refused, mut warned) = (Vec::new(), 0usize);
    let mut first_code = None;
    for path in &policies {
        let (file, _) = locate(path);
        let bytes = read_policy(&file)?;
        let report = check(&bytes);
        header(&policies, path, format)?;
        match format {
            Format::Human => out!("{}", report.render()),
            Format::Json if policies.len() == 1 => outln!(
                "{}",
                Json(serde_json::json!({"ok": report.is_ok(), "diagnostics": report.diagnostics}))
            ),
            Format::Json => outln!(
                "{}",
                Json(serde_json::json!({
                    "path": path.display().to_string(),
                    "ok": report.is_ok(),
                    "diagnostics": report.diagnostics,
                }))
            ),
        }
        warned += report.warnings().count();
        if !report.is_ok() {
            let errors = report.errors().count();
            first_code = first_code.or_else(|| report.errors().next().map(|d| d.code.code()));
            refused.push(format!(
                "{}: policy refused with {errors} error{}",
                file.display(),
                if errors == 1 { "" } else { "s" }
            ));
        }
    }
    if !refused.is_empty() {
        let message = if policies.len() == 1 {
            refused.concat()
        } else {
            format!(
                "{} of {} policies refused: {}",
                refused.len(),
                policies.len(),
                refused.join("; ")
            )
        };
        return Err(Failure::new(
            first_code.unwrap_or("policy.invalid"),
            message,
            ExitClass::InvalidInput,
        ));
    }
    if args.deny_warnings && warned > 0 {
        return Err(Failure::new(
            "cli.warnings_denied",
            format!(
                "{warned} warning{} and --deny-warnings",
                if warned == 1 { "" } else { "s" }
            ),
            ExitClass::InvalidInput,
        ));
    }
    Ok(())
}

fn decision_json(policy: &CompiledPolicy, signals: &serde_json::Value) -> Result<String, Failure> {
    let validated = policy.validate_signals(signals).map_err(|e| {
        Failure::new(
            e.code(),
            format!("signals refused: {e}"),
            ExitClass::InvalidInput,
        )
    })?;
    let decision = validated
        .evaluate()
        .map_err(|e| Failure::execution(&parmana_runtime::ExecutionError::EvaluationFault(e)))?;
    Ok(Json(decision).to_string())
}

fn eval(args: &EvalArgs) -> Result<(), Failure> {
    let (policy, _) = load(&args.policy.policy)?;
    if let Some(signals) = &args.signals {
        let signals = read_signals(signals)?;
        outln!("{}", decision_json(&policy, &signals)?);
        return Ok(());
    }
    let Some(batch) = &args.batch else {
        return Err(Failure::new(
            "cli.usage",
            "give --signals or --batch",
            ExitClass::Usage,
        ));
    };
    // Streamed one bounded line at a time (as `execute --batch`): a batch of any length holds
    // one line in memory, and an overlong line is refused unread.
    let input: Box<dyn std::io::BufRead> = if batch.as_path() == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(batch)
                .map_err(|e| Failure::io(&batch.display().to_string(), &e))?,
        ))
    };
    let mut lines = BatchReader::new(input);
    let mut out = crate::report::ResultStream::new();
    let (mut total, mut refused) = (0usize, 0usize);
    // The exit is the class of the first refused line in input order (as `execute --batch`).
    let mut first_refusal: Option<ExitClass> = None;
    while let Some((number, line)) = lines.next_line() {
        total += 1;
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                refused += 1;
                let failure = Failure::execution(&error);
                first_refusal.get_or_insert(failure.class);
                let entry = serde_json::json!({"error": failure_json(&failure), "line": number});
                if !out.line(format_args!("{}", Json(&entry)))? {
                    break;
                }
                continue;
            }
        };
        let line = line.as_slice();
        let outcome = parmana_runtime::canon::parse_strict(line)
            .map_err(|e| {
                let column = e
                    .location(line)
                    .map(|at| format!(" (column {})", at.column))
                    .unwrap_or_default();
                Failure::new(
                    e.code(),
                    format!("signals: {e}{column}"),
                    ExitClass::InvalidInput,
                )
            })
            .and_then(|signals| decision_json(&policy, &signals));
        let reading_on = match outcome {
            Ok(decision) => out.line(format_args!("{decision}"))?,
            Err(failure) => {
                refused += 1;
                first_refusal.get_or_insert(failure.class);
                let entry = serde_json::json!({"error": failure_json(&failure), "line": number});
                out.line(format_args!("{}", Json(&entry)))?
            }
        };
        if !reading_on {
            // Nobody reads on (`parmana policy eval --batch … | head`): the lines printed so far
            // decide the exit.
            break;
        }
    }
    out.flush()?;
    if refused == 0 {
        Ok(())
    } else {
        Err(Failure::new(
            "cli.batch_refused",
            format!("{refused} of {total} lines refused (see the error lines on stdout)"),
            first_refusal.unwrap_or(ExitClass::InvalidInput),
        ))
    }
}

fn explain(args: &ExplainArgs, format: Format) -> Result<(), Failure> {
    let (policy, _) = load(&args.policy.policy)?;
    let signals = read_signals(&args.signals)?;
    let validated = policy.validate_signals(&signals).map_err(|e| {
        Failure::new(
            e.code(),
            format!("signals refused: {e}"),
            ExitClass::InvalidInput,
        )
    })?;
    // Each condition evaluated shows the value it read: the bound is checked before the
    // explanation is made (as the server checks it), not met by an allocation failing.
    let signals_bytes = serde_json::to_string(&signals).map_or(usize::MAX, |text| text.len());
    let bound = policy
        .trace_bytes_bound()
        .saturating_add(policy.condition_count().saturating_mul(signals_bytes));
    if bound > MAX_EXPLANATION_BYTES {
        return Err(Failure::new(
            "cli.explain_too_large",
            format!(
                "an explanation of these signals ({signals_bytes} bytes) under a policy of {} \
                 conditions could take {bound} bytes, more than the {MAX_EXPLANATION_BYTES} \
                 allowed: use `policy eval`, or explain smaller signals",
                policy.condition_count()
            ),
            ExitClass::InvalidInput,
        ));
    }
    let explanation = validated
        .explain()
        .map_err(|e| Failure::execution(&parmana_runtime::ExecutionError::EvaluationFault(e)))?;
    match format {
        Format::Human => out!("{explanation}"),
        Format::Json => outln!("{}", Json(&explanation)),
    }
    Ok(())
}

/// The most an explanation may take (`policy explain`), by the policy's bound on its trace.
const MAX_EXPLANATION_BYTES: usize = 256 * 1024 * 1024;

/// The largest policy test case read: its signals (at most 1 MiB) and what it expects.
const MAX_TEST_CASE_BYTES: usize = 2 * 1024 * 1024;

/// The most test cases read from one policy's `tests/` (as many as a bundle has entries).
const MAX_TEST_CASES: usize = 10_000;

/// The most bytes of one policy's test cases read in all (they are held together while they
/// run): far more than a test suite takes (10,000 cases of 3 KiB), far less than the two bounds
/// above multiplied (20 GiB).
const MAX_TEST_CASES_BYTES: usize = 32 * 1024 * 1024;

/// Reads `dir/tests/*.json` as `(file name, bytes)`, sorted by name: at most
/// [`MAX_TEST_CASES`] of them, each at most [`MAX_TEST_CASE_BYTES`], all of them at most
/// [`MAX_TEST_CASES_BYTES`] (`cli.input_too_large` past any: a file refused after reading one
/// byte more, or before reading it when its size passes what is left). Each a regular file,
/// reached through a link or not (`io.error` otherwise: a named pipe, a device).
fn read_cases(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let tests = dir.join("tests");
    let entries =
        std::fs::read_dir(&tests).map_err(|e| Failure::io(&tests.display().to_string(), &e))?;
    let too_large =
        |message: String| Failure::new("cli.input_too_large", message, ExitClass::InvalidInput);
    let mut cases = Vec::new();
    let mut left = MAX_TEST_CASES_BYTES;
    for entry in entries {
        let entry = entry.map_err(|e| Failure::io(&tests.display().to_string(), &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        if cases.len() == MAX_TEST_CASES {
            return Err(too_large(format!(
                "{}: more than {MAX_TEST_CASES} test cases",
                tests.display()
            )));
        }
        let path = entry.path();
        let all_too_large = || {
            too_large(format!(
                "{}: the test cases hold more than {MAX_TEST_CASES_BYTES} bytes in all",
                tests.display()
            ))
        };
        // A regular file only, through a link too (a link to `/proc/self/fd/1` or a named pipe
        // would wait on a pipe or read the terminal), opened without waiting; its size is the
        // file's, not a link's.
        let io = |e: std::io::Error| Failure::io(&path.display().to_string(), &e);
        let file = parmana_runtime::trust::open_regular_file(&path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        // A case within its own bound that would pass what is left is refused unread (one over
        // its own bound is refused below, after reading one byte more).
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size <= MAX_TEST_CASE_BYTES && size > left {
            return Err(all_too_large());
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                file,
                u64::try_from(MAX_TEST_CASE_BYTES)
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
            ),
            &mut bytes,
        )
        .map_err(io)?;
        if bytes.len() > MAX_TEST_CASE_BYTES {
            return Err(too_large(format!(
                "{}: more than {MAX_TEST_CASE_BYTES} bytes",
                path.display()
            )));
        }
        left = left.checked_sub(bytes.len()).ok_or_else(all_too_large)?;
        cases.push((name, bytes));
    }
    cases.sort();
    Ok(cases)
}

fn test(args: &TestArgs, format: Format) -> Result<(), Failure> {
    let policies = expand(&args.paths.policies)?;
    let mut failures = Vec::new();
    for path in &policies {
        header(&policies, path, format)?;
        if let Err(failure) = test_one(path, args, format, policies.len() > 1) {
            if policies.len() == 1 {
                return Err(failure);
            }
            crate::report::print_failure(&failure, format);
            failures.push(failure);
        }
    }
    // One code, one exit: `cli.policy_tests_failed` (7) when a test failed; otherwise no policy
    // could be tested as asked, and the first refusal's code and class say why.
    let n = failures.len();
    let total = policies.len();
    if failures.is_empty() {
        Ok(())
    } else if failures
        .iter()
        .any(|f| f.class == ExitClass::VerificationFailed)
    {
        Err(Failure::new(
            "cli.policy_tests_failed",
            format!("{n} of {total} policies did not pass their tests"),
            ExitClass::VerificationFailed,
        ))
    } else {
        let first = &failures[0];
        Err(Failure::new(
            first.code.clone(),
            format!("{n} of {total} policies could not be tested"),
            first.class,
        ))
    }
}

fn test_one(path: &Path, args: &TestArgs, format: Format, several: bool) -> Result<(), Failure> {
    let (policy, dir) = load(path)?;
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Err(Failure::new(
            "cli.no_tests",
            format!("no test cases: {} is not a directory", tests.display()),
            ExitClass::InvalidInput,
        ));
    }
    let cases = read_cases(&dir)?;
    if cases.is_empty() {
        return Err(Failure::new(
            "cli.no_tests",
            format!("no test cases in {}", tests.display()),
            ExitClass::InvalidInput,
        ));
    }
    let report = run_tests(&policy, &cases);
    let show_coverage = args.coverage || args.threshold.is_some();
    match format {
        Format::Human => out!("{}", render_tests(&report, show_coverage)),
        Format::Json if several => {
            let mut json = tests_json(&report);
            if let Some(object) = json.as_object_mut() {
                object.insert("path".to_owned(), path.display().to_string().into());
            }
            outln!("{}", Json(json));
        }
        Format::Json => outln!("{}", Json(tests_json(&report))),
    }
    if !report.all_passed() {
        let failed = report.cases.len() - report.passed();
        return Err(Failure::new(
            "cli.policy_tests_failed",
            format!(
                "{}: {failed} of {} test cases failed",
                path.display(),
                report.cases.len()
            ),
            ExitClass::VerificationFailed,
        ));
    }
    if let Some(threshold) = args.threshold
        && !report.meets_threshold(threshold)
    {
        return Err(Failure::new(
            "cli.coverage_below_threshold",
            format!(
                "{}: coverage below {threshold}%: rules {:.1}%, conditions {:.1}%",
                path.display(),
                report.coverage.rule_percent(),
                report.coverage.condition_percent()
            ),
            ExitClass::VerificationFailed,
        ));
    }
    Ok(())
}

/// The test report as text; without coverage, only the cases and the pass/fail count.
fn render_tests(report: &TestReport, show_coverage: bool) -> String {
    if show_coverage {
        report.to_string()
    } else {
        report.cases_text().to_string()
    }
}

fn tests_json(report: &TestReport) -> serde_json::Value {
    use parmana_runtime::policy::CaseOutcome;
    let cases: Vec<serde_json::Value> = report
        .cases
        .iter()
        .map(|case| match &case.outcome {
            CaseOutcome::Passed => serde_json::json!({"name": case.name, "outcome": "passed"}),
            CaseOutcome::Failed { expected, actual } => serde_json::json!({
                "name": case.name, "outcome": "failed", "expected": expected, "actual": actual
            }),
            CaseOutcome::Invalid { message } => {
                serde_json::json!({"name": case.name, "outcome": "invalid", "message": message})
            }
        })
        .collect();
    let c = &report.coverage;
    let rules: Vec<serde_json::Value> = c
        .rules
        .iter()
        .map(|r| serde_json::json!({"rule_id": r.rule_id, "path": r.path, "hits": r.hits}))
        .collect();
    let conditions: Vec<serde_json::Value> = c
        .conditions
        .iter()
        .map(|x| {
            serde_json::json!({
                "path": x.path, "rule_id": x.rule_id, "condition": x.condition,
                "seen_true": x.seen_true, "seen_false": x.seen_false
            })
        })
        .collect();
    serde_json::json!({
        "passed": report.passed(),
        "failed": report.cases.len() - report.passed(),
        "cases": cases,
        "coverage": {
            "rule_percent": c.rule_percent(),
            "condition_percent": c.condition_percent(),
            "default_hits": c.default_hits,
            "rules": rules,
            "conditions": conditions,
        }
    })
}

/// Before signing: runs the policy's test cases in `dir/tests/` (when there are any) and
/// refuses with `cli.policy_tests_failed` when one fails, unless `allow_failing`. The report goes
/// to stderr (stdout is the command's result).
pub(crate) fn gate_on_tests(
    policy: &CompiledPolicy,
    dir: &Path,
    allow_failing: bool,
) -> Result<(), Failure> {
    if !dir.join("tests").is_dir() {
        crate::report::errln!("note: {} has no tests/ to run", dir.display());
        return Ok(());
    }
    let cases = read_cases(dir)?;
    if cases.is_empty() {
        crate::report::errln!("note: {} holds no test cases", dir.join("tests").display());
        return Ok(());
    }
    let report = run_tests(policy, &cases);
    if report.all_passed() {
        crate::report::errln!("tests: {} passed", report.passed());
        return Ok(());
    }
    crate::report::errw!("{}", render_tests(&report, false));
    let failed = report.cases.len() - report.passed();
    if allow_failing {
        crate::report::errln!(
            "warning[cli.policy_tests_failed]: {failed} of {} test cases failed; signing anyway (--allow-failing-tests)",
            report.cases.len()
        );
        return Ok(());
    }
    Err(Failure::new(
        "cli.policy_tests_failed",
        format!(
            "{failed} of {} test cases failed: nothing signed (--allow-failing-tests signs anyway)",
            report.cases.len()
        ),
        ExitClass::VerificationFailed,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::expand_within;

    /// Makes `dir/id/version/policy.json` for each (id, version).
    fn policies(dir: &std::path::Path, each: &[(&str, &str)]) {
        for (id, version) in each {
            let at = dir.join(id).join(version);
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(at.join(super::POLICY_FILE_NAME), "{}").unwrap();
        }
    }

    /// A limit reached is refused, never a search cut short: with the first id's versions
    /// filling the limit exactly, the next id's used to be passed over and the check passed.
    #[test]
    fn a_search_past_its_limits_is_refused_not_cut_short() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        policies(&root, &[("a", "1.0.0"), ("a", "2.0.0")]);
        assert_eq!(
            expand_within(std::slice::from_ref(&root), 2, 100)
                .unwrap()
                .len(),
            2
        );
        policies(&root, &[("b", "1.0.0")]);
        let refused = expand_within(std::slice::from_ref(&root), 2, 100).unwrap_err();
        assert_eq!(refused.code, "cli.usage");
        assert!(
            refused.message.contains("more than 2 policies"),
            "{}",
            refused.message
        );
        assert_eq!(
            expand_within(std::slice::from_ref(&root), 3, 100)
                .unwrap()
                .len(),
            3
        );
        // Files named beside the search count too.
        let file = PathBuf::from("elsewhere/policy.json");
        let refused = expand_within(&[root.clone(), file], 3, 100).unwrap_err();
        assert_eq!(refused.code, "cli.usage");
        // Directories searched: the root, `a` and `b` (the versions hold the policies).
        assert_eq!(
            expand_within(std::slice::from_ref(&root), 3, 3)
                .unwrap()
                .len(),
            3
        );
        let refused = expand_within(&[root], 3, 2).unwrap_err();
        assert_eq!(refused.code, "cli.usage");
        assert!(
            refused.message.contains("more than 2 directories"),
            "{}",
            refused.message
        );
    }
}
