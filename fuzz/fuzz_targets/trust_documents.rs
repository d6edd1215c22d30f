//! Fuzz target: trust-root chains, bundle manifests and release manifests never panic the verifiers, and whatever verifies has exactly the signed content of a fixture document.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use parmana_canon::{Digest, Timestamp};
use parmana_trust::{
    PublicKey, VerifiedTrustRoot, verify_bundle, verify_release_manifest, verify_trust_chain,
};

const ROOT_1: &[u8] = include_bytes!("../../trust/trust-root.d/1.json");
const ROOT_2: &[u8] = include_bytes!("../../trust/trust-root.json");
const BUNDLE: &[u8] = include_bytes!("../../policies/patient-triage/1.0.0/bundle.json");
const RELEASE: &[u8] = include_bytes!("../../release-manifest.json");

fn now() -> Timestamp {
    Timestamp::parse("2026-11-28T22:00:00Z").expect("timestamp")
}

static PINNED: LazyLock<PublicKey> =
    LazyLock::new(|| PublicKey::from_pem(include_str!("../../trust/root.pub")).expect("pinned"));

static TRUST_ROOT: LazyLock<VerifiedTrustRoot> = LazyLock::new(|| {
    verify_trust_chain(&PINNED, &[ROOT_1.to_vec(), ROOT_2.to_vec()], now(), None)
        .expect("fixture trust chain")
});

/// The patient-triage bundle's other file (its policy; `tests/` is not part of a signed bundle),
/// so that only `bundle.json` varies.
static BUNDLE_FILES: LazyLock<BTreeMap<String, Vec<u8>>> = LazyLock::new(|| {
    let mut files = BTreeMap::new();
    files.insert(
        "policy.json".to_owned(),
        include_bytes!("../../policies/patient-triage/1.0.0/policy.json").to_vec(),
    );
    files
});

static ROOT_1_DIGEST: LazyLock<Digest> = LazyLock::new(|| {
    verify_trust_chain(&PINNED, &[ROOT_1.to_vec()], now(), None)
        .expect("fixture trust root 1")
        .digest()
});

static RELEASE_DIGEST: LazyLock<Digest> = LazyLock::new(|| {
    verify_release_manifest(&TRUST_ROOT, RELEASE, now(), None)
        .expect("fixture release manifest")
        .digest()
});

static BUNDLE_DIGEST: LazyLock<Digest> = LazyLock::new(|| {
    let mut files = BUNDLE_FILES.clone();
    files.insert("bundle.json".to_owned(), BUNDLE.to_vec());
    verify_bundle(&TRUST_ROOT, &files)
        .expect("fixture bundle")
        .bundle_digest()
});

// Whatever verifies must have the signed content of the authentic document: the document
// digest (SHA-256 of the RFC 8785 bytes of `signed`) equals the fixture's. Spelling may differ
// (whitespace, key order), content may not.
fuzz_target!(|data: &[u8]| {
    // As trust root version 1 (signed by the pinned key) and as the rotation to version 2.
    if let Ok(first) = verify_trust_chain(&PINNED, &[data.to_vec()], now(), None) {
        assert_eq!(first.digest(), *ROOT_1_DIGEST);
    }
    if let Ok(second) = verify_trust_chain(&PINNED, &[ROOT_1.to_vec(), data.to_vec()], now(), None)
    {
        assert_eq!(second.digest(), TRUST_ROOT.digest());
    }
    // As a release manifest.
    if let Ok(release) = verify_release_manifest(&TRUST_ROOT, data, now(), None) {
        assert_eq!(release.digest(), *RELEASE_DIGEST);
    }
    // As the manifest of a bundle.
    let mut files = BUNDLE_FILES.clone();
    files.insert("bundle.json".to_owned(), data.to_vec());
    if let Ok(bundle) = verify_bundle(&TRUST_ROOT, &files) {
        assert_eq!(bundle.bundle_digest(), *BUNDLE_DIGEST);
    }
});
