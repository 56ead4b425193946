//! The outbox's redb tables and the indexes that keep enqueue and pick independent of
//! the size of other recipients' queues.
//!
//! Tables (every write goes through one [`Tx`], so the indexes change with the rows):
//! - `queue`: seq → message (JSON). The only copy of a message's body.
//! - `heads`: (recipient, next attempt ms, seq) → alert id. Exactly the oldest
//!   non-parked message of each (alert, recipient): messages of one alert go out one at a
//!   time, in order, so only heads can be picked. A worker reads its recipient's range up
//!   to "now": its cost is the messages it picks, not the queue behind them.
//! - `by_alert`: (alert id, recipient, seq) → role (queued, head or parked). Finds an
//!   alert's messages for revocation and the next head, without scanning the queue.
//! - `ids`: webhook id → seq of every queued or parked message (enqueue is idempotent).
//! - `parked`: (recipient, seq) → (): messages that will not be retried until an
//!   operator re-queues them.
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

use std::collections::BTreeSet;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{LogEntry, OutboxError, Outcome, ParkReason};
use crate::webhook::MessageKind;
use schemas::Marking;

pub(super) const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const HEADS: TableDefinition<(&str, i64, u64), &str> = TableDefinition::new("heads");
const BY_ALERT: TableDefinition<(&str, &str, u64), u8> = TableDefinition::new("by_alert");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const PARKED: TableDefinition<(&str, u64), ()> = TableDefinition::new("parked");
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

/// The layout this code writes; older outboxes get their indexes built on open.
const LAYOUT: u64 = 2;

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

/// Creates the tables and, for an outbox of an older layout, builds the indexes from its queue.
pub(super) fn init(db: &Database, retention: Retention) -> Result<(), OutboxError> {
    let w = store!(db.begin_write())?;
    let layout;
    {
        let mut tx = Tx::open(&w, retention)?;
        layout = store!(tx.meta.get("layout"))?.map(|g| g.value());
        if layout.is_none_or(|l| l < LAYOUT) {
            tx.rebuild_indexes()?;
            store!(tx.meta.insert("layout", LAYOUT))?;
        }
    }
    store!(w.commit())?;
    if layout.is_some_and(|l| l > LAYOUT) {
        return Err(OutboxError::Layout(layout.unwrap_or_default()));
    }
    Ok(())
}

/// Every open table of one write transaction; index upkeep lives here.
pub(super) struct Tx<'t> {
    queue: Table<'t, u64, &'static [u8]>,
    heads: Table<'t, (&'static str, i64, u64), &'static str>,
    by_alert: Table<'t, (&'static str, &'static str, u64), u8>,
    ids: Table<'t, &'static str, u64>,
    parked: Table<'t, (&'static str, u64), ()>,
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
            queue: store!(w.open_table(QUEUE))?,
            heads: store!(w.open_table(HEADS))?,
            by_alert: store!(w.open_table(BY_ALERT))?,
            ids: store!(w.open_table(IDS))?,
            parked: store!(w.open_table(PARKED))?,
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

    pub fn get(&self, seq: u64) -> Result<Option<Queued>, OutboxError> {
        match store!(self.queue.get(seq))? {
            Some(g) => Ok(Some(serde_json::from_slice(g.value())?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        store!(self.queue.insert(seq, serde_json::to_vec(q)?.as_slice()))?;
        Ok(())
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
    pub fn known(&self, alert_id: &str, webhook_id: &str) -> Result<bool, OutboxError> {
        Ok(store!(self.ids.get(webhook_id))?.is_some()
            || store!(self.finals.get((alert_id, webhook_id)))?.is_some()
            || store!(self.legacy_final.get(webhook_id))?.is_some())
    }

    /// Queues a new message behind the others of its (alert, recipient).
    pub fn insert(&mut self, q: &Queued) -> Result<u64, OutboxError> {
        let seq = self.next_seq("queue_seq")?;
        self.put(seq, q)?;
        store!(self.ids.insert(q.webhook_id.as_str(), seq))?;
        store!(self.by_alert.insert(
            (q.alert_id.as_str(), q.recipient.as_str(), seq),
            ROLE_QUEUED
        ))?;
        self.count(&q.recipient, 1, 0)?;
        self.fix_head(&q.alert_id, &q.recipient)?;
        Ok(seq)
    }

    /// Removes a queued or parked message (`q` as stored) with its index entries.
    pub fn remove(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        store!(self.queue.remove(seq))?;
        store!(self.ids.remove(q.webhook_id.as_str()))?;
        let role = store!(
            self.by_alert
                .remove((q.alert_id.as_str(), q.recipient.as_str(), seq))
        )?
        .map(|g| g.value());
        match role {
            Some(ROLE_HEAD) => {
                store!(
                    self.heads
                        .remove((q.recipient.as_str(), q.next_attempt_ms, seq))
                )?;
            }
            Some(ROLE_PARKED) => {
                store!(self.parked.remove((q.recipient.as_str(), seq)))?;
            }
            _ => {}
        }
        if role == Some(ROLE_PARKED) {
            self.count(&q.recipient, 0, -1)?;
        } else {
            self.count(&q.recipient, -1, 0)?;
        }
        self.fix_head(&q.alert_id, &q.recipient)
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
        self.put(seq, q)?;
        if old_next != q.next_attempt_ms && self.role(q, seq)? == Some(ROLE_HEAD) {
            store!(self.heads.remove((q.recipient.as_str(), old_next, seq)))?;
            store!(self.heads.insert(
                (q.recipient.as_str(), q.next_attempt_ms, seq),
                q.alert_id.as_str()
            ))?;
        }
        Ok(())
    }

    fn role(&self, q: &Queued, seq: u64) -> Result<Option<u8>, OutboxError> {
        Ok(store!(
            self.by_alert
                .get((q.alert_id.as_str(), q.recipient.as_str(), seq))
        )?
        .map(|g| g.value()))
    }

    /// Parks a queued message (`q` as stored, `parking` set): it stays, visible, until re-queued.
    pub fn park(&mut self, seq: u64, q: &Queued) -> Result<(), OutboxError> {
        let Some(parking) = &q.parked else {
            return Ok(());
        };
        let role = self.role(q, seq)?;
        if role == Some(ROLE_PARKED) || role.is_none() {
            return Ok(());
        }
        if role == Some(ROLE_HEAD) {
            store!(
                self.heads
                    .remove((q.recipient.as_str(), q.next_attempt_ms, seq))
            )?;
        }
        self.put(seq, q)?;
        store!(self.by_alert.insert(
            (q.alert_id.as_str(), q.recipient.as_str(), seq),
            ROLE_PARKED
        ))?;
        store!(self.parked.insert((q.recipient.as_str(), seq), ()))?;
        self.count(&q.recipient, -1, 1)?;
        self.parked_now.push(parking.reason);
        // A parked message no longer holds back the next version of its alert.
        self.fix_head(&q.alert_id, &q.recipient)
    }

    /// Re-queues a parked message for an attempt now, with a fresh retry budget. It keeps
    /// its place: versions of one alert still go out in order.
    pub fn unpark(&mut self, seq: u64, mut q: Queued, now: i64) -> Result<Queued, OutboxError> {
        q.parked = None;
        q.attempts = 0;
        q.next_attempt_ms = now;
        self.put(seq, &q)?;
        store!(self.by_alert.insert(
            (q.alert_id.as_str(), q.recipient.as_str(), seq),
            ROLE_QUEUED
        ))?;
        store!(self.parked.remove((q.recipient.as_str(), seq)))?;
        self.count(&q.recipient, 1, -1)?;
        self.fix_head(&q.alert_id, &q.recipient)?;
        Ok(q)
    }

    /// Makes the oldest non-parked message of (alert, recipient) its only head.
    fn fix_head(&mut self, alert_id: &str, recipient: &str) -> Result<(), OutboxError> {
        let mut current = None;
        let mut first = None;
        for item in store!(
            self.by_alert
                .range((alert_id, recipient, 0u64)..=(alert_id, recipient, u64::MAX))
        )? {
            let (k, v) = store!(item)?;
            let seq = k.value().2;
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
            store!(self.heads.remove((recipient, q.next_attempt_ms, old)))?;
            store!(
                self.by_alert
                    .insert((alert_id, recipient, old), ROLE_QUEUED)
            )?;
        }
        if let Some(new) = first {
            let q = self
                .get(new)?
                .ok_or(OutboxError::Corrupt("index without a message"))?;
            store!(
                self.heads
                    .insert((recipient, q.next_attempt_ms, new), alert_id)
            )?;
            store!(self.by_alert.insert((alert_id, recipient, new), ROLE_HEAD))?;
        }
        Ok(())
    }

    /// Every queued or parked message of an alert: (seq, message).
    pub fn messages_of(&self, alert_id: &str) -> Result<Vec<(u64, Queued)>, OutboxError> {
        let mut seqs = Vec::new();
        for item in store!(self.by_alert.range((alert_id, "", 0u64)..))? {
            let (k, _) = store!(item)?;
            let (a, _, seq) = k.value();
            if a != alert_id {
                break;
            }
            seqs.push(seq);
        }
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(q) = self.get(seq)? {
                out.push((seq, q));
            }
        }
        Ok(out)
    }

    fn has_messages(&self, alert_id: &str) -> Result<bool, OutboxError> {
        Ok(
            match store!(self.by_alert.range((alert_id, "", 0u64)..))?.next() {
                Some(item) => store!(item)?.0.value().0 == alert_id,
                None => false,
            },
        )
    }

    /// Up to `limit` due heads of `recipient` at or after `from`, skipping `skip`'s alerts:
    /// (next attempt ms, seq, alert id), oldest schedule first.
    pub fn due_heads(
        &self,
        recipient: &str,
        from: (i64, u64),
        now: i64,
        skip: &BTreeSet<String>,
        limit: usize,
    ) -> Result<Vec<(i64, u64, String)>, OutboxError> {
        due_heads(&self.heads, recipient, from, now, skip, limit)
    }

    /// The earliest scheduled attempt of `recipient` after `now`.
    pub fn next_due(&self, recipient: &str, now: i64) -> Result<Option<i64>, OutboxError> {
        next_due(&self.heads, recipient, now)
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
        if !state.closed() || self.has_messages(alert_id)? {
            return Ok(false);
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
    pub fn parked(&self, recipient: Option<&str>) -> Result<Vec<(u64, Queued)>, OutboxError> {
        let keys = parked_keys(&self.parked, recipient)?;
        let mut out = Vec::with_capacity(keys.len());
        for (_, seq) in keys {
            if let Some(q) = self.get(seq)? {
                out.push((seq, q));
            }
        }
        Ok(out)
    }

    /// Disabled endpoints: (recipient, why).
    pub fn disabled_endpoints(&self) -> Result<Vec<(String, String)>, OutboxError> {
        disabled_endpoints(&self.endpoints)
    }

    /// Builds `heads`, `by_alert`, `ids`, `counts` and `parked` from the queue (an outbox
    /// written before they existed). Runs once, at open.
    fn rebuild_indexes(&mut self) -> Result<(), OutboxError> {
        let mut all = Vec::new();
        for item in store!(self.queue.iter())? {
            let (k, v) = store!(item)?;
            all.push((k.value(), serde_json::from_slice::<Queued>(v.value())?));
        }
        if all.is_empty() {
            return Ok(());
        }
        for (seq, q) in all {
            store!(self.ids.insert(q.webhook_id.as_str(), seq))?;
            let role = if q.parked.is_some() {
                store!(self.parked.insert((q.recipient.as_str(), seq), ()))?;
                self.count(&q.recipient, 0, 1)?;
                ROLE_PARKED
            } else {
                self.count(&q.recipient, 1, 0)?;
                ROLE_QUEUED
            };
            store!(
                self.by_alert
                    .insert((q.alert_id.as_str(), q.recipient.as_str(), seq), role)
            )?;
            self.fix_head(&q.alert_id, &q.recipient)?;
        }
        // Counted at open from `counts`, not as a change.
        self.parked_delta = 0;
        Ok(())
    }
}

fn due_heads(
    heads: &impl ReadableTable<(&'static str, i64, u64), &'static str>,
    recipient: &str,
    from: (i64, u64),
    now: i64,
    skip: &BTreeSet<String>,
    limit: usize,
) -> Result<Vec<(i64, u64, String)>, OutboxError> {
    let mut out = Vec::new();
    if from.0 > now {
        return Ok(out);
    }
    for item in store!(heads.range((recipient, from.0, from.1)..=(recipient, now, u64::MAX)))? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = store!(item)?;
        let (_, next, seq) = k.value();
        let alert = v.value();
        if skip.contains(alert) {
            continue;
        }
        out.push((next, seq, alert.to_string()));
    }
    Ok(out)
}

fn next_due(
    heads: &impl ReadableTable<(&'static str, i64, u64), &'static str>,
    recipient: &str,
    now: i64,
) -> Result<Option<i64>, OutboxError> {
    if now == i64::MAX {
        return Ok(None);
    }
    match store!(heads.range((recipient, now + 1, 0u64)..=(recipient, i64::MAX, u64::MAX)))?.next()
    {
        Some(item) => Ok(Some(store!(item)?.0.value().1)),
        None => Ok(None),
    }
}

fn parked_keys(
    parked: &impl ReadableTable<(&'static str, u64), ()>,
    recipient: Option<&str>,
) -> Result<Vec<(String, u64)>, OutboxError> {
    let mut out = Vec::new();
    let range = match recipient {
        Some(r) => store!(parked.range((r, 0u64)..=(r, u64::MAX)))?,
        None => store!(parked.range::<(&str, u64)>(..))?,
    };
    for item in range {
        let (k, _) = store!(item)?;
        let (r, seq) = k.value();
        out.push((r.to_string(), seq));
    }
    Ok(out)
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
        let heads = store!(self.r.open_table(HEADS))?;
        if !due_heads(&heads, recipient, (i64::MIN, 0), now, skip, 1)?.is_empty() {
            return Ok((true, Some(now)));
        }
        Ok((false, next_due(&heads, recipient, now)?))
    }

    /// Parked messages, of one recipient or all.
    pub fn parked(&self, recipient: Option<&str>) -> Result<Vec<Queued>, OutboxError> {
        let parked = store!(self.r.open_table(PARKED))?;
        let queue = store!(self.r.open_table(QUEUE))?;
        let mut out = Vec::new();
        for (_, seq) in parked_keys(&parked, recipient)? {
            if let Some(g) = store!(queue.get(seq))? {
                out.push(serde_json::from_slice(g.value())?);
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
        let by_alert = store!(self.r.open_table(BY_ALERT))?;
        let finals = store!(self.r.open_table(FINAL))?;
        let closed = store!(self.r.open_table(CLOSED))?;
        let mut messages = 0;
        for item in store!(by_alert.range((alert_id, "", 0u64)..))? {
            if store!(item)?.0.value().0 != alert_id {
                break;
            }
            messages += 1;
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
