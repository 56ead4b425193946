//! JSON-lines files as a source: one file per input topic in a directory,
//! `<topic suffix>.jsonl` (as `fusion generate` writes them).
//!
//! A record's timestamp is its natural time (event `observed_at`, indicator
//! `modified`, OSINT `published`, action `at`), as a producer would set it on
//! Kafka; a line whose time cannot be read takes the previous line's time, or
//! [`UNREADABLE_TIME_MS`] at the start of a file (it will be dead-lettered anyway). The files are merged by timestamp, so a
//! directory replays in the order things happened; the offset of a record is its
//! line number, from 0.
//!
//! A UTF-8 byte order mark at the start of a file (some Windows tools write one) is
//! skipped. Other files in the directory are not read: each is named in a warning (a
//! misnamed topic file would otherwise be ignored without a word), and a directory
//! without any topic file is an error naming the files expected.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use scenario::{TRUTH_FILE, topic_file_name};
use schemas::Topic;
use serde::Deserialize;

use crate::record::{Poll, RawRecord, Source, SourceError};

struct TopicFile {
    topic: Topic,
    path: PathBuf,
    reader: BufReader<File>,
    /// The line being read, reused from line to line.
    scratch: Vec<u8>,
    /// Finds the topic's time field in a line.
    time_key: Option<TimeKey>,
    line: i64,
    last_ts: i64,
    head: Option<RawRecord>,
    /// The line after the head, read ahead to judge the head's time.
    next: Option<Line>,
    /// Whether the head is the file's last line.
    head_is_last: bool,
    tolerance_ms: i64,
}

/// A non-blank line of a file, with its natural time if it can be read.
struct Line {
    offset: i64,
    bytes: Vec<u8>,
    ts: Option<i64>,
}

/// Bytes read from a topic file at a time: a few system calls per megabyte of lines.
const READ_BUFFER_BYTES: usize = 256 * 1024;

impl TopicFile {
    fn read_line(&mut self) -> Result<Option<Line>, SourceError> {
        loop {
            self.scratch.clear();
            let n = read_until_newline(&mut self.reader, &mut self.scratch).map_err(|source| {
                SourceError::Io {
                    path: self.path.display().to_string(),
                    source,
                }
            })?;
            if n == 0 {
                return Ok(None);
            }
            let offset = self.line;
            self.line += 1;
            let mut bytes = self.scratch.as_slice();
            if offset == 0 {
                bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            }
            while let [rest @ .., b'\n' | b'\r'] = bytes {
                bytes = rest;
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ts = time_of(self.topic, self.time_key.as_ref(), bytes);
            return Ok(Some(Line {
                offset,
                // Sized to the line: the payload lives until the record is decoded.
                bytes: bytes.to_vec(),
                ts,
            }));
        }
    }

    /// Reads the next line into the head (one line ahead, see [`crate::future`]): a
    /// line ahead of the line after it by more than the tolerance is ahead of its file's
    /// own progress, and goes on marked as stamped in the future, at the file's time.
    fn fill(&mut self) -> Result<(), SourceError> {
        if self.head.is_some() {
            return Ok(());
        }
        let line = match self.next.take() {
            Some(line) => line,
            None => match self.read_line()? {
                Some(line) => line,
                None => return Ok(()),
            },
        };
        self.next = self.read_line()?;
        self.head_is_last = self.next.is_none();
        let mut rec = RawRecord {
            topic: self.topic,
            partition: -1,
            offset: line.offset,
            timestamp_ms: line.ts.unwrap_or(self.last_ts),
            key: None,
            payload: line.bytes,
            headers: Vec::new(),
            future_timestamp_ms: None,
        };
        let next_ts = self.next.as_ref().and_then(|n| n.ts);
        match (line.ts, next_ts) {
            (Some(ts), Some(next)) if ts > next.saturating_add(self.tolerance_ms) => {
                crate::future::mark(&mut rec, next, self.last_ts);
            }
            (Some(ts), _) => self.last_ts = ts,
            (None, _) => {}
        }
        self.head = Some(rec);
        Ok(())
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

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
    time_of(topic, TimeKey::of(topic).as_ref(), payload)
}

/// [`natural_time_ms`], with the topic's [`TimeKey`] built once per file.
fn time_of(topic: Topic, key: Option<&TimeKey>, payload: &[u8]) -> Option<i64> {
    if let Some(ms) = key.and_then(|k| k.time_ms(payload)) {
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

/// The time field of a topic's records, found by its bytes: `"observed_at":"…"` (no
/// space) for an event, and likewise for the other topics. A JSON string cannot hold an
/// unescaped `"`, so the pattern can only be a key; a nested key of that name would make
/// the record invalid (no nested object has one), and it is then dead-lettered whatever
/// its time.
struct TimeKey {
    finder: memchr::memmem::Finder<'static>,
}

impl TimeKey {
    /// The key of `topic`'s time field; none for topics Fusion does not read.
    fn of(topic: Topic) -> Option<Self> {
        let key: &'static [u8] = match topic {
            Topic::SensorEvents => b"\"observed_at\":\"",
            Topic::PartnerIndicators => b"\"modified\":\"",
            Topic::OsintItems => b"\"published\":\"",
            Topic::DeskActions => b"\"at\":\"",
            _ => return None,
        };
        Some(Self {
            finder: memchr::memmem::Finder::new(key),
        })
    }

    /// The time in `payload`; none when the key is absent or its value does not parse:
    /// the caller parses the record instead.
    fn time_ms(&self, payload: &[u8]) -> Option<i64> {
        let start = self.finder.find(payload)? + self.finder.needle().len();
        let rest = payload.get(start..)?;
        let end = memchr::memchr(b'"', rest)?;
        let text = std::str::from_utf8(rest.get(..end)?).ok()?;
        schemas::timestamp::parse(text)
            .ok()
            .map(|t| t.as_millisecond())
    }
}

/// Reads up to and including the next `\n` (or to the end of the file) into `buf`, as
/// [`BufRead::read_until`] does; returns the number of bytes read.
fn read_until_newline(reader: &mut BufReader<File>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read);
        }
        // memchr's vectorised search (the standard library's goes a word at a time).
        let (used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        buf.extend_from_slice(available.get(..used).unwrap_or_default());
        reader.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

/// A directory of JSON-lines files, one per input topic.
pub struct JsonLinesDir {
    files: Vec<TopicFile>,
    unknown: Vec<PathBuf>,
    watermark: Option<i64>,
}

impl JsonLinesDir {
    /// Opens the topic files present in `dir`; at least one must exist. Every other
    /// file is named in a warning (see [`JsonLinesDir::unknown_files`]).
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let io = |path: &Path, source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let known: Vec<String> = Topic::INPUTS.into_iter().map(topic_file_name).collect();
        let mut unknown = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|e| {
            let why = format!(
                "{e}; give a directory holding one or more of {}",
                known.join(", ")
            );
            io(dir, std::io::Error::new(e.kind(), why))
        })?;
        for entry in listing {
            let name = entry.map_err(|e| io(dir, e))?.file_name();
            let name = name.to_string_lossy();
            // Hidden files, and the ground truth `fusion generate` writes beside the topic files.
            if name.starts_with('.') || name == TRUTH_FILE || known.iter().any(|k| *k == name) {
                continue;
            }
            let hint = known
                .iter()
                .find(|k| edit_distance(k, &name) <= 2)
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_default();
            tracing::warn!(
                dir = %dir.display(),
                file = %name,
                "{name} is not a topic file and is not read (topic files: {}){hint}",
                known.join(", ")
            );
            unknown.push(dir.join(&*name));
        }
        unknown.sort();
        let mut files = Vec::new();
        for topic in Topic::INPUTS {
            let path = dir.join(topic_file_name(topic));
            if !path.exists() {
                continue;
            }
            let file = File::open(&path).map_err(|e| io(&path, e))?;
            files.push(TopicFile {
                topic,
                path,
                reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
                scratch: Vec::new(),
                time_key: TimeKey::of(topic),
                line: 0,
                last_ts: UNREADABLE_TIME_MS,
                head: None,
                next: None,
                head_is_last: false,
                tolerance_ms: crate::future::DEFAULT_TOLERANCE_MS,
            });
        }
        if files.is_empty() {
            let found = if unknown.is_empty() {
                "it holds no file".to_string()
            } else {
                let names: Vec<String> = unknown
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                format!("found only {}", names.join(", "))
            };
            return Err(io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no topic file in this input directory ({found}); name the files {}, one per topic",
                        known.join(", ")
                    ),
                ),
            ));
        }
        Ok(Self {
            files,
            unknown,
            watermark: None,
        })
    }

    /// Sets how far ahead of the replay's progress a line may be stamped (ms; default
    /// [`crate::future::DEFAULT_TOLERANCE_MS`]).
    #[must_use]
    pub fn with_future_tolerance(mut self, tolerance_ms: i64) -> Self {
        for f in &mut self.files {
            f.tolerance_ms = tolerance_ms.max(0);
        }
        self
    }

    /// Files of the directory that are not topic files and are not read, sorted.
    pub fn unknown_files(&self) -> &[PathBuf] {
        &self.unknown
    }
}

/// Levenshtein distance of two names (short: file names), to suggest a topic file.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
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
            let Some((mut rec, last, tolerance)) =
                next.and_then(|f| Some((f.head.take()?, f.head_is_last, f.tolerance_ms)))
            else {
                break;
            };
            // A file's last line that jumps ahead of everything replayed: nothing after it
            // confirms the jump (see `crate::future`).
            if last && let Some(w) = self.watermark {
                crate::future::judge(&mut rec, w, tolerance, w);
            }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    const EVENT: &str = r#"{"schema_version":1,"event_id":"EID","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}"#;

    fn drain(source: &mut JsonLinesDir) -> Vec<RawRecord> {
        let mut out = Vec::new();
        while let Poll::Records(batch) = source.poll(10).unwrap() {
            out.extend(batch);
        }
        out
    }

    /// A sensor event `id` observed at `at`.
    fn event_at(id: &str, at: &str) -> String {
        EVENT.replace("EID", id).replace("2026-11-23T10:00:00Z", at)
    }

    /// The records of a directory holding `lines` as its sensor-event file, as
    /// (event id, timestamp, stamped in the future at).
    fn replay(lines: &[String]) -> Vec<(String, i64, Option<i64>)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sensor.events.jsonl"), lines.join("\n")).unwrap();
        drain(&mut JsonLinesDir::open(dir.path()).unwrap())
            .into_iter()
            .map(|r| {
                let Ok(schemas::Input::Event(ev)) = schemas::decode_record(r.topic, &r.payload)
                else {
                    panic!("line {} does not decode", r.offset)
                };
                (ev.event_id, r.timestamp_ms, r.future_timestamp_ms)
            })
            .collect()
    }

    fn ms(at: &str) -> i64 {
        at.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_line_far_ahead_of_the_lines_around_it_is_stamped_in_the_future() {
        let got = replay(&[
            event_at("a", "2026-11-23T10:00:00Z"),
            event_at("far", "2100-01-01T00:00:00Z"),
            event_at("b", "2026-11-23T10:00:01Z"),
        ]);
        assert_eq!(
            got,
            [
                ("a".into(), ms("2026-11-23T10:00:00Z"), None),
                (
                    "far".into(),
                    ms("2026-11-23T10:00:00Z"),
                    Some(ms("2100-01-01T00:00:00Z"))
                ),
                ("b".into(), ms("2026-11-23T10:00:01Z"), None),
            ],
            "the far line goes on in place, at the file's time, and holds nothing back"
        );
    }

    #[test]
    fn a_far_first_line_and_a_far_last_line_are_stamped_in_the_future() {
        let got = replay(&[
            event_at("first", "2100-01-01T00:00:00Z"),
            event_at("a", "2026-11-23T10:00:00Z"),
            event_at("b", "2026-11-23T10:00:01Z"),
            event_at("last", "2100-01-01T00:00:00Z"),
        ]);
        let future: Vec<&str> = got
            .iter()
            .filter(|(_, _, f)| f.is_some())
            .map(|(id, _, _)| id.as_str())
            .collect();
        assert_eq!(future, ["first", "last"]);
        assert!(got.iter().all(|(_, t, _)| *t <= ms("2026-11-23T10:00:01Z")));
    }

    #[test]
    fn a_quiet_gap_that_later_lines_confirm_replays_as_it_is() {
        let got = replay(&[
            event_at("a", "2026-11-23T10:00:00Z"),
            event_at("after-gap", "2026-12-20T10:00:00Z"),
            event_at("b", "2026-12-20T10:00:01Z"),
            event_at("edge", "2026-12-20T11:00:01Z"),
        ]);
        assert!(got.iter().all(|(_, _, f)| f.is_none()), "{got:?}");
        assert_eq!(got[1].1, ms("2026-12-20T10:00:00Z"));
        assert_eq!(got[3].1, ms("2026-12-20T11:00:01Z"), "at the tolerance");
    }

    #[test]
    fn a_byte_order_mark_does_not_cost_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = b"\xEF\xBB\xBF".to_vec();
        text.extend_from_slice(EVENT.replace("EID", "e1").as_bytes());
        text.extend_from_slice(b"\r\n");
        text.extend_from_slice(EVENT.replace("EID", "e2").as_bytes());
        text.push(b'\n');
        std::fs::write(dir.path().join("sensor.events.jsonl"), text).unwrap();
        let records = drain(&mut JsonLinesDir::open(dir.path()).unwrap());
        let ids: Vec<String> = records
            .iter()
            .map(|r| match schemas::decode_record(r.topic, &r.payload) {
                Ok(schemas::Input::Event(ev)) => ev.event_id,
                other => panic!("line {} does not decode: {other:?}", r.offset),
            })
            .collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert_eq!(records[0].timestamp_ms, 1_795_428_000_000);
    }

    #[test]
    fn a_byte_order_mark_is_only_skipped_at_the_start_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{}\n\u{feff}{}\n", EVENT, EVENT.replace("EID", "e2"));
        std::fs::write(dir.path().join("sensor.events.jsonl"), text).unwrap();
        let records = drain(&mut JsonLinesDir::open(dir.path()).unwrap());
        assert_eq!(records.len(), 2);
        assert!(
            records[1].payload.starts_with(BOM),
            "kept, to be dead-lettered"
        );
    }

    #[test]
    fn files_that_are_not_topic_files_are_listed_and_the_topic_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sensor.events.jsonl"), format!("{EVENT}\n")).unwrap();
        std::fs::write(dir.path().join("partner.indicator.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        std::fs::write(dir.path().join(TRUTH_FILE), "{}").unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        let mut source = JsonLinesDir::open(dir.path()).unwrap();
        let names: Vec<&str> = source
            .unknown_files()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["notes.txt", "partner.indicator.jsonl"]);
        assert_eq!(drain(&mut source).len(), 1);
    }

    #[test]
    fn a_directory_without_any_topic_file_is_an_error_naming_what_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("partner.indicator.jsonl"), "{}\n").unwrap();
        let Err(e) = JsonLinesDir::open(dir.path()) else {
            panic!("a directory without topic files is accepted");
        };
        let msg = format!("{e}");
        for part in [
            dir.path().to_str().unwrap(),
            "found only partner.indicator.jsonl",
            "sensor.events.jsonl, partner.indicators.jsonl, osint.items.jsonl, desk.actions.jsonl",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        let empty = tempfile::tempdir().unwrap();
        let Err(e) = JsonLinesDir::open(empty.path()) else {
            panic!("an empty directory is accepted");
        };
        assert!(e.to_string().contains("it holds no file"), "{e}");
    }

    #[test]
    fn a_near_miss_is_measured_by_edit_distance() {
        assert_eq!(
            edit_distance("partner.indicators.jsonl", "partner.indicator.jsonl"),
            1
        );
        assert_eq!(
            edit_distance("sensor.events.jsonl", "sensor_events.json"),
            2
        );
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
