//! Prometheus metrics of delivery: attempts by outcome and parked messages.
//!
//! The metrics live in their own [`Registry`]; whoever serves `/metrics` gathers it
//! ([`DeliveryMetrics::render`]). Labels come from bounded sets (outcomes, park reasons),
//! never a recipient, alert or webhook id.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::outbox::{Outcome, ParkReason};

/// Delivery's metrics; cheap to clone, clones share their counts.
#[derive(Clone)]
pub struct DeliveryMetrics {
    registry: Registry,
    /// Attempts and decisions, per outcome (as in the delivery log).
    pub attempts: IntCounterVec,
    /// Messages parked (not retried until an operator re-queues them), per reason.
    pub parked_total: IntCounterVec,
    /// Messages parked right now.
    pub parked_messages: IntGauge,
}

impl std::fmt::Debug for DeliveryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryMetrics").finish_non_exhaustive()
    }
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliveryMetrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Self {
        let registry = Registry::new();
        let attempts = IntCounterVec::new(
            Opts::new(
                "fusion_delivery_attempts_total",
                "Delivery attempts and decisions, per outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let parked_total = IntCounterVec::new(
            Opts::new(
                "fusion_delivery_parked_messages_total",
                "Messages parked (kept, not retried until an operator re-queues them), per reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let parked_messages = IntGauge::new(
            "fusion_delivery_parked_messages",
            "Messages parked in the outbox right now (see `fusion outbox list`).",
        )
        .expect("valid metric");
        for collector in [
            Box::new(attempts.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(parked_total.clone()),
            Box::new(parked_messages.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        Self {
            registry,
            attempts,
            parked_total,
            parked_messages,
        }
    }

    /// The registry holding these metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    pub(crate) fn attempt(&self, outcome: Outcome) {
        self.attempts.with_label_values(&[outcome.as_str()]).inc();
    }

    pub(crate) fn parked(&self, delta: i64, reasons: &[ParkReason]) {
        self.parked_messages.add(delta);
        for r in reasons {
            self.parked_total.with_label_values(&[r.as_str()]).inc();
        }
    }
}
