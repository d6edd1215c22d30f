//! Signed policy bundles: `bundle.json` lists the digest of every other file; the `policy` role signs it.

use std::collections::BTreeMap;
use std::path::Path;

use parmana_canon::{Digest, PolicyId, PolicyRef, PolicyVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, sign_document};
use crate::{Role, Signer, TrustError, VerifiedTrustRoot};

/// The `_type` of a bundle manifest.
pub(crate) const BUNDLE_TYPE: &str = "parmana/bundle";

/// The bundle manifest's file name inside a bundle directory.
pub const BUNDLE_MANIFEST_FILE: &str = "bundle.json";

/// The policy file every bundle holds.
pub const POLICY_FILE: &str = "policy.json";

/// At most this many entries — files, subdirectories and links, at every depth — in one
/// bundle directory. Entries are counted as they are listed, so a directory with millions of
/// names is refused before their list is held.
pub(crate) const MAX_BUNDLE_ENTRIES: usize = 10_000;

/// At most this many bytes in all files of one bundle directory together. Each file's size is
/// checked before it is read, and reading stops one byte past what is left of this budget.
pub(crate) const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest `bundle.json` verified, in bytes: room for [`MAX_BUNDLE_ENTRIES`] files' paths
/// and digests. Checked before it is parsed (the rest of the bundle's 64 MiB would otherwise be
/// parsed as its manifest before any signature is checked).
pub const MAX_BUNDLE_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The files of a bundle directory: relative path (`/`-separated) → raw bytes.
pub type BundleFiles = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleBody {
    #[serde(rename = "_type")]
    doc_type: String,
    policy_id: PolicyId,
    policy_version: PolicyVersion,
    files: BTreeMap<String, Digest>,
}

/// A policy bundle whose manifest the `policy` role signed and whose files are exactly the
/// ones it lists, with the digests it records. Only [`verify_bundle`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    policy_id: PolicyId,
    policy_version: PolicyVersion,
    bundle_digest: Digest,
    policy_digest: Digest,
    files: BundleFiles,
}

impl VerifiedBundle {
    /// The policy id the manifest names.
    pub fn policy_id(&self) -> &PolicyId {
        &self.policy_id
    }

    /// The policy version the manifest names.
    pub fn policy_version(&self) -> &PolicyVersion {
        &self.policy_version
    }

    /// `<id>@<version>`, the bundle's name in the release manifest.
    pub fn policy_ref(&self) -> PolicyRef {
        PolicyRef::new(self.policy_id.clone(), self.policy_version.clone())
    }

    /// The bundle digest: SHA-256 of the JCS bytes of the manifest's `signed` part.
    pub fn bundle_digest(&self) -> Digest {
        self.bundle_digest
    }

    /// The policy digest: SHA-256 of the raw bytes of `policy.json`.
    pub fn policy_digest(&self) -> Digest {
        self.policy_digest
    }

    /// The verified bytes of `policy.json`.
    pub fn policy_bytes(&self) -> &[u8] {
        self.files.get(POLICY_FILE).map_or(&[], Vec::as_slice)
    }

    /// Every verified file except `bundle.json`.
    pub fn files(&self) -> &BundleFiles {
        &self.files
    }
}

/// Refuses a `bundle.json` past [`MAX_BUNDLE_MANIFEST_BYTES`].
fn check_manifest_size(manifest: &[u8]) -> Result<(), TrustError> {
    if manifest.len() > MAX_BUNDLE_MANIFEST_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: BUNDLE_MANIFEST_FILE.to_owned(),
            limit: MAX_BUNDLE_MANIFEST_BYTES,
        });
    }
    Ok(())
}

/// Whether `path` is a safe relative bundle path: `/`-separated, no empty, `.` or `..`
/// segments, no backslash, no NUL, not absolute.
pub(crate) fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Verifies a bundle held in memory (`files` must include `bundle.json`).
///
/// Refuses: a manifest not signed by a threshold of the `policy` role, a wrong `_type`, a
/// listed file that is missing, a file that is not listed, and a file whose raw bytes do not
/// have the listed digest.
pub fn verify_bundle(
    trust_root: &VerifiedTrustRoot,
    files: &BundleFiles,
) -> Result<VerifiedBundle, TrustError> {
    let manifest = files
        .get(BUNDLE_MANIFEST_FILE)
        .ok_or(TrustError::BundleNotSigned)?;
    check_manifest_size(manifest)?;
    let envelope = Envelope::parse(manifest, BUNDLE_TYPE)?;
    let role = trust_root.role_keys(Role::Policy)?;
    envelope.check_role(
        BUNDLE_TYPE,
        Role::Policy.as_str(),
        &role.keys,
        trust_root.all_keys(),
        role.threshold,
    )?;
    let body: BundleBody = envelope
        .body(BUNDLE_TYPE)
        .map_err(|error| identifier_error(&envelope.signed).unwrap_or(error))?;
    check_body(&body)?;
    for (path, expected) in &body.files {
        let bytes = files
            .get(path)
            .ok_or_else(|| TrustError::BundleFileMissing { path: path.clone() })?;
        let found = Digest::of(bytes);
        if found != *expected {
            return Err(TrustError::DigestMismatch {
                subject: path.clone(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|p| p.as_str() != BUNDLE_MANIFEST_FILE && !body.files.contains_key(p.as_str()))
    {
        return Err(TrustError::BundleFileUnexpected {
            path: extra.clone(),
            hint: crate::durable::interrupted_write_hint(extra),
        });
    }
    let mut verified_files = files.clone();
    verified_files.remove(BUNDLE_MANIFEST_FILE);
    let policy_digest = Digest::of(verified_files.get(POLICY_FILE).map_or(&[], Vec::as_slice));
    Ok(VerifiedBundle {
        policy_id: body.policy_id,
        policy_version: body.policy_version,
        bundle_digest: envelope.digest(),
        policy_digest,
        files: verified_files,
    })
}

/// When a body does not read, whether it is because of its policy id or version: those have
/// codes of their own (the typed body refuses them with a generic message).
fn identifier_error(signed: &Value) -> Option<TrustError> {
    if let Some(Value::String(text)) = signed.get("policy_id")
        && let Err(error) = PolicyId::parse(text)
    {
        return Some(TrustError::InvalidPolicyId {
            document: BUNDLE_TYPE.to_owned(),
            error,
        });
    }
    if let Some(Value::String(text)) = signed.get("policy_version")
        && let Err(error) = PolicyVersion::parse(text)
    {
        return Some(TrustError::InvalidPolicyVersion {
            document: BUNDLE_TYPE.to_owned(),
            error,
        });
    }
    None
}

fn check_body(body: &BundleBody) -> Result<(), TrustError> {
    if !body.files.contains_key(POLICY_FILE) {
        return Err(TrustError::PolicyFileNotListed);
    }
    for path in body.files.keys() {
        if !is_safe_relative_path(path) || path == BUNDLE_MANIFEST_FILE {
            return Err(TrustError::UnsafePath {
                path: path.clone(),
                message: "not a safe relative bundle path, or reserved".to_owned(),
            });
        }
        // The policy's tests are never signed, and never read into a bundle (`read_bundle_dir`
        // skips them): a bundle that listed one could never be read whole again.
        if path
            .strip_prefix(BUNDLE_TESTS_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(TrustError::UnsafePath {
                path: path.clone(),
                message: format!(
                    "reserved: `{BUNDLE_TESTS_DIR}/` holds the policy's tests, which a bundle never signs"
                ),
            });
        }
        // An interrupted write's temporary file is never signed into a bundle (nor accepted
        // as part of one).
        let hint = crate::durable::interrupted_write_hint(path);
        if !hint.is_empty() {
            return Err(TrustError::UnsafePath {
                path: path.clone(),
                message: format!("not a bundle file{hint}"),
            });
        }
    }
    Ok(())
}

/// The directory of a bundle that holds its policy's test cases: an authoring artifact, never
/// read into a Parmana bundle, never signed, so that adding a test does not invalidate a release.
pub const BUNDLE_TESTS_DIR: &str = "tests";

/// Reads every file of a Parmana bundle under `dir` (recursively) into a [`BundleFiles`] map,
/// except the top-level [`BUNDLE_TESTS_DIR`] directory (the policy's test cases, which are not
/// signed; anything else unexpected stays an error at verification).
///
/// Paths are relative and `/`-separated. A symbolic link is followed only when it points to a
/// regular file inside `dir`; links leaving the directory, links to directories, special files,
/// and names that are not UTF-8 are refused with [`TrustError::UnsafePath`].
///
/// Bounded: more than 10,000 entries (files, subdirectories and links) or 64 MiB of file
/// content is refused with [`TrustError::BundleTooLarge`] — the size of each file is checked
/// on the open file before it is read, and no more than what is left of the 64 MiB, plus one
/// byte, is ever read from it (a file that grows after the check is still refused).
pub fn read_bundle_dir(dir: &Path) -> Result<BundleFiles, TrustError> {
    read_dir_files(dir, Some(BUNDLE_TESTS_DIR))
}

/// Reads every file under `dir`, `tests/` included, with the same bounds and path rules as
/// [`read_bundle_dir`]: for bundles of the original tooling, whose manifest lists what it
/// signed, whatever directory it is in.
pub fn read_legacy_bundle_dir(dir: &Path) -> Result<BundleFiles, TrustError> {
    read_dir_files(dir, None)
}

fn read_dir_files(dir: &Path, skip_top_level: Option<&str>) -> Result<BundleFiles, TrustError> {
    let meta = std::fs::metadata(dir).map_err(|e| TrustError::io(dir, &e))?;
    if !meta.is_dir() {
        return Err(TrustError::NotABundleDirectory {
            path: dir.display().to_string(),
        });
    }
    let root = dir.canonicalize().map_err(|e| TrustError::io(dir, &e))?;
    let mut files = BundleFiles::new();
    let mut budget = Budget {
        entries: 0,
        bytes: 0,
    };
    walk(&root, &root, "", skip_top_level, &mut files, &mut budget)?;
    Ok(files)
}

/// What the bundle directory read so far has used of [`MAX_BUNDLE_ENTRIES`] and
/// [`MAX_BUNDLE_BYTES`].
struct Budget {
    entries: usize,
    bytes: u64,
}

fn too_large() -> TrustError {
    TrustError::BundleTooLarge {
        max_entries: MAX_BUNDLE_ENTRIES,
        max_bytes: MAX_BUNDLE_BYTES,
    }
}

fn unsafe_path(path: &Path, message: &str) -> TrustError {
    TrustError::UnsafePath {
        path: path.display().to_string(),
        message: message.to_owned(),
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    skip_top_level: Option<&str>,
    files: &mut BundleFiles,
    budget: &mut Budget,
) -> Result<(), TrustError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrustError::io(dir, &e))? {
        budget.entries += 1;
        if budget.entries > MAX_BUNDLE_ENTRIES {
            return Err(too_large());
        }
        entries.push(entry.map_err(|e| TrustError::io(dir, &e))?.path());
    }
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| unsafe_path(&path, "file name is not UTF-8"))?;
        let relative = format!("{prefix}{name}");
        if prefix.is_empty() && skip_top_level == Some(name) && path.is_dir() {
            continue;
        }
        if !is_safe_relative_path(&relative) {
            return Err(unsafe_path(&path, "unsafe file name"));
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| TrustError::io(&path, &e))?;
        let file_to_read = if meta.file_type().is_symlink() {
            let target = path
                .canonicalize()
                .map_err(|_| unsafe_path(&path, "dangling symbolic link"))?;
            if !target.starts_with(root) {
                return Err(unsafe_path(
                    &path,
                    "symbolic link leaves the bundle directory",
                ));
            }
            let target_meta =
                std::fs::metadata(&target).map_err(|e| TrustError::io(&target, &e))?;
            if !target_meta.is_file() {
                return Err(unsafe_path(
                    &path,
                    "symbolic link to something other than a file",
                ));
            }
            target
        } else if meta.is_dir() {
            walk(root, &path, &format!("{relative}/"), None, files, budget)?;
            continue;
        } else if meta.is_file() {
            path.clone()
        } else {
            return Err(unsafe_path(&path, "not a regular file or directory"));
        };
        let bytes = read_file_within(&file_to_read, budget)?;
        files.insert(relative, bytes);
    }
    Ok(())
}

/// Reads one bundle file, charging its size to `budget`: the size the open file reports is
/// checked first (a 1.5 GiB file is refused without reading a byte of it), then at most what is
/// left of the budget plus one byte is read, so a file that grew since is refused too.
fn read_file_within(path: &Path, budget: &mut Budget) -> Result<Vec<u8>, TrustError> {
    let left = MAX_BUNDLE_BYTES.saturating_sub(budget.bytes);
    // A regular file only (the walk checked the entry; this holds for what is opened).
    let file = crate::open_regular_file(path).map_err(|e| TrustError::io(path, &e))?;
    let meta = file.metadata().map_err(|e| TrustError::io(path, &e))?;
    if meta.len() > left {
        return Err(too_large());
    }
    let bytes = read_at_most(file, left).map_err(|e| TrustError::io(path, &e))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > left {
        return Err(too_large());
    }
    budget.bytes += read;
    Ok(bytes)
}

/// Reads `reader` to its end or to `limit + 1` bytes, whichever comes first: a result longer
/// than `limit` means the source holds more than `limit` bytes.
fn read_at_most(reader: impl std::io::Read, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Authors `bundle.json` for the files of a bundle (an existing `bundle.json` in `files` is
/// ignored): the policy's id and version, and the digest of every other file, signed by `signers`.
pub fn sign_bundle(
    policy: &PolicyRef,
    files: &BundleFiles,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    let body = BundleBody {
        doc_type: BUNDLE_TYPE.to_owned(),
        policy_id: policy.id().clone(),
        policy_version: policy.version().clone(),
        files: files
            .iter()
            .filter(|(path, _)| path.as_str() != BUNDLE_MANIFEST_FILE)
            .map(|(path, bytes)| (path.clone(), Digest::of(bytes)))
            .collect(),
    };
    check_body(&body)?;
    let signed = sign_document(&body, signers)?;
    // Never sign what verification would refuse unparsed.
    check_manifest_size(&signed)?;
    Ok(signed)
}

/// Reads the bundle directory `dir`, signs it (see [`sign_bundle`]), writes `dir/bundle.json`
/// (whole and durably: a bundle in use is never left half-written) and returns its bytes.
pub fn sign_bundle_dir(
    dir: &Path,
    policy: &PolicyRef,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    // What an interrupted sign left is not signed into the bundle.
    crate::remove_interrupted_writes(dir);
    let files = read_bundle_dir(dir)?;
    let bytes = sign_bundle(policy, &files, signers)?;
    let path = dir.join(BUNDLE_MANIFEST_FILE);
    crate::replace_file_durably(&path, &bytes, None).map_err(|e| TrustError::io(&path, &e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound holds whatever the file's size said: an endless source yields `limit + 1`
    /// bytes, never more.
    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        for limit in [0u64, 1, 4096] {
            let bytes = read_at_most(std::io::repeat(7), limit).unwrap();
            assert_eq!(bytes.len() as u64, limit + 1);
            let exact = read_at_most(&vec![7u8; limit as usize][..], limit).unwrap();
            assert_eq!(exact.len() as u64, limit);
        }
    }
}
