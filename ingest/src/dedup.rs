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
//! there, which count sightings, not ids). Each id costs about 16 bytes in one hash
//! index: a 64-bit hash of the id as the key, and a 64-bit value holding 24 bits of
//! another hash of the id (to tell two ids with the same 64-bit hash apart), 32 bits of
//! the content's hash (so a conflicting copy is taken for an exact one with a chance of
//! 2⁻³²) and the id's generation. Generations are an eighth of the window; once one is
//! older than the window its ids no longer count, and they leave the index in one pass
//! over it (so each id is looked up once, not once per generation).

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};
use schemas::{SensorEvent, Text};

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
    /// Live generations: (start, number), oldest first.
    generations: VecDeque<(u64, u8)>,
    /// The number the next generation takes (numbers wrap; at most ten are live).
    next: u8,
    /// Hash of the id → [`pack`]ed check, content and generation.
    ids: FxHashMap<u64, u64>,
}

/// Whether generation number `g` is live when `newest` is the newest of `live` generations.
fn is_live(newest: u8, live: usize, g: u8) -> bool {
    usize::from(newest.wrapping_sub(g)) < live
}

/// Number of generations a window is cut into.
const GENERATIONS: u64 = 8;

/// The value an id keeps: its 24-bit check, 32-bit content hash and generation.
fn pack(check: u64, content: u64, generation: u8) -> u64 {
    ((check & 0xFF_FFFF) << 40) | ((content & 0xFFFF_FFFF) << 8) | u64::from(generation)
}

impl Dedup {
    /// An index remembering ids for `window_ms` of logical time.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            span_ms: (window_ms / GENERATIONS).max(1),
            generations: VecDeque::new(),
            next: 0,
            ids: FxHashMap::default(),
        }
    }

    /// Judges `event`, arriving at logical time `t` (never decreasing), and remembers it
    /// if it is new.
    pub fn check(&mut self, event: &SensorEvent<Text<'_>>, t: u64) -> Seen {
        let mut dropped = false;
        while self
            .generations
            .front()
            .is_some_and(|(start, _)| start.saturating_add(self.span_ms + self.window_ms) <= t)
        {
            self.generations.pop_front();
            dropped = true;
        }
        if dropped {
            // Before a number is taken again, every id of the generations gone leaves.
            let (newest, live) = self.newest();
            self.ids.retain(|_, v| is_live(newest, live, *v as u8));
        }
        // The generation a new id joins: one starts every span (one no id joins is empty).
        if self
            .generations
            .back()
            .is_none_or(|(start, _)| start.saturating_add(self.span_ms) <= t)
        {
            self.generations.push_back((t, self.next));
            self.next = self.next.wrapping_add(1);
        }
        let (newest, live) = self.newest();
        let id = event.event_id.as_bytes();
        let key = FxBuildHasher.hash_one(id);
        let check = crate::router::fnv1a(id) >> 40;
        let content = FxBuildHasher.hash_one(event);
        // One probe: a live entry of this id judges the event; any other entry is replaced.
        match self.ids.entry(key) {
            Entry::Occupied(mut seen) => {
                let v = *seen.get();
                if is_live(newest, live, v as u8) && v >> 40 == check {
                    return if (v >> 8) & 0xFFFF_FFFF == content & 0xFFFF_FFFF {
                        Seen::Copy
                    } else {
                        Seen::Conflict
                    };
                }
                seen.insert(pack(check, content, newest));
            }
            Entry::Vacant(slot) => {
                slot.insert(pack(check, content, newest));
            }
        }
        Seen::New
    }

    /// The newest generation's number and how many are live.
    fn newest(&self) -> (u8, usize) {
        (
            self.generations.back().map_or(0, |(_, n)| *n),
            self.generations.len(),
        )
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.ids.len()
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
    fn a_copy_is_one_whether_its_text_was_read_in_place_or_unescaped() {
        let mut d = Dedup::new(1_000);
        let ev = event("e1", "FR");
        assert_eq!(d.check(&ev.view(), 10), Seen::New);
        // The same event with its ids written with escapes: decoded into owned text.
        let json = serde_json::to_string(&ev)
            .unwrap()
            .replace("\"e1\"", "\"\\u0065\\u0031\"");
        let escaped = schemas::decode_event_in(json.as_bytes()).unwrap();
        assert_eq!(escaped.event_id.as_str(), "e1");
        assert_eq!(d.check(&escaped, 20), Seen::Copy);
    }

    #[test]
    fn copies_and_conflicts_are_told_apart_within_the_window() {
        let mut d = Dedup::new(1_000);
        assert_eq!(d.check(&event("e1", "FR").view(), 10), Seen::New);
        assert_eq!(d.check(&event("e2", "FR").view(), 20), Seen::New);
        assert_eq!(d.check(&event("e1", "FR").view(), 500), Seen::Copy);
        assert_eq!(d.check(&event("e1", "HU").view(), 900), Seen::Conflict);
        assert_eq!(
            d.check(&event("e2", "FR").view(), 1_009),
            Seen::Copy,
            "still within"
        );
        assert_eq!(d.len(), 2, "copies and conflicts are not remembered");
    }

    #[test]
    fn an_id_is_forgotten_after_the_window_and_the_index_stays_bounded() {
        let mut d = Dedup::new(1_000);
        for t in 0..10_000u64 {
            assert_eq!(d.check(&event(&format!("e{t}"), "FR").view(), t), Seen::New);
            assert!(d.len() <= 1_000 + 2 * 125, "{} ids at {t}", d.len());
        }
        assert_eq!(
            d.check(&event("e0", "HU").view(), 10_000),
            Seen::New,
            "long gone"
        );
        assert_eq!(
            d.check(&event("e9999", "HU").view(), 10_000),
            Seen::Conflict
        );
    }

    #[test]
    fn generation_numbers_are_taken_again_only_after_their_ids_left() {
        // Generations of 10 ms, eight a window (nine or ten live): numbers wrap every
        // 2,560 ms.
        let mut d = Dedup::new(80);
        for t in 0..6_000u64 {
            let id = format!("e{t}");
            assert_eq!(d.check(&event(&id, "FR").view(), t), Seen::New, "{id}");
            // An id of the generation whose number comes round again is unknown (at 2,560
            // ms the one seen at 0 as FR, at 5,120 ms the one seen again at 2,560 as HU).
            for back in [2_560u64, 5_120] {
                if let Some(old) = t.checked_sub(back) {
                    let again = d.check(&event(&format!("e{old}"), "HU").view(), t);
                    assert_eq!(again, Seen::New, "e{old} at {t}");
                }
            }
            assert!(d.len() <= 4 * (80 + 2 * 10), "{} ids at {t}", d.len());
        }
    }
}
