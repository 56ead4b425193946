//! When each logical time was first ingested, for end-to-end latency measurement.
//!
//! The ingestor stamps the wall-clock instant at which it hands on the first record of
//! each new logical time; the output side looks up the stamp of an output's logical time
//! (an alert change's version is the logical time of the input that caused it) and gets
//! the latency from that record's ingestion to the output. The first record of a time is
//! the one that waited longest, so the figure is the worst case of its time. Stamps older
//! than what the output has closed are forgotten, so the probe stays small.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Ingestion instants of logical times (see the module documentation).
#[derive(Debug, Default)]
pub struct LatencyProbe {
    stamps: Mutex<VecDeque<(u64, Instant)>>,
}

impl LatencyProbe {
    /// A probe with no stamps.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record of logical time `t` was handed on now (only the first of each time counts).
    pub fn stamp(&self, t: u64) {
        if let Ok(mut s) = self.stamps.lock()
            && s.back().is_none_or(|(last, _)| t > *last)
        {
            s.push_back((t, Instant::now()));
        }
    }

    /// When the first record of logical time `t` was handed on, if it is known.
    pub fn ingested_at(&self, t: u64) -> Option<Instant> {
        let s = self.stamps.lock().ok()?;
        let at = s.partition_point(|(time, _)| *time < t);
        s.get(at).filter(|(time, _)| *time == t).map(|(_, i)| *i)
    }

    /// Forgets the stamps of times before `t`.
    pub fn forget_before(&self, t: u64) {
        if let Ok(mut s) = self.stamps.lock() {
            while s.front().is_some_and(|(time, _)| *time < t) {
                s.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_of_a_time_is_stamped_and_old_times_are_forgotten() {
        let p = LatencyProbe::new();
        p.stamp(10);
        let first = p.ingested_at(10).unwrap();
        p.stamp(10);
        assert_eq!(p.ingested_at(10), Some(first));
        p.stamp(20);
        assert!(p.ingested_at(15).is_none());
        p.forget_before(20);
        assert!(p.ingested_at(10).is_none());
        assert!(p.ingested_at(20).is_some());
    }
}
