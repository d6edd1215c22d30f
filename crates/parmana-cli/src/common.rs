//! Arguments and helpers shared by several commands: the repository layout flags, the clock, and reading inputs.

use std::io::Read;
use std::path::{Path, PathBuf};

use parmana_canon::{Timestamp, parse_strict};
use parmana_runtime::{Clock, FixedClock, RuntimeEnvironmentConfig, SystemClock};
use parmana_trust::LocalSigningKey;
use serde_json::Value;

use crate::exit::ExitClass;
use crate::report::Failure;

/// The pinned root key and the trust root, defaulting to the repository layout.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustRootArgs {
    /// The pinned root public key (SPKI PEM), the out-of-band anchor of the trust chain.
    #[arg(long, value_name = "FILE", default_value = "trust/root.pub")]
    pub root_key: PathBuf,
    /// The current trust root; its older versions are read from `trust-root.d/<N>.json` beside it.
    #[arg(long, value_name = "FILE", default_value = "trust/trust-root.json")]
    pub trust_root: PathBuf,
}

/// Everything an execution is verified against, defaulting to the repository layout.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvironmentArgs {
    #[command(flatten)]
    pub trust: TrustRootArgs,
    /// The directory holding the signed policy bundles, `<policy_id>/<version>/`.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
    /// The signed release manifest listing every policy bundle allowed to run.
    #[arg(long, value_name = "FILE", default_value = "release-manifest.json")]
    pub release_manifest: PathBuf,
}

impl EnvironmentArgs {
    /// The runtime's configuration for these paths.
    pub fn config(&self) -> RuntimeEnvironmentConfig {
        RuntimeEnvironmentConfig {
            policies_root: self.policies.clone(),
            root_public_key: self.trust.root_key.clone(),
            trust_root: self.trust.trust_root.clone(),
            release_manifest: self.release_manifest.clone(),
        }
    }
}

/// The clock: the system clock, or a fixed instant for reproducible runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ClockArgs {
    /// Use this instant instead of the system clock, for reproducible runs and for checking
    /// expiry at another time. RFC 3339 in UTC, for example `2026-11-28T21:00:00Z`.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub now: Option<Timestamp>,
}

impl ClockArgs {
    /// The clock to execute with.
    pub fn clock(&self) -> Box<dyn Clock> {
        match self.now {
            Some(now) => Box::new(FixedClock(now)),
            None => Box::new(SystemClock),
        }
    }

    /// The clock's reading now.
    pub fn now(&self) -> Timestamp {
        self.clock().now()
    }
}

/// Parses an RFC 3339 UTC instant (`YYYY-MM-DDTHH:MM:SSZ`) for clap.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| format!("{e} (expected for example 2026-11-28T21:00:00Z)"))
}

/// Reads a file, or standard input for `-`.
pub fn read_file_or_stdin(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::io("standard input", &e))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// The bytes of a `JSON|FILE` argument: inline JSON when it starts with `{` or `[`, otherwise
/// the file it names (`-` for standard input).
pub fn inline_json_or_file(argument: &str) -> Result<Vec<u8>, Failure> {
    let trimmed = argument.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Ok(argument.as_bytes().to_vec())
    } else {
        read_file_or_stdin(Path::new(argument))
    }
}

/// Parses `JSON|FILE` signals strictly (duplicate keys and unsafe numbers are refused).
pub fn read_signals(argument: &str) -> Result<Value, Failure> {
    let bytes = inline_json_or_file(argument)?;
    parse_strict(&bytes).map_err(|e| Failure::canon("signals", &e))
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private_key(path: &Path) -> Result<LocalSigningKey, Failure> {
    LocalSigningKey::read_pem_file(path).map_err(|e| {
        let mut failure = Failure::trust(&e);
        failure.message = format!("{}: {}", path.display(), failure.message);
        failure
    })
}

/// Splits `ID@VERSION`.
pub fn split_policy_reference(reference: &str) -> Result<(String, String), Failure> {
    match reference.split_once('@') {
        Some((id, version)) if !id.is_empty() && !version.is_empty() => {
            Ok((id.to_owned(), version.to_owned()))
        }
        _ => Err(Failure::new(
            "cli.invalid_policy_reference",
            format!("{reference:?} is not ID@VERSION (for example claims-approval@1.0.0)"),
            ExitClass::InvalidInput,
        )),
    }
}

/// Writes a file, reporting failure as an IO error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(path).map_err(|e| Failure::io(&path.display().to_string(), &e))
}
