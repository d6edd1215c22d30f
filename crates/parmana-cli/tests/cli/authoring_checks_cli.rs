//! Authoring refuses, before writing anything, what `execute` would refuse later: keys without the role (bundle sign, import-legacy, release sign), release directories that claim one name twice or another name, a release version not above the one it replaces, an existing manifest without --force, and weak or non-canonical public keys in key files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::common::{
    NOW, Run, copy_tree, fixture_rotate, fixture_rotate_to_2031, legacy_bundles, release_sign,
    run_in, temp_repo,
};

/// Every file under `dir` with its bytes: equal before and after means nothing was written.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    parmana_testkit::files_under(dir)
        .unwrap()
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Runs `args` in `dir`, expects exit `exit` with `error[code]`, and that no file changed.
fn refused(dir: &Path, args: &[&str], exit: i32, code: &str) -> Run {
    let before = tree(dir);
    let out = run_in(dir, args, b"");
    assert_eq!(out.code, exit, "{args:?}\n{}", out.transcript());
    // The error is the last line (`bundle sign` reports its checks and tests first).
    assert!(
        out.stderr
            .lines()
            .last()
            .is_some_and(|line| line.starts_with(&format!("error[{code}]"))),
        "{args:?}\n{}",
        out.transcript()
    );
    assert!(before == tree(dir), "{args:?} changed files");
    out
}

/// `bundle sign` of the claims bundle with the policy key.
const BUNDLE_SIGN: &[&str] = &[
    "bundle",
    "sign",
    "policies/claims-approval/1.0.0",
    "--key",
    "trust/keys/policy.pem",
    "--now",
    NOW,
];

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args, b"");
    assert_eq!(out.code, 0, "{args:?}\n{}", out.transcript());
    out.stdout
}

/// Each authoring command with a key of another role, and with a key the trust root does not
/// know: refused with the code `execute` would give, exit 4, and not one file written.
#[test]
fn keys_without_the_role_are_refused_before_anything_is_written() {
    let repo = temp_repo();
    let d = repo.root();
    copy_tree(&legacy_bundles(), &d.join("legacy"));
    ok(d, &["keygen", "--out", "stranger.pem"]);
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "trust/keys/release.pem",
            &["bundle", "sign", "policies/claims-approval/1.0.0"],
            "trust.key_lacks_role",
        ),
        (
            "trust/keys/attestation.pem",
            &["bundle", "sign", "policies/claims-approval/1.0.0"],
            "trust.key_lacks_role",
        ),
        (
            "stranger.pem",
            &["bundle", "sign", "policies/claims-approval/1.0.0"],
            "trust.unknown_key",
        ),
        (
            "trust/keys/release.pem",
            &[
                "bundle",
                "import-legacy",
                "legacy/claims-approval/v1",
                "--legacy-key",
                "legacy/legacy-bundle-signing.pub",
                "--out",
                "policies/claims-approval/v1",
            ],
            "trust.key_lacks_role",
        ),
        (
            "stranger.pem",
            &[
                "bundle",
                "import-legacy",
                "legacy/claims-approval/v1",
                "--legacy-key",
                "legacy/legacy-bundle-signing.pub",
                "--out",
                "policies/claims-approval/v1",
            ],
            "trust.unknown_key",
        ),
        (
            "trust/keys/policy.pem",
            &[
                "release",
                "sign",
                "--version",
                "2",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--force",
            ],
            "trust.key_lacks_role",
        ),
        (
            "trust/keys/root-2.pem",
            &[
                "release",
                "sign",
                "--version",
                "2",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--out",
                "new-manifest.json",
            ],
            "trust.key_lacks_role",
        ),
        (
            "stranger.pem",
            &[
                "release",
                "sign",
                "--version",
                "2",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--force",
            ],
            "trust.unknown_key",
        ),
    ];
    for (key, command, code) in cases {
        let mut args = command.to_vec();
        args.extend(["--key", key, "--now", NOW]);
        let out = refused(d, &args, 4, code);
        assert!(
            out.stderr.contains(key),
            "the message names the key file: {}",
            out.stderr
        );
    }
    assert!(!d.join("policies/claims-approval/v1").exists());
    assert!(!d.join("new-manifest.json").exists());
}

/// A policy role with threshold 2: one key alone cannot sign a bundle `execute` would accept,
/// so `bundle sign` refuses it rather than writing it.
#[test]
fn a_bundle_one_key_cannot_make_valid_is_not_written() {
    let repo = temp_repo();
    let d = repo.root();
    ok(d, &["keygen", "--out", "trust/keys/policy-2.pem"]);
    ok(
        d,
        &fixture_rotate_to_2031(
            "trust/keys/root-2.pem",
            &[
                "--policy-key",
                "trust/keys/policy-2.pub",
                "--policy-threshold",
                "2",
            ],
        ),
    );
    refused(d, BUNDLE_SIGN, 4, "trust.threshold_not_met");
}

/// A rotation that does not give a role's threshold keeps the one in force (a rotation made to
/// replace one key lowered a 2-of-2 quorum to 1 unsaid): refused when fewer keys are listed,
/// and a threshold given lower is said.
#[test]
fn a_rotation_keeps_the_thresholds_in_force_unless_given() {
    let repo = temp_repo();
    let d = repo.root();
    ok(d, &["keygen", "--out", "trust/keys/policy-2.pem"]);
    let both_keys = ["--policy-key", "trust/keys/policy-2.pub"];
    let rotate = |extra: &[&str]| {
        let mut args = both_keys.to_vec();
        args.extend_from_slice(extra);
        run_in(
            d,
            &fixture_rotate_to_2031("trust/keys/root-2.pem", &args),
            b"",
        )
    };
    let policy_threshold = || {
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("trust/trust-root.json")).unwrap())
                .unwrap();
        document["signed"]["roles"]["policy"]["threshold"].clone()
    };
    let raised = rotate(&["--policy-threshold", "2"]);
    assert_eq!(raised.code, 0, "{}", raised.transcript());
    // Both keys again, no threshold given: 2 stays.
    let kept = rotate(&[]);
    assert_eq!(kept.code, 0, "{}", kept.transcript());
    assert_eq!(policy_threshold(), 2);
    // One key, no threshold given: 2 cannot be met, refused, nothing written.
    let out = refused(
        d,
        &fixture_rotate_to_2031("trust/keys/root-2.pem", &[]),
        2,
        "cli.usage",
    );
    assert!(
        out.stderr
            .contains("the policy threshold of trust root version 4 is 2")
            && out.stderr.contains("give --policy-threshold"),
        "{}",
        out.transcript()
    );
    // Given lower: taken, and said.
    let lowered = rotate(&["--policy-threshold", "1"]);
    assert_eq!(lowered.code, 0, "{}", lowered.transcript());
    assert!(
        lowered
            .stderr
            .contains("note: the policy threshold goes down from 2 (trust root version 4) to 1"),
        "{}",
        lowered.transcript()
    );
    assert_eq!(policy_threshold(), 1);
}

/// `cp -R 1.0.0 2.0.0` without changing `policy_version`: both directories claim
/// `claims-approval@1.0.0`. Refused, naming both, instead of listing one of them.
#[test]
fn two_directories_claiming_one_policy_are_refused() {
    let repo = temp_repo();
    let d = repo.root();
    let policies = d.join("policies/claims-approval");
    copy_tree(&policies.join("1.0.0"), &policies.join("2.0.0"));
    let out = refused(
        d,
        &release_sign("2", &["--force"]),
        4,
        "cli.duplicate_policy",
    );
    for dir in ["claims-approval/1.0.0", "claims-approval/2.0.0"] {
        assert!(out.stderr.contains(dir), "{}", out.stderr);
    }
    // Signing the copy is refused: its policy still names itself 1.0.0.
    refused(
        d,
        &[
            "bundle",
            "sign",
            "policies/claims-approval/2.0.0",
            "--key",
            "trust/keys/policy.pem",
            "--now",
            NOW,
        ],
        3,
        "cli.bundle_directory_mismatch",
    );
    refused(
        d,
        &release_sign("2", &["--force"]),
        4,
        "cli.duplicate_policy",
    );
}

/// A staging directory an interrupted `bundle import-legacy` left beside the bundles
/// (`.VERSION.import.PID-NANOS.tmp`, here holding a copy of a bundle) is no bundle of the
/// release: `release sign` passes over it, as `policy check` does (it refused every release).
#[test]
fn a_staging_directory_left_by_an_interrupted_import_is_no_bundle() {
    let repo = temp_repo();
    let d = repo.root();
    let policies = d.join("policies/claims-approval");
    copy_tree(
        &policies.join("1.0.0"),
        &policies.join(".1.0.0.import.4242-17.tmp"),
    );
    let out = run_in(d, &release_sign("2", &["--force"]), b"");
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(!out.stdout.contains(".import."), "{}", out.stdout);
}

/// A directory whose `<id>/<version>` is not the name its bundle, or its policy, declares.
#[test]
fn a_directory_named_for_another_policy_is_refused() {
    let repo = temp_repo();
    let d = repo.root();
    let policies = d.join("policies/claims-approval");
    std::fs::rename(policies.join("1.0.0"), policies.join("2.0.0")).unwrap();
    let out = refused(
        d,
        &release_sign("2", &["--force"]),
        4,
        "runtime.policy_identity_mismatch",
    );
    assert!(
        out.stderr.contains("claims-approval@2.0.0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("claims-approval@1.0.0"),
        "{}",
        out.stderr
    );

    // The bundle signed under the directory's name, the policy still naming 1.0.0.
    let now = parmana_runtime::canon::Timestamp::parse(NOW).unwrap();
    let trust_root = parmana_runtime::load_trust_root(
        &d.join("trust/root.pub"),
        &d.join("trust/trust-root.json"),
        now,
    )
    .unwrap();
    let dir = policies.join("2.0.0");
    let files = parmana_runtime::trust::read_bundle_dir(&dir).unwrap();
    let key =
        parmana_runtime::trust::LocalSigningKey::read_pem_file(&repo.key_path("policy")).unwrap();
    let name = "claims-approval@2.0.0".parse().unwrap();
    let bundle = parmana_runtime::sign_bundle_verified(&trust_root, &name, &files, &key).unwrap();
    std::fs::write(dir.join("bundle.json"), bundle).unwrap();
    let out = refused(
        d,
        &release_sign("2", &["--force"]),
        4,
        "runtime.policy_identity_mismatch",
    );
    assert!(
        out.stderr.contains("declares claims-approval@1.0.0"),
        "{}",
        out.stderr
    );
}

/// The manifest `--out` replaces: only with --force, only by a higher version, and only when
/// its version can be read. A manifest born expired is not written.
#[test]
fn a_release_manifest_is_replaced_only_by_a_higher_version_with_force() {
    let repo = temp_repo();
    let d = repo.root();
    // The fixture manifest is version 1.
    refused(d, &release_sign("2", &[]), 1, "cli.output_exists");
    refused(
        d,
        &release_sign("1", &["--force"]),
        3,
        "cli.version_not_higher",
    );
    refused(
        d,
        &release_sign("0", &["--force"]),
        3,
        "cli.version_not_higher",
    );
    ok(d, &release_sign("2", &["--force"]));
    refused(
        d,
        &release_sign("2", &["--force"]),
        3,
        "cli.version_not_higher",
    );
    ok(d, &release_sign("3", &["--force"]));
    // A new file needs no --force, whatever its version.
    ok(d, &release_sign("1", &["--out", "other-manifest.json"]));
    // A manifest born expired is refused before it is written.
    let mut expired = release_sign("4", &["--force"]);
    expired[7] = "2026-01-01T00:00:00Z";
    refused(d, &expired, 2, "cli.expires_in_past");
    // What --out holds must read as a release manifest, or nothing is replaced.
    for (content, code) in [
        (&b"not json"[..], "trust.malformed"),
        (
            b"{\"signed\":{\"_type\":\"parmana/bundle\"},\"signatures\":[]}",
            "trust.wrong_type",
        ),
    ] {
        std::fs::write(d.join("release-manifest.json"), content).unwrap();
        refused(d, &release_sign("9", &["--force"]), 4, code);
    }
    let trust_root = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    std::fs::write(d.join("release-manifest.json"), trust_root).unwrap();
    refused(d, &release_sign("9", &["--force"]), 4, "trust.wrong_type");
}

/// SPKI PEM of 32 raw public-key bytes (RFC 8410's DER prefix, then the bytes).
fn spki_pem(raw: [u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        BASE64.encode(der)
    )
}

/// `trust init` with a small-order or a non-canonical public key file: refused with the key's
/// own code (the full table of encodings is `parmana-trust`'s `tests/key_encodings.rs`).
#[test]
fn trust_init_refuses_weak_and_non_canonical_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["keygen", "--out", "keys/root.pem"]);
    ok(d, &["keygen", "--out", "keys/other.pem"]);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut y_plus_p = [0xff; 32];
    y_plus_p[0] = 0xf0;
    y_plus_p[31] = 0x7f;
    for (raw, code) in [
        (identity, "trust.weak_public_key"),
        (y_plus_p, "trust.non_canonical_public_key"),
    ] {
        std::fs::write(d.join("keys/bad.pub"), spki_pem(raw)).unwrap();
        let out = refused(
            d,
            &[
                "trust",
                "init",
                "--root-key",
                "keys/root.pem",
                "--policy-key",
                "keys/bad.pub",
                "--release-key",
                "keys/other.pub",
                "--attestation-key",
                "keys/other.pub",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--out",
                "trust",
            ],
            4,
            code,
        );
        assert!(out.stderr.contains("keys/bad.pub"), "{}", out.stderr);
        assert!(!d.join("trust").exists());
    }
}

#[test]
fn a_wrong_sign_with_names_the_root_keys_that_may_sign() {
    let repo = temp_repo();
    let d = repo.root();
    let out = refused(
        d,
        &fixture_rotate(
            "trust/keys/policy.pem",
            &[
                "--attestation-key",
                "trust/keys/attestation.pub",
                "--expires",
                "2036-01-01T00:00:00Z",
                "--now",
                NOW,
            ],
        ),
        4,
        "trust.key_lacks_role",
    );
    insta::assert_snapshot!("rotate_wrong_sign_with", out.stderr);
}

/// A kill during `bundle sign` leaves the temporary file of `bundle.json` in the bundle: the
/// bundle is then refused, naming it, and signing again removes it instead of signing it in.
#[test]
fn signing_again_clears_what_an_interrupted_sign_left() {
    let repo = temp_repo();
    let d = repo.root();
    let bundle = d.join("policies/claims-approval/1.0.0");
    let leftover = bundle.join(".bundle.json.4294967295-1.tmp");
    std::fs::write(&leftover, b"{\"half\":").unwrap();
    let execute = [
        "execute",
        "--policy",
        "claims-approval@1.0.0",
        "--signals",
        r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#,
        "--store",
        "memory",
        "--now",
        NOW,
    ];
    let out = run_in(d, &execute, b"");
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.contains("trust.bundle_file_unexpected")
            && out.stderr.contains("interrupted write: remove it"),
        "{}",
        out.transcript()
    );
    ok(d, BUNDLE_SIGN);
    assert!(!leftover.exists());
    let listed = std::fs::read_to_string(bundle.join("bundle.json")).unwrap();
    assert!(!listed.contains(".tmp"), "{listed}");
}

/// Two `release sign --force` runs in one directory take turns, from the check of what `--out`
/// holds to its replacement: a run waits while another holds the directory, and then replaces
/// only what it checked (two could otherwise both replace version 1, the later rolling the
/// earlier's higher version back).
#[cfg(unix)]
#[test]
fn release_signers_in_one_directory_take_turns() {
    let repo = temp_repo();
    let d = repo.root();
    // Another signer holds the directory.
    let out = crate::common::run_waiting_for_lock(d, d, &release_sign("2", &["--force"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
