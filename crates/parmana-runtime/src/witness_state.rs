//! A witness's state file — the last checkpoint it cosigned — shared by every witness process of a host (`parmana log witness`, once or `--serve`): read and replaced under an exclusive lock on `<state>.lock`, replaced durably.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use parmana_trust::MAX_NOTE_BYTES;

use crate::ExecutionError;
use crate::anchor::lock_file;
use crate::local_file::{resolved, shared_file_hazard};
use crate::witness::witness_state_size;

/// How a witness opens its state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessStateOpen {
    /// The state must be there: a witness that lost it (a wrong path, a volume not mounted, a
    /// new host) would otherwise start again from nothing and cosign forks of what it cosigned
    /// before.
    Existing,
    /// A new witness (`--new-state`): there must be no state yet; the first checkpoint it
    /// cosigns is trusted on first use and written as its state.
    New,
    /// A new witness once it started (its start found no state, as [`New`](Self::New)
    /// requires), that has not seen a state since: there may be none yet, or one another
    /// witness process on the file wrote meanwhile.
    NewOrWritten,
}

/// The state file of a witness, locked: what it holds was read under the lock, and is replaced
/// under it. Two witness processes on one file (a served witness and a one-off run, or two
/// servers during a restart) are ordered by the lock, and each judges a request against what
/// the file holds then — not against what it read earlier — so that neither cosigns a fork of a
/// checkpoint the other cosigned (C2SP `tlog-witness`'s rollback race). The file is named by
/// its directory resolved (so that every process spelling it through another directory link
/// shares the lock and replaces the same file), and refused when it is itself a link, has
/// other names, or anyone may write it. The lock is released when this is dropped.
#[derive(Debug)]
pub struct LockedWitnessState {
    path: PathBuf,
    state: Option<Vec<u8>>,
    _lock: File,
}

impl LockedWitnessState {
    /// Takes the exclusive lock on `.<name>.lock` beside the state (waiting for another
    /// holder) and reads the state, bounded: refused (`runtime.witness_state_refused`) when it
    /// is missing but must exist, or exists where a new one was asked for, or is a link, has
    /// other names or is writable by others ([`WitnessStateOpen`]); a file over
    /// [`MAX_NOTE_BYTES`] or that is not a signed checkpoint is refused too.
    pub fn lock(path: &Path, open: WitnessStateOpen) -> Result<Self, ExecutionError> {
        let path = resolved(path).map_err(|reason| refused(path, &reason))?;
        let lock = lock_file(&beside(&path, "lock"))?;
        if let Some(reason) = shared_file_hazard(&path)? {
            return Err(refused(&path, reason));
        }
        let state = read_witness_state(&path)?;
        match (open, &state) {
            (WitnessStateOpen::Existing, None) => {
                return Err(refused(
                    &path,
                    "there is none: a witness that lost its state would cosign forks of what it \
                     cosigned before; restore it, or start a new witness with --new-state",
                ));
            }
            (WitnessStateOpen::New, Some(_)) => {
                return Err(refused(
                    &path,
                    "--new-state, but this witness has a state already: drop --new-state",
                ));
            }
            _ => {}
        }
        Ok(Self {
            path,
            state,
            _lock: lock,
        })
    }

    /// The last checkpoint cosigned, as the file holds it.
    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_deref()
    }

    /// Replaces the state with `checkpoint`: a temporary file beside it (new, named for this
    /// process, writable by its owner alone) written and synced, renamed over it,
    /// and the directory synced — a crash leaves the old state or the new one. Once the rename
    /// is done, [`state`](Self::state) is the new one, even when syncing the directory then
    /// fails (and this returns the error).
    pub fn replace(&mut self, checkpoint: &[u8]) -> Result<(), ExecutionError> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temporary = beside(&self.path, &format!("{}.tmp", std::process::id()));
        // A temporary left by an earlier crash of a process of this id goes first.
        let _ = std::fs::remove_file(&temporary);
        let written = new_private_file(&temporary).and_then(|mut file| {
            file.write_all(checkpoint)?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(ExecutionError::io("write", &temporary, &e));
        }
        std::fs::rename(&temporary, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            ExecutionError::io("rename", &self.path, &e)
        })?;
        self.state = Some(checkpoint.to_vec());
        File::open(&directory)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| ExecutionError::io("sync", &directory, &e))
    }
}

/// A new file at `path` (never an existing one, nor through a link), writable by its owner
/// alone and readable by all (a state holds public cosigned checkpoints, and another witness
/// process on the file — a one-off run as another user — must read what this one wrote).
fn new_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    options.open(path)
}

/// `runtime.witness_state_refused` for the state at `path`.
fn refused(path: &Path, reason: &str) -> ExecutionError {
    ExecutionError::WitnessStateRefused {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

/// Reads a witness's state file without its lock, bounded: `None` when there is none yet; a
/// file over [`MAX_NOTE_BYTES`] or that is not a signed checkpoint is refused. A state is only
/// ever replaced whole (renamed into place), so what this reads is the last state written — for
/// reading it (the monitoring endpoint), not for judging a request by it
/// ([`LockedWitnessState`]).
pub fn read_witness_state(path: &Path) -> Result<Option<Vec<u8>>, ExecutionError> {
    match parmana_trust::open_regular_file(path) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(MAX_NOTE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| ExecutionError::io("read", path, &e))?;
            // The state's fault, never a request's: `runtime.witness_state_refused`, naming the
            // file (a damaged state is the witness operator's to mend).
            if bytes.len() > MAX_NOTE_BYTES {
                return Err(refused(
                    path,
                    &format!("it is larger than a signed note ({MAX_NOTE_BYTES} bytes)"),
                ));
            }
            witness_state_size(Some(&bytes)).map_err(|e| {
                refused(
                    path,
                    &format!("it is not a signed checkpoint: [{}] {e}", e.code()),
                )
            })?;
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

    /// A signed checkpoint of `size` (a state as a witness keeps one).
    fn note(size: u64) -> Vec<u8> {
        use parmana_trust::{Checkpoint, LocalSigningKey, NoteKeyName, sign_checkpoint};
        let checkpoint =
            Checkpoint::new("log.example/a", size, parmana_canon::Digest::of(b"root")).unwrap();
        let name = NoteKeyName::parse("log.example/a").unwrap();
        sign_checkpoint(&checkpoint, &name, &LocalSigningKey::from_seed(&[7; 32]))
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn the_state_is_read_under_the_lock_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.txt");
        let locked = LockedWitnessState::lock(&path, WitnessStateOpen::New).unwrap();
        assert_eq!(locked.state(), None);
        drop(locked);
        // Not a signed checkpoint: refused as the state's fault, naming the file, the file left
        // as it is.
        let refusal = |path: &Path| {
            let error = LockedWitnessState::lock(path, WitnessStateOpen::Existing).unwrap_err();
            assert_eq!(error.code(), "runtime.witness_state_refused", "{error}");
            assert!(error.to_string().contains("state.txt"), "{error}");
            error.to_string()
        };
        std::fs::write(&path, "not a checkpoint\n").unwrap();
        assert!(refusal(&path).contains("not a signed checkpoint"));
        assert_eq!(std::fs::read(&path).unwrap(), b"not a checkpoint\n");
        // Too large to be a note: refused without being read whole.
        std::fs::write(&path, vec![b'x'; MAX_NOTE_BYTES + 2]).unwrap();
        assert!(refusal(&path).contains("larger than a signed note"));
        // A second holder waits for the first.
        std::fs::remove_file(&path).unwrap();
        let first = LockedWitnessState::lock(&path, WitnessStateOpen::New).unwrap();
        let waiting = {
            let path = path.clone();
            std::thread::spawn(move || {
                LockedWitnessState::lock(&path, WitnessStateOpen::New).map(|_| ())
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiting.is_finished());
        drop(first);
        waiting.join().unwrap().unwrap();
    }

    /// A state that is missing must be asked for as new; a new one must be missing (a witness
    /// that lost its state would cosign forks of what it cosigned before).
    #[test]
    fn a_missing_state_is_refused_unless_new_and_a_new_one_must_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.txt");
        let refused = LockedWitnessState::lock(&path, WitnessStateOpen::Existing).unwrap_err();
        assert_eq!(refused.code(), "runtime.witness_state_refused");
        assert!(refused.to_string().contains("--new-state"), "{refused}");
        let mut new = LockedWitnessState::lock(&path, WitnessStateOpen::New).unwrap();
        new.replace(&note(1)).unwrap();
        drop(new);
        let refused = LockedWitnessState::lock(&path, WitnessStateOpen::New).unwrap_err();
        assert_eq!(refused.code(), "runtime.witness_state_refused");
        // A new witness once started takes what another process wrote meanwhile, or none.
        let written = LockedWitnessState::lock(&path, WitnessStateOpen::NewOrWritten).unwrap();
        assert_eq!(written.state(), Some(&note(1)[..]));
        drop(written);
        let other = dir.path().join("other.txt");
        let none = LockedWitnessState::lock(&other, WitnessStateOpen::NewOrWritten).unwrap();
        assert_eq!(none.state(), None);
    }

    /// A state reached by a link, with other names, or writable by anyone is refused; one named
    /// through a linked directory is the same file, under the same lock.
    #[cfg(unix)]
    #[test]
    fn a_state_is_one_file_under_one_lock_whatever_the_path() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let path = real.join("state.txt");
        let mut state = LockedWitnessState::lock(&path, WitnessStateOpen::New).unwrap();
        state.replace(&note(1)).unwrap();
        drop(state);
        let refused = |path: &Path| {
            LockedWitnessState::lock(path, WitnessStateOpen::Existing)
                .map(|_| ())
                .map_err(|e| e.code())
        };
        // A symbolic link to the state: a rename would replace the link, not the state.
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(refused(&link), Err("runtime.witness_state_refused"));
        // A hard link: a replaced state would leave the other name the old one.
        let hard = dir.path().join("hard.txt");
        std::fs::hard_link(&path, &hard).unwrap();
        assert_eq!(refused(&path), Err("runtime.witness_state_refused"));
        std::fs::remove_file(&hard).unwrap();
        // Writable by anyone.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(refused(&path), Err("runtime.witness_state_refused"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Through a linked directory: the same lock, and the replaced file is the real one.
        let aliased_dir = dir.path().join("alias");
        std::os::unix::fs::symlink(&real, &aliased_dir).unwrap();
        let aliased = aliased_dir.join("state.txt");
        let held = LockedWitnessState::lock(&path, WitnessStateOpen::Existing).unwrap();
        let waiting = std::thread::spawn(move || {
            let mut state = LockedWitnessState::lock(&aliased, WitnessStateOpen::Existing)?;
            state.replace(&note(2))
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !waiting.is_finished(),
            "the alias did not wait for the lock"
        );
        drop(held);
        waiting.join().unwrap().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), note(2));
        assert!(
            std::fs::symlink_metadata(&aliased_dir)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Written by its owner alone.
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o022, 0);
    }
}
