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

/// An execution of the example payments policy `init` writes, at [`NOW`].
const EXECUTE_PAYMENT: [&str; 7] = [
    "execute",
    "--policy",
    "payments-approval@1.0.0",
    "--signals",
    r#"{"amount":120,"currency":"EUR","new_payee":false}"#,
    "--now",
    NOW,
];

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
    // Everything but the store removed to start over: the new deployment is not bound to the old
    // store, and nothing is written.
    let run = run_in(
        &temp.path().join("d"),
        &[&EXECUTE_PAYMENT[..], &["--execution-id", "old-1"]].concat(),
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in ["trust", "policies"] {
        std::fs::remove_dir_all(temp.path().join("d").join(name)).unwrap();
    }
    for name in ["release-manifest.json", "parmana.toml"] {
        std::fs::remove_file(temp.path().join("d").join(name)).unwrap();
    }
    let over = run_in(temp.path(), &["init", "d", "--now", NOW], b"");
    assert_eq!(over.code, 1, "{}", over.stderr);
    assert!(
        over.stderr.starts_with("error[cli.output_exists]")
            && over.stderr.contains(
                ".parmana already exists: it may hold an earlier deployment's replay store"
            ),
        "{}",
        over.stderr
    );
    for name in ["trust", "policies", "release-manifest.json", "parmana.toml"] {
        assert!(!temp.path().join("d").join(name).exists(), "{name}");
    }
}

/// Every path under `dir` with its permission bits, sorted (Unix).
#[cfg(unix)]
fn modes_under(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            out.push((name, metadata.permissions().mode() & 0o7777));
        }
    }
    out.sort();
    out
}

/// Under a umask that takes nothing away, `init` still leaves nothing of the deployment writable
/// by anyone but its owner (a writable `trust/` would let anyone swap the pinned root key), the
/// private keys readable by their owner alone — and no staging directory behind.
#[cfg(unix)]
/// Runs `parmana ARGS` in `dir` under `umask 000`, and asserts that it succeeds.
fn run_under_umask_000(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_parmana"))
        .args(args)
        .current_dir(dir)
        .env_remove("PARMANA_CONFIG")
        .env_remove("PARMANA_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_under_umask_000_leaves_nothing_writable_by_others() {
    let temp = tempfile::tempdir().unwrap();
    run_under_umask_000(temp.path(), &["init", "d", "--now", NOW]);
    let mut modes = modes_under(&temp.path().join("d"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let own = std::fs::metadata(temp.path().join("d")).unwrap();
        modes.push(("d itself".to_owned(), own.permissions().mode() & 0o7777));
    }
    assert!(modes.len() > 15, "{modes:?}");
    for (path, mode) in &modes {
        assert_eq!(mode & 0o022, 0, "{path} is {mode:o}");
        if path.ends_with(".pem") {
            assert_eq!(*mode, 0o600, "{path}");
        }
        assert!(!path.starts_with(".parmana-init"), "{path} left behind");
    }
    for expected in [
        "parmana.toml",
        ".gitignore",
        "release-manifest.json",
        "trust/root.pub",
        "trust/keys/attestation.pem",
    ] {
        assert!(modes.iter().any(|(path, _)| path == expected), "{expected}");
    }
    // The configuration it wrote is one the commands accept (`cli.config_unsafe` otherwise).
    let config = run_in(&temp.path().join("d"), &["config"], b"");
    assert_eq!(config.code, 0, "{}", config.stderr);
    // The store the first execution creates records every request's signals: readable by its
    // owner only, whatever the umask.
    run_under_umask_000(&temp.path().join("d"), &EXECUTE_PAYMENT);
    let store = modes_under(&temp.path().join("d/.parmana"));
    assert!(
        store.iter().any(|(path, _)| path == "replay.sqlite3"),
        "{store:?}"
    );
    for (path, mode) in &store {
        assert_eq!(mode & 0o077, 0, "{path} is {mode:o}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let directory = std::fs::metadata(temp.path().join("d/.parmana")).unwrap();
    assert_eq!(directory.permissions().mode() & 0o7777, 0o700);
}

/// `keygen` creates its files only where nothing is — not even a link to nowhere — and a refused
/// `keygen` writes no half of a key. (That a file made after this check is not replaced either is
/// `create_file_durably`'s unit test.)
#[cfg(unix)]
#[test]
fn keygen_never_writes_over_what_is_there() {
    let temp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(temp.path().join("elsewhere.pub"), temp.path().join("k.pub"))
        .unwrap();
    let out = run_in(temp.path(), &["keygen", "--out", "k.pem"], b"");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error[cli.output_exists]"),
        "{}",
        out.stderr
    );
    assert!(!temp.path().join("k.pem").exists());
    assert!(!temp.path().join("elsewhere.pub").exists());
    let made = run_in(temp.path(), &["keygen", "--out", "fresh.pem"], b"");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let modes = modes_under(temp.path());
    assert!(
        modes.contains(&("fresh.pem".to_owned(), 0o600)),
        "{modes:?}"
    );
    assert!(
        modes.iter().all(|(path, _)| !path.ends_with(".tmp")),
        "{modes:?}"
    );
}

/// A deployment made to expire within the warning window is made, with the same warning every
/// other command gives; `--expiry-warning-days` narrows it as elsewhere.
#[test]
fn init_warns_when_the_new_deployment_expires_soon() {
    let temp = tempfile::tempdir().unwrap();
    let init = |dir: &str, extra: &[&str]| {
        let mut args = vec![
            "init",
            dir,
            "--now",
            NOW,
            "--expires",
            "2026-12-20T00:00:00Z",
        ];
        args.extend_from_slice(extra);
        run_in(temp.path(), &args, b"")
    };
    let warned = init("soon", &[]);
    assert_eq!(warned.code, 0, "{}", warned.stderr);
    assert!(
        warned.stderr.starts_with(
            "warning[cli.expires_soon]: the new deployment (its trust root and release manifest) \
             expires at 2026-12-20T00:00:00Z, in "
        ),
        "{}",
        warned.stderr
    );
    assert!(temp.path().join("soon/parmana.toml").exists());
    let quiet = init("quiet", &["--expiry-warning-days", "5"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");
}

/// Under `--format json` every command that writes files prints one JSON object saying what it
/// wrote — nothing else on stdout — so a pipeline can read it.
#[test]
fn commands_that_write_files_print_one_json_object_under_format_json() {
    let temp = tempfile::tempdir().unwrap();
    let json = |dir: &Path, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = run_in(dir, &all, b"");
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 1, "{args:?}: {}", out.stdout);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
    };
    let init = json(temp.path(), &["init", "d", "--now", NOW]);
    assert_eq!(init["directory"], "d");
    assert_eq!(init["next_steps"][0], "cd d");
    assert!(init["created"]["trust/root.pub"].is_string(), "{init}");
    let d = temp.path().join("d");
    let keygen = json(&d, &["keygen", "--out", "trust/keys/attestation-2.pem"]);
    assert!(
        keygen["key_id"].as_str().unwrap().starts_with("sha256:"),
        "{keygen}"
    );
    assert_eq!(keygen["public_key"], "trust/keys/attestation-2.pub");
    let keys = [
        "--root-key",
        "trust/keys/root.pem",
        "--policy-key",
        "trust/keys/policy.pub",
        "--release-key",
        "trust/keys/release.pub",
        "--now",
        NOW,
        "--expires",
        "2027-12-01T00:00:00Z",
    ];
    let mut trust_init = vec!["trust", "init", "--out", "other", "--attestation-key"];
    trust_init.extend(["trust/keys/attestation.pub"]);
    trust_init.extend(keys);
    let made = json(&d, &trust_init);
    assert_eq!(made["version"], 1);
    assert_eq!(made["pinned_root"], "other/root.pub");
    let mut rotate = vec![
        "trust",
        "rotate",
        "--sign-with",
        "trust/keys/root.pem",
        "--attestation-key",
        "trust/keys/attestation-2.pub",
    ];
    rotate.extend(keys);
    let rotated = json(&d, &rotate);
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["previous_version"], 1);
    let bundle = json(
        &d,
        &[
            "bundle",
            "sign",
            "policies/payments-approval/1.0.0",
            "--key",
            "trust/keys/policy.pem",
            "--now",
            NOW,
        ],
    );
    assert_eq!(bundle["policy"], "payments-approval@1.0.0");
    let digest = bundle["bundle_digest"].as_str().unwrap().to_owned();
    let release = json(
        &d,
        &[
            "release",
            "sign",
            "--key",
            "trust/keys/release.pem",
            "--version",
            "2",
            "--force",
            "--now",
            NOW,
            "--expires",
            "2027-12-01T00:00:00Z",
        ],
    );
    assert_eq!(release["version"], 2);
    assert_eq!(release["policies"]["payments-approval@1.0.0"], digest);
}

/// A `.gitignore` already in the directory is kept as it is, and `init` says which lines would
/// keep the store, the private keys and a killed `init`'s staging directory out of version
/// control.
#[test]
fn init_keeps_an_existing_gitignore_and_says_what_to_add() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join(".gitignore"), b"/target/\n").unwrap();
    let out = run_in(temp.path(), &["init", ".", "--now", NOW], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read(temp.path().join(".gitignore")).unwrap(),
        b"/target/\n"
    );
    assert!(
        out.stderr
            .starts_with("warning[cli.gitignore_kept]: ./.gitignore exists")
            && out
                .stderr
                .contains("add: /.parmana/ /trust/keys/*.pem /.parmana-init.*.tmp/"),
        "{}",
        out.stderr
    );
    // Without one, init writes it.
    let fresh = run_in(temp.path(), &["init", "sub", "--now", NOW], b"");
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    let written = std::fs::read_to_string(temp.path().join("sub/.gitignore")).unwrap();
    for line in ["/.parmana/", "/trust/keys/*.pem", "/.parmana-init.*.tmp/"] {
        assert!(written.lines().any(|l| l == line), "{written}");
    }
}
