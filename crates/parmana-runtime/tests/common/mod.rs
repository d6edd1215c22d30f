//! Shared helpers for the runtime's integration tests: a temp copy of the fixture environment, keys, a clock.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use parmana_runtime::canon::Timestamp;
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{FixedClock, RuntimeEnvironment, RuntimeEnvironmentConfig};

/// The repository root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixed clock every test uses unless it tests time.
pub fn clock() -> FixedClock {
    FixedClock(Timestamp::parse("2026-11-28T21:00:00Z").unwrap())
}

/// A private copy of `policies/`, `trust/` and `release-manifest.json`, safe to tamper with.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository();
        copy_dir(&repo.join("policies"), &dir.path().join("policies"));
        copy_dir(&repo.join("trust"), &dir.path().join("trust"));
        std::fs::copy(
            repo.join("release-manifest.json"),
            dir.path().join("release-manifest.json"),
        )
        .unwrap();
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> RuntimeEnvironmentConfig {
        RuntimeEnvironmentConfig::standard_layout(self.root())
    }

    pub fn environment(&self) -> RuntimeEnvironment {
        RuntimeEnvironment::load(&self.config(), clock().0).unwrap()
    }

    pub fn key(&self, name: &str) -> LocalSigningKey {
        LocalSigningKey::read_pem_file(&self.root().join("trust/keys").join(format!("{name}.pem")))
            .unwrap()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
