//! The embedded source: the deterministic scenario generator, paced by a clock.
//!
//! Records are released once the clock reaches their timestamp, so a live run sees
//! the scenario unfold in real time at the configured event rate; with a clock that
//! jumps ahead (tests, benchmarks) it runs as fast as it can.

use scenario::{GeneratedRecord, Generator, ScenarioConfig};

use crate::record::{Poll, RawRecord, Source, SourceError};

/// A clock giving the current time in ms since the Unix epoch.
pub type Clock = Box<dyn Fn() -> i64 + Send>;

/// The wall clock.
pub fn wall_clock() -> Clock {
    Box::new(|| jiff::Timestamp::now().as_millisecond())
}

/// A clock that starts at the wall clock's time and runs `speed` times faster.
pub fn sped_up_clock(speed: u32) -> Clock {
    let start = jiff::Timestamp::now().as_millisecond();
    let started = std::time::Instant::now();
    let speed = i64::from(speed.max(1));
    Box::new(move || {
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX / 4);
        start.saturating_add(elapsed.saturating_mul(speed))
    })
}

/// The scenario generator as a source.
pub struct EmbeddedSource {
    generator: Generator,
    next: Option<GeneratedRecord>,
    clock: Clock,
    offsets: Vec<i64>,
    watermark: Option<i64>,
    exhausted: bool,
}

impl EmbeddedSource {
    /// A source releasing the records of the scenario `config` as `clock` reaches them.
    pub fn new(config: ScenarioConfig, clock: Clock) -> Self {
        Self {
            generator: Generator::new(config),
            next: None,
            clock,
            offsets: vec![0; schemas::Topic::ALL.len()],
            watermark: None,
            exhausted: false,
        }
    }

    /// The generator (its ground truth so far).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }
}

impl Source for EmbeddedSource {
    fn name(&self) -> &str {
        "embedded"
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let now = (self.clock)();
        let mut out = Vec::new();
        while out.len() < max {
            if self.next.is_none() {
                self.next = self.generator.next();
            }
            let Some(rec) = self.next.take_if(|r| r.timestamp_ms <= now) else {
                break;
            };
            let slot = rec.topic as usize;
            let offset = self.offsets.get(slot).copied().unwrap_or_default();
            if let Some(o) = self.offsets.get_mut(slot) {
                *o += 1;
            }
            out.push(RawRecord {
                topic: rec.topic,
                partition: 0,
                offset,
                timestamp_ms: rec.timestamp_ms,
                key: rec.key.map(String::into_bytes),
                payload: rec.payload,
                headers: Vec::new(),
                future_timestamp_ms: None,
            });
        }
        self.watermark = Some(match &self.next {
            Some(next) => now.min(next.timestamp_ms),
            None => now,
        });
        if out.is_empty() {
            if self.next.is_none() {
                self.exhausted = true;
                return Ok(Poll::Exhausted);
            }
            return Ok(Poll::Idle);
        }
        Ok(Poll::Records(out))
    }

    fn watermark_ms(&self) -> Option<i64> {
        if self.exhausted { None } else { self.watermark }
    }
}
