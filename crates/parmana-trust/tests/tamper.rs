//! The tamper matrix: every byte (or ≥2,000 evenly spread bytes) of every signed artifact the fixtures produce is flipped; nothing is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TAMPER_CODES, flip_positions, now, pinned};
use parmana_trust::*;

/// Flips each chosen byte of `bytes` (XOR `mask`) and hands the result to `check`, which
/// returns the refusal code (or `None` when the tampered input was accepted).
fn matrix(
    what: &str,
    bytes: &[u8],
    mask: u8,
    allowed: &[&str],
    mut check: impl FnMut(&[u8]) -> Option<&'static str>,
) -> usize {
    assert!(
        check(bytes).is_none(),
        "{what}: the untampered input must verify"
    );
    let positions = flip_positions(bytes.len());
    assert!(positions.len() >= bytes.len().min(2_000));
    for &position in &positions {
        let mut tampered = bytes.to_vec();
        tampered[position] ^= mask;
        match check(&tampered) {
            None => panic!("{what}: byte {position} ^ {mask:#04x} was ACCEPTED"),
            Some(code) => assert!(
                allowed.contains(&code),
                "{what}: byte {position} ^ {mask:#04x} refused with unexpected code {code}"
            ),
        }
    }
    positions.len()
}

fn trust_codes(result: Result<VerifiedTrustRoot, TrustError>) -> Option<&'static str> {
    result.err().map(|e| e.code())
}

#[test]
fn trust_root_versions() {
    let chain = common::chain_bytes();
    let mut flips = 0;
    for mask in [0x01, 0x20] {
        flips += matrix("trust-root.d/1.json", &chain[0], mask, TAMPER_CODES, |b| {
            trust_codes(verify_trust_chain(&pinned(), &[b.to_vec()], now(), None))
        });
        flips += matrix("trust-root.json", &chain[1], mask, TAMPER_CODES, |b| {
            trust_codes(verify_trust_chain(
                &pinned(),
                &[chain[0].clone(), b.to_vec()],
                now(),
                None,
            ))
        });
    }
    assert!(flips > 4_000, "{flips}");
}

#[test]
fn bundle_manifests_and_policy_files() {
    let root = common::trust_root();
    let mut bundles: Vec<(String, BundleFiles)> = common::committed_bundle_dirs()
        .into_iter()
        .map(|dir| (dir.display().to_string(), read_bundle_dir(&dir).unwrap()))
        .collect();
    assert!(
        !bundles.is_empty(),
        "the fixtures sign the bundles under policies/"
    );
    bundles.push(("tests/data/bundle".to_owned(), common::signed_test_bundle()));
    let mut flips = 0;
    for (name, files) in &bundles {
        for (path, bytes) in files {
            let allowed: &[&str] = if path == BUNDLE_MANIFEST_FILE {
                TAMPER_CODES
            } else {
                // A changed file under a valid signature is exactly a digest mismatch.
                &["trust.digest_mismatch"]
            };
            flips += matrix(&format!("{name}/{path}"), bytes, 0x01, allowed, |b| {
                let mut tampered = files.clone();
                tampered.insert(path.clone(), b.to_vec());
                verify_bundle(&root, &tampered).err().map(|e| e.code())
            });
        }
    }
    assert!(flips > 2_000, "{flips}");
}

#[test]
fn release_manifest() {
    let root = common::trust_root();
    let bytes = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    for mask in [0x01, 0x20] {
        matrix(RELEASE_MANIFEST_FILE, &bytes, mask, TAMPER_CODES, |b| {
            verify_release_manifest(&root, b, now(), None)
                .err()
                .map(|e| e.code())
        });
    }
}

#[test]
fn attestation() {
    let root = common::trust_root();
    let golden = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/attestation.json"),
    )
    .unwrap();
    for mask in [0x01, 0x20] {
        matrix(
            "golden attestation",
            &golden,
            mask,
            &["attestation.invalid"],
            |b| {
                let report = verify_attestation(b, &root, None, None);
                if report.is_valid() {
                    return None;
                }
                // Every refusal names a failed check with a trust error code.
                assert!(report.failures().all(|c| c.code.is_some_and(|code| {
                    TAMPER_CODES.contains(&code) || code == "trust.digest_mismatch"
                })));
                Some("attestation.invalid")
            },
        );
    }
}
