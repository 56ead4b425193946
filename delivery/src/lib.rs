//! Delivery of alerts outside Fusion.
//!
//! This crate owns the durable [`outbox`] (redb), webhooks signed per the
//! Standard Webhooks specification ([`webhook`]) to the national bureaus entitled
//! to each alert — after the egress rule [`schemas::sharing::decide`] and its
//! per-recipient redaction —, retries with backoff and jitter, per-endpoint
//! workers and circuit breakers, retractions when the owner revokes or tightens
//! a marking, sighting [`feedback`] to partners as STIX 2.1, the
//! [`subscriptions`] file, and a verifying [`receiver`]. It
//! depends on `schemas` only; the `fusion` binary feeds it the alert changes the
//! dataflow emits.

pub mod feedback;
pub mod metrics;
pub mod outbox;
pub mod receiver;
pub mod subscriptions;
pub mod webhook;

pub use metrics::DeliveryMetrics;
pub use outbox::{
    AlertFootprint, EnqueueReport, LogEntry, OperatorAlert, Outbox, OutboxAdmin, OutboxConfig,
    OutboxError, Outcome, ParkReason, ParkedMessage, RequeueReport, RetrySchedule,
};
pub use subscriptions::{Bureau, ConfigError, Partner, Subscriptions};
pub use webhook::{MessageKind, Secret, WebhookError, webhook_id};
