//! Build script: decides whether this crate's PostgreSQL tests can run in this build, and if not sets `parmana_no_postgres` so that they report as ignored (docs/replay-stores.md, "Tests that need PostgreSQL").
//!
//! The tests cannot run when `PARMANA_TEST_POSTGRES_URL` is unset or empty, or when the
//! `postgres` feature is off. Under `CI=true` the cfg is never set: there the tests run, and fail
//! loudly when no server was configured. The library itself does not look at the cfg.

fn main() {
    println!("cargo::rerun-if-env-changed=PARMANA_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rustc-check-cfg=cfg(parmana_no_postgres)");
    let url_set = std::env::var_os("PARMANA_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty());
    let driver_built = std::env::var_os("CARGO_FEATURE_POSTGRES").is_some();
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    let can_run = url_set && driver_built;
    if !ci && !can_run {
        println!("cargo::rustc-cfg=parmana_no_postgres");
    }
}
