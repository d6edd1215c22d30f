//! Property tests: canonicalization is idempotent and round-trips, and the parser never panics: what it accepts is a fixed point of canonical encoding, what it refuses has a `canon.` code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use parmana_canon::{canonicalize, canonicalize_value, parse_strict};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-9_007_199_254_740_991i64..=9_007_199_254_740_991).prop_map(|n| Value::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_form_is_a_fixed_point(value in json_value()) {
        let once = canonicalize_value(&value).unwrap();
        let twice = canonicalize(&once).unwrap();
        prop_assert_eq!(&once, &twice);
        let reparsed = parse_strict(&once).unwrap();
        prop_assert_eq!(canonicalize_value(&reparsed).unwrap(), once);
    }

    #[test]
    fn pretty_and_compact_text_give_the_same_canonical_bytes(value in json_value()) {
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(canonicalize(&pretty).unwrap(), canonicalize(&compact).unwrap());
    }

    #[test]
    fn our_encoder_agrees_with_serde_jcs(value in json_value()) {
        let ours = canonicalize_value(&value).unwrap();
        let reference = serde_jcs::to_vec(&value).unwrap();
        prop_assert_eq!(ours, reference);
    }

    /// (`serde_jcs` formats with the same `ryu-js`: this checks the encoder's handling around
    /// it; the digits themselves are checked against RFC 8785's Appendix B in `canon.rs`.)
    #[test]
    fn our_encoder_agrees_with_serde_jcs_on_any_double(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        prop_assert_eq!(parmana_canon::to_canonical_vec(&x).unwrap(), serde_jcs::to_vec(&x).unwrap());
    }

    /// Integers past 53 bits, below 10^21 (where RFC 8785 writes integers): an integer literal
    /// is taken exactly when it is RFC 8785's spelling of its double; the same value with `.0`
    /// when it is its double's value or those same shortest digits — never rounded otherwise.
    #[test]
    fn wide_integers_are_taken_only_unrounded(n in 9_007_199_254_740_992_u128..1_000_000_000_000_000_000_000) {
        #[allow(clippy::cast_precision_loss)]
        let double = n as f64;
        let text = n.to_string();
        let spelled = ryu_js::Buffer::new().format_finite(double).to_owned();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let exact = double as u128 == n;
        let integer = parse_strict(text.as_bytes());
        prop_assert_eq!(integer.is_ok(), spelled == text, "{}", text);
        let fraction = parse_strict(format!("{text}.0").as_bytes());
        prop_assert_eq!(fraction.is_ok(), exact || spelled == text, "{}.0", text);
        for refused in [integer.err(), fraction.err()].into_iter().flatten() {
            prop_assert_eq!(refused.code(), "canon.integer_out_of_range");
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_parse_outcome(&bytes)?;
    }

    #[test]
    fn parser_never_panics_on_json_like_bytes(
        parts in prop::collection::vec(
            prop_oneof![
                Just(&b"{"[..]), Just(&b"}"[..]), Just(&b"["[..]), Just(&b"]"[..]), Just(&b","[..]),
                Just(&b":"[..]), Just(&b"\""[..]), Just(&b"\\u"[..]), Just(&b"d800"[..]), Just(&b"1e"[..]),
                Just(&b"-"[..]), Just(&b"0"[..]), Just(&b"9"[..]), Just(&b"."[..]), Just(&b"true"[..]),
                Just(&b"\xff"[..]), Just(&b" "[..]),
            ],
            0..64,
        )
    ) {
        let bytes: Vec<u8> = parts.concat();
        check_parse_outcome(&bytes)?;
    }
}

/// What any input must come to: accepted, it encodes to canonical bytes that parse back to the
/// same value and encode to themselves (a fixed point); refused, with a `canon.` code and an
/// offset inside the input.
fn check_parse_outcome(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_strict(bytes) {
        Ok(value) => {
            let canonical = canonicalize_value(&value).unwrap();
            let again = parse_strict(&canonical).unwrap();
            // The same value, numbers compared as the numbers they are: `1e0` comes back as
            // `1` (one number, written once canonically), which serde's `Value` tells apart.
            prop_assert!(same_value(&again, &value), "{again:?} / {value:?}");
            prop_assert_eq!(canonicalize_value(&again).unwrap(), canonical);
        }
        Err(error) => {
            prop_assert!(error.code().starts_with("canon."), "{}", error.code());
            prop_assert!(
                error.offset().is_none_or(|offset| offset <= bytes.len()),
                "{error:?} past {} bytes",
                bytes.len()
            );
        }
    }
    Ok(())
}

/// Whether `a` and `b` are the same JSON value, numbers compared as IEEE doubles (as RFC 8785
/// reads them).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_value(x, y)))
        }
        (x, y) => x == y,
    }
}
