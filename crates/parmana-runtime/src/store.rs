//! Opening a replay store from its URL (`memory`, `sqlite:PATH`, `postgres://…`): commands that execute may create or migrate a store, commands that complete never do, and commands that only read open it read-only.

use std::path::Path;

use parmana_replay::ReplayStore;

use crate::ExecutionError;

/// Whether opening may create a store that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOpen {
    /// For commands that consume ids (`execute`): a missing `sqlite:` file and its directory
    /// are created.
    CreateIfMissing,
    /// For commands that complete or sequence (`recover`, `log sequence`, `log checkpoint
    /// --key`): a missing `sqlite:` file is refused with `runtime.store_not_found` instead of
    /// created empty, and a store is opened without DDL or writes of its own (refused when not
    /// there or older).
    MustExist,
    /// For commands that only read (`ledger verify`, `ledger export`, `show`, `log prove`): as
    /// [`MustExist`](Self::MustExist), every write through the store refused
    /// (`replay.store_read_only`), and a `sqlite:` store opened read-only, so that reading it
    /// takes read access alone while a process has it open (`docs/replay-stores.md`).
    ReadOnly,
}

/// Opens the replay store named by `location`: `memory` (forgotten when the process ends),
/// `sqlite:PATH` (embedded, safe across processes on one machine) or a `postgres://…` URL
/// (shared by many machines; only in builds with the `postgres` feature).
pub fn open_store(location: &str, mode: StoreOpen) -> Result<Box<dyn ReplayStore>, ExecutionError> {
    if let Some(path) = location.strip_prefix("sqlite:") {
        let path = Path::new(path);
        match mode {
            StoreOpen::CreateIfMissing => {
                // A directory made for the store is its owner's only (0700): the store holds
                // every request's signals.
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    parmana_trust::create_private_directories(parent)
                        .map_err(|e| ExecutionError::io("create", parent, &e))?;
                }
            }
            StoreOpen::MustExist | StoreOpen::ReadOnly => {
                // A directory this user may not search is said as such, not as a missing store.
                match path.try_exists() {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(ExecutionError::StoreNotFound {
                            path: format!(
                                "{} (execute something first, or name the store)",
                                path.display()
                            ),
                        });
                    }
                    Err(e) => {
                        return Err(ExecutionError::Store(
                            parmana_replay::ReplayError::InvalidConfiguration {
                                message: format!("cannot look at {}: {e}", path.display()),
                            },
                        ));
                    }
                }
            }
        }
    }
    match mode {
        StoreOpen::CreateIfMissing => parmana_replay::open_store(location),
        // A PostgreSQL store is opened without DDL or writes, and refused when it is not there
        // or at an older schema version (`replay.store_not_found`,
        // `replay.schema_version_outdated`): a reading command neither creates a store in a
        // mistyped database nor migrates one older servers write.
        StoreOpen::MustExist => parmana_replay::open_existing_store(location),
        StoreOpen::ReadOnly => parmana_replay::open_read_only_store(location),
    }
    .map_err(ExecutionError::Store)
}
