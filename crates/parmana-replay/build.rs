//! Build script: decides whether this crate's PostgreSQL tests can run in this build, and if not sets `parmana_no_postgres` so that they report as ignored (docs/replay-stores.md, "Tests that need PostgreSQL").
//!
//! The tests cannot run when `PARMANA_TEST_POSTGRES_URL` is unset or empty, or when the
//! `postgres` feature is off (`parmana_no_postgres`); those over TLS also need
//! `PARMANA_TEST_POSTGRES_TLS_URL` and `PARMANA_TEST_POSTGRES_TLS_ONLY_URL`
//! (`parmana_no_postgres_tls`). Under `CI=true` the cfg is never set: there the tests run, and fail
//! loudly when no server was configured. The library itself does not look at the cfg.

fn main() {
    println!("cargo::rerun-if-env-changed=PARMANA_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PARMANA_TEST_POSTGRES_TLS_URL");
    println!("cargo::rerun-if-env-changed=PARMANA_TEST_POSTGRES_TLS_ONLY_URL");
    println!("cargo::rustc-check-cfg=cfg(parmana_no_postgres)");
    println!("cargo::rustc-check-cfg=cfg(parmana_no_postgres_tls)");
    let set = |var: &str| std::env::var_os(var).is_some_and(|url| !url.is_empty());
    let driver_built = std::env::var_os("CARGO_FEATURE_POSTGRES").is_some();
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    let can_run = set("PARMANA_TEST_POSTGRES_URL") && driver_built;
    if !ci && !can_run {
        println!("cargo::rustc-cfg=parmana_no_postgres");
    }
    // The tests over TLS need the TLS server's two URLs as well (a developer's own server
    // named by the first URL alone leaves them ignored, not passed).
    let tls_can_run = can_run
        && set("PARMANA_TEST_POSTGRES_TLS_URL")
        && set("PARMANA_TEST_POSTGRES_TLS_ONLY_URL");
    if !ci && !tls_can_run {
        println!("cargo::rustc-cfg=parmana_no_postgres_tls");
    }
}
