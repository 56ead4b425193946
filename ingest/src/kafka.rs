//! Kafka: the input topics as a [`Source`], and the producers of the output topics.
//!
//! # Reading
//! Every partition of every input topic is assigned from the beginning: on start,
//! the dataflow's state is rebuilt from the retained history (the indicator topic with
//! every version, the retained events) before live records follow. The
//! committed offsets of the consumer group mark how far a previous run had got:
//! until every partition has passed them, the source is *rehydrating*.
//!
//! # Logical time
//! Records are released in timestamp order across partitions, so a record's logical
//! time — its Kafka timestamp rounded up to the epoch — is the same on every run, and a
//! restart re-derives the same alert ids and versions. A partition without a buffered
//! record holds the others back at its *frontier*:
//!
//! - before its end (as known at start, or as the broker last reported it), nothing can
//!   pass it: records known to exist are still to come;
//! - at its end, its frontier is the wall-clock instant at which the broker last
//!   confirmed that end (a fetch that hit the end, or a `ListOffsets` answer no higher
//!   than what was read, which a thread of the source asks for every [`PROBE_EVERY`]),
//!   minus the **skew allowance** ([`DEFAULT_SKEW_ALLOWANCE_MS`], 250 ms, `--skew-allowance`).
//!   A record appended after that answer was stamped by its producer no earlier than the
//!   allowance before it, unless the producer's clock or its batching is off by more:
//!   the allowance covers a producer's linger (5 ms by default), the trip to the broker,
//!   and clock differences between well-synchronised hosts. It is also the latency an
//!   idle partition adds to live records: they wait until the broker has confirmed that
//!   the idle partition had nothing older.
//!
//! The source's watermark (what the dataflow's timers, expiries and handovers run on) is
//! the least frontier over all partitions, so an idle stream's clock moves only as far as
//! the broker vouches for: with the broker away, it stops.
//!
//! **Late records.** A record that still arrives behind the watermark (stamped more than
//! the allowance before its append, or behind an earlier record of its own partition) is
//! counted in `fusion_ingest_late_records_total{topic}`, logged, and **counted at the
//! watermark**: its logical time becomes the watermark's epoch. It is not dead-lettered:
//! a late officer action or sighting is still true, and its event time (the data that
//! windows and buckets use) is unchanged; only the instant at which the dataflow learns
//! it moves, by at most the delay that made it late.
//!
//! Every such decision, and every record dead-lettered as stamped in the future (a
//! judgement against the wall clock), is bound in the durable [`crate::remap`] before the
//! record is handed on, and read back on restart: a replay gives every record the logical
//! time it had the first time, whatever the wall clock and the broker say then.
//!
//! # Committing
//! Offsets are committed only for records whose logical time the caller reports
//! as durable: the dataflow's output frontier has passed it and what it produced
//! (alerts, dead letters) has been acknowledged by the broker
//! ([`KafkaSource::commit_before`]). Auto-commit is off.
//!
//! # Writing
//! Producers are idempotent; a record that cannot be delivered is an error
//! surfaced at the next flush, never silently dropped.
//!
//! # Metrics
//! Records in and out, dead letters by code, consumer lag per partition and commit
//! latency are counted in the configuration's [`KafkaMetrics`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use schemas::{AlertChange, DeadLetter, Topic};

use crate::deadletter::DeadLetterSink;
use crate::metrics::KafkaMetrics;
use crate::record::{Poll, RawRecord, Source, SourceError};
use crate::remap::{self, Binding, BindingKind, Remap, RemapLog};

/// Where the broker is and how topics are named.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Prefix of every topic name (default `fusion.`).
    pub prefix: String,
    /// Consumer group of the fusion center.
    pub group_id: String,
    /// Partitions of topics created by [`create_topics`].
    pub partitions: i32,
    /// Where the Kafka path counts what it does.
    pub metrics: KafkaMetrics,
}

impl KafkaConfig {
    /// A configuration with the default prefix, group and partitions.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            prefix: "fusion.".to_string(),
            group_id: "fusion".to_string(),
            partitions: 4,
            metrics: KafkaMetrics::new(),
        }
    }

    /// The full name of `topic`.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.suffix())
    }

    /// The full name of the remap topic ([`crate::remap`]).
    pub fn remap_topic(&self) -> String {
        format!("{}remap", self.prefix)
    }
}

/// Kafka failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaFailure {
    /// The client failed.
    #[error(
        "Kafka at {brokers}: {source}; check that the broker runs and the topics exist (`fusion topics create`)"
    )]
    Client {
        /// The bootstrap servers.
        brokers: String,
        /// The cause.
        #[source]
        source: KafkaError,
    },
    /// A record could not be delivered.
    #[error("the broker did not accept a record for {topic}: {reason}")]
    Delivery {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

fn client(brokers: &str, source: KafkaError) -> KafkaFailure {
    KafkaFailure::Client {
        brokers: brokers.to_string(),
        source,
    }
}

/// Creates every topic (inputs, outputs and the remap); existing topics are left as they
/// are. Returns, per topic, whether it was created.
///
/// No topic is compacted: the indicator topic keeps every version of every indicator
/// for its retention, so any period's alert history can be re-derived (a compacted
/// topic would rebuild the same current state, but alerts opened under a superseded
/// version would come out at other versions). Rehydration still ends with the latest
/// version of each indicator: the dataflow keeps, per indicator id, the version with the
/// latest `modified` and ignores older ones, whatever order they are read in.
pub async fn create_topics(cfg: &KafkaConfig) -> Result<Vec<(String, bool)>, KafkaFailure> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .map_err(|e| client(&cfg.brokers, e))?;
    let names: Vec<String> = Topic::ALL.iter().map(|t| cfg.topic(*t)).collect();
    let remap = cfg.remap_topic();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, cfg.partitions, TopicReplication::Fixed(1)))
        // One partition: bindings are read back in the order they were written (a later
        // one wins). Deleted by the retention the inputs have, never compacted.
        .chain([
            NewTopic::new(&remap, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "delete")
        ])
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .map_err(|e| client(&cfg.brokers, e))?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(name) => out.push((name, true)),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                out.push((name, false))
            }
            Err((name, code)) => {
                return Err(KafkaFailure::Delivery {
                    topic: name,
                    reason: format!("cannot create the topic: {code}"),
                });
            }
        }
    }
    Ok(out)
}

/// Remembers the first delivery failure of a producer and counts acknowledged records.
#[derive(Default)]
pub struct DeliveryTracker {
    failure: Mutex<Option<String>>,
    acknowledged: Option<IntCounter>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                if let Some(c) = &self.acknowledged {
                    c.inc();
                }
            }
            Err((e, msg)) => {
                if let Ok(mut f) = self.failure.lock()
                    && f.is_none()
                {
                    *f = Some(format!("{e} (topic {})", msg.topic()));
                }
            }
        }
    }
}

/// An idempotent producer to one topic.
pub struct TopicProducer {
    producer: ThreadedProducer<DeliveryTracker>,
    topic: String,
}

impl TopicProducer {
    /// A producer to `topic`.
    pub fn new(brokers: &str, topic: String) -> Result<Self, KafkaFailure> {
        Self::with_tracker(brokers, topic, DeliveryTracker::default())
    }

    /// A producer to `topic` of `cfg` whose acknowledged records are counted in its metrics.
    pub fn counted(cfg: &KafkaConfig, topic: Topic) -> Result<Self, KafkaFailure> {
        let name = cfg.topic(topic);
        let tracker = DeliveryTracker {
            acknowledged: Some(cfg.metrics.records_out.with_label_values(&[name.as_str()])),
            ..DeliveryTracker::default()
        };
        Self::with_tracker(&cfg.brokers, name, tracker)
    }

    fn with_tracker(
        brokers: &str,
        topic: String,
        tracker: DeliveryTracker,
    ) -> Result<Self, KafkaFailure> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Retries after a broker failure must not duplicate or reorder records.
            .set("enable.idempotence", "true")
            // Never give up on a record: a broker outage pauses Fusion instead of losing output.
            .set("message.timeout.ms", "0")
            // Small batches: alerts should leave within milliseconds, but bursts still batch.
            .set("linger.ms", "5")
            .create_with_context(tracker)
            .map_err(|e| client(brokers, e))?;
        Ok(Self { producer, topic })
    }

    /// Queues one record; waits while the local queue is full.
    pub fn send(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        timestamp_ms: Option<i64>,
    ) -> Result<(), KafkaFailure> {
        self.send_with_headers(key, payload, timestamp_ms, &[])
    }

    /// Queues one record with headers (name, value); waits while the local queue is full.
    pub fn send_with_headers(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        timestamp_ms: Option<i64>,
        headers: &[(&str, &[u8])],
    ) -> Result<(), KafkaFailure> {
        loop {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).payload(payload);
            if !headers.is_empty() {
                rec = rec.headers(headers.iter().fold(OwnedHeaders::new(), |hs, (k, v)| {
                    hs.insert(Header {
                        key: k,
                        value: Some(*v),
                    })
                }));
            }
            if let Some(k) = key {
                rec = rec.key(k);
            }
            if let Some(ts) = timestamp_ms {
                rec = rec.timestamp(ts);
            }
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(KafkaFailure::Delivery {
                        topic: self.topic.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged; fails if any was not.
    pub fn flush(&self) -> Result<(), KafkaFailure> {
        loop {
            match self.producer.flush(Duration::from_secs(10)) {
                Ok(()) => break,
                // The broker is away: keep waiting, nothing is lost while the records are queued.
                Err(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)) => {
                    tracing::warn!(topic = %self.topic, "waiting for the broker to acknowledge records");
                }
                Err(e) => {
                    return Err(KafkaFailure::Delivery {
                        topic: self.topic.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        match self
            .producer
            .context()
            .failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
        {
            Some(reason) => Err(KafkaFailure::Delivery {
                topic: self.topic.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

/// Dead letters to the dead-letter topic, keyed by the original topic, partition and offset.
pub struct KafkaDeadLetters {
    producer: TopicProducer,
    metrics: KafkaMetrics,
}

impl KafkaDeadLetters {
    /// A producer to the dead-letter topic of `cfg`.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaFailure> {
        Ok(Self {
            producer: TopicProducer::counted(cfg, Topic::Deadletter)?,
            metrics: cfg.metrics.clone(),
        })
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn send(&mut self, dead: DeadLetter) -> std::io::Result<()> {
        let key = format!("{}/{}/{}", dead.topic, dead.partition, dead.offset);
        let payload = serde_json::to_vec(&dead)?;
        self.metrics
            .dead_letters
            .with_label_values(&[dead.code.as_str()])
            .inc();
        self.producer
            .send(
                Some(key.as_bytes()),
                &payload,
                Some(dead.rejected_at.as_millisecond()),
            )
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.producer.flush().map_err(std::io::Error::other)
    }
}

/// Alert changes to the alert topic: key = alert id, value = the change (new version or retraction).
pub struct KafkaAlerts(TopicProducer);

impl KafkaAlerts {
    /// A producer to the alert topic of `cfg`.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaFailure> {
        Ok(Self(TopicProducer::counted(cfg, Topic::Alerts)?))
    }

    /// Queues one change.
    pub fn send(&self, change: &AlertChange) -> Result<(), KafkaFailure> {
        let payload = serde_json::to_vec(change).map_err(|e| KafkaFailure::Delivery {
            topic: self.0.topic.clone(),
            reason: e.to_string(),
        })?;
        self.0.send(
            Some(change.alert.id.as_bytes()),
            &payload,
            i64::try_from(change.version).ok(),
        )
    }

    /// Waits until every queued change is acknowledged.
    pub fn flush(&self) -> Result<(), KafkaFailure> {
        self.0.flush()
    }
}

/// High watermarks per partition of one topic, as librdkafka's statistics last reported them.
#[derive(Default)]
struct HighWatermarks(Mutex<HashMap<i32, i64>>);

impl HighWatermarks {
    fn get(&self, partition: i32) -> Option<i64> {
        self.0.lock().ok()?.get(&partition).copied()
    }
}

/// A consumer context that keeps the high watermarks from the statistics (for the lag metric).
#[derive(Clone, Default)]
struct LagContext(Arc<HighWatermarks>);

impl ClientContext for LagContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // Every consumer error also reaches `poll`, which handles it; an end of partition
        // is no error at all (rdkafka's default logs each one at error level).
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(error = %error, reason, "Kafka consumer error");
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let Ok(mut highs) = (self.0).0.lock() else {
            return;
        };
        for topic in statistics.topics.values() {
            for (id, p) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; -1001 an unknown offset.
                if *id >= 0 && p.hi_offset >= 0 {
                    highs.insert(*id, p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

/// One input topic's consumer.
struct TopicReader {
    topic: Topic,
    name: String,
    consumer: BaseConsumer<LagContext>,
    highs: Arc<HighWatermarks>,
    records_in: IntCounter,
}

/// State of one partition.
#[derive(Default)]
struct Partition {
    queue: VecDeque<RawRecord>,
    /// Reached the end of the partition, nothing buffered since.
    at_end: bool,
    /// (logical time, offset) of records handed on and not yet committed.
    pending: VecDeque<(u64, i64)>,
    /// Offset committed by an earlier run (rehydration target), if any.
    committed_at_start: Option<i64>,
    /// The partition's end (high watermark) when the run started: an end of partition
    /// reported before this offset is not believed (see [`KafkaSource::fetch`]).
    end_at_start: i64,
    /// Next offset to read.
    position: i64,
    /// The consumer-lag gauge of this partition.
    lag: Option<IntGauge>,
    /// Fetching is paused: the queue was full (see [`PARTITION_QUEUE`]).
    paused: bool,
    /// Wall-clock instant (ms) at which the broker last confirmed, while the partition
    /// was at its end, that it held nothing beyond what was read.
    end_confirmed_ms: Option<i64>,
    /// The partition's low watermark when the run started (retention deleted what is below).
    low_at_start: i64,
}

/// Most records buffered per partition. A partition that runs ahead of the one the
/// timestamp-ordered release waits for is paused at this many records (the client stops
/// fetching it and drops what it had prefetched) and resumed, from the next offset, once
/// half of them have been released; so memory stays bounded, and a source whose consumer
/// (the dataflow) is slow stops reading instead of buffering. Not less: a resumed
/// partition must not run dry before the broker serves its next fetch (tansu takes up to
/// half a second), and each pause drops the prefetched records. Replaying 200k records
/// through tansu (3 partitions): 4096 halved the rate (12.6k -> 6.2k records/s), 16k
/// costs about a tenth (11.5k/s) for a peak RSS of 187 MB (179 MB unbounded).
const PARTITION_QUEUE: usize = 16 * 1024;

impl Partition {
    /// Full: fetching should pause.
    fn should_pause(&self) -> bool {
        !self.paused && self.queue.len() >= PARTITION_QUEUE
    }

    /// Paused and drained to half: fetching should resume.
    fn should_resume(&self) -> bool {
        self.paused && self.queue.len() <= PARTITION_QUEUE / 2
    }
}

impl Partition {
    /// Buffers the next record read. Returns false, and drops it, if its offset is below
    /// the position: the client went back (an offset reset, a broker restart) and this
    /// record was already handed on in this run; a second copy would count twice and
    /// arrive out of time order.
    fn accept(&mut self, rec: RawRecord) -> bool {
        if rec.offset < self.position {
            return false;
        }
        self.at_end = false;
        self.position = rec.offset + 1;
        self.queue.push_back(rec);
        true
    }

    /// The client reported the end of the partition, from a fetch sent no earlier than
    /// `confirmed_ms`. Believed (and true is returned) only from the end known at start
    /// on: before it, records known to exist are still to come, and releasing the other
    /// partitions past them would break time order (a batch run would even stop short).
    /// The client keeps fetching either way.
    fn reached_end(&mut self, confirmed_ms: i64) -> bool {
        if self.position >= self.end_at_start {
            self.at_end = true;
            self.confirm(confirmed_ms);
        }
        self.at_end
    }

    /// The broker, asked at `asked_ms`, said the partition ends before `high`.
    fn broker_end(&mut self, high: i64, asked_ms: i64) {
        if high <= self.position && self.position >= self.end_at_start {
            self.at_end = true;
            self.confirm(asked_ms);
        } else if high > self.position {
            // Records the broker already holds are on their way: wait for them.
            self.at_end = false;
        }
    }

    fn confirm(&mut self, at_ms: i64) {
        self.end_confirmed_ms = Some(self.end_confirmed_ms.map_or(at_ms, |c| c.max(at_ms)));
    }

    /// No record stamped before this will be released from the partition any more, if
    /// known: its oldest buffered record, or, with nothing buffered at its end, the last
    /// confirmation of its end less the skew allowance. None holds everything back.
    fn frontier(&self, skew_ms: i64) -> Option<i64> {
        match self.queue.front() {
            Some(r) => Some(r.timestamp_ms),
            None if self.at_end => self.end_confirmed_ms.map(|c| c.saturating_sub(skew_ms)),
            None => None,
        }
    }
}

/// What one release gave.
#[derive(Default)]
struct Release {
    /// Records in timestamp order, late ones re-timed.
    records: Vec<RawRecord>,
    /// Decisions to make durable before the records are handed on ([`crate::remap`]).
    minted: Vec<Binding>,
    /// Records counted at the watermark: (topic, partition, offset, stamped ms).
    late: Vec<(Topic, i32, i64, i64)>,
}

/// Releases up to `max` buffered records across `partitions` in timestamp order (ties by
/// topic and partition), as far as every partition allows: none passes the frontier of a
/// partition with nothing buffered ([`Partition::frontier`]). A record behind `watermark`
/// is late: it is re-timed to the watermark and bound ([`Release::minted`]), unless
/// `remap` already binds it; so is a record marked as stamped in the future. Raises
/// `watermark` to the last time released, then, if `idle_clock`, to the least frontier of
/// all partitions (an idle stream's clock, as far as the broker vouches for it).
fn release_in_order(
    partitions: &mut BTreeMap<(Topic, i32), Partition>,
    watermark: &mut Option<i64>,
    max: usize,
    skew_ms: i64,
    remap: &Remap,
    idle_clock: bool,
) -> Release {
    let mut out = Release::default();
    while out.records.len() < max {
        let mut bound = i64::MAX;
        for p in partitions.values().filter(|p| p.queue.is_empty()) {
            match p.frontier(skew_ms) {
                Some(f) => bound = bound.min(f),
                None => return finish_release(partitions, watermark, skew_ms, idle_clock, out),
            }
        }
        let next = partitions
            .iter_mut()
            .filter(|(_, p)| !p.queue.is_empty())
            .min_by_key(|(k, p)| (p.queue.front().map(|r| r.timestamp_ms), **k));
        let Some((_, p)) = next else {
            break;
        };
        if p.queue.front().is_some_and(|r| r.timestamp_ms > bound) {
            break;
        }
        let Some(mut rec) = p.queue.pop_front() else {
            break;
        };
        let w = watermark.unwrap_or(i64::MIN);
        let mint = |rec: &RawRecord, kind| Binding {
            topic: rec.topic,
            partition: rec.partition,
            from: rec.offset,
            to: rec.offset + 1,
            time_ms: rec.timestamp_ms,
            kind,
        };
        if rec.future_timestamp_ms.is_some() {
            // Dead-lettered, not late: its time only orders its commit.
            rec.timestamp_ms = rec.timestamp_ms.max(w);
            if remap.lookup(rec.topic, rec.partition, rec.offset).is_none() {
                let clock_ms = crate::future::clock_of(&rec).unwrap_or(rec.timestamp_ms);
                out.minted
                    .push(mint(&rec, BindingKind::Future { clock_ms }));
            }
        } else if rec.timestamp_ms < w {
            out.late
                .push((rec.topic, rec.partition, rec.offset, rec.timestamp_ms));
            rec.timestamp_ms = w;
            out.minted.push(mint(&rec, BindingKind::Late));
        }
        *watermark = Some(w.max(rec.timestamp_ms));
        out.records.push(rec);
    }
    finish_release(partitions, watermark, skew_ms, idle_clock, out)
}

/// Raises `watermark` to the least frontier of all partitions, if every one has one and
/// `idle_clock` is on.
fn finish_release(
    partitions: &BTreeMap<(Topic, i32), Partition>,
    watermark: &mut Option<i64>,
    skew_ms: i64,
    idle_clock: bool,
    out: Release,
) -> Release {
    if !idle_clock {
        return out;
    }
    let least = partitions
        .values()
        .map(|p| p.frontier(skew_ms))
        .try_fold(i64::MAX, |least, f| f.map(|f| least.min(f)));
    if let Some(least) = least.filter(|l| *l != i64::MAX) {
        *watermark = Some(watermark.unwrap_or(i64::MIN).max(least));
    }
    out
}

/// The input topics as a source.
pub struct KafkaSource {
    readers: Vec<TopicReader>,
    partitions: BTreeMap<(Topic, i32), Partition>,
    watermark: Option<i64>,
    started: Instant,
    rehydrated_after: Option<Duration>,
    /// Records read so far.
    read: u64,
    /// End (instead of idling) once caught up on every partition.
    stop_when_caught_up: bool,
    /// Reads only: no offset is committed and no binding written (a drill capture).
    read_only: bool,
    metrics: KafkaMetrics,
    /// When the lag gauges were last updated.
    lag_updated: Option<Instant>,
    /// How far ahead of the wall clock a record may be stamped (ms).
    future_tolerance_ms: i64,
    /// How much earlier than the broker's confirmation of an idle partition's end a
    /// record appended to it afterwards may be stamped (ms); see the module doc.
    skew_ms: i64,
    /// Bindings of offsets to times decided by earlier runs (of records still retained).
    remap: Remap,
    /// Where new bindings are made durable.
    remap_log: RemapLog,
    /// The broker's latest answers on the partitions' ends.
    ends: EndProbe,
    /// Late records counted, per input topic.
    late_records: BTreeMap<Topic, IntCounter>,
}

/// The skew allowance of an idle partition's frontier (ms): see the module doc.
pub const DEFAULT_SKEW_ALLOWANCE_MS: i64 = 250;

/// How often the broker is asked for the ends of partitions with nothing buffered (a
/// `ListOffsets` request per topic), so their frontiers follow what it holds.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);

/// How long one such request may take (the broker may be away).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Latest answer per partition: (end offset, wall-clock ms when it was asked for).
type EndAnswers = HashMap<(Topic, i32), (i64, i64)>;

/// A thread that asks the broker for the end of every input partition every
/// [`PROBE_EVERY`] (one `ListOffsets` request per topic), so the source's thread never
/// waits on it; the source applies the answers at its next poll.
struct EndProbe {
    answers: Arc<Mutex<EndAnswers>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EndProbe {
    fn spawn(
        cfg: &KafkaConfig,
        partitions: &BTreeMap<(Topic, i32), Partition>,
    ) -> Result<Self, KafkaFailure> {
        // No group: it only asks for offsets.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .create()
            .map_err(|e| client(&cfg.brokers, e))?;
        let mut topics: BTreeMap<Topic, (String, Vec<i32>)> = BTreeMap::new();
        for (topic, id) in partitions.keys() {
            topics
                .entry(*topic)
                .or_insert_with(|| (cfg.topic(*topic), Vec::new()))
                .1
                .push(*id);
        }
        let answers = Arc::new(Mutex::new(EndAnswers::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let answers = Arc::clone(&answers);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-end-probe".into())
                .spawn(move || probe_ends(&consumer, &topics, &answers, &stop))
                .map_err(|e| KafkaFailure::Delivery {
                    topic: "(input topics)".into(),
                    reason: format!("cannot start the end-of-partition probe: {e}"),
                })?
        };
        Ok(Self {
            answers,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EndProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The probe's loop: asks for every partition's end, records the answers, until `stop`.
fn probe_ends(
    consumer: &BaseConsumer,
    topics: &BTreeMap<Topic, (String, Vec<i32>)>,
    answers: &Mutex<EndAnswers>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        for (topic, (name, ids)) in topics {
            let mut tpl = TopicPartitionList::new();
            for id in ids {
                // In offsets_for_times, "End" asks for the latest offset (the log end).
                let _ = tpl.add_partition_offset(name, *id, Offset::End);
            }
            let asked = jiff::Timestamp::now().as_millisecond();
            match consumer.offsets_for_times(tpl, PROBE_TIMEOUT) {
                Ok(ends) => {
                    let Ok(mut answers) = answers.lock() else {
                        return;
                    };
                    for e in ends.elements() {
                        if let Offset::Offset(high) = e.offset() {
                            answers.insert((*topic, e.partition()), (high, asked));
                        }
                    }
                }
                // The frontiers wait for the broker's next answer.
                Err(e) => {
                    tracing::debug!(topic = %name, error = %e, "cannot ask for the ends of partitions")
                }
            }
        }
        std::thread::sleep(PROBE_EVERY);
    }
}

/// `fetch.wait.max.ms` of the consumers: an end of partition reported by a fetch was
/// true no earlier than this before it was received.
const FETCH_WAIT_MS: i64 = 50;

/// How often the consumer-lag gauges are recomputed (the statistics come once a second).
const LAG_EVERY: Duration = Duration::from_secs(1);

/// One opened input topic: its reader and its partitions.
type OpenedTopic = (TopicReader, Vec<((Topic, i32), Partition)>);

/// How long [`KafkaSource::open`] keeps trying while the broker does not answer.
const OPEN_PATIENCE: Duration = Duration::from_secs(120);

impl KafkaSource {
    /// Assigns every partition of every input topic from the beginning. A broker that is
    /// away (restarting, not yet up) is waited for, with a warning per attempt, for up to
    /// two minutes; then the last error is returned.
    pub fn open(cfg: &KafkaConfig) -> Result<Self, KafkaFailure> {
        let started = Instant::now();
        loop {
            match Self::open_once(cfg) {
                Ok(source) => return Ok(source),
                Err(e) if started.elapsed() < OPEN_PATIENCE => {
                    tracing::warn!(error = %e, "cannot open the input topics yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn open_once(cfg: &KafkaConfig) -> Result<Self, KafkaFailure> {
        // The topics are opened side by side: each takes several round trips to the broker
        // (metadata, committed offsets, a watermark per partition).
        let opened: Vec<Result<OpenedTopic, KafkaFailure>> = std::thread::scope(|scope| {
            let handles: Vec<_> = Topic::INPUTS
                .into_iter()
                .map(|topic| scope.spawn(move || Self::open_topic(cfg, topic)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(KafkaFailure::Delivery {
                            topic: "(input topics)".into(),
                            reason: "opening a topic panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut readers = Vec::new();
        let mut partitions = BTreeMap::new();
        for result in opened {
            let (reader, parts) = result?;
            readers.push(reader);
            partitions.extend(parts);
        }
        let mut remap = remap::load(cfg)?;
        for ((topic, id), p) in &partitions {
            remap.prune_below(*topic, *id, p.low_at_start);
        }
        let remap_log = RemapLog::new(cfg)?;
        let ends = EndProbe::spawn(cfg, &partitions)?;
        let late_records = Topic::INPUTS
            .into_iter()
            .map(|t| {
                let name = cfg.topic(t);
                (
                    t,
                    cfg.metrics.late_records.with_label_values(&[name.as_str()]),
                )
            })
            .collect();
        cfg.metrics.rehydrating.set(1);
        Ok(Self {
            readers,
            partitions,
            watermark: None,
            started: Instant::now(),
            rehydrated_after: None,
            read: 0,
            stop_when_caught_up: false,
            read_only: false,
            metrics: cfg.metrics.clone(),
            lag_updated: None,
            future_tolerance_ms: crate::future::DEFAULT_TOLERANCE_MS,
            skew_ms: DEFAULT_SKEW_ALLOWANCE_MS,
            remap,
            remap_log,
            ends,
            late_records,
        })
    }

    /// Sets the skew allowance of idle partitions' frontiers (ms; default
    /// [`DEFAULT_SKEW_ALLOWANCE_MS`]).
    #[must_use]
    pub fn with_skew_allowance(mut self, skew_ms: i64) -> Self {
        self.skew_ms = skew_ms.max(0);
        self
    }

    /// Sets how far ahead of the wall clock a record may be stamped (ms; default
    /// [`crate::future::DEFAULT_TOLERANCE_MS`]); a record further ahead is handed on at
    /// once to be dead-lettered ([`crate::future`]).
    #[must_use]
    pub fn with_future_tolerance(mut self, tolerance_ms: i64) -> Self {
        self.future_tolerance_ms = tolerance_ms.max(0);
        self
    }

    /// Assigns every partition of `topic` from the beginning, with what an earlier run committed.
    fn open_topic(cfg: &KafkaConfig, topic: Topic) -> Result<OpenedTopic, KafkaFailure> {
        let mut partitions = Vec::new();
        let name = cfg.topic(topic);
        let context = LagContext::default();
        let highs = Arc::clone(&context.0);
        let consumer: BaseConsumer<LagContext> = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            // Offsets are committed per partition for the whole fusion center.
            .set("group.id", &cfg.group_id)
            // Offsets are committed by hand, only once what a record produced is durable.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Report the end of each partition: records are released in timestamp order
            // across partitions, and a partition at its end must not hold the others back.
            .set("enable.partition.eof", "true")
            // Rehydration reads from the start; this only matters if an offset is out of range.
            .set("auto.offset.reset", "earliest")
            // Short fetch waits keep live latency low once caught up.
            .set("fetch.wait.max.ms", "50")
            // Partitions run ahead of others in the local queue while records are released
            // in time order; the default 1 s pause before fetching such a partition again
            // would stall the partition the merge waits for.
            .set("fetch.queue.backoff.ms", "10")
            // The statistics carry each partition's high watermark: the lag metric.
            .set("statistics.interval.ms", "1000")
            .create_with_context(context)
            .map_err(|e| client(&cfg.brokers, e))?;
        let metadata = consumer
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .map_err(|e| client(&cfg.brokers, e))?;
        let ids: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if ids.is_empty() {
            return Err(KafkaFailure::Delivery {
                topic: name,
                reason:
                    "the topic has no partitions; create the topics with `fusion topics create`"
                        .into(),
            });
        }
        let mut tpl = TopicPartitionList::new();
        for id in &ids {
            tpl.add_partition(&name, *id);
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .map_err(|e| client(&cfg.brokers, e))?;
        for id in &ids {
            let at = committed
                .find_partition(&name, *id)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let (low, high) = consumer
                .fetch_watermarks(&name, *id, Duration::from_secs(10))
                .map_err(|e| client(&cfg.brokers, e))?;
            let partition = id.to_string();
            partitions.push((
                (topic, *id),
                Partition {
                    committed_at_start: at,
                    lag: Some(
                        cfg.metrics
                            .consumer_lag
                            .with_label_values(&[name.as_str(), partition.as_str()]),
                    ),
                    // An emptied partition (everything deleted) has nothing to wait for.
                    end_at_start: if low >= high { 0 } else { high },
                    low_at_start: low,
                    ..Partition::default()
                },
            ));
            tpl.set_partition_offset(&name, *id, Offset::Beginning)
                .map_err(|e| client(&cfg.brokers, e))?;
        }
        consumer.assign(&tpl).map_err(|e| client(&cfg.brokers, e))?;
        let records_in = cfg.metrics.records_in.with_label_values(&[name.as_str()]);
        Ok((
            TopicReader {
                topic,
                name,
                consumer,
                highs,
                records_in,
            },
            partitions,
        ))
    }

    /// Makes the source end once it has read everything there is (batch runs, tests, benchmarks).
    pub fn stop_when_caught_up(mut self) -> Self {
        self.stop_when_caught_up = true;
        self
    }

    /// Makes the source read only: it commits no offset and writes no binding (a binding
    /// it would mint is kept in memory), so reading the topics (a drill capture) changes
    /// nothing a live instance relies on.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// How long rebuilding the state from the retained history took, once done.
    pub fn rehydrated_after(&self) -> Option<Duration> {
        self.rehydrated_after
    }

    /// True while records committed by an earlier run are being re-read.
    pub fn rehydrating(&self) -> bool {
        self.rehydrated_after.is_none()
    }

    fn fetch(&mut self, max: usize) -> Result<usize, SourceError> {
        let mut fetched = 0;
        // Every topic gets its share, so a busy topic never starves the others.
        let share = (max / self.readers.len().max(1)).max(1);
        for reader in &self.readers {
            let mut taken = 0;
            while taken < share {
                let Some(result) = reader.consumer.poll(Duration::ZERO) else {
                    break;
                };
                match result {
                    Ok(msg) => {
                        let part = self
                            .partitions
                            .entry((reader.topic, msg.partition()))
                            .or_default();
                        let expected = part.position;
                        let mut rec = RawRecord {
                            topic: reader.topic,
                            partition: msg.partition(),
                            offset: msg.offset(),
                            timestamp_ms: msg.timestamp().to_millis().unwrap_or(0),
                            key: msg.key().map(<[u8]>::to_vec),
                            payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                            headers: msg.headers().map_or_else(Vec::new, |hs| {
                                hs.iter()
                                    .map(|h| {
                                        (
                                            h.key.to_string(),
                                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                        )
                                    })
                                    .collect()
                            }),
                            future_timestamp_ms: None,
                        };
                        let now = jiff::Timestamp::now().as_millisecond();
                        match self.remap.lookup(rec.topic, rec.partition, rec.offset) {
                            // Decided by an earlier run: decided again the same way.
                            Some(bound) => match bound.kind {
                                BindingKind::Late => rec.timestamp_ms = bound.time_ms,
                                BindingKind::Future { clock_ms } => {
                                    crate::future::mark(&mut rec, clock_ms, bound.time_ms);
                                }
                            },
                            None => {
                                // Stamped too far ahead of the wall clock: handed on in place
                                // (at the partition's last time) to be dead-lettered, so it
                                // neither holds the other partitions back nor moves the
                                // watermark.
                                let at = part
                                    .queue
                                    .back()
                                    .map(|r| r.timestamp_ms)
                                    .or(self.watermark)
                                    .unwrap_or(now)
                                    .min(now);
                                crate::future::judge(&mut rec, now, self.future_tolerance_ms, at);
                            }
                        }
                        let accepted = part.accept(rec);
                        if !accepted {
                            tracing::warn!(topic = %reader.name, partition = msg.partition(), offset = msg.offset(), expected, "a record read again; skipped");
                            continue;
                        }
                        fetched += 1;
                        taken += 1;
                        self.read += 1;
                        reader.records_in.inc();
                    }
                    Err(KafkaError::PartitionEOF(p)) => {
                        let part = self.partitions.entry((reader.topic, p)).or_default();
                        let sent = jiff::Timestamp::now().as_millisecond() - FETCH_WAIT_MS;
                        if !part.reached_end(sent) {
                            tracing::warn!(topic = %reader.name, partition = p, position = part.position, end = part.end_at_start, "end of partition reported before its known end; ignored");
                        }
                    }
                    // Broker away, timeouts: transient; librdkafka reconnects by itself.
                    Err(e) => {
                        tracing::warn!(topic = %reader.name, error = %e, "Kafka consumer error; retrying");
                        break;
                    }
                }
            }
        }
        Ok(fetched)
    }

    /// Releases up to `max` buffered records in timestamp order, as far as every partition
    /// allows; the decisions bound on the way are durable before the records are returned.
    fn release(&mut self, max: usize) -> Result<Vec<RawRecord>, SourceError> {
        let out = release_in_order(
            &mut self.partitions,
            &mut self.watermark,
            max,
            self.skew_ms,
            &self.remap,
            // A batch run replays what is there: its clock ends at its last record, as a
            // replay of the same records from files does, instead of jumping to the wall
            // clock (which would expire alerts the files' replay keeps open).
            !self.stop_when_caught_up,
        );
        if self.read_only {
            for b in remap::coalesce(out.minted) {
                self.remap.insert(&b);
            }
        } else if !out.minted.is_empty() {
            let bindings = remap::coalesce(out.minted);
            // Only written: this run never looks them up again (a record read again is
            // dropped, see `Partition::accept`), so memory holds only what earlier runs
            // bound, pruned to the retained input at start.
            self.remap_log
                .append(&bindings)
                .map_err(|e| SourceError::Remap(e.to_string()))?;
        }
        if let Some((topic, partition, offset, stamped)) = out.late.first() {
            for (topic, ..) in &out.late {
                if let Some(c) = self.late_records.get(topic) {
                    c.inc();
                }
            }
            tracing::warn!(
                records = out.late.len(),
                %topic,
                partition,
                offset,
                stamped,
                watermark = self.watermark,
                "records arrived behind the watermark; counted at it (fusion_ingest_late_records_total)"
            );
        }
        Ok(out.records)
    }

    /// Applies the broker's answers on the partitions' ends that came since the last poll.
    fn apply_ends(&mut self) {
        let Ok(mut answers) = self.ends.answers.lock() else {
            return;
        };
        for (key, (high, asked_ms)) in answers.drain() {
            if let Some(p) = self.partitions.get_mut(&key) {
                p.broker_end(high, asked_ms);
            }
        }
    }

    /// Pauses fetching full partitions and resumes drained ones ([`PARTITION_QUEUE`]).
    fn pace_partitions(&mut self) {
        for reader in &self.readers {
            for pause in [true, false] {
                let mut tpl = TopicPartitionList::new();
                let mut ids = Vec::new();
                for ((topic, id), p) in &self.partitions {
                    let due = if pause {
                        p.should_pause()
                    } else {
                        p.should_resume()
                    };
                    if *topic == reader.topic && due {
                        tpl.add_partition(&reader.name, *id);
                        ids.push(*id);
                    }
                }
                if ids.is_empty() {
                    continue;
                }
                let paced = if pause {
                    reader.consumer.pause(&tpl)
                } else {
                    reader.consumer.resume(&tpl)
                };
                match paced {
                    Ok(()) => {
                        for id in &ids {
                            if let Some(p) = self.partitions.get_mut(&(reader.topic, *id)) {
                                p.paused = pause;
                            }
                        }
                        tracing::debug!(topic = %reader.name, pause, partitions = ?ids, "partition fetching paced");
                    }
                    // Tried again at the next poll.
                    Err(e) => {
                        tracing::warn!(topic = %reader.name, pause, error = %e, "cannot pause or resume partitions")
                    }
                }
            }
        }
    }

    fn check_rehydrated(&mut self) {
        if self.rehydrated_after.is_some() {
            return;
        }
        let done = self
            .partitions
            .values()
            .all(|p| match p.committed_at_start {
                Some(target) => p.position >= target || (p.at_end && p.queue.is_empty()),
                None => true,
            });
        if done {
            let took = self.started.elapsed();
            self.rehydrated_after = Some(took);
            self.metrics.rehydrating.set(0);
            tracing::info!(
                records = self.read,
                seconds = took.as_secs_f64(),
                "rehydrated from the retained history"
            );
        }
    }
}

impl KafkaSource {
    /// Recomputes the consumer-lag gauges, at most once per [`LAG_EVERY`].
    fn update_lag(&mut self) {
        if self.lag_updated.is_some_and(|t| t.elapsed() < LAG_EVERY) {
            return;
        }
        self.lag_updated = Some(Instant::now());
        for reader in &self.readers {
            for ((topic, id), p) in &self.partitions {
                if *topic != reader.topic {
                    continue;
                }
                let Some(gauge) = &p.lag else { continue };
                // Records read but still buffered here are not handed on yet.
                let released = p.position - p.queue.len() as i64;
                let lag = if p.at_end && p.queue.is_empty() {
                    0
                } else {
                    reader
                        .highs
                        .get(*id)
                        .map_or(0, |high| (high - released).max(0))
                };
                gauge.set(lag);
            }
        }
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        "kafka"
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        loop {
            // Always drain the client's queue: the record a waiting partition needs may be
            // queued behind others, so refusing to fetch here could stall for good.
            let fetched = self.fetch(max)?;
            self.apply_ends();
            let out = self.release(max)?;
            self.pace_partitions();
            self.check_rehydrated();
            self.update_lag();
            if !out.is_empty() {
                return Ok(Poll::Records(out));
            }
            if fetched > 0 {
                // Records came in but a partition still holds the others back: fetch on.
                continue;
            }
            // Caught up everywhere: a batch run ends; a live one's clock moves on as the
            // broker confirms the ends (see `probe_ends`), not by the wall clock alone.
            if self.stop_when_caught_up
                && self
                    .partitions
                    .values()
                    .all(|p| p.at_end && p.queue.is_empty())
            {
                return Ok(Poll::Exhausted);
            }
            std::thread::sleep(Duration::from_millis(1));
            return Ok(Poll::Idle);
        }
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.watermark
    }

    fn rehydration(&self) -> Option<Duration> {
        self.rehydrated_after
    }

    fn on_routed(&mut self, topic: Topic, partition: i32, offset: i64, time_ms: u64) {
        if let Some(p) = self.partitions.get_mut(&(topic, partition)) {
            p.pending.push_back((time_ms, offset));
        }
    }

    fn commit_before(&mut self, frontier_ms: u64) -> Result<(), SourceError> {
        if self.read_only {
            return Ok(());
        }
        for reader in &self.readers {
            let mut tpl = TopicPartitionList::new();
            for ((topic, id), p) in &self.partitions {
                if *topic != reader.topic {
                    continue;
                }
                let last = p
                    .pending
                    .iter()
                    .take_while(|(t, _)| *t < frontier_ms)
                    .last()
                    .map(|(_, o)| *o);
                if let Some(o) = last {
                    let _ = tpl.add_partition_offset(&reader.name, *id, Offset::Offset(o + 1));
                }
            }
            if tpl.count() == 0 {
                continue;
            }
            let started = Instant::now();
            let result = reader.consumer.commit(&tpl, CommitMode::Sync);
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    for ((topic, _), p) in &mut self.partitions {
                        if *topic == reader.topic {
                            while p.pending.front().is_some_and(|(t, _)| *t < frontier_ms) {
                                p.pending.pop_front();
                            }
                        }
                    }
                    tracing::debug!(topic = %reader.name, ms = started.elapsed().as_millis() as u64, "committed offsets");
                }
                // The broker may be away for a while: the same offsets are committed next time.
                Err(e) => {
                    self.metrics.commit_failures.inc();
                    tracing::warn!(topic = %reader.name, error = %e, "cannot commit offsets yet; will retry");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;

    fn rec(topic: Topic, partition: i32, offset: i64, timestamp_ms: i64) -> RawRecord {
        RawRecord {
            topic,
            partition,
            offset,
            timestamp_ms,
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
            future_timestamp_ms: None,
        }
    }

    /// Two partitions of the event topic, each known to hold `end` records at start.
    fn two_partitions(end: i64) -> BTreeMap<(Topic, i32), Partition> {
        (0..2)
            .map(|p| {
                (
                    (Topic::SensorEvents, p),
                    Partition {
                        end_at_start: end,
                        ..Partition::default()
                    },
                )
            })
            .collect()
    }

    /// Offers the record at `offset` (time `ts`) of event partition `partition`.
    fn feed(
        parts: &mut BTreeMap<(Topic, i32), Partition>,
        partition: i32,
        offset: i64,
        ts: i64,
    ) -> bool {
        parts
            .get_mut(&(Topic::SensorEvents, partition))
            .unwrap()
            .accept(rec(Topic::SensorEvents, partition, offset, ts))
    }

    /// A wall-clock instant far after every record of these tests (ms).
    const LATER: i64 = 1_000_000;

    /// Releases with no skew allowance and nothing bound.
    fn release_all(
        parts: &mut BTreeMap<(Topic, i32), Partition>,
        watermark: &mut Option<i64>,
    ) -> Vec<RawRecord> {
        release_in_order(parts, watermark, usize::MAX, 0, &Remap::default(), true).records
    }

    fn released(parts: &mut BTreeMap<(Topic, i32), Partition>) -> Vec<(i32, i64)> {
        release_all(parts, &mut None)
            .into_iter()
            .map(|r| (r.partition, r.offset))
            .collect()
    }

    #[test]
    fn records_leave_in_time_order_and_an_empty_partition_holds_the_others_back() {
        let mut parts = two_partitions(2);
        let p1 = (Topic::SensorEvents, 1);
        assert!(feed(&mut parts, 0, 0, 30));
        assert!(feed(&mut parts, 0, 1, 40));
        assert_eq!(
            released(&mut parts),
            vec![],
            "partition 1 has not spoken yet"
        );
        assert!(feed(&mut parts, 1, 0, 10));
        assert!(feed(&mut parts, 1, 1, 35));
        let mut watermark = None;
        let out: Vec<i64> = release_all(&mut parts, &mut watermark)
            .iter()
            .map(|r| r.timestamp_ms)
            .collect();
        assert_eq!(
            out,
            vec![10, 30, 35],
            "40 waits: partition 1 may still send older records"
        );
        assert_eq!(watermark, Some(35));
        assert!(parts.get_mut(&p1).unwrap().reached_end(LATER));
        assert_eq!(released(&mut parts), vec![(0, 1)]);
    }

    #[test]
    fn a_partition_running_ahead_is_paused_when_full_and_resumed_at_half() {
        let end = 2 * PARTITION_QUEUE as i64;
        let mut parts = two_partitions(end);
        let p0 = (Topic::SensorEvents, 0);
        for offset in 0..PARTITION_QUEUE as i64 - 1 {
            assert!(feed(&mut parts, 0, offset, 100 + offset));
        }
        assert!(!parts[&p0].should_pause(), "room for one more");
        assert!(feed(&mut parts, 0, PARTITION_QUEUE as i64 - 1, 5_000));
        assert!(
            parts[&p0].should_pause(),
            "full while partition 1 holds it back"
        );
        parts.get_mut(&p0).unwrap().paused = true;
        assert!(!parts[&p0].should_pause(), "paused once");
        // Partition 1 speaks: partition 0 drains in time order, down to half.
        assert!(feed(&mut parts, 1, 0, 100 + PARTITION_QUEUE as i64 / 2 - 1));
        let mut watermark = None;
        let out = release_all(&mut parts, &mut watermark);
        assert_eq!(out.len(), PARTITION_QUEUE / 2 + 1);
        assert!(
            parts[&p0].should_resume(),
            "{} left",
            parts[&p0].queue.len()
        );
        parts.get_mut(&p0).unwrap().paused = false;
        assert!(!parts[&p0].should_resume());
    }

    #[test]
    fn an_end_of_partition_before_the_end_known_at_start_is_not_believed() {
        let mut parts = two_partitions(2);
        let p1 = (Topic::SensorEvents, 1);
        assert!(feed(&mut parts, 0, 0, 50));
        assert!(feed(&mut parts, 1, 0, 10));
        assert_eq!(released(&mut parts), vec![(1, 0)]);
        // Partition 1 holds 2 records; an end reported after the first is spurious.
        assert!(!parts.get_mut(&p1).unwrap().reached_end(LATER));
        assert_eq!(
            released(&mut parts),
            vec![],
            "partition 0's record must wait"
        );
        assert!(feed(&mut parts, 1, 1, 20));
        assert_eq!(released(&mut parts), vec![(1, 1)]);
        assert!(
            parts.get_mut(&p1).unwrap().reached_end(LATER),
            "now it is the end"
        );
        assert_eq!(released(&mut parts), vec![(0, 0)]);
    }

    #[test]
    fn a_record_read_again_after_the_client_went_back_is_dropped() {
        let mut parts = two_partitions(0);
        let p0 = parts.get_mut(&(Topic::SensorEvents, 0)).unwrap();
        assert!(p0.accept(rec(Topic::SensorEvents, 0, 0, 10)));
        assert!(p0.accept(rec(Topic::SensorEvents, 0, 1, 20)));
        assert!(
            !p0.accept(rec(Topic::SensorEvents, 0, 0, 10)),
            "offset 0 again"
        );
        assert!(
            !p0.accept(rec(Topic::SensorEvents, 0, 1, 20)),
            "offset 1 again"
        );
        assert!(p0.accept(rec(Topic::SensorEvents, 0, 2, 30)));
        assert!(
            parts
                .get_mut(&(Topic::SensorEvents, 1))
                .unwrap()
                .reached_end(LATER)
        );
        let out: Vec<(i32, i64)> = released(&mut parts);
        assert_eq!(out, vec![(0, 0), (0, 1), (0, 2)], "each record once");
    }

    /// Two partitions, both at the end of what they held at start, confirmed at `at`.
    fn two_idle_partitions(at: i64) -> BTreeMap<(Topic, i32), Partition> {
        let mut parts = two_partitions(0);
        for p in parts.values_mut() {
            assert!(p.reached_end(at));
        }
        parts
    }

    #[test]
    fn an_idle_partition_holds_the_others_back_to_its_confirmed_end_less_the_skew() {
        let mut parts = two_idle_partitions(1_000);
        let mut watermark = None;
        let remap = Remap::default();
        let go = |parts: &mut BTreeMap<_, _>, watermark: &mut Option<i64>| {
            release_in_order(parts, watermark, usize::MAX, 100, &remap, true)
                .records
                .iter()
                .map(|r| r.offset)
                .collect::<Vec<_>>()
        };
        assert_eq!(go(&mut parts, &mut watermark), Vec::<i64>::new());
        assert_eq!(
            watermark,
            Some(900),
            "idle: the broker's word less the skew"
        );
        assert!(feed(&mut parts, 0, 0, 850));
        assert!(feed(&mut parts, 0, 1, 950));
        assert_eq!(
            go(&mut parts, &mut watermark),
            vec![0],
            "950 waits: partition 1 may still get a record stamped after 900"
        );
        assert_eq!(watermark, Some(900));
        // Without a new word from the broker, the clock does not move.
        assert_eq!(go(&mut parts, &mut watermark), Vec::<i64>::new());
        assert_eq!(watermark, Some(900));
        parts
            .get_mut(&(Topic::SensorEvents, 1))
            .unwrap()
            .broker_end(0, 1_200);
        assert_eq!(go(&mut parts, &mut watermark), vec![1]);
        assert_eq!(watermark, Some(950), "then up to partition 0's end");
        parts
            .get_mut(&(Topic::SensorEvents, 0))
            .unwrap()
            .broker_end(2, 1_300);
        go(&mut parts, &mut watermark);
        assert_eq!(
            watermark,
            Some(1_100),
            "the least confirmation less the skew"
        );
        // The broker holds a record partition 1 has not fetched yet: it holds back again.
        parts
            .get_mut(&(Topic::SensorEvents, 1))
            .unwrap()
            .broker_end(1, 5_000);
        assert!(feed(&mut parts, 0, 2, 1_150));
        assert_eq!(go(&mut parts, &mut watermark), Vec::<i64>::new());
        assert_eq!(watermark, Some(1_100));
        // A batch run's clock follows its records only.
        let mut parts = two_idle_partitions(1_000);
        let mut watermark = None;
        let out = release_in_order(&mut parts, &mut watermark, 9, 100, &remap, false);
        assert!(out.records.is_empty());
        assert_eq!(watermark, None, "no record, no clock");
    }

    #[test]
    fn a_record_behind_the_watermark_is_counted_at_it_and_bound() {
        let mut parts = two_idle_partitions(1_000);
        let mut watermark = Some(900);
        assert!(feed(&mut parts, 1, 0, 400));
        let out = release_in_order(
            &mut parts,
            &mut watermark,
            usize::MAX,
            100,
            &Remap::default(),
            true,
        );
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].timestamp_ms, 900, "counted at the watermark");
        assert_eq!(out.late, vec![(Topic::SensorEvents, 1, 0, 400)]);
        let want = Binding {
            topic: Topic::SensorEvents,
            partition: 1,
            from: 0,
            to: 1,
            time_ms: 900,
            kind: BindingKind::Late,
        };
        assert_eq!(out.minted, vec![want.clone()]);
        // Bound by an earlier run and read again at its bound time: not late, not bound again.
        let mut remap = Remap::default();
        remap.insert(&want);
        let mut parts = two_idle_partitions(1_000);
        let mut watermark = Some(800);
        assert!(feed(&mut parts, 1, 0, 900));
        let out = release_in_order(&mut parts, &mut watermark, usize::MAX, 100, &remap, true);
        assert!(out.late.is_empty() && out.minted.is_empty());
        assert_eq!(out.records[0].timestamp_ms, 900);
    }

    #[test]
    fn a_record_stamped_in_the_future_is_bound_once_with_the_clock_that_judged_it() {
        let mut parts = two_idle_partitions(1_000);
        let mut watermark = Some(900);
        let mut r = rec(Topic::SensorEvents, 0, 0, 99_999_999);
        assert!(crate::future::judge(&mut r, 1_000, 10, 700));
        assert!(parts.get_mut(&(Topic::SensorEvents, 0)).unwrap().accept(r));
        let out = release_in_order(
            &mut parts,
            &mut watermark,
            usize::MAX,
            100,
            &Remap::default(),
            true,
        );
        assert!(out.late.is_empty(), "a dead letter, not a late record");
        assert_eq!(out.records[0].timestamp_ms, 900);
        assert_eq!(
            out.minted,
            vec![Binding {
                topic: Topic::SensorEvents,
                partition: 0,
                from: 0,
                to: 1,
                time_ms: 900,
                kind: BindingKind::Future { clock_ms: 1_000 },
            }]
        );
    }

    /// Per (partition, offset), the time each record was released at.
    type Times = BTreeMap<(i32, i64), i64>;

    /// A live run: `arrivals` are (partition, stamped ms, wall-clock ms of arrival), in
    /// arrival order; both partitions are idle between arrivals and the broker confirms
    /// their ends at each arrival's instant. Returns the times given and the bindings made.
    fn live(arrivals: &[(i32, i64, i64)], skew: i64) -> (Times, Remap) {
        let mut parts = two_idle_partitions(0);
        let mut offsets = [0i64; 2];
        let mut watermark = None;
        let mut remap = Remap::default();
        let mut times = Times::new();
        for &(p, ts, wall) in arrivals {
            let o = offsets[p as usize];
            offsets[p as usize] += 1;
            assert!(feed(&mut parts, p, o, ts));
            for (id, part) in parts.iter_mut() {
                part.broker_end(offsets[id.1 as usize], wall);
            }
            let out = release_in_order(&mut parts, &mut watermark, usize::MAX, skew, &remap, true);
            for b in remap::coalesce(out.minted) {
                remap.insert(&b);
            }
            for r in out.records {
                times.insert((r.partition, r.offset), r.timestamp_ms);
            }
        }
        // Everything confirmed much later: what is held back goes out.
        for part in parts.values_mut() {
            let end = part.position;
            part.broker_end(end, i64::MAX / 2);
        }
        for r in
            release_in_order(&mut parts, &mut watermark, usize::MAX, skew, &remap, true).records
        {
            times.insert((r.partition, r.offset), r.timestamp_ms);
        }
        (times, remap)
    }

    /// A replay of the same records, all present from the start, with `remap` read back:
    /// the times given and the number of records it found late.
    fn replay(arrivals: &[(i32, i64, i64)], remap: &Remap) -> (Times, usize) {
        let mut parts = two_partitions(0);
        let mut offsets = [0i64; 2];
        for &(p, ts, _) in arrivals {
            let o = offsets[p as usize];
            offsets[p as usize] += 1;
            let mut r = rec(Topic::SensorEvents, p, o, ts);
            if let Some(b) = remap.lookup(Topic::SensorEvents, p, o) {
                r.timestamp_ms = b.time_ms;
            }
            parts
                .get_mut(&(Topic::SensorEvents, p))
                .unwrap()
                .end_at_start = offsets[p as usize];
            assert!(parts.get_mut(&(Topic::SensorEvents, p)).unwrap().accept(r));
        }
        for part in parts.values_mut() {
            part.reached_end(i64::MAX / 2);
        }
        let mut watermark = None;
        let out = release_in_order(&mut parts, &mut watermark, usize::MAX, 0, remap, true);
        let times = out
            .records
            .iter()
            .map(|r| ((r.partition, r.offset), r.timestamp_ms))
            .collect();
        (times, out.late.len())
    }

    #[test]
    fn a_replay_with_the_remap_gives_every_record_the_time_it_had_live() {
        // A fixed pseudo-random live history: records mostly stamped a little before they
        // arrive, some long before (a producer that queued them), over idle spells.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut wall = 10_000i64;
        let mut arrivals = Vec::new();
        for _ in 0..2_000 {
            wall += if next(10) == 0 {
                2_000
            } else {
                next(30) as i64
            };
            let delay = if next(20) == 0 {
                300 + next(5_000) as i64
            } else {
                next(40) as i64
            };
            arrivals.push((next(2) as i32, wall - delay, wall));
        }
        let (live_times, remap) = live(&arrivals, 100);

        assert_eq!(live_times.len(), arrivals.len(), "every record released");
        assert!(!remap.is_empty(), "some records were late and bound");
        assert_eq!(
            replay(&arrivals, &remap),
            (live_times.clone(), 0),
            "the same times, and nothing found late again"
        );
        // The oracle can fail: without the remap, the late records get other times.
        let (unbound, _) = replay(&arrivals, &Remap::default());
        assert_ne!(unbound, live_times);
    }
}
