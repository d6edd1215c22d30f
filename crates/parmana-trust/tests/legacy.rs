//! Legacy bundles of the original TypeScript tooling: all three verify, and no byte change slips through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use parmana_canon::parse_strict;
use parmana_trust::*;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/legacy-bundles")
}

fn legacy_key() -> PublicKey {
    read_public_key_file(&vectors().join("legacy-bundle-signing.pub")).unwrap()
}

fn bundles() -> Vec<(&'static str, BundleFiles)> {
    [
        "claims-approval/v1",
        "claims-approval/v2",
        "patient-triage/v1",
    ]
    .into_iter()
    .map(|name| (name, read_bundle_dir(&vectors().join(name)).unwrap()))
    .collect()
}

fn js_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/legacy-js")
}

fn js_key() -> PublicKey {
    read_public_key_file(&js_vectors().join("legacy-js-signing.pub")).unwrap()
}

/// Signed by JavaScript with signal names `"10"`, `"9"`, `"é"`, `""`, …: the artifact hash
/// covers JavaScript's key order (integer-like keys first, in numeric order), which differs
/// from RFC 8785's. It verifies under its key only; every bit flip is refused.
#[test]
fn a_javascript_signed_bundle_with_integer_like_names_verifies() {
    let files = read_bundle_dir(&js_vectors().join("legacy-names/v1")).unwrap();
    let verified = verify_legacy_bundle(&files, &js_key()).unwrap();
    assert_eq!(
        (verified.policy_id(), verified.policy_version()),
        ("legacy-names", "v1")
    );
    assert_eq!(verified.files()["policy.json"], files["policy.json"]);
    assert_eq!(
        verify_legacy_bundle(&files, &legacy_key())
            .unwrap_err()
            .code(),
        "trust.bad_signature"
    );
    let policy = &files["policy.json"];
    for position in 0..policy.len() {
        let mut tampered = files.clone();
        tampered.get_mut("policy.json").unwrap()[position] ^= 0x01;
        assert!(
            verify_legacy_bundle(&tampered, &js_key()).is_err(),
            "byte {position} ^ 1 accepted"
        );
    }
}

/// JavaScript's canonical form leaves out a `__proto__` member, so nothing signed it: the
/// bundle is refused as malformed, naming the file, not verified for unsigned content.
#[test]
fn a_proto_member_no_signature_covers_is_refused() {
    let files = read_bundle_dir(&js_vectors().join("legacy-proto/v1")).unwrap();
    let err = verify_legacy_bundle(&files, &js_key()).unwrap_err();
    assert_eq!(err.code(), "trust.malformed");
    assert!(
        err.to_string()
            .contains("policy.json: a \"__proto__\" member"),
        "{err}"
    );
    // In the manifest itself, naming the manifest.
    let (_, mut files) = bundles().remove(0);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&files["bundle.manifest.json"]).unwrap();
    manifest["__proto__"] = serde_json::json!(1);
    files.insert(
        "bundle.manifest.json".to_owned(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let err = verify_legacy_bundle(&files, &legacy_key()).unwrap_err();
    assert_eq!(err.code(), "trust.malformed");
    assert!(
        err.to_string()
            .contains("bundle.manifest.json: a \"__proto__\" member"),
        "{err}"
    );
}

#[test]
fn all_three_legacy_bundles_verify() {
    let key = legacy_key();
    for (name, files) in bundles() {
        let verified = verify_legacy_bundle(&files, &key).unwrap();
        let (id, version) = name.split_once('/').unwrap();
        assert_eq!(verified.policy_id(), id);
        assert_eq!(verified.policy_version(), version);
        assert_eq!(verified.files().keys().collect::<Vec<_>>(), ["policy.json"]);
        assert_eq!(verified.files()["policy.json"], files["policy.json"]);
        assert_eq!(verified.bundle_hash().len(), 64);
    }
}

#[test]
fn another_key_is_refused() {
    let other = LocalSigningKey::from_seed(&[8; 32]).public_key();
    for (_, files) in bundles() {
        assert_eq!(
            verify_legacy_bundle(&files, &other).unwrap_err().code(),
            "trust.bad_signature"
        );
    }
}

#[test]
fn missing_and_extra_files_are_refused() {
    let key = legacy_key();
    for (_, files) in bundles() {
        for name in ["policy.json", "bundle.manifest.json", "bundle.sig"] {
            let mut missing = files.clone();
            missing.remove(name);
            assert_eq!(
                verify_legacy_bundle(&missing, &key).unwrap_err().code(),
                "trust.bundle_file_missing"
            );
        }
        let mut extra = files.clone();
        extra.insert("extra.json".to_owned(), b"{}".to_vec());
        assert_eq!(
            verify_legacy_bundle(&extra, &key).unwrap_err().code(),
            "trust.bundle_file_unexpected"
        );
    }
}

/// The signature is checked before any artifact is read into its legacy form: a directory
/// nobody signed whose `policy.json` would take gigabytes in that form (nested lists, two spaces
/// a level) is refused by its signature, at the cost of the manifest alone; one whose form passes
/// `MAX_LEGACY_FORM_BYTES` is refused as it is written, not built whole.
#[test]
fn an_unsigned_directory_costs_its_manifest_alone() {
    let key = legacy_key();
    let (_, files) = bundles().remove(0);
    // About 6 MiB nested 120 deep: its legacy form would be about 1.2 GB.
    let depth = 120;
    let leaves = 3 * 1024 * 1024;
    let mut deep = "[".repeat(depth);
    deep.push_str(&"0,".repeat(leaves));
    deep.push('0');
    deep.push_str(&"]".repeat(depth));
    let mut unsigned = files.clone();
    unsigned.insert("policy.json".to_owned(), deep.clone().into_bytes());
    unsigned.insert("bundle.sig".to_owned(), BASE64_64_ZEROS.as_bytes().to_vec());
    assert_eq!(
        verify_legacy_bundle(&unsigned, &key).unwrap_err().code(),
        "trust.bad_signature"
    );
    // Signed (its signature good), the artifact's form is refused past the bound.
    let mut signed = files.clone();
    signed.insert("policy.json".to_owned(), deep.into_bytes());
    let refused = verify_legacy_bundle(&signed, &key).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large");
    assert!(
        refused
            .to_string()
            .contains("policy.json (its legacy canonical form)"),
        "{refused}"
    );
}

/// 64 zero bytes, in canonical base64: a signature that verifies under no key.
const BASE64_64_ZEROS: &str =
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

/// Every bit flip (and the all-bits flip) of every byte of every file is refused.
#[test]
fn every_bit_flip_of_every_byte_is_refused() {
    let key = legacy_key();
    let mut attempts = 0usize;
    for (name, files) in bundles() {
        for (file, bytes) in &files {
            for position in 0..bytes.len() {
                for mask in [1u8, 2, 4, 8, 16, 32, 64, 128, 0xff] {
                    let mut tampered = files.clone();
                    tampered.get_mut(file).unwrap()[position] ^= mask;
                    attempts += 1;
                    if verify_legacy_bundle(&tampered, &key).is_ok() {
                        panic!("{name}/{file}: byte {position} ^ {mask:#04x} accepted");
                    }
                }
            }
        }
    }
    assert!(attempts > 20_000, "{attempts}");
}

/// Replacing any byte by a JSON whitespace byte (or a structural character) is refused,
/// except replacing one whitespace byte by another between tokens of a JSON file (or among
/// the trailing line ends of `bundle.sig`): that leaves the parsed document, and so everything
/// the legacy format hashes and signs, unchanged.
#[test]
fn substitutions_are_refused_or_change_only_whitespace() {
    let key = legacy_key();
    let mut whitespace_only = 0usize;
    let json_whitespace = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    for (name, files) in bundles() {
        for (file, bytes) in &files {
            let body_end = bytes
                .iter()
                .rposition(|b| !matches!(b, b'\r' | b'\n'))
                .map_or(0, |p| p + 1);
            for position in 0..bytes.len() {
                for value in *b" \n\r\t\"0{}[],:\x00\xff" {
                    if value == bytes[position] {
                        continue;
                    }
                    let mut tampered = files.clone();
                    tampered.get_mut(file).unwrap()[position] = value;
                    if verify_legacy_bundle(&tampered, &key).is_err() {
                        continue;
                    }
                    let same = if file == "bundle.sig" {
                        position >= body_end && matches!(value, b'\n' | b'\r')
                    } else {
                        json_whitespace(bytes[position])
                            && json_whitespace(value)
                            && parse_strict(bytes).unwrap()
                                == parse_strict(&tampered[file]).unwrap()
                    };
                    assert!(
                        same,
                        "{name}/{file}: byte {position} = {value:#04x} accepted"
                    );
                    whitespace_only += 1;
                }
            }
        }
    }
    assert!(whitespace_only > 0);
}
