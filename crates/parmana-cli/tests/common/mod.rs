//! Shared helpers of the `parmana` binary tests: run the real binary, copy the repository layout to a temp dir.

#![allow(dead_code)] // each test file uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Signals of the README example (decided by the default rule: escalate).
pub const README_SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;

/// Signals a VIP claim is approved with.
pub const VIP_SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":true,"country":"DE","policy_age_days":400}"#;

/// A fixed clock reading inside the validity of the test trust chain.
pub const NOW: &str = "2026-11-28T21:00:00Z";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The legacy bundles of the original tooling, vendored under `vectors/legacy-bundles/`.
pub fn legacy_bundles() -> PathBuf {
    repo_root().join("vectors/legacy-bundles")
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr, for snapshots.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `parmana ARGS` in `dir` with `stdin`.
pub fn run_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parmana"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `parmana ARGS` from the repository root.
pub fn run(args: &[&str]) -> Run {
    run_in(&repo_root(), args, b"")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A temp copy of the repository's `policies/`, `trust/` and `release-manifest.json`.
pub fn temp_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    copy_dir(&root.join("policies"), &dir.path().join("policies"));
    copy_dir(&root.join("trust"), &dir.path().join("trust"));
    std::fs::copy(
        root.join("release-manifest.json"),
        dir.path().join("release-manifest.json"),
    )
    .unwrap();
    dir
}

/// Copies a directory tree (for tests that stage inputs).
pub fn copy_tree(from: &Path, to: &Path) {
    copy_dir(from, to);
}
