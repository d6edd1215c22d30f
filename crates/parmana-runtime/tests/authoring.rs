//! Authoring through the facade: `sign_bundle_verified` and `sign_release_manifest_verified` sign only with a key of the document's role and return only what verifies as execution will.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::Fixture;
use parmana_runtime::canon::{PolicyRef, Timestamp};
use parmana_runtime::policy::EVALUATOR_SEMANTICS;
use parmana_runtime::trust::{BUNDLE_MANIFEST_FILE, ReleaseManifestSpec, read_bundle_dir};
use parmana_runtime::{
    RUNTIME_VERSION, load_bundle, sign_bundle_verified, sign_release_manifest_verified,
};

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn spec(
    policies: BTreeMap<PolicyRef, parmana_runtime::canon::Digest>,
    expires: &str,
) -> ReleaseManifestSpec {
    ReleaseManifestSpec {
        version: 2,
        expires: ts(expires),
        evaluator_semantics: EVALUATOR_SEMANTICS.to_owned(),
        minimum_runtime_version: RUNTIME_VERSION.to_owned(),
        policies,
    }
}

#[test]
fn a_bundle_is_signed_only_by_the_policy_role_and_verifies() {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let trust_root = environment.trust_root();
    let dir = fixture.root().join("policies/claims-approval/1.0.0");
    let files = read_bundle_dir(&dir).unwrap();
    let name: PolicyRef = "claims-approval@1.0.0".parse().unwrap();
    for (key, code) in [
        ("release", "trust.key_lacks_role"),
        ("attestation", "trust.key_lacks_role"),
        ("root-1", "trust.unknown_key"), // rotated out of the current trust root
    ] {
        let err = sign_bundle_verified(trust_root, &name, &files, &fixture.key(key)).unwrap_err();
        assert_eq!(err.code(), code, "{key}");
    }
    let manifest = sign_bundle_verified(trust_root, &name, &files, &fixture.key("policy")).unwrap();
    // Deterministic: the committed bundle.json is exactly this signature over these files.
    assert_eq!(manifest, files[BUNDLE_MANIFEST_FILE]);
    let verified = load_bundle(trust_root, &dir).unwrap();
    assert_eq!(verified.policy_ref(), name);
}

#[test]
fn a_release_manifest_is_signed_only_by_the_release_role_unexpired() {
    let fixture = Fixture::new();
    let environment = fixture.environment();
    let trust_root = environment.trust_root();
    let now = common::clock().0;
    let policies = environment.release_manifest().policies().clone();
    let good = spec(policies.clone(), "2030-01-01T00:00:00Z");
    for (key, code) in [
        ("policy", "trust.key_lacks_role"),
        ("root-2", "trust.key_lacks_role"),
        ("root-1", "trust.unknown_key"),
    ] {
        let err =
            sign_release_manifest_verified(trust_root, &good, &fixture.key(key), now).unwrap_err();
        assert_eq!(err.code(), code, "{key}");
    }
    let release = fixture.key("release");
    for expires in ["2026-01-01T00:00:00Z", parmana_testkit::NOW] {
        let err = sign_release_manifest_verified(
            trust_root,
            &spec(policies.clone(), expires),
            &release,
            now,
        )
        .unwrap_err();
        assert_eq!(err.code(), "trust.expired", "{expires}");
    }
    let bytes = sign_release_manifest_verified(trust_root, &good, &release, now).unwrap();
    assert_eq!(
        parmana_runtime::trust::read_release_manifest_version(&bytes).unwrap(),
        2
    );
}
