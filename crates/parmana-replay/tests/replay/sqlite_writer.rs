//! What a writer of a SQLite store's file can plant sees no more than it must: a used id is answered before a replay's inputs reach any statement that writes, so a trigger captures none (recovery would sign inputs filed over the id's row), and the file a store creates is its owner's only.

use parmana_replay::{AcceptedVersions, ClaimOutcome, ReplayStore, SqliteReplayStore};

use crate::common::{claim_for, id};

#[test]
fn a_planted_trigger_captures_no_replay_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let under = AcceptedVersions::new(1, 1);
    {
        let store = SqliteReplayStore::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        drop(store);
    }
    // The writer plants a trigger that keeps the inputs of every row inserted, or tried.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TABLE captured (inputs BLOB);
         CREATE TRIGGER capture BEFORE INSERT ON executions
         BEGIN INSERT INTO captured VALUES (NEW.attestation_inputs); END;",
    )
    .unwrap();
    let store = SqliteReplayStore::open(&path).unwrap();
    let first = claim_for("first");
    assert_eq!(
        store.claim(&id("x"), &first, under).unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(&id("x"), &claim_for("replay"), under).unwrap(),
        ClaimOutcome::AlreadyClaimed
    );
    drop(store);
    let captured: Vec<Vec<u8>> = raw
        .prepare("SELECT inputs FROM captured")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(captured, [first.attestation_inputs().to_vec()]);
}
