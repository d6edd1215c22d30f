//! The `parmana canon` and `parmana digest` commands, run as a real process; output snapshot-tested with insta.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `parmana ARGS` with `stdin` and returns a transcript of exit code, stdout and stderr.
fn run(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parmana"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn canon_of_the_readme_example() {
    insta::assert_snapshot!(run(&["canon"], br#"{"b":1,"a":[1.0E2,true]}"#), @r#"
    exit: 0
    --- stdout
    {"a":[100,true],"b":1}
    --- stderr
    "#);
}

#[test]
fn canon_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.json");
    std::fs::write(&path, "{\n  \"z\": 0.5,\n  \"a\": \"\\u00e9\"\n}\n").unwrap();
    insta::assert_snapshot!(run(&["canon", path.to_str().unwrap()], b""), @r#"
    exit: 0
    --- stdout
    {"a":"é","z":0.5}
    --- stderr
    "#);
}

#[test]
fn canon_refuses_bad_input() {
    insta::assert_snapshot!("duplicate_key", run(&["canon"], br#"{"a":1,"a":2}"#));
    insta::assert_snapshot!("lone_surrogate", run(&["canon"], br#"["\udead"]"#));
    insta::assert_snapshot!(
        "integer_out_of_range",
        run(&["canon"], b"[9007199254740993]")
    );
    insta::assert_snapshot!("number_out_of_range", run(&["canon"], b"1e999"));
    insta::assert_snapshot!("invalid_utf8", run(&["canon"], b"\"\xc3\x28\""));
    insta::assert_snapshot!("trailing_data", run(&["canon"], b"{} []"));
    insta::assert_snapshot!("too_deep", run(&["canon"], "[".repeat(200).as_bytes()));
    insta::assert_snapshot!(
        "json_format",
        run(&["--format", "json", "canon"], b"{\"a\":1,\"a\":1}")
    );
}

#[test]
fn canon_lines_writes_one_line_per_document_and_skips_bad_ones() {
    let input = b"{\"b\":2,\"a\":1}\n{\"a\":1,\"a\":2}\n\n[1.50,\"x\"]\n";
    insta::assert_snapshot!(run(&["canon", "--lines"], input), @r#"
    exit: 3
    --- stdout
    {"a":1,"b":2}
    [1.5,"x"]

    --- stderr
    error[canon.duplicate_key]: line 2, column 8: duplicate object key "a" at byte 7
    "#);
}

#[test]
fn digest_prints_the_digest_of_the_canonical_bytes() {
    insta::assert_snapshot!(run(&["digest"], b"{ \"b\": 1, \"a\": 2 }"), @r"
    exit: 0
    --- stdout
    sha256:d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772

    --- stderr
    ");
    insta::assert_snapshot!(run(&["digest", "--lines"], b"{\"a\":2,\"b\":1}\n{}\n"), @r"
    exit: 0
    --- stdout
    sha256:d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772
    sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a

    --- stderr
    ");
}

#[test]
fn missing_file_is_an_io_error() {
    insta::assert_snapshot!(run(&["canon", "/nonexistent/parmana-test.json"], b""), @r"
    exit: 1
    --- stdout

    --- stderr
    error[io.error]: /nonexistent/parmana-test.json: No such file or directory (os error 2)
    ");
}

#[test]
fn json_errors_give_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["canon"], "{\"a\": 1,\n  \"b\": tru}"),
        (&["canon", "--lines"], "{\"ok\": 1}\n{\"a\": 1, \"a\": 2}\n"),
        (
            &["policy", "eval", "policy.json", "--signals", "-"],
            "{\"claim_amount\": 1,\n \"claim_amount\": 2}",
        ),
    ];
    std::fs::copy(
        crate::common::repo_root().join("policies/claims-approval/1.0.0/policy.json"),
        dir.path().join("policy.json"),
    )
    .unwrap();
    let mut transcript = String::new();
    for (args, stdin) in cases {
        let out = crate::common::run_in(dir.path(), args, stdin.as_bytes());
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        transcript.push_str(&format!(
            "$ parmana {}\n{}\n",
            args.join(" "),
            out.transcript()
        ));
    }
    insta::assert_snapshot!("json_error_locations", transcript);
}
