//! Trust roots, bundles and release manifests: the committed fixtures verify, and bypasses are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{key, now, pinned, spec};
use parmana_canon::{Digest, PolicyRef, Timestamp, parse_strict};
use parmana_trust::*;
use serde_json::{Value, json};

fn code<T: std::fmt::Debug>(result: Result<T, TrustError>) -> &'static str {
    result.unwrap_err().code()
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// Re-signs a hand-made `signed` body with the given keys (and optional raw signature list).
fn envelope(signed: &Value, signatures: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let sigs: Vec<Value> = signatures
        .into_iter()
        .map(|(keyid, sig)| {
            use base64::Engine as _;
            json!({"keyid": keyid, "sig": base64::engine::general_purpose::STANDARD.encode(sig)})
        })
        .collect();
    serde_json::to_vec(&json!({"signed": signed, "signatures": sigs})).unwrap()
}

fn sign_with(signed: &Value, keys: &[&LocalSigningKey]) -> Vec<u8> {
    let bytes = parmana_canon::canonicalize_value(signed).unwrap();
    envelope(
        signed,
        keys.iter()
            .map(|k| (k.key_id().to_string(), k.sign(&bytes).unwrap().to_vec()))
            .collect(),
    )
}

fn signed_part(bytes: &[u8]) -> Value {
    parse_strict(bytes).unwrap()["signed"].clone()
}

#[test]
fn committed_chain_verifies_and_walks_from_the_pinned_key() {
    let chain = common::chain_bytes();
    assert_eq!(chain.len(), 2, "trust-root.d/1.json then trust-root.json");
    let root = common::trust_root();
    assert_eq!(root.version(), 2);
    assert_eq!(root.expires(), ts("2036-01-01T00:00:00Z"));
    assert_eq!(
        root.digest(),
        Digest::of_canonical(&signed_part(&chain[1])).unwrap()
    );
    assert!(root.has_role(&key("root-2").key_id(), Role::Root));
    assert!(!root.has_role(&key("root-1").key_id(), Role::Root));
    for (name, role) in [
        ("policy", Role::Policy),
        ("release", Role::Release),
        ("attestation", Role::Attestation),
    ] {
        assert_eq!(root.role_key_ids(role), vec![key(name).key_id()]);
        assert_eq!(root.role_threshold(role), 1);
    }
    // Version 1 alone verifies too (it is version 1, anchored in the pinned key).
    let v1 = verify_trust_chain(&pinned(), &chain[..1], now(), None).unwrap();
    assert_eq!(v1.version(), 1);
    // The current version alone does not: the chain must start at version 1 (version 2 carries
    // a pinned-key signature, as a rotation from version 1, but it is not version 1).
    assert_eq!(
        code(verify_trust_chain(&pinned(), &chain[1..], now(), None)),
        "trust.invalid_version"
    );
    // Another pinned key refuses the whole chain: version 1 carries no signature by it (its
    // signature by its own root key is expected, so the pinned threshold is what is not met).
    assert_eq!(
        code(verify_trust_chain(
            &key("policy").public_key(),
            &chain,
            now(),
            None
        )),
        "trust.threshold_not_met"
    );
    assert_eq!(
        code(verify_trust_chain(&pinned(), &[], now(), None)),
        "trust.malformed"
    );
}

#[test]
fn expired_trust_root_is_refused() {
    let chain = common::chain_bytes();
    let after = ts("2036-01-01T00:00:00Z");
    assert_eq!(
        code(verify_trust_chain(&pinned(), &chain, after, None)),
        "trust.expired"
    );
    let verified = verify_trust_chain(&pinned(), &chain, ts("2035-12-31T23:59:59Z"), None).unwrap();
    verified
        .check_not_expired(ts("2035-12-31T23:59:59Z"))
        .unwrap();
    assert_eq!(code(verified.check_not_expired(after)), "trust.expired");
    // Only the current version must be unexpired: an expired version 1 in the chain is fine.
    let root1 = key("root-1");
    let v1 = create_trust_root(&spec(&root1, "2027-01-01T00:00:00Z"), &[&root1]).unwrap();
    let verified = verify_trust_chain(
        &pinned(),
        std::slice::from_ref(&v1),
        ts("2026-12-01T00:00:00Z"),
        None,
    )
    .unwrap();
    let v2 =
        rotate_trust_root(&verified, &spec(&root1, "2036-01-01T00:00:00Z"), &[&root1]).unwrap();
    let later = ts("2030-01-01T00:00:00Z");
    assert_eq!(
        code(verify_trust_chain(
            &pinned(),
            std::slice::from_ref(&v1),
            later,
            None
        )),
        "trust.expired"
    );
    assert_eq!(
        verify_trust_chain(&pinned(), &[v1, v2], later, None)
            .unwrap()
            .version(),
        2
    );
}

#[test]
fn older_trust_root_after_a_newer_one_is_rollback() {
    let chain = common::chain_bytes();
    let newest = verify_trust_chain(&pinned(), &chain, now(), None).unwrap();
    assert_eq!(
        code(verify_trust_chain(
            &pinned(),
            &chain[..1],
            now(),
            Some(newest.version())
        )),
        "trust.version_rollback"
    );
    assert!(verify_trust_chain(&pinned(), &chain, now(), Some(2)).is_ok());
    assert_eq!(
        code(verify_trust_chain(&pinned(), &chain, now(), Some(3))),
        "trust.version_rollback"
    );
    // Replaying version 1 as the "rotation" of version 1 is refused too.
    assert_eq!(
        code(verify_trust_chain(
            &pinned(),
            &[chain[0].clone(), chain[0].clone()],
            now(),
            None
        )),
        "trust.version_rollback"
    );
}

#[test]
fn rotation_needs_the_old_and_the_new_root_keys() {
    let (root1, root2) = (key("root-1"), key("root-2"));
    let v1 = common::chain_bytes()[0].clone();
    let verified = verify_trust_chain(&pinned(), std::slice::from_ref(&v1), now(), None).unwrap();
    // Signed only by the new key: the old root never agreed. The new root key's signature is
    // expected on a rotation, so this is a rotation below the old root's threshold.
    let new_only = rotate_trust_root(&verified, &spec(&root2, "2036-01-01T00:00:00Z"), &[&root2]);
    assert_eq!(code(new_only), "trust.threshold_not_met");
    // Signed only by the old key: the new root never agreed.
    let old_only = rotate_trust_root(&verified, &spec(&root2, "2036-01-01T00:00:00Z"), &[&root1]);
    assert_eq!(code(old_only), "trust.threshold_not_met");
    // A forged version 2 signed by a non-root key of version 1.
    let mut body = signed_part(&common::chain_bytes()[1]);
    body["expires"] = json!("2099-01-01T00:00:00Z");
    let forged = sign_with(&body, &[&key("policy"), &root2]);
    assert_eq!(
        code(verify_trust_chain(&pinned(), &[v1, forged], now(), None)),
        "trust.key_lacks_role"
    );
}

#[test]
fn empty_signatures_and_duplicate_signatures_do_not_meet_thresholds() {
    let root1 = key("root-1");
    let other = LocalSigningKey::from_seed(&[77; 32]);
    // Root role of two keys, threshold 2.
    let mut two = spec(&root1, "2036-01-01T00:00:00Z");
    two.root = RoleSpec {
        keys: vec![root1.public_key(), other.public_key()],
        threshold: 2,
    };
    let good = create_trust_root(&two, &[&root1, &other]).unwrap();
    assert!(verify_trust_chain(&pinned(), std::slice::from_ref(&good), now(), None).is_ok());
    let body = signed_part(&good);
    assert_eq!(
        code(verify_trust_chain(
            &pinned(),
            &[envelope(&body, vec![])],
            now(),
            None
        )),
        "trust.threshold_not_met"
    );
    // root-1 signs twice to reach threshold 2: refused as a duplicate before any check.
    let bytes = parmana_canon::canonicalize_value(&body).unwrap();
    let sig = root1.sign(&bytes).unwrap().to_vec();
    let id = root1.key_id().to_string();
    let twice = envelope(&body, vec![(id.clone(), sig.clone()), (id, sig)]);
    assert_eq!(
        code(verify_trust_chain(&pinned(), &[twice], now(), None)),
        "trust.duplicate_signature"
    );
    // Creating it with too few signers is refused up front.
    assert_eq!(
        code(create_trust_root(&two, &[&root1])),
        "trust.threshold_not_met"
    );
}

#[test]
fn one_key_listed_under_two_ids_is_refused() {
    // The id must be the digest of the key, so an alias id cannot be listed at all; the
    // threshold counter also counts keys by their bytes (unit test in trust_root.rs).
    let root1 = key("root-1");
    let mut body =
        signed_part(&create_trust_root(&spec(&root1, "2036-01-01T00:00:00Z"), &[&root1]).unwrap());
    let alias = format!("sha256:{}", "ab".repeat(32));
    body["keys"][alias.as_str()] = json!(root1.public_key().to_document());
    body["roles"]["root"] = json!({"keyids": [root1.key_id().to_string(), alias], "threshold": 2});
    let doc = sign_with(&body, &[&root1]);
    assert_eq!(
        code(verify_trust_chain(&pinned(), &[doc], now(), None)),
        "trust.key_id_mismatch"
    );
}

#[test]
fn malformed_trust_roots_are_refused() {
    let root1 = key("root-1");
    let base =
        signed_part(&create_trust_root(&spec(&root1, "2036-01-01T00:00:00Z"), &[&root1]).unwrap());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "threshold 0",
            Box::new(|b| b["roles"]["policy"]["threshold"] = json!(0)),
            "trust.invalid_threshold",
        ),
        (
            "threshold above keys",
            Box::new(|b| b["roles"]["policy"]["threshold"] = json!(2)),
            "trust.invalid_threshold",
        ),
        (
            "missing role",
            Box::new(|b| {
                b["roles"].as_object_mut().unwrap().remove("release");
            }),
            "trust.malformed",
        ),
        (
            "extra role",
            Box::new(|b| b["roles"]["admin"] = b["roles"]["root"].clone()),
            "trust.malformed",
        ),
        (
            "unknown field",
            Box::new(|b| b["note"] = json!("x")),
            "trust.malformed",
        ),
        (
            "role key not in keys",
            Box::new(|b| {
                b["roles"]["policy"]["keyids"] = json!([format!("sha256:{}", "cd".repeat(32))])
            }),
            "trust.malformed",
        ),
        (
            "version 0",
            Box::new(|b| b["version"] = json!(0)),
            "trust.invalid_version",
        ),
        (
            "version 2 first",
            Box::new(|b| b["version"] = json!(2)),
            "trust.invalid_version",
        ),
        (
            "bad expiry",
            Box::new(|b| b["expires"] = json!("2036-01-01")),
            "trust.malformed",
        ),
        (
            "wrong type",
            Box::new(|b| b["_type"] = json!("parmana/bundle")),
            "trust.wrong_type",
        ),
        (
            "no type",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("_type");
            }),
            "trust.wrong_type",
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut body = base.clone();
        mutate(&mut body);
        let doc = sign_with(&body, &[&root1]);
        assert_eq!(
            code(verify_trust_chain(&pinned(), &[doc], now(), None)),
            expected,
            "{name}"
        );
    }
    for raw in [
        &b"[]"[..],
        b"{}",
        b"{\"signed\":{},\"signatures\":[]}",
        b"not json",
        b"{\"signed\":1,\"signatures\":[]}",
    ] {
        assert!(
            verify_trust_chain(&pinned(), &[raw.to_vec()], now(), None).is_err(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn committed_bundles_and_release_manifest_verify() {
    let root = common::trust_root();
    let release_bytes = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    let release = verify_release_manifest(&root, &release_bytes, now(), None).unwrap();
    assert_eq!(release.version(), 1);
    assert_eq!(
        release.digest(),
        Digest::of_canonical(&signed_part(&release_bytes)).unwrap()
    );
    let dirs = common::committed_bundle_dirs();
    assert_eq!(release.policies().len(), dirs.len());
    for dir in dirs {
        let files = read_bundle_dir(&dir).unwrap();
        let bundle = verify_bundle(&root, &files).unwrap();
        assert_eq!(bundle.policy_digest(), Digest::of(&files["policy.json"]));
        assert_eq!(bundle.policy_bytes(), files["policy.json"].as_slice());
        assert_eq!(
            bundle.bundle_digest(),
            Digest::of_canonical(&signed_part(&files[BUNDLE_MANIFEST_FILE])).unwrap()
        );
        assert!(!bundle.files().contains_key(BUNDLE_MANIFEST_FILE));
        release.check_bundle(&bundle).unwrap();
    }
}

#[test]
fn bundle_files_missing_extra_or_changed_are_refused() {
    let root = common::trust_root();
    let files = common::signed_test_bundle();
    let bundle = verify_bundle(&root, &files).unwrap();
    assert_eq!(bundle.policy_ref().to_string(), "demo@1.0.0");
    assert_eq!(bundle.policy_id().as_str(), "demo");
    assert_eq!(bundle.policy_version().as_str(), "1.0.0");
    assert!(bundle.files().contains_key("data/small.json"));

    let mut missing = files.clone();
    missing.remove("data/small.json");
    assert_eq!(
        code(verify_bundle(&root, &missing)),
        "trust.bundle_file_missing"
    );
    let mut no_manifest = files.clone();
    no_manifest.remove(BUNDLE_MANIFEST_FILE);
    assert_eq!(
        code(verify_bundle(&root, &no_manifest)),
        "trust.bundle_not_signed"
    );
    let mut extra = files.clone();
    extra.insert("tests/new.json".to_owned(), b"{}".to_vec());
    assert_eq!(
        code(verify_bundle(&root, &extra)),
        "trust.bundle_file_unexpected"
    );
    let mut changed = files.clone();
    changed.get_mut("policy.json").unwrap().push(b' ');
    assert_eq!(
        code(verify_bundle(&root, &changed)),
        "trust.digest_mismatch"
    );
    let mut empty_policy = files.clone();
    empty_policy.insert("policy.json".to_owned(), Vec::new());
    assert_eq!(
        code(verify_bundle(&root, &empty_policy)),
        "trust.digest_mismatch"
    );
}

#[test]
fn bundle_signed_by_the_wrong_key_or_kind_is_refused() {
    let root = common::trust_root();
    let files = common::test_bundle_files();
    for (signer, expected) in [
        (key("release"), "trust.key_lacks_role"),
        (key("root-2"), "trust.key_lacks_role"),
        (LocalSigningKey::from_seed(&[1; 32]), "trust.unknown_key"),
    ] {
        let mut signed = files.clone();
        signed.insert(
            BUNDLE_MANIFEST_FILE.to_owned(),
            sign_bundle(&common::demo_ref(), &files, &[&signer]).unwrap(),
        );
        assert_eq!(code(verify_bundle(&root, &signed)), expected);
    }
    // Right key, wrong _type: a release manifest signed by the release key is not a bundle,
    // and a bundle manifest signed by the policy key is not a release manifest.
    let release_bytes = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    let mut as_bundle = files.clone();
    as_bundle.insert(BUNDLE_MANIFEST_FILE.to_owned(), release_bytes);
    assert_eq!(code(verify_bundle(&root, &as_bundle)), "trust.wrong_type");
    let bundle_bytes = common::signed_test_bundle()[BUNDLE_MANIFEST_FILE].clone();
    assert_eq!(
        code(verify_release_manifest(&root, &bundle_bytes, now(), None)),
        "trust.wrong_type"
    );
    // The same body with its _type rewritten and re-signed by the release key still fails.
    let mut body = signed_part(&bundle_bytes);
    body["_type"] = json!("parmana/release-manifest");
    let relabelled = sign_with(&body, &[&key("policy")]);
    assert_eq!(
        code(verify_release_manifest(&root, &relabelled, now(), None)),
        "trust.key_lacks_role"
    );
    let trust_as_bundle = common::chain_bytes()[1].clone();
    let mut t = files.clone();
    t.insert(BUNDLE_MANIFEST_FILE.to_owned(), trust_as_bundle);
    assert_eq!(code(verify_bundle(&root, &t)), "trust.wrong_type");
}

#[test]
fn unsafe_bundle_paths_are_refused() {
    let files = common::test_bundle_files();
    for bad in [
        "../x.json",
        "/etc/passwd",
        "a//b",
        "./a",
        "a\\b",
        "bundle.json",
        // The policy's tests are never signed (a legacy bundle listing one cannot be imported);
        // a top-level file named `tests` is read into a bundle like any other, and signed.
        "tests/case.json",
    ] {
        let mut with = files.clone();
        with.insert(bad.to_owned(), b"{}".to_vec());
        let signed = sign_bundle(&common::demo_ref(), &with, &[&key("policy")]);
        if bad == "bundle.json" {
            assert!(
                signed.is_ok(),
                "an existing bundle.json is ignored when signing"
            );
        } else {
            assert_eq!(code(signed), "trust.unsafe_path", "{bad}");
        }
    }
    for fine in ["tests", "tests.json", "x/tests/y.json"] {
        let mut with = files.clone();
        with.insert(fine.to_owned(), b"{}".to_vec());
        assert!(
            sign_bundle(&common::demo_ref(), &with, &[&key("policy")]).is_ok(),
            "{fine}"
        );
    }
    // Ids and versions outside the grammar cannot even be named when signing; a manifest that
    // carries one anyway (signed by hand) is refused with the code of what is wrong.
    let signed = sign_bundle(&common::demo_ref(), &files, &[&key("policy")]).unwrap();
    for (id, version, expected) in [
        ("../x", "1.0.0", "trust.invalid_policy_id"),
        ("demo", "../1", "trust.invalid_policy_version"),
        ("Demo", "1.0.0", "trust.invalid_policy_id"),
        ("demo", "", "trust.invalid_policy_version"),
        ("", "1", "trust.invalid_policy_id"),
    ] {
        assert!(
            format!("{id}@{version}")
                .parse::<parmana_canon::PolicyRef>()
                .is_err()
        );
        let mut body = signed_part(&signed);
        body["policy_id"] = json!(id);
        body["policy_version"] = json!(version);
        let mut with = files.clone();
        with.insert(
            "bundle.json".to_owned(),
            sign_with(&body, &[&key("policy")]),
        );
        assert_eq!(
            code(verify_bundle(&common::trust_root(), &with)),
            expected,
            "{id}@{version}"
        );
    }
    // A manifest that does not list policy.json.
    let mut body = signed_part(&signed);
    body["files"].as_object_mut().unwrap().remove("policy.json");
    let mut with = files.clone();
    with.remove("policy.json");
    with.insert(
        "bundle.json".to_owned(),
        sign_with(&body, &[&key("policy")]),
    );
    assert_eq!(
        code(verify_bundle(&common::trust_root(), &with)),
        "trust.policy_file_not_listed"
    );
}

#[cfg(unix)]
#[test]
fn reading_a_bundle_directory_refuses_escaping_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    std::fs::create_dir_all(bundle.join("tests")).unwrap();
    std::fs::write(bundle.join("policy.json"), b"{}").unwrap();
    std::fs::write(bundle.join("tests/t.json"), b"[]").unwrap();
    std::fs::write(dir.path().join("secret"), b"s").unwrap();
    // The top-level tests/ holds the policy's test cases: never read into (or signed with) a
    // Parmana bundle; a legacy bundle is read whole; a nested tests/ is ordinary content.
    std::fs::create_dir_all(bundle.join("data/tests")).unwrap();
    std::fs::write(bundle.join("data/tests/x.json"), b"1").unwrap();
    let files = read_bundle_dir(&bundle).unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["data/tests/x.json", "policy.json"]
    );
    assert_eq!(
        read_legacy_bundle_dir(&bundle)
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["data/tests/x.json", "policy.json", "tests/t.json"]
    );
    std::fs::remove_dir_all(bundle.join("data")).unwrap();
    // A bundle path that is a file, not a directory.
    assert_eq!(
        code(read_bundle_dir(&bundle.join("policy.json"))),
        "trust.not_a_bundle_directory"
    );
    // A link to a file inside is read; a link outside is refused.
    std::os::unix::fs::symlink(bundle.join("policy.json"), bundle.join("alias.json")).unwrap();
    assert_eq!(read_bundle_dir(&bundle).unwrap()["alias.json"], b"{}");
    std::os::unix::fs::symlink(dir.path().join("secret"), bundle.join("escape")).unwrap();
    assert_eq!(code(read_bundle_dir(&bundle)), "trust.unsafe_path");
    std::fs::remove_file(bundle.join("escape")).unwrap();
    std::os::unix::fs::symlink("../secret", bundle.join("tests/up")).unwrap();
    assert_eq!(code(read_legacy_bundle_dir(&bundle)), "trust.unsafe_path");
    std::fs::remove_file(bundle.join("tests/up")).unwrap();
    std::os::unix::fs::symlink(dir.path(), bundle.join("dirlink")).unwrap();
    assert_eq!(code(read_bundle_dir(&bundle)), "trust.unsafe_path");
    std::fs::remove_file(bundle.join("dirlink")).unwrap();
    // Signing a directory writes bundle.json, and the result verifies.
    std::fs::remove_file(bundle.join("alias.json")).unwrap();
    sign_bundle_dir(&bundle, &common::demo_ref(), &[&key("policy")]).unwrap();
    let verified =
        verify_bundle(&common::trust_root(), &read_bundle_dir(&bundle).unwrap()).unwrap();
    // tests/ is not signed: only policy.json is.
    assert_eq!(verified.files().len(), 1);
}

fn release_spec(policies: BTreeMap<PolicyRef, Digest>) -> ReleaseManifestSpec {
    ReleaseManifestSpec {
        version: 3,
        expires: ts("2030-01-01T00:00:00Z"),
        evaluator_semantics: "parmana-policy/2".to_owned(),
        minimum_runtime_version: "0.2.0".to_owned(),
        policies,
    }
}

#[test]
fn release_manifest_listing_expiry_rollback_and_runtime() {
    let root = common::trust_root();
    let bundle = verify_bundle(&root, &common::signed_test_bundle()).unwrap();
    let listed = BTreeMap::from([(common::demo_ref(), bundle.bundle_digest())]);
    let bytes = sign_release_manifest(&release_spec(listed), &[&key("release")]).unwrap();
    let release = verify_release_manifest(&root, &bytes, now(), Some(3)).unwrap();
    release.check_bundle(&bundle).unwrap();
    assert_eq!(release.evaluator_semantics(), "parmana-policy/2");
    assert_eq!(release.minimum_runtime_version(), "0.2.0");

    let wrong = BTreeMap::from([(common::demo_ref(), Digest::of(b"other"))]);
    let bytes_wrong = sign_release_manifest(&release_spec(wrong), &[&key("release")]).unwrap();
    let release_wrong = verify_release_manifest(&root, &bytes_wrong, now(), None).unwrap();
    assert_eq!(
        code(release_wrong.check_bundle(&bundle)),
        "trust.not_in_release_manifest"
    );
    let other = BTreeMap::from([("demo@2.0.0".parse().unwrap(), bundle.bundle_digest())]);
    let bytes_other = sign_release_manifest(&release_spec(other), &[&key("release")]).unwrap();
    let release_other = verify_release_manifest(&root, &bytes_other, now(), None).unwrap();
    assert_eq!(
        code(release_other.check_bundle(&bundle)),
        "trust.not_in_release_manifest"
    );

    assert_eq!(
        code(verify_release_manifest(
            &root,
            &bytes,
            ts("2030-01-01T00:00:00Z"),
            None
        )),
        "trust.expired"
    );
    assert_eq!(
        code(release.check_not_expired(ts("2030-01-01T00:00:00Z"))),
        "trust.expired"
    );
    release
        .check_not_expired(ts("2029-12-31T23:59:59Z"))
        .unwrap();
    assert_eq!(
        code(verify_release_manifest(&root, &bytes, now(), Some(4))),
        "trust.version_rollback"
    );
    assert_eq!(
        code(verify_release_manifest(
            &root,
            &sign_release_manifest(&release_spec(BTreeMap::new()), &[&key("policy")]).unwrap(),
            now(),
            None
        )),
        "trust.key_lacks_role"
    );

    release.check_runtime("parmana-policy/2", "0.2.0").unwrap();
    release.check_runtime("parmana-policy/2", "1.0.0").unwrap();
    for (semantics, version) in [
        ("parmana-policy/2", "0.1.9"),
        ("parmana-policy/1", "0.2.0"),
        ("parmana-policy/2", "0.2"),
    ] {
        assert_eq!(
            code(release.check_runtime(semantics, version)),
            "trust.runtime_incompatible"
        );
    }
    let mut bad = release_spec(BTreeMap::new());
    bad.minimum_runtime_version = "latest".to_owned();
    assert_eq!(
        code(sign_release_manifest(&bad, &[&key("release")])),
        "trust.malformed"
    );
    // A name that is not <id>@<version> cannot be put in a spec; signed by hand, it is
    // refused with its own code.
    assert!("demo".parse::<PolicyRef>().is_err());
    let mut body = signed_part(&bytes);
    body["policies"] = json!({"demo": bundle.bundle_digest().to_string()});
    assert_eq!(
        code(verify_release_manifest(
            &root,
            &sign_with(&body, &[&key("release")]),
            now(),
            None
        )),
        "trust.invalid_policy_ref"
    );
}

#[test]
fn empty_signature_lists_are_refused_for_every_kind() {
    let root = common::trust_root();
    let mut files = common::signed_test_bundle();
    let body = signed_part(&files[BUNDLE_MANIFEST_FILE]);
    files.insert(BUNDLE_MANIFEST_FILE.to_owned(), envelope(&body, vec![]));
    assert_eq!(
        code(verify_bundle(&root, &files)),
        "trust.threshold_not_met"
    );
    let release = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    let unsigned = envelope(&signed_part(&release), vec![]);
    assert_eq!(
        code(verify_release_manifest(&root, &unsigned, now(), None)),
        "trust.threshold_not_met"
    );
}

/// One line per refusal class, as a user sees it (`error[code]: message`).
#[test]
fn error_messages_snapshot() {
    let root = common::trust_root();
    let chain = common::chain_bytes();
    let release = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    let files = common::signed_test_bundle();
    let bundle = verify_bundle(&root, &files).unwrap();
    let mut missing = files.clone();
    missing.remove("data/small.json");
    let mut changed = files.clone();
    changed.insert("policy.json".to_owned(), b"{}".to_vec());
    let mut wrong_key = common::test_bundle_files();
    wrong_key.insert(
        BUNDLE_MANIFEST_FILE.to_owned(),
        sign_bundle(&common::demo_ref(), &wrong_key, &[&key("release")]).unwrap(),
    );
    let results: Vec<Result<(), TrustError>> = vec![
        verify_trust_chain(&pinned(), &chain, ts("2036-01-02T00:00:00Z"), None).map(drop),
        verify_trust_chain(&pinned(), &chain[..1], now(), Some(2)).map(drop),
        verify_trust_chain(&key("policy").public_key(), &chain, now(), None).map(drop),
        verify_bundle(&root, &wrong_key).map(drop),
        verify_bundle(&root, &missing).map(drop),
        verify_bundle(&root, &changed).map(drop),
        verify_release_manifest(&root, &chain[1], now(), None).map(drop),
        verify_release_manifest(&root, &release, now(), None)
            .unwrap()
            .check_bundle(&bundle),
        verify_release_manifest(&root, &release, now(), None)
            .unwrap()
            .check_runtime("parmana-policy/1", "0.1.0"),
        verify_release_manifest(&root, b"{\"signed\": {}}", now(), None).map(drop),
    ];
    let lines: Vec<String> = results
        .into_iter()
        .map(|r| {
            let e = r.unwrap_err();
            format!("error[{}]: {e}", e.code())
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}
