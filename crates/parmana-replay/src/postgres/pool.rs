//! The PostgreSQL store's connection pool, and how PostgreSQL's failures become a `ReplayError` with the code that says whether a retry helps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::Row;
use postgres::error::SqlState;

use super::hot::Manager;
use super::tls;
use crate::ReplayError;

/// Reads column `index`; a value of the wrong type means the table was changed behind our back.
pub(super) fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, ReplayError> {
    row.try_get(index).map_err(map_corrupt)
}

pub(super) fn map_corrupt(error: postgres::Error) -> ReplayError {
    ReplayError::corrupt(describe(&error))
}

/// The error with its causes: `postgres::Error`'s own text is only the kind ("db error",
/// "error performing TLS handshake"); the server's or the TLS layer's reason is in its source.
fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Sorts PostgreSQL failures into "the data is bad" and "the store cannot be used right now".
pub(super) fn map_error(error: postgres::Error) -> ReplayError {
    match error.code() {
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            ReplayError::corrupt(describe(&error))
        }
        // The store's own statements never meet these on a store it made: a row standing where
        // it writes (its inserts of claims go by `ON CONFLICT`, a ledger position is taken
        // under locks), or a table, column or function of its schema gone. Someone changed
        // the store: no retry mends it.
        // And a migration meeting what it makes (a table, column or index already there): the
        // version row says less than the schema holds — lowered behind the store, or dropped
        // with the tables left (a migration runs once, under a lock, at the version it reads).
        Some(code)
            if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::DUPLICATE_TABLE
                || *code == SqlState::DUPLICATE_COLUMN
                || *code == SqlState::DUPLICATE_OBJECT
                || *code == SqlState::UNDEFINED_TABLE
                || *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::UNDEFINED_FUNCTION =>
        {
            ReplayError::corrupt(describe(&error))
        }
        // The role the URL names may not do what the store does (a grant missing): its
        // configuration, not a passing failure.
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
            ReplayError::InvalidConfiguration {
                message: describe(&error),
            }
        }
        // A write in a read-only transaction: the role's or database's transactions are
        // read-only by default (`default_transaction_read_only`), or the server is a standby.
        // Retrying meets it again: its configuration, as SQLite's read-only file is.
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
            ReplayError::InvalidConfiguration {
                message: format!(
                    "{}: a store that executes, recovers or sequences needs a session that may \
                     write (a primary, with default_transaction_read_only off for its role and \
                     database)",
                    describe(&error)
                ),
            }
        }
        _ => ReplayError::unavailable(describe(&error)),
    }
}

/// Connection failures: TLS refusing to go ahead is its own error, anything else means the
/// store cannot be used right now.
pub(super) fn map_connect_error(error: postgres::Error) -> ReplayError {
    if tls::is_tls_refusal(&error) {
        ReplayError::TlsRefused {
            message: describe(&error),
        }
    } else {
        map_error(error)
    }
}

/// The pool of connections (at most `size`, opened on demand, dropped when broken).
pub(super) struct Pool {
    pub(super) pool: r2d2::Pool<Manager>,
    pub(super) schema: String,
    pub(super) size: usize,
    pub(super) tls_mode: tls::TlsMode,
    pub(super) wait: Duration,
    /// Why the pool's last attempt to open a connection failed (cleared by a success), so that
    /// a checkout that times out says why, and reports a TLS refusal, or a configuration refused
    /// (`replay.invalid_configuration`), with its own code.
    pub(super) last_failure: Arc<Mutex<Option<ReplayError>>>,
}

impl Pool {
    /// A connection, waiting at most `connect_timeout` for one.
    pub(super) fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>, ReplayError> {
        self.pool.get().map_err(|_timeout| {
            let last = self
                .last_failure
                .lock()
                .ok()
                .and_then(|mut last| last.take());
            match last {
                // A refusal no wait mends (TLS, a session without the store's settings) keeps
                // its code.
                Some(
                    refusal @ (ReplayError::TlsRefused { .. }
                    | ReplayError::InvalidConfiguration { .. }),
                ) => refusal,
                Some(failure) => ReplayError::unavailable(format!(
                    "no PostgreSQL connection within {:?}; the last attempt failed: {failure}",
                    self.wait
                )),
                None => ReplayError::unavailable(format!(
                    "no PostgreSQL connection within {:?} (all {} in use)",
                    self.wait, self.size
                )),
            }
        })
    }
}

/// r2d2's error and event handler: remembers why the last connection attempt failed, for
/// [`Pool::checkout`], and forgets it once a connection is made.
#[derive(Debug)]
pub(super) struct RecordFailures {
    pub(super) last: Arc<Mutex<Option<ReplayError>>>,
}

impl r2d2::HandleError<super::hot::ConnectFailure> for RecordFailures {
    fn handle_error(&self, error: super::hot::ConnectFailure) {
        let failure = match error {
            super::hot::ConnectFailure::Postgres(error) => map_connect_error(error),
            super::hot::ConnectFailure::Session(message) => {
                ReplayError::InvalidConfiguration { message }
            }
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(failure);
        }
    }
}

impl r2d2::HandleEvent for RecordFailures {
    fn handle_acquire(&self, _event: r2d2::event::AcquireEvent) {
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }
}
