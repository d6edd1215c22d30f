//! Shared helpers of the `parmana` binary tests: run the real binary, copy the repository layout to a temp dir (through `parmana-testkit`).

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Signals of the README example (decided by the default rule: escalate).
pub(crate) const README_SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;

/// Signals a VIP claim is approved with.
pub(crate) const VIP_SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":true,"country":"DE","policy_age_days":400}"#;

/// The arguments of `parmana execute` for the VIP claim (`claims-approval@1.0.0` with
/// [`VIP_SIGNALS`]), followed by `rest`.
pub(crate) fn execute_vip<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        VIP_SIGNALS,
    ];
    args.extend_from_slice(rest);
    args
}

pub(crate) use parmana_testkit::{
    NOW, legacy_bundles, legacy_js_bundles, repository_root as repo_root,
};

/// What one run of the binary did.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr, for snapshots.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `parmana ARGS` in `dir` with `stdin`.
pub(crate) fn run_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    run_with_env(dir, args, stdin, &[])
}

/// Runs `parmana ARGS` in `dir` with `stdin` and exactly the `PARMANA_*` variables of `env`
/// (those of the environment running the tests are removed, so that tests are hermetic).
pub(crate) fn run_with_env(dir: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut command = parmana_command(dir, args);
    command.envs(env.iter().copied());
    let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
    // A command refused before it reads its input (a usage error) may be gone already.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `parmana ARGS` in `dir` (no input), killed and failed if it has not exited within 20
/// seconds: for a command that must not wait on what it was given (a named pipe), so that a
/// regression fails the test instead of hanging the run. Its output must be small (read once it
/// has exited).
pub(crate) fn run_within_deadline(dir: &Path, args: &[&str]) -> Run {
    let mut child = parmana_command(dir, args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("parmana {args:?} did not exit within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `parmana ARGS` in `dir`, with no `PARMANA_*` variable of the tests' environment, its output
/// and errors piped: the command the runners above spawn.
fn parmana_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parmana"));
    without_parmana_variables(&mut command);
    command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Removes from `command` the `PARMANA_*` variables of the environment running the tests, so
/// that tests are hermetic.
pub(crate) fn without_parmana_variables(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PARMANA_") {
            command.env_remove(name);
        }
    }
}

/// Runs `parmana ARGS` in `dir` while this process holds an exclusive lock on the directory
/// `locked`, checks that the command is still waiting half a second later, then lets go of the
/// lock and returns what the command did.
pub(crate) fn run_waiting_for_lock(
    dir: &Path,
    locked: &Path,
    args: &[&str],
) -> std::process::Output {
    let held = std::fs::File::open(locked).unwrap();
    held.lock().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_parmana"));
    without_parmana_variables(&mut command);
    let mut child = command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "{args:?} did not wait for the lock on {}",
        locked.display()
    );
    held.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    // It said why it waited.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting for another command that holds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The arguments of `parmana log checkpoint` signing with the TEST-ONLY log key `root-1` into
/// [`LOG_STORE`] at [`NOW`].
pub(crate) const CHECKPOINT_WITH_KEY: [&str; 8] = [
    "log",
    "checkpoint",
    "--key",
    "trust/keys/root-1.pem",
    "--store",
    LOG_STORE,
    "--now",
    NOW,
];

/// Where a run's standard output goes when nobody receives it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LostStdout {
    /// A device that refuses every write (`/dev/full`: "No space left on device").
    FullDevice,
    /// A pipe whose reader is gone before the first write (`parmana … | head` once `head` is done).
    ClosedPipe,
}

/// Runs `parmana ARGS` in `dir`, as [`run_in`] does, with its standard output lost as `lost`
/// (the returned `stdout` is empty).
pub(crate) fn run_with_lost_stdout(dir: &Path, args: &[&str], lost: LostStdout) -> Run {
    let stdout = match lost {
        LostStdout::FullDevice => Stdio::from(std::fs::File::create("/dev/full").unwrap()),
        LostStdout::ClosedPipe => {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            Stdio::from(writer)
        }
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_parmana"));
    without_parmana_variables(&mut command);
    let out = command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `parmana ARGS` from the repository root.
pub(crate) fn run(args: &[&str]) -> Run {
    run_in(&repo_root(), args, b"")
}

/// A temp copy of the repository's `policies/`, `trust/` and `release-manifest.json`.
pub(crate) fn temp_repo() -> parmana_testkit::FixtureEnvironment {
    parmana_testkit::FixtureEnvironment::new().unwrap()
}

/// Copies a directory tree (for tests that stage inputs).
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    parmana_testkit::copy_tree(from, to).unwrap();
}

/// The arguments of `trust rotate` on the fixture chain: signed by `sign_with`, the root role
/// `root-2`, the policy and release roles unchanged; `rest` names the attestation keys and any
/// other role or option, `--expires` and `--now` included.
pub(crate) fn fixture_rotate<'a>(sign_with: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    fixture_rotate_roles(
        sign_with,
        ("trust/keys/policy.pub", "trust/keys/release.pub"),
        rest,
    )
}

/// [`fixture_rotate`] with the `policy` and `release` roles' public keys given (`roles`).
pub(crate) fn fixture_rotate_roles<'a>(
    sign_with: &'a str,
    roles: (&'a str, &'a str),
    rest: &[&'a str],
) -> Vec<&'a str> {
    let (policy, release) = roles;
    let mut args = vec![
        "trust",
        "rotate",
        "--sign-with",
        sign_with,
        "--root-key",
        "trust/keys/root-2.pem",
        "--policy-key",
        policy,
        "--release-key",
        release,
    ];
    args.extend_from_slice(rest);
    args
}

/// [`fixture_rotate`] with `extra` and the fixture's attestation key, expiring in 2031, at
/// [`NOW`]: the rotation most tests make.
pub(crate) fn fixture_rotate_to_2031<'a>(sign_with: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut rest = extra.to_vec();
    rest.extend_from_slice(&[
        "--attestation-key",
        "trust/keys/attestation.pub",
        "--expires",
        "2031-01-01T00:00:00Z",
        "--now",
        NOW,
    ]);
    fixture_rotate(sign_with, &rest)
}

/// The arguments of `release sign` with the fixture release key: manifest `version`, expiring in
/// 2030, at [`NOW`]; `extra` adds flags (`--force`, `--out`, …).
pub(crate) fn release_sign<'a>(version: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "release",
        "sign",
        "--key",
        "trust/keys/release.pem",
        "--version",
        version,
        "--expires",
        "2030-01-01T00:00:00Z",
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    args
}

/// The transparency log of the log and revocation tests: the origin a rotated fixture names.
pub(crate) const LOG_ORIGIN: &str = "log.example/parmana";
/// The durable store the log and revocation tests execute into.
pub(crate) const LOG_STORE: &str = "sqlite:store.sqlite";

/// `trust rotate` of the fixture chain (signed by `root-2`) to a version naming the log
/// [`LOG_ORIGIN`] with the TEST-ONLY key `root-1` as its one log key, the attestation key
/// `attestation`, and the extra flags `extra` (witnesses, revocations).
pub(crate) fn rotate_with_log(dir: &Path, attestation: &str, extra: &[&str]) -> Run {
    let mut rest = vec![
        "--attestation-key",
        attestation,
        "--log-origin",
        LOG_ORIGIN,
        "--log-key",
        "trust/keys/root-1.pub",
        "--expires",
        "2036-01-01T00:00:00Z",
        "--now",
        NOW,
    ];
    rest.extend_from_slice(extra);
    run_in(dir, &fixture_rotate("trust/keys/root-2.pem", &rest), b"")
}

/// Executes the VIP claim as `id` into [`LOG_STORE`] and writes its attestation to `<id>.json`.
pub(crate) fn execute_logged(dir: &Path, id: &str) {
    let out = run_in(
        dir,
        &execute_vip(&["--execution-id", id, "--store", LOG_STORE, "--now", NOW]),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    std::fs::write(dir.join(format!("{id}.json")), out.stdout).unwrap();
}

/// `parmana log checkpoint` of [`LOG_STORE`] with the TEST-ONLY log key `root-1`, written to
/// `file`.
pub(crate) fn checkpoint_logged(dir: &Path, file: &str) {
    let out = run_in(dir, &CHECKPOINT_WITH_KEY, b"");
    assert_eq!(out.code, 0, "{}", out.transcript());
    std::fs::write(dir.join(file), out.stdout).unwrap();
}

/// The stable code of a failed run (`error[CODE]: …` on stderr).
pub(crate) fn error_code(out: &Run) -> &str {
    let start = out.stderr.find("error[").map_or(0, |i| i + 6);
    let end = out.stderr[start..].find(']').map_or(start, |i| start + i);
    &out.stderr[start..end]
}
