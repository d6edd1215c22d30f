//! `parmana execute`: execute signals under a signed policy exactly once and print the signed attestation.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use parmana_runtime::canon::PolicyRef;
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{
    BatchOptions, BatchReader, BatchSummary, ExecutionRequest, LogAnchor, LogSequencer, LogSigning,
    Runtime, Signals, StoreOpen, batch_refusal_line, catch_panic, check_log_signer,
    new_execution_id, parse_execution_id, run_batch, signers_of,
};

use crate::common::{
    ClockArgs, EnvironmentArgs, build_runtime, policy_reference, read_private_key, read_signals,
    warn_environment_expiry,
};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format};
use crate::store::StoreArgs;

const EXECUTE_EXAMPLES: &str = concat!(
    "\
Examples (from the repository root, on the bundled TEST-ONLY trust chain):
  parmana execute --policy claims-approval@1.0.0 \\
      --signals '{\"claim_amount\":1200,\"vip_customer\":false,\"country\":\"DE\",\"policy_age_days\":400}'
  parmana execute --policy claims-approval@1.0.0 --signals signals.json --execution-id claim-0001
  parmana execute --policy claims-approval@1.0.0 --batch requests.jsonl > attestations.jsonl

Each execution id is consumed at most once: running again with the same --execution-id is
refused with runtime.replay_detected (exit 5) and the first attestation stands.",
    "\n\n",
    crate::exit::exit_codes_help!()
);

/// Arguments of `parmana execute`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXECUTE_EXAMPLES)]
pub(crate) struct ExecuteArgs {
    /// The policy to decide under, `ID@VERSION` (for example `claims-approval@1.0.0`). With
    /// `--batch`, the policy of every line that names none.
    #[arg(long, value_name = "ID@VERSION", required_unless_present = "batch")]
    policy: Option<String>,
    /// The signals: an inline JSON object, or a file holding one (`-` for standard input); at
    /// most 1 MiB of JSON.
    #[arg(
        long,
        value_name = "JSON|FILE",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    signals: Option<String>,
    /// The execution id (1 to 128 printable ASCII characters, no spaces, not `.` or `..`),
    /// consumed at most once.
    /// A fresh UUIDv7 when absent.
    #[arg(long, value_name = "ID", conflicts_with = "batch")]
    execution_id: Option<String>,
    /// Execute every line of a JSON Lines file, each
    /// `{"execution_id"?: ID, "policy"?: "ID@VERSION", "signals": {...}}`, printing one line per
    /// input line: the attestation, or `{"error":{"code","message"},"line":N}` (with
    /// `"execution_id"` when the refusal may follow the claim, as a store failure may: where
    /// `parmana show` reads the outcome back). Each line is at most 1 MiB + 4 KiB (its signals
    /// at most 1 MiB). A refused line does not stop the batch; the exit code is non-zero if any
    /// line was refused. A progress bar is drawn on stderr when it is a terminal.
    #[arg(long, value_name = "FILE.jsonl")]
    batch: Option<PathBuf>,
    /// With `--batch`: how many lines execute at once (default: the number of cores, at most
    /// 1024), so that
    /// the store's group commit shares one sync among them. Output stays in input order.
    #[arg(long, value_name = "N", requires = "batch", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    jobs: Option<u16>,
    /// An attestation signing key (PKCS#8 PEM) holding the `attestation` role in the trust root;
    /// repeat it when the role's threshold is above one (every key signs). Checked before the
    /// execution id is consumed.
    /// [env: PARMANA_KEYS, a path list; config: keys; default: trust/keys/attestation.pem]
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Embed the validated signals in the attestation (their digest is always bound).
    #[arg(long)]
    include_signals: bool,
    /// A short human summary on stderr (decision, rule, reason, execution id, where it is
    /// stored): `auto` when stdout is a terminal; the attestation on stdout is the same either way.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Summary::Auto)]
    summary: Summary,
    /// A key of the trust root's `log` role (PKCS#8 PEM; repeatable, as many as the role's
    /// threshold): after executing, the sequencer signs and stores a checkpoint of the
    /// transparency log that includes this execution, signed by each (without one, the
    /// execution is still sequenced into the ledger, unsigned). Checked before the execution id
    /// is consumed.
    /// [env: PARMANA_LOG_KEY (a path list); config: server.log_key; no default]
    #[arg(long, value_name = "FILE")]
    log_key: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    environment: EnvironmentArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana execute`.
pub(crate) fn execute(args: &ExecuteArgs, format: Format) -> Result<(), Failure> {
    // Read and check the inputs first, so that a typo never opens (or creates) a store.
    let single_signals = args.signals.as_deref().map(read_signals).transpose()?;
    let default_policy = args.policy.as_deref().map(policy_reference).transpose()?;
    let execution_id = args
        .execution_id
        .as_deref()
        .map(parse_execution_id)
        .transpose()
        .map_err(|e| Failure::execution(&e))?;
    let batch = args.batch.as_deref().map(open_batch).transpose()?;
    let deployment = Deployment::load()?;
    let store = args.store.location(&deployment)?;
    // The log key and anchor files too, before the store is opened (or created).
    let log_keys = read_log_keys(&deployment, &args.log_key)?;
    let anchor = configured_log_anchor(&deployment, None)?;
    refuse_missing_store_under_anchor(anchor.as_ref(), &store.value)?;
    // The warning window too (read again when the warnings are given): a value that is no
    // number of days is refused before a store is created.
    deployment.expiry_warning_days(args.clock.expiry_warning_days)?;
    let runtime = build_runtime(
        &deployment,
        &args.key,
        &args.environment,
        &store.value,
        StoreOpen::CreateIfMissing,
        &args.clock,
    )?;
    warn_environment_expiry(&deployment, &args.clock, &runtime)?;
    check_log_keys(&log_keys, &runtime)?;
    check_store_reaches_anchor(&runtime, anchor.as_ref(), &store.value)?;
    if let Some(input) = batch {
        let result = execute_batch(
            &runtime,
            default_policy,
            BatchReader::new(input),
            args.include_signals,
            args.jobs.map_or_else(default_jobs, usize::from),
            format,
        );
        sequence_after(
            &runtime,
            &log_keys,
            anchor_of(anchor.as_ref(), &store.value),
        );
        return result;
    }
    let (Some(policy), Some(signals)) = (default_policy, single_signals) else {
        return Err(Failure::new(
            "cli.usage",
            "--policy and --signals are required without --batch",
            ExitClass::Usage,
        ));
    };
    let request = ExecutionRequest::new(
        execution_id.unwrap_or_else(new_execution_id),
        policy,
        Signals::from_value(signals),
    )
    .with_signals_included(args.include_signals);
    let Delivered {
        attestation,
        second_try,
    } = execute_one(&runtime, &request)?;
    let printed =
        crate::report::write_stdout_delivered(format_args!("{}\n", attestation.envelope_str()));
    sequence_after(
        &runtime,
        &log_keys,
        anchor_of(anchor.as_ref(), &store.value),
    );
    if let Err(failure) = printed {
        // Executed, stored, never delivered: a caller that retried under a new id would execute
        // a second time, so the id is named and how to read its outcome back.
        return Err(Failure {
            message: not_printed(&request.execution_id, &failure.message),
            ..failure
        }
        .of_execution(&request.execution_id));
    }
    if second_try {
        crate::report::errln!(
            "note: execution {}: the store refused its completion at first; the attestation \
             printed was recorded on a second try",
            request.execution_id
        );
    }
    if args.summary.wanted() {
        let p = attestation.predicate();
        let reason = p
            .reason
            .as_deref()
            .filter(|reason| !reason.is_empty())
            .map(|reason| format!(": {reason}"))
            .unwrap_or_default();
        let stored = if store.value == "memory" {
            "kept in memory only (forgotten when this command ends)".to_owned()
        } else {
            // The same store again: named when a flag named it (a file or variable names it
            // again by itself).
            let again = match store.source {
                crate::config::Source::Flag(_) => {
                    format!(" --store {}", crate::config::redact_store(&store.value))
                }
                _ => String::new(),
            };
            format!(
                "stored in {} — read it back with `parmana show {}{again}`",
                crate::config::redact_store(&store.value),
                p.execution_id
            )
        };
        crate::report::errln!(
            "{} (rule {:?}{reason})\n  execution {} under {}@{}, at {}\n  {stored}",
            p.decision,
            p.rule_id,
            p.execution_id,
            p.policy.id,
            p.policy.version,
            p.executed_at,
        );
    }
    Ok(())
}

/// What `execute` delivers: the attestation signed, recorded at the first write or — the
/// store having refused that, the runtime keeping the completion — at a second try.
#[derive(Debug)]
struct Delivered {
    attestation: parmana_runtime::Attestation,
    /// Recorded at the second try.
    second_try: bool,
}

/// Executes one request: its refusal as a failure that, when the id may have been claimed,
/// names it and says what completes it. A defect (a panic) is such a refusal
/// (`runtime.panicked`): ending unreported, it would leave a generated id claimed and never
/// told. A completion the store refused (signed, kept by the runtime) is written again once:
/// recorded as signed, the execution is complete and its attestation — the one this command
/// signed, the store holding exactly it — delivered (a caller told of a failure might execute
/// again under a new id); otherwise the failure says what the store holds.
fn execute_one(runtime: &Runtime, request: &ExecutionRequest) -> Result<Delivered, Failure> {
    let error = match catch_panic(|| runtime.execute(request)) {
        Ok(attestation) => {
            return Ok(Delivered {
                attestation,
                second_try: false,
            });
        }
        Err(error) => error,
    };
    let mut failure = Failure::execution(&error);
    // Perhaps once the id was claimed (the store, the signer failing): what completes it is
    // said.
    if !error.may_follow_a_claim() {
        return Err(failure);
    }
    let id = &request.execution_id;
    // The second try, a defect in it answered too.
    let second = catch_panic(|| Ok(runtime.complete_kept(id)))
        .unwrap_or(parmana_runtime::KeptCompletion::Waiting);
    match second {
        parmana_runtime::KeptCompletion::Recorded(attestation) => {
            return Ok(Delivered {
                attestation: *attestation,
                second_try: true,
            });
        }
        parmana_runtime::KeptCompletion::Unconfirmed => failure.message.push_str(&format!(
            "; the store did not confirm execution {id} as completed with the attestation this \
             command signed (it holds another outcome of the id, no longer this claim, or did \
             not answer): `parmana show {id}` reads and verifies what it holds"
        )),
        // A signing that failed after the claim says so itself; any other failure here may or
        // may not have followed one.
        parmana_runtime::KeptCompletion::Waiting | parmana_runtime::KeptCompletion::NotKept
            if !matches!(
                error,
                parmana_runtime::ExecutionError::SigningFailedAfterClaim { .. }
            ) =>
        {
            failure.message.push_str(&format!(
                "; if execution {id} was claimed before this failure, it stays claimed until \
                 `parmana recover` (with the same store) completes it"
            ));
        }
        parmana_runtime::KeptCompletion::Waiting | parmana_runtime::KeptCompletion::NotKept => {}
    }
    Err(failure.of_execution(id))
}

/// After a batch: writes again, once, the completions the store refused during it (signed and
/// kept by the runtime), and gives the lines saying how many were recorded and how many still
/// wait for `parmana recover` (for stderr) — their lines were refusals naming their ids.
fn finish_kept_completions(runtime: &Runtime) -> Vec<String> {
    let again = runtime.finish_completions();
    let mut said = Vec::new();
    if again.finished > 0 {
        said.push(format!(
            "{} execution(s) refused when the store failed to record their completion were \
             completed on a second try (`parmana show ID` reads each back)",
            again.finished
        ));
    }
    if again.waiting > 0 {
        said.push(format!(
            "{} execution(s) refused when the store failed to record their completion stay \
             claimed until `parmana recover` (with the same store) completes them",
            again.waiting
        ));
    }
    said
}

/// The log keys in force (`--log-key`, `PARMANA_LOG_KEY`, `log_key` in `[server]`; none is
/// an empty list), read and checked against the `log` role of the runtime's trust root before
/// anything executes.
pub(crate) fn configured_log_keys(
    deployment: &Deployment,
    flags: &[PathBuf],
    runtime: &Runtime,
) -> Result<Vec<LocalSigningKey>, Failure> {
    let keys = read_log_keys(deployment, flags)?;
    check_log_keys(&keys, runtime)?;
    Ok(keys)
}

/// The log keys in force, read from their files — before any store is opened — but not yet
/// checked against the trust root ([`check_log_keys`]).
pub(crate) fn read_log_keys(
    deployment: &Deployment,
    flags: &[PathBuf],
) -> Result<Vec<LocalSigningKey>, Failure> {
    deployment
        .log_keys(flags)?
        .map_or_else(Vec::new, |setting| setting.value)
        .iter()
        .map(|path| read_private_key(path))
        .collect()
}

/// Refuses log keys (when there are any) that cannot sign the checkpoints of the trust root in
/// force: a key outside its `log` role, or fewer keys than the role's threshold.
pub(crate) fn check_log_keys(keys: &[LocalSigningKey], runtime: &Runtime) -> Result<(), Failure> {
    if keys.is_empty() {
        return Ok(());
    }
    let environment = runtime.environment();
    check_log_signer(LogSigning {
        trust_root: environment.trust_root(),
        history: environment.trust_history(),
        now: runtime.clock().now(),
        release_manifest: environment.release_manifest().version(),
        signers: &signers_of(keys),
        anchor: None,
    })
    .map_err(|e| Failure::execution(&e))
}

/// Refuses to consume ids on a store that does not reach the checkpoint `anchor` records
/// (`runtime.store_rewound`): it was cut, replaced or rewound (a deleted SQLite file that
/// `execute` would create afresh), and the ids cut away would execute again. A `memory` store
/// (`location`) holds no history the anchor could record: a dry run is not refused.
pub(crate) fn check_store_reaches_anchor(
    runtime: &Runtime,
    anchor: Option<&LogAnchor>,
    location: &str,
) -> Result<(), Failure> {
    match anchor {
        Some(anchor) if location != "memory" => anchor
            .check_store_reaches(runtime.store())
            .map_err(|e| Failure::execution(&e)),
        _ => Ok(()),
    }
}

/// The log anchor a sequencer over the store at `location` checks: none for a `memory` store,
/// which holds no history the anchor could record (a dry run is neither held against it nor
/// written into it, as `serve`'s sequencer is not).
pub(crate) fn anchor_of<'a>(
    anchor: Option<&'a LogAnchor>,
    location: &str,
) -> Option<&'a LogAnchor> {
    anchor.filter(|_| location != "memory")
}

/// Refuses to create a SQLite store where a log anchor records a checkpoint of entries
/// (`runtime.store_not_found`): the store that held them is gone, and a new, empty one would let
/// the ids cut away execute again once the anchor is set aside. (A store there that holds fewer
/// entries is `runtime.store_rewound`, [`check_store_reaches_anchor`].)
pub(crate) fn refuse_missing_store_under_anchor(
    anchor: Option<&LogAnchor>,
    location: &str,
) -> Result<(), Failure> {
    let logged = anchor
        .and_then(LogAnchor::recorded)
        .is_some_and(|(size, _)| size > 0);
    match location.strip_prefix("sqlite:") {
        Some(path) if logged && !Path::new(path).exists() => Err(Failure::execution(
            &parmana_runtime::ExecutionError::StoreNotFound {
                path: format!(
                    "{path}: the log anchor records a checkpoint of its entries, so it is not \
                     created afresh (restore it, or name the store that holds them)"
                ),
            },
        )),
        _ => Ok(()),
    }
}

/// The log anchor in force (`--log-anchor` where a command takes it, `PARMANA_LOG_ANCHOR`,
/// `log_anchor` in `[server]`), read: the largest checkpoint the log key signed, which a
/// checkpoint signed now must extend.
pub(crate) fn configured_log_anchor(
    deployment: &Deployment,
    flag: Option<&Path>,
) -> Result<Option<LogAnchor>, Failure> {
    deployment
        .server_path(crate::config::LOG_ANCHOR, flag)
        .map(|setting| LogAnchor::open(setting.value).map_err(|e| Failure::execution(&e)))
        .transpose()
}

/// What a failure to print an attestation says: the execution `id` is done and stored, only its
/// attestation was not delivered (`what` says why), and how to read it back. A caller that took
/// the failure for "not executed" and retried under a new id would execute a second time.
pub(crate) fn not_printed(id: &parmana_runtime::canon::ExecutionId, what: &str) -> String {
    format!(
        "execution {} completed, but its attestation was not printed ({what}): `parmana show {}` \
         reads it back",
        id.as_str(),
        id.as_str()
    )
}

/// Reports on stderr an execution completed (or perhaps claimed) whose attestation was not
/// printed: the line `message`, or under `--format json` a failure object (`io.error`) naming
/// its execution, so that a script reading only JSON lines learns every id consumed.
pub(crate) fn report_not_printed(
    id: &parmana_runtime::canon::ExecutionId,
    message: &str,
    format: Format,
) {
    match format {
        Format::Human => crate::report::errln!("{message}"),
        Format::Json => crate::report::print_failure(
            &Failure::new("io.error", message, ExitClass::Io).of_execution(id),
            format,
        ),
    }
}

/// Runs the sequencer over what this command completed (and whatever else waits), signing and
/// storing a checkpoint with `log_key` when one is configured (refused, with the log anchor,
/// unless the log extends it). The executions are complete and printed already: a failure here
/// is a warning on stderr (the entries wait for the next sequencer run), never a failed
/// execution.
pub(crate) fn sequence_after(
    runtime: &Runtime,
    log_keys: &[LocalSigningKey],
    anchor: Option<&LogAnchor>,
) {
    let environment = runtime.environment();
    let signers = signers_of(log_keys);
    let signing = (!signers.is_empty()).then_some(LogSigning {
        trust_root: environment.trust_root(),
        history: environment.trust_history(),
        now: runtime.clock().now(),
        release_manifest: environment.release_manifest().version(),
        signers: &signers,
        anchor,
    });
    if let Err(error) = LogSequencer::default().run_all_anchored(runtime.store(), signing, anchor) {
        crate::report::errln!(
            "warning[{}]: the sequencer run after this command failed: what it completed (if \
             anything) waits for the next run to enter the log (`parmana log sequence`): {}",
            error.code(),
            crate::report::printable(&error.to_string())
        );
    }
}

/// Opens the batch input (`-` for standard input) before anything else, so that a missing
/// file never opens (or creates) a store.
fn open_batch(path: &Path) -> Result<Box<dyn BufRead + Send>, Failure> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file =
        std::fs::File::open(path).map_err(|e| Failure::io(&path.display().to_string(), &e))?;
    Ok(Box::new(BufReader::new(file)))
}

/// Runs a batch as it is read, on `jobs` threads: each result is written and flushed in input
/// order as soon as it and every line before it are done, so that every attestation printed was
/// durable first, and every completed execution is printed unless the process dies between the
/// two (then `parmana show` reads it back). A summary goes to stderr at the end.
fn execute_batch(
    runtime: &Runtime,
    default_policy: Option<PolicyRef>,
    input: BatchReader<Box<dyn BufRead + Send>>,
    include_signals: bool,
    jobs: usize,
    format: Format,
) -> Result<(), Failure> {
    let bar = progress_bar();
    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut first_refusal: Option<ExitClass> = None;
    let options = BatchOptions {
        jobs,
        default_policy,
        include_signals,
    };
    let outcome = run_batch(runtime, input, &options, |outcome| {
        let written = match outcome.result {
            Ok(attestation) => {
                let mut envelope = attestation.into_envelope();
                envelope.push(b'\n');
                envelope
            }
            Err(error) => {
                let failure = Failure::execution(&error);
                first_refusal.get_or_insert(failure.class);
                let named = outcome
                    .execution_id
                    .as_ref()
                    .filter(|_| error.may_follow_a_claim())
                    .map(parmana_runtime::canon::ExecutionId::as_str);
                let mut entry =
                    batch_refusal_line(outcome.line, &failure.code, &failure.message, named)
                        .map_err(|e| Failure::execution(&e))?;
                entry.push(b'\n');
                entry
            }
        };
        out.write_all(&written)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::io("standard output", &e))?;
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    for line in finish_kept_completions(runtime) {
        crate::report::errln!("{line}");
    }
    let summary = match outcome {
        Ok(summary) => summary,
        Err(stopped) => {
            crate::report::errln!("{}", summary_text(&stopped.summary, started.elapsed()));
            // Completed after the output failed: stored, never printed — named here, so that
            // `parmana show` reads them back (under `--format json`, each as a failure object
            // naming its execution, as every other line there is).
            for id in &stopped.unemitted {
                report_not_printed(
                    id,
                    &format!(
                        "executed (or perhaps claimed) but not printed: {} (`parmana show {}` \
                         reads it back)",
                        id.as_str(),
                        id.as_str()
                    ),
                    format,
                );
            }
            let mut failure: Failure = stopped.error;
            if !stopped.unemitted.is_empty() {
                failure.message.push_str(&format!(
                    "; {} execution(s) completed (or perhaps claimed) but not printed, each named \
                     before this",
                    stopped.unemitted.len()
                ));
            }
            return Err(failure);
        }
    };
    crate::report::errln!("{}", summary_text(&summary, started.elapsed()));
    match first_refusal {
        None => Ok(()),
        Some(class) => Err(Failure::new(
            "cli.batch_refused",
            format!(
                "{} of {} lines refused (see the error lines on stdout)",
                summary.refused(),
                summary.lines
            ),
            class,
        )),
    }
}

/// The batch summary: counts by decision and by error code, elapsed time and rate.
fn summary_text(summary: &BatchSummary, elapsed: Duration) -> String {
    let list = |counts: &std::collections::BTreeMap<String, usize>| {
        counts
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        summary.lines as f64 / seconds
    } else {
        0.0
    };
    let mut text = format!(
        "batch: {} lines, {} executed, {} refused in {seconds:.2} s ({rate:.0} lines/s)",
        summary.lines,
        summary.executed(),
        summary.refused()
    );
    if !summary.decisions.is_empty() {
        text.push_str(&format!("\n  decisions: {}", list(&summary.decisions)));
    }
    if !summary.refusals.is_empty() {
        text.push_str(&format!("\n  refusals: {}", list(&summary.refusals)));
    }
    text
}

/// The default number of batch jobs: the cores this process may use.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_JOBS)
}

/// The most `--jobs` takes, and what the default (the cores) is held to.
const MAX_JOBS: usize = 1024;

/// A progress counter on stderr (the batch is read as it runs, so its length is unknown),
/// hidden when stderr is not a terminal.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} executed ({per_sec})") {
        bar.set_style(style);
    }
    bar
}

/// When `execute` writes its human summary on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Summary {
    /// When stdout is a terminal (a person is reading).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Summary {
    fn wanted(self) -> bool {
        match self {
            Self::Auto => std::io::stdout().is_terminal(),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use parmana_runtime::ExecutionStatus;
    use parmana_runtime::canon::ExecutionId;
    use parmana_runtime::replay::{
        AcceptedVersions, ClaimOutcome, ClaimRecord, MemoryReplayStore, ReplayError, ReplayStore,
    };

    use super::*;

    const SIGNALS: &str =
        r#"{"claim_amount": 1200, "vip_customer": false, "country": "DE", "policy_age_days": 400}"#;

    /// A memory store whose claims panic while `panics` is set (a store driver's defect), and
    /// whose next completion fails (`replay.store_unavailable`) while `refuses` is set.
    #[derive(Debug, Default)]
    struct Faulty {
        inner: MemoryReplayStore,
        panics: AtomicBool,
        /// The next completion fails.
        refuses: AtomicBool,
        /// Every completion fails.
        refuses_always: AtomicBool,
    }

    impl ReplayStore for Faulty {
        fn claim(
            &self,
            id: &ExecutionId,
            record: &ClaimRecord,
            under: AcceptedVersions,
        ) -> Result<ClaimOutcome, ReplayError> {
            let claimed = self.inner.claim(id, record, under);
            assert!(
                !self.panics.load(Ordering::SeqCst),
                "the store driver's defect"
            );
            claimed
        }
        fn complete(&self, id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
            if self.refuses.swap(false, Ordering::SeqCst)
                || self.refuses_always.load(Ordering::SeqCst)
            {
                return Err(ReplayError::Unavailable {
                    message: "the store does not answer".to_owned(),
                });
            }
            self.inner.complete(id, attestation)
        }
        parmana_testkit::forward_store_reads!(inner);
    }

    fn runtime_over(
        fixture: &parmana_testkit::FixtureEnvironment,
        store: Arc<dyn ReplayStore>,
    ) -> Runtime {
        fixture.runtime_over(store).unwrap()
    }

    /// A runtime of `fixture` over a [`Faulty`] store, and the store.
    fn over_faulty(fixture: &parmana_testkit::FixtureEnvironment) -> (Arc<Faulty>, Runtime) {
        let store = Arc::new(Faulty::default());
        let runtime = runtime_over(fixture, Arc::clone(&store) as Arc<dyn ReplayStore>);
        (store, runtime)
    }

    /// Asserts that `failure` says `id` stays claimed for `recover`, and that it is claimed, not
    /// completed, on `runtime`'s store.
    fn assert_left_for_recover(runtime: &Runtime, failure: &Failure, id: &str) {
        assert!(
            failure
                .message
                .contains("it stays claimed until `parmana recover`"),
            "{}",
            failure.message
        );
        let id = ExecutionId::parse(id).unwrap();
        assert!(matches!(
            runtime.attestation(&id),
            Ok(ExecutionStatus::Claimed { .. })
        ));
    }

    fn request(id: &str) -> ExecutionRequest {
        ExecutionRequest::parse(id, "claims-approval@1.0.0", SIGNALS).unwrap()
    }

    /// A defect (a panic) after the claim is a failure naming the id and what completes it,
    /// not the end of the command: a generated id would otherwise stay claimed, never told.
    #[test]
    fn a_panic_after_the_claim_names_the_execution() {
        let fixture = parmana_testkit::FixtureEnvironment::new().unwrap();
        let (store, runtime) = over_faulty(&fixture);
        store.panics.store(true, Ordering::SeqCst);
        let failure = execute_one(&runtime, &request("panics-1")).unwrap_err();
        assert_eq!(failure.code, "runtime.panicked", "{}", failure.message);
        assert_eq!(failure.class, ExitClass::Internal);
        assert_eq!(failure.execution_id.as_deref(), Some("panics-1"));
        assert!(
            failure.message.contains("the store driver's defect"),
            "{}",
            failure.message
        );
        assert_left_for_recover(&runtime, &failure, "panics-1");
    }

    /// A completion the store refused is written again once: recorded, the execution is
    /// complete and its attestation delivered (what the first write would have stored); one the
    /// store refuses again stays claimed, and the failure says so.
    #[test]
    fn a_refused_completion_is_written_again_and_delivered_once_recorded() {
        let fixture = parmana_testkit::FixtureEnvironment::new().unwrap();
        let (store, runtime) = over_faulty(&fixture);
        store.refuses.store(true, Ordering::SeqCst);
        let delivered = execute_one(&runtime, &request("second-try")).unwrap();
        assert!(delivered.second_try);
        let id = ExecutionId::parse("second-try").unwrap();
        let Ok(ExecutionStatus::Completed(stored)) = runtime.attestation(&id) else {
            panic!("second-try is not completed");
        };
        assert_eq!(delivered.attestation.envelope(), &stored[..]);
        // What a store that took the first write records, for the same request.
        let reference = runtime_over(
            &fixture,
            Arc::new(Faulty::default()) as Arc<dyn ReplayStore>,
        );
        let signed = execute_one(&reference, &request("second-try")).unwrap();
        assert!(!signed.second_try);
        assert_eq!(
            signed.attestation.envelope(),
            delivered.attestation.envelope()
        );
        // Refused at the first try and at the second: claimed, for `recover`.
        let (refusing, runtime) = over_faulty(&fixture);
        refusing.refuses_always.store(true, Ordering::SeqCst);
        let failure = execute_one(&runtime, &request("no-second-try")).unwrap_err();
        assert_left_for_recover(&runtime, &failure, "no-second-try");
    }

    /// What a batch's refused completions became is said at its end: recorded on a second try,
    /// or waiting for `recover`.
    #[test]
    fn a_batch_says_what_its_refused_completions_became() {
        let fixture = parmana_testkit::FixtureEnvironment::new().unwrap();
        let (store, runtime) = over_faulty(&fixture);
        assert!(finish_kept_completions(&runtime).is_empty());
        store.refuses.store(true, Ordering::SeqCst);
        runtime.execute(&request("batch-1")).unwrap_err();
        assert_eq!(
            finish_kept_completions(&runtime),
            [
                "1 execution(s) refused when the store failed to record their completion were \
              completed on a second try (`parmana show ID` reads each back)"
            ]
        );
        let (refusing, runtime) = over_faulty(&fixture);
        refusing.refuses_always.store(true, Ordering::SeqCst);
        for id in ["batch-2", "batch-3"] {
            runtime.execute(&request(id)).unwrap_err();
        }
        assert_eq!(
            finish_kept_completions(&runtime),
            [
                "2 execution(s) refused when the store failed to record their completion stay \
              claimed until `parmana recover` (with the same store) completes them"
            ]
        );
    }
}
