//! `parmana-server`: the Parmana runtime as an HTTP service (`parmana serve`) — the native API, AuthZEN 1.0, health, readiness, status, Prometheus metrics, hot reload and graceful shutdown, on axum and tokio.
//!
//! The runtime is synchronous (it may block on SQLite or PostgreSQL): every call into it that
//! may touch the store, or whose size the request chooses, runs on tokio's blocking pool, never
//! on the async workers; one small pure evaluation (bounded by the policy limits, not explained)
//! runs inline. The crate depends on
//! `parmana-runtime` alone among the workspace crates, and reads no file or variable it is not
//! given: the CLI resolves the settings (`docs/configuration.md`) and builds the runtime.
//! `docs/server.md` is the API's documentation; `/openapi.json` is generated from this code.

mod access_files;
mod api;
mod auth;
mod authzen;
mod body;
#[cfg(test)]
mod body_offload_tests;
mod connections;
mod cosigning;
#[cfg(test)]
mod defect_tests;
mod descriptors;
mod error;
#[cfg(test)]
mod flatten_tests;
mod lifecycle;
mod log_cache;
#[cfg(test)]
mod log_signing_tests;
mod metrics;
mod observe;
#[cfg(test)]
mod observe_tests;
mod openapi;
#[cfg(test)]
mod readiness_tests;
#[cfg(test)]
mod refusal_tests;
mod reload;
#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod reserve_tests;
#[cfg(test)]
mod rewound_tests;
mod settings;
mod state;
mod store_timing;
mod tlog;
mod tls;
mod wire;
mod witness;

pub use auth::{Scope, Tokens};
pub use descriptors::connections_within_open_files_limit;
pub use error::ServerError;
pub use lifecycle::{Listening, Server, check_limits, check_settings};
pub use settings::{
    Authentication, AuthzenPolicy, AuthzenSettings, LIMIT_RANGES, Limits, LogLevel, LogSettings,
    Logging, MAX_HEADER_BYTES, MAX_WITNESSES, MIN_HEADER_BYTES, SequencerSettings, ServerSettings,
    TlsFiles,
};
pub use store_timing::{StoreTimings, served_store, timed_store};
pub use witness::{
    TLOG_SIZE_MEDIA_TYPE, WITNESS_ANSWER_TIMEOUT, WitnessReply, WitnessRoots, WitnessServer,
    WitnessSettings, request_cosignature, submit_add_checkpoint,
};

/// The OpenAPI 3.1 document the server serves at `/openapi.json`, as JSON.
pub fn openapi_json() -> serde_json::Value {
    serde_json::to_value(openapi::document()).unwrap_or_default()
}
