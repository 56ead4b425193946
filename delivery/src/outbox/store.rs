//! The outbox's redb tables and the indexes that keep enqueue and pick independent of
//! the size of other recipients' queues.
//!
//! Tables (every write goes through one [`Tx`], so the indexes change with the rows).
//!
//! Each recipient has its own *lane* of five tables, so the messages queued for one
//! recipient never share B-tree pages with another's: a bureau that is down with a large
//! backlog makes its own tables deep, not everyone's (the outbox_backlog bench measures
//! it). Lane tables are named `lane/{recipient}/{table}`:
//! - `queue`: seq → message (JSON). The only copy of a message's body.
//! - `heads`: (next attempt ms, seq) → alert id. Exactly the oldest non-parked message
//!   of each alert: messages of one alert go out one at a time, in order, so only heads
//!   can be picked. A worker reads its lane up to "now": its cost is the messages it
//!   picks, not the queue behind them.
//! - `by_alert`: (alert id, seq) → role (queued, head or parked). Finds an alert's
//!   messages for revocation and the next head, without scanning the queue.
//! - `ids`: webhook id → seq of every queued or parked message (enqueue is idempotent).
//! - `parked`: seq → (): messages that will not be retried until an operator re-queues them.
//!
//! Shared tables:
//! - `recipients`: recipient → (): the lanes that exist.
//! - `counts`: recipient → (queued, parked), for `pending` without a scan.
//! - `final_by_alert`: (alert id, webhook id) → outcome of a finished message, so a change
//!   enqueued again (after a restart) queues nothing new. Dropped with the alert.
//! - `alerts`: alert id → what revocation needs (version, markings, who was reached).
//! - `closed`, `closed_by_version`: alert id ↔ last version of an alert that expired or
//!   was retracted and has nothing left in the outbox: its other state is gone, and this
//!   tombstone makes a replayed older change stale. Tombstones are dropped once the
//!   newest version seen is `closed_horizon` past them.
//! - `log`: seq → delivery log entry, dropped after `log_retention`.
//! - `endpoints`: recipient → endpoint state (disabled by 410).
//! - `meta`: sequences, the newest version seen, the layout version.

use std::collections::{BTreeSet, HashMap};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{LogEntry, OutboxError, Outcome, ParkReason};
use crate::webhook::MessageKind;
use schemas::Marking;

/// The shared tables of layouts 1 and 2 (one of each for every recipient): read once
/// at open to move their messages into lanes, then deleted.
const LEGACY_QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const LEGACY_INDEXES: [&str; 4] = ["heads", "by_alert", "ids", "parked"];
const RECIPIENTS: TableDefinition<&str, ()> = TableDefinition::new("recipients");
const COUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("counts");
const FINAL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("final_by_alert");
/// Finished messages of outboxes written before `final_by_alert` (webhook id → outcome);
/// only read, so a change enqueued again after the upgrade still queues nothing.
const LEGACY_FINAL: TableDefinition<&str, &[u8]> = TableDefinition::new("final");
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
const CLOSED: TableDefinition<&str, u64> = TableDefinition::new("closed");
const CLOSED_BY_VERSION: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("closed_by_version");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout this code writes; older outboxes get their messages moved into lanes on open.
const LAYOUT: u64 = 3;

/// Role of a message in `by_alert`.
const ROLE_QUEUED: u8 = 0;
const ROLE_HEAD: u8 = 1;
const ROLE_PARKED: u8 = 2;

/// At most this many expired log entries or tombstones are dropped per transaction, so
/// pruning costs a bounded amount on every write instead of one long pause.
const PRUNE_BATCH: usize = 32;

macro_rules! store {
    ($e:expr) => {
        $e.map_err(|e| OutboxError::Store(e.into()))
    };
}
pub(super) use store;

/// A message in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Queued {
    pub webhook_id: String,
    pub recipient: String,
    pub alert_id: String,
    pub version: u64,
    pub kind: MessageKind,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    /// HTTP status of the last attempt, if a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Error of the last attempt, if no response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Set while the message is parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parking>,
}

/// Why and when a message was parked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Parking {
    pub at_ms: i64,
    pub reason: ParkReason,
    pub detail: String,
}

/// What the outbox knows about an alert, for revocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct AlertState {
    pub version: u64,
    pub marking: Option<Marking>,
    /// The contributing sources' markings of the latest version (see [`schemas::Alert::markings`]).
    #[serde(default)]
    pub contributing: Vec<Marking>,
    pub retracted: bool,
    /// The alert aged out: no version follows, and its state goes once nothing is left.
    #[serde(default)]
    pub expired: bool,
    /// Recipients that may have some version (an attempt was started).
    pub reached: BTreeSet<String>,
    /// Recipients sent a retraction.
    pub retracted_to: BTreeSet<String>,
    /// Recipients that have had a message of this alert queued: the lanes to look in for
    /// its messages (a superset of those holding one now).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub lanes: BTreeSet<String>,
}

impl AlertState {
    /// Retracted or expired: no message of this alert will be queued again.
    pub fn closed(&self) -> bool {
        self.retracted || self.expired
    }
}

/// An endpoint's persistent state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct EndpointState {
    pub disabled: Option<String>,
}

/// How long the store keeps what it could otherwise drop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retention {
    /// Delivery log entries older than this (wall clock) are dropped.
    pub log_ms: i64,
    /// Tombstones of closed alerts older than this (logical time, against the newest
    /// version seen) are dropped.
    pub closed_ms: u64,
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates the tables and, for an outbox of an older layout, moves its messages into lanes.
pub(super) fn init(db: &Database, retention: Retention) -> Result<(), OutboxError> {
    let w = store!(db.begin_write())?;
    let layout = {
        let meta = store!(w.open_table(META))?;
        store!(meta.get("layout"))?.map(|g| g.value())
    };
    if layout.is_some_and(|l| l > LAYOUT) {
        return Err(OutboxError::Layout(layout.unwrap_or_default()));
    }
    if layout.is_none_or(|l| l < LAYOUT) {
        migrate(&w, retention)?;
    }
    {
        // Creates what a new outbox lacks.
        Tx::open(&w, retention)?;
    }
    store!(w.commit())?;
    Ok(())
}

/// Moves the messages of the shared queue (layouts 1 and 2) into lanes, with their
/// indexes and counts built afresh.
fn migrate(w: &WriteTransaction, retention: Retention) -> Result<(), OutboxError> {
    let mut all = Vec::new();
    {
        let queue = store!(w.open_table(LEGACY_QUEUE))?;
        for item in store!(queue.iter())? {
            let (k, v) = store!(item)?;
            all.push((k.value(), serde_json::from_slice::<Queued>(v.value())?));
        }
    }
    store!(w.delete_table(LEGACY_QUEUE))?;
    for name in LEGACY_INDEXES {
        // Deleted by name: their key types do not matter.
        store!(w.delete_table(TableDefinition::<u64, ()>::new(name)))?;
    }
    store!(w.delete_table(COUNTS))?;
    let mut tx = Tx::open(w, retention)?;
    for (seq, q) in all {
        tx.restore(seq, &q)?;
    }
    store!(tx.meta.insert("layout", LAYOUT))?;
    Ok(())
}

/// The tables of one recipient's messages (see the module docs).
struct Lane<'t> {
    queue: Table<'t, u64, &'static [u8]>,
    heads: Table<'t, (i64, u64), &'static str>,
    by_alert: Table<'t, (&'static str, u64), u8>,
    ids: Table<'t, &'static str, u64>,
    parked: Table<'t, u64, ()>,
}

fn lane_table(recipient: &str, table: &str) -> String {
    format!("lane/{recipient}/{table}")
}

impl<'t> Lane<'t> {
    fn open(w: &'t WriteTransaction, recipient: &str) -> Result<Self, OutboxError> {
        let name = |t| lane_table(recipient, t);
        Ok(Self {
            queue: store!(w.open_table(TableDefinition::new(&name("queue"))))?,
            heads: store!(w.open_table(TableDefinition::new(&name("heads"))))?,
            by_alert: store!(w.open_table(TableDefinition::new(&name("by_alert"))))?,
            ids: store!(w.open_table(TableDefinition::new(&name("ids"))))?,
            parked: store!(w.open_table(TableDefinition::new(&name("parked"))))?,
        })
    }

    fn get(&self, seq: u64) -> Result<Option<Queued>, OutboxError> {
        match store!(self.queue.get(seq))? {
            Some(g) => Ok(Some(serde_json::from_slice(g.value())?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        store!(self.queue.insert(seq, serde_json::to_vec(q)?.as_slice()))?;
        Ok(())
    }

    fn role(&self, alert_id: &str, seq: u64) -> Result<Option<u8>, OutboxError> {
        Ok(store!(self.by_alert.get((alert_id, seq)))?.map(|g| g.value()))
    }

    /// Seqs of the alert's queued or parked messages in this lane, oldest first.
    fn seqs_of(&self, alert_id: &str) -> Result<Vec<u64>, OutboxError> {
        let mut out = Vec::new();
        for item in store!(self.by_alert.range((alert_id, 0u64)..=(alert_id, u64::MAX)))? {
            out.push(store!(item)?.0.value().1);
        }
        Ok(out)
    }

    /// Makes the oldest non-parked message of the alert its only head.
    fn fix_head(&mut self, alert_id: &str) -> Result<(), OutboxError> {
        let mut current = None;
        let mut first = None;
        for item in store!(self.by_alert.range((alert_id, 0u64)..=(alert_id, u64::MAX)))? {
            let (k, v) = store!(item)?;
            let seq = k.value().1;
            match v.value() {
                ROLE_HEAD => current = Some(seq),
                ROLE_PARKED => continue,
                _ => {}
            }
            if first.is_none() {
                first = Some(seq);
            }
        }
        if current == first {
            return Ok(());
        }
        if let Some(old) = current {
            let q = self
                .get(old)?
                .ok_or(OutboxError::Corrupt("head without a message"))?;
            store!(self.heads.remove((q.next_attempt_ms, old)))?;
            store!(self.by_alert.insert((alert_id, old), ROLE_QUEUED))?;
        }
        if let Some(new) = first {
            let q = self
                .get(new)?
                .ok_or(OutboxError::Corrupt("index without a message"))?;
            store!(self.heads.insert((q.next_attempt_ms, new), alert_id))?;
            store!(self.by_alert.insert((alert_id, new), ROLE_HEAD))?;
        }
        Ok(())
    }
}

/// Every open table of one write transaction; index upkeep lives here.
pub(super) struct Tx<'t> {
    w: &'t WriteTransaction,
    /// The lanes opened so far in this transaction.
    lanes: HashMap<String, Lane<'t>>,
    recipients: Table<'t, &'static str, ()>,
    counts: Table<'t, &'static str, (u64, u64)>,
    finals: Table<'t, (&'static str, &'static str), &'static [u8]>,
    legacy_final: Table<'t, &'static str, &'static [u8]>,
    alerts: Table<'t, &'static str, &'static [u8]>,
    closed: Table<'t, &'static str, u64>,
    closed_by_version: Table<'t, (u64, &'static str), ()>,
    log: Table<'t, u64, &'static [u8]>,
    endpoints: Table<'t, &'static str, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    /// Change of the number of parked messages in this transaction (for the gauge).
    pub parked_delta: i64,
    /// Messages parked in this transaction, by reason (for the counter).
    pub parked_now: Vec<ParkReason>,
    retention: Retention,
}

impl<'t> Tx<'t> {
    /// Opens every table in `w`.
    pub fn open(w: &'t WriteTransaction, retention: Retention) -> Result<Self, OutboxError> {
        Ok(Self {
            w,
            lanes: HashMap::new(),
            recipients: store!(w.open_table(RECIPIENTS))?,
            counts: store!(w.open_table(COUNTS))?,
            finals: store!(w.open_table(FINAL))?,
            legacy_final: store!(w.open_table(LEGACY_FINAL))?,
            alerts: store!(w.open_table(ALERTS))?,
            closed: store!(w.open_table(CLOSED))?,
            closed_by_version: store!(w.open_table(CLOSED_BY_VERSION))?,
            log: store!(w.open_table(LOG))?,
            endpoints: store!(w.open_table(ENDPOINTS))?,
            meta: store!(w.open_table(META))?,
            parked_delta: 0,
            parked_now: Vec::new(),
            retention,
        })
    }

    /// The lane of `recipient`, opened (and created) on first use in this transaction.
    fn lane(&mut self, recipient: &str) -> Result<&mut Lane<'t>, OutboxError> {
        if !self.lanes.contains_key(recipient) {
            let lane = Lane::open(self.w, recipient)?;
            if store!(self.recipients.get(recipient))?.is_none() {
                store!(self.recipients.insert(recipient, ()))?;
            }
            self.lanes.insert(recipient.to_string(), lane);
        }
        self.lanes
            .get_mut(recipient)
            .ok_or(OutboxError::Corrupt("lane not opened"))
    }

    /// Every recipient with a lane.
    fn all_recipients(&self) -> Result<Vec<String>, OutboxError> {
        let mut out = Vec::new();
        for item in store!(self.recipients.iter())? {
            out.push(store!(item)?.0.value().to_string());
        }
        Ok(out)
    }

    fn next_seq(&mut self, name: &str) -> Result<u64, OutboxError> {
        let n = store!(self.meta.get(name))?.map(|g| g.value()).unwrap_or(0);
        store!(self.meta.insert(name, n + 1))?;
        Ok(n)
    }

    /// Appends to the delivery log, dropping a bounded number of entries past the retention.
    pub fn append_log(&mut self, entry: &LogEntry) -> Result<(), OutboxError> {
        let seq = self.next_seq("log_seq")?;
        let bytes = serde_json::to_vec(entry)?;
        store!(self.log.insert(seq, bytes.as_slice()))?;
        let cutoff = entry.at_ms.saturating_sub(self.retention.log_ms);
        for _ in 0..PRUNE_BATCH {
            let oldest = match store!(self.log.first())? {
                Some((k, v)) => {
                    let e: LogEntry = serde_json::from_slice(v.value())?;
                    (e.at_ms < cutoff).then(|| k.value())
                }
                None => None,
            };
            let Some(k) = oldest else { break };
            store!(self.log.remove(k))?;
        }
        Ok(())
    }

    /// Raises the newest version seen and drops tombstones past the horizon.
    pub fn note_version(&mut self, version: u64) -> Result<(), OutboxError> {
        let newest = self.newest_version()?;
        if version > newest {
            store!(self.meta.insert("newest_version", version))?;
        }
        self.prune_tombstones()
    }

    fn newest_version(&self) -> Result<u64, OutboxError> {
        Ok(store!(self.meta.get("newest_version"))?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// Drops (a bounded number of) tombstones older than the horizon.
    fn prune_tombstones(&mut self) -> Result<(), OutboxError> {
        let cutoff = self
            .newest_version()?
            .saturating_sub(self.retention.closed_ms);
        let mut old = Vec::new();
        for item in store!(self.closed_by_version.range(..(cutoff, "")))?.take(PRUNE_BATCH) {
            let (k, _) = store!(item)?;
            let (v, id) = k.value();
            old.push((v, id.to_string()));
        }
        for (v, id) in old {
            store!(self.closed_by_version.remove((v, id.as_str())))?;
            store!(self.closed.remove(id.as_str()))?;
        }
        Ok(())
    }

    /// The message `seq` of `recipient`, if it is still queued or parked.
    pub fn get(&mut self, recipient: &str, seq: u64) -> Result<Option<Queued>, OutboxError> {
        self.lane(recipient)?.get(seq)
    }

    fn count(&mut self, recipient: &str, queued: i64, parked: i64) -> Result<(), OutboxError> {
        let (q, p) = store!(self.counts.get(recipient))?
            .map(|g| g.value())
            .unwrap_or((0, 0));
        let q = q.saturating_add_signed(queued);
        let p = p.saturating_add_signed(parked);
        if q == 0 && p == 0 {
            store!(self.counts.remove(recipient))?;
        } else {
            store!(self.counts.insert(recipient, (q, p)))?;
        }
        self.parked_delta += parked;
        Ok(())
    }

    /// Whether a message with this webhook id is queued, parked or finished.
    pub fn known(
        &mut self,
        recipient: &str,
        alert_id: &str,
        webhook_id: &str,
    ) -> Result<bool, OutboxError> {
        Ok(store!(self.lane(recipient)?.ids.get(webhook_id))?.is_some()
            || store!(self.finals.get((alert_id, webhook_id)))?.is_some()
            || store!(self.legacy_final.get(webhook_id))?.is_some())
    }

    /// Queues a new message behind the others of its (alert, recipient).
    pub fn insert(&mut self, q: &Queued) -> Result<u64, OutboxError> {
        let seq = self.next_seq("queue_seq")?;
        let lane = self.lane(&q.recipient)?;
        lane.put(seq, q)?;
        store!(lane.ids.insert(q.webhook_id.as_str(), seq))?;
        store!(
            lane.by_alert
                .insert((q.alert_id.as_str(), seq), ROLE_QUEUED)
        )?;
        lane.fix_head(&q.alert_id)?;
        self.count(&q.recipient, 1, 0)?;
        Ok(seq)
    }

    /// Puts back a message of an older layout under its own seq, with its indexes.
    fn restore(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        let lane = self.lane(&q.recipient)?;
        lane.put(seq, q)?;
        store!(lane.ids.insert(q.webhook_id.as_str(), seq))?;
        let role = if q.parked.is_some() {
            store!(lane.parked.insert(seq, ()))?;
            ROLE_PARKED
        } else {
            ROLE_QUEUED
        };
        store!(lane.by_alert.insert((q.alert_id.as_str(), seq), role))?;
        lane.fix_head(&q.alert_id)?;
        if role == ROLE_PARKED {
            self.count(&q.recipient, 0, 1)?;
        } else {
            self.count(&q.recipient, 1, 0)?;
        }
        // Counted at open from `counts`, not as a change.
        self.parked_delta = 0;
        if q.kind != MessageKind::Feedback {
            let mut state = self.alert_state(&q.alert_id)?.unwrap_or_default();
            if state.lanes.insert(q.recipient.clone()) {
                self.put_alert_state(&q.alert_id, &state)?;
            }
        }
        Ok(())
    }

    /// Removes a queued or parked message (`q` as stored) with its index entries.
    pub fn remove(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        let lane = self.lane(&q.recipient)?;
        store!(lane.queue.remove(seq))?;
        store!(lane.ids.remove(q.webhook_id.as_str()))?;
        let role = store!(lane.by_alert.remove((q.alert_id.as_str(), seq)))?.map(|g| g.value());
        match role {
            Some(ROLE_HEAD) => {
                store!(lane.heads.remove((q.next_attempt_ms, seq)))?;
            }
            Some(ROLE_PARKED) => {
                store!(lane.parked.remove(seq))?;
            }
            _ => {}
        }
        lane.fix_head(&q.alert_id)?;
        if role == Some(ROLE_PARKED) {
            self.count(&q.recipient, 0, -1)
        } else {
            self.count(&q.recipient, -1, 0)
        }
    }

    /// Records a finished message (for idempotent enqueues) after [`Tx::remove`].
    pub fn finish(&mut self, q: &Queued, outcome: Outcome) -> Result<(), OutboxError> {
        let rec = serde_json::to_vec(&(outcome, q.attempts, now_ms()))?;
        store!(
            self.finals
                .insert((q.alert_id.as_str(), q.webhook_id.as_str()), rec.as_slice())
        )?;
        Ok(())
    }

    /// Stores a message's new attempt count, status or schedule (`old_next` is the stored schedule).
    pub fn update(&mut self, seq: u64, old_next: i64, q: &Queued) -> Result<(), OutboxError> {
        let lane = self.lane(&q.recipient)?;
        lane.put(seq, q)?;
        if old_next != q.next_attempt_ms && lane.role(&q.alert_id, seq)? == Some(ROLE_HEAD) {
            store!(lane.heads.remove((old_next, seq)))?;
            store!(
                lane.heads
                    .insert((q.next_attempt_ms, seq), q.alert_id.as_str())
            )?;
        }
        Ok(())
    }

    /// Parks a queued message (`q` as stored, `parking` set): it stays, visible, until re-queued.
    pub fn park(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        let Some(parking) = &q.parked else {
            return Ok(());
        };
        let lane = self.lane(&q.recipient)?;
        let role = lane.role(&q.alert_id, seq)?;
        if role == Some(ROLE_PARKED) || role.is_none() {
            return Ok(());
        }
        if role == Some(ROLE_HEAD) {
            store!(lane.heads.remove((q.next_attempt_ms, seq)))?;
        }
        lane.put(seq, q)?;
        store!(
            lane.by_alert
                .insert((q.alert_id.as_str(), seq), ROLE_PARKED)
        )?;
        store!(lane.parked.insert(seq, ()))?;
        // A parked message no longer holds back the next version of its alert.
        lane.fix_head(&q.alert_id)?;
        self.count(&q.recipient, -1, 1)?;
        self.parked_now.push(parking.reason);
        Ok(())
    }

    /// Re-queues a parked message for an attempt now, with a fresh retry budget. It keeps
    /// its place: versions of one alert still go out in order.
    pub fn unpark(&mut self, seq: u64, mut q: Queued, now: i64) -> Result<Queued, OutboxError> {
        q.parked = None;
        q.attempts = 0;
        q.next_attempt_ms = now;
        let lane = self.lane(&q.recipient)?;
        lane.put(seq, &q)?;
        store!(
            lane.by_alert
                .insert((q.alert_id.as_str(), seq), ROLE_QUEUED)
        )?;
        store!(lane.parked.remove(seq))?;
        lane.fix_head(&q.alert_id)?;
        self.count(&q.recipient, 1, -1)?;
        Ok(q)
    }

    /// Every queued or parked message of an alert in the given lanes: (seq, message).
    pub fn messages_of(
        &mut self,
        alert_id: &str,
        lanes: &BTreeSet<String>,
    ) -> Result<Vec<(u64, Queued)>, OutboxError> {
        let mut out = Vec::new();
        for r in lanes {
            let lane = self.lane(r)?;
            for seq in lane.seqs_of(alert_id)? {
                if let Some(q) = lane.get(seq)? {
                    out.push((seq, q));
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` due heads of `recipient` at or after `from`, skipping `skip`'s alerts:
    /// (next attempt ms, seq, alert id), oldest schedule first.
    pub fn due_heads(
        &mut self,
        recipient: &str,
        from: (i64, u64),
        now: i64,
        skip: &BTreeSet<String>,
        limit: usize,
    ) -> Result<Vec<(i64, u64, String)>, OutboxError> {
        due_heads(&self.lane(recipient)?.heads, from, now, skip, limit)
    }

    /// The earliest scheduled attempt of `recipient` after `now`.
    pub fn next_due(&mut self, recipient: &str, now: i64) -> Result<Option<i64>, OutboxError> {
        next_due(&self.lane(recipient)?.heads, now)
    }

    pub fn alert_state(&self, alert_id: &str) -> Result<Option<AlertState>, OutboxError> {
        match store!(self.alerts.get(alert_id))? {
            Some(g) => Ok(Some(serde_json::from_slice(g.value())?)),
            None => Ok(None),
        }
    }

    pub fn put_alert_state(&mut self, alert_id: &str, s: &AlertState) -> Result<(), OutboxError> {
        store!(
            self.alerts
                .insert(alert_id, serde_json::to_vec(s)?.as_slice())
        )?;
        Ok(())
    }

    /// The tombstone of a closed alert whose state was dropped: its last version.
    pub fn closed_version(&self, alert_id: &str) -> Result<Option<u64>, OutboxError> {
        Ok(store!(self.closed.get(alert_id))?.map(|g| g.value()))
    }

    /// Forgets a tombstone (a newer version reopened the alert).
    pub fn reopen(&mut self, alert_id: &str) -> Result<(), OutboxError> {
        if let Some(v) = store!(self.closed.remove(alert_id))?.map(|g| g.value()) {
            store!(self.closed_by_version.remove((v, alert_id)))?;
        }
        Ok(())
    }

    /// Drops a closed alert's state once none of its messages is queued or parked,
    /// leaving a tombstone. Returns whether it did.
    pub fn drop_if_idle(&mut self, alert_id: &str) -> Result<bool, OutboxError> {
        let Some(state) = self.alert_state(alert_id)? else {
            return Ok(false);
        };
        if !state.closed() {
            return Ok(false);
        }
        for r in &state.lanes {
            if !self.lane(r)?.seqs_of(alert_id)?.is_empty() {
                return Ok(false);
            }
        }
        store!(self.alerts.remove(alert_id))?;
        let mut finished = Vec::new();
        for item in store!(self.finals.range((alert_id, "")..))? {
            let (k, _) = store!(item)?;
            let (a, id) = k.value();
            if a != alert_id {
                break;
            }
            finished.push(id.to_string());
        }
        for id in finished {
            store!(self.finals.remove((alert_id, id.as_str())))?;
        }
        self.reopen(alert_id)?;
        store!(self.closed.insert(alert_id, state.version))?;
        store!(self.closed_by_version.insert((state.version, alert_id), ()))?;
        self.prune_tombstones()?;
        Ok(true)
    }

    pub fn set_endpoint(&mut self, recipient: &str, s: &EndpointState) -> Result<(), OutboxError> {
        if s.disabled.is_none() {
            store!(self.endpoints.remove(recipient))?;
        } else {
            store!(
                self.endpoints
                    .insert(recipient, serde_json::to_vec(s)?.as_slice())
            )?;
        }
        Ok(())
    }

    /// Parked messages, of one recipient or all: (seq, message).
    pub fn parked(&mut self, recipient: Option<&str>) -> Result<Vec<(u64, Queued)>, OutboxError> {
        let recipients = match recipient {
            Some(r) => vec![r.to_string()],
            None => self.all_recipients()?,
        };
        let mut out = Vec::new();
        for r in recipients {
            let lane = self.lane(&r)?;
            for seq in parked_seqs(&lane.parked)? {
                if let Some(q) = lane.get(seq)? {
                    out.push((seq, q));
                }
            }
        }
        Ok(out)
    }

    /// Disabled endpoints: (recipient, why).
    pub fn disabled_endpoints(&self) -> Result<Vec<(String, String)>, OutboxError> {
        disabled_endpoints(&self.endpoints)
    }
}

fn due_heads(
    heads: &impl ReadableTable<(i64, u64), &'static str>,
    from: (i64, u64),
    now: i64,
    skip: &BTreeSet<String>,
    limit: usize,
) -> Result<Vec<(i64, u64, String)>, OutboxError> {
    let mut out = Vec::new();
    if from.0 > now {
        return Ok(out);
    }
    for item in store!(heads.range((from.0, from.1)..=(now, u64::MAX)))? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = store!(item)?;
        let (next, seq) = k.value();
        let alert = v.value();
        if skip.contains(alert) {
            continue;
        }
        out.push((next, seq, alert.to_string()));
    }
    Ok(out)
}

fn next_due(
    heads: &impl ReadableTable<(i64, u64), &'static str>,
    now: i64,
) -> Result<Option<i64>, OutboxError> {
    if now == i64::MAX {
        return Ok(None);
    }
    match store!(heads.range((now + 1, 0u64)..))?.next() {
        Some(item) => Ok(Some(store!(item)?.0.value().0)),
        None => Ok(None),
    }
}

fn parked_seqs(parked: &impl ReadableTable<u64, ()>) -> Result<Vec<u64>, OutboxError> {
    let mut out = Vec::new();
    for item in store!(parked.iter())? {
        out.push(store!(item)?.0.value());
    }
    Ok(out)
}

/// Opens a table for reading; `None` if it was never created (a lane nobody wrote to).
fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &ReadTransaction,
    name: &str,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, OutboxError> {
    match r.open_table(TableDefinition::<K, V>::new(name)) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(OutboxError::Store(e.into())),
    }
}

fn disabled_endpoints(
    endpoints: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, String)>, OutboxError> {
    let mut out = Vec::new();
    for item in store!(endpoints.iter())? {
        let (k, v) = store!(item)?;
        let s: EndpointState = serde_json::from_slice(v.value())?;
        if let Some(d) = s.disabled {
            out.push((k.value().to_string(), d));
        }
    }
    Ok(out)
}

/// A consistent read-only view of the outbox.
pub(super) struct Snapshot {
    r: ReadTransaction,
}

impl Snapshot {
    pub fn begin(db: &Database) -> Result<Self, OutboxError> {
        Ok(Self {
            r: store!(db.begin_read())?,
        })
    }

    /// Every recipient with a lane.
    fn recipients(&self) -> Result<Vec<String>, OutboxError> {
        let recipients = store!(self.r.open_table(RECIPIENTS))?;
        let mut out = Vec::new();
        for item in store!(recipients.iter())? {
            out.push(store!(item)?.0.value().to_string());
        }
        Ok(out)
    }

    /// Per recipient: (queued, parked).
    pub fn counts(&self) -> Result<Vec<(String, u64, u64)>, OutboxError> {
        let counts = store!(self.r.open_table(COUNTS))?;
        let mut out = Vec::new();
        for item in store!(counts.iter())? {
            let (k, v) = store!(item)?;
            let (q, p) = v.value();
            out.push((k.value().to_string(), q, p));
        }
        Ok(out)
    }

    pub fn disabled_endpoints(&self) -> Result<Vec<(String, String)>, OutboxError> {
        disabled_endpoints(&store!(self.r.open_table(ENDPOINTS))?)
    }

    pub fn endpoint_disabled(&self, recipient: &str) -> Result<bool, OutboxError> {
        let endpoints = store!(self.r.open_table(ENDPOINTS))?;
        Ok(match store!(endpoints.get(recipient))? {
            Some(g) => serde_json::from_slice::<EndpointState>(g.value())?
                .disabled
                .is_some(),
            None => false,
        })
    }

    /// Whether `recipient` has a head due at `now` outside `skip`, and else its next due time.
    pub fn due(
        &self,
        recipient: &str,
        now: i64,
        skip: &BTreeSet<String>,
    ) -> Result<(bool, Option<i64>), OutboxError> {
        let Some(heads) = open_read::<(i64, u64), &str>(&self.r, &lane_table(recipient, "heads"))?
        else {
            return Ok((false, None));
        };
        if !due_heads(&heads, (i64::MIN, 0), now, skip, 1)?.is_empty() {
            return Ok((true, Some(now)));
        }
        Ok((false, next_due(&heads, now)?))
    }

    /// Parked messages, of one recipient or all.
    pub fn parked(&self, recipient: Option<&str>) -> Result<Vec<Queued>, OutboxError> {
        let recipients = match recipient {
            Some(r) => vec![r.to_string()],
            None => self.recipients()?,
        };
        let mut out = Vec::new();
        for r in recipients {
            let (Some(parked), Some(queue)) = (
                open_read::<u64, ()>(&self.r, &lane_table(&r, "parked"))?,
                open_read::<u64, &[u8]>(&self.r, &lane_table(&r, "queue"))?,
            ) else {
                continue;
            };
            for seq in parked_seqs(&parked)? {
                if let Some(g) = store!(queue.get(seq))? {
                    out.push(serde_json::from_slice(g.value())?);
                }
            }
        }
        Ok(out)
    }

    /// Delivery log entries from `from` (a log position) on, oldest first.
    pub fn log(&self, from: u64) -> Result<Vec<LogEntry>, OutboxError> {
        let log = store!(self.r.open_table(LOG))?;
        let mut out = Vec::new();
        for item in store!(log.range(from..))? {
            let (_, v) = store!(item)?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The position the next log entry will take.
    pub fn log_position(&self) -> Result<u64, OutboxError> {
        let meta = store!(self.r.open_table(META))?;
        Ok(store!(meta.get("log_seq"))?.map(|g| g.value()).unwrap_or(0))
    }

    /// Whether any state of this alert is kept (state, tombstone, messages), for tests and operators.
    pub fn alert_footprint(&self, alert_id: &str) -> Result<AlertFootprint, OutboxError> {
        let alerts = store!(self.r.open_table(ALERTS))?;
        let finals = store!(self.r.open_table(FINAL))?;
        let closed = store!(self.r.open_table(CLOSED))?;
        let mut messages = 0;
        for r in self.recipients()? {
            let Some(by_alert) =
                open_read::<(&str, u64), u8>(&self.r, &lane_table(&r, "by_alert"))?
            else {
                continue;
            };
            for item in store!(by_alert.range((alert_id, 0u64)..=(alert_id, u64::MAX)))? {
                store!(item)?;
                messages += 1;
            }
        }
        let mut finished = 0;
        for item in store!(finals.range((alert_id, "")..))? {
            if store!(item)?.0.value().0 != alert_id {
                break;
            }
            finished += 1;
        }
        Ok(AlertFootprint {
            state: store!(alerts.get(alert_id))?.is_some(),
            messages,
            finished,
            tombstone: store!(closed.get(alert_id))?.map(|g| g.value()),
        })
    }

    /// Number of alerts with state, and of tombstones.
    pub fn alert_counts(&self) -> Result<(u64, u64), OutboxError> {
        let alerts = store!(self.r.open_table(ALERTS))?;
        let closed = store!(self.r.open_table(CLOSED))?;
        Ok((store!(alerts.len())?, store!(closed.len())?))
    }
}

/// What the outbox keeps about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertFootprint {
    /// Its revocation state (version, markings, recipients reached) is kept.
    pub state: bool,
    /// Its messages queued or parked.
    pub messages: usize,
    /// Its finished messages remembered (so a repeated change queues nothing).
    pub finished: usize,
    /// The last version of a closed alert whose state was dropped.
    pub tombstone: Option<u64>,
}
