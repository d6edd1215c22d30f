//! The stable code and message of every replay error (execution ids are parsed, and tested, in `parmana-canon`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use parmana_canon::Timestamp;
use parmana_replay::{AcceptedVersions, ReplayError, VersionKind};

#[test]
fn every_error_has_a_stable_code_and_message() {
    let id = || "exec-1".to_owned();
    let cases = [
        (
            ReplayError::AlreadyClaimed { execution_id: id() },
            "replay.replay_detected",
            "execution id \"exec-1\" was already used (replay detected)",
        ),
        (
            ReplayError::NotClaimed { execution_id: id() },
            "replay.not_claimed",
            "execution id \"exec-1\" was never claimed",
        ),
        (
            ReplayError::AlreadyCompleted { execution_id: id() },
            "replay.already_completed",
            "execution id \"exec-1\" is already completed",
        ),
        (
            ReplayError::VersionRollback {
                kind: VersionKind::TrustRoot,
                offered: 2,
                accepted: 3,
            },
            "replay.version_rollback",
            "trust root version 2 is older than the accepted version 3 (rollback refused)",
        ),
        (
            ReplayError::VersionTooLarge {
                kind: VersionKind::ReleaseManifest,
                offered: u64::MAX,
            },
            "replay.version_too_large",
            "release manifest version 18446744073709551615 is too large (at most 2^63-1)",
        ),
        (
            ReplayError::MarksReset {
                found: AcceptedVersions::new(1, 1),
                proven: AcceptedVersions::new(2, 1),
            },
            "replay.marks_reset",
            "the store's high-water marks (trust root 1, release manifest 1) are lower than its \
             ledger proves (trust root 2, release manifest 1): they were reset behind the store's \
             back (run `parmana ledger verify`)",
        ),
        (
            ReplayError::ClockBehindStore {
                now: Timestamp::parse("2026-11-28T21:00:00Z").unwrap(),
                newest: Timestamp::parse("2026-11-28T22:00:00Z").unwrap(),
            },
            "replay.clock_behind_store",
            "the clock reads 2026-11-28T21:00:00Z, more than 60 s before the newest execution \
             this store holds (2026-11-28T22:00:00Z): time must not run backwards within one store",
        ),
        (
            ReplayError::Unavailable {
                message: "database is locked".to_owned(),
            },
            "replay.store_unavailable",
            "replay store unavailable: database is locked",
        ),
        (
            ReplayError::Corrupt {
                message: "stored request digest".to_owned(),
            },
            "replay.store_corrupt",
            "replay store corrupt: stored request digest",
        ),
        (
            ReplayError::TlsRefused {
                message: "invalid peer certificate: UnknownIssuer".to_owned(),
            },
            "replay.store_tls_refused",
            "replay store refused: TLS could not be established as configured: invalid peer \
             certificate: UnknownIssuer",
        ),
        (
            ReplayError::SchemaVersionUnsupported {
                found: 9,
                supported: 1,
            },
            "replay.schema_version_unsupported",
            "replay store schema version 9 is not supported (this build knows up to 1)",
        ),
        (
            ReplayError::SchemaVersionOutdated {
                found: 3,
                current: 4,
            },
            "replay.schema_version_outdated",
            "replay store schema version 3 is older than this build's (4); a command that \
             executes (execute, serve) migrates it, one that only reads or completes does not",
        ),
        (
            ReplayError::NotFound {
                schema: "parmana".to_owned(),
            },
            "replay.store_not_found",
            "no replay store in PostgreSQL schema \"parmana\" (a command that executes creates it)",
        ),
        (
            ReplayError::InvalidConfiguration {
                message: "the pool size must be at least 1".to_owned(),
            },
            "replay.invalid_configuration",
            "invalid replay store configuration: the pool size must be at least 1",
        ),
    ];
    for (error, code, message) in cases {
        assert_eq!((error.code(), error.to_string().as_str()), (code, message));
    }
}

#[test]
fn store_locations_are_parsed() {
    let memory = parmana_replay::open_store("memory").unwrap();
    assert!(memory.pending().unwrap().is_empty());
    for refused in ["", "mem", "sqlite:", "mysql://x", "SQLITE:/tmp/x"] {
        let err = parmana_replay::open_store(refused).err().unwrap();
        assert_eq!(err.code(), "replay.invalid_configuration", "{refused:?}");
    }
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let location = format!("sqlite:{}", dir.path().join("s.sqlite").display());
        let store = parmana_replay::open_store(&location).unwrap();
        assert_eq!(store.accepted_versions().unwrap().trust_root, 0);
        // A file that is not a database is refused as corrupt, not silently replaced.
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let err = parmana_replay::open_store(&format!("sqlite:{}", junk.display()))
            .err()
            .unwrap();
        assert_eq!(err.code(), "replay.store_corrupt", "{err}");
    }
}
