//! Officers' actions from the desk: merged into the input when there is no Kafka, and
//! every desk action reported with the logical time it enters the dataflow at.
//!
//! [`DeskActionSource`] wraps the main source. Actions received on its channel (the
//! desk API's in-process sink) become `desk.actions` records of the partition
//! [`DESK_PARTITION`], so they take the same path as any other record: decoding,
//! validation, dead letters, logical time. Every desk action that passes through —
//! from the channel or from the inner source (Kafka's `desk.actions`, written by any
//! instance) — is reported once it is routed, with its logical time and a bound: no
//! worker can have taken it at a later time than the bound, so once the dataflow's
//! output frontier passes the bound, the action has been judged (routing has either
//! rejected it at its time, or taken it into account).

use std::collections::HashMap;

use crossbeam_channel::Receiver;
use schemas::{DeskAction, Input, Topic, decode_record};

use crate::record::{Poll, RawRecord, Source, SourceError};

/// The partition of records that came from the desk's channel (no Kafka partition is
/// negative, and files use -1).
pub const DESK_PARTITION: i32 = -2;

/// Called for each desk action routed to the dataflow: the action, its logical time
/// (ms), and the bound (ms) no worker's time for it exceeds.
pub type OnAction = Box<dyn FnMut(&DeskAction, u64, u64) + Send>;

/// A source merging desk actions into `inner` and reporting every routed desk action.
pub struct DeskActionSource {
    inner: Box<dyn Source>,
    actions: Option<Receiver<DeskAction>>,
    next_offset: i64,
    /// Decoded desk actions handed on, by (partition, offset), until they are routed.
    held: HashMap<(i32, i64), DeskAction>,
    /// The latest logical time routed so far (any record).
    routed_max: u64,
    on_action: OnAction,
}

impl DeskActionSource {
    /// Wraps `inner`; actions on `actions` (if any) join the input; `on_action` hears of
    /// every desk action routed.
    pub fn new(
        inner: Box<dyn Source>,
        actions: Option<Receiver<DeskAction>>,
        on_action: OnAction,
    ) -> Self {
        Self {
            inner,
            actions,
            next_offset: 0,
            held: HashMap::new(),
            routed_max: 0,
            on_action,
        }
    }

    fn hold(&mut self, rec: &RawRecord) {
        if rec.topic != Topic::DeskActions {
            return;
        }
        // Records that do not decode are dead-lettered by the ingestor and never judged.
        if let Ok(Input::Action(a)) = decode_record(rec.topic, &rec.payload) {
            self.held.insert((rec.partition, rec.offset), a);
        }
    }
}

impl Source for DeskActionSource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let mut out = Vec::new();
        if let Some(rx) = &self.actions {
            for action in rx.try_iter().take(max) {
                let Ok(payload) = serde_json::to_vec(&action) else {
                    continue;
                };
                out.push(RawRecord {
                    topic: Topic::DeskActions,
                    partition: DESK_PARTITION,
                    offset: self.next_offset,
                    timestamp_ms: action.at.as_millisecond(),
                    key: Some(action.alert_id.clone().into_bytes()),
                    payload,
                    headers: Vec::new(),
                    future_timestamp_ms: None,
                });
                self.next_offset += 1;
            }
        }
        for rec in &out {
            self.hold(rec);
        }
        let room = max.saturating_sub(out.len());
        if room == 0 {
            return Ok(Poll::Records(out));
        }
        match self.inner.poll(room)? {
            Poll::Records(records) => {
                for rec in &records {
                    self.hold(rec);
                }
                out.extend(records);
                Ok(Poll::Records(out))
            }
            _ if !out.is_empty() => Ok(Poll::Records(out)),
            other => Ok(other),
        }
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.inner.watermark_ms()
    }

    fn rehydration(&self) -> Option<std::time::Duration> {
        self.inner.rehydration()
    }

    fn on_routed(&mut self, topic: Topic, partition: i32, offset: i64, time_ms: u64) {
        self.routed_max = self.routed_max.max(time_ms);
        if topic == Topic::DeskActions
            && let Some(action) = self.held.remove(&(partition, offset))
        {
            (self.on_action)(&action, time_ms, self.routed_max);
        }
        if partition != DESK_PARTITION {
            self.inner.on_routed(topic, partition, offset, time_ms);
        }
    }

    fn commit_before(&mut self, frontier_ms: u64) -> Result<(), SourceError> {
        self.inner.commit_before(frontier_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    use schemas::{ActionKind, Feed, Timestamp};

    use super::*;
    use crate::{IngestConfig, IngestStats, Ingestor, MemoryDeadLetters, Router};

    /// A source of fixed records that remembers what was reported routed.
    struct Scripted {
        records: Vec<RawRecord>,
        routed: Arc<Mutex<Vec<(i32, i64, u64)>>>,
    }

    impl Source for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn poll(&mut self, _max: usize) -> Result<Poll, SourceError> {
            if self.records.is_empty() {
                return Ok(Poll::Exhausted);
            }
            Ok(Poll::Records(std::mem::take(&mut self.records)))
        }
        fn watermark_ms(&self) -> Option<i64> {
            None
        }
        fn on_routed(&mut self, _t: Topic, partition: i32, offset: i64, time_ms: u64) {
            if let Ok(mut r) = self.routed.lock() {
                r.push((partition, offset, time_ms));
            }
        }
    }

    fn action(id: &str, at_ms: i64) -> DeskAction {
        DeskAction {
            schema_version: 1,
            action_id: id.into(),
            alert_id: "alert-1".into(),
            officer_id: "alice".into(),
            center: "Lyon".into(),
            at: Timestamp::from_millisecond(at_ms).unwrap_or(Timestamp::UNIX_EPOCH),
            action: ActionKind::Acknowledge,
        }
    }

    #[test]
    fn desk_actions_enter_the_dataflow_and_are_reported_with_their_time() {
        let routed = Arc::new(Mutex::new(Vec::new()));
        // The inner source: a Kafka-like desk action from another instance and a bad record.
        let other = action("from-kafka", 5_000);
        let inner = Scripted {
            records: vec![
                RawRecord {
                    topic: Topic::DeskActions,
                    partition: 0,
                    offset: 7,
                    timestamp_ms: 9_000,
                    key: None,
                    payload: serde_json::to_vec(&other).unwrap(),
                    headers: Vec::new(),
                    future_timestamp_ms: None,
                },
                RawRecord {
                    topic: Topic::DeskActions,
                    partition: 0,
                    offset: 8,
                    timestamp_ms: 9_500,
                    key: None,
                    payload: b"{not json".to_vec(),
                    headers: Vec::new(),
                    future_timestamp_ms: None,
                },
            ],
            routed: Arc::clone(&routed),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(action("from-desk", 3_000)).unwrap();
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reported);
        let mut source = DeskActionSource::new(
            Box::new(inner),
            Some(rx),
            Box::new(move |a, t, bound| {
                if let Ok(mut r) = sink.lock() {
                    r.push((a.action_id.clone(), t, bound));
                }
            }),
        );
        let (feed_tx, feed_rx) = crossbeam_channel::unbounded();
        let mut ingestor = Ingestor::new(
            IngestConfig::default(),
            Router::new(vec![feed_tx], 1000),
            MemoryDeadLetters::with_limit(10),
            Arc::new(IngestStats::default()),
        );
        ingestor.run(&mut source, &AtomicBool::new(false)).unwrap();

        let actions: Vec<(u64, String)> = feed_rx
            .try_iter()
            .flatten()
            .filter_map(|f| match f {
                Feed::Record {
                    time_ms,
                    input: Input::Action(a),
                } => Some((time_ms, a.action_id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            actions,
            vec![(3_000, "from-desk".into()), (9_000, "from-kafka".into())]
        );
        assert_eq!(
            *reported.lock().unwrap(),
            vec![
                ("from-desk".to_string(), 3_000, 3_000),
                ("from-kafka".to_string(), 9_000, 9_000)
            ],
            "each action is reported once, with its time; the bad record is not"
        );
        assert_eq!(ingestor.dead_letters().kept().len(), 1);
        // The inner source hears of its own records only, not of the desk's.
        assert_eq!(*routed.lock().unwrap(), vec![(0, 7, 9_000), (0, 8, 10_000)]);
    }
}
