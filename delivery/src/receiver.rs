//! A small webhook receiver that verifies Standard Webhooks signatures — for
//! bureaus, drills and tests (`fusion receive`).
//!
//! Accepts `POST` on any path. A message whose signature or timestamp does not
//! verify gets 401 and is not passed on; a valid one gets 204 and is sent to
//! the channel given to [`router`] — once: a message whose `webhook-id` was
//! already passed on within the tolerance window (a replayed capture, or a
//! sender's retry after a lost acknowledgement) gets 204 and is not passed on
//! again. Ids are remembered only while a message bearing them could still pass
//! the timestamp check, so the memory is bounded by the traffic of one window.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret};

/// A verified message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// The `webhook-timestamp` header.
    pub timestamp: i64,
    /// The body, as text.
    pub body: String,
}

/// A rejected message (for the receiver's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The `webhook-id` header, if any.
    pub webhook_id: Option<String>,
    /// Why.
    pub reason: String,
}

struct ReceiverState {
    secret: Secret,
    tolerance_secs: i64,
    accepted: mpsc::Sender<Received>,
    rejected: mpsc::Sender<Rejected>,
    seen: Mutex<Seen>,
}

/// Webhook ids passed on, each until the end of the window in which it could reappear.
#[derive(Debug, Default)]
struct Seen {
    until: HashMap<String, i64>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl Seen {
    /// Records `id` (seen at `now`, its message stamped `timestamp`) unless it is already
    /// remembered; returns whether it was new. Forgets ids whose window has passed.
    fn insert(&mut self, id: &str, timestamp: i64, now: i64, tolerance_secs: i64) -> bool {
        while let Some((t, _)) = self.by_expiry.first() {
            if *t >= now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.until.remove(&old);
            }
        }
        if self.until.contains_key(id) {
            return false;
        }
        // A replay of this message passes the timestamp check until timestamp + tolerance;
        // a re-signed retry bears a later timestamp, so remember at least a window from now.
        let until = timestamp
            .max(now)
            .saturating_add(tolerance_secs.unsigned_abs().min(i64::MAX as u64) as i64);
        self.until.insert(id.to_string(), until);
        self.by_expiry.insert((until, id.to_string()));
        true
    }

    /// Forgets `id` (its message could not be passed on after all).
    fn remove(&mut self, id: &str) {
        if let Some(until) = self.until.remove(id) {
            self.by_expiry.remove(&(until, id.to_string()));
        }
    }

    /// Ids remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len()
    }
}

/// The receiver's routes; verified messages go to `accepted`, rejections to `rejected`.
pub fn router(
    secret: Secret,
    tolerance_secs: i64,
    accepted: mpsc::Sender<Received>,
    rejected: mpsc::Sender<Rejected>,
) -> Router {
    Router::new()
        .fallback(receive)
        .with_state(Arc::new(ReceiverState {
            secret,
            tolerance_secs,
            accepted,
            rejected,
            seen: Mutex::new(Seen::default()),
        }))
}

async fn receive(
    State(st): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    match st.secret.verify(
        h(HEADER_ID),
        h(HEADER_TIMESTAMP),
        h(HEADER_SIGNATURE),
        &body,
        now,
        st.tolerance_secs,
    ) {
        Ok(()) => {
            let msg = Received {
                webhook_id: h(HEADER_ID).unwrap_or_default().to_string(),
                timestamp: h(HEADER_TIMESTAMP)
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or_default(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let new = st
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(&msg.webhook_id, msg.timestamp, now, st.tolerance_secs);
            if !new {
                // Already passed on: acknowledge, so the sender stops, but do not repeat it.
                tracing::debug!(webhook_id = %msg.webhook_id, "duplicate message acknowledged");
                return StatusCode::NO_CONTENT;
            }
            let id = msg.webhook_id.clone();
            if st.accepted.send(msg).await.is_err() {
                // Nobody stores what we got: do not acknowledge it, and take it if it comes again.
                st.seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            let _ = st
                .rejected
                .send(Rejected {
                    webhook_id: h(HEADER_ID).map(str::to_string),
                    reason: e.to_string(),
                })
                .await;
            StatusCode::UNAUTHORIZED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_an_id_for_one_window_then_forgets_it() {
        let mut seen = Seen::default();
        assert!(seen.insert("a", 1000, 1000, 300));
        assert!(
            !seen.insert("a", 1000, 1200, 300),
            "replayed within the window"
        );
        assert!(seen.insert("b", 1100, 1200, 300));
        // Past a's window (1300), b's (1400) still open: a is forgotten, b is not.
        assert!(!seen.insert("b", 1100, 1350, 300));
        assert_eq!(seen.len(), 1);
        // Past every window: the memory is empty again, whatever came before.
        for i in 0..1000 {
            seen.insert(&format!("m{i}"), 2000, 2000, 300);
        }
        seen.insert("last", 9000, 9000, 300);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let mut seen = Seen::default();
        assert!(seen.insert("max", i64::MAX, 0, 300));
        assert!(seen.insert("min", i64::MIN, 0, 300));
        assert!(!seen.insert("max", i64::MAX, 0, 300));
    }
}
