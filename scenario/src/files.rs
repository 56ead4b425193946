//! Writing a finite scenario to a directory of JSON-lines files (`fusion generate`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use schemas::Topic;
use serde::Serialize;

use crate::generator::{Generator, ScenarioConfig};

/// Name of the ground-truth file [`write_dir`] writes beside the topic files.
pub const TRUTH_FILE: &str = "truth.json";

/// What [`write_dir`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records written per input topic (every input topic is listed, bad records included).
    pub records: BTreeMap<Topic, u64>,
    /// Deliberately bad records among them.
    pub bad_records: u64,
    /// Campaigns planted.
    pub campaigns: u64,
    /// Matches Fusion must produce.
    pub expected_matches: u64,
    /// Of which retroactive.
    pub retroactive_matches: u64,
    /// Indicators revoked by their latest version.
    pub revoked_indicators: u64,
}

impl Summary {
    /// Records written over all topics.
    pub fn total(&self) -> u64 {
        self.records.values().sum()
    }
}

/// The file a topic's records go to: `<topic suffix>.jsonl`, for example `sensor.events.jsonl`.
pub fn topic_file_name(topic: Topic) -> String {
    format!("{}.jsonl", topic.suffix())
}

/// Generates the finite scenario `cfg` into `dir` (created if missing): one JSON-lines
/// file per input topic with the payloads exactly as they would be published, one per line
/// in stream order (bad records included), and [`TRUTH_FILE`].
///
/// Fails with `InvalidInput` if `cfg.events` is `None` (an unbounded scenario does not fit in files).
pub fn write_dir(cfg: &ScenarioConfig, dir: &Path) -> io::Result<Summary> {
    if cfg.events.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an unbounded scenario cannot be written to files; set the number of events",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let mut writers = BTreeMap::new();
    let mut records = BTreeMap::new();
    for topic in Topic::INPUTS {
        let file = File::create(dir.join(topic_file_name(topic)))?;
        writers.insert(topic, BufWriter::with_capacity(1 << 20, file));
        records.insert(topic, 0u64);
    }
    let mut generator = Generator::new(cfg.clone());
    for rec in generator.by_ref() {
        if rec.payload.contains(&b'\n') {
            // The generator never makes one; a newline would split the record in two.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {} payload contains a newline", rec.topic),
            ));
        }
        let Some(w) = writers.get_mut(&rec.topic) else {
            continue;
        };
        w.write_all(&rec.payload)?;
        w.write_all(b"\n")?;
        *records.entry(rec.topic).or_default() += 1;
    }
    for (_, mut w) in writers {
        w.flush()?;
    }
    let truth = generator.into_truth();
    let mut out = BufWriter::new(File::create(dir.join(TRUTH_FILE))?);
    serde_json::to_writer_pretty(&mut out, &truth).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(Summary {
        records,
        bad_records: truth.bad_records,
        campaigns: truth.campaigns.len() as u64,
        expected_matches: truth.expected_matches.len() as u64,
        retroactive_matches: truth.retroactive.len() as u64,
        revoked_indicators: truth.revoked_indicators.len() as u64,
    })
}
