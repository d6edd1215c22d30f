//! `PostgresReplayStore`: the shared backend for many runtime instances on many machines (synchronous `postgres` client).
//!
//! A claim is one `INSERT … ON CONFLICT (id) DO NOTHING`, committed with
//! `synchronous_commit = on`; its row count says who won. PostgreSQL's unique index makes the
//! race impossible to lose twice. It runs in one transaction with its checks: the marks row is
//! read `FOR SHARE` (so a raise, which takes it `FOR UPDATE`, waits for the claims under the old
//! marks to commit, and claims wait for a raise), together with the newest marks record and the
//! newest claim time; a claim that raises the marks takes the row `FOR UPDATE` itself and
//! appends the marks record in the same transaction. Completion is one `UPDATE` of the
//! execution's row: completions do not wait for each other. The common claim and every
//! completion are one prepared statement each (`hot.rs`): a claim under the marks in force, with
//! the newest marks record already decoded, makes the same reads and the insert in one
//! statement, shared by the claims made at the same time (the group commit of `group.rs`: one
//! statement and one commit per batch, each row still decided by its own insert); anything else
//! is decided in the transaction described here. The batched sequencer
//! ([`ReplayStore::sequence`]) appends their records to the single chain, one integrator at a
//! time per schema (`pg_try_advisory_xact_lock`), locking the one `ledger_head` row (`SELECT …
//! FOR UPDATE`) as a raise of the marks does, so records get consecutive positions across every
//! machine. See `docs/replay-stores.md` for why one chain rather than one per writer.
//!
//! Connections come from an `r2d2` pool (`r2d2_postgres`), optionally over TLS (rustls, see
//! `tls.rs`, configured by `sslmode`/`sslrootcert` in the URL).

mod group;
mod hot;
mod ledger_read;
mod pool;
mod schema;
mod tls;
pub(crate) use tls::hosts_reached_unverified;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, Config, Row};
use r2d2_postgres::PostgresConnectionManager;

use group::GroupCommit;
use hot::{
    FastClaim, KnownMarks, MAX_BATCH_CLAIMS, Manager, PendingClaim, claim_fast, complete_fast,
};
use pool::{Pool, RecordFailures, get, map_connect_error, map_corrupt, map_error};
use schema::{check_schema_version, migrate, refuse_standby};

use crate::error::VersionKind;
use crate::ledger::{
    KIND_EXECUTION, KIND_MARKS, LedgerHead, LedgerRecord, encode_marks_record, encode_record,
    marks_proven,
};
use crate::record::{
    GuardState, Raise, decode_claim, decode_execution_id, decode_timestamp, decode_version,
    encode_version,
};
use crate::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, CompletedExecution, ExecutionId, ExecutionState,
    LedgerRow, LedgerSummary, ReplayError, ReplayStore, SequenceOutcome, StoredCheckpoint,
};

/// The first key of the transaction-level advisory lock that makes one sequencer run at a time
/// per schema (the second is `hashtext` of the schema name); migrations use the key before it.
const SEQUENCER_LOCK: i32 = 1_886_220_654;

/// How a [`PostgresReplayStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections the store holds open at once (at least 1).
    pub pool_size: usize,
    /// The PostgreSQL schema holding the store's tables (`[a-z_][a-z0-9_]*`, at most 63
    /// characters); created if missing. Separate schemas are separate stores.
    pub schema: String,
    /// How long an operation waits for a pooled connection (more than zero): for a free one, or
    /// for a new one while the server cannot be reached (the pool keeps retrying until then).
    /// Also the TCP connect timeout of each new connection.
    pub connect_timeout: Duration,
    /// Whether opening creates the schema and applies the migrations it lacks (the default: the
    /// commands that execute). Without it, opening writes nothing and runs no DDL: a store not
    /// there is `replay.store_not_found`, one at an older schema version
    /// `replay.schema_version_outdated` (the commands that only read or complete: a role
    /// granted no more than the tables' rights opens it, and a newer build's audit never
    /// migrates a store older servers write). Either way a standby is refused: a store that
    /// creates connects only to a server that takes writes; one that does not refuses a first
    /// connection to a server in recovery (and so opens for a role whose transactions are
    /// read-only by default).
    pub create: bool,
}

/// How long a statement of the store waits for a lock before it is refused as unavailable
/// (`lock_timeout`; a URL's `options=-c lock_timeout=…` sets another).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long data sent on a store connection may go unacknowledged, and how long one may sit idle
/// before TCP asks the peer, how often, and how many times, before the connection is given up:
/// set on both sides, so that a peer that vanished is noticed within about a minute, not the
/// systems' defaults (hours idle, about 15 minutes sending).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// How long a session may sit in a transaction without a statement before PostgreSQL ends it and
/// frees its locks (`idle_in_transaction_session_timeout`; the store's own transactions never
/// pause; a URL's `options` may set another).
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            schema: "parmana".to_owned(),
            connect_timeout: Duration::from_secs(30),
            create: true,
        }
    }
}

/// A replay store in a PostgreSQL database, shared by any number of processes and machines.
pub struct PostgresReplayStore {
    pool: Pool,
    /// The newest marks record this store has seen, decoded (`None` until the first read): what
    /// lets a claim be decided in one statement (`hot.rs`).
    known: Mutex<Option<KnownMarks>>,
    /// The claims decided in one statement, batched (`group.rs`).
    group: GroupCommit<PendingClaim, FastClaim>,
}

impl std::fmt::Debug for PostgresReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReplayStore")
            .field("schema", &self.pool.schema)
            .field("pool_size", &self.pool.size)
            .field("sslmode", &self.pool.tls_mode.as_str())
            .finish_non_exhaustive()
    }
}

impl PostgresReplayStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, with optional
    /// `?sslmode=…&sslrootcert=PATH`, see `docs/replay-stores.md`), creates the schema if
    /// needed and brings it up to date.
    ///
    /// The first connection is made here, directly, so that an unreachable server or a refused
    /// TLS handshake is reported at once with its cause (`replay.store_unavailable`,
    /// `replay.store_tls_refused`); later connections come from the pool.
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
        let max_size =
            u32::try_from(options.pool_size).map_err(|_| ReplayError::InvalidConfiguration {
                message: format!("the pool size {} is too large", options.pool_size),
            })?;
        if options.connect_timeout.is_zero() {
            return Err(ReplayError::InvalidConfiguration {
                message: "the connect timeout must be more than zero".to_owned(),
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
        // PostgreSQL's own (`pg_catalog`, `pg_toast`, …): no store is made or read there.
        if schema.starts_with("pg_") {
            return Err(ReplayError::InvalidConfiguration {
                message: format!(
                    "schema name {schema:?} begins with pg_, which PostgreSQL reserves"
                ),
            });
        }
        let tls = tls::split_url(url)?;
        let mut config: Config =
            tls.rest
                .parse()
                .map_err(|e| ReplayError::InvalidConfiguration {
                    message: format!("invalid PostgreSQL URL: {e}"),
                })?;
        config.ssl_mode(tls.mode.ssl_mode());
        let connector = tls.connector()?;
        // Every session writes durably and sees only this store's tables (set last: the URL's
        // `options` cannot change them). Before the URL's options, so that it may change them:
        // a statement waits at most `LOCK_TIMEOUT` for a lock (then refused as unavailable,
        // nothing written), and a transaction whose client went silent (a lost host) gives its
        // locks back after `IDLE_IN_TRANSACTION_TIMEOUT` instead of holding every claim of every
        // server until TCP gives up on it (hours).
        // The server's side of the connection notices a client that vanished as the client's
        // side does (below): a session blocked sending a large result to a lost host — which the
        // idle-in-transaction timeout does not end — gives its locks back within about a minute,
        // not after the server's retransmissions give up (about 15 minutes).
        let defaults = format!(
            "-c lock_timeout={} -c idle_in_transaction_session_timeout={} \
             -c tcp_user_timeout={} -c tcp_keepalives_idle={} -c tcp_keepalives_interval={} \
             -c tcp_keepalives_count={}",
            LOCK_TIMEOUT.as_millis(),
            IDLE_IN_TRANSACTION_TIMEOUT.as_millis(),
            TCP_USER_TIMEOUT.as_millis(),
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            KEEPALIVE_RETRIES
        );
        // Quoted: a name the check above allows may still be a keyword (`user`, `select`).
        // Read committed whatever the server, database, role or URL default to: every
        // statement's locking is written for it (under repeatable read or serializable, a race
        // for one id, or two servers creating the schema at once, fails instead of waiting).
        let session = format!(
            "-c synchronous_commit=on -c default_transaction_isolation=read\\ committed \
             -c search_path=\"{schema}\""
        );
        let options_text = match config.get_options() {
            Some(existing) => format!("{defaults} {existing} {session}"),
            None => format!("{defaults} {session}"),
        };
        config.options(&options_text);
        config.connect_timeout(options.connect_timeout);
        // A peer that vanished is noticed by TCP within about a minute, not the system's default
        // of two hours.
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        // A store never works on a standby (a multi-host URL, or a name that points at one
        // after a failover): there every write fails (`recover`, `log sequence` write without
        // creating anything), and reads lag behind what the primary completed and signed — a
        // checkpoint the standby has not caught up with would read as a forked log. A store
        // that creates asks each new connection's server whether it takes writes (once, not per
        // use); one opened only to read or complete asks whether its first connection's
        // server is in recovery instead (below), so that a role whose transactions are
        // read-only by default (an auditor's, on the primary) can open it.
        if options.create {
            config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
        }
        let mut first = config
            .connect(connector.clone())
            .map_err(map_connect_error)?;
        if let Some(refused) = check_session(&mut first, schema).map_err(map_error)? {
            return Err(ReplayError::InvalidConfiguration { message: refused });
        }
        if options.create {
            // A store already at this build's version is opened as one opened to read: no DDL,
            // so a running deployment's role needs no right to create (PostgreSQL checks it
            // before `IF NOT EXISTS`). Otherwise it is created or migrated.
            match check_schema_version(&mut first, schema) {
                Ok(()) => {}
                Err(ReplayError::NotFound { .. } | ReplayError::SchemaVersionOutdated { .. }) => {
                    migrate(&mut first, schema)?;
                }
                Err(error) => return Err(error),
            }
        } else {
            refuse_standby(&mut first)?;
            check_schema_version(&mut first, schema)?;
        }
        drop(first);
        let last_failure = Arc::new(Mutex::new(None));
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            // Connections are opened on demand, as operations need them.
            .min_idle(Some(0))
            // A broken connection is seen on return (`is_closed`) and dropped; testing every
            // checkout would add a round trip to every claim.
            .test_on_check_out(false)
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(RecordFailures {
                last: Arc::clone(&last_failure),
            }))
            .event_handler(Box::new(RecordFailures {
                last: Arc::clone(&last_failure),
            }))
            .build_unchecked(Manager {
                connections: PostgresConnectionManager::new(config, connector),
                schema: schema.clone(),
            });
        Ok(Self {
            pool: Pool {
                pool,
                schema: schema.clone(),
                size: options.pool_size,
                tls_mode: tls.mode,
                wait: options.connect_timeout,
                last_failure,
            },
            known: Mutex::new(None),
            group: GroupCommit::new(MAX_BATCH_CLAIMS),
        })
    }
}

/// What each new connection runs first (one round trip, not per use): its session's
/// durability, isolation and names, compared with what the startup options set — a connection
/// pooler between the store and PostgreSQL may drop them (PgBouncer refuses the `options`
/// parameter, or with `ignore_startup_parameters = options` drops it), and then a `201` would
/// rest on the server's `synchronous_commit`, the store's locking on its isolation, and its
/// names on its `search_path` (`lock_timeout` and the idle timeout the URL may change) — and, on
/// PostgreSQL 14 or newer, `idle_session_timeout` turned off for the session (the startup
/// options cannot set it: 12 and 13 refuse a setting they do not know), so that a pooled
/// connection left idle is not ended under the store, each one then costing a request a `503`.
/// Plain SQL (no PL/pgSQL), on a read-only session too.
const SESSION_CHECK: &str = "SELECT pg_catalog.current_setting('synchronous_commit'),
        pg_catalog.current_setting('default_transaction_isolation'),
        pg_catalog.current_setting('search_path'),
        (SELECT pg_catalog.set_config('idle_session_timeout', '0', false)
         WHERE pg_catalog.current_setting('idle_session_timeout', true) IS NOT NULL)";

/// Runs [`SESSION_CHECK`] on `client`: `Ok(None)` when the session runs as the store set it,
/// `Ok(Some(why))` when it does not (refused: `replay.invalid_configuration`).
pub(super) fn check_session(
    client: &mut postgres::Client,
    schema: &str,
) -> Result<Option<String>, postgres::Error> {
    // The simple protocol: one round trip (the extended one takes two, parse then execute).
    let messages = client.simple_query(SESSION_CHECK)?;
    let row = messages.iter().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let setting = |n: usize| {
        // A value missing (no row, fewer columns, NULL) is no setting the store made: refused.
        row.and_then(|row| row.try_get(n).ok().flatten())
            .unwrap_or_default()
            .to_owned()
    };
    let (synchronous_commit, isolation, search_path) = (setting(0), setting(1), setting(2));
    let expected_path = format!("\"{schema}\"");
    Ok((synchronous_commit != "on"
        || isolation != "read committed"
        || search_path != expected_path)
        .then(|| {
            format!(
                "the session does not run with what the store set in its startup options \
                     (synchronous_commit = {synchronous_commit:?}, default_transaction_isolation \
                     = {isolation:?}, search_path = {search_path:?}; the store sets on, read \
                     committed and {expected_path:?}): a connection pooler between the store and \
                     PostgreSQL dropped them; connect to PostgreSQL directly, or through a pooler \
                     that passes the options parameter on"
            )
        }))
}

/// How a transaction locks the marks row while it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowLock {
    /// Not at all (a plain read).
    None,
    /// `FOR SHARE`: claims under the marks in force run side by side; a raise waits for them.
    Share,
    /// `FOR UPDATE`: a raise, alone.
    Update,
}

impl RowLock {
    /// The locking clause of a read of the marks row `h`.
    fn clause(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Share => " FOR SHARE OF h",
            Self::Update => " FOR UPDATE OF h",
        }
    }
}

/// The marks row as stored, locked as `lock` says (what a ledger snapshot reports beside the
/// records, which [`verify_ledger`](crate::verify_ledger) judges — a corrupt marks record among
/// them is its finding to report, not a failure to read).
fn read_marks_row(
    tx: &mut postgres::Transaction<'_>,
    lock: RowLock,
) -> Result<AcceptedVersions, ReplayError> {
    let locking = lock.clause();
    let row = tx
        .query_opt(
            &format!(
                "SELECT h.trust_root, h.release_manifest FROM high_water_marks h
                 WHERE h.singleton = 1{locking}"
            ),
            &[],
        )
        .map_err(map_error)?
        .ok_or_else(|| ReplayError::corrupt("the high-water marks row is missing"))?;
    versions_from(&row)
}

/// Reads what a claim or a raise is decided on, in the caller's transaction and in one statement
/// (one snapshot, also unlocked under READ COMMITTED): the marks row (locked as `lock` says),
/// every marks record (through the partial index `ledger_marks`; each bounded by its length) and
/// the newest claim time (through `executions_claimed_at`). What the records prove is the highest
/// of each version over all of them — not the newest one's, which a writer could make a lower
/// one by appending it; the newest one's bytes are kept for the one-statement claim, which a
/// record appended since sends here.
fn read_guard(
    tx: &mut postgres::Transaction<'_>,
    lock: RowLock,
) -> Result<(GuardState, KnownMarks), ReplayError> {
    let locking = lock.clause();
    let row = tx
        .query_opt(
            &format!(
                "SELECT h.trust_root, h.release_manifest,
                        (SELECT pg_catalog.array_agg(m.record ORDER BY m.position)
                         FROM (SELECT l.position,
                                      CASE WHEN octet_length(l.record) <= $1::bigint
                                           THEN l.record END AS record
                               FROM ledger l WHERE l.kind = 'marks'
                               ORDER BY l.position LIMIT $2::bigint) m),
                        (SELECT CASE WHEN n.newest IS NULL OR octet_length(n.newest) <= 64
                                     THEN n.newest ELSE 'over its bound' END
                         FROM (SELECT max(e.claimed_at COLLATE \"C\") AS newest
                               FROM executions e) n)
                 FROM high_water_marks h WHERE h.singleton = 1{locking}"
            ),
            &[
                &crate::MAX_STORED_RECORD_BYTES,
                &(crate::MAX_MARKS_RECORDS + 1),
            ],
        )
        .map_err(map_error)?
        .ok_or_else(|| ReplayError::corrupt("the high-water marks row is missing"))?;
    let records: Vec<Vec<u8>> = get::<Option<Vec<Option<Vec<u8>>>>>(&row, 2)?
        .unwrap_or_default()
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(crate::record::oversized_marks_record)?;
    crate::record::check_marks_count(records.len())?;
    let proven = marks_proven(records.iter().map(Vec::as_slice))?;
    let record = records.last().cloned();
    let guard = GuardState {
        marks: versions_from(&row)?,
        proven,
        newest_claim: get::<Option<String>>(&row, 3)?
            .as_deref()
            .map(decode_timestamp)
            .transpose()?,
    };
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    Ok((
        guard,
        KnownMarks {
            record,
            proven,
            count,
        },
    ))
}

/// `raise`, decided on `guard` (read with the marks row locked `FOR UPDATE`), or — when it would
/// append only the record of marks the row already holds — decided again on a fresh read. Under
/// READ COMMITTED a statement that waited for the row's lock sees the row as the raise that held
/// it left it, but the marks records as they were when the statement began: the record that
/// raise appended is missing from what they prove. A new statement (a new snapshot, the row
/// still locked) sees it, and no second, equal record is appended.
fn settled_raise(
    tx: &mut postgres::Transaction<'_>,
    known: &Mutex<Option<KnownMarks>>,
    guard: &GuardState,
    raise: Raise,
    decide: impl Fn(&GuardState) -> Result<Raise, ReplayError>,
) -> Result<Raise, ReplayError> {
    if !raise.changed || raise.marks != guard.marks {
        return Ok(raise);
    }
    let (fresh, read) = read_guard(tx, RowLock::Update)?;
    remember(known, read);
    decide(&fresh)
}

/// Writes a raise decided by [`GuardState`] (the marks row must be locked `FOR UPDATE`): the
/// marks row and a marks record, when they changed. Returns the record appended, if any.
fn apply_raise(
    tx: &mut postgres::Transaction<'_>,
    raise: Raise,
) -> Result<Option<KnownMarks>, ReplayError> {
    if !raise.changed {
        return Ok(None);
    }
    tx.execute(
        "UPDATE high_water_marks SET trust_root = $1, release_manifest = $2 WHERE singleton = 1",
        &[
            &encode_version(VersionKind::TrustRoot, raise.marks.trust_root)?,
            &encode_version(VersionKind::ReleaseManifest, raise.marks.release_manifest)?,
        ],
    )
    .map_err(map_error)?;
    let record = append_record(tx, |head| encode_marks_record(head, raise.marks))?;
    // Counted in this transaction, the record appended included.
    let count: i64 = tx
        .query_one(
            "SELECT pg_catalog.count(*) FROM ledger WHERE kind = 'marks'",
            &[],
        )
        .map_err(map_error)?
        .try_get(0)
        .map_err(|e| ReplayError::corrupt(format!("the count of marks records: {e}")))?;
    Ok(Some(KnownMarks {
        record: Some(record),
        proven: Some(raise.marks),
        count,
    }))
}

/// Locks the one `ledger_head` row until commit (the chain's serialization point, taken by the
/// sequencer and by raises of the marks) and reads it.
fn lock_head(tx: &mut postgres::Transaction<'_>) -> Result<LedgerHead, ReplayError> {
    let head_row = tx
        .query_opt(
            "SELECT next_position, CASE WHEN octet_length(previous) <= 128 THEN previous END
             FROM ledger_head WHERE singleton = 1 FOR UPDATE",
            &[],
        )
        .map_err(map_error)?
        .ok_or_else(|| ReplayError::corrupt("the ledger_head row is missing"))?;
    Ok(LedgerHead {
        next_position: decode_version(get(&head_row, 0)?)?,
        previous: get::<Option<String>>(&head_row, 1)?
            .ok_or_else(|| ReplayError::corrupt("stored ledger head: over 128 bytes"))?
            .parse()
            .map_err(|e| ReplayError::corrupt(format!("stored ledger head: {e}")))?,
    })
}

/// Moves the locked `ledger_head` row to `head`.
fn write_head(tx: &mut postgres::Transaction<'_>, head: LedgerHead) -> Result<(), ReplayError> {
    tx.execute(
        "UPDATE ledger_head SET next_position = $1, previous = $2 WHERE singleton = 1",
        &[
            &encode_position(head.next_position)?,
            &head.previous.to_string(),
        ],
    )
    .map_err(map_error)?;
    Ok(())
}

/// A ledger position or checkpoint size as PostgreSQL stores it.
fn encode_position(position: u64) -> Result<i64, ReplayError> {
    i64::try_from(position).map_err(|_| ReplayError::corrupt("the ledger is full"))
}

/// Appends the marks record `encode` makes at the head of the one serialized chain (the
/// `ledger_head` row stays locked until commit), and returns it.
fn append_record(
    tx: &mut postgres::Transaction<'_>,
    encode: impl FnOnce(LedgerHead) -> Result<Vec<u8>, ReplayError>,
) -> Result<Vec<u8>, ReplayError> {
    let head = lock_head(tx)?;
    let record = encode(head)?;
    tx.execute(
        "INSERT INTO ledger (position, kind, execution_id, record) VALUES ($1, $2, NULL, $3)",
        &[&encode_position(head.next_position)?, &KIND_MARKS, &record],
    )
    .map_err(map_error)?;
    write_head(tx, LedgerHead::after(head.next_position, &record))?;
    Ok(record)
}

/// One sequencer run in the caller's transaction (which holds the sequencer's advisory lock):
/// the next `max` completed executions without a position (by claim time, then id, in byte
/// order; fewer when their payloads pass [`MAX_SEQUENCE_BATCH_BYTES`](crate::MAX_SEQUENCE_BATCH_BYTES)), each given the next position and its chained record, written with one `INSERT` and
/// one `UPDATE` over arrays.
fn sequence_in(
    tx: &mut postgres::Transaction<'_>,
    max: usize,
) -> Result<Vec<LedgerRow>, ReplayError> {
    let mut head = lock_head(tx)?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    // At most `max` executions, and only those whose payloads before them stay under
    // MAX_SEQUENCE_BATCH_BYTES (the first always): a running total over the waiting rows in
    // order, their lengths read from the values' headers (nothing is detoasted to be measured).
    let waiting = tx
        .query(
            "SELECT CASE WHEN NOT over THEN id END, CASE WHEN NOT over THEN request_digest END,
                    CASE WHEN NOT over THEN attestation_inputs END,
                    CASE WHEN NOT over THEN claimed_at END,
                    CASE WHEN NOT over THEN attestation END, over FROM (
               SELECT id, request_digest, attestation_inputs, claimed_at, attestation,
                 octet_length(attestation_inputs) + octet_length(attestation) AS size,
                 sum(octet_length(attestation_inputs) + octet_length(attestation)) OVER (
                   ORDER BY claimed_at COLLATE \"C\", id COLLATE \"C\") AS through,
                 (octet_length(id) > 128 OR octet_length(request_digest) > 128
                  OR octet_length(claimed_at) > 64 OR octet_length(attestation_inputs) > $3::bigint
                  OR octet_length(attestation) > $4::bigint) AS over
               FROM executions WHERE attestation IS NOT NULL AND ledger_position IS NULL
               ORDER BY claimed_at COLLATE \"C\", id COLLATE \"C\" LIMIT $1) AS waiting
             WHERE through - size < $2
             ORDER BY claimed_at COLLATE \"C\", id COLLATE \"C\"",
            &[
                &limit,
                &crate::MAX_SEQUENCE_BATCH_BYTES,
                &crate::MAX_STORED_EXECUTION_BYTES,
                &crate::MAX_STORED_ATTESTATION_BYTES,
            ],
        )
        .map_err(map_error)?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(waiting.len());
    for row in &waiting {
        // A row holding a value over its bound (a writer's) is not read, and refuses the run.
        if get::<bool>(row, 5)? {
            return Err(crate::record::oversized_waiting_execution());
        }
        let id: String = get(row, 0)?;
        let claim = decode_claim(
            &get::<String>(row, 1)?,
            get(row, 2)?,
            &get::<String>(row, 3)?,
        )?;
        let attestation: Vec<u8> = get(row, 4)?;
        let execution_id = decode_execution_id(&id)?;
        let record = encode_record(head, execution_id.as_str(), &claim, &attestation)?;
        let position = head.next_position;
        head = LedgerHead::after(position, &record);
        rows.push(LedgerRow {
            position,
            execution_id: Some(id),
            record,
            claim: Some(claim),
            attestation: Some(attestation),
        });
    }
    let positions = rows
        .iter()
        .map(|row| encode_position(row.position))
        .collect::<Result<Vec<i64>, _>>()?;
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|row| row.execution_id.as_deref())
        .collect();
    let records: Vec<&[u8]> = rows.iter().map(|row| row.record.as_slice()).collect();
    tx.execute(
        "INSERT INTO ledger (position, kind, execution_id, record)
         SELECT p, $4, i, r
         FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::text[]),
                         pg_catalog.unnest($3::bytea[])) AS u(p, i, r)",
        &[&positions, &ids, &records, &KIND_EXECUTION],
    )
    .map_err(map_error)?;
    tx.execute(
        "UPDATE executions e SET ledger_position = u.p
         FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::bigint[]))
              AS u(i, p)
         WHERE e.id = u.i",
        &[&ids, &positions],
    )
    .map_err(map_error)?;
    write_head(tx, head)?;
    Ok(rows)
}

/// Rebuilds a stored checkpoint from its row; anything unreadable means the store is corrupt.
fn decode_checkpoint(row: &Row) -> Result<StoredCheckpoint, ReplayError> {
    crate::record::decode_stored_checkpoint(get(row, 0)?, get(row, 1)?, get(row, 2)?)
}

/// One attempt at a claim in its own transaction, the marks row locked as `lock` says. With
/// [`RowLock::Share`], a claim that would raise the marks is rolled back untouched (`None`):
/// the caller tries again with [`RowLock::Update`], which always decides. The newest marks
/// record it reads or appends is remembered in `known`. With `attestation`, the row it inserts
/// is completed with it in the same transaction, sent only once the claim has won (a claim that
/// loses or is refused never carries it to the database).
fn claim_in(
    client: &mut Client,
    known: &Mutex<Option<KnownMarks>>,
    execution_id: &ExecutionId,
    record: &ClaimRecord,
    under: AcceptedVersions,
    attestation: Option<&[u8]>,
    lock: RowLock,
) -> Result<Option<ClaimOutcome>, ReplayError> {
    let mut tx = client.transaction().map_err(map_error)?;
    let (guard, read) = read_guard(&mut tx, lock)?;
    remember(known, read);
    let decide = |guard: &GuardState| guard.claim(under, record.claimed_at());
    let raise = decide(&guard)?;
    let mut appended = None;
    if raise.changed {
        if lock != RowLock::Update {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(None);
        }
        let raise = settled_raise(&mut tx, known, &guard, raise, decide)?;
        appended = apply_raise(&mut tx, raise)?;
    }
    let inserted = tx
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
    if inserted == 1
        && let Some(attestation) = attestation
    {
        let completed = tx
            .execute(
                "UPDATE executions SET attestation = $1 WHERE id = $2 AND attestation IS NULL",
                &[&attestation, &execution_id.as_str()],
            )
            .map_err(map_error)?;
        if completed != 1 {
            // Dropping the transaction rolls it back: the claim is not made either.
            return Err(ReplayError::unavailable(
                "the claim just made was not completed in its transaction",
            ));
        }
    }
    tx.commit().map_err(map_error)?;
    if let Some(appended) = appended {
        remember(known, appended);
    }
    Ok(Some(if inserted == 1 {
        ClaimOutcome::Claimed
    } else {
        ClaimOutcome::AlreadyClaimed
    }))
}

impl PostgresReplayStore {
    /// A claim, with `attestation` already completed in the same write when given.
    fn claim_with(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: Option<&[u8]>,
    ) -> Result<ClaimOutcome, ReplayError> {
        // The common case — the marks equal `under`, the newest marks record already decoded —
        // is one prepared statement shared with the claims made at the same time (`hot.rs`,
        // `group.rs`); anything else is decided in a transaction.
        if self.known_marks().is_some() {
            let pending = PendingClaim {
                execution_id: execution_id.clone(),
                record: record.clone(),
                under,
                attestation: attestation.map(<[u8]>::to_vec),
            };
            if let FastClaim::Decided { inserted } = self
                .group
                .submit(pending, |batch| self.write_batch(batch))?
            {
                return Ok(if inserted {
                    ClaimOutcome::Claimed
                } else {
                    ClaimOutcome::AlreadyClaimed
                });
            }
        }
        let mut client = self.pool.checkout()?;
        // Under the marks in force the marks row is shared with other claims; a raise (once per
        // new trust root or release manifest) takes it alone.
        let known = &self.known;
        for lock in [RowLock::Share, RowLock::Update] {
            if let Some(outcome) = claim_in(
                &mut client,
                known,
                execution_id,
                record,
                under,
                attestation,
                lock,
            )? {
                return Ok(outcome);
            }
        }
        Err(ReplayError::unavailable(
            "a claim under FOR UPDATE did not decide",
        ))
    }

    /// The newest marks record this store has decoded, if any.
    fn known_marks(&self) -> Option<KnownMarks> {
        self.known.lock().ok().and_then(|known| known.clone())
    }

    /// Writes one batch of the group commit: its decidable claims in one statement on one
    /// pooled connection. The statement commits all of them or none; a failure answers every
    /// claim of the batch with it (an error after the commit was sent may hide a commit that
    /// happened, as for a claim alone), except those before the commit that say nothing of the
    /// claims, which leave each to be decided alone (`hot::claim_fast`).
    fn write_batch(&self, batch: &[PendingClaim]) -> Vec<Result<FastClaim, ReplayError>> {
        let Some(known) = self.known_marks() else {
            return vec![Ok(FastClaim::Undecided); batch.len()];
        };
        let claims: Vec<&PendingClaim> = batch.iter().collect();
        let written = self
            .pool
            .checkout()
            .and_then(|mut connection| claim_fast(&mut connection, &known, &claims));
        match written {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(error) => batch.iter().map(|_| Err(error.clone())).collect(),
        }
    }
}

impl ReplayStore for PostgresReplayStore {
    fn claim(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
    ) -> Result<ClaimOutcome, ReplayError> {
        crate::check_stored_size(
            crate::StoredValue::RecordedInputs,
            record.attestation_inputs().len(),
        )?;
        self.claim_with(execution_id, record, under, None)
    }

    fn completes_in_one_write(&self) -> bool {
        true
    }

    /// The claim is made, then — only if it won — completed, in one transaction: by the prepared
    /// statements of the hot path when the claim is made under the marks in force, otherwise in
    /// the claim's own transaction — either way one commit, so no claimed-not-completed state
    /// arises from it, and the attestation of a claim that lost is never sent.
    fn claim_completed(
        &self,
        execution_id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: &[u8],
    ) -> Result<ClaimOutcome, ReplayError> {
        crate::check_stored_size(
            crate::StoredValue::RecordedInputs,
            record.attestation_inputs().len(),
        )?;
        crate::check_stored_size(crate::StoredValue::Attestation, attestation.len())?;
        self.claim_with(execution_id, record, under, Some(attestation))
    }

    fn complete(&self, execution_id: &ExecutionId, attestation: &[u8]) -> Result<(), ReplayError> {
        crate::check_stored_size(crate::StoredValue::Attestation, attestation.len())?;
        let mut client = self.pool.checkout()?;
        // One prepared statement on the execution's own row, committed on its own: the
        // sequencer appends the ledger record later.
        if complete_fast(&mut client, execution_id, attestation)? {
            return Ok(());
        }
        let completed = client
            .query_opt(
                "SELECT attestation IS NOT NULL FROM executions WHERE id = $1",
                &[&execution_id.as_str()],
            )
            .map_err(map_error)?
            .map(|row| get::<bool>(&row, 0))
            .transpose()?;
        Err(match completed {
            Some(true) => ReplayError::AlreadyCompleted {
                execution_id: execution_id.to_string(),
            },
            _ => ReplayError::NotClaimed {
                execution_id: execution_id.to_string(),
            },
        })
    }

    fn sequence(&self, max: usize) -> Result<SequenceOutcome, ReplayError> {
        let mut client = self.pool.checkout()?;
        let mut tx = client.transaction().map_err(map_error)?;
        let locked: bool = get(
            &tx.query_one(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&SEQUENCER_LOCK, &self.pool.schema],
            )
            .map_err(map_error)?,
            0,
        )?;
        if !locked {
            // Another integrator is running; dropping the transaction ends it.
            return Ok(SequenceOutcome::Busy);
        }
        let rows = sequence_in(&mut tx, max)?;
        tx.commit().map_err(map_error)?;
        Ok(SequenceOutcome::Integrated(rows))
    }

    fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), ReplayError> {
        let mut client = self.pool.checkout()?;
        let size = i64::try_from(checkpoint.size)
            .map_err(|_| ReplayError::corrupt("a checkpoint size beyond 2^63-1"))?;
        client
            .execute(
                "INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3)
                 ON CONFLICT (size) DO NOTHING",
                &[&size, &checkpoint.root.to_string(), &checkpoint.note],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReplayError> {
        let mut client = self.pool.checkout()?;
        client
            .query_opt(
                &format!(
                    "SELECT {} FROM checkpoints ORDER BY size DESC LIMIT 1",
                    crate::BOUNDED_CHECKPOINT_COLUMNS
                ),
                &[],
            )
            .map_err(map_error)?
            .as_ref()
            .map(decode_checkpoint)
            .transpose()
    }

    fn get(&self, execution_id: &ExecutionId) -> Result<ExecutionState, ReplayError> {
        let mut client = self.pool.checkout()?;
        // Every value bounded by its length before it is read (a writer of the store may have
        // made one of any size): over the bound, it reads as NULL and is refused below.
        let row = client
            .query_opt(
                "SELECT CASE WHEN octet_length(request_digest) <= 128 THEN request_digest END,
                        CASE WHEN octet_length(attestation_inputs) <= $2::bigint
                             THEN attestation_inputs END,
                        CASE WHEN octet_length(claimed_at) <= 64 THEN claimed_at END,
                        CASE WHEN octet_length(attestation) <= $3::bigint THEN attestation END,
                        attestation IS NOT NULL
                 FROM executions WHERE id = $1",
                &[
                    &execution_id.as_str(),
                    &crate::MAX_STORED_EXECUTION_BYTES,
                    &crate::MAX_STORED_ATTESTATION_BYTES,
                ],
            )
            .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(ExecutionState::Absent);
        };
        let (Some(digest), Some(inputs), Some(claimed_at)) = (
            get::<Option<String>>(&row, 0)?,
            get::<Option<Vec<u8>>>(&row, 1)?,
            get::<Option<String>>(&row, 2)?,
        ) else {
            return Err(crate::record::oversized_execution(execution_id));
        };
        let attestation = get::<Option<Vec<u8>>>(&row, 3)?;
        if get::<bool>(&row, 4)? && attestation.is_none() {
            return Err(crate::record::oversized_execution(execution_id));
        }
        let claim = decode_claim(&digest, inputs, &claimed_at)?;
        Ok(match attestation {
            None => ExecutionState::Claimed(claim),
            Some(attestation) => {
                ExecutionState::Completed(CompletedExecution::new(claim, attestation))
            }
        })
    }

    fn pending_after(
        &self,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ExecutionId>, ReplayError> {
        let mut client = self.pool.checkout()?;
        // A range of the pending index in the database's order of ids (the pages continue it:
        // each compares in the same collation), each id read only when it is no longer than an
        // id can be.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let max_len = i32::try_from(crate::MAX_EXECUTION_ID_LEN).unwrap_or(i32::MAX);
        let rows = match after {
            Some(after) => client.query(
                "SELECT CASE WHEN octet_length(id) <= $3 THEN id END FROM executions
                 WHERE attestation IS NULL AND id > $1 ORDER BY id LIMIT $2",
                &[&after.as_str(), &limit, &max_len],
            ),
            None => client.query(
                "SELECT CASE WHEN octet_length(id) <= $2 THEN id END FROM executions
                 WHERE attestation IS NULL ORDER BY id LIMIT $1",
                &[&limit, &max_len],
            ),
        }
        .map_err(map_error)?;
        rows.iter()
            .map(|row| crate::record::decode_bounded_execution_id(get::<Option<&str>>(row, 0)?))
            .collect()
    }

    fn accepted_versions(&self) -> Result<AcceptedVersions, ReplayError> {
        let mut client = self.pool.checkout()?;
        // One statement: the marks row and the newest marks record from one snapshot.
        let mut tx = client.transaction().map_err(map_error)?;
        let (guard, read) = read_guard(&mut tx, RowLock::None)?;
        tx.commit().map_err(map_error)?;
        remember(&self.known, read);
        guard.check_not_reset()
    }

    fn accept_versions(
        &self,
        trust_root: u64,
        release_manifest: u64,
    ) -> Result<AcceptedVersions, ReplayError> {
        let mut client = self.pool.checkout()?;
        let mut tx = client.transaction().map_err(map_error)?;
        let (guard, read) = read_guard(&mut tx, RowLock::Update)?;
        remember(&self.known, read);
        let decide =
            |guard: &GuardState| guard.raise(AcceptedVersions::new(trust_root, release_manifest));
        let raise = decide(&guard)?;
        let raise = settled_raise(&mut tx, &self.known, &guard, raise, decide)?;
        let appended = apply_raise(&mut tx, raise)?;
        tx.commit().map_err(map_error)?;
        if let Some(appended) = appended {
            remember(&self.known, appended);
        }
        Ok(raise.marks)
    }

    fn ledger_summary(&self) -> Result<LedgerSummary, ReplayError> {
        ledger_read::summary(&mut *self.pool.checkout()?)
    }

    fn checkpoints_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCheckpoint>, ReplayError> {
        ledger_read::checkpoints_from(&mut *self.pool.checkout()?, from, max)
    }

    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        ledger_read::rows(&mut *self.pool.checkout()?, from, max)
    }

    fn ledger_records(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, ReplayError> {
        ledger_read::records(&mut *self.pool.checkout()?, from, max)
    }
}

/// Remembers the newest marks record seen (a decoding, true of those bytes whatever happens to
/// the transaction that read them; a poisoned lock only costs the one-statement claim).
fn remember(known: &Mutex<Option<KnownMarks>>, marks: KnownMarks) {
    if let Ok(mut known) = known.lock() {
        *known = Some(marks);
    }
}

fn versions_from(row: &Row) -> Result<AcceptedVersions, ReplayError> {
    Ok(AcceptedVersions {
        trust_root: decode_version(get(row, 0)?)?,
        release_manifest: decode_version(get(row, 1)?)?,
    })
}
