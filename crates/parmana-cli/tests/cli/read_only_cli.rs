//! An auditor who may read a SQLite store but not write it, nor its directory: the commands that only read open it read-only, while a process has it open, and say how to read it when none has.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::common::{NOW, Run, execute_vip, run_in, temp_repo, without_parmana_variables};

/// The user the reading commands run as where the tests run as root (who may write anything):
/// `nobody`, through `setpriv`. Elsewhere the tests' own user, whom the modes bind.
const AUDITOR: &str = "65534";

/// Runs `parmana ARGS` in `dir` as a user who may not write the store's files or directory.
fn run_as_auditor(dir: &Path, args: &[&str]) -> Run {
    let parmana = env!("CARGO_BIN_EXE_parmana");
    let mut command = if rustix_is_root() {
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={AUDITOR}"),
            &format!("--regid={AUDITOR}"),
            "--clear-groups",
            "--",
            parmana,
        ]);
        command
    } else {
        Command::new(parmana)
    };
    without_parmana_variables(&mut command);
    let out = command
        .args(args)
        .current_dir(dir)
        .output()
        .expect("setpriv (util-linux) runs the command as nobody");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Whether the tests run as root (who reads `/proc/self/status`'s effective user id as 0).
fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_auditor_without_write_access_reads_a_store_a_process_has_open() {
    let repo = temp_repo();
    let d = repo.root();
    for id in ["audit-1", "audit-2"] {
        let out = run_in(d, &execute_vip(&["--execution-id", id, "--now", NOW]), b"");
        assert_eq!(out.code, 0, "{}", out.transcript());
    }
    let directory = d.join(".parmana");
    let store = directory.join("replay.sqlite3");
    let beside = |suffix: &str| directory.join(format!("replay.sqlite3{suffix}"));
    // Readable by everyone (the auditor), writable by no one but root.
    set_mode(d, 0o755);
    set_mode(&store, 0o444);
    set_mode(&directory, 0o555);
    let before = std::fs::read(&store).unwrap();

    // No process has the store open (its WAL and index went with the last connection), and
    // the auditor may not make them: refused, saying how to read it.
    assert!(!beside("-shm").exists());
    let refused = run_as_auditor(d, &["ledger", "verify"]);
    assert_ne!(refused.code, 0, "{}", refused.transcript());
    assert!(
        refused.stderr.contains("replay.invalid_configuration")
            && refused
                .stderr
                .contains("cannot be read without writing beside it")
            && refused
                .stderr
                .contains("while a process (the server) has the store open"),
        "{}",
        refused.transcript()
    );
    assert!(!beside("-shm").exists() && !beside("-wal").exists());

    // The same directory mounted read-only (an evidence copy): nothing can write the file, so it
    // is read as it is. Mounting takes root and a mount namespace of the test's own.
    if rustix_is_root() {
        let script = format!(
            "mount --bind {dir} {dir} && mount -o remount,ro,bind {dir} && \
             setpriv --reuid={AUDITOR} --regid={AUDITOR} --clear-groups -- {parmana} \
             --format json ledger verify",
            dir = directory.display(),
            parmana = env!("CARGO_BIN_EXE_parmana"),
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .current_dir(d)
            .env_remove("PARMANA_STORE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") || stderr.contains("Operation not permitted") {
            eprintln!("no mount namespace here (a read-only file system is not tried): {stderr}");
        } else {
            assert!(out.status.success(), "{stderr}");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["records"], 3, "{report}");
        }
    }

    // A process (a server) has it open: its WAL and index are there, readable, and the reading
    // commands read through them.
    let holder = rusqlite::Connection::open(&store).unwrap();
    let mode: String = holder
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    for suffix in ["-wal", "-shm"] {
        set_mode(&beside(suffix), 0o444);
    }
    let verified = run_as_auditor(d, &["--format", "json", "ledger", "verify"]);
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    let report: serde_json::Value = serde_json::from_str(&verified.stdout).unwrap();
    // One marks record, then the two executions.
    assert_eq!(report["records"], 3, "{}", verified.stdout);
    let shown = run_as_auditor(d, &["show", "audit-2"]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    let exported = run_as_auditor(d, &["ledger", "export"]);
    assert_eq!(exported.code, 0, "{}", exported.transcript());
    assert_eq!(exported.stdout.lines().count(), 3, "{}", exported.stdout);
    // The command that executes is refused the store, as before: it needs write access.
    let executed = run_as_auditor(
        d,
        &execute_vip(&["--execution-id", "audit-3", "--now", NOW]),
    );
    assert_ne!(executed.code, 0, "{}", executed.transcript());
    drop(holder);
    assert_eq!(std::fs::read(&store).unwrap(), before);
    // For the temporary directory's removal, where the tests do not run as root.
    set_mode(&directory, 0o755);
}
