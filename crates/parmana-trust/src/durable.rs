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

/// Whether a file name is one [`replace_file_durably`] gives its temporary files, exactly
/// (`.NAME.PID-NANOS.tmp`, both numbers in decimal): left behind only by a write that was
/// interrupted (a kill, a power loss) before its rename. Readers of directories whose every file
/// counts name it as such; nothing else matches (a hidden file of a user's ending in `.tmp` does
/// not).
pub fn is_interrupted_write(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(".tmp"))
    else {
        return false;
    };
    let Some((target, stamp)) = inner.rsplit_once('.') else {
        return false;
    };
    let decimal = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    !target.is_empty()
        && stamp
            .split_once('-')
            .is_some_and(|(pid, nanos)| decimal(pid) && decimal(nanos))
}

/// What a refusal naming `name` adds when `name` is an interrupted write's leftover: how to
/// clear it.
pub(crate) fn interrupted_write_hint(name: &str) -> &'static str {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    if is_interrupted_write(file_name) {
        " (the temporary file of an interrupted write: remove it)"
    } else {
        ""
    }
}

/// Removes the temporary files interrupted writes left in `directory` (see
/// [`is_interrupted_write`]), so that a command writing there again starts clean — but not one
/// a write still running may own (its process alive on Linux; elsewhere, written in the last ten
/// minutes). Nothing else is touched; a directory that cannot be listed is left as it is.
pub fn remove_interrupted_writes(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_file && is_interrupted_write(&name) && !may_be_in_flight(&name, &entry) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the write that made the temporary file `name` may still be running.
fn may_be_in_flight(name: &str, entry: &std::fs::DirEntry) -> bool {
    let pid = name
        .strip_suffix(".tmp")
        .and_then(|rest| rest.rsplit_once('.'))
        .and_then(|(_, stamp)| stamp.split_once('-'))
        .map(|(pid, _)| pid);
    if cfg!(target_os = "linux")
        && let Some(pid) = pid
    {
        return Path::new("/proc").join(pid).exists();
    }
    entry
        .metadata()
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(600))
}

/// Opens `path` to read a deployment file — a trust root, a release manifest, a pinned public
/// key, a bundle's file, a log anchor, a witness state — without waiting (`O_NONBLOCK`: a named
/// pipe put at the path would otherwise hold the open, and a server's reload with it and every
/// reload after, until something wrote to it), and refuses (`InvalidInput`) what is not a regular
/// file once opened: a named pipe, a device, a directory. A regular file reads as it would
/// without the flag.
pub fn open_regular_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    open_regular_with(path, options)
}

/// Opens (creating it if missing, never truncating) the lock file at `path` for a `flock`, as
/// [`open_regular_file`] opens a file to read: without waiting — a named pipe put there would
/// otherwise hold the open until something read from it — and refused when it is not a regular
/// file.
pub fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    open_regular_with(path, options)
}

fn open_regular_with(
    path: &Path,
    mut options: std::fs::OpenOptions,
) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let nonblocking = rustix::fs::OFlags::NONBLOCK.bits();
        options.custom_flags(i32::try_from(nonblocking).unwrap_or(0));
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file (a named pipe, a device or a directory): it is not read",
        ));
    }
    Ok(file)
}

/// Syncs the directory holding `path`, so that a file created or renamed there survives a
/// crash (its data synced is not enough: the name is the directory's). Only on Unix (elsewhere a
/// directory cannot be opened as a file: this does nothing there).
pub fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(directory_of(path))?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Replaces `path` with `bytes`: a temporary file beside it (named for this process and the
/// moment, created new — never an existing file or a link someone left there), written with
/// exactly `mode` on Unix when one is given (0600 for a private key, applied as the file is
/// created, so it is never readable by others) or else with the permission bits of the file it
/// replaces, without write permission for its group or others whatever the old file allowed
/// (for a new one, at most [`NEW_FILE_MODE`], 0644: what the umask leaves of it — never
/// writable by others, whatever the umask), and then also its owner
/// and group, as far as the process may give them ([`keep_owner`]; never for a file given its own
/// `mode`, a private key, which stays the writer's), synced, renamed over `path`,
/// and the directory synced. A crash leaves the old file or the new one, never a part (and at
/// most a temporary file, which [`is_interrupted_write`] recognises); once this returns, the new
/// one survives a power loss. A symbolic link at `path` is replaced by the file, not written
/// through. The temporary file is removed when a step before the rename fails.
pub fn replace_file_durably(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    #[cfg(unix)]
    let existing = std::fs::symlink_metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file);
    // A file written with a mode of its own (a private key) is never given to the previous
    // file's owner: whoever owned a compromised key must not own its replacement.
    #[cfg(unix)]
    let keeps_owner = mode.is_none();
    #[cfg(unix)]
    let mode = mode.or_else(|| {
        use std::os::unix::fs::PermissionsExt as _;
        existing
            .as_ref()
            .map(|existing| existing.permissions().mode() & 0o777 & !0o022)
    });
    let (temporary, mut file) = create_temporary(
        &directory_of(path),
        &name,
        Some(mode.unwrap_or(NEW_FILE_MODE)),
    )?;
    let written = (|| {
        #[cfg(unix)]
        if let Some(mode) = mode {
            // Exactly `mode`, whatever the umask took away (set while the file is still this
            // process's own: changing the mode of another's file needs more than changing its
            // owner does).
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        #[cfg(unix)]
        if let (Some(existing), true) = (&existing, keeps_owner) {
            keep_owner(&file, existing);
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    drop(file);
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

/// The permission bits a new file of a deployment is created with (the umask may take more
/// away): readable by all, writable by its owner only.
pub const NEW_FILE_MODE: u32 = 0o644;

/// The permission bits a new directory of a deployment is created with (the umask may take more
/// away): writable by its owner only.
pub const NEW_DIRECTORY_MODE: u32 = 0o755;

/// Creates a directory and its missing parents, each with at most [`NEW_DIRECTORY_MODE`] on Unix
/// (what the umask leaves of it): never writable by others, whatever the umask. Directories
/// already there are left as they are; each one made is synced into its parent, so that what is
/// then written in it durably is not lost with its directory's name in a crash.
pub fn create_directories(path: &Path) -> std::io::Result<()> {
    create_directories_durably(path, NEW_DIRECTORY_MODE)
}

/// Creates a directory and its missing parents as [`create_directories`] does, but readable by
/// its owner only (0700 on Unix): for what holds private data (a replay store, which records
/// every request's signals). Directories already there are left as they are; each one made is
/// synced into its parent.
pub fn create_private_directories(path: &Path) -> std::io::Result<()> {
    create_directories_durably(path, 0o700)
}

/// Creates `path` and its missing parents with at most `mode` (on Unix), then syncs each
/// directory made into its parent, the outermost first.
fn create_directories_durably(path: &Path, mode: u32) -> std::io::Result<()> {
    // The directories this makes: from `path` up to the deepest one that exists.
    let mut missing: Vec<&Path> = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir);
        at = dir.parent();
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(path)?;
    for dir in missing.iter().rev() {
        sync_directory_of(dir)?;
    }
    Ok(())
}

/// Creates `path` with `bytes`, never replacing anything there: written and synced as a
/// temporary file beside it (created with at most `mode` on Unix: what the umask leaves of it —
/// 0600 for a private key, [`NEW_FILE_MODE`] for anything else), then
/// published by a hard link, which the file system refuses when `path` exists — a file, a
/// directory or a link, even one made after the caller last looked — so two writers racing for one
/// path cannot both succeed, and the loser gets `ErrorKind::AlreadyExists` with the winner's file
/// untouched. The temporary file is removed either way, and the directory synced once the file is
/// published: a crash leaves no file or the whole one (and at most a temporary file, which
/// [`is_interrupted_write`] recognises); an error leaves no file (one published whose directory
/// then cannot be synced is removed again). On a file system without hard links (FAT, some network
/// shares) the file is created in place instead, still only where nothing is (`create_new`), but
/// without the crash guarantee: a crash while it is written there can leave part of it.
pub fn create_file_durably(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (temporary, mut file) = create_temporary(&directory_of(path), &name, Some(mode))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let published = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            // No hard links here (or no permission to make them): created in place, only where
            // nothing is.
            create_in_place(path, bytes, mode).map_err(|in_place| {
                if in_place.kind() == std::io::ErrorKind::AlreadyExists {
                    in_place
                } else {
                    error
                }
            })
        }
        linked => linked,
    });
    let _ = std::fs::remove_file(&temporary);
    published?;
    sync_directory_of(path).inspect_err(|_| {
        // Published but not known to last: taken back, so that an error leaves no file.
        let _ = std::fs::remove_file(path);
    })
}

/// [`create_file_durably`]'s way on a file system without hard links: `path` created new
/// (refused when anything is there), written and synced; removed again when that fails.
fn create_in_place(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
}

/// Gives `file` the owner and group of the file it replaces, as far as this process may: both
/// (root may give any), else the group alone (an owner may give a group it belongs to), else
/// neither (the writer's, as for any file it creates). So a deployment's public files (trust
/// roots, bundles, manifests) written by an administrator for a service account stay readable by
/// that account.
#[cfg(unix)]
fn keep_owner(file: &std::fs::File, existing: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt as _;
    let (uid, gid) = (existing.uid(), existing.gid());
    if std::os::unix::fs::fchown(file, Some(uid), Some(gid)).is_err() {
        let _ = std::os::unix::fs::fchown(file, None, Some(gid));
    }
}

/// A new temporary file in `directory` for the file `name`: `.NAME.PID-NANOS.tmp`, created with
/// `create_new` (so neither a file nor a link already there is used), tried again under another
/// name if one exists.
fn create_temporary(
    directory: &Path,
    name: &str,
    mode: Option<u32>,
) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut last = None;
    for attempt in 0..16_u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temporary = directory.join(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        match options.open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
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

    /// A replaced public file keeps its owner and group where the writer may give them (root:
    /// any); where it may not, the write still happens, the file the writer's. A private key
    /// (written with a mode of its own) is never given to the old file's owner.
    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_owner_and_group_where_the_writer_may_give_them() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let writer = {
            let probe = dir.path().join("probe");
            std::fs::write(&probe, b"").unwrap();
            let metadata = std::fs::metadata(&probe).unwrap();
            (metadata.uid(), metadata.gid())
        };
        // A group of this process's other than its own (`Groups:` of /proc/self/status), which
        // an owner who is not root may give its file.
        let other_group = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status
                    .lines()
                    .find(|l| l.starts_with("Groups:"))?
                    .to_owned();
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|g| g.parse::<u32>().ok())
                    .find(|g| *g != writer.1)
            });
        for (name, mode) in [
            ("trust-root.json", None),
            ("manifest.json", None),
            ("key.pem", Some(0o600)),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"old").unwrap();
            // A service account's file (nobody's, here), as an administrator would leave it;
            // failing that (not root), a file of this process's in another of its groups.
            let expected = if std::os::unix::fs::chown(&path, Some(65_534), Some(65_534)).is_ok() {
                Some((65_534, 65_534))
            } else {
                other_group.and_then(|group| {
                    std::os::unix::fs::chown(&path, None, Some(group))
                        .ok()
                        .map(|()| (writer.0, group))
                })
            };
            replace_file_durably(&path, b"new", mode).unwrap();
            let after = std::fs::metadata(&path).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"new");
            let owner = (after.uid(), after.gid());
            match (expected, mode) {
                // The old file's owner and group, as far as this process could give them.
                (Some(kept), None) => assert_eq!(owner, kept, "{name}"),
                // A key stays the writer's (and keeps its own mode); so does a file that was
                // the writer's all along.
                _ => assert_eq!(owner, writer, "{name}"),
            }
            if let Some(mode) = mode {
                use std::os::unix::fs::PermissionsExt as _;
                assert_eq!(after.permissions().mode() & 0o777, mode, "{name}");
            }
        }
    }

    /// A created file has at most its mode (the tests' umask leaves 0600 whole); anything already at the path — a file, a
    /// link to nowhere, a directory — is refused as existing and left as it was, and no
    /// temporary file stays behind either way.
    #[test]
    fn a_created_file_never_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let names = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let key = dir.path().join("key.pem");
        create_file_durably(&key, b"first", 0o600).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let error = create_file_durably(&key, b"second", 0o600).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"first");
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        let error =
            create_file_durably(&dir.path().join("taken"), b"x", NEW_FILE_MODE).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        #[cfg(unix)]
        {
            let link = dir.path().join("link.pub");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
            let error = create_file_durably(&link, b"x", NEW_FILE_MODE).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
            assert!(!dir.path().join("nowhere").exists());
            assert_eq!(names(), ["key.pem", "link.pub", "taken"]);
        }
        #[cfg(not(unix))]
        assert_eq!(names(), ["key.pem", "taken"]);
    }

    /// Where hard links are refused, the file is created in place, still never over anything.
    #[test]
    fn a_file_created_in_place_never_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        create_in_place(&key, b"first", 0o600).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let error = create_in_place(&key, b"second", 0o600).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"first");
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
        assert!(is_interrupted_write(".bundle.json.4711-123.tmp"));
        assert!(is_interrupted_write(".3.json.1-0.tmp"));
        for other in [
            "bundle.json",
            ".tmp",
            ".cache.tmp",
            ".notes.tmp",
            "..1-2.tmp",
            ".bundle.json.4711.tmp",
            ".bundle.json.47a1-123.tmp",
            "bundle.json.4711-123.tmp",
        ] {
            assert!(!is_interrupted_write(other), "{other}");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }
}

#[cfg(all(test, unix))]
mod unix_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode_but_others_write_and_a_link_at_its_path_is_replaced_not_written_through()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release-manifest.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file_durably(&path, b"new", None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        // Write permission for the group and others is not kept; the rest is.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o676)).unwrap();
        replace_file_durably(&path, b"newer", None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o654);
        // A link at the path: replaced by the file, its target left as it was.
        let target = dir.path().join("v7.json");
        std::fs::write(&target, b"v7").unwrap();
        let link = dir.path().join("current.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace_file_durably(&link, b"v8", None).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(std::fs::read(&link).unwrap(), b"v8");
        assert_eq!(std::fs::read(&target).unwrap(), b"v7");
    }

    #[test]
    fn only_the_leftovers_of_interrupted_writes_no_longer_running_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A process that is gone (no pid is this large) left one; this process has one in
        // flight; a user keeps a hidden file of their own ending in `.tmp`.
        let gone = dir.path().join(".release-manifest.json.4294967295-1.tmp");
        let running = dir
            .path()
            .join(format!(".bundle.json.{}-1.tmp", std::process::id()));
        let own = dir.path().join(".notes.tmp");
        for file in [&gone, &running, &own] {
            std::fs::write(file, b"x").unwrap();
        }
        remove_interrupted_writes(dir.path());
        assert!(!gone.exists());
        assert!(own.exists());
        if cfg!(target_os = "linux") {
            assert!(running.exists(), "a write still running lost its file");
        }
    }
}
