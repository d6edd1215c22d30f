//! End-to-end tests of `parmana serve`: the real binary on a loopback port, a real HTTP client (`ureq`), every response body checked against the server's own `/openapi.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accept_serve;
mod attestations_serve;
mod authzen_certification_serve;
mod authzen_client_serve;
mod authzen_limits_serve;
mod authzen_serve;
mod go_tlog_serve;
mod harness;
mod lifecycle_serve;
mod limits_serve;
mod log_serve;
mod native_serve;
mod overload_serve;
mod postgres_serve;
mod signals_serve;
mod tls_serve;
mod witness_rounds_serve;
mod witness_serve;
