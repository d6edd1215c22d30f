//! Writing a file whole and durably: a temporary file beside it written and synced, renamed over it, and its directory synced — so that what a command printed as written survives a crash, and a reader never sees half a document.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The directory holding `path` (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Syncs the directory holding `path`, so that a file created or renamed there survives a
/// crash (its data synced is not enough: the name is the directory's).
pub fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(directory_of(path))?.sync_all()
}

/// Replaces `path` with `bytes`: a temporary file beside it (named for this process) created
/// with exactly `mode` on Unix when one is given (0600 for a private key, applied as the file is
/// created, so it is never readable by others; without one, the process's default as its umask
/// leaves it), written and synced, renamed over
/// `path`, and the directory synced. A crash leaves the old file or the new one, never a part;
/// once this returns, the new one survives a power loss. The temporary file is removed when a
/// step before the rename fails.
pub fn replace_file_durably(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory_of(path).join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        }
        let mut file = options.open(&temporary)?;
        #[cfg(unix)]
        if let Some(mode) = mode {
            // Exactly `mode`, whatever the umask took away (and a stale temporary file had).
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    if let Err(error) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_directory_of(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_file_is_replaced_whole_with_its_mode_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, b"old, and longer than the new").unwrap();
        replace_file_durably(&path, b"new", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-directory").join("file.json");
        assert!(replace_file_durably(&path, b"new", None).is_err());
        assert!(!path.exists());
        // Renaming over a directory fails: the old directory stays, the temporary file goes.
        let taken = dir.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("inside"), b"x").unwrap();
        assert!(replace_file_durably(&taken, b"new", None).is_err());
        assert!(taken.is_dir());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }
}
