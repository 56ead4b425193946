//! A record behind the logical clock is counted, never silently re-timed: whatever the
//! source, the ingestor counts it in `fusion_ingest_late_records_total{topic}` and it
//! takes the clock's time.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ingest::metrics::KafkaMetrics;
use ingest::{IngestConfig, IngestStats, Ingestor, MemoryDeadLetters, RawRecord, Router};
use schemas::{Feed, Topic};

const EVENT: &str = r#"{"schema_version":1,"event_id":"EID","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}"#;

fn event(offset: i64, timestamp_ms: i64) -> RawRecord {
    RawRecord {
        topic: Topic::SensorEvents,
        partition: 0,
        offset,
        timestamp_ms,
        key: None,
        payload: EVENT.replace("EID", &format!("e-{offset}")).into_bytes(),
        headers: Vec::new(),
        future_timestamp_ms: None,
    }
}

#[test]
fn a_record_behind_the_clock_is_counted_and_takes_the_clock_time() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let stats = Arc::new(IngestStats::default());
    let metrics = KafkaMetrics::new();
    let mut ingestor = Ingestor::new(
        IngestConfig::default(),
        Router::new(vec![tx], 10),
        MemoryDeadLetters::with_limit(10),
        Arc::clone(&stats),
    )
    .with_metrics(metrics.clone());
    let late = || {
        metrics
            .late_records
            .with_label_values(&["fusion.sensor.events"])
            .get()
    };
    assert_eq!(ingestor.ingest(event(0, 1_001)).unwrap(), 1_010);
    ingestor.advance(2_000).unwrap();
    assert_eq!(
        ingestor.ingest(event(1, 1_995)).unwrap(),
        2_000,
        "in the clock's epoch: its own time"
    );
    assert_eq!(late(), 0);
    assert_eq!(
        ingestor.ingest(event(2, 1_500)).unwrap(),
        2_000,
        "behind the clock: at the clock"
    );
    assert_eq!(late(), 1);
    assert_eq!(stats.late_records.load(Ordering::Relaxed), 1);
    assert_eq!(ingestor.ingest(event(3, 2_001)).unwrap(), 2_010);
    assert_eq!(late(), 1, "on time again");
    drop(ingestor);
    let times: Vec<u64> = rx
        .try_iter()
        .flatten()
        .filter_map(|f| match f {
            Feed::Record { time_ms, .. } => Some(time_ms),
            Feed::Advance { .. } => None,
        })
        .collect();
    assert_eq!(
        times,
        vec![1_010, 2_000, 2_000, 2_010],
        "the late record still reaches the dataflow"
    );
}
