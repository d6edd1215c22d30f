//! `parmana serve`: run the runtime as an HTTP service (`parmana-server`) with the settings of flags, `PARMANA_*` variables and `[server]` in `parmana.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::{Clock as _, RuntimeEnvironment, StoreOpen};
use parmana_server::{
    Authentication, AuthzenPolicy, AuthzenSettings, Limits, LogLevel, LogSettings, Logging,
    SequencerSettings, Server, ServerError, ServerSettings, TlsFiles, Tokens, check_limits,
};

use crate::common::{
    ClockArgs, EnvironmentArgs, build_runtime_with, read_private_key, warn_expiry_of,
};
use crate::config::{self, Deployment, Setting, Source};
use crate::exit::ExitClass;
use crate::report::{Failure, outln};
use crate::store::StoreArgs;

const SERVE_EXAMPLES: &str = concat!(
    "\
The first line on stdout is `listening on http://ADDRESS` (`https://` with TLS; with --listen
127.0.0.1:0, the port chosen); with --dev-token the next is `token: SECRET`. Logs go to stderr. SIGHUP reloads the trust
root, the release manifest, the tokens file and the TLS files (a renewed certificate needs no
restart); SIGTERM or
SIGINT drains and stops. See docs/server.md.

Examples (from the repository root, on the bundled TEST-ONLY trust chain; the memory store keeps
nothing across a restart, so a trial only):
  parmana serve --store memory --dev-token
  parmana serve --listen 0.0.0.0:8443 --tokens tokens.toml --tls-cert cert.pem --tls-key key.pem",
    "\n\n",
    crate::exit::exit_codes_help!()
);

/// Arguments of `parmana serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = SERVE_EXAMPLES)]
pub(crate) struct ServeArgs {
    /// The address to listen on; port 0 picks a free one
    /// [env: PARMANA_LISTEN; config: server.listen; default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<SocketAddr>,
    /// The bearer tokens file: `[[tokens]]` with `name`, `sha256` and `scopes`
    /// [env: PARMANA_TOKENS; config: server.tokens; no default].
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Generate one random token holding every scope, print it, and accept it until exit.
    /// Loopback addresses only: for trials and tests.
    #[arg(long, conflicts_with_all = ["tokens", "insecure_no_auth"])]
    dev_token: bool,
    /// Serve without authentication. Refused unless the listen address is loopback.
    #[arg(long, conflicts_with = "tokens")]
    insecure_no_auth: bool,
    /// The TLS certificate chain (PEM) [env: PARMANA_TLS_CERT; config: server.tls_cert].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM) [env: PARMANA_TLS_KEY; config: server.tls_key].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM)
    /// [env: PARMANA_TLS_CLIENT_CA; config: server.tls_client_ca].
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// The largest request body (POST /v1/verify takes three times it and 64 KiB more, at most
    /// 5 MiB and 64 KiB unless this is larger), from 1 to 67108864 [env: PARMANA_MAX_BODY_BYTES;
    /// config: server.max_body_bytes; default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// The largest request head, request line and headers (larger: 431), from 8192 to 1048576
    /// [env: PARMANA_MAX_HEADER_BYTES; config: server.max_header_bytes; default: 16384].
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// Requests handled at once; more are refused with 503 and Retry-After, from 1 to 65536
    /// [env: PARMANA_MAX_CONCURRENCY; config: server.max_concurrency; default: 256].
    #[arg(long, value_name = "N")]
    max_concurrency: Option<usize>,
    /// Connections held open at once (each needs a file descriptor), from 1 to 1048576
    /// [env: PARMANA_MAX_CONNECTIONS; config: server.max_connections; default: 1024].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// How long one request may take (then 503 server.timeout, or 408 server.body_timeout when
    /// its body has not arrived), from 1 to 3600000
    /// [env: PARMANA_REQUEST_TIMEOUT_MS; config: server.request_timeout_ms; default: 10000].
    #[arg(long, value_name = "MS")]
    request_timeout_ms: Option<u64>,
    /// How long a connection may take to send a complete request head, from when it opens or
    /// from its previous answer, before it is closed (idle kept-alive connections too), from
    /// 100 to 3600000 [env: PARMANA_IDLE_TIMEOUT_MS; config: server.idle_timeout_ms; default:
    /// 30000].
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// On SIGTERM/SIGINT, how long requests in flight get to finish, from 0 to 3600000
    /// [env: PARMANA_SHUTDOWN_GRACE_MS; config: server.shutdown_grace_ms; default: 30000].
    #[arg(long, value_name = "MS")]
    shutdown_grace_ms: Option<u64>,
    /// On SIGTERM/SIGINT, how long to go on accepting and serving with `/readyz` already
    /// answering 503, so that a load balancer stops sending traffic before the listener closes;
    /// a second SIGTERM/SIGINT cuts it short, from 0 to 3600000
    /// [env: PARMANA_SHUTDOWN_DELAY_MS; config: server.shutdown_delay_ms; default: 0].
    #[arg(long, value_name = "MS")]
    shutdown_delay_ms: Option<u64>,
    /// How old a connection may grow: its first answer after this closes it (`Connection:
    /// close`), and its writes stop an idle timeout after the later of this age and its newest
    /// answer, from 1000 to 86400000 [env: PARMANA_MAX_CONNECTION_AGE_MS; config:
    /// server.max_connection_age_ms; default: 600000].
    #[arg(long, value_name = "MS")]
    max_connection_age_ms: Option<u64>,
    /// Log format on stderr: `text` or `json`
    /// [env: PARMANA_LOG_FORMAT; config: server.log_format; default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// The least severe events logged: `error`, `warn`, `info` (each request's line and the
    /// lifecycle) or `debug` (also the refusals withheld from their callers past the first each
    /// second, a sequencer run that integrated executions, a connection that ended in its TLS
    /// handshake or could not be accepted, a witness not asked again while it answers an
    /// earlier round)
    /// [env: PARMANA_LOG_LEVEL; config: server.log_level; default: info].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Also log each request's signals (off by default: signals may be personal data)
    /// [env: PARMANA_LOG_SIGNALS; config: server.log_signals].
    #[arg(long)]
    log_signals: bool,
    /// A key of the trust root's `log` role (PKCS#8 PEM; repeatable, as many as the role's
    /// threshold, each signing every checkpoint): the background sequencer signs and stores a
    /// checkpoint of the transparency log after each run that grew it, and the server serves the
    /// log's read API (C2SP tlog-tiles under /log/) and execution proofs (without one,
    /// executions are still sequenced, unsigned, and no log is served). Checked at start
    /// [env: PARMANA_LOG_KEY (a path list); config: server.log_key; no default].
    #[arg(long, value_name = "FILE")]
    log_key: Vec<PathBuf>,
    /// A file, outside the store, recording the largest checkpoint the log key signed: no
    /// checkpoint that does not extend it is signed (a store rewritten or cut is refused, after
    /// a restart too); created at the first signature. Also read by execute, recover and the log
    /// commands. With a memory store (a dry run), no log is served and no checkpoint signed
    /// [env: PARMANA_LOG_ANCHOR; config: server.log_anchor; no default].
    #[arg(long, value_name = "FILE")]
    log_anchor: Option<PathBuf>,
    /// Serve /log/* without a token (the checkpoint, tiles and entry bundles are public;
    /// the proof route still needs `read`) [env: PARMANA_LOG_PUBLIC; config: server.log_public].
    #[arg(long)]
    log_public: bool,
    /// A witness to have each checkpoint cosigned by: its C2SP tlog-witness submission prefix
    /// (`POST URL/add-checkpoint`; repeatable, up to 32, asked at once), such as `parmana log witness
    /// --serve` listens on. Where the trust root's `log` role lists witnesses, /log/checkpoint
    /// and the execution proofs are then the newest checkpoint cosigned as far as it requires,
    /// so `verify --proof` accepts them (without, the checkpoints served carry the log's
    /// signatures only). Needs a log key. With a memory store (a dry run), no log is served
    /// and no witness asked [env: PARMANA_WITNESS_URL (URLs separated by spaces);
    /// config: server.witness_url; no default].
    #[arg(long, value_name = "URL")]
    witness_url: Vec<String>,
    /// A PEM file of the certificate authorities an `https://` witness's certificate must chain
    /// to, in place of the Web PKI roots built into the binary (a private or enterprise CA; read
    /// at start, at most 1 MiB) [env: PARMANA_WITNESS_CA; config: server.witness_ca; no default:
    /// the Web PKI roots].
    #[arg(long, value_name = "FILE")]
    witness_ca: Option<PathBuf>,
    /// How often the background sequencer integrates completed executions into the log, in
    /// milliseconds (it also runs once more on graceful shutdown), from 1 to 3600000
    /// [env: PARMANA_SEQUENCE_INTERVAL_MS; config: server.sequence_interval_ms; default: 1000].
    #[arg(long, value_name = "MS")]
    sequence_interval_ms: Option<u64>,
    /// An attestation signing key (PKCS#8 PEM), as `execute --key` takes it (repeatable)
    /// [env: PARMANA_KEYS; config: keys; default: trust/keys/attestation.pem].
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Print the OpenAPI 3.1 document the server serves at /openapi.json, and exit.
    #[arg(long)]
    print_openapi: bool,
    #[command(flatten)]
    environment: EnvironmentArgs,
    #[command(flatten)]
    store: StoreArgs,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The values of `log_level`, least verbose first.
const LOG_LEVELS: [(&str, LogLevel); 4] = [
    ("error", LogLevel::Error),
    ("warn", LogLevel::Warn),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
];

/// `setting` when its value is one of `allowed`; refused otherwise, named with where it came
/// from as every other value of the configuration is (a flag's is a usage error).
fn one_of(
    setting: Setting<String>,
    key: config::Key,
    allowed: &[&str],
) -> Result<Setting<String>, Failure> {
    if allowed.contains(&setting.value.as_str()) {
        return Ok(setting);
    }
    let code = match setting.source {
        config::Source::Flag(_) => "cli.usage",
        _ => "cli.invalid_config",
    };
    let expected = allowed
        .iter()
        .map(|value| format!("`{value}`"))
        .collect::<Vec<_>>();
    Err(Failure::new(
        code,
        format!(
            "{}: {:?} is not a valid `{}` (expected {})",
            setting.source.origin(),
            setting.value,
            key.name,
            match expected.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            }
        ),
        ExitClass::Usage,
    ))
}

/// The authorities of `--witness-ca` (`PARMANA_WITNESS_CA`, `server.witness_ca`), read: a file
/// that is not PEM certificates is `server.tls_invalid` (exit 2), named with where it was given.
pub(crate) fn read_witness_roots(
    ca: Option<&Setting<PathBuf>>,
) -> Result<Option<parmana_server::WitnessRoots>, Failure> {
    ca.map(|ca| {
        parmana_server::WitnessRoots::read(&ca.value).map_err(|e| {
            let mut failure = server_failure(&e);
            failure.message = format!(
                "{} ({})",
                failure.message,
                config::how_to_set(&ca.source, config::WITNESS_CA)
            );
            failure
        })
    })
    .transpose()
}

/// A server's refusal as the command reports it: its own code, and the exit of its class for a
/// refusal of the runtime or the system; the others are the command's configuration (exit 2),
/// for `serve` and `log witness --serve` alike (one code, one exit).
pub(crate) fn server_failure(error: &ServerError) -> Failure {
    Failure::new(
        error.code(),
        error.to_string(),
        match error {
            ServerError::Runtime(_) | ServerError::Io { .. } => ExitClass::from(error.class()),
            _ => ExitClass::Usage,
        },
    )
}

/// The flags of `parmana serve` that set `[server]` values (none of them for `parmana config`).
#[derive(Debug, Default)]
pub(crate) struct ServerFlags<'a> {
    listen: Option<SocketAddr>,
    tokens: Option<&'a Path>,
    tls_cert: Option<&'a Path>,
    tls_key: Option<&'a Path>,
    tls_client_ca: Option<&'a Path>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_concurrency: Option<usize>,
    max_connections: Option<usize>,
    request_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    shutdown_delay_ms: Option<u64>,
    max_connection_age_ms: Option<u64>,
    log_format: Option<String>,
    log_level: Option<String>,
    log_signals: bool,
    log_key: &'a [PathBuf],
    log_anchor: Option<&'a Path>,
    log_public: bool,
    witness_url: &'a [String],
    witness_ca: Option<&'a Path>,
    sequence_interval_ms: Option<u64>,
}

impl ServeArgs {
    fn server_flags(&self) -> ServerFlags<'_> {
        ServerFlags {
            listen: self.listen,
            tokens: self.tokens.as_deref(),
            tls_cert: self.tls_cert.as_deref(),
            tls_key: self.tls_key.as_deref(),
            tls_client_ca: self.tls_client_ca.as_deref(),
            max_body_bytes: self.max_body_bytes,
            max_header_bytes: self.max_header_bytes,
            max_concurrency: self.max_concurrency,
            max_connections: self.max_connections,
            request_timeout_ms: self.request_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            shutdown_grace_ms: self.shutdown_grace_ms,
            shutdown_delay_ms: self.shutdown_delay_ms,
            max_connection_age_ms: self.max_connection_age_ms,
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            log_signals: self.log_signals,
            log_key: &self.log_key,
            log_anchor: self.log_anchor.as_deref(),
            log_public: self.log_public,
            witness_url: &self.witness_url,
            witness_ca: self.witness_ca.as_deref(),
            sequence_interval_ms: self.sequence_interval_ms,
        }
    }
}

/// The `[server]` values, each with where it came from (flag, variable, file or default):
/// what `parmana serve` runs with, and what `parmana config` prints.
#[derive(Debug)]
pub(crate) struct ServerValues {
    pub(crate) listen: Setting<SocketAddr>,
    pub(crate) tokens: Option<Setting<PathBuf>>,
    pub(crate) tls_cert: Option<Setting<PathBuf>>,
    pub(crate) tls_key: Option<Setting<PathBuf>>,
    pub(crate) tls_client_ca: Option<Setting<PathBuf>>,
    pub(crate) max_body_bytes: Setting<usize>,
    pub(crate) max_header_bytes: Setting<usize>,
    pub(crate) max_concurrency: Setting<usize>,
    pub(crate) max_connections: Setting<usize>,
    pub(crate) request_timeout_ms: Setting<u64>,
    pub(crate) idle_timeout_ms: Setting<u64>,
    pub(crate) shutdown_grace_ms: Setting<u64>,
    pub(crate) shutdown_delay_ms: Setting<u64>,
    pub(crate) max_connection_age_ms: Setting<u64>,
    /// `text` or `json` (anything else is refused when resolving).
    pub(crate) log_format: Setting<String>,
    /// `error`, `warn`, `info` or `debug` (anything else is refused when resolving).
    pub(crate) log_level: Setting<String>,
    pub(crate) log_signals: Setting<bool>,
    /// A key of the trust root's `log` role (read and checked when the server starts).
    pub(crate) log_key: Option<Setting<Vec<PathBuf>>>,
    /// The log anchor (read when the server starts).
    pub(crate) log_anchor: Option<Setting<PathBuf>>,
    pub(crate) log_public: Setting<bool>,
    /// The witnesses to have checkpoints cosigned by.
    pub(crate) witness_url: Option<Setting<Vec<String>>>,
    /// The authorities an `https://` witness's certificate must chain to (read at start).
    pub(crate) witness_ca: Option<Setting<PathBuf>>,
    pub(crate) sequence_interval_ms: Setting<u64>,
}

impl ServerValues {
    /// Resolves every `[server]` value: flag, variable, `parmana.toml`, default. A value that
    /// does not parse, or a log format or level not among its values, is `cli.invalid_config`
    /// (`cli.usage` from a flag).
    pub(crate) fn resolve(
        deployment: &Deployment,
        flags: &ServerFlags<'_>,
    ) -> Result<Self, Failure> {
        let default_listen = DEFAULT_LISTEN
            .parse::<SocketAddr>()
            .map_err(|e| Failure::new("cli.usage", e.to_string(), ExitClass::Usage))?;
        let defaults = Limits::default();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let log_format = one_of(
            deployment.server_value(
                config::LOG_FORMAT,
                flags.log_format.clone(),
                "text".to_owned(),
            )?,
            config::LOG_FORMAT,
            &["text", "json"],
        )?;
        let log_level = one_of(
            deployment.server_value(
                config::LOG_LEVEL,
                flags.log_level.clone(),
                "info".to_owned(),
            )?,
            config::LOG_LEVEL,
            &LOG_LEVELS.map(|(name, _)| name),
        )?;
        Ok(Self {
            listen: deployment.server_value(config::LISTEN, flags.listen, default_listen)?,
            tokens: deployment.server_path(config::TOKENS, flags.tokens),
            tls_cert: deployment.server_path(config::TLS_CERT, flags.tls_cert),
            tls_key: deployment.server_path(config::TLS_KEY, flags.tls_key),
            tls_client_ca: deployment.server_path(config::TLS_CLIENT_CA, flags.tls_client_ca),
            max_body_bytes: deployment.server_value(
                config::MAX_BODY_BYTES,
                flags.max_body_bytes,
                defaults.max_body_bytes,
            )?,
            max_header_bytes: deployment.server_value(
                config::MAX_HEADER_BYTES,
                flags.max_header_bytes,
                defaults.max_header_bytes,
            )?,
            max_concurrency: deployment.server_value(
                config::MAX_CONCURRENCY,
                flags.max_concurrency,
                defaults.max_concurrency,
            )?,
            max_connections: deployment.server_value(
                config::MAX_CONNECTIONS,
                flags.max_connections,
                defaults.max_connections,
            )?,
            request_timeout_ms: deployment.server_value(
                config::REQUEST_TIMEOUT_MS,
                flags.request_timeout_ms,
                millis(defaults.request_timeout),
            )?,
            idle_timeout_ms: deployment.server_value(
                config::IDLE_TIMEOUT_MS,
                flags.idle_timeout_ms,
                millis(defaults.idle_timeout),
            )?,
            shutdown_grace_ms: deployment.server_value(
                config::SHUTDOWN_GRACE_MS,
                flags.shutdown_grace_ms,
                millis(defaults.shutdown_grace),
            )?,
            shutdown_delay_ms: deployment.server_value(
                config::SHUTDOWN_DELAY_MS,
                flags.shutdown_delay_ms,
                millis(defaults.shutdown_delay),
            )?,
            max_connection_age_ms: deployment.server_value(
                config::MAX_CONNECTION_AGE_MS,
                flags.max_connection_age_ms,
                millis(defaults.max_connection_age),
            )?,
            log_format,
            log_level,
            log_signals: deployment.server_value(
                config::LOG_SIGNALS,
                flags.log_signals.then_some(true),
                false,
            )?,
            log_key: deployment.log_keys(flags.log_key)?,
            log_anchor: deployment.server_path(config::LOG_ANCHOR, flags.log_anchor),
            log_public: deployment.server_value(
                config::LOG_PUBLIC,
                flags.log_public.then_some(true),
                false,
            )?,
            witness_url: deployment.witness_urls(flags.witness_url)?,
            witness_ca: deployment.server_path(config::WITNESS_CA, flags.witness_ca),
            sequence_interval_ms: deployment.server_value(
                config::SEQUENCE_INTERVAL_MS,
                flags.sequence_interval_ms,
                1000,
            )?,
        })
    }
}

/// The AuthZEN mapping of `[server.authzen]` (in the file only).
pub(crate) fn authzen_settings(deployment: &Deployment) -> AuthzenSettings {
    deployment
        .server_file()
        .and_then(|(_, server)| server.authzen.as_ref())
        .map(|file| AuthzenSettings {
            default_policy: file.default_policy.clone(),
            pdp_url: file.pdp_url.clone(),
            policies: file
                .policies
                .iter()
                .map(|p| AuthzenPolicy {
                    policy: p.policy.clone(),
                    resource_types: p.resource_types.clone(),
                    permit: p.permit.clone(),
                })
                .collect(),
        })
        .unwrap_or_default()
}

impl ServerValues {
    /// Refuses what `serve` would refuse of these values alone, before any file is read or any
    /// store opened (and what `parmana config` refuses too): a limit out of its range
    /// (`server.limit_out_of_range`), TLS half configured, a public log or a log anchor
    /// without a log key (`cli.usage`).
    pub(crate) fn check(&self) -> Result<(), Failure> {
        check_limits(
            &self.limits(),
            Duration::from_millis(self.sequence_interval_ms.value),
        )
        .map_err(|e| {
            let mut failure = server_failure(&e);
            // Named with where it was given: a flag, a variable or the file.
            if let ServerError::LimitOutOfRange { name, .. } = &e
                && let Some((source, key)) = self.limit_source(name)
            {
                failure.message =
                    format!("{} ({})", failure.message, config::how_to_set(source, key));
            }
            failure
        })?;
        if self.tls_cert.is_some() != self.tls_key.is_some()
            || (self.tls_client_ca.is_some() && self.tls_cert.is_none())
        {
            return Err(Failure::new(
                "cli.usage",
                "TLS needs both a certificate and a key (--tls-cert, --tls-key); a client CA \
                 needs them too",
                ExitClass::Usage,
            ));
        }
        if self.log_key.is_none() {
            let public = self.log_public.value.then_some(&self.log_public.source);
            let anchor = self.log_anchor.as_ref().map(|anchor| &anchor.source);
            let witnesses = self.witness_url.as_ref().map(|urls| &urls.source);
            for (source, key) in [
                (public, config::LOG_PUBLIC),
                (anchor, config::LOG_ANCHOR),
                (witnesses, config::WITNESS_URL),
            ] {
                if let Some(source) = source {
                    return Err(Failure::new(
                        "cli.usage",
                        format!(
                            "{} needs a log key (--log-key, PARMANA_LOG_KEY or server.log_key)",
                            source.how_to_set(key.name)
                        ),
                        ExitClass::Usage,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where the limit `name` (as [`check_limits`] names it) was given, and its key.
    fn limit_source(&self, name: &str) -> Option<(&Source, config::Key)> {
        Some(match name {
            "max_body_bytes" => (&self.max_body_bytes.source, config::MAX_BODY_BYTES),
            "max_header_bytes" => (&self.max_header_bytes.source, config::MAX_HEADER_BYTES),
            "max_concurrency" => (&self.max_concurrency.source, config::MAX_CONCURRENCY),
            "max_connections" => (&self.max_connections.source, config::MAX_CONNECTIONS),
            "request_timeout_ms" => (&self.request_timeout_ms.source, config::REQUEST_TIMEOUT_MS),
            "idle_timeout_ms" => (&self.idle_timeout_ms.source, config::IDLE_TIMEOUT_MS),
            "shutdown_grace_ms" => (&self.shutdown_grace_ms.source, config::SHUTDOWN_GRACE_MS),
            "shutdown_delay_ms" => (&self.shutdown_delay_ms.source, config::SHUTDOWN_DELAY_MS),
            "max_connection_age_ms" => (
                &self.max_connection_age_ms.source,
                config::MAX_CONNECTION_AGE_MS,
            ),
            "sequence_interval_ms" => (
                &self.sequence_interval_ms.source,
                config::SEQUENCE_INTERVAL_MS,
            ),
            _ => return None,
        })
    }

    /// What `max_connections` is lowered to, where it is: a `max_connections` left at its
    /// default is lowered to what the hard limit on open files allows (1,024 is common), with a
    /// warning, rather than refuse the start; one that was set is kept, and the start refused if
    /// the limit cannot be raised for it. `parmana config` shows the value lowered.
    pub(crate) fn max_connections_lowered(&self) -> Option<usize> {
        if !matches!(self.max_connections.source, crate::config::Source::Default) {
            return None;
        }
        parmana_server::connections_within_open_files_limit(&self.limits())
    }

    /// The server's limits.
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes.value,
            max_header_bytes: self.max_header_bytes.value,
            max_concurrency: self.max_concurrency.value,
            max_connections: self.max_connections.value,
            request_timeout: Duration::from_millis(self.request_timeout_ms.value),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.value),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms.value),
            shutdown_delay: Duration::from_millis(self.shutdown_delay_ms.value),
            max_connection_age: Duration::from_millis(self.max_connection_age_ms.value),
        }
    }
}

/// The settings of `parmana serve`, flags first.
fn settings(
    args: &ServeArgs,
    deployment: &Deployment,
    store: &str,
) -> Result<(ServerSettings, Option<String>), Failure> {
    let values = ServerValues::resolve(deployment, &args.server_flags())?;
    values.check()?;
    let mut printed_token = None;
    // Tokens configured in the environment or `parmana.toml` are never dropped silently: a
    // deployment that names them serves with them (clap already refuses `--tokens` beside these).
    if let (true, Some(tokens)) = (args.dev_token || args.insecure_no_auth, &values.tokens) {
        let flag = if args.dev_token {
            "--dev-token"
        } else {
            "--insecure-no-auth"
        };
        return Err(Failure::new(
            "cli.usage",
            format!(
                "{flag} would serve without the tokens file {} (set by {} {}): unset it to run \
                 a trial server, or drop {flag}",
                tokens.value.display(),
                tokens.source.kind(),
                tokens.source.origin(),
            ),
            ExitClass::Usage,
        ));
    }
    let authentication = if args.dev_token {
        let (tokens, secret) = Tokens::generate_dev_token().map_err(|e| server_failure(&e))?;
        printed_token = Some(secret);
        Authentication::DevToken(tokens)
    } else if args.insecure_no_auth {
        Authentication::InsecureNoAuth
    } else {
        match &values.tokens {
            Some(path) => {
                Authentication::Tokens(Tokens::load(&path.value).map_err(|e| server_failure(&e))?)
            }
            None => return Err(server_failure(&ServerError::NoTokens)),
        }
    };
    let mut limits = values.limits();
    if let Some(fit) = values.max_connections_lowered() {
        crate::report::errln!(
            "warning[server.max_connections_lowered]: max_connections lowered from {} to {fit}: \
             the process may open {} files at most (its hard limit), and each connection, each \
             request in flight (max_concurrency {}) and 64 in reserve need one; raise the \
             limit (`ulimit -Hn`, systemd's LimitNOFILE=) or set max_connections",
            limits.max_connections,
            fit + limits.max_concurrency + 64,
            limits.max_concurrency,
        );
        limits.max_connections = fit;
    }
    // (Half-configured TLS, and a public log or an anchor without a key, were refused by
    // `check` above.)
    let tls = match (values.tls_cert, values.tls_key) {
        (Some(certificate), Some(key)) => Some(TlsFiles {
            certificate: certificate.value,
            key: key.value,
            client_ca: values.tls_client_ca.map(|ca| ca.value),
        }),
        _ => None,
    };
    let log = match &values.log_key {
        Some(paths) => Some(LogSettings {
            signers: paths
                .value
                .iter()
                .map(|path| read_private_key(path))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
            public: values.log_public.value,
            witnesses: values
                .witness_url
                .as_ref()
                .map(|urls| urls.value.clone())
                .unwrap_or_default(),
            witness_roots: read_witness_roots(values.witness_ca.as_ref())?,
        }),
        None => None,
    };
    let store_kind = if store == "memory" {
        "memory"
    } else if store.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    Ok((
        ServerSettings {
            listen: values.listen.value,
            authentication,
            tls,
            limits,
            logging: Logging {
                json: values.log_format.value == "json",
                level: LOG_LEVELS
                    .into_iter()
                    .find(|(name, _)| *name == values.log_level.value)
                    .map_or(LogLevel::Info, |(_, level)| level),
                signals: values.log_signals.value,
            },
            authzen: authzen_settings(deployment),
            store_kind: store_kind.to_owned(),
            log,
            sequencer: SequencerSettings {
                cadence: Duration::from_millis(values.sequence_interval_ms.value),
                log_keys: None,
                anchor: None,
                executed: parmana_runtime::ExecutedIds::default(),
            },
            store_timings: parmana_server::StoreTimings::new(),
            config_file: deployment.file().map(|(path, found_by)| {
                let how = match found_by {
                    crate::config::FoundBy::Env => "named by PARMANA_CONFIG",
                    crate::config::FoundBy::WalkingUp => {
                        "found walking up from the current directory"
                    }
                };
                format!("{} ({how})", path.display())
            }),
        },
        printed_token,
    ))
}

/// Runs `parmana serve` until SIGTERM or SIGINT.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    if args.print_openapi {
        outln!("{}", crate::report::Json(parmana_server::openapi_json()));
        return Ok(());
    }
    let deployment = Deployment::load()?;
    let store = args.store.location(&deployment)?;
    let (settings, token) = settings(args, &deployment, &store.value)?;
    let clock = ClockArgs {
        now: None,
        expiry_warning_days: None,
    };
    // What the server refuses at start that needs no store — off loopback without tokens, the
    // TLS files, the AuthZEN mapping, the log key's role — is refused before the store is
    // opened or created, against the environment as it is now (`bind` checks it all again
    // against the runtime's).
    let now = clock.clock().now();
    let environment = RuntimeEnvironment::load(&args.environment.config(&deployment), now)
        .map_err(|e| Failure::execution(&e))?;
    let tls_not_after = parmana_server::check_settings(&settings, &environment, now)
        .map_err(|e| server_failure(&e))?;
    // The attestation keys too: their role, none twice, the threshold met (those that cannot be
    // read are reported by the runtime's build, below, as they always are).
    let key_paths = deployment.keys(&args.key)?.value;
    let keys: Vec<_> = key_paths
        .iter()
        .filter(|path| path.exists())
        .map(|path| read_private_key(path))
        .collect::<Result<_, _>>()?;
    let signers: Vec<&dyn parmana_runtime::trust::Signer> = keys
        .iter()
        .map(|key| key as &dyn parmana_runtime::trust::Signer)
        .collect();
    if signers.len() == key_paths.len() {
        environment
            .check_signers(&signers)
            .map_err(|e| Failure::execution(&e))?;
    }
    // So are the expiry warning's window and the log anchor (read before the store too).
    warn_expiry_of(&deployment, &clock, &environment)?;
    if let Some(not_after) = tls_not_after {
        // Read again by each reload: a renewed certificate is taken without a restart.
        clock.warn_if_expiring(
            &deployment,
            "the TLS certificate (--tls-cert; renew it and reload: SIGHUP)",
            not_after,
        )?;
    }
    drop(environment);
    // The address is bound before the store is opened or created: an address in use leaves no
    // new store file behind. The server listens on it once it is built (connections meanwhile
    // are refused).
    let listening =
        parmana_server::Listening::bind(settings.listen).map_err(|e| server_failure(&e))?;
    let anchor =
        crate::execute_cmd::configured_log_anchor(&deployment, args.log_anchor.as_deref())?
            .map(Arc::new);
    crate::execute_cmd::refuse_missing_store_under_anchor(anchor.as_deref(), &store.value)?;
    // The store's latency by operation, for `/metrics`; and the ids the ledger's records hold,
    // which the sequencer notes and the store layer refuses to claim again.
    let timings = settings.store_timings.clone();
    let executed = settings.sequencer.executed.clone();
    let runtime = build_runtime_with(
        &deployment,
        parmana_runtime::Runtime::builder(args.environment.config(&deployment))
            .layer_store(move |store| parmana_server::served_store(store, &timings, &executed)),
        &args.key,
        &store.value,
        StoreOpen::CreateIfMissing,
        &clock,
    )?;
    let mut settings = settings;
    // One set of keys, checked against the `log` role once: the sequencer signs stored
    // checkpoints with them and the log routes serve checkpoints signed with them.
    let log_keys = crate::execute_cmd::configured_log_keys(&deployment, &args.log_key, &runtime)?;
    let mut log_keys: Option<Arc<[_]>> = (!log_keys.is_empty()).then(|| log_keys.into());
    // A log anchor and witnesses record the deployment's log: a memory store's (a dry run)
    // signed under its key would be a second history of that log, served, written into the
    // anchor or cosigned by the witnesses — which would then refuse the real log's next
    // checkpoint. The dry run serves no log and signs no checkpoint (its executions are still
    // sequenced).
    let witnessed = settings
        .log
        .as_ref()
        .is_some_and(|log| !log.witnesses.is_empty());
    let anchor = if store.value == "memory" && (anchor.is_some() || witnessed) {
        if log_keys.is_some() || settings.log.is_some() {
            let recorder = if anchor.is_some() {
                "the log anchor (log_anchor) records"
            } else {
                "the witnesses (witness_url) record"
            };
            crate::report::errln!(
                "warning[server.log_not_served]: the memory store is served without the \
                 transparency log: {recorder} the deployment's log, and a dry run's \
                 signed under its key would be another history of it (the log routes answer \
                 404 server.log_disabled; no checkpoint is signed or sent to a witness)"
            );
        }
        settings.log = None;
        log_keys = None;
        None
    } else {
        anchor
    };
    if let (Some(log), Some(keys)) = (settings.log.as_mut(), &log_keys) {
        log.signers = Arc::clone(keys);
    }
    // A store short of what the anchor records is refused before the server listens (its
    // full check, that the store extends the anchored checkpoint, runs with recovery).
    crate::execute_cmd::check_store_reaches_anchor(&runtime, anchor.as_deref(), &store.value)?;
    settings.sequencer.log_keys = log_keys;
    settings.sequencer.anchor = anchor;
    let server = Server::on(runtime, settings, listening).map_err(|e| server_failure(&e))?;
    let (scheme, address) = (server.scheme(), server.local_addr());
    // Printed once the signals are the server's: a SIGHUP sent on seeing it reloads.
    let mut announced = Ok(());
    let served = server.run(|| {
        announced = announce(scheme, address, token.as_deref());
        announced.is_ok()
    });
    announced?;
    served.map_err(|e| server_failure(&e))
}

/// The lines a started server prints: where it listens and, with `--dev-token`, the token.
fn announce(
    scheme: &str,
    address: std::net::SocketAddr,
    token: Option<&str>,
) -> Result<(), Failure> {
    outln!("listening on {scheme}://{address}");
    if let Some(token) = token {
        outln!("token: {token}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::CommandFactory as _;

    /// Each limit's `--help` states the range the server keeps it in (`LIMIT_RANGES`), in
    /// `parmana serve` and, for the two it takes, `parmana log witness --serve`.
    #[test]
    fn the_help_states_each_limits_range() {
        let cli = crate::Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let witness = cli
            .find_subcommand("log")
            .and_then(|log| log.find_subcommand("witness"))
            .unwrap();
        let help = |command: &clap::Command, flag: &str| {
            command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(flag))
                .and_then(|arg| arg.get_help())
                .map(|help| {
                    help.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        };
        let mut checked = 0;
        let mut lacking = Vec::new();
        for (name, min, max) in parmana_server::LIMIT_RANGES {
            let flag = name.replace('_', "-");
            let range = format!("from {min} to {max}");
            for command in [serve, witness] {
                if let Some(text) = help(command, &flag) {
                    if !text.contains(&range) {
                        lacking.push(format!(
                            "{} --{flag}: {text:?} lacks {range:?}",
                            command.get_name()
                        ));
                    }
                    checked += 1;
                }
            }
        }
        assert!(lacking.is_empty(), "{lacking:#?}");
        assert!(checked >= 10, "{checked}");
    }

    /// Every limit the server checks is named, when refused, with where it was given: a limit
    /// added to `LIMIT_RANGES` without its setting here would lose its source.
    #[test]
    fn every_limit_knows_where_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let deployment = crate::config::Deployment::at(dir.path().to_path_buf()).unwrap();
        let values =
            super::ServerValues::resolve(&deployment, &super::ServerFlags::default()).unwrap();
        for (name, _, _) in parmana_server::LIMIT_RANGES {
            let (source, key) = values
                .limit_source(name)
                .unwrap_or_else(|| panic!("{name} has no source"));
            assert_eq!(key.name, name);
            assert_eq!(source.kind(), "default", "{name}");
        }
    }
}
