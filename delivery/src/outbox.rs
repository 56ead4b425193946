//! The durable outbox: alert changes in, signed webhooks out, nothing lost.
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
//! Semantics:
//! - [`Outbox::enqueue`] applies the egress rule ([`schemas::sharing::decide`])
//!   for every bureau and queues one message per allowed recipient, keyed by its
//!   webhook id, so enqueueing the same change twice (e.g. after a restart)
//!   queues nothing new.
//! - One worker task per endpoint ([`Outbox::spawn`]): one dead or slow bureau
//!   never delays the others. Within an endpoint, messages of one alert go out
//!   one at a time in queue order (so versions arrive in order); different
//!   alerts go in parallel up to the endpoint's `max_in_flight`.
//! - Attempts follow the retry schedule (default: Standard Webhooks) with
//!   jitter; 4xx other than 408/429 is final; 410 disables the endpoint and
//!   raises an operator alert; 429/502/504 throttle the endpoint, honouring
//!   `Retry-After`; consecutive failures open a circuit breaker.
//! - Revocation: a change whose marking no longer allows a recipient cancels its
//!   queued messages of that alert; a retraction cancels all of them; recipients
//!   that may already have the alert (an attempt was started) get a retraction
//!   message.
//! - Every attempt and outcome is written to the delivery log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use schemas::sharing::{Decision, Recipient, decide, marking_allows};
use schemas::{AlertChange, ChangeKind, Marking};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::subscriptions::Subscriptions;
use crate::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MessageKind, webhook_id};

const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const FINAL: TableDefinition<&str, &[u8]> = TableDefinition::new("final");
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed (disk full, corrupt file, permissions).
    #[error("outbox store: {0}; check the outbox directory's disk and permissions")]
    Store(#[from] redb::Error),
    /// A stored record could not be decoded (a file from another version?).
    #[error("outbox record: {0}")]
    Record(#[from] serde_json::Error),
    /// The outbox directory could not be created.
    #[error("cannot create the outbox directory: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

macro_rules! store {
    ($e:expr) => {
        $e.map_err(|e| OutboxError::Store(e.into()))
    };
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
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry: RetrySchedule::standard(),
            request_timeout: Duration::from_secs(20),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    webhook_id: String,
    recipient: String,
    alert_id: String,
    version: u64,
    kind: MessageKind,
    body: String,
    attempts: u32,
    next_attempt_ms: i64,
}

/// What the outbox knows about an alert, for revocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AlertState {
    version: u64,
    marking: Option<Marking>,
    /// The contributing sources' markings of the latest version (see [`schemas::Alert::markings`]).
    #[serde(default)]
    contributing: Vec<Marking>,
    retracted: bool,
    /// Recipients that may have some version (an attempt was started).
    reached: BTreeSet<String>,
    /// Recipients sent a retraction.
    retracted_to: BTreeSet<String>,
}

/// An endpoint's persistent state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EndpointState {
    disabled: Option<String>,
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
    /// Failed with a status that is not retried (4xx other than 408/429).
    Failed,
    /// The schedule is exhausted (operator alert).
    Exhausted,
    /// Cancelled: the marking no longer allows the recipient, or the alert was retracted.
    Cancelled,
    /// 410 Gone: the endpoint is disabled (operator alert).
    EndpointDisabled,
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

/// An operator alert (an endpoint disabled, or a message whose retries are exhausted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAlert {
    /// The endpoint.
    pub recipient: String,
    /// What happened.
    pub detail: String,
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
}

/// The durable outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn next_seq(meta: &mut redb::Table<&str, u64>, name: &str) -> Result<u64, OutboxError> {
    let n = store!(meta.get(name))?.map(|g| g.value()).unwrap_or(0);
    store!(meta.insert(name, n + 1))?;
    Ok(n)
}

fn append_log(
    log: &mut redb::Table<u64, &[u8]>,
    meta: &mut redb::Table<&str, u64>,
    entry: &LogEntry,
) -> Result<(), OutboxError> {
    let seq = next_seq(meta, "log_seq")?;
    let bytes = serde_json::to_vec(entry)?;
    store!(log.insert(seq, bytes.as_slice()))?;
    Ok(())
}

fn log_for(q: &Queued, attempt: u32, outcome: Outcome) -> LogEntry {
    LogEntry {
        at_ms: now_ms(),
        webhook_id: q.webhook_id.clone(),
        recipient: q.recipient.clone(),
        alert_id: q.alert_id.clone(),
        version: q.version,
        kind: q.kind,
        attempt,
        outcome,
        status: None,
        detail: None,
    }
}

/// The body of a webhook message: `{type, timestamp, data}` as Standard Webhooks recommends.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: schemas::Timestamp,
    data: T,
}

#[derive(Serialize)]
struct RetractionData<'a> {
    id: &'a str,
    version: u64,
    reason: &'a str,
}

fn logical_time(version: u64) -> schemas::Timestamp {
    schemas::Timestamp::from_millisecond(i64::try_from(version).unwrap_or(i64::MAX))
        .unwrap_or(schemas::Timestamp::UNIX_EPOCH)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` for these subscriptions.
    pub fn open(
        dir: &Path,
        subs: Subscriptions,
        config: OutboxConfig,
    ) -> Result<Self, OutboxError> {
        std::fs::create_dir_all(dir)?;
        let db = store!(Database::create(dir.join("outbox.redb")))?;
        {
            let w = store!(db.begin_write())?;
            store!(w.open_table(QUEUE))?;
            store!(w.open_table(LOG))?;
            store!(w.open_table(FINAL))?;
            store!(w.open_table(ALERTS))?;
            store!(w.open_table(ENDPOINTS))?;
            store!(w.open_table(META))?;
            store!(w.commit())?;
        }
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
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                subs,
                endpoints,
                config,
                client,
                wake,
            }),
        })
    }

    /// The subscriptions this outbox delivers to.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.inner.subs
    }

    /// Applies one alert change durably: queues what the egress rule allows,
    /// cancels what it no longer allows, queues retractions. Returns once committed.
    pub fn enqueue(&self, change: &AlertChange) -> Result<EnqueueReport, OutboxError> {
        let inner = &*self.inner;
        let alert = &change.alert;
        let mut report = EnqueueReport::default();
        if change.change == ChangeKind::Expired {
            // An expiry withdraws nothing: recipients keep the last version they got.
            return Ok(report);
        }
        let w = store!(inner.db.begin_write())?;
        {
            let mut queue = store!(w.open_table(QUEUE))?;
            let finals = store!(w.open_table(FINAL))?;
            let mut alerts = store!(w.open_table(ALERTS))?;
            let mut log = store!(w.open_table(LOG))?;
            let mut meta = store!(w.open_table(META))?;
            let mut state: AlertState = match store!(alerts.get(alert.id.as_str()))? {
                Some(g) => serde_json::from_slice(g.value())?,
                None => AlertState::default(),
            };
            if change.version < state.version
                || (state.retracted
                    && change.version == state.version
                    && change.change != ChangeKind::Retracted)
            {
                report.stale = true;
                return Ok(report);
            }
            state.version = change.version;
            state.marking = Some(alert.marking.clone());
            state.contributing = alert.markings().skip(1).cloned().collect();
            state.retracted = change.change == ChangeKind::Retracted;

            // Everything already queued, by webhook id, and this alert's queued messages.
            let mut queued_ids = BTreeSet::new();
            let mut of_alert: Vec<(u64, Queued)> = Vec::new();
            for item in store!(queue.iter())? {
                let (k, v) = store!(item)?;
                let q: Queued = serde_json::from_slice(v.value())?;
                queued_ids.insert(q.webhook_id.clone());
                if q.alert_id == alert.id && q.kind == MessageKind::Alert {
                    of_alert.push((k.value(), q));
                }
            }
            let known = |id: &str| -> Result<bool, OutboxError> {
                Ok(queued_ids.contains(id) || store!(finals.get(id))?.is_some())
            };

            // Cancel what is no longer allowed.
            for (k, q) in of_alert {
                let why = if state.retracted {
                    Some("the alert was retracted".to_string())
                } else {
                    inner
                        .subs
                        .bureau(&q.recipient)
                        .and_then(|b| marking_allows(alert.markings(), &b.recipient).err())
                        .map(|w| format!("the marking changed: {w}"))
                };
                if let Some(why) = why {
                    store!(queue.remove(k))?;
                    let mut e = log_for(&q, 0, Outcome::Cancelled);
                    e.detail = Some(why);
                    append_log(&mut log, &mut meta, &e)?;
                    report.cancelled += 1;
                }
            }

            let mut to_retract: Vec<&Recipient> = Vec::new();
            for b in &inner.subs.bureaus {
                let r = &b.recipient;
                if state.retracted {
                    if state.reached.contains(&r.id) {
                        to_retract.push(r);
                    }
                    continue;
                }
                match decide(alert, r, &inner.subs.policy) {
                    Decision::Deliver(view) => {
                        let id = webhook_id(&alert.id, change.version, &r.id, MessageKind::Alert);
                        if known(&id)? {
                            continue;
                        }
                        let kind = match change.change {
                            ChangeKind::Opened => "alert.opened",
                            _ => "alert.updated",
                        };
                        let body = serde_json::to_string(&Envelope {
                            kind,
                            timestamp: logical_time(change.version),
                            data: &view,
                        })?;
                        let q = Queued {
                            webhook_id: id,
                            recipient: r.id.clone(),
                            alert_id: alert.id.clone(),
                            version: change.version,
                            kind: MessageKind::Alert,
                            body,
                            attempts: 0,
                            next_attempt_ms: now_ms(),
                        };
                        let seq = next_seq(&mut meta, "queue_seq")?;
                        store!(queue.insert(seq, serde_json::to_vec(&q)?.as_slice()))?;
                        append_log(&mut log, &mut meta, &log_for(&q, 0, Outcome::Queued))?;
                        report.queued += 1;
                    }
                    Decision::Withhold(_) => {
                        report.withheld += 1;
                        if state.reached.contains(&r.id)
                            && marking_allows(alert.markings(), r).is_err()
                        {
                            to_retract.push(r);
                        }
                    }
                }
            }
            for r in to_retract {
                if state.retracted_to.contains(&r.id) {
                    continue;
                }
                let id = webhook_id(&alert.id, change.version, &r.id, MessageKind::Retraction);
                if known(&id)? {
                    continue;
                }
                let reason = if state.retracted {
                    "the alert was withdrawn (e.g. its indicator was revoked by the owner)"
                } else {
                    "the owner no longer allows this recipient to hold the alert; delete it"
                };
                let body = serde_json::to_string(&Envelope {
                    kind: "alert.retracted",
                    timestamp: logical_time(change.version),
                    data: RetractionData {
                        id: &alert.id,
                        version: change.version,
                        reason,
                    },
                })?;
                let q = Queued {
                    webhook_id: id,
                    recipient: r.id.clone(),
                    alert_id: alert.id.clone(),
                    version: change.version,
                    kind: MessageKind::Retraction,
                    body,
                    attempts: 0,
                    next_attempt_ms: now_ms(),
                };
                let seq = next_seq(&mut meta, "queue_seq")?;
                store!(queue.insert(seq, serde_json::to_vec(&q)?.as_slice()))?;
                append_log(&mut log, &mut meta, &log_for(&q, 0, Outcome::Queued))?;
                state.retracted_to.insert(r.id.clone());
                report.retractions += 1;
            }
            store!(alerts.insert(alert.id.as_str(), serde_json::to_vec(&state)?.as_slice()))?;
        }
        store!(w.commit())?;
        for n in inner.wake.values() {
            n.notify_one();
        }
        Ok(report)
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
        let mut n = 0;
        let w = store!(inner.db.begin_write())?;
        {
            let mut queue = store!(w.open_table(QUEUE))?;
            let finals = store!(w.open_table(FINAL))?;
            let mut log = store!(w.open_table(LOG))?;
            let mut meta = store!(w.open_table(META))?;
            let mut queued_ids = BTreeSet::new();
            for item in store!(queue.iter())? {
                let (_, v) = store!(item)?;
                queued_ids.insert(serde_json::from_slice::<Queued>(v.value())?.webhook_id);
            }
            for p in &inner.subs.partners {
                let Some(bundle) = sightings.bundle(p, &inner.subs.policy, period) else {
                    continue;
                };
                let id = webhook_id("feedback", period, &p.id, MessageKind::Feedback);
                if queued_ids.contains(&id) || store!(finals.get(id.as_str()))?.is_some() {
                    continue;
                }
                let data: serde_json::Value = serde_json::from_str(&bundle)?;
                let body = serde_json::to_string(&Envelope {
                    kind: "sightings.feedback",
                    timestamp: logical_time(period),
                    data,
                })?;
                let q = Queued {
                    webhook_id: id,
                    recipient: p.id.clone(),
                    alert_id: format!("feedback:{}", p.id),
                    version: period,
                    kind: MessageKind::Feedback,
                    body,
                    attempts: 0,
                    next_attempt_ms: now_ms(),
                };
                let seq = next_seq(&mut meta, "queue_seq")?;
                store!(queue.insert(seq, serde_json::to_vec(&q)?.as_slice()))?;
                append_log(&mut log, &mut meta, &log_for(&q, 0, Outcome::Queued))?;
                n += 1;
            }
        }
        store!(w.commit())?;
        for wake in inner.wake.values() {
            wake.notify_one();
        }
        Ok(n)
    }

    /// Messages still queued (waiting or retrying), excluding those of disabled or unsubscribed endpoints.
    pub fn pending(&self) -> Result<usize, OutboxError> {
        let r = store!(self.inner.db.begin_read())?;
        let queue = store!(r.open_table(QUEUE))?;
        let endpoints = store!(r.open_table(ENDPOINTS))?;
        let mut n = 0;
        for item in store!(queue.iter())? {
            let (_, v) = store!(item)?;
            let q: Queued = serde_json::from_slice(v.value())?;
            let disabled = match store!(endpoints.get(q.recipient.as_str()))? {
                Some(g) => serde_json::from_slice::<EndpointState>(g.value())?
                    .disabled
                    .is_some(),
                None => false,
            };
            // Messages for endpoints no longer subscribed wait for the endpoint to return.
            let known = self.inner.endpoints.iter().any(|e| e.id == q.recipient);
            if !disabled && known {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The whole delivery log, oldest first.
    pub fn log(&self) -> Result<Vec<LogEntry>, OutboxError> {
        let r = store!(self.inner.db.begin_read())?;
        let log = store!(r.open_table(LOG))?;
        let mut out = Vec::new();
        for item in store!(log.iter())? {
            let (_, v) = store!(item)?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// Endpoints disabled (410 Gone) and messages given up on.
    pub fn operator_alerts(&self) -> Result<Vec<OperatorAlert>, OutboxError> {
        let mut out = Vec::new();
        let r = store!(self.inner.db.begin_read())?;
        let endpoints = store!(r.open_table(ENDPOINTS))?;
        for item in store!(endpoints.iter())? {
            let (k, v) = store!(item)?;
            let s: EndpointState = serde_json::from_slice(v.value())?;
            if let Some(d) = s.disabled {
                out.push(OperatorAlert {
                    recipient: k.value().to_string(),
                    detail: d,
                });
            }
        }
        for e in self.log()? {
            if e.outcome == Outcome::Exhausted {
                out.push(OperatorAlert {
                    recipient: e.recipient,
                    detail: format!("retries exhausted for {}", e.webhook_id),
                });
            }
        }
        Ok(out)
    }

    /// Starts one delivery worker per endpoint (bureaus and partners); they stop when `shutdown` becomes true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for (i, e) in self.inner.endpoints.iter().enumerate() {
            let worker = Worker {
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

/// The delivery loop of one endpoint.
struct Worker {
    outbox: Outbox,
    endpoint: usize,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

/// What one HTTP attempt came back with.
enum Response {
    Status(u16, Option<Duration>),
    Error(String),
}

struct Attempted {
    seq: u64,
    q: Queued,
    response: Response,
}

impl Worker {
    fn endpoint(&self) -> &Endpoint {
        &self.outbox.inner.endpoints[self.endpoint]
    }

    async fn run(mut self) {
        let id = self.endpoint().id.clone();
        let max_in_flight = self.endpoint().max_in_flight;
        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        let mut tasks: JoinSet<Attempted> = JoinSet::new();
        let mut failures: u32 = 0;
        let mut quiet_until_ms: i64 = 0;
        let mut half_open = false;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let now = now_ms();
            let next_due: Option<i64>;
            let mut disabled = false;
            // A half-open breaker lets one trial attempt through at a time.
            let trial_busy = half_open && !in_flight.is_empty();
            if now >= quiet_until_ms && !trial_busy {
                let room = if half_open { 1 } else { max_in_flight };
                match self.pick(&in_flight, room.saturating_sub(in_flight.len()), now) {
                    Ok((picked, due, dis)) => {
                        next_due = due;
                        disabled = dis;
                        for (seq, q) in picked {
                            in_flight.insert(q.alert_id.clone());
                            let outbox = self.outbox.clone();
                            let endpoint = self.endpoint;
                            tasks.spawn(async move {
                                let b = &outbox.inner.endpoints[endpoint];
                                let response = send(&outbox.inner.client, b, &q).await;
                                Attempted { seq, q, response }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::error!(endpoint = %id, error = %e, "outbox read failed; retrying in 1 s");
                        next_due = Some(now + 1000);
                    }
                }
            } else {
                next_due = Some(quiet_until_ms.max(now + 10));
            }
            if disabled && in_flight.is_empty() {
                tracing::warn!(endpoint = %id, "endpoint disabled; its worker stops");
                break;
            }
            let sleep_ms = next_due
                .map(|d| (d - now).clamp(1, 60_000))
                .unwrap_or(60_000);
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok(done) = done else { continue };
                    in_flight.remove(&done.q.alert_id);
                    match self.finish(done) {
                        Ok(Some(AttemptResult::Ok)) => { failures = 0; half_open = false; }
                        Ok(Some(AttemptResult::Failed { throttle_ms })) => {
                            failures += 1;
                            let now = now_ms();
                            if let Some(t) = throttle_ms {
                                quiet_until_ms = quiet_until_ms.max(now + t);
                            }
                            if failures >= self.outbox.inner.config.breaker_failures {
                                let cool = self.outbox.inner.config.breaker_cooldown.as_millis() as i64;
                                quiet_until_ms = quiet_until_ms.max(now + cool);
                                half_open = true;
                                tracing::warn!(endpoint = %id, failures, "circuit breaker open");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(endpoint = %id, error = %e, "cannot record a delivery attempt"),
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
                _ = self.shutdown.changed() => {}
            }
        }
        tasks.abort_all();
    }

    /// Picks due messages (at most `room`, one per alert, oldest first) and marks their attempt as started.
    fn pick(
        &self,
        in_flight: &BTreeSet<String>,
        room: usize,
        now: i64,
    ) -> Result<(Vec<(u64, Queued)>, Option<i64>, bool), OutboxError> {
        let inner = &*self.outbox.inner;
        let ep = self.endpoint();
        let w = store!(inner.db.begin_write())?;
        let mut picked = Vec::new();
        let mut next_due: Option<i64> = None;
        let disabled;
        {
            let mut queue = store!(w.open_table(QUEUE))?;
            let mut alerts = store!(w.open_table(ALERTS))?;
            let mut log = store!(w.open_table(LOG))?;
            let mut meta = store!(w.open_table(META))?;
            let endpoints = store!(w.open_table(ENDPOINTS))?;
            disabled = match store!(endpoints.get(ep.id.as_str()))? {
                Some(g) => serde_json::from_slice::<EndpointState>(g.value())?
                    .disabled
                    .is_some(),
                None => false,
            };
            if disabled {
                return Ok((picked, None, true));
            }
            let mut seen_alerts: BTreeSet<String> = BTreeSet::new();
            let mut mine = Vec::new();
            for item in store!(queue.iter())? {
                let (k, v) = store!(item)?;
                let q: Queued = serde_json::from_slice(v.value())?;
                if q.recipient == ep.id {
                    mine.push((k.value(), q));
                }
            }
            for (seq, mut q) in mine {
                // Only the oldest queued message of each alert may go: versions stay in order.
                if !seen_alerts.insert(q.alert_id.clone()) || in_flight.contains(&q.alert_id) {
                    continue;
                }
                if q.next_attempt_ms > now {
                    next_due =
                        Some(next_due.map_or(q.next_attempt_ms, |d| d.min(q.next_attempt_ms)));
                    continue;
                }
                if picked.len() >= room {
                    next_due = Some(now);
                    continue;
                }
                let mut state: AlertState = match store!(alerts.get(q.alert_id.as_str()))? {
                    Some(g) => serde_json::from_slice(g.value())?,
                    None => AlertState::default(),
                };
                // Re-check the egress rule against the latest marking before every attempt.
                if let (MessageKind::Alert, Some(r)) = (q.kind, ep.recipient.as_ref()) {
                    let refused = if state.retracted {
                        Some("the alert was retracted".to_string())
                    } else {
                        state
                            .marking
                            .as_ref()
                            .and_then(|m| {
                                marking_allows(std::iter::once(m).chain(&state.contributing), r)
                                    .err()
                            })
                            .map(|w| format!("the marking changed: {w}"))
                    };
                    if let Some(why) = refused {
                        store!(queue.remove(seq))?;
                        let mut e = log_for(&q, q.attempts, Outcome::Cancelled);
                        e.detail = Some(why);
                        append_log(&mut log, &mut meta, &e)?;
                        continue;
                    }
                    state.reached.insert(r.id.clone());
                    store!(
                        alerts.insert(q.alert_id.as_str(), serde_json::to_vec(&state)?.as_slice())
                    )?;
                }
                q.attempts += 1;
                store!(queue.insert(seq, serde_json::to_vec(&q)?.as_slice()))?;
                picked.push((seq, q));
            }
        }
        store!(w.commit())?;
        Ok((picked, next_due, disabled))
    }

    /// Records an attempt's outcome and schedules what follows.
    fn finish(&self, done: Attempted) -> Result<Option<AttemptResult>, OutboxError> {
        let inner = &*self.outbox.inner;
        let Attempted {
            seq,
            mut q,
            response,
        } = done;
        let w = store!(inner.db.begin_write())?;
        let result;
        {
            let mut queue = store!(w.open_table(QUEUE))?;
            let mut finals = store!(w.open_table(FINAL))?;
            let mut log = store!(w.open_table(LOG))?;
            let mut meta = store!(w.open_table(META))?;
            let mut endpoints = store!(w.open_table(ENDPOINTS))?;
            let still_queued = store!(queue.get(seq))?.is_some();
            let (status, retry_after, error) = match &response {
                Response::Status(s, ra) => (Some(*s), *ra, None),
                Response::Error(e) => (None, None, Some(e.clone())),
            };
            let mut entry = log_for(&q, q.attempts, Outcome::Delivered);
            entry.status = status;
            entry.detail = error.clone();
            let mut finalise = |outcome: Outcome,
                                queue: &mut redb::Table<u64, &[u8]>|
             -> Result<(), OutboxError> {
                store!(queue.remove(seq))?;
                let rec = serde_json::to_vec(&(outcome, q.attempts, now_ms()))?;
                store!(finals.insert(q.webhook_id.as_str(), rec.as_slice()))?;
                Ok(())
            };
            match status {
                Some(s) if (200..300).contains(&s) => {
                    entry.outcome = Outcome::Delivered;
                    if still_queued {
                        finalise(Outcome::Delivered, &mut queue)?;
                    }
                    result = Some(AttemptResult::Ok);
                }
                Some(410) => {
                    entry.outcome = Outcome::EndpointDisabled;
                    let detail = format!(
                        "endpoint {} answered 410 Gone; disabled until an operator re-enables it",
                        q.recipient
                    );
                    tracing::error!(endpoint = %q.recipient, "endpoint answered 410 Gone and is disabled (operator alert)");
                    let st = EndpointState {
                        disabled: Some(detail.clone()),
                    };
                    store!(
                        endpoints.insert(q.recipient.as_str(), serde_json::to_vec(&st)?.as_slice())
                    )?;
                    entry.detail = Some(detail);
                    result = None;
                }
                Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => {
                    entry.outcome = Outcome::Failed;
                    entry.detail = Some(format!("HTTP {s} is not retried"));
                    if still_queued {
                        finalise(Outcome::Failed, &mut queue)?;
                    }
                    result = None;
                }
                _ => {
                    let throttle = matches!(status, Some(429 | 502 | 504));
                    let next = inner.config.retry.delay_before(q.attempts + 1);
                    let mut throttle_ms = None;
                    match next {
                        Some(delay) => {
                            let mut delay = delay;
                            if let Some(ra) = retry_after {
                                delay = delay.max(ra.min(inner.config.max_retry_after));
                            }
                            if throttle {
                                throttle_ms = Some(delay.as_millis() as i64);
                            }
                            entry.outcome = Outcome::Retry;
                            q.next_attempt_ms = now_ms() + delay.as_millis() as i64;
                            if still_queued {
                                store!(queue.insert(seq, serde_json::to_vec(&q)?.as_slice()))?;
                            }
                        }
                        None => {
                            entry.outcome = Outcome::Exhausted;
                            tracing::error!(endpoint = %q.recipient, webhook_id = %q.webhook_id, "retries exhausted (operator alert)");
                            if still_queued {
                                finalise(Outcome::Exhausted, &mut queue)?;
                            }
                        }
                    }
                    result = Some(AttemptResult::Failed { throttle_ms });
                }
            }
            if !still_queued && entry.outcome != Outcome::Delivered {
                entry.detail = Some(format!(
                    "{} (message was cancelled meanwhile)",
                    entry.detail.unwrap_or_default()
                ));
            }
            append_log(&mut log, &mut meta, &entry)?;
        }
        store!(w.commit())?;
        Ok(result)
    }
}

enum AttemptResult {
    Ok,
    Failed { throttle_ms: Option<i64> },
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One signed POST; the signature timestamp is the attempt's time.
async fn send(client: &reqwest::Client, b: &Endpoint, q: &Queued) -> Response {
    let ts = now_ms() / 1000;
    let sig = b.secret.sign(&q.webhook_id, ts, q.body.as_bytes());
    let res = client
        .post(&b.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_ID, &q.webhook_id)
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, sig)
        .body(q.body.clone())
        .send()
        .await;
    match res {
        Ok(r) => Response::Status(r.status().as_u16(), retry_after(r.headers())),
        Err(e) if e.is_timeout() => Response::Error(format!("timed out: {e}")),
        Err(e) => Response::Error(format!("request failed: {e}")),
    }
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
