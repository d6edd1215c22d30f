//! The log anchor: a file outside the store recording the largest checkpoint a log key signed (its size and root), so that a store rewritten or cut after a restart cannot get that key's signature on a log that does not extend it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use parmana_canon::Digest;
use parmana_replay::{LedgerLog, ReplayStore};
use parmana_trust::TrustError;

use crate::error::ExecutionError;

/// The largest anchor file read (a size and a root are about 80 bytes).
const MAX_ANCHOR_BYTES: u64 = 1024;

/// The first line of an anchor file.
const HEADER: &str = "parmana log anchor v1";

/// The largest checkpoint signed with a log key, kept in a file of its own (`docs/transparency-
/// log.md`, "The log anchor"). Signing a checkpoint ([`crate::LogSigning`] with an anchor)
/// refuses a log that does not extend it (`trust.tlog_inconsistent`), and records a larger one,
/// durably, before the signature is made.
#[derive(Debug)]
pub struct LogAnchor {
    path: PathBuf,
    /// The size and root recorded; `None` before the first signature.
    last: Mutex<Option<(u64, Digest)>>,
}

impl LogAnchor {
    /// The anchor kept at `path`: read when the file exists (a file that is not an anchor is
    /// `runtime.log_anchor_invalid`), none recorded yet when it does not. The path is kept with
    /// its directory resolved, so that signers naming it through a linked directory share the
    /// file and its lock; a file that is a symbolic link, has other names or that anyone may
    /// write is refused (`runtime.log_anchor_invalid`).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ExecutionError> {
        let path = path.into();
        let invalid = |path: &Path, reason: &str| ExecutionError::LogAnchorInvalid {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        // One file under one lock for every signer on the host, whatever the path spelled.
        let path = crate::local_file::resolved(&path).map_err(|reason| invalid(&path, &reason))?;
        if let Some(reason) = crate::local_file::shared_file_hazard(&path)? {
            return Err(invalid(&path, reason));
        }
        let last = read(&path)?;
        Ok(Self {
            path,
            last: Mutex::new(last),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size and root recorded, if any. (A lock poisoned by a panic still holds the last
    /// checkpoint recorded: it is read, not taken for none, which would turn the checks off.)
    pub fn recorded(&self) -> Option<(u64, Digest)> {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses `store` (`runtime.store_rewound`) when it holds fewer ledger records than the
    /// checkpoint recorded here: the store was cut, replaced (a deleted SQLite file created
    /// afresh) or rewound, and the ids of the executions cut away would execute again. One
    /// record read: cheap enough before every `parmana execute`. (A store cut and then grown
    /// again past the recorded size is refused when the next checkpoint is signed.)
    pub fn check_store_reaches(&self, store: &dyn ReplayStore) -> Result<(), ExecutionError> {
        let Some((size, _)) = self.recorded() else {
            return Ok(());
        };
        let Some(last) = size.checked_sub(1) else {
            return Ok(());
        };
        // The record at that very position: one further on (a row a writer planted past a cut)
        // is not it. (Its content is compared by the whole-ledger check, at a server's start
        // and at the next signing.)
        let held = store
            .ledger_records(last, 1)?
            .first()
            .is_some_and(|record| record.position == last);
        if !held {
            return Err(ExecutionError::StoreRewound {
                reason: format!(
                    "it holds no ledger record at position {last}, though the log anchor {} \
                     records a checkpoint of size {size} signed over it: the store was cut, \
                     replaced or rewound (restore it from a backup that holds that checkpoint)",
                    self.path.display()
                ),
            });
        }
        Ok(())
    }

    /// [`check_store_reaches`](Self::check_store_reaches), then the whole ledger read
    /// (verified) and compared with the recorded root at the recorded size: a store cut and grown
    /// again past the anchor, with another history, is refused too (`runtime.store_rewound`).
    /// Returns the log read, for a sequencer to keep
    /// ([`LogSequencer::load_extending`](crate::LogSequencer::load_extending)): it reads the
    /// whole ledger and takes no lock (the ledger only grows), for a server's start, before it is
    /// ready. Other failures (the store, a broken ledger) are returned as they are.
    pub(crate) fn read_extending_log(
        &self,
        store: &dyn ReplayStore,
    ) -> Result<LedgerLog, ExecutionError> {
        self.check_store_reaches(store)?;
        let log = parmana_replay::ledger_log(store)?;
        if let Some((size, root)) = self.recorded()
            && log.tree().root_at(size).ok() != Some(root)
        {
            return Err(ExecutionError::StoreRewound {
                reason: format!(
                    "its ledger has another root at size {size} than the log anchor {} records \
                     for the checkpoint signed over it: the store was cut and grown again, or \
                     rewritten (restore it from a backup that holds that checkpoint)",
                    self.path.display()
                ),
            });
        }
        Ok(log)
    }

    /// Refuses `log` unless it extends the recorded checkpoint (as large, the same root at its
    /// size); records `log`'s size and root when it is larger, durably, before returning (and
    /// so before the checkpoint is signed: a signature that then fails leaves the anchor ahead,
    /// which only refuses more). Signers sharing the file (a server and the CLI on one host) are
    /// ordered by an exclusive lock on `<file>.lock`, and each reads the file again under it.
    pub(crate) fn check_and_advance(&self, log: &LedgerLog) -> Result<(), ExecutionError> {
        let mut last = self.last.lock().map_err(|_| {
            ExecutionError::io(
                "lock",
                &self.path,
                &std::io::Error::other("the log anchor's lock is poisoned"),
            )
        })?;
        let _lock = lock_file(&sibling(&self.path, "lock"))?;
        // What another signer recorded since counts as much as what this one did.
        let recorded = match (*last, read(&self.path)?) {
            (Some((kept, kept_root)), Some((filed, filed_root))) if kept == filed => {
                if kept_root != filed_root {
                    return Err(ExecutionError::LogAnchorInvalid {
                        path: self.path.display().to_string(),
                        reason: format!("it records another root at size {filed} than before"),
                    });
                }
                Some((kept, kept_root))
            }
            (kept, filed) => kept.into_iter().chain(filed).max_by_key(|(size, _)| *size),
        };
        if let Some((size, root)) = recorded
            && !grows_past(size, root, log)?
        {
            *last = Some((size, root));
            return Ok(());
        }
        write(&self.path, log.size(), log.root())?;
        *last = Some((log.size(), log.root()));
        Ok(())
    }
}

/// Whether `log` grows past the checkpoint of `size` and `root` recorded as signed (`false`: it is
/// that checkpoint's log); refused (`trust.tlog_inconsistent`) when it does not extend it —
/// another root at that size, or a smaller log.
pub(crate) fn grows_past(size: u64, root: Digest, log: &LedgerLog) -> Result<bool, ExecutionError> {
    let inconsistent = |reason| TrustError::TlogInconsistent {
        old_size: size,
        new_size: log.size(),
        reason,
    };
    let at = log.tree().root_at(size).map_err(inconsistent)?;
    if at != root {
        return Err(inconsistent(parmana_canon::merkle::MerkleError::RootMismatch).into());
    }
    Ok(log.size() > size)
}

/// The anchor in the file at `path`: `None` when there is no file yet; a file that is not an
/// anchor is `runtime.log_anchor_invalid`.
fn read(path: &Path) -> Result<Option<(u64, Digest)>, ExecutionError> {
    let file = match parmana_trust::open_regular_file(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecutionError::io("read", path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ANCHOR_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ExecutionError::io("read", path, &e))?;
    let invalid = |reason: String| ExecutionError::LogAnchorInvalid {
        path: path.display().to_string(),
        reason,
    };
    if bytes.len() as u64 > MAX_ANCHOR_BYTES {
        return Err(invalid(format!("larger than {MAX_ANCHOR_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".to_owned()))?;
    parse(&text).map(Some).map_err(invalid)
}

/// Takes an exclusive lock on the file at `path` (created if missing; a regular file, opened
/// without waiting: `parmana_trust::open_lock_file`), waiting for another holder — another
/// process too; released when the returned file is dropped.
pub(crate) fn lock_file(path: &Path) -> Result<std::fs::File, ExecutionError> {
    let lock =
        parmana_trust::open_lock_file(path).map_err(|e| ExecutionError::io("open", path, &e))?;
    lock.lock()
        .map_err(|e| ExecutionError::io("lock", path, &e))?;
    Ok(lock)
}

/// `path` with `.suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// `HEADER`, the size and the root's hex, one per line, exactly as [`write`] writes them: a size
/// spelled otherwise (`+5`, `007`), a line ending in `\r` or no final newline is refused.
fn parse(text: &str) -> Result<(u64, Digest), String> {
    let (size, root) = parse_lines(text)?;
    if format!("{HEADER}\n{size}\n{root}\n") != text {
        return Err(
            "it is not spelled as an anchor is written (three lines, each ending in a \
                    newline, the size in decimal without a sign or leading zeros)"
                .to_owned(),
        );
    }
    Ok((size, root))
}

/// The three lines of an anchor, read.
fn parse_lines(text: &str) -> Result<(u64, Digest), String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("the first line is not {HEADER:?}"));
    }
    let size = lines
        .next()
        .and_then(|line| line.parse::<u64>().ok())
        .ok_or("the second line is not a size")?;
    let root = lines
        .next()
        .and_then(|line| line.parse::<Digest>().ok())
        .ok_or("the third line is not a root hash")?;
    if lines.next().is_some() {
        return Err("more than three lines".to_owned());
    }
    Ok((size, root))
}

/// Replaces the anchor file (under its lock): a temporary file beside it written and synced,
/// renamed over it, and the directory synced — a crash leaves the old anchor or the new one.
fn write(path: &Path, size: u64, root: Digest) -> Result<(), ExecutionError> {
    let text = format!("{HEADER}\n{size}\n{root}\n");
    parmana_trust::replace_file_durably(path, text.as_bytes(), None)
        .map_err(|e| ExecutionError::io("write", path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while the lock was held leaves what was recorded readable: taken for "nothing
    /// recorded", it would turn off the checks that the store reaches the anchor.
    #[test]
    fn a_poisoned_lock_still_gives_what_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-anchor");
        let root = Digest::of(b"root");
        write(&path, 5, root).unwrap();
        let anchor = std::sync::Arc::new(LogAnchor::open(&path).unwrap());
        let holder = std::sync::Arc::clone(&anchor);
        let panicked = std::thread::spawn(move || {
            let _held = holder.last.lock().unwrap();
            panic!("a defect while the anchor's lock is held");
        })
        .join();
        assert!(panicked.is_err());
        assert!(anchor.last.is_poisoned());
        assert_eq!(anchor.recorded(), Some((5, root)));
    }
}
