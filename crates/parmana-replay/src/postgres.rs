//! `PostgresReplayStore`: the shared backend for many runtime instances on many machines (synchronous `postgres` client).
//!
//! A claim is one statement, `INSERT … ON CONFLICT (id) DO NOTHING`, committed on its own
//! with `synchronous_commit = on`; its row count says who won. PostgreSQL's unique index
//! makes the race impossible to lose twice. Completion appends to a single serialized
//! ledger chain: the transaction locks the execution row, then the one `ledger_head` row
//! (`SELECT … FOR UPDATE`), so records get consecutive positions in commit order across
//! every machine. See `docs/replay-stores.md` for why one chain rather than one per writer.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel, NoTls, Row};

use crate::error::VersionKind;
use crate::ledger::{LedgerHead, encode_record};
use crate::record::{decode_claim, decode_execution_id, decode_version, encode_version};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId, ExecutionState,
    LedgerRow, LedgerSnapshot, ReplayError, ReplayStore,
};

/// The schema migrations, in order; the version applied is kept in `schema_version`.
const MIGRATIONS: &[&str] = &[
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
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How a [`PostgresReplayStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections the store holds open at once (at least 1).
    pub pool_size: usize,
    /// The PostgreSQL schema holding the store's tables (`[a-z_][a-z0-9_]*`, at most 63
    /// characters); created if missing. Separate schemas are separate stores.
    pub schema: String,
    /// How long an operation waits for a free pooled connection, and for a new connection.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            schema: "parmana".to_owned(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// A replay store in a PostgreSQL database, shared by any number of processes and machines.
pub struct PostgresReplayStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReplayStore")
            .field("schema", &self.pool.schema)
            .field("pool_size", &self.pool.size)
            .finish_non_exhaustive()
    }
}

impl PostgresReplayStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), creates the schema
    /// if needed and brings it up to date.
    pub fn connect(url: &str, options: &PostgresOptions) -> Result<Self, ReplayError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ReplayError::InvalidConfiguration {
                message: "a PostgreSQL store URL starts with postgres:// or postgresql://"
                    .to_owned(),
            });
        }
        if options.pool_size == 0 {
            return Err(ReplayError::InvalidConfiguration {
                message: "the pool size must be at least 1".to_owned(),
            });
        }
        let schema = &options.schema;
        let valid_schema = schema.len() <= 63
            && schema
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_schema {
            return Err(ReplayError::InvalidConfiguration {
                message: format!("schema name {schema:?} is not [a-z_][a-z0-9_]* (at most 63)"),
            });
        }
        let mut config: Config = url.parse().map_err(|e| ReplayError::InvalidConfiguration {
            message: format!("invalid PostgreSQL URL: {e}"),
        })?;
        // Every session writes durably and sees only this store's tables.
        let session = format!("-c synchronous_commit=on -c search_path={schema}");
        let options_text = match config.get_options() {
            Some(existing) => format!("{existing} {session}"),
            None => session,
        };
        config.options(&options_text);
        config.connect_timeout(options.connect_timeout);
        let pool = Pool {
            config,
            schema: schema.clone(),
            size: options.pool_size,
            wait: options.connect_timeout,
            state: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
        };
        let store = Self { pool };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let schema = &self.pool.schema;
        let mut tx = client.transaction().map_err(map_error)?;
        // Serializes concurrent first opens of the same schema (the lock ends with the transaction).
        tx.execute(
            "SELECT pg_advisory_xact_lock(1886220653, hashtext($1))",
            &[schema],
        )
        .map_err(map_error)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_version (
                 singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                 version BIGINT NOT NULL
             );
             INSERT INTO {schema}.schema_version VALUES (1, 0) ON CONFLICT DO NOTHING;"
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
        if !(0..=SCHEMA_VERSION).contains(&found) {
            return Err(ReplayError::SchemaVersionUnsupported {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (applied, migration) in (1i64..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(migration).map_err(map_error)?;
            tx.execute(
                "UPDATE schema_version SET version = $1 WHERE singleton = 1",
                &[&applied],
            )
            .map_err(map_error)?;
        }
        tx.commit().map_err(map_error)
    }
}

impl ReplayStore for PostgresReplayStore {
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
    ) -> Result<ClaimOutcome, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let inserted = client
            .execute(
                "INSERT INTO executions (id, request_digest, attestation_inputs, claimed_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[
                    &execution_id.as_str(),
                    &record.request_digest().to_string(),
                    &record.attestation_inputs(),
                    &record.claimed_at().to_string(),
                ],
            )
            .map_err(map_error)?;
        Ok(if inserted == 1 {
            ClaimOutcome::Claimed
        } else {
            ClaimOutcome::AlreadyClaimed
        })
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let mut tx = client.transaction().map_err(map_error)?;
        let row = tx
            .query_opt(
                "SELECT request_digest, attestation_inputs, claimed_at, attestation IS NOT NULL
                 FROM executions WHERE id = $1 FOR UPDATE",
                &[&execution_id.as_str()],
            )
            .map_err(map_error)?;
        let Some(row) = row else {
            return Err(ReplayError::NotClaimed {
                execution_id: execution_id.to_string(),
            });
        };
        if get::<bool>(&row, 3)? {
            return Err(ReplayError::AlreadyCompleted {
                execution_id: execution_id.to_string(),
            });
        }
        let claim = decode_claim(
            &get::<String>(&row, 0)?,
            get(&row, 1)?,
            &get::<String>(&row, 2)?,
        )?;
        // The one serialization point of the chain: the head row stays locked until commit.
        let head_row = tx
            .query_one(
                "SELECT next_position, previous FROM ledger_head WHERE singleton = 1 FOR UPDATE",
                &[],
            )
            .map_err(map_error)?;
        let head = LedgerHead {
            next_position: decode_version(get(&head_row, 0)?)?,
            previous: get::<String>(&head_row, 1)?
                .parse()
                .map_err(|e| ReplayError::corrupt(format!("stored ledger head: {e}")))?,
        };
        let record = encode_record(head, execution_id.as_str(), &claim, attestation)?;
        let position = i64::try_from(head.next_position)
            .map_err(|_| ReplayError::corrupt("the ledger is full"))?;
        let after = LedgerHead::after(head.next_position, &record);
        let next_position = i64::try_from(after.next_position)
            .map_err(|_| ReplayError::corrupt("the ledger is full"))?;
        tx.execute(
            "INSERT INTO ledger (position, execution_id, record) VALUES ($1, $2, $3)",
            &[&position, &execution_id.as_str(), &record],
        )
        .map_err(map_error)?;
        tx.execute(
            "UPDATE ledger_head SET next_position = $1, previous = $2 WHERE singleton = 1",
            &[&next_position, &after.previous.to_string()],
        )
        .map_err(map_error)?;
        tx.execute(
            "UPDATE executions SET attestation = $1, ledger_position = $2 WHERE id = $3",
            &[&attestation, &position, &execution_id.as_str()],
        )
        .map_err(map_error)?;
        tx.commit().map_err(map_error)
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let row = client
            .query_opt(
                "SELECT request_digest, attestation_inputs, claimed_at, attestation
                 FROM executions WHERE id = $1",
                &[&execution_id.as_str()],
            )
            .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(ExecutionState::Absent);
        };
        let claim = decode_claim(
            &get::<String>(&row, 0)?,
            get(&row, 1)?,
            &get::<String>(&row, 2)?,
        )?;
        Ok(match get::<Option<Vec<u8>>>(&row, 3)? {
            None => ExecutionState::Claimed(claim),
            Some(attestation) => {
                ExecutionState::Completed(CompletedExecution::new(claim, attestation))
            }
        })
    }

    fn pending(&self) -> Result<Vec<ExecutionId>, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let rows = client
            .query("SELECT id FROM executions WHERE attestation IS NULL", &[])
            .map_err(map_error)?;
        let mut ids = rows
            .iter()
            .map(|row| decode_execution_id(&get::<String>(row, 0)?))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let row = client
            .query_one(
                "SELECT trust_root, release_manifest FROM high_water_marks WHERE singleton = 1",
                &[],
            )
            .map_err(map_error)?;
        versions_from(&row)
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let mut tx = client.transaction().map_err(map_error)?;
        let row = tx
            .query_one(
                "SELECT trust_root, release_manifest FROM high_water_marks
                 WHERE singleton = 1 FOR UPDATE",
                &[],
            )
            .map_err(map_error)?;
        let raised = versions_from(&row)?.raised_to(trust_root, release_manifest)?;
        tx.execute(
            "UPDATE high_water_marks SET trust_root = $1, release_manifest = $2 WHERE singleton = 1",
            &[
                &encode_version(VersionKind::TrustRoot, raised.trust_root)?,
                &encode_version(VersionKind::ReleaseManifest, raised.release_manifest)?,
            ],
        )
        .map_err(map_error)?;
        tx.commit().map_err(map_error)?;
        Ok(raised)
    }

    fn ledger_snapshot(&self) -> Result<LedgerSnapshot, ReplayError> {
        let mut pooled = self.pool.checkout()?;
        let client = pooled.conn()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(map_error)?;
        let rows = tx
            .query(
                "SELECT l.position, l.execution_id, l.record,
                        e.request_digest, e.attestation_inputs, e.claimed_at, e.attestation
                 FROM ledger l LEFT JOIN executions e ON e.id = l.execution_id
                 ORDER BY l.position",
                &[],
            )
            .map_err(map_error)?;
        let completed: i64 = get(
            &tx.query_one(
                "SELECT count(*) FROM executions WHERE attestation IS NOT NULL",
                &[],
            )
            .map_err(map_error)?,
            0,
        )?;
        tx.commit().map_err(map_error)?;
        let rows = rows
            .iter()
            .map(|row| {
                let claim = match (
                    get::<Option<String>>(row, 3)?,
                    get::<Option<Vec<u8>>>(row, 4)?,
                    get::<Option<String>>(row, 5)?,
                ) {
                    (Some(d), Some(i), Some(c)) => Some(decode_claim(&d, i, &c)?),
                    _ => None,
                };
                Ok(LedgerRow {
                    position: decode_version(get(row, 0)?)?,
                    execution_id: get(row, 1)?,
                    record: get(row, 2)?,
                    claim,
                    attestation: get(row, 6)?,
                })
            })
            .collect::<Result<Vec<_>, ReplayError>>()?;
        Ok(LedgerSnapshot {
            rows,
            completed_executions: decode_version(completed)?,
        })
    }
}

fn versions_from(row: &Row) -> Result<AcceptedVersions, ReplayError> {
    Ok(AcceptedVersions {
        trust_root: decode_version(get(row, 0)?)?,
        release_manifest: decode_version(get(row, 1)?)?,
    })
}

/// Reads column `index`; a value of the wrong type means the table was changed behind our back.
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, ReplayError> {
    row.try_get(index).map_err(map_corrupt)
}

fn map_corrupt(error: postgres::Error) -> ReplayError {
    ReplayError::corrupt(error)
}

/// Sorts PostgreSQL failures into "the data is bad" and "the store cannot be used right now".
fn map_error(error: postgres::Error) -> ReplayError {
    match error.code() {
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            ReplayError::corrupt(error)
        }
        _ => ReplayError::unavailable(error),
    }
}

/// A small blocking connection pool: at most `size` connections, opened on demand, reused,
/// and dropped when they break.
struct Pool {
    config: Config,
    schema: String,
    size: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

impl Pool {
    fn lock(&self) -> Result<MutexGuard<'_, PoolState>, ReplayError> {
        self.state
            .lock()
            .map_err(|_| ReplayError::unavailable("the connection pool was poisoned"))
    }

    fn checkout(&self) -> Result<PooledClient<'_>, ReplayError> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock()?;
        loop {
            while let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open = state.open.saturating_sub(1);
                    continue;
                }
                return Ok(PooledClient {
                    pool: self,
                    client: Some(client),
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(PooledClient {
                        pool: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        let mut state = self.lock()?;
                        state.open = state.open.saturating_sub(1);
                        self.returned.notify_one();
                        Err(ReplayError::unavailable(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReplayError::unavailable(
                    "timed out waiting for a pooled PostgreSQL connection",
                ));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .map_err(|_| ReplayError::unavailable("the connection pool was poisoned"))?
                .0;
        }
    }
}

/// A connection borrowed from the pool; returned (or discarded if broken) on drop.
struct PooledClient<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl PooledClient<'_> {
    /// The borrowed connection.
    fn conn(&mut self) -> Result<&mut Client, ReplayError> {
        self.client
            .as_mut()
            .ok_or_else(|| ReplayError::unavailable("the pooled connection was already returned"))
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if let Ok(mut state) = self.pool.state.lock() {
            if client.is_closed() {
                state.open = state.open.saturating_sub(1);
            } else {
                state.idle.push(client);
            }
            self.pool.returned.notify_one();
        }
    }
}
