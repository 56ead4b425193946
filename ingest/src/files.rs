//! JSON-lines files as a source: one file per input topic in a directory,
//! `<topic suffix>.jsonl` (as `fusion generate` writes them).
//!
//! A record's timestamp is its natural time (event `observed_at`, indicator
//! `modified`, OSINT `published`, action `at`), as a producer would set it on
//! Kafka; a line whose time cannot be read takes the previous line's time, or
//! [`UNREADABLE_TIME_MS`] at the start of a file (it will be dead-lettered anyway). The files are merged by timestamp, so a
//! directory replays in the order things happened; the offset of a record is its
//! line number, from 0.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use schemas::Topic;
use serde::Deserialize;

use crate::record::{Poll, RawRecord, Source, SourceError};

struct TopicFile {
    topic: Topic,
    path: PathBuf,
    reader: BufReader<File>,
    line: i64,
    last_ts: i64,
    head: Option<RawRecord>,
}

impl TopicFile {
    fn fill(&mut self) -> Result<(), SourceError> {
        if self.head.is_some() {
            return Ok(());
        }
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| SourceError::Io {
                    path: self.path.display().to_string(),
                    source,
                })?;
            if n == 0 {
                return Ok(());
            }
            let offset = self.line;
            self.line += 1;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Some(ts) = natural_time_ms(self.topic, &buf) {
                self.last_ts = ts;
            }
            self.head = Some(RawRecord {
                topic: self.topic,
                partition: -1,
                offset,
                timestamp_ms: self.last_ts,
                key: None,
                payload: std::mem::take(&mut buf),
                headers: Vec::new(),
            });
            return Ok(());
        }
    }
}

/// Timestamp of unreadable lines before the first readable one: 1 ms after the epoch
/// (Kafka producers take 0 to mean "now", which would not be reproducible).
pub const UNREADABLE_TIME_MS: i64 = 1;

#[derive(Deserialize)]
struct TimePeek {
    observed_at: Option<Timestamp>,
    modified: Option<Timestamp>,
    published: Option<Timestamp>,
    at: Option<Timestamp>,
}

/// The natural time of a record of `topic`, if it can be read.
pub fn natural_time_ms(topic: Topic, payload: &[u8]) -> Option<i64> {
    if let Some(ms) = time_field_ms(topic, payload) {
        return Some(ms);
    }
    let peek: TimePeek = serde_json::from_slice(payload).ok()?;
    let t = match topic {
        Topic::SensorEvents => peek.observed_at,
        Topic::PartnerIndicators => peek.modified,
        Topic::OsintItems => peek.published,
        Topic::DeskActions => peek.at,
        _ => None,
    }?;
    Some(t.as_millisecond())
}

/// The time field of a record, found by its bytes: `"observed_at":"…"` (no space) for an
/// event, and likewise for the other topics. A JSON string cannot hold an unescaped `"`,
/// so the pattern can only be a key; a nested key of that name would make the record
/// invalid (no nested object has one), and it is then dead-lettered whatever its time.
/// None when the pattern is absent or its value does not parse: the caller parses the
/// record instead.
fn time_field_ms(topic: Topic, payload: &[u8]) -> Option<i64> {
    let key: &[u8] = match topic {
        Topic::SensorEvents => b"\"observed_at\":\"",
        Topic::PartnerIndicators => b"\"modified\":\"",
        Topic::OsintItems => b"\"published\":\"",
        Topic::DeskActions => b"\"at\":\"",
        _ => return None,
    };
    let start = memchr::memmem::find(payload, key)? + key.len();
    let rest = payload.get(start..)?;
    let end = memchr::memchr(b'"', rest)?;
    let text = std::str::from_utf8(rest.get(..end)?).ok()?;
    text.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

/// A directory of JSON-lines files, one per input topic.
pub struct JsonLinesDir {
    files: Vec<TopicFile>,
    watermark: Option<i64>,
}

impl JsonLinesDir {
    /// Opens the topic files present in `dir`; at least one must exist.
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let mut files = Vec::new();
        for topic in Topic::INPUTS {
            let path = dir.join(format!("{}.jsonl", topic.suffix()));
            if !path.exists() {
                continue;
            }
            let file = File::open(&path).map_err(|source| SourceError::Io {
                path: path.display().to_string(),
                source,
            })?;
            files.push(TopicFile {
                topic,
                path,
                reader: BufReader::new(file),
                line: 0,
                last_ts: UNREADABLE_TIME_MS,
                head: None,
            });
        }
        if files.is_empty() {
            return Err(SourceError::Io {
                path: dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no <topic>.jsonl file (sensor.events.jsonl, partner.indicators.jsonl, osint.items.jsonl, desk.actions.jsonl)",
                ),
            });
        }
        Ok(Self {
            files,
            watermark: None,
        })
    }
}

impl Source for JsonLinesDir {
    fn name(&self) -> &str {
        "files"
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let mut out = Vec::new();
        while out.len() < max {
            for f in &mut self.files {
                f.fill()?;
            }
            // The oldest head; ties go to the topic listed first in `Topic::INPUTS`.
            let next = self
                .files
                .iter_mut()
                .filter(|f| f.head.is_some())
                .min_by_key(|f| f.head.as_ref().map(|h| h.timestamp_ms));
            let Some(rec) = next.and_then(|f| f.head.take()) else {
                break;
            };
            self.watermark = Some(self.watermark.unwrap_or(i64::MIN).max(rec.timestamp_ms));
            out.push(rec);
        }
        if out.is_empty() {
            Ok(Poll::Exhausted)
        } else {
            Ok(Poll::Records(out))
        }
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.watermark
    }
}
