//! Workload W1 (../shared/bench/w1) through the product path on a small W1: the W1 files
//! turned into Fusion's topic files (`to_fusion.py`), replayed by `fusion run` with its
//! defaults (roster, corroboration, an empty warning list), and every indicator's
//! sightings checked against W1's truth (`check_alerts.py`); late indicators meet the
//! history both as raw evidence and as summaries. The benchmark figure comes from the
//! same commands on the full W1 (README).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/w1")
}

fn python(script: &str, args: &[&Path], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.arg(bench_dir().join(script)).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `to_fusion.py` times the late indicators after event 1,600,000 of the full W1 and, on a
/// smaller W1, at the first event, where nothing is late. This moves them to half a second
/// after the event gen.py names as `late_at` (80 % of the events), as on the full W1.
fn move_late_indicators(gen_stdout: &[u8], topics: &Path) {
    let summary: serde_json::Value = serde_json::from_slice(gen_stdout).unwrap();
    let late_at = usize::try_from(summary["late_at"].as_u64().unwrap()).unwrap();
    let late_n = usize::try_from(summary["late_iocs"].as_u64().unwrap()).unwrap();
    let events = std::fs::read_to_string(topics.join("sensor.events.jsonl")).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(events.lines().nth(late_at).unwrap()).unwrap();
    let at = event["observed_at"]
        .as_str()
        .unwrap()
        .replace(".000Z", ".500Z");
    let path = topics.join("partner.indicators.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let first_late = lines.len() - late_n;
    let moved: Vec<String> = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            if i < first_late {
                return line;
            }
            let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
            v["created"] = at.clone().into();
            v["modified"] = at.clone().into();
            v.to_string()
        })
        .collect();
    std::fs::write(&path, moved.join("\n") + "\n").unwrap();
}

#[test]
fn w1_through_fusion_run_agrees_with_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, topics) = (dir.path().join("w1"), dir.path().join("topics"));
    std::fs::create_dir_all(&topics).unwrap();
    let generated = python(
        "gen.py",
        &[&w1],
        &[("N_EVENTS", "40000"), ("N_IOC", "2000")],
    );
    assert!(generated.status.success(), "gen.py failed");
    let conv = python("to_fusion.py", &[&w1, &topics], &[]);
    assert!(
        conv.status.success(),
        "to_fusion.py failed: {}",
        String::from_utf8_lossy(&conv.stderr)
    );
    move_late_indicators(&generated.stdout, &topics);
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .arg("run")
        .arg("--input")
        .arg(&topics)
        .arg("--warning-lists")
        .arg(&empty)
        .arg("--alerts-out")
        .arg(&alerts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "fusion run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("done: 40000 events"), "{stdout}");
    let check = python("check_alerts.py", &[&alerts, &w1], &[]);
    let verdict = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check_alerts.py disagrees: {verdict}"
    );
    // W1's late indicators arrive after 80 % of its 24 hours: most of what they meet
    // has aged out of the one-hour evidence window into summaries.
    let summarised: u64 = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<schemas::AlertChange>(l).unwrap())
        .filter(|c| c.change != schemas::ChangeKind::Retracted)
        .map(|c| c.alert.summarised_sightings)
        .max()
        .unwrap_or(0);
    assert!(summarised > 0, "no alert was raised from summaries");
}
