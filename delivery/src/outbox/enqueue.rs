//! What one alert change does to the outbox: the egress rule decides per bureau what is
//! queued, what queued or parked message is cancelled, and who is told to delete the
//! alert. Everything it reads is the alert's own state and messages (indexed), never
//! the rest of the queue.

use schemas::sharing::{Decision, Recipient, decide, marking_allows};
use schemas::{AlertChange, ChangeKind};
use serde::Serialize;

use super::store::{Queued, Tx, now_ms};
use super::worker::log_for;
use super::{EnqueueReport, OutboxError, Outcome};
use crate::subscriptions::Subscriptions;
use crate::webhook::{MessageKind, webhook_id};

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

fn queue(tx: &mut Tx<'_>, q: &Queued) -> Result<(), OutboxError> {
    tx.insert(q)?;
    tx.append_log(&log_for(q, 0, Outcome::Queued))
}

/// Applies one alert change inside `tx`.
pub(super) fn apply(
    tx: &mut Tx<'_>,
    subs: &Subscriptions,
    change: &AlertChange,
) -> Result<EnqueueReport, OutboxError> {
    let alert = &change.alert;
    let mut report = EnqueueReport::default();
    tx.note_version(change.version)?;
    if let Some(last) = tx.closed_version(&alert.id)? {
        if change.version <= last {
            // The alert expired or was retracted at `last` and its state is gone.
            report.stale = true;
            return Ok(report);
        }
        // A newer version reopens it (the dataflow never does this after an expiry, but
        // a retracted alert whose inputs return does).
        tx.reopen(&alert.id)?;
    }
    let mut state = tx.alert_state(&alert.id)?.unwrap_or_default();
    if change.version < state.version
        || (state.closed()
            && change.version == state.version
            && change.change != ChangeKind::Retracted)
    {
        report.stale = true;
        return Ok(report);
    }
    if change.change == ChangeKind::Expired {
        // An expiry withdraws nothing: recipients keep the last version they got, and what
        // is queued still goes out. The state goes once nothing of the alert is left.
        state.version = change.version;
        state.expired = true;
        tx.put_alert_state(&alert.id, &state)?;
        tx.drop_if_idle(&alert.id)?;
        return Ok(report);
    }
    state.version = change.version;
    state.marking = Some(alert.marking.clone());
    state.contributing = alert.markings().skip(1).cloned().collect();
    state.retracted = change.change == ChangeKind::Retracted;
    state.expired = false;

    // Cancel what is no longer allowed, parked messages included.
    for (seq, q) in tx.messages_of(&alert.id, &state.lanes)? {
        if q.kind != MessageKind::Alert {
            continue;
        }
        let why = if state.retracted {
            Some("the alert was retracted".to_string())
        } else {
            subs.bureau(&q.recipient)
                .and_then(|b| marking_allows(alert.markings(), &b.recipient).err())
                .map(|w| format!("the marking changed: {w}"))
        };
        if let Some(why) = why {
            tx.remove(seq, &q)?;
            let mut e = log_for(&q, 0, Outcome::Cancelled);
            e.detail = Some(why);
            tx.append_log(&e)?;
            report.cancelled += 1;
        }
    }

    let mut to_retract: Vec<&Recipient> = Vec::new();
    for b in &subs.bureaus {
        let r = &b.recipient;
        if state.retracted {
            if state.reached.contains(&r.id) {
                to_retract.push(r);
            }
            continue;
        }
        match decide(alert, r, &subs.policy) {
            Decision::Deliver(view) => {
                let id = webhook_id(&alert.id, change.version, &r.id, MessageKind::Alert);
                if tx.known(&r.id, &alert.id, &id)? {
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
                    last_status: None,
                    last_error: None,
                    parked: None,
                };
                queue(tx, &q)?;
                state.lanes.insert(r.id.clone());
                report.queued += 1;
            }
            Decision::Withhold(_) => {
                report.withheld += 1;
                if state.reached.contains(&r.id) && marking_allows(alert.markings(), r).is_err() {
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
        if tx.known(&r.id, &alert.id, &id)? {
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
            last_status: None,
            last_error: None,
            parked: None,
        };
        queue(tx, &q)?;
        state.lanes.insert(r.id.clone());
        state.retracted_to.insert(r.id.clone());
        report.retractions += 1;
    }
    tx.put_alert_state(&alert.id, &state)?;
    // A retraction nobody needs to hear about leaves nothing behind.
    tx.drop_if_idle(&alert.id)?;
    Ok(report)
}

/// Queues every partner's feedback bundle for `period` inside `tx`; returns how many. A
/// drill (`drill`) feeds back to drill partners only, live operations to live ones only.
pub(super) fn feedback(
    tx: &mut Tx<'_>,
    subs: &Subscriptions,
    sightings: &crate::feedback::Sightings,
    period: u64,
    drill: bool,
) -> Result<usize, OutboxError> {
    let mut n = 0;
    for p in subs.partners.iter().filter(|p| p.drill == drill) {
        let Some(bundle) = sightings.bundle(p, &subs.policy, period) else {
            continue;
        };
        let alert_id = format!("feedback:{}", p.id);
        let id = webhook_id("feedback", period, &p.id, MessageKind::Feedback);
        if tx.known(&p.id, &alert_id, &id)? {
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
            alert_id,
            version: period,
            kind: MessageKind::Feedback,
            body,
            attempts: 0,
            next_attempt_ms: now_ms(),
            last_status: None,
            last_error: None,
            parked: None,
        };
        queue(tx, &q)?;
        n += 1;
    }
    Ok(n)
}
