//! Files one host's processes share outside the store — a witness's state, the log anchor — named so that every process reaches the same file under the same lock, and refused when another name could change them unseen or anyone may write them (their owner is the deployment's to set).

use std::path::{Path, PathBuf};

use crate::ExecutionError;

/// `path` with its directory resolved (links and `..` followed), its file name kept: the one
/// name every process spelling the file through another directory link shares (its lock file
/// beside it included). Why not, as a message.
pub(crate) fn resolved(path: &Path) -> Result<PathBuf, String> {
    let name = path.file_name().ok_or("it names no file")?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::canonicalize(directory) {
        Ok(directory) => Ok(directory.join(name)),
        // No directory yet, so no file another process could share: named as given (creating
        // it fails later, where it is written).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(format!("its directory {}: {e}", directory.display())),
    }
}

/// Why the file at `path` (when there is one) cannot be the one file its processes share: a
/// symbolic link (a rename would replace the link, not the file it names, and a process naming
/// the file would keep the old one), other names (hard links: the same), or writable by anyone.
pub(crate) fn shared_file_hazard(path: &Path) -> Result<Option<&'static str>, ExecutionError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecutionError::io("read", path, &e)),
    };
    if metadata.file_type().is_symlink() {
        return Ok(Some(
            "it is a symbolic link: name the file it links to, so that every process shares one \
             file",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if metadata.nlink() > 1 {
            return Ok(Some(
                "it has other names (hard links): a replaced file would leave them the old one",
            ));
        }
        if metadata.mode() & 0o002 != 0 {
            return Ok(Some(
                "anyone may write it, and so choose what it records (`chmod o-w`)",
            ));
        }
    }
    Ok(None)
}
