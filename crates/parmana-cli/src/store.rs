//! The `--store` flag: which replay store to open — named by the flag, `PARMANA_STORE` or `parmana.toml`; there is no implicit default.

use parmana_runtime::replay::ReplayStore;
use parmana_runtime::{StoreOpen, open_store};

use crate::config::{Deployment, Setting};
use crate::report::Failure;

/// The replay store to use.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// The replay store that consumes execution ids: `sqlite:PATH` (embedded, safe across
    /// processes on one machine), `memory` (forgotten when the command ends: for trials and
    /// tests), or a `postgres://user@host/db` URL (shared by many machines)
    /// [env: PARMANA_STORE; config: store; no default: outside a deployment it must be named].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
}

impl StoreArgs {
    /// The store in force: the flag, else the deployment configuration; refused with
    /// `cli.store_not_configured` when nothing names one.
    pub(crate) fn location(&self, deployment: &Deployment) -> Result<Setting<String>, Failure> {
        deployment.require_store(self.store.as_deref())
    }

    /// Opens the store that must already exist (commands that complete or sequence executions).
    pub(crate) fn open_existing(
        &self,
        deployment: &Deployment,
    ) -> Result<Box<dyn ReplayStore>, Failure> {
        self.open(deployment, StoreOpen::MustExist)
    }

    /// Opens the store that must already exist, only to read it (commands that write nothing to
    /// it): every write refused; a SQLite store needs read access alone while a process has it
    /// open (docs/replay-stores.md, "Reading without write access").
    pub(crate) fn open_read_only(
        &self,
        deployment: &Deployment,
    ) -> Result<Box<dyn ReplayStore>, Failure> {
        self.open(deployment, StoreOpen::ReadOnly)
    }

    fn open(
        &self,
        deployment: &Deployment,
        mode: StoreOpen,
    ) -> Result<Box<dyn ReplayStore>, Failure> {
        let location = self.location(deployment)?;
        warn_if_identity_unchecked(&location.value);
        open_store(&location.value, mode).map_err(|e| Failure::execution(&e))
    }
}

/// Warns (`warning[cli.store_identity_unchecked]`) when the store `location` is reached over the
/// network without checking who answers: a `postgres://` URL to a host away from the loopback
/// whose TLS settings verify no certificate, where a man in the middle can answer for the
/// store that decides what executes once — and ask for its password in clear.
pub(crate) fn warn_if_identity_unchecked(location: &str) {
    let hosts = parmana_runtime::replay::store_hosts_unverified(location);
    if !hosts.is_empty() {
        crate::report::errln!(
            "warning[cli.store_identity_unchecked]: the replay store at {} is reached without \
             checking its certificate (sslmode is not verify-full or verify-ca): anyone on the \
             path can answer for it; add sslmode=verify-full&sslrootcert=PATH to the URL \
             (docs/replay-stores.md, TLS)",
            hosts.join(", ")
        );
    }
}
