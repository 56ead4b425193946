//! Kafka ingest benchmark: `fusion run --kafka` against a bare rdkafka consumer on the
//! same topics of the same broker, and the rehydration time of a large indicator set.
//!
//! ```sh
//! deploy/kafka/start-broker.sh 19092
//! cargo build --release
//! target/release/kafka_ingest --broker 127.0.0.1:19092 --fusion target/release/fusion --events 200000
//! target/release/kafka_ingest --broker 127.0.0.1:19092 --fusion target/release/fusion --indicators 1000000
//! target/release/kafka_ingest --broker 127.0.0.1:19092 --fusion target/release/fusion --indicators 1000000 --versions 2
//! ```
//!
//! With `--versions N`, each indicator is published N times, one version an hour apart
//! (the indicator topic keeps every version): rehydration reads them all and keeps the
//! latest of each.
//!
//! Figures (2026-12-04, release, tansu sqlite, 4 partitions, 2 shared cores): 1 M
//! indicators with 2 versions each (2 M records) published in 47.6 s, first run 84.4 s,
//! rehydration 71.1 s; the same 1 M with one version: 18.5 s, 31.4 s, 27.1 s (25.0 s on
//! 2026-11-23 with the compacted topic and before the remap). A second version costs
//! more than a first (the dataflow retracts the one it replaces).

#![allow(clippy::print_stdout)] // A benchmark reports on stdout.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use scenario::{ScenarioConfig, write_dir};

const INPUTS: [&str; 4] = [
    "sensor.events",
    "partner.indicators",
    "osint.items",
    "desk.actions",
];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run(fusion: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(fusion).args(args).output()?;
    if !out.status.success() {
        return Err(format!("fusion {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn create_topics(fusion: &str, broker: &str, prefix: &str) -> Result<()> {
    run(
        fusion,
        &[
            "topics",
            "create",
            "--kafka",
            broker,
            "--topic-prefix",
            prefix,
        ],
    )?;
    Ok(())
}

fn prefix(name: &str) -> Result<String> {
    Ok(format!(
        "{name}{}.",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
    ))
}

/// Reads every input topic of `prefix` to its end with a bare consumer; returns the record count.
fn bare_consume(broker: &str, prefix: &str) -> Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", format!("{prefix}bare"))
        // Nothing to commit: the benchmark only reads.
        .set("enable.auto.commit", "false")
        // The end of each partition tells the reader it is done.
        .set("enable.partition.eof", "true")
        // The same fetch wait as Fusion's consumer, for a fair comparison.
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut parts = BTreeSet::new();
    for t in INPUTS {
        let name = format!("{prefix}{t}");
        let md = consumer.fetch_metadata(Some(&name), Duration::from_secs(10))?;
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition_offset(&name, p.id(), Offset::Beginning)?;
            parts.insert((name.clone(), p.id()));
        }
    }
    consumer.assign(&tpl)?;
    // One consumer over several topics: EOF names only the partition, so count EOFs per
    // partition number against the number of topics having it.
    let mut eofs = 0usize;
    let mut records = 0u64;
    let started = Instant::now();
    while eofs < parts.len() {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("bare consumer timed out".into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => records += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => eofs += 1,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(records)
}

fn throughput(broker: &str, fusion: &str, events: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = ScenarioConfig {
        seed: 3,
        events: Some(events),
        ..ScenarioConfig::default()
    };
    write_dir(&cfg, dir.path())?;
    let prefix = prefix("bench")?;
    create_topics(fusion, broker, &prefix)?;
    let published = Instant::now();
    for t in INPUTS {
        let file = dir.path().join(format!("{t}.jsonl"));
        run(
            fusion,
            &[
                "publish",
                "--kafka",
                broker,
                "--topic-prefix",
                &prefix,
                "--topic",
                t,
                "--format",
                "jsonl",
                &file.to_string_lossy(),
            ],
        )?;
    }
    println!("published in {:.1}s", published.elapsed().as_secs_f64());

    let started = Instant::now();
    let records = bare_consume(broker, &prefix)?;
    let bare = started.elapsed().as_secs_f64();
    let started = Instant::now();
    run(
        fusion,
        &[
            "run",
            "--kafka",
            broker,
            "--topic-prefix",
            &prefix,
            "--stop-when-caught-up",
        ],
    )?;
    let full = started.elapsed().as_secs_f64();
    println!(
        "records {records}: bare rdkafka consumer {bare:.2}s ({:.0}/s), fusion run --kafka {full:.2}s ({:.0}/s), ratio {:.2}",
        records as f64 / bare,
        records as f64 / full,
        bare / full
    );
    Ok(())
}

fn rehydration(broker: &str, fusion: &str, indicators: u64, versions: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("partner.indicators.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    // Up to a day of hourly versions.
    for v in 0..versions.clamp(1, 24) {
        // Version v is modified v hours after the first, with another confidence.
        let confidence = 70 + v % 30;
        for n in 0..indicators {
            let ip = std::net::Ipv4Addr::from(0x2d00_0000u32 + n as u32);
            writeln!(
                out,
                r#"{{"schema_version":1,"id":"bench-ind-{n}","kind":"ipv4","value":"{ip}","owner":"p1","source_kind":"partner","source_id":"p1","tlp":"GREEN","sharing":[],"confidence":{confidence},"created":"2026-11-01T00:00:00Z","modified":"2026-11-01T{v:02}:00:00Z","valid_from":"2026-10-01T00:00:00Z"}}"#
            )?;
        }
    }
    out.flush()?;
    drop(out);
    let prefix = prefix("rehydrate")?;
    create_topics(fusion, broker, &prefix)?;
    let published = Instant::now();
    run(
        fusion,
        &[
            "publish",
            "--kafka",
            broker,
            "--topic-prefix",
            &prefix,
            "--topic",
            "partner.indicators",
            "--format",
            "jsonl",
            &file.to_string_lossy(),
        ],
    )?;
    println!(
        "published {indicators} indicators x {versions} versions in {:.1}s",
        published.elapsed().as_secs_f64()
    );
    // The first run reads everything and commits; the second rebuilds its state from the
    // retained history up to those commits: that is the rehydration.
    let first = Instant::now();
    run(
        fusion,
        &[
            "run",
            "--kafka",
            broker,
            "--topic-prefix",
            &prefix,
            "--stop-when-caught-up",
        ],
    )?;
    println!("first run {:.1}s", first.elapsed().as_secs_f64());
    let second = run(
        fusion,
        &[
            "run",
            "--kafka",
            broker,
            "--topic-prefix",
            &prefix,
            "--stop-when-caught-up",
        ],
    )?;
    for line in second.lines().filter(|l| l.contains("rehydration")) {
        println!("{line}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let broker = arg("--broker").unwrap_or_else(|| "127.0.0.1:9092".into());
    let fusion = arg("--fusion").unwrap_or_else(|| "target/release/fusion".into());
    if !Path::new(&fusion).exists() {
        return Err(format!("{fusion} not found: build it with `cargo build --release`").into());
    }
    if let Some(n) = arg("--indicators") {
        let versions = arg("--versions").map_or(Ok(1), |v| v.parse())?;
        return rehydration(&broker, &fusion, n.parse()?, versions);
    }
    let events = arg("--events").map_or(Ok(200_000), |n| n.parse())?;
    throughput(&broker, &fusion, events)
}
