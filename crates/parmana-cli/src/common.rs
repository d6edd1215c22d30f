//! Arguments and helpers shared by several commands: the repository layout flags, the clock, and reading inputs.

use std::io::Read;
use std::path::{Path, PathBuf};

use parmana_runtime::canon::{PolicyRef, Timestamp, parse_strict};
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{
    Clock, ExecutionError, FixedClock, MAX_SIGNALS_JSON_BYTES, Runtime, RuntimeEnvironmentConfig,
    StoreOpen, SystemClock, parse_policy_ref,
};
use serde_json::Value;

use crate::report::Failure;

/// The pinned root key and the trust root, defaulting to the repository layout.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TrustRootArgs {
    /// The pinned root public key (SPKI PEM), the out-of-band anchor of the trust chain.
    #[arg(long, value_name = "FILE", default_value = "trust/root.pub")]
    pub root_key: PathBuf,
    /// The trust-root chain: the current trust root (its older versions are read from
    /// `trust-root.d/<N>.json` beside it), a directory holding the chain (`trust-root.json` and
    /// `trust-root.d/`, or numbered `<N>.json` files), or any version's file
    /// `trust-root.d/<N>.json` (the chain is read around it). The newest version is in force.
    #[arg(long, value_name = "FILE|DIR", default_value = "trust/trust-root.json")]
    pub trust_root: PathBuf,
}

/// Everything an execution is verified against, defaulting to the repository layout.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EnvironmentArgs {
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
    pub(crate) fn config(&self) -> RuntimeEnvironmentConfig {
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
pub(crate) struct ClockArgs {
    /// Use this instant instead of the system clock, for reproducible runs and for checking
    /// expiry at another time. RFC 3339 in UTC, for example `2026-11-28T21:00:00Z`.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub now: Option<Timestamp>,
}

impl ClockArgs {
    /// The clock to execute with.
    pub(crate) fn clock(&self) -> Box<dyn Clock> {
        match self.now {
            Some(now) => Box::new(FixedClock(now)),
            None => Box::new(SystemClock),
        }
    }

    /// The clock's reading now.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock().now()
    }
}

/// Parses an RFC 3339 UTC instant (`YYYY-MM-DDTHH:MM:SSZ`) for clap.
pub(crate) fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| format!("{e} (expected for example 2026-11-28T21:00:00Z)"))
}

/// Reads a file, or standard input for `-`.
pub(crate) fn read_file_or_stdin(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::io("standard input", &e))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// Parses `JSON|FILE` signals strictly (duplicate keys and unsafe numbers are refused): inline
/// JSON when the argument starts with `{` or `[`, otherwise the file it names (`-` for stdin).
/// Refuses more than [`MAX_SIGNALS_JSON_BYTES`] with `runtime.request_too_large`, reading no
/// more than one byte past the limit.
pub(crate) fn read_signals(argument: &str) -> Result<Value, Failure> {
    let trimmed = argument.trim_start();
    let bytes = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        argument.as_bytes().to_vec()
    } else {
        read_bounded(Path::new(argument), MAX_SIGNALS_JSON_BYTES)?
    };
    if bytes.len() > MAX_SIGNALS_JSON_BYTES {
        return Err(Failure::execution(&ExecutionError::RequestTooLarge {
            size: bytes.len(),
            limit: MAX_SIGNALS_JSON_BYTES,
        }));
    }
    parse_strict(&bytes).map_err(|e| Failure::canon("signals", &e))
}

/// Reads at most `limit + 1` bytes of a file (or standard input for `-`): enough to tell that
/// it is too long without holding more of it.
pub(crate) fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, Failure> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    let what = path.display().to_string();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::io("standard input", &e))?;
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(cap).read_to_end(&mut bytes))
            .map_err(|e| Failure::io(&what, &e))?;
    }
    Ok(bytes)
}

/// Reads a PKCS#8 PEM private key.
pub(crate) fn read_private_key(path: &Path) -> Result<LocalSigningKey, Failure> {
    LocalSigningKey::read_pem_file(path).map_err(|e| {
        let mut failure = Failure::trust(&e);
        failure.message = format!("{}: {}", path.display(), failure.message);
        failure
    })
}

/// Parses `ID@VERSION` (`runtime.invalid_policy_reference` otherwise).
pub(crate) fn policy_reference(reference: &str) -> Result<PolicyRef, Failure> {
    parse_policy_ref(reference).map_err(|e| Failure::execution(&e))
}

/// Writes a file, reporting failure as an IO error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// Creates a directory and its parents.
pub(crate) fn create_dir(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(path).map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// The runtime a command executes or recovers with: every `--key` as a signer, the environment,
/// the store (opened only after the environment verified) and the clock.
pub(crate) fn build_runtime(
    keys: &[PathBuf],
    environment: &EnvironmentArgs,
    store: &str,
    mode: StoreOpen,
    clock: &ClockArgs,
) -> Result<Runtime, Failure> {
    let mut builder = Runtime::builder(environment.config());
    for path in keys {
        builder = builder.signer(read_private_key(path)?);
    }
    builder
        .store_location(store, mode)
        .clock(clock.clock())
        .build()
        .map_err(|e| Failure::execution(&e))
}
