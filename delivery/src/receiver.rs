//! A small webhook receiver that verifies Standard Webhooks signatures — for
//! bureaus, drills and tests (`fusion receive`).
//!
//! Accepts `POST` on any path. A message whose signature or timestamp does not
//! verify gets 401 and is not passed on; a valid one gets 204 and is sent to
//! the channel given to [`router`].

use std::sync::Arc;

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
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            if st.accepted.send(msg).await.is_err() {
                // Nobody stores what we got: do not acknowledge it.
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
