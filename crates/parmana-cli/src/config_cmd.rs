//! `parmana config`: print the effective deployment settings and where each came from.

use std::path::PathBuf;

use crate::common::EnvironmentArgs;
use crate::config::{
    self, CONFIG_ENV, CONFIG_FILE_NAME, Deployment, FoundBy, Key, NO_CONFIG_FILE, Setting, Source,
    redact_store,
};
use crate::report::{Failure, Format, Json, outln};
use crate::serve_cmd::{ServerFlags, ServerValues, authzen_settings};
use crate::store::StoreArgs;

const CONFIG_EXAMPLES: &str = "\
Each setting comes from the first of: its flag, its PARMANA_* variable, the configuration file
(parmana.toml in the current directory or the nearest directory above it, or the file named by
PARMANA_CONFIG; PARMANA_CONFIG=/dev/null reads none), the default. Relative paths in the file
resolve against the file's directory; defaults resolve against the file's directory too (the
deployment root), or against the current directory when there is no file. There is no default
store.

Examples:
  parmana config
  parmana config --store memory --format json";

/// Arguments of `parmana config`: the same flags as `execute`, to see what they would change.
#[derive(Debug, clap::Args)]
#[command(after_help = CONFIG_EXAMPLES)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    environment: EnvironmentArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// An attestation signing key, as `execute --key` takes it (repeatable).
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The expiry warning window in days, as the commands that warn take it.
    #[arg(long, value_name = "DAYS")]
    expiry_warning_days: Option<u32>,
}

/// One row of the report: a setting's name, its value as text, and its source.
struct Row {
    name: String,
    value: serde_json::Value,
    shown: String,
    source: Option<Source>,
}

fn path_row(name: impl Into<String>, setting: Setting<PathBuf>) -> Row {
    let shown = setting.value.display().to_string();
    Row {
        name: name.into(),
        value: serde_json::Value::String(shown.clone()),
        shown,
        source: Some(setting.source),
    }
}

/// A setting's row listing paths: a JSON list, shown comma-separated.
fn paths_row(name: impl Into<String>, setting: Setting<Vec<PathBuf>>) -> Row {
    let paths: Vec<String> = setting
        .value
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Row {
        name: name.into(),
        shown: paths.join(", "),
        value: serde_json::json!(paths),
        source: Some(setting.source),
    }
}

/// The name `parmana config` shows for a `[server]` setting: `server.` and its key.
fn server_name(key: &str) -> String {
    format!("{SERVER_TABLE}.{key}")
}

/// The table of `parmana serve`'s settings in `parmana.toml`.
const SERVER_TABLE: &str = "server";

/// A `[server]` value's row.
fn value_row<T: ToString + serde::Serialize>(key: Key, setting: Setting<T>) -> Row {
    Row {
        name: server_name(key.name),
        value: serde_json::json!(setting.value),
        shown: setting.value.to_string(),
        source: Some(setting.source),
    }
}

/// A `[server]` file's row: its path, or none.
fn optional_path_row(key: Key, setting: Option<Setting<PathBuf>>, none: &str) -> Row {
    match setting {
        Some(setting) => path_row(server_name(key.name), setting),
        None => absent_row(key, none),
    }
}

/// A `[server]` setting's row when nothing sets it: `none` says what that means.
fn absent_row(key: Key, none: &str) -> Row {
    Row {
        name: server_name(key.name),
        value: serde_json::Value::Null,
        shown: none.to_owned(),
        source: None,
    }
}

/// The rows of `parmana serve`'s settings (`[server]`), resolved as `serve` resolves them
/// without its flags.
fn server_rows(deployment: &Deployment) -> Result<Vec<Row>, Failure> {
    let values = ServerValues::resolve(deployment, &ServerFlags::default())?;
    values.check()?;
    let lowered = values.max_connections_lowered();
    let authzen = authzen_settings(deployment);
    let authzen_row = if authzen.policies.is_empty()
        && authzen.default_policy.is_none()
        && authzen.pdp_url.is_none()
    {
        Row {
            name: server_name("authzen"),
            value: serde_json::Value::Null,
            shown: "(none: the AuthZEN routes answer no resource type)".to_owned(),
            source: None,
        }
    } else {
        let policies: Vec<serde_json::Value> = authzen
            .policies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "policy": p.policy,
                    "resource_types": p.resource_types,
                    "permit": p.permit,
                })
            })
            .collect();
        let shown = authzen
            .policies
            .iter()
            .map(|p| {
                format!(
                    "{} [{}] permit {}",
                    p.policy,
                    p.resource_types.join(", "),
                    p.permit
                        .as_ref()
                        .map_or_else(|| "(the policy's)".to_owned(), |permit| permit.join(", "))
                )
            })
            .chain(
                authzen
                    .default_policy
                    .iter()
                    .map(|d| format!("default {d}")),
            )
            .chain(authzen.pdp_url.iter().map(|url| format!("pdp_url {url}")))
            .collect::<Vec<_>>()
            .join("; ");
        Row {
            name: server_name("authzen"),
            value: serde_json::json!({
                "default_policy": authzen.default_policy,
                "pdp_url": authzen.pdp_url,
                "policies": policies,
            }),
            shown,
            source: deployment
                .server_file()
                .map(|(path, _)| Source::File(path.to_path_buf())),
        }
    };
    Ok(vec![
        Row {
            name: server_name(config::LISTEN.name),
            value: serde_json::json!(values.listen.value.to_string()),
            shown: values.listen.value.to_string(),
            source: Some(values.listen.source),
        },
        optional_path_row(
            config::TOKENS,
            values.tokens,
            "(none: serve needs --tokens, --dev-token or --insecure-no-auth)",
        ),
        optional_path_row(config::TLS_CERT, values.tls_cert, "(none: plain HTTP)"),
        optional_path_row(config::TLS_KEY, values.tls_key, "(none)"),
        optional_path_row(
            config::TLS_CLIENT_CA,
            values.tls_client_ca,
            "(none: no client certificates asked)",
        ),
        value_row(config::MAX_BODY_BYTES, values.max_body_bytes),
        value_row(config::MAX_HEADER_BYTES, values.max_header_bytes),
        value_row(config::MAX_CONCURRENCY, values.max_concurrency),
        match lowered {
            // Lowered as `serve` lowers it: the value it would serve with, and why.
            Some(fit) => Row {
                name: server_name(config::MAX_CONNECTIONS.name),
                value: serde_json::json!(fit),
                shown: format!(
                    "{fit} (lowered from {} to fit the hard limit on open files, as serve \
                     lowers it)",
                    values.max_connections.value
                ),
                source: Some(values.max_connections.source),
            },
            None => value_row(config::MAX_CONNECTIONS, values.max_connections),
        },
        value_row(config::REQUEST_TIMEOUT_MS, values.request_timeout_ms),
        value_row(config::IDLE_TIMEOUT_MS, values.idle_timeout_ms),
        value_row(config::SHUTDOWN_GRACE_MS, values.shutdown_grace_ms),
        value_row(config::SHUTDOWN_DELAY_MS, values.shutdown_delay_ms),
        value_row(config::MAX_CONNECTION_AGE_MS, values.max_connection_age_ms),
        value_row(config::LOG_FORMAT, values.log_format),
        value_row(config::LOG_LEVEL, values.log_level),
        value_row(config::LOG_SIGNALS, values.log_signals),
        match values.log_key {
            Some(keys) => paths_row(server_name(config::LOG_KEY.name), keys),
            None => absent_row(
                config::LOG_KEY,
                "(none: no checkpoints signed, no log served)",
            ),
        },
        optional_path_row(
            config::LOG_ANCHOR,
            values.log_anchor,
            "(none: checkpoints are checked against the store's alone)",
        ),
        value_row(config::LOG_PUBLIC, values.log_public),
        match values.witness_url {
            Some(urls) => Row {
                name: server_name(config::WITNESS_URL.name),
                shown: urls.value.join(", "),
                value: serde_json::json!(urls.value),
                source: Some(urls.source),
            },
            None => absent_row(
                config::WITNESS_URL,
                "(none: checkpoints are served with the log's signatures only)",
            ),
        },
        optional_path_row(
            config::WITNESS_CA,
            values.witness_ca,
            "(none: an https witness is checked against the Web PKI roots built in)",
        ),
        value_row(config::SEQUENCE_INTERVAL_MS, values.sequence_interval_ms),
        authzen_row,
    ])
}

/// Runs `parmana config`.
pub(crate) fn config(args: &ConfigArgs, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let environment = &args.environment;
    let store = deployment.store(args.store.store.as_deref())?;
    let keys = deployment.keys(&args.key)?;
    let days = deployment.expiry_warning_days(args.expiry_warning_days)?;
    let mut rows = vec![
        path_row(
            config::POLICIES.name,
            deployment.path(config::POLICIES, environment.policies.as_deref()),
        ),
        path_row(
            config::PINNED_ROOT.name,
            deployment.path(
                config::PINNED_ROOT,
                environment.trust.pinned_root.as_deref(),
            ),
        ),
        path_row(
            config::TRUST_ROOT.name,
            deployment.path(config::TRUST_ROOT, environment.trust.trust_root.as_deref()),
        ),
        path_row(
            config::RELEASE_MANIFEST.name,
            deployment.path(
                config::RELEASE_MANIFEST,
                environment.release_manifest.as_deref(),
            ),
        ),
        match store {
            Some(store) => {
                let shown = redact_store(&store.value);
                Row {
                    name: config::STORE.name.to_owned(),
                    value: serde_json::Value::String(shown.clone()),
                    shown,
                    source: Some(store.source),
                }
            }
            None => Row {
                name: config::STORE.name.to_owned(),
                value: serde_json::Value::Null,
                shown: "(none: execute, recover, show, ledger, serve and the log commands that \
                         read a store refuse until one is named)"
                    .to_owned(),
                source: None,
            },
        },
        paths_row(config::KEYS.name, keys),
        Row {
            name: config::EXPIRY_WARNING_DAYS.name.to_owned(),
            value: serde_json::json!(days.value),
            shown: days.value.to_string(),
            source: Some(days.source),
        },
    ];
    rows.extend(server_rows(&deployment)?);
    let file = deployment.file();
    match format {
        Format::Human => {
            match file {
                Some((path, FoundBy::WalkingUp)) => outln!(
                    "config file: {} (found from {} upwards)",
                    path.display(),
                    deployment.cwd().display()
                ),
                Some((path, FoundBy::Env)) => {
                    outln!("config file: {} (named by {CONFIG_ENV})", path.display())
                }
                None if deployment.no_file_named() => outln!(
                    "config file: none ({CONFIG_ENV}={NO_CONFIG_FILE}: none read, none searched)"
                ),
                None => outln!(
                    "config file: none ({CONFIG_FILE_NAME} not found from {} upwards; {CONFIG_ENV} unset)",
                    deployment.cwd().display()
                ),
            }
            let width = rows.iter().map(|row| row.shown.len()).max().unwrap_or(0);
            let names = rows.iter().map(|row| row.name.len() + 2).max().unwrap_or(0);
            outln!("{:<names$}{:<width$}  SOURCE", "SETTING", "VALUE");
            for row in &rows {
                let source = match &row.source {
                    Some(Source::Default) => "default".to_owned(),
                    Some(source) => format!("{} {}", source.kind(), source.origin()),
                    None => "-".to_owned(),
                };
                outln!("{:<names$}{:<width$}  {source}", row.name, row.shown);
            }
        }
        Format::Json => {
            let settings: serde_json::Map<String, serde_json::Value> = rows
                .into_iter()
                .map(|row| {
                    let source = row.source.as_ref();
                    (
                        row.name.clone(),
                        serde_json::json!({
                            "value": row.value,
                            "source": source.map(Source::kind),
                            "origin": source.map(Source::origin).filter(|o| !o.is_empty()),
                        }),
                    )
                })
                .collect();
            outln!(
                "{}",
                Json(serde_json::json!({
                    "config_file": file.map(|(path, _)| path.display().to_string()),
                    // `PARMANA_CONFIG` also when it named /dev/null: no file, none searched.
                    "found_by": match file {
                        Some((_, FoundBy::Env)) => Some(CONFIG_ENV),
                        Some((_, FoundBy::WalkingUp)) => Some("walking_up"),
                        None if deployment.no_file_named() => Some(CONFIG_ENV),
                        None => None,
                    },
                    "settings": settings,
                }))
            );
        }
    }
    Ok(())
}
