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

/// `parmana bundle sign DIR --key KEY` in `dir` at [`NOW`], which must succeed: the line it
/// prints, `ID@VERSION BUNDLE_DIGEST`.
fn bundle_sign(dir: &Path, bundle: &str, key: &str) -> String {
    let out = run_in(
        dir,
        &["bundle", "sign", bundle, "--key", key, "--now", NOW],
        b"",
    );
    assert_eq!(out.code, 0, "{bundle} {key}: {}", out.transcript());
    out.stdout
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
    let signed = bundle_sign(d, "policies/claims-approval/1.1.0", "trust/keys/policy.pem");
    let bundle_digest = signed
        .trim()
        .strip_prefix("claims-approval@1.1.0 ")
        .unwrap_or_else(|| panic!("{signed}"))
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
/// signature is unknown, under the version in force it verifies. Not under a version between:
/// a policy key that one version trusted and a later one rotated out (stolen, say) signs nothing
/// accepted, nor does a key no version holds — each refused with the named version's refusal. A
/// release manifest is checked under the version the attestation names alone: one signed again
/// by a release key rotated in since is refused.
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
    // Signs the bundle with `key` through the library (`bundle sign` checks the key's role in
    // the version in force), as a writer of the directory could.
    let sign_bundle_anyway = |key: &str| {
        let key = parmana_runtime::trust::LocalSigningKey::read_pem_file(
            &d.join(format!("trust/keys/{key}.pem")),
        )
        .unwrap();
        let dir = d.join("policies/claims-approval/1.0.0");
        std::fs::remove_file(dir.join("bundle.json")).unwrap();
        let signed = parmana_runtime::trust::sign_bundle_dir(
            &dir,
            &parmana_runtime::canon::PolicyRef::parse("claims-approval@1.0.0").unwrap(),
            &[&key],
        )
        .unwrap();
        std::fs::write(dir.join("bundle.json"), signed).unwrap();
    };
    let refused_unknown = |what: &str| {
        let out = verify(d, &genuine, &checked);
        assert_eq!(out.code, 4, "{what}: {}", out.transcript());
        assert!(
            out.stderr.contains(r#""code":"trust.unknown_key""#),
            "{what}: {}",
            out.transcript()
        );
    };
    for key in ["policy-2", "policy-3", "release-2", "stranger"] {
        let out = run_in(
            d,
            &["keygen", "--out", &format!("trust/keys/{key}.pem")],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.transcript());
    }
    let rotate = |policy: &str, release: &str| {
        let (policy, release) = (
            format!("trust/keys/{policy}.pub"),
            format!("trust/keys/{release}.pub"),
        );
        let args = crate::common::fixture_rotate_roles(
            "trust/keys/root-2.pem",
            (&policy, &release),
            &[
                "--attestation-key",
                "trust/keys/attestation.pub",
                "--expires",
                "2036-01-01T00:00:00Z",
                "--now",
                NOW,
            ],
        );
        let out = run_in(d, &args, b"");
        assert_eq!(out.code, 0, "{}", out.transcript());
    };
    rotate("policy-2", "release");
    let signed = bundle_sign(
        d,
        "policies/claims-approval/1.0.0",
        "trust/keys/policy-2.pem",
    );
    assert!(signed.contains("claims-approval@1.0.0 sha256:"), "{signed}");
    let out = verify(d, &genuine, &checked);
    assert_eq!(out.code, 0, "{}", out.transcript());
    for check in ["bundle_digest", "release_manifest", "decision"] {
        assert_eq!(row(&out, check), Some((true, None)), "{check}");
    }
    // policy-2 rotated out for policy-3: a bundle policy-2 signs is trusted by no version from
    // the one the attestation names to the newest.
    rotate("policy-3", "release");
    refused_unknown("signed by the policy key rotated out since");
    sign_bundle_anyway("policy-3");
    let out = verify(d, &genuine, &checked);
    assert_eq!(out.code, 0, "{}", out.transcript());
    sign_bundle_anyway("stranger");
    refused_unknown("signed by a key of no version");
    sign_bundle_anyway("policy-3");
    // The release manifest signed again by a release key rotated in since: refused.
    rotate("policy-3", "release-2");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("release-manifest.json")).unwrap()).unwrap();
    let release_2 =
        parmana_runtime::trust::LocalSigningKey::read_pem_file(&d.join("trust/keys/release-2.pem"))
            .unwrap();
    let body = &manifest["signed"];
    let spec = parmana_runtime::trust::ReleaseManifestSpec {
        version: body["version"].as_u64().unwrap(),
        expires: parmana_runtime::canon::Timestamp::parse(body["expires"].as_str().unwrap())
            .unwrap(),
        evaluator_semantics: body["runtime"]["evaluator_semantics"]
            .as_str()
            .unwrap()
            .to_owned(),
        minimum_runtime_version: body["runtime"]["minimum_runtime_version"]
            .as_str()
            .unwrap()
            .to_owned(),
        policies: body["policies"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, digest)| {
                (
                    parmana_runtime::canon::PolicyRef::parse(name).unwrap(),
                    digest.as_str().unwrap().parse().unwrap(),
                )
            })
            .collect(),
    };
    let signed = parmana_runtime::trust::sign_release_manifest(&spec, &[&release_2]).unwrap();
    std::fs::write(d.join("release-manifest.json"), signed).unwrap();
    refused_unknown("the release manifest signed by a release key of a later version");
}

/// The human report gives the `release_manifest` row (16 characters) its own column, as every
/// other: the name, then a space, then the result.
#[test]
fn the_release_manifest_row_reads_as_the_others_on_a_terminal() {
    let repo = temp_repo();
    let d = repo.root();
    let genuine = execute(d, "release-0004");
    std::fs::write(d.join("attestation.json"), &genuine).unwrap();
    let out = run_in(
        d,
        &[
            "verify",
            "attestation.json",
            "--now",
            NOW,
            "--release-manifest",
            "release-manifest.json",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("CHECK "))
        .take_while(|line| !line.is_empty() && !line.starts_with("valid"))
        .collect();
    let result_at = rows[0].find("RESULT").unwrap();
    assert!(rows.len() > 5, "{}", out.stdout);
    for row in &rows[1..] {
        let (name, rest) = row.split_at(result_at);
        assert!(name.ends_with(' '), "{row:?}");
        assert!(rest.starts_with("ok "), "{row:?}");
    }
    assert!(
        rows.iter().any(|row| row.starts_with("release_manifest ")),
        "{}",
        out.stdout
    );
}
