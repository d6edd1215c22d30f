//! Shared helpers for the integration tests: the committed TEST-ONLY fixtures and small builders.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use parmana_canon::{Digest, Timestamp};
use parmana_trust::*;

pub use parmana_testkit::{now, repository_root as repo};

/// A fixture key by name (`root-1`, `root-2`, `policy`, `release`, `attestation`).
pub fn key(name: &str) -> LocalSigningKey {
    LocalSigningKey::read_pem_file(&repo().join(format!("trust/keys/{name}.pem"))).unwrap()
}

/// The pinned root key.
pub fn pinned() -> PublicKey {
    read_public_key_file(&repo().join("trust/root.pub")).unwrap()
}

/// The committed chain: version 1 then the current version 2.
pub fn chain_bytes() -> Vec<Vec<u8>> {
    read_trust_chain(&repo().join("trust/trust-root.json")).unwrap()
}

/// The committed trust root, verified.
pub fn trust_root() -> VerifiedTrustRoot {
    load_trust_chain(
        &repo().join("trust/root.pub"),
        &repo().join("trust/trust-root.json"),
        now(),
        None,
    )
    .unwrap()
}

/// A one-key role.
pub fn role(key: &LocalSigningKey) -> RoleSpec {
    RoleSpec {
        keys: vec![key.public_key()],
        threshold: 1,
    }
}

/// The trust-root spec of the fixtures with `root` as the root key.
pub fn spec(root: &LocalSigningKey, expires: &str) -> TrustRootSpec {
    TrustRootSpec {
        expires: Timestamp::parse(expires).unwrap(),
        root: role(root),
        policy: role(&key("policy")),
        release: role(&key("release")),
        attestation: role(&key("attestation")),
        log: None,
    }
}

/// The test-only bundle under `tests/data/bundle` (a policy and a nested data file).
/// `demo@1.0.0`, the name the test bundle is signed under.
pub fn demo_ref() -> parmana_canon::PolicyRef {
    "demo@1.0.0".parse().unwrap()
}

pub fn test_bundle_files() -> BundleFiles {
    read_bundle_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bundle")).unwrap()
}

/// The test-only bundle, signed by the fixture policy key (with `bundle.json` added).
pub fn signed_test_bundle() -> BundleFiles {
    let mut files = test_bundle_files();
    let manifest = sign_bundle(&demo_ref(), &files, &[&key("policy")]).unwrap();
    files.insert(BUNDLE_MANIFEST_FILE.to_owned(), manifest);
    files
}

/// Every committed policy bundle directory (`policies/<id>/<version>/` with a `bundle.json`).
pub fn committed_bundle_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Ok(ids) = std::fs::read_dir(repo().join("policies")) else {
        return dirs;
    };
    for id in ids {
        let Ok(versions) = std::fs::read_dir(id.unwrap().path()) else {
            continue;
        };
        for version in versions {
            let dir = version.unwrap().path();
            if dir.join(BUNDLE_MANIFEST_FILE).is_file() {
                dirs.push(dir);
            }
        }
    }
    dirs.sort();
    dirs
}

/// Flip positions for a file: every byte, or at least 2,000 evenly spread ones for large files.
pub fn flip_positions(len: usize) -> Vec<usize> {
    const MAX: usize = 4_000;
    if len <= MAX {
        (0..len).collect()
    } else {
        (0..MAX).map(|i| i * len / MAX).collect()
    }
}

/// Error codes a tampered signed document may legitimately be refused with.
pub const TAMPER_CODES: &[&str] = &[
    "trust.bad_signature",
    "trust.unknown_key",
    "trust.key_lacks_role",
    "trust.threshold_not_met",
    "trust.wrong_type",
    "trust.malformed",
    "trust.version_rollback",
    "trust.invalid_key_id",
    "trust.invalid_encoding",
    "trust.invalid_key",
    // A key's bytes flipped to another point: one with a small-order component, as most are.
    "trust.weak_public_key",
    "trust.key_id_mismatch",
    "trust.invalid_threshold",
    "trust.invalid_version",
    "trust.invalid_policy_id",
    "trust.invalid_policy_version",
    "trust.invalid_policy_ref",
    "trust.policy_file_not_listed",
    "trust.unsafe_path",
    "trust.not_canonical",
    "trust.subject_mismatch",
];

/// The predicate of a small claim approved under `root` as `execution_id` at `executed_at`,
/// every other reference fixed: what the history and revocation tests sign and judge.
pub fn small_claim_predicate(
    root: &VerifiedTrustRoot,
    execution_id: &str,
    executed_at: Timestamp,
) -> ExecutionPredicate {
    ExecutionPredicate {
        execution_id: execution_id.parse().unwrap(),
        policy: AttestedPolicy {
            id: "claims-approval".parse().unwrap(),
            version: "1.0.0".parse().unwrap(),
            policy_digest: Digest::of(b"policy.json"),
            bundle_digest: Digest::of(b"bundle manifest"),
        },
        signals_digest: Digest::of_canonical(&serde_json::json!({"claim_amount": 800})).unwrap(),
        decision: "approve".to_owned(),
        rule_id: "small".to_owned(),
        reason: Some("small claim".to_owned()),
        evaluator: EvaluatorRef {
            name: "parmana-policy".to_owned(),
            version: "0.1.0".to_owned(),
            semantics: "parmana-policy/2".to_owned(),
        },
        runtime: RuntimeRef {
            name: "parmana-runtime".to_owned(),
            version: "0.1.0".to_owned(),
        },
        trust_root: DocumentRef {
            version: root.version(),
            digest: root.digest(),
        },
        release_manifest: DocumentRef {
            version: 1,
            digest: Digest::of(b"release manifest"),
        },
        executed_at,
        signals: None,
    }
}

/// Whether the independent tool `name` (`openssl`, `node`) is installed. Outside CI a missing
/// tool skips the check that needs it, saying so past the harness's capture; under `CI=true`
/// (which `.ci/run` sets, and whose machine installs both) it fails the test, so that an
/// independent check never passes by not running.
pub fn tool_present(name: &str) -> bool {
    use std::io::Write as _;
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok()
        || std::process::Command::new(name)
            .arg("version")
            .output()
            .is_ok();
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but `{name}` is not installed: the independent check must run in CI \
             (.ci/run installs it)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED sub-check: `{name}` is not installed on this machine"
        );
    }
    found
}
