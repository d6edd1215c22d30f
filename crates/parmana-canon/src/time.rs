//! `Timestamp`: a UTC instant at one-second precision, written exactly `YYYY-MM-DDTHH:MM:SSZ`.

use std::fmt;

use crate::CanonError;

/// A UTC instant at one-second precision.
///
/// Its only text form is RFC 3339 in UTC with seconds and a `Z` suffix
/// (`2026-11-28T21:00:00Z`): one instant, one spelling, so that timestamps
/// inside signed documents have a canonical form. Years 0000–9999 only.
///
/// ```
/// use parmana_canon::Timestamp;
/// let t = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
/// assert_eq!(t.to_string(), "2026-11-28T21:00:00Z");
/// assert_eq!(Timestamp::from_unix_seconds(0).unwrap().to_string(), "1970-01-01T00:00:00Z");
/// assert!(Timestamp::parse("2026-11-28T21:00:00+00:00").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Seconds from 1970-01-01 to 0000-01-01 and to 10000-01-01.
const MIN_SECONDS: i64 = -62_167_219_200;
const MAX_SECONDS: i64 = 253_402_300_799;

impl Timestamp {
    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (no fraction, no offset other than `Z`, no leap second).
    pub fn parse(text: &str) -> Result<Self, CanonError> {
        let invalid = || CanonError::InvalidTimestamp {
            text: text.chars().take(40).collect(),
        };
        let b = text.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return Err(invalid());
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, CanonError> {
            let mut n = 0i64;
            for &c in &b[range] {
                if !c.is_ascii_digit() {
                    return Err(invalid());
                }
                n = n * 10 + i64::from(c - b'0');
            }
            Ok(n)
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(invalid());
        }
        let days = days_from_civil(year, month, day);
        Ok(Self(days * 86_400 + hour * 3_600 + minute * 60 + second))
    }

    /// The instant `seconds` after 1970-01-01T00:00:00Z, if its year is within 0000–9999.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, CanonError> {
        if (MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(CanonError::InvalidTimestamp {
                text: seconds.to_string(),
            })
        }
    }

    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The instant `seconds` after 1970-01-01T00:00:00Z, clamped to the years 0000–9999.
    pub const fn from_unix_seconds_saturating(seconds: i64) -> Self {
        if seconds < MIN_SECONDS {
            Self(MIN_SECONDS)
        } else if seconds > MAX_SECONDS {
            Self(MAX_SECONDS)
        } else {
            Self(seconds)
        }
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub const fn unix_seconds(&self) -> i64 {
        self.0
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// The text form `YYYY-MM-DDTHH:MM:SSZ` in a stack buffer.
    fn text(&self) -> [u8; 20] {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                // Every field is within its width (years 0000-9999 are enforced at construction).
                out[i] = b'0' + u8::try_from(value.rem_euclid(10)).unwrap_or(0);
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, secs / 3_600);
        put(14, 2, secs % 3_600 / 60);
        put(17, 2, secs % 60);
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.text()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = CanonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1900-01-01 .. 2300-01-01 covers every leap-year rule.
        let start = days_from_civil(1900, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        for days in start..end {
            let t = Timestamp(days * 86_400 + 3_661);
            let text = t.to_string();
            assert_eq!(Timestamp::parse(&text).unwrap(), t, "{text}");
        }
    }

    #[test]
    fn known_instants() {
        for (text, seconds) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:00:00Z", 951_825_600),
            ("2026-11-28T21:00:00Z", 1_795_899_600),
            ("0000-01-01T00:00:00Z", MIN_SECONDS),
            ("9999-12-31T23:59:59Z", MAX_SECONDS),
            ("1969-12-31T23:59:59Z", -1),
        ] {
            assert_eq!(
                Timestamp::parse(text).unwrap().unix_seconds(),
                seconds,
                "{text}"
            );
            assert_eq!(
                Timestamp::from_unix_seconds(seconds).unwrap().to_string(),
                text
            );
        }
        assert!(Timestamp::from_unix_seconds(MAX_SECONDS + 1).is_err());
        assert!(Timestamp::from_unix_seconds(MIN_SECONDS - 1).is_err());
        assert_eq!(
            Timestamp::from_unix_seconds_saturating(i64::MAX).unix_seconds(),
            MAX_SECONDS
        );
        assert_eq!(
            Timestamp::from_unix_seconds_saturating(i64::MIN).unix_seconds(),
            MIN_SECONDS
        );
        assert_eq!(Timestamp::from_unix_seconds_saturating(7).unix_seconds(), 7);
        assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn other_spellings_are_refused() {
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28T21:00:00",
            "2026-11-28T21:00:00z",
            "2026-11-28t21:00:00Z",
            "2026-11-28T21:00:00.5Z",
            "2026-11-28T21:00:00+00:00",
            "2026-11-28 21:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T23:60:00Z",
            "2026-11-28T23:59:60Z",
            "+026-11-28T21:00:00Z",
            "2026-11-00T21:00:00Z",
            "２026-11-28T21:00:00Z",
        ] {
            let err = Timestamp::parse(bad).unwrap_err();
            assert_eq!(err.code(), "canon.invalid_timestamp", "{bad}");
        }
        assert!(Timestamp::parse("2000-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let t = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-28T21:00:00Z\""
        );
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"2026-11-28T21:00:00Z\"").unwrap(),
            t
        );
        assert!(serde_json::from_str::<Timestamp>("\"2026-11-28T21:00Z\"").is_err());
    }
}
