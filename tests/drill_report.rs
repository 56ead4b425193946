//! `fusion drill report NAME`, end to end through the binary: a drill directory written
//! by hand (figures computed here, not by the report), scored as JSON and as text; a
//! missing drill or a malformed line is a one-line user error naming the path.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::Path;
use std::process::{Command, Output};

use schemas::routing::{
    Acceptance, AlertRouting, AlertState, HandoverDigest, RoutingChange, SeverityCounts,
};
use schemas::{AlertChange, ChangeKind, Severity};
use serde_json::{Value, json};

/// The drill period: a day from 2026-11-01T00:00:00Z (logical ms).
const T0: u64 = 1_793_491_200_000;
const MIN: u64 = 60_000;
/// The handover from Lyon to Singapore.
const H: u64 = T0 + 8 * 60 * MIN;

fn ts(ms: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms as i64).unwrap()
}

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn routing(id: &str, owner: &str, opened_at: u64) -> AlertRouting {
    AlertRouting {
        alert_id: id.into(),
        owner: owner.into(),
        opened_by: owner.into(),
        opened_at: ts(opened_at),
        state: AlertState::Open,
        severity: Severity::High,
        original_severity: Severity::High,
        ack_deadline: Some(ts(opened_at + 15 * MIN)),
        acknowledged_by: None,
        assigned_to: None,
        notes: Vec::new(),
        escalation: None,
    }
}

fn acked(r: &AlertRouting) -> AlertRouting {
    AlertRouting {
        state: AlertState::Acknowledged,
        acknowledged_by: Some("officer-1".into()),
        ..r.clone()
    }
}

fn line(time: u64, change: RoutingChange) -> String {
    json!({"time": time, "change": change}).to_string()
}

/// A record replacing another at `time`.
fn replace(out: &mut Vec<String>, time: u64, before: &AlertRouting, now: &AlertRouting) {
    out.push(line(
        time,
        RoutingChange::Alert {
            diff: -1,
            routing: before.clone(),
        },
    ));
    out.push(line(
        time,
        RoutingChange::Alert {
            diff: 1,
            routing: now.clone(),
        },
    ));
}

fn digest(accepted_at: Option<u64>) -> HandoverDigest {
    HandoverDigest {
        at: ts(H),
        from: "Lyon".into(),
        to: "Singapore".into(),
        counts: SeverityCounts::default(),
        oldest_unacknowledged: None,
        alerts: Vec::new(),
        accepted: accepted_at.map(|t| Acceptance {
            officer_id: "sg-officer".into(),
            at: ts(t),
        }),
    }
}

fn opened(version: u64, id: &str, indicator: &str) -> String {
    let alert: schemas::Alert = serde_json::from_value(json!({
        "schema_version": 1, "id": id, "rule": "indicator_match", "rule_version": 1,
        "key": indicator, "window_start": "2026-11-01T00:00:00Z",
        "window_end": "2026-11-02T00:00:00Z", "severity": "high", "title": "t",
        "indicator": {"id": indicator, "kind": "domain", "value": format!("{indicator}.example"),
            "source_kind": "partner", "source_id": "acme", "confidence": 90,
            "created": "2026-11-01T00:00:00Z"},
        "marking": {"tlp": "AMBER", "owner": "acme", "sharing": []},
        "first_seen": "2026-11-01T00:00:00Z", "last_seen": "2026-11-01T00:00:00Z",
        "sightings": 1, "hourly": [], "sensors": 1, "victims": 0, "victim_ips": [],
        "victims_by_country": [], "accounts": [], "countries": ["FR"],
        "retroactive_sightings": 0, "event_ids": ["e1"], "summarised_sightings": 0,
        "drill": true,
        "provenance": {"input_keys": [], "sources": [], "corroborated_confidence": 90}
    }))
    .unwrap();
    serde_json::to_string(&AlertChange {
        change: ChangeKind::Opened,
        version,
        alert,
    })
    .unwrap()
}

fn write(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// `<drills>/darklys`: Lyon acknowledges a1, a2, a3 after 2, 10 and 30 minutes and
/// hands a4 over open to Singapore, which acknowledges it 4 minutes later and accepts the
/// handover. FR-NCB would get two deliveries, DE-NCB none (one withheld). Two planted
/// injects: inj-1 raised a1, inj-2 raised nothing.
fn drill(drills: &Path) -> std::path::PathBuf {
    let dir = drills.join("darklys");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("drill.json"),
        json!({"name": "darklys", "from_ms": T0, "to_ms": T0 + 24 * 60 * MIN, "shift_ms": 0,
            "speed": 600.0, "source": "darklys.capture (scenario)", "workers": 2})
        .to_string(),
    )
    .unwrap();
    let mut r = Vec::new();
    for (id, at, after) in [
        ("a1", T0 + MIN, 2),
        ("a2", T0 + 2 * MIN, 10),
        ("a3", T0 + 3 * MIN, 30),
    ] {
        let rec = routing(id, "Lyon", at);
        r.push(line(
            at,
            RoutingChange::Alert {
                diff: 1,
                routing: rec.clone(),
            },
        ));
        replace(&mut r, at + after * MIN, &rec, &acked(&rec));
    }
    let a4 = routing("a4", "Lyon", T0 + 60 * MIN);
    r.push(line(
        T0 + 60 * MIN,
        RoutingChange::Alert {
            diff: 1,
            routing: a4.clone(),
        },
    ));
    let a4_sg = AlertRouting {
        owner: "Singapore".into(),
        ..a4.clone()
    };
    replace(&mut r, H, &a4, &a4_sg);
    r.push(line(
        H,
        RoutingChange::Handover {
            diff: 1,
            digest: digest(None),
        },
    ));
    replace(&mut r, H + 4 * MIN, &a4_sg, &acked(&a4_sg));
    r.push(line(
        H + 6 * MIN,
        RoutingChange::Handover {
            diff: -1,
            digest: digest(None),
        },
    ));
    r.push(line(
        H + 6 * MIN,
        RoutingChange::Handover {
            diff: 1,
            digest: digest(Some(H + 6 * MIN)),
        },
    ));
    r.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["time"].as_u64());
    write(&dir.join("routing.jsonl"), &r);

    write(
        &dir.join("alerts.jsonl"),
        &[
            opened(T0 + MIN, "a1", "inj-1"),
            opened(T0 + 2 * MIN, "a2", "ind-2"),
            opened(T0 + 3 * MIN, "a3", "ind-3"),
            opened(T0 + 60 * MIN, "a4", "ind-4"),
        ],
    );
    let delivery = |id: &str, to: &str, decision: &str, reason: &str| {
        json!({"alert_id": id, "version": T0 + MIN, "change": "opened", "recipient": to,
            "decision": decision, "reason": reason})
        .to_string()
    };
    write(
        &dir.join("deliveries.jsonl"),
        &[
            delivery("a1", "FR-NCB", "deliver", "allowed by the egress rule"),
            delivery("a1", "DE-NCB", "withhold", "TLP:RED: only named recipients"),
            delivery("a2", "FR-NCB", "deliver", "allowed by the egress rule"),
        ],
    );
    write(
        &dir.join("injects.jsonl"),
        &[
            json!({"at_ms": 0, "time_ms": T0, "topic": "drill.darklys.fusion.partner.indicators",
                "label": "new partner indicator inj-1", "planted": true, "indicator_id": "inj-1", "value": null})
            .to_string(),
            json!({"at_ms": 600_000, "time_ms": T0 + 10 * MIN, "topic": "drill.darklys.fusion.partner.indicators",
                "label": "C2 domain inj-2", "planted": true, "indicator_id": "inj-2", "value": null})
            .to_string(),
        ],
    );
    dir
}

fn center<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["centers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["center"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn the_json_report_scores_each_center_bureau_and_planted_item() {
    let tmp = tempfile::tempdir().unwrap();
    drill(tmp.path());
    let out = fusion(&[
        "drill",
        "report",
        "darklys",
        "--drill-dir",
        tmp.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let lyon = center(&report, "Lyon");
    assert_eq!(lyon["alerts_received"], 4);
    assert_eq!(lyon["acknowledged"], 3);
    assert_eq!(lyon["ack_median_ms"], 10 * MIN, "2, 10, 30 minutes");
    assert_eq!(lyon["ack_p90_ms"], 30 * MIN);
    assert_eq!(lyon["never_acknowledged"], 1, "a4 left Lyon open");
    assert_eq!(lyon["handovers_received"], 0);

    let sg = center(&report, "Singapore");
    assert_eq!(sg["alerts_received"], 1);
    assert_eq!(sg["acknowledged"], 1);
    assert_eq!(sg["ack_median_ms"], 4 * MIN, "from the handover");
    assert_eq!(sg["handovers_received"], 1);
    assert_eq!(sg["handovers_accepted"], 1);
    assert_eq!(report["centers"].as_array().unwrap().len(), 2);

    assert_eq!(
        report["bureaus"],
        json!([
            {"recipient": "DE-NCB", "delivered": 0, "withheld": 1, "top_withheld_reasons":
                [{"reason": "TLP:RED: only named recipients", "count": 1}]},
            {"recipient": "FR-NCB", "delivered": 2, "withheld": 0, "top_withheld_reasons": []}
        ])
    );
    let planted = &report["planted"];
    assert_eq!(
        (planted["planted"].as_u64(), planted["detected"].as_u64()),
        (Some(2), Some(1))
    );
    let missed: Vec<&str> = planted["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["detected"] == false)
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(missed, ["C2 domain inj-2"]);
    assert_eq!(planted["items"][0]["alert_id"], "a1");
}

#[test]
fn the_text_report_goes_to_the_out_file_with_what_the_figures_count() {
    let tmp = tempfile::tempdir().unwrap();
    drill(tmp.path());
    let file = tmp.path().join("report.txt");
    let out = fusion(&[
        "drill",
        "report",
        "darklys",
        "--drill-dir",
        tmp.path().to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the report went to the file");
    let text = std::fs::read_to_string(&file).unwrap();
    let lyon = text.lines().find(|l| l.starts_with("Lyon")).unwrap();
    assert!(
        lyon.contains("10m 00s") && lyon.contains("30m 00s"),
        "{text}"
    );
    assert!(text.contains("1 detected, 1 missed, of 2"), "{text}");
    assert!(text.contains("missed: C2 domain inj-2"), "{text}");
    assert!(text.contains("What the figures count"), "{text}");
}

#[test]
fn a_missing_drill_is_a_user_error_naming_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fusion(&[
        "drill",
        "report",
        "nope",
        "--drill-dir",
        tmp.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "error: no drill directory {}",
        tmp.path().join("nope").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_routing_line_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = drill(tmp.path());
    let path = dir.join("routing.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[2] = "{\"time\": 1, \"change\": {\"view\": \"weather\"}}".into();
    write(&path, &lines);
    let out = fusion(&[
        "drill",
        "report",
        "darklys",
        "--drill-dir",
        tmp.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {} line 3: ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("weather"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The bar: a generated period replayed as a drill, then scored: the ground truth
/// the report detects is the generator's planted set (read here from truth.json directly:
/// the indicators of campaign infrastructure that some event must match, not revoked).
#[test]
fn a_generated_period_replayed_as_a_drill_detects_the_generators_planted_set() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(fusion(&[
        "generate",
        "--seed",
        "5",
        "--events",
        "30000",
        "--events-per-sec",
        "4",
        "--out",
        &p("scn"),
    ]));
    ok(fusion(&[
        "drill",
        "capture",
        "--input",
        &p("scn"),
        "--out",
        &p("scn.capture.jsonl"),
    ]));
    ok(fusion(&[
        "drill",
        "run",
        "gen",
        "--capture",
        &p("scn.capture.jsonl"),
        "--speed",
        "0",
        "--headless",
        "--drill-dir",
        &p("drills"),
    ]));
    let out = ok(fusion(&[
        "drill",
        "report",
        "gen",
        "--drill-dir",
        &p("drills"),
        "--json",
    ]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("scn/truth.json")).unwrap())
            .unwrap();
    let matched: std::collections::BTreeSet<&str> = truth["expected_matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_str().unwrap())
        .collect();
    let revoked: Vec<&Value> = truth["revoked_indicators"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let planted: std::collections::BTreeSet<&str> = truth["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["infrastructure"].as_array().unwrap())
        .filter_map(|i| i["indicator_id"].as_str())
        .filter(|id| matched.contains(id) && !revoked.contains(&&Value::from(*id)))
        .collect();
    assert!(!planted.is_empty(), "the scenario plants something");

    let items = report["planted"]["items"].as_array().unwrap();
    let scored: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|i| i["indicator_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        scored, planted,
        "the report scores the generator's planted set"
    );
    let detected: std::collections::BTreeSet<&str> = items
        .iter()
        .filter(|i| i["detected"] == true)
        .map(|i| i["indicator_id"].as_str().unwrap())
        .collect();
    assert_eq!(detected, planted, "every planted item detected");
    assert_eq!(report["alerts"]["without_drill_marking"], 0);
}
