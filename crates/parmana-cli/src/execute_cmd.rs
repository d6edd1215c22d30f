//! `parmana execute`: execute signals under a signed policy exactly once and print the signed attestation.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use parmana_runtime::canon::PolicyRef;
use parmana_runtime::{
    BatchLine, ExecutionRequest, Runtime, Signals, StoreOpen, batch_lines, batch_refusal_line,
    new_execution_id, parse_execution_id,
};

use crate::common::{
    ClockArgs, EnvironmentArgs, policy_reference, read_file_or_stdin, read_private_key,
    read_signals,
};
use crate::exit::ExitClass;
use crate::report::{Failure, outln};
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

/// Runs `parmana execute`.
pub(crate) fn execute(args: &ExecuteArgs) -> Result<(), Failure> {
    // Read and check the inputs first, so that a typo never opens (or creates) a store.
    let single_signals = args.signals.as_deref().map(read_signals).transpose()?;
    let default_policy = args.policy.as_deref().map(policy_reference).transpose()?;
    let execution_id = args
        .execution_id
        .as_deref()
        .map(parse_execution_id)
        .transpose()
        .map_err(|e| Failure::execution(&e))?;
    let batch = args.batch.as_deref().map(read_file_or_stdin).transpose()?;
    let signer = read_private_key(&args.key)?;
    let runtime = Runtime::builder(args.environment.config())
        .signer(signer)
        .store_location(&args.store.store, StoreOpen::CreateIfMissing)
        .clock(args.clock.clock())
        .build()
        .map_err(|e| Failure::execution(&e))?;
    if let Some(input) = batch {
        return execute_batch(
            &runtime,
            default_policy.as_ref(),
            &input,
            args.include_signals,
        );
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
    let attestation = runtime
        .execute(&request)
        .map_err(|e| Failure::execution(&e))?;
    outln!("{}", attestation.envelope_str());
    Ok(())
}

/// Executes one batch line: the attestation, or the refusal's code and message.
fn execute_line(
    runtime: &Runtime,
    line: &[u8],
    default_policy: Option<&PolicyRef>,
    include_signals: bool,
) -> Result<Vec<u8>, parmana_runtime::ExecutionError> {
    let request =
        BatchLine::parse(line, default_policy)?.into_request(new_execution_id, include_signals);
    Ok(runtime.execute(&request)?.into_envelope())
}

fn execute_batch(
    runtime: &Runtime,
    default_policy: Option<&PolicyRef>,
    input: &[u8],
    include_signals: bool,
) -> Result<(), Failure> {
    let lines: Vec<(usize, &[u8])> = batch_lines(input).collect();
    let bar = progress_bar(lines.len());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| Failure::io("standard output", &e);
    let mut first_refusal: Option<ExitClass> = None;
    let mut refused = 0usize;
    for (number, line) in &lines {
        match execute_line(runtime, line, default_policy, include_signals) {
            Ok(envelope) => {
                out.write_all(&envelope).map_err(write_err)?;
                out.write_all(b"\n").map_err(write_err)?;
            }
            Err(error) => {
                refused += 1;
                let failure = Failure::execution(&error);
                first_refusal.get_or_insert(failure.class);
                let entry = batch_refusal_line(*number, &failure.code, &failure.message)
                    .map_err(|e| Failure::execution(&e))?;
                out.write_all(&entry).map_err(write_err)?;
                out.write_all(b"\n").map_err(write_err)?;
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
