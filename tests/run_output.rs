//! The outputs of `fusion run` are the same, byte for byte, on every run of the same input.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::Path;
use std::process::Command;

fn fusion(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fusion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn routing_and_alert_files_are_byte_identical_across_identical_runs() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    fusion(&[
        "generate",
        "--seed",
        "5",
        "--events",
        "150000",
        "--out",
        path(&scn),
    ]);
    let roster = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/roster.toml");
    let run = |n: u32| {
        let routing = dir.path().join(format!("routing-{n}.jsonl"));
        let alerts = dir.path().join(format!("alerts-{n}.jsonl"));
        fusion(&[
            "run",
            "--headless",
            "--input",
            path(&scn),
            "--roster",
            path(&roster),
            "--routing-out",
            path(&routing),
            "--alerts-out",
            path(&alerts),
        ]);
        (
            std::fs::read(&routing).unwrap(),
            std::fs::read(&alerts).unwrap(),
        )
    };
    let (routing_1, alerts_1) = run(1);
    let (routing_2, alerts_2) = run(2);
    assert!(
        routing_1.iter().filter(|b| **b == b'\n').count() > 100,
        "the scenario routes alerts"
    );
    assert!(routing_1 == routing_2, "the routing files differ");
    assert!(alerts_1 == alerts_2, "the alert files differ");
}
