//! The one grammar of each shared identifier, checked against its table in `tests/identifiers/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use parmana_canon::{ExecutionId, IdError, PolicyId, PolicyRef, PolicyVersion};
use serde_json::Value;

/// Each row is `[text, expected]` (policy versions: `[text, expected, is_semver]`), where
/// `expected` is `true` or the refusal's reason.
fn table(name: &str) -> Vec<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/identifiers")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check<T: std::fmt::Display>(name: &str, parse: impl Fn(&str) -> Result<T, IdError>) -> usize {
    let rows = table(name);
    assert!(rows.len() >= 5, "{name}: the table is too small");
    for row in &rows {
        let text = row[0].as_str().unwrap();
        match (&row[1], parse(text)) {
            (Value::Bool(true), Ok(parsed)) => {
                assert_eq!(
                    parsed.to_string(),
                    text,
                    "{name}: {text:?} must print as it was read"
                );
            }
            (Value::String(reason), Err(error)) => {
                assert_eq!(error.reason, reason, "{name}: {text:?}");
                assert_eq!(error.code(), "canon.invalid_identifier");
            }
            (expected, got) => panic!(
                "{name}: {text:?}: expected {expected}, got {:?}",
                got.map(|v| v.to_string())
            ),
        }
    }
    rows.len()
}

#[test]
fn policy_ids() {
    check("policy_id", PolicyId::parse);
    for row in table("policy_id") {
        let text = row[0].as_str().unwrap();
        assert_eq!(
            PolicyId::is_valid(text),
            row[1] == Value::Bool(true),
            "{text:?}"
        );
    }
}

#[test]
fn policy_versions() {
    check("policy_version", PolicyVersion::parse);
    for row in table("policy_version") {
        let text = row[0].as_str().unwrap();
        if let Some(semver) = row[2].as_bool() {
            assert_eq!(
                PolicyVersion::parse(text).unwrap().is_semver(),
                semver,
                "{text:?}"
            );
        }
    }
}

#[test]
fn policy_refs() {
    check("policy_ref", PolicyRef::parse);
}

#[test]
fn execution_ids() {
    check("execution_id", ExecutionId::parse);
}

#[test]
fn identifiers_are_json_strings_checked_when_read() {
    let id: ExecutionId = serde_json::from_str("\"exec-1\"").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"exec-1\"");
    assert!(serde_json::from_str::<ExecutionId>("\"has space\"").is_err());
    let reference: PolicyRef = serde_json::from_str("\"p@1.0.0\"").unwrap();
    assert_eq!(serde_json::to_string(&reference).unwrap(), "\"p@1.0.0\"");
    assert!(serde_json::from_str::<PolicyRef>("\"p\"").is_err());
    assert!(serde_json::from_str::<PolicyVersion>("\"1..0\"").is_err());
    assert!(serde_json::from_str::<PolicyId>("\"P\"").is_err());
}

#[test]
fn execution_ids_from_uuids_are_hyphenated_lowercase() {
    let id = ExecutionId::from_uuid(0x0190_c3f0_7d6e_7f1a_8000_0000_0000_00ab);
    assert_eq!(id.as_str(), "0190c3f0-7d6e-7f1a-8000-0000000000ab");
    assert_eq!(ExecutionId::parse(id.as_str()).unwrap(), id);
    assert_eq!(
        ExecutionId::from_uuid(u128::MAX).as_str(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff"
    );
    assert_eq!(
        ExecutionId::from_uuid(0).as_str(),
        "00000000-0000-0000-0000-000000000000"
    );
}
