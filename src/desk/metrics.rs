//! Prometheus metrics of the desk API. Labels come from bounded sets only: the route
//! template (never the alert id), the status class, the action kind and outcome.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// The desk's metrics.
#[derive(Clone, Debug)]
pub struct DeskMetrics {
    /// Requests per route template and status class.
    pub requests: IntCounterVec,
    /// Officer actions per kind and outcome (`accepted`, `rejected`, `pending`, `failed`).
    pub actions: IntCounterVec,
    /// Change streams open now.
    pub streams: IntGauge,
}

impl DeskMetrics {
    /// The desk's metrics, registered in `registry` (so one `/metrics` shows everything).
    pub fn new(registry: &Registry) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "fusion_desk_requests_total",
                "Desk API requests, per route and status class.",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let actions = IntCounterVec::new(
            Opts::new(
                "fusion_desk_actions_total",
                "Officer actions taken through the desk, per kind and outcome.",
            ),
            &["action", "outcome"],
        )
        .expect("valid metric");
        let streams = IntGauge::new(
            "fusion_desk_streams",
            "Change streams (server-sent events) open now.",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(actions.clone()),
            Box::new(streams.clone()),
        ] {
            // Registering twice (a second desk on one registry) keeps the first.
            let _ = registry.register(m);
        }
        Self {
            requests,
            actions,
            streams,
        }
    }
}
