//! `parmana show ID`: print the stored attestation of a completed execution, or say why there is none.

use parmana_runtime::{ExecutionStatus, execution_status, parse_execution_id};

use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, outln};
use crate::store::StoreArgs;

/// Arguments of `parmana show`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  parmana show claim-0001                     # the attestation, as execute printed it\n  parmana show claim-0001 | parmana verify -\n\nExit 0 with the attestation; 6 when the id is claimed but not completed (run `parmana recover`);\n3 when the store has never seen it."
)]
pub(crate) struct ShowArgs {
    /// The execution id.
    #[arg(value_name = "EXECUTION_ID")]
    execution_id: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `parmana show`.
pub(crate) fn show(args: &ShowArgs) -> Result<(), Failure> {
    let id = parse_execution_id(&args.execution_id).map_err(|e| Failure::execution(&e))?;
    let store = args.store.open_existing(&Deployment::load()?)?;
    match execution_status(store.as_ref(), &id).map_err(|e| Failure::execution(&e))? {
        ExecutionStatus::Completed(envelope) => {
            outln!("{}", String::from_utf8_lossy(&envelope));
            Ok(())
        }
        ExecutionStatus::Claimed { claimed_at } => Err(Failure::new(
            "cli.execution_pending",
            format!(
                "execution {id} was claimed at {claimed_at} but not completed: run `parmana recover`"
            ),
            ExitClass::Store,
        )),
        ExecutionStatus::Unknown => Err(Failure::new(
            "cli.execution_unknown",
            format!("the store holds no execution {id}"),
            ExitClass::InvalidInput,
        )),
    }
}
