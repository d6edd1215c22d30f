//! Stores written by schema 1 (no marks records) are migrated on open, through schema 2 to 3 (the batched sequencer): execution records keep their bytes, the marks raised before get one marks record, and from then on the ledger proves them; the old records count as sequenced and new completions are sequenced after them.

use parmana_canon::{Digest, to_canonical_vec};
use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, LEDGER_GENESIS, ReplayStore, StoredCheckpoint,
    ledger_log, verify_ledger,
};
use serde_json::json;

use crate::common::{claim_for, id, sequence};

/// One completed execution of a schema-1 store, with its ledger record in the documented format.
struct OldExecution {
    name: String,
    claim: ClaimRecord,
    attestation: Vec<u8>,
    record: Vec<u8>,
}

/// Two completed executions chained as schema 1 wrote them (docs/replay-stores.md, "The ledger").
fn old_executions() -> Vec<OldExecution> {
    let mut previous = LEDGER_GENESIS.to_string();
    (0u64..2)
        .map(|position| {
            let name = format!("old-{position}");
            let claim = claim_for(&name);
            let attestation = format!("attestation of {name}").into_bytes();
            let record = to_canonical_vec(&json!({
                "attestation_digest": Digest::of(&attestation),
                "claimed_at": claim.claimed_at(),
                "execution_id": name,
                "inputs_digest": Digest::of(claim.attestation_inputs()),
                "position": position,
                "previous": previous,
                "request_digest": claim.request_digest(),
            }))
            .unwrap();
            previous = Digest::of(&record).to_string();
            OldExecution {
                name,
                claim,
                attestation,
                record,
            }
        })
        .collect()
}

/// What every migrated store must show: the old records byte for byte, then one marks record for
/// the marks (2, 1) raised under schema 1, which the store now enforces and cross-checks.
fn check_migrated(store: &dyn ReplayStore, old: &[OldExecution]) {
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    let marks = AcceptedVersions::new(2, 1);
    assert_eq!(
        (
            report.records,
            report.executions,
            report.mark_records,
            report.marks
        ),
        (3, 2, 1, marks)
    );
    let snapshot = store.ledger_snapshot().unwrap();
    for (row, old) in snapshot.rows.iter().zip(old) {
        assert_eq!(row.record, old.record, "{} changed", old.name);
        assert_eq!(row.execution_id.as_deref(), Some(old.name.as_str()));
    }
    let last = &snapshot.rows[2];
    assert_eq!(last.execution_id, None);
    assert_eq!(
        String::from_utf8(last.record.clone()).unwrap(),
        format!(
            r#"{{"kind":"marks","position":2,"previous":"{}","release_manifest":1,"trust_root":2}}"#,
            Digest::of(&old[1].record)
        )
    );
    assert_eq!(store.accepted_versions().unwrap(), marks);
    assert_eq!(
        store
            .claim(&id("new"), &claim_for("new"), AcceptedVersions::new(1, 1))
            .unwrap_err()
            .code(),
        "replay.version_rollback"
    );
    assert_eq!(
        store.claim(&id("new"), &claim_for("new"), marks).unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(verify_ledger(store).unwrap().mark_records, 1);
    // Schema 3: the migrated executions count as sequenced; a new completion waits for the
    // sequencer, which appends it after them, and checkpoints can be stored.
    assert_eq!(report.unsequenced, 0);
    store.complete(&id("new"), b"new attestation").unwrap();
    assert_eq!(verify_ledger(store).unwrap().unsequenced, 1);
    assert_eq!(sequence(store), 1);
    let report = verify_ledger(store).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.records, report.executions, report.unsequenced),
        (4, 3, 0)
    );
    let after = store.ledger_snapshot().unwrap();
    assert_eq!(after.rows[..3], snapshot.rows[..3]);
    assert_eq!(after.rows[3].execution_id.as_deref(), Some("new"));
    let log = ledger_log(store).unwrap();
    store
        .store_checkpoint(&StoredCheckpoint {
            size: log.size(),
            root: log.root(),
            note: "a note".to_owned(),
        })
        .unwrap();
    assert_eq!(verify_ledger(store).unwrap().checkpoints, 1);
}

#[cfg(feature = "sqlite")]
mod sqlite_file {
    use super::*;
    use parmana_replay::SqliteReplayStore;

    /// Schema 1 as `SqliteReplayStore` created it.
    const SCHEMA_1: &str = "CREATE TABLE executions (
            id TEXT PRIMARY KEY NOT NULL,
            request_digest TEXT NOT NULL,
            attestation_inputs BLOB NOT NULL,
            claimed_at TEXT NOT NULL,
            attestation BLOB,
            ledger_position INTEGER
        );
        CREATE INDEX executions_pending ON executions (id) WHERE attestation IS NULL;
        CREATE TABLE ledger (
            position INTEGER PRIMARY KEY NOT NULL,
            execution_id TEXT NOT NULL,
            record BLOB NOT NULL
        );
        CREATE TABLE high_water_marks (
            singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
            trust_root INTEGER NOT NULL,
            release_manifest INTEGER NOT NULL
        );
        INSERT INTO high_water_marks (singleton, trust_root, release_manifest) VALUES (1, 2, 1);
        PRAGMA user_version = 1;";

    #[test]
    fn a_schema_1_sqlite_store_keeps_its_records_and_gets_a_marks_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema-1.sqlite");
        let old = old_executions();
        {
            let raw = rusqlite::Connection::open(&path).unwrap();
            raw.execute_batch(SCHEMA_1).unwrap();
            for (position, e) in (0i64..).zip(&old) {
                raw.execute(
                    "INSERT INTO executions VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        e.name,
                        e.claim.request_digest().to_string(),
                        e.claim.attestation_inputs(),
                        e.claim.claimed_at().to_string(),
                        e.attestation,
                        position
                    ],
                )
                .unwrap();
                raw.execute(
                    "INSERT INTO ledger VALUES (?1, ?2, ?3)",
                    rusqlite::params![position, e.name, e.record],
                )
                .unwrap();
            }
        }
        // A command that only reads opens it without migrating it: refused, the file as it was.
        let refused = SqliteReplayStore::open_existing(&path).unwrap_err();
        assert_eq!(
            refused.code(),
            "replay.schema_version_outdated",
            "{refused}"
        );
        let version = |path: &std::path::Path| -> i64 {
            rusqlite::Connection::open(path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(version(&path), 1);
        let store = SqliteReplayStore::open(&path).unwrap();
        check_migrated(&store, &old);
        drop(store);
        // Once migrated, it opens to be read; a file that holds no store, or none, does not.
        let report = verify_ledger(&SqliteReplayStore::open_existing(&path).unwrap()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.records, report.mark_records), (4, 1));
        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        for missing in [empty, dir.path().join("missing.sqlite")] {
            let refused = SqliteReplayStore::open_existing(&missing).unwrap_err();
            assert_eq!(refused.code(), "replay.invalid_configuration", "{refused}");
        }
        assert!(!dir.path().join("missing.sqlite").exists());
        // Opening again migrates nothing more.
        let store = SqliteReplayStore::open(&path).unwrap();
        assert_eq!(verify_ledger(&store).unwrap().mark_records, 1);
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use crate::common::{postgres_raw, postgres_url, unique};
    use parmana_replay::{PostgresOptions, PostgresReplayStore};

    /// Schema 1 as `PostgresReplayStore` created it (the schema's tables, without `schema_version`).
    const SCHEMA_1: &str = "CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            request_digest TEXT NOT NULL,
            attestation_inputs BYTEA NOT NULL,
            claimed_at TEXT NOT NULL,
            attestation BYTEA,
            ledger_position BIGINT
        );
        CREATE INDEX executions_pending ON executions (id) WHERE attestation IS NULL;
        CREATE TABLE ledger (
            position BIGINT PRIMARY KEY,
            execution_id TEXT NOT NULL,
            record BYTEA NOT NULL
        );
        CREATE TABLE ledger_head (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            next_position BIGINT NOT NULL,
            previous TEXT NOT NULL
        );
        CREATE TABLE high_water_marks (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            trust_root BIGINT NOT NULL,
            release_manifest BIGINT NOT NULL
        );
        INSERT INTO high_water_marks VALUES (1, 2, 1);
        CREATE TABLE schema_version (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            version BIGINT NOT NULL
        );
        INSERT INTO schema_version VALUES (1, 1);";

    #[test]
    #[cfg_attr(
        parmana_no_postgres,
        ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
    )]
    fn a_schema_1_postgres_store_keeps_its_records_and_gets_a_marks_record() {
        let Some(url) = postgres_url() else {
            return;
        };
        let schema = unique("migrate");
        let old = old_executions();
        {
            let mut setup = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            setup
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .unwrap();
            let mut raw = postgres_raw(&url, &schema);
            raw.batch_execute(SCHEMA_1).unwrap();
            for (position, e) in (0i64..).zip(&old) {
                raw.execute(
                    "INSERT INTO executions VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &e.name,
                        &e.claim.request_digest().to_string(),
                        &e.claim.attestation_inputs(),
                        &e.claim.claimed_at().to_string(),
                        &e.attestation,
                        &position,
                    ],
                )
                .unwrap();
                raw.execute(
                    "INSERT INTO ledger VALUES ($1, $2, $3)",
                    &[&position, &e.name, &e.record],
                )
                .unwrap();
            }
            raw.execute(
                "INSERT INTO ledger_head VALUES (1, 2, $1)",
                &[&Digest::of(&old[1].record).to_string()],
            )
            .unwrap();
        }
        let options = PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        };
        let store = PostgresReplayStore::connect(&url, &options).unwrap();
        check_migrated(&store, &old);
        drop(store);
        let store = PostgresReplayStore::connect(&url, &options).unwrap();
        assert_eq!(verify_ledger(&store).unwrap().mark_records, 1);
        drop(store);
        let mut cleanup = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        cleanup
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }
}
