//! The output and commit loop of `fusion run`.
//!
//! The dataflow's workers send their outputs ([`Output`]) on one channel; [`OutputLoop`]
//! gathers them into consistent snapshots and, at each closed frontier (`Closed(t)`: every
//! output at a time before `t` has been received), hands the closed routing and alert
//! changes to its sinks ([`ClosedSink`]: the alert topic, the outbox, the JSON-lines files,
//! the desk, …) in time order. Each sink returns once what it was given is durable; only
//! when every sink has returned does the loop publish the frontier as durable, and the
//! ingestor commits source offsets only before that durable frontier. So a sink that
//! fails ends the loop with an error naming it ([`OutputError`]) and nothing it did not
//! write is ever committed: those inputs are read again, and the same outputs derived
//! again, after a restart.
//!
//! Within a closed time, routing changes are sorted (the workers send them in no fixed
//! order) and alert changes come sorted by alert id ([`Snapshots`]), so every output file
//! is the same, byte for byte, on every run of the same input.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::Receiver;
use dataflow::runtime::Output;
use dataflow::snapshot::Snapshots;
use ingest::DeadLetterSink;
use ingest::kafka::{KafkaAlerts, KafkaFailure};
use schemas::routing::RoutingChange;
use schemas::{AlertChange, ChangeKind};

/// What the output side has seen (for progress lines and the desk's health).
#[derive(Debug, Default)]
pub struct OutputStats {
    /// The center on duty.
    pub on_duty: Mutex<String>,
    /// Officer actions rejected by routing.
    pub rejected_actions: AtomicU64,
    /// Matches (net).
    pub matches: AtomicI64,
    /// Matches suppressed by warning lists (net).
    pub suppressed: AtomicI64,
    /// Alerts open at the last closed time.
    pub open_alerts: AtomicUsize,
    /// Alert changes written.
    pub alert_changes: AtomicU64,
    /// Open alerts with retroactive sightings.
    pub retroactive_alerts: AtomicU64,
    /// Alerts closed as expired.
    pub expired_alerts: AtomicU64,
    /// Matches that came for alerts already expired.
    pub late_matches: AtomicU64,
    /// Indicator versions whose validity `--indicator-max-age` shortened.
    pub age_bounded: AtomicU64,
    /// The last history report of each worker.
    pub history: Mutex<Vec<dataflow::history::HistoryReport>>,
}

/// Every change of the times before `bound`, once they are closed.
#[derive(Debug, Clone, Copy)]
pub struct Closed<'a> {
    /// Every time before this one is closed.
    pub bound: u64,
    /// Routing changes by time, in time order, sorted within each time.
    pub routing: &'a [(u64, Vec<RoutingChange>)],
    /// Alert changes by time, in time order, sorted by alert id within each time.
    pub alerts: &'a [(u64, Vec<AlertChange>)],
}

/// Why a sink could not take what it was given.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Serializing a record failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The broker did not take a record.
    #[error(transparent)]
    Kafka(#[from] KafkaFailure),
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] delivery::OutboxError),
}

/// Where closed changes go. A sink returns once what it was given is durable.
pub trait ClosedSink: Send {
    /// What it writes to, for messages (`the alerts file alerts.jsonl`).
    fn name(&self) -> String;
    /// Takes the changes of the times just closed.
    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError>;
    /// Whether the sink writes alert changes only, and so takes them as soon as the
    /// alerts are closed (`AlertsClosed`), without waiting for routing to close the same
    /// times; it then gets each alert change once, in one of the two calls. A sink that
    /// shows alerts with their routing (the desk) says no: it gets both at `Closed`.
    fn alerts_early(&self) -> bool {
        false
    }
    /// The output ended: makes everything durable.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The output loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A sink failed.
    #[error("cannot write {sink}: {source}")]
    Sink {
        /// The sink's name.
        sink: String,
        /// Why (boxed: a Kafka error is large, and this travels up the output thread).
        #[source]
        source: Box<SinkError>,
    },
}

/// The output and commit loop (see the module documentation).
pub struct OutputLoop {
    sinks: Vec<Box<dyn ClosedSink>>,
    stats: Arc<OutputStats>,
    durable: Arc<AtomicU64>,
}

impl std::fmt::Debug for OutputLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sinks: Vec<String> = self.sinks.iter().map(|s| s.name()).collect();
        f.debug_struct("OutputLoop")
            .field("sinks", &sinks)
            .finish_non_exhaustive()
    }
}

impl OutputLoop {
    /// A loop that reports into `stats` and publishes the durable frontier in `durable`.
    pub fn new(stats: Arc<OutputStats>, durable: Arc<AtomicU64>) -> Self {
        Self {
            sinks: Vec::new(),
            stats,
            durable,
        }
    }

    /// Adds a sink; sinks are given each closed frontier in the order they were added.
    pub fn sink(mut self, sink: impl ClosedSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Reads `outputs` until the dataflow's last message (`Closed(u64::MAX)`) or until it
    /// closes the channel.
    pub fn run(mut self, outputs: &Receiver<Output>) -> Result<(), OutputError> {
        let mut snaps = Snapshots::new();
        let mut routing: BTreeMap<u64, Vec<RoutingChange>> = BTreeMap::new();
        // Alert changes already given to the early sinks, kept for the others until
        // routing closes their times too.
        let mut early: BTreeMap<u64, Vec<AlertChange>> = BTreeMap::new();
        let stats = Arc::clone(&self.stats);
        for msg in outputs {
            match msg {
                Output::AlertsClosed(frontier) => {
                    let closed_alerts = snaps.close_before(frontier);
                    if closed_alerts.is_empty() {
                        continue;
                    }
                    self.count(&[], &closed_alerts);
                    let closed = Closed {
                        bound: snaps.bound(frontier),
                        routing: &[],
                        alerts: &closed_alerts,
                    };
                    for sink in self.sinks.iter_mut().filter(|s| s.alerts_early()) {
                        sink.closed(&closed).map_err(|source| OutputError::Sink {
                            sink: sink.name(),
                            source: Box::new(source),
                        })?;
                    }
                    for (time, changes) in closed_alerts {
                        early.entry(time).or_default().extend(changes);
                    }
                }
                Output::Alert(alert, time, diff) => snaps.update(*alert, time, diff),
                Output::Matches(_, diff) => {
                    stats.matches.fetch_add(diff as i64, Ordering::Relaxed);
                }
                Output::Suppressed(_, diff) => {
                    stats.suppressed.fetch_add(diff as i64, Ordering::Relaxed);
                }
                Output::InputEnd(time) => snaps.input_ended(time),
                Output::Expired(id, time) => snaps.expired(id, time),
                Output::Late(_, n) => {
                    stats.late_matches.fetch_add(n, Ordering::Relaxed);
                }
                Output::AgeBounded(n) => {
                    stats.age_bounded.fetch_add(n, Ordering::Relaxed);
                }
                Output::History(report) => {
                    if let Ok(mut h) = stats.history.lock() {
                        let at = report.shard as usize;
                        if h.len() <= at {
                            h.resize(at + 1, Default::default());
                        }
                        h[at] = report;
                    }
                }
                Output::Routing(r, time, diff) => routing
                    .entry(time)
                    .or_default()
                    .push(RoutingChange::Alert { diff, routing: *r }),
                Output::Escalation(r, time, diff) => {
                    routing
                        .entry(time)
                        .or_default()
                        .push(RoutingChange::Escalation {
                            diff,
                            escalation: *r,
                        })
                }
                Output::Handover(r, time, diff) => routing
                    .entry(time)
                    .or_default()
                    .push(RoutingChange::Handover { diff, digest: *r }),
                Output::Duty(r, time, diff) => routing
                    .entry(time)
                    .or_default()
                    .push(RoutingChange::Duty { diff, duty: *r }),
                Output::Rejected(r, time, diff) => routing
                    .entry(time)
                    .or_default()
                    .push(RoutingChange::Rejected { diff, action: *r }),
                Output::Closed(frontier) => {
                    let bound = snaps.bound(frontier);
                    let still_open = routing.split_off(&bound);
                    let mut closed_routing: Vec<(u64, Vec<RoutingChange>)> =
                        std::mem::replace(&mut routing, still_open)
                            .into_iter()
                            .collect();
                    for (_, changes) in &mut closed_routing {
                        changes.sort_unstable();
                    }
                    let fresh = snaps.close_before(frontier);
                    self.count(&closed_routing, &fresh);
                    // The late sinks get the early alerts of these times as well.
                    let still_early = early.split_off(&bound);
                    let mut all = std::mem::replace(&mut early, still_early);
                    for (time, changes) in &fresh {
                        all.entry(*time)
                            .or_default()
                            .extend(changes.iter().cloned());
                    }
                    let all: Vec<(u64, Vec<AlertChange>)> = all.into_iter().collect();
                    for sink in &mut self.sinks {
                        let alerts = if sink.alerts_early() { &fresh } else { &all };
                        let closed = Closed {
                            bound,
                            routing: &closed_routing,
                            alerts,
                        };
                        sink.closed(&closed).map_err(|source| OutputError::Sink {
                            sink: sink.name(),
                            source: Box::new(source),
                        })?;
                    }
                    self.durable.store(frontier, Ordering::Release);
                    stats
                        .open_alerts
                        .store(snaps.open_count(), Ordering::Relaxed);
                    stats
                        .retroactive_alerts
                        .store(snaps.retroactive_count() as u64, Ordering::Relaxed);
                    if frontier == u64::MAX {
                        // The dataflow's last message: nothing follows it, and the
                        // channel closes only once the workers have dropped their state.
                        break;
                    }
                }
            }
        }
        for sink in &mut self.sinks {
            sink.finish().map_err(|source| OutputError::Sink {
                sink: sink.name(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    fn count(&self, routing: &[(u64, Vec<RoutingChange>)], alerts: &[(u64, Vec<AlertChange>)]) {
        let stats = &self.stats;
        for change in routing.iter().flat_map(|(_, c)| c) {
            match change {
                RoutingChange::Duty { diff, duty } if *diff > 0 => {
                    if let Ok(mut d) = stats.on_duty.lock() {
                        d.clone_from(&duty.center);
                    }
                }
                RoutingChange::Rejected { diff, .. } if *diff > 0 => {
                    stats.rejected_actions.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        for c in alerts.iter().flat_map(|(_, c)| c) {
            stats.alert_changes.fetch_add(1, Ordering::Relaxed);
            if c.change == ChangeKind::Expired {
                stats.expired_alerts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Alert changes as JSON lines (`--alerts-out`): a closed time is written and flushed whole.
pub struct AlertsFile {
    name: String,
    out: Box<dyn Write + Send>,
}

impl AlertsFile {
    /// Writes to `out`, called `name` in messages.
    pub fn new(name: String, out: Box<dyn Write + Send>) -> Self {
        Self { name, out }
    }
}

impl ClosedSink for AlertsFile {
    fn alerts_early(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        for c in closed.alerts.iter().flat_map(|(_, c)| c) {
            serde_json::to_writer(&mut self.out, c)?;
            self.out.write_all(b"\n")?;
        }
        if !closed.alerts.is_empty() {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }
}

/// Routing changes as JSON lines `{"time": …, "change": …}` (`--routing-out`).
pub struct RoutingFile {
    name: String,
    out: Box<dyn Write + Send>,
}

impl RoutingFile {
    /// Writes to `out`, called `name` in messages.
    pub fn new(name: String, out: Box<dyn Write + Send>) -> Self {
        Self { name, out }
    }
}

impl ClosedSink for RoutingFile {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        for (time, changes) in closed.routing {
            for change in changes {
                serde_json::to_writer(
                    &mut self.out,
                    &serde_json::json!({"time": time, "change": change}),
                )?;
                self.out.write_all(b"\n")?;
            }
        }
        if !closed.routing.is_empty() {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }
}

/// Alert changes to the alert topic, acknowledged by the broker.
pub struct AlertTopic(pub KafkaAlerts);

impl ClosedSink for AlertTopic {
    fn alerts_early(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "the alert topic".into()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        for c in closed.alerts.iter().flat_map(|(_, c)| c) {
            self.0.send(c)?;
        }
        if !closed.alerts.is_empty() {
            self.0.flush()?;
        }
        Ok(())
    }
}

/// Officer actions rejected by routing, as dead letters of the desk-actions topic.
pub struct RejectedActions {
    sink: Box<dyn DeadLetterSink + Send>,
    topic: String,
}

impl RejectedActions {
    /// Dead letters to `sink`, naming `topic` (the desk-actions topic) as their origin.
    pub fn new(sink: Box<dyn DeadLetterSink + Send>, topic: String) -> Self {
        Self { sink, topic }
    }
}

impl ClosedSink for RejectedActions {
    fn name(&self) -> String {
        format!("the dead letters of {}", self.topic)
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        let mut sent = false;
        for change in closed.routing.iter().flat_map(|(_, c)| c) {
            if let RoutingChange::Rejected { diff, action } = change
                && *diff > 0
            {
                self.sink.send(action.dead_letter(&self.topic))?;
                sent = true;
            }
        }
        if sent {
            self.sink.flush()?;
        }
        Ok(())
    }
}

/// Partner feedback is queued once per this much logical time.
pub const FEEDBACK_EVERY_MS: u64 = 60_000;

/// Alert changes into the durable delivery outbox, and partner feedback once per
/// [`FEEDBACK_EVERY_MS`] of logical time.
pub struct OutboxSink {
    outbox: delivery::Outbox,
    sightings: delivery::feedback::Sightings,
    last_feedback: u64,
}

impl OutboxSink {
    /// Enqueues into `outbox`.
    pub fn new(outbox: delivery::Outbox) -> Self {
        Self {
            outbox,
            sightings: delivery::feedback::Sightings::default(),
            last_feedback: 0,
        }
    }
}

impl ClosedSink for OutboxSink {
    fn alerts_early(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "the delivery outbox".into()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        for (_, changes) in closed.alerts {
            // One durable transaction per closed time.
            self.outbox.enqueue_batch(changes)?;
            for c in changes {
                self.sightings.observe(c);
            }
        }
        if let Some((time, _)) = closed.alerts.last()
            && time.saturating_sub(self.last_feedback) >= FEEDBACK_EVERY_MS
        {
            self.last_feedback = *time;
            self.outbox.enqueue_feedback(&self.sightings, *time)?;
        }
        Ok(())
    }
}

/// Times each closed time's alert changes against the ingestion of that time (`fusion load`).
pub struct LatencySink {
    probe: Arc<ingest::latency::LatencyProbe>,
    samples: Arc<Mutex<Vec<u32>>>,
}

impl LatencySink {
    /// Samples, in microseconds, go to `samples`.
    pub fn new(probe: Arc<ingest::latency::LatencyProbe>, samples: Arc<Mutex<Vec<u32>>>) -> Self {
        Self { probe, samples }
    }
}

impl ClosedSink for LatencySink {
    fn alerts_early(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "the latency samples".into()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        let now = Instant::now();
        if let Ok(mut samples) = self.samples.lock() {
            for (time, changes) in closed.alerts {
                let opened_or_updated = changes
                    .iter()
                    .any(|c| matches!(c.change, ChangeKind::Opened | ChangeKind::Updated));
                if let Some(at) = self.probe.ingested_at(*time).filter(|_| opened_or_updated) {
                    let us = now.saturating_duration_since(at).as_micros();
                    samples.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        }
        self.probe.forget_before(closed.bound);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;
    use schemas::routing::DutyStatus;
    use schemas::{Alert, Severity};

    /// A writer whose bytes and flushes the test can see, or that fails like a full disk.
    #[derive(Clone, Default)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        /// Length of `bytes` at each flush.
        flushed: Arc<Mutex<Vec<usize>>>,
        full: bool,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.full {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            let len = self.bytes.lock().unwrap().len();
            self.flushed.lock().unwrap().push(len);
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    fn alert(id: &str) -> Alert {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "id": id, "rule": "indicator_match", "rule_version": 1,
            "key": "k", "window_start": "2026-11-01T00:00:00Z",
            "window_end": "2026-11-02T00:00:00Z", "severity": "high", "title": "t",
            "indicator": {"id": "i1", "kind": "ipv4", "value": "203.0.113.7",
                "source_kind": "partner", "source_id": "acme", "confidence": 90,
                "created": "2026-11-01T00:00:00Z"},
            "marking": {"tlp": "AMBER", "owner": "acme", "sharing": []},
            "first_seen": "2026-11-01T00:00:00Z", "last_seen": "2026-11-01T00:00:00Z",
            "sightings": 1, "hourly": [], "sensors": 1, "victims": 0, "victim_ips": [],
            "victims_by_country": [], "accounts": [], "countries": ["FR"],
            "retroactive_sightings": 0, "event_ids": ["e1"], "summarised_sightings": 0,
            "drill": false,
            "provenance": {"input_keys": [], "sources": [], "corroborated_confidence": 90}
        }))
        .unwrap();
        a.severity = Severity::High;
        a
    }

    fn duty(center: &str, at_ms: i64) -> Box<DutyStatus> {
        let t = jiff::Timestamp::from_millisecond(at_ms).unwrap();
        Box::new(DutyStatus {
            center: center.into(),
            since: t,
            previous: None,
            overlap_until: t,
            next_handover: None,
            next_center: None,
        })
    }

    /// Runs the loop over `outputs` with an alerts file and a routing file; returns the
    /// result, the durable frontier, and the two files.
    fn run(
        outputs: Vec<Output>,
        alerts_full: bool,
    ) -> (Result<(), OutputError>, u64, Shared, Shared) {
        let alerts = Shared {
            full: alerts_full,
            ..Shared::default()
        };
        let routing = Shared::default();
        let durable = Arc::new(AtomicU64::new(0));
        let lp = OutputLoop::new(Arc::default(), Arc::clone(&durable))
            .sink(RoutingFile::new(
                "the routing file r.jsonl".into(),
                Box::new(routing.clone()),
            ))
            .sink(AlertsFile::new(
                "the alerts file a.jsonl".into(),
                Box::new(alerts.clone()),
            ));
        let (tx, rx) = crossbeam_channel::unbounded();
        for o in outputs {
            tx.send(o).unwrap();
        }
        drop(tx);
        let result = lp.run(&rx);
        (result, durable.load(Ordering::SeqCst), alerts, routing)
    }

    #[test]
    fn the_loop_ends_at_the_dataflows_last_message_while_the_channel_is_still_open() {
        let alerts = Shared::default();
        let durable = Arc::new(AtomicU64::new(0));
        let lp = OutputLoop::new(Arc::default(), Arc::clone(&durable)).sink(AlertsFile::new(
            "the alerts file a.jsonl".into(),
            Box::new(alerts.clone()),
        ));
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(Output::Alert(Box::new(alert("a")), 10, 1)).unwrap();
        tx.send(Output::Closed(u64::MAX)).unwrap();
        // `tx` stays open, as the workers' senders do while they drop their state.
        let (ended_tx, ended) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || ended_tx.send(lp.run(&rx)));
        let result = ended
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the loop ends at Closed(u64::MAX), not when the channel closes");
        result.unwrap();
        assert_eq!(durable.load(Ordering::SeqCst), u64::MAX);
        let ids: Vec<String> = alerts
            .text()
            .lines()
            .map(|l| serde_json::from_str::<AlertChange>(l).unwrap().alert.id)
            .collect();
        assert_eq!(ids, ["a"], "everything before the last message written");
        drop(tx);
    }

    #[test]
    fn a_closed_time_is_written_whole_and_flushed_before_it_is_durable() {
        let (result, durable, alerts, _) = run(
            vec![
                Output::Alert(Box::new(alert("b")), 10, 1),
                Output::Alert(Box::new(alert("a")), 10, 1),
                Output::Alert(Box::new(alert("c")), 20, 1),
                Output::Closed(15),
            ],
            false,
        );
        result.unwrap();
        assert_eq!(durable, 15);
        let ids: Vec<String> = alerts
            .text()
            .lines()
            .map(|l| serde_json::from_str::<AlertChange>(l).unwrap().alert.id)
            .collect();
        assert_eq!(
            ids,
            ["a", "b"],
            "time 10 whole, sorted by id; time 20 still open"
        );
        let flushed = alerts.flushed.lock().unwrap().clone();
        assert_eq!(
            flushed.first().copied(),
            Some(alerts.bytes.lock().unwrap().len()),
            "flushed once the closed time was written"
        );
    }

    /// A sink that records what each call gave it: (bound, routing times, alert ids).
    #[derive(Clone, Default)]
    struct Recorder {
        early: bool,
        calls: Arc<Mutex<Vec<(u64, Vec<u64>, Vec<String>)>>>,
    }

    impl ClosedSink for Recorder {
        fn alerts_early(&self) -> bool {
            self.early
        }
        fn name(&self) -> String {
            "a recorder".into()
        }
        fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
            self.calls.lock().unwrap().push((
                closed.bound,
                closed.routing.iter().map(|(t, _)| *t).collect(),
                closed
                    .alerts
                    .iter()
                    .flat_map(|(_, c)| c.iter().map(|c| c.alert.id.clone()))
                    .collect(),
            ));
            Ok(())
        }
    }

    #[test]
    fn alerts_go_out_once_closed_and_the_desk_gets_them_with_their_routing() {
        let alert_sink = Recorder {
            early: true,
            ..Recorder::default()
        };
        let desk = Recorder::default();
        let durable = Arc::new(AtomicU64::new(0));
        let lp = OutputLoop::new(Arc::default(), Arc::clone(&durable))
            .sink(alert_sink.clone())
            .sink(desk.clone());
        let (tx, rx) = crossbeam_channel::unbounded();
        for o in [
            Output::Alert(Box::new(alert("a")), 10, 1),
            Output::Duty(duty("Lyon", 0), 10, 1),
            Output::Closed(5),
            Output::AlertsClosed(15),
            Output::Alert(Box::new(alert("b")), 20, 1),
            Output::Closed(25),
        ] {
            tx.send(o).unwrap();
        }
        drop(tx);
        lp.run(&rx).unwrap();
        let early = alert_sink.calls.lock().unwrap().clone();
        assert_eq!(
            early,
            [
                (5, vec![], vec![]),
                (15, vec![], vec!["a".to_string()]),
                (25, vec![10], vec!["b".to_string()]),
            ],
            "the alert sink gets a at the alerts' frontier, and b (never early) at Closed"
        );
        let late = desk.calls.lock().unwrap().clone();
        assert_eq!(
            late,
            [
                (5, vec![], vec![]),
                (25, vec![10], vec!["a".to_string(), "b".to_string()]),
            ],
            "the desk gets a with its routing, once"
        );
        assert_eq!(durable.load(Ordering::SeqCst), 25);
    }

    #[test]
    fn a_failing_sink_is_named_and_nothing_it_did_not_write_becomes_durable() {
        let (result, durable, _, routing) = run(
            vec![
                Output::Duty(duty("Lyon", 0), 5, 1),
                Output::Closed(8),
                Output::Alert(Box::new(alert("a")), 10, 1),
                Output::Closed(15),
                Output::Closed(30),
            ],
            true,
        );
        let e = result.unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot write the alerts file a.jsonl: No space left on device (os error 28)"
        );
        assert_eq!(
            durable, 8,
            "the frontier before the failed write stays the durable one"
        );
        assert_eq!(routing.text().lines().count(), 1, "time 5 was written");
    }

    #[test]
    fn routing_changes_of_a_closed_time_come_out_in_one_order_whatever_order_they_came_in() {
        let changes = || {
            vec![
                Output::Duty(duty("Singapore", 2), 7, 1),
                Output::Duty(duty("Lyon", 1), 7, -1),
                Output::Duty(duty("Buenos Aires", 3), 7, 1),
                Output::Duty(duty("Lyon", 0), 3, 1),
            ]
        };
        let mut reversed = changes();
        reversed.reverse();
        let mut a = changes();
        a.push(Output::Closed(10));
        reversed.push(Output::Closed(10));
        let (ra, _, _, routing_a) = run(a, false);
        let (rb, _, _, routing_b) = run(reversed, false);
        ra.unwrap();
        rb.unwrap();
        assert_eq!(routing_a.text(), routing_b.text());
        let times: Vec<u64> = routing_a
            .text()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["time"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(times, [3, 7, 7, 7], "in time order");
    }
}
