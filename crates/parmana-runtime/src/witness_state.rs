//! A witness's state file — the last checkpoint it cosigned — shared by every witness process of a host (`parmana log witness`, once or `--serve`): read and replaced under an exclusive lock on `<state>.lock`, replaced durably.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use parmana_trust::MAX_NOTE_BYTES;

use crate::ExecutionError;
use crate::anchor::lock_file;
use crate::witness::witness_state_size;

/// The state file of a witness, locked: what it holds was read under the lock, and is replaced
/// under it. Two witness processes on one file (a served witness and a one-off run, or two
/// servers during a restart) are ordered by the lock, and each judges a request against what
/// the file holds then — not against what it read earlier — so that neither cosigns a fork of a
/// checkpoint the other cosigned (C2SP `tlog-witness`'s rollback race). The lock is released
/// when this is dropped.
#[derive(Debug)]
pub struct LockedWitnessState {
    path: PathBuf,
    state: Option<Vec<u8>>,
    _lock: File,
}

impl LockedWitnessState {
    /// Takes the exclusive lock on `<path>.lock` (waiting for another holder) and reads the
    /// state, bounded: `None` when there is no file yet; a file over [`MAX_NOTE_BYTES`] or that
    /// is not a signed checkpoint is refused.
    pub fn lock(path: &Path) -> Result<Self, ExecutionError> {
        let lock = lock_file(&beside(path, "lock"))?;
        let state = read_witness_state(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state,
            _lock: lock,
        })
    }

    /// The last checkpoint cosigned, as the file holds it.
    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_deref()
    }

    /// Replaces the state with `checkpoint`: a temporary file beside it (named for this
    /// process) written and synced, renamed over it, and the directory synced — a crash leaves
    /// the old state or the new one. Once the rename is done, [`state`](Self::state) is the new
    /// one, even when syncing the directory then fails (and this returns the error).
    pub fn replace(&mut self, checkpoint: &[u8]) -> Result<(), ExecutionError> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temporary = beside(&self.path, &format!("{}.tmp", std::process::id()));
        File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(checkpoint)?;
                file.sync_all()
            })
            .map_err(|e| ExecutionError::io("write", &temporary, &e))?;
        std::fs::rename(&temporary, &self.path)
            .map_err(|e| ExecutionError::io("rename", &self.path, &e))?;
        self.state = Some(checkpoint.to_vec());
        File::open(&directory)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| ExecutionError::io("sync", &directory, &e))
    }
}

/// Reads a witness's state file without its lock, bounded: `None` when there is none yet; a
/// file over [`MAX_NOTE_BYTES`] or that is not a signed checkpoint is refused. A state is only
/// ever replaced whole (renamed into place), so what this reads is the last state written — for
/// reading it (the monitoring endpoint), not for judging a request by it
/// ([`LockedWitnessState`]).
pub fn read_witness_state(path: &Path) -> Result<Option<Vec<u8>>, ExecutionError> {
    match File::open(path) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(MAX_NOTE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| ExecutionError::io("read", path, &e))?;
            witness_state_size(Some(&bytes))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExecutionError::io("read", path, &e)),
    }
}

/// `<dir>/.<name>.<suffix>` beside `path`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_state_is_read_under_the_lock_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.txt");
        let locked = LockedWitnessState::lock(&path).unwrap();
        assert_eq!(locked.state(), None);
        drop(locked);
        // Not a signed checkpoint: refused, the file left as it is.
        std::fs::write(&path, "not a checkpoint\n").unwrap();
        assert!(LockedWitnessState::lock(&path).is_err());
        // Too large to be a note: refused without being read whole.
        std::fs::write(&path, vec![b'x'; MAX_NOTE_BYTES + 2]).unwrap();
        assert!(LockedWitnessState::lock(&path).is_err());
        // A second holder waits for the first.
        std::fs::remove_file(&path).unwrap();
        let first = LockedWitnessState::lock(&path).unwrap();
        let waiting = {
            let path = path.clone();
            std::thread::spawn(move || LockedWitnessState::lock(&path).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiting.is_finished());
        drop(first);
        waiting.join().unwrap().unwrap();
    }
}
