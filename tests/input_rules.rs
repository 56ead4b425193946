//! Input rules, end to end through the binary with the default roster:
//! - time: a record stamped far in the future is a dead letter (`future_timestamp`) and
//!   changes nothing else, wherever it sits; a genuine quiet gap of years replays, and
//!   finishes;
//! - duplicates: an exact copy of an event changes nothing; a copy with other content is
//!   a dead letter (`duplicate_conflict`) and changes nothing either.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a run of these small scenarios may take before it counts as hung (a debug
/// build on a loaded 2-core machine finishes each in a few seconds).
const HUNG: Duration = Duration::from_secs(120);

/// Runs `fusion run` on `input`; returns the alert changes, the routing lines and the
/// dead letters it wrote. Panics if it fails or does not finish within [`HUNG`].
fn run(input: &Path, out: &Path) -> (String, String, Vec<serde_json::Value>) {
    std::fs::create_dir_all(out).unwrap();
    let alerts = out.join("alerts.jsonl");
    let routing = out.join("routing.jsonl");
    let dead = out.join("dead.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--headless", "--input"])
        .arg(input)
        .arg("--alerts-out")
        .arg(&alerts)
        .arg("--routing-out")
        .arg(&routing)
        .arg("--deadletters-out")
        .arg(&dead)
        .arg("--outbox")
        .arg(out.join("outbox"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HUNG {
            child.kill().unwrap();
            panic!("fusion run on {} hung for {HUNG:?}", input.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "fusion run failed: {stderr}");
    let dead = std::fs::read_to_string(&dead)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        std::fs::read_to_string(&alerts).unwrap(),
        std::fs::read_to_string(&routing).unwrap(),
        dead,
    )
}

/// A generated scenario in `dir/base`.
fn scenario(dir: &Path) -> PathBuf {
    let scn = dir.join("base");
    let status = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["generate", "--seed", "4", "--events", "20000", "--out"])
        .arg(&scn)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    scn
}

/// A copy of `base` as `dir/name`, with `edit` applied to the lines of `file`.
fn variant(
    base: &Path,
    dir: &Path,
    name: &str,
    file: &str,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(base).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    // Bytes, not text: the scenario holds deliberately invalid UTF-8 lines.
    let mut lines: Vec<Vec<u8>> = std::fs::read(out.join(file))
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    edit(&mut lines);
    std::fs::write(out.join(file), lines.join(&b'\n')).unwrap();
    out
}

/// `line` (a JSON record) with `key`'s timestamp moved to the year `year`, and its id
/// field `id_key` suffixed so it is a record of its own.
fn moved(line: &[u8], key: &str, year: &str, id_key: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(line).unwrap();
    let t = v[key].as_str().unwrap().to_string();
    v[key] = format!("{year}{}", &t[4..]).into();
    let id = v[id_key].as_str().unwrap().to_string();
    v[id_key] = format!("{id}-moved-{year}").into();
    serde_json::to_vec(&v).unwrap()
}

/// The first line of `lines` that is a valid record (the scenario plants bad ones).
fn first_valid(lines: &[Vec<u8>], key: &str) -> Vec<u8> {
    lines
        .iter()
        .find(|l| {
            serde_json::from_slice::<serde_json::Value>(l)
                .is_ok_and(|v| v[key].is_string() && v["schema_version"] == 1)
        })
        .unwrap()
        .clone()
}

fn sorted(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

fn future_dead_letters(dead: &[serde_json::Value]) -> usize {
    dead.iter()
        .filter(|d| d["code"] == "future_timestamp")
        .count()
}

#[test]
fn a_far_future_record_is_a_dead_letter_and_changes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let base = scenario(dir.path());
    let (alerts, routing, dead) = run(&base, &dir.path().join("out-base"));
    assert!(alerts.lines().count() > 10, "the scenario raises alerts");
    assert_eq!(future_dead_letters(&dead), 0);

    let cases = [
        variant(&base, dir.path(), "last", "sensor.events.jsonl", |lines| {
            let e = first_valid(lines, "observed_at");
            lines.push(moved(&e, "observed_at", "2100", "event_id"));
        }),
        variant(&base, dir.path(), "mid", "sensor.events.jsonl", |lines| {
            let e = first_valid(lines, "observed_at");
            let at = lines.len() / 2;
            lines.insert(at, moved(&e, "observed_at", "2100", "event_id"));
        }),
        variant(
            &base,
            dir.path(),
            "indicator",
            "partner.indicators.jsonl",
            |lines| {
                let i = first_valid(lines, "modified");
                let at = lines.len() / 3;
                lines.insert(at, moved(&i, "modified", "2100", "id"));
            },
        ),
    ];
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let (a, r, d) = run(&case, &dir.path().join(format!("out-{name}")));
        assert_eq!(future_dead_letters(&d), 1, "{name}: {d:?}");
        assert_eq!(
            d.len(),
            dead.len() + 1,
            "{name}: only the far record is added"
        );
        let far = d.iter().find(|d| d["code"] == "future_timestamp").unwrap();
        assert!(
            far["detail"].as_str().unwrap().contains("2100-"),
            "{name}: {far}"
        );
        assert!(
            a == alerts,
            "{name}: the alert changes differ from the run without it"
        );
        assert_eq!(
            sorted(&r),
            sorted(&routing),
            "{name}: the routing differs from the run without it"
        );
    }
}

#[test]
fn a_quiet_gap_of_years_replays_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let base = scenario(dir.path());
    let gap = variant(&base, dir.path(), "gap", "sensor.events.jsonl", |lines| {
        let e = first_valid(lines, "observed_at");
        // Two records five years on: the second confirms the first is no stray clock.
        lines.push(moved(&e, "observed_at", "2031", "event_id"));
        let again = moved(&e, "observed_at", "2031", "event_id");
        lines.push(moved(&again, "observed_at", "2031", "event_id"));
    });
    let (alerts, routing, dead) = run(&gap, &dir.path().join("out-gap"));
    assert_eq!(
        future_dead_letters(&dead),
        0,
        "a gap others confirm is no error"
    );
    assert!(
        alerts.contains("\"expired\""),
        "the open alerts expire in the gap"
    );
    assert!(
        routing.lines().any(|l| l.contains("2031-")),
        "the watch goes on being handed over through the gap"
    );
}

#[test]
fn a_copied_event_changes_nothing_and_a_conflicting_copy_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let base = scenario(dir.path());
    let (alerts, routing, dead) = run(&base, &dir.path().join("out-base"));
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("truth.json")).unwrap()).unwrap();
    // An event that matches: its copy would add a sighting, a sensor and a country.
    let matched = truth["expected_matches"][0][0]
        .as_str()
        .unwrap()
        .to_string();
    let copies = variant(
        &base,
        dir.path(),
        "copies",
        "sensor.events.jsonl",
        |lines| {
            let at = lines
                .iter()
                .position(|l| {
                    serde_json::from_slice::<serde_json::Value>(l)
                        .is_ok_and(|v| v["event_id"] == matched.as_str())
                })
                .unwrap();
            let exact = lines[at].clone();
            let mut other: serde_json::Value = serde_json::from_slice(&exact).unwrap();
            other["sensor_id"] = "hu-ids-01".into();
            other["country"] = "HU".into();
            other["victim_ip"] = "84.0.0.7".into();
            lines.insert(at + 1, serde_json::to_vec(&other).unwrap());
            lines.insert(at + 2, exact);
        },
    );
    let (a, r, d) = run(&copies, &dir.path().join("out-copies"));
    let conflicts: Vec<&serde_json::Value> = d
        .iter()
        .filter(|d| d["code"] == "duplicate_conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "{d:?}");
    assert!(
        conflicts[0]["detail"].as_str().unwrap().contains(&matched),
        "{}",
        conflicts[0]
    );
    assert_eq!(d.len(), dead.len() + 1, "the exact copy is no dead letter");
    assert!(
        a == alerts,
        "the alert changes differ from the run without copies"
    );
    assert_eq!(sorted(&r), sorted(&routing));
}
