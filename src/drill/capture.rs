//! Capture files: the input records of a period with the logical time each one got, so a
//! drill replays exactly what live operations saw.
//!
//! # Format (JSON lines)
//! The first line is a header, `{"fusion_capture": 1, "epoch_ms": 20, "source": "…"}`;
//! every other line is one input record as it was handed on:
//! `{"topic": "sensor_events", "partition": -1, "offset": 12, "timestamp_ms": …,
//! "time_ms": …, "value": "<the record's bytes>"}` (`value_hex` instead of `value` for
//! bytes that are not UTF-8). `timestamp_ms` is the record's own timestamp (Kafka's, or
//! the natural time of a file line), `time_ms` the logical time it was handed on at (to
//! the dataflow or to the dead letters), so a record that arrived late replays late.
//! Lines are in the order the records were handed on, so `time_ms` never decreases.
//!
//! [`Recorder`] writes a capture while any source is read (`fusion run --capture-out`);
//! [`CaptureSource`] replays one, paced by a speed-up factor and shifted in time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use ingest::record::{Poll, RawRecord, Source, SourceError};
use schemas::Topic;
use serde::{Deserialize, Serialize};

/// The capture format this release writes and reads.
pub const CAPTURE_VERSION: u32 = 1;

/// The first line of a capture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Format version ([`CAPTURE_VERSION`]).
    pub fusion_capture: u32,
    /// The epoch length of the run that was captured, ms.
    pub epoch_ms: u64,
    /// What was captured (a directory, a broker), for people.
    pub source: String,
    /// The period asked for, if one was (logical ms): the drill's default period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    /// End of the period asked for; records after it are not in the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<u64>,
}

/// One record of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Its input topic.
    pub topic: Topic,
    /// Its partition (-1 for files).
    pub partition: i32,
    /// Its offset (line number for files).
    pub offset: i64,
    /// Its own timestamp, ms.
    pub timestamp_ms: i64,
    /// The logical time it was handed on at, ms.
    pub time_ms: u64,
    /// Its bytes, when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Its bytes in hex, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

impl Line {
    /// The line of `rec`, handed on at `time_ms`.
    pub fn of(rec: &RawRecord, time_ms: u64) -> Self {
        let (value, value_hex) = match std::str::from_utf8(&rec.payload) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(hex::encode(&rec.payload))),
        };
        Self {
            topic: rec.topic,
            partition: rec.partition,
            offset: rec.offset,
            timestamp_ms: rec.future_timestamp_ms.unwrap_or(rec.timestamp_ms),
            time_ms,
            value,
            value_hex,
        }
    }

    /// The record's bytes.
    pub fn payload(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.value, &self.value_hex) {
            (Some(v), _) => Ok(v.as_bytes().to_vec()),
            (None, Some(h)) => hex::decode(h).context("value_hex is not hex"),
            (None, None) => anyhow::bail!("the record has neither value nor value_hex"),
        }
    }
}

/// Reads a capture, line by line.
pub struct Reader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line_no: usize,
    /// Its header.
    pub header: Header,
}

impl Reader {
    /// Opens the capture at `path` and reads its header.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open the capture {}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines
            .next()
            .transpose()
            .with_context(|| format!("cannot read the capture {}", path.display()))?
            .with_context(|| format!("the capture {} is empty", path.display()))?;
        let header: Header = serde_json::from_str(first.trim_start_matches('\u{feff}'))
            .with_context(|| {
                format!(
                    "{}:1 is not a capture header (a capture starts with {{\"fusion_capture\": {CAPTURE_VERSION}, …}})",
                    path.display()
                )
            })?;
        if header.fusion_capture != CAPTURE_VERSION {
            anyhow::bail!(
                "{} has capture format {}; this release reads format {CAPTURE_VERSION}",
                path.display(),
                header.fusion_capture
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            lines,
            line_no: 1,
            header,
        })
    }

    /// The next record, if any; a line that is not a record is an error naming it.
    pub fn next_line(&mut self) -> anyhow::Result<Option<Line>> {
        loop {
            let Some(text) = self.lines.next() else {
                return Ok(None);
            };
            self.line_no += 1;
            let text =
                text.with_context(|| format!("cannot read the capture {}", self.path.display()))?;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}:{} is not a capture record",
                    self.path.display(),
                    self.line_no
                )
            })?;
            return Ok(Some(line));
        }
    }
}

/// Wraps a source and writes every record it hands on, with its logical time, to a capture.
pub struct Recorder {
    inner: Box<dyn Source>,
    /// Records polled and not yet routed, in order.
    pending: VecDeque<RawRecord>,
    out: BufWriter<File>,
    path: PathBuf,
    /// The first write error, reported at the next poll.
    failed: Option<std::io::Error>,
    /// Records handed on after this logical time are not written.
    until_ms: Option<u64>,
    /// Records written.
    pub written: Arc<AtomicU64>,
}

impl Recorder {
    /// Records `inner` into a new capture at `path`.
    pub fn create(
        inner: Box<dyn Source>,
        path: &Path,
        epoch_ms: u64,
        source: String,
    ) -> anyhow::Result<Self> {
        Self::create_for(inner, path, epoch_ms, source, None)
    }

    /// Records `inner` into a new capture at `path`, keeping only the records handed on
    /// up to the end of `period` (logical ms), which the header names.
    pub fn create_for(
        inner: Box<dyn Source>,
        path: &Path,
        epoch_ms: u64,
        source: String,
        period: Option<(u64, u64)>,
    ) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the capture {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let header = Header {
            fusion_capture: CAPTURE_VERSION,
            epoch_ms,
            source,
            from_ms: period.map(|p| p.0),
            to_ms: period.map(|p| p.1),
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        Ok(Self {
            inner,
            pending: VecDeque::new(),
            out,
            path: path.to_path_buf(),
            failed: None,
            until_ms: period.map(|p| p.1),
            written: Arc::default(),
        })
    }

    fn io(&self, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl Source for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        if let Some(e) = self.failed.take() {
            return Err(self.io(e));
        }
        let poll = self.inner.poll(max)?;
        match &poll {
            Poll::Records(records) => self.pending.extend(records.iter().cloned()),
            Poll::Exhausted => {
                if let Err(e) = self.out.flush() {
                    return Err(self.io(e));
                }
            }
            Poll::Idle => {}
        }
        Ok(poll)
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.inner.watermark_ms()
    }

    fn rehydration(&self) -> Option<std::time::Duration> {
        self.inner.rehydration()
    }

    fn on_routed(&mut self, topic: Topic, partition: i32, offset: i64, time_ms: u64) {
        // Records are routed in the order they were polled.
        if let Some(rec) = self.pending.pop_front() {
            if (rec.topic, rec.partition, rec.offset) == (topic, partition, offset) {
                if self.until_ms.is_some_and(|u| time_ms > u) {
                    self.inner.on_routed(topic, partition, offset, time_ms);
                    return;
                }
                self.written.fetch_add(1, Ordering::Relaxed);
                let line = Line::of(&rec, time_ms);
                let written = serde_json::to_writer(&mut self.out, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| self.out.write_all(b"\n"));
                if let Err(e) = written
                    && self.failed.is_none()
                {
                    self.failed = Some(e);
                }
            } else if self.failed.is_none() {
                self.failed = Some(std::io::Error::other(format!(
                    "records were routed out of order ({topic:?}/{partition}/{offset} after polling {:?}/{}/{}); the capture would be wrong",
                    rec.topic, rec.partition, rec.offset
                )));
            }
        }
        self.inner.on_routed(topic, partition, offset, time_ms);
    }

    fn commit_before(&mut self, frontier_ms: u64) -> Result<(), SourceError> {
        if let Err(e) = self.out.flush() {
            return Err(self.io(e));
        }
        self.inner.commit_before(frontier_ms)
    }
}

/// One record to replay: from the capture or injected.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The logical time it is handed on at, shifted.
    pub time_ms: u64,
    /// The record, its timestamps shifted.
    pub record: RawRecord,
}

/// Replays a capture (and injects) as a source: records before the drill period as fast
/// as they can go (the state the drill starts from), the period itself paced at `speed`
/// times the wall clock (0: as fast as possible), every time shifted by `shift_ms`.
///
/// A record's logical time is the one it had when captured (shifted): the source hands
/// records on at exactly that timestamp and never lets its watermark pass the next one,
/// so the router gives each record its captured time. The content's own timestamps are
/// shifted too ([`shift_record`]), so event-time windows and retention behave as they did.
pub struct CaptureSource {
    reader: Reader,
    name: String,
    next: Option<Replayed>,
    injects: VecDeque<Replayed>,
    shift_ms: i64,
    /// Drill period, shifted.
    from_ms: u64,
    to_ms: u64,
    speed: f64,
    tolerance_ms: i64,
    /// Wall time at which the drill period started replaying.
    period_started: Option<Instant>,
    watermark: Option<i64>,
    done: bool,
    /// Every record of the period has been read from the capture.
    read_all: bool,
    /// The first error reading the capture, reported at the next poll.
    error: Option<String>,
}

impl CaptureSource {
    /// A source replaying `reader` with `injects` (sorted by time), for the shifted drill
    /// period `[from_ms, to_ms]`.
    pub fn new(
        reader: Reader,
        injects: Vec<Replayed>,
        shift_ms: i64,
        (from_ms, to_ms): (u64, u64),
        speed: f64,
        tolerance_ms: i64,
    ) -> Self {
        Self {
            name: format!("capture {}", reader.path.display()),
            reader,
            next: None,
            injects: injects.into(),
            shift_ms,
            from_ms,
            to_ms,
            speed,
            tolerance_ms,
            period_started: None,
            watermark: None,
            done: false,
            read_all: false,
            error: None,
        }
    }

    /// The logical time (shifted) the replay has reached by the wall clock.
    fn paced_now(&mut self) -> u64 {
        if self.speed <= 0.0 {
            return u64::MAX;
        }
        let started = *self.period_started.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed().as_secs_f64() * 1000.0 * self.speed;
        self.from_ms.saturating_add(elapsed as u64)
    }

    /// The next captured record within the period, shifted, read ahead.
    fn fill(&mut self) -> anyhow::Result<()> {
        if self.next.is_some() || self.read_all {
            return Ok(());
        }
        if let Some(line) = self.reader.next_line()? {
            let time_ms = shift_time(line.time_ms, self.shift_ms);
            if time_ms > self.to_ms {
                // Times never decrease: nothing after it is in the period either.
                self.read_all = true;
                return Ok(());
            }
            let payload = line.payload()?;
            let shifted = shift_record(&payload, self.shift_ms);
            let timestamp_ms = line.timestamp_ms.saturating_add(self.shift_ms);
            let stamp = i64::try_from(time_ms).unwrap_or(i64::MAX);
            self.next = Some(Replayed {
                time_ms,
                record: RawRecord {
                    topic: line.topic,
                    partition: line.partition,
                    offset: line.offset,
                    timestamp_ms: stamp,
                    key: None,
                    payload: shifted,
                    headers: Vec::new(),
                    // Judged ahead when it was captured: it is again.
                    future_timestamp_ms: (timestamp_ms > stamp.saturating_add(self.tolerance_ms))
                        .then_some(timestamp_ms),
                },
            });
            return Ok(());
        }
        self.read_all = true;
        Ok(())
    }

    /// Takes the earlier of the next captured record and the next inject (captured first
    /// at equal times).
    fn take_next(&mut self, due: u64) -> Option<Replayed> {
        let c = self.next.as_ref().map(|r| r.time_ms);
        let i = self.injects.front().map(|r| r.time_ms);
        let pick_inject = match (c, i) {
            (Some(c), Some(i)) => i < c,
            (None, Some(_)) => true,
            _ => false,
        };
        let t = if pick_inject { i } else { c }?;
        if t > due && t >= self.from_ms {
            return None;
        }
        if pick_inject {
            self.injects.pop_front()
        } else {
            self.next.take()
        }
    }
}

/// `time_ms` moved by `shift_ms`, clamped at 0.
pub fn shift_time(time_ms: u64, shift_ms: i64) -> u64 {
    if shift_ms >= 0 {
        time_ms.saturating_add(shift_ms.unsigned_abs())
    } else {
        time_ms.saturating_sub(shift_ms.unsigned_abs())
    }
}

/// The fields holding instants in Fusion's input records (canonical, STIX and EVE).
const TIME_FIELDS: [&str; 10] = [
    "observed_at",
    "created",
    "modified",
    "valid_from",
    "valid_until",
    "published",
    "at",
    "timestamp",
    "first_seen",
    "last_seen",
];

/// The record `payload` with every instant in a time field ([`TIME_FIELDS`], at any depth)
/// moved by `shift_ms`; bytes that are not JSON, and fields that do not hold an RFC 3339
/// instant, are left as they are (the decoder judges them as it would have).
pub fn shift_record(payload: &[u8], shift_ms: i64) -> Vec<u8> {
    if shift_ms == 0 {
        return payload.to_vec();
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return payload.to_vec();
    };
    shift_value(&mut value, shift_ms);
    serde_json::to_vec(&value).unwrap_or_else(|_| payload.to_vec())
}

fn shift_value(value: &mut serde_json::Value, shift_ms: i64) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if TIME_FIELDS.contains(&k.as_str())
                    && let serde_json::Value::String(s) = v
                    && let Ok(t) = s.parse::<jiff::Timestamp>()
                    && let Ok(moved) = t.checked_add(jiff::SignedDuration::from_millis(shift_ms))
                {
                    *s = moved.to_string();
                } else {
                    shift_value(v, shift_ms);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                shift_value(v, shift_ms);
            }
        }
        _ => {}
    }
}

impl Source for CaptureSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        if let Some(e) = self.error.take() {
            return Err(SourceError::Io {
                path: self.name.clone(),
                source: std::io::Error::other(e),
            });
        }
        if self.done {
            return Ok(Poll::Exhausted);
        }
        let mut out = Vec::new();
        let mut due = 0;
        while out.len() < max {
            if let Err(e) = self.fill() {
                self.error = Some(format!("{e:#}"));
                break;
            }
            // The period's pace starts with its first record.
            let next = self
                .next
                .as_ref()
                .map(|r| r.time_ms)
                .into_iter()
                .chain(self.injects.front().map(|r| r.time_ms))
                .min();
            if next.is_some_and(|t| t >= self.from_ms) || next.is_none() {
                due = self.paced_now();
            }
            let Some(r) = self.take_next(due) else { break };
            self.watermark = Some(i64::try_from(r.time_ms).unwrap_or(i64::MAX));
            out.push(r.record);
        }
        if !out.is_empty() {
            return Ok(Poll::Records(out));
        }
        if self.error.is_some() {
            return self.poll(max);
        }
        if self.next.is_none() && self.injects.is_empty() {
            // Nothing left: the clock runs on to the end of the period, then stops.
            let now = self.paced_now().min(self.to_ms);
            self.watermark = Some(i64::try_from(now).unwrap_or(i64::MAX));
            if now >= self.to_ms {
                self.done = true;
                return Ok(Poll::Exhausted);
            }
        } else {
            // Idle until the next record is due; the clock follows the pace up to it.
            let next = self
                .next
                .as_ref()
                .map(|r| r.time_ms)
                .into_iter()
                .chain(self.injects.front().map(|r| r.time_ms))
                .min()
                .unwrap_or(self.to_ms);
            let now = due.min(next.saturating_sub(1));
            if self
                .watermark
                .is_none_or(|w| i64::try_from(now).unwrap_or(i64::MAX) > w)
            {
                self.watermark = Some(i64::try_from(now).unwrap_or(i64::MAX));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(Poll::Idle)
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.watermark
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    #[test]
    fn instants_in_time_fields_move_and_nothing_else_does() {
        let rec = br#"{"event_id":"2026-11-01T00:00:00Z","observed_at":"2026-11-01T00:00:00Z","nested":[{"modified":"2026-11-01T10:00:00.5Z"}],"valid_until":null,"at":"not a time"}"#;
        let out = shift_record(rec, 86_400_000);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event_id"], "2026-11-01T00:00:00Z");
        assert_eq!(v["observed_at"], "2026-11-02T00:00:00Z");
        assert_eq!(v["nested"][0]["modified"], "2026-11-02T10:00:00.5Z");
        assert_eq!(v["valid_until"], serde_json::Value::Null);
        assert_eq!(v["at"], "not a time");
        // Not JSON: replayed as it was (and dead-lettered as it was).
        assert_eq!(shift_record(b"{broken", 5), b"{broken".to_vec());
        assert_eq!(shift_record(rec, 0), rec.to_vec());
    }

    #[test]
    fn shifting_time_clamps_at_zero() {
        assert_eq!(shift_time(10, -20), 0);
        assert_eq!(shift_time(10, 5), 15);
        assert_eq!(shift_time(u64::MAX, 5), u64::MAX);
    }
}
