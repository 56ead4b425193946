//! The delivery loop of one endpoint: pick due messages, send them, record the outcome,
//! back off, park what will not be retried.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use schemas::sharing::marking_allows;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::http::{Response, Verdict, send, verdict};
use super::store::{EndpointState, Parking, Queued, Snapshot, Tx, now_ms, store};
use super::{Endpoint, LogEntry, Outbox, OutboxError, Outcome, ParkReason};
use crate::webhook::MessageKind;

/// The delivery loop of one endpoint.
pub(super) struct Worker {
    pub outbox: Outbox,
    pub endpoint: usize,
    pub wake: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

struct Attempted {
    seq: u64,
    q: Queued,
    response: Response,
}

enum AttemptResult {
    Ok,
    Failed { throttle_ms: Option<i64> },
}

/// Messages picked for an attempt, when to look again, and whether the endpoint is disabled.
type Picked = (Vec<(u64, Queued)>, Option<i64>, bool);

pub(super) fn log_for(q: &Queued, attempt: u32, outcome: Outcome) -> LogEntry {
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

/// What an answer was, in words, for the log and for `fusion outbox list`.
fn describe(response: &Response) -> String {
    match response {
        Response::Status(s @ (401 | 403), _) => format!(
            "HTTP {s}: the endpoint refused the signature or the sender (a rotated secret or a skewed clock?)"
        ),
        Response::Status(s, _) => format!("HTTP {s}"),
        Response::Error(e) => e.clone(),
    }
}

impl Worker {
    fn endpoint(&self) -> &Endpoint {
        &self.outbox.inner.endpoints[self.endpoint]
    }

    pub async fn run(mut self) {
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
            let mut next_due: Option<i64> = None;
            let mut disabled = false;
            // A half-open breaker lets one trial attempt through at a time.
            let trial_busy = half_open && !in_flight.is_empty();
            let room = if half_open { 1 } else { max_in_flight }.saturating_sub(in_flight.len());
            if now < quiet_until_ms || trial_busy {
                next_due = Some(quiet_until_ms.max(now + 10));
            } else if room > 0 {
                // With no room, the next completion wakes this loop: no store access.
                match self.pick(&in_flight, room, now) {
                    Ok((picked, due, dis)) => {
                        next_due = due;
                        disabled = dis;
                        for (seq, q) in picked {
                            in_flight.insert(q.alert_id.clone());
                            let outbox = self.outbox.clone();
                            let endpoint = self.endpoint;
                            tasks.spawn(async move {
                                let e = &outbox.inner.endpoints[endpoint];
                                let drill = outbox.inner.config.drill.as_deref();
                                let response =
                                    send(&outbox.inner.client, &e.url, &e.secret, &q, drill).await;
                                Attempted { seq, q, response }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::error!(endpoint = %id, error = %e, "outbox read failed; retrying in 1 s");
                        next_due = Some(now + 1000);
                    }
                }
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

    /// Picks due messages (at most `room`, one per alert, oldest schedule first) and marks
    /// their attempt as started. Reads only this endpoint's due heads.
    fn pick(
        &self,
        in_flight: &BTreeSet<String>,
        room: usize,
        now: i64,
    ) -> Result<Picked, OutboxError> {
        let inner = &*self.outbox.inner;
        let ep = self.endpoint();
        // A read transaction first: an endpoint with nothing due takes no write lock.
        {
            let snap = Snapshot::begin(&inner.db)?;
            if snap.endpoint_disabled(&ep.id)? {
                return Ok((Vec::new(), None, true));
            }
            let (due, next) = snap.due(&ep.id, now, in_flight)?;
            if !due {
                return Ok((Vec::new(), next, false));
            }
        }
        let w = store!(inner.db.begin_write())?;
        let mut picked = Vec::new();
        let mut cancelled = Vec::new();
        let mut more;
        let next_due;
        {
            let mut tx = Tx::open(&w, inner.retention())?;
            let mut from = (i64::MIN, 0u64);
            loop {
                let need = room - picked.len();
                let candidates = tx.due_heads(&ep.id, from, now, in_flight, need + 1)?;
                more = candidates.len() > need;
                if candidates.is_empty() {
                    break;
                }
                for (next, seq, _) in candidates.into_iter().take(need) {
                    from = (next, seq.saturating_add(1));
                    let Some(mut q) = tx.get(&ep.id, seq)? else {
                        continue;
                    };
                    // Re-check the egress rule against the latest marking before every attempt.
                    if let (MessageKind::Alert, Some(r)) = (q.kind, ep.recipient.as_ref()) {
                        let state = tx.alert_state(&q.alert_id)?;
                        let refused = state.as_ref().and_then(|state| {
                            if state.retracted {
                                Some("the alert was retracted".to_string())
                            } else {
                                state
                                    .marking
                                    .as_ref()
                                    .and_then(|m| {
                                        marking_allows(
                                            std::iter::once(m).chain(&state.contributing),
                                            r,
                                        )
                                        .err()
                                    })
                                    .map(|w| format!("the marking changed: {w}"))
                            }
                        });
                        if let Some(why) = refused {
                            tx.remove(seq, &q)?;
                            let mut e = log_for(&q, q.attempts, Outcome::Cancelled);
                            e.detail = Some(why);
                            tx.append_log(&e)?;
                            tx.drop_if_idle(&q.alert_id)?;
                            cancelled.push(seq);
                            continue;
                        }
                        if let Some(mut state) = state
                            && state.reached.insert(r.id.clone())
                        {
                            tx.put_alert_state(&q.alert_id, &state)?;
                        }
                    }
                    q.attempts += 1;
                    tx.update(seq, q.next_attempt_ms, &q)?;
                    picked.push((seq, q));
                }
                if picked.len() >= room || !more {
                    break;
                }
            }
            // With no room left the next completion wakes the loop; otherwise the next schedule.
            next_due = if more && picked.len() >= room {
                None
            } else {
                tx.next_due(&ep.id, now)?
            };
        }
        store!(w.commit())?;
        Ok((picked, next_due, false))
    }

    /// Records an attempt's outcome and schedules what follows: done, another attempt, or parked.
    fn finish(&self, done: Attempted) -> Result<Option<AttemptResult>, OutboxError> {
        let inner = &*self.outbox.inner;
        let Attempted {
            seq,
            q: sent,
            response,
        } = done;
        let w = store!(inner.db.begin_write())?;
        let result;
        let parked_delta;
        let parked_now;
        let outcome;
        {
            let mut tx = Tx::open(&w, inner.retention())?;
            // Cancelled meanwhile (revocation) if it is gone.
            let stored = tx.get(&sent.recipient, seq)?.filter(|s| s.parked.is_none());
            let (status, retry_after) = match &response {
                Response::Status(s, ra) => (Some(*s), *ra),
                Response::Error(_) => (None, None),
            };
            let what = describe(&response);
            let mut entry = log_for(&sent, sent.attempts, Outcome::Delivered);
            entry.status = status;
            if let Response::Error(e) = &response {
                entry.detail = Some(e.clone());
            }
            let mut park = None;
            match verdict(&response) {
                Verdict::Delivered => {
                    if let Some(s) = &stored {
                        tx.remove(seq, s)?;
                        tx.finish(s, Outcome::Delivered)?;
                        tx.drop_if_idle(&s.alert_id)?;
                    }
                    result = Some(AttemptResult::Ok);
                }
                Verdict::Gone => {
                    entry.outcome = Outcome::EndpointDisabled;
                    let detail = format!(
                        "endpoint {} answered 410 Gone; disabled until an operator re-enables it (fusion outbox retry --recipient {})",
                        sent.recipient, sent.recipient
                    );
                    tracing::error!(endpoint = %sent.recipient, "endpoint answered 410 Gone and is disabled (operator alert)");
                    tx.set_endpoint(
                        &sent.recipient,
                        &EndpointState {
                            disabled: Some(detail.clone()),
                        },
                    )?;
                    entry.detail = Some(detail);
                    result = None;
                }
                Verdict::Refused => {
                    entry.outcome = Outcome::Failed;
                    entry.detail = Some(format!("{what} is not retried"));
                    park = Some((
                        ParkReason::Refused,
                        format!("{what}: a client error that another attempt would get again"),
                    ));
                    result = None;
                }
                Verdict::Retry { throttle } => {
                    let mut throttle_ms = None;
                    match inner.config.retry.delay_before(sent.attempts + 1) {
                        Some(mut delay) => {
                            if let Some(ra) = retry_after {
                                delay = delay.max(ra.min(inner.config.max_retry_after));
                            }
                            if throttle {
                                throttle_ms = Some(delay.as_millis() as i64);
                            }
                            entry.outcome = Outcome::Retry;
                            if matches!(status, Some(401 | 403)) {
                                entry.detail = Some(format!("{what}; retried"));
                            }
                            if let Some(s) = &stored {
                                let mut next = s.clone();
                                next.next_attempt_ms = now_ms() + delay.as_millis() as i64;
                                next.last_status = status;
                                next.last_error =
                                    matches!(response, Response::Error(_)).then(|| what.clone());
                                tx.update(seq, s.next_attempt_ms, &next)?;
                            }
                        }
                        None => {
                            entry.outcome = Outcome::Exhausted;
                            let reason = if matches!(status, Some(401 | 403)) {
                                ParkReason::Unauthorized
                            } else {
                                ParkReason::Exhausted
                            };
                            park = Some((
                                reason,
                                format!(
                                    "retries exhausted after {} attempts; last: {what}",
                                    sent.attempts
                                ),
                            ));
                        }
                    }
                    result = Some(AttemptResult::Failed { throttle_ms });
                }
            }
            if stored.is_none() && entry.outcome != Outcome::Delivered {
                entry.detail = Some(format!(
                    "{} (message was cancelled meanwhile)",
                    entry.detail.unwrap_or_else(|| what.clone())
                ));
                park = None;
            }
            outcome = entry.outcome;
            tx.append_log(&entry)?;
            if let (Some((reason, detail)), Some(s)) = (park, &stored) {
                let mut s = s.clone();
                s.last_status = status;
                s.last_error = matches!(response, Response::Error(_)).then(|| what.clone());
                s.parked = Some(Parking {
                    at_ms: now_ms(),
                    reason,
                    detail: detail.clone(),
                });
                tx.park(seq, &s)?;
                let mut e = log_for(&s, s.attempts, Outcome::Parked);
                e.status = status;
                e.detail = Some(detail.clone());
                tx.append_log(&e)?;
                tracing::error!(
                    endpoint = %s.recipient,
                    webhook_id = %s.webhook_id,
                    alert_id = %s.alert_id,
                    reason = reason.as_str(),
                    "message parked (operator alert): {detail}; see `fusion outbox list`, re-queue with `fusion outbox retry`"
                );
            }
            parked_delta = tx.parked_delta;
            parked_now = std::mem::take(&mut tx.parked_now);
        }
        store!(w.commit())?;
        self.outbox.inner.metrics.attempt(outcome);
        self.outbox.inner.metrics.parked(parked_delta, &parked_now);
        Ok(result)
    }
}
