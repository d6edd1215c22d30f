//! `parmana ledger verify`: walk the replay store's chained ledger of completed executions.

use parmana_runtime::replay::verify_ledger;

use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, outln};
use crate::store::StoreArgs;

/// `parmana ledger …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Verify the tamper-evident ledger: every completed execution has exactly one record, each
    /// record is chained by digest to the one before, and each matches the stored execution.
    /// Prints the number of records and the head digest (anchor it elsewhere to detect a
    /// wholesale rewrite); exit 7 at the first break.
    #[command(
        after_help = "Example:\n  parmana ledger verify                       # the store of the deployment (parmana.toml)\n  parmana ledger verify --store postgres://parmana@db.internal/parmana"
    )]
    Verify(StoreArgs),
}

/// Runs `parmana ledger …`.
pub(crate) fn ledger(command: &LedgerCommand, format: Format) -> Result<(), Failure> {
    let LedgerCommand::Verify(store_args) = command;
    let store = store_args.open_existing(&Deployment::load()?)?;
    let report = verify_ledger(store.as_ref()).map_err(|e| Failure::replay(&e))?;
    match format {
        Format::Human => match (&report.first_break, &report.head) {
            (Some(broken), _) => {
                outln!("ledger BROKEN after {}: {broken}", records(report.records))
            }
            (None, Some(head)) => {
                outln!("ledger intact: {}, head {head}", records(report.records))
            }
            (None, None) => outln!("ledger intact: empty"),
        },
        Format::Json => outln!(
            "{}",
            Json(serde_json::json!({
                "intact": report.is_intact(),
                "records": report.records,
                "head": report.head.map(|h| h.to_string()),
                "first_break": report.first_break.as_ref().map(|b| serde_json::json!({
                    "position": b.position, "code": b.code(), "message": b.to_string()
                })),
            }))
        ),
    }
    match report.first_break {
        None => Ok(()),
        Some(broken) => Err(Failure::new(
            broken.code(),
            broken.to_string(),
            ExitClass::VerificationFailed,
        )),
    }
}

/// "1 record", "2 records".
fn records(count: u64) -> String {
    if count == 1 {
        "1 record".to_owned()
    } else {
        format!("{count} records")
    }
}
