//! Decoding, dead-lettering and routing of raw records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schemas::{DeadLetter, DecodeError, ErrorCode, Input, SensorEvent, Text, Topic, decode_record};

use crate::deadletter::DeadLetterSink;
use crate::dedup::{Dedup, Seen};
use crate::metrics::KafkaMetrics;
use crate::record::{Poll, RawRecord, Source, SourceError};
use crate::router::{Disconnected, Router};
use crate::stix;

/// What one record decodes to.
#[allow(clippy::large_enum_variant)] // `One` is every record's path: boxing it would allocate per record.
enum Decoded {
    /// One input (the common case).
    One(Input),
    /// A STIX bundle: its usable indicators and the objects it could not use.
    Bundle(schemas::stix::StixDecoded),
}

/// Settings of the ingest path.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Records larger than this are dead-lettered unparsed (`oversized`).
    pub max_record_bytes: usize,
    /// Prefix of topic names (`fusion.`), used in dead letters.
    pub topic_prefix: String,
    /// Most records taken from the source per poll.
    pub poll_batch: usize,
    /// How long an event id is remembered to drop copies and dead-letter conflicting
    /// ones ([`crate::dedup`]): the evidence window (ms of logical time).
    pub dedup_window_ms: u64,
    /// How far ahead of its source's clock a record may be stamped (ms); sources judge
    /// it ([`crate::future`]), the ingestor names it in the dead letter.
    pub future_tolerance_ms: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            topic_prefix: "fusion.".to_string(),
            poll_batch: 1024,
            dedup_window_ms: 3_600_000,
            future_tolerance_ms: crate::future::DEFAULT_TOLERANCE_MS,
        }
    }
}

/// Counters of the ingest path, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Records read from the source.
    pub records: AtomicU64,
    /// Sensor events sent to the dataflow.
    pub events: AtomicU64,
    /// Indicator versions sent to the dataflow.
    pub indicators: AtomicU64,
    /// Desk actions sent to the dataflow.
    pub actions: AtomicU64,
    /// Records dead-lettered.
    pub dead_letters: AtomicU64,
    /// Sensor events dropped as exact copies of one seen within the evidence window.
    pub duplicates: AtomicU64,
    /// Records behind the logical clock, counted at it.
    pub late_records: AtomicU64,
    /// Latest logical time sent (ms).
    pub logical_time_ms: AtomicU64,
    /// Milliseconds the rehydration from retained history took; `u64::MAX` while it goes on.
    pub rehydrated_ms: AtomicU64,
}

/// Why ingestion stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The dataflow stopped.
    #[error(transparent)]
    Disconnected(#[from] Disconnected),
    /// A dead letter could not be stored: input would be lost, so ingestion stops.
    #[error("cannot store a dead letter: {0}; free disk space or fix the dead-letter path")]
    DeadLetter(#[from] std::io::Error),
}

/// Decodes records, dead-letters the bad ones and routes the good ones.
pub struct Ingestor<D: DeadLetterSink, E = schemas::SensorEvent> {
    config: IngestConfig,
    router: Router<E>,
    dead: D,
    stats: Arc<IngestStats>,
    durable: Option<Arc<AtomicU64>>,
    latency: Option<Arc<crate::latency::LatencyProbe>>,
    last_commit: Instant,
    last_time: u64,
    dedup: Dedup,
    metrics: Option<KafkaMetrics>,
}

/// How often offsets are committed (at most).
const COMMIT_EVERY: Duration = Duration::from_millis(100);

impl<D: DeadLetterSink, E> Ingestor<D, E> {
    /// An ingestor routing through `router` and dead-lettering to `dead`.
    pub fn new(config: IngestConfig, router: Router<E>, dead: D, stats: Arc<IngestStats>) -> Self {
        Self {
            dedup: Dedup::new(config.dedup_window_ms),
            config,
            router,
            dead,
            stats,
            durable: None,
            latency: None,
            last_commit: Instant::now(),
            last_time: 0,
            metrics: None,
        }
    }

    /// Commits source offsets as the output side reports logical times durable in `durable`
    /// (every output at a time before it has been acknowledged).
    pub fn with_durable_frontier(mut self, durable: Arc<AtomicU64>) -> Self {
        self.durable = Some(durable);
        self
    }

    /// Counts dead letters (per code) and dropped copies in `metrics`.
    pub fn with_metrics(mut self, metrics: KafkaMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Stamps the ingestion instant of each new logical time in `probe` (load measurement).
    pub fn with_latency_probe(mut self, probe: Arc<crate::latency::LatencyProbe>) -> Self {
        self.latency = Some(probe);
        self
    }

    /// Decodes one record; good ones go to the dataflow, bad ones to the dead letters.
    /// A STIX bundle ([`crate::stix`]) sends each usable indicator on and dead-letters each
    /// indicator object it cannot use. Returns the record's logical time.
    pub fn ingest(&mut self, rec: RawRecord) -> Result<u64, IngestError> {
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        if let Some(stamped) = rec.future_timestamp_ms {
            let error = crate::future::error(&rec, stamped, self.config.future_tolerance_ms);
            self.dead_letter(&rec, &error)?;
            return Ok(self.router.time_for(rec.timestamp_ms));
        }
        if self.router.is_late(rec.timestamp_ms) {
            self.count_late(&rec);
        }
        if rec.topic == Topic::SensorEvents {
            // Most records: decoded to the event itself, no `Input` moved around.
            return match self.decode_event(&rec) {
                Ok(event) => self.accept_event(&rec, &event),
                Err(error) => {
                    self.dead_letter(&rec, &error)?;
                    Ok(self.router.time_for(rec.timestamp_ms))
                }
            };
        }
        match self.decode(&rec) {
            Ok(Decoded::One(Input::Event(event))) => self.accept_event(&rec, &event.view()),
            Ok(Decoded::One(input)) => self.send(rec.timestamp_ms, input),
            Ok(Decoded::Bundle(bundle)) => {
                for skipped in &bundle.skipped {
                    self.dead_letter(&rec, &stix::skipped_error(skipped))?;
                }
                let mut t = self.router.time_for(rec.timestamp_ms);
                for indicator in bundle.indicators {
                    t = self.send(rec.timestamp_ms, Input::Indicator(indicator))?;
                }
                Ok(t)
            }
            Err(error) => {
                self.dead_letter(&rec, &error)?;
                Ok(self.router.time_for(rec.timestamp_ms))
            }
        }
    }

    /// Sends a decoded event on unless it repeats one seen within the evidence window: a
    /// copy is counted, one with other content dead-lettered.
    fn accept_event(
        &mut self,
        rec: &RawRecord,
        event: &SensorEvent<Text<'_>>,
    ) -> Result<u64, IngestError> {
        let t = self.router.time_for(rec.timestamp_ms);
        match self.dedup.check(event, t) {
            Seen::New => {
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                let t = self.router.send_event(rec.timestamp_ms, event)?;
                Ok(self.sent(t))
            }
            Seen::Copy => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.duplicates.inc();
                }
                Ok(t)
            }
            Seen::Conflict => {
                let error = DecodeError::new(
                    ErrorCode::DuplicateConflict,
                    Some("event_id".into()),
                    format!(
                        "event {} was already seen within the evidence window with \
                         other content; the first copy stands: give each event an \
                         id of its own",
                        event.event_id
                    ),
                );
                self.dead_letter(rec, &error)?;
                Ok(t)
            }
        }
    }

    fn send(&mut self, timestamp_ms: i64, input: Input) -> Result<u64, IngestError> {
        let counter = match &input {
            Input::Event(_) => &self.stats.events,
            Input::Indicator(_) => &self.stats.indicators,
            Input::Action(_) => &self.stats.actions,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let t = self.router.send(timestamp_ms, input)?;
        Ok(self.sent(t))
    }

    /// Records that an input went out at logical time `t`; returns `t`.
    fn sent(&mut self, t: u64) -> u64 {
        if let Some(probe) = &self.latency {
            probe.stamp(t);
        }
        self.stats.logical_time_ms.fetch_max(t, Ordering::Relaxed);
        self.last_time = self.last_time.max(t);
        t
    }

    /// Counts a record the router will count at its clock rather than at its own time.
    fn count_late(&self, rec: &RawRecord) {
        self.stats.late_records.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            let topic = format!("{}{}", self.config.topic_prefix, rec.topic.suffix());
            m.late_records.with_label_values(&[topic.as_str()]).inc();
        }
        tracing::debug!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, stamped = rec.timestamp_ms, "record behind the logical clock; counted at it");
    }

    fn dead_letter(&mut self, rec: &RawRecord, error: &DecodeError) -> Result<(), IngestError> {
        let at = jiff::Timestamp::from_millisecond(rec.timestamp_ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let topic = format!("{}{}", self.config.topic_prefix, rec.topic.suffix());
        let dead = DeadLetter::new(&topic, rec.partition, rec.offset, &rec.payload, error, at);
        self.dead.send(dead)?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.ingest_dead_letters
                .with_label_values(&[error.code.as_str()])
                .inc();
        }
        Ok(())
    }

    /// The error of a record larger than the limit, if it is.
    fn oversized(&self, rec: &RawRecord) -> Result<(), DecodeError> {
        if rec.payload.len() > self.config.max_record_bytes {
            return Err(DecodeError::new(
                ErrorCode::Oversized,
                None,
                format!(
                    "record of {} bytes exceeds the limit of {} bytes",
                    rec.payload.len(),
                    self.config.max_record_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Decodes a record of `fusion.sensor.events` ([`Ingestor::decode`] for that topic).
    fn decode_event<'r>(&self, rec: &'r RawRecord) -> Result<SensorEvent<Text<'r>>, DecodeError> {
        self.oversized(rec)?;
        schemas::decode_event_in(&rec.payload)
    }

    fn decode(&self, rec: &RawRecord) -> Result<Decoded, DecodeError> {
        self.oversized(rec)?;
        if stix::is_stix(rec) {
            return stix::decode(rec).map(Decoded::Bundle);
        }
        decode_record(rec.topic, &rec.payload)
            .map(Decoded::One)
            .map_err(|e| stix::explain_unmarked_bundle(rec, e))
    }

    /// Advances the logical clock to the source's watermark.
    pub fn advance(&mut self, watermark_ms: i64) -> Result<(), IngestError> {
        self.router.advance(watermark_ms)?;
        Ok(())
    }

    /// Reads `source` until it is exhausted or `stop` is set; dead letters are flushed at the end.
    pub fn run(&mut self, source: &mut dyn Source, stop: &AtomicBool) -> Result<(), IngestError> {
        while !stop.load(Ordering::Relaxed) {
            match source.poll(self.config.poll_batch)? {
                Poll::Records(records) => {
                    for rec in records {
                        let (topic, partition, offset) = (rec.topic, rec.partition, rec.offset);
                        let t = self.ingest(rec)?;
                        source.on_routed(topic, partition, offset, t);
                    }
                    self.router.flush()?;
                }
                Poll::Idle => std::thread::sleep(Duration::from_millis(1)),
                Poll::Exhausted => break,
            }
            if let Some(w) = source.watermark_ms() {
                self.advance(w)?;
            }
            let rehydrated = source.rehydration().map_or(u64::MAX, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1)
            });
            self.stats
                .rehydrated_ms
                .store(rehydrated, Ordering::Relaxed);
            if self.last_commit.elapsed() >= COMMIT_EVERY {
                self.commit(source)?;
            }
        }
        self.dead.flush()?;
        Ok(())
    }

    /// Commits what is durable: dead letters are flushed first, then the source commits
    /// the records handed on before the durable frontier.
    fn commit(&mut self, source: &mut dyn Source) -> Result<(), IngestError> {
        self.last_commit = Instant::now();
        if let Some(durable) = &self.durable {
            let frontier = durable.load(Ordering::Acquire);
            self.dead.flush()?;
            source.commit_before(frontier)?;
        }
        Ok(())
    }

    /// Ends ingestion: closes the dataflow's input, waits (up to `wait`, and only until
    /// `abort` is set: stopped by force, the last outputs will not come) until everything
    /// handed on is durable, and commits what is.
    pub fn finish(
        self,
        source: &mut dyn Source,
        wait: Duration,
        abort: &AtomicBool,
    ) -> Result<(), IngestError> {
        let Ingestor {
            router,
            mut dead,
            durable,
            last_time,
            ..
        } = self;
        drop(router);
        dead.flush()?;
        if let Some(durable) = durable {
            let started = Instant::now();
            while durable.load(Ordering::Acquire) <= last_time
                && started.elapsed() < wait
                && !abort.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            source.commit_before(durable.load(Ordering::Acquire))?;
        }
        Ok(())
    }

    /// The dead-letter sink (to inspect in tests).
    pub fn dead_letters(&self) -> &D {
        &self.dead
    }
}
