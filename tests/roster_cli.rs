//! `fusion roster check|show` on the shipped roster and on a broken one.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::process::{Command, Output};

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run fusion")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_shipped_roster_passes_its_check() {
    for args in [
        vec!["roster", "check", "deploy/config/roster.toml"],
        vec![
            "roster",
            "check",
            "deploy/config/roster.toml",
            "--from",
            "2026-01-01",
            "--days",
            "730",
        ],
    ] {
        let out = fusion(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout(&out).contains("OK, 3 centers"), "{}", stdout(&out));
    }
}

#[test]
fn a_roster_leaving_a_center_on_watch_too_long_fails_with_utc_and_local_times() {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/roster.toml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, shipped.split("[[overrides]]").next().unwrap()).unwrap();
    let out = fusion(&[
        "roster",
        "check",
        path.to_str().unwrap(),
        "--from",
        "2026-12-01",
        "--days",
        "31",
    ]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("Buenos Aires holds the watch"), "{text}");
    assert!(text.contains("2026-12-24T16:00:00Z"), "{text}");
    assert!(text.contains("Singapore 2026-12-25 00:00"), "{text}");
    assert!(text.contains("Lyon 2026-12-24 17:00 CET"), "{text}");
}

#[test]
fn show_names_the_center_on_duty_and_the_next_handovers_in_local_times() {
    let out = fusion(&["roster", "show", "--at", "2026-06-01T10:00:00Z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("on duty: Lyon since 2026-06-01T07:00:00Z"),
        "{text}"
    );
    assert!(
        text.contains("handover Lyon → Buenos Aires at 2026-06-01T16:00:00Z (Singapore 2026-06-02 00:00 +08, Lyon 2026-06-01 18:00 CEST, Buenos Aires 2026-06-01 13:00 -03)"),
        "{text}"
    );
    assert!(
        text.contains("handover Buenos Aires → Singapore at 2026-06-02T00:00:00Z"),
        "{text}"
    );
    assert!(
        text.contains("handover Singapore → Lyon at 2026-06-02T07:00:00Z"),
        "{text}"
    );
}
