//! The `--store` flag: which replay store to open, defaulting to a SQLite file under `.parmana/`.

use std::path::Path;

use parmana_replay::{ReplayStore, open_store};

use crate::exit::ExitClass;
use crate::report::Failure;

/// The default store: an embedded SQLite file under `.parmana/` in the current directory.
pub const DEFAULT_STORE: &str = "sqlite:.parmana/replay.sqlite3";

/// The replay store to use.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The replay store that consumes execution ids: `sqlite:PATH` (embedded, safe across
    /// processes on one machine), `memory` (forgotten when the command ends: for trials and
    /// tests), or a `postgres://user@host/db` URL (shared by many machines).
    #[arg(long, value_name = "STORE", default_value = DEFAULT_STORE)]
    pub store: String,
}

impl StoreArgs {
    /// Opens the store, creating the SQLite file's directory first when `create` is set.
    /// Without `create`, a SQLite file that does not exist is refused rather than created empty.
    pub fn open(&self, create: bool) -> Result<Box<dyn ReplayStore>, Failure> {
        if let Some(path) = self.store.strip_prefix("sqlite:") {
            let path = Path::new(path);
            if create {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Failure::io(&parent.display().to_string(), &e))?;
                }
            } else if !path.exists() {
                return Err(Failure::new(
                    "cli.store_not_found",
                    format!(
                        "no replay store at {} (execute something first, or pass --store)",
                        path.display()
                    ),
                    ExitClass::Store,
                ));
            }
        }
        open_store(&self.store).map_err(|e| Failure::replay(&e))
    }
}
