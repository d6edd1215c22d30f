//! `parmana ledger export`: the verified ledger as JSON lines, resumable by position, each attestation byte-identical to what `execute` printed.

use crate::common::{LostStdout, NOW, README_SIGNALS, run_in, run_with_lost_stdout, temp_repo};

#[test]
fn export_ships_the_ledger_in_resumable_pieces() {
    let repo = temp_repo();
    let d = repo.root();
    let mut printed = Vec::new();
    for id in ["exp-1", "exp-2", "exp-3"] {
        let out = run_in(
            d,
            &[
                "execute",
                "--policy",
                "claims-approval@1.0.0",
                "--signals",
                README_SIGNALS,
                "--execution-id",
                id,
                "--now",
                NOW,
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.transcript());
        printed.push(out.stdout.trim_end().to_owned());
    }
    let whole = run_in(d, &["ledger", "export"], b"");
    assert_eq!(whole.code, 0, "{}", whole.transcript());
    let lines: Vec<serde_json::Value> = whole
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One marks record (the first acceptance of the versions), then the three executions.
    assert_eq!(lines.len(), 4, "{}", whole.stdout);
    for (position, line) in lines.iter().enumerate() {
        assert_eq!(line["position"], position as u64);
    }
    assert_eq!(lines[0]["kind"], "marks");
    let attestations: Vec<String> = lines[1..]
        .iter()
        .map(|line| {
            assert_eq!(line["kind"], "execution");
            line["attestation"].to_string()
        })
        .collect();
    // The attestations are the bytes execute printed (canonical JSON both).
    let canonical = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        value.to_string()
    };
    assert_eq!(
        attestations,
        printed.iter().map(|p| canonical(p)).collect::<Vec<_>>()
    );
    // Resumable: two pieces make the whole.
    let first = run_in(d, &["ledger", "export", "--to", "1"], b"");
    let rest = run_in(d, &["ledger", "export", "--from", "2"], b"");
    assert_eq!(format!("{}{}", first.stdout, rest.stdout), whole.stdout);
    let backwards = run_in(d, &["ledger", "export", "--from", "3", "--to", "1"], b"");
    assert_eq!(backwards.code, 2, "{}", backwards.transcript());
    insta::assert_snapshot!("ledger_export_piece", rest.transcript());
    // The summary names the positions written, whatever the range asked for.
    for (args, summary) in [
        (
            &["--to", "999"][..],
            "exported 4 records of 4 records (positions 0..=3)\n",
        ),
        (
            &["--from", "50"][..],
            "exported 0 records of 4 records (no record in the range asked for)\n",
        ),
    ] {
        let mut command = vec!["ledger", "export"];
        command.extend_from_slice(args);
        let out = run_in(d, &command, b"");
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert!(out.stderr.starts_with(summary), "{args:?}: {}", out.stderr);
    }

    // The commands that print one result per input stop quietly when their reader goes
    // (`… | head`): nobody is left to print for, and nothing was refused.
    let many_lines = "{\"b\":1,\"a\":2}\n".repeat(20_000);
    let many_signals = format!("{README_SIGNALS}\n").repeat(20_000);
    let streams: [(&[&str], &str); 3] = [
        (&["ledger", "export"], ""),
        (&["canon", "--lines", "-"], &many_lines),
        (
            &[
                "policy",
                "eval",
                "policies/claims-approval/1.0.0",
                "--batch",
                "-",
            ],
            &many_signals,
        ),
    ];
    for (args, stdin) in streams {
        let input = d.join("stream-input");
        std::fs::write(&input, stdin).unwrap();
        let args: Vec<&str> = args
            .iter()
            .map(|arg| {
                if *arg == "-" {
                    input.to_str().unwrap()
                } else {
                    arg
                }
            })
            .collect();
        let out = run_with_lost_stdout(d, &args, LostStdout::ClosedPipe);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{args:?}");
    }
}

/// Standard output failing part way (a full disk) names the positions written whole and the one
/// to resume from: `--from` it, once a partial last line is cut, gives the rest.
#[cfg(target_os = "linux")]
#[test]
fn an_export_stopped_by_a_full_disk_says_where_to_resume() {
    let repo = temp_repo();
    let d = repo.root();
    let execute = run_in(
        d,
        &crate::common::execute_vip(&["--execution-id", "full-1", "--now", NOW]),
        b"",
    );
    assert_eq!(execute.code, 0, "{}", execute.transcript());
    let out = run_with_lost_stdout(
        d,
        &["ledger", "export", "--from", "1"],
        LostStdout::FullDevice,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "no record was written whole, position 1 perhaps in part: remove a partial last \
             line, then resume with --from 1"
        ),
        "{}",
        out.stderr
    );
}
