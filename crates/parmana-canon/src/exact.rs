//! Numbers past 53 bits written with a fraction or an exponent: read only when they are their double's exact value or its shortest spelling, so that nothing the caller meant is rounded away between what it wrote and what is signed.
//!
//! RFC 8785 numbers are IEEE 754 doubles; from 2^53 up to 10^21 it writes them as integers, with
//! the shortest digits that read back as the double (2^62 is `4611686018427388000`). An integer
//! literal there is read only when it is exactly that spelling (the reader's own rule); one
//! written with a fraction or an exponent is read when its value is exactly the double (`1e20`,
//! `9007199254740992.0`) or its digits are the double's shortest (`4.611686018427388e18`, as
//! Python and serde_json write 2^62), and refused when it carries digits the double does not
//! hold (`9007199254740993.0`, which would be `9007199254740992`). Below 2^53 every integer is
//! exact; from 10^21 on RFC 8785 writes an exponent, and a number is read as the double nearest
//! it, as every reader of doubles does.

/// 2^53: from here on, not every integer is a double.
const TWO_TO_THE_53: f64 = 9_007_199_254_740_992.0;

/// 10^21: from here on, RFC 8785 (ECMAScript) writes a double with an exponent.
const TEN_TO_THE_21: f64 = 1e21;

/// The longest exponent (in digits) read; a longer one denotes no integer below 10^21 that a
/// literal of sensible length could reach, and is refused.
const MAX_EXPONENT_DIGITS: usize = 18;

/// Whether a literal read as `value` must be exact: 2^53 ≤ |value| ≤ 10^21 — where RFC 8785
/// writes integers past 53 bits (every double there is an integer), and 10^21 itself, which a
/// literal just below it rounds to.
pub(crate) fn is_wide_integer(value: f64) -> bool {
    (TWO_TO_THE_53..=TEN_TO_THE_21).contains(&value.abs())
}

/// Whether the JSON number `literal` (strict grammar, checked by the reader) denotes exactly
/// `value`, a finite double; `false` for a value from 2^127 up (no exactness is judged there)
/// or below 2^53 (use [`is_wide_integer`] first).
pub(crate) fn denotes_exactly(literal: &str, value: f64) -> bool {
    const TWO_TO_THE_127: f64 = 1.7014118346046923e38;
    if !(TWO_TO_THE_53..TWO_TO_THE_127).contains(&value.abs()) {
        return false;
    }
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(unsigned) => (true, unsigned),
        None => (false, literal),
    };
    // Integral and below 2^127: exact in a u128.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "integral (past 2^53) and below 2^127, checked above"
    )]
    let magnitude = value.abs() as u128;
    negative == value.is_sign_negative() && integer_value(unsigned) == Some(magnitude)
}

/// Whether `literal` (strict grammar) is a shortest spelling of `value`, a finite double: the
/// same decimal as RFC 8785 writes it, in any layout (`4.611686018427388e18` for 2^62, as
/// `4611686018427388000`) — what every writer of doubles writes for it, and so what the caller
/// meant; a literal with other digits (`9007199254740993.0`) meant another number.
pub(crate) fn is_shortest_spelling(literal: &str, value: f64) -> bool {
    let negative = literal.starts_with('-');
    negative == value.is_sign_negative()
        && decimal(literal.trim_start_matches('-'))
            == decimal(ryu_js::Buffer::new().format_finite(value.abs()))
}

/// The decimal the unsigned JSON number `literal` is: its significant digits, with no zero at
/// either end, and the power of ten they are multiplied by (no digits for zero); `None` when
/// its exponent is too long.
fn decimal(literal: &str) -> Option<(String, i64)> {
    let (mantissa, exponent) = match literal.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, parse_exponent(exponent)?),
        None => (literal, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = whole.chars().chain(fraction.chars()).collect();
    let mut shift = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    while digits.ends_with('0') {
        digits.pop();
        shift = shift.checked_add(1)?;
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some((String::new(), 0));
    }
    Some((digits.to_owned(), shift))
}

/// The value of the unsigned JSON number `literal` when it is an integer below 2^128; `None`
/// when it is not an integer (a fraction left), is larger, or its exponent is too long.
fn integer_value(literal: &str) -> Option<u128> {
    let (digits, shift) = decimal(literal)?;
    if digits.is_empty() {
        return Some(0);
    }
    // A fraction left (a last digit past the point that is not zero): not an integer.
    let shift = u32::try_from(shift).ok()?;
    // At most 39 digits (u128's; the largest of them overflow, refused below).
    if digits.len().saturating_add(usize::try_from(shift).ok()?) > 39 {
        return None;
    }
    let significand: u128 = digits.parse().ok()?;
    significand.checked_mul(10_u128.checked_pow(shift)?)
}

/// An exponent's value: an optional sign, then digits (at most [`MAX_EXPONENT_DIGITS`] once
/// leading zeros are set aside).
fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    // Leading zeros say nothing (`1e0000000000000000020` is 10^20).
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_EXPONENT_DIGITS {
        return None;
    }
    let magnitude: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if text.starts_with('-') {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn literals_are_read_as_exact_integers_or_not_at_all() {
        for (literal, value) in [
            ("9007199254740993", Some(9_007_199_254_740_993)),
            ("9007199254740993.0", Some(9_007_199_254_740_993)),
            ("9007199254740993e0", Some(9_007_199_254_740_993)),
            ("90071992547409930e-1", Some(9_007_199_254_740_993)),
            ("0.9007199254740993e16", Some(9_007_199_254_740_993)),
            ("1e20", Some(100_000_000_000_000_000_000)),
            ("1E+20", Some(100_000_000_000_000_000_000)),
            ("000", Some(0)),
            ("0.0e5", Some(0)),
            ("9007199254740992.5", None),
            ("1e-1", None),
            ("1e39", None),
            ("340282366920938463463374607431768211456", None),
            ("1e9999999999999999999", None),
            ("1e0000000000000000020", Some(100_000_000_000_000_000_000)),
            ("5e-0000000000000000000", Some(5)),
        ] {
            assert_eq!(integer_value(literal), value, "{literal}");
        }
    }

    #[test]
    fn shortest_spellings_are_told_from_other_digits() {
        let two_to_the_62 = 4_611_686_018_427_387_904.0;
        for literal in [
            "4611686018427388000",
            "4.611686018427388e18",
            "4.611686018427388E+18",
            "46116860184273880e2",
            "0.4611686018427388e19",
        ] {
            assert!(is_shortest_spelling(literal, two_to_the_62), "{literal}");
        }
        for literal in [
            "4611686018427387904",
            "4.6116860184273879e18",
            "-4.611686018427388e18",
        ] {
            assert!(!is_shortest_spelling(literal, two_to_the_62), "{literal}");
        }
        assert!(is_shortest_spelling("-1e20", -1e20));
        assert!(!is_shortest_spelling(
            "9007199254740993.0",
            9_007_199_254_740_992.0
        ));
    }

    #[test]
    fn wide_integers_are_judged_exact_against_their_double() {
        // 2^53, 2^53 + 2, 10^20, 10^21: exact.
        for (literal, value) in [
            ("9007199254740992", 9_007_199_254_740_992.0),
            ("9007199254740994", 9_007_199_254_740_994.0),
            ("1e20", 1e20),
            ("1e21", 1e21),
            ("4611686018427387904", 4_611_686_018_427_387_904.0),
        ] {
            assert!(
                is_wide_integer(value) && denotes_exactly(literal, value),
                "{literal}"
            );
            let negative = format!("-{literal}");
            assert!(denotes_exactly(&negative, -value), "{literal}");
        }
        // RFC 8785's spelling of 2^62 is not 2^62's value; 999999999999999999999 rounds to 10^21.
        assert!(!denotes_exactly(
            "4611686018427388000",
            4_611_686_018_427_387_904.0
        ));
        assert!(!denotes_exactly("999999999999999999999.0", 1e21));
        assert!(!is_wide_integer(9_007_199_254_740_991.0));
        assert!(!is_wide_integer(1.0000000000000002e21));
        assert!(!denotes_exactly(
            "-9007199254740994",
            9_007_199_254_740_994.0
        ));
        assert!(!denotes_exactly(
            "9007199254740994",
            -9_007_199_254_740_994.0
        ));
        // Past 2^127 nothing is judged exact.
        assert!(!denotes_exactly("1e40", 1e40));
    }
}
