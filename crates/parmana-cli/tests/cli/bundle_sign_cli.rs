//! `bundle sign` checks what it signs: policy errors and failing tests refuse (warnings are shown), the directory must be `<id>/<version>/`, and `tests/` is run but never signed.

use std::path::Path;

use crate::common::{NOW, README_SIGNALS, Run, run_in, temp_repo};

fn sign(dir: &Path, bundle: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "bundle",
        "sign",
        bundle,
        "--key",
        "trust/keys/policy.pem",
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    run_in(dir, &args, b"")
}

fn execute(dir: &Path, id: &str) -> Run {
    run_in(
        dir,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            README_SIGNALS,
            "--execution-id",
            id,
            "--store",
            "memory",
            "--now",
            NOW,
        ],
        b"",
    )
}

#[test]
fn adding_a_test_does_not_invalidate_a_release() {
    let repo = temp_repo();
    let d = repo.root();
    let bundle = d.join("policies/claims-approval/1.0.0");
    let signed = std::fs::read(bundle.join("bundle.json")).unwrap();
    assert!(
        !String::from_utf8_lossy(&signed).contains("tests/"),
        "tests/ must not be signed"
    );
    std::fs::write(
        bundle.join("tests/added-later.json"),
        r#"{"signals": {"claim_amount": 10, "vip_customer": false, "country": "DE", "policy_age_days": 400}, "expect": {"decision": "approve", "rule_id": "small"}}"#,
    )
    .unwrap();
    let out = execute(d, "tests-1");
    assert_eq!(out.code, 0, "{}", out.transcript());
    // Any other unexpected file still refuses.
    std::fs::write(bundle.join("notes.txt"), b"unsigned").unwrap();
    let out = execute(d, "tests-2");
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.contains("trust.bundle_file_unexpected"),
        "{}",
        out.stderr
    );
    // Re-signing with the new test gives the same bundle.json (tests are not part of it).
    std::fs::remove_file(bundle.join("notes.txt")).unwrap();
    let resigned = sign(d, "policies/claims-approval/1.0.0", &[]);
    assert_eq!(resigned.code, 0, "{}", resigned.transcript());
    assert_eq!(std::fs::read(bundle.join("bundle.json")).unwrap(), signed);
}

#[test]
fn bundle_sign_refuses_what_it_should_not_sign() {
    let repo = temp_repo();
    let d = repo.root();
    let bundle = d.join("policies/claims-approval/1.0.0");
    let policy = std::fs::read_to_string(bundle.join("policy.json")).unwrap();
    let before = std::fs::read(bundle.join("bundle.json")).unwrap();
    let mut transcript = String::new();
    let mut step = |what: &str, out: &Run| {
        transcript.push_str(&format!("## {what}\n{}\n", out.transcript()));
    };

    // A failing test refuses; --allow-failing-tests signs anyway, saying so.
    std::fs::write(
        bundle.join("tests/wrong.json"),
        r#"{"signals": {"claim_amount": 10, "vip_customer": false, "country": "DE", "policy_age_days": 400}, "expect": {"decision": "deny", "rule_id": "small"}}"#,
    )
    .unwrap();
    let failing = sign(d, "policies/claims-approval/1.0.0", &[]);
    assert_eq!(failing.code, 7, "{}", failing.transcript());
    assert_eq!(std::fs::read(bundle.join("bundle.json")).unwrap(), before);
    step("a failing test", &failing);
    let allowed = sign(
        d,
        "policies/claims-approval/1.0.0",
        &["--allow-failing-tests"],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.transcript());
    step("--allow-failing-tests", &allowed);
    std::fs::remove_file(bundle.join("tests/wrong.json")).unwrap();

    // A policy error refuses (nothing written); a warning is shown and signing goes on.
    std::fs::write(
        bundle.join("policy.json"),
        policy.replace(
            r#""signal": "claim_amount", "gt": 50000"#,
            r#""signal": "claim_amout", "gt": 50000"#,
        ),
    )
    .unwrap();
    let broken = sign(d, "policies/claims-approval/1.0.0", &[]);
    assert_eq!(broken.code, 3, "{}", broken.transcript());
    step("a policy error", &broken);
    std::fs::write(
        bundle.join("policy.json"),
        policy.replace(
            r#""decisions": ["approve", "deny", "escalate"]"#,
            r#""decisions": ["approve", "deny", "escalate", "hold"]"#,
        ),
    )
    .unwrap();
    let warned = sign(
        d,
        "policies/claims-approval/1.0.0",
        &["--allow-failing-tests"],
    );
    assert_eq!(warned.code, 0, "{}", warned.transcript());
    step("a warning", &warned);
    std::fs::write(bundle.join("policy.json"), &policy).unwrap();

    // The directory must be <id>/<version>/ of the policy, and a directory.
    std::fs::rename(&bundle, d.join("policies/claims-approval/1.0.1")).unwrap();
    let moved = sign(d, "policies/claims-approval/1.0.1", &[]);
    assert_eq!(moved.code, 3, "{}", moved.transcript());
    step("a directory named for another version", &moved);
    let file = sign(d, "policies/claims-approval/1.0.1/policy.json", &[]);
    assert_eq!(file.code, 4, "{}", file.transcript());
    step("a file, not a directory", &file);
    insta::assert_snapshot!("bundle_sign_refusals", transcript);
}

#[test]
fn an_unsigned_bundle_says_so() {
    let repo = temp_repo();
    let d = repo.root();
    std::fs::remove_file(d.join("policies/claims-approval/1.0.0/bundle.json")).unwrap();
    let out = execute(d, "unsigned-1");
    assert_eq!(out.code, 4, "{}", out.transcript());
    assert!(
        out.stderr.starts_with("error[trust.bundle_not_signed]"),
        "{}",
        out.stderr
    );
}
