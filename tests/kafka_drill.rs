//! Drills against the real broker: a live `fusion run --kafka`, fed in bursts with idle
//! spells and late records, desk actions included, is captured from its topics after the
//! fact and replayed as a drill without a shift. The drill's alert and routing history for
//! the period equals the live one, record for record apart from the drill marking; the
//! capture and the drill leave every live topic and the live group's offsets as they were,
//! and the drill's alerts go to its own `drill.NAME.` topic.
//!
//! Needs `FUSION_KAFKA_BOOTSTRAP` (deploy/test.sh starts a broker and sets it).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod drill_common;
mod kafka_common;

use std::path::Path;
use std::time::{Duration, Instant};

use drill_common::undrilled;
use kafka_common::*;
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_drill_captured_from_the_topics_replays_the_live_history_and_touches_nothing_live() {
    let broker = bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    let start = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
    fusion(&[
        "generate",
        "--seed",
        "21",
        "--events",
        "12000",
        "--events-per-sec",
        "2000",
        "--start",
        &start,
        "--out",
        scn.to_str().unwrap(),
    ]);
    let records = scenario_records(&scn);
    let prefix = unique("drillsrc");
    let group = unique("live-group");
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
    let roster = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/roster.toml");
    let live_alerts = dir.path().join("live-alerts.jsonl");
    let live_routing = dir.path().join("live-routing.jsonl");
    let mut run = Run::start(
        &broker,
        &prefix,
        &[
            "--group",
            &group,
            "--roster",
            roster.to_str().unwrap(),
            "--alerts-out",
            live_alerts.to_str().unwrap(),
            "--routing-out",
            live_routing.to_str().unwrap(),
        ],
    );
    let url = run.metrics_url();
    let producer = producer(&broker);
    let late = publish_in_bursts(&producer, &prefix, &records, 4, Duration::from_millis(1200));
    assert!(late > 0);
    let caught_up = |run: &Run, n: usize| {
        let started = Instant::now();
        loop {
            let text = reqwest::blocking::get(&url).unwrap().text().unwrap();
            if metric_sum(&text, "fusion_kafka_records_in_total") == n as f64
                && metric_sum(&text, "fusion_kafka_consumer_lag") == 0.0
            {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the live run never caught up:\n{}",
                run.complaints()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let text = caught_up(&run, records.len());
    assert!(
        metric_sum(&text, "fusion_ingest_late_records_total") > 0.0,
        "the live run counted late records"
    );
    // Officers act on the live desk: every center acknowledges and notes the first alerts
    // (the owner's actions count, the others are rejected: both are routing history),
    // and every center accepts its handover.
    std::thread::sleep(Duration::from_secs(1));
    let opened: Vec<String> = read_topic(&broker, &format!("{prefix}alerts"))
        .iter()
        .map(|r| serde_json::from_slice::<Value>(r).unwrap())
        .filter(|v| v["change"] == "opened")
        .map(|v| v["alert"]["id"].as_str().unwrap().to_string())
        .take(3)
        .collect();
    assert!(!opened.is_empty(), "the live run opened alerts");
    let at = jiff::Timestamp::now().to_string();
    let mut actions = Vec::new();
    for (i, center) in ["Lyon", "Singapore", "Buenos Aires"].iter().enumerate() {
        for (j, alert) in opened.iter().enumerate() {
            let kinds = [
                r#"{"kind":"acknowledge"}"#,
                r#"{"kind":"note","text":"seen in the drill test"}"#,
            ];
            for (k, kind) in kinds.iter().enumerate() {
                actions.push(format!(
                    r#"{{"schema_version":1,"action_id":"act-{i}-{j}-{k}","alert_id":"{alert}","officer_id":"officer-{i}","center":"{center}","at":"{at}","action":{kind}}}"#
                ));
            }
        }
        actions.push(format!(
            r#"{{"schema_version":1,"action_id":"accept-{i}","officer_id":"officer-{i}","center":"{center}","at":"{at}","action":{{"kind":"accept_handover"}}}}"#
        ));
    }
    let action_records: Vec<(&'static str, Option<String>, Vec<u8>)> = actions
        .into_iter()
        .map(|a| ("desk.actions", None, a.into_bytes()))
        .collect();
    publish_in_bursts(
        &producer,
        &prefix,
        &action_records,
        1,
        Duration::from_millis(1500),
    );
    caught_up(&run, records.len() + action_records.len());
    // Its last outputs become durable and committed, then it stops.
    std::thread::sleep(Duration::from_secs(2));
    let complaints = run.stop();
    if !complaints.is_empty() {
        eprintln!("the live run logged:\n{complaints}");
    }
    // Sorted: partitions interleave differently from one read to the next.
    let live_alert_topic = || {
        let mut records = read_topic(&broker, &format!("{prefix}alerts"));
        records.sort();
        records
    };
    let live_topic_before = live_alert_topic();
    let offsets_before = committed(&broker, &group, &prefix);

    // The capture reads the topics after the fact (with the live run's remap) ...
    let capture = dir.path().join("live.capture.jsonl");
    fusion(&[
        "drill",
        "capture",
        "--kafka",
        &broker,
        "--topic-prefix",
        &prefix,
        "--out",
        capture.to_str().unwrap(),
    ]);
    // ... and the drill replays it, writing to its own topics on the same broker.
    let drills = dir.path().join("drills");
    let name = format!("k{}", std::process::id());
    fusion(&[
        "drill",
        "run",
        &name,
        "--capture",
        capture.to_str().unwrap(),
        "--speed",
        "0",
        "--headless",
        "--roster",
        roster.to_str().unwrap(),
        "--kafka",
        &broker,
        "--drill-dir",
        drills.to_str().unwrap(),
    ]);
    let d = drills.join(&name);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(d.join("drill.json")).unwrap()).unwrap();
    let to = meta["to_ms"].as_u64().unwrap();
    let from = meta["from_ms"].as_u64().unwrap();

    // The period's history, record for record. The live run's clock went on past the
    // last record while it stood idle: what it derived after the period is not compared.
    let within = |v: &Value, key: &str| v[key].as_u64().unwrap() <= to;
    let want: Vec<Value> = lines(&live_alerts)
        .into_iter()
        .filter(|v| within(v, "version"))
        .collect();
    let mut marked = 0;
    let got: Vec<Value> = lines(&d.join("alerts.jsonl"))
        .into_iter()
        .map(|v| undrilled(v, &mut marked))
        .collect();
    assert!(want.len() >= 5, "the period raises alerts: {}", want.len());
    assert_eq!(marked, got.len(), "every drill alert is marked");
    assert_eq!(got.len(), want.len(), "as many alert changes as live");
    assert!(
        got == want,
        "the drill's alert history differs from the live one"
    );
    // Routing from just after the first record: each run states the duty in force when it
    // loads its roster (the live run at its start, the drill at its first record), so that
    // first statement is not part of the period's history.
    let in_period = |v: &Value| within(v, "time") && v["time"].as_u64().unwrap() > from;
    let want_routing: Vec<Value> = lines(&live_routing).into_iter().filter(in_period).collect();
    let got_routing: Vec<Value> = lines(&d.join("routing.jsonl"))
        .into_iter()
        .map(|v| undrilled(v, &mut marked))
        .filter(in_period)
        .collect();
    assert!(
        want_routing.len() >= 10,
        "routing history in the period: {want_routing:?}"
    );
    let actions =
        |r: &[Value], view: &str| r.iter().filter(|v| v["change"]["view"] == view).count();
    assert!(
        actions(&want_routing, "rejected") > 0,
        "rejected officer actions are compared"
    );
    if got_routing != want_routing {
        let first = got_routing
            .iter()
            .zip(&want_routing)
            .position(|(g, w)| g != w)
            .unwrap_or(got_routing.len().min(want_routing.len()));
        panic!(
            "the drill's routing history differs from the live one: {} vs {} lines; first difference at {first}:\ndrill: {}\nlive:  {}",
            got_routing.len(),
            want_routing.len(),
            got_routing
                .get(first)
                .map(Value::to_string)
                .unwrap_or_default(),
            want_routing
                .get(first)
                .map(Value::to_string)
                .unwrap_or_default(),
        );
    }

    // Nothing live was touched: the live alert topic and the live group's offsets.
    assert!(
        live_alert_topic() == live_topic_before,
        "the drill changed the live alert topic"
    );
    assert_eq!(committed(&broker, &group, &prefix), offsets_before);
    // In one step: the drill captures the live topics itself (into its directory).
    let name2 = format!("{name}-direct");
    fusion(&[
        "drill",
        "run",
        &name2,
        "--kafka",
        &broker,
        "--topic-prefix",
        &prefix,
        "--speed",
        "0",
        "--headless",
        "--roster",
        roster.to_str().unwrap(),
        "--drill-dir",
        drills.to_str().unwrap(),
    ]);
    let direct = drills.join(&name2);
    assert!(direct.join("capture.jsonl").exists());
    assert!(
        std::fs::read(direct.join("alerts.jsonl")).unwrap()
            == std::fs::read(d.join("alerts.jsonl")).unwrap(),
        "capturing in one step gives the same drill"
    );
    assert!(live_alert_topic() == live_topic_before);
    // The drill's alerts are on its own topic, marked.
    let drill_topic = read_topic(&broker, &format!("drill.{name}.alerts"));
    assert_eq!(drill_topic.len(), got.len());
    for rec in drill_topic {
        let v: Value = serde_json::from_slice(&rec).unwrap();
        assert_eq!(v["alert"]["drill"], Value::Bool(true));
    }
}
