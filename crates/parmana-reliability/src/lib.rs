//! `parmana-reliability`: the shared harness of the reliability tests and their worker process — the fixed clock, deterministic requests and store targets.
//!
//! This crate is test-only (`publish = false`). Its tests live in `tests/`; the worker
//! process the crash and race tests start is `src/bin/worker.rs`. Fixture environments and
//! the seeded random source come from `parmana-testkit`, a dev-dependency.

use std::path::Path;

use parmana_canon::Timestamp;
use parmana_replay::{
    PostgresOptions, PostgresReplayStore, ReplayError, ReplayStore, SqliteReplayStore,
};
use parmana_runtime::{
    ExecutionError, ExecutionRequest, FixedClock, Signals, parse_execution_id, parse_policy_ref,
};
use parmana_trust::{LocalSigningKey, TrustError};
use serde_json::{Value, json};

/// The fixed instant every reliability test executes at (the fixtures expire in 2036).
pub const FIXED_NOW: &str = "2026-11-28T22:00:00Z";

/// The environment variable holding the PostgreSQL URL for tests (set by `.ci/services`).
pub const POSTGRES_URL_VAR: &str = "PARMANA_TEST_POSTGRES_URL";

/// [`FIXED_NOW`] as a timestamp.
pub fn fixed_now() -> Timestamp {
    Timestamp::from_unix_seconds_saturating(1_795_903_200)
}

/// A clock reading [`FIXED_NOW`], so that every attestation is reproducible byte for byte.
pub fn fixed_clock() -> FixedClock {
    FixedClock(fixed_now())
}

/// The TEST-ONLY attestation key under `root/trust/keys/attestation.pem`.
pub fn attestation_signer(root: &Path) -> Result<LocalSigningKey, TrustError> {
    LocalSigningKey::read_pem_file(&root.join("trust").join("keys").join("attestation.pem"))
}

/// The TEST-ONLY release key under `root/trust/keys/release.pem`.
pub fn release_signer(root: &Path) -> Result<LocalSigningKey, TrustError> {
    LocalSigningKey::read_pem_file(&root.join("trust").join("keys").join("release.pem"))
}

/// Valid `claims-approval@1.0.0` signals, varied by `variant` so that every decision occurs.
pub fn claims_signals(variant: u64) -> Value {
    const COUNTRIES: [&str; 7] = ["DE", "FR", "GB", "IR", "KP", "NL", "US"];
    let country = COUNTRIES[usize::try_from(variant % 7).unwrap_or(0)];
    let mut signals = json!({
        "claim_amount": (variant % 97) * 700,
        "vip_customer": variant.is_multiple_of(3),
        "country": country,
        "policy_age_days": variant % 61,
    });
    if variant.is_multiple_of(4)
        && let Some(map) = signals.as_object_mut()
    {
        map.insert("fraud_score".to_owned(), json!(variant % 101));
    }
    signals
}

/// Valid `patient-triage@1.0.0` signals, varied by `variant`.
pub fn triage_signals(variant: u64) -> Value {
    json!({
        "symptom_severity": variant % 11,
        "heart_rate_elevated": variant % 2 == 1,
    })
}

/// The deterministic request number `n` of a stream: mostly `claims-approval`, every fifth
/// one `patient-triage`, with signals derived from `variant`.
/// Refuses an `execution_id` outside the id grammar with `runtime.invalid_execution_id`.
pub fn stream_request(
    execution_id: &str,
    n: u64,
    variant: u64,
) -> Result<ExecutionRequest, ExecutionError> {
    let (policy_id, signals) = if n % 5 == 4 {
        ("patient-triage", triage_signals(variant))
    } else {
        ("claims-approval", claims_signals(variant))
    };
    request_of(
        execution_id,
        policy_id,
        "1.0.0",
        signals,
        n.is_multiple_of(3),
    )
}

/// A request from text parts, refused with the runtime's codes when the id or the policy
/// reference is malformed.
pub fn request_of(
    execution_id: &str,
    policy_id: &str,
    policy_version: &str,
    signals: impl Into<Signals>,
    include_signals: bool,
) -> Result<ExecutionRequest, ExecutionError> {
    Ok(ExecutionRequest::new(
        parse_execution_id(execution_id)?,
        parse_policy_ref(&format!("{policy_id}@{policy_version}"))?,
        signals,
    )
    .with_signals_included(include_signals))
}

/// The URL of the PostgreSQL server for tests.
///
/// `Ok(Some(url))` when [`POSTGRES_URL_VAR`] is set; `Err` when it is missing and `CI=true`
/// (PostgreSQL tests must run in CI — the test fails); `Ok(None)` locally (the test skips,
/// after printing why).
pub fn postgres_url() -> Result<Option<String>, String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => Err(format!(
            "CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL reliability tests must \
             run in CI (.ci/services starts a server and exports it)"
        )),
        _ => {
            eprintln!(
                "SKIPPED: PostgreSQL reliability test — set {POSTGRES_URL_VAR}=postgres://… \
                 (for example by `source .ci/services`) to run it"
            );
            Ok(None)
        }
    }
}

/// A name unique to this process and call, usable as a PostgreSQL schema (`[a-z_][a-z0-9_]*`).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Opens a store target as the tests spell it: `sqlite:PATH` or `postgres:SCHEMA` (the server
/// is [`POSTGRES_URL_VAR`]; `pool_size` connections).
pub fn open_target(target: &str, pool_size: usize) -> Result<Box<dyn ReplayStore>, ReplayError> {
    match target.split_once(':') {
        Some(("sqlite", path)) => Ok(Box::new(SqliteReplayStore::open(path)?)),
        Some(("postgres", schema)) => {
            let url =
                std::env::var(POSTGRES_URL_VAR).map_err(|_| ReplayError::InvalidConfiguration {
                    message: format!("{POSTGRES_URL_VAR} is not set"),
                })?;
            let options = PostgresOptions {
                schema: schema.to_owned(),
                pool_size,
                ..PostgresOptions::default()
            };
            Ok(Box::new(PostgresReplayStore::connect(&url, &options)?))
        }
        _ => Err(ReplayError::InvalidConfiguration {
            message: format!("unknown target {target:?}: expected sqlite:PATH or postgres:SCHEMA"),
        }),
    }
}

/// The id of race execution number `index`.
pub fn race_id(index: u64) -> String {
    format!("race-{index:04}")
}

/// What contender `contender` submits for race execution number `index`: even indexes carry
/// the same signals for every contender, odd indexes signals that differ per contender.
pub fn race_request(index: u64, contender: u64) -> Result<ExecutionRequest, ExecutionError> {
    let variant = if index.is_multiple_of(2) {
        index
    } else {
        index + 1_000 * (contender + 1)
    };
    request_of(
        &race_id(index),
        "claims-approval",
        "1.0.0",
        claims_signals(variant),
        false,
    )
}

/// The `k`-th index contender `contender` submits out of `count`: every contender visits every
/// index once, contenders in different orders (forwards, backwards, strided) so that they collide.
pub fn race_order(k: u64, contender: u64, count: u64) -> u64 {
    if count == 0 {
        return 0;
    }
    let offset = contender.wrapping_mul(97) % count;
    if contender.is_multiple_of(2) {
        (k + offset) % count
    } else {
        (count - 1 - k % count + offset) % count
    }
}
