//! `parmana config`: print the effective deployment settings and where each came from.

use std::path::PathBuf;

use crate::common::EnvironmentArgs;
use crate::config::{
    self, CONFIG_ENV, CONFIG_FILE_NAME, Deployment, FoundBy, Setting, Source, redact_store,
};
use crate::report::{Failure, Format, Json, outln};
use crate::store::StoreArgs;

const CONFIG_EXAMPLES: &str = "\
Each setting comes from the first of: its flag, its PARMANA_* variable, the configuration file
(parmana.toml in the current directory or the nearest directory above it, or the file named by
PARMANA_CONFIG), the default. Relative paths in the file resolve against the file's directory;
defaults resolve against the file's directory too (the deployment root), or against the current
directory when there is no file. There is no default store.

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
    name: &'static str,
    value: serde_json::Value,
    shown: String,
    source: Option<Source>,
}

fn path_row(name: &'static str, setting: Setting<PathBuf>) -> Row {
    let shown = setting.value.display().to_string();
    Row {
        name,
        value: serde_json::Value::String(shown.clone()),
        shown,
        source: Some(setting.source),
    }
}

/// Runs `parmana config`.
pub(crate) fn config(args: &ConfigArgs, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let environment = &args.environment;
    let store = deployment.store(args.store.store.as_deref());
    let keys = deployment.keys(&args.key);
    let days = deployment.expiry_warning_days(args.expiry_warning_days)?;
    let rows = vec![
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
                    name: config::STORE.name,
                    value: serde_json::Value::String(shown.clone()),
                    shown,
                    source: Some(store.source),
                }
            }
            None => Row {
                name: config::STORE.name,
                value: serde_json::Value::Null,
                shown: "(none: execute, recover, show and ledger refuse until one is named)"
                    .to_owned(),
                source: None,
            },
        },
        Row {
            name: config::KEYS.name,
            value: serde_json::json!(
                keys.value
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
            ),
            shown: keys
                .value
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            source: Some(keys.source),
        },
        Row {
            name: config::EXPIRY_WARNING_DAYS.name,
            value: serde_json::json!(days.value),
            shown: days.value.to_string(),
            source: Some(days.source),
        },
    ];
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
                None => outln!(
                    "config file: none ({CONFIG_FILE_NAME} not found from {} upwards; {CONFIG_ENV} unset)",
                    deployment.cwd().display()
                ),
            }
            let width = rows.iter().map(|row| row.shown.len()).max().unwrap_or(0);
            outln!("{:<21}{:<width$}  SOURCE", "SETTING", "VALUE");
            for row in &rows {
                let source = match &row.source {
                    Some(Source::Default) => "default".to_owned(),
                    Some(source) => format!("{} {}", source.kind(), source.origin()),
                    None => "-".to_owned(),
                };
                outln!("{:<21}{:<width$}  {source}", row.name, row.shown);
            }
        }
        Format::Json => {
            let settings: serde_json::Map<String, serde_json::Value> = rows
                .into_iter()
                .map(|row| {
                    let source = row.source.as_ref();
                    (
                        row.name.to_owned(),
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
                    "found_by": file.map(|(_, found)| match found {
                        FoundBy::Env => CONFIG_ENV,
                        FoundBy::WalkingUp => "walking_up",
                    }),
                    "settings": settings,
                }))
            );
        }
    }
    Ok(())
}
