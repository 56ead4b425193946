//! The ingest path of a file replay, on W1-shaped sensor events (~250 bytes of JSON each,
//! as `bench/w1/to_fusion.py` writes them): what the `ingest` thread of `fusion run
//! --input DIR` does per record.
//!
//! - `decode_record`: bytes to a validated event;
//! - `replay`: the whole thread: read and order the lines, decode, validate, check
//!   duplicates and route to two workers (whose channels are drained after each run).
//!
//! ```text
//! cargo bench -p ingest --bench ingest_path
//! ```
//!
//! Figures are written down in the commit that changes them, never asserted.

#![allow(clippy::unwrap_used, missing_docs)] // A benchmark that cannot unwrap has failed; criterion_group! writes an undocumented fn.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::files::JsonLinesDir;
use ingest::{IngestConfig, IngestStats, Ingestor, MemoryDeadLetters, Router};
use schemas::{Topic, decode_record};

const EVENTS: u64 = 50_000;

/// W1's event `n`: 24 h of events from 2025-01-01, 100 sensors, flows with a domain.
fn w1_line(n: u64) -> String {
    let countries = ["CA", "RU", "BR", "FR", "DE", "JP", "US", "HU"];
    let secs = n * 86_400 / 2_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        r#"{{"schema_version":1,"event_id":"w1:{n}","sensor_id":"sensor-{:03}","country":"{}","observed_at":"2025-01-01T{h:02}:{m:02}:{s:02}.000Z","kind":"flow","src_ip":"10.{}.{}.{}","dst_ip":"{}.{}.{}.{}","dst_port":{},"proto":"TCP","domain":"img{}.contoso.{}"}}"#,
        x % 100,
        countries[(x >> 8) as usize % countries.len()],
        (x >> 16) & 0xFF,
        (x >> 24) & 0xFF,
        (x >> 32) & 0xFF,
        (x >> 40) % 223 + 1,
        (x >> 48) & 0xFF,
        (x >> 56) & 0xFF,
        x & 0xFF,
        [53, 80, 443][(x >> 12) as usize % 3],
        (x >> 20) % 50_000,
        ["io", "org", "net", "com"][(x >> 4) as usize % 4],
    )
}

fn bench(c: &mut Criterion) {
    let lines: Vec<String> = (0..EVENTS).map(w1_line).collect();
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();

    let mut g = c.benchmark_group("ingest_path");
    g.sample_size(10);
    g.throughput(Throughput::Elements(EVENTS));
    g.bench_function("decode_record", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode_record(Topic::SensorEvents, line.as_bytes()).unwrap());
            }
        })
    });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sensor.events.jsonl"), lines.join("\n")).unwrap();
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("replay", |b| {
        b.iter(|| {
            let mut source = JsonLinesDir::open(dir.path()).unwrap();
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..2).map(|_| crossbeam_channel::unbounded()).unzip();
            let stats = Arc::new(IngestStats::default());
            let mut ingestor = Ingestor::new(
                IngestConfig::default(),
                Router::new(senders, 1_000),
                MemoryDeadLetters::with_limit(0),
                Arc::clone(&stats),
            );
            ingestor.run(&mut source, &AtomicBool::new(false)).unwrap();
            drop(ingestor);
            for rx in receivers {
                black_box(rx.try_iter().count());
            }
            assert_eq!(
                stats.events.load(std::sync::atomic::Ordering::Relaxed),
                EVENTS
            );
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
