//! The replay stores' integration tests, one test binary (one link) with a module per concern: the conformance suite on every backend, error codes, PostgreSQL connections, several OS processes on one store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

mod conformance;
mod identifiers_and_errors;
// Its tests are all of the SQL backends' (no schema to migrate in memory).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migration;
mod postgres_connections;
mod processes;
#[cfg(feature = "sqlite")]
mod sqlite_writer;
