//! The `signals` of a request body are read exactly as `parmana execute --signals` reads the same text: one table of signal texts (each one JSON value, well formed or not inside), each sent to the CLI, to `POST /v1/evaluations` and to `POST /v1/executions`, with the same verdict and code from all three.

use crate::harness::{Served, deployment, parmana};

/// A signal text with one member changed from the README's signals.
fn readme_with(member: &str) -> String {
    format!(r#"{{"claim_amount":1200,"vip_customer":false,"country":"DE",{member}}}"#)
}

/// `[[…[1]…]]` nested `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// The code of a refusal on the CLI's stderr (`error[CODE]: …`), or "" when it succeeded.
fn cli_code(exit: i32, stderr: &str) -> String {
    if exit == 0 {
        return String::new();
    }
    stderr
        .split_once("error[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| panic!("no error code on stderr: {stderr}"))
}

#[test]
fn signals_are_refused_or_accepted_as_the_cli_does_with_the_same_code() {
    let env = deployment("memory", "");
    let served = Served::start(env.root(), &["--dev-token"]);
    let token = served.token.as_deref();
    // (signal text, the code all three give, "" for a decision)
    let cases: Vec<(String, &str)> = vec![
        (readme_with(r#""policy_age_days":400"#), ""),
        // Whitespace and member order are the text's own business.
        (
            format!(" \n{}\t", readme_with(r#""policy_age_days" : 400"#)),
            "",
        ),
        (
            readme_with(r#""policy_age_days":400,"country":"FR""#),
            "canon.duplicate_key",
        ),
        (
            readme_with(r#""policy_age_days":400,"note":"\ud800""#),
            "canon.lone_surrogate",
        ),
        (
            readme_with(r#""policy_age_days":9007199254740993"#),
            "canon.integer_out_of_range",
        ),
        (
            readme_with(r#""policy_age_days":1e400"#),
            "canon.number_out_of_range",
        ),
        (
            readme_with(r#""policy_age_days":400,,"fraud_score":1"#),
            "canon.syntax",
        ),
        (readme_with(r#""policy_age_days":4e"#), "canon.syntax"),
        // Depth counts from the signals, not from the request body around them.
        (nested(129), "canon.too_deep"),
        // The first error in the text is the one reported, one past the depth after it too.
        (
            readme_with(&format!(
                r#""policy_age_days":400,"country":"FR","deep":{}"#,
                nested(130)
            )),
            "canon.duplicate_key",
        ),
        (
            readme_with(&format!(
                r#""policy_age_days":400,"deep":{},"country":"FR""#,
                nested(130)
            )),
            "canon.too_deep",
        ),
        (
            readme_with(&format!(r#""policy_age_days":{}"#, nested(127))),
            "policy.signal_type",
        ),
        (
            readme_with(r#""policy_age_days":400.5"#),
            "policy.signal_not_integer",
        ),
        (readme_with(r#""age":400"#), "policy.signal_missing"),
        ("[]".to_owned(), "policy.signals_not_object"),
    ];
    for (i, (signals, expected)) in cases.iter().enumerate() {
        let id = format!("strict-{i}");
        let (exit, _, stderr) = parmana(
            env.root(),
            &[
                "execute",
                "--store",
                "memory",
                "--policy",
                "claims-approval@1.0.0",
                "--signals",
                signals,
                "--execution-id",
                &id,
            ],
        );
        let cli = cli_code(exit, &stderr);
        assert_eq!(cli, *expected, "CLI, {signals}: {stderr}");
        let evaluation = served.post(
            "/v1/evaluations",
            token,
            &format!(r#"{{"policy":"claims-approval@1.0.0","signals":{signals}}}"#),
        );
        let execution = served.post(
            "/v1/executions",
            token,
            &format!(
                r#"{{"policy":"claims-approval@1.0.0","execution_id":"{id}","signals":{signals}}}"#
            ),
        );
        for (route, reply, ok) in [
            ("/v1/evaluations", &evaluation, 200),
            ("/v1/executions", &execution, 201),
        ] {
            if expected.is_empty() {
                assert_eq!(reply.status, ok, "{route}, {signals}: {}", reply.text);
            } else {
                assert_eq!(
                    reply.code(),
                    *expected,
                    "{route}, {signals}: {}",
                    reply.text
                );
                let status = if expected.starts_with("canon.") {
                    400
                } else {
                    422
                };
                assert_eq!(reply.status, status, "{route}, {signals}");
            }
        }
    }
}
