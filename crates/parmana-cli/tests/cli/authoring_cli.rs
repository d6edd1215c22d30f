//! Authoring through the real binary: keygen, trust init/rotate, bundle sign, release sign, import-legacy — then execute under the new chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::Path;

use crate::common::{
    NOW, copy_tree, execute_vip, fixture_rotate, fixture_rotate_to_2031, legacy_bundles,
    legacy_js_bundles, release_sign, repo_root, run_in, temp_repo,
};

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args, b"");
    assert_eq!(out.code, 0, "{args:?}\n{}", out.transcript());
    out.stdout
}

#[test]
fn a_new_chain_from_keygen_to_a_verified_execution_and_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["root", "root-2", "policy", "release", "attestation"] {
        let out = ok(d, &["keygen", "--out", &format!("trust/keys/{name}.pem")]);
        assert!(
            out.starts_with("sha256:") && out.trim_end().len() == 71,
            "{out}"
        );
    }
    // keygen never overwrites a key.
    let again = run_in(d, &["keygen", "--out", "trust/keys/root.pem"], b"");
    assert_eq!(again.code, 1, "{}", again.transcript());
    assert!(
        again.stderr.starts_with("error[cli.output_exists]"),
        "{}",
        again.stderr
    );

    ok(
        d,
        &[
            "trust",
            "init",
            "--root-key",
            "trust/keys/root.pem",
            "--policy-key",
            "trust/keys/policy.pub",
            "--release-key",
            "trust/keys/release.pub",
            "--attestation-key",
            "trust/keys/attestation.pub",
            "--expires",
            "2030-01-01T00:00:00Z",
            "--out",
            "trust",
        ],
    );
    assert!(d.join("trust/root.pub").is_file() && d.join("trust/trust-root.json").is_file());

    let bundle = d.join("policies/claims-approval/1.0.0");
    std::fs::create_dir_all(&bundle).unwrap();
    let source = repo_root().join("policies/claims-approval/1.0.0");
    std::fs::copy(source.join("policy.json"), bundle.join("policy.json")).unwrap();
    copy_tree(&source.join("tests"), &bundle.join("tests"));
    let signed = ok(
        d,
        &[
            "bundle",
            "sign",
            "policies/claims-approval/1.0.0",
            "--key",
            "trust/keys/policy.pem",
        ],
    );
    assert!(
        signed.starts_with("claims-approval@1.0.0 sha256:"),
        "{signed}"
    );

    let release = parmana_testkit::release_sign_args("1", "2030-01-01T00:00:00Z");
    let released = ok(d, &[&release[..], &["--now", NOW]].concat());
    assert!(released.contains("with 1 policy"), "{released}");

    // The standard layout under the temp dir: no path flags needed.
    let execute = |id: &str| {
        ok(
            d,
            &execute_vip(&["--execution-id", id, "--store", "memory", "--now", NOW]),
        )
    };
    let attestation = execute("new-chain-1");
    let verified = run_in(d, &["verify", "-", "--now", NOW], attestation.as_bytes());
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    assert!(
        verified.stdout.contains("trust root version 1"),
        "{}",
        verified.stdout
    );

    // The repository's own chain does not accept it: another trust root.
    let foreign = run_in(
        &repo_root(),
        &["verify", "-", "--now", NOW],
        attestation.as_bytes(),
    );
    assert_eq!(foreign.code, 7, "{}", foreign.transcript());

    // A wrong signer for the bundle (the release key) is refused when signing, before
    // anything is written (authoring_checks_cli.rs covers every command).
    let signed_bundle =
        std::fs::read(d.join("policies/claims-approval/1.0.0/bundle.json")).unwrap();
    let wrong = run_in(
        d,
        &[
            "bundle",
            "sign",
            "policies/claims-approval/1.0.0",
            "--key",
            "trust/keys/release.pem",
        ],
        b"",
    );
    assert_eq!(wrong.code, 4, "{}", wrong.transcript());
    assert!(
        wrong.stderr.starts_with("error[trust.key_lacks_role]"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        std::fs::read(d.join("policies/claims-approval/1.0.0/bundle.json")).unwrap(),
        signed_bundle
    );

    // Rotate the root role to root-2: signed by version 1's root key and the new one.
    let rotated = ok(d, &fixture_rotate_to_2031("trust/keys/root.pem", &[]));
    assert!(rotated.starts_with("trust root version 2"), "{rotated}");
    assert!(d.join("trust/trust-root.d/1.json").is_file());
    let attestation = execute("new-chain-2");
    let verified = run_in(d, &["verify", "-", "--now", NOW], attestation.as_bytes());
    assert_eq!(verified.code, 0, "{}", verified.transcript());
    assert!(
        verified.stdout.contains("trust root version 2"),
        "{}",
        verified.stdout
    );

    // A rotation not signed by the previous root key is refused.
    let unsigned = run_in(
        d,
        &[
            "trust",
            "rotate",
            "--root-key",
            "trust/keys/root.pem",
            "--policy-key",
            "trust/keys/policy.pub",
            "--release-key",
            "trust/keys/release.pub",
            "--attestation-key",
            "trust/keys/attestation.pub",
            "--expires",
            "2031-01-01T00:00:00Z",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(unsigned.code, 4, "{}", unsigned.transcript());
}

#[test]
fn import_legacy_v1_then_release_and_execute_it() {
    let repo = temp_repo();
    let d = repo.root();
    copy_tree(&legacy_bundles(), &d.join("legacy"));
    let imported = run_in(
        d,
        &[
            "bundle",
            "import-legacy",
            "legacy/claims-approval/v1",
            "--legacy-key",
            "legacy/legacy-bundle-signing.pub",
            "--key",
            "trust/keys/policy.pem",
            "--out",
            "policies/claims-approval/v1",
        ],
        b"",
    );
    insta::assert_snapshot!("import_legacy_v1", imported.transcript());
    assert_eq!(
        std::fs::read(d.join("policies/claims-approval/v1/policy.json")).unwrap(),
        std::fs::read(d.join("legacy/claims-approval/v1/policy.json")).unwrap(),
        "policy.json is kept byte for byte"
    );
    // Not released yet.
    let signals = r#"{"insurance_active":true,"risk_score":42,"vip_customer":false}"#;
    let execute = |id: &str| {
        run_in(
            d,
            &[
                "execute",
                "--policy",
                "claims-approval@v1",
                "--signals",
                signals,
                "--execution-id",
                id,
                "--store",
                "memory",
                "--now",
                NOW,
            ],
            b"",
        )
    };
    let unreleased = execute("legacy-1");
    assert_eq!(unreleased.code, 3, "{}", unreleased.transcript());
    assert!(
        unreleased
            .stderr
            .starts_with("error[runtime.policy_not_found]"),
        "{}",
        unreleased.transcript()
    );
    ok(d, &release_sign("2", &["--force"]));
    let out = execute("legacy-2");
    assert_eq!(out.code, 0, "{}", out.transcript());
    let report = run_in(
        d,
        &["--format", "json", "verify", "-", "--now", NOW],
        out.stdout.as_bytes(),
    );
    assert_eq!(report.code, 0, "{}", report.transcript());
    let value: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(value["predicate"]["decision"], "approve");
    assert_eq!(value["predicate"]["policy"]["version"], "v1");
}

#[test]
fn import_legacy_refuses_the_v2_skeleton_and_a_wrong_legacy_key() {
    let dir = temp_repo();
    let d = dir.root();
    copy_tree(&legacy_bundles(), &d.join("legacy"));
    std::fs::copy(d.join("trust/keys/policy.pem"), d.join("policy.pem")).unwrap();
    std::fs::copy(d.join("trust/keys/policy.pub"), d.join("other.pub")).unwrap();
    let skeleton = run_in(
        d,
        &[
            "bundle",
            "import-legacy",
            "legacy/claims-approval/v2",
            "--legacy-key",
            "legacy/legacy-bundle-signing.pub",
            "--key",
            "policy.pem",
            "--out",
            "out",
        ],
        b"",
    );
    insta::assert_snapshot!("import_legacy_v2", skeleton.transcript());
    assert!(
        !d.join("out").exists(),
        "nothing is written for a refused bundle"
    );
    let wrong_key = run_in(
        d,
        &[
            "bundle",
            "import-legacy",
            "legacy/claims-approval/v1",
            "--legacy-key",
            "other.pub",
            "--key",
            "policy.pem",
            "--out",
            "out",
        ],
        b"",
    );
    insta::assert_snapshot!("import_legacy_wrong_key", wrong_key.transcript());
}

/// A schema 1.0.0 bundle (signed by JavaScript) whose signals are named `"10"`, `"9"`, `"é"`,
/// `""`, `"\u0000"`, … is imported, released and executed: each case of its `cases.json` decides
/// as the JavaScript re-enactment of the original did.
#[test]
fn import_legacy_names_of_any_json_string_then_execute_them() {
    let repo = temp_repo();
    let d = repo.root();
    copy_tree(&legacy_js_bundles(), &d.join("legacy"));
    let imported = run_in(
        d,
        &[
            "bundle",
            "import-legacy",
            "legacy/legacy-names/v1",
            "--legacy-key",
            "legacy/legacy-js-signing.pub",
            "--key",
            "trust/keys/policy.pem",
            "--out",
            "policies/legacy-names/v1",
        ],
        b"",
    );
    insta::assert_snapshot!("import_legacy_names", imported.transcript());
    ok(d, &release_sign("2", &["--force"]));
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(d.join("legacy/legacy-names/cases.json")).unwrap())
            .unwrap();
    for (i, case) in cases.iter().enumerate() {
        let signals = case["signals"].to_string();
        let out = run_in(
            d,
            &[
                "execute",
                "--policy",
                "legacy-names@v1",
                "--signals",
                &signals,
                "--execution-id",
                &format!("legacy-names-{i}"),
                "--store",
                "memory",
                "--now",
                NOW,
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{signals}\n{}", out.transcript());
        let report = run_in(
            d,
            &["--format", "json", "verify", "-", "--now", NOW],
            out.stdout.as_bytes(),
        );
        assert_eq!(report.code, 0, "{}", report.transcript());
        let value: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        assert_eq!(
            value["predicate"]["decision"], case["decision"],
            "{signals}"
        );
    }
}

/// The original's canonical form drops a `__proto__` member, so its signature never covered
/// one: such a bundle is refused, and nothing is written.
#[test]
fn import_legacy_refuses_a_proto_member_no_signature_covers() {
    let dir = temp_repo();
    let d = dir.root();
    copy_tree(&legacy_js_bundles(), &d.join("legacy"));
    std::fs::copy(d.join("trust/keys/policy.pem"), d.join("policy.pem")).unwrap();
    let refused = run_in(
        d,
        &[
            "bundle",
            "import-legacy",
            "legacy/legacy-proto/v1",
            "--legacy-key",
            "legacy/legacy-js-signing.pub",
            "--key",
            "policy.pem",
            "--out",
            "out",
        ],
        b"",
    );
    insta::assert_snapshot!("import_legacy_proto", refused.transcript());
    assert!(!d.join("out").exists());
}

/// An `attestation` role with threshold 2: one `--key` is refused before the id is consumed
/// (`runtime.signers_below_threshold`, exit 4), two `--key`s sign an attestation that verifies,
/// and the id refused first is still free.
#[test]
fn a_threshold_of_two_attestation_keys_is_met_before_anything_is_consumed() {
    let dir = temp_repo();
    let d = dir.root();
    ok(d, &["keygen", "--out", "trust/keys/attestation-2.pem"]);
    let rotated = ok(
        d,
        &fixture_rotate(
            "trust/keys/root-2.pem",
            &[
                "--attestation-key",
                "trust/keys/attestation.pub",
                "--attestation-key",
                "trust/keys/attestation-2.pub",
                "--attestation-threshold",
                "2",
                "--expires",
                "2031-01-01T00:00:00Z",
                "--now",
                NOW,
            ],
        ),
    );
    assert!(rotated.starts_with("trust root version 3"), "{rotated}");
    let execute = |keys: &[&str]| {
        let mut args = vec![
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            crate::common::README_SIGNALS,
            "--execution-id",
            "two-keys",
            "--now",
            NOW,
        ];
        for key in keys {
            args.extend(["--key", key]);
        }
        run_in(d, &args, b"")
    };
    let one = execute(&["trust/keys/attestation.pem"]);
    assert_eq!(one.code, 4, "{}", one.transcript());
    assert!(
        one.stderr
            .starts_with("error[runtime.signers_below_threshold]"),
        "{}",
        one.stderr
    );
    let both = execute(&["trust/keys/attestation.pem", "trust/keys/attestation-2.pem"]);
    assert_eq!(both.code, 0, "{}", both.transcript());
    let verified = run_in(d, &["verify", "-", "--now", NOW], both.stdout.as_bytes());
    assert_eq!(verified.code, 0, "{}", verified.transcript());
}

/// `trust rotate` replaces only the file of the version in force: naming an archived version
/// (which the chain is read around) or the directory is refused, and the chain is left exactly as
/// it was — before, an archived `1.json` was overwritten with the new version and the chain
/// broken, with exit 0. `keygen --out k.pub` is refused: both halves would be one file.
#[test]
fn rotate_refuses_anything_but_the_current_file_and_keygen_a_pub_out() {
    let repo = temp_repo();
    let d = repo.root();
    let before = std::fs::read(d.join("trust/trust-root.d/1.json")).unwrap();
    let current = std::fs::read(d.join("trust/trust-root.json")).unwrap();
    // A directory of numbered files only (a chain an auditor was given): its newest file is
    // read as the chain's, but replacing it would break that chain.
    std::fs::create_dir(d.join("chain")).unwrap();
    std::fs::write(d.join("chain/1.json"), &before).unwrap();
    std::fs::write(d.join("chain/2.json"), &current).unwrap();
    // (what is named, what the refusal says): `trust-root.d` is read with the current file
    // beside it, as its files are.
    for (named, says) in [
        (
            "trust/trust-root.d/1.json",
            "not the file of the trust root in force",
        ),
        ("trust", "not the file of the trust root in force"),
        (
            "trust/trust-root.d",
            "not the file of the trust root in force",
        ),
        ("chain/2.json", "not the file of the trust root in force"),
    ] {
        let out = run_in(
            d,
            &fixture_rotate_to_2031("trust/keys/root-2.pem", &["--trust-root", named]),
            b"",
        );
        assert_ne!(out.code, 0, "{named}: {}", out.transcript());
        assert!(out.stderr.contains(says), "{named}: {}", out.transcript());
        assert_eq!(
            std::fs::read(d.join("trust/trust-root.d/1.json")).unwrap(),
            before,
            "{named}"
        );
        assert_eq!(
            std::fs::read(d.join("trust/trust-root.json")).unwrap(),
            current,
            "{named}"
        );
        assert!(
            !d.join("trust/trust-root.d/trust-root.d").exists(),
            "{named}"
        );
        assert_eq!(std::fs::read(d.join("chain/2.json")).unwrap(), current);
        assert!(!d.join("chain/trust-root.d").exists(), "{named}");
    }
    let keygen = run_in(d, &["keygen", "--out", "new-key.pub"], b"");
    assert_eq!(keygen.code, 2, "{}", keygen.transcript());
    assert!(!d.join("new-key.pub").exists());
}

/// One rotation at a time: a rotation waits while another holds the chain's directory (two at
/// once both printed success, and the last write won).
#[test]
fn a_rotation_waits_for_the_one_before_it() {
    let repo = temp_repo();
    let d = repo.root();
    let out = crate::common::run_waiting_for_lock(
        d,
        &d.join("trust"),
        &fixture_rotate_to_2031("trust/keys/root-2.pem", &[]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `release sign` writes the deployment's release manifest and reads its policies where every
/// other command finds them (flag, variable, `parmana.toml`, default): with
/// `PARMANA_RELEASE_MANIFEST` naming another file it writes that one, and leaves the file in the
/// current directory alone — before, it always wrote `./release-manifest.json`.
#[test]
fn release_sign_writes_the_manifest_the_deployment_names() {
    let repo = temp_repo();
    let d = repo.root();
    let kept = std::fs::read(d.join("release-manifest.json")).unwrap();
    let out = crate::common::run_with_env(
        d,
        &release_sign("2", &[]),
        b"",
        &[("PARMANA_RELEASE_MANIFEST", "elsewhere.json")],
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(out.stdout.contains("written to"), "{}", out.stdout);
    assert!(d.join("elsewhere.json").is_file());
    assert_eq!(
        std::fs::read(d.join("release-manifest.json")).unwrap(),
        kept
    );
}

/// `release sign` says what a new manifest stops releasing, and still writes it: the policies
/// the manifest it replaces listed and it does not, and a manifest that releases nothing.
#[test]
fn release_sign_names_the_policies_a_new_manifest_withdraws() {
    let repo = temp_repo();
    let d = repo.root();
    let warnings = |out: &crate::common::Run| -> Vec<String> {
        out.stderr
            .lines()
            .filter(|line| line.starts_with("warning["))
            .map(str::to_owned)
            .collect()
    };
    // Every policy still there: nothing said.
    let same = run_in(d, &release_sign("2", &["--force"]), b"");
    assert_eq!(same.code, 0, "{}", same.transcript());
    assert_eq!(
        warnings(&same),
        Vec::<String>::new(),
        "{}",
        same.transcript()
    );

    std::fs::remove_dir_all(d.join("policies/patient-triage")).unwrap();
    let one_gone = run_in(d, &release_sign("3", &["--force"]), b"");
    assert_eq!(one_gone.code, 0, "{}", one_gone.transcript());
    assert_eq!(
        warnings(&one_gone),
        [
            "warning[cli.policies_withdrawn]: release manifest version 3 no longer releases \
          patient-triage@1.0.0: executions of it are refused once it is in force"
        ],
        "{}",
        one_gone.transcript()
    );
    assert!(one_gone.stdout.contains("version 3 with 1 policy written"));

    std::fs::remove_dir_all(d.join("policies/claims-approval")).unwrap();
    let none = run_in(d, &release_sign("4", &["--force"]), b"");
    assert_eq!(none.code, 0, "{}", none.transcript());
    assert_eq!(
        warnings(&none),
        [
            "warning[cli.no_policy_released]: release manifest version 4 lists no policy: every \
          execution under it is refused (runtime.policy_not_found)"
        ],
        "{}",
        none.transcript()
    );
    assert!(none.stdout.contains("version 4 with 0 policies written"));
}
