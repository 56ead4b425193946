//! What the tests against the real broker share: the broker's address, unique topic
//! prefixes, live `fusion run --kafka` processes, publishing a scenario, reading a topic.

#![allow(dead_code, clippy::unwrap_used)] // Each test uses part of it; a test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use schemas::AlertChange;

/// Fusion's input topics (suffixes).
pub const INPUTS: [&str; 4] = [
    "sensor.events",
    "partner.indicators",
    "osint.items",
    "desk.actions",
];

/// The broker deploy/test.sh started.
pub fn bootstrap() -> String {
    match std::env::var("FUSION_KAFKA_BOOTSTRAP") {
        Ok(a) if !a.trim().is_empty() => a,
        _ => panic!(
            "FUSION_KAFKA_BOOTSTRAP is not set: run through deploy/test.sh, or start a broker with \
             `deploy/kafka/start-broker.sh 19092` and set FUSION_KAFKA_BOOTSTRAP=127.0.0.1:19092"
        ),
    }
}

/// A topic prefix (or name) no other test or run uses.
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}{}x{nanos}.", std::process::id())
}

/// Wall clock, ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs `fusion` to completion; its stdout. Fails the test if it fails.
pub fn fusion(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fusion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sum of every sample of `name` (all label sets) in a Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A live `fusion run --kafka` with a metrics endpoint; its log goes to a file.
pub struct Run {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Run {
    /// Starts `fusion run --headless --kafka BROKER --topic-prefix PREFIX` with `extra`.
    pub fn start(broker: &str, prefix: &str, extra: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fusion"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "run",
                "--headless",
                "--kafka",
                broker,
                "--topic-prefix",
                prefix,
            ])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// Kills it (SIGKILL); its WARN and ERROR log lines.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.complaints()
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to finish its outputs.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.complaints()
    }

    /// Its WARN and ERROR log lines.
    pub fn complaints(&self) -> String {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The metrics address the run logged.
    pub fn metrics_url(&mut self) -> String {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            if let Some(at) = log.find("serving metrics on http://") {
                let rest = &log[at + "serving metrics on ".len()..];
                if let Some(end) = rest.find("/metrics") {
                    return rest[..end + "/metrics".len()].to_string();
                }
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the run ended:\n{log}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no metrics address logged:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The input records of a generated scenario, interleaved across topics in file order:
/// (topic, key, payload).
pub fn scenario_records(dir: &Path) -> Vec<(&'static str, Option<String>, Vec<u8>)> {
    let mut all: Vec<(f64, &'static str, Vec<u8>)> = Vec::new();
    for topic in INPUTS {
        let text = std::fs::read(dir.join(format!("{topic}.jsonl"))).unwrap();
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let n = lines.len().max(1) as f64;
        for (i, line) in lines.into_iter().enumerate() {
            all.push((i as f64 / n, topic, line.to_vec()));
        }
    }
    // Merged by relative position, so each topic's records spread over the whole run.
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter()
        .map(|(_, topic, line)| {
            // Versions of one indicator go to one partition, in order.
            let key = (topic == "partner.indicators")
                .then(|| serde_json::from_slice::<serde_json::Value>(&line).ok())
                .flatten()
                .and_then(|v| v["id"].as_str().map(str::to_string));
            (topic, key, line)
        })
        .collect()
}

/// An idempotent producer.
pub fn producer(broker: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

/// Publishes `records` in `bursts` with idle spells of `idle` between them, stamped with
/// the wall clock at sending; indicators and OSINT items are stamped when the idle spell
/// before their burst began (a partner's batch that took a while to arrive), so a live
/// run counts them late. Returns how many were stamped so.
pub fn publish_in_bursts(
    producer: &ThreadedProducer<DefaultProducerContext>,
    prefix: &str,
    records: &[(&'static str, Option<String>, Vec<u8>)],
    bursts: usize,
    idle: Duration,
) -> usize {
    let mut late = 0;
    let per_burst = records.len().div_ceil(bursts.max(1)).max(1);
    let mut spell_began = now_ms() - 1_000;
    for burst in records.chunks(per_burst) {
        for (topic, key, payload) in burst {
            let name = format!("{prefix}{topic}");
            let mut ts = now_ms();
            if *topic == "partner.indicators" || *topic == "osint.items" {
                ts = spell_began;
                late += 1;
            }
            let mut rec = BaseRecord::to(&name).payload(payload).timestamp(ts);
            if let Some(k) = key {
                rec = rec.key(k.as_str());
            }
            producer.send(rec).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        spell_began = now_ms();
        std::thread::sleep(idle);
    }
    late
}

/// Every record of `topic` as (key, payload), read from the beginning to the end of
/// each partition.
pub fn read_records(broker: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", format!("reader-{}", unique("")))
        .set("enable.auto.commit", "false")
        // The end of each partition tells the reader it has everything.
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    let started = Instant::now();
    while done.len() < parts.len() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "reading {topic} timed out"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                done.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The payload of every record of `topic` ([`read_records`]).
pub fn read_topic(broker: &str, topic: &str) -> Vec<Vec<u8>> {
    read_records(broker, topic)
        .into_iter()
        .map(|(_, payload)| payload)
        .collect()
}

/// (id, version) → content, asserting that no (id, version) came with two contents.
pub fn dedup(changes: &[AlertChange], what: &str) -> BTreeMap<(String, u64), String> {
    let mut out: BTreeMap<(String, u64), String> = BTreeMap::new();
    for c in changes {
        let content = serde_json::to_string(c).unwrap();
        if let Some(prev) = out.insert((c.alert.id.clone(), c.version), content.clone()) {
            assert_eq!(
                prev, content,
                "{what}: alert {} version {} with two contents",
                c.alert.id, c.version
            );
        }
    }
    out
}

/// The two de-duplicated alert histories are equal; otherwise the first differences are shown.
pub fn assert_same_alerts(
    got: &BTreeMap<(String, u64), String>,
    want: &BTreeMap<(String, u64), String>,
) {
    if got == want {
        return;
    }
    let show = |m: &BTreeMap<(String, u64), String>, other: &BTreeMap<(String, u64), String>| {
        m.iter()
            .filter(|(k, v)| other.get(*k) != Some(*v))
            .take(5)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "alert histories differ: {} got, {} wanted, {} (id, version) only got, {} only wanted\n\
         first of got not in wanted:\n{}\nfirst of wanted not in got:\n{}",
        got.len(),
        want.len(),
        got.keys().filter(|k| !want.contains_key(*k)).count(),
        want.keys().filter(|k| !got.contains_key(*k)).count(),
        show(got, want),
        show(want, got),
    );
}

/// Input partitions under `prefix` holding records whose committed offset (of `group`) is
/// short of their end: (topic/partition, committed offset, end).
pub fn short_of_the_end(broker: &str, group: &str, prefix: &str) -> Vec<(String, Offset, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut short = Vec::new();
    for topic in INPUTS {
        let name = format!("{prefix}{topic}");
        let md = consumer
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(&name, p.id());
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        // Copied out before `committed` is dropped (holding it across the consumer's drop hangs).
        let offsets: Vec<(i32, Offset)> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        drop(committed);
        for (p, offset) in offsets {
            let (_, high) = consumer
                .fetch_watermarks(&name, p, Duration::from_secs(10))
                .unwrap();
            if high > 0 && offset != Offset::Offset(high) {
                short.push((format!("{name}/{p}"), offset, high));
            }
        }
    }
    short
}

/// The committed offsets of `group` on the input topics under `prefix`.
pub fn committed(broker: &str, group: &str, prefix: &str) -> Vec<(String, i32, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut out = Vec::new();
    for topic in INPUTS {
        let name = format!("{prefix}{topic}");
        let md = consumer
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(&name, p.id());
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        // Copied out before `committed` is dropped (holding it across the consumer's drop hangs).
        out.extend(
            committed
                .elements()
                .iter()
                .map(|e| (name.clone(), e.partition(), format!("{:?}", e.offset()))),
        );
        drop(committed);
    }
    out
}
