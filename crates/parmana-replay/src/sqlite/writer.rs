//! The SQLite store's writer thread: the batches of queued writes it applies in one transaction each, and the statements each write is made of.

use super::*;

/// The writer thread: batches queued requests into one transaction each, then answers.
pub(super) fn writer_loop(
    mut writer: Watched,
    files: &FileIdentity,
    queue: Receiver<WriteRequest>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let answers = commit_batch(&mut writer, files, &batch);
        for (request, answer) in batch.into_iter().zip(answers) {
            // A caller that gave up waiting is not an error of the store.
            let _ = request.reply.send(answer);
        }
    }
}

/// Applies `batch` in one transaction. A sequencer run or a completion whose stored rows cannot
/// be read (corrupt, or of a newer schema) is undone alone and gets that error; if the database
/// itself fails, a claim's or a raise's rows cannot be read, or the commit fails, the whole
/// transaction is rolled back and every request gets that error: no caller is ever told
/// "claimed" for a claim that was not committed.
pub(super) fn commit_batch(
    writer: &mut Watched,
    files: &FileIdentity,
    batch: &[WriteRequest],
) -> Vec<Result<WriteAnswer, ReplayError>> {
    let fail_all = |error: ReplayError| batch.iter().map(|_| Err(error.clone())).collect();
    let Watched { conn, schema } = writer;
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(map_error(e)),
    };
    if let Err(error) = files.check().and_then(|()| schema.check(&tx)) {
        return fail_all(error);
    }
    let mut answers = Vec::with_capacity(batch.len());
    for request in batch {
        // A sequencer run or a completion — which can meet a row it cannot read (a row a writer
        // of the file corrupted) after it has written — runs in a savepoint of its own, and is
        // undone and refused alone, not with every request sharing its batch. A claim (the hot
        // path, spared the savepoint's cost) or a raise refuses before it writes; one whose rows
        // cannot be read fails the batch, as the database failing does.
        let isolated = matches!(request.op, WriteOp::Sequence(_) | WriteOp::Complete(..));
        if isolated && let Err(e) = run_cached(&tx, "SAVEPOINT request") {
            return fail_all(map_error(e));
        }
        let answer = apply(&tx, &request.op);
        match &answer {
            // The database failed (IO, a full disk, a lock): SQLite may have rolled the whole
            // transaction back already. Dropping it rolls back what is left.
            Err(error @ ReplayError::Unavailable { .. }) => return fail_all(error.clone()),
            Err(
                error
                @ (ReplayError::Corrupt { .. } | ReplayError::SchemaVersionUnsupported { .. }),
            ) if !isolated => {
                return fail_all(error.clone());
            }
            _ => {}
        }
        if isolated {
            // A request refused leaves nothing behind.
            let settled = if answer.is_err() {
                run_cached(&tx, "ROLLBACK TO request")
                    .and_then(|()| run_cached(&tx, "RELEASE request"))
            } else {
                run_cached(&tx, "RELEASE request")
            };
            if let Err(e) = settled {
                return fail_all(map_error(e));
            }
        }
        answers.push(answer);
    }
    match tx.commit() {
        // A file replaced while the batch was written (between the check above and the commit)
        // may have split the writers: what was committed is not acknowledged. (A claim so
        // committed is pending, as after any failure that follows a claim.)
        Ok(()) => match files.check() {
            Ok(()) => answers,
            Err(error) => fail_all(error),
        },
        Err(e) => fail_all(map_error(e)),
    }
}

/// Runs one statement without parameters, prepared once per connection.
pub(super) fn run_cached(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(|_| ())
}

pub(super) fn apply(tx: &Transaction<'_>, op: &WriteOp) -> Result<WriteAnswer, ReplayError> {
    match op {
        WriteOp::Claim(id, record, under) => {
            // Decided before anything is written, under the write lock: nothing can interleave.
            let raise = read_guard(tx)?.claim(*under, record.claimed_at())?;
            apply_raise(tx, raise)?;
            // A used id is answered before its inputs reach any statement that writes: a
            // trigger a writer of the file planted sees no replay's inputs (which recovery
            // would otherwise sign if filed over the id's row). Nothing interleaves: the write
            // lock is held.
            let used = tx
                .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")
                .map_err(map_error)?
                .exists([id.as_str()])
                .map_err(map_error)?;
            if used {
                return Ok(WriteAnswer::Claim(ClaimOutcome::AlreadyClaimed));
            }
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO executions (id, request_digest, attestation_inputs, claimed_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                )
                .map_err(map_error)?
                .execute(rusqlite::params![
                    id.as_str(),
                    record.request_digest().to_string(),
                    record.attestation_inputs(),
                    record.claimed_at().to_string(),
                ])
                .map_err(map_error)?;
            Ok(WriteAnswer::Claim(if inserted == 1 {
                ClaimOutcome::Claimed
            } else {
                ClaimOutcome::AlreadyClaimed
            }))
        }
        WriteOp::Complete(id, attestation) => {
            complete_in(tx, id, attestation)?;
            Ok(WriteAnswer::Complete)
        }
        WriteOp::AcceptVersions(trust_root, release_manifest) => {
            let raise =
                read_guard(tx)?.raise(AcceptedVersions::new(*trust_root, *release_manifest))?;
            apply_raise(tx, raise)?;
            Ok(WriteAnswer::Versions(raise.marks))
        }
        WriteOp::Sequence(max) => Ok(WriteAnswer::Sequenced(sequence_in(tx, *max)?)),
        WriteOp::StoreCheckpoint(checkpoint) => {
            tx.prepare_cached(
                "INSERT INTO checkpoints (size, root, note) VALUES (?1, ?2, ?3)
                 ON CONFLICT (size) DO NOTHING",
            )
            .map_err(map_error)?
            .execute(rusqlite::params![
                encode_position(checkpoint.size)?,
                checkpoint.root.to_string(),
                checkpoint.note,
            ])
            .map_err(map_error)?;
            Ok(WriteAnswer::Stored)
        }
    }
}

/// Writes a raise decided by [`GuardState`]: the marks row and a marks record, when they changed.
pub(super) fn apply_raise(tx: &Transaction<'_>, raise: Raise) -> Result<(), ReplayError> {
    if !raise.changed {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE high_water_marks SET trust_root = ?1, release_manifest = ?2
         WHERE singleton = 1",
    )
    .map_err(map_error)?
    .execute([
        encode_version(VersionKind::TrustRoot, raise.marks.trust_root)?,
        encode_version(VersionKind::ReleaseManifest, raise.marks.release_manifest)?,
    ])
    .map_err(map_error)?;
    append_marks_record(tx, |head| encode_marks_record(head, raise.marks))?;
    Ok(())
}

/// The head of the ledger: the position after its last record and that record's digest.
pub(super) fn read_head(tx: &Transaction<'_>) -> Result<LedgerHead, ReplayError> {
    // The last record bounded by its length (a writer's may be of any size): over it, unread.
    let last: Option<(i64, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "SELECT position, CASE WHEN octet_length(record) <= ?1 THEN record END
             FROM ledger ORDER BY position DESC LIMIT 1",
        )
        .map_err(map_error)?
        .query_row([crate::MAX_STORED_RECORD_BYTES], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(map_error)?;
    match last {
        None => Ok(LedgerHead::EMPTY),
        Some((position, None)) => Err(crate::record::oversized_ledger_row(position)),
        Some((position, Some(record))) => Ok(LedgerHead::after(decode_version(position)?, &record)),
    }
}

/// Files `record` at `position`, under `execution_id` (an execution record) or as a marks
/// record (`None`).
pub(super) fn insert_record(
    tx: &Transaction<'_>,
    position: u64,
    execution_id: Option<&str>,
    record: &[u8],
) -> Result<i64, ReplayError> {
    let position = encode_position(position)?;
    let kind = if execution_id.is_some() {
        KIND_EXECUTION
    } else {
        KIND_MARKS
    };
    tx.prepare_cached(
        "INSERT INTO ledger (position, kind, execution_id, record) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(map_error)?
    .execute(rusqlite::params![position, kind, execution_id, record])
    .map_err(map_error)?;
    Ok(position)
}

/// A ledger position or checkpoint size as SQLite stores it.
pub(super) fn encode_position(position: u64) -> Result<i64, ReplayError> {
    i64::try_from(position).map_err(|_| ReplayError::corrupt("the ledger is full"))
}

/// Appends the marks record `encode` makes at the current head of the ledger.
pub(super) fn append_marks_record(
    tx: &Transaction<'_>,
    encode: impl FnOnce(LedgerHead) -> Result<Vec<u8>, ReplayError>,
) -> Result<(), ReplayError> {
    let head = read_head(tx)?;
    let record = encode(head)?;
    insert_record(tx, head.next_position, None, &record)?;
    Ok(())
}

/// One sequencer run inside the writer's `BEGIN IMMEDIATE` transaction: the next `max`
/// completed executions without a position (by claim time, then id; fewer when their payloads
/// pass [`MAX_SEQUENCE_BATCH_BYTES`](crate::MAX_SEQUENCE_BATCH_BYTES)), each given the next
/// position and its chained record.
pub(super) fn sequence_in(tx: &Transaction<'_>, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
    /// One waiting execution: id, request digest, inputs, claim time, attestation — each `None`
    /// when a value of the row is over its bound (then unread).
    type Waiting = (
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let waiting: Vec<Waiting> = tx
        // At most `max` executions, and only those whose payloads before them stay under
        // MAX_SEQUENCE_BATCH_BYTES (the first always); a row holding a value over its bound (a
        // writer's) is not read, and refuses the run.
        .prepare_cached(
            "SELECT CASE WHEN NOT over THEN id END, CASE WHEN NOT over THEN request_digest END,
                    CASE WHEN NOT over THEN attestation_inputs END,
                    CASE WHEN NOT over THEN claimed_at END,
                    CASE WHEN NOT over THEN attestation END FROM (
               SELECT id, request_digest, attestation_inputs, claimed_at, attestation,
                 octet_length(attestation_inputs) + octet_length(attestation) AS size,
                 sum(octet_length(attestation_inputs) + octet_length(attestation)) OVER (
                   ORDER BY claimed_at, id) AS through,
                 (octet_length(id) > 128 OR octet_length(request_digest) > 128
                  OR octet_length(claimed_at) > 64 OR octet_length(attestation_inputs) > ?3
                  OR octet_length(attestation) > ?4) AS over
               FROM executions WHERE attestation IS NOT NULL AND ledger_position IS NULL
               ORDER BY claimed_at, id LIMIT ?1)
             WHERE through - size < ?2
             ORDER BY claimed_at, id",
        )
        .map_err(map_error)?
        .query_map(
            rusqlite::params![
                limit,
                crate::MAX_SEQUENCE_BATCH_BYTES,
                crate::MAX_STORED_EXECUTION_BYTES,
                crate::MAX_STORED_ATTESTATION_BYTES
            ],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)?;
    let mut head = read_head(tx)?;
    let mut rows = Vec::with_capacity(waiting.len());
    for waiting in waiting {
        let (Some(id), Some(digest), Some(inputs), Some(claimed_at), Some(attestation)) = waiting
        else {
            return Err(crate::record::oversized_waiting_execution());
        };
        let claim = decode_claim(&digest, inputs, &claimed_at)?;
        let execution_id = decode_execution_id(&id)?;
        let record = encode_record(head, execution_id.as_str(), &claim, &attestation)?;
        let position = head.next_position;
        let stored = insert_record(tx, position, Some(&id), &record)?;
        tx.prepare_cached("UPDATE executions SET ledger_position = ?1 WHERE id = ?2")
            .map_err(map_error)?
            .execute(rusqlite::params![stored, id])
            .map_err(map_error)?;
        head = LedgerHead::after(position, &record);
        rows.push(LedgerRow {
            position,
            execution_id: Some(id),
            record,
            claim: Some(claim),
            attestation: Some(attestation),
        });
    }
    Ok(rows)
}

/// Records the attestation in the execution's own row (a single-row write; the sequencer
/// appends its ledger record later).
pub(super) fn complete_in(
    tx: &Transaction<'_>,
    id: &ExecutionId,
    attestation: &[u8],
) -> Result<(), ReplayError> {
    let updated = tx
        .prepare_cached(
            "UPDATE executions SET attestation = ?1 WHERE id = ?2 AND attestation IS NULL",
        )
        .map_err(map_error)?
        .execute(rusqlite::params![attestation, id.as_str()])
        .map_err(map_error)?;
    if updated == 1 {
        return Ok(());
    }
    let completed: Option<bool> = tx
        .prepare_cached("SELECT attestation IS NOT NULL FROM executions WHERE id = ?1")
        .map_err(map_error)?
        .query_row([id.as_str()], |row| row.get(0))
        .optional()
        .map_err(map_error)?;
    Err(match completed {
        Some(true) => ReplayError::AlreadyCompleted {
            execution_id: id.to_string(),
        },
        _ => ReplayError::NotClaimed {
            execution_id: id.to_string(),
        },
    })
}
