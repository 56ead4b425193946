//! Prometheus metrics of the Kafka path: what came in, what went out, how far behind the
//! consumer is, and how long committing takes.
//!
//! The metrics live in their own [`Registry`]; whoever serves `/metrics` gathers it
//! ([`KafkaMetrics::render`]). Every handle is cheap to clone and shares its counts.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The Kafka path's metrics.
#[derive(Clone)]
pub struct KafkaMetrics {
    registry: Registry,
    /// Records read, per input topic.
    pub records_in: IntCounterVec,
    /// Records the broker acknowledged, per output topic.
    pub records_out: IntCounterVec,
    /// Records sent to the dead-letter topic, per error code.
    pub dead_letters: IntCounterVec,
    /// Records in a partition not yet handed on: its high watermark minus what was released.
    pub consumer_lag: IntGaugeVec,
    /// Time one offset commit took (a synchronous round trip to the group coordinator).
    pub commit_seconds: Histogram,
    /// Offset commits that failed (they are retried with the next commit).
    pub commit_failures: IntCounter,
    /// 1 while the state is being rebuilt from the retained history, then 0.
    pub rehydrating: IntGauge,
    /// Records dead-lettered by the ingest path (every source), per error code.
    pub ingest_dead_letters: IntCounterVec,
    /// Sensor events dropped as exact copies of one seen within the evidence window.
    pub duplicates: IntCounter,
    /// Records that arrived behind the source's watermark (counted at it), per input topic.
    pub late_records: IntCounterVec,
}

impl std::fmt::Debug for KafkaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMetrics").finish_non_exhaustive()
    }
}

impl Default for KafkaMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaMetrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Self {
        let registry = Registry::new();
        let records_in = IntCounterVec::new(
            Opts::new(
                "fusion_kafka_records_in_total",
                "Records read from each input topic.",
            ),
            &["topic"],
        )
        .expect("valid metric");
        let records_out = IntCounterVec::new(
            Opts::new(
                "fusion_kafka_records_out_total",
                "Records the broker acknowledged, per output topic.",
            ),
            &["topic"],
        )
        .expect("valid metric");
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "fusion_kafka_deadletters_total",
                "Records sent to the dead-letter topic, per error code.",
            ),
            &["code"],
        )
        .expect("valid metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "fusion_kafka_consumer_lag",
                "Records of a partition not yet handed on (high watermark minus released offset).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "fusion_kafka_commit_seconds",
                "Time one synchronous offset commit took.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let commit_failures = IntCounter::new(
            "fusion_kafka_commit_failures_total",
            "Offset commits that failed (retried with the next commit).",
        )
        .expect("valid metric");
        let rehydrating = IntGauge::new(
            "fusion_kafka_rehydrating",
            "1 while the state is rebuilt from the retained history, then 0.",
        )
        .expect("valid metric");
        let ingest_dead_letters = IntCounterVec::new(
            Opts::new(
                "fusion_ingest_deadletters_total",
                "Records dead-lettered by the ingest path (every source), per error code.",
            ),
            &["code"],
        )
        .expect("valid metric");
        let duplicates = IntCounter::new(
            "fusion_ingest_duplicates_total",
            "Sensor events dropped as exact copies of one seen within the evidence window.",
        )
        .expect("valid metric");
        let late_records = IntCounterVec::new(
            Opts::new(
                "fusion_ingest_late_records_total",
                "Records that arrived behind the source's watermark and were counted at it, per input topic.",
            ),
            &["topic"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(records_in.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ingest_dead_letters.clone()),
            Box::new(duplicates.clone()),
            Box::new(late_records.clone()),
            Box::new(records_out.clone()),
            Box::new(dead_letters.clone()),
            Box::new(consumer_lag.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(commit_failures.clone()),
            Box::new(rehydrating.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        Self {
            registry,
            records_in,
            records_out,
            dead_letters,
            consumer_lag,
            commit_seconds,
            commit_failures,
            rehydrating,
            ingest_dead_letters,
            duplicates,
            late_records,
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
            .unwrap_or_else(|e| format!("# cannot encode the metrics: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered_with_its_labels() {
        let m = KafkaMetrics::new();
        m.records_in
            .with_label_values(&["fusion.sensor.events"])
            .inc_by(3);
        m.records_out.with_label_values(&["fusion.alerts"]).inc();
        m.dead_letters.with_label_values(&["malformed_json"]).inc();
        m.consumer_lag
            .with_label_values(&["fusion.sensor.events", "2"])
            .set(7);
        m.commit_seconds.observe(0.004);
        m.commit_failures.inc();
        m.rehydrating.set(1);
        m.ingest_dead_letters
            .with_label_values(&["future_timestamp"])
            .inc();
        m.duplicates.inc();
        m.late_records
            .with_label_values(&["fusion.desk.actions"])
            .inc_by(2);
        let text = m.render();
        for line in [
            "fusion_kafka_records_in_total{topic=\"fusion.sensor.events\"} 3",
            "fusion_kafka_records_out_total{topic=\"fusion.alerts\"} 1",
            "fusion_kafka_deadletters_total{code=\"malformed_json\"} 1",
            "fusion_kafka_consumer_lag{partition=\"2\",topic=\"fusion.sensor.events\"} 7",
            "fusion_kafka_commit_seconds_bucket{le=\"0.005\"} 1",
            "fusion_kafka_commit_seconds_count 1",
            "fusion_kafka_commit_failures_total 1",
            "fusion_kafka_rehydrating 1",
            "fusion_ingest_deadletters_total{code=\"future_timestamp\"} 1",
            "fusion_ingest_duplicates_total 1",
            "fusion_ingest_late_records_total{topic=\"fusion.desk.actions\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
    }
}
