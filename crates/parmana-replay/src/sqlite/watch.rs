//! What a SQLite store checks before each use that its path and its schema are still what it opened: the files (database, WAL and shared-memory index) by device and inode, and the schema objects against those this build's migrations make.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::Connection;

use super::{MIGRATIONS, map_error};
use crate::ReplayError;

/// The path a store is opened at, with a symbolic link in its last component resolved, and a
/// `file:` URI refused (the bundled SQLite reads any name that starts with `file:` as a URI,
/// whatever the open flags: it would open another file than the one every check here watches,
/// with parameters of its own). SQLite
/// opens the file a link names and names its `-wal` and `-shm` files after that file, so the
/// checks here must watch those. A link that names nothing is refused (SQLite would create its
/// target with the umask's mode, readable by others).
pub(super) fn resolve_store_path(path: &Path) -> Result<PathBuf, ReplayError> {
    // As bytes: SQLite reads the name it is given, valid UTF-8 or not.
    if path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
        return Err(ReplayError::InvalidConfiguration {
            message: format!(
                "{} reads as a SQLite URI: a store is named by its file's path",
                path.display()
            ),
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| ReplayError::InvalidConfiguration {
                message: format!(
                    "{} is a symbolic link to nothing that can be opened ({e}): name the store's file itself",
                    path.display()
                ),
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// The files a store opened, by device and inode: SQLite keeps writing to files it holds open
/// even after they are unlinked or replaced, so a claim committed there would be lost to every
/// later opener of the path — and its id usable again. The `-shm` file holds the write lock and
/// the index of the WAL: a new one made beside the one in use (after an unlink) gives later
/// openers a write lock of their own, and two writers then overwrite each other's commits. While
/// a store is open, SQLite never removes either (that takes the last connection's exclusive
/// lock), so a changed one is always someone else's doing. The writer checks, under the write
/// lock, that the path still names the files it has open before every batch and after its
/// commit, and the reader before every read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileIdentity {
    files: Vec<(PathBuf, Option<(u64, u64)>)>,
}

impl FileIdentity {
    /// The files of the store at `path`, taken once its connections have read it. By then
    /// SQLite has made the WAL and its index (a read in WAL mode opens both) and keeps them while
    /// a connection is open, so one missing was unlinked by someone else meanwhile — a new index
    /// made beside the one this store holds would give the next opener a write lock of its own:
    /// refused (`replay.store_replaced`).
    pub(super) fn of(path: &Path) -> Result<Self, ReplayError> {
        let files = ["", "-wal", "-shm"]
            .into_iter()
            .map(|suffix| {
                let file = super::read_only::beside(path, suffix);
                let id = file_id(&file)?;
                Ok((file, id))
            })
            .collect::<Result<Vec<_>, ReplayError>>()?;
        if files.first().and_then(|(_, id)| *id).is_none() {
            return Err(ReplayError::unavailable(format!(
                "{} vanished while it was being opened",
                path.display()
            )));
        }
        if let Some((missing, _)) = files.iter().find(|(_, id)| id.is_none()) {
            return Err(ReplayError::Replaced {
                path: missing.display().to_string(),
            });
        }
        Ok(Self { files })
    }

    /// The database file alone, for a store opened only to read: a reader loses no commit to a
    /// replaced log or index (what the watch guards a writer against), and a store in
    /// rollback-journal mode has neither.
    pub(super) fn database_only(path: &Path) -> Result<Self, ReplayError> {
        match file_id(path)? {
            Some(id) => Ok(Self {
                files: vec![(path.to_path_buf(), Some(id))],
            }),
            None => Err(ReplayError::unavailable(format!(
                "{} vanished while it was being opened",
                path.display()
            ))),
        }
    }

    /// Refuses a store whose database file is not the one that was at its path before SQLite
    /// opened it (`before`: swapped in meanwhile, `replay.store_replaced`), or whose files fail
    /// [`check`](Self::check) now.
    pub(super) fn check_opened(
        &self,
        path: &Path,
        before: Option<(u64, u64)>,
    ) -> Result<(), ReplayError> {
        if self.database() != before {
            return Err(ReplayError::Replaced {
                path: path.display().to_string(),
            });
        }
        self.check()
    }

    /// The database file's device and inode.
    pub(super) fn database(&self) -> Option<(u64, u64)> {
        self.files.first().and_then(|(_, id)| *id)
    }

    /// Refuses when a file the store opened is gone or was replaced under it
    /// (`replay.store_replaced`), or when the database file gained a second name
    /// (`replay.store_multiple_links`).
    pub(super) fn check(&self) -> Result<(), ReplayError> {
        if let Some((path, _)) = self.files.first() {
            refuse_multiple_links(path)?;
        }
        for (path, opened) in &self.files {
            if file_id(path)? != *opened {
                return Err(ReplayError::Replaced {
                    path: path.display().to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Refuses a database file with more than one hard link (a missing file is not refused here).
#[cfg(unix)]
pub(super) fn refuse_multiple_links(path: &Path) -> Result<(), ReplayError> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() && metadata.nlink() > 1 => {
            Err(ReplayError::MultipleLinks {
                path: path.display().to_string(),
                links: metadata.nlink(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
pub(super) fn refuse_multiple_links(_path: &Path) -> Result<(), ReplayError> {
    Ok(())
}

/// The device and inode of the file at `path` itself — a symbolic link put in its place is
/// another file, not the one it names (the path was resolved at open: a link there now moved the
/// store's file, and the next opener would resolve it and name its WAL and index after the
/// target, beside the ones in use); `None` when nothing is there. Any other failure to look (a
/// permission, an I/O error) is `replay.store_unavailable`: it says nothing of the file, and may
/// pass.
pub(super) fn file_id(path: &Path) -> Result<Option<(u64, u64)>, ReplayError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(device_and_inode(&metadata))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ReplayError::unavailable(format!(
            "cannot look at {}: {error}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn device_and_inode(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn device_and_inode(_metadata: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// A schema object as `sqlite_schema` lists it: its type, name and table.
type SchemaObject = (String, String, String);

/// The most bytes of a schema object's type, name or table name read; a longer one (a writer's)
/// reads as NULL and is refused.
const MAX_SCHEMA_NAME_BYTES: i64 = 128;

/// The most schema objects read: the store's own and, beside them, tables of other tools (a
/// backup tool's, such as Litestream's `_litestream_seq` and `_litestream_lock`); more is
/// refused unread.
const MAX_SCHEMA_OBJECTS: usize = 256;

/// Whether a connection's schema is still one this build's store works on. A writer of the file
/// could add a trigger (which runs inside the store's own statements: one that never ends
/// holds the write lock for ever, one that writes elsewhere copies what the store records),
/// put a view under a table's name, or rename or drop what the store reads. SQLite's schema
/// cookie (`PRAGMA schema_version`) changes with every such change, so the objects are compared
/// only when it or the schema version (`PRAGMA user_version`) moved since the last check; in
/// the caller's transaction, so that the statements after the check see the schema checked.
#[derive(Debug, Default)]
pub(super) struct SchemaWatch {
    /// The schema cookie and schema version last verified.
    verified: Option<(i64, i64)>,
}

impl SchemaWatch {
    /// Refuses a schema that is not this build's (`replay.store_corrupt`; a newer build's,
    /// `replay.schema_version_unsupported`).
    pub(super) fn check(&mut self, conn: &Connection) -> Result<(), ReplayError> {
        // The schema version (`user_version`) is not part of the cookie: both are read.
        let seen: (i64, i64) = conn
            .prepare_cached(
                "SELECT (SELECT schema_version FROM pragma_schema_version),
                        (SELECT user_version FROM pragma_user_version)",
            )
            .and_then(|mut statement| statement.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(map_error)?;
        if self.verified == Some(seen) {
            return Ok(());
        }
        verify_schema(conn)?;
        self.verified = Some(seen);
        Ok(())
    }
}

/// The store's schema version (`PRAGMA user_version`).
fn schema_version(conn: &Connection) -> Result<i64, ReplayError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(map_error)
}

/// This build's schema version: the number of its migrations.
pub(super) fn current_schema_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn verify_schema(conn: &Connection) -> Result<(), ReplayError> {
    let current = current_schema_version();
    let found = schema_version(conn)?;
    if found > current {
        return Err(ReplayError::SchemaVersionUnsupported {
            found,
            supported: current,
        });
    }
    if found < current {
        return Err(ReplayError::corrupt(format!(
            "the store's schema version is {found}, not the {current} it was opened at"
        )));
    }
    let (expected, expected_definitions) = expected_schema()?;
    let found = schema_objects(conn, MAX_SCHEMA_OBJECTS + 1)?;
    if found.len() > MAX_SCHEMA_OBJECTS {
        return Err(ReplayError::corrupt(format!(
            "the store's schema holds more than {MAX_SCHEMA_OBJECTS} objects"
        )));
    }
    check_objects(expected, &found)?;
    let found_definitions = definitions(conn, expected)?;
    match expected_definitions
        .iter()
        .find(|(name, definition)| found_definitions.get(*name) != Some(definition))
    {
        Some((name, _)) => Err(ReplayError::corrupt(format!(
            "the definition of {name} is not the one this build's migrations make (a column \
             dropped, renamed or retyped, an index made again otherwise, a constraint \
             rewritten): the store's schema was changed behind its back"
        ))),
        None => Ok(()),
    }
}

/// What names alone do not show of the store's own tables and indexes, as SQLite reports it:
/// each table's columns (`table_xinfo`: name, declared type, not null, default, primary key,
/// hidden) and indexes (`index_list`: name, unique, origin, partial), each index's columns
/// (`index_xinfo`: key columns, order, collation), and the `CREATE` text of each (its `CHECK`
/// constraints and a partial index's `WHERE`, which SQLite runs inside the store's writes) — a
/// column dropped, renamed or retyped, an index made again under its name without its
/// uniqueness, or a constraint rewritten, keeps every name. Keyed by what it
/// describes; each value is the rows as SQL literals, each cut to one character past the longest a
/// migration makes, and at most [`MAX_DEFINITION_ROWS`] rows read.
type Definitions = BTreeMap<String, Vec<Vec<String>>>;

/// The most rows [`definitions`] reads of one table or index (the store's have a few).
const MAX_DEFINITION_ROWS: i64 = 64;

/// The longest `CREATE` text [`definitions`] reads of one table or index (the store's are a few
/// hundred bytes; a longer one is reported as such, not read).
const MAX_DEFINITION_TEXT_BYTES: i64 = 4_096;

fn definitions(
    conn: &Connection,
    objects: &BTreeSet<SchemaObject>,
) -> Result<Definitions, ReplayError> {
    // Each value as its SQL literal (`quote`), cut to `?3` bytes: a value longer than any a
    // migration makes still differs from the one expected.
    const TABLE_COLUMNS: &str = "SELECT substr(quote(cid), 1, ?3), substr(quote(name), 1, ?3),
            substr(quote(type), 1, ?3), substr(quote(\"notnull\"), 1, ?3),
            substr(quote(dflt_value), 1, ?3), substr(quote(pk), 1, ?3),
            substr(quote(hidden), 1, ?3)
        FROM pragma_table_xinfo(?1) LIMIT ?2";
    const TABLE_INDEXES: &str = "SELECT substr(quote(name), 1, ?3),
            substr(quote(\"unique\"), 1, ?3), substr(quote(origin), 1, ?3),
            substr(quote(partial), 1, ?3)
        FROM pragma_index_list(?1) ORDER BY name LIMIT ?2";
    const INDEX_COLUMNS: &str = "SELECT substr(quote(seqno), 1, ?3), substr(quote(cid), 1, ?3),
            substr(quote(name), 1, ?3), substr(quote(\"desc\"), 1, ?3),
            substr(quote(coll), 1, ?3), substr(quote(\"key\"), 1, ?3)
        FROM pragma_index_xinfo(?1) LIMIT ?2";
    // The `CREATE` text as SQLite keeps it (and runs it: a `CHECK` constraint's expression, a
    // partial index's `WHERE`, which the pragmas above report only as a flag), bounded: a
    // writer that rewrote it (`PRAGMA writable_schema`) to an expression costing a gigabyte of
    // work inside the store's own inserts keeps every pragma row as it was. (`?2` is unused.)
    const DEFINITION_TEXT: &str = "SELECT CASE WHEN sql IS NULL THEN 'none'
            WHEN octet_length(sql) <= ?3 THEN 'sql ' || sql ELSE 'too long' END
        FROM sqlite_schema WHERE name = ?1 AND ?2 > 0";
    let mut out = Definitions::new();
    for (kind, name, _) in objects {
        let queries: &[(&str, &str, usize, i64)] = match kind.as_str() {
            "table" => &[
                (
                    "the columns of table",
                    TABLE_COLUMNS,
                    7,
                    MAX_SCHEMA_NAME_BYTES + 1,
                ),
                (
                    "the indexes of table",
                    TABLE_INDEXES,
                    4,
                    MAX_SCHEMA_NAME_BYTES + 1,
                ),
                (
                    "the text of table",
                    DEFINITION_TEXT,
                    1,
                    MAX_DEFINITION_TEXT_BYTES,
                ),
            ],
            "index" => &[
                (
                    "the columns of index",
                    INDEX_COLUMNS,
                    6,
                    MAX_SCHEMA_NAME_BYTES + 1,
                ),
                (
                    "the text of index",
                    DEFINITION_TEXT,
                    1,
                    MAX_DEFINITION_TEXT_BYTES,
                ),
            ],
            _ => continue,
        };
        for (what, sql, width, bound) in queries {
            let mut statement = conn.prepare_cached(sql).map_err(map_error)?;
            let rows = statement
                .query_map(rusqlite::params![name, MAX_DEFINITION_ROWS, bound], |row| {
                    (0..*width)
                        .map(|n| row.get::<_, String>(n))
                        .collect::<Result<Vec<String>, _>>()
                })
                .map_err(map_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_error)?;
            // The text compared word by word: a migration's SQL indented otherwise (a store made
            // by an older build, its migrations' source laid out anew) is the same schema.
            let rows = if *sql == DEFINITION_TEXT {
                rows.into_iter()
                    .map(|row| {
                        row.iter()
                            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect()
                    })
                    .collect()
            } else {
                rows
            };
            out.insert(format!("{what} {name:?}"), rows);
        }
    }
    Ok(out)
}

/// Refuses, before anything is written to it (the WAL switch rewrites the file's header), a file
/// that is neither a store nor empty: at schema version 0 (no store yet) but holding the store's
/// own core tables (a store whose version was lost — a dump and reload drops `user_version` —:
/// `replay.store_corrupt`, as a new store made beside them would let the ids they hold execute
/// again); holding none of them at any version — another application's database, which may set
/// `user_version` itself (`replay.invalid_configuration`, not migrated into; so is one at version
/// 0 or an older version holding none of the store's core tables, [`STORE_CORE_TABLES`],
/// whatever its other names); or, at an older version, some of the core tables but not all (no store to
/// migrate — a migration would drop one —: `replay.store_corrupt`). A negative version, which no
/// build writes, is `replay.store_corrupt`. A store of an older build with all of them is
/// migrated; one at this build's version or a newer one's, with any of the store's objects, is
/// left to the version and schema checks, which name what was changed. A
/// backup tool's tables (Litestream's `_litestream_*`, which it adds to any file it watches) and
/// SQLite's statistics belong to no application: a store is made beside them.
pub(super) fn check_unversioned_file(conn: &Connection) -> Result<(), ReplayError> {
    let version = schema_version(conn)?;
    let current = current_schema_version();
    let found = schema_objects(conn, MAX_SCHEMA_OBJECTS + 1)?;
    let (expected, _) = expected_schema()?;
    let store_names: BTreeSet<&str> = expected.iter().map(|(_, name, _)| name.as_str()).collect();
    let store_object = found
        .iter()
        .find(|(_, name, _)| store_names.contains(name.as_str()));
    // The tables every schema version has made since the first: all of them, some, or none.
    let core_found = STORE_CORE_TABLES
        .iter()
        .filter(|table| {
            found
                .iter()
                .any(|(kind, name, _)| kind == "table" && name == *table)
        })
        .count();
    match (version, store_object) {
        (..0, _) => return Err(crate::record::negative_schema_version(version)),
        (0, Some((kind, name, _))) if core_found > 0 => {
            return Err(ReplayError::corrupt(format!(
                "the file holds the store's {kind} {name:?} but no schema version (lost: a dump \
                 and reload drops it): restore the store from a backup — a new store made here \
                 would let the ids it held execute again"
            )));
        }
        // This build's store, or a newer one's: the version and schema checks judge it (and
        // name what a writer changed).
        (_, Some(_)) if version >= current => return Ok(()),
        // A store of an older build, migrated — with every table a store has had.
        (_, Some(_)) if core_found == STORE_CORE_TABLES.len() => return Ok(()),
        // Some of them: not a store to migrate (a migration would change them).
        (_, Some(_)) if core_found > 0 => {
            return Err(ReplayError::corrupt(format!(
                "the file, at schema version {version}, holds some of a store's tables but not \
                 all of {STORE_CORE_TABLES:?}: not a store to migrate"
            )));
        }
        // None of them: another application's objects under a store's name, as below.
        (_, _) => {}
    }
    let tool = |name: &str, table: &str| {
        table.starts_with("_litestream_") || name.starts_with("sqlite_stat")
    };
    let foreign = found
        .iter()
        .filter(|(_, name, table)| !tool(name, table))
        .count();
    if foreign > 0 || version != 0 {
        return Err(ReplayError::InvalidConfiguration {
            message: format!(
                "the file holds a SQLite database that is not a replay store ({foreign} schema \
                 objects, without a store's core tables, and schema version {version}): name a new file, or \
                 a store's"
            ),
        });
    }
    Ok(())
}

/// The tables every schema version of the store has made since the first.
const STORE_CORE_TABLES: [&str; 3] = ["executions", "ledger", "high_water_marks"];

/// The rule `found` must keep: every object this build's migrations make is there as they make
/// it; nothing else is a trigger or a view (whatever its name, `sqlite_…` included: a writer
/// may write the schema table itself), an index on one of the store's tables, or another object
/// under one of the store's names. Other tables, and their indexes, are left alone: they take no
/// part in the store's statements.
fn check_objects(
    expected: &BTreeSet<SchemaObject>,
    found: &BTreeSet<SchemaObject>,
) -> Result<(), ReplayError> {
    let changed = |what: String| {
        Err(ReplayError::corrupt(format!(
            "{what}: the store's schema was changed behind its back"
        )))
    };
    if let Some((kind, name, _)) = expected.difference(found).next() {
        return changed(format!("the store lacks the {kind} {name:?}"));
    }
    let store_tables: BTreeSet<&str> = expected
        .iter()
        .filter(|(kind, _, _)| kind == "table")
        .map(|(_, name, _)| name.as_str())
        .collect();
    let store_names: BTreeSet<&str> = expected.iter().map(|(_, name, _)| name.as_str()).collect();
    for (kind, name, table) in found.difference(expected) {
        let foreign = !matches!(kind.as_str(), "table" | "index")
            || (kind == "index" && store_tables.contains(table.as_str()))
            || store_names.contains(name.as_str());
        if foreign {
            return changed(format!(
                "the store holds the {kind} {name:?} (on {table:?}), which no migration of this \
                 build makes"
            ));
        }
    }
    Ok(())
}

/// The schema objects of a store of this build, and their definitions: the migrations applied
/// to an empty database in memory, once per process.
fn expected_schema() -> Result<(&'static BTreeSet<SchemaObject>, &'static Definitions), ReplayError>
{
    static EXPECTED: OnceLock<Result<(BTreeSet<SchemaObject>, Definitions), String>> =
        OnceLock::new();
    EXPECTED
        .get_or_init(|| {
            let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
            for migration in MIGRATIONS {
                conn.execute_batch(migration).map_err(|e| e.to_string())?;
            }
            let objects = schema_objects(&conn, 1024).map_err(|e| e.to_string())?;
            let definitions = definitions(&conn, &objects).map_err(|e| e.to_string())?;
            Ok((objects, definitions))
        })
        .as_ref()
        .map(|(objects, definitions)| (objects, definitions))
        .map_err(|message| {
            ReplayError::unavailable(format!(
                "the schema this build makes could not be built in memory: {message}"
            ))
        })
}

/// At most `limit` schema objects of `conn`, each name bounded (none left out: SQLite's own,
/// such as the index of a text primary key, are made in memory too, and a name does not make an
/// object SQLite's — a writer may write the schema table itself).
fn schema_objects(conn: &Connection, limit: usize) -> Result<BTreeSet<SchemaObject>, ReplayError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT CASE WHEN octet_length(type) <= ?1 THEN type END,
                    CASE WHEN octet_length(name) <= ?1 THEN name END,
                    CASE WHEN octet_length(tbl_name) <= ?1 THEN tbl_name END
             FROM sqlite_schema LIMIT ?2",
        )
        .map_err(map_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(rusqlite::params![MAX_SCHEMA_NAME_BYTES, limit], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(map_error)?;
    let mut objects = BTreeSet::new();
    for row in rows {
        let (Some(kind), Some(name), Some(table)) = row.map_err(map_error)? else {
            return Err(ReplayError::corrupt(
                "the store's schema holds an object whose name is too long for any this build makes",
            ));
        };
        objects.insert((kind, name, table));
    }
    Ok(objects)
}
