//! Conformance of `parmana-canon`: RFC 8785 vectors, ECMAScript number edges, UTF-16 key order and every strict-parse refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use parmana_canon::{CanonError, Digest, MAX_DEPTH, canonicalize, parse_strict};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors/rfc8785")
}

/// Canonicalizes `input` and compares with `expected`, both as text.
fn check(input: &str, expected: &str) {
    let got = canonicalize(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?} refused: {e}"));
    assert_eq!(String::from_utf8(got).unwrap(), expected, "input: {input}");
}

/// Parses `input` and checks it is refused with `code` at `offset`.
fn check_refused(input: &[u8], code: &str, offset: Option<usize>) {
    let err = parse_strict(input).expect_err("must be refused");
    assert_eq!(
        err.code(),
        code,
        "input {:?}: {err}",
        String::from_utf8_lossy(input)
    );
    if offset.is_some() {
        assert_eq!(
            err.offset(),
            offset,
            "input {:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn rfc8785_vectors_are_byte_exact() {
    let dir = vectors_dir();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("input"))
        .expect("vectors/rfc8785/input must exist in the repository")
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(
        names.len() >= 6,
        "expected the six RFC 8785 vectors, found {}",
        names.len()
    );
    for input_path in names {
        let stem = input_path.file_stem().unwrap().to_str().unwrap().to_owned();
        let input = std::fs::read(&input_path).unwrap();
        let expected = std::fs::read(dir.join("output").join(format!("{stem}.json"))).unwrap();
        let hex = std::fs::read_to_string(dir.join("outhex").join(format!("{stem}.txt"))).unwrap();
        let expected_from_hex: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(
            expected, expected_from_hex,
            "{stem}: output and outhex disagree"
        );
        let got = canonicalize(&input).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(got, expected, "{stem}: canonical bytes differ");
    }
}

#[test]
fn ecmascript_number_formatting_edges() {
    let cases = [
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("1e22", "1e+22"),
        ("1e-7", "1e-7"),
        ("0.000001", "0.000001"),
        ("5e-324", "5e-324"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("9007199254740991", "9007199254740991"),
        ("-9007199254740991", "-9007199254740991"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("1.0E2", "100"),
        ("100.000", "100"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("9.007199254740994e15", "9007199254740994"),
        ("0.1", "0.1"),
        ("[1e0,2.50,-3e-2]", "[1,2.5,-0.03]"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    // 0.1 + 0.2 computed, not parsed.
    let sum = parmana_canon::to_canonical_vec(&(0.1f64 + 0.2f64)).unwrap();
    assert_eq!(sum, b"0.30000000000000004");
}

#[test]
fn keys_sort_by_utf16_code_units() {
    // U+1F600 is D83D DE00 in UTF-16, which sorts before U+E000..U+FFFF, although its code point is larger.
    check(
        r#"{"\uFFFD":1,"😀":2,"\uE000":3,"a":4}"#,
        "{\"a\":4,\"😀\":2,\"\u{E000}\":3,\"\u{FFFD}\":1}",
    );
    check(
        r#"{"b":1,"a":{"d":1,"c":2},"A":0}"#,
        r#"{"A":0,"a":{"c":2,"d":1},"b":1}"#,
    );
}

#[test]
fn strings_use_minimal_escapes() {
    check(r#""\u0041\u00e9\/\u001f\u007f""#, "\"Aé/\\u001f\u{7f}\"");
    check(r#""\ud83d\ude00""#, "\"😀\"");
}

#[test]
fn each_refusal_has_its_own_code() {
    check_refused(br#"{"a":1,"a":2}"#, "canon.duplicate_key", Some(7));
    check_refused(br#"{"a":{"x":1,"x":1}}"#, "canon.duplicate_key", Some(12));
    check_refused(br#""\ud800""#, "canon.lone_surrogate", Some(1));
    check_refused(br#""\udc00\ud800""#, "canon.lone_surrogate", Some(1));
    check_refused(br#""\ud800\u0041""#, "canon.lone_surrogate", Some(1));
    check_refused(b"9007199254740995", "canon.integer_out_of_range", Some(0));
    check_refused(
        b"[-9007199254740993]",
        "canon.integer_out_of_range",
        Some(1),
    );
    check_refused(
        b"123456789012345678901234567890",
        "canon.integer_out_of_range",
        Some(0),
    );
    check_refused(b"9007199254740993", "canon.integer_out_of_range", Some(0));
    check_refused(
        b"18446744073709551616",
        "canon.integer_out_of_range",
        Some(0),
    );
    check_refused(b"1e400", "canon.number_out_of_range", Some(0));
    check_refused(b"-1.5e309", "canon.number_out_of_range", Some(0));
    check_refused(b"{\"a\":\"\xff\"}", "canon.invalid_utf8", Some(6));
    check_refused(b"\xef\xbb\xbf{}", "canon.syntax", Some(0));
    check_refused(b"{} x", "canon.trailing_data", Some(3));
    check_refused(b"{}{}", "canon.trailing_data", Some(2));
    check_refused(b"", "canon.unexpected_end", Some(0));
    check_refused(b"[1,", "canon.unexpected_end", Some(3));
    check_refused(b"tru", "canon.unexpected_end", Some(3));
    check_refused(b"NaN", "canon.syntax", Some(0));
    check_refused(b"Infinity", "canon.syntax", Some(0));
    check_refused(b"[1,]", "canon.syntax", Some(3));
    check_refused(b"01", "canon.syntax", Some(0));
    check_refused(b"1.", "canon.unexpected_end", Some(2));
    check_refused(b"\"a\tb\"", "canon.syntax", Some(2));
    check_refused(b"\"\\x\"", "canon.syntax", Some(2));
    check_refused(b"{'a':1}", "canon.syntax", Some(1));
}

/// RFC 8785 Appendix B: IEEE 754 doubles (as hex) and how ECMAScript writes them — checked
/// independently of `ryu-js` (Node's `String(x)` gives the same). Parmana writes every finite
/// one as the RFC does and reads its output back to the same double; NaN and Infinity (`None`)
/// have no JSON form.
#[test]
fn rfc8785_appendix_b_numbers() {
    let rows: [(&str, Option<&str>); 26] = [
        ("0000000000000000", Some("0")),
        ("8000000000000000", Some("0")),
        ("0000000000000001", Some("5e-324")),
        ("8000000000000001", Some("-5e-324")),
        ("7fefffffffffffff", Some("1.7976931348623157e+308")),
        ("ffefffffffffffff", Some("-1.7976931348623157e+308")),
        ("4340000000000000", Some("9007199254740992")),
        ("c340000000000000", Some("-9007199254740992")),
        // 2^68 is 295147905179352825856: RFC 8785 writes its shortest digits.
        ("4430000000000000", Some("295147905179352830000")),
        ("44b52d02c7e14af5", Some("9.999999999999997e+22")),
        ("44b52d02c7e14af6", Some("1e+23")),
        ("44b52d02c7e14af7", Some("1.0000000000000001e+23")),
        ("444b1ae4d6e2ef4e", Some("999999999999999700000")),
        ("444b1ae4d6e2ef4f", Some("999999999999999900000")),
        ("444b1ae4d6e2ef50", Some("1e+21")),
        ("3eb0c6f7a0b5ed8c", Some("9.999999999999997e-7")),
        ("3eb0c6f7a0b5ed8d", Some("0.000001")),
        ("41b3de4355555553", Some("333333333.3333332")),
        ("41b3de4355555554", Some("333333333.33333325")),
        ("41b3de4355555555", Some("333333333.3333333")),
        ("41b3de4355555556", Some("333333333.3333334")),
        ("41b3de4355555557", Some("333333333.33333343")),
        ("becbf647612f3696", Some("-0.0000033333333333333333")),
        ("43143ff3c1cb0959", Some("1424953923781206.2")),
        // NaN and Infinity have no JSON form.
        ("7fffffffffffffff", None),
        ("7ff0000000000000", None),
    ];
    for (hex, expected) in rows {
        let value = f64::from_bits(u64::from_str_radix(hex, 16).unwrap());
        let written = parmana_canon::to_canonical_vec(&value);
        match expected {
            Some(expected) => {
                assert_eq!(written.unwrap(), expected.as_bytes(), "{hex}");
                let read = parse_strict(expected.as_bytes()).unwrap();
                assert_eq!(read.as_f64(), Some(value), "{hex}");
            }
            None => assert_eq!(
                written.unwrap_err().code(),
                "canon.not_representable",
                "{hex}"
            ),
        }
    }
}

#[test]
fn large_integer_literals_are_accepted_only_when_exact_and_canonical() {
    // What RFC 8785 writes for whole doubles below 1e21 parses again, unchanged, where it is
    // their exact value; past 1e21 it writes an exponent, a double to every reader.
    check("100000000000000000000", "100000000000000000000");
    check("9007199254740992", "9007199254740992");
    check("-9007199254740994", "-9007199254740994");
    check("9007199254740992.0", "9007199254740992");
    check("90071992547409940e-1", "9007199254740994");
    check("1.2345678901234568e21", "1.2345678901234568e+21");
    // RFC 8785's own spellings, which it defines as their doubles (2^62, 1.2345678901234568e20,
    // 2^68): what every document signed holds, read again.
    check("4611686018427388000", "4611686018427388000");
    check("123456789012345680000", "123456789012345680000");
    check("295147905179352830000", "295147905179352830000");
    // And the same digits in another layout: what Python and serde_json write for a double.
    check("999999999999999900000.0", "999999999999999900000");
    check("1.2345678901234568e20", "123456789012345680000");
    check("4.611686018427388e+18", "4611686018427388000");
    // Past 53 bits and below 1e21, a number with a fraction or an exponent is taken only when
    // it is exactly its double or its shortest digits; an integer literal only in RFC 8785's
    // spelling.
    for refused in [
        // Exact, but RFC 8785 writes it otherwise (`1152921504606847000`): not canonical.
        "1152921504606846976",
        // Rounded to another double: `9007199254740992`.
        "9007199254740993",
        "9007199254740993.0",
        "9007199254740993e0",
        "-9.007199254740993e15",
        "9007199254740992.5",
        // Rounded to 1e21.
        "999999999999999999999.0",
    ] {
        check_refused(refused.as_bytes(), "canon.integer_out_of_range", Some(0));
    }
}

#[test]
fn depth_limit_is_exact() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse_strict(ok.as_bytes()).is_ok());
    let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let err = parse_strict(too_deep.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        CanonError::TooDeep {
            limit: MAX_DEPTH,
            offset: MAX_DEPTH
        }
    );
    // A hostile document far deeper than the limit is refused, not a stack overflow.
    let hostile = "[{\"a\":".repeat(100_000);
    assert_eq!(
        parse_strict(hostile.as_bytes()).unwrap_err().code(),
        "canon.too_deep"
    );
}

#[test]
fn whitespace_around_the_document_is_allowed() {
    check(" \t\r\n{ \"a\" : [ 1 , 2 ] } \n", r#"{"a":[1,2]}"#);
}

#[test]
fn digests_parse_strictly_and_round_trip() {
    let d = Digest::of(b"");
    assert_eq!(
        d.to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    for (bad, code) in [
        (
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "digest.unsupported_algorithm",
        ),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "digest.unsupported_algorithm",
        ),
        (
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "digest.not_lowercase_hex",
        ),
        ("sha256:e3b0", "digest.wrong_length"),
        (
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "digest.wrong_length",
        ),
        (
            "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "digest.not_lowercase_hex",
        ),
        (
            "sha256:é3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "digest.not_lowercase_hex",
        ),
        // 64 characters, 65 bytes: a character outside 0-9a-f, not a wrong length.
        (
            "sha256:éaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "digest.not_lowercase_hex",
        ),
    ] {
        assert_eq!(bad.parse::<Digest>().unwrap_err().code(), code, "{bad}");
    }
    assert_eq!(
        Digest::of_canonical(&serde_json::json!({"b": 1, "a": 2})).unwrap(),
        Digest::of(br#"{"a":2,"b":1}"#)
    );
}

/// Every ASCII character in every one of the 64 places: a digest reads only with a lowercase
/// hex digit there, and that digit's value lands in the right half of the right byte.
#[test]
fn each_hex_place_takes_exactly_the_lowercase_digits() {
    let digest = Digest::of(b"");
    let hex = digest.to_hex();
    for place in 0..64 {
        for character in (0_u8..0x80).map(char::from) {
            let mut changed = hex.clone();
            changed.replace_range(place..=place, &character.to_string());
            let read = Digest::from_hex(&changed);
            match character.to_digit(16) {
                Some(value) if !character.is_ascii_uppercase() => {
                    let mut expected = *digest.as_bytes();
                    let shift = if place % 2 == 0 { 4 } else { 0 };
                    let byte = &mut expected[place / 2];
                    *byte = (*byte & !(0x0f << shift)) | (u8::try_from(value).unwrap() << shift);
                    assert_eq!(read.unwrap(), Digest::from_bytes(expected), "{changed}");
                }
                _ => assert_eq!(
                    read.unwrap_err().code(),
                    "digest.not_lowercase_hex",
                    "{changed}"
                ),
            }
        }
    }
}

#[test]
fn values_json_cannot_carry_exactly_are_refused_by_the_encoder() {
    use parmana_canon::to_canonical_vec;
    use std::collections::BTreeMap;
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            to_canonical_vec(&x).unwrap_err().code(),
            "canon.not_representable"
        );
        assert_eq!(
            to_canonical_vec(&vec![1.0, x]).unwrap_err().code(),
            "canon.not_representable"
        );
    }
    assert_eq!(
        to_canonical_vec(&9_007_199_254_740_993_i64)
            .unwrap_err()
            .code(),
        "canon.not_representable"
    );
    assert_eq!(
        to_canonical_vec(&u64::MAX).unwrap_err().code(),
        "canon.not_representable"
    );
    // Exactly representable large integers are written as ECMAScript writes their double.
    assert_eq!(
        to_canonical_vec(&9_007_199_254_740_992_i64).unwrap(),
        b"9007199254740992"
    );
    assert_eq!(
        to_canonical_vec(&(1_i64 << 62)).unwrap(),
        b"4611686018427388000"
    );
    assert_eq!(to_canonical_vec(&1e21_f64).unwrap(), b"1e+21");
    let mut numeric_keys = BTreeMap::new();
    numeric_keys.insert(1, "one");
    assert_eq!(
        to_canonical_vec(&numeric_keys).unwrap_err().code(),
        "canon.not_representable"
    );
}

#[test]
fn the_encoder_writes_rust_shapes_as_serde_json_does_then_canonicalizes() {
    use parmana_canon::to_canonical_vec;
    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, bool),
        Struct { z: u8, a: Option<u8> },
    }
    #[derive(serde::Serialize)]
    struct Outer {
        zeta: Vec<Shape>,
        alpha: (char, f32),
        bytes: serde_json::Value,
    }
    let value = Outer {
        zeta: vec![
            Shape::Unit,
            Shape::Newtype(1),
            Shape::Tuple(2, true),
            Shape::Struct { z: 3, a: None },
        ],
        alpha: ('é', 0.5),
        bytes: serde_json::json!({"\u{10000}": 1, "\u{ffff}": 2}),
    };
    let expected = serde_jcs::to_vec(&value).unwrap();
    assert_eq!(to_canonical_vec(&value).unwrap(), expected);
    assert_eq!(
        String::from_utf8(expected).unwrap(),
        "{\"alpha\":[\"é\",0.5],\"bytes\":{\"\u{10000}\":1,\"\u{ffff}\":2},\"zeta\":[\"Unit\",{\"Newtype\":1},{\"Tuple\":[2,true]},{\"Struct\":{\"a\":null,\"z\":3}}]}"
    );
}

/// A key given twice is quoted by its first characters (`excerpt`), however long it is.
#[test]
fn a_duplicate_key_is_quoted_bounded() {
    let key = "k".repeat(10_000);
    let text = format!(r#"{{"{key}":1,"{key}":2}}"#);
    let error = parse_strict(text.as_bytes()).unwrap_err();
    let CanonError::DuplicateKey { key: quoted, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        quoted.chars().count(),
        parmana_canon::MAX_QUOTED_CHARS + 1,
        "{quoted}"
    );
    assert!(quoted.ends_with('…'));
    assert_eq!(parmana_canon::excerpt("short"), "short");
    assert!(error.to_string().len() < 400);
}

/// A number literal longer than any double needs is refused unread: Rust's reading of a long run
/// of digits offsetting an exponent of hundreds of thousands is not every reader's.
#[test]
fn number_literals_are_bounded_in_length() {
    let longest = format!(
        "0.{}5",
        "0".repeat(parmana_canon::reader::MAX_NUMBER_CHARS - 3)
    );
    assert_eq!(longest.len(), parmana_canon::reader::MAX_NUMBER_CHARS);
    assert!(parse_strict(longest.as_bytes()).is_ok());
    let offset = format!("0.{}5e700001", "0".repeat(700_000));
    check_refused(offset.as_bytes(), "canon.number_out_of_range", Some(0));
    let longer = format!(
        "[0.{}5]",
        "0".repeat(parmana_canon::reader::MAX_NUMBER_CHARS - 2)
    );
    check_refused(longer.as_bytes(), "canon.number_out_of_range", Some(1));
}

/// What the canonicalizer writes does not depend on `serde_json`'s features: a number is its
/// digits (with `arbitrary_precision` on, `serde_json` serializes one as a private struct, and
/// every digest would change silently), members sort whatever `preserve_order` keeps; a key
/// given twice through an escape collides; U+2028, U+2029 and other non-ASCII characters are
/// written as they are.
#[test]
fn canonical_output_does_not_depend_on_serde_json_features() {
    use parmana_canon::to_canonical_vec;
    let cases: [(serde_json::Value, &[u8]); 4] = [
        (serde_json::json!(1), b"1"),
        (serde_json::json!(-0.0), b"0"),
        (serde_json::json!(1.5e21), b"1.5e+21"),
        (
            serde_json::json!({"b": [1, 2.5], "a": "\u{2028}\u{2029}\u{e9}"}),
            "{\"a\":\"\u{2028}\u{2029}\u{e9}\",\"b\":[1,2.5]}".as_bytes(),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            to_canonical_vec(&value).unwrap(),
            expected,
            "{value}: {}",
            String::from_utf8_lossy(&to_canonical_vec(&value).unwrap())
        );
    }
    assert_eq!(
        canonicalize(br#""\u2028\u2029\u00e9""#).unwrap(),
        "\"\u{2028}\u{2029}\u{e9}\"".as_bytes()
    );
    let error = parse_strict(br#"{"a":1,"\u0061":2}"#).unwrap_err();
    assert!(
        matches!(error, CanonError::DuplicateKey { .. }),
        "{error:?}"
    );
}
