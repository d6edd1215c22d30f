//! Reading the PostgreSQL ledger: its summary in one consistent read (what a walk reads first), and the records from a position on, a page at a time.

use postgres::{Client, IsolationLevel, Row};

use super::{RowLock, decode_checkpoint, get, map_error, read_marks_row};
use crate::ledger::filed_under;
use crate::record::{decode_claim, decode_version};
use crate::{LedgerRecord, LedgerRow, LedgerSummary, ReplayError, StoredCheckpoint};

/// The ledger's record count, the execution counts, the largest stored checkpoint's size and the
/// marks, read in one repeatable-read transaction.
pub(super) fn summary(client: &mut Client) -> Result<LedgerSummary, ReplayError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(map_error)?;
    let records: i64 = get(
        &tx.query_one("SELECT count(*) FROM ledger", &[])
            .map_err(map_error)?,
        0,
    )?;
    let completed: i64 = get(
        &tx.query_one(
            "SELECT count(*) FROM executions WHERE attestation IS NOT NULL",
            &[],
        )
        .map_err(map_error)?,
        0,
    )?;
    let unsequenced: i64 = get(
        &tx.query_one(
            "SELECT count(*) FROM executions
             WHERE attestation IS NOT NULL AND ledger_position IS NULL",
            &[],
        )
        .map_err(map_error)?,
        0,
    )?;
    let sizes = tx
        .query_one("SELECT min(size), max(size) FROM checkpoints", &[])
        .map_err(map_error)?;
    let (smallest, largest): (Option<i64>, Option<i64>) = (get(&sizes, 0)?, get(&sizes, 1)?);
    let marks = read_marks_row(&mut tx, RowLock::None)?;
    tx.commit().map_err(map_error)?;
    crate::record::SummaryCounts {
        records,
        completed,
        unsequenced,
        smallest_checkpoint: smallest,
        largest_checkpoint: largest,
    }
    .into_summary(marks)
}

/// The stored checkpoints of sizes `from` or more, by increasing size, at most `max`.
pub(super) fn checkpoints_from(
    client: &mut Client,
    from: u64,
    max: usize,
) -> Result<Vec<StoredCheckpoint>, ReplayError> {
    let Some((from, max)) = crate::record::sql_page(from, max) else {
        return Ok(Vec::new());
    };
    client
        .query(
            &format!(
                "SELECT {} FROM checkpoints WHERE size >= $1 ORDER BY size LIMIT $2",
                crate::BOUNDED_CHECKPOINT_COLUMNS
            ),
            &[&from, &max],
        )
        .map_err(map_error)?
        .iter()
        .map(decode_checkpoint)
        .collect()
}

/// The records at positions `from` on, at most `max` and at most
/// [`MAX_LEDGER_PAGE_BYTES`](crate::MAX_LEDGER_PAGE_BYTES) of them (at least one), in order (one
/// statement: one consistent read).
pub(super) fn rows(
    client: &mut Client,
    from: u64,
    max: usize,
) -> Result<Vec<LedgerRow>, ReplayError> {
    let Some((from, max)) = crate::record::sql_page(from, max) else {
        return Ok(Vec::new());
    };
    client
        .query(
            &crate::record::ledger_page_query('$'),
            &[&from, &max, &crate::MAX_LEDGER_PAGE_BYTES],
        )
        .map_err(map_error)?
        .iter()
        .map(decode_row)
        .collect()
}

/// The records alone at positions `from` on, at most `max` (and
/// [`MAX_LEDGER_RECORDS_PAGE`](crate::MAX_LEDGER_RECORDS_PAGE)), in order.
pub(super) fn records(
    client: &mut Client,
    from: u64,
    max: usize,
) -> Result<Vec<LedgerRecord>, ReplayError> {
    let Some((from, max)) = crate::record::sql_page(from, max.min(crate::MAX_LEDGER_RECORDS_PAGE))
    else {
        return Ok(Vec::new());
    };
    client
        .query(&crate::record::ledger_records_query('$'), &[&from, &max])
        .map_err(map_error)?
        .iter()
        .map(|row| {
            if get::<bool>(row, 4)? {
                return Err(crate::record::oversized_ledger_row(get(row, 0)?));
            }
            Ok(LedgerRecord {
                position: decode_version(get(row, 0)?)?,
                execution_id: filed_under(&get::<String>(row, 1)?, get(row, 2)?)?,
                record: get(row, 3)?,
            })
        })
        .collect()
}

/// One row of [`SELECT_LEDGER_ROWS`].
fn decode_row(row: &Row) -> Result<LedgerRow, ReplayError> {
    if get::<bool>(row, 8)? {
        return Err(crate::record::oversized_ledger_row(get(row, 0)?));
    }
    let claim = match (
        get::<Option<String>>(row, 4)?,
        get::<Option<Vec<u8>>>(row, 5)?,
        get::<Option<String>>(row, 6)?,
    ) {
        (Some(d), Some(i), Some(c)) => Some(decode_claim(&d, i, &c)?),
        _ => None,
    };
    Ok(LedgerRow {
        position: decode_version(get(row, 0)?)?,
        execution_id: filed_under(&get::<String>(row, 1)?, get(row, 2)?)?,
        record: get(row, 3)?,
        claim,
        attestation: get(row, 7)?,
    })
}
