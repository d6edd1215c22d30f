//! The batch format: lines read one at a time with a bound (table of inputs → lines), and batch lines parsed into requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use parmana_runtime::{BatchLine, BatchReader, batch_refusal_line};

/// Every line the reader yields for `input` with a limit of 8 bytes: `(number, Ok(text) | Err(code))`.
fn lines(input: &[u8]) -> Vec<(usize, Result<String, &'static str>)> {
    let mut reader = BatchReader::with_limit(input, 8);
    let mut out = Vec::new();
    while let Some((number, line)) = reader.next_line() {
        out.push((
            number,
            line.map(|bytes| String::from_utf8(bytes).unwrap())
                .map_err(|e| e.code()),
        ));
    }
    out
}

/// An input and the lines expected from it.
type LineCase = (
    &'static [u8],
    &'static [(usize, Result<&'static str, &'static str>)],
);

#[test]
fn lines_are_numbered_bounded_and_blank_lines_skipped() {
    let cases: &[LineCase] = &[
        (b"", &[]),
        (b"\n\n  \n", &[]),
        (b"a\nb", &[(1, Ok("a")), (2, Ok("b"))]),
        (b"a\r\n\r\nb\r\n", &[(1, Ok("a")), (3, Ok("b"))]),
        (b"12345678\n", &[(1, Ok("12345678"))]),
        (
            b"123456789\nok\n",
            &[(1, Err("runtime.request_too_large")), (2, Ok("ok"))],
        ),
        (
            b"x\n0123456789012345678901234567890123456789",
            &[(1, Ok("x")), (2, Err("runtime.request_too_large"))],
        ),
    ];
    for (input, expected) in cases {
        let expected: Vec<(usize, Result<String, &str>)> = expected
            .iter()
            .map(|(n, r)| (*n, r.map(str::to_owned)))
            .collect();
        assert_eq!(
            lines(input),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn a_long_line_is_skipped_without_being_held() {
    // A 64 MiB line through a small buffer: refused, and the next line still read.
    let mut input = vec![b'x'; 64 << 20];
    input.extend_from_slice(b"\n{\"signals\":{}}\n");
    let mut reader = BatchReader::new(std::io::BufReader::with_capacity(4096, &input[..]));
    let (first, refused) = reader.next_line().unwrap();
    assert_eq!(
        (first, refused.unwrap_err().code()),
        (1, "runtime.request_too_large")
    );
    let (second, ok) = reader.next_line().unwrap();
    assert_eq!((second, ok.unwrap()), (2, b"{\"signals\":{}}".to_vec()));
    assert!(reader.next_line().is_none());
}

#[test]
fn batch_lines_parse_with_the_runtime_codes() {
    let default = "claims-approval@1.0.0".parse().unwrap();
    // A line and what it parses to: `(policy, execution id)` or the refusal's code.
    type ParseCase = (
        &'static str,
        Result<(&'static str, Option<&'static str>), &'static str>,
    );
    let cases: &[ParseCase] = &[
        (r#"{"signals":{}}"#, Ok(("claims-approval@1.0.0", None))),
        (
            r#"{"execution_id":"e-1","policy":"p@2.0.0","signals":{}}"#,
            Ok(("p@2.0.0", Some("e-1"))),
        ),
        (
            r#"{"signals":{},"extra":1}"#,
            Err("runtime.batch_line_invalid"),
        ),
        (r#"[1]"#, Err("runtime.batch_line_invalid")),
        (
            r#"{"policy":7,"signals":{}}"#,
            Err("runtime.batch_line_invalid"),
        ),
        (r#"{"policy":"p"}"#, Err("runtime.invalid_policy_reference")),
        (r#"{"policy":"p@1.0.0"}"#, Err("runtime.batch_line_invalid")),
        (
            r#"{"execution_id":"a b","signals":{}}"#,
            Err("runtime.invalid_execution_id"),
        ),
        (
            r#"{"signals":{}, "signals":{}}"#,
            Err("canon.duplicate_key"),
        ),
    ];
    for (line, expected) in cases {
        let got = BatchLine::parse(line.as_bytes(), Some(&default));
        match (expected, got) {
            (Ok((policy, id)), Ok(parsed)) => {
                assert_eq!(parsed.policy.to_string(), *policy, "{line}");
                assert_eq!(
                    parsed.execution_id.as_ref().map(|i| i.as_str()),
                    *id,
                    "{line}"
                );
            }
            (Err(code), Err(error)) => assert_eq!(error.code(), *code, "{line}"),
            (expected, got) => panic!("{line}: expected {expected:?}, got {got:?}"),
        }
    }
    let none = BatchLine::parse(br#"{"signals":{}}"#, None).unwrap_err();
    assert_eq!(none.code(), "runtime.batch_line_invalid");
    assert_eq!(
        batch_refusal_line(3, "runtime.replay_detected", "again", None).unwrap(),
        br#"{"error":{"code":"runtime.replay_detected","message":"again"},"line":3}"#
    );
    assert_eq!(
        batch_refusal_line(4, "replay.store_unavailable", "down", Some("claim-4")).unwrap(),
        br#"{"error":{"code":"replay.store_unavailable","message":"down"},"execution_id":"claim-4","line":4}"#
    );
}
