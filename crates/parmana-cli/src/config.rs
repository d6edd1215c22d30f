//! The deployment configuration: `parmana.toml` (found walking up, or named by `PARMANA_CONFIG`), `PARMANA_*` variables and defaults, resolved with flag > env > file > default.
//!
//! The library below the CLI reads no file it was not given and no environment variable; this
//! module is where a deployment's settings come from. A setting is resolved in this order:
//!
//! 1. the command-line flag;
//! 2. its `PARMANA_*` environment variable (a relative path resolves against the current directory);
//! 3. the configuration file (a relative path resolves against the file's directory);
//! 4. the default (a relative path resolves against the file's directory when a file was found —
//!    the deployment root — else against the current directory).
//!
//! The replay store has no default: outside any configuration, a command that consumes or reads
//! execution ids refuses to run until a store is named, so that exactly-once never depends on
//! which directory a command happened to run in.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::ExitClass;
use crate::report::Failure;

/// The file name looked for in the current directory and every directory above it.
pub(crate) const CONFIG_FILE_NAME: &str = "parmana.toml";

/// The largest configuration file read (it holds a handful of paths).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// The environment variable naming the configuration file (no walking up then).
pub(crate) const CONFIG_ENV: &str = "PARMANA_CONFIG";

/// What [`CONFIG_ENV`] names to read no configuration file and search for none (as Git reads
/// `GIT_CONFIG_GLOBAL=/dev/null`): the way out of a foreign `parmana.toml` above the current
/// directory (`cli.config_unsafe`) that does not read it.
pub(crate) const NO_CONFIG_FILE: &str = "/dev/null";

/// The `parmana.toml` keys, as written in the file. Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    policies: Option<PathBuf>,
    pinned_root: Option<PathBuf>,
    trust_root: Option<PathBuf>,
    release_manifest: Option<PathBuf>,
    store: Option<String>,
    keys: Option<Vec<PathBuf>>,
    expiry_warning_days: Option<u32>,
    server: Option<ServerFile>,
}

/// A setting that names one file or several (`log_key = "a.pem"` or `["a.pem", "b.pem"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMorePaths {
    One(PathBuf),
    More(Vec<PathBuf>),
}

/// A setting that names one URL or several (`witness_url = "https://w.example"` or a list).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMoreUrls {
    One(String),
    More(Vec<String>),
}

/// The `[server]` table of `parmana.toml`: what `parmana serve` adds (docs/server.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    listen: Option<String>,
    tokens: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_body_bytes: Option<u64>,
    max_header_bytes: Option<u64>,
    max_concurrency: Option<u64>,
    max_connections: Option<u64>,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    shutdown_delay_ms: Option<u64>,
    max_connection_age_ms: Option<u64>,
    log_format: Option<String>,
    log_level: Option<String>,
    log_signals: Option<bool>,
    log_key: Option<OneOrMorePaths>,
    log_anchor: Option<PathBuf>,
    log_public: Option<bool>,
    witness_url: Option<OneOrMoreUrls>,
    witness_ca: Option<PathBuf>,
    sequence_interval_ms: Option<u64>,
    /// The AuthZEN mapping: in the file only (it is a table, not one value).
    pub(crate) authzen: Option<AuthzenFile>,
}

/// `[server.authzen]`: which policy answers AuthZEN requests, and which of its decisions mean
/// `true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthzenFile {
    pub(crate) default_policy: Option<String>,
    /// The public `https` URL the metadata names as the Policy Decision Point.
    pub(crate) pdp_url: Option<String>,
    #[serde(default)]
    pub(crate) policies: Vec<AuthzenPolicyFile>,
}

/// One `[[server.authzen.policies]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthzenPolicyFile {
    pub(crate) policy: String,
    #[serde(default)]
    pub(crate) resource_types: Vec<String>,
    /// Absent: the policy's own signed `permit` says which decisions permit.
    #[serde(default)]
    pub(crate) permit: Option<Vec<String>>,
}

/// Where a resolved setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A command-line flag, for example `--store`.
    Flag(&'static str),
    /// An environment variable, for example `PARMANA_STORE`.
    Env(&'static str),
    /// The configuration file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl Source {
    /// A short word for the kind of source: `flag`, `env`, `file` or `default`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Flag(_) => "flag",
            Self::Env(_) => "env",
            Self::File(_) => "file",
            Self::Default => "default",
        }
    }

    /// The flag, variable or file that set it (empty for the default).
    pub(crate) fn origin(&self) -> String {
        match self {
            Self::Flag(flag) => (*flag).to_owned(),
            Self::Env(variable) => (*variable).to_owned(),
            Self::File(path) => path.display().to_string(),
            Self::Default => String::new(),
        }
    }

    /// Where the setting `key` was given, for error messages: "the flag --store", "the variable
    /// PARMANA_STORE", "`store` in FILE" or "the default of `store`".
    pub(crate) fn how_to_set(&self, key: &str) -> String {
        match self {
            Self::Flag(flag) => format!("the flag {flag}"),
            Self::Env(variable) => format!("the variable {variable}"),
            Self::File(path) => format!("`{key}` in {}", path.display()),
            Self::Default => format!("the default of `{key}`"),
        }
    }
}

/// A setting's value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// One setting: its key in `parmana.toml`, its flag and its environment variable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// The key in `parmana.toml`, for example `pinned_root`.
    pub name: &'static str,
    /// The command-line flag, for example `--pinned-root`.
    pub flag: &'static str,
    /// The environment variable, for example `PARMANA_PINNED_ROOT`.
    pub env: &'static str,
}

/// The settings, in the order `parmana config` prints them.
pub(crate) const POLICIES: Key = Key {
    name: "policies",
    flag: "--policies",
    env: "PARMANA_POLICIES",
};
pub(crate) const PINNED_ROOT: Key = Key {
    name: "pinned_root",
    flag: "--pinned-root",
    env: "PARMANA_PINNED_ROOT",
};
pub(crate) const TRUST_ROOT: Key = Key {
    name: "trust_root",
    flag: "--trust-root",
    env: "PARMANA_TRUST_ROOT",
};
pub(crate) const RELEASE_MANIFEST: Key = Key {
    name: "release_manifest",
    flag: "--release-manifest",
    env: "PARMANA_RELEASE_MANIFEST",
};
pub(crate) const STORE: Key = Key {
    name: "store",
    flag: "--store",
    env: "PARMANA_STORE",
};
/// `cli.invalid_config`: `origin` (a variable or a file) gives the key list `key` empty — a
/// mistake, not a choice.
fn names_no_key(origin: &str, key: Key) -> Failure {
    Failure::new(
        "cli.invalid_config",
        format!("{origin}: `{}` names no key file", key.name),
        ExitClass::Usage,
    )
}

pub(crate) const KEYS: Key = Key {
    name: "keys",
    flag: "--key",
    env: "PARMANA_KEYS",
};
pub(crate) const EXPIRY_WARNING_DAYS: Key = Key {
    name: "expiry_warning_days",
    flag: "--expiry-warning-days",
    env: "PARMANA_EXPIRY_WARNING_DAYS",
};

/// The settings of `parmana serve`, in `[server]` of `parmana.toml`.
pub(crate) const LISTEN: Key = Key {
    name: "listen",
    flag: "--listen",
    env: "PARMANA_LISTEN",
};
pub(crate) const TOKENS: Key = Key {
    name: "tokens",
    flag: "--tokens",
    env: "PARMANA_TOKENS",
};
pub(crate) const TLS_CERT: Key = Key {
    name: "tls_cert",
    flag: "--tls-cert",
    env: "PARMANA_TLS_CERT",
};
pub(crate) const TLS_KEY: Key = Key {
    name: "tls_key",
    flag: "--tls-key",
    env: "PARMANA_TLS_KEY",
};
pub(crate) const TLS_CLIENT_CA: Key = Key {
    name: "tls_client_ca",
    flag: "--tls-client-ca",
    env: "PARMANA_TLS_CLIENT_CA",
};
pub(crate) const MAX_BODY_BYTES: Key = Key {
    name: "max_body_bytes",
    flag: "--max-body-bytes",
    env: "PARMANA_MAX_BODY_BYTES",
};
pub(crate) const MAX_HEADER_BYTES: Key = Key {
    name: "max_header_bytes",
    flag: "--max-header-bytes",
    env: "PARMANA_MAX_HEADER_BYTES",
};
pub(crate) const MAX_CONCURRENCY: Key = Key {
    name: "max_concurrency",
    flag: "--max-concurrency",
    env: "PARMANA_MAX_CONCURRENCY",
};
pub(crate) const MAX_CONNECTIONS: Key = Key {
    name: "max_connections",
    flag: "--max-connections",
    env: "PARMANA_MAX_CONNECTIONS",
};
pub(crate) const REQUEST_TIMEOUT_MS: Key = Key {
    name: "request_timeout_ms",
    flag: "--request-timeout-ms",
    env: "PARMANA_REQUEST_TIMEOUT_MS",
};
pub(crate) const IDLE_TIMEOUT_MS: Key = Key {
    name: "idle_timeout_ms",
    flag: "--idle-timeout-ms",
    env: "PARMANA_IDLE_TIMEOUT_MS",
};
pub(crate) const SHUTDOWN_GRACE_MS: Key = Key {
    name: "shutdown_grace_ms",
    flag: "--shutdown-grace-ms",
    env: "PARMANA_SHUTDOWN_GRACE_MS",
};
pub(crate) const SHUTDOWN_DELAY_MS: Key = Key {
    name: "shutdown_delay_ms",
    flag: "--shutdown-delay-ms",
    env: "PARMANA_SHUTDOWN_DELAY_MS",
};
pub(crate) const MAX_CONNECTION_AGE_MS: Key = Key {
    name: "max_connection_age_ms",
    flag: "--max-connection-age-ms",
    env: "PARMANA_MAX_CONNECTION_AGE_MS",
};
pub(crate) const LOG_FORMAT: Key = Key {
    name: "log_format",
    flag: "--log-format",
    env: "PARMANA_LOG_FORMAT",
};
pub(crate) const LOG_LEVEL: Key = Key {
    name: "log_level",
    flag: "--log-level",
    env: "PARMANA_LOG_LEVEL",
};
pub(crate) const LOG_SIGNALS: Key = Key {
    name: "log_signals",
    flag: "--log-signals",
    env: "PARMANA_LOG_SIGNALS",
};
/// How often `parmana serve`'s sequencer runs, in milliseconds.
pub(crate) const LOG_ANCHOR: Key = Key {
    name: "log_anchor",
    flag: "--log-anchor",
    env: "PARMANA_LOG_ANCHOR",
};
pub(crate) const SEQUENCE_INTERVAL_MS: Key = Key {
    name: "sequence_interval_ms",
    flag: "--sequence-interval-ms",
    env: "PARMANA_SEQUENCE_INTERVAL_MS",
};
/// The transparency log's signing keys (keys of the trust root's `log` role, one or more: as
/// many as its threshold): the sequencer of `parmana serve` and `parmana execute` signs
/// checkpoints with each (docs/transparency-log.md).
pub(crate) const LOG_KEY: Key = Key {
    name: "log_key",
    flag: "--log-key",
    env: "PARMANA_LOG_KEY",
};
pub(crate) const LOG_PUBLIC: Key = Key {
    name: "log_public",
    flag: "--log-public",
    env: "PARMANA_LOG_PUBLIC",
};
/// The witnesses `parmana serve` has each checkpoint cosigned by (their `tlog-witness`
/// submission prefixes).
pub(crate) const WITNESS_URL: Key = Key {
    name: "witness_url",
    flag: "--witness-url",
    env: "PARMANA_WITNESS_URL",
};
/// The authorities an `https://` witness's certificate must chain to, in place of the Web PKI
/// roots built in (`parmana serve`, `parmana log cosign`).
pub(crate) const WITNESS_CA: Key = Key {
    name: "witness_ca",
    flag: "--witness-ca",
    env: "PARMANA_WITNESS_CA",
};

/// The default of each path setting, relative to the deployment root.
const DEFAULT_POLICIES: &str = "policies";
const DEFAULT_PINNED_ROOT: &str = "trust/root.pub";
const DEFAULT_TRUST_ROOT: &str = "trust/trust-root.json";
const DEFAULT_RELEASE_MANIFEST: &str = "release-manifest.json";
const DEFAULT_KEY: &str = "trust/keys/attestation.pem";

/// The default warning window before the trust root or release manifest expires, in days.
pub(crate) const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;

/// How the configuration file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FoundBy {
    /// Named by `PARMANA_CONFIG`.
    Env,
    /// Found walking up from the current directory.
    WalkingUp,
}

/// The configuration in force for this process: the file (if any) and the environment.
#[derive(Debug)]
pub(crate) struct Deployment {
    file: Option<(PathBuf, FoundBy, ConfigFile)>,
    /// [`CONFIG_ENV`] named [`NO_CONFIG_FILE`]: no file read, none searched.
    none_named: bool,
    cwd: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

/// Every variable the configuration reads, so that the environment is read once.
const VARIABLES: [&str; 30] = [
    POLICIES.env,
    PINNED_ROOT.env,
    TRUST_ROOT.env,
    RELEASE_MANIFEST.env,
    STORE.env,
    KEYS.env,
    EXPIRY_WARNING_DAYS.env,
    LISTEN.env,
    TOKENS.env,
    TLS_CERT.env,
    TLS_KEY.env,
    TLS_CLIENT_CA.env,
    MAX_BODY_BYTES.env,
    MAX_HEADER_BYTES.env,
    MAX_CONCURRENCY.env,
    MAX_CONNECTIONS.env,
    REQUEST_TIMEOUT_MS.env,
    IDLE_TIMEOUT_MS.env,
    SHUTDOWN_GRACE_MS.env,
    SHUTDOWN_DELAY_MS.env,
    MAX_CONNECTION_AGE_MS.env,
    LOG_FORMAT.env,
    LOG_LEVEL.env,
    LOG_SIGNALS.env,
    LOG_KEY.env,
    LOG_PUBLIC.env,
    WITNESS_URL.env,
    WITNESS_CA.env,
    SEQUENCE_INTERVAL_MS.env,
    LOG_ANCHOR.env,
];

impl Deployment {
    /// Reads the environment and the configuration file of this process.
    pub(crate) fn load() -> Result<Self, Failure> {
        let cwd = std::env::current_dir().map_err(|e| Failure::io("the current directory", &e))?;
        let env = VARIABLES
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
            .collect();
        let config_env = std::env::var_os(CONFIG_ENV).filter(|value| !value.is_empty());
        Self::load_from(cwd, env, config_env)
    }

    /// A deployment at `cwd` with no variable set (for unit tests elsewhere in the crate).
    #[cfg(test)]
    pub(crate) fn at(cwd: PathBuf) -> Result<Self, Failure> {
        Self::load_from(cwd, Vec::new(), None)
    }

    /// [`Deployment::load`] with the environment given (for tests of the precedence rules).
    fn load_from(
        cwd: PathBuf,
        env: Vec<(&'static str, OsString)>,
        config_env: Option<OsString>,
    ) -> Result<Self, Failure> {
        let none_named = config_env
            .as_deref()
            .is_some_and(|named| Path::new(named) == Path::new(NO_CONFIG_FILE));
        let file = match config_env {
            Some(_) if none_named => None,
            Some(named) => {
                let path = absolute(&cwd, Path::new(&named));
                if !path.is_file() {
                    return Err(Failure::new(
                        "cli.invalid_config",
                        format!("{CONFIG_ENV} names {}, which is not a file", path.display()),
                        ExitClass::Usage,
                    ));
                }
                Some((path, FoundBy::Env))
            }
            None => find_upwards(&cwd).map(|path| (path, FoundBy::WalkingUp)),
        };
        let file = match file {
            Some((path, found_by)) => {
                let parsed = read_config_file(&path, matches!(found_by, FoundBy::WalkingUp))?;
                Some((path, found_by, parsed))
            }
            None => None,
        };
        Ok(Self {
            file,
            none_named,
            cwd,
            env,
        })
    }

    /// Whether [`CONFIG_ENV`] named [`NO_CONFIG_FILE`]: no file was read and none searched.
    pub(crate) fn no_file_named(&self) -> bool {
        self.none_named
    }

    /// The configuration file in force and how it was found.
    pub(crate) fn file(&self) -> Option<(&Path, &FoundBy)> {
        self.file
            .as_ref()
            .map(|(path, found_by, _)| (path.as_path(), found_by))
    }

    /// The current directory the command runs in.
    pub(crate) fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// The directory relative defaults resolve against: the file's directory, or the current one.
    fn root(&self) -> &Path {
        self.file
            .as_ref()
            .and_then(|(path, _, _)| path.parent())
            .unwrap_or(&self.cwd)
    }

    fn env(&self, key: Key) -> Option<&OsString> {
        self.env
            .iter()
            .find(|(name, value)| *name == key.env && !value.is_empty())
            .map(|(_, value)| value)
    }

    fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _, _)| path.as_path())
    }

    fn file_dir(&self) -> &Path {
        self.root()
    }

    /// A path setting: flag, then variable, then file, then `default` under the deployment root.
    pub(crate) fn path(&self, key: Key, flag: Option<&Path>) -> Setting<PathBuf> {
        if let Some(flag) = flag {
            return Setting {
                value: flag.to_path_buf(),
                source: Source::Flag(key.flag),
            };
        }
        if let Some(value) = self.env(key) {
            return Setting {
                value: relative_to(&self.cwd, Path::new(value)),
                source: Source::Env(key.env),
            };
        }
        if let Some((file, _, parsed)) = &self.file {
            let from_file = match key.name {
                "policies" => parsed.policies.as_ref(),
                "pinned_root" => parsed.pinned_root.as_ref(),
                "trust_root" => parsed.trust_root.as_ref(),
                "release_manifest" => parsed.release_manifest.as_ref(),
                _ => None,
            };
            if let Some(value) = from_file {
                return Setting {
                    value: relative_to(self.file_dir(), value),
                    source: Source::File(file.clone()),
                };
            }
        }
        let default = match key.name {
            "policies" => DEFAULT_POLICIES,
            "pinned_root" => DEFAULT_PINNED_ROOT,
            "trust_root" => DEFAULT_TRUST_ROOT,
            _ => DEFAULT_RELEASE_MANIFEST,
        };
        Setting {
            value: self.default_path(default),
            source: Source::Default,
        }
    }

    /// A default path: under the deployment root when a file was found, else as given (relative
    /// to the current directory, the way it is printed in `--help`).
    fn default_path(&self, default: &str) -> PathBuf {
        match self.file_path() {
            Some(_) => self.root().join(default),
            None => PathBuf::from(default),
        }
    }

    /// The transparency log's signing keys, if any: every `--log-key` (`flags`), else the
    /// variable (a path list), else `log_key` in `[server]` (one path or a list). A variable or
    /// a list that names no path is `cli.invalid_config` (not "no log key": a setting given
    /// empty is a mistake, not a choice).
    pub(crate) fn log_keys(
        &self,
        flags: &[PathBuf],
    ) -> Result<Option<Setting<Vec<PathBuf>>>, Failure> {
        let named_none = |origin: &str| names_no_key(origin, LOG_KEY);
        if !flags.is_empty() {
            return Ok(Some(Setting {
                value: flags.to_vec(),
                source: Source::Flag(LOG_KEY.flag),
            }));
        }
        if let Some(paths) = self.env_paths(LOG_KEY)? {
            return Ok(Some(Setting {
                value: paths,
                source: Source::Env(LOG_KEY.env),
            }));
        }
        let Some((file, server)) = self.server_file() else {
            return Ok(None);
        };
        let paths: Vec<PathBuf> = match &server.log_key {
            None => return Ok(None),
            Some(OneOrMorePaths::One(path)) => vec![relative_to(self.file_dir(), path)],
            Some(OneOrMorePaths::More(paths)) => paths
                .iter()
                .map(|path| relative_to(self.file_dir(), path))
                .collect(),
        };
        if paths.is_empty() {
            return Err(named_none(&file.display().to_string()));
        }
        Ok(Some(Setting {
            value: paths,
            source: Source::File(file.to_path_buf()),
        }))
    }

    /// The witnesses to ask for cosignatures, if any: every `--witness-url` (`flags`), else the
    /// variable (URLs separated by whitespace), else `witness_url` in `[server]` (one URL or a
    /// list). A variable or a list that names none, or more than
    /// [`MAX_WITNESSES`](parmana_server::MAX_WITNESSES), is `cli.invalid_config`; so is a URL that
    /// is not `http://` or `https://`.
    pub(crate) fn witness_urls(
        &self,
        flags: &[String],
    ) -> Result<Option<Setting<Vec<String>>>, Failure> {
        let setting = if !flags.is_empty() {
            Setting {
                value: flags.to_vec(),
                source: Source::Flag(WITNESS_URL.flag),
            }
        } else if let Some(value) = self.env(WITNESS_URL) {
            Setting {
                value: value
                    .to_string_lossy()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                source: Source::Env(WITNESS_URL.env),
            }
        } else {
            let Some((file, server)) = self.server_file() else {
                return Ok(None);
            };
            let urls = match &server.witness_url {
                None => return Ok(None),
                Some(OneOrMoreUrls::One(url)) => vec![url.clone()],
                Some(OneOrMoreUrls::More(urls)) => urls.clone(),
            };
            Setting {
                value: urls,
                source: Source::File(file.to_path_buf()),
            }
        };
        let invalid = |message: String| {
            Failure::new(
                "cli.invalid_config",
                format!("{}: {message}", setting.source.how_to_set(WITNESS_URL.name)),
                ExitClass::Usage,
            )
        };
        if setting.value.is_empty() {
            return Err(invalid("names no witness".to_owned()));
        }
        if setting.value.len() > parmana_server::MAX_WITNESSES {
            return Err(invalid(format!(
                "names {} witnesses, more than the {} a server asks",
                setting.value.len(),
                parmana_server::MAX_WITNESSES
            )));
        }
        for (n, url) in setting.value.iter().enumerate() {
            let (scheme, rest) = url.split_once("://").unwrap_or_default();
            if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
                return Err(invalid(format!(
                    "{url:?} is not an http:// or https:// URL (a witness's submission prefix)"
                )));
            }
            // A password in the URL would be printed by `parmana config` and in every refusal.
            if rest
                .split(['/', '?', '#'])
                .next()
                .is_some_and(|authority| authority.contains('@'))
            {
                return Err(invalid(
                    "a witness URL carries no user or password (it is printed and logged)"
                        .to_owned(),
                ));
            }
            let same = |other: &String| {
                other
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(url.trim_end_matches('/'))
            };
            if setting.value[..n].iter().any(same) {
                return Err(invalid(format!("{url:?} is named twice")));
            }
        }
        Ok(Some(setting))
    }

    /// The paths a path-list variable of `key` names, resolved against the current directory:
    /// `None` when it is unset, `cli.invalid_config` when it names none.
    fn env_paths(&self, key: Key) -> Result<Option<Vec<PathBuf>>, Failure> {
        let Some(value) = self.env(key) else {
            return Ok(None);
        };
        let paths: Vec<PathBuf> = std::env::split_paths(value)
            .filter(|path| !path.as_os_str().is_empty())
            .map(|path| relative_to(&self.cwd, &path))
            .collect();
        if paths.is_empty() {
            return Err(names_no_key(key.env, key));
        }
        Ok(Some(paths))
    }

    /// The attestation signing keys: every `--key`, else the variable (a path list), else the
    /// file, else the default key. A variable or a list that names no path is
    /// `cli.invalid_config`, as for [`Self::log_keys`].
    pub(crate) fn keys(&self, flags: &[PathBuf]) -> Result<Setting<Vec<PathBuf>>, Failure> {
        let named_none = |origin: &str| names_no_key(origin, KEYS);
        if !flags.is_empty() {
            return Ok(Setting {
                value: flags.to_vec(),
                source: Source::Flag(KEYS.flag),
            });
        }
        if let Some(paths) = self.env_paths(KEYS)? {
            return Ok(Setting {
                value: paths,
                source: Source::Env(KEYS.env),
            });
        }
        if let Some((file, _, parsed)) = &self.file
            && let Some(keys) = &parsed.keys
        {
            if keys.is_empty() {
                return Err(named_none(&file.display().to_string()));
            }
            return Ok(Setting {
                value: keys
                    .iter()
                    .map(|path| relative_to(self.file_dir(), path))
                    .collect(),
                source: Source::File(file.clone()),
            });
        }
        Ok(Setting {
            value: vec![self.default_path(DEFAULT_KEY)],
            source: Source::Default,
        })
    }

    /// The replay store, or `None` when nothing names one (there is no default).
    /// A variable that is not UTF-8 is `cli.invalid_config`: read lossily, a `sqlite:` path would
    /// name another file, and executions would be consumed in a second store.
    pub(crate) fn store(&self, flag: Option<&str>) -> Result<Option<Setting<String>>, Failure> {
        let store = self.store_setting(flag)?;
        if let Some(setting) = &store {
            check_store_kind(setting)?;
        }
        Ok(store)
    }

    fn store_setting(&self, flag: Option<&str>) -> Result<Option<Setting<String>>, Failure> {
        if let Some(flag) = flag {
            return Ok(Some(Setting {
                value: flag.to_owned(),
                source: Source::Flag(STORE.flag),
            }));
        }
        if let Some(value) = self.env(STORE) {
            let text = value.to_str().ok_or_else(|| {
                Failure::new(
                    "cli.invalid_config",
                    format!("{}: the store is not UTF-8", STORE.env),
                    ExitClass::Usage,
                )
            })?;
            return Ok(Some(Setting {
                value: resolve_store(&self.cwd, text),
                source: Source::Env(STORE.env),
            }));
        }
        let Some((file, _, parsed)) = self.file.as_ref() else {
            return Ok(None);
        };
        Ok(parsed.store.as_ref().map(|store| Setting {
            value: resolve_store(self.file_dir(), store),
            source: Source::File(file.clone()),
        }))
    }

    /// The replay store, refusing with `cli.store_not_configured` when nothing names one.
    pub(crate) fn require_store(&self, flag: Option<&str>) -> Result<Setting<String>, Failure> {
        self.store(flag)?.ok_or_else(|| {
            Failure::new(
                "cli.store_not_configured",
                format!(
                    "no replay store is configured: name one with --store, {} or `store` in a \
                     {CONFIG_FILE_NAME} (none was found from the current directory upwards); \
                     `parmana init` scaffolds a deployment with one",
                    STORE.env,
                ),
                ExitClass::Usage,
            )
        })
    }

    /// The warning window before expiry, in days.
    pub(crate) fn expiry_warning_days(&self, flag: Option<u32>) -> Result<Setting<u32>, Failure> {
        if let Some(days) = flag {
            return Ok(Setting {
                value: days,
                source: Source::Flag(EXPIRY_WARNING_DAYS.flag),
            });
        }
        if let Some(value) = self.env(EXPIRY_WARNING_DAYS) {
            let days = value
                .to_str()
                .and_then(|text| text.parse::<u32>().ok())
                .ok_or_else(|| {
                    Failure::new(
                        "cli.invalid_config",
                        format!(
                            "{} must be a whole number of days, not {value:?}",
                            EXPIRY_WARNING_DAYS.env
                        ),
                        ExitClass::Usage,
                    )
                })?;
            return Ok(Setting {
                value: days,
                source: Source::Env(EXPIRY_WARNING_DAYS.env),
            });
        }
        if let Some((file, _, parsed)) = &self.file
            && let Some(days) = parsed.expiry_warning_days
        {
            return Ok(Setting {
                value: days,
                source: Source::File(file.clone()),
            });
        }
        Ok(Setting {
            value: DEFAULT_EXPIRY_WARNING_DAYS,
            source: Source::Default,
        })
    }
}

impl Deployment {
    /// The `[server]` table of the file, if any.
    pub(crate) fn server_file(&self) -> Option<(&Path, &ServerFile)> {
        let (path, _, parsed) = self.file.as_ref()?;
        Some((path.as_path(), parsed.server.as_ref()?))
    }

    /// A `parmana serve` file setting (no default): flag, variable, then `[server]` in the file.
    pub(crate) fn server_path(&self, key: Key, flag: Option<&Path>) -> Option<Setting<PathBuf>> {
        if let Some(flag) = flag {
            return Some(Setting {
                value: flag.to_path_buf(),
                source: Source::Flag(key.flag),
            });
        }
        if let Some(value) = self.env(key) {
            return Some(Setting {
                value: relative_to(&self.cwd, Path::new(value)),
                source: Source::Env(key.env),
            });
        }
        let (file, server) = self.server_file()?;
        let value = match key.name {
            "tokens" => server.tokens.as_ref(),
            "tls_cert" => server.tls_cert.as_ref(),
            "tls_key" => server.tls_key.as_ref(),
            "tls_client_ca" => server.tls_client_ca.as_ref(),
            "log_anchor" => server.log_anchor.as_ref(),
            "witness_ca" => server.witness_ca.as_ref(),
            _ => None,
        }?;
        Some(Setting {
            value: relative_to(self.file_dir(), value),
            source: Source::File(file.to_path_buf()),
        })
    }

    /// A `parmana serve` value setting: flag, variable (parsed), `[server]` in the file, then
    /// `default`. A variable or file value that does not parse is `cli.invalid_config`.
    pub(crate) fn server_value<T>(
        &self,
        key: Key,
        flag: Option<T>,
        default: T,
    ) -> Result<Setting<T>, Failure>
    where
        T: std::str::FromStr + Clone,
    {
        if let Some(flag) = flag {
            return Ok(Setting {
                value: flag,
                source: Source::Flag(key.flag),
            });
        }
        let invalid = |origin: &str, value: &str| {
            Failure::new(
                "cli.invalid_config",
                format!("{origin}: {value:?} is not a valid `{}`", key.name),
                ExitClass::Usage,
            )
        };
        if let Some(value) = self.env(key) {
            let text = value.to_string_lossy();
            let parsed = text.parse::<T>().map_err(|_| invalid(key.env, &text))?;
            return Ok(Setting {
                value: parsed,
                source: Source::Env(key.env),
            });
        }
        if let Some((file, server)) = self.server_file() {
            let text = match key.name {
                "listen" => server.listen.clone(),
                "max_body_bytes" => server.max_body_bytes.map(|v| v.to_string()),
                "max_header_bytes" => server.max_header_bytes.map(|v| v.to_string()),
                "max_concurrency" => server.max_concurrency.map(|v| v.to_string()),
                "max_connections" => server.max_connections.map(|v| v.to_string()),
                "request_timeout_ms" => server.request_timeout_ms.map(|v| v.to_string()),
                "idle_timeout_ms" => server.idle_timeout_ms.map(|v| v.to_string()),
                "shutdown_grace_ms" => server.shutdown_grace_ms.map(|v| v.to_string()),
                "shutdown_delay_ms" => server.shutdown_delay_ms.map(|v| v.to_string()),
                "max_connection_age_ms" => server.max_connection_age_ms.map(|v| v.to_string()),
                "sequence_interval_ms" => server.sequence_interval_ms.map(|v| v.to_string()),
                "log_format" => server.log_format.clone(),
                "log_level" => server.log_level.clone(),
                "log_signals" => server.log_signals.map(|v| v.to_string()),
                "log_public" => server.log_public.map(|v| v.to_string()),
                _ => None,
            };
            if let Some(text) = text {
                let shown = file.display().to_string();
                let parsed = text.parse::<T>().map_err(|_| invalid(&shown, &text))?;
                return Ok(Setting {
                    value: parsed,
                    source: Source::File(file.to_path_buf()),
                });
            }
        }
        Ok(Setting {
            value: default,
            source: Source::Default,
        })
    }
}

/// Says how a setting can be changed, for messages about a file it names (a missing key file).
pub(crate) fn how_to_set(setting_source: &Source, key: Key) -> String {
    match setting_source {
        Source::Default => format!(
            "set it with {}, {} or `{}` in {CONFIG_FILE_NAME}",
            key.flag, key.env, key.name
        ),
        other => format!("it comes from {}", other.how_to_set(key.name)),
    }
}

/// `sqlite:PATH` with a relative PATH resolves against `base`; other stores are kept as written.
fn resolve_store(base: &Path, store: &str) -> String {
    match store.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() && Path::new(path).is_relative() => {
            format!("sqlite:{}", base.join(path).display())
        }
        _ => store.to_owned(),
    }
}

/// `path` made absolute against `base` (kept as is when absolute).
fn relative_to(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    relative_to(cwd, path)
}

/// The nearest `parmana.toml` in `start` or a directory above it: the first name there at all,
/// whatever it is. One that is no readable file (a dangling link, a named pipe, a directory) is
/// refused when read, not passed over: a parent's file read in its place would name another
/// store, where the same id executes again.
fn find_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE_NAME))
        .find(|candidate| std::fs::symlink_metadata(candidate).is_ok())
}

/// A configuration file found walking up is read only when the user running the command, or
/// root, owns it and not everyone may write it (as git refuses a repository another user owns):
/// one planted in a shared directory above the current one (`/tmp/parmana.toml`) could name a
/// tokens file, a listen address or a trust root. A file named by `PARMANA_CONFIG` is the user's
/// choice and is read as named.
///
/// Judged on the name as found (`named`, read before the file was opened: when it is a symbolic
/// link, the link's owner too — a link someone else planted to a file of yours would make its
/// relative paths resolve in their directory) and on the file as opened — the one then read —,
/// which must be the file the name held then when the name is no link (not swapped between the
/// two).
#[cfg(unix)]
fn check_found_file_is_yours(
    path: &Path,
    named: &std::fs::Metadata,
    opened: &std::fs::File,
) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt as _;
    let what = path.display().to_string();
    let metadata = opened.metadata().map_err(|e| Failure::io(&what, &e))?;
    if !named.file_type().is_symlink()
        && (named.dev(), named.ino()) != (metadata.dev(), metadata.ino())
    {
        return Err(Failure::new(
            "cli.config_unsafe",
            format!("{what} was replaced while it was read: it is not read"),
            ExitClass::Usage,
        ));
    }
    let you = rustix::process::geteuid().as_raw();
    let foreign = |uid: u32| uid != you && uid != 0;
    let unsafe_because = if named.file_type().is_symlink() && foreign(named.uid()) {
        Some(format!(
            "it is a symbolic link that belongs to uid {}, not to you (uid {you})",
            named.uid()
        ))
    } else if foreign(metadata.uid()) {
        Some(format!(
            "it belongs to uid {}, not to you (uid {you})",
            metadata.uid()
        ))
    } else if metadata.mode() & 0o002 != 0 {
        Some("anyone may write it".to_owned())
    } else {
        None
    };
    match unsafe_because {
        None => Ok(()),
        Some(reason) => Err(Failure::new(
            "cli.config_unsafe",
            format!(
                "{what} was found walking up from the current directory, but {reason}: it is \
                 not read. Name your own file with {CONFIG_ENV} (or {CONFIG_ENV}={NO_CONFIG_FILE} \
                 to read none), or have its owner remove it"
            ),
            ExitClass::Usage,
        )),
    }
}

#[cfg(not(unix))]
fn check_found_file_is_yours(
    _: &Path,
    _: &std::fs::Metadata,
    _: &std::fs::File,
) -> Result<(), Failure> {
    Ok(())
}

/// Reads and parses a configuration file, bounded, refusing unknown keys; one found walking up
/// only once [`check_found_file_is_yours`] accepts the file opened.
fn read_config_file(path: &Path, found_walking_up: bool) -> Result<ConfigFile, Failure> {
    use std::io::Read as _;
    let what = path.display().to_string();
    let named = std::fs::symlink_metadata(path).map_err(|e| Failure::io(&what, &e))?;
    // One found walking up is opened without waiting and must be a regular file: another user
    // who swapped a named pipe in would otherwise hold the command before its owner is checked.
    let file = if found_walking_up {
        parmana_runtime::trust::open_regular_file(path).map_err(|e| {
            Failure::new(
                "cli.invalid_config",
                format!(
                    "{what}, found walking up from the current directory, cannot be read as a \
                     file ({e}); no parmana.toml above it is read in its place: remove it, or \
                     name the file to read with PARMANA_CONFIG (PARMANA_CONFIG=/dev/null to \
                     read none)"
                ),
                ExitClass::Usage,
            )
        })?
    } else {
        std::fs::File::open(path).map_err(|e| Failure::io(&what, &e))?
    };
    if found_walking_up {
        check_found_file_is_yours(path, &named, &file)?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::io(&what, &e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Failure::new(
            "cli.invalid_config",
            format!("{what}: larger than {MAX_CONFIG_BYTES} bytes"),
            ExitClass::Usage,
        ));
    }
    // A file read whole that is not TOML text is a refused configuration, as a TOML error is.
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            "cli.invalid_config",
            format!(
                "{what}: not UTF-8 text (at byte {})",
                e.utf8_error().valid_up_to()
            ),
            ExitClass::Usage,
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        Failure::new(
            "cli.invalid_config",
            format!("{what}{at}: {}", e.message().trim_end()),
            ExitClass::Usage,
        )
    })
}

/// Hides the passwords of a `postgres://` URL for printing: the credentials' (which end at the
/// first `@`, as the store's parser reads them) and a `password` in the query string.
pub(crate) fn redact_store(store: &str) -> String {
    let Some((scheme, rest)) = ["postgres://", "postgresql://"]
        .into_iter()
        .find_map(|scheme| store.strip_prefix(scheme).map(|rest| (scheme, rest)))
    else {
        return store.to_owned();
    };
    let (credentials, after) = match rest.split_once('@') {
        Some((userinfo, after)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            (format!("{user}{hidden}@"), after)
        }
        None => (String::new(), rest),
    };
    let (base, query) = after.split_once('?').unwrap_or((after, ""));
    let query: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            // A key spelled with `%` escapes may be `password` too: hidden as well.
            if key.eq_ignore_ascii_case("password") || key.contains('%') {
                format!("{key}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    format!("{scheme}{credentials}{base}{query}")
}

#[cfg(test)]
mod tests;

/// Refuses a store that is none of the kinds a store can be (`memory`, `sqlite:PATH`,
/// `postgres://…`) as configuration (`cli.invalid_config`, exit 2, naming where it came from),
/// before any command uses it — echoing only its kind: a mistyped URL may hold a password.
fn check_store_kind(setting: &Setting<String>) -> Result<(), Failure> {
    use parmana_runtime::replay::{is_store_location, unknown_store_kind};
    if is_store_location(&setting.value) {
        return Ok(());
    }
    Err(Failure::new(
        "cli.invalid_config",
        format!(
            "{}: {}",
            setting.source.origin(),
            unknown_store_kind(&setting.value)
        ),
        ExitClass::Usage,
    ))
}
