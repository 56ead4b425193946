//! Reading timestamps: RFC 3339 as [`jiff`] reads it, with a quick path for the form
//! producers write (`2026-11-23T10:00:00.000Z`).
//!
//! Every sensor event carries one, and a file replay reads it twice (to order the lines,
//! then to decode the record): jiff's general parser was a tenth of the ingest thread's
//! time. The quick path reads only `YYYY-MM-DDTHH:MM:SS[.f]Z` with one to nine digits of
//! fraction and a date and time that exist; anything else (lower-case `t` or `z`,
//! offsets, leap seconds, years 9999 and later…) goes to jiff, whose answer and error
//! messages are kept as they are. A property test checks that both agree wherever the
//! quick path answers.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use crate::Timestamp;

/// Reads an RFC 3339 timestamp, exactly as `text.parse::<jiff::Timestamp>()` does.
pub fn parse(text: &str) -> Result<Timestamp, jiff::Error> {
    match quick(text.as_bytes()) {
        Some(t) => Ok(t),
        None => text.parse(),
    }
}

/// Deserializes a [`Timestamp`] as jiff's own `Deserialize` does (same values, same
/// errors), through [`parse`]: for `#[serde(deserialize_with = …)]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
    deserializer.deserialize_str(TimestampVisitor)
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // jiff's words, so a wrong type is reported as before.
        f.write_str("a timestamp string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Timestamp, E> {
        parse(value).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Timestamp, E> {
        match quick(value) {
            Some(t) => Ok(t),
            None => jiff::fmt::temporal::DateTimeParser::new()
                .parse_timestamp(value)
                .map_err(E::custom),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, years 0000 to 9998 (all within jiff's range); none
/// for anything else.
fn quick(b: &[u8]) -> Option<Timestamp> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        rest @ ..,
    ] = b
    else {
        return None;
    };
    let year = digits(&[*y0, *y1, *y2, *y3])?;
    let month = digits(&[*mo0, *mo1])?;
    let day = digits(&[*d0, *d1])?;
    let hour = digits(&[*h0, *h1])?;
    let minute = digits(&[*mi0, *mi1])?;
    let second = digits(&[*s0, *s1])?;
    if year > 9998
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let n = digits(fraction)?;
            // Scale to nanoseconds: ".5" is 500,000,000 ns.
            n * 10u32.pow(9 - u32::try_from(fraction.len()).ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Timestamp::new(seconds, i32::try_from(nanos).ok()?).ok()
}

/// The decimal value of ASCII digits (at most nine); none if one is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// jiff's own reading, the oracle.
    fn jiff(text: &str) -> Result<Timestamp, String> {
        text.parse::<Timestamp>().map_err(|e| e.to_string())
    }

    #[test]
    fn the_quick_path_reads_what_producers_write() {
        for text in [
            "2025-01-01T00:00:00.000Z",
            "2026-11-23T10:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "2024-02-29T12:34:56.5Z",
            "0000-01-01T00:00:00Z",
            "9998-12-31T23:59:59.123456789Z",
        ] {
            assert_eq!(quick(text.as_bytes()), Some(jiff(text).unwrap()), "{text}");
        }
    }

    #[test]
    fn what_the_quick_path_leaves_is_read_by_jiff_with_its_errors() {
        for text in [
            "2026-11-23t10:00:00z",
            "2026-11-23T10:00:00+02:00",
            "2026-11-23 10:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T10:00:00.1234567891Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00",
            "9999-12-31T23:59:59Z",
            "",
            "yesterday",
        ] {
            assert_eq!(quick(text.as_bytes()), None, "{text}");
            assert_eq!(parse(text).map_err(|e| e.to_string()), jiff(text), "{text}");
        }
    }

    #[test]
    fn deserializing_reports_what_jiff_reports() {
        #[derive(serde::Deserialize, Debug)]
        struct Ours {
            #[serde(deserialize_with = "deserialize")]
            #[allow(dead_code)] // Only its errors are compared.
            at: Timestamp,
        }
        #[derive(serde::Deserialize, Debug)]
        struct Jiffs {
            #[allow(dead_code)] // Only its errors are compared.
            at: Timestamp,
        }
        for json in [
            r#"{"at":"2026-02-30T00:00:00Z"}"#,
            r#"{"at":"soon"}"#,
            r#"{"at":5}"#,
            r#"{"at":null}"#,
            r#"{"at":["2026-11-23T10:00:00Z"]}"#,
        ] {
            let ours = serde_json::from_str::<Ours>(json).unwrap_err().to_string();
            let jiffs = serde_json::from_str::<Jiffs>(json).unwrap_err().to_string();
            assert_eq!(ours, jiffs, "{json}");
        }
    }

    proptest! {
        #[test]
        fn the_quick_path_agrees_with_jiff(
            year in 0u32..10_000,
            month in 0u32..14,
            day in 0u32..33,
            hour in 0u32..25,
            minute in 0u32..61,
            second in 0u32..61,
            fraction in proptest::option::of("[0-9]{1,10}"),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text =
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z");
            if let Some(t) = quick(text.as_bytes()) {
                prop_assert_eq!(Ok(t), jiff(&text), "{}", text);
            }
            prop_assert_eq!(parse(&text).map_err(|e| e.to_string()), jiff(&text));
        }

        #[test]
        fn any_text_is_read_as_jiff_reads_it(text in "[0-9TZ:.+-]{0,32}") {
            prop_assert_eq!(parse(&text).map_err(|e| e.to_string()), jiff(&text));
        }
    }
}
