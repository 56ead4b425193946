//! The durable remap of input offsets to logical times (reclocking, after Materialize).
//!
//! # What it holds
//! A Kafka record's logical time is its *natural time*: its recorded timestamp, rounded
//! up to the epoch by the [`Router`](crate::router::Router). Replaying the retained input
//! in timestamp order gives every record that time again, except the records whose time
//! the live run had to decide differently, from what it had seen *when* it read them:
//!
//! - **late** records: a record that arrived behind the source's watermark (an idle
//!   partition's frontier had advanced past it, or its partition runs backwards in time)
//!   counts at the watermark ([`crate::kafka`] explains why it is not dead-lettered);
//! - **future** records: a record stamped further ahead of the wall clock than the
//!   tolerance is dead-lettered ([`crate::future`]); read a day later, the same record
//!   would no longer be in the future.
//!
//! Each such decision is a [`Binding`]: (topic, partition, offset range) → the time the
//! records were handed on at, and why. Bindings are sparse — a run that sees no late and
//! no future records writes none — and consecutive records bound alike share one
//! binding. On restart (and in a drill) the source reads them back ([`load`]) and gives
//! every bound record its bound time instead of judging it again, so the whole input gets
//! the logical times it had the first time, and the alert history re-derived from it is
//! the first one.
//!
//! Why nothing else needs storing: records are released in timestamp order, and every
//! partition holds the others back until it has a record or the broker confirmed its end
//! ([`crate::kafka`]). Replaying the retained input, every partition has its records, so a
//! record that was on time the first time is on time again: the records released before
//! it are those of its own partition before it (released before it the first time too,
//! so behind it if it was on time) and records of other partitions no later than it. The
//! idle frontier (wall clock and broker answers) only ever decided which records were
//! late, and those decisions are bound.
//!
//! # Storage: the `<prefix>remap` topic
//! Bindings are JSON records on a topic of the same broker (one partition, written by
//! the source itself), rather than a file in a local state directory:
//! - the broker is already the source of truth for the input and the committed offsets;
//!   a local file lost with a machine or a container would leave offsets committed on
//!   the broker whose logical times nobody remembers;
//! - a drill, another instance or an operator reads the same bindings from the broker;
//! - it works on tansu (which ignores `LogAppendTime`, so the broker cannot stamp times
//!   for us) and on Apache Kafka alike.
//!
//! A binding is written, and acknowledged by the broker, **before** the records it binds
//! are handed to the dataflow — so before any output they produce is written, and a
//! fortiori before their offsets are committed. A run killed after writing an alert that
//! a late record produced therefore never leaves that alert behind with a time a restart
//! would not re-derive. The cost is one broker round trip per poll that releases late or
//! future records; there are none in the usual case.
//!
//! # Bounded
//! The topic is created with `cleanup.policy=delete` and the broker's default retention,
//! like the input topics: a binding is appended after the record it binds, so it is kept
//! at least as long as that record. Bindings of records below a partition's low
//! watermark (deleted by retention) are dropped when they are read back, and a run keeps
//! in memory only what earlier runs bound (what it binds itself it only writes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use schemas::Topic;
use serde::{Deserialize, Serialize};

use crate::kafka::{KafkaConfig, KafkaFailure, TopicProducer};

/// Why records were bound to a time other than their natural one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BindingKind {
    /// Arrived behind the watermark: counted at the bound time.
    Late,
    /// Stamped too far ahead of the source's clock (`clock_ms`): dead-lettered, handed on
    /// at the bound time.
    Future {
        /// The source's clock when it judged the record (ms).
        clock_ms: i64,
    },
}

/// Records `from..to` of a partition were handed on at `time_ms`, because of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The input topic.
    pub topic: Topic,
    /// The partition.
    pub partition: i32,
    /// First offset bound.
    pub from: i64,
    /// One past the last offset bound.
    pub to: i64,
    /// The time (ms) the records were handed on at.
    pub time_ms: i64,
    /// Why.
    #[serde(flatten)]
    pub kind: BindingKind,
}

/// What a record is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The time (ms) it is handed on at.
    pub time_ms: i64,
    /// Why.
    pub kind: BindingKind,
}

/// The bindings in force, by partition.
#[derive(Debug, Default, Clone)]
pub struct Remap {
    /// Per partition: first offset → (one past the last, what they are bound to).
    parts: BTreeMap<(Topic, i32), BTreeMap<i64, (i64, Bound)>>,
}

impl Remap {
    /// What the record at `offset` is bound to, if anything.
    pub fn lookup(&self, topic: Topic, partition: i32, offset: i64) -> Option<Bound> {
        let ranges = self.parts.get(&(topic, partition))?;
        let (_, (to, bound)) = ranges.range(..=offset).next_back()?;
        (offset < *to).then_some(*bound)
    }

    /// Adds `b`; where it overlaps earlier bindings, it replaces them.
    pub fn insert(&mut self, b: &Binding) {
        if b.to <= b.from {
            return;
        }
        let ranges = self.parts.entry((b.topic, b.partition)).or_default();
        // Ranges overlapping [from, to): the one starting before `from` and those inside.
        let overlapping: Vec<i64> = ranges
            .range(..b.to)
            .rev()
            .take_while(|(_, (to, _))| *to > b.from)
            .map(|(from, _)| *from)
            .collect();
        for from in overlapping {
            if let Some((to, bound)) = ranges.remove(&from) {
                if from < b.from {
                    ranges.insert(from, (b.from, bound));
                }
                if to > b.to {
                    ranges.insert(b.to, (to, bound));
                }
            }
        }
        ranges.insert(
            b.from,
            (
                b.to,
                Bound {
                    time_ms: b.time_ms,
                    kind: b.kind,
                },
            ),
        );
    }

    /// Drops what binds offsets below `low` in `topic`/`partition` (deleted by retention).
    pub fn prune_below(&mut self, topic: Topic, partition: i32, low: i64) {
        let Some(ranges) = self.parts.get_mut(&(topic, partition)) else {
            return;
        };
        let gone: Vec<i64> = ranges
            .iter()
            .take_while(|(from, _)| **from < low)
            .map(|(from, _)| *from)
            .collect();
        for from in gone {
            if let Some((to, bound)) = ranges.remove(&from)
                && to > low
            {
                ranges.insert(low, (to, bound));
            }
        }
    }

    /// Number of bindings (ranges) held.
    pub fn len(&self) -> usize {
        self.parts.values().map(BTreeMap::len).sum()
    }

    /// True when nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Merges bindings of consecutive offsets of one partition bound alike, keeping order.
pub fn coalesce(bindings: Vec<Binding>) -> Vec<Binding> {
    let mut out: Vec<Binding> = Vec::with_capacity(bindings.len());
    for b in bindings {
        if let Some(last) = out.last_mut()
            && last.topic == b.topic
            && last.partition == b.partition
            && last.to == b.from
            && last.time_ms == b.time_ms
            && last.kind == b.kind
        {
            last.to = b.to;
            continue;
        }
        out.push(b);
    }
    out
}

/// Writes bindings to the remap topic.
pub struct RemapLog {
    producer: TopicProducer,
}

impl RemapLog {
    /// A writer to the remap topic of `cfg`.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaFailure> {
        Ok(Self {
            producer: TopicProducer::new(&cfg.brokers, cfg.remap_topic())?,
        })
    }

    /// Writes `bindings` and waits until the broker has acknowledged every one.
    pub fn append(&self, bindings: &[Binding]) -> Result<(), KafkaFailure> {
        for b in bindings {
            let key = format!("{}/{}/{}", b.topic.suffix(), b.partition, b.from);
            let payload = serde_json::to_vec(b).map_err(|e| KafkaFailure::Delivery {
                topic: "remap".into(),
                reason: e.to_string(),
            })?;
            self.producer.send(Some(key.as_bytes()), &payload, None)?;
        }
        self.producer.flush()
    }
}

/// How long [`load`] may take to read the remap topic to its end.
const LOAD_PATIENCE: Duration = Duration::from_secs(120);

/// Reads every binding of the remap topic of `cfg`, in the order written (a later binding
/// of the same offsets wins). A record that is not a binding is skipped with a warning
/// (the topic is written only by Fusion).
pub fn load(cfg: &KafkaConfig) -> Result<Remap, KafkaFailure> {
    let fail = |source| KafkaFailure::Client {
        brokers: cfg.brokers.clone(),
        source,
    };
    let name = cfg.remap_topic();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        // Never commits: the group only satisfies the client.
        .set("group.id", format!("{}-remap-reader", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(fail)?;
    let metadata = consumer
        .fetch_metadata(Some(&name), Duration::from_secs(10))
        .map_err(fail)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(KafkaFailure::Delivery {
            topic: name,
            reason: "the remap topic does not exist; create the topics with `fusion topics create`"
                .into(),
        });
    }
    let mut remap = Remap::default();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for id in &ids {
        let (low, high) = consumer
            .fetch_watermarks(&name, *id, Duration::from_secs(10))
            .map_err(fail)?;
        if high > low {
            ends.insert(*id, high);
            tpl.add_partition_offset(&name, *id, Offset::Beginning)
                .map_err(fail)?;
        }
    }
    if ends.is_empty() {
        return Ok(remap);
    }
    consumer.assign(&tpl).map_err(fail)?;
    let started = Instant::now();
    let mut read = 0u64;
    while !ends.is_empty() {
        if started.elapsed() > LOAD_PATIENCE {
            return Err(KafkaFailure::Delivery {
                topic: name,
                reason: format!(
                    "the remap topic could not be read to its end in {LOAD_PATIENCE:?}; check the broker"
                ),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                read += 1;
                let partition = msg.partition();
                if ends
                    .get(&partition)
                    .is_some_and(|end| msg.offset() + 1 >= *end)
                {
                    ends.remove(&partition);
                }
                match serde_json::from_slice::<Binding>(msg.payload().unwrap_or_default()) {
                    Ok(b) => remap.insert(&b),
                    Err(e) => {
                        tracing::warn!(topic = %name, offset = msg.offset(), error = %e, "not a remap binding; skipped")
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => {
                tracing::warn!(topic = %name, error = %e, "reading the remap topic; retrying")
            }
            None => {}
        }
    }
    tracing::info!(topic = %name, records = read, bindings = remap.len(), "remap read back");
    Ok(remap)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;

    fn late(partition: i32, from: i64, to: i64, time_ms: i64) -> Binding {
        Binding {
            topic: Topic::SensorEvents,
            partition,
            from,
            to,
            time_ms,
            kind: BindingKind::Late,
        }
    }

    #[test]
    fn a_binding_covers_its_range_and_nothing_else() {
        let mut r = Remap::default();
        r.insert(&late(0, 10, 13, 500));
        let at = |o| r.lookup(Topic::SensorEvents, 0, o).map(|b| b.time_ms);
        assert_eq!(at(9), None);
        assert_eq!(at(10), Some(500));
        assert_eq!(at(12), Some(500));
        assert_eq!(at(13), None);
        assert_eq!(
            r.lookup(Topic::SensorEvents, 1, 11),
            None,
            "other partition"
        );
        assert_eq!(r.lookup(Topic::DeskActions, 0, 11), None, "other topic");
    }

    #[test]
    fn a_later_binding_replaces_the_overlapped_part_of_earlier_ones() {
        let mut r = Remap::default();
        r.insert(&late(0, 10, 20, 500));
        r.insert(&late(0, 20, 25, 600));
        r.insert(&late(0, 15, 22, 700));
        let at = |o| r.lookup(Topic::SensorEvents, 0, o).map(|b| b.time_ms);
        let got: Vec<Option<i64>> = (9..26).map(at).collect();
        let mut want = vec![None];
        want.extend([Some(500); 5]);
        want.extend([Some(700); 7]);
        want.extend([Some(600); 3]);
        want.push(None);
        assert_eq!(got, want);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn pruning_drops_what_retention_deleted() {
        let mut r = Remap::default();
        r.insert(&late(0, 0, 5, 100));
        r.insert(&late(0, 8, 12, 200));
        r.insert(&late(1, 0, 5, 300));
        r.prune_below(Topic::SensorEvents, 0, 10);
        assert_eq!(r.lookup(Topic::SensorEvents, 0, 4), None);
        assert_eq!(r.lookup(Topic::SensorEvents, 0, 9), None);
        assert_eq!(
            r.lookup(Topic::SensorEvents, 0, 10).map(|b| b.time_ms),
            Some(200)
        );
        assert_eq!(
            r.lookup(Topic::SensorEvents, 1, 0).map(|b| b.time_ms),
            Some(300)
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn consecutive_offsets_bound_alike_share_one_binding() {
        let future = |o| Binding {
            kind: BindingKind::Future { clock_ms: 7 },
            ..late(0, o, o + 1, 500)
        };
        let got = coalesce(vec![
            late(0, 1, 2, 500),
            late(0, 2, 3, 500),
            late(0, 3, 4, 501),
            late(1, 4, 5, 501),
            future(5),
            future(6),
            late(0, 7, 8, 500),
        ]);
        assert_eq!(
            got,
            vec![
                late(0, 1, 3, 500),
                late(0, 3, 4, 501),
                late(1, 4, 5, 501),
                Binding { to: 7, ..future(5) },
                late(0, 7, 8, 500),
            ]
        );
    }

    #[test]
    fn a_binding_reads_back_as_written() {
        let b = Binding {
            kind: BindingKind::Future { clock_ms: 42 },
            ..late(3, 1, 2, 900)
        };
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"topic":"sensor_events","partition":3,"from":1,"to":2,"time_ms":900,"kind":"future","clock_ms":42}"#
        );
        assert_eq!(serde_json::from_str::<Binding>(&json).unwrap(), b);
    }
}
