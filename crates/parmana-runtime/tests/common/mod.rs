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

/// The forwarding macros of the wrapper stores (`parmana_testkit`): not every test binary has a
/// wrapper.
#[allow(unused_imports)]
pub(crate) use parmana_testkit::{forward_store_reads, forward_store_writes};

/// A runtime of `fixture`'s environment over `store`, signing with its attestation key, at the
/// fixed clock.
pub(crate) fn runtime_over(
    fixture: &Fixture,
    store: std::sync::Arc<dyn parmana_runtime::replay::ReplayStore>,
) -> parmana_runtime::Runtime {
    parmana_runtime::Runtime::builder(fixture.config())
        .signer(fixture.key("attestation"))
        .shared_store(store)
        .clock(clock())
        .build()
        .unwrap()
}

/// A memory store that says it writes an execution once (as PostgreSQL does), keeping every
/// claim handed to its `claim_completed` with its id — as a writer of such a store captures them
/// (a trigger on `executions`, statement logging): a replay's included, which reach the store
/// before it decides.
#[derive(Debug, Default)]
pub(crate) struct OneWriteMemory {
    pub(crate) inner: parmana_runtime::replay::MemoryReplayStore,
    pub(crate) handed: std::sync::Mutex<Vec<(String, parmana_runtime::replay::ClaimRecord)>>,
}

impl OneWriteMemory {
    /// The ids handed to `claim_completed`, in order.
    pub(crate) fn ids(&self) -> Vec<String> {
        let handed = self
            .handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        handed.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The claim records handed to `claim_completed`, in order.
    pub(crate) fn records(&self) -> Vec<parmana_runtime::replay::ClaimRecord> {
        let handed = self
            .handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        handed.iter().map(|(_, record)| record.clone()).collect()
    }
}

impl parmana_runtime::replay::ReplayStore for OneWriteMemory {
    forward_store_writes!(inner: claim);
    forward_store_writes!(inner: complete);
    fn completes_in_one_write(&self) -> bool {
        true
    }
    fn claim_completed(
        &self,
        id: &parmana_runtime::canon::ExecutionId,
        record: &parmana_runtime::replay::ClaimRecord,
        under: parmana_runtime::replay::AcceptedVersions,
        attestation: &[u8],
    ) -> Result<parmana_runtime::replay::ClaimOutcome, parmana_runtime::replay::ReplayError> {
        use parmana_runtime::replay::ClaimOutcome;
        self.handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((id.as_str().to_owned(), record.clone()));
        let outcome = self.inner.claim(id, record, under)?;
        if outcome == ClaimOutcome::Claimed {
            self.inner.complete(id, attestation)?;
        }
        Ok(outcome)
    }
    forward_store_reads!(inner);
}
