//! What a server is started with: listen address, tokens, TLS files, limits, logging and the AuthZEN mapping — resolved by the CLI from flags, `PARMANA_*` variables and `parmana.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parmana_runtime::MAX_SIGNALS_JSON_BYTES;
use parmana_runtime::trust::LocalSigningKey;

use crate::Tokens;

/// Who may call the server.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Bearer tokens from a tokens file.
    Tokens(Tokens),
    /// One generated token holding every scope (`--dev-token`). Refused unless the listen
    /// address is loopback.
    DevToken(Tokens),
    /// No authentication: every route is open. Refused unless the listen address is loopback.
    InsecureNoAuth,
}

/// TLS from PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub certificate: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// The smallest `max_header_bytes` (HTTP/1.1's read buffer cannot be smaller).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The largest `max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// An hour, in milliseconds: the longest duration a limit may name (but a connection's age).
const HOUR_MS: usize = 3_600_000;

/// A day, in milliseconds: the longest maximum age of a connection.
const DAY_MS: usize = 24 * HOUR_MS;

/// The maximum age of a connection unless configured: ten minutes.
pub(crate) const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);

/// Each limit's name (as in `[server]`), smallest and largest value, in bytes, a count or
/// milliseconds; the server does not start with a limit outside its range
/// (`server.limit_out_of_range`).
pub const LIMIT_RANGES: [(&str, usize, usize); 10] = [
    // Up to 64 times the runtime's signals limit (a batch carries many signal sets).
    ("max_body_bytes", 1, 64 * MAX_SIGNALS_JSON_BYTES),
    ("max_header_bytes", MIN_HEADER_BYTES, MAX_HEADER_BYTES),
    // Also the blocking threads' bound (plus 16).
    ("max_concurrency", 1, 65_536),
    ("max_connections", 1, 1_048_576),
    ("request_timeout_ms", 1, HOUR_MS),
    // At least 100 ms: below it no TLS handshake, nor a request head from another machine,
    // arrives in time, and the server would listen while it accepts nothing.
    ("idle_timeout_ms", 100, HOUR_MS),
    ("shutdown_grace_ms", 0, HOUR_MS),
    ("shutdown_delay_ms", 0, HOUR_MS),
    // At least a second: a connection must live to carry a request.
    ("max_connection_age_ms", 1_000, DAY_MS),
    ("sequence_interval_ms", 1, HOUR_MS),
];

/// Request and connection limits (each within [`LIMIT_RANGES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (default: the runtime's signals limit, 1 MiB), but for
    /// `POST /v1/verify` ([`max_verify_body_bytes`](Self::max_verify_body_bytes)).
    pub max_body_bytes: usize,
    /// The largest request head (request line and headers), in bytes: from
    /// [`MIN_HEADER_BYTES`] to [`MAX_HEADER_BYTES`] (`server.limit_out_of_range` otherwise).
    pub max_header_bytes: usize,
    /// How many requests are handled at once; more are refused with 503 and `Retry-After`.
    pub max_concurrency: usize,
    /// How many connections are held open at once; more are closed when accepted.
    pub max_connections: usize,
    /// How long one request may take before it is answered with 503 `server.timeout` (408
    /// `server.body_timeout` when its body has not arrived).
    pub request_timeout: Duration,
    /// How long a connection may take to send a complete request head, counted from when it
    /// opens or from its previous answer, before it is closed: a silent, trickling or idle
    /// kept-alive connection holds a connection slot no longer.
    pub idle_timeout: Duration,
    /// On SIGTERM/SIGINT, how long requests in flight are given to finish.
    pub shutdown_grace: Duration,
    /// On SIGTERM/SIGINT, how long the server goes on accepting and serving with `/readyz`
    /// already answering 503, before it stops accepting and drains (default zero): the time a
    /// load balancer needs to see the probe fail and stop sending new connections. A second
    /// SIGTERM or SIGINT ends the wait at once.
    pub shutdown_delay: Duration,
    /// How old a connection may grow: its first answer after this carries `Connection: close`
    /// and closes it, and its writes stop `idle_timeout` after the later of this age and its
    /// newest answer (a peer that takes an answer a segment at a time, each just within the idle
    /// timeout, holds a connection slot no longer; every answer gets a whole idle timeout to be
    /// written). Clients reconnect; a load balancer's pool is renewed.
    pub max_connection_age: Duration,
}

impl Limits {
    /// The largest body of `POST /v1/verify`: three times [`max_body_bytes`](Self::max_body_bytes)
    /// and 64 KiB more, but never more than the largest attestation a verifier reads and the
    /// largest signals with it (4 MiB, 1 MiB and 64 KiB: nothing larger can be verified), nor
    /// less than `max_body_bytes`. An attestation made with `include_signals` embeds its
    /// signals, base64 encoded (4/3 of their size), besides its own fields (a few KiB), and a
    /// request to verify it may carry the signals too: an attestation this server issued, with
    /// its signals, is always taken back.
    pub fn max_verify_body_bytes(&self) -> usize {
        let verifiable = parmana_runtime::trust::MAX_ENVELOPE_BYTES
            .saturating_add(MAX_SIGNALS_JSON_BYTES)
            .saturating_add(64 * 1024);
        self.max_body_bytes
            .saturating_mul(3)
            .saturating_add(64 * 1024)
            .min(verifiable)
            .max(self.max_body_bytes)
    }
}

impl Limits {
    /// The most request-body bytes the server holds and works on at once, across every request:
    /// eight times [`max_body_bytes`](Self::max_body_bytes), and at least one body of
    /// `POST /v1/verify` (8 MiB by default). A body takes its place as its bytes
    /// arrive, and gives it back when its request and any runtime call it started are done; with
    /// no room, the request is shed (`503 server.overloaded`). (A place is taken for bytes that
    /// came: a client that declares a large `Content-Length` and sends nothing holds only a
    /// concurrency slot.) A body's JSON tree takes up to about 35 times the body,
    /// so this bounds what parsing bodies can take of the server's memory (about 300 MB by
    /// default), whatever `max_concurrency` is.
    pub fn max_body_bytes_in_flight(&self) -> usize {
        self.max_body_bytes
            .saturating_mul(8)
            .max(self.max_verify_body_bytes())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_SIGNALS_JSON_BYTES,
            max_header_bytes: 16 * 1024,
            max_concurrency: 256,
            max_connections: 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
        }
    }
}

/// How requests are logged (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Logging {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// The least severe events written.
    pub level: LogLevel,
    /// Also log the signals of each request (off by default: signals may be personal data).
    pub signals: bool,
}

/// The least severe events the server's log writes (`docs/server.md`, "Logs and metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and what an operator should look at.
    Warn,
    /// Also one line per request and the lifecycle (the default).
    #[default]
    Info,
    /// Also the refusals withheld from their callers past the first each second, a sequencer run
    /// that integrated executions, a connection that ended in its TLS handshake or could not be
    /// accepted, a witness not asked again while it answers an earlier round.
    Debug,
}

/// One policy answering AuthZEN requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzenPolicy {
    /// The policy, `id@version`.
    pub policy: String,
    /// The `resource.type` values it answers (empty: it answers only as the default).
    pub resource_types: Vec<String>,
    /// The decisions that mean `"decision": true` (every other decision means `false`); `None`:
    /// those the policy declares in its signed `permit`. Given beside the policy's own, it must
    /// name the same decisions.
    pub permit: Option<Vec<String>>,
}

/// The AuthZEN mapping (`docs/server.md`, "AuthZEN").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzenSettings {
    /// The policies that answer, each with its permitting decisions.
    pub policies: Vec<AuthzenPolicy>,
    /// The policy that answers a `resource.type` no policy names (`id@version`).
    pub default_policy: Option<String>,
    /// The Policy Decision Point identifier the metadata document names (an `https` URL, the
    /// public one where TLS is terminated in front of the server); `None`: the scheme and
    /// `Host` of each metadata request.
    pub pdp_url: Option<String>,
}

/// The most witnesses a server asks ([`LogSettings::witnesses`]): each round asks them all at
/// once, a thread each.
pub const MAX_WITNESSES: usize = 32;

/// The transparency log the server serves (`docs/server.md`, "Transparency log").
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Keys of the trust root's `log` role (at least its threshold): each signs every
    /// checkpoint served.
    pub signers: Arc<[LocalSigningKey]>,
    /// Serve `/log/*` without a token (the proof route still needs `read`).
    pub public: bool,
    /// The witnesses to have each checkpoint cosigned by: their `tlog-witness` submission
    /// prefixes (`POST <prefix>/add-checkpoint`), asked at once (at most [`MAX_WITNESSES`]). Where the trust root's `log`
    /// role lists witnesses, the log routes then serve the newest checkpoint cosigned by as many
    /// as it requires, and proofs against it (`docs/server.md`, "Transparency log"); empty: the
    /// log's own signatures only.
    pub witnesses: Vec<String>,
    /// The authorities an `https://` witness's certificate must chain to (`--witness-ca`); `None`:
    /// the Web PKI roots built into the binary.
    pub witness_roots: Option<crate::witness::WitnessRoots>,
}

/// Everything `parmana serve` needs besides the runtime.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The address to listen on (`127.0.0.1:0` picks a free port; the bound one is reported).
    pub listen: SocketAddr,
    /// Who may call.
    pub authentication: Authentication,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Limits.
    pub limits: Limits,
    /// Logging.
    pub logging: Logging,
    /// The AuthZEN mapping.
    pub authzen: AuthzenSettings,
    /// The kind of replay store (`memory`, `sqlite`, `postgres`), shown by `/v1/status`.
    pub store_kind: String,
    /// The transparency log's read API, when a log key is configured.
    pub log: Option<LogSettings>,
    /// The background sequencer of the transparency log.
    pub sequencer: SequencerSettings,
    /// The configuration file these settings were read from and how it was found (for the
    /// start log line: a file picked up from a parent directory is named), if any.
    pub config_file: Option<String>,
    /// The store's latency by operation, recorded by the [`timed_store`](crate::timed_store)
    /// put around the runtime's store and exported by `/metrics` (empty when the store was not
    /// wrapped).
    pub store_timings: crate::StoreTimings,
}

/// The background sequencer (`docs/transparency-log.md`, "The sequencer"): it integrates
/// completed executions into the ledger every `cadence` while there is new work, and once more
/// on graceful shutdown; with a `log_key` it signs and stores a checkpoint after each run that
/// grew the log.
#[derive(Debug, Clone)]
pub struct SequencerSettings {
    /// How often it runs (default 1 s).
    pub cadence: Duration,
    /// Keys of the trust root's `log` role that sign checkpoints (each signs every one, at
    /// least the role's threshold of them); none: no checkpoints.
    pub log_keys: Option<std::sync::Arc<[LocalSigningKey]>>,
    /// The largest checkpoint those keys signed, kept outside the store: every checkpoint the
    /// server signs (the sequencer's, `/log/checkpoint`, a proof's) must extend it.
    pub anchor: Option<std::sync::Arc<parmana_runtime::LogAnchor>>,
    /// Where the sequencer notes the ids the ledger's records hold: the same set the store
    /// layer of [`served_store`](crate::served_store) refuses to claim again.
    pub executed: parmana_runtime::ExecutedIds,
}

impl Default for SequencerSettings {
    fn default() -> Self {
        Self {
            cadence: Duration::from_secs(1),
            log_keys: None,
            anchor: None,
            executed: parmana_runtime::ExecutedIds::default(),
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::Limits;

    /// `POST /v1/verify` takes three times `max_body_bytes` and 64 KiB more, at most what a
    /// verifier can read with its signals (5 MiB and 64 KiB), never less than `max_body_bytes`;
    /// the body budget is eight times `max_body_bytes`, at least one verify body.
    #[test]
    fn the_verify_limit_and_the_body_budget_follow_max_body_bytes() {
        const KIB: usize = 1024;
        const MIB: usize = 1024 * KIB;
        for (max_body_bytes, verify, budget) in [
            (100, 300 + 64 * KIB, 300 + 64 * KIB),
            (MIB, 3 * MIB + 64 * KIB, 8 * MIB),
            (2 * MIB, 5 * MIB + 64 * KIB, 16 * MIB),
            (64 * MIB, 64 * MIB, 512 * MIB),
        ] {
            let limits = Limits {
                max_body_bytes,
                ..Limits::default()
            };
            assert_eq!(
                (
                    limits.max_verify_body_bytes(),
                    limits.max_body_bytes_in_flight()
                ),
                (verify, budget),
                "{max_body_bytes}"
            );
        }
    }
}
