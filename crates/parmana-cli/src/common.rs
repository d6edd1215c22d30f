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

use crate::config::{self, Deployment};
use crate::report::Failure;

/// The pinned root key and the trust root. Unset flags come from `PARMANA_*` variables, then
/// `parmana.toml`, then the repository layout (see `parmana config`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TrustRootArgs {
    /// The pinned root public key (SPKI PEM), the out-of-band anchor of the trust chain
    /// [env: PARMANA_PINNED_ROOT; config: pinned_root; default: trust/root.pub].
    #[arg(long, value_name = "FILE")]
    pub pinned_root: Option<PathBuf>,
    /// The trust-root chain: the current trust root (its older versions are read from
    /// `trust-root.d/<N>.json` beside it), a directory holding the chain (`trust-root.json` and
    /// `trust-root.d/`, or numbered `<N>.json` files), or any version's file
    /// `trust-root.d/<N>.json` or the `trust-root.d` directory itself (the chain is read around
    /// it, the `trust-root.json` beside it included); the newest version is in force
    /// [env: PARMANA_TRUST_ROOT; config: trust_root; default: trust/trust-root.json].
    #[arg(long, value_name = "FILE|DIR")]
    pub trust_root: Option<PathBuf>,
}

/// The resolved paths of [`TrustRootArgs`].
#[derive(Debug, Clone)]
pub(crate) struct TrustRootPaths {
    /// The pinned root public key.
    pub pinned_root: PathBuf,
    /// The trust-root chain (file or directory).
    pub trust_root: PathBuf,
}

impl TrustRootArgs {
    /// The paths in force: flags, then the deployment configuration.
    pub(crate) fn resolve(&self, deployment: &Deployment) -> TrustRootPaths {
        TrustRootPaths {
            pinned_root: deployment
                .path(config::PINNED_ROOT, self.pinned_root.as_deref())
                .value,
            trust_root: deployment
                .path(config::TRUST_ROOT, self.trust_root.as_deref())
                .value,
        }
    }
}

/// Everything an execution is verified against. Unset flags come from `PARMANA_*` variables,
/// then `parmana.toml`, then the repository layout (see `parmana config`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EnvironmentArgs {
    #[command(flatten)]
    pub trust: TrustRootArgs,
    /// The directory holding the signed policy bundles, `<policy_id>/<version>/`
    /// [env: PARMANA_POLICIES; config: policies; default: policies].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// The signed release manifest listing every policy bundle allowed to run
    /// [env: PARMANA_RELEASE_MANIFEST; config: release_manifest; default: release-manifest.json].
    #[arg(long, value_name = "FILE")]
    pub release_manifest: Option<PathBuf>,
}

impl EnvironmentArgs {
    /// The runtime's configuration: flags, then the deployment configuration.
    pub(crate) fn config(&self, deployment: &Deployment) -> RuntimeEnvironmentConfig {
        let trust = self.trust.resolve(deployment);
        RuntimeEnvironmentConfig {
            policies_root: deployment
                .path(config::POLICIES, self.policies.as_deref())
                .value,
            root_public_key: trust.pinned_root,
            trust_root: trust.trust_root,
            release_manifest: deployment
                .path(config::RELEASE_MANIFEST, self.release_manifest.as_deref())
                .value,
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
    /// Warn on stderr when the trust root or the release manifest expires within this many days
    /// [env: PARMANA_EXPIRY_WARNING_DAYS; config: expiry_warning_days; default: 30].
    #[arg(long, value_name = "DAYS")]
    pub expiry_warning_days: Option<u32>,
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

    /// Writes `warning[cli.expires_soon]` on stderr when `what` expires within the warning
    /// window (it has not expired: the checks that loaded it refuse that).
    pub(crate) fn warn_if_expiring(
        &self,
        deployment: &Deployment,
        what: &str,
        expires: Timestamp,
    ) -> Result<(), Failure> {
        let window = deployment.expiry_warning_days(self.expiry_warning_days)?;
        let now = self.now();
        let left = expires.unix_seconds().saturating_sub(now.unix_seconds());
        if left >= 0 && left < i64::from(window.value).saturating_mul(SECONDS_PER_DAY) {
            let days = left / SECONDS_PER_DAY;
            let when = match days {
                0 => "in less than a day".to_owned(),
                1 => "in 1 day".to_owned(),
                n => format!("in {n} days"),
            };
            let plural = if window.value == 1 { "" } else { "s" };
            crate::report::errln!(
                "warning[cli.expires_soon]: {what} expires at {expires}, {when} (warning window: {} day{plural})",
                window.value
            );
        }
        Ok(())
    }
}

const SECONDS_PER_DAY: i64 = 86_400;

/// Warns when the trust root or the release manifest a runtime loaded expires soon.
pub(crate) fn warn_environment_expiry(
    deployment: &Deployment,
    clock: &ClockArgs,
    runtime: &Runtime,
) -> Result<(), Failure> {
    warn_expiry_of(deployment, clock, &runtime.environment())
}

/// [`warn_environment_expiry`] of an environment loaded without a runtime.
pub(crate) fn warn_expiry_of(
    deployment: &Deployment,
    clock: &ClockArgs,
    environment: &parmana_runtime::RuntimeEnvironment,
) -> Result<(), Failure> {
    warn_trust_root_expiry(deployment, clock, environment.trust_root())?;
    let manifest = environment.release_manifest();
    clock.warn_if_expiring(
        deployment,
        &format!("the release manifest (version {})", manifest.version()),
        manifest.expires(),
    )
}

/// Warns when the trust root version a command works under expires soon (after which it
/// refuses what that version authorises).
pub(crate) fn warn_trust_root_expiry(
    deployment: &Deployment,
    clock: &ClockArgs,
    trust_root: &parmana_runtime::trust::VerifiedTrustRoot,
) -> Result<(), Failure> {
    clock.warn_if_expiring(
        deployment,
        &format!("the trust root (version {})", trust_root.version()),
        trust_root.expires(),
    )
}

/// Refuses an `--expires` that is not in the future: a document born expired would be refused
/// by every command that reads it.
pub(crate) fn refuse_past_expiry(
    flag: &str,
    expires: Timestamp,
    now: Timestamp,
) -> Result<(), Failure> {
    if expires <= now {
        return Err(Failure::new(
            "cli.expires_in_past",
            format!("{flag} {expires} is not after the current time {now}"),
            crate::exit::ExitClass::Usage,
        ));
    }
    Ok(())
}

/// Parses an RFC 3339 UTC instant (`YYYY-MM-DDTHH:MM:SSZ`) for clap.
pub(crate) fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| format!("{e} (expected for example 2026-11-28T21:00:00Z)"))
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
    parse_strict(&bytes).map_err(|e| Failure::canon_in("signals", &e, &bytes))
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

/// Writes a file whole and durably (a temporary file synced and renamed, the directory synced:
/// what a command prints as written survives a crash, and a file in use is never left
/// half-written), reporting failure as an IO error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    parmana_runtime::trust::replace_file_durably(path, bytes, None)
        .map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// Creates a file that must not replace anything (a key, a new trust root): written durably and
/// published only if nothing is at `path` when it is published, so that of two commands racing
/// for one path at most one succeeds (`cli.output_exists` for the other, its file untouched).
/// `mode`: at most these permission bits on Unix (what the umask leaves of them).
pub(crate) fn create_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    parmana_runtime::trust::create_file_durably(path, bytes, mode).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            output_exists(path)
        } else {
            Failure::io(&path.display().to_string(), &e)
        }
    })
}

/// `cli.output_exists` for `path`: a file this command creates is already there.
pub(crate) fn output_exists(path: &Path) -> Failure {
    Failure::new(
        "cli.output_exists",
        format!("{} already exists; not overwriting it", path.display()),
        crate::exit::ExitClass::Io,
    )
}

/// Creates a directory and its parents, each new one synced into its parent (so that a file
/// written durably inside survives a crash with its directories), each never writable by others
/// whatever the umask (`create_directories`).
pub(crate) fn create_dir(path: &Path) -> Result<(), Failure> {
    // Each directory made is synced into its parent.
    parmana_runtime::trust::create_directories(path)
        .map_err(|e| Failure::io(&path.display().to_string(), &e))
}

/// The runtime a command executes or recovers with: every signing key, the environment, the
/// store (opened only after the environment verified) and the clock — flags first, then the
/// deployment configuration. A missing key file says which setting named it.
pub(crate) fn build_runtime(
    deployment: &Deployment,
    keys: &[PathBuf],
    environment: &EnvironmentArgs,
    store: &str,
    mode: StoreOpen,
    clock: &ClockArgs,
) -> Result<Runtime, Failure> {
    build_runtime_with(
        deployment,
        Runtime::builder(environment.config(deployment)),
        keys,
        store,
        mode,
        clock,
    )
}

/// [`build_runtime`] from `builder` (the environment's, with whatever else the caller set on it:
/// `parmana serve` puts its timings around the store).
pub(crate) fn build_runtime_with(
    deployment: &Deployment,
    builder: parmana_runtime::RuntimeBuilder,
    keys: &[PathBuf],
    store: &str,
    mode: StoreOpen,
    clock: &ClockArgs,
) -> Result<Runtime, Failure> {
    let mut builder = builder;
    let keys = deployment.keys(keys)?;
    for path in &keys.value {
        if !path.exists() {
            return Err(Failure::new(
                "io.error",
                format!(
                    "{}: the attestation signing key does not exist ({})",
                    path.display(),
                    config::how_to_set(&keys.source, config::KEYS)
                ),
                crate::exit::ExitClass::Io,
            ));
        }
        builder = builder.signer(read_private_key(path)?);
    }
    crate::store::warn_if_identity_unchecked(store);
    builder
        .store_location(store, mode)
        .clock(clock.clock())
        .build()
        .map_err(|e| Failure::execution(&e))
}
