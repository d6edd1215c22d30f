//! The `--store` flag: which replay store to open, defaulting to a SQLite file under `.parmana/`.

use parmana_runtime::replay::ReplayStore;
use parmana_runtime::{StoreOpen, open_store};

use crate::report::Failure;

/// The default store: an embedded SQLite file under `.parmana/` in the current directory.
pub(crate) const DEFAULT_STORE: &str = "sqlite:.parmana/replay.sqlite3";

/// The replay store to use.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// The replay store that consumes execution ids: `sqlite:PATH` (embedded, safe across
    /// processes on one machine), `memory` (forgotten when the command ends: for trials and
    /// tests), or a `postgres://user@host/db` URL (shared by many machines).
    #[arg(long, value_name = "STORE", default_value = DEFAULT_STORE)]
    pub store: String,
}

impl StoreArgs {
    /// Opens the store, creating the SQLite file's directory first when `create` is set.
    /// Without `create`, a SQLite file that does not exist is refused rather than created empty.
    pub(crate) fn open(&self, create: bool) -> Result<Box<dyn ReplayStore>, Failure> {
        let mode = if create {
            StoreOpen::CreateIfMissing
        } else {
            StoreOpen::MustExist
        };
        open_store(&self.store, mode).map_err(|e| Failure::execution(&e))
    }
}
