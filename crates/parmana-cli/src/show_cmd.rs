//! `parmana show ID`: print the stored attestation of a completed execution, once it verifies as that execution's, or say why there is none.

use parmana_runtime::{
    Clock as _, ExecutionStatus, SystemClock, load_trust_history, parse_execution_id,
    stored_execution_status,
};

use crate::common::TrustRootArgs;
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, outln};
use crate::store::StoreArgs;

/// Arguments of `parmana show`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  parmana show claim-0001                     # the attestation, as execute printed it\n  parmana show claim-0001 | parmana verify -\n\nThe store is outside the trust boundary: the stored attestation is printed only once it\nverifies under the trust-root chain as this execution's (runtime.stored_attestation_invalid\notherwise: a writer of the store replaced or made it), so the trust-root chain must be readable\nwhatever the id's state.\n\nExit 0 with the attestation; 6 when the id is claimed but not completed (run `parmana recover`);\n3 when the store has never seen it; 4 when the stored attestation is not this execution's, or was\nmade under a trust-root version newer than the chain on disk."
)]
pub(crate) struct ShowArgs {
    /// The execution id.
    #[arg(value_name = "EXECUTION_ID")]
    execution_id: String,
    #[command(flatten)]
    store: StoreArgs,
    /// The trust-root chain the stored attestation must verify under.
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Runs `parmana show`.
pub(crate) fn show(args: &ShowArgs) -> Result<(), Failure> {
    let id = parse_execution_id(&args.execution_id).map_err(|e| Failure::execution(&e))?;
    let deployment = Deployment::load()?;
    let store = args.store.open_read_only(&deployment)?;
    let paths = args.trust.resolve(&deployment);
    let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
        .map_err(|e| Failure::execution(&e))?;
    let status = stored_execution_status(store.as_ref(), &history, SystemClock.now(), &id)
        .map_err(|e| Failure::execution(&e))?;
    match status {
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
