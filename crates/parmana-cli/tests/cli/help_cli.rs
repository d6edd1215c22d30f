//! `--help` of every `parmana` command, snapshot-tested: what a new user reads first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use crate::common::{repo_root, run};

/// Every command path with its own help.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["execute"],
    &["show"],
    &["verify"],
    &["policy", "check"],
    &["policy", "eval"],
    &["policy", "explain"],
    &["policy", "test"],
    &["canon"],
    &["digest"],
    &["keygen"],
    &["trust", "init"],
    &["trust", "rotate"],
    &["bundle", "sign"],
    &["bundle", "import-legacy"],
    &["release", "sign"],
    &["ledger", "verify"],
    &["ledger", "export"],
    &["log", "checkpoint"],
    &["log", "sequence"],
    &["log", "prove"],
    &["log", "consistency"],
    &["log", "witness"],
    &["log", "cosign"],
    &["log", "keys"],
    &["recover"],
    &["serve"],
    &["config"],
    &["init"],
    &["completions"],
];

#[test]
fn help_of_every_command() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let name = if command.is_empty() {
            "parmana".to_owned()
        } else {
            format!("parmana {}", command.join(" "))
        };
        insta::assert_snapshot!(name.replace(' ', "_"), out.stdout);
    }
}

#[test]
fn a_usage_error_exits_2() {
    let out = run(&["execute", "--signals", "{}"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--policy"), "{}", out.stderr);
}

#[test]
fn usage_errors_follow_the_format() {
    let cases: &[&[&str]] = &[
        &["--format", "json", "execute", "--signals", "{}"],
        &["--format=json", "exeute"],
        &[
            "--format", "json", "execute", "--policy", "a@1", "--signal", "x",
        ],
        &[
            "execute", "--policy", "a@1", "--signal", "x", "--format", "json",
        ],
        &["execute", "--policy", "a@1", "--signal", "x"],
        // A command missing its subcommand: help as text, the error as JSON with --format json.
        &["--format", "json", "policy"],
    ];
    let mut transcript = String::new();
    for args in cases {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}");
        if args.contains(&"json") || args.contains(&"--format=json") {
            let error: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
            assert_eq!(error["code"], "cli.usage", "{args:?}");
        }
        transcript.push_str(&format!(
            "$ parmana {}\n{}\n",
            args.join(" "),
            out.transcript()
        ));
    }
    insta::assert_snapshot!("usage_errors", transcript);
}

/// Every file under `dir`, relative, sorted.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn committed_completions_and_man_pages_are_fresh() {
    let temp = tempfile::tempdir().unwrap();
    let out = run(&["generate-cli-docs", "--out", temp.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let committed = repo_root().join("docs/cli");
    let generated = files_below(temp.path());
    assert!(generated.len() > 20, "{generated:?}");
    assert_eq!(
        files_below(&committed),
        generated,
        "docs/cli is stale: run `cargo xtask cli-docs`"
    );
    for file in &generated {
        assert!(
            std::fs::read(committed.join(file)).unwrap()
                == std::fs::read(temp.path().join(file)).unwrap(),
            "docs/cli/{} is stale: run `cargo xtask cli-docs`",
            file.display()
        );
    }
    // `parmana completions SHELL` prints the committed script.
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert_eq!(
        bash.stdout.as_bytes(),
        std::fs::read(committed.join("completions/parmana.bash")).unwrap()
    );
}
