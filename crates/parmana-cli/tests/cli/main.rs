//! The `parmana` binary's tests, one test binary (one link) with a module per command group: authoring (and its refusals), bounded inputs, canon, config, execute, help, init, the transparency log, policy, PostgreSQL, recover, key revocation, the store outside the trust boundary, verify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod common;

mod authoring_checks_cli;
mod authoring_cli;
#[cfg(target_os = "linux")]
mod bounded_cli;
mod bundle_sign_cli;
mod canon_cli;
mod config_cli;
mod docs_cli;
mod execute_cli;
mod help_cli;
mod init_cli;
mod ledger_cli;
mod log_cli;
mod policy_cli;
mod postgres_cli;
#[cfg(target_os = "linux")]
mod read_only_cli;
mod recover_cli;
mod revoke_cli;
mod schema_cli;
mod store_boundary_cli;
mod verify_cli;
mod verify_release_cli;
