//! `parmana ledger verify`: walk the replay store's chained ledger of completed executions and raises of the high-water marks, and recompute its transparency-log root.

use parmana_runtime::replay::{LedgerLog, verify_ledger_snapshot};
use parmana_runtime::trust::tlog_hash_text;

use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, outln};
use crate::store::StoreArgs;

/// `parmana ledger …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Verify the tamper-evident ledger: every completed execution has exactly one record, each
    /// record (execution or raise of the rollback high-water marks) is chained by digest to the
    /// one before, each execution record matches the stored execution, and the store's marks
    /// are not lower than its marks records prove (a reset of the marks). Prints the number of
    /// records of each kind, the highest marks they prove, the head digest and the root hash of
    /// the transparency log over the records (compare it with a signed checkpoint of the same
    /// size, or use `parmana log consistency`); exit 7 at the first break.
    #[command(
        after_help = "Example:\n  parmana ledger verify                       # the store of the deployment (parmana.toml)\n  parmana ledger verify --store postgres://parmana@db.internal/parmana"
    )]
    Verify(StoreArgs),
}

/// Runs `parmana ledger …`.
pub(crate) fn ledger(command: &LedgerCommand, format: Format) -> Result<(), Failure> {
    let LedgerCommand::Verify(store_args) = command;
    let store = store_args.open_existing(&Deployment::load()?)?;
    let snapshot = store.ledger_snapshot().map_err(|e| Failure::replay(&e))?;
    let report = verify_ledger_snapshot(&snapshot);
    // The transparency log's root over the same records (docs/transparency-log.md), when intact.
    let log_root = report
        .is_intact()
        .then(|| LedgerLog::from_snapshot(snapshot).ok())
        .flatten()
        .map(|log| tlog_hash_text(&log.root()));
    let summary = format!(
        "{} ({}, {}: {})",
        counted(report.records, "record"),
        counted(report.executions, "execution"),
        counted(report.mark_records, "marks record"),
        report.marks
    );
    match format {
        Format::Human => match (&report.first_break, &report.head) {
            (Some(broken), _) => outln!("ledger BROKEN after {summary}: {broken}"),
            (None, Some(head)) => outln!(
                "ledger intact: {summary}, head {head}, log root {}",
                log_root.as_deref().unwrap_or("-")
            ),
            (None, None) => outln!("ledger intact: empty"),
        },
        Format::Json => outln!(
            "{}",
            Json(serde_json::json!({
                "intact": report.is_intact(),
                "records": report.records,
                "executions": report.executions,
                "mark_records": report.mark_records,
                "marks": {
                    "trust_root": report.marks.trust_root,
                    "release_manifest": report.marks.release_manifest,
                },
                "head": report.head.map(|h| h.to_string()),
                "log_root": log_root,
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
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
