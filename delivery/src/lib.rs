//! Delivery of alerts outside Fusion (to come).
//!
//! This crate will own the durable outbox, webhooks signed per the Standard
//! Webhooks specification to the national bureaus entitled to each alert (after
//! the sharing decision and per-recipient redaction made in the dataflow),
//! retries with backoff and jitter, per-endpoint circuit breakers, retractions,
//! and sighting feedback to partners as STIX 2.1. It depends on `schemas` only;
//! the `fusion` binary feeds it the alert changes the dataflow emits.
