//! Shared helpers for the runtime's integration tests: a temp copy of the fixture environment (from `parmana-testkit`), keys, a clock.

#![allow(dead_code)]

use std::path::Path;

use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{RuntimeEnvironment, RuntimeEnvironmentConfig};
use parmana_testkit::FixtureEnvironment;

pub(crate) use parmana_testkit::fixed_clock as clock;

/// A private copy of `policies/`, `trust/` and `release-manifest.json`, safe to tamper with.
pub(crate) struct Fixture(FixtureEnvironment);

impl Fixture {
    pub(crate) fn new() -> Self {
        Self(FixtureEnvironment::new().unwrap())
    }

    pub(crate) fn root(&self) -> &Path {
        self.0.root()
    }

    pub(crate) fn config(&self) -> RuntimeEnvironmentConfig {
        self.0.config()
    }

    pub(crate) fn environment(&self) -> RuntimeEnvironment {
        self.0.load().unwrap()
    }

    pub(crate) fn key(&self, name: &str) -> LocalSigningKey {
        self.0.key(name).unwrap()
    }

    /// Rotates the trust root to the next version with `attestation` as that role (expiring
    /// with the fixtures, 2036-01-01).
    pub(crate) fn rotate(&self, attestation: &[&LocalSigningKey], threshold: u64) {
        let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
        self.0
            .rotate_trust_root(attestation, threshold, expires)
            .unwrap();
    }
}

impl Fixture {
    /// Rotates the trust root to the next version with `attestation` as that role and `log` as
    /// its transparency log (expiring with the fixtures, 2036-01-01).
    pub(crate) fn rotate_with_log(
        &self,
        attestation: &LocalSigningKey,
        log: parmana_runtime::trust::LogSpec,
    ) {
        let expires = parmana_runtime::canon::Timestamp::parse("2036-01-01T00:00:00Z").unwrap();
        self.0
            .rotate_with(&[attestation], 1, expires, Some(log))
            .unwrap();
    }
}

/// The URL of the PostgreSQL server for tests: `None` (after saying so) when
/// `PARMANA_TEST_POSTGRES_URL` is unset outside CI; under `CI=true` a missing URL fails the test.
pub(crate) fn postgres_url() -> Option<String> {
    const VAR: &str = "PARMANA_TEST_POSTGRES_URL";
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but {VAR} is not set: the PostgreSQL tests must run in CI \
             (.ci/services starts a server and exports it)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: PostgreSQL runtime test — set {VAR}=postgres://… \
                 (for example by `source .ci/services`) to run it"
            );
            None
        }
    }
}

/// A PostgreSQL store in a schema of its own, on the test server.
pub(crate) fn postgres_store(url: &str, prefix: &str) -> parmana_replay::PostgresReplayStore {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let options = parmana_replay::PostgresOptions {
        schema: format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        ..parmana_replay::PostgresOptions::default()
    };
    parmana_replay::PostgresReplayStore::connect(url, &options).unwrap()
}

/// The `ReplayStore` methods a test's wrapper store forwards unchanged to `self.$inner`: reads,
/// marks, the ledger and the sequencer (`@all_but_ledger_reads`: all but `ledger_snapshot` and `ledger_rows`). Each wrapper writes out only the writes it observes or
/// breaks (`claim`, `complete`, `claim_completed`). Not every test binary has a wrapper.
#[allow(unused_macros)]
macro_rules! forward_store_reads {
    ($inner:tt) => {
        $crate::common::forward_store_reads!(@all_but_ledger_reads $inner);
        fn ledger_snapshot(
            &self,
        ) -> Result<::parmana_runtime::replay::LedgerSnapshot, ::parmana_runtime::replay::ReplayError>
        {
            self.$inner.ledger_snapshot()
        }
        fn ledger_rows(
            &self,
            from: u64,
            max: usize,
        ) -> Result<Vec<::parmana_runtime::replay::LedgerRow>, ::parmana_runtime::replay::ReplayError>
        {
            self.$inner.ledger_rows(from, max)
        }
    };
    // For a wrapper that observes or changes what the ledger reads return.
    (@all_but_ledger_reads $inner:tt) => {
        fn get(
            &self,
            id: &::parmana_runtime::canon::ExecutionId,
        ) -> Result<::parmana_runtime::replay::ExecutionState, ::parmana_runtime::replay::ReplayError>
        {
            self.$inner.get(id)
        }
        fn pending(
            &self,
        ) -> Result<Vec<::parmana_runtime::canon::ExecutionId>, ::parmana_runtime::replay::ReplayError>
        {
            self.$inner.pending()
        }
        fn accepted_versions(
            &self,
        ) -> Result<
            ::parmana_runtime::replay::AcceptedVersions,
            ::parmana_runtime::replay::ReplayError,
        > {
            self.$inner.accepted_versions()
        }
        fn accept_versions(
            &self,
            trust_root: u64,
            release_manifest: u64,
        ) -> Result<
            ::parmana_runtime::replay::AcceptedVersions,
            ::parmana_runtime::replay::ReplayError,
        > {
            self.$inner.accept_versions(trust_root, release_manifest)
        }
        fn sequence(
            &self,
            max: usize,
        ) -> Result<
            ::parmana_runtime::replay::SequenceOutcome,
            ::parmana_runtime::replay::ReplayError,
        > {
            self.$inner.sequence(max)
        }
        fn store_checkpoint(
            &self,
            checkpoint: &::parmana_runtime::replay::StoredCheckpoint,
        ) -> Result<(), ::parmana_runtime::replay::ReplayError> {
            self.$inner.store_checkpoint(checkpoint)
        }
        fn latest_checkpoint(
            &self,
        ) -> Result<
            Option<::parmana_runtime::replay::StoredCheckpoint>,
            ::parmana_runtime::replay::ReplayError,
        > {
            self.$inner.latest_checkpoint()
        }
    };
}
#[allow(unused_imports)]
pub(crate) use forward_store_reads;

/// The writes `claim` and `complete`, forwarded unchanged to `self.$inner`: for a wrapper that
/// observes or changes only what the store reads back.
#[allow(unused_macros)]
macro_rules! forward_store_writes {
    ($inner:tt) => {
        fn claim(
            &self,
            id: &::parmana_runtime::canon::ExecutionId,
            record: &::parmana_runtime::replay::ClaimRecord,
            under: ::parmana_runtime::replay::AcceptedVersions,
        ) -> Result<::parmana_runtime::replay::ClaimOutcome, ::parmana_runtime::replay::ReplayError>
        {
            self.$inner.claim(id, record, under)
        }
        fn complete(
            &self,
            id: &::parmana_runtime::canon::ExecutionId,
            attestation: &[u8],
        ) -> Result<(), ::parmana_runtime::replay::ReplayError> {
            self.$inner.complete(id, attestation)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use forward_store_writes;
