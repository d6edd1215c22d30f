//! The reliability suite, one test binary (one link) with a module per concern: crash safety, store faults, races (both with the transparency log checked during the run), tamper, rollback, the bad-request corpus, limits and the property tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod corpus;
mod crash;
mod faults;
mod limits;
mod log_checks;
mod properties;
mod races;
mod rollback;
mod tamper;
