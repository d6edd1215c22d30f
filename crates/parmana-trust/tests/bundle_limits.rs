//! Reading a bundle directory is bounded: entries and bytes at the limit are read, one past is refused, and a huge (sparse) file is refused without being read; a `bundle.json` past its limit is refused before it is parsed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;
use std::path::Path;

use parmana_trust::{
    BUNDLE_MANIFEST_FILE, MAX_BUNDLE_MANIFEST_BYTES, read_bundle_dir, verify_bundle,
};

/// 10,000 entries and 64 MiB: the documented limits (`MAX_BUNDLE_ENTRIES`, `MAX_BUNDLE_BYTES`).
const MAX_ENTRIES: usize = 10_000;
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A file of `len` bytes that takes no disk space (a hole); reads give zeros.
fn sparse(path: &Path, len: u64) {
    File::create(path).unwrap().set_len(len).unwrap();
}

/// What reading `dir` gives: the number of files, or the refusal's code.
fn read(dir: &Path) -> Result<usize, &'static str> {
    read_bundle_dir(dir)
        .map(|files| files.len())
        .map_err(|e| e.code())
}

const TOO_LARGE: Result<usize, &str> = Err("trust.bundle_too_large");

#[test]
fn entries_at_the_limit_are_read_and_one_more_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..MAX_ENTRIES - 1 {
        std::fs::write(d.join(format!("f{i:05}")), b"x").unwrap();
    }
    std::fs::create_dir(d.join("sub")).unwrap();
    // 9,999 files and one (empty) directory: 10,000 entries.
    assert_eq!(read(d), Ok(MAX_ENTRIES - 1));
    // A file in the subdirectory is the 10,001st entry.
    std::fs::write(d.join("sub/one"), b"x").unwrap();
    assert_eq!(read(d), TOO_LARGE);
    std::fs::remove_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("last"), b"x").unwrap();
    assert_eq!(read(d), Ok(MAX_ENTRIES));
    std::fs::write(d.join("one-more"), b"x").unwrap();
    assert_eq!(read(d), TOO_LARGE);
}

#[test]
fn bytes_at_the_limit_are_read_and_one_more_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sparse(&d.join("a"), MAX_BYTES / 2);
    sparse(&d.join("b"), MAX_BYTES / 2);
    assert_eq!(read(d), Ok(2));
    // The limit is on all files together: one more byte anywhere is refused.
    sparse(&d.join("c"), 1);
    assert_eq!(read(d), TOO_LARGE);
    std::fs::remove_file(d.join("c")).unwrap();
    sparse(&d.join("b"), MAX_BYTES / 2 + 1);
    assert_eq!(read(d), TOO_LARGE);
    std::fs::remove_file(d.join("a")).unwrap();
    std::fs::remove_file(d.join("b")).unwrap();
    sparse(&d.join("whole"), MAX_BYTES);
    assert_eq!(read(d), Ok(1));
    sparse(&d.join("whole"), MAX_BYTES + 1);
    assert_eq!(read(d), TOO_LARGE);
}

/// A 1.5 GiB file (sparse: no disk used) is refused from its size, before any of it is read.
/// That it is not read is shown by the CLI test `a_huge_bundle_file_is_refused_in_bounded_memory`,
/// which runs under an address-space limit far below 1.5 GiB; docs/reliability.md has the figures.
#[test]
fn a_huge_sparse_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.json"), b"{}").unwrap();
    sparse(&dir.path().join("huge"), 3 << 29);
    assert_eq!(read(dir.path()), TOO_LARGE);
    // Through a symbolic link inside the directory, too (read before its target: names sort).
    #[cfg(unix)]
    {
        let inner = tempfile::tempdir().unwrap();
        std::fs::create_dir(inner.path().join("z")).unwrap();
        sparse(&inner.path().join("z/huge"), 3 << 29);
        std::os::unix::fs::symlink("z/huge", inner.path().join("a-link")).unwrap();
        assert_eq!(read(inner.path()), TOO_LARGE);
    }
}

#[test]
fn a_bundle_manifest_past_its_limit_is_refused_before_it_is_parsed() {
    let root = common::trust_root();
    let padded = |len: usize| {
        let mut files = common::signed_test_bundle();
        let manifest = files.get_mut(BUNDLE_MANIFEST_FILE).unwrap();
        // Whitespace after the document: still the same signed JSON value.
        manifest.resize(len, b' ');
        files
    };
    assert_eq!(
        MAX_BUNDLE_MANIFEST_BYTES,
        4 * 1024 * 1024,
        "the documented limit"
    );
    verify_bundle(&root, &padded(MAX_BUNDLE_MANIFEST_BYTES)).unwrap();
    let refused = verify_bundle(&root, &padded(MAX_BUNDLE_MANIFEST_BYTES + 1)).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
    // Not JSON at all past the limit: refused for its size, so it was never parsed.
    let mut files = common::signed_test_bundle();
    files.insert(
        BUNDLE_MANIFEST_FILE.to_owned(),
        vec![b'['; MAX_BUNDLE_MANIFEST_BYTES + 1],
    );
    let refused = verify_bundle(&root, &files).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
}

#[test]
fn an_interrupted_sign_is_named_and_cleared_by_signing_again() {
    // A kill during `sign_bundle_dir` leaves its temporary file beside bundle.json: the bundle
    // is refused as holding an unlisted file, named as an interrupted write's; signing again
    // removes it rather than sign it into the bundle (the CLI's `bundle sign`: authoring_checks_cli).
    let root = common::trust_root();
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in common::test_bundle_files() {
        let target = dir.path().join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let policy = common::demo_ref();
    let key = common::key("policy");
    parmana_trust::sign_bundle_dir(dir.path(), &policy, &[&key]).unwrap();
    // (The pid of a process that cannot exist: no write of it still runs.)
    let leftover = dir.path().join(".bundle.json.4294967295-1.tmp");
    std::fs::write(&leftover, b"{\"half\":").unwrap();
    let refused = verify_bundle(&root, &read_bundle_dir(dir.path()).unwrap()).unwrap_err();
    assert_eq!(refused.code(), "trust.bundle_file_unexpected");
    assert!(
        refused.to_string().contains("interrupted write: remove it"),
        "{refused}"
    );
    parmana_trust::sign_bundle_dir(dir.path(), &policy, &[&key]).unwrap();
    assert!(!leftover.exists());
    let files = read_bundle_dir(dir.path()).unwrap();
    assert!(
        !files.keys().any(|name| name.ends_with(".tmp")),
        "{:?}",
        files.keys()
    );
    verify_bundle(&root, &files).unwrap();
}

#[test]
fn an_interrupted_writes_file_is_never_signed_into_a_bundle() {
    let mut files = common::test_bundle_files();
    files.insert(".bundle.json.4711-1.tmp".to_owned(), b"{\"half\":".to_vec());
    let refused =
        parmana_trust::sign_bundle(&common::demo_ref(), &files, &[&common::key("policy")])
            .unwrap_err();
    assert_eq!(refused.code(), "trust.unsafe_path", "{refused}");
    assert!(
        refused.to_string().contains("interrupted write"),
        "{refused}"
    );
}
