//! `parmana execute`: execute signals under a signed policy exactly once and print the signed attestation.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use parmana_canon::parse_strict;
use parmana_replay::ReplayStore;
use parmana_runtime::{
    Clock, ExecutionRequest, RuntimeEnvironment, execute_from_signals, trust::LocalSigningKey,
};
use serde_json::Value;

use crate::common::{
    ClockArgs, EnvironmentArgs, read_file_or_stdin, read_private_key, read_signals,
    split_policy_reference,
};
use crate::exit::ExitClass;
use crate::report::{Failure, Json, failure_json, outln};
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
pub struct ExecuteArgs {
    /// The policy to decide under, `ID@VERSION` (for example `claims-approval@1.0.0`). With
    /// `--batch`, the policy of every line that names none.
    #[arg(long, value_name = "ID@VERSION", required_unless_present = "batch")]
    policy: Option<String>,
    /// The signals: an inline JSON object, or a file holding one (`-` for standard input).
    #[arg(
        long,
        value_name = "JSON|FILE",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    signals: Option<String>,
    /// The execution id (1 to 128 printable ASCII characters, no spaces), consumed at most once.
    /// A fresh UUIDv7 when absent.
    #[arg(long, value_name = "ID", conflicts_with = "batch")]
    execution_id: Option<String>,
    /// Execute every line of a JSON Lines file, each
    /// `{"execution_id"?: ID, "policy"?: "ID@VERSION", "signals": {...}}`, printing one line per
    /// input line: the attestation, or `{"error":{"code","message"},"line":N}`. A refused line
    /// does not stop the batch; the exit code is non-zero if any line was refused. A progress bar
    /// is drawn on stderr when it is a terminal.
    #[arg(long, value_name = "FILE.jsonl")]
    batch: Option<PathBuf>,
    /// The attestation signing key (PKCS#8 PEM); it must hold the `attestation` role in the trust root.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "trust/keys/attestation.pem"
    )]
    key: PathBuf,
    /// Embed the validated signals in the attestation (their digest is always bound).
    #[arg(long)]
    include_signals: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    environment: EnvironmentArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// What every execution of one command shares.
struct Executor {
    signer: LocalSigningKey,
    environment: RuntimeEnvironment,
    store: Box<dyn ReplayStore>,
    clock: Box<dyn Clock>,
    include_signals: bool,
}

impl Executor {
    fn execute(
        &self,
        execution_id: Option<String>,
        policy: &str,
        signals: Value,
    ) -> Result<String, Failure> {
        let (policy_id, policy_version) = split_policy_reference(policy)?;
        let request = ExecutionRequest {
            execution_id: execution_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            policy_id,
            policy_version,
            signals,
            include_signals: self.include_signals,
        };
        let attestation = execute_from_signals(
            &request,
            &self.signer,
            self.store.as_ref(),
            &self.environment,
            self.clock.as_ref(),
        )
        .map_err(|e| Failure::execution(&e))?;
        Ok(attestation.envelope_str().to_owned())
    }
}

/// Runs `parmana execute`.
pub fn execute(args: &ExecuteArgs) -> Result<(), Failure> {
    // Read the inputs first, so that a typo never opens (or creates) a store.
    let single_signals = args.signals.as_deref().map(read_signals).transpose()?;
    let batch = args.batch.as_deref().map(read_file_or_stdin).transpose()?;
    let signer = read_private_key(&args.key)?;
    let clock = args.clock.clock();
    let environment = RuntimeEnvironment::load(&args.environment.config(), clock.now())
        .map_err(|e| Failure::execution(&e))?;
    let store = args.store.open(true)?;
    let executor = Executor {
        signer,
        environment,
        store,
        clock,
        include_signals: args.include_signals,
    };
    if let Some(input) = batch {
        return execute_batch(&executor, args.policy.as_deref(), &input);
    }
    let (Some(policy), Some(signals)) = (args.policy.as_deref(), single_signals) else {
        return Err(Failure::new(
            "cli.usage",
            "--policy and --signals are required without --batch",
            ExitClass::Usage,
        ));
    };
    let envelope = executor.execute(args.execution_id.clone(), policy, signals)?;
    outln!("{envelope}");
    Ok(())
}

fn invalid_line(message: impl Into<String>) -> Failure {
    Failure::new("cli.batch_line_invalid", message, ExitClass::InvalidInput)
}

/// Reads one batch line: `{"execution_id"?, "policy"?, "signals"}`.
fn parse_batch_line(
    line: &[u8],
    default_policy: Option<&str>,
) -> Result<(Option<String>, String, Value), Failure> {
    let value = parse_strict(line).map_err(|e| Failure::canon("batch line", &e))?;
    let Value::Object(mut map) = value else {
        return Err(invalid_line("a batch line is a JSON object"));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "execution_id" | "policy" | "signals"))
    {
        return Err(invalid_line(format!(
            "unknown field {unknown:?} (expected execution_id, policy, signals)"
        )));
    }
    let text_field = |name: &str, value: Option<Value>| match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid_line(format!("{name} is not a string"))),
    };
    let execution_id = text_field("execution_id", map.remove("execution_id"))?;
    let policy = text_field("policy", map.remove("policy"))?
        .or_else(|| default_policy.map(str::to_owned))
        .ok_or_else(|| invalid_line("the line names no policy and --policy is not given"))?;
    let signals = map
        .remove("signals")
        .ok_or_else(|| invalid_line("the line has no signals"))?;
    Ok((execution_id, policy, signals))
}

fn execute_batch(
    executor: &Executor,
    default_policy: Option<&str>,
    input: &[u8],
) -> Result<(), Failure> {
    let lines: Vec<(usize, &[u8])> = input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let bar = progress_bar(lines.len());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| Failure::io("standard output", &e);
    let mut first_refusal: Option<ExitClass> = None;
    let mut refused = 0usize;
    for (number, line) in &lines {
        let outcome = parse_batch_line(line, default_policy)
            .and_then(|(id, policy, signals)| executor.execute(id, &policy, signals));
        match outcome {
            Ok(envelope) => writeln!(out, "{envelope}").map_err(write_err)?,
            Err(failure) => {
                refused += 1;
                first_refusal.get_or_insert(failure.class);
                let entry = serde_json::json!({"error": failure_json(&failure), "line": number});
                writeln!(out, "{}", Json(&entry)).map_err(write_err)?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.flush().map_err(write_err)?;
    match first_refusal {
        None => Ok(()),
        Some(class) => Err(Failure::new(
            "cli.batch_refused",
            format!(
                "{refused} of {} lines refused (see the error lines on stdout)",
                lines.len()
            ),
            class,
        )),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(len: usize) -> ProgressBar {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} executed ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}
