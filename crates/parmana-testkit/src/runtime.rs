//! The `runtime` feature: fixture environments loaded through the runtime, the fixed clock, the fixture keys and temporary stores.

use std::io;

use parmana_canon::Timestamp;
use parmana_runtime::replay::{MemoryReplayStore, SqliteReplayStore};
use parmana_runtime::trust::{LocalSigningKey, TrustError};
use parmana_runtime::{ExecutionError, FixedClock, RuntimeEnvironment, RuntimeEnvironmentConfig};

use crate::{FixtureEnvironment, now};

/// A clock reading [`NOW`](crate::NOW).
pub fn fixed_clock() -> FixedClock {
    FixedClock(now())
}

impl FixtureEnvironment {
    /// The standard layout under [`root`](Self::root).
    pub fn config(&self) -> RuntimeEnvironmentConfig {
        RuntimeEnvironmentConfig::standard_layout(self.root())
    }

    /// Loads the environment at [`NOW`](crate::NOW).
    pub fn load(&self) -> Result<RuntimeEnvironment, ExecutionError> {
        self.load_at(now())
    }

    /// Loads the environment at `at`.
    pub fn load_at(&self, at: Timestamp) -> Result<RuntimeEnvironment, ExecutionError> {
        RuntimeEnvironment::load(&self.config(), at)
    }

    /// The TEST-ONLY fixture key `name` (`root-1`, `root-2`, `policy`, `release`, `attestation`).
    pub fn key(&self, name: &str) -> Result<LocalSigningKey, TrustError> {
        LocalSigningKey::read_pem_file(&self.key_path(name))
    }

    /// The TEST-ONLY attestation signing key of the fixtures.
    pub fn attestation_signer(&self) -> Result<LocalSigningKey, TrustError> {
        self.key("attestation")
    }
}

/// A SQLite replay store in its own temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempSqliteStore {
    /// The directory holding `store.sqlite`.
    pub dir: tempfile::TempDir,
    /// The open store.
    pub store: SqliteReplayStore,
}

impl TempSqliteStore {
    /// Opens a fresh store at `store.sqlite` in a new temporary directory.
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = SqliteReplayStore::open(dir.path().join("store.sqlite"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { dir, store })
    }
}

/// A fresh in-memory replay store.
pub fn memory_store() -> MemoryReplayStore {
    MemoryReplayStore::new()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use parmana_runtime::replay::ReplayStore;

    use super::*;

    #[test]
    fn a_fixture_environment_loads_with_its_keys() {
        let fixture = FixtureEnvironment::new().unwrap();
        fixture.load().unwrap();
        fixture.load_at(crate::now_plus_hour()).unwrap();
        fixture.attestation_signer().unwrap();
        assert_eq!(fixed_clock().0, now());
    }

    #[test]
    fn temporary_stores_start_empty() {
        let sqlite = TempSqliteStore::new().unwrap();
        assert!(sqlite.dir.path().join("store.sqlite").is_file());
        assert!(sqlite.store.ledger_snapshot().unwrap().rows.is_empty());
        assert!(memory_store().ledger_snapshot().unwrap().rows.is_empty());
    }
}
