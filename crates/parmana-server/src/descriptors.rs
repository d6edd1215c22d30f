//! The file descriptors `max_connections` needs: the process's soft limit on open files is raised toward its hard limit as far as the connections and a reserve need, and the server refuses to start where even the hard limit is lower — otherwise `accept` fails at the descriptor limit before the connection limit is reached, and with it every file the server opens (a tokens reload, a trust-root reload, the log anchor, a store reconnect).

use crate::error::ServerError;
use crate::settings::Limits;

/// Descriptors the process needs beside one per connection: standard streams, the event loop,
/// the listener, signal handling, the store's files or pool connections, a file a reload or the
/// log anchor opens, and room for each request in flight to open one.
pub(crate) const RESERVED_DESCRIPTORS: u64 = 64;

/// The descriptors the server needs under `limits`: one per connection, one per request in
/// flight, and [`RESERVED_DESCRIPTORS`].
pub(crate) fn needed(limits: &Limits) -> u64 {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    count(limits.max_connections)
        .saturating_add(count(limits.max_concurrency))
        .saturating_add(RESERVED_DESCRIPTORS)
}

/// The soft limit to set, given the current soft and hard limits (`None`: unlimited) and the
/// descriptors `needed`: `Ok(None)` when the soft limit already allows them, `Ok(Some(needed))`
/// when the hard limit lets the soft one be raised to it, and `server.descriptor_limit` when it
/// does not.
pub(crate) fn raised_soft_limit(
    soft: Option<u64>,
    hard: Option<u64>,
    needed: u64,
) -> Result<Option<u64>, ServerError> {
    if soft.is_none_or(|soft| soft >= needed) {
        return Ok(None);
    }
    match hard {
        Some(hard) if hard < needed => Err(ServerError::DescriptorLimit {
            needed,
            allowed: hard,
            why: "its hard limit".to_owned(),
        }),
        _ => Ok(Some(needed)),
    }
}

/// The raise [`ensure`] made, if any — (the soft limit before, the soft limit set) — for the
/// server to log once its log is set up (the raise comes before: before the store is opened).
static RAISED: std::sync::OnceLock<(Option<u64>, u64)> = std::sync::OnceLock::new();

/// Logs the raise of the soft limit on open files made at start, if one was (once the log is
/// set up: the raise comes before).
pub(crate) fn log_raise() {
    if let Some((from, to)) = RAISED.get().copied() {
        tracing::info!(
            target: "parmana::server",
            from = from.map_or_else(|| "unlimited".to_owned(), |from| from.to_string()),
            to,
            "raised the limit on open files for max_connections"
        );
    }
}

/// Makes the process's limit on open files allow what `limits` need ([`raised_soft_limit`]);
/// the limit is never lowered.
#[cfg(unix)]
pub(crate) fn ensure(limits: &Limits) -> Result<(), ServerError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let needed = needed(limits);
    let current = getrlimit(Resource::Nofile);
    if let Some(soft) = raised_soft_limit(current.current, current.maximum, needed)? {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: current.maximum,
            },
        )
        .map_err(|e| ServerError::DescriptorLimit {
            needed,
            allowed: current.current.unwrap_or(u64::MAX),
            why: format!("the system refused to raise it: {e}"),
        })?;
        let _ = RAISED.set((current.current, soft));
    }
    Ok(())
}

/// Elsewhere the operating system's own limits hold.
#[cfg(not(unix))]
pub(crate) fn ensure(_: &Limits) -> Result<(), ServerError> {
    Ok(())
}

/// Raises the soft limit on open files toward what `limits` need, as far as the hard limit
/// lets it, refusing nothing (for a server whose connection count is fixed: the witness).
#[cfg(unix)]
pub(crate) fn raise_toward(limits: &Limits) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let wanted = current
        .maximum
        .map_or(needed(limits), |hard| hard.min(needed(limits)));
    if current.current.is_some_and(|soft| soft < wanted)
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(wanted),
                maximum: current.maximum,
            },
        )
        .is_ok()
    {
        let _ = RAISED.set((current.current, wanted));
    }
}

/// Elsewhere the operating system's own limits hold.
#[cfg(not(unix))]
pub(crate) fn raise_toward(_: &Limits) {}

/// The most connections `limits` may hold within the process's hard limit on open files
/// (one per request in flight and [`RESERVED_DESCRIPTORS`] beside them), when it is below what
/// their `max_connections` needs: for `parmana serve` to lower a `max_connections` left at its
/// default rather than refuse to start where the hard limit is low (1,024 is common). `None`
/// when the limit allows them, or allows no connection at all (the start is then refused).
#[cfg(unix)]
pub fn connections_within_open_files_limit(limits: &Limits) -> Option<usize> {
    use rustix::process::{Resource, getrlimit};
    let hard = getrlimit(Resource::Nofile).maximum?;
    if hard >= needed(limits) {
        return None;
    }
    let beside = needed(&Limits {
        max_connections: 0,
        ..*limits
    });
    usize::try_from(hard.checked_sub(beside)?)
        .ok()
        .filter(|fit| *fit >= 1)
}

/// Elsewhere the operating system's own limits hold.
#[cfg(not(unix))]
pub fn connections_within_open_files_limit(_: &Limits) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A case: the soft and hard limits (`None`: unlimited), the descriptors needed, and the
    /// soft limit set (`Ok(None)`: left as it is) or the limit the refusal names.
    type Case = (Option<u64>, Option<u64>, u64, Result<Option<u64>, u64>);

    #[test]
    fn the_soft_limit_is_raised_as_far_as_needed_and_never_lowered() {
        let cases: [Case; 6] = [
            (Some(1024), Some(524_288), 1344, Ok(Some(1344))),
            (Some(1024), None, 1344, Ok(Some(1344))),
            (Some(4096), Some(4096), 1344, Ok(None)),
            (None, None, 1344, Ok(None)),
            (Some(1344), Some(1344), 1344, Ok(None)),
            (Some(256), Some(1024), 1344, Err(1024)),
        ];
        for (soft, hard, needed, expected) in cases {
            let got = raised_soft_limit(soft, hard, needed).map_err(|e| match e {
                ServerError::DescriptorLimit { allowed, .. } => allowed,
                other => panic!("{other}"),
            });
            assert_eq!(got, expected, "{soft:?} {hard:?} {needed}");
        }
        let refused = raised_soft_limit(Some(256), Some(1024), 1344).unwrap_err();
        assert_eq!(refused.code(), "server.descriptor_limit");
    }

    #[test]
    fn the_defaults_need_more_than_the_common_soft_limit() {
        // 1,024 connections, 256 requests in flight and the reserve: past the 1,024 that
        // systemd, containers and shells commonly give, hence the raise.
        assert_eq!(needed(&Limits::default()), 1024 + 256 + 64);
    }
}
