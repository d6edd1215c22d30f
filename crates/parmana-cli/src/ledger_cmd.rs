//! `parmana ledger verify|export`: walk the replay store's chained ledger of completed executions and raises of the high-water marks (and recompute its transparency-log root), or ship it as JSON lines.

use parmana_runtime::canon::Digest;
use parmana_runtime::replay::{
    CATCH_UP_BATCH, ExecutionEntry, LedgerBreak, LedgerBreakKind, LedgerLog, LedgerRow,
    ReplayError, walk_ledger,
};
use parmana_runtime::trust::tlog_hash_text;
use parmana_runtime::{audit_ledger, load_trust_history};

use crate::common::TrustRootArgs;
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
    /// are not lower than its marks records prove (a reset of the marks). Recomputes the
    /// transparency log's tree and checks every stored checkpoint: its root is the recomputed
    /// root at its size, and its note is signed by a log key of the trust-root chain (so each is
    /// consistent with every earlier one). Prints the number of records of each kind, the
    /// highest marks they prove, the head digest, the log's root hash, the checkpoints checked
    /// and the completed executions not yet sequenced (not a break); exit 7 at the first break.
    #[command(
        after_help = "Example:\n  parmana ledger verify                       # the store of the deployment (parmana.toml)\n  parmana ledger verify --store postgres://parmana@db.internal/parmana"
    )]
    Verify(VerifyArgs),
    /// Write ledger records with their attestations as JSON lines, for an audit system: one line
    /// per record, `{"position", "kind", "execution_id"?, "record", "attestation"?}` (the record
    /// and the attestation as the store holds them, as JSON). The ledger is verified first and
    /// nothing is written if it is broken. Resumable: `--from` the position after the last one
    /// shipped.
    #[command(after_help = "Examples:
  parmana ledger export > ledger.jsonl                # everything
  parmana ledger export --from 1000 >> ledger.jsonl   # resume after position 999
  parmana ledger export --from 10 --to 19             # positions 10 to 19")]
    Export(ExportArgs),
}

/// Arguments of `parmana ledger verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The trust-root chain whose log keys signed the stored checkpoints (read only when the
    /// store holds checkpoints).
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Arguments of `parmana ledger export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The first position written (0 is the first record).
    #[arg(long, value_name = "N", default_value_t = 0)]
    from: u64,
    /// The last position written (inclusive); the end of the ledger when absent.
    #[arg(long, value_name = "M")]
    to: Option<u64>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `parmana ledger export`: refuses a broken ledger, then writes the records in range.
fn export(args: &ExportArgs) -> Result<(), Failure> {
    if args.to.is_some_and(|to| to < args.from) {
        return Err(Failure::new(
            "cli.usage",
            "--to is before --from",
            ExitClass::Usage,
        ));
    }
    let store = args.store.open_read_only(&Deployment::load()?)?;
    // First the whole ledger is verified, page by page; then the records in range are read
    // again, page by page, each checked to be the entry verified (so what is written is the
    // verified ledger, whatever a writer of the store does meanwhile).
    let walked = walk_ledger(store.as_ref()).map_err(|e| Failure::replay(&e))?;
    let report = walked.report.clone();
    let log = walked.into_log().map_err(|e| match e {
        ReplayError::LedgerBroken(broken) => Failure::new(
            broken.code(),
            format!("the ledger is broken, nothing exported: {broken}"),
            ExitClass::VerificationFailed,
        ),
        other => Failure::replay(&other),
    })?;
    let mut out = crate::report::ResultStream::new();
    let end = args
        .to
        .map_or(log.size(), |to| to.saturating_add(1).min(log.size()));
    let mut position = args.from;
    let mut written = 0u64;
    while position < end {
        let left = usize::try_from(end - position).unwrap_or(usize::MAX);
        let rows = store
            .ledger_rows(position, left.min(CATCH_UP_BATCH))
            .map_err(|e| Failure::replay(&e))?;
        if rows.is_empty() {
            out.flush()?;
            return Err(changed_during_export(position, written));
        }
        for row in rows.into_iter().take(left) {
            if row.position != position || !is_verified_entry(&log, &row) {
                out.flush()?;
                return Err(changed_during_export(position, written));
            }
            let record = parse_stored("ledger record", &row.record)?;
            let mut line = serde_json::json!({
                "position": row.position,
                "kind": if row.execution_id.is_some() { "execution" } else { "marks" },
                "record": record,
            });
            if let Some(object) = line.as_object_mut() {
                if let Some(id) = &row.execution_id {
                    object.insert("execution_id".to_owned(), id.clone().into());
                }
                if let Some(attestation) = &row.attestation {
                    object.insert(
                        "attestation".to_owned(),
                        parse_stored("attestation", attestation)?,
                    );
                }
            }
            // Each line handed on whole before the next: standard output failing (a full disk)
            // then names the position to resume from — the lines before it whole, this one
            // perhaps in part.
            let delivered = out
                .line(format_args!("{}", Json(&line)))
                .and_then(|more| if more { out.flush() } else { Ok(false) })
                .map_err(|failure| stopped_writing(failure, args.from, position))?;
            if !delivered {
                // Nobody reads on (`parmana ledger export | head`): nothing more to export.
                return Ok(());
            }
            written += 1;
            position += 1;
        }
    }
    if !out.flush()? {
        return Ok(());
    }
    // The positions written, as they were (none: the range given holds no record).
    let range = if written == 0 {
        "no record in the range asked for".to_owned()
    } else {
        format!("positions {}..={}", args.from, position.saturating_sub(1))
    };
    crate::report::errln!(
        "exported {} of {} ({range})",
        counted(written, "record"),
        counted(report.records, "record"),
    );
    if report.unsequenced > 0 {
        crate::report::errln!(
            "{} not yet sequenced (not in the ledger yet: `parmana log sequence`)",
            counted(report.unsequenced, "completed execution")
        );
    }
    Ok(())
}

/// `failure` of standard output while the record at `position` was written: which positions went
/// out whole, and where to resume (after cutting a partial last line).
fn stopped_writing(failure: Failure, from: u64, position: u64) -> Failure {
    let whole = if position > from {
        format!("positions {from}..={} were written whole", position - 1)
    } else {
        "no record was written whole".to_owned()
    };
    Failure {
        message: format!(
            "{}; {whole}, position {position} perhaps in part: remove a partial last line, then \
             resume with --from {position}",
            failure.message
        ),
        ..failure
    }
}

/// Whether `row` is the entry the walk verified at its position: the same record bytes (its
/// leaf hash), filed under the execution the record names (or none, for a marks record), with
/// the attestation the record commits to.
fn is_verified_entry(log: &LedgerLog, row: &LedgerRow) -> bool {
    if !log.holds(row.position, &row.record) {
        return false;
    }
    match (ExecutionEntry::read(&row.record), &row.execution_id) {
        (Some(entry), Some(id)) => {
            entry.execution_id == *id
                && row
                    .attestation
                    .as_ref()
                    .is_some_and(|a| Digest::of(a) == entry.attestation_digest)
        }
        (None, None) => row.attestation.is_none(),
        _ => false,
    }
}

/// The refusal of an export that found the store's ledger changed after it was verified (the
/// lines written before `position` are the verified ledger's).
fn changed_during_export(position: u64, written: u64) -> Failure {
    let broken = LedgerBreak {
        position,
        kind: LedgerBreakKind::EntryChanged,
    };
    Failure::new(
        broken.code(),
        format!(
            "{broken}; export stopped after {}, which are the verified ledger's",
            counted(written, "record")
        ),
        ExitClass::VerificationFailed,
    )
}

/// A JSON document the store holds, parsed strictly: a stored record that is not JSON is a
/// broken store, not something to ship.
fn parse_stored(what: &str, bytes: &[u8]) -> Result<serde_json::Value, Failure> {
    parmana_runtime::canon::parse_strict(bytes).map_err(|e| {
        Failure::new(
            "cli.store_record_invalid",
            format!("a stored {what} is not strict JSON: {e}"),
            ExitClass::Store,
        )
    })
}

/// Runs `parmana ledger …`.
pub(crate) fn ledger(command: &LedgerCommand, format: Format) -> Result<(), Failure> {
    let args = match command {
        LedgerCommand::Verify(args) => args,
        LedgerCommand::Export(args) => return export(args),
    };
    let deployment = Deployment::load()?;
    let store = args.store.open_read_only(&deployment)?;
    // Stored checkpoints are checked against the log keys of the trust-root chain, read only
    // when the ledger has one.
    let paths = args.trust.resolve(&deployment);
    let audit = audit_ledger(store.as_ref(), || {
        load_trust_history(&paths.pinned_root, &paths.trust_root).map(Some)
    })
    .map_err(|e| Failure::execution(&e))?;
    let report = &audit.report;
    let log_root = audit.log_root.map(|root| tlog_hash_text(&root));
    let summary = format!(
        "{} ({}, {}: {})",
        counted(report.records, "record"),
        counted(report.executions, "execution"),
        counted(report.mark_records, "marks record"),
        report.marks
    );
    let mut extra = String::new();
    if report.checkpoints > 0 {
        extra.push_str(&format!(
            ", {} checked",
            counted(report.checkpoints, "stored checkpoint")
        ));
    }
    if report.unsequenced > 0 {
        extra.push_str(&format!(
            ", {} not yet sequenced",
            counted(report.unsequenced, "completed execution")
        ));
    }
    if report.marks_row_unproven() {
        extra.push_str(&format!(
            "; but the store's marks row ({}) is above what the marks records prove: a writer \
             of the store raised it (versions below it are refused; the next execution under \
             it records it)",
            report.marks_row
        ));
    }
    let checkpoint_failure = audit
        .checkpoint_failure
        .as_ref()
        .map(|error| (error.code(), error.to_string()));
    match format {
        Format::Human => match (&report.first_break, &checkpoint_failure, &report.head) {
            // What a break says may quote a stored record (a writer of the store's words): on
            // its line.
            (Some(broken), _, _) => outln!(
                "ledger BROKEN after {summary}: {}",
                crate::report::printable(&broken.to_string())
            ),
            (None, Some((_, message)), _) => outln!(
                "ledger BROKEN after {summary}: {}",
                crate::report::printable(message)
            ),
            (None, None, Some(head)) => outln!(
                "ledger intact: {summary}, head {head}, log root {}{extra}",
                log_root.as_deref().unwrap_or("-")
            ),
            (None, None, None) => outln!("ledger intact: empty{extra}"),
        },
        Format::Json => outln!(
            "{}",
            Json(serde_json::json!({
                "intact": audit.is_intact(),
                "records": report.records,
                "executions": report.executions,
                "mark_records": report.mark_records,
                "unsequenced": report.unsequenced,
                "checkpoints": report.checkpoints,
                "marks": {
                    "trust_root": report.marks.trust_root,
                    "release_manifest": report.marks.release_manifest,
                },
                "marks_row": {
                    "trust_root": report.marks_row.trust_root,
                    "release_manifest": report.marks_row.release_manifest,
                },
                "marks_row_unproven": report.marks_row_unproven(),
                "head": report.head.map(|h| h.to_string()),
                "log_root": log_root,
                "first_break": match (&report.first_break, &checkpoint_failure) {
                    (Some(b), _) => Some(serde_json::json!({
                        "position": b.position, "code": b.code(), "message": b.to_string()
                    })),
                    (None, Some((code, message))) => Some(serde_json::json!({
                        "code": code, "message": message
                    })),
                    (None, None) => None,
                },
            }))
        ),
    }
    if let Some(broken) = &report.first_break {
        return Err(Failure::new(
            broken.code(),
            broken.to_string(),
            ExitClass::VerificationFailed,
        ));
    }
    match checkpoint_failure {
        None => Ok(()),
        Some((code, message)) => Err(Failure::new(code, message, ExitClass::VerificationFailed)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_runtime::canon::{ExecutionId, Timestamp};
    use parmana_runtime::replay::{
        AcceptedVersions, ClaimOutcome, ClaimRecord, MemoryReplayStore, ReplayStore as _,
        ledger_log, sequence_all,
    };

    use super::*;

    /// An export writes a record only as the entry the walk verified: the record rewritten, the
    /// attestation replaced, the row filed under another execution or as a marks record (or a
    /// marks record given an attestation) — each is refused, so the export stops there.
    #[test]
    fn only_the_verified_entry_is_exported() {
        let store = MemoryReplayStore::new();
        for i in 0..2 {
            let id = ExecutionId::parse(&format!("export-{i}")).unwrap();
            let claim = ClaimRecord::new(
                Digest::of(id.as_str().as_bytes()),
                b"{}".to_vec(),
                Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            );
            let outcome = store
                .claim_completed(&id, &claim, AcceptedVersions::new(1, 1), b"{\"a\":1}")
                .unwrap();
            assert_eq!(outcome, ClaimOutcome::Claimed);
        }
        sequence_all(&store).unwrap();
        let log = ledger_log(&store).unwrap();
        let rows = store.ledger_rows(0, 10).unwrap();
        assert_eq!(rows.len(), 3, "a marks record and two execution records");
        assert!(rows.iter().all(|row| is_verified_entry(&log, row)));
        let marks = rows
            .iter()
            .find(|row| row.execution_id.is_none())
            .unwrap()
            .clone();
        let execution = rows
            .iter()
            .find(|row| row.execution_id.is_some())
            .unwrap()
            .clone();
        let changed: [(&str, LedgerRow); 6] = [
            ("record rewritten", {
                let mut row = execution.clone();
                row.record = String::from_utf8(row.record)
                    .unwrap()
                    .replacen("export-", "exp0rt-", 1)
                    .into_bytes();
                row
            }),
            ("attestation replaced", {
                let mut row = execution.clone();
                row.attestation = Some(b"{\"a\":2}".to_vec());
                row
            }),
            ("attestation gone", {
                let mut row = execution.clone();
                row.attestation = None;
                row
            }),
            ("filed under another execution", {
                let mut row = execution.clone();
                row.execution_id = Some("export-9".to_owned());
                row
            }),
            ("filed as a marks record", {
                let mut row = execution.clone();
                row.execution_id = None;
                row
            }),
            ("a marks record with an attestation", {
                let mut row = marks.clone();
                row.attestation = Some(b"{}".to_vec());
                row
            }),
        ];
        for (what, row) in &changed {
            assert!(!is_verified_entry(&log, row), "{what}");
        }
        // Another position's record is not this position's entry.
        let mut moved = execution;
        moved.position = marks.position;
        assert!(!is_verified_entry(&log, &moved));
    }
}
