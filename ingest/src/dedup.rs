//! Duplicate sensor events.
//!
//! A sensor or a producer that retries sends the same event twice; counted twice, it
//! would add a sighting, and a second copy with other content (another sensor, another
//! country: a reused id) would merge into the first, putting one country's victim under
//! another's. Within the evidence window (the span in which raw events are kept as
//! evidence) each event id is remembered with a fingerprint of its content:
//!
//! - an exact copy is dropped and counted (`fusion_ingest_duplicates_total`);
//! - a copy with different content is a dead letter `duplicate_conflict`: the first
//!   one seen stands.
//!
//! Beyond the window an id may come again (the history keeps only hourly summaries
//! there, which count sightings, not ids). Each id costs about 20 bytes: the index
//! keeps a 64-bit hash of the id, 32 more bits of another hash of it to tell two ids
//! with the same 64-bit hash apart, and 32 bits of the content's hash (so a conflicting
//! copy is taken for an exact one with a chance of 2⁻³²). The index lives in
//! generations of an eighth of the window, dropped whole once older than the window.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};

use rustc_hash::{FxBuildHasher, FxHashMap};
use schemas::SensorEvent;

/// What an event is, next to those seen within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Its id is new.
    New,
    /// An exact copy of one seen.
    Copy,
    /// Its id was seen with other content.
    Conflict,
}

/// The index of event ids seen within the window.
#[derive(Debug)]
pub struct Dedup {
    window_ms: u64,
    span_ms: u64,
    /// Generations, oldest first: (first logical time, id hash → (id check, content hash)).
    generations: VecDeque<(u64, FxHashMap<u64, u64>)>,
}

/// Number of generations a window is cut into.
const GENERATIONS: u64 = 8;

impl Dedup {
    /// An index remembering ids for `window_ms` of logical time.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            span_ms: (window_ms / GENERATIONS).max(1),
            generations: VecDeque::new(),
        }
    }

    /// Judges `event`, arriving at logical time `t` (never decreasing), and remembers it
    /// if it is new.
    pub fn check(&mut self, event: &SensorEvent, t: u64) -> Seen {
        while self
            .generations
            .front()
            .is_some_and(|(start, _)| start.saturating_add(self.span_ms + self.window_ms) <= t)
        {
            self.generations.pop_front();
        }
        let key = FxBuildHasher.hash_one(event.event_id.as_bytes());
        let check = {
            let mut h = std::hash::DefaultHasher::new();
            event.event_id.hash(&mut h);
            h.finish() >> 32
        };
        let content = FxBuildHasher.hash_one(event) & 0xFFFF_FFFF;
        let value = (check << 32) | content;
        for (_, seen) in &self.generations {
            if let Some(v) = seen.get(&key)
                && v >> 32 == check
            {
                return if *v == value {
                    Seen::Copy
                } else {
                    Seen::Conflict
                };
            }
        }
        if self
            .generations
            .back()
            .is_none_or(|(start, _)| start.saturating_add(self.span_ms) <= t)
        {
            // Sized like the last one (a generation holds about as many ids as the one
            // before): growing a map from empty rehashed it a dozen times.
            let capacity = self.generations.back().map_or(0, |(_, ids)| ids.len());
            self.generations.push_back((
                t,
                FxHashMap::with_capacity_and_hasher(capacity, FxBuildHasher),
            ));
        }
        if let Some((_, newest)) = self.generations.back_mut() {
            newest.insert(key, value);
        }
        Seen::New
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.generations.iter().map(|(_, g)| g.len()).sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    fn event(id: &str, country: &str) -> SensorEvent {
        serde_json::from_str(&format!(
            r#"{{"schema_version":1,"event_id":"{id}","sensor_id":"s1","country":"{country}","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn copies_and_conflicts_are_told_apart_within_the_window() {
        let mut d = Dedup::new(1_000);
        assert_eq!(d.check(&event("e1", "FR"), 10), Seen::New);
        assert_eq!(d.check(&event("e2", "FR"), 20), Seen::New);
        assert_eq!(d.check(&event("e1", "FR"), 500), Seen::Copy);
        assert_eq!(d.check(&event("e1", "HU"), 900), Seen::Conflict);
        assert_eq!(
            d.check(&event("e2", "FR"), 1_009),
            Seen::Copy,
            "still within"
        );
        assert_eq!(d.len(), 2, "copies and conflicts are not remembered");
    }

    #[test]
    fn an_id_is_forgotten_after_the_window_and_the_index_stays_bounded() {
        let mut d = Dedup::new(1_000);
        for t in 0..10_000u64 {
            assert_eq!(d.check(&event(&format!("e{t}"), "FR"), t), Seen::New);
            assert!(d.len() <= 1_000 + 2 * 125, "{} ids at {t}", d.len());
        }
        assert_eq!(d.check(&event("e0", "HU"), 10_000), Seen::New, "long gone");
        assert_eq!(d.check(&event("e9999", "HU"), 10_000), Seen::Conflict);
    }
}
