//! Log anchors: a sequencer with an anchor refuses to sign a log that does not extend what its key signed, across restarts, and signers naming one anchor by different paths share one file.

use super::*;

#[test]
fn a_log_anchor_refuses_a_log_that_does_not_extend_what_the_key_signed() {
    let (fixture, runtime, log_key) = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log-anchor");
    let anchor = LogAnchor::open(&path).unwrap();
    assert_eq!(anchor.recorded(), None);
    // Another signer sharing the file (another process), opened before anything was recorded.
    let sharing = LogAnchor::open(&path).unwrap();
    for n in 0..3 {
        execute(&runtime, &format!("anchored-{n}"));
    }
    let with = |environment, anchor| LogSigning {
        anchor: Some(anchor),
        ..signing_with(environment, &log_key)
    };
    let environment = runtime.environment();
    let report = LogSequencer::default()
        .run_all(runtime.store(), Some(with(&environment, &anchor)))
        .unwrap();
    let (size, root) = anchor.recorded().unwrap();
    assert_eq!(size, report.size);
    // Kept in the file: read again as a restarted signer reads it.
    let reopened = LogAnchor::open(&path).unwrap();
    assert_eq!(reopened.recorded(), Some((size, root)));

    // A store that does not hold that log (the ledger cut or rewritten; here another store,
    // shorter): the sequencer, a checkpoint asked now, and a snapshot's checkpoint are refused.
    let other = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(Arc::new(MemoryReplayStore::new()))
        .clock(clock())
        .build()
        .unwrap();
    execute(&other, "elsewhere-0");
    let other_environment = other.environment();
    // A driver starting on it refuses it before it writes anything into it: it does not reach
    // the anchored checkpoint (the ids cut away would execute again).
    assert_eq!(other.store().ledger_summary().unwrap().unsequenced, 1);
    let refused = LogSequencer::default()
        .run_all(other.store(), Some(with(&other_environment, &reopened)))
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    // So does one that signs nothing (a host with the anchor but no log key).
    let refused = LogSequencer::default()
        .run_all_anchored(other.store(), None, Some(&reopened))
        .unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    assert_eq!(
        other.store().ledger_summary().unwrap().unsequenced,
        1,
        "nothing integrated"
    );
    assert_eq!(
        reopened
            .check_store_reaches(other.store())
            .unwrap_err()
            .code(),
        "runtime.store_rewound"
    );
    reopened.check_store_reaches(runtime.store()).unwrap();
    // The record at the anchored size's last position gone, a later one there (a row a writer
    // planted past a cut): not that record, refused.
    for n in 0..2 {
        execute(&runtime, &format!("past-anchor-{n}"));
    }
    LogSequencer::default()
        .run_all(runtime.store(), None)
        .unwrap();
    let gapped = Gapped {
        inner: runtime.store(),
        gap: size - 1,
    };
    assert_eq!(
        reopened.check_store_reaches(&gapped).unwrap_err().code(),
        "runtime.store_rewound"
    );
    let history = other_environment.trust_history();
    let now = clock().0;
    let manifest = other_environment.release_manifest().version();
    let sign = |anchor: Option<&LogAnchor>| {
        sign_log_checkpoint(other.store(), history, now, manifest, &[&log_key], anchor)
    };
    let refused = sign(Some(&reopened)).unwrap_err();
    assert_eq!(refused.code(), "runtime.store_rewound", "{refused}");
    let snapshot = read_log(other.store()).unwrap();
    let refused = snapshot
        .checkpoint(
            other.store(),
            history,
            now,
            manifest,
            &[&log_key],
            Some(&reopened),
        )
        .unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    // The signer sharing the file reads it again before it signs: refused too.
    let refused = sign(Some(&sharing)).unwrap_err();
    assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
    // Without the anchor, that store's log is signed (what the anchor is for).
    assert!(sign(None).is_ok());
    assert_eq!(reopened.recorded(), Some((size, root)));
    // A log of the same size with another history, then a longer one: refused as well.
    for n in 1..3 {
        execute(&other, &format!("elsewhere-{n}"));
    }
    LogSequencer::default()
        .run_all(other.store(), None)
        .unwrap();
    assert_eq!(read_log(other.store()).unwrap().size(), size);
    for grow in [false, true] {
        if grow {
            execute(&other, "elsewhere-3");
        }
        let refused = sign(Some(&reopened)).unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
        // A driver on it reaches the anchored size and finds another root there: a fork, which
        // it holds as evidence of a store cut and grown again (a server stops executing on it)
        // — at its first run, even when a signer without the anchor has stored a checkpoint of
        // the whole forked log, so that this driver has nothing larger to sign.
        LogSequencer::default()
            .run_all(
                other.store(),
                Some(signing_with(&other_environment, &log_key)),
            )
            .unwrap();
        // An execution waiting: not integrated into the forked ledger, which is compared with
        // the anchor before anything is written.
        execute(&other, &format!("waiting-{grow}"));
        let driver = LogSequencer::default();
        let refused = driver
            .run_all(other.store(), Some(with(&other_environment, &reopened)))
            .unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
        assert!(driver.store_rewound().is_some(), "grown: {grow}");
        assert_eq!(other.store().ledger_summary().unwrap().unsequenced, 1);
        // A driver that signs nothing finds it too, with the anchor.
        let unsigned = LogSequencer::default();
        let refused = unsigned
            .run_all_anchored(other.store(), None, Some(&reopened))
            .unwrap_err();
        assert_eq!(refused.code(), "trust.tlog_inconsistent", "{refused}");
        assert!(unsigned.store_rewound().is_some(), "grown: {grow}");
    }

    // The log that extends it is signed, and the anchor follows it.
    execute(&runtime, "anchored-3");
    LogSequencer::default()
        .run_all(runtime.store(), Some(with(&environment, &reopened)))
        .unwrap();
    let (grown, _) = reopened.recorded().unwrap();
    assert!(grown > size, "{grown} {size}");
    assert_eq!(LogAnchor::open(&path).unwrap().recorded().unwrap().0, grown);

    // A file that is not an anchor is refused when it is read.
    let long = format!("parmana log anchor v1\n{}\n", "1".repeat(2000));
    let root = reopened.recorded().unwrap().1;
    let spelled = |size: &str, end: &str| format!("parmana log anchor v1\n{size}\n{root}{end}");
    let (plus, zeros, crlf, unended) = (
        spelled(&format!("+{grown}"), "\n"),
        spelled(&format!("00{grown}"), "\n"),
        format!("parmana log anchor v1\r\n{grown}\r\n{root}\r\n"),
        spelled(&grown.to_string(), ""),
    );
    let files: [&[u8]; 9] = [
        b"",
        b"parmana log anchor v1\n3\n",
        b"parmana log anchor v1\nx\nsha256:00\n",
        b"parmana log anchor v1\n3\n\xff\n",
        long.as_bytes(),
        plus.as_bytes(),
        zeros.as_bytes(),
        crlf.as_bytes(),
        unended.as_bytes(),
    ];
    // Spelled as it is written, it is read.
    std::fs::write(&path, spelled(&grown.to_string(), "\n")).unwrap();
    assert_eq!(
        LogAnchor::open(&path).unwrap().recorded(),
        Some((grown, root))
    );
    for text in files {
        std::fs::write(&path, text).unwrap();
        let error = LogAnchor::open(&path).unwrap_err();
        assert_eq!(error.code(), "runtime.log_anchor_invalid", "{text:?}");
    }
    anchors_are_one_file_whatever_the_path(path.parent().unwrap());
}

/// Signers naming one anchor by different paths share it: through a linked directory the anchor
/// is the same file (resolved); a symbolic link to it, another name (a hard link) or a file
/// anyone may write is refused — a rename over a link would leave the file it names, and the
/// signers reading it, the old anchor.
#[cfg(unix)]
fn anchors_are_one_file_whatever_the_path(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let real = dir.join("real");
    std::fs::create_dir(&real).unwrap();
    let anchor = real.join("anchor.txt");
    std::fs::write(
        &anchor,
        format!(
            "parmana log anchor v1\n0\n{}\n",
            parmana_runtime::canon::merkle::empty_root()
        ),
    )
    .unwrap();
    let alias = dir.join("alias");
    std::os::unix::fs::symlink(&real, &alias).unwrap();
    let opened = LogAnchor::open(alias.join("anchor.txt")).unwrap();
    assert_eq!(opened.path(), std::fs::canonicalize(&anchor).unwrap());
    // In a directory not made yet: nothing recorded (as before; it is created at the first
    // signature), not refused — `execute` and `recover` open a configured anchor too.
    let unmade = LogAnchor::open(dir.join("not-yet").join("anchor.txt")).unwrap();
    assert_eq!(unmade.recorded(), None);
    let refused = |path: &std::path::Path| LogAnchor::open(path).map(|_| ()).map_err(|e| e.code());
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink(&anchor, &link).unwrap();
    assert_eq!(refused(&link), Err("runtime.log_anchor_invalid"));
    let hard = dir.join("hard.txt");
    std::fs::hard_link(&anchor, &hard).unwrap();
    assert_eq!(refused(&anchor), Err("runtime.log_anchor_invalid"));
    std::fs::remove_file(&hard).unwrap();
    std::fs::set_permissions(&anchor, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(refused(&anchor), Err("runtime.log_anchor_invalid"));
}

#[cfg(not(unix))]
fn anchors_are_one_file_whatever_the_path(_: &std::path::Path) {}

/// A store whose ledger reads lack the record at position `gap` (the ones after it are there).
#[derive(Debug)]
struct Gapped<'a> {
    inner: &'a dyn ReplayStore,
    gap: u64,
}

impl ReplayStore for Gapped<'_> {
    common::forward_store_writes!(inner);
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        let rows = self.inner.ledger_rows(from, max.saturating_add(1))?;
        Ok(rows
            .into_iter()
            .filter(|row| row.position != self.gap)
            .take(max)
            .collect())
    }
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, accept_versions,
        sequence, store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary);
}

/// A store counting the ledger reads that start at its first record (a whole read).
#[derive(Debug)]
struct CountingWholeReads<'a> {
    inner: &'a dyn ReplayStore,
    whole_reads: AtomicUsize,
}

impl ReplayStore for CountingWholeReads<'_> {
    common::forward_store_writes!(inner);
    fn ledger_rows(&self, from: u64, max: usize) -> Result<Vec<LedgerRow>, ReplayError> {
        if from == 0 {
            self.whole_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.ledger_rows(from, max)
    }
    common::forward_store_reads!(inner: get, pending_after, accepted_versions, accept_versions,
        sequence, store_checkpoint, latest_checkpoint, checkpoints_from, ledger_summary);
}

/// A server's start with an anchor (`load_extending`): a store that does not extend the anchored
/// checkpoint — short of it, or another history past it — is refused with
/// `runtime.store_rewound`; one that does is read whole once, and that read is the log the
/// driver keeps, its ids known at once (a `load` after it reads nothing more).
#[test]
fn a_start_with_an_anchor_reads_the_ledger_once_and_keeps_it() {
    let (fixture, runtime, log_key) = setup();
    let dir = tempfile::tempdir().unwrap();
    let anchor = LogAnchor::open(dir.path().join("log-anchor")).unwrap();
    for n in 0..3 {
        execute(&runtime, &format!("kept-{n}"));
    }
    let environment = runtime.environment();
    LogSequencer::default()
        .run_all(
            runtime.store(),
            Some(LogSigning {
                anchor: Some(&anchor),
                ..signing_with(&environment, &log_key)
            }),
        )
        .unwrap();
    let (size, _) = anchor.recorded().unwrap();

    let counting = CountingWholeReads {
        inner: runtime.store(),
        whole_reads: AtomicUsize::new(0),
    };
    let driver = LogSequencer::default();
    driver.load_extending(&counting, &anchor).unwrap();
    assert_eq!(counting.whole_reads.load(Ordering::SeqCst), 1);
    for n in 0..3 {
        assert!(driver.holds_execution(&id(&format!("kept-{n}"))));
    }
    driver.load(&counting, Some(&anchor)).unwrap();
    assert_eq!(
        counting.whole_reads.load(Ordering::SeqCst),
        1,
        "read once, kept"
    );
    assert_eq!(driver.run(&counting, None).unwrap().size, size);

    // Stores that do not extend it: shorter, then longer with another history.
    let other = Runtime::builder(fixture.config())
        .signer(fixture.attestation_signer().unwrap())
        .shared_store(Arc::new(MemoryReplayStore::new()))
        .clock(clock())
        .build()
        .unwrap();
    for n in 0..6 {
        if n > 0 {
            let driver = LogSequencer::default();
            let refused = driver.load_extending(other.store(), &anchor).unwrap_err();
            assert_eq!(refused.code(), "runtime.store_rewound", "{n}: {refused}");
            assert!(
                driver.store_rewound().is_some(),
                "{n}: recorded as evidence"
            );
        }
        execute(&other, &format!("elsewhere-{n}"));
        LogSequencer::default()
            .run_all(other.store(), None)
            .unwrap();
    }
    assert!(read_log(other.store()).unwrap().size() > size);
}

/// A ledger broken when a server starts with an anchor that records nothing yet (its tail record
/// cut, the execution left): refused, and recorded as evidence — as a first run records it — so
/// that the server latches the store and its last pass writes nothing into it.
#[test]
fn a_start_with_an_anchor_records_a_broken_ledger_as_evidence() {
    let (store, visible) = parmana_testkit::CutLedger::new();
    let (_fixture, runtime, _log_key) = setup_on(Arc::new(store));
    for n in 0..3 {
        execute(&runtime, &format!("broken-{n}"));
    }
    let size = LogSequencer::default()
        .run_all(runtime.store(), None)
        .unwrap()
        .size;
    visible.store(size - 1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let anchor = LogAnchor::open(dir.path().join("log-anchor")).unwrap();
    assert_eq!(anchor.recorded(), None);
    let driver = LogSequencer::default();
    let refused = driver.load_extending(runtime.store(), &anchor).unwrap_err();
    assert_eq!(refused.code(), "replay.ledger_broken", "{refused}");
    assert_broken_ledger_recorded(&driver);
}
