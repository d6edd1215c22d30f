//! The PostgreSQL hot path: pooled connections that keep their prepared statements, a batch of claims as one statement (with their attestations: then the winners completed in the same transaction), and completion as one prepared `UPDATE`.
//!
//! A claim made under the marks in force (every claim but the first after a new trust root or
//! release manifest) is one round trip, shared with the claims made at the same time: the group
//! commit (`group.rs`) hands the claims queued while the previous batch was being written to one
//! prepared statement, which reads the marks row `FOR SHARE`,
//! the newest marks record and the newest claim time, exactly as the transactional path does
//! (`claim_in` in `postgres.rs`), and inserts the claim only when that state is one the
//! transactional path would accept without a raise — the marks row equal to the claim's versions,
//! the newest marks record byte for byte the one this store has already read, at the position it
//! names inside its bytes, and as many marks records as it read (so the marks every marks record up to it proves — the highest of each
//! version over all of them, decoded then — are known and equal to the claim's versions — a row
//! above them, raised behind the store, is proven by the transactional path's record first; a
//! record appended since is the newest at a later position, whatever its bytes — a writer's copy
//! of the older record this store read included — and a record moved or deleted alone changes
//! their number: each sends the claim to the transactional path, which reads them all; a move
//! combined with another edit of the records is the residual `docs/trust-model.md` §8.1 lists,
//! which `ledger verify` reports), and the newest claim time in
//! the one spelling of a timestamp and no later than the claim time plus the tolerance (compared
//! as text: that spelling sorts as it reads; for a batch, the earliest claim time of the batch).
//! Anything else inserts nothing and says so; each caller then decides in a transaction of its
//! own, which returns the typed refusal or raises the marks. For plain claims the statement commits
//! on its own (autocommit, `synchronous_commit = on`): every claim of the batch is written, or none; the
//! marks row stays locked `FOR SHARE` until then, so a raise still waits for it. The statement is
//! one multi-row `INSERT … ON CONFLICT (id) DO NOTHING` whose conflict check is made row by row
//! against the unique index, so whether a claim won is decided per id exactly as for a claim
//! alone.
//!
//! The same statement, given the attestations, writes executions once, already completed
//! ([`ReplayStore::claim_completed`](crate::ReplayStore::claim_completed)): in one transaction it
//! inserts the claims, then completes those that won ([`COMPLETE_WON`]), and commits once — so the
//! id is consumed and the outcome recorded in one commit, no claimed-not-completed state arises
//! from it, and an attestation reaches the database only with a claim that won (a writer of the
//! database watching what reaches it never sees the attestation of a claim that lost or was
//! refused; one who aborts the winning transaction after seeing the `UPDATE` is the residual,
//! `docs/trust-model.md` §8.1).

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};

use postgres::{Client, Statement};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::VersionKind;
use crate::record::{GuardState, encode_version};
use crate::{AcceptedVersions, ClaimRecord, ExecutionId, ReplayError};

use super::group::Batchable;
use super::{get, map_error};

/// The claims of one batch in one statement (see the module documentation). Parameters: the
/// ids, request digests, attestation inputs and claim times (arrays, one element per claim, in
/// the order they are inserted), the claims' trust-root and release-manifest versions (one pair
/// for the batch), the newest marks record this store has decoded (`NULL`: none), the latest
/// newest claim time the clock check lets through for every claim of the batch (`NULL`: any), and
/// the position the record names inside its bytes (`NULL` with none), and the number of marks
/// records the store read: the newest marks row must be that record at that position, and the
/// marks rows as many — a byte copy of an older record appended by a writer of the database is
/// newest at another position, a genuine record moved below the known one changes nothing else
/// but is one more, and each sends the claim to the transactional path. The
/// rows are inserted claimed, never completed: an attestation is sent only once its claim has won
/// ([`COMPLETE_WON`]). Returns one row — whether the state let the statement decide, and the ids it inserted — or
/// none when the marks row is missing. It decides for the whole batch or for none of it.
const CLAIM: &str = "WITH guard AS (
        SELECT h.trust_root, h.release_manifest,
               (SELECT l.record FROM ledger l WHERE l.kind = 'marks'
                ORDER BY l.position DESC LIMIT 1) AS proven,
               (SELECT l.position FROM ledger l WHERE l.kind = 'marks'
                ORDER BY l.position DESC LIMIT 1) AS proven_at,
               (SELECT pg_catalog.count(*) FROM ledger l WHERE l.kind = 'marks') AS marks,
               (SELECT max(e.claimed_at COLLATE \"C\") FROM executions e) AS newest
        FROM high_water_marks h WHERE h.singleton = 1 FOR SHARE OF h
    ), decision AS (
        SELECT coalesce(
                   g.trust_root = $5::bigint AND g.release_manifest = $6::bigint
                   AND g.proven IS NOT DISTINCT FROM $7::bytea
                   AND g.proven_at IS NOT DISTINCT FROM $9::bigint
                   AND g.marks = $10::bigint
                   AND (g.newest IS NULL
                        OR (g.newest ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
                            AND ($8::text IS NULL OR g.newest <= $8::text COLLATE \"C\"))),
                   false) AS decided
        FROM guard g
    ), inserted AS (
        INSERT INTO executions (id, request_digest, attestation_inputs, claimed_at)
        SELECT c.id, c.request_digest, c.attestation_inputs, c.claimed_at
        FROM decision d,
             ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),
                        pg_catalog.unnest($3::bytea[]), pg_catalog.unnest($4::text[]))
                 WITH ORDINALITY AS c(id, request_digest, attestation_inputs, claimed_at, n)
        WHERE d.decided
        ORDER BY c.n
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    )
    SELECT d.decided, coalesce((SELECT pg_catalog.array_agg(i.id) FROM inserted i), '{}'::text[])
    FROM decision d";

/// The most claims one batch carries, and the most attestation bytes (a claim larger than that
/// still goes alone).
pub(super) const MAX_BATCH_CLAIMS: usize = 64;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Completion: one statement on the execution's own row, committed on its own.
const COMPLETE: &str =
    "UPDATE executions SET attestation = $1 WHERE id = $2 AND attestation IS NULL";

/// The completion of the claims a batch won, in the batch's transaction before it commits: the
/// ids (`$1`) and their attestations (`$2`). The attestations reach the database only here,
/// after their claims have won — never in a statement whose claim may lose or be refused (a
/// writer of the database could capture one: a signed attestation for an id the runtime refused).
/// The rows are found by `id = ANY`, through the primary key (a join with the arrays' `unnest`
/// could be planned as a scan of the whole table).
const COMPLETE_WON: &str = "UPDATE executions e
    SET attestation = ($2::bytea[])[pg_catalog.array_position($1::text[], e.id)]
    WHERE e.id = ANY($1::text[]) AND e.attestation IS NULL";

/// The newest marks record a store has read (or written), with the marks all the marks records
/// up to it prove (the highest of each version over them): read once, then recognised by the
/// newest one's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KnownMarks {
    /// The record's bytes (`None`: the ledger held no marks record).
    pub(super) record: Option<Vec<u8>>,
    /// The marks the records up to it prove (`None` with no record).
    pub(super) proven: Option<AcceptedVersions>,
    /// How many marks records the ledger held: with the newest one's position and bytes, what
    /// the one-statement claim compares — a record appended, moved or deleted since changes
    /// one of them, and sends the claim to the transactional path.
    pub(super) count: i64,
}

/// What the one-statement claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FastClaim {
    /// It decided: `true` when this claim inserted the row, `false` when the id was taken.
    Decided { inserted: bool },
    /// The state needs the transactional path (a raise, a refusal, or a record not yet known),
    /// or the batch failed before its commit for a reason not this claim's (see
    /// [`claim_fast`]); nothing was written.
    Undecided,
}

/// A claim waiting for the group commit (`group.rs`): everything the statement writes for it.
#[derive(Debug, Clone)]
pub(super) struct PendingClaim {
    pub(super) execution_id: ExecutionId,
    pub(super) record: ClaimRecord,
    pub(super) under: AcceptedVersions,
    /// With it, the row is completed in the batch's transaction if the claim wins.
    pub(super) attestation: Option<Vec<u8>>,
}

impl PendingClaim {
    fn bytes(&self) -> usize {
        self.record.attestation_inputs().len() + self.attestation.as_ref().map_or(0, Vec::len)
    }
}

impl Batchable for PendingClaim {
    /// A claim joins a batch made under the same versions that does not hold its id yet (the
    /// second claim of an id goes in a later batch, where the first has decided), while the
    /// batch's attestation bytes stay under their bound (the count is the group's own bound).
    fn joins(&self, batch: &[Self]) -> bool {
        batch.first().is_some_and(|first| first.under == self.under)
            && batch.iter().map(Self::bytes).sum::<usize>() + self.bytes() <= MAX_BATCH_BYTES
            && batch
                .iter()
                .all(|other| other.execution_id != self.execution_id)
    }
}

/// Whether the transactional path would decide `claim` without a raise or a refusal for a marks
/// row equal to its versions and the known record: only such a claim is made in one statement
/// (the clock is checked in SQL).
fn decidable(known: &KnownMarks, claim: &PendingClaim) -> bool {
    let assumed = GuardState {
        marks: claim.under,
        proven: known.proven,
        newest_claim: None,
    };
    matches!(assumed.claim(claim.under, claim.record.claimed_at()), Ok(raise) if !raise.changed)
}

/// Makes the claims that `known` shows can be decided in one statement, all in that one
/// statement, and says for each claim what it found: [`FastClaim::Undecided`] for a claim left to
/// the transactional path (nothing of it written). The statement takes the claims made under the
/// versions of the first decidable one, each id once, in id order: batches written by other
/// processes insert the ids they share in the same order, so they wait for each other rather
/// than deadlock. It decides all of them or none.
pub(super) fn claim_fast(
    connection: &mut Connection,
    known: &KnownMarks,
    claims: &[&PendingClaim],
) -> Result<Vec<FastClaim>, ReplayError> {
    let mut outcomes = vec![FastClaim::Undecided; claims.len()];
    let mut taken: Vec<usize> = (0..claims.len())
        .filter(|&i| decidable(known, claims[i]))
        .collect();
    let Some(under) = taken.first().map(|&i| claims[i].under) else {
        return Ok(outcomes);
    };
    taken.retain(|&i| claims[i].under == under);
    taken.sort_by(|&a, &b| {
        claims[a]
            .execution_id
            .as_str()
            .cmp(claims[b].execution_id.as_str())
    });
    // A repeated id stays undecided: the transactional path finds it taken (or takes it).
    taken.dedup_by(|a, b| claims[*a].execution_id == claims[*b].execution_id);
    let (Ok(trust_root), Ok(release_manifest)) = (
        encode_version(VersionKind::TrustRoot, under.trust_root),
        encode_version(VersionKind::ReleaseManifest, under.release_manifest),
    ) else {
        return Ok(outcomes);
    };
    // Where the known record says it was appended: the newest marks row must be there.
    let known_position: Option<i64> = match known.record.as_deref() {
        None => None,
        Some(record) => match crate::ledger::marks_record_position(record)
            .ok()
            .and_then(|position| i64::try_from(position).ok())
        {
            Some(position) => Some(position),
            None => return Ok(outcomes),
        },
    };
    // The latest newest claim time the clock check accepts for every claim of the batch (none
    // past the last timestamp).
    let latest_newest = taken
        .iter()
        .filter_map(|&i| {
            claims[i]
                .record
                .claimed_at()
                .unix_seconds()
                .checked_add(crate::CLOCK_TOLERANCE_SECONDS)
        })
        .min()
        .and_then(|seconds| parmana_canon::Timestamp::from_unix_seconds(seconds).ok())
        .map(|latest| latest.to_string());
    let ids: Vec<&str> = taken
        .iter()
        .map(|&i| claims[i].execution_id.as_str())
        .collect();
    let digests: Vec<String> = taken
        .iter()
        .map(|&i| claims[i].record.request_digest().to_string())
        .collect();
    let inputs: Vec<&[u8]> = taken
        .iter()
        .map(|&i| claims[i].record.attestation_inputs())
        .collect();
    let claimed_at: Vec<String> = taken
        .iter()
        .map(|&i| claims[i].record.claimed_at().to_string())
        .collect();
    // Preparing is the first use of a pooled connection that never ran this path: one lost
    // meanwhile (its server restarted, or ended the session) fails here, before anything of the
    // batch is sent, and each claim is then decided on its own, as below.
    if let Err(error) = connection.prepare() {
        return match BatchFailure::from(error) {
            BatchFailure::ConnectionLost => Ok(vec![FastClaim::Undecided; claims.len()]),
            BatchFailure::Waited(error) | BatchFailure::Other(error) => Err(error),
        };
    }
    let (client, statements) = connection.prepared()?;
    let params: [&(dyn postgres::types::ToSql + Sync); 10] = [
        &ids,
        &digests,
        &inputs,
        &claimed_at,
        &trust_root,
        &release_manifest,
        &known.record,
        &latest_newest,
        &known_position,
        &known.count,
    ];
    if taken.iter().all(|&i| claims[i].attestation.is_none()) {
        // Claims only: the one statement commits on its own.
        let rows = client
            .query(&statements.claim, &params)
            .map_err(map_error)?;
        decide_from(&rows, claims, &taken, &mut outcomes)?;
        return Ok(outcomes);
    }
    // Claims given their attestations: claimed, then the winners completed, in one transaction
    // — one commit, no claimed-not-completed state — and an attestation is sent only with a
    // claim that has won. Until the commit is sent nothing of the batch is written, so a
    // failure before it that says nothing of the claims themselves is not made theirs: each
    // claim of the batch is then decided on its own (`Undecided`). That is a connection that
    // was lost (a pooled one whose server restarted or ended its session: the pool hands it
    // out once, and it fails with the server's last word, or an I/O error), in a batch of any
    // size, and — in a batch of several — a lock waited on past `lock_timeout` or a deadlock,
    // which one id's row can cause (held by a transaction whose host was lost). Anything else,
    // and a lock in a batch of one, is answered as it is: a second wait would only double the
    // time to the same refusal. (A failure of the commit itself may have committed: it is
    // answered as it is.)
    let batch_of_several = taken.len() > 1;
    let failure = match client.transaction() {
        Ok(mut tx) => {
            match claim_and_complete(&mut tx, statements, &params, claims, &taken, &mut outcomes) {
                Ok(()) => {
                    tx.commit().map_err(map_error)?;
                    return Ok(outcomes);
                }
                // The transaction is dropped here: rolled back, or gone with its connection.
                Err(failure) => failure,
            }
        }
        Err(error) => BatchFailure::from(error),
    };
    // Whatever the error said, a connection that ended with it was lost.
    let lost = client.is_closed();
    match failure {
        BatchFailure::ConnectionLost => Ok(vec![FastClaim::Undecided; claims.len()]),
        _ if lost => Ok(vec![FastClaim::Undecided; claims.len()]),
        BatchFailure::Waited(_) if batch_of_several => Ok(vec![FastClaim::Undecided; claims.len()]),
        BatchFailure::Waited(error) | BatchFailure::Other(error) => Err(error),
    }
}

/// Why a batch's transaction failed before its commit was sent (nothing of it written).
enum BatchFailure {
    /// The connection died.
    ConnectionLost,
    /// A lock was waited on past `lock_timeout`, or the wait was a deadlock.
    Waited(ReplayError),
    /// Anything else.
    Other(ReplayError),
}

impl From<ReplayError> for BatchFailure {
    fn from(error: ReplayError) -> Self {
        Self::Other(error)
    }
}

impl From<postgres::Error> for BatchFailure {
    fn from(error: postgres::Error) -> Self {
        use postgres::error::SqlState;
        // Closed, an I/O error, or the server's last word before it ended the session (a
        // `FATAL`: a restart, `pg_terminate_backend`, an idle session's timeout).
        let io =
            std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
        let fatal = error
            .as_db_error()
            .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"));
        if error.is_closed() || io || fatal {
            Self::ConnectionLost
        } else if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
            || error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
        {
            Self::Waited(map_error(error))
        } else {
            Self::Other(map_error(error))
        }
    }
}

/// The batch's claims, then its winners' completions, inside `tx` (not committed here).
fn claim_and_complete(
    tx: &mut postgres::Transaction<'_>,
    statements: &Prepared,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    claims: &[&PendingClaim],
    taken: &[usize],
    outcomes: &mut [FastClaim],
) -> Result<(), BatchFailure> {
    let rows = tx.query(&statements.claim, params)?;
    decide_from(&rows, claims, taken, outcomes)?;
    let (won, attestations): (Vec<&str>, Vec<&[u8]>) = taken
        .iter()
        .filter(|&&i| outcomes[i] == FastClaim::Decided { inserted: true })
        .filter_map(|&i| {
            let attestation = claims[i].attestation.as_deref()?;
            Some((claims[i].execution_id.as_str(), attestation))
        })
        .unzip();
    if !won.is_empty() {
        let completed = tx.execute(&statements.complete_won, &[&won, &attestations])?;
        if usize::try_from(completed).ok() != Some(won.len()) {
            // Dropping the transaction rolls it back: nothing of the batch is written.
            return Err(BatchFailure::Other(ReplayError::unavailable(format!(
                "{completed} of the {} claims the batch won were completed in its transaction",
                won.len()
            ))));
        }
    }
    Ok(())
}

/// Reads what the claim statement found into `outcomes` (for the claims at `taken`): nothing
/// when it did not decide (no row: the marks row is missing; `false`: the state needs the
/// transactional path), else whether each claim inserted its row.
fn decide_from(
    rows: &[postgres::Row],
    claims: &[&PendingClaim],
    taken: &[usize],
    outcomes: &mut [FastClaim],
) -> Result<(), ReplayError> {
    let Some(row) = rows.first() else {
        return Ok(());
    };
    if !get::<bool>(row, 0)? {
        return Ok(());
    }
    let inserted: HashSet<String> = get::<Vec<String>>(row, 1)?.into_iter().collect();
    for &i in taken {
        outcomes[i] = FastClaim::Decided {
            inserted: inserted.contains(claims[i].execution_id.as_str()),
        };
    }
    Ok(())
}

/// Completes an execution with the prepared `UPDATE`: `true` when it updated the row (claimed,
/// not yet completed).
pub(super) fn complete_fast(
    connection: &mut Connection,
    execution_id: &ExecutionId,
    attestation: &[u8],
) -> Result<bool, ReplayError> {
    let (client, statements) = connection.prepared()?;
    let updated = client
        .execute(
            &statements.complete,
            &[&attestation, &execution_id.as_str()],
        )
        .map_err(map_error)?;
    Ok(updated == 1)
}

/// The statements of the hot path, prepared once per connection.
struct Prepared {
    claim: Statement,
    complete: Statement,
    complete_won: Statement,
}

/// A pooled connection: the client and, once first used, its prepared statements.
pub(super) struct Connection {
    client: Client,
    prepared: Option<Prepared>,
}

impl Connection {
    /// Prepares the statements, once: the server's error as it is.
    fn prepare(&mut self) -> Result<(), postgres::Error> {
        if self.prepared.is_none() {
            let claim = self.client.prepare(CLAIM)?;
            let complete = self.client.prepare(COMPLETE)?;
            let complete_won = self.client.prepare(COMPLETE_WON)?;
            self.prepared = Some(Prepared {
                claim,
                complete,
                complete_won,
            });
        }
        Ok(())
    }

    /// The client and its prepared statements (prepared on first use).
    fn prepared(&mut self) -> Result<(&mut Client, &Prepared), ReplayError> {
        self.prepare().map_err(map_error)?;
        match &self.prepared {
            Some(prepared) => Ok((&mut self.client, prepared)),
            None => Err(ReplayError::unavailable("the statements were not prepared")),
        }
    }
}

impl Deref for Connection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// `r2d2_postgres`'s manager, handing out [`Connection`]s, each once its session passed the
/// store's check (`postgres::check_session`).
pub(super) struct Manager {
    pub(super) connections: PostgresConnectionManager<MakeRustlsConnect>,
    /// The store's schema, which the session's `search_path` must name.
    pub(super) schema: String,
}

/// Why the pool could not open a connection: PostgreSQL's error, or a session that does not run
/// with the store's settings.
#[derive(Debug)]
pub(super) enum ConnectFailure {
    Postgres(postgres::Error),
    Session(String),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(error) => error.fmt(f),
            Self::Session(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConnectFailure {}

impl From<postgres::Error> for ConnectFailure {
    fn from(error: postgres::Error) -> Self {
        Self::Postgres(error)
    }
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectFailure;

    fn connect(&self) -> Result<Connection, ConnectFailure> {
        let mut client = self.connections.connect()?;
        if let Some(refused) = super::check_session(&mut client, &self.schema)? {
            return Err(ConnectFailure::Session(refused));
        }
        Ok(Connection {
            client,
            prepared: None,
        })
    }

    fn is_valid(&self, connection: &mut Connection) -> Result<(), ConnectFailure> {
        Ok(self.connections.is_valid(&mut connection.client)?)
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        self.connections.has_broken(&mut connection.client)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_canon::{Digest, Timestamp};

    use super::*;
    use crate::postgres::{PostgresOptions, PostgresReplayStore};
    use crate::{ClaimOutcome, ReplayStore};

    /// Which marks record a case offers as already decoded.
    #[derive(Debug, Clone, Copy)]
    enum Offered {
        /// The one the store remembers (the newest in the ledger).
        Remembered,
        /// Other bytes proving the same marks.
        OtherBytes,
        /// None (as if the ledger held no marks record).
        NoRecord,
    }

    /// A schema of its own on the test server (`{prefix}_{pid}`), dropped with this value;
    /// `None` without a server (`PARMANA_TEST_POSTGRES_URL` unset).
    struct TestSchema {
        url: String,
        options: PostgresOptions,
    }

    impl TestSchema {
        fn new(prefix: &str) -> Option<Self> {
            // As every PostgreSQL test: run under `CI=true` whatever the build script saw, so
            // a missing server fails there instead of passing.
            let url = match std::env::var("PARMANA_TEST_POSTGRES_URL") {
                Ok(url) if !url.is_empty() => url,
                _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                    "CI=true but PARMANA_TEST_POSTGRES_URL is not set: the PostgreSQL tests \
                     must run in CI (.ci/services starts a server and exports it)"
                ),
                _ => {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: PostgreSQL store test — set PARMANA_TEST_POSTGRES_URL"
                    );
                    return None;
                }
            };
            let options = PostgresOptions {
                schema: format!("{prefix}_{}", std::process::id()),
                ..PostgresOptions::default()
            };
            Some(Self { url, options })
        }

        /// A store on the schema (created on first connect).
        fn store(&self) -> PostgresReplayStore {
            PostgresReplayStore::connect(&self.url, &self.options).unwrap()
        }

        /// A plain connection, to look behind the store's back.
        fn raw(&self) -> postgres::Client {
            postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
        }

        /// `name` qualified with the schema.
        fn table(&self, name: &str) -> String {
            format!("{}.{name}", self.options.schema)
        }
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            let dropped = self.raw().batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.options.schema
            ));
            // A test that already failed must not panic again while unwinding.
            if !std::thread::panicking() {
                dropped.unwrap();
            }
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_795_000_000 + seconds).unwrap()
    }

    fn claim_at(when: Timestamp) -> ClaimRecord {
        ClaimRecord::new(Digest::of(b"request"), b"{}".to_vec(), when)
    }

    fn pending(
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: Option<&[u8]>,
    ) -> PendingClaim {
        PendingClaim {
            execution_id: id.clone(),
            record: record.clone(),
            under,
            attestation: attestation.map(<[u8]>::to_vec),
        }
    }

    /// One claim alone through the batch statement.
    fn claim_one(
        connection: &mut Connection,
        known: &KnownMarks,
        id: &ExecutionId,
        record: &ClaimRecord,
        under: AcceptedVersions,
        attestation: Option<&[u8]>,
    ) -> Result<FastClaim, ReplayError> {
        let claim = pending(id, record, under, attestation);
        let outcomes = claim_fast(connection, known, &[&claim])?;
        assert_eq!(outcomes.len(), 1);
        Ok(outcomes[0])
    }

    /// Two stores on one schema (two processes, as far as the server can tell), 8 threads each,
    /// claiming the same ids, each thread in an order of its own, so that batches written at the
    /// same time share ids: exactly one winner per id, and no error (a deadlock between two
    /// batches would be one: PostgreSQL aborts one of them; the batches insert in id order so
    /// that they wait for each other instead).
    #[test]
    #[cfg_attr(
        parmana_no_postgres,
        ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
    )]
    fn batches_of_two_stores_racing_on_the_same_ids_never_deadlock() {
        const IDS: usize = 400;
        const CHUNK: usize = 16;
        const THREADS: usize = 8;
        let Some(schema) = TestSchema::new("batches") else {
            return;
        };
        let stores: Vec<std::sync::Arc<PostgresReplayStore>> = (0..2)
            .map(|_| std::sync::Arc::new(schema.store()))
            .collect();
        let marks = AcceptedVersions::new(0, 0);
        let record = claim_at(at(0));
        // A first claim through each store decodes the marks: the rest go through the batches.
        for (i, store) in stores.iter().enumerate() {
            let warm = ExecutionId::parse(&format!("warm-{i}")).unwrap();
            assert_eq!(
                store.claim(&warm, &record, marks),
                Ok(ClaimOutcome::Claimed)
            );
        }
        let ids: std::sync::Arc<Vec<ExecutionId>> = std::sync::Arc::new(
            (0..IDS)
                .map(|i| ExecutionId::parse(&format!("race-{i:03}")).unwrap())
                .collect(),
        );
        let handles: Vec<_> = (0..2 * THREADS)
            .map(|thread| {
                let store = std::sync::Arc::clone(&stores[thread % 2]);
                let (ids, record) = (std::sync::Arc::clone(&ids), record.clone());
                std::thread::spawn(move || {
                    // The ids in chunks of `CHUNK`, each chunk in an order of this thread's own
                    // (a seeded shuffle): the threads go through the same fresh ids at about the
                    // same time, so batches of the two stores written at once hold shared,
                    // not yet committed ids in different orders.
                    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ (thread as u64 + 1);
                    let mut order: Vec<usize> = Vec::with_capacity(IDS);
                    for chunk in (0..IDS).collect::<Vec<_>>().chunks(CHUNK) {
                        let mut chunk = chunk.to_vec();
                        for i in (1..chunk.len()).rev() {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            chunk.swap(i, (state % (i as u64 + 1)) as usize);
                        }
                        order.extend(chunk);
                    }
                    let attestation = format!("thread-{thread}");
                    order
                        .into_iter()
                        .map(|i| {
                            let outcome = store
                                .claim_completed(&ids[i], &record, marks, attestation.as_bytes())
                                .unwrap();
                            (i, outcome == ClaimOutcome::Claimed)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut winners = vec![0_u32; IDS];
        for handle in handles {
            for (i, won) in handle.join().unwrap() {
                winners[i] += u32::from(won);
            }
        }
        assert!(winners.iter().all(|&w| w == 1), "{winners:?}");
    }

    /// An execution with its attestation stays in the table's own pages (schema 4) up to 8,160
    /// bytes; a larger one still goes to the TOAST table.
    #[test]
    #[cfg_attr(
        parmana_no_postgres,
        ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
    )]
    fn executions_stay_inline_up_to_the_toast_target() {
        let Some(schema) = TestSchema::new("inline") else {
            return;
        };
        let store = schema.store();
        let mut raw = schema.raw();
        let toast_size = |raw: &mut postgres::Client| -> i64 {
            raw.query_one(
                &format!(
                    "SELECT pg_relation_size(reltoastrelid) FROM pg_class
                     WHERE oid = '{}'::regclass",
                    schema.table("executions")
                ),
                &[],
            )
            .unwrap()
            .get(0)
        };
        let record = claim_at(at(0));
        for (id, bytes, toasted) in [("typical", 3_000, false), ("large", 9_000, true)] {
            // Bytes that do not compress, as a signature's base64 does not.
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            let attestation: Vec<u8> = (0..bytes)
                .map(|_| {
                    // xorshift64
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            let id = ExecutionId::parse(id).unwrap();
            assert_eq!(
                store.claim_completed(&id, &record, AcceptedVersions::new(0, 0), &attestation),
                Ok(ClaimOutcome::Claimed)
            );
            assert_eq!(toast_size(&mut raw) > 0, toasted, "{bytes} bytes");
        }
    }

    /// Each case in order against one store whose marks are (2, 1), its first claim at `at(0)`:
    /// whether the one statement decides, and what it decides. What it leaves undecided must
    /// insert nothing.
    #[test]
    #[cfg_attr(
        parmana_no_postgres,
        ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
    )]
    fn one_statement_decides_only_the_claims_under_the_marks_in_force() {
        let Some(schema) = TestSchema::new("hot") else {
            return;
        };
        let store = schema.store();
        let marks = AcceptedVersions::new(2, 1);
        store.accept_versions(2, 1).unwrap();
        let first = ExecutionId::parse("first").unwrap();
        assert_eq!(
            store.claim(&first, &claim_at(at(0)), marks),
            Ok(ClaimOutcome::Claimed)
        );
        let remembered = store.known.lock().unwrap().clone().unwrap();
        assert_eq!(remembered.proven, Some(marks));
        let tolerance = crate::CLOCK_TOLERANCE_SECONDS;
        let decided = |inserted| FastClaim::Decided { inserted };
        let cases: &[(&str, &str, AcceptedVersions, i64, Offered, FastClaim)] = &[
            (
                "under the marks",
                "a",
                marks,
                0,
                Offered::Remembered,
                decided(true),
            ),
            (
                "the same id again",
                "a",
                marks,
                0,
                Offered::Remembered,
                decided(false),
            ),
            (
                "a later clock",
                "b",
                marks,
                3_600,
                Offered::Remembered,
                decided(true),
            ),
            (
                "back by the tolerance",
                "c",
                marks,
                3_600 - tolerance,
                Offered::Remembered,
                decided(true),
            ),
            (
                "back by more",
                "d",
                marks,
                3_599 - tolerance,
                Offered::Remembered,
                FastClaim::Undecided,
            ),
            (
                "a raise",
                "e",
                AcceptedVersions::new(2, 2),
                3_600,
                Offered::Remembered,
                FastClaim::Undecided,
            ),
            (
                "a rollback",
                "f",
                AcceptedVersions::new(1, 1),
                3_600,
                Offered::Remembered,
                FastClaim::Undecided,
            ),
            (
                "another record",
                "g",
                marks,
                3_600,
                Offered::OtherBytes,
                FastClaim::Undecided,
            ),
            (
                "no record",
                "h",
                marks,
                3_600,
                Offered::NoRecord,
                FastClaim::Undecided,
            ),
        ];
        let mut connection = store.pool.checkout().unwrap();
        for (name, id, under, seconds, offered, expected) in cases {
            let known = match offered {
                Offered::Remembered => remembered.clone(),
                Offered::OtherBytes => KnownMarks {
                    record: Some(b"{}".to_vec()),
                    proven: Some(marks),
                    count: remembered.count,
                },
                Offered::NoRecord => KnownMarks {
                    record: None,
                    proven: None,
                    count: 0,
                },
            };
            let id = ExecutionId::parse(id).unwrap();
            let found = claim_one(
                &mut connection,
                &known,
                &id,
                &claim_at(at(*seconds)),
                *under,
                None,
            );
            assert_eq!(found, Ok(*expected), "{name}");
            if *expected == FastClaim::Undecided {
                assert_eq!(store.get(&id), Ok(crate::ExecutionState::Absent), "{name}");
            }
        }
        // With the attestation, the batch's transaction writes the row completed.
        assert!(store.completes_in_one_write());
        let signed = ExecutionId::parse("signed").unwrap();
        let record = claim_at(at(3_600));
        assert_eq!(
            claim_one(
                &mut connection,
                &remembered,
                &signed,
                &record,
                marks,
                Some(b"att")
            ),
            Ok(decided(true))
        );
        assert_eq!(
            store.get(&signed),
            Ok(crate::ExecutionState::Completed(
                crate::CompletedExecution::new(record.clone(), b"att".to_vec())
            ))
        );
        assert_eq!(
            claim_one(
                &mut connection,
                &remembered,
                &signed,
                &record,
                marks,
                Some(b"other")
            ),
            Ok(decided(false))
        );
        assert!(store.pending().unwrap().iter().all(|id| id != &signed));
        // A batch: each id decided on its own (new ids inserted, a taken one not, completed rows
        // where the attestation came along), a repeated id and a claim under other versions left
        // to the transactional path, nothing of them written.
        let id = |name: &str| ExecutionId::parse(name).unwrap();
        let late = claim_at(at(3_600));
        let batch = [
            pending(&id("batch-2"), &late, marks, Some(b"two")),
            pending(&id("a"), &late, marks, None),
            pending(&id("batch-1"), &late, marks, None),
            pending(&id("batch-2"), &late, marks, Some(b"again")),
            pending(&id("batch-raise"), &late, AcceptedVersions::new(2, 2), None),
        ];
        let claims: Vec<&PendingClaim> = batch.iter().collect();
        assert_eq!(
            claim_fast(&mut connection, &remembered, &claims),
            Ok(vec![
                decided(true),
                decided(false),
                decided(true),
                FastClaim::Undecided,
                FastClaim::Undecided,
            ])
        );
        assert_eq!(
            store.get(&id("batch-2")),
            Ok(crate::ExecutionState::Completed(
                crate::CompletedExecution::new(late.clone(), b"two".to_vec())
            ))
        );
        assert_eq!(
            store.get(&id("batch-1")),
            Ok(crate::ExecutionState::Claimed(late.clone()))
        );
        assert_eq!(
            store.get(&id("batch-raise")),
            Ok(crate::ExecutionState::Absent)
        );
        // The rows went in in id order (`batch-1` before `batch-2`, though given after it): the
        // order that keeps batches of different processes from deadlocking. In a table nothing
        // was deleted from, rows inserted later sit at later tuple ids.
        let mut raw = schema.raw();
        let inserted: Vec<String> = raw
            .query(
                &format!(
                    "SELECT id FROM {} WHERE id LIKE 'batch-%' ORDER BY ctid",
                    schema.table("executions")
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(inserted, ["batch-1", "batch-2"]);
        // One claim the clock check refuses leaves the whole batch undecided: none is written.
        let early = claim_at(at(3_599 - tolerance));
        let batch = [
            pending(&id("batch-3"), &late, marks, None),
            pending(&id("batch-early"), &early, marks, None),
        ];
        let claims: Vec<&PendingClaim> = batch.iter().collect();
        assert_eq!(
            claim_fast(&mut connection, &remembered, &claims),
            Ok(vec![FastClaim::Undecided, FastClaim::Undecided])
        );
        for name in ["batch-3", "batch-early"] {
            assert_eq!(
                store.get(&id(name)),
                Ok(crate::ExecutionState::Absent),
                "{name}"
            );
        }
        // The newest claim time in another spelling (sorting before the bound) is left to the
        // transactional path, which reports it.
        raw.execute(
            &format!(
                "UPDATE {} SET claimed_at = claimed_at || ' ' WHERE id = 'b'",
                schema.table("executions")
            ),
            &[],
        )
        .unwrap();
        let late = ExecutionId::parse("late").unwrap();
        let record = claim_at(at(3_600));
        assert_eq!(
            claim_one(&mut connection, &remembered, &late, &record, marks, None),
            Ok(FastClaim::Undecided)
        );
        drop(connection);
        assert!(matches!(
            store.claim(&late, &record, marks),
            Err(ReplayError::Corrupt { .. })
        ));
    }
}
