//! `cargo xtask cli-docs`: regenerate `docs/cli/` (shell completions and man pages) from the clap definitions of `parmana`.
//!
//! It builds and runs `parmana generate-cli-docs` (a hidden command) into a fresh `docs/cli/`,
//! so that a removed command leaves no stale page behind. The test
//! `crates/parmana-cli/tests/cli/help_cli.rs` fails when the committed files are stale.

use std::path::Path;
use std::process::Command;

/// Where the generated files are committed (the README names it).
pub(crate) const CLI_DOCS_DIR: &str = "docs/cli";

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let out = root.join(CLI_DOCS_DIR);
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--locked",
            "-p",
            "parmana-cli",
            "--",
            "generate-cli-docs",
            "--out",
        ])
        .arg(&out)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("parmana generate-cli-docs failed: {status}"));
    }
    println!("wrote {}", out.display());
    Ok(())
}
