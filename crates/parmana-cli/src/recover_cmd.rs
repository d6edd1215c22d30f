//! `parmana recover`: complete every execution that was claimed but not completed (after a crash), byte-identically.

use std::path::PathBuf;

use parmana_runtime::{Recovered, StoreOpen};

use crate::common::{ClockArgs, EnvironmentArgs, build_runtime, warn_environment_expiry};
use crate::config::Deployment;
use crate::report::{Failure, print_failure, write_stdout_delivered};
use crate::store::StoreArgs;

const RECOVER_EXAMPLES: &str = concat!(
    "\
An execution whose process died after its id was claimed and before its attestation was
recorded stays claimed (and refused to everyone else). `parmana recover` signs it from the
inputs recorded with the claim — including the clock reading — so the attestation is
byte-identical to the one the interrupted run would have printed. Run it with the same trust
root and attestation key as the interrupted run (a later build of Parmana recovers what an
earlier one claimed, under the same evaluator semantics). The recovered executions are then
sequenced into the log (with a checkpoint signed when a log key is configured: PARMANA_LOG_KEY
or `log_key` in `[server]`). Each execution that could not be completed is reported on its own
and the others go on; the exit is then the class of the first of them, in the store's order of
ids (as `execute --batch` exits with its first refused line's).

Example:
  parmana recover                              # the store of the deployment (parmana.toml)",
    "\n\n",
    crate::exit::exit_codes_help!()
);

/// Arguments of `parmana recover`.
#[derive(Debug, clap::Args)]
#[command(after_help = RECOVER_EXAMPLES)]
pub(crate) struct RecoverArgs {
    /// The attestation signing key(s) (PKCS#8 PEM) of the interrupted executions; repeat it
    /// when the `attestation` role's threshold is above one.
    /// [env: PARMANA_KEYS, a path list; config: keys; default: trust/keys/attestation.pem]
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    environment: EnvironmentArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana recover`: prints each completed attestation on its own line; reports each
/// execution that could not be completed on stderr and then exits with the class of the first
/// (also when standard output failed too: that failure is reported, exit 1 only without one).
/// A store that stops answering part way stops it: what was done is said, and the exit is the
/// store's (6).
pub(crate) fn recover_command(
    args: &RecoverArgs,
    format: crate::report::Format,
) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let store = args.store.location(&deployment)?;
    let runtime = build_runtime(
        &deployment,
        &args.key,
        &args.environment,
        &store.value,
        StoreOpen::MustExist,
        &args.clock,
    )?;
    warn_environment_expiry(&deployment, &args.clock, &runtime)?;
    let log_keys = crate::execute_cmd::configured_log_keys(&deployment, &[], &runtime)?;
    let anchor = crate::execute_cmd::configured_log_anchor(&deployment, None)?;
    crate::execute_cmd::check_store_reaches_anchor(&runtime, anchor.as_ref(), &store.value)?;
    // Each settled execution is printed as soon as its attestation is stored, page by page:
    // memory does not grow with the number of claimed ids. Standard output failing (its reader
    // gone included) stops no recovery: what is completed is stored, each id not printed is
    // named on stderr as it completes (`parmana show` reads it back), and the first failure is
    // reported at the end.
    // The first execution that could not be completed (its class is the exit).
    let mut first_failed: Option<Failure> = None;
    let mut unprinted: Option<Failure> = None;
    // Counted here too, for a recovery that stops part way (the store not answering).
    let (mut completed, mut failed) = (0_u64, 0_u64);
    let recovered = runtime.recover_each(&mut |recovered| match recovered {
        Recovered::Completed(attestation) => {
            completed += 1;
            let id = &attestation.predicate().execution_id;
            let failed = match &unprinted {
                Some(failure) => Some(failure.message.clone()),
                None => write_stdout_delivered(format_args!("{}\n", attestation.envelope_str()))
                    .err()
                    .map(|failure| {
                        let message = failure.message.clone();
                        unprinted = Some(failure);
                        message
                    }),
            };
            if let Some(what) = failed {
                crate::execute_cmd::report_not_printed(
                    id,
                    &crate::execute_cmd::not_printed(id, &what),
                    format,
                );
            }
        }
        Recovered::Failed {
            execution_id,
            error,
        } => {
            failed += 1;
            let mut failure = Failure::execution(&error);
            failure.message = format!("execution {execution_id:?}: {}", failure.message);
            let failure = failure.of_execution(&execution_id);
            print_failure(&failure, format);
            first_failed.get_or_insert(failure);
        }
    });
    // The recovered executions (and any other waiting) go into the log, as `execute` does —
    // also when recovery stopped part way, for those it completed before.
    crate::execute_cmd::sequence_after(
        &runtime,
        &log_keys,
        crate::execute_cmd::anchor_of(anchor.as_ref(), &store.value),
    );
    let counts = match recovered {
        Ok(counts) => counts,
        // Stopped (the store not answering even a read of its marks, say): what was done is
        // said, each failure before it reported, and the stop is the exit (a store that did not
        // answer: class store, 6 — run it again once it answers; the ids left are recovered
        // then, byte for byte).
        Err(error) => {
            crate::report::errln!(
                "recovered {completed} execution(s); {failed} could not be completed; stopped \
                 before the rest ({})",
                error.code()
            );
            if let Some(unprinted) = unprinted {
                print_failure(&unprinted, format);
            }
            return Err(Failure::execution(&error));
        }
    };
    crate::report::errln!(
        "recovered {} execution(s); {} could not be completed",
        counts.completed,
        counts.failed
    );
    match (unprinted, first_failed) {
        (None, None) => Ok(()),
        (Some(unprinted), None) => Err(unprinted),
        // An execution that could not be completed (a forged row: trust, exit 4) says more than
        // output nobody read: its class is the exit, and the output's failure is reported too.
        (unprinted, Some(failure)) => {
            if let Some(unprinted) = unprinted {
                print_failure(&unprinted, format);
            }
            Err(Failure {
                reported: true,
                ..failure
            })
        }
    }
}
