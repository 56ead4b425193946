//! Where officers' actions go: `fusion.desk.actions` on Kafka (every instance reads
//! them), or the in-process input merged into the dataflow's source without Kafka.
//! Either way alert state changes only through the dataflow.

use jiff::Timestamp;
use schemas::{ActionKind, DeskAction, SCHEMA_VERSION};
use sha2::{Digest, Sha256};

/// An action could not be handed on.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The input is closed (the run is stopping).
    #[error("the dataflow no longer takes input: the run is stopping")]
    Closed,
    /// Kafka did not take it.
    #[error("Kafka did not acknowledge the action: {0}")]
    Kafka(String),
}

/// Hands officers' actions to the dataflow.
pub trait ActionSink: Send + Sync {
    /// Hands `action` on; returns once it is durable (Kafka) or queued (in-process).
    fn send(&self, action: &DeskAction) -> Result<(), SinkError>;
}

/// The in-process input: a channel the ingest side merges into the source
/// ([`ingest::desk_actions::DeskActionSource`]).
#[derive(Debug, Clone)]
pub struct ChannelSink(pub crossbeam_channel::Sender<DeskAction>);

impl ActionSink for ChannelSink {
    fn send(&self, action: &DeskAction) -> Result<(), SinkError> {
        self.0.send(action.clone()).map_err(|_| SinkError::Closed)
    }
}

/// A producer to `{prefix}desk.actions`, keyed by alert (one alert's actions stay in order).
pub struct KafkaSink(pub ingest::kafka::TopicProducer);

impl ActionSink for KafkaSink {
    fn send(&self, action: &DeskAction) -> Result<(), SinkError> {
        let payload = serde_json::to_vec(action).map_err(|e| SinkError::Kafka(e.to_string()))?;
        // The record's timestamp is the producer's clock: the broker's notion of "now",
        // which is what logical time is taken from on Kafka.
        self.0
            .send(Some(action.alert_id.as_bytes()), &payload, None)
            .and_then(|()| self.0.flush())
            .map_err(|e| SinkError::Kafka(e.to_string()))
    }
}

/// The action `officer` of `center` takes on `alert_id` at logical time `at`, with a
/// content-hash id: the same officer repeating the same action at the same logical
/// time gives the same id (a double key press is one action).
pub fn action(
    officer: &str,
    center: &str,
    alert_id: &str,
    kind: ActionKind,
    at: Timestamp,
) -> DeskAction {
    let mut h = Sha256::new();
    for part in [officer, center, alert_id] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.update(serde_json::to_vec(&kind).unwrap_or_default());
    h.update(at.as_millisecond().to_be_bytes());
    DeskAction {
        schema_version: SCHEMA_VERSION,
        action_id: format!("act-{}", hex::encode(&h.finalize()[..12])),
        alert_id: alert_id.to_string(),
        officer_id: officer.to_string(),
        center: center.to_string(),
        at,
        action: kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_content_hashes() {
        let t = Timestamp::UNIX_EPOCH;
        let a = action("alice", "Lyon", "x", ActionKind::Acknowledge, t);
        assert_eq!(a, action("alice", "Lyon", "x", ActionKind::Acknowledge, t));
        assert_ne!(
            a.action_id,
            action("bob", "Lyon", "x", ActionKind::Acknowledge, t).action_id
        );
        assert_ne!(
            a.action_id,
            action("alice", "Lyon", "x", ActionKind::Resolve, t).action_id
        );
        assert!(a.validate().is_ok());
    }
}
