//! The replay stores' integration tests, one test binary (one link) with a module per concern: the conformance suite on every backend, error codes, PostgreSQL connections, several OS processes on one store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

mod conformance;
mod identifiers_and_errors;
mod migration;
mod postgres_connections;
mod processes;
