//! The log checked by an implementation we did not write: Go's `golang.org/x/mod/sumdb/note` and `sumdb/tlog` (Debian's `golang-golang-x-mod-dev`), through `tests/external/go-tlog` — the served checkpoint, every tile, every entry, consistency with an older checkpoint and a served `.tlog-proof`; tampered inputs fail it. Skipped when `go` is missing, except in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Served;
use crate::log_serve::{LOG_KEY, execute_many, name_a_log, verifier_key};

/// Where Debian installs Go sources (`golang-golang-x-mod-dev`): the GOPATH of the build.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Builds `tests/external/go-tlog` offline (GOPATH mode, Debian's x/mod) into `dir`; `None` when
/// Go or x/mod is missing outside CI (`CI=true` or `PARMANA_REQUIRE_GO=1` make that a failure).
fn build_checker(dir: &Path) -> Option<PathBuf> {
    let has_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let has_mod = Path::new(DEBIAN_GOPATH)
        .join("src/golang.org/x/mod/sumdb/tlog")
        .is_dir();
    if !(has_go && has_mod) {
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("PARMANA_REQUIRE_GO").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "the Go check must run in CI: install golang-go and golang-golang-x-mod-dev (.ci/run does)"
        );
        eprintln!(
            "skipped: needs `go` and {DEBIAN_GOPATH}/src/golang.org/x/mod (apt install golang-go golang-golang-x-mod-dev)"
        );
        return None;
    }
    let source = parmana_testkit::repository_root().join("tests/external/go-tlog");
    let binary = dir.join("go-tlog");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(binary)
}

/// Runs the checker; (success, stdout, stderr).
fn check(binary: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn go_sumdb_checks_the_served_log_tiles_entries_and_proofs() {
    let work = tempfile::tempdir().unwrap();
    let Some(binary) = build_checker(work.path()) else {
        return;
    };
    let env = crate::harness::deployment("memory", "");
    let d = env.root();
    name_a_log(d, &[]);
    let served = Served::start(d, &["--dev-token", "--log-key", LOG_KEY]);
    let token = served.token.clone().unwrap();
    execute_many(&served, Some(&token), "go", 20);
    let old = work.path().join("old-checkpoint.txt");
    std::fs::write(&old, served.get("/log/checkpoint", Some(&token)).bytes).unwrap();
    // Past a full tile: full and partial tiles at level 0, a partial tile at level 1.
    execute_many(&served, Some(&token), "go-more", 280);
    let proof = work.path().join("go-0007.tlog-proof");
    let reply = served.get("/v1/executions/go-0007/proof", Some(&token));
    assert_eq!(reply.status, 200, "{}", reply.text);
    std::fs::write(&proof, &reply.bytes).unwrap();

    // The verifier key string as `parmana log keys` prints it (and as we compute it).
    let (code, keys, err) = crate::harness::parmana(d, &["log", "keys"]);
    assert_eq!(code, 0, "{err}");
    let vkey = keys
        .lines()
        .find_map(|l| l.strip_prefix("log "))
        .unwrap()
        .to_owned();
    assert_eq!(vkey, verifier_key(d).to_string());
    let (ok, out, err) = check(
        &binary,
        &[
            "-url",
            &served.base,
            "-token",
            &token,
            "-vkey",
            &vkey,
            "-old",
            old.to_str().unwrap(),
            "-proof",
            proof.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    for expected in [
        "(note.Open: signature verified)",
        "authenticated by tlog.TileHashReader; tree hash recomputed",
        "each proved and checked with tlog.ProveRecord/CheckRecord",
        "extends the old checkpoint",
        "entry ",
    ] {
        assert!(out.contains(expected), "{expected:?} in {out}");
    }
    let entries: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("entries: "))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(entries >= 300, "{out}");

    // Tampered inputs fail Go's checks: a flipped proof hash, another key, a forged checkpoint.
    let text = std::fs::read_to_string(&proof).unwrap();
    let index = text.find("\nindex ").unwrap();
    let hash_line = index + text[index + 1..].find('\n').unwrap() + 2;
    let mut tampered = text.into_bytes();
    tampered[hash_line] = if tampered[hash_line] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let bad_proof = work.path().join("tampered.tlog-proof");
    std::fs::write(&bad_proof, &tampered).unwrap();
    let (ok, _, err) = check(
        &binary,
        &["-vkey", &vkey, "-proof", bad_proof.to_str().unwrap()],
    );
    assert!(!ok && err.contains("inclusion"), "{err}");
    let other_key = parmana_runtime::trust::NoteVerifierKey::new(
        parmana_runtime::trust::NoteKeyName::parse(crate::log_serve::ORIGIN).unwrap(),
        parmana_runtime::trust::read_public_key_file(&d.join("trust/keys/policy.pub")).unwrap(),
    )
    .to_string();
    let (ok, _, err) = check(
        &binary,
        &["-url", &served.base, "-token", &token, "-vkey", &other_key],
    );
    assert!(!ok && err.contains("checkpoint"), "{err}");
    // The old checkpoint with another root hash: its signature no longer holds.
    let old_text = std::fs::read_to_string(&old).unwrap();
    let root_line = old_text.lines().nth(2).unwrap();
    let forged = old_text.replacen(root_line, &format!("{}=", "A".repeat(43)), 1);
    let forged_path = work.path().join("forged.txt");
    std::fs::write(&forged_path, forged).unwrap();
    let (ok, _, err) = check(
        &binary,
        &[
            "-url",
            &served.base,
            "-token",
            &token,
            "-vkey",
            &vkey,
            "-old",
            forged_path.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("old checkpoint"), "{err}");
}
