//! `parmana verify` and the documents an attestation names: `--release-manifest` says whether its policy was released (a bundle the policy key signed is not, by that alone), and a bundle signed again after the policy key rotated still checks the attestations made before.

use std::path::Path;

use crate::common::{NOW, Run, VIP_SIGNALS, execute_vip, run_in, temp_repo};
use parmana_runtime::canon::Digest;

/// Executes the VIP claim as `id` at [`NOW`] in `dir` (memory store): the attestation.
fn execute(dir: &Path, id: &str) -> Vec<u8> {
    let out = run_in(
        dir,
        &execute_vip(&["--execution-id", id, "--store", "memory", "--now", NOW]),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    out.stdout.into_bytes()
}

/// `parmana --format json verify attestation.json ARGS`, `attestation` written there first.
fn verify(dir: &Path, attestation: &[u8], args: &[&str]) -> Run {
    std::fs::write(dir.join("attestation.json"), attestation).unwrap();
    let mut all = vec!["--format", "json", "verify", "attestation.json"];
    all.extend_from_slice(args);
    run_in(dir, &all, b"")
}

/// The report's row `check`: whether it passed, and its code.
fn row(out: &Run, check: &str) -> Option<(bool, Option<String>)> {
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.transcript()));
    report["checks"]
        .as_array()?
        .iter()
        .find(|row| row["check"] == check)
        .map(|row| {
            (
                row["passed"] == true,
                row["code"].as_str().map(str::to_owned),
            )
        })
}

/// An attestation re-signed by the fixture attestation key with its predicate changed: what only
/// that key's holder can make.
fn forged(
    repo: &parmana_testkit::FixtureEnvironment,
    genuine: &[u8],
    mutate: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    parmana_testkit::re_signed_attestation(genuine, &repo.attestation_signer().unwrap(), mutate)
        .unwrap()
}

#[test]
fn a_release_manifest_given_checks_what_the_attestation_says_was_released() {
    use serde_json::json;
    let repo = temp_repo();
    let d = repo.root();
    let genuine = execute(d, "release-0001");
    std::fs::write(d.join("signals.json"), VIP_SIGNALS).unwrap();
    let released = ["--release-manifest", "release-manifest.json"];
    let passed = verify(
        d,
        &genuine,
        &[&["--now", NOW, "--signals", "signals.json"][..], &released].concat(),
    );
    assert_eq!(passed.code, 0, "{}", passed.transcript());
    assert_eq!(row(&passed, "release_manifest"), Some((true, None)));
    // The row sits after bundle_digest's place and before signals_digest (checks in order).
    let report: serde_json::Value = serde_json::from_str(&passed.stdout).unwrap();
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    let at = |name| names.iter().position(|n| *n == name).unwrap();
    assert!(at("executed_at") < at("release_manifest"), "{names:?}");
    assert!(at("release_manifest") < at("signals_digest"), "{names:?}");
    // Without it, no such row: the report shows which checks ran.
    let without = verify(d, &genuine, &["--now", NOW]);
    assert_eq!(row(&without, "release_manifest"), None);
    // (what the key's holder changed, the clock, the row's code)
    let later = "2036-01-01T00:00:00Z";
    let other = format!("sha256:{}", "1".repeat(64));
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation, &str, &str)> = vec![
        (
            "another manifest version",
            Box::new(|p| p["release_manifest"]["version"] = json!(2)),
            NOW,
            "trust.digest_mismatch",
        ),
        (
            "another manifest digest",
            Box::new({
                let other = other.clone();
                move |p| p["release_manifest"]["digest"] = json!(other)
            }),
            NOW,
            "trust.digest_mismatch",
        ),
        (
            "a version the manifest does not release",
            Box::new(|p| p["policy"]["version"] = json!("1.1.0")),
            NOW,
            "trust.not_in_release_manifest",
        ),
        (
            "another bundle",
            Box::new(move |p| p["policy"]["bundle_digest"] = json!(other)),
            NOW,
            "trust.not_in_release_manifest",
        ),
        (
            "other evaluator semantics",
            Box::new(|p| p["evaluator"]["semantics"] = json!("parmana-policy/9")),
            NOW,
            "trust.runtime_incompatible",
        ),
        (
            "executed once the manifest had expired",
            Box::new(move |p| p["executed_at"] = json!(later)),
            later,
            "trust.executed_after_expiry",
        ),
    ];
    for (name, mutate, now, code) in cases {
        let attestation = forged(&repo, &genuine, mutate);
        let out = verify(d, &attestation, &[&["--now", now][..], &released].concat());
        assert_eq!(out.code, 7, "{name}: {}", out.transcript());
        assert_eq!(
            row(&out, "release_manifest"),
            Some((false, Some(code.to_owned()))),
            "{name}: {}",
            out.stdout
        );
    }
    // What is not a release manifest signed by the release role is refused before any report.
    for (file, code) in [
        ("trust/trust-root.json", "trust.wrong_type"),
        (
            "policies/claims-approval/1.0.0/bundle.json",
            "trust.wrong_type",
        ),
    ] {
        let out = verify(d, &genuine, &["--now", NOW, "--release-manifest", file]);
        assert_eq!(out.code, 4, "{file}: {}", out.transcript());
        assert!(out.stderr.contains(code), "{file}: {}", out.transcript());
    }
    // One attestation only.
    let lines = [genuine.clone(), genuine.clone()].concat();
    let out = verify(d, &lines, &[&["--now", NOW][..], &released].concat());
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(out.stderr.contains("--release-manifest"), "{}", out.stderr);
}

/// A bundle the policy key signed but the release owner never released: the attestation key's
/// holder can name it, and its bundle and decision checks pass — it is signed, and its policy
/// decides so. The release manifest in force then says it was not released.
#[test]
fn an_unreleased_bundle_is_caught_by_the_release_manifest() {
    let repo = temp_repo();
    let d = repo.root();
    let genuine = execute(d, "release-0002");
    let draft = d.join("policies/claims-approval/1.1.0");
    std::fs::create_dir(&draft).unwrap();
    let policy = std::fs::read_to_string(d.join("policies/claims-approval/1.0.0/policy.json"))
        .unwrap()
        .replace(
            r#""policy_version": "1.0.0""#,
            r#""policy_version": "1.1.0""#,
        );
    std::fs::write(draft.join("policy.json"), &policy).unwrap();
    let signed = run_in(
        d,
        &[
            "bundle",
            "sign",
            "policies/claims-approval/1.1.0",
            "--key",
            "trust/keys/policy.pem",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(signed.code, 0, "{}", signed.transcript());
    let bundle_digest = signed
        .stdout
        .trim()
        .strip_prefix("claims-approval@1.1.0 ")
        .unwrap_or_else(|| panic!("{}", signed.stdout))
        .to_owned();
    let attestation = forged(&repo, &genuine, |p| {
        p["policy"]["version"] = serde_json::json!("1.1.0");
        p["policy"]["bundle_digest"] = serde_json::json!(bundle_digest);
        p["policy"]["policy_digest"] = serde_json::json!(Digest::of(policy.as_bytes()).to_string());
    });
    std::fs::write(d.join("signals.json"), VIP_SIGNALS).unwrap();
    let checked = [
        "--now",
        NOW,
        "--policy-bundle",
        "policies/claims-approval/1.1.0",
        "--signals",
        "signals.json",
    ];
    let signed_only = verify(d, &attestation, &checked);
    assert_eq!(signed_only.code, 0, "{}", signed_only.transcript());
    assert_eq!(row(&signed_only, "decision"), Some((true, None)));
    let with_release = verify(
        d,
        &attestation,
        &[
            &checked[..],
            &["--release-manifest", "release-manifest.json"],
        ]
        .concat(),
    );
    assert_eq!(with_release.code, 7, "{}", with_release.transcript());
    assert_eq!(
        row(&with_release, "release_manifest"),
        Some((false, Some("trust.not_in_release_manifest".to_owned())))
    );
}

/// The policy key rotates; every bundle is signed again with the new key (its digest, of its
/// `signed` part, unchanged). The attestations made before still have their bundle and
/// decision checked with the deployment's bundle — under the version they name its new
/// signature is unknown, under the version in force it verifies. A bundle signed by a key no
/// version holds is still refused, with the named version's refusal.
#[test]
fn a_bundle_signed_again_after_the_policy_key_rotated_still_checks_older_attestations() {
    let repo = temp_repo();
    let d = repo.root();
    let genuine = execute(d, "release-0003");
    std::fs::write(d.join("signals.json"), VIP_SIGNALS).unwrap();
    let checked = [
        "--now",
        NOW,
        "--policy-bundle",
        "policies/claims-approval/1.0.0",
        "--signals",
        "signals.json",
        "--release-manifest",
        "release-manifest.json",
    ];
    let sign_bundle = |key: &str| {
        let out = run_in(
            d,
            &[
                "bundle",
                "sign",
                "policies/claims-approval/1.0.0",
                "--key",
                key,
                "--now",
                NOW,
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{key}: {}", out.transcript());
        out.stdout
    };
    for key in ["policy-2", "stranger"] {
        let out = run_in(
            d,
            &["keygen", "--out", &format!("trust/keys/{key}.pem")],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.transcript());
    }
    let rotated = run_in(
        d,
        &[
            "trust",
            "rotate",
            "--sign-with",
            "trust/keys/root-2.pem",
            "--root-key",
            "trust/keys/root-2.pem",
            "--policy-key",
            "trust/keys/policy-2.pub",
            "--release-key",
            "trust/keys/release.pub",
            "--attestation-key",
            "trust/keys/attestation.pub",
            "--expires",
            "2036-01-01T00:00:00Z",
            "--now",
            NOW,
        ],
        b"",
    );
    assert_eq!(rotated.code, 0, "{}", rotated.transcript());
    let before = sign_bundle("trust/keys/policy-2.pem");
    let out = verify(d, &genuine, &checked);
    assert_eq!(out.code, 0, "{}", out.transcript());
    for check in ["bundle_digest", "release_manifest", "decision"] {
        assert_eq!(row(&out, check), Some((true, None)), "{check}");
    }
    // Signed by a key of no version: refused, as under the version the attestation names.
    std::fs::remove_file(d.join("policies/claims-approval/1.0.0/bundle.json")).unwrap();
    let after = {
        // `bundle sign` itself checks the key's role in the version in force: the stranger's
        // signature is written through the library, as a writer of the directory could.
        let stranger = parmana_runtime::trust::LocalSigningKey::read_pem_file(
            &d.join("trust/keys/stranger.pem"),
        )
        .unwrap();
        parmana_runtime::trust::sign_bundle_dir(
            &d.join("policies/claims-approval/1.0.0"),
            &parmana_runtime::canon::PolicyRef::parse("claims-approval@1.0.0").unwrap(),
            &[&stranger],
        )
        .unwrap()
    };
    std::fs::write(d.join("policies/claims-approval/1.0.0/bundle.json"), &after).unwrap();
    let out = verify(d, &genuine, &checked);
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.contains(r#""code":"trust.unknown_key""#),
        "{}",
        out.transcript()
    );
    assert!(before.contains("claims-approval@1.0.0 sha256:"), "{before}");
}
