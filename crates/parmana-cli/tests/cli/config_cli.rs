//! `parmana.toml`, `PARMANA_*` variables and `parmana config`: precedence, the deployment root, no implicit store, expiry warnings.

use std::path::Path;

use crate::common::{NOW, README_SIGNALS, Run, run_in, run_with_env, temp_repo};

/// `PARMANA_*` variables a case runs with.
type Env<'a> = &'a [(&'a str, &'a str)];

/// `execute` of the README signals with a fixed id and clock, and nothing else named.
fn execute_args(id: &str) -> Vec<&str> {
    vec![
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        README_SIGNALS,
        "--execution-id",
        id,
        "--now",
        NOW,
    ]
}

/// The transcript with the temporary directory replaced by `[ROOT]` and runs of spaces (table
/// padding, which depends on the directory's length) made one, for snapshots.
fn redacted(out: &Run, root: &Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let text = out
        .transcript()
        .replace(&root.display().to_string(), "[ROOT]");
    let mut collapsed = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c != ' ' || !text[..i].ends_with(' ') {
            collapsed.push(c);
        }
    }
    as_on_a_roomy_host(&collapsed)
}

/// The transcript as a host shows it whose hard limit on open files has room for the default
/// `max_connections` (1,024): on a host with less, `config` shows the value lowered as `serve`
/// lowers it (tested under `ulimit -n` in the serve tests), and these snapshots are about the rest.
fn as_on_a_roomy_host(text: &str) -> String {
    const LOWERED: &str =
        " (lowered from 1024 to fit the hard limit on open files, as serve lowers it)";
    const JSON_KEY: &str =
        "\"server.max_connections\":{\"origin\":null,\"source\":\"default\",\"value\":";
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("server.max_connections ")
            && let Some(at) = rest.find(LOWERED)
        {
            out.push_str("server.max_connections 1024");
            out.push_str(&rest[at + LOWERED.len()..]);
            continue;
        }
        match line.find(JSON_KEY) {
            Some(at) => {
                let value_at = at + JSON_KEY.len();
                let digits = line[value_at..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
                out.push_str(&line[..value_at]);
                out.push_str("1024");
                out.push_str(&line[value_at + digits..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[test]
fn exactly_once_does_not_depend_on_the_current_directory() {
    let repo = temp_repo();
    let root = repo.root();
    // The same id from three directories of one deployment: one store, one execution.
    let first = run_in(root, &execute_args("cfg-1"), b"");
    assert_eq!(first.code, 0, "{}", first.stderr);
    for sub in ["policies", "policies/claims-approval/1.0.0", "trust/keys"] {
        let again = run_in(&root.join(sub), &execute_args("cfg-1"), b"");
        assert_eq!(again.code, 5, "{sub}: {}", again.stderr);
        assert!(
            again.stderr.contains("runtime.replay_detected"),
            "{sub}: {}",
            again.stderr
        );
        assert!(!root.join(sub).join(".parmana").exists(), "{sub}");
    }
    assert!(root.join(".parmana/replay.sqlite3").is_file());
    // `show` from a subdirectory reads the same store.
    let shown = run_in(&root.join("trust"), &["show", "cfg-1"], b"");
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.stdout, first.stdout);
}

#[test]
fn outside_a_deployment_no_store_is_created_implicitly() {
    let repo = temp_repo();
    let root = repo.root();
    std::fs::remove_file(root.join("parmana.toml")).unwrap();
    // Outside any deployment at all (no trust root either), the log's commands that read a
    // store say the same first, not that a trust root is missing.
    let empty = tempfile::tempdir().unwrap();
    let cases: [(&std::path::Path, Vec<&str>); 9] = [
        (root, execute_args("cfg-2")),
        (root, vec!["recover"]),
        (root, vec!["show", "cfg-2"]),
        (root, vec!["ledger", "verify"]),
        (empty.path(), vec!["log", "checkpoint"]),
        (empty.path(), vec!["log", "prove", "cfg-2"]),
        (empty.path(), vec!["log", "consistency", "old.txt"]),
        (
            empty.path(),
            vec!["log", "cosign", "old.txt", "--url", "http://127.0.0.1:9"],
        ),
        (empty.path(), vec!["log", "sequence"]),
    ];
    for (dir, args) in cases {
        let out = run_in(dir, &args, b"");
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("error[cli.store_not_configured]: no replay store is configured"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!root.join(".parmana").exists());
    // A store that is no store is the configuration's fault (exit 2), told without its value,
    // which may hold a password, from `config` as from every command.
    for args in [vec!["config"], vec!["show", "cfg-2"]] {
        let out = run_with_env(
            root,
            &args,
            b"",
            &[("PARMANA_STORE", "host=db password=s3cret")],
        );
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(
                "error[cli.invalid_config]: PARMANA_STORE: unknown store kind \"host\""
            ),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    }
    // A witness's URL without its scheme is a usage error, not a witness out of reach.
    let out = run_in(
        root,
        &[
            "log",
            "cosign",
            "c.txt",
            "--url",
            "127.0.0.1:9",
            "--store",
            "memory",
        ],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.starts_with("error[cli.usage]"), "{}", out.stderr);
    // Named by the variable, it is used (relative to the current directory).
    let out = run_with_env(
        root,
        &execute_args("cfg-2"),
        b"",
        &[("PARMANA_STORE", "sqlite:state/replay.sqlite3")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(root.join("state/replay.sqlite3").is_file());
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    let repo = temp_repo();
    let root = repo.root();
    std::fs::write(
        root.join("parmana.toml"),
        "store = \"sqlite:from-file.sqlite3\"\npolicies = \"policies\"\nexpiry_warning_days = 7\n",
    )
    .unwrap();
    std::fs::create_dir(root.join("work")).unwrap();
    let cases: &[(&[&str], Env)] = &[
        (&["config"], &[]),
        (
            &["config"],
            &[
                ("PARMANA_STORE", "memory"),
                ("PARMANA_EXPIRY_WARNING_DAYS", "3"),
            ],
        ),
        (
            &[
                "config",
                "--store",
                "postgres://parmana:s3cret@db.internal/parmana",
                "--policies",
                "elsewhere",
            ],
            &[("PARMANA_STORE", "memory"), ("PARMANA_KEYS", "a.pem:b.pem")],
        ),
        (
            &["--format", "json", "config"],
            &[("PARMANA_PINNED_ROOT", "pinned.pub")],
        ),
    ];
    let mut transcript = String::new();
    for (args, env) in cases {
        let out = run_with_env(&root.join("work"), args, b"", env);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        transcript.push_str(&format!("$ {env:?} parmana {}\n", args.join(" ")));
        transcript.push_str(&redacted(&out, root));
        transcript.push('\n');
    }
    insta::assert_snapshot!("config_precedence", transcript);
}

#[test]
fn parmana_config_prints_the_server_settings_with_their_sources() {
    let repo = temp_repo();
    let root = repo.root();
    std::fs::write(
        root.join("parmana.toml"),
        "store = \"memory\"\n\
         [server]\nlisten = \"127.0.0.1:9000\"\ntokens = \"tokens.toml\"\nmax_concurrency = 8\n\
         log_format = \"json\"\n\
         [server.authzen]\ndefault_policy = \"claims-approval@1.0.0\"\n\
         [[server.authzen.policies]]\npolicy = \"claims-approval@1.0.0\"\n\
         resource_types = [\"claim\"]\npermit = [\"approve\"]\n",
    )
    .unwrap();
    let cases: &[(&[&str], Env)] = &[
        (&["config"], &[]),
        (
            &["--format", "json", "config"],
            &[
                ("PARMANA_MAX_CONCURRENCY", "64"),
                ("PARMANA_TLS_CERT", "cert.pem"),
                ("PARMANA_TLS_KEY", "key.pem"),
                ("PARMANA_LOG_SIGNALS", "true"),
                ("PARMANA_LOG_KEY", "keys/log.pem"),
                (
                    "PARMANA_WITNESS_URL",
                    "https://w1.example/parmana http://127.0.0.1:7380",
                ),
            ],
        ),
    ];
    let mut transcript = String::new();
    for (args, env) in cases {
        let out = run_with_env(root, args, b"", env);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        transcript.push_str(&format!("$ {env:?} parmana {}\n", args.join(" ")));
        transcript.push_str(&redacted(&out, root));
        transcript.push('\n');
    }
    insta::assert_snapshot!("config_server", transcript);
    // A value `serve` would refuse is refused here too.
    // (variable, value, the code both refuse it with, what the refusal says) — serve's before
    // anything else it checks (this deployment's tokens file beside --dev-token included)
    for (variable, value, code, says) in [
        (
            "PARMANA_LOG_FORMAT",
            "yaml",
            "cli.invalid_config",
            "PARMANA_LOG_FORMAT: \"yaml\" is not a valid `log_format`",
        ),
        (
            "PARMANA_LOG_LEVEL",
            "trace",
            "cli.invalid_config",
            "PARMANA_LOG_LEVEL: \"trace\" is not a valid `log_level` (expected `error`, `warn`, \
             `info` or `debug`)",
        ),
        (
            "PARMANA_MAX_HEADER_BYTES",
            "100",
            "server.limit_out_of_range",
            "max_header_bytes 100: from 8192 to 1048576 (it comes from the variable \
             PARMANA_MAX_HEADER_BYTES)",
        ),
        (
            "PARMANA_MAX_CONCURRENCY",
            "0",
            "server.limit_out_of_range",
            "max_concurrency 0: from 1 to 65536 (it comes from the variable \
             PARMANA_MAX_CONCURRENCY)",
        ),
        (
            "PARMANA_TLS_CERT",
            "tls/server.pem",
            "cli.usage",
            "TLS needs both a certificate and a key",
        ),
        (
            "PARMANA_LOG_PUBLIC",
            "true",
            "cli.usage",
            "the variable PARMANA_LOG_PUBLIC needs a log key",
        ),
        (
            "PARMANA_WITNESS_URL",
            "https://w1.example/parmana",
            "cli.usage",
            "the variable PARMANA_WITNESS_URL needs a log key",
        ),
        (
            "PARMANA_WITNESS_URL",
            "w1.example",
            "cli.invalid_config",
            "is not an http:// or https:// URL",
        ),
    ] {
        for command in [&["config"][..], &["serve", "--dev-token"]] {
            let refused = run_with_env(root, command, b"", &[(variable, value)]);
            assert_eq!(
                refused.code, 2,
                "{variable} {command:?}: {}",
                refused.stderr
            );
            assert!(
                refused.stderr.starts_with(&format!("error[{code}]"))
                    && refused.stderr.contains(says),
                "{variable} {command:?}: {}",
                refused.stderr
            );
        }
    }
    // Set in the file (this test's file sets `max_concurrency`), a value is named with its key
    // and the file; given as a flag, with its flag.
    let file = root.join("parmana.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let file_cases: [(&[&str], &str, String); 3] = [
        (
            &["config"],
            "max_concurrency = 8\n",
            format!(
                "error[server.limit_out_of_range]: max_concurrency 0: from 1 to 65536 (it comes \
                 from `max_concurrency` in {})",
                file.display()
            ),
        ),
        (
            &["serve", "--dev-token"],
            "log_format = \"json\"\n",
            format!(
                "error[cli.usage]: `log_public` in {} needs a log key",
                file.display()
            ),
        ),
        (
            &["serve", "--dev-token", "--max-body-bytes", "0"],
            "",
            "error[server.limit_out_of_range]: max_body_bytes 0: from 1 to 67108864 (it comes \
             from the flag --max-body-bytes)"
                .to_owned(),
        ),
    ];
    for (command, line, says) in file_cases {
        let replaced = match line {
            "max_concurrency = 8\n" => text.replace(line, "max_concurrency = 0\n"),
            "" => text.clone(),
            _ => text.replace(line, &format!("{line}log_public = true\n")),
        };
        assert!(line.is_empty() || replaced != text, "{command:?}");
        std::fs::write(&file, &replaced).unwrap();
        let refused = run_with_env(root, command, b"", &[]);
        assert_eq!(refused.code, 2, "{command:?}: {}", refused.stderr);
        assert!(
            refused.stderr.starts_with(&says),
            "{command:?}: {}",
            refused.stderr
        );
    }
    std::fs::write(&file, &text).unwrap();
    // A flag's value is named with its flag, as a usage error.
    let refused = run_with_env(
        root,
        &["serve", "--dev-token", "--log-format", "xml"],
        b"",
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .starts_with("error[cli.usage]: --log-format: \"xml\" is not a valid `log_format`"),
        "{}",
        refused.stderr
    );
}

#[test]
fn parmana_config_names_the_file() {
    let repo = temp_repo();
    let root = repo.root();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("deploy.toml"),
        format!(
            "store = \"memory\"\npolicies = \"{}\"\n",
            root.join("policies").display()
        ),
    )
    .unwrap();
    let config = elsewhere.path().join("deploy.toml");
    let config = config.to_str().unwrap();
    // PARMANA_CONFIG wins over the parmana.toml of the current directory.
    let out = run_with_env(
        root,
        &execute_args("cfg-3"),
        b"",
        &[("PARMANA_CONFIG", config)],
    );
    // The policies come from the named file; the trust root from its directory (none there).
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&elsewhere.path().join("trust").display().to_string()),
        "{}",
        out.stderr
    );
    let missing = run_with_env(
        root,
        &["config"],
        b"",
        &[("PARMANA_CONFIG", "/nonexistent/p.toml")],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error[cli.invalid_config]"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_broken_configuration_is_refused() {
    let repo = temp_repo();
    let root = repo.root();
    let mut transcript = String::new();
    for text in [
        "polices = \"policies\"\n",
        "store = 42\n",
        "store = \"memory\"\nstore = \"memory\"\n",
        "keys = \"one.pem\"\n",
        "store = \"memory\"\nkeys = []\n",
    ] {
        std::fs::write(root.join("parmana.toml"), text).unwrap();
        let out = run_in(root, &execute_args("cfg-4"), b"");
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        transcript.push_str(&format!("--- parmana.toml\n{text}"));
        transcript.push_str(&redacted(&out, root));
        transcript.push('\n');
    }
    // A file that is not text is a refused configuration too (not an IO error): here a Latin-1
    // byte in a comment.
    std::fs::write(
        root.join("parmana.toml"),
        b"# caf\xe9\nstore = \"memory\"\n",
    )
    .unwrap();
    let out = run_in(root, &execute_args("cfg-4"), b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error[cli.invalid_config]")
            && out.stderr.contains("not UTF-8 text (at byte 5)"),
        "{}",
        out.stderr
    );
    // A key list given empty is a mistake, not a choice: refused before any key is read.
    std::fs::write(root.join("parmana.toml"), "store = \"memory\"\n").unwrap();
    for command in [&execute_args("cfg-4")[..], &["config"]] {
        let out = run_with_env(root, command, b"", &[("PARMANA_KEYS", ":")]);
        assert_eq!(out.code, 2, "{command:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("error[cli.invalid_config]: PARMANA_KEYS: `keys` names no key file"),
            "{}",
            out.stderr
        );
    }
    assert!(!root.join(".parmana").exists());
    insta::assert_snapshot!("config_refused", transcript);
}

#[test]
fn a_missing_key_file_names_the_setting_that_chose_it() {
    let repo = temp_repo();
    let root = repo.root();
    std::fs::remove_file(root.join("trust/keys/attestation.pem")).unwrap();
    let from_file = run_in(root, &execute_args("cfg-5"), b"");
    let from_flag = run_in(
        root,
        &[&execute_args("cfg-5")[..], &["--key", "nowhere.pem"]].concat(),
        b"",
    );
    let from_env = run_with_env(
        root,
        &execute_args("cfg-5"),
        b"",
        &[("PARMANA_KEYS", "k1.pem")],
    );
    std::fs::write(
        root.join("parmana.toml"),
        "store = \"sqlite:.parmana/replay.sqlite3\"\n",
    )
    .unwrap();
    let from_default = run_in(root, &execute_args("cfg-5"), b"");
    let mut transcript = String::new();
    for out in [&from_file, &from_flag, &from_env, &from_default] {
        assert_eq!(out.code, 1, "{}", out.stderr);
        transcript.push_str(&redacted(out, root));
        transcript.push('\n');
    }
    // Nothing was consumed: the store holds no execution.
    assert!(!root.join(".parmana/replay.sqlite3").exists());
    insta::assert_snapshot!("config_missing_key", transcript);
}

#[test]
fn expiry_within_the_window_is_warned_about() {
    let repo = temp_repo();
    let root = repo.root();
    // The fixtures expire at 2036-01-01T00:00:00Z.
    let cases: &[(&str, &[&str], Env)] = &[
        ("2035-12-20T00:00:00Z", &[], &[]),
        ("2035-12-20T00:00:00Z", &["--expiry-warning-days", "5"], &[]),
        (
            "2035-12-31T12:00:00Z",
            &[],
            &[("PARMANA_EXPIRY_WARNING_DAYS", "1")],
        ),
        ("2035-11-01T00:00:00Z", &[], &[]),
    ];
    let mut transcript = String::new();
    for (i, (now, extra, env)) in cases.iter().enumerate() {
        let id = format!("cfg-exp-{i}");
        let mut args = vec![
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            README_SIGNALS,
            "--execution-id",
            &id,
            "--store",
            "memory",
            "--now",
            now,
        ];
        args.extend_from_slice(extra);
        let out = run_with_env(root, &args, b"", env);
        assert_eq!(out.code, 0, "{}", out.stderr);
        transcript.push_str(&format!(
            "$ {env:?} --now {now} {}\n--- stderr\n{}\n",
            extra.join(" "),
            out.stderr
        ));
        let verify = run_with_env(
            root,
            &["verify", "-", "--now", now],
            out.stdout.as_bytes(),
            env,
        );
        assert_eq!(verify.code, 0, "{}", verify.stderr);
        transcript.push_str(&format!("--- verify stderr\n{}\n", verify.stderr));
    }
    insta::assert_snapshot!("config_expiry_warnings", transcript);
}

#[test]
fn trust_init_refuses_a_past_expiry_and_warns_about_shared_keys() {
    let repo = temp_repo();
    let root = repo.root();
    let key = |name: &str| repo.key_path(name).display().to_string();
    let (root_key, policy, release, attestation) = (
        key("root-1"),
        key("policy"),
        key("release"),
        key("attestation"),
    );
    let init = |expires: &str, attestation_key: &str, out: &str| {
        run_in(
            root,
            &[
                "trust",
                "init",
                "--root-key",
                &root_key,
                "--policy-key",
                &policy,
                "--release-key",
                &release,
                "--attestation-key",
                attestation_key,
                "--expires",
                expires,
                "--out",
                out,
                "--now",
                NOW,
            ],
            b"",
        )
    };
    let past = init("2026-11-01T00:00:00Z", &attestation, "past");
    assert_eq!(past.code, 2, "{}", past.stderr);
    assert!(!root.join("past").exists());
    let shared = init("2027-01-01T00:00:00Z", &root_key, "shared");
    assert_eq!(shared.code, 0, "{}", shared.stderr);
    let mut transcript = redacted(&past, root);
    transcript.push('\n');
    transcript.push_str(&redacted(&shared, root));
    insta::assert_snapshot!("trust_init_expiry_and_shared_keys", transcript);
}

/// `PARMANA_CONFIG=/dev/null` reads no file and searches none: the store the `parmana.toml` in
/// the directory names is not used, and `config` says why there is no file.
#[test]
fn parmana_config_dev_null_reads_no_file() {
    let repo = temp_repo();
    let root = repo.root();
    std::fs::write(root.join("parmana.toml"), "store = \"memory\"\n").unwrap();
    let out = run_with_env(root, &["config"], b"", &[("PARMANA_CONFIG", "/dev/null")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "config file: none (PARMANA_CONFIG=/dev/null: none read, none searched)\n"
        ),
        "{}",
        out.stdout
    );
    let store_row = out
        .stdout
        .lines()
        .find(|line| line.starts_with("store "))
        .unwrap();
    assert!(!store_row.contains("memory"), "{store_row}");
    let json = run_with_env(
        root,
        &["--format", "json", "config"],
        b"",
        &[("PARMANA_CONFIG", "/dev/null")],
    );
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (&json["config_file"], &json["found_by"]),
        (
            &serde_json::Value::Null,
            &serde_json::json!("PARMANA_CONFIG")
        )
    );
    let read = run_with_env(root, &["config"], b"", &[]);
    assert!(
        read.stdout
            .lines()
            .any(|line| line.starts_with("store ") && line.contains("memory")),
        "{}",
        read.stdout
    );
}
