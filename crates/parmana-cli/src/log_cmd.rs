//! `parmana log …`: the transparency log over the replay store's ledger — signed checkpoints, offline inclusion proofs of executions, consistency with an older checkpoint.

use std::path::PathBuf;

use parmana_runtime::canon::ExecutionId;
use parmana_runtime::trust::{MAX_TLOG_PROOF_BYTES, tlog_hash_text};
use parmana_runtime::{
    load_trust_history, load_trust_root, log_consistency, parse_execution_id, prove_execution,
    sign_log_checkpoint,
};

use crate::common::{ClockArgs, TrustRootArgs, read_bounded, read_private_key, write_file};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, out, outln};
use crate::store::StoreArgs;

/// `parmana log …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LogCommand {
    /// Sign and print a checkpoint of the log as it is now: a C2SP tlog-checkpoint (origin, size,
    /// base64 root hash) in a signed note, by a key of the trust root's log role. Refused when
    /// the ledger is broken or the key does not hold the log role.
    #[command(
        after_help = "Example:\n  parmana log checkpoint --key keys/log.pem > checkpoint.txt"
    )]
    Checkpoint(CheckpointArgs),
    /// Write the .tlog-proof of an execution (C2SP tlog-proof: index, inclusion proof, the
    /// checkpoint verbatim; the execution's log entry as its extra data) for a signed checkpoint
    /// that the store's log extends. `parmana verify ATTESTATION --proof FILE` checks it offline.
    #[command(
        after_help = "Example:\n  parmana log prove exec-42 --checkpoint checkpoint.txt --out exec-42.tlog-proof"
    )]
    Prove(ProveArgs),
    /// Check that the store's log extends an older signed checkpoint (no entry rewritten or
    /// removed since) and print the RFC 9162 consistency proof from it to the current size.
    #[command(after_help = "Example:\n  parmana log consistency checkpoint-yesterday.txt")]
    Consistency(ConsistencyArgs),
}

/// Arguments of `parmana log checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// The private key (PKCS#8 PEM) of the trust root's log role that signs.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana log prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The execution id.
    #[arg(value_name = "EXECUTION_ID")]
    execution_id: String,
    /// The signed checkpoint to prove inclusion in (what `parmana log checkpoint` printed).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Write the proof to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Arguments of `parmana log consistency`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsistencyArgs {
    /// The older signed checkpoint.
    #[arg(value_name = "OLD_CHECKPOINT")]
    old: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Runs `parmana log …`.
pub(crate) fn log(command: &LogCommand, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    match command {
        LogCommand::Checkpoint(args) => {
            let paths = args.trust.resolve(&deployment);
            let trust = load_trust_root(&paths.pinned_root, &paths.trust_root, args.clock.now())
                .map_err(|e| Failure::execution(&e))?;
            let key = read_private_key(&args.key)?;
            let store = args.store.open_existing(&deployment)?;
            let note = sign_log_checkpoint(store.as_ref(), &trust, &key)
                .map_err(|e| Failure::execution(&e))?;
            out!("{note}");
            Ok(())
        }
        LogCommand::Prove(args) => {
            let id: ExecutionId =
                parse_execution_id(&args.execution_id).map_err(|e| Failure::execution(&e))?;
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let checkpoint = read_checkpoint(&args.checkpoint)?;
            let store = args.store.open_existing(&deployment)?;
            let proof = prove_execution(store.as_ref(), history.newest(), &id, &checkpoint)
                .map_err(|e| Failure::execution(&e))?;
            match &args.out {
                Some(path) => write_file(path, proof.to_text().as_bytes()),
                None => {
                    out!("{}", proof.to_text());
                    Ok(())
                }
            }
        }
        LogCommand::Consistency(args) => {
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let old = read_checkpoint(&args.old)?;
            let store = args.store.open_existing(&deployment)?;
            let consistency = log_consistency(store.as_ref(), history.newest(), &old)
                .map_err(|e| Failure::execution(&e))?;
            let proof: Vec<String> = consistency.proof.iter().map(tlog_hash_text).collect();
            let root = tlog_hash_text(&consistency.new_root);
            match format {
                Format::Human => {
                    outln!(
                        "consistent: the log of size {} extends the checkpoint of size {} (root now {root})",
                        consistency.new_size,
                        consistency.old_size
                    );
                    for hash in &proof {
                        outln!("{hash}");
                    }
                }
                Format::Json => outln!(
                    "{}",
                    Json(serde_json::json!({
                        "old_size": consistency.old_size,
                        "new_size": consistency.new_size,
                        "new_root": root,
                        "proof": proof,
                    }))
                ),
            }
            Ok(())
        }
    }
}

/// Reads a signed checkpoint file, bounded like a proof file.
fn read_checkpoint(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_bounded(path, MAX_TLOG_PROOF_BYTES)?;
    if bytes.len() > MAX_TLOG_PROOF_BYTES {
        return Err(Failure::new(
            "trust.note_malformed",
            format!(
                "{}: a checkpoint is at most {MAX_TLOG_PROOF_BYTES} bytes",
                path.display()
            ),
            ExitClass::InvalidInput,
        ));
    }
    Ok(bytes)
}
