//! A bad-input corpus goes entirely to the dead letters with the right codes, and
//! the valid records interleaved with it all reach the dataflow.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ingest::files::JsonLinesDir;
use ingest::{IngestConfig, IngestStats, Ingestor, MemoryDeadLetters, RawRecord, Router};
use schemas::{ErrorCode, Feed, Input, Topic};

const EVENT: &str = r#"{"schema_version":1,"event_id":"EID","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}"#;
const INDICATOR: &str = r#"{"schema_version":1,"id":"IID","kind":"domain","value":"evil.example","owner":"p1","source_kind":"partner","source_id":"p1","tlp":"AMBER","sharing":["FR"],"confidence":80,"created":"2026-11-23T09:00:00Z","modified":"2026-11-23T09:00:00Z","valid_from":"2026-11-01T00:00:00Z"}"#;

fn corpus() -> Vec<(Topic, Vec<u8>, Option<ErrorCode>)> {
    let mut invalid_utf8 = EVENT.replace("EID", "bad-utf8").into_bytes();
    invalid_utf8[60] = 0xC3;
    invalid_utf8[61] = 0x28;
    let mut huge = EVENT.replace("EID", "huge").into_bytes();
    huge.truncate(huge.len() - 1);
    huge.extend_from_slice(br#","signature":""#);
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    huge.extend_from_slice(b"\"}");
    vec![
        (Topic::SensorEvents, EVENT.replace("EID", "ok-1").into_bytes(), None),
        (Topic::SensorEvents, EVENT.as_bytes()[..50].to_vec(), Some(ErrorCode::MalformedJson)),
        (Topic::SensorEvents, EVENT.replace("EID", "ok-2").into_bytes(), None),
        (Topic::SensorEvents, EVENT.replace(r#""kind":"dns""#, r#""kind":"dns","src_port":"http""#).into_bytes(), Some(ErrorCode::WrongType)),
        (Topic::SensorEvents, EVENT.replace(r#""schema_version":1"#, r#""schema_version":2"#).into_bytes(), Some(ErrorCode::UnknownSchemaVersion)),
        (Topic::SensorEvents, huge, Some(ErrorCode::Oversized)),
        (Topic::PartnerIndicators, INDICATOR.replace("IID", "ind-1").into_bytes(), None),
        (Topic::SensorEvents, invalid_utf8, Some(ErrorCode::InvalidUtf8)),
        (Topic::SensorEvents, EVENT.replace("EID", "evil\\u202e\\u0000id").into_bytes(), Some(ErrorCode::InvalidValue)),
        (Topic::SensorEvents, EVENT.replace("a.evil.example", "<script>alert(1)</script>").into_bytes(), Some(ErrorCode::InvalidValue)),
        (Topic::PartnerIndicators, INDICATOR.replace(r#""tlp":"AMBER""#, r#""tlp":7"#).into_bytes(), Some(ErrorCode::WrongType)),
        (Topic::PartnerIndicators, INDICATOR.replace(r#""owner":"p1","#, "").into_bytes(), Some(ErrorCode::MissingField)),
        (Topic::OsintItems, br#"{"schema_version":1,"feed_id":"f","item_id":"1","value":"not a value","published":"2026-11-23T09:00:00Z"}"#.to_vec(), Some(ErrorCode::InvalidValue)),
        (Topic::DeskActions, br#"{"schema_version":1,"action_id":"a","alert_id":"x","officer_id":"o","center":"Lyon","at":"2026-11-23T09:00:00Z","action":{"kind":"launch_missiles"}}"#.to_vec(), Some(ErrorCode::InvalidValue)),
        (Topic::SensorEvents, b"".to_vec(), Some(ErrorCode::MalformedJson)),
        (Topic::SensorEvents, b"[1,2,3]".to_vec(), Some(ErrorCode::WrongType)),
        (Topic::SensorEvents, EVENT.replace("EID", "ok-3").into_bytes(), None),
    ]
}

/// An ingestor on one worker channel, with the dead letters and counters it reports to.
fn ingestor() -> (
    Ingestor<MemoryDeadLetters>,
    crossbeam_channel::Receiver<Vec<Feed>>,
    MemoryDeadLetters,
    Arc<IngestStats>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let dead = MemoryDeadLetters::with_limit(1000);
    let stats = Arc::new(IngestStats::default());
    let ingestor = Ingestor::new(
        IngestConfig::default(),
        Router::new(vec![tx], 10),
        dead.clone(),
        Arc::clone(&stats),
    );
    (ingestor, rx, dead, stats)
}

#[test]
fn bad_records_are_dead_lettered_with_their_code_and_good_ones_pass() {
    let (mut ingestor, rx, dead, stats) = ingestor();
    let corpus = corpus();
    for (n, (topic, payload, _)) in corpus.iter().enumerate() {
        ingestor
            .ingest(record(*topic, 3, n as i64, payload, &[]))
            .unwrap();
    }
    drop(ingestor);
    let expected_dead: Vec<(i64, ErrorCode)> = corpus
        .iter()
        .enumerate()
        .filter_map(|(n, (_, _, code))| code.map(|c| (n as i64, c)))
        .collect();
    let got_dead: Vec<(i64, ErrorCode)> = dead.kept().iter().map(|d| (d.offset, d.code)).collect();
    assert_eq!(got_dead, expected_dead);
    for d in dead.kept() {
        assert_eq!(d.partition, 3);
        assert!(d.topic.starts_with("fusion."));
        assert!(!d.detail.is_empty());
        let (_, original, _) = &corpus[d.offset as usize];
        let kept = d.original().unwrap();
        assert_eq!(d.original_len as usize, original.len());
        assert_eq!(&original[..kept.len()], &kept[..], "original bytes kept");
    }
    let passed: Vec<String> = rx
        .try_iter()
        .flatten()
        .filter_map(|f| match f {
            Feed::Record {
                input: Input::Event(e),
                ..
            } => Some(e.event_id),
            Feed::Record {
                input: Input::Indicator(i),
                ..
            } => Some(i.id),
            _ => None,
        })
        .collect();
    assert_eq!(passed, vec!["ok-1", "ok-2", "ind-1", "ok-3"]);
    assert_eq!(
        stats.dead_letters.load(Ordering::Relaxed),
        expected_dead.len() as u64
    );
    assert_eq!(stats.records.load(Ordering::Relaxed), corpus.len() as u64);
}

/// Replays the JSON-lines directory `dir` through an ingestor: the events and
/// indicators handed on, as (logical time, id), and the dead letters.
fn replay_dir(dir: &std::path::Path) -> (Vec<(u64, String)>, Vec<schemas::DeadLetter>) {
    let mut source = JsonLinesDir::open(dir).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let dead = MemoryDeadLetters::with_limit(10);
    let mut ingestor = Ingestor::new(
        IngestConfig::default(),
        Router::new(vec![tx], 10),
        dead.clone(),
        Arc::new(IngestStats::default()),
    );
    ingestor.run(&mut source, &AtomicBool::new(false)).unwrap();
    drop(ingestor);
    let passed = rx
        .try_iter()
        .flatten()
        .filter_map(|f| match f {
            Feed::Record {
                time_ms,
                input: Input::Event(e),
            } => Some((time_ms, e.event_id)),
            Feed::Record {
                time_ms,
                input: Input::Indicator(i),
            } => Some((time_ms, i.id)),
            _ => None,
        })
        .collect();
    (passed, dead.kept())
}

#[test]
fn json_lines_files_merge_by_natural_time_and_dead_letter_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = std::fs::File::create(dir.path().join("sensor.events.jsonl")).unwrap();
    let e1 = EVENT.replace("EID", "e1");
    let e2 = EVENT.replace("EID", "e2").replace("10:00:00Z", "12:00:00Z");
    writeln!(ev, "{e1}\n{{not json\n\n{e2}").unwrap();
    let mut ind = std::fs::File::create(dir.path().join("partner.indicators.jsonl")).unwrap();
    writeln!(
        ind,
        "{}",
        INDICATOR
            .replace("IID", "i1")
            .replace("09:00:00Z", "11:00:00Z")
    )
    .unwrap();
    drop((ev, ind));

    let (order, dead) = replay_dir(dir.path());
    let ids: Vec<&str> = order.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, vec!["e1", "i1", "e2"], "merged by natural time");
    assert!(
        order.windows(2).all(|w| w[0].0 <= w[1].0),
        "logical times never go back"
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].offset, dead[0].code),
        (1, ErrorCode::MalformedJson)
    );
    assert_eq!(dead[0].topic, "fusion.sensor.events");
}

#[test]
fn a_line_stamped_far_in_the_future_is_a_dead_letter_and_moves_no_time() {
    let dir = tempfile::tempdir().unwrap();
    let at = |id: &str, t: &str| EVENT.replace("EID", id).replace("2026-11-23T10:00:00Z", t);
    let lines = [
        at("e1", "2026-11-23T10:00:00Z"),
        at("far-mid", "2100-11-01T00:00:00Z"),
        at("e2", "2026-11-23T10:00:05Z"),
        at("far-last", "2100-11-01T00:00:00Z"),
    ];
    std::fs::write(dir.path().join("sensor.events.jsonl"), lines.join("\n")).unwrap();
    let mut ind = std::fs::File::create(dir.path().join("partner.indicators.jsonl")).unwrap();
    writeln!(
        ind,
        "{}",
        INDICATOR
            .replace("IID", "i1")
            .replace("09:00:00Z", "10:00:03Z")
    )
    .unwrap();
    writeln!(
        ind,
        "{}",
        INDICATOR
            .replace("IID", "i-far")
            .replace("2026-11-23T09:00:00Z", "2100-11-01T00:00:00Z")
    )
    .unwrap();
    drop(ind);

    let (passed, dead) = replay_dir(dir.path());
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
    assert_eq!(
        passed,
        [
            (t("2026-11-23T10:00:00Z"), "e1".to_string()),
            (t("2026-11-23T10:00:03Z"), "i1".to_string()),
            (t("2026-11-23T10:00:05Z"), "e2".to_string()),
        ],
        "the rest keeps its own times"
    );
    let got: Vec<(&str, i64, ErrorCode)> = dead
        .iter()
        .map(|d| (d.topic.as_str(), d.offset, d.code))
        .collect();
    assert_eq!(
        got,
        [
            ("fusion.sensor.events", 1, ErrorCode::FutureTimestamp),
            ("fusion.sensor.events", 3, ErrorCode::FutureTimestamp),
            ("fusion.partner.indicators", 1, ErrorCode::FutureTimestamp),
        ]
    );
    assert!(
        dead[0].detail.contains("2100-11-01T00:00:00Z") && dead[0].detail.contains("ahead"),
        "{}",
        dead[0].detail
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let err = JsonLinesDir::open(std::path::Path::new("/nonexistent/fusion"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("sensor.events.jsonl"));
}

/// A bundle with one usable indicator and one whose pattern Fusion does not evaluate.
fn mixed_bundle() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/mixed-bundle.json"
    ))
    .unwrap()
}

/// A record of `topic` at `partition`/`offset`, timed by its offset.
fn record(
    topic: Topic,
    partition: i32,
    offset: i64,
    payload: &[u8],
    headers: &[(&str, &str)],
) -> RawRecord {
    RawRecord {
        topic,
        partition,
        offset,
        timestamp_ms: 1_790_000_000_000 + offset,
        key: None,
        payload: payload.to_vec(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        future_timestamp_ms: None,
    }
}

#[test]
fn stix_bundles_on_the_indicator_topic_pass_object_by_object() {
    let (mut ingestor, rx, dead, stats) = ingestor();
    let marked = [
        (ingest::stix::CONTENT_TYPE, ingest::stix::STIX_CONTENT_TYPE),
        (ingest::stix::OWNER, "acme-cti"),
        (ingest::stix::DEFAULT_TLP, "AMBER+STRICT"),
        (ingest::stix::SHARING, "FR, DE"),
    ];
    let poisonivy = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/stix/poisonivy.json"
    ))
    .unwrap();
    let bundle = mixed_bundle();
    let records = [
        record(Topic::PartnerIndicators, 0, 0, &bundle, &marked),
        // The owner is agreed outside STIX: without it the bundle cannot be attributed.
        record(Topic::PartnerIndicators, 0, 1, &bundle, &marked[..1]),
        // A bundle published without its content type is explained, not parsed as garbage.
        record(Topic::PartnerIndicators, 0, 2, &bundle, &[]),
        record(
            Topic::PartnerIndicators,
            0,
            3,
            b"{\"type\":\"bundle\",\"objects\":[",
            &marked,
        ),
        record(Topic::PartnerIndicators, 0, 4, &poisonivy, &marked),
    ];
    for rec in records {
        ingestor.ingest(rec).unwrap();
    }
    drop(ingestor);
    let indicators: Vec<schemas::Indicator> = rx
        .try_iter()
        .flatten()
        .filter_map(|f| match f {
            Feed::Record {
                input: Input::Indicator(i),
                ..
            } => Some(i),
            _ => None,
        })
        .collect();
    let first = &indicators[0];
    assert_eq!(first.value, "c2.stix-test.example");
    assert_eq!(first.owner, "acme-cti");
    assert_eq!(first.tlp, schemas::Tlp::AmberStrict);
    assert_eq!(first.sharing, vec!["FR".to_string(), "DE".to_string()]);
    assert!(
        indicators.len() > 1 && indicators[1..].iter().all(|i| i.owner == "acme-cti"),
        "the real Poison Ivy bundle gave indicators too"
    );
    let got: Vec<(i64, ErrorCode)> = dead
        .kept()
        .iter()
        .map(|d| (d.offset, d.code))
        .filter(|(offset, _)| *offset < 4)
        .collect();
    assert_eq!(
        got,
        vec![
            (0, ErrorCode::UnsupportedPattern),
            (1, ErrorCode::MissingField),
            (2, ErrorCode::UnsupportedFormat),
            (3, ErrorCode::MalformedJson),
        ]
    );
    let unsupported = &dead.kept()[0];
    assert!(
        unsupported
            .detail
            .contains("indicator--d81f86b9-975b-4c0b-875e-810c5ad45a4f"),
        "the dead letter names the object: {}",
        unsupported.detail
    );
    assert_eq!(
        stats.indicators.load(Ordering::Relaxed),
        indicators.len() as u64
    );
}
