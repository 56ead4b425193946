//! `fusion run --kafka` against the real broker: a crash-and-restart run derives
//! exactly the alerts of an uninterrupted one; a broker restart during consumption
//! is survived; a bad-input corpus lands in the dead-letter topic with the right
//! codes while the valid records around it are processed.
//!
//! Needs `FUSION_KAFKA_BOOTSTRAP` (deploy/test.sh starts a broker and sets it).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod kafka_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_common::*;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use schemas::{AlertChange, DeadLetter, ErrorCode};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A `fusion run --kafka …`; its log goes to a file (a pipe nobody reads until the
/// end could fill up and block the run).
struct Run {
    child: Child,
    log: tempfile::NamedTempFile,
}

/// A run that stops once it has read every input partition to its end.
fn spawn_run(broker: &str, prefix: &str) -> Run {
    spawn_run_with(broker, prefix, &["--stop-when-caught-up"])
}

fn spawn_run_with(broker: &str, prefix: &str, extra: &[&str]) -> Run {
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--kafka", broker, "--topic-prefix", prefix])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    Run { child, log }
}

impl Run {
    /// The warnings and errors the run logged.
    fn complaints(&self) -> String {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn wait_success(mut run: Run) {
    let started = Instant::now();
    loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(run.log.path()).unwrap_or_default();
            assert!(status.success(), "fusion run failed: {log}");
            let complaints = run.complaints();
            if !complaints.is_empty() {
                eprintln!("fusion run logged:\n{complaints}");
            }
            return;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = run.child.kill();
            panic!(
                "fusion run did not finish in {RUN_TIMEOUT:?}; it logged:\n{}",
                run.complaints()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the topics of `prefix`, `partitions` partitions each (none compacted: the
/// indicator topic keeps every version, so whole alert histories can be compared).
fn create_topics(broker: &str, prefix: &str, partitions: u32) {
    fusion(&[
        "topics",
        "create",
        "--kafka",
        broker,
        "--topic-prefix",
        prefix,
        "--partitions",
        &partitions.to_string(),
    ]);
}

/// A producer of hand-made test records.
fn producer(broker: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        // The bad-input corpus holds a 2 MiB record: the client must let it through.
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap()
}

/// Sends `(topic without prefix, payload)` records, the n-th at time 1_795_000_000_000 + n ms.
fn send_numbered<'a>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    prefix: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) {
    for (n, (topic, payload)) in records.into_iter().enumerate() {
        let name = format!("{prefix}{topic}");
        producer
            .send(
                BaseRecord::<(), [u8]>::to(&name)
                    .payload(payload)
                    .timestamp(1_795_000_000_000 + n as i64),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// Creates the topics of `prefix` and publishes the scenario in `dir` there.
fn publish_scenario(broker: &str, prefix: &str, dir: &Path) {
    create_topics(broker, prefix, 3);
    for topic in INPUTS {
        let file = dir.join(format!("{topic}.jsonl"));
        fusion(&[
            "publish",
            "--kafka",
            broker,
            "--topic-prefix",
            prefix,
            "--topic",
            topic,
            "--format",
            "jsonl",
            file.to_str().unwrap(),
        ]);
    }
}

fn alert_changes(broker: &str, prefix: &str) -> Vec<AlertChange> {
    read_topic(broker, &format!("{prefix}alerts"))
        .into_iter()
        .map(|v| serde_json::from_slice(&v).unwrap())
        .collect()
}

fn dead_letters(broker: &str, prefix: &str) -> Vec<DeadLetter> {
    read_topic(broker, &format!("{prefix}deadletter"))
        .into_iter()
        .map(|v| serde_json::from_slice(&v).unwrap())
        .collect()
}

/// Committed offsets of the fusion group equal the end of every input partition.
fn assert_all_committed(broker: &str, prefix: &str) {
    let short = short_of_the_end(broker, "fusion", prefix);
    assert!(short.is_empty(), "everything read is committed: {short:?}");
}

fn truth(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap()
}

#[test]
fn crash_and_restart_derive_the_same_alerts_as_an_uninterrupted_run() {
    let broker = bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    fusion(&[
        "generate",
        "--seed",
        "21",
        "--events",
        "200000",
        "--out",
        scn.to_str().unwrap(),
    ]);
    let bad = truth(&scn)["bad_records"].as_u64().unwrap();

    let whole = unique("whole");
    publish_scenario(&broker, &whole, &scn);
    let started = Instant::now();
    wait_success(spawn_run(&broker, &whole));
    let full_run = started.elapsed();
    let expected = dedup(&alert_changes(&broker, &whole), "the uninterrupted run");
    assert!(expected.len() > 100, "the scenario raises alerts");

    let crashed = unique("crashed");
    publish_scenario(&broker, &crashed, &scn);
    // Kill points spread over the run, varying from test run to test run.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for n in 0..3u64 {
        let span = full_run.as_millis() as u64 * 8 / 10;
        let at = 500
            + (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(n * 1442695040888963407)
                >> 33)
                % span.max(1);
        eprintln!("crash {n}: kill -9 after {at} ms");
        let mut run = spawn_run(&broker, &crashed);
        std::thread::sleep(Duration::from_millis(at));
        run.child.kill().unwrap(); // SIGKILL
        run.child.wait().unwrap();
        let complaints = run.complaints();
        if !complaints.is_empty() {
            eprintln!("fusion run (killed) logged:\n{complaints}");
        }
    }
    wait_success(spawn_run(&broker, &crashed));
    let got = dedup(&alert_changes(&broker, &crashed), "the crashed runs");
    assert_same_alerts(&got, &expected);

    let dead: BTreeSet<(String, i32, i64)> = dead_letters(&broker, &crashed)
        .into_iter()
        .map(|d| (d.topic, d.partition, d.offset))
        .collect();
    assert_eq!(
        dead.len() as u64,
        bad,
        "every bad record dead-lettered (duplicates aside)"
    );
    assert_eq!(dead_letters(&broker, &whole).len() as u64, bad);
    assert_all_committed(&broker, &crashed);
}

#[test]
fn a_bad_input_corpus_lands_in_the_dead_letters_and_valid_records_pass() {
    let broker = bootstrap();
    let prefix = unique("bad");
    create_topics(&broker, &prefix, 1);
    let producer = producer(&broker);
    let event = |id: &str, domain: &str| {
        format!(
            r#"{{"schema_version":1,"event_id":"{id}","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-20T10:00:00Z","kind":"dns","domain":"{domain}"}}"#
        )
    };
    let indicator = r#"{"schema_version":1,"id":"ind-bad-test","kind":"domain","value":"evil.example","owner":"p1","source_kind":"partner","source_id":"p1","tlp":"GREEN","sharing":[],"confidence":80,"created":"2026-11-20T09:00:00Z","modified":"2026-11-20T09:00:00Z","valid_from":"2026-11-01T00:00:00Z"}"#;
    let mut invalid_utf8 = event("utf8", "x.evil.example").into_bytes();
    invalid_utf8[30] = 0xff;
    let mut huge = event("huge", "x.evil.example").into_bytes();
    huge.truncate(huge.len() - 1);
    huge.extend_from_slice(br#","signature":""#);
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend_from_slice(b"\"}");
    let corpus: Vec<(&str, Vec<u8>, Option<ErrorCode>)> = vec![
        ("partner.indicators", indicator.as_bytes().to_vec(), None),
        ("sensor.events", event("ok-1", "a.evil.example").into_bytes(), None),
        ("sensor.events", event("trunc", "a.evil.example").as_bytes()[..60].to_vec(), Some(ErrorCode::MalformedJson)),
        ("sensor.events", event("wrong", "a.evil.example").replace(r#""kind":"dns""#, r#""kind":42"#).into_bytes(), Some(ErrorCode::WrongType)),
        ("sensor.events", event("v9", "a.evil.example").replace(r#""schema_version":1"#, r#""schema_version":9"#).into_bytes(), Some(ErrorCode::UnknownSchemaVersion)),
        ("sensor.events", huge, Some(ErrorCode::Oversized)),
        ("sensor.events", invalid_utf8, Some(ErrorCode::InvalidUtf8)),
        ("sensor.events", event("evil\\u202e", "a.evil.example").into_bytes(), Some(ErrorCode::InvalidValue)),
        ("sensor.events", event("ok-2", "b.evil.example").into_bytes(), None),
        // "ok-1" again from another country, within the evidence window: a conflicting duplicate.
        ("sensor.events", event("ok-1", "a.evil.example").replace(r#""country":"FR""#, r#""country":"DE""#).into_bytes(), Some(ErrorCode::DuplicateConflict)),
        ("osint.items", br#"{"schema_version":1,"feed_id":"f","item_id":"1","value":"'; DROP TABLE","published":"2026-11-20T09:00:00Z"}"#.to_vec(), Some(ErrorCode::InvalidValue)),
        ("desk.actions", b"{\"schema_version\":1,\"action_id\":\"a1\"".to_vec(), Some(ErrorCode::MalformedJson)),
        ("sensor.events", event("ok-3", "c.evil.example").into_bytes(), None),
    ];
    send_numbered(
        &producer,
        &prefix,
        corpus.iter().map(|(t, p, _)| (*t, p.as_slice())),
    );
    // Raw STIX: a bundle whose owner is not named cannot be attributed; a named one passes
    // object by object (its unsupported pattern is dead-lettered, its usable indicator
    // counts, and an event after it matches).
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/data/mixed-bundle.json");
    producer
        .send(
            BaseRecord::<(), [u8]>::to(&format!("{prefix}partner.indicators"))
                .payload(&std::fs::read(&bundle).unwrap())
                .timestamp(1_795_000_000_000 + corpus.len() as i64)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/stix+json;version=2.1"),
                })),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let published = fusion(&[
        "publish",
        "--kafka",
        &broker,
        "--topic-prefix",
        &prefix,
        "--topic",
        "partner.indicators",
        "--format",
        "stix",
        "--raw",
        "--owner",
        "acme-cti",
        "--tlp",
        "GREEN",
        bundle.to_str().unwrap(),
    ]);
    assert!(published.contains("published 1 records"), "{published}");
    producer
        .send(
            BaseRecord::<(), [u8]>::to(&format!("{prefix}sensor.events"))
                .payload(event("ok-stix", "www.c2.stix-test.example").as_bytes())
                .timestamp(1_795_200_000_000),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    // A producer whose clock says 2100: a dead letter, not a jump of the clock for everyone.
    producer
        .send(
            BaseRecord::<(), [u8]>::to(&format!("{prefix}sensor.events"))
                .payload(event("far", "a.evil.example").as_bytes())
                .timestamp(4_102_444_800_000),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    drop(producer);

    wait_success(spawn_run(&broker, &prefix));
    let mut dead: Vec<(String, ErrorCode)> = dead_letters(&broker, &prefix)
        .into_iter()
        .map(|d| {
            (
                d.topic.trim_start_matches(prefix.as_str()).to_string(),
                d.code,
            )
        })
        .collect();
    dead.sort();
    let mut want: Vec<(String, ErrorCode)> = corpus
        .iter()
        .filter_map(|(t, _, c)| c.map(|c| (t.to_string(), c)))
        .chain([
            ("partner.indicators".to_string(), ErrorCode::MissingField),
            (
                "partner.indicators".to_string(),
                ErrorCode::UnsupportedPattern,
            ),
            ("sensor.events".to_string(), ErrorCode::FutureTimestamp),
        ])
        .collect();
    want.sort();
    assert_eq!(dead, want);
    let alerts = alert_changes(&broker, &prefix);
    let last = alerts
        .iter()
        .rfind(|c| c.alert.key == "ind-bad-test")
        .unwrap();
    assert_eq!(
        last.alert.sightings, 3,
        "the three valid events around the corpus all matched, and neither the far one nor \
         the conflicting copy counted"
    );
    assert!(
        alerts
            .iter()
            .any(|c| c.alert.key.starts_with("indicator--8e2e2d2b")),
        "the indicator of the raw STIX bundle matched the event after it"
    );
    assert_all_committed(&broker, &prefix);
}

#[test]
fn a_broker_restart_during_consumption_is_survived() {
    let root = env!("CARGO_MANIFEST_DIR");
    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("broker.state");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let broker_cmd = |script: &str| {
        let out = Command::new(format!("{root}/deploy/kafka/{script}"))
            .arg(port.to_string())
            .env("FUSION_BROKER_DATA", data.path())
            .env("FUSION_BROKER_STATE", &state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    broker_cmd("start-broker.sh");
    let broker = format!("127.0.0.1:{port}");
    let result = std::panic::catch_unwind(|| {
        let dir = tempfile::tempdir().unwrap();
        let scn = dir.path().join("scn");
        fusion(&[
            "generate",
            "--seed",
            "5",
            "--events",
            "60000",
            "--out",
            scn.to_str().unwrap(),
        ]);
        let prefix = unique("restart");
        publish_scenario(&broker, &prefix, &scn);
        let child = spawn_run_with(
            &broker,
            &prefix,
            &["--stop-when-caught-up", "--metrics-addr", "127.0.0.1:0"],
        );
        // The broker goes away once records flow (not while the run is still connecting).
        let url = metrics_url(&child);
        let waiting = Instant::now();
        while metric_sum(&get(&url), "fusion_kafka_records_in_total") == 0.0 {
            assert!(
                waiting.elapsed() < Duration::from_secs(120),
                "the run read nothing; it logged:\n{}",
                child.complaints()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker_cmd("stop-broker.sh"); // SIGKILL
        std::thread::sleep(Duration::from_secs(3));
        broker_cmd("start-broker.sh");
        wait_success(child);

        // The same scenario replayed from its files gives the reference alerts.
        let reference = dir.path().join("reference.jsonl");
        fusion(&[
            "run",
            "--input",
            scn.to_str().unwrap(),
            "--alerts-out",
            reference.to_str().unwrap(),
        ]);
        let want: Vec<AlertChange> = std::fs::read_to_string(&reference)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got = dedup(&alert_changes(&broker, &prefix), "the run");
        assert_same_alerts(&got, &dedup(&want, "the expected"));
        assert_eq!(
            dead_letters(&broker, &prefix)
                .iter()
                .map(|d| (d.topic.clone(), d.partition, d.offset))
                .collect::<BTreeSet<_>>()
                .len() as u64,
            truth(&scn)["bad_records"].as_u64().unwrap()
        );
    });
    broker_cmd("stop-broker.sh");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The metrics address a run started with `--metrics-addr 127.0.0.1:0` logged.
fn metrics_url(run: &Run) -> String {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(run.log.path()).unwrap_or_default();
        if let Some(at) = log.find("serving metrics on http://") {
            let rest = &log[at + "serving metrics on ".len()..];
            if let Some(end) = rest.find("/metrics") {
                return rest[..end + "/metrics".len()].to_string();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no metrics address logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The body of a GET of `url`.
fn get(url: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await?.text().await })
        .unwrap()
}

#[test]
fn a_live_run_serves_metrics_of_what_it_read_wrote_and_committed() {
    let broker = bootstrap();
    let prefix = unique("metrics");
    create_topics(&broker, &prefix, 2);
    let producer = producer(&broker);
    let indicator = r#"{"schema_version":1,"id":"ind-metrics","kind":"domain","value":"evil.example","owner":"p1","source_kind":"partner","source_id":"p1","tlp":"GREEN","sharing":[],"confidence":80,"created":"2026-11-20T09:00:00Z","modified":"2026-11-20T09:00:00Z","valid_from":"2026-11-01T00:00:00Z"}"#;
    let event = |id: &str| {
        format!(
            r#"{{"schema_version":1,"event_id":"{id}","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-20T10:00:00Z","kind":"dns","domain":"x.evil.example"}}"#
        )
    };
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("partner.indicators", indicator.as_bytes().to_vec()),
        ("sensor.events", event("m-1").into_bytes()),
        ("sensor.events", b"{\"schema_version\":1,".to_vec()),
        ("sensor.events", event("m-2").into_bytes()),
        ("osint.items", b"[]".to_vec()),
        ("sensor.events", event("m-3").into_bytes()),
    ];
    send_numbered(
        &producer,
        &prefix,
        records.iter().map(|(t, p)| (*t, p.as_slice())),
    );
    producer.flush(Duration::from_secs(30)).unwrap();
    drop(producer);

    let mut run = spawn_run_with(&broker, &prefix, &["--metrics-addr", "127.0.0.1:0"]);
    let started = Instant::now();
    let url = metrics_url(&run);
    assert_eq!(get(&url.replace("/metrics", "/healthz")).trim(), "ok");

    // Everything read, both bad records dead-lettered and acknowledged, an alert written,
    // offsets committed, no lag left.
    let mut text = String::new();
    let settled = |text: &str| {
        metric_sum(text, "fusion_kafka_records_in_total") == 6.0
            && metric_sum(text, "fusion_kafka_deadletters_total") == 2.0
            && metric_sum(text, "fusion_kafka_consumer_lag") == 0.0
            && metric_sum(text, "fusion_kafka_rehydrating") == 0.0
            && metric_sum(text, "fusion_kafka_commit_seconds_count") >= 1.0
            && text.contains(&format!(
                "fusion_kafka_records_out_total{{topic=\"{prefix}deadletter\"}} 2"
            ))
            && text.lines().any(|l| {
                l.starts_with(&format!(
                    "fusion_kafka_records_out_total{{topic=\"{prefix}alerts\"}}"
                ))
            })
    };
    while started.elapsed() < Duration::from_secs(120) {
        text = get(&url);
        if settled(&text) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        settled(&text),
        "the metrics never settled; last scrape:\n{text}\nthe run logged:\n{}",
        run.complaints()
    );
    // The run may still be writing changes of its last logical times (an update after the
    // opening): compare the count with the topic while it runs, until they agree.
    let counted = |text: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "fusion_kafka_records_out_total{{topic=\"{prefix}alerts\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(-1.0)
    };
    let mut on_topic = alert_changes(&broker, &prefix).len() as f64;
    while counted(&text) != on_topic && started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(500));
        text = get(&url);
        on_topic = alert_changes(&broker, &prefix).len() as f64;
    }
    let _ = run.child.kill();
    let _ = run.child.wait();
    for code in ["malformed_json", "wrong_type"] {
        assert!(
            text.contains(&format!(
                "fusion_kafka_deadletters_total{{code=\"{code}\"}} 1"
            )),
            "no dead letter counted as {code}:\n{text}"
        );
    }
    assert_eq!(
        counted(&text),
        on_topic,
        "every alert change on the topic was counted once it was acknowledged"
    );
}

#[test]
fn a_run_whose_alert_output_fails_stops_at_once_commits_only_what_was_written_and_a_rerun_completes_it()
 {
    let broker = bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    fusion(&[
        "generate",
        "--seed",
        "23",
        "--events",
        "100000",
        "--out",
        scn.to_str().unwrap(),
    ]);
    let whole = unique("whole");
    publish_scenario(&broker, &whole, &scn);
    wait_success(spawn_run(&broker, &whole));
    let expected = dedup(&alert_changes(&broker, &whole), "the uninterrupted run");
    assert!(expected.len() > 50, "the scenario raises alerts");

    // The alerts file is on a full disk: the first closed time with alert changes fails.
    let failing = unique("failing");
    publish_scenario(&broker, &failing, &scn);
    let mut run = spawn_run_with(
        &broker,
        &failing,
        &["--stop-when-caught-up", "--alerts-out", "/dev/full"],
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the failing run did not stop: {}",
            run.complaints()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(run.log.path()).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: alert-output failed: cannot write the alerts file /dev/full"),
        "{log}"
    );
    // Ingestion did not go on to the end and wait there for outputs that never came.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !short_of_the_end(&broker, "fusion", &failing).is_empty(),
        "what produced the alerts that were not written is not committed"
    );

    wait_success(spawn_run(&broker, &failing));
    assert_same_alerts(
        &dedup(&alert_changes(&broker, &failing), "the failing run"),
        &expected,
    );
    assert_all_committed(&broker, &failing);
}
