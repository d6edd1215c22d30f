//! The PostgreSQL store's schema: its migrations, and the checks a store makes of the server and the schema version before it is used.

use postgres::Client;
use postgres::error::SqlState;

use super::{RowLock, append_record, map_corrupt, map_error, read_marks_row};
use crate::ledger::encode_marks_record;
use crate::record::{MARKS_RECORDS_SINCE, pending_migrations};
use crate::{AcceptedVersions, ReplayError};

/// The schema migrations, in order; the version applied is kept in `schema_version`.
/// This build writes and reads schema version `MIGRATIONS.len()`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: executions, ledger (with its head row), high-water marks.
    "CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        request_digest TEXT NOT NULL,
        attestation_inputs BYTEA NOT NULL,
        claimed_at TEXT NOT NULL,
        attestation BYTEA,
        ledger_position BIGINT
    );
    CREATE INDEX executions_pending ON executions (id) WHERE attestation IS NULL;
    CREATE TABLE ledger (
        position BIGINT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE TABLE ledger_head (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        next_position BIGINT NOT NULL,
        previous TEXT NOT NULL
    );
    INSERT INTO ledger_head VALUES (1, 0, 'sha256:0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TABLE high_water_marks (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        trust_root BIGINT NOT NULL,
        release_manifest BIGINT NOT NULL
    );
    INSERT INTO high_water_marks VALUES (1, 0, 0);",
    // 2: marks records in the ledger (`kind`; `execution_id` only on execution records), the
    // index that finds the newest marks record, and the one that finds the newest claim (in
    // byte order: the one spelling of a timestamp sorts as it reads). Execution records keep
    // their bytes. (A marks record for marks raised before is appended by `migrate`.)
    "ALTER TABLE ledger ADD COLUMN kind TEXT NOT NULL DEFAULT 'execution';
    ALTER TABLE ledger ALTER COLUMN kind DROP DEFAULT;
    ALTER TABLE ledger ALTER COLUMN execution_id DROP NOT NULL;
    ALTER TABLE ledger ADD CONSTRAINT ledger_kind CHECK (kind IN ('execution', 'marks'));
    ALTER TABLE ledger ADD CONSTRAINT ledger_kind_execution_id
        CHECK ((kind = 'execution') = (execution_id IS NOT NULL));
    CREATE INDEX ledger_marks ON ledger (position) WHERE kind = 'marks';
    CREATE INDEX executions_claimed_at ON executions ((claimed_at COLLATE \"C\"));",
    // 3: the batched sequencer. A completion writes only its execution row; the sequencer finds
    // the completed executions without a ledger position through `executions_unsequenced` (in
    // the order it takes them: claim time, then id, in byte order) and keeps the signed
    // checkpoints in `checkpoints`. `ledger_head` is now taken only by the sequencer and by
    // raises of the marks. Every record and every execution keeps its bytes.
    "CREATE INDEX executions_unsequenced
        ON executions (claimed_at COLLATE \"C\", id COLLATE \"C\")
        WHERE attestation IS NOT NULL AND ledger_position IS NULL;
    CREATE TABLE checkpoints (
        size BIGINT PRIMARY KEY,
        root TEXT NOT NULL,
        note TEXT NOT NULL
    );",
    // 4 (PostgreSQL only): an execution row stays in the table's own pages up to 8,160 bytes
    // (`toast_tuple_target`, default about 2 KB). A completed execution is about 2.8 KB with its
    // attestation: it was compressed (an attempt that base64 and digests defeat) and moved to
    // the TOAST table, one more heap row and index entry per execution. Rows written before keep
    // their storage; nothing is rewritten.
    "ALTER TABLE executions SET (toast_tuple_target = 8160);",
];

/// Refuses a server in recovery (a standby): what it holds lags behind the primary.
pub(super) fn refuse_standby(client: &mut Client) -> Result<(), ReplayError> {
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .map_err(map_error)?
        .try_get(0)
        .map_err(map_corrupt)?;
    if in_recovery {
        return Err(ReplayError::InvalidConfiguration {
            message: "the server is a standby (in recovery): a store is used on the primary, \
                      whose writes a standby has not all received"
                .to_owned(),
        });
    }
    Ok(())
}

/// Checks, writing nothing, that `schema` holds a store at this build's schema version.
pub(super) fn check_schema_version(client: &mut Client, schema: &str) -> Result<(), ReplayError> {
    let current = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let read = |client: &mut Client| {
        client.query_opt(
            "SELECT version FROM schema_version WHERE singleton = 1",
            &[],
        )
    };
    // The search path names only the store's schema: a missing schema, a missing table and a
    // schema the role may not use are all an undefined table.
    let undefined = |e: &postgres::Error| e.code() == Some(&SqlState::UNDEFINED_TABLE);
    let row = match read(client) {
        Err(e) if undefined(&e) => match missing_store(client, schema) {
            // The store's tables seen without their version, in a later statement than the one
            // that found no version: a first open beside this one may have made the store
            // between the two — its tables and its version in one transaction — so the version
            // is read again before the store is called corrupt.
            ReplayError::Corrupt { .. } => read(client).map_err(|e| {
                if undefined(&e) {
                    missing_store(client, schema)
                } else {
                    map_error(e)
                }
            })?,
            missing => return Err(missing),
        },
        other => other.map_err(map_error)?,
    };
    let found = row
        .ok_or_else(|| ReplayError::Corrupt {
            message: "the schema_version table holds no version".to_owned(),
        })?
        .try_get::<_, i64>(0)
        .map_err(map_corrupt)?;
    match found {
        _ if found == current => Ok(()),
        ..0 => Err(crate::record::negative_schema_version(found)),
        0.. if found < current => Err(ReplayError::SchemaVersionOutdated { found, current }),
        _ => Err(ReplayError::SchemaVersionUnsupported {
            found,
            supported: current,
        }),
    }
}

/// Why `schema` showed no store table: it holds no store (`replay.store_not_found`), or the
/// role may not use it (`replay.invalid_configuration`: a grant is missing, and an execution
/// would not create anything there either).
fn missing_store(client: &mut Client, schema: &str) -> ReplayError {
    let usable = client.query_opt(
        "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = $1",
        &[&schema],
    );
    match usable {
        Ok(Some(row)) if !row.try_get::<_, bool>(0).unwrap_or(true) => {
            ReplayError::InvalidConfiguration {
                message: format!("the role may not use the schema {schema:?} (USAGE not granted)"),
            }
        }
        Ok(Some(_)) => {
            // The store's tables without its version (dropped, or a restore that left it out):
            // not a store to make anew beside the ids they hold.
            let tables = client.query_opt(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = 'executions'",
                &[&schema],
            );
            match tables {
                Ok(Some(_)) => ReplayError::corrupt(format!(
                    "the schema {schema:?} holds the store's tables but no schema_version: \
                     restore the store from a backup — a new store made here would let the ids \
                     it holds execute again"
                )),
                Ok(None) => ReplayError::NotFound {
                    schema: schema.to_owned(),
                },
                Err(e) => map_error(e),
            }
        }
        Ok(None) => ReplayError::NotFound {
            schema: schema.to_owned(),
        },
        Err(e) => map_error(e),
    }
}

/// Creates the schema if needed and applies the migrations it lacks, in one transaction.
pub(super) fn migrate(client: &mut Client, schema: &str) -> Result<(), ReplayError> {
    let mut tx = client.transaction().map_err(map_error)?;
    // A migration may take long (an index over a large table): the servers starting beside the
    // one that runs it wait for it, past the session's `lock_timeout`.
    tx.batch_execute("SET LOCAL lock_timeout = 0")
        .map_err(map_error)?;
    // Serializes concurrent first opens of the same schema (the lock ends with the transaction).
    tx.execute(
        "SELECT pg_advisory_xact_lock(1886220653, hashtext($1))",
        &[&schema],
    )
    .map_err(map_error)?;
    // Made only where it is missing: PostgreSQL checks `CREATE` on the database before `IF NOT
    // EXISTS`, so a role that owns a schema made beforehand, without that right, creates and
    // migrates the store in it.
    let exists = tx
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .map_err(map_error)?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .map_err(map_error)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (
             singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
             version BIGINT NOT NULL
         );
         INSERT INTO \"{schema}\".schema_version VALUES (1, 0) ON CONFLICT DO NOTHING;"
    ))
    .map_err(map_error)?;
    let found: i64 = tx
        .query_one(
            "SELECT version FROM schema_version WHERE singleton = 1",
            &[],
        )
        .map_err(map_error)?
        .try_get(0)
        .map_err(map_corrupt)?;
    for (applied, migration) in pending_migrations(found, MIGRATIONS)? {
        tx.batch_execute(migration).map_err(map_error)?;
        tx.execute(
            "UPDATE schema_version SET version = $1 WHERE singleton = 1",
            &[&applied],
        )
        .map_err(map_error)?;
    }
    // Marks raised before the ledger held marks records: the ledger proves them from now on.
    if (1..MARKS_RECORDS_SINCE).contains(&found) {
        let marks = read_marks_row(&mut tx, RowLock::Update)?;
        if marks != AcceptedVersions::default() {
            append_record(&mut tx, |head| encode_marks_record(head, marks))?;
        }
    }
    tx.commit().map_err(map_error)
}
