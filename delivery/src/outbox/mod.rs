//! The durable outbox: alert changes in, signed webhooks out, nothing lost, nothing
//! dropped silently.
//!
//! Store: [redb](https://www.redb.org), an embedded, pure-Rust, ACID key-value
//! store with copy-on-write B-trees; every commit is fsynced by default
//! (`Durability::Immediate`), so a committed enqueue or attempt survives kill -9
//! and power loss. It needs no server, no background compaction threads and no
//! C toolchain, and its single-writer transactions make the enqueue/cancel logic
//! simple to reason about. A Kafka topic would have needed per-message state
//! updates (attempts, cancellations) that a log does not give without a second
//! store; fjall (an LSM) fits write-heavy workloads better than this small,
//! update-heavy queue.
//!
//! The code is split by role: [`store`] (tables and indexes), `enqueue` (what the
//! egress rule queues, cancels and retracts), `worker` (the per-endpoint loop) and `http`
//! (one signed POST and what its answer means).
//!
//! Semantics:
//! - [`Outbox::enqueue`] applies the egress rule ([`schemas::sharing::decide`])
//!   for every bureau and queues one message per allowed recipient, keyed by its
//!   webhook id, so enqueueing the same change twice (e.g. after a restart)
//!   queues nothing new. Its cost depends on the alert's own messages, never on the
//!   size of the queue (indexes by recipient and by alert).
//! - One worker task per endpoint ([`Outbox::spawn`]): one dead or slow bureau
//!   never delays the others. Within an endpoint, messages of one alert go out
//!   one at a time in queue order (so versions arrive in order); different
//!   alerts go in parallel up to the endpoint's `max_in_flight`.
//! - Attempts follow the retry schedule (default: Standard Webhooks) with
//!   jitter. 5xx, timeouts, 408, 429 and 401/403 (a secret being rotated, a clock
//!   skewed) are retried; 429/502/504 throttle the endpoint, honouring
//!   `Retry-After`; consecutive failures open a circuit breaker. 410 disables the
//!   endpoint (operator alert).
//! - A message that will not be retried — another 4xx, or its retry budget spent —
//!   is *parked*: kept in the outbox, counted (`fusion_delivery_parked_messages_total`),
//!   raised as an operator alert ([`Outbox::operator_alerts`]), listed by
//!   [`Outbox::parked`] and re-queued by [`Outbox::requeue_parked`]. A parked message
//!   does not hold back later versions of its alert.
//! - Revocation: a change whose marking no longer allows a recipient cancels its
//!   queued and parked messages of that alert; a retraction cancels all of them;
//!   recipients that may already have the alert (an attempt was started) get a
//!   retraction message.
//! - An alert that expires (or is retracted) keeps its state only while some of its
//!   messages are queued or parked; then a tombstone (its last version) remains, so a
//!   replayed older change is stale, until the newest version seen is
//!   [`OutboxConfig::closed_horizon`] past it. Per-alert state is thus bounded by the open
//!   alerts plus those closed within the horizon.
//! - Every attempt and outcome is written to the delivery log, kept for
//!   [`OutboxConfig::log_retention`].

mod enqueue;
mod http;
pub mod store;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use redb::Database;
use schemas::AlertChange;
use schemas::sharing::Recipient;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::metrics::DeliveryMetrics;
use crate::subscriptions::Subscriptions;
use crate::webhook::MessageKind;
pub use store::AlertFootprint;
use store::{Retention, Snapshot, Tx, now_ms, store};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed (disk full, corrupt file, permissions).
    #[error("outbox store: {0}; check the outbox directory's disk and permissions")]
    Store(redb::Error),
    /// Another process holds the outbox.
    #[error(
        "the outbox {0} is open in another process (a running `fusion run` or `fusion deliver`); stop it first"
    )]
    InUse(PathBuf),
    /// There is no outbox in the directory.
    #[error(
        "no outbox in {0}; give the directory `fusion deliver` or `fusion run` used (--outbox)"
    )]
    Missing(PathBuf),
    /// A stored record could not be decoded (a file from another version?).
    #[error("outbox record: {0}")]
    Record(serde_json::Error),
    /// An index points at nothing (the file was damaged).
    #[error("outbox index damaged: {0}; restore the outbox directory from a backup")]
    Corrupt(&'static str),
    /// The outbox was written by a newer release.
    #[error("the outbox has layout {0}, newer than this release reads; upgrade fusion")]
    Layout(u64),
    /// The outbox directory could not be created.
    #[error("cannot create the outbox directory: {0}")]
    Io(std::io::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl From<redb::Error> for OutboxError {
    fn from(e: redb::Error) -> Self {
        Self::Store(e)
    }
}

impl From<serde_json::Error> for OutboxError {
    fn from(e: serde_json::Error) -> Self {
        Self::Record(e)
    }
}

impl From<std::io::Error> for OutboxError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Delays before each attempt: the first is normally zero (immediately).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// Delay before attempt 1, 2, …; the number of entries is the number of attempts.
    pub delays: Vec<Duration>,
    /// Relative jitter: each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
}

impl RetrySchedule {
    /// The Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    pub fn standard() -> Self {
        let s = |secs: u64| Duration::from_secs(secs);
        Self {
            delays: vec![
                s(0),
                s(5),
                s(5 * 60),
                s(30 * 60),
                s(2 * 3600),
                s(5 * 3600),
                s(10 * 3600),
                s(14 * 3600),
                s(20 * 3600),
                s(24 * 3600),
            ],
            jitter: 0.2,
        }
    }

    /// The same shape divided by `factor` (for drills and tests; the code path is the same).
    pub fn scaled_down(factor: u32) -> Self {
        let mut s = Self::standard();
        for d in &mut s.delays {
            *d /= factor.max(1);
        }
        s
    }

    /// The delay before attempt `next` (1-based), jittered; none once the schedule is exhausted.
    pub fn delay_before(&self, next: u32) -> Option<Duration> {
        let base = *self.delays.get((next as usize).checked_sub(1)?)?;
        if base.is_zero() || self.jitter <= 0.0 {
            return Some(base);
        }
        let j = self.jitter.min(1.0);
        let f = rand::rng().random_range((1.0 - j)..=(1.0 + j));
        Some(base.mul_f64(f))
    }
}

/// Outbox tuning; defaults follow the Standard Webhooks recommendations.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// When to retry.
    pub retry: RetrySchedule,
    /// Per-request timeout (15–30 s in production).
    pub request_timeout: Duration,
    /// Consecutive failures that open an endpoint's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps an endpoint quiet before one trial attempt.
    pub breaker_cooldown: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// How long delivery log entries are kept (wall clock). The log is the record of what
    /// went where; a year covers the audits we know of, and keeps the file bounded.
    pub log_retention: Duration,
    /// How long (in logical time, against the newest alert version seen) the tombstone of
    /// an expired or retracted alert is kept. A change of that alert replayed within the
    /// horizon is stale; one replayed later would be delivered again (under the same
    /// webhook id). It covers the dataflow's retention window (30 days) with a margin.
    pub closed_horizon: Duration,
    /// The exercise drill this outbox delivers for, if any: every message then carries
    /// the header `fusion-drill: <name>` (its payload says `"drill": true` too).
    pub drill: Option<String>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry: RetrySchedule::standard(),
            request_timeout: Duration::from_secs(20),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(24 * 3600),
            log_retention: Duration::from_secs(365 * 86_400),
            closed_horizon: Duration::from_secs(35 * 86_400),
            drill: None,
        }
    }
}

/// The outcome of one attempt or decision, as the delivery log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Queued for delivery.
    Queued,
    /// 2xx.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed with a status that is not retried (4xx other than 401/403/408/410/429); parked.
    Failed,
    /// The schedule is exhausted; parked.
    Exhausted,
    /// Cancelled: the marking no longer allows the recipient, or the alert was retracted.
    Cancelled,
    /// 410 Gone: the endpoint is disabled (operator alert).
    EndpointDisabled,
    /// Parked: kept, not retried until an operator re-queues it (operator alert).
    Parked,
    /// Re-queued by an operator (`fusion outbox retry`).
    Requeued,
}

impl Outcome {
    /// The snake_case name (as serialised; a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
            Outcome::Exhausted => "exhausted",
            Outcome::Cancelled => "cancelled",
            Outcome::EndpointDisabled => "endpoint_disabled",
            Outcome::Parked => "parked",
            Outcome::Requeued => "requeued",
        }
    }
}

/// Why a message was parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// A 4xx that another attempt would get again (bad request, not found, too large…).
    Refused,
    /// 401/403 until the retry budget was spent: the secret or the clocks need fixing.
    Unauthorized,
    /// 5xx, timeouts or refused connections until the retry budget was spent.
    Exhausted,
}

impl ParkReason {
    /// The snake_case name (as serialised; a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::Refused => "refused",
            ParkReason::Unauthorized => "unauthorized",
            ParkReason::Exhausted => "exhausted",
        }
    }
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Wall-clock time, ms since the epoch.
    pub at_ms: i64,
    /// The message.
    pub webhook_id: String,
    /// To whom.
    pub recipient: String,
    /// Which alert.
    pub alert_id: String,
    /// Which version.
    pub version: u64,
    /// Alert, retraction or feedback.
    pub kind: MessageKind,
    /// Attempt number (0 for queue/cancel entries).
    pub attempt: u32,
    /// What happened.
    pub outcome: Outcome,
    /// HTTP status, if a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Error or reason, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one enqueue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueReport {
    /// Alert messages queued.
    pub queued: usize,
    /// Retraction messages queued.
    pub retractions: usize,
    /// Queued messages cancelled.
    pub cancelled: usize,
    /// Bureaus the egress rule withheld the alert from.
    pub withheld: usize,
    /// The change was older than what the outbox has already seen.
    pub stale: bool,
}

/// An operator alert (an endpoint disabled, or messages parked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAlert {
    /// The endpoint.
    pub recipient: String,
    /// What happened and what to do.
    pub detail: String,
}

/// A parked message, as an operator sees it: never its body, secret or signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedMessage {
    /// To whom.
    pub recipient: String,
    /// The message (stable across attempts).
    pub webhook_id: String,
    /// Which alert (or `feedback:<partner>`).
    pub alert_id: String,
    /// Which version (logical ms).
    pub version: u64,
    /// Alert, retraction or feedback.
    pub kind: MessageKind,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last attempt, if a response came.
    pub last_status: Option<u16>,
    /// Why it was parked.
    pub reason: ParkReason,
    /// The reason in words (status, error).
    pub detail: String,
    /// When it was parked (wall clock, ms since the epoch).
    pub parked_at_ms: i64,
}

/// What [`Outbox::requeue_parked`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueReport {
    /// Parked messages queued again, with a fresh retry budget.
    pub requeued: usize,
    /// Endpoints re-enabled (they had answered 410 Gone).
    pub enabled: Vec<String>,
}

/// Where a worker sends: a bureau's webhook or a partner's feedback endpoint.
struct Endpoint {
    id: String,
    url: String,
    secret: crate::webhook::Secret,
    max_in_flight: usize,
    /// The bureau as the policy sees it (re-checked before every alert attempt); none for partners.
    recipient: Option<Recipient>,
}

struct Inner {
    db: Database,
    subs: Subscriptions,
    endpoints: Vec<Endpoint>,
    config: OutboxConfig,
    client: reqwest::Client,
    wake: BTreeMap<String, Arc<Notify>>,
    metrics: DeliveryMetrics,
}

impl Inner {
    fn retention(&self) -> Retention {
        retention(&self.config)
    }
}

fn retention(config: &OutboxConfig) -> Retention {
    Retention {
        log_ms: i64::try_from(config.log_retention.as_millis()).unwrap_or(i64::MAX),
        closed_ms: u64::try_from(config.closed_horizon.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Opens the store in `dir`, creating it if `create`.
fn open_db(dir: &Path, create: bool, config: &OutboxConfig) -> Result<Database, OutboxError> {
    let path = dir.join("outbox.redb");
    if create {
        std::fs::create_dir_all(dir)?;
    } else if !path.exists() {
        return Err(OutboxError::Missing(dir.to_path_buf()));
    }
    let db = Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OutboxError::InUse(dir.to_path_buf()),
        e => OutboxError::Store(e.into()),
    })?;
    store::init(&db, retention(config))?;
    Ok(db)
}

/// The durable outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` for these subscriptions.
    pub fn open(
        dir: &Path,
        subs: Subscriptions,
        config: OutboxConfig,
    ) -> Result<Self, OutboxError> {
        let db = open_db(dir, true, &config)?;
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OutboxError::Client(e.to_string()))?;
        let endpoints: Vec<Endpoint> = subs
            .bureaus
            .iter()
            .map(|b| Endpoint {
                id: b.recipient.id.clone(),
                url: b.endpoint.clone(),
                secret: b.secret.clone(),
                max_in_flight: b.max_in_flight,
                recipient: Some(b.recipient.clone()),
            })
            .chain(subs.partners.iter().map(|p| Endpoint {
                id: p.id.clone(),
                url: p.feedback_endpoint.clone(),
                secret: p.secret.clone(),
                max_in_flight: 1,
                recipient: None,
            }))
            .collect();
        let wake = endpoints
            .iter()
            .map(|e| (e.id.clone(), Arc::new(Notify::new())))
            .collect();
        let metrics = DeliveryMetrics::new();
        let parked: u64 = Snapshot::begin(&db)?
            .counts()?
            .iter()
            .map(|(_, _, p)| p)
            .sum();
        metrics
            .parked_messages
            .set(i64::try_from(parked).unwrap_or(i64::MAX));
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                subs,
                endpoints,
                config,
                client,
                wake,
                metrics,
            }),
        })
    }

    /// The subscriptions this outbox delivers to.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.inner.subs
    }

    /// The outbox's metrics (serve them beside the others on `/metrics`).
    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.inner.metrics
    }

    /// Applies one alert change durably: queues what the egress rule allows,
    /// cancels what it no longer allows, queues retractions; an expiry drops the
    /// alert's state once nothing of it is left to send. Returns once committed.
    pub fn enqueue(&self, change: &AlertChange) -> Result<EnqueueReport, OutboxError> {
        Ok(self
            .enqueue_batch(std::slice::from_ref(change))?
            .pop()
            .unwrap_or_default())
    }

    /// Applies several alert changes, in order, in one durable transaction (one fsync):
    /// the same as [`Outbox::enqueue`] on each. Returns one report per change.
    pub fn enqueue_batch(
        &self,
        changes: &[AlertChange],
    ) -> Result<Vec<EnqueueReport>, OutboxError> {
        let inner = &*self.inner;
        let w = store!(inner.db.begin_write())?;
        let mut reports = Vec::with_capacity(changes.len());
        {
            let mut tx = Tx::open(&w, inner.retention())?;
            for change in changes {
                reports.push(enqueue::apply(&mut tx, &inner.subs, change)?);
            }
        }
        store!(w.commit())?;
        if reports.iter().any(|r| r.queued + r.retractions > 0) {
            self.wake_all();
        }
        Ok(reports)
    }

    fn wake_all(&self) {
        for n in self.inner.wake.values() {
            n.notify_one();
        }
    }

    /// Queues every partner's sighting feedback for period `period` (logical ms).
    ///
    /// Idempotent per (partner, period): the webhook id is derived from both.
    /// Returns the number of bundles queued. Call it periodically with the
    /// [`crate::feedback::Sightings`] fed by the same alert changes.
    pub fn enqueue_feedback(
        &self,
        sightings: &crate::feedback::Sightings,
        period: u64,
    ) -> Result<usize, OutboxError> {
        let inner = &*self.inner;
        let w = store!(inner.db.begin_write())?;
        let n;
        {
            let mut tx = Tx::open(&w, inner.retention())?;
            let drill = inner.config.drill.is_some();
            n = enqueue::feedback(&mut tx, &inner.subs, sightings, period, drill)?;
        }
        store!(w.commit())?;
        if n > 0 {
            self.wake_all();
        }
        Ok(n)
    }

    /// Messages still queued (waiting or retrying), excluding parked ones and those of
    /// disabled or unsubscribed endpoints. Costs one read per recipient, not a scan.
    pub fn pending(&self) -> Result<usize, OutboxError> {
        let snap = Snapshot::begin(&self.inner.db)?;
        let mut n = 0;
        for (recipient, queued, _) in snap.counts()? {
            // Messages for endpoints no longer subscribed wait for the endpoint to return.
            let known = self.inner.endpoints.iter().any(|e| e.id == recipient);
            if known && !snap.endpoint_disabled(&recipient)? {
                n += queued as usize;
            }
        }
        Ok(n)
    }

    /// Messages parked, per recipient (recipients with none are left out).
    pub fn parked_counts(&self) -> Result<BTreeMap<String, u64>, OutboxError> {
        Ok(Snapshot::begin(&self.inner.db)?
            .counts()?
            .into_iter()
            .filter(|(_, _, p)| *p > 0)
            .map(|(r, _, p)| (r, p))
            .collect())
    }

    /// The whole delivery log (within its retention), oldest first.
    pub fn log(&self) -> Result<Vec<LogEntry>, OutboxError> {
        self.log_since(0)
    }

    /// The position the next delivery log entry will take (see [`Outbox::log_since`]).
    pub fn log_position(&self) -> Result<u64, OutboxError> {
        Snapshot::begin(&self.inner.db)?.log_position()
    }

    /// The delivery log from a position on (e.g. what one run did), oldest first.
    pub fn log_since(&self, position: u64) -> Result<Vec<LogEntry>, OutboxError> {
        Snapshot::begin(&self.inner.db)?.log(position)
    }

    /// Endpoints disabled (410 Gone) and recipients with parked messages.
    pub fn operator_alerts(&self) -> Result<Vec<OperatorAlert>, OutboxError> {
        operator_alerts(&self.inner.db)
    }

    /// Parked messages, of one recipient or all, oldest first per recipient.
    pub fn parked(&self, recipient: Option<&str>) -> Result<Vec<ParkedMessage>, OutboxError> {
        parked(&self.inner.db, recipient)
    }

    /// Re-queues parked messages (of one recipient or all) with a fresh retry budget and
    /// re-enables disabled endpoints; `by` (who asked) goes into the delivery log.
    pub fn requeue_parked(
        &self,
        recipient: Option<&str>,
        by: &str,
    ) -> Result<RequeueReport, OutboxError> {
        let report = requeue(&self.inner.db, recipient, by, self.inner.retention())?;
        self.inner
            .metrics
            .parked_messages
            .sub(i64::try_from(report.requeued).unwrap_or(i64::MAX));
        self.wake_all();
        Ok(report)
    }

    /// What the outbox keeps about one alert.
    pub fn alert_footprint(&self, alert_id: &str) -> Result<AlertFootprint, OutboxError> {
        Snapshot::begin(&self.inner.db)?.alert_footprint(alert_id)
    }

    /// Alerts whose revocation state is kept, and tombstones of closed alerts.
    pub fn alert_counts(&self) -> Result<(u64, u64), OutboxError> {
        Snapshot::begin(&self.inner.db)?.alert_counts()
    }

    /// Starts one delivery worker per endpoint (bureaus and partners); they stop when `shutdown` becomes true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for (i, e) in self.inner.endpoints.iter().enumerate() {
            let worker = worker::Worker {
                outbox: self.clone(),
                endpoint: i,
                wake: self.inner.wake.get(&e.id).cloned().unwrap_or_default(),
                shutdown: shutdown.clone(),
            };
            set.spawn(worker.run());
        }
        set
    }
}

/// An operator's access to an outbox without its subscriptions: list and re-queue parked
/// messages, re-enable endpoints (`fusion outbox`). The outbox must not be open elsewhere.
pub struct OutboxAdmin {
    db: Database,
    config: OutboxConfig,
}

impl OutboxAdmin {
    /// Opens the existing outbox in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        let config = OutboxConfig::default();
        Ok(Self {
            db: open_db(dir, false, &config)?,
            config,
        })
    }

    /// Parked messages, of one recipient or all.
    pub fn parked(&self, recipient: Option<&str>) -> Result<Vec<ParkedMessage>, OutboxError> {
        parked(&self.db, recipient)
    }

    /// Endpoints disabled (410 Gone) and recipients with parked messages.
    pub fn operator_alerts(&self) -> Result<Vec<OperatorAlert>, OutboxError> {
        operator_alerts(&self.db)
    }

    /// Endpoints disabled by a 410 Gone: (recipient, why).
    pub fn disabled_endpoints(&self) -> Result<Vec<(String, String)>, OutboxError> {
        Snapshot::begin(&self.db)?.disabled_endpoints()
    }

    /// See [`Outbox::requeue_parked`].
    pub fn requeue_parked(
        &self,
        recipient: Option<&str>,
        by: &str,
    ) -> Result<RequeueReport, OutboxError> {
        requeue(&self.db, recipient, by, retention(&self.config))
    }
}

fn parked(db: &Database, recipient: Option<&str>) -> Result<Vec<ParkedMessage>, OutboxError> {
    Ok(Snapshot::begin(db)?
        .parked(recipient)?
        .into_iter()
        .filter_map(|q| {
            let p = q.parked?;
            Some(ParkedMessage {
                recipient: q.recipient,
                webhook_id: q.webhook_id,
                alert_id: q.alert_id,
                version: q.version,
                kind: q.kind,
                attempts: q.attempts,
                last_status: q.last_status,
                reason: p.reason,
                detail: p.detail,
                parked_at_ms: p.at_ms,
            })
        })
        .collect())
}

fn operator_alerts(db: &Database) -> Result<Vec<OperatorAlert>, OutboxError> {
    let snap = Snapshot::begin(db)?;
    let mut out: Vec<OperatorAlert> = snap
        .disabled_endpoints()?
        .into_iter()
        .map(|(recipient, detail)| OperatorAlert { recipient, detail })
        .collect();
    // One alert per recipient, not per message: a bureau down for a day parks thousands.
    for (recipient, _, parked) in snap.counts()? {
        if parked > 0 {
            out.push(OperatorAlert {
                detail: format!(
                    "{parked} message(s) to {recipient} parked (refused or out of retries); \
                     see `fusion outbox list`, fix the cause, then `fusion outbox retry --recipient {recipient}`"
                ),
                recipient,
            });
        }
    }
    Ok(out)
}

fn requeue(
    db: &Database,
    recipient: Option<&str>,
    by: &str,
    retention: Retention,
) -> Result<RequeueReport, OutboxError> {
    let w = store!(db.begin_write())?;
    let mut report = RequeueReport::default();
    {
        let mut tx = Tx::open(&w, retention)?;
        let now = now_ms();
        for (seq, q) in tx.parked(recipient)? {
            let q = tx.unpark(seq, q, now)?;
            let mut e = worker::log_for(&q, 0, Outcome::Requeued);
            e.detail = Some(format!("re-queued by {by}"));
            tx.append_log(&e)?;
            report.requeued += 1;
        }
        for (r, _) in tx.disabled_endpoints()? {
            if recipient.is_none_or(|want| want == r) {
                tx.set_endpoint(&r, &store::EndpointState::default())?;
                tracing::info!(endpoint = %r, by, "endpoint re-enabled");
                report.enabled.push(r);
            }
        }
    }
    store!(w.commit())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_the_standard_webhooks_one() {
        let s = RetrySchedule::standard();
        let secs: Vec<u64> = s.delays.iter().map(Duration::as_secs).collect();
        assert_eq!(
            secs,
            [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        );
        assert_eq!(OutboxConfig::default().retry, s);
        // Attempt 1 is immediate; jitter stays within ±20 %; after attempt 10, give up.
        assert_eq!(s.delay_before(1), Some(Duration::ZERO));
        for _ in 0..100 {
            let d = s.delay_before(3).unwrap().as_secs_f64();
            assert!((240.0..=360.0).contains(&d), "{d}");
        }
        assert_eq!(s.delay_before(11), None);
        let timeout = OutboxConfig::default().request_timeout.as_secs();
        assert!((15..=30).contains(&timeout));
    }
}
