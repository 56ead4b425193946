//! The change stream (`GET /api/events`, server-sent events).
//!
//! Each change event carries one closed logical time as its id: a snapshot of the whole
//! desk, or a delta of what changed at that time, rendered for the officer's center. A
//! client that reconnects with `Last-Event-ID` gets the deltas after it — none lost,
//! none repeated — as long as the ring still holds them; otherwise (too far behind, or
//! an id this desk never gave, such as one from before a restart) a snapshot first.
//! Health events (no id) come every second.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use schemas::desk::{DeskEvent, SSE_CHANGE, SSE_HEALTH};
use tokio::sync::broadcast;

use super::api::{ApiState, Caller};
use super::hub::DeskHub;
use super::store::ClosedEntry;
use super::view;

/// How often health is sent.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

fn change_event(event: &DeskEvent) -> Option<Event> {
    let data = serde_json::to_string(event).ok()?;
    let mut e = Event::default().event(SSE_CHANGE).data(data);
    if let Some(t) = event.time_ms() {
        e = e.id(t.to_string());
    }
    Some(e)
}

fn health_event(hub: &DeskHub) -> Option<Event> {
    let data = serde_json::to_string(&DeskEvent::Health(hub.health())).ok()?;
    Some(Event::default().event(SSE_HEALTH).data(data))
}

/// A snapshot for `center`, and its time.
fn snapshot(hub: &DeskHub, center: usize) -> Option<(Event, u64)> {
    let ctx = hub.ctx();
    let snap = hub.read(|s| view::snapshot(s, center, ctx))?;
    let time = snap.time_ms;
    Some((change_event(&DeskEvent::Snapshot(snap))?, time))
}

fn delta(hub: &DeskHub, entry: &ClosedEntry, center: usize) -> Option<Event> {
    change_event(&DeskEvent::Delta(view::delta(entry, center, hub.ctx())))
}

struct Conn {
    hub: DeskHub,
    center: usize,
    /// The caller's token, checked again every second: a revoked officer's stream ends.
    token: String,
    officers: Arc<super::officers::Officers>,
    changes: broadcast::Receiver<Arc<ClosedEntry>>,
    last_sent: u64,
    queued: VecDeque<Event>,
    tick: tokio::time::Interval,
    _open: StreamGauge,
}

/// Counts the stream as open while it lives.
struct StreamGauge(prometheus::IntGauge);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /api/events`.
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hub = state.hub.clone();
    let center = caller.center_index;
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let last_id: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    // Subscribe before reading: an entry made in between is then both read and
    // received, and skipped the second time by its time.
    let changes = hub.subscribe();
    let mut queued = VecDeque::new();
    queued.extend(health_event(&hub));
    let resumed = last_id.and_then(|l| {
        let entries = hub.read(|s| s.entries_after(l)).flatten()?;
        let last = entries.last().map_or(l, |e| e.time_ms);
        Some((entries, last))
    });
    let last_sent = match resumed {
        Some((entries, last)) => {
            tracing::debug!(officer = %caller.name, from = ?last_id, deltas = entries.len(), "desk stream resumed");
            queued.extend(entries.iter().filter_map(|e| delta(&hub, e, center)));
            last
        }
        None => match snapshot(&hub, center) {
            Some((event, time)) => {
                queued.push_back(event);
                time
            }
            None => 0,
        },
    };
    state.metrics.streams.inc();
    let conn = Conn {
        hub,
        center,
        token,
        officers: Arc::clone(&state.officers),
        changes,
        last_sent,
        queued,
        tick: tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY),
        _open: StreamGauge(state.metrics.streams.clone()),
    };
    let stream = futures_util::stream::unfold(conn, |mut c| async move {
        loop {
            if let Some(event) = c.queued.pop_front() {
                return Some((Ok(event), c));
            }
            tokio::select! {
                r = c.changes.recv() => match r {
                    Ok(entry) => {
                        if entry.time_ms > c.last_sent {
                            c.last_sent = entry.time_ms;
                            c.queued.extend(delta(&c.hub, &entry, c.center));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // Too far behind to catch up change by change: start again from the whole desk.
                        tracing::debug!(missed, "desk stream lagged; sending a snapshot");
                        if let Some((event, time)) = snapshot(&c.hub, c.center) {
                            c.queued.push_back(event);
                            c.last_sent = time;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = c.tick.tick() => {
                    if c.officers.authenticate(&c.token).is_none() {
                        tracing::info!("desk stream closed: the officer's token was revoked");
                        return None;
                    }
                    c.queued.extend(health_event(&c.hub));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
