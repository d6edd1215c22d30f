//! Files that grant access — the tokens file, the TLS certificate, key and client CA — are read only where no one else may change them: a file anyone may write, or one that belongs to another user (not root), is refused, as a `parmana.toml` found walking up is (`docs/server.md`, "Authentication").

use std::fs::File;
use std::path::Path;

/// Opens `path` for reading once [`check_yours`] accepts what was opened; the refusal or the
/// system's error as a message.
pub(crate) fn open(path: &Path) -> Result<File, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    check_yours(&file)?;
    Ok(file)
}

/// Refuses `file` when anyone may write it, or when it belongs to a user other than the
/// server's (effective) user or root: whoever may change it could add a token, or a CA whose
/// certificates the server then accepts.
#[cfg(unix)]
fn check_yours(file: &File) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    let you = rustix::process::geteuid().as_raw();
    if metadata.uid() != you && metadata.uid() != 0 {
        return Err(format!(
            "it belongs to uid {}, not to the server's user (uid {you}) or root: whoever owns \
             it could grant access; it is not read",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o002 != 0 {
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
}
