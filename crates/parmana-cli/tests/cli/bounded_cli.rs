//! Bounded inputs through the real binary: huge files (sparse, so they cost no disk) given as a bundle file, a signals file, a batch line or a key file, and many inputs each within its bound (lines, trust-root versions, test cases), are refused or judged with their code while the process runs under a 64 MiB data limit — so none of them was read whole (Linux only; the figures are in docs/reliability.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use crate::common::{NOW, Run, temp_repo};

/// The data limit (`ulimit -d`, KiB) the binary runs under: 64 MiB. An execution needs under
/// 16 MiB; reading any of the files below whole needs at least twice the limit, and fails.
const DATA_LIMIT_KIB: &str = "65536";

/// 1.5 GiB, the size the issue measured; 128 MiB for the batch line, which is scanned to its end
/// to find the next line (so the test takes a second, not ten, in a debug build).
const HUGE: u64 = 3 << 29;
const LONG_LINE: u64 = 128 << 20;

/// Runs `parmana ARGS` in `dir` under the data limit.
fn run_limited(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {DATA_LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_parmana"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// One huge input per case: where it goes, how long it is, the extra arguments naming it, and
/// the exit code and error code of the refusal.
const CASES: &[(&str, u64, &[&str], i32, &str)] = &[
    (
        "policies/claims-approval/1.0.0/huge.bin",
        HUGE,
        &["--signals", "{}"],
        4,
        "trust.bundle_too_large",
    ),
    (
        "huge-signals.json",
        HUGE,
        &["--signals", "huge-signals.json"],
        3,
        "runtime.request_too_large",
    ),
    (
        "huge-key.pem",
        HUGE,
        &["--signals", "{}", "--key", "huge-key.pem"],
        4,
        "trust.invalid_key",
    ),
    (
        "long-line.jsonl",
        LONG_LINE,
        &["--batch", "long-line.jsonl", "--jobs", "1"],
        3,
        "cli.batch_refused",
    ),
];

#[test]
fn huge_inputs_are_refused_in_bounded_memory() {
    // The limit itself lets an ordinary execution through.
    let repo = temp_repo();
    let d = repo.root();
    let base = [
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--store",
        "memory",
        "--now",
        NOW,
    ];
    let mut args = base.to_vec();
    args.extend(["--signals", crate::common::README_SIGNALS]);
    let fine = run_limited(d, &args);
    assert_eq!(fine.code, 0, "{}", fine.transcript());

    for (file, len, extra, exit, code) in CASES {
        let repo = temp_repo();
        let d = repo.root();
        sparse(&d.join(file), *len);
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = run_limited(d, &args);
        assert_eq!(out.code, *exit, "{file}\n{}", out.transcript());
        assert!(
            out.stderr.starts_with(&format!("error[{code}]"))
                || out.stderr.contains(&format!("\nerror[{code}]")),
            "{file}\n{}",
            out.transcript()
        );
        if *code == "cli.batch_refused" {
            assert!(
                out.stdout
                    .starts_with(r#"{"error":{"code":"runtime.request_too_large""#),
                "{}",
                out.transcript()
            );
        }
    }
}

/// Commands other than `execute` that read a file someone else may have written: each is refused
/// under the same data limit, so none was read whole.
const OTHER_COMMANDS: &[(&str, &[&str], i32, &str)] = &[
    (
        "attestation.json",
        &["verify", "attestation.json", "--now", NOW],
        4,
        "trust.document_too_large",
    ),
    (
        "checkpoint.txt",
        &[
            "log",
            "prove",
            "some-id",
            "--checkpoint",
            "checkpoint.txt",
            "--store",
            "memory",
        ],
        4,
        "trust.note_malformed",
    ),
    (
        "trust/trust-root.json",
        &["verify", "-", "--now", NOW],
        4,
        "trust.document_too_large",
    ),
    (
        "huge-policy.json",
        &["policy", "check", "huge-policy.json"],
        3,
        "policy.too_large",
    ),
    (
        "huge-policy.json",
        &["policy", "test", "huge-policy.json"],
        3,
        "policy.too_large",
    ),
    (
        "policies/claims-approval/1.0.0/tests/huge-case.json",
        &["policy", "test", "policies/claims-approval/1.0.0"],
        3,
        "cli.input_too_large",
    ),
];

#[test]
fn huge_files_are_refused_in_bounded_memory_by_every_reader() {
    for (file, args, exit, code) in OTHER_COMMANDS {
        let repo = temp_repo();
        let d = repo.root();
        sparse(&d.join(file), HUGE);
        let out = run_limited(d, args);
        assert_eq!(out.code, *exit, "{args:?}\n{}", out.transcript());
        assert!(
            out.stderr.starts_with(&format!("error[{code}]")),
            "{args:?}\n{}",
            out.transcript()
        );
    }
    // `policy eval --batch` streams its lines like `execute --batch`.
    let repo = temp_repo();
    let d = repo.root();
    sparse(&d.join("long-line.jsonl"), LONG_LINE);
    let out = run_limited(
        d,
        &[
            "policy",
            "eval",
            "policies/claims-approval/1.0.0",
            "--batch",
            "long-line.jsonl",
        ],
    );
    assert_eq!(out.code, 3, "{}", out.transcript());
    assert!(
        out.stdout
            .starts_with(r#"{"error":{"code":"runtime.request_too_large""#),
        "{}",
        out.transcript()
    );
    // `canon` bounds its input at 64 MiB: one byte more is refused without being parsed.
    let repo = temp_repo();
    let d = repo.root();
    sparse(&d.join("huge.json"), (64 << 20) + 1);
    let out = crate::common::run_in(d, &["canon", "huge.json"], b"");
    assert_eq!(out.code, 3, "{}", out.transcript());
    assert!(
        out.stderr.starts_with("error[cli.input_too_large]"),
        "{}",
        out.transcript()
    );
}

/// Inputs within each of their own bounds whose product is not: lines that carry nothing to
/// verify (held until the attestations before them print, so they count toward a chunk), a
/// trust-root chain of many large files (16 MiB in all, checked before each file is read), a
/// policy's many large test cases (32 MiB in all). Under the same data limit, each ends with its
/// own verdict or refusal, where each ran out of memory before.
#[test]
fn many_inputs_each_within_its_bound_are_bounded_together() {
    let repo = temp_repo();
    let d = repo.root();
    let lines = "{\"error\":{},\"line\":1}\n".repeat(1_500_000);
    std::fs::write(d.join("errors.jsonl"), lines).unwrap();
    let out = run_limited(d, &["verify", "errors.jsonl", "--now", NOW]);
    assert_eq!(out.code, 7, "{}", out.transcript());
    assert!(
        out.stderr.contains("error[cli.verification_failed]"),
        "{}",
        out.transcript()
    );

    std::fs::create_dir(d.join("chain")).unwrap();
    for version in 1..=1_000 {
        sparse(&d.join(format!("chain/{version}.json")), 1 << 20);
    }
    std::fs::write(d.join("attestation.json"), "{}").unwrap();
    let out = run_limited(
        d,
        &[
            "verify",
            "attestation.json",
            "--trust-root",
            "chain",
            "--now",
            NOW,
        ],
    );
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.starts_with("error[trust.document_too_large]"),
        "{}",
        out.transcript()
    );

    let tests = d.join("policies/claims-approval/1.0.0/tests");
    for case in 0..100 {
        sparse(&tests.join(format!("large-{case:03}.json")), 2 << 20);
    }
    let out = run_limited(d, &["policy", "test", "policies/claims-approval/1.0.0"]);
    assert_eq!(out.code, 3, "{}", out.transcript());
    assert!(
        out.stderr.starts_with("error[cli.input_too_large]"),
        "{}",
        out.transcript()
    );
}
