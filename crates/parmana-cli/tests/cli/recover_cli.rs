//! `parmana recover`: an execution claimed but never completed (a crash) is completed byte-identically.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use crate::common::{
    LostStdout, NOW, VIP_SIGNALS, execute_vip, repo_root, run, run_with_lost_stdout,
};
use base64::Engine as _;
use parmana_runtime::canon::{Digest, ExecutionId, Timestamp, canonicalize_value, parse_strict};
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ReplayStore, SqliteReplayStore,
};
use parmana_runtime::trust::{LocalSigningKey, Signer as _};

#[test]
fn recover_completes_a_crashed_execution_with_the_identical_attestation() {
    // What the execution would have printed had it not crashed.
    let expected = run(&execute_vip(&[
        "--execution-id",
        "crashed-1",
        "--store",
        "memory",
        "--now",
        NOW,
    ]));
    assert_eq!(expected.code, 0, "{}", expected.stderr);
    let envelope = parse_strict(expected.stdout.trim().as_bytes()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement = parse_strict(&payload).unwrap();
    // What a claim records: the predicate and the canonical validated signals (format 3), the
    // tag of those under the attestation key's claim key — only a holder of the key can make
    // it — and the digest of the request.
    let signals = parse_strict(VIP_SIGNALS.as_bytes()).unwrap();
    let mut recorded = serde_json::json!({
        "format": 3,
        "predicate": statement["predicate"],
        "signals": signals,
    });
    let attestation_key =
        LocalSigningKey::read_pem_file(&repo_root().join("trust/keys/attestation.pem")).unwrap();
    let tag = attestation_key
        .claim_key()
        .unwrap()
        .tag(&canonicalize_value(&recorded).unwrap());
    recorded["tag"] = serde_json::json!(tag.to_hex());
    let inputs = canonicalize_value(&recorded).unwrap();
    let request_digest = Digest::of(
        &canonicalize_value(&serde_json::json!({
            "execution_id": "crashed-1",
            "policy_id": "claims-approval",
            "policy_version": "1.0.0",
            "signals_digest": statement["predicate"]["signals_digest"],
        }))
        .unwrap(),
    );

    // The crash: the claim (with every input) is durable, the completion never happened.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        let id = ExecutionId::parse("crashed-1").unwrap();
        let claim = ClaimRecord::new(request_digest, inputs, Timestamp::parse(NOW).unwrap());
        // Under the fixtures' trust root 2 and release manifest 1, as the execution would have.
        let under = AcceptedVersions::new(2, 1);
        assert_eq!(
            store.claim(&id, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
    }
    let store_flag = format!("sqlite:{}", path.display());
    let repo = repo_root();
    // The same crash in a second store, recovered below with its standard output lost, and in a
    // third beside a claim no holder of the key recorded.
    let lost_path = dir.path().join("lost.sqlite3");
    let forged_path = dir.path().join("lost-forged.sqlite3");
    for copy in [&lost_path, &forged_path] {
        for suffix in ["", "-wal"] {
            let from = format!("{}{suffix}", path.display());
            if Path::new(&from).exists() {
                std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
            }
        }
    }
    {
        let store = SqliteReplayStore::open(&forged_path).unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"forged"),
            b"{}".to_vec(),
            Timestamp::parse(NOW).unwrap(),
        );
        let id = ExecutionId::parse("forged-9").unwrap();
        let under = AcceptedVersions::new(2, 1);
        assert_eq!(
            store.claim(&id, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
    }
    // Before recovery, `show` says the id is claimed but not completed.
    let pending = crate::common::run_in(&repo, &["show", "crashed-1", "--store", &store_flag], b"");
    assert_eq!(pending.code, 6, "{}", pending.transcript());
    assert!(
        pending.stderr.starts_with("error[cli.execution_pending]")
            && pending.stderr.contains("parmana recover"),
        "{}",
        pending.stderr
    );
    let out = crate::common::run_in(
        &repo,
        &["recover", "--store", &store_flag, "--now", NOW],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, expected.stdout);
    // After it, `show` prints the attestation byte for byte; an unknown id is told apart.
    let shown = crate::common::run_in(&repo, &["show", "crashed-1", "--store", &store_flag], b"");
    assert_eq!((shown.code, &shown.stdout), (0, &expected.stdout));
    let unknown = crate::common::run_in(&repo, &["show", "never", "--store", &store_flag], b"");
    assert_eq!(unknown.code, 3, "{}", unknown.transcript());
    assert!(unknown.stderr.starts_with("error[cli.execution_unknown]"));
    // A replay names `show`.
    let replay = crate::common::run_in(
        &repo,
        &execute_vip(&[
            "--execution-id",
            "crashed-1",
            "--store",
            &store_flag,
            "--now",
            NOW,
        ]),
        b"",
    );
    assert_eq!(replay.code, 5, "{}", replay.transcript());
    assert!(
        replay.stderr.contains("parmana show crashed-1"),
        "{}",
        replay.stderr
    );
    assert!(
        out.stderr
            .contains("recovered 1 execution(s); 0 could not be completed"),
        "{}",
        out.stderr
    );

    // Recovered with nobody reading: still completed and stored, and the id not printed is
    // named with how to read it back — exit 1, yet no retry is needed.
    let lost_flag = format!("sqlite:{}", lost_path.display());
    let recover_unread = |flag: &str| {
        run_with_lost_stdout(
            &repo,
            &["recover", "--store", flag, "--now", NOW],
            LostStdout::ClosedPipe,
        )
    };
    let lost = recover_unread(&lost_flag);
    assert_eq!(lost.code, 1, "{}", lost.stderr);
    assert!(
        lost.stderr.contains(
            "execution crashed-1 completed, but its attestation was not printed (standard output: "
        ) && lost
            .stderr
            .contains("`parmana show crashed-1` reads it back")
            && lost
                .stderr
                .contains("recovered 1 execution(s); 0 could not be completed"),
        "{}",
        lost.stderr
    );
    let shown_lost =
        crate::common::run_in(&repo, &["show", "crashed-1", "--store", &lost_flag], b"");
    assert_eq!((shown_lost.code, &shown_lost.stdout), (0, &expected.stdout));
    // With a forged claim too, the forgery's class is the exit (trust, 4), not the output's (1);
    // both are reported.
    let forged_flag = format!("sqlite:{}", forged_path.display());
    let forged = recover_unread(&forged_flag);
    assert_eq!(forged.code, 4, "{}", forged.stderr);
    assert!(
        forged
            .stderr
            .contains("error[runtime.claim_not_authenticated]: execution \"forged-9\"")
            && forged
                .stderr
                .contains("`parmana show crashed-1` reads it back")
            && forged.stderr.contains("error[io.error]: standard output"),
        "{}",
        forged.stderr
    );

    // Nothing is left to recover, the id stays refused, and the ledger verifies.
    let again = crate::common::run_in(
        &repo,
        &["recover", "--store", &store_flag, "--now", NOW],
        b"",
    );
    assert_eq!((again.code, again.stdout.as_str()), (0, ""));
    let replay = run(&execute_vip(&[
        "--execution-id",
        "crashed-1",
        "--store",
        &store_flag,
        "--now",
        NOW,
    ]));
    assert_eq!(replay.code, 5, "{}", replay.stderr);
    assert_eq!(run(&["ledger", "verify", "--store", &store_flag]).code, 0);

    // The store is outside the trust boundary: a writer of it (no key) who files the genuine
    // attestation of crashed-1 under another id gets nothing shown for that id.
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        let forged = ExecutionId::parse("forged-1").unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"forged"),
            b"{}".to_vec(),
            Timestamp::parse(NOW).unwrap(),
        );
        let under = AcceptedVersions::new(2, 1);
        assert_eq!(
            store.claim(&forged, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
        store
            .complete(&forged, shown.stdout.trim_end().as_bytes())
            .unwrap();
    }
    let refused = crate::common::run_in(&repo, &["show", "forged-1", "--store", &store_flag], b"");
    assert_eq!(refused.code, 4, "{}", refused.transcript());
    assert!(
        refused
            .stderr
            .starts_with("error[runtime.stored_attestation_invalid]")
            && refused.stderr.contains("another execution")
            && refused.stdout.is_empty(),
        "{}",
        refused.transcript()
    );
}

#[test]
fn unreadable_or_unauthenticated_claims_and_keys_without_the_role_complete_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite3");
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        // Recorded inputs that are not JSON, and a claim no holder of the attestation key
        // recorded (no tag), under the fixtures' trust root 2 and release manifest 1.
        for (id, inputs) in [("crashed-2", &b"not json"[..]), ("crashed-3", b"{}")] {
            let claim = ClaimRecord::new(
                Digest::of(b"request"),
                inputs.to_vec(),
                Timestamp::parse(NOW).unwrap(),
            );
            let under = AcceptedVersions::new(2, 1);
            assert_eq!(
                store
                    .claim(&ExecutionId::parse(id).unwrap(), &claim, under)
                    .unwrap(),
                ClaimOutcome::Claimed
            );
        }
    }
    let store_flag = format!("sqlite:{}", path.display());
    let out = run(&["recover", "--store", &store_flag, "--now", NOW]);
    // Each is reported, its id stays claimed: the row that is not JSON is refused by its tag
    // (none) before anything reads it.
    assert_ne!(out.code, 0);
    for id in ["crashed-2", "crashed-3"] {
        assert!(
            out.stderr.contains(&format!(
                "error[runtime.claim_not_authenticated]: execution \"{id}\""
            )),
            "{id}: {}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains("recovered 0 execution(s); 2 could not be completed"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "recover",
        "--store",
        &store_flag,
        "--now",
        NOW,
        "--key",
        "trust/keys/policy.pem",
    ]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("runtime.signer_lacks_role")
            || out.stderr.contains("runtime.stored_claim_unreadable"),
        "{}",
        out.stderr
    );
}

/// `execute --batch` killed (SIGKILL) at seeded random moments: every line it printed was
/// durable first (completed in the store, byte for byte), and every id the store completed can
/// be read back with `show` — printed or not; claimed leftovers are completed by `recover`
/// identically.
#[cfg(unix)]
#[test]
fn a_killed_batch_loses_nothing_it_completed() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let mut random = parmana_testkit::SeededRandom::new(0x5eed_ba7c);
    // Where an id recovered is executed afresh: the same request and clock give the same bytes.
    let fresh = crate::common::temp_repo();
    let mut interrupted_rounds = 0;
    let mut recovered_ids = 0;
    for round in 0..3 {
        let repo = crate::common::temp_repo();
        let d = repo.root();
        let ids: Vec<String> = (0..1_000).map(|i| format!("kill-{round}-{i:04}")).collect();
        let batch: String = ids
            .iter()
            .map(|id| {
                format!(
                    "{{\"execution_id\":\"{id}\",\"signals\":{}}}\n",
                    crate::common::README_SIGNALS
                )
            })
            .collect();
        std::fs::write(d.join("batch.jsonl"), &batch).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_parmana"))
            .args([
                "execute",
                "--policy",
                "claims-approval@1.0.0",
                "--batch",
                "batch.jsonl",
                "--jobs",
                "4",
                "--now",
                crate::common::NOW,
            ])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read stdout on a thread so the child never blocks on a full pipe; it says when a
        // seeded number of whole lines (1 to 200 of the 1,000) has arrived, and the kill comes
        // then: after some executions completed, long before the batch can end, however fast
        // or slow the machine.
        let mut stdout = child.stdout.take().unwrap();
        let kill_after = 1 + random.below(200);
        let (enough_lines, printed_enough) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut lines = 0;
            loop {
                match std::io::Read::read(&mut stdout, &mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        let before = lines;
                        lines += chunk[..read].iter().filter(|&&b| b == b'\n').count() as u64;
                        if before < kill_after && lines >= kill_after {
                            let _ = enough_lines.send(());
                        }
                        bytes.extend_from_slice(&chunk[..read]);
                    }
                }
            }
            bytes
        });
        printed_enough
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("round {round}: the batch printed fewer lines"));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let printed = String::from_utf8(reader.join().unwrap()).unwrap();
        // Only whole lines count as printed (a line cut by the kill is not).
        let whole: Vec<&str> = match printed.rfind('\n') {
            Some(end) => printed[..end].lines().collect(),
            None => Vec::new(),
        };
        // Finish what was claimed; then the store's ledger lists every completed id.
        let recovered = crate::common::run_in(d, &["recover", "--now", crate::common::NOW], b"");
        assert_eq!(
            recovered.code,
            0,
            "round {round}: {}",
            recovered.transcript()
        );
        let exported = crate::common::run_in(d, &["ledger", "export"], b"");
        assert_eq!(exported.code, 0, "round {round}: {}", exported.transcript());
        let mut completed = std::collections::HashMap::new();
        for line in exported.stdout.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(id) = record["execution_id"].as_str() {
                completed.insert(id.to_owned(), record["attestation"].to_string());
            }
        }
        // The id whose stored attestation an attestation line carries, and that line parsed.
        let stored = |line: &str| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let payload = value["payload"].as_str().unwrap().to_owned();
            let id = ids
                .iter()
                .find(|id| completed.get(*id).is_some_and(|a| a.contains(&payload)))
                .unwrap_or_else(|| panic!("round {round}: a line is not stored: {line}"));
            (id.clone(), value)
        };
        // Printed means durable: every printed line is a completed execution, byte for byte.
        for line in &whole {
            let (id, value) = stored(line);
            assert_eq!(completed[&id], value.to_string(), "round {round}: {id}");
        }
        assert!(completed.len() >= whole.len(), "round {round}");
        // A round counts when the kill cut the batch short (on a fast machine the batch may
        // finish first; the test asks that at least one round was really interrupted).
        {
            use std::os::unix::process::ExitStatusExt as _;
            if status.signal() == Some(9) && completed.len() < ids.len() {
                interrupted_rounds += 1;
            }
        }
        // What recovery completed is what the interrupted run would have: byte for byte the
        // attestation of a fresh execution of the same request.
        for line in recovered.stdout.lines() {
            let (id, _) = stored(line);
            let again = crate::common::run_in(
                fresh.root(),
                &[
                    "execute",
                    "--policy",
                    "claims-approval@1.0.0",
                    "--execution-id",
                    &id,
                    "--signals",
                    crate::common::README_SIGNALS,
                    "--now",
                    crate::common::NOW,
                ],
                b"",
            );
            assert_eq!(again.code, 0, "round {round}: {}", again.transcript());
            assert_eq!(again.stdout.trim_end(), line, "round {round}: {id}");
            recovered_ids += 1;
        }
        // Every completed id reads back (printed or not): the first and the last one here.
        let mut done: Vec<&String> = completed.keys().collect();
        done.sort();
        for id in [done.first(), done.last()].into_iter().flatten() {
            let shown = crate::common::run_in(d, &["show", id], b"");
            assert_eq!(shown.code, 0, "round {round}: {}", shown.transcript());
            let value: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
            assert_eq!(completed[*id], value.to_string());
        }
        let verified = crate::common::run_in(
            d,
            &["verify", "-", "--now", crate::common::NOW],
            completed[done[0]].as_bytes(),
        );
        assert_eq!(verified.code, 0, "round {round}: {}", verified.transcript());
        let ledger = crate::common::run_in(d, &["ledger", "verify"], b"");
        assert_eq!(ledger.code, 0, "round {round}: {}", ledger.transcript());
        let _ = std::io::stdout().flush();
    }
    assert!(
        interrupted_rounds > 0,
        "no round was interrupted: every batch finished before its kill"
    );
    let _ = writeln!(
        std::io::stderr(),
        "killed batches: {interrupted_rounds} of 3 rounds interrupted, {recovered_ids} ids recovered and checked"
    );
}

/// Each execution `recover` cannot complete is reported and the others go on; the exit is the
/// class of the first of them in the store's order of ids (as `execute --batch` exits with its
/// first refused line's), whichever classes follow: a row a writer corrupted (`store`, 6) before
/// a claim nobody holding the key recorded (`trust`, 4), and the other way round.
#[test]
fn the_exit_of_recover_is_the_class_of_the_first_execution_it_could_not_complete() {
    for (corrupt, unauthenticated, exit) in
        [("a-corrupt", "b-forged", 6), ("b-corrupt", "a-forged", 4)]
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.sqlite3");
        {
            let store = SqliteReplayStore::open(&path).unwrap();
            for id in [corrupt, unauthenticated] {
                let claim = ClaimRecord::new(
                    Digest::of(b"request"),
                    b"{}".to_vec(),
                    Timestamp::parse(NOW).unwrap(),
                );
                assert_eq!(
                    store
                        .claim(
                            &ExecutionId::parse(id).unwrap(),
                            &claim,
                            AcceptedVersions::new(2, 1)
                        )
                        .unwrap(),
                    ClaimOutcome::Claimed
                );
            }
        }
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute(
            "UPDATE executions SET request_digest = 'not a digest' WHERE id = ?1",
            [corrupt],
        )
        .unwrap();
        drop(raw);
        let store_flag = format!("sqlite:{}", path.display());
        let out = run(&["recover", "--store", &store_flag, "--now", NOW]);
        assert_eq!(out.code, exit, "{}", out.stderr);
        assert!(
            out.stderr.contains("replay.store_corrupt")
                && out.stderr.contains("runtime.claim_not_authenticated")
                && out
                    .stderr
                    .contains("recovered 0 execution(s); 2 could not be completed"),
            "{}",
            out.stderr
        );
    }
}
