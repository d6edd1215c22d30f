//! `parmana init`: a new deployment, and the commands it prints, followed literally, reach a verified attestation.

use std::path::Path;

use crate::common::{NOW, Run, run_in};

/// Runs the commands `init` printed after "From here to a verified attestation:", one by one,
/// as a shell would: `cd DIR` changes directory, `> FILE` redirects stdout. Returns each run.
fn follow(printed: &str, start: &Path) -> Vec<(String, Run)> {
    let mut dir = start.to_path_buf();
    let mut runs = Vec::new();
    let steps = printed
        .split("From here to a verified attestation:\n")
        .nth(1)
        .unwrap_or_default();
    for line in steps.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(target) = line.strip_prefix("cd ") {
            dir = dir.join(shell_words(target).concat());
            continue;
        }
        let (command, redirect) = match line.split_once(" > ") {
            Some((command, file)) => (command, Some(file)),
            None => (line, None),
        };
        let words = shell_words(command);
        assert_eq!(words.first().map(String::as_str), Some("parmana"), "{line}");
        let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        if args.first() == Some(&"execute") {
            args.extend(["--now", NOW]);
        }
        if args.first() == Some(&"verify") {
            args.extend(["--now", NOW]);
        }
        let out = run_in(&dir, &args, b"");
        if let Some(file) = redirect {
            std::fs::write(dir.join(file), &out.stdout).unwrap();
        }
        runs.push((line.to_owned(), out));
    }
    runs
}

/// Splits a command line the way a POSIX shell does for the quoting `init` prints (single quotes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn init_then_the_printed_commands_reach_a_verified_attestation() {
    let temp = tempfile::tempdir().unwrap();
    let init = run_in(temp.path(), &["init", "my deployment", "--now", NOW], b"");
    assert_eq!(init.code, 0, "{}", init.stderr);
    insta::assert_snapshot!("init_output", init.transcript());
    let runs = follow(&init.stdout, temp.path());
    // `parmana init` plus every line it printed (`cd` included): at most five commands.
    let printed = init
        .stdout
        .split("From here to a verified attestation:\n")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let with_init = printed + 1;
    assert!(with_init <= 5, "{with_init} commands in all");
    let (last, verify) = runs.last().unwrap();
    assert!(last.starts_with("parmana verify"), "{last}");
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(verify.stdout.contains("valid: all"), "{}", verify.stdout);
    for (line, out) in &runs {
        assert_eq!(out.code, 0, "{line}: {}", out.stderr);
    }
    let root = temp.path().join("my deployment");
    // The example's tests pass, and the store is where parmana.toml says.
    let tests = run_in(
        &root,
        &["policy", "test", "policies/payments-approval/1.0.0"],
        b"",
    );
    assert_eq!(tests.code, 0, "{}", tests.stderr);
    assert!(root.join(".parmana/replay.sqlite3").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for role in ["root", "policy", "release", "attestation"] {
            let mode = std::fs::metadata(root.join(format!("trust/keys/{role}.pem")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{role}.pem is readable by others");
        }
    }
}

#[test]
fn init_never_overwrites_a_deployment() {
    let temp = tempfile::tempdir().unwrap();
    let first = run_in(temp.path(), &["init", "d", "--now", NOW], b"");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = std::fs::read(temp.path().join("d/trust/trust-root.json")).unwrap();
    let again = run_in(temp.path(), &["init", "d", "--now", NOW], b"");
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again.stderr.starts_with("error[cli.output_exists]"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(temp.path().join("d/trust/trust-root.json")).unwrap(),
        before
    );
    let past = run_in(
        temp.path(),
        &[
            "init",
            "e",
            "--now",
            NOW,
            "--expires",
            "2026-01-01T00:00:00Z",
        ],
        b"",
    );
    assert_eq!(past.code, 2, "{}", past.stderr);
    assert!(!temp.path().join("e").exists());
}
