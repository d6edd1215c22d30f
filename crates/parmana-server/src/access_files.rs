//! Files that grant access — the tokens file, the TLS certificate, key and client CA — are read only where another user may not change them: a file anyone (the world) may write, or one that belongs to another user (not root), is refused, as a `parmana.toml` found walking up is (`docs/server.md`, "Authentication"), and the TLS private key also where anyone may read it; the group's permissions and the directory are the deployment's to set.

use std::fs::File;
use std::path::Path;

/// Opens `path` for reading once [`check_yours`] accepts what was opened; the refusal or the
/// system's error as a message. Opened without waiting (`O_NONBLOCK`: a named pipe put at the
/// path would otherwise hold the start, or a reload and every one after it, until something
/// writes to it), and refused unless it is a regular file.
pub(crate) fn open(path: &Path) -> Result<File, String> {
    let file = parmana_runtime::trust::open_regular_file(path).map_err(|e| e.to_string())?;
    check_yours(&file)?;
    Ok(file)
}

/// [`open`] for a private key: also refused when anyone (the world) may read it — whoever reads
/// the TLS key can be the server to its clients. The group may (Debian's `ssl-cert`).
pub(crate) fn open_private(path: &Path) -> Result<File, String> {
    let file = open(path)?;
    check_private(&file)?;
    Ok(file)
}

#[cfg(unix)]
fn check_private(file: &File) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = file.metadata().map_err(|e| e.to_string())?.mode();
    if mode & 0o004 != 0 {
        return Err(
            "anyone may read this private key, and so be the server to its clients: it is not \
             read (`chmod o-r`)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &File) -> Result<(), String> {
    Ok(())
}

/// Refuses `file` when anyone may write it, or when it belongs to a user other than the
/// server's (effective) user or root: whoever may change it could add a token, or a CA whose
/// certificates the server then accepts.
#[cfg(unix)]
fn check_yours(file: &File) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    judged(
        metadata.uid(),
        metadata.mode(),
        rustix::process::geteuid().as_raw(),
    )
}

/// [`check_yours`] of a file owned by `owner` with `mode`, for a server running as `you`.
#[cfg(unix)]
fn judged(owner: u32, mode: u32, you: u32) -> Result<(), String> {
    if owner != you && owner != 0 {
        return Err(format!(
            "it belongs to uid {owner}, not to the server's user (uid {you}) or root: whoever \
             owns it could grant access; it is not read"
        ));
    }
    if mode & 0o002 != 0 {
        return Err(
            "anyone may write it, and so grant themselves access: it is not read (`chmod o-w`)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Elsewhere the operating system's own permissions hold.
#[cfg(not(unix))]
fn check_yours(_: &File) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// (owner, mode, the server's uid) → refused: another user's file (root's aside), or one
    /// anyone may write.
    #[test]
    fn a_file_is_judged_by_its_owner_and_mode() {
        for (owner, mode, you, refused) in [
            (1000, 0o600, 1000, false),
            (0, 0o644, 1000, false),
            (1000, 0o664, 1000, false),
            (1001, 0o600, 1000, true),
            (1000, 0o666, 1000, true),
            (0, 0o646, 1000, true),
            (0, 0o600, 0, false),
            (1000, 0o600, 0, true),
        ] {
            assert_eq!(
                judged(owner, mode, you).is_err(),
                refused,
                "{owner} {mode:o} {you}"
            );
        }
    }

    #[test]
    fn a_file_anyone_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, "x").unwrap();
        for (mode, refused) in [
            (0o600, false),
            (0o644, false),
            (0o664, false),
            (0o666, true),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let opened = open(&path);
            assert_eq!(opened.is_err(), refused, "{mode:o}: {opened:?}");
            if let Err(message) = opened {
                assert!(message.contains("anyone may write it"), "{message}");
            }
        }
    }

    /// A named pipe at the path is refused at once (opened, it would wait for a writer), and
    /// so is a directory.
    #[test]
    fn what_is_not_a_regular_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("tokens.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for path in [fifo.as_path(), dir.path()] {
            let message = open(path).unwrap_err();
            assert!(message.contains("not a regular file"), "{message}");
        }
    }

    /// A private key anyone may read is refused; one its group may read is not.
    #[test]
    fn a_private_key_anyone_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "x").unwrap();
        for (mode, refused) in [(0o600, false), (0o640, false), (0o644, true), (0o604, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let opened = open_private(&path);
            assert_eq!(opened.is_err(), refused, "{mode:o}: {opened:?}");
            if let Err(message) = opened {
                assert!(message.contains("anyone may read"), "{message}");
            }
        }
    }
}
