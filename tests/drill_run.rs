//! Exercise drills on a generated scenario (no Kafka): a drill of a captured period shows
//! exactly what the live run showed, marked as a drill; it is deterministic; it refuses
//! live endpoints; a shift moves everything together; injects and bad captures behave.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod drill_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use drill_common::undrilled;
use serde_json::Value;

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = fusion(args);
    assert!(
        out.status.success(),
        "fusion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn roster() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/roster.toml")
}

/// A generated scenario, its live run (alerts, routing) and its capture.
struct Live {
    dir: tempfile::TempDir,
    alerts: Vec<u8>,
    routing: Vec<u8>,
    capture: PathBuf,
}

fn live(seed: &str, events: &str) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    ok(&[
        "generate",
        "--seed",
        seed,
        "--events",
        events,
        "--events-per-sec",
        "5",
        "--out",
        path(&scn),
    ]);
    let alerts = dir.path().join("live-alerts.jsonl");
    let routing = dir.path().join("live-routing.jsonl");
    ok(&[
        "run",
        "--headless",
        "--input",
        path(&scn),
        "--roster",
        path(&roster()),
        "--alerts-out",
        path(&alerts),
        "--routing-out",
        path(&routing),
    ]);
    let capture = dir.path().join("period.capture.jsonl");
    ok(&[
        "drill",
        "capture",
        "--input",
        path(&scn),
        "--out",
        path(&capture),
    ]);
    Live {
        alerts: std::fs::read(&alerts).unwrap(),
        routing: std::fs::read(&routing).unwrap(),
        capture,
        dir,
    }
}

/// Runs drill `name` of `live`'s capture with `extra` options; returns its directory.
fn drill(live: &Live, name: &str, extra: &[&str]) -> PathBuf {
    let drills = live.dir.path().join("drills");
    let roster = roster();
    let mut args = vec![
        "drill",
        "run",
        name,
        "--capture",
        path(&live.capture),
        "--speed",
        "0",
        "--headless",
        "--roster",
        path(&roster),
        "--drill-dir",
        path(&drills),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    drills.join(name)
}

/// A subscriptions file in `dir` with one drill bureau (its endpoint refuses connections).
fn drill_subscriptions(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("key"), "drill-pseudonym-key-0001").unwrap();
    std::fs::write(
        dir.join("hook.whsec"),
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
    .unwrap();
    let path = dir.join("drill-subs.toml");
    std::fs::write(
        &path,
        "pseudonym_key = { secret_file = \"key\" }\n[[bureau]]\nid = \"ncb-drill\"\ncountry = \"FR\"\n\
         endpoint = \"http://127.0.0.1:9/drill\"\nsecret_file = \"hook.whsec\"\nclearance = \"AMBER\"\n\
         personal_data = false\ndrill = true\n",
    )
    .unwrap();
    path
}

/// The lines of a JSON-lines file as values.
fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_drill_of_the_captured_period_shows_what_live_showed_marked_as_a_drill() {
    let live = live("7", "30000");
    let d = drill(&live, "replay", &[]);
    let live_alerts = lines(&live.alerts);
    assert!(live_alerts.len() > 5, "the scenario raises alerts");
    let mut marked = 0;
    let drill_alerts: Vec<Value> = lines(&std::fs::read(d.join("alerts.jsonl")).unwrap())
        .into_iter()
        .map(|v| undrilled(v, &mut marked))
        .collect();
    assert_eq!(marked, live_alerts.len(), "every drill alert is marked");
    assert_eq!(drill_alerts, live_alerts, "record for record");
    let mut marked = 0;
    let drill_routing: Vec<Value> = lines(&std::fs::read(d.join("routing.jsonl")).unwrap())
        .into_iter()
        .map(|v| undrilled(v, &mut marked))
        .collect();
    assert_eq!(drill_routing, lines(&live.routing));
    let meta: Value =
        serde_json::from_slice(&std::fs::read(d.join("drill.json")).unwrap()).unwrap();
    assert_eq!(meta["name"], "replay");
    assert!(
        d.join("truth.json").exists(),
        "the scenario's truth goes with the drill"
    );

    assert!(
        !d.join("deliveries.jsonl").exists(),
        "no delivery intents without --subscriptions (the report says so)"
    );

    // The same drill again, and on one worker, with a drill bureau: byte for byte.
    let subs = drill_subscriptions(live.dir.path());
    let again = drill(&live, "again", &["--subscriptions", path(&subs)]);
    let one = drill(
        &live,
        "one-worker",
        &["--workers", "1", "--subscriptions", path(&subs)],
    );
    for f in ["alerts.jsonl", "routing.jsonl", "deliveries.jsonl"] {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(f)).unwrap();
        let first = read(&again);
        assert!(!first.is_empty(), "{f} is empty");
        assert!(first == read(&one), "{f} differs between 2 and 1 workers");
        if f != "deliveries.jsonl" {
            assert!(first == read(&d), "{f} differs between two runs");
        }
    }

    // A drill name is used once unless replaced.
    let out = fusion(&[
        "drill",
        "run",
        "replay",
        "--capture",
        path(&live.capture),
        "--drill-dir",
        path(&live.dir.path().join("drills")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already ran"));
}

#[test]
fn a_shifted_drill_equals_live_after_shifting_back() {
    let live = live("8", "20000");
    let live_alerts = lines(&live.alerts);
    let first = live_alerts[0]["version"].as_u64().unwrap();
    // The period starts at the first record; move it 400 days later (a multiple of the epoch).
    let meta_of = |d: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(d.join("drill.json")).unwrap()).unwrap()
    };
    let plain = drill(&live, "plain", &[]);
    let from = meta_of(&plain)["from_ms"].as_i64().unwrap();
    let shift: i64 = 400 * 86_400_000;
    let to = jiff::Timestamp::from_millisecond(from + shift)
        .unwrap()
        .to_string();
    let d = drill(&live, "shifted", &["--shift-to", &to]);
    assert_eq!(meta_of(&d)["shift_ms"].as_i64().unwrap(), shift);
    let shifted = lines(&std::fs::read(d.join("alerts.jsonl")).unwrap());
    assert_eq!(shifted.len(), live_alerts.len());
    let back = |t: &Value| {
        let t: jiff::Timestamp = t.as_str().unwrap().parse().unwrap();
        (t.as_millisecond() - shift).to_string()
    };
    let ms = |t: &Value| {
        let t: jiff::Timestamp = t.as_str().unwrap().parse().unwrap();
        t.as_millisecond().to_string()
    };
    // Alert ids hash the window start, so they differ; within one time, changes are in
    // id order. Compare what each change says, times shifted back, in a fixed order.
    let norm = |a: &Value, back_ms: &dyn Fn(&Value) -> String, shift: u64| {
        let al = &a["alert"];
        let mut v = vec![
            (a["version"].as_u64().unwrap() - shift).to_string(),
            a["change"].to_string(),
            al["key"].to_string(),
            al["sightings"].to_string(),
            al["severity"].to_string(),
            al["event_ids"].to_string(),
            al["countries"].to_string(),
        ];
        for f in ["window_start", "first_seen", "last_seen"] {
            v.push(back_ms(&al[f]));
        }
        v
    };
    let mut got: Vec<Vec<String>> = shifted
        .iter()
        .map(|a| norm(a, &back, shift as u64))
        .collect();
    let mut want: Vec<Vec<String>> = live_alerts.iter().map(|a| norm(a, &ms, 0)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(first > 0);
}

#[test]
fn a_drill_refuses_live_endpoints_by_name_and_writes_what_drill_endpoints_would_get() {
    let live = live("9", "20000");
    let cfg = live.dir.path();
    std::fs::write(cfg.join("key"), "drill-pseudonym-key-0001").unwrap();
    std::fs::write(
        cfg.join("hook.whsec"),
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
    .unwrap();
    let bureau = |id: &str, drill: bool| {
        format!(
            "[[bureau]]\nid = \"{id}\"\ncountry = \"FR\"\nendpoint = \"http://127.0.0.1:9/{id}\"\n\
             secret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\ndrill = {drill}\n"
        )
    };
    let head = "pseudonym_key = { secret_file = \"key\" }\n";
    let mixed = cfg.join("mixed.toml");
    std::fs::write(
        &mixed,
        format!(
            "{head}{}{}",
            bureau("ncb-drill", true),
            bureau("ncb-live", false)
        ),
    )
    .unwrap();
    let out = fusion(&[
        "drill",
        "run",
        "refused",
        "--capture",
        path(&live.capture),
        "--speed",
        "0",
        "--headless",
        "--drill-dir",
        path(&cfg.join("drills")),
        "--subscriptions",
        path(&mixed),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bureau ncb-live"), "{err}");
    assert!(
        !err.contains("ncb-drill"),
        "only the live one is named: {err}"
    );
    assert!(!cfg.join("drills/refused").exists(), "nothing started");

    // A live partner is refused too.
    let partner = cfg.join("partner.toml");
    std::fs::write(
        &partner,
        format!(
            "{head}{}[[partner]]\nid = \"partner-a\"\nfeedback_endpoint = \"http://127.0.0.1:9/p\"\n\
             secret_file = \"hook.whsec\"\nfeedback_min_count = 1\n",
            bureau("ncb-drill", true)
        ),
    )
    .unwrap();
    let out = fusion(&[
        "drill",
        "run",
        "refused",
        "--capture",
        path(&live.capture),
        "--drill-dir",
        path(&cfg.join("drills")),
        "--subscriptions",
        path(&partner),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("partner partner-a"));

    let only_drill = cfg.join("drill.toml");
    std::fs::write(&only_drill, format!("{head}{}", bureau("ncb-drill", true))).unwrap();
    let d = drill(&live, "delivered", &["--subscriptions", path(&only_drill)]);
    let intents = lines(&std::fs::read(d.join("deliveries.jsonl")).unwrap());
    let alerts = lines(&std::fs::read(d.join("alerts.jsonl")).unwrap());
    assert_eq!(
        intents.len(),
        alerts.len(),
        "one decision per change for the one bureau"
    );
    assert!(intents.iter().all(|i| i["recipient"] == "ncb-drill"));
    assert!(
        intents.iter().any(|i| i["decision"] == "deliver"),
        "drill alerts reach a drill endpoint: {intents:?}"
    );
}

#[test]
fn injects_add_records_at_drill_times_and_outages_move_the_watch() {
    let live = live("10", "20000");
    let plain = drill(&live, "plain", &[]);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(plain.join("drill.json")).unwrap()).unwrap();
    let from = meta["from_ms"].as_i64().unwrap();
    // An event the scenario's sensors will never see, and a planted indicator on it at +10 min.
    let inject = live.dir.path().join("injects.toml");
    std::fs::write(
        &inject,
        r#"
[[inject]]
at = "5m"
label = "a sensor sees the drill C2"
topic = "sensor_events"
record = '{"schema_version":1,"event_id":"drill-ev-1","sensor_id":"fr-ids-01","country":"FR","observed_at":"@at","kind":"dns","domain":"c2.drill-example.org"}'

[[inject]]
at = "10m"
label = "partner reports the drill C2"
planted = true
topic = "partner_indicators"
record = '{"schema_version":1,"id":"indicator--drill-c2","kind":"domain","value":"c2.drill-example.org","owner":"partner-a","source_kind":"partner","source_id":"partner-a:feed","tlp":"GREEN","confidence":90,"created":"@at","modified":"@at","valid_from":"@at-30d"}'

[[inject]]
at = "1m"
label = "Lyon loses power"
outage = { center = "Lyon", takeover = "Singapore", duration = "2h" }
"#,
    )
    .unwrap();
    let d = drill(&live, "injected", &["--inject", path(&inject)]);
    let alerts = lines(&std::fs::read(d.join("alerts.jsonl")).unwrap());
    let hit: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["alert"]["indicator"]["id"] == "indicator--drill-c2")
        .collect();
    assert!(!hit.is_empty(), "the planted indicator raises an alert");
    assert_eq!(hit[0]["alert"]["retroactive_sightings"], 1, "{:?}", hit[0]);
    let applied = lines(&std::fs::read(d.join("injects.jsonl")).unwrap());
    assert_eq!(applied.len(), 3);
    assert_eq!(applied[1]["indicator_id"], "indicator--drill-c2");
    assert_eq!(applied[1]["time_ms"].as_i64().unwrap(), from + 600_000);
    // Singapore holds the watch over the outage.
    let routing = String::from_utf8(std::fs::read(d.join("routing.jsonl")).unwrap()).unwrap();
    let plain_routing =
        String::from_utf8(std::fs::read(plain.join("routing.jsonl")).unwrap()).unwrap();
    assert_ne!(routing, plain_routing, "the outage changes the duty");
}

#[test]
fn bad_captures_and_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.jsonl");
    let run = |name: &str| {
        fusion(&[
            "drill",
            "run",
            name,
            "--capture",
            path(&cap),
            "--speed",
            "0",
            "--headless",
            "--drill-dir",
            path(&dir.path().join("drills")),
        ])
    };
    let err = |out: Output| {
        assert!(!out.status.success());
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    std::fs::write(&cap, "{\"not\": \"a header\"}\n").unwrap();
    assert!(err(run("a")).contains("not a capture header"));
    std::fs::write(
        &cap,
        "{\"fusion_capture\":9,\"epoch_ms\":20,\"source\":\"x\"}\n",
    )
    .unwrap();
    assert!(err(run("a")).contains("format 9"));
    std::fs::write(
        &cap,
        "{\"fusion_capture\":1,\"epoch_ms\":20,\"source\":\"x\"}\n{\"topic\":\"sensor_events\",\"partition\":-1}\n",
    )
    .unwrap();
    assert!(err(run("a")).contains("c.jsonl:2 is not a capture record"));
    std::fs::write(
        &cap,
        "{\"fusion_capture\":1,\"epoch_ms\":20,\"source\":\"x\"}\n",
    )
    .unwrap();
    assert!(err(run("a")).contains("holds no record"));
    assert!(err(run("../escape")).contains("is not a drill name"));
    std::fs::write(&cap, "").unwrap();
    assert!(err(run("a")).contains("is empty"));
}

#[test]
fn a_generated_day_replays_at_speed_600_and_the_report_finds_every_planted_item() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("day");
    // 86,400 events, one per second of event time: a whole day.
    ok(&[
        "generate",
        "--seed",
        "24",
        "--events",
        "86400",
        "--events-per-sec",
        "1",
        "--out",
        path(&scn),
    ]);
    let capture = dir.path().join("day.capture.jsonl");
    ok(&[
        "drill",
        "capture",
        "--input",
        path(&scn),
        "--out",
        path(&capture),
    ]);
    let drills = dir.path().join("drills");
    let started = std::time::Instant::now();
    ok(&[
        "drill",
        "run",
        "day",
        "--capture",
        path(&capture),
        "--speed",
        "600",
        "--headless",
        "--roster",
        path(&roster()),
        "--drill-dir",
        path(&drills),
    ]);
    let took = started.elapsed();
    let meta: Value =
        serde_json::from_slice(&std::fs::read(drills.join("day/drill.json")).unwrap()).unwrap();
    let period_ms = meta["to_ms"].as_u64().unwrap() - meta["from_ms"].as_u64().unwrap();
    assert!(period_ms >= 23 * 3_600_000, "a day: {period_ms} ms");
    // Paced: the period took its length / 600 of wall time (not a speed measurement: a
    // lower bound that fails only if the pace is ignored).
    assert!(
        took.as_millis() as u64 >= period_ms / 600,
        "replayed a {period_ms} ms period in {took:?} at speed 600"
    );
    let out = ok(&[
        "drill",
        "report",
        "day",
        "--drill-dir",
        path(&drills),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planted = &report["planted"];
    assert!(
        planted["planted"].as_u64().unwrap() > 0,
        "the generator planted items: {planted}"
    );
    assert_eq!(
        planted["detected"], planted["planted"],
        "every planted item detected: {planted}"
    );
    assert_eq!(planted["missed"], 0);
    assert!(
        report["centers"].as_array().unwrap().len() >= 2,
        "the watch moved around the world in a day: {}",
        report["centers"]
    );
}
