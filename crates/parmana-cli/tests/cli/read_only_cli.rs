//! An auditor who may read a SQLite store but not write it, nor its directory: the commands that only read open it read-only while a process has it open — its commits still in the write-ahead log included — and say how to read it when none has; a user who may write it reads it leaving nothing behind.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{NOW, Run, execute_vip, run_in, temp_repo, without_parmana_variables};

/// The user the reading commands run as where the tests run as root (who may write anything):
/// `nobody`, through `setpriv`. Elsewhere the tests' own user, whom the modes bind.
const AUDITOR: &str = "65534";

/// Whether the tests run as root (`/proc/self/status`'s effective user id is 0).
fn is_root() -> bool {
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

/// Runs the binary `parmana` in `dir` with `args`, as the auditor.
fn run_as_auditor(parmana: &Path, dir: &Path, args: &[&str]) -> Run {
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                &format!("--reuid={AUDITOR}"),
                &format!("--regid={AUDITOR}"),
                "--clear-groups",
                "--",
            ])
            .arg(parmana);
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

/// The binary the auditor runs: as root, a copy in a directory `nobody` may reach (the build's
/// may lie under a home directory only root may enter); otherwise the build's own.
fn auditor_binary(bin: &Path) -> PathBuf {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_parmana"));
    if !is_root() {
        return built;
    }
    set_mode(bin, 0o755);
    let copy = bin.join("parmana");
    std::fs::copy(&built, &copy).unwrap();
    set_mode(&copy, 0o755);
    copy
}

#[test]
fn an_auditor_without_write_access_reads_a_store_a_process_has_open() {
    let repo = temp_repo();
    let d = repo.root();
    let bin = tempfile::tempdir().unwrap();
    let parmana = auditor_binary(bin.path());
    let execute = |id: &str| {
        let out = run_in(d, &execute_vip(&["--execution-id", id, "--now", NOW]), b"");
        assert_eq!(out.code, 0, "{}", out.transcript());
    };
    execute("audit-1");
    execute("audit-2");
    let directory = d.join(".parmana");
    let store = directory.join("replay.sqlite3");
    let beside = |suffix: &str| directory.join(format!("replay.sqlite3{suffix}"));
    let lock_out = || {
        // Readable by everyone (the auditor), writable by no one but root.
        for suffix in ["", "-wal", "-shm"] {
            if beside(suffix).exists() {
                set_mode(&beside(suffix), 0o444);
            }
        }
        set_mode(&directory, 0o555);
    };
    let let_in = || {
        set_mode(&directory, 0o755);
        set_mode(&store, 0o644);
    };
    set_mode(d, 0o755);
    // A directory the auditor may not search is said as such (it read as no store at all).
    set_mode(&directory, 0o000);
    let unsearchable = run_as_auditor(&parmana, d, &["ledger", "verify"]);
    assert!(
        unsearchable.stderr.contains("replay.invalid_configuration")
            && unsearchable.stderr.contains("cannot look at")
            && unsearchable.stderr.contains("ermission denied"),
        "{}",
        unsearchable.transcript()
    );
    lock_out();

    // No process has the store open (its log and index went with the last connection), and
    // the auditor may not make them: refused, saying how to read it, and nothing made.
    assert!(!beside("-shm").exists() && !beside("-wal").exists());
    let refused = run_as_auditor(&parmana, d, &["ledger", "verify"]);
    assert_ne!(refused.code, 0, "{}", refused.transcript());
    assert!(
        refused.stderr.contains("replay.invalid_configuration")
            && refused
                .stderr
                .contains("cannot be read without writing beside it: no process has it open")
            && refused
                .stderr
                .contains("Read it while the server has it open"),
        "{}",
        refused.transcript()
    );
    assert!(!beside("-shm").exists() && !beside("-wal").exists());
    if is_root() {
        // An auditor who may write the store and its directory but does not own it is refused
        // too: its files beside the store would stay, where the server's user might not write
        // them.
        set_mode(&directory, 0o777);
        set_mode(&store, 0o666);
        let writer = run_as_auditor(&parmana, d, &["ledger", "verify"]);
        assert!(
            writer
                .stderr
                .contains("only its owner (or root), who may write it and its directory"),
            "{}",
            writer.transcript()
        );
        assert!(!beside("-shm").exists() && !beside("-wal").exists());
        lock_out();
        // A log left without its index (a process that ended, a copy): reading would fold it
        // into the database, which only the owner does.
        std::fs::write(beside("-wal"), b"").unwrap();
        let partial = run_as_auditor(&parmana, d, &["ledger", "verify"]);
        assert!(
            partial
                .stderr
                .contains("its write-ahead log and shared-memory index are not both there"),
            "{}",
            partial.transcript()
        );
        std::fs::remove_file(beside("-wal")).unwrap();
    }

    // A process (a server) has it open, and another executed meanwhile: that commit is in the
    // write-ahead log, not yet in the database file. The reading commands read it through the
    // log and index, readable only.
    let_in();
    let holder = rusqlite::Connection::open(&store).unwrap();
    let mode: String = holder
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    execute("audit-3");
    assert!(std::fs::metadata(beside("-wal")).unwrap().len() > 0);
    lock_out();
    let verified = run_as_auditor(&parmana, d, &["--format", "json", "ledger", "verify"]);
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    let report: serde_json::Value = serde_json::from_str(&verified.stdout).unwrap();
    // One marks record, then the three executions.
    assert_eq!(report["records"], 4, "{}", verified.stdout);
    let shown = run_as_auditor(&parmana, d, &["show", "audit-3"]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    let exported = run_as_auditor(&parmana, d, &["ledger", "export"]);
    assert_eq!(exported.code, 0, "{}", exported.transcript());
    assert_eq!(exported.stdout.lines().count(), 4, "{}", exported.stdout);
    // The command that executes is refused the store, as before: it needs write access.
    let executed = run_as_auditor(
        &parmana,
        d,
        &execute_vip(&["--execution-id", "audit-4", "--now", NOW]),
    );
    assert_eq!(
        (executed.code, crate::common::error_code(&executed)),
        (6, "replay.invalid_configuration"),
        "{}",
        executed.transcript()
    );
    // (Let in first: the last connection removes the log and index from the directory.)
    let_in();
    drop(holder);

    // A user who may write the store and its directory reads it when no process has it open,
    // through a connection of its own that makes the log and index and removes them as it
    // closes: nothing is left behind that the server's user might not write.
    for suffix in ["-wal", "-shm"] {
        assert!(!beside(suffix).exists(), "{suffix} left by the holder");
    }
    let owner = run_in(d, &["ledger", "verify"], b"");
    assert_eq!(owner.code, 0, "{}", owner.transcript());
    for suffix in ["-wal", "-shm"] {
        assert!(!beside(suffix).exists(), "{suffix} left by ledger verify");
    }
}
