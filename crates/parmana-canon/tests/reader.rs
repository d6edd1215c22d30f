//! The strict pull reader token by token: what each document reads as, and where each refusal is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use parmana_canon::reader::{JsonNumber, Reader, Token};
use parmana_canon::{CanonError, MAX_DEPTH};

/// Reads a whole document and writes what the reader saw, one token per word:
/// `{` `}` `[` `]`, `key@offset`, `s:text` (`e:` when escaped), `i:n`, `f:x`, `true`, `null`.
fn tokens(input: &[u8]) -> Result<String, CanonError> {
    let mut reader = Reader::new(input)?;
    let mut out = Vec::new();
    value(&mut reader, &mut out)?;
    reader.finish()?;
    Ok(out.join(" "))
}

fn value(reader: &mut Reader<'_>, out: &mut Vec<String>) -> Result<(), CanonError> {
    match reader.value()? {
        Token::BeginObject => {
            out.push("{".into());
            while let Some(key) = reader.member()? {
                let key = key.value.to_owned();
                out.push(format!("{key}@{}", reader.token_offset()));
                value(reader, out)?;
            }
            out.push("}".into());
        }
        Token::BeginArray => {
            out.push("[".into());
            while reader.element()? {
                value(reader, out)?;
            }
            out.push("]".into());
        }
        Token::String(text) => {
            let tag = if text.escaped { "e" } else { "s" };
            out.push(format!("{tag}:{}", text.value));
        }
        Token::Number(JsonNumber::Int(n)) => out.push(format!("i:{n}")),
        Token::Number(JsonNumber::Float(f)) => out.push(format!("f:{f:?}")),
        Token::Bool(b) => out.push(b.to_string()),
        Token::Null => out.push("null".into()),
    }
    Ok(())
}

#[test]
fn documents_read_as_tokens() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"a": 1, "b": [true, null, "x"]}"#,
            "{ a@1 i:1 b@9 [ true null s:x ] }",
        ),
        (" [ ] ", "[ ]"),
        ("{}", "{ }"),
        (
            r#"["a\nb", "\u00e9", "é", "\ud83d\ude00"]"#,
            "[ e:a\nb e:é s:é e:😀 ]",
        ),
        ("-0", "i:0"),
        ("-0.0", "f:-0.0"),
        ("9007199254740991", "i:9007199254740991"),
        ("-9007199254740991", "i:-9007199254740991"),
        ("9007199254740992", "f:9007199254740992.0"),
        ("100000000000000000000", "f:1e20"),
        ("1E2", "f:100.0"),
        ("2.5e-3", "f:0.0025"),
        (r#"{"k\"ey": {"": []}}"#, "{ k\"ey@1 { @11 [ ] } }"),
    ];
    for (input, expected) in cases {
        assert_eq!(tokens(input.as_bytes()).unwrap(), *expected, "{input}");
    }
}

#[test]
fn refusals_have_their_code_and_offset() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let cases: Vec<(Vec<u8>, &str, usize)> = vec![
        (b"[1, \xff]".to_vec(), "canon.invalid_utf8", 4),
        (br#"["\ud800"]"#.to_vec(), "canon.lone_surrogate", 2),
        (br#"["\udc00\ud800"]"#.to_vec(), "canon.lone_surrogate", 2),
        (
            b"9007199254740993".to_vec(),
            "canon.integer_out_of_range",
            0,
        ),
        (
            b"[-9007199254740993]".to_vec(),
            "canon.integer_out_of_range",
            1,
        ),
        (b"1e400".to_vec(), "canon.number_out_of_range", 0),
        (
            nested(MAX_DEPTH + 1).into_bytes(),
            "canon.too_deep",
            MAX_DEPTH,
        ),
        (b"{} {}".to_vec(), "canon.trailing_data", 3),
        (b"{\"a\": ".to_vec(), "canon.unexpected_end", 6),
        (b"[1,]".to_vec(), "canon.syntax", 3),
        (b"{\"a\" 1}".to_vec(), "canon.syntax", 5),
        (b"{\"a\": 1 \"b\": 2}".to_vec(), "canon.syntax", 8),
        (b"01".to_vec(), "canon.syntax", 0),
        (b"[tru]".to_vec(), "canon.syntax", 1),
        (b"\"a\tb\"".to_vec(), "canon.syntax", 2),
        (b"\"\\x\"".to_vec(), "canon.syntax", 2),
    ];
    for (input, code, offset) in cases {
        let err = tokens(&input).expect_err("must be refused");
        let shown = String::from_utf8_lossy(&input).into_owned();
        assert_eq!(
            (err.code(), err.offset()),
            (code, Some(offset)),
            "{shown}: {err}"
        );
    }
    // The deepest accepted nesting, and the depth the reader reports inside it.
    assert!(tokens(nested(MAX_DEPTH).as_bytes()).is_ok());
    let mut reader = Reader::new(b"[[{}]]").unwrap();
    reader.value().unwrap();
    for _ in 0..2 {
        assert!(reader.element().unwrap());
        reader.value().unwrap();
    }
    assert_eq!(reader.depth(), 3);
}
