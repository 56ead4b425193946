//! Records stamped in the future.
//!
//! A record's timestamp becomes logical time, and logical time only moves forward: one
//! record dated years ahead would move the clock there, expire everyone's history and
//! alerts, and leave every later record behind the clock. So each source judges a
//! record's timestamp against its own clock before it hands the record on, and a
//! record further ahead than the tolerance is a dead letter (`future_timestamp`):
//!
//! - **Live** (Kafka): the clock is the wall clock. A record stamped more than the
//!   tolerance ahead of it is in the future.
//! - **Replay** (JSON-lines files): the clock is the replay's own progress, so a quiet gap
//!   in the recorded data still replays. A line is in the future when the next line of
//!   its file comes back down by more than the tolerance (the file had not reached that
//!   time), or when it is the last line of its file and lies more than the tolerance
//!   ahead of everything replayed before it (nothing confirms the jump). A gap followed
//!   by further lines is a genuine quiet spell and replays as it is.
//! - The embedded source stamps records with its own clock and needs no judging.
//!
//! The source then hands the record on at its clock's time (so it holds nothing back
//! and moves no watermark) with its own timestamp in
//! [`RawRecord::future_timestamp_ms`](crate::record::RawRecord::future_timestamp_ms),
//! and the ingestor dead-letters it.

use jiff::{SignedDuration, Timestamp};
use schemas::{DecodeError, ErrorCode};

use crate::record::RawRecord;

/// How far ahead of its source's clock a record may be stamped: an hour, as Apache
/// Kafka's `log.message.timestamp.after.max.ms` allows by default.
pub const DEFAULT_TOLERANCE_MS: i64 = 3_600_000;

/// Marks `rec` as stamped in the future if its timestamp is more than `tolerance_ms`
/// ahead of `clock_ms`, re-timing it to `at_ms` (where the source hands it on). Returns
/// whether it did.
pub fn judge(rec: &mut RawRecord, clock_ms: i64, tolerance_ms: i64, at_ms: i64) -> bool {
    if rec.future_timestamp_ms.is_none() && rec.timestamp_ms > clock_ms.saturating_add(tolerance_ms)
    {
        mark(rec, clock_ms, at_ms);
        return true;
    }
    false
}

/// Marks `rec` as stamped in the future against a clock at `clock_ms`, handing it on at
/// `at_ms`.
pub fn mark(rec: &mut RawRecord, clock_ms: i64, at_ms: i64) {
    rec.future_timestamp_ms = Some(rec.timestamp_ms);
    rec.headers
        .push((CLOCK_HEADER.to_string(), clock_ms.to_string().into_bytes()));
    rec.timestamp_ms = at_ms;
}

/// Header the source adds to a record it judged in the future: its clock then (ms).
const CLOCK_HEADER: &str = "fusion-source-clock-ms";

/// The source's clock (ms) when it judged `rec` to be in the future, if it did ([`mark`]).
pub fn clock_of(rec: &RawRecord) -> Option<i64> {
    rec.header(CLOCK_HEADER)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<i64>().ok())
}

/// The dead-letter reason for a record stamped `stamped_ms` by a source whose clock read
/// `clock_ms`, with `tolerance_ms` allowed.
pub fn error(rec: &RawRecord, stamped_ms: i64, tolerance_ms: i64) -> DecodeError {
    let clock_ms = clock_of(rec).unwrap_or(rec.timestamp_ms);
    let ahead = SignedDuration::from_millis(stamped_ms.saturating_sub(clock_ms));
    DecodeError::new(
        ErrorCode::FutureTimestamp,
        None,
        format!(
            "record stamped {} is {:#} ahead of its source's clock ({}); at most {:#} is \
             allowed (--future-tolerance): fix the producer's clock or the record's time",
            show(stamped_ms),
            ahead,
            show(clock_ms),
            SignedDuration::from_millis(tolerance_ms),
        ),
    )
}

fn show(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms} ms"), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Topic;

    fn rec(ts: i64) -> RawRecord {
        RawRecord {
            topic: Topic::SensorEvents,
            partition: 0,
            offset: 0,
            timestamp_ms: ts,
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
            future_timestamp_ms: None,
        }
    }

    #[test]
    fn a_record_beyond_the_tolerance_is_marked_and_re_timed() {
        let mut r = rec(10_000);
        assert!(
            !judge(&mut r, 5_000, 5_000, 4_000),
            "at the tolerance is fine"
        );
        assert_eq!(r.timestamp_ms, 10_000);
        assert!(judge(&mut r, 4_999, 5_000, 4_000));
        assert_eq!(r.future_timestamp_ms, Some(10_000));
        assert_eq!(r.timestamp_ms, 4_000);
        let e = error(&r, 10_000, 5_000);
        assert_eq!(e.code, ErrorCode::FutureTimestamp);
        assert!(e.detail.contains("1970-01-01T00:00:10Z"), "{}", e.detail);
        assert!(e.detail.contains("5s 1ms ahead"), "{}", e.detail);
    }

    #[test]
    fn the_far_future_does_not_overflow() {
        let mut r = rec(i64::MAX);
        assert!(judge(&mut r, i64::MIN, i64::MAX, 0));
        let e = error(&r, i64::MAX, i64::MAX);
        assert_eq!(e.code, ErrorCode::FutureTimestamp);
    }
}
