//! Authoring on disk: rotating the trust root file while archiving the version it replaces under `trust-root.d/`, so that the chain stays verifiable from the pinned key; and signing bundles and release manifests only with a key of the right role, checking what is signed as execution will.

use std::path::{Path, PathBuf};

use parmana_canon::{PolicyRef, Timestamp};
use parmana_trust::{
    BUNDLE_MANIFEST_FILE, BundleFiles, ReleaseManifestSpec, Role, Signer, TRUST_ROOT_CHAIN_DIR,
    TrustRootSpec, VerifiedTrustRoot, check_signer_role, read_public_key_file, read_trust_chain,
    rotate_trust_root, sign_bundle, sign_release_manifest, verify_bundle, verify_release_manifest,
    verify_trust_history,
};

use crate::ExecutionError;
use crate::environment::read_file;

/// What [`rotate_trust_root_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The version that was current, now archived.
    pub previous_version: u64,
    /// The new current version.
    pub version: u64,
    /// Where the previous version is kept: `trust-root.d/<N>.json` beside the trust root.
    pub archived: PathBuf,
}

/// Rotates the trust root at `trust_root` to the next version: verifies the current chain from
/// `pinned_key` at `now`, signs the new version with `signers` (a threshold of the current
/// version's root keys and of the new version's), checks that the chain with it verifies, keeps the current version as
/// `trust-root.d/<N>.json` beside it (never overwriting an archived version that differs), then
/// replaces `trust_root` with the new version.
pub fn rotate_trust_root_file(
    pinned_key: &Path,
    trust_root: &Path,
    spec: &TrustRootSpec,
    signers: &[&dyn Signer],
    now: Timestamp,
) -> Result<Rotation, ExecutionError> {
    rotate_within(
        pinned_key,
        trust_root,
        spec,
        signers,
        now,
        parmana_trust::MAX_TRUST_CHAIN_BYTES,
    )
}

/// [`rotate_trust_root_file`], the chain with the new version at most `chain_bound` bytes.
fn rotate_within(
    pinned_key: &Path,
    trust_root: &Path,
    spec: &TrustRootSpec,
    signers: &[&dyn Signer],
    now: Timestamp,
    chain_bound: usize,
) -> Result<Rotation, ExecutionError> {
    let pinned = read_public_key_file(pinned_key)?;
    // What an interrupted rotation left in the chain's directory (its temporary files) would
    // refuse every read of the chain: a rotation run again starts clean.
    if let Some(parent) = trust_root.parent() {
        parmana_trust::remove_interrupted_writes(&parent.join(TRUST_ROOT_CHAIN_DIR));
    }
    let mut chain = read_trust_chain(trust_root)?;
    let previous = verify_trust_history(&pinned, &chain)?.current(now, None)?;
    // Only the file of the version in force is replaced: a version archived in the chain's
    // directory (which the chain reads around) or the directory itself named instead would be
    // overwritten, its history archived in a directory inside it, and the chain broken.
    let not_current = || ExecutionError::Io {
        action: "rotate",
        path: trust_root.display().to_string(),
        message: format!(
            "not the file of the trust root in force: name it (the file beside \
             `{TRUST_ROOT_CHAIN_DIR}/`), not the directory, an archived version or a numbered \
             file of a chain directory"
        ),
    };
    let in_chain_dir = trust_root
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|name| name == TRUST_ROOT_CHAIN_DIR);
    // A version's file in a directory of numbered files only (`chain/3.json`, read as that
    // directory's chain): replacing it with the next version, and archiving beside it, would
    // break that chain too.
    // (Named as the chain reader names a version's file: digits, no leading zero.)
    let numbered_file = trust_root
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(".json"))
        .is_some_and(|stem| {
            !stem.is_empty() && !stem.starts_with('0') && stem.bytes().all(|b| b.is_ascii_digit())
        });
    if in_chain_dir || numbered_file || !trust_root.is_file() {
        return Err(not_current());
    }
    let current_bytes = read_file(trust_root, parmana_trust::MAX_TRUST_ROOT_BYTES)?;
    if chain.last() != Some(&current_bytes) {
        return Err(not_current());
    }
    let bytes = rotate_trust_root(&previous, spec, signers)?;
    // The whole chain with the new version must verify (a version may not, for example, give
    // the attestation role back to a key an older version revoked).
    chain.push(bytes.clone());
    verify_trust_history(&pinned, &chain)?;
    // Nor may it grow past what a chain is read within: every later command would refuse it.
    refuse_chain_past_its_bound(&chain, trust_root, chain_bound)?;
    let chain_dir = trust_root
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(TRUST_ROOT_CHAIN_DIR);
    parmana_trust::create_directories(&chain_dir)
        .and_then(|()| parmana_trust::sync_directory_of(&chain_dir))
        .map_err(|e| ExecutionError::io("create", &chain_dir, &e))?;
    let archived = chain_dir.join(format!("{}.json", previous.version()));
    // At most one byte past a trust-root file's bound: a larger file is another document.
    let cap = u64::try_from(parmana_trust::MAX_TRUST_ROOT_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let archived_bytes = std::fs::File::open(&archived).and_then(|file| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, cap), &mut bytes).map(|_| bytes)
    });
    match archived_bytes {
        Ok(existing) if existing == current_bytes => {}
        Ok(_) => {
            return Err(ExecutionError::Io {
                action: "archive",
                path: archived.display().to_string(),
                message: "a different document is already archived under this version".to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_file(&archived, &current_bytes)?;
        }
        Err(e) => return Err(ExecutionError::io("read", &archived, &e)),
    }
    write_file(trust_root, &bytes)?;
    Ok(Rotation {
        previous_version: previous.version(),
        version: previous.version() + 1,
        archived,
    })
}

/// Signs `bundle.json` for the bundle `files` (an existing `bundle.json` among them is ignored)
/// as `policy`, and returns its bytes. Nothing is written.
///
/// The signer must hold the `policy` role in `trust_root` (`trust.unknown_key`,
/// `trust.key_lacks_role` otherwise; checked before signing), and the bundle made must verify
/// under `trust_root` exactly as execution verifies it — so a key that alone cannot meet the
/// role's threshold is refused too (`trust.threshold_not_met`), instead of writing a bundle
/// that `execute` would refuse.
pub fn sign_bundle_verified(
    trust_root: &VerifiedTrustRoot,
    policy: &PolicyRef,
    files: &BundleFiles,
    signer: &dyn Signer,
) -> Result<Vec<u8>, ExecutionError> {
    check_signer_role(trust_root, &signer.key_id(), Role::Policy)?;
    let manifest = sign_bundle(policy, files, &[signer])?;
    let mut signed = files.clone();
    signed.insert(BUNDLE_MANIFEST_FILE.to_owned(), manifest.clone());
    verify_bundle(trust_root, &signed)?;
    Ok(manifest)
}

/// Signs a release manifest and returns its bytes. Nothing is written.
///
/// The signer must hold the `release` role in `trust_root` (checked before signing), and the
/// manifest made must verify under `trust_root` at `now` as execution verifies it: a threshold
/// the one key cannot meet, or an `expires` not after `now`, is refused instead of written.
pub fn sign_release_manifest_verified(
    trust_root: &VerifiedTrustRoot,
    spec: &ReleaseManifestSpec,
    signer: &dyn Signer,
    now: Timestamp,
) -> Result<Vec<u8>, ExecutionError> {
    check_signer_role(trust_root, &signer.key_id(), Role::Release)?;
    let bytes = sign_release_manifest(spec, &[signer])?;
    verify_release_manifest(trust_root, &bytes, now, None)?;
    Ok(bytes)
}

/// Writes `bytes` to `path` whole and durably (a temporary file synced and renamed, the
/// directory synced), so that a reader never sees half a document and a version written — and
/// then accepted by a store's marks — survives a crash.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExecutionError> {
    parmana_trust::replace_file_durably(path, bytes, None)
        .map_err(|e| ExecutionError::io("write", path, &e))
}

/// Refuses a chain — the versions in force and the new one — larger than `bound`, what a chain
/// is read within ([`MAX_TRUST_CHAIN_BYTES`](parmana_trust::MAX_TRUST_CHAIN_BYTES)): written, it
/// would be refused by every later command, a rotation too (`trust.document_too_large`).
fn refuse_chain_past_its_bound(
    chain: &[Vec<u8>],
    trust_root: &Path,
    bound: usize,
) -> Result<(), ExecutionError> {
    let chain_bytes = chain
        .iter()
        .map(Vec::len)
        .fold(0usize, usize::saturating_add);
    if chain_bytes > bound {
        return Err(ExecutionError::Trust(
            parmana_trust::TrustError::DocumentTooLarge {
                path: format!(
                    "the trust-root chain at {} with the new version ({chain_bytes} bytes)",
                    trust_root.display()
                ),
                limit: bound,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use parmana_trust::{LocalSigningKey, RoleSpec, Signer, TrustRootSpec, read_trust_chain};

    /// A rotation never writes a chain larger than a chain is read within: one byte short of
    /// the room the new version needs, it is refused and nothing is written; with the room, it
    /// goes on.
    #[test]
    fn a_rotation_past_the_chain_bound_writes_nothing() {
        let fixture = parmana_testkit::FixtureEnvironment::new().unwrap();
        let trust = fixture.root().join("trust");
        let (pinned, current) = (trust.join("root.pub"), trust.join("trust-root.json"));
        let root = fixture.key("root-2").unwrap();
        let one = |key: &LocalSigningKey| RoleSpec {
            keys: vec![key.public_key()],
            threshold: 1,
        };
        let spec = TrustRootSpec {
            expires: parmana_canon::Timestamp::parse("2035-01-01T00:00:00Z").unwrap(),
            root: one(&root),
            policy: one(&fixture.key("policy").unwrap()),
            release: one(&fixture.key("release").unwrap()),
            attestation: one(&fixture.attestation_signer().unwrap()),
            log: None,
        };
        let signers: [&dyn Signer; 1] = [&root];
        let chain_bytes = |path: &std::path::Path| -> usize {
            read_trust_chain(path).unwrap().iter().map(Vec::len).sum()
        };
        let before = std::fs::read(&current).unwrap();
        let archived = std::fs::read_dir(trust.join("trust-root.d"))
            .unwrap()
            .count();
        // The new version is at least as large as no document: the chain as it is, and then
        // some, is too small a bound.
        let refused = super::rotate_within(
            &pinned,
            &current,
            &spec,
            &signers,
            parmana_testkit::now(),
            chain_bytes(&current) + 10,
        )
        .unwrap_err();
        assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
        assert_eq!(std::fs::read(&current).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(trust.join("trust-root.d"))
                .unwrap()
                .count(),
            archived
        );
        super::rotate_trust_root_file(&pinned, &current, &spec, &signers, parmana_testkit::now())
            .unwrap();
        assert_ne!(std::fs::read(&current).unwrap(), before);
    }
}
