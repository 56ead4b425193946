//! Exact replay against the real broker (DESIGN.md, "Time and consistency", guarantee 3):
//! a live `fusion run --kafka`, fed records stamped "now" with idle spells between bursts
//! and some records stamped seconds in the past (late), is killed with SIGKILL at random
//! points and restarted, over and over. Everything it ever wrote to the alert topic must
//! equal what one uninterrupted replay of the same topics re-derives, and every input
//! offset must end up committed.
//!
//! Needs `FUSION_KAFKA_BOOTSTRAP` (deploy/test.sh starts a broker and sets it).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod kafka_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use schemas::AlertChange;

/// Kill-and-restart trials (the seed fixes where each kill falls).
const TRIALS: u64 = 12;
const SEED: u64 = 0x5eed_0013;

/// Indicators and OSINT items (each) published only once the last run is live.
const HELD_BACK: usize = 5;

/// How far behind the wall clock late records are stamped: enough for a sighting counted
/// at its own time rather than where the live run counted it to change alert versions.
const LATE_BY_MS: i64 = 20_000;

/// A fixed pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Publishes `records` in bursts with idle spells between them, stamped with the wall
/// clock at sending, with two kinds of late records (both far beyond the skew allowance):
/// - indicators and OSINT items are stamped when the idle spell before their burst began
///   (a partner's batch that took a while to arrive): behind the frontier an idle run
///   reached, though not behind anything else of their partitions, so a replay without
///   the remap would count them at their own, earlier time, and the alerts they open
///   would get other versions;
/// - every `late_every`-th other record is stamped [`LATE_BY_MS`] earlier.
///
/// Returns how many records were stamped late.
fn publish_live(
    producer: &ThreadedProducer<DefaultProducerContext>,
    prefix: &str,
    records: &[(&'static str, Option<String>, Vec<u8>)],
    bursts: usize,
    late_every: usize,
    rng: &mut Rng,
) -> usize {
    let mut late = 0;
    let per_burst = records.len().div_ceil(bursts.max(1));
    let mut spell_began = now_ms() - 1_000;
    for (b, burst) in records.chunks(per_burst.max(1)).enumerate() {
        for (i, (topic, key, payload)) in burst.iter().enumerate() {
            let name = format!("{prefix}{topic}");
            let mut ts = now_ms();
            if *topic == "partner.indicators" || *topic == "osint.items" {
                ts = spell_began;
                late += 1;
            } else if (b * per_burst + i) % late_every == late_every - 1 {
                ts -= LATE_BY_MS;
                late += 1;
            }
            let mut rec = BaseRecord::to(&name).payload(payload).timestamp(ts);
            if let Some(k) = key {
                rec = rec.key(k.as_str());
            }
            producer.send(rec).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        // An idle spell: long enough for the broker to confirm every partition's end
        // well past the skew allowance.
        spell_began = now_ms();
        std::thread::sleep(Duration::from_millis(700 + rng.below(900)));
    }
    late
}

#[test]
fn kill_9_at_random_points_of_a_live_run_re_derives_the_alert_history_of_an_uninterrupted_replay() {
    let broker = bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    // Event times just behind the wall clock, as a live stream's are (the retained
    // history is judged by them: month-old events would already be out of it).
    let start = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
    fusion(&[
        "generate",
        "--seed",
        "13",
        "--events",
        "30000",
        "--events-per-sec",
        "2000",
        "--start",
        &start,
        "--out",
        scn.to_str().unwrap(),
    ]);
    let records = scenario_records(&scn);
    let total = records.len();
    let prefix = unique("replay");
    fusion(&[
        "topics",
        "create",
        "--kafka",
        &broker,
        "--topic-prefix",
        &prefix,
        "--partitions",
        "3",
    ]);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let producer = Arc::new(producer);

    // Most records are published while runs are killed and restarted.
    // The last indicators and OSINT items are held back for the end, when a live run is
    // sure to be idle when they arrive: they retroactively match earlier events, and the
    // alerts they open carry their logical time as version.
    let mut held = Vec::new();
    let mut rest = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let totals = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.0).or_insert(0usize) += 1;
        m
    });
    for r in records {
        let n = seen.entry(r.0).or_default();
        *n += 1;
        let indicators = r.0 == "partner.indicators" || r.0 == "osint.items";
        if indicators && *n + HELD_BACK > totals[r.0] {
            held.push(r);
        } else {
            rest.push(r);
        }
    }
    assert!(held.len() >= 2 * HELD_BACK - 2, "{} held back", held.len());
    let (head, rest_tail) = rest.split_at(rest.len() * 9 / 10);
    let tail: Vec<_> = held.iter().chain(rest_tail).cloned().collect();
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let producer = Arc::clone(&producer);
        let prefix = prefix.clone();
        let head = head.to_vec();
        let publishing = Arc::clone(&publishing);
        std::thread::spawn(move || {
            let late = publish_live(&producer, &prefix, &head, 12, 97, &mut Rng(SEED ^ 1));
            publishing.store(false, Ordering::SeqCst);
            late
        })
    };
    let mut rng = Rng(SEED);
    for trial in 0..TRIALS {
        let run = Run::start(&broker, &prefix, &[]);
        let at = 300 + rng.below(3_500);
        std::thread::sleep(Duration::from_millis(at));
        let complaints = run.kill();
        eprintln!("trial {trial}: kill -9 after {at} ms");
        if !complaints.is_empty() {
            eprintln!("the killed run logged:\n{complaints}");
        }
    }
    let late_sent = publisher.join().unwrap();
    assert!(!publishing.load(Ordering::SeqCst));

    // A run that stays: it catches up, then the rest arrives while it is live and idle
    // between bursts, late records included.
    let mut run = Run::start(&broker, &prefix, &[]);
    let url = run.metrics_url();
    let scrape = || reqwest::blocking::get(&url).unwrap().text().unwrap();
    let wait_until = |what: &str, done: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        loop {
            let text = scrape();
            if done(&text) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{what} never happened; last scrape:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Read everything published (the run reads from the beginning), rebuilt, no lag.
    let caught_up = |t: &str, published: usize| {
        metric_sum(t, "fusion_kafka_records_in_total") == published as f64
            && metric_sum(t, "fusion_kafka_rehydrating") == 0.0
            && metric_sum(t, "fusion_kafka_consumer_lag") == 0.0
    };
    wait_until("catching up", &|t| caught_up(t, head.len()));
    // Idle for a while: the broker confirms every partition's end past the allowance.
    std::thread::sleep(Duration::from_secs(1));
    let late_sent = late_sent + publish_live(&producer, &prefix, &tail, 4, 13, &mut Rng(SEED ^ 2));
    assert!(late_sent > 0);
    let text = wait_until("counting late records", &|t| {
        caught_up(t, total) && metric_sum(t, "fusion_ingest_late_records_total") > 0.0
    });
    eprintln!(
        "late records: {late_sent} stamped behind, {} counted by the last run",
        metric_sum(&text, "fusion_ingest_late_records_total")
    );
    // Everything read becomes durable and is committed.
    let started = Instant::now();
    while !short_of_the_end(&broker, "fusion", &prefix).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "offsets still not committed: {:?}\nthe run logged:\n{}",
            short_of_the_end(&broker, "fusion", &prefix),
            run.complaints()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let complaints = run.kill();
    if !complaints.is_empty() {
        eprintln!("the last live run logged:\n{complaints}");
    }
    let live = dedup(
        &read_topic(&broker, &format!("{prefix}alerts"))
            .iter()
            .map(|v| serde_json::from_slice(v).unwrap())
            .collect::<Vec<AlertChange>>(),
        "the live runs",
    );
    let remap = read_topic(&broker, &format!("{prefix}remap"));
    let remap_before = remap.len();
    let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
    for b in &remap {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        *by_topic
            .entry(v["topic"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!("bindings per topic: {by_topic:?}");
    assert!(
        remap_before > 0,
        "late records were bound to their logical times"
    );

    // One uninterrupted replay of the same topics (its own consumer group).
    let replayed = dir.path().join("replayed.jsonl");
    fusion(&[
        "run",
        "--headless",
        "--kafka",
        &broker,
        "--topic-prefix",
        &prefix,
        "--group",
        "replay",
        "--stop-when-caught-up",
        "--alerts-out",
        replayed.to_str().unwrap(),
    ]);
    let want: Vec<AlertChange> = std::fs::read_to_string(&replayed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = dedup(&want, "the replay");
    eprintln!(
        "alert changes: {} written live (de-duplicated), {} replayed",
        live.len(),
        want.len()
    );
    assert!(
        want.len() > 20,
        "the scenario raises alerts: {}",
        want.len()
    );
    assert_same_alerts(&live, &want);
    assert_eq!(
        read_topic(&broker, &format!("{prefix}remap")).len(),
        remap_before,
        "the replay decided no logical time anew"
    );
}
