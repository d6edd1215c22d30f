//! Exact integers beyond ±(2^53−1): a number RFC 8785 writes as an integer past 53 bits is taken (parsed) or written (encoded) only when it is exactly its double, so that a reader of exact integers and a reader of doubles read one value.
//!
//! RFC 8785 numbers are IEEE 754 doubles, and from 2^53 up to 10^21 it writes them as integers
//! with the shortest digits that read back as the double: 2^62 is written
//! `4611686018427388000`, which a reader of exact integers (Python, Go's `big`, Java's
//! `BigDecimal`) takes for another number than 4611686018427387904. So there, a double is
//! written only when its RFC 8785 spelling is its exact value (`9007199254740994`,
//! `100000000000000000000`), and a literal is taken only when it denotes its double exactly,
//! whatever its spelling (`9007199254740993.0` would be rounded: refused). Below 2^53 every
//! integer is exact; from 10^21 on RFC 8785 writes an exponent, read as a double by every reader.

/// 2^53: from here on, not every integer is a double.
const TWO_TO_THE_53: f64 = 9_007_199_254_740_992.0;

/// 10^21: from here on, RFC 8785 (ECMAScript) writes a double with an exponent.
const TEN_TO_THE_21: f64 = 1e21;

/// The longest exponent (in digits) read; a longer one denotes no integer below 10^21 that a
/// literal of sensible length could reach, and is refused.
const MAX_EXPONENT_DIGITS: usize = 18;

/// Whether RFC 8785 writes `value` as an integer past 53 bits: 2^53 ≤ |value| < 10^21 (every
/// double there is an integer).
pub(crate) fn is_wide_integer(value: f64) -> bool {
    (TWO_TO_THE_53..TEN_TO_THE_21).contains(&value.abs())
}

/// Whether RFC 8785's spelling of `value`, a wide integer ([`is_wide_integer`]), is its exact
/// value.
pub(crate) fn spelled_exactly(value: f64) -> bool {
    denotes_exactly(ryu_js::Buffer::new().format_finite(value), value)
}

/// Whether the JSON number `literal` (strict grammar, checked by the reader) denotes exactly
/// `value`, a wide integer ([`is_wide_integer`]).
pub(crate) fn denotes_exactly(literal: &str, value: f64) -> bool {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(unsigned) => (true, unsigned),
        None => (false, literal),
    };
    // Below 10^21 < 2^70 and integral: exact in a u128.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a wide integer is integral and below 10^21"
    )]
    let magnitude = value.abs() as u128;
    negative == value.is_sign_negative() && integer_value(unsigned) == Some(magnitude)
}

/// The value of the unsigned JSON number `literal` when it is an integer below 2^128; `None`
/// when it is not an integer (a fraction left), is larger, or its exponent is too long.
fn integer_value(literal: &str) -> Option<u128> {
    let (mantissa, exponent) = match literal.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, parse_exponent(exponent)?),
        None => (literal, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The value is `digits` × 10^`shift`, with no zero at either end of `digits`.
    let mut digits: String = whole.chars().chain(fraction.chars()).collect();
    let mut shift = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    while digits.ends_with('0') {
        digits.pop();
        shift = shift.checked_add(1)?;
    }
    let digits = digits.trim_start_matches('0');
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

/// An exponent's value: an optional sign, then digits (at most [`MAX_EXPONENT_DIGITS`]).
fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > MAX_EXPONENT_DIGITS {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
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
        ] {
            assert_eq!(integer_value(literal), value, "{literal}");
        }
    }

    #[test]
    fn wide_integers_are_spelled_exactly_or_refused() {
        // 2^53, 2^53 + 2, 10^20: RFC 8785 writes their exact value.
        for value in [9_007_199_254_740_992.0, 9_007_199_254_740_994.0, 1e20] {
            assert!(is_wide_integer(value) && spelled_exactly(value), "{value}");
            assert!(
                is_wide_integer(-value) && spelled_exactly(-value),
                "{value}"
            );
        }
        // 2^62 is written `4611686018427388000`; 2^68 `295147905179352830000`.
        for value in [4_611_686_018_427_387_904.0, 295_147_905_179_352_825_856.0] {
            assert!(is_wide_integer(value) && !spelled_exactly(value), "{value}");
        }
        assert!(!is_wide_integer(9_007_199_254_740_991.0));
        assert!(!is_wide_integer(1e21));
        assert!(!denotes_exactly(
            "-9007199254740994",
            9_007_199_254_740_994.0
        ));
        assert!(!denotes_exactly(
            "9007199254740994",
            -9_007_199_254_740_994.0
        ));
    }
}
