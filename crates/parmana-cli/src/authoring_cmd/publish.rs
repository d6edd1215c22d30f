//! Publishing what the authoring commands sign: a bundle directory whole or not at all, a release manifest only over the one checked, each under a lock on its directory.

use std::path::{Path, PathBuf};

use parmana_runtime::trust::BundleFiles;

use crate::common::{create_dir, create_new_file, write_file};
use crate::exit::ExitClass;
use crate::report::Failure;

/// Writes `files` as the bundle directory `out` whole or not at all. Where `out` is missing:
/// into a staging directory beside it, each file synced, then renamed into place (a directory
/// another command made there meanwhile is not replaced, `cli.output_exists`). Where `out` is an
/// empty directory already (made for the bundle, with its own mode, group or ACLs; or `.`): into
/// it, and on a failure part way the files and directories written are removed again. Either
/// way a failure (a full disk) leaves `out` as it was, so that running again needs no cleaning
/// up by hand.
pub(super) fn publish_bundle_dir(out: &Path, files: &BundleFiles) -> Result<(), Failure> {
    if out.is_dir() {
        return write_into_empty_dir(out, files);
    }
    let name = out
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Failure::new(
                "cli.usage",
                format!("{}: --out names no directory to create", out.display()),
                ExitClass::Usage,
            )
        })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let staging = out.with_file_name(format!(".{name}.import.{}-{nanos}.tmp", std::process::id()));
    let written = (|| {
        create_dir(&staging)?;
        write_files(&staging, files, &mut Vec::new())?;
        std::fs::rename(&staging, out).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
            ) {
                Failure::new(
                    "cli.output_exists",
                    format!("{} is not empty; not overwriting it", out.display()),
                    ExitClass::Io,
                )
            } else {
                Failure::io(&out.display().to_string(), &e)
            }
        })?;
        parmana_runtime::trust::sync_directory_of(out)
            .map_err(|e| Failure::io(&out.display().to_string(), &e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

/// [`publish_bundle_dir`] into `out`, an existing directory that must still be empty: what it
/// wrote is removed again if any of it fails.
pub(super) fn write_into_empty_dir(out: &Path, files: &BundleFiles) -> Result<(), Failure> {
    let io = |e: &std::io::Error| Failure::io(&out.display().to_string(), e);
    if std::fs::read_dir(out).map_err(|e| io(&e))?.next().is_some() {
        return Err(Failure::new(
            "cli.output_exists",
            format!("{} is not empty; not overwriting it", out.display()),
            ExitClass::Io,
        ));
    }
    let mut made = Vec::new();
    let written = write_files(out, files, &mut made);
    if written.is_err() {
        // Deepest first: the files, then the directories made for them.
        for path in made.iter().rev() {
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
    }
    written
}

/// Writes each of `files` under `dir` durably, noting in `made` every file and directory it
/// creates, in order.
pub(super) fn write_files(
    dir: &Path,
    files: &BundleFiles,
    made: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    for (relative, bytes) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            let mut missing: Vec<PathBuf> = parent
                .ancestors()
                .take_while(|ancestor| !ancestor.exists())
                .map(Path::to_path_buf)
                .collect();
            create_dir(parent)?;
            missing.reverse();
            made.extend(missing);
        }
        made.push(path.clone());
        write_file(&path, bytes)?;
    }
    Ok(())
}

/// Takes an exclusive lock on the directory holding `path` (`flock`, waiting for another holder,
/// another process too), released when the returned handle is dropped. Where the file system
/// has no such locks the command goes on unlocked, as before.
pub(super) fn lock_directory_of(path: &Path) -> Result<Option<std::fs::File>, Failure> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io = |e: &std::io::Error| Failure::io(&dir.display().to_string(), e);
    let handle = std::fs::File::open(dir).map_err(|e| io(&e))?;
    // Said when another command holds it: a wait without a word looks like a hang.
    match handle.try_lock() {
        Ok(()) => return Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => crate::report::errln!(
            "waiting for another command that holds {} (a rotation or a release signing)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            return Ok(None);
        }
        Err(std::fs::TryLockError::Error(_)) => {}
    }
    match handle.lock() {
        Ok(()) => Ok(Some(handle)),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(None),
        Err(e) => Err(io(&e)),
    }
}

/// Publishes the signed manifest at `out`: where nothing was when it was checked (`replaced`
/// `None`), only where nothing is still — a manifest another command wrote meanwhile is not
/// replaced (`cli.output_exists`); over the manifest checked, only while `out` still holds those
/// bytes — one written meanwhile (a higher version, say) is not rolled back.
pub(super) fn publish_manifest(
    out: &Path,
    bytes: &[u8],
    replaced: Option<&[u8]>,
) -> Result<(), Failure> {
    let Some(replaced) = replaced else {
        return create_new_file(out, bytes, parmana_runtime::trust::NEW_FILE_MODE);
    };
    let now =
        crate::common::read_bounded(out, parmana_runtime::trust::MAX_RELEASE_MANIFEST_BYTES).ok();
    if now.as_deref() != Some(replaced) {
        return Err(Failure::new(
            "cli.output_exists",
            format!(
                "{} changed while the new manifest was signed; not replacing it (look at it, then \
                 run again)",
                out.display()
            ),
            ExitClass::Io,
        ));
    }
    write_file(out, bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{BundleFiles, publish_bundle_dir, publish_manifest};

    /// A bundle directory is written whole or not at all: a file that cannot be written part
    /// way (here a path through a file written just before) leaves neither `--out` nor the
    /// staging directory, so that running again needs no cleaning up; a directory another
    /// command filled meanwhile is not replaced.
    #[test]
    fn a_bundle_directory_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bundle");
        let mut files = BundleFiles::new();
        files.insert("a.json".to_owned(), b"{}".to_vec());
        files.insert("a.json/b.json".to_owned(), b"{}".to_vec());
        assert!(publish_bundle_dir(&out, &files).is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Written whole where nothing is, or into an empty directory.
        files.remove("a.json/b.json");
        publish_bundle_dir(&out, &files).unwrap();
        assert_eq!(std::fs::read(out.join("a.json")).unwrap(), b"{}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        publish_bundle_dir(&empty, &files).unwrap();
        assert!(empty.join("a.json").exists());
        // Not over a directory that holds files.
        let refused = publish_bundle_dir(&out, &files).unwrap_err();
        assert_eq!(refused.code, "cli.output_exists");
        // Into an empty directory made for it: a failure part way leaves it empty, and it is
        // the same directory (its mode kept) once written.
        let made = dir.path().join("made");
        std::fs::create_dir(&made).unwrap();
        let mut failing = files.clone();
        failing.insert("a.json/b.json".to_owned(), b"{}".to_vec());
        failing.insert("sub/c.json".to_owned(), b"{}".to_vec());
        assert!(publish_bundle_dir(&made, &failing).is_err());
        assert_eq!(std::fs::read_dir(&made).unwrap().count(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o750)).unwrap();
            let inode = std::fs::metadata(&made).unwrap().ino();
            publish_bundle_dir(&made, &files).unwrap();
            let after = std::fs::metadata(&made).unwrap();
            assert_eq!(
                (after.ino(), after.permissions().mode() & 0o777),
                (inode, 0o750)
            );
        }
    }

    /// A manifest written at `--out` by another command while this one signed is neither
    /// replaced (nothing was there at the check) nor rolled back (another was there).
    #[test]
    fn a_manifest_written_while_signing_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("release-manifest.json");
        // Nothing was there at the check; another command wrote one since.
        std::fs::write(&out, b"theirs").unwrap();
        let refused = publish_manifest(&out, b"ours", None).unwrap_err();
        assert_eq!(refused.code, "cli.output_exists");
        assert_eq!(std::fs::read(&out).unwrap(), b"theirs");
        // Version 2 was checked; another command replaced it since.
        let refused = publish_manifest(&out, b"ours", Some(b"version 2")).unwrap_err();
        assert_eq!(refused.code, "cli.output_exists");
        assert_eq!(std::fs::read(&out).unwrap(), b"theirs");
        // Unchanged since the check: replaced.
        publish_manifest(&out, b"ours", Some(b"theirs")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"ours");
        // Nothing there, as checked: created.
        let fresh = dir.path().join("fresh.json");
        publish_manifest(&fresh, b"ours", None).unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"ours");
    }
}
