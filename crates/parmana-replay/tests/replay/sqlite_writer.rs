//! What a writer of a SQLite store's file can plant is refused, not run: a schema its store's statements would not run on as this build's migrations made it (a trigger that copies what the store records or never ends — under a name of SQLite's too —, a CHECK constraint or a partial index's WHERE rewritten, a view under a table's name, a table renamed, a column dropped or renamed, an index dropped, added on a store's table or made again otherwise, a newer schema version) is `replay.store_corrupt` at open and at the next read or write of a store already open; SQLite's own statistics and another tool's tables (a backup tool's) are not refused, up to 256 objects in all; the file a store creates is its owner's only; a path is the file it names (no `file:` URI, a symbolic link resolved, one to nothing refused); another application's database is not made a store.

use parmana_replay::{AcceptedVersions, ClaimOutcome, ReplayStore, SqliteReplayStore};

use crate::common::{claim_for, id};

/// A change a writer of the file makes to the schema, and the code it is refused with and what
/// the refusal names (`None`: accepted).
struct SchemaCase {
    name: &'static str,
    sql: &'static str,
    refused: Option<(&'static str, &'static str)>,
}

const SCHEMA_CASES: &[SchemaCase] = &[
    SchemaCase {
        name: "a trigger copying the recorded inputs",
        sql: "CREATE TABLE captured (inputs BLOB);
              CREATE TRIGGER capture BEFORE INSERT ON executions
              BEGIN INSERT INTO captured VALUES (NEW.attestation_inputs); END;",
        refused: Some(("replay.store_corrupt", "trigger \"capture\"")),
    },
    SchemaCase {
        name: "a trigger written into the schema table under a name of SQLite's",
        sql: "CREATE TABLE captured (inputs BLOB);
              PRAGMA writable_schema = ON;
              INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES
                ('trigger', 'sqlite_capture', 'executions', 0,
                 'CREATE TRIGGER sqlite_capture BEFORE INSERT ON executions
                  BEGIN INSERT INTO captured VALUES (NEW.attestation_inputs); END');
              PRAGMA writable_schema = OFF;
              CREATE TABLE bump (x); DROP TABLE bump;",
        refused: Some(("replay.store_corrupt", "trigger \"sqlite_capture\"")),
    },
    SchemaCase {
        name: "a trigger under a name of SQLite's that only drops what the store writes",
        sql: "PRAGMA writable_schema = ON;
              INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES
                ('trigger', 'sqlite_skip', 'executions', 0,
                 'CREATE TRIGGER sqlite_skip BEFORE INSERT ON executions
                  BEGIN SELECT RAISE(IGNORE); END');
              PRAGMA writable_schema = OFF;
              CREATE TABLE bump (x); DROP TABLE bump;",
        refused: Some(("replay.store_corrupt", "trigger \"sqlite_skip\"")),
    },
    SchemaCase {
        name: "a trigger that never ends (it would hold the write lock for ever)",
        sql: "CREATE TRIGGER spin BEFORE INSERT ON executions BEGIN
                SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                                      SELECT x FROM c);
              END;",
        refused: Some(("replay.store_corrupt", "trigger \"spin\"")),
    },
    SchemaCase {
        name: "a view under a table's name",
        sql: "ALTER TABLE executions RENAME TO executions_moved;
              CREATE VIEW executions AS SELECT * FROM executions_moved;",
        refused: Some(("replay.store_corrupt", "lacks the index")),
    },
    SchemaCase {
        name: "a table renamed",
        sql: "ALTER TABLE high_water_marks RENAME TO marks_gone;",
        refused: Some(("replay.store_corrupt", "\"high_water_marks\"")),
    },
    SchemaCase {
        name: "an index dropped",
        sql: "DROP INDEX executions_claimed_at;",
        refused: Some(("replay.store_corrupt", "\"executions_claimed_at\"")),
    },
    SchemaCase {
        name: "a newer build's schema version",
        sql: "PRAGMA user_version = 99;",
        refused: Some(("replay.schema_version_unsupported", "99")),
    },
    SchemaCase {
        name: "a column dropped (every name kept)",
        sql: "ALTER TABLE executions DROP COLUMN attestation_inputs;",
        refused: Some(("replay.store_corrupt", "the definition of the columns of")),
    },
    SchemaCase {
        name: "a column renamed (every object's name kept)",
        sql: "ALTER TABLE executions RENAME COLUMN request_digest TO d;",
        refused: Some(("replay.store_corrupt", "the definition of the columns of")),
    },
    SchemaCase {
        name: "an index made again under its name on other columns",
        sql: "DROP INDEX executions_claimed_at;
              CREATE INDEX executions_claimed_at ON executions (request_digest);",
        refused: Some((
            "replay.store_corrupt",
            "the columns of index \"executions_claimed_at\"",
        )),
    },
    SchemaCase {
        name: "an index added on a store's table",
        sql: "CREATE INDEX executions_extra ON executions (request_digest);",
        refused: Some(("replay.store_corrupt", "\"executions_extra\"")),
    },
    SchemaCase {
        name: "a partial index's WHERE rewritten (its flag kept) to cost a gigabyte a write",
        sql: "PRAGMA writable_schema = ON;
              UPDATE sqlite_schema SET sql = 'CREATE INDEX executions_pending ON executions (id)
                  WHERE length(hex(zeroblob(100000000))) > 0'
                WHERE name = 'executions_pending';
              PRAGMA writable_schema = OFF;
              CREATE TABLE bump (x); DROP TABLE bump;",
        refused: Some((
            "replay.store_corrupt",
            "the text of index \"executions_pending\"",
        )),
    },
    SchemaCase {
        name: "a table's CHECK rewritten (every pragma row kept)",
        sql: "PRAGMA writable_schema = ON;
              UPDATE sqlite_schema SET sql = replace(sql, 'CHECK ((kind = ''execution'')',
                  'CHECK (length(printf(''%.*c'', 300000000, ''x'')) > 0 AND (kind = ''execution'')')
                WHERE name = 'ledger';
              PRAGMA writable_schema = OFF;
              CREATE TABLE bump (x); DROP TABLE bump;",
        refused: Some(("replay.store_corrupt", "the text of table \"ledger\"")),
    },
    SchemaCase {
        name: "SQLite's own statistics (ANALYZE)",
        sql: "ANALYZE;",
        refused: None,
    },
    SchemaCase {
        name: "another table's foreign key into a store's table (not enforced: the store's writes go on)",
        sql: "CREATE TABLE other (m INTEGER REFERENCES high_water_marks (trust_root));",
        refused: None,
    },
    SchemaCase {
        name: "a backup tool's tables beside the store's (Litestream's)",
        sql: "CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
              CREATE TABLE _litestream_lock (id INTEGER);
              CREATE INDEX _litestream_seq_by_seq ON _litestream_seq (seq);",
        refused: None,
    },
];

/// The rows a planted `captured` table holds (none where the case made no such table).
fn captured(raw: &rusqlite::Connection) -> usize {
    raw.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'captured'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .ok()
    .filter(|tables| *tables == 1)
    .and_then(|_| {
        raw.query_row("SELECT count(*) FROM captured", [], |row| {
            row.get::<_, i64>(0)
        })
        .ok()
    })
    .map_or(0, |rows| usize::try_from(rows).unwrap())
}

#[test]
fn a_schema_changed_behind_the_store_is_refused_at_open_and_while_open() {
    let under = AcceptedVersions::new(1, 1);
    for case in SCHEMA_CASES {
        let name = case.name;
        // At rest: planted while no store was open, refused at open.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        drop(SqliteReplayStore::open(&path).unwrap());
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(case.sql).unwrap();
        match (SqliteReplayStore::open(&path), case.refused) {
            (Err(error), Some((code, named))) => {
                assert_eq!(error.code(), code, "{name}: {error}");
                assert!(error.to_string().contains(named), "{name}: {error}");
            }
            (Ok(store), None) => assert_eq!(
                store.claim(&id("x"), &claim_for("x"), under).unwrap(),
                ClaimOutcome::Claimed,
                "{name}"
            ),
            (opened, _) => panic!("{name}: {:?}", opened.map(|_| ())),
        }
        assert_eq!(captured(&raw), 0, "{name}");
        drop(raw);

        // While open: planted between two claims of a store in use, refused at its next write
        // and its next read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        let store = std::sync::Arc::new(SqliteReplayStore::open(&path).unwrap());
        assert_eq!(
            store.claim(&id("before"), &claim_for("a"), under).unwrap(),
            ClaimOutcome::Claimed,
            "{name}"
        );
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(case.sql).unwrap();
        // On a thread, so that a trigger that never ends (were it run) fails the test rather
        // than hang it.
        let (answer, answered) = std::sync::mpsc::channel();
        let claiming = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            let _ = answer.send(claiming.claim(&id("after"), &claim_for("b"), under));
        });
        let claimed = answered
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name}: the claim never ended"));
        let read = store.get(&id("before"));
        match case.refused {
            Some((code, named)) => {
                let refused = claimed.unwrap_err();
                assert_eq!(refused.code(), code, "{name}: {refused}");
                assert!(refused.to_string().contains(named), "{name}: {refused}");
                assert_eq!(read.map(|_| ()).map_err(|e| e.code()), Err(code), "{name}");
            }
            None => {
                assert_eq!(claimed.unwrap(), ClaimOutcome::Claimed, "{name}");
                assert!(read.is_ok(), "{name}: {read:?}");
            }
        }
        assert_eq!(captured(&raw), 0, "{name}");
    }
}

/// Another tool's tables are left alone, but only so many objects are read: a schema of more
/// than 256 is refused unread (`replay.store_corrupt`), so a writer cannot make every check of
/// the schema cost what it likes.
#[test]
fn a_schema_of_more_objects_than_are_read_is_refused() {
    let under = AcceptedVersions::new(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    drop(SqliteReplayStore::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    let store_objects: usize = raw
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|count| usize::try_from(count).unwrap())
        .unwrap();
    let plant = |from: usize, to: usize| {
        let tables: String = (from..to)
            .map(|n| format!("CREATE TABLE other_{n} (x);"))
            .collect();
        raw.execute_batch(&tables).unwrap();
    };
    // Exactly 256 objects in all: accepted.
    plant(0, 256 - store_objects);
    let store = SqliteReplayStore::open(&path).unwrap();
    assert_eq!(
        store.claim(&id("at-cap"), &claim_for("a"), under).unwrap(),
        ClaimOutcome::Claimed
    );
    // One more, while the store is open: refused at its next write, and at open.
    plant(256 - store_objects, 257 - store_objects);
    let refused = store
        .claim(&id("past-cap"), &claim_for("b"), under)
        .unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(
        refused.to_string().contains("more than 256 objects"),
        "{refused}"
    );
    drop(store);
    let reopened = SqliteReplayStore::open(&path).map(|_| ()).unwrap_err();
    assert_eq!(reopened.code(), "replay.store_corrupt", "{reopened}");
}

#[test]
fn a_store_file_is_its_owners_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let store = SqliteReplayStore::open(&path).unwrap();
    assert_eq!(
        store
            .claim(&id("x"), &claim_for("x"), AcceptedVersions::new(1, 1))
            .unwrap(),
        ClaimOutcome::Claimed
    );
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt as _;
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
}

/// A store's path is the file it names: not a `file:` URI (SQLite would open another file than
/// the one every check watches, with its own mode); through a symbolic link, the file linked to
/// (whose WAL and index SQLite names after it); a link to nothing is refused, and nothing made.
#[test]
fn a_store_path_is_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.sqlite3");
    let uri = format!("file:{}", real.display());
    assert_eq!(
        SqliteReplayStore::open(&uri).unwrap_err().code(),
        "replay.invalid_configuration"
    );
    assert_eq!(
        SqliteReplayStore::hold_writes(&uri)
            .map(|_| ())
            .unwrap_err()
            .code(),
        "replay.invalid_configuration"
    );
    assert!(!real.exists());
    #[cfg(unix)]
    {
        // A name that is not UTF-8 is a URI to SQLite all the same.
        use std::os::unix::ffi::OsStrExt;
        let mut bytes = format!("file:{}/", dir.path().display()).into_bytes();
        bytes.extend_from_slice(b"\xff.sqlite3");
        let not_utf8 = std::path::Path::new(std::ffi::OsStr::from_bytes(&bytes));
        assert_eq!(
            SqliteReplayStore::open(not_utf8).unwrap_err().code(),
            "replay.invalid_configuration"
        );
        let link = dir.path().join("link.sqlite3");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            SqliteReplayStore::open(&link).unwrap_err().code(),
            "replay.invalid_configuration"
        );
        assert!(!real.exists());
        drop(SqliteReplayStore::open(&real).unwrap());
        let store = SqliteReplayStore::open(&link).unwrap();
        assert_eq!(store.path(), std::fs::canonicalize(&real).unwrap());
        assert_eq!(
            store
                .claim(&id("x"), &claim_for("x"), AcceptedVersions::new(1, 1))
                .unwrap(),
            ClaimOutcome::Claimed
        );
        // The WAL and the index watched are the linked file's: replacing its index is noticed.
        std::fs::remove_file(format!("{}-shm", real.display())).unwrap();
        std::fs::write(format!("{}-shm", real.display()), b"").unwrap();
        assert_eq!(
            store
                .claim(&id("y"), &claim_for("y"), AcceptedVersions::new(1, 1))
                .unwrap_err()
                .code(),
            "replay.store_replaced"
        );
        drop(store);

        // The file moved and a symbolic link put at its old name: the inode the link names is
        // the store's, but the next opener would resolve the link and name its WAL and index
        // after the target, beside the ones in use — refused at the next write and read.
        let path = dir.path().join("moved.sqlite3");
        let store = SqliteReplayStore::open(&path).unwrap();
        let under = AcceptedVersions::new(1, 1);
        assert_eq!(
            store.claim(&id("a"), &claim_for("a"), under).unwrap(),
            ClaimOutcome::Claimed
        );
        let elsewhere = dir.path().join("elsewhere.sqlite3");
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert_eq!(
            store
                .claim(&id("b"), &claim_for("b"), under)
                .unwrap_err()
                .code(),
            "replay.store_replaced"
        );
        assert_eq!(
            store.get(&id("a")).map(|_| ()).unwrap_err().code(),
            "replay.store_replaced"
        );
    }
}

/// A store is made only in an empty database: a SQLite file of another application (tables, no
/// store version — or a version of its own, which an application may set, at one this build
/// would migrate from; or no tables and such a version) is refused
/// (`replay.invalid_configuration`) before anything is written to it (its schema, version and
/// journal mode as they were, no WAL made); a store whose version was lost (a dump and reload
/// drops it) is refused as what it is (`replay.store_corrupt`), not made anew beside the ids it
/// holds, and so is one whose version is negative (no build writes one); a backup tool's tables
/// at version 0 (Litestream adds them to any file it watches) are no application's: the store is
/// made beside them.
#[test]
fn another_applications_database_is_not_made_a_store() {
    let dir = tempfile::tempdir().unwrap();
    // (case, SQL, the tables it makes, its version, the code, what the refusal says)
    let foreign = |version: i64| {
        format!(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER);
             PRAGMA user_version = {version};"
        )
    };
    let cases = [
        (
            "tables, no version",
            foreign(0),
            &["orders"][..],
            0,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "tables at a version of the application's own",
            foreign(2),
            &["orders"][..],
            2,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "tables at this build's version",
            foreign(3),
            &["orders"][..],
            3,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "tables at a version past this build's",
            foreign(7),
            &["orders"][..],
            7,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "no tables, a version",
            "PRAGMA user_version = 1;".to_owned(),
            &[][..],
            1,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "a table under a store's name at an older version (a migration would drop it)",
            "CREATE TABLE ledger (position INTEGER PRIMARY KEY, record BLOB);
             PRAGMA user_version = 1;"
                .to_owned(),
            &["ledger"][..],
            1,
            "replay.store_corrupt",
            "not a store to migrate",
        ),
        (
            "a table under the name of a later version's, no version",
            "CREATE TABLE checkpoints (size INTEGER PRIMARY KEY);".to_owned(),
            &["checkpoints"][..],
            0,
            "replay.invalid_configuration",
            "not a replay store",
        ),
        (
            "a table under the name of a later version's at an older version",
            "CREATE TABLE checkpoints (size INTEGER PRIMARY KEY);
             PRAGMA user_version = 1;"
                .to_owned(),
            &["checkpoints"][..],
            1,
            "replay.invalid_configuration",
            "not a replay store",
        ),
    ];
    for (n, (case, sql, tables, version, code, says)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("theirs-{n}.sqlite3"));
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(&sql).unwrap();
        let refused = SqliteReplayStore::open(&path).map(|_| ()).unwrap_err();
        assert_eq!(refused.code(), code, "{case}: {refused}");
        assert!(refused.to_string().contains(says), "{case}: {refused}");
        let names: Vec<String> = raw
            .prepare("SELECT name FROM sqlite_schema ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, tables, "{case}");
        let (mode, found): (String, i64) = raw
            .query_row(
                "SELECT journal_mode, user_version FROM pragma_journal_mode, pragma_user_version",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((mode.as_str(), found), ("delete", version), "{case}");
        assert!(
            !dir.path().join(format!("theirs-{n}.sqlite3-wal")).exists(),
            "{case}"
        );
    }

    // A store whose version was lost.
    let path = dir.path().join("reloaded.sqlite3");
    let store = SqliteReplayStore::open(&path).unwrap();
    let under = AcceptedVersions::new(1, 1);
    assert_eq!(
        store.claim(&id("kept"), &claim_for("kept"), under).unwrap(),
        ClaimOutcome::Claimed
    );
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0;")
        .unwrap();
    let refused = SqliteReplayStore::open(&path).map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(
        refused.to_string().contains("no schema version"),
        "{refused}"
    );
    // And a negative one.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = -1;")
        .unwrap();
    let refused = SqliteReplayStore::open(&path).map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), "replay.store_corrupt", "{refused}");
    assert!(refused.to_string().contains("no build writes"), "{refused}");

    // Litestream's tables, made before the store.
    let path = dir.path().join("watched.sqlite3");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
             CREATE TABLE _litestream_lock (id INTEGER);",
        )
        .unwrap();
    let store = SqliteReplayStore::open(&path).unwrap();
    assert_eq!(
        store.claim(&id("x"), &claim_for("x"), under).unwrap(),
        ClaimOutcome::Claimed
    );
}
