//! `parmana-testkit`: shared test support — the repository root, the fixed instants the tests execute at, a seeded random source, temporary fixture environments and temporary stores.
//!
//! A dev-dependency only (`cargo xtask tidy` refuses it anywhere else). The generic parts
//! need nothing above `parmana-canon`, so every layer's tests may use them; the parts that
//! load an environment or open a store sit behind the `runtime` feature.

use std::io;
use std::path::{Path, PathBuf};

use parmana_canon::Timestamp;

#[cfg(feature = "runtime")]
mod forward;
#[cfg(feature = "runtime")]
mod runtime;
/// The runtime, for the paths the forwarding macros expand to in the crate that uses them.
#[cfg(feature = "runtime")]
#[doc(hidden)]
pub use parmana_runtime as __runtime;
#[cfg(feature = "runtime")]
pub use runtime::{
    CrashBeforeComplete, CutLedger, FIXTURE_LOG_ORIGIN, TempSqliteStore, append_sequenced,
    fixed_clock, memory_store, re_signed_attestation, signed_attestation,
};

/// The instant most tests execute at (the fixtures expire in 2036).
pub const NOW: &str = "2026-11-28T21:00:00Z";

/// The instant the reliability tests execute at, an hour after [`NOW`].
pub const NOW_PLUS_HOUR: &str = "2026-11-28T22:00:00Z";

/// [`NOW`] as a timestamp.
pub fn now() -> Timestamp {
    Timestamp::from_unix_seconds_saturating(1_795_899_600)
}

/// [`NOW_PLUS_HOUR`] as a timestamp.
pub fn now_plus_hour() -> Timestamp {
    Timestamp::from_unix_seconds_saturating(1_795_903_200)
}

/// The repository root (two levels above this crate's manifest).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The legacy bundles of the original tooling, vendored under `vectors/`.
pub fn legacy_bundles() -> PathBuf {
    repository_root().join("vectors/legacy-bundles")
}

/// The bundles signed by the JavaScript re-enactment of the original tooling, under `vectors/`.
pub fn legacy_js_bundles() -> PathBuf {
    repository_root().join("vectors/legacy-js")
}

/// Copies the directory tree `from` to `to`, creating `to`.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The arguments of `parmana release sign` in a deployment laid out as the fixtures are: its
/// release key `trust/keys/release.pem`, every bundle under `policies/`, manifest `version`
/// expiring at `expires`, written to `release-manifest.json`. Callers add flags (`--force`,
/// `--now`).
pub fn release_sign_args<'a>(version: &'a str, expires: &'a str) -> [&'a str; 12] {
    [
        "release",
        "sign",
        "--key",
        "trust/keys/release.pem",
        "--policies-root",
        "policies",
        "--version",
        version,
        "--expires",
        expires,
        "--out",
        "release-manifest.json",
    ]
}

/// An AuthZEN policy over dotted signal names (`documents-access@1.0.0`): anyone may read,
/// editors may edit, the rest is denied; `allow` and `deny`, undeclared signals ignored.
pub const DOCUMENTS_ACCESS_POLICY: &str = include_str!("../fixtures/documents-access.json");

/// Copies the repository's environment — `policies/`, `trust/`, `release-manifest.json` and the
/// deployment configuration `parmana.toml` (which names the store `.parmana/replay.sqlite3`
/// beside it) — into `destination`.
pub fn copy_fixture_environment(destination: &Path) -> io::Result<()> {
    let root = repository_root();
    copy_tree(&root.join("policies"), &destination.join("policies"))?;
    copy_tree(&root.join("trust"), &destination.join("trust"))?;
    std::fs::copy(
        root.join("release-manifest.json"),
        destination.join("release-manifest.json"),
    )?;
    std::fs::copy(root.join("parmana.toml"), destination.join("parmana.toml"))?;
    Ok(())
}

/// A private copy of the fixture environment in a temporary directory, safe to tamper with
/// and removed on drop.
#[derive(Debug)]
pub struct FixtureEnvironment {
    dir: tempfile::TempDir,
}

impl FixtureEnvironment {
    /// Copies the fixtures into a new temporary directory.
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        copy_fixture_environment(dir.path())?;
        Ok(Self { dir })
    }

    /// The directory holding `policies/`, `trust/` and `release-manifest.json`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The path of the TEST-ONLY fixture key `name` (`root-1`, `policy`, `attestation`, …).
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.root()
            .join("trust")
            .join("keys")
            .join(format!("{name}.pem"))
    }
}

/// A small deterministic random source (SplitMix64): seeded kill moments and sampling.
#[derive(Debug, Clone)]
pub struct SeededRandom(u64);

impl SeededRandom {
    /// A source starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn instants_match_their_spelling() {
        assert_eq!(now(), Timestamp::parse(NOW).unwrap());
        assert_eq!(now_plus_hour(), Timestamp::parse(NOW_PLUS_HOUR).unwrap());
    }

    #[test]
    fn fixture_environment_holds_the_repository_layout() {
        let fixture = FixtureEnvironment::new().unwrap();
        assert!(fixture.root().join("release-manifest.json").is_file());
        assert!(fixture.key_path("attestation").is_file());
        assert_eq!(
            files_under(&fixture.root().join("trust")).unwrap().len(),
            files_under(&repository_root().join("trust")).unwrap().len()
        );
    }

    #[test]
    fn seeded_random_is_reproducible() {
        let (mut a, mut b) = (SeededRandom::new(7), SeededRandom::new(7));
        let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_eq!(SeededRandom::new(1).below(0), 0);
        assert!(SeededRandom::new(1).below(10) < 10);
    }
}
