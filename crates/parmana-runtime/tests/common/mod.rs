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
