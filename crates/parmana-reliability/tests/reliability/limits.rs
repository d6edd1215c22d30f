//! Resource bounds: each documented limit is accepted at the limit and refused one past it, with its error code (see docs/reliability.md, "Limits").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use parmana_canon::{MAX_SAFE_INTEGER, parse_strict};
use parmana_policy::limits;
use parmana_reliability::{claims_signals, fixed_clock, fixed_now};
use parmana_replay::MemoryReplayStore;
use parmana_runtime::{ExecutionRequest, execute_from_signals};
use parmana_testkit::FixtureEnvironment;
use serde_json::{Value, json};

/// A valid schema 2.0.0 policy; `edit` changes it before it is encoded.
fn policy(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut policy = json!({
        "schema_version": "2.0.0",
        "policy_id": "limits",
        "policy_version": "1.0.0",
        "decisions": ["approve", "deny"],
        "signals": {"amount": {"type": "number", "required": true}},
        "rules": [{"id": "r0", "when": {"signal": "amount", "gt": 0}, "then": {"decision": "approve"}}],
        "default": {"decision": "deny"}
    });
    edit(&mut policy);
    serde_json::to_vec(&policy).unwrap()
}

fn compile_code(bytes: &[u8]) -> Result<(), String> {
    parmana_policy::compile(bytes)
        .map(|_| ())
        .map_err(|e| e.code().to_owned())
}

/// `{"all": [{"all": [ … {"signal": "amount", "gt": 0} … ]}]}` with `depth` levels in all.
fn nested_condition(depth: usize) -> Value {
    let mut condition = json!({"signal": "amount", "gt": 0});
    for _ in 1..depth {
        condition = json!({"all": [condition]});
    }
    condition
}

/// A policy-level bound: accepted at `at_limit`, refused with `code` at `past_limit`.
fn bound(name: &str, code: &str, build: impl Fn(usize) -> Vec<u8>, limit: usize) {
    assert_eq!(
        compile_code(&build(limit)),
        Ok(()),
        "{name} at the limit {limit}"
    );
    assert_eq!(
        compile_code(&build(limit + 1)),
        Err(code.to_owned()),
        "{name} past the limit"
    );
}

#[test]
fn policy_bounds_refuse_one_past_the_limit_with_their_codes() {
    bound(
        "rules",
        "policy.too_many",
        |n| {
            policy(|p| {
                p["rules"] = (0..n).map(|i| json!({"id": format!("r{i}"), "when": {"signal": "amount", "gt": i}, "then": {"decision": "approve"}})).collect();
            })
        },
        limits::MAX_RULES,
    );
    bound(
        "declared signals",
        "policy.too_many",
        |n| {
            policy(|p| {
                p["signals"] = (0..n)
                    .map(|i| {
                        (
                            if i == 0 {
                                "amount".to_owned()
                            } else {
                                format!("s{i}")
                            },
                            json!({"type": "number", "required": i == 0}),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            })
        },
        limits::MAX_SIGNALS,
    );
    bound(
        "decisions",
        "policy.too_many",
        |n| {
            policy(|p| {
                p["decisions"] = (0..n)
                    .map(|i| match i {
                        0 => json!("approve"),
                        1 => json!("deny"),
                        _ => json!(format!("d{i}")),
                    })
                    .collect();
            })
        },
        limits::MAX_DECISIONS,
    );
    bound(
        "condition depth",
        "policy.too_deep",
        |n| {
            policy(|p| {
                p["rules"][0]["when"] = nested_condition(n);
            })
        },
        limits::MAX_CONDITION_DEPTH,
    );
    bound(
        "list length",
        "policy.list_too_long",
        |n| {
            policy(|p| {
                p["rules"][0]["when"] =
                    json!({"signal": "amount", "in": (0..n).collect::<Vec<_>>()});
            })
        },
        limits::MAX_LIST_LEN,
    );
    bound(
        "string length",
        "policy.string_too_long",
        |n| {
            policy(|p| {
                p["rules"][0]["then"]["reason"] = json!("x".repeat(n));
            })
        },
        limits::MAX_STRING_LEN,
    );
    bound(
        "policy size",
        "policy.too_large",
        |n| {
            // Pad with spaces (insignificant whitespace) to exactly n bytes.
            let mut bytes = policy(|_| {});
            bytes.resize(n, b' ');
            bytes
        },
        limits::MAX_POLICY_BYTES,
    );
    let long_name = |n: usize| policy(|p| p["rules"][0]["id"] = json!("r".repeat(n)));
    assert_eq!(compile_code(&long_name(limits::MAX_NAME_LEN)), Ok(()));
    assert!(compile_code(&long_name(limits::MAX_NAME_LEN + 1)).is_err());
}

#[test]
fn json_bounds_refuse_one_past_the_limit_with_their_codes() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    assert!(parse_strict(nested(parmana_canon::MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(
        parse_strict(nested(parmana_canon::MAX_DEPTH + 1).as_bytes())
            .unwrap_err()
            .code(),
        "canon.too_deep"
    );
    assert!(parse_strict(MAX_SAFE_INTEGER.to_string().as_bytes()).is_ok());
    assert!(parse_strict(format!("-{MAX_SAFE_INTEGER}").as_bytes()).is_ok());
    // Past ±(2^53−1) a literal is refused unless it is exactly the RFC 8785 spelling of a double
    // (2^53 itself is; 2^53+1 is not): the documented rule of parmana-canon.
    for past in [
        format!("{}", MAX_SAFE_INTEGER + 2),
        format!("-{}", MAX_SAFE_INTEGER + 2),
    ] {
        assert_eq!(
            parse_strict(past.as_bytes()).unwrap_err().code(),
            "canon.integer_out_of_range"
        );
    }
}

#[test]
fn request_bounds_refuse_one_past_the_limit_with_their_codes() {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let run = |execution_id: String, policy_id: String| {
        let request = parmana_reliability::request_of(
            &execution_id,
            &policy_id,
            "1.0.0",
            claims_signals(1),
            false,
        )
        .map_err(|e| e.code())?;
        execute_from_signals(
            &request,
            &signer,
            &MemoryReplayStore::new(),
            &environment,
            &fixed_clock(),
        )
        .map(|_| ())
        .map_err(|e| e.code())
    };
    let max_id = parmana_replay::MAX_EXECUTION_ID_LEN;
    assert_eq!(
        run("i".repeat(max_id), "claims-approval".to_owned()),
        Ok(())
    );
    assert_eq!(
        run("i".repeat(max_id + 1), "claims-approval".to_owned()),
        Err("runtime.invalid_execution_id")
    );
    // A policy id of 128 characters is well formed (and absent); 129 is refused before any IO.
    assert_eq!(
        run("id".to_owned(), "p".repeat(limits::MAX_NAME_LEN)),
        Err("runtime.policy_not_found")
    );
    assert_eq!(
        run("id".to_owned(), "p".repeat(limits::MAX_NAME_LEN + 1)),
        Err("runtime.invalid_policy_reference")
    );
}

#[test]
fn a_declared_max_length_bounds_a_string_signal() {
    let compiled = parmana_policy::compile(&policy(|p| {
        p["signals"]["note"] = json!({"type": "string", "required": true, "max_length": 8});
    }));
    let compiled = compiled.unwrap();
    assert!(
        compiled
            .validate_signals(&json!({"amount": 1, "note": "12345678"}))
            .is_ok()
    );
    assert_eq!(
        compiled
            .validate_signals(&json!({"amount": 1, "note": "123456789"}))
            .err()
            .unwrap()
            .code(),
        "policy.signal_too_long"
    );
}

#[test]
fn signals_text_is_bounded_before_it_is_parsed() {
    use parmana_runtime::MAX_SIGNALS_JSON_BYTES;
    let at_limit = |extra: usize| {
        let mut text = br#"{"claim_amount": 1}"#.to_vec();
        text.resize(MAX_SIGNALS_JSON_BYTES + extra, b' ');
        ExecutionRequest::parse("id", "claims-approval@1.0.0", text)
            .map(|_| ())
            .map_err(|e| (e.code(), e.class()))
    };
    assert_eq!(at_limit(0), Ok(()));
    assert_eq!(
        at_limit(1),
        Err((
            "runtime.request_too_large",
            parmana_runtime::ErrorClass::InvalidInput
        ))
    );
}
