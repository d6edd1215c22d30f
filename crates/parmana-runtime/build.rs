//! Build script: sets `parmana_no_postgres` when no PostgreSQL server is configured outside CI, so that this crate's PostgreSQL tests (recovery on PostgreSQL) report as ignored (docs/replay-stores.md, "Tests that need PostgreSQL").
//!
//! The tests cannot run when `PARMANA_TEST_POSTGRES_URL` is unset or empty. Under `CI=true` the
//! cfg is never set: there the tests run, and fail loudly when no server was configured.

fn main() {
    println!("cargo::rerun-if-env-changed=PARMANA_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rustc-check-cfg=cfg(parmana_no_postgres)");
    let url_set = std::env::var_os("PARMANA_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty());
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    if !ci && !url_set {
        println!("cargo::rustc-cfg=parmana_no_postgres");
    }
}
