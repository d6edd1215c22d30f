//! The trust-root chain: walking it from the pinned root key into a verified history of every version, and reading it from disk — a current file, a directory, or any version's file — within bounds.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use parmana_canon::{Digest, Timestamp};

use crate::trust_root::{TRUST_ROOT_TYPE, claimed_version, verify_first, verify_next};
use crate::{KeyId, PublicKey, Revocation, TrustError, VerifiedTrustRoot};

/// The name of the current trust-root file in a trust directory.
pub const TRUST_ROOT_FILE: &str = "trust-root.json";

/// The directory next to `trust-root.json` that holds the older versions, `<N>.json`.
pub const TRUST_ROOT_CHAIN_DIR: &str = "trust-root.d";

/// The most versions a trust-root chain may hold; a longer chain is refused
/// (`trust.chain_too_long`) before any signature is checked.
pub const MAX_TRUST_CHAIN_VERSIONS: usize = 1_000;

/// The largest trust-root file read (1 MiB); a larger one is refused
/// (`trust.document_too_large`) without reading more of it.
pub const MAX_TRUST_ROOT_BYTES: usize = 1 << 20;

/// The most bytes of a whole trust-root chain read (16 MiB; a version is a few KiB): a chain
/// whose files add up to more is refused (`trust.document_too_large`) as soon as a file would
/// pass it, before it is read — so a directory of many large files (1,000 of 1 MiB each) is not
/// held whole before its first version is judged.
pub const MAX_TRUST_CHAIN_BYTES: usize = 16 << 20;

/// Every version of a trust-root chain, from version 1 to the newest, each verified from the
/// pinned root key through the versions before it.
///
/// Only [`verify_trust_history`] and [`load_trust_history`] build one. The chain's links are
/// checked without a clock: a version expiring does not break the chain, so every version
/// stays usable to judge what was signed while it was valid (an attestation is judged against
/// the version it names, at its `executed_at`). What is in force now is
/// [`current`](Self::current), which also checks the newest version's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTrustHistory {
    /// Versions 1 to N-1, in order.
    older: Vec<VerifiedTrustRoot>,
    /// Version N.
    newest: VerifiedTrustRoot,
}

impl VerifiedTrustHistory {
    /// The newest version (not checked for expiry: see [`current`](Self::current)).
    pub fn newest(&self) -> &VerifiedTrustRoot {
        &self.newest
    }

    /// Every version, from 1 to the newest.
    pub fn versions(&self) -> impl Iterator<Item = &VerifiedTrustRoot> {
        self.older.iter().chain(std::iter::once(&self.newest))
    }

    /// Version `version`, if the chain holds it.
    pub fn version(&self, version: u64) -> Option<&VerifiedTrustRoot> {
        if version == self.newest.version() {
            return Some(&self.newest);
        }
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.older.get(index)
    }

    /// The version with exactly this number and digest, if the chain holds it.
    pub fn find(&self, version: u64, digest: &Digest) -> Option<&VerifiedTrustRoot> {
        self.version(version)
            .filter(|root| root.digest() == *digest)
    }

    /// Every revocation of `keyid` that a version of the chain lists, oldest version first. A
    /// key revoked once stays revoked: a later version that no longer lists the revocation does
    /// not lift it, and each revocation listed must admit an attestation of the key.
    pub fn revocations_of(&self, keyid: KeyId) -> impl Iterator<Item = &Revocation> {
        self.versions()
            .filter_map(VerifiedTrustRoot::log)
            .flat_map(|log| log.revocations())
            .filter(move |revocation| *revocation.keyid() == keyid)
    }

    /// The newest version as the trust root in force: refused when it has expired at `now`
    /// (`trust.expired`) or is older than `highest_accepted`, the highest version accepted
    /// before (`trust.version_rollback`).
    pub fn current(
        &self,
        now: Timestamp,
        highest_accepted: Option<u64>,
    ) -> Result<VerifiedTrustRoot, TrustError> {
        if let Some(highest) = highest_accepted {
            self.check_reaches(highest)?;
        }
        self.newest.check_not_expired(now)?;
        Ok(self.newest.clone())
    }

    /// Refuses a chain whose newest version is older than `version` (`trust.version_rollback`):
    /// a floor known from elsewhere than the chain itself — the highest version a store has
    /// accepted, or one an auditor was told out of band. A chain cut short before a rotation
    /// that revoked a key or dropped it from the `attestation` role verifies on its own, and
    /// undoes that rotation for whoever trusts it whole (`docs/trust-model.md` §6.2).
    pub fn check_reaches(&self, version: u64) -> Result<(), TrustError> {
        if self.newest.version() < version {
            return Err(TrustError::VersionRollback {
                document: TRUST_ROOT_TYPE.to_owned(),
                version: self.newest.version(),
                highest: version,
            });
        }
        Ok(())
    }
}

/// Verifies a trust-root chain into its history: `versions[0]` is version 1 (signed by
/// `pinned_root_key`), each next one a rotation of the one before (a threshold of the previous
/// version's root keys and of its own). No version's expiry is checked here.
///
/// Refuses an empty chain, and more than [`MAX_TRUST_CHAIN_VERSIONS`] before checking anything.
pub fn verify_trust_history(
    pinned_root_key: &PublicKey,
    versions: &[Vec<u8>],
) -> Result<VerifiedTrustHistory, TrustError> {
    if versions.len() > MAX_TRUST_CHAIN_VERSIONS {
        return Err(TrustError::ChainTooLong {
            limit: MAX_TRUST_CHAIN_VERSIONS,
        });
    }
    let Some((first, rest)) = versions.split_first() else {
        return Err(TrustError::malformed(
            TRUST_ROOT_TYPE,
            "empty trust-root chain",
        ));
    };
    let mut older = Vec::with_capacity(rest.len());
    let mut newest = verify_first(pinned_root_key, first)?;
    let mut revoked = BTreeMap::new();
    check_not_revoked(&newest, &mut revoked)?;
    for bytes in rest {
        let next = verify_next(&newest, bytes)?;
        check_not_revoked(&next, &mut revoked)?;
        older.push(std::mem::replace(&mut newest, next));
    }
    Ok(VerifiedTrustHistory { older, newest })
}

/// Refuses a version that gives anything — a role, the log, a witness — to a key that an
/// earlier version revoked (a revocation stays in force: that key's attestations could never
/// verify, and its thief must sign nothing else trusted), then adds the version's own
/// revocations to `revoked` (key → the version revoking it).
fn check_not_revoked(
    version: &VerifiedTrustRoot,
    revoked: &mut BTreeMap<KeyId, u64>,
) -> Result<(), TrustError> {
    for (keyid, held) in version.key_holdings() {
        if let Some(by) = revoked.get(&keyid) {
            return Err(TrustError::malformed(
                TRUST_ROOT_TYPE,
                format!(
                    "version {} gives the {held} to key {keyid}, which version {by} revoked",
                    version.version()
                ),
            ));
        }
    }
    for revocation in version
        .log()
        .map(|log| log.revocations())
        .unwrap_or_default()
    {
        revoked
            .entry(*revocation.keyid())
            .or_insert(revocation.version());
    }
    Ok(())
}

/// Verifies a trust-root chain (see [`verify_trust_history`]) and returns its newest version as
/// the trust root in force: it must not have expired at `now`, nor be older than
/// `highest_accepted` (the highest version accepted before). Earlier versions may have expired.
pub fn verify_trust_chain(
    pinned_root_key: &PublicKey,
    versions: &[Vec<u8>],
    now: Timestamp,
    highest_accepted: Option<u64>,
) -> Result<VerifiedTrustRoot, TrustError> {
    verify_trust_history(pinned_root_key, versions)?.current(now, highest_accepted)
}

/// Where a chain's files are: the directory of numbered versions and the current file.
struct ChainFiles {
    numbered: Option<PathBuf>,
    current: Option<PathBuf>,
}

/// `N` for a file name `<N>.json` (digits, no leading zero), else `None`.
fn version_number(name: &str) -> Option<u64> {
    name.strip_suffix(".json")
        .filter(|n| !n.is_empty() && !n.starts_with('0'))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
}

/// The directory holding `path`, `.` for a bare file name.
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// The current trust-root file beside the chain directory `dir` when `dir` is a `trust-root.d`
/// and the file is there: by the name it was given (`trust/trust-root.d`, `trust-root.d/.`),
/// else by the name of each link it goes through (at most 8), else by its real name (a path
/// ending in `..`, `.` inside it). The version in force is not left out for a spelling of its
/// archive.
fn current_beside(dir: &Path) -> Result<Option<PathBuf>, TrustError> {
    let beside = |dir: &Path| {
        Some(parent_of(dir).join(TRUST_ROOT_FILE))
            .filter(|c| dir.file_name() == Some(TRUST_ROOT_CHAIN_DIR.as_ref()) && c.exists())
    };
    // `components` drops a trailing `.`: `trust-root.d/.` is `trust-root.d`.
    let mut named: PathBuf = dir.components().collect();
    for _ in 0..8 {
        if let Some(current) = beside(&named) {
            return Ok(Some(current));
        }
        match std::fs::read_link(&named) {
            Ok(target) if target.is_absolute() => named = target,
            Ok(target) => named = parent_of(&named).join(target),
            Err(_) => break,
        }
    }
    let real = std::fs::canonicalize(dir).map_err(|e| TrustError::io(dir, &e))?;
    Ok(beside(&real))
}

/// Finds the chain's files from what the user named (see [`read_trust_chain`]).
fn locate(path: &Path) -> Result<ChainFiles, TrustError> {
    let meta = std::fs::metadata(path).map_err(|e| TrustError::io(path, &e))?;
    let chain_dir_in = |dir: &Path| Some(dir.join(TRUST_ROOT_CHAIN_DIR)).filter(|d| d.exists());
    if meta.is_dir() {
        let current = path.join(TRUST_ROOT_FILE);
        if current.exists() {
            return Ok(ChainFiles {
                numbered: chain_dir_in(path),
                current: Some(current),
            });
        }
        // A `trust-root.d` directory is read as one of its files is: with the current file
        // beside it, the version in force (left out, a chain cut short before the version that
        // revoked a key would verify that key's attestations again).
        return Ok(ChainFiles {
            numbered: Some(path.to_path_buf()),
            current: current_beside(path)?,
        });
    }
    let parent = parent_of(path);
    let named = path.file_name().and_then(|n| n.to_str());
    if named.and_then(version_number).is_some() {
        // One version's file: its history is the directory it is in, and the current file
        // beside that directory when the directory is a `trust-root.d`.
        return Ok(ChainFiles {
            numbered: Some(parent.to_path_buf()),
            current: current_beside(parent)?,
        });
    }
    Ok(ChainFiles {
        numbered: chain_dir_in(parent),
        current: Some(path.to_path_buf()),
    })
}

/// The `<N>.json` files of a chain directory, by number. Anything else in it is refused, and
/// so is a directory holding more than [`MAX_TRUST_CHAIN_VERSIONS`] files.
fn numbered_files(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, TrustError> {
    let mut numbered = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| TrustError::io(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrustError::io(dir, &e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = version_number(&name).ok_or_else(|| TrustError::UnsafePath {
            path: path.display().to_string(),
            message: format!(
                "a trust-root chain directory holds only files named <N>.json{}",
                crate::durable::interrupted_write_hint(&name)
            ),
        })?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| TrustError::io(&path, &e))?;
        if !meta.is_file() {
            return Err(TrustError::UnsafePath {
                path: path.display().to_string(),
                message: "not a regular file".to_owned(),
            });
        }
        numbered.insert(number, path);
        if numbered.len() > MAX_TRUST_CHAIN_VERSIONS {
            return Err(TrustError::ChainTooLong {
                limit: MAX_TRUST_CHAIN_VERSIONS,
            });
        }
    }
    Ok(numbered)
}

/// Reads a trust-root file, refusing one larger than [`MAX_TRUST_ROOT_BYTES`] after reading
/// at most one byte more.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TrustError> {
    let file = crate::open_regular_file(path).map_err(|e| TrustError::io(path, &e))?;
    let cap = u64::try_from(MAX_TRUST_ROOT_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| TrustError::io(path, &e))?;
    if bytes.len() > MAX_TRUST_ROOT_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: path.display().to_string(),
            limit: MAX_TRUST_ROOT_BYTES,
        });
    }
    Ok(bytes)
}

/// What is left of [`MAX_TRUST_CHAIN_BYTES`] as a chain's files are read.
struct ChainBudget {
    left: usize,
}

impl ChainBudget {
    /// Reads `path` ([`read_bounded`]) within what is left: refused before reading when its
    /// size already passes it, and after reading when it grew meanwhile.
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, TrustError> {
        let too_large = || TrustError::DocumentTooLarge {
            path: format!("the trust-root chain at {}", parent_of(path).display()),
            limit: MAX_TRUST_CHAIN_BYTES,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| TrustError::io(path, &e))?
            .len();
        if usize::try_from(size).map_or(true, |size| size > self.left) {
            return Err(too_large());
        }
        let bytes = read_bounded(path)?;
        self.left = self.left.checked_sub(bytes.len()).ok_or_else(too_large)?;
        Ok(bytes)
    }
}

/// Reads a trust-root chain from disk, version 1 first. `path` is one of:
///
/// - the current trust root (for example `trust/trust-root.json`): the older versions are the
///   files `trust-root.d/1.json` … `trust-root.d/<K>.json` beside it;
/// - a directory holding the chain: `trust-root.json` and `trust-root.d/`, or only numbered
///   `<N>.json` files (the highest is the newest) — and when that directory is a
///   `trust-root.d`, the `trust-root.json` beside it;
/// - any version's file `<N>.json`: the chain is every `<M>.json` in its directory, and — when
///   that directory is a `trust-root.d` — the `trust-root.json` beside it.
///
/// The numbered files run from 1 without gaps. The current file comes last, left out when it is
/// byte-identical to the highest numbered file; a numbered file newer than the current file, or
/// one of the same version with other bytes, is refused (`trust.unexpected_version`). At most
/// [`MAX_TRUST_CHAIN_VERSIONS`] versions of at most [`MAX_TRUST_ROOT_BYTES`] each, and
/// [`MAX_TRUST_CHAIN_BYTES`] in all, are read.
pub fn read_trust_chain(path: &Path) -> Result<Vec<Vec<u8>>, TrustError> {
    let files = locate(path)?;
    let numbered = match &files.numbered {
        Some(dir) => numbered_files(dir)?,
        None => BTreeMap::new(),
    };
    let mut versions = Vec::with_capacity(numbered.len() + 1);
    let mut budget = ChainBudget {
        left: MAX_TRUST_CHAIN_BYTES,
    };
    for (expected, (number, file)) in (1u64..).zip(&numbered) {
        if *number != expected {
            return Err(TrustError::malformed(
                TRUST_ROOT_TYPE,
                format!("{} has no {expected}.json", parent_of(file).display()),
            ));
        }
        versions.push(budget.read(file)?);
    }
    if let Some(current_path) = &files.current {
        // The current file is often the newest numbered one again: it is read within the
        // budget, then dropped when it is.
        let current = budget.read(current_path)?;
        if versions.last() != Some(&current) {
            let highest = u64::try_from(versions.len()).unwrap_or(u64::MAX);
            let claimed = claimed_version(&current)?;
            if claimed <= highest {
                let message = if claimed == highest {
                    format!(
                        "it holds another document than the current trust root, version {claimed}"
                    )
                } else {
                    format!(
                        "version {highest} is newer than the current trust root, version {claimed}"
                    )
                };
                let path = numbered.get(&highest).map_or_else(
                    || current_path.display().to_string(),
                    |p| p.display().to_string(),
                );
                return Err(TrustError::UnexpectedVersion { path, message });
            }
            versions.push(current);
        }
    }
    if versions.is_empty() {
        return Err(TrustError::malformed(
            TRUST_ROOT_TYPE,
            format!("no trust-root files at {}", path.display()),
        ));
    }
    if versions.len() > MAX_TRUST_CHAIN_VERSIONS {
        return Err(TrustError::ChainTooLong {
            limit: MAX_TRUST_CHAIN_VERSIONS,
        });
    }
    Ok(versions)
}

/// Reads the pinned root key (SPKI PEM) and the chain at `trust_root_path` (see
/// [`read_trust_chain`]) and verifies every version with [`verify_trust_history`].
pub fn load_trust_history(
    pinned_root_key_path: &Path,
    trust_root_path: &Path,
) -> Result<VerifiedTrustHistory, TrustError> {
    let pinned = crate::read_public_key_file(pinned_root_key_path)?;
    let versions = read_trust_chain(trust_root_path)?;
    verify_trust_history(&pinned, &versions)
}

/// Reads the pinned root key (SPKI PEM) and the chain at `trust_root_path` (see
/// [`read_trust_chain`]) and verifies them with [`verify_trust_chain`]: the newest version, in
/// force at `now`.
pub fn load_trust_chain(
    pinned_root_key_path: &Path,
    trust_root_path: &Path,
    now: Timestamp,
    highest_accepted: Option<u64>,
) -> Result<VerifiedTrustRoot, TrustError> {
    load_trust_history(pinned_root_key_path, trust_root_path)?.current(now, highest_accepted)
}
