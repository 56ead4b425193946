//! The W1 benchmark binary on a small W1 workload (../shared/bench/w1 with fewer
//! events): check.py agrees with what it writes, and a malformed event line stops it
//! with an error naming the place instead of a panic or a silent skip.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/w1")
}

/// A W1 workload of 40,000 events and 2,000 indicators in `dir`.
fn generate(dir: &Path) {
    let status = Command::new("python3")
        .arg(bench_dir().join("gen.py"))
        .arg(dir)
        .env("N_EVENTS", "40000")
        .env("N_IOC", "2000")
        .status()
        .unwrap();
    assert!(status.success(), "gen.py failed");
}

fn w1(data: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_w1"))
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn w1_output_agrees_with_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    generate(&data);
    let run = w1(&data, &out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "w1 failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.starts_with("W1: "), "no figure line: {stdout}");
    assert!(stdout.contains("40000 events"), "{stdout}");
    let check = Command::new("python3")
        .arg(bench_dir().join("check.py"))
        .arg(&out)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check.py disagrees: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn a_malformed_event_line_is_an_error_naming_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    generate(&data);
    let path = data.join("events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[20_000] = r#"{"event_id":20000,"ts":"not a number","src_ip":"10.0.0.1"}"#;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let run = w1(&data, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "a malformed line was accepted");
    assert!(stderr.contains("bad event line in bytes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
