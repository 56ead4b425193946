//! A user error prints its message chain once — `error: …`, then `caused by: …` lines
//! without repeats — with no backtrace even though RUST_BACKTRACE is set, exits 1, and
//! never contains secret material.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::process::{Command, Output};

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn assert_user_error(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "no backtrace for a user error: {stderr}"
    );
    let lines: Vec<String> = stderr.lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("caused by: ")),
        "{stderr}"
    );
    lines
}

#[test]
fn a_missing_file_is_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("subscriptions.toml");
    let out = fusion(&[
        "deliver",
        "--alerts",
        "alerts.jsonl",
        "--subscriptions",
        missing.to_str().unwrap(),
        "--outbox",
        dir.path().join("outbox").to_str().unwrap(),
    ]);
    let lines = assert_user_error(&out);
    // The io error is both in the message and its source: said once.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].matches("No such file").count(), 1, "{lines:?}");
}

#[test]
fn a_chain_of_causes_is_printed_once_each() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "test-pseudonym-key-0001").unwrap();
    let subs = dir.path().join("subscriptions.toml");
    std::fs::write(&subs, "pseudonym_key = { secret_file = \"key\" }\n").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, "{\"not\": \"an alert change\"}\n").unwrap();
    let out = fusion(&[
        "deliver",
        "--alerts",
        alerts.to_str().unwrap(),
        "--subscriptions",
        subs.to_str().unwrap(),
        "--outbox",
        dir.path().join("outbox").to_str().unwrap(),
    ]);
    let lines = assert_user_error(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("alerts.jsonl:1: not an alert change"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("caused by: missing field"),
        "{lines:?}"
    );
}

#[test]
fn an_inline_secret_is_named_not_echoed_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_c2VjcmV0LW1hdGVyaWFsLXRoYXQtbXVzdC1uZXZlci1sZWFr";
    let subs = dir.path().join("subscriptions.toml");
    std::fs::write(
        &subs,
        format!(
            "pseudonym_key = {{ secret_env = \"K\" }}\n[[bureau]]\nid = \"ncb-fr\"\n\
             country = \"FR\"\nendpoint = \"https://ncb-fr.example/hook\"\n\
             secret = \"{secret}\"\nclearance = \"GREEN\"\npersonal_data = false\n"
        ),
    )
    .unwrap();
    let out = fusion(&[
        "explain-delivery",
        "a1",
        "ncb-fr",
        "--alerts",
        "alerts.jsonl",
        "--subscriptions",
        subs.to_str().unwrap(),
    ]);
    let lines = assert_user_error(&out);
    let all = lines.join("\n");
    assert!(
        all.contains("`bureau[0].secret`") && all.contains("line 6"),
        "{all}"
    );
    assert!(!all.contains("c2VjcmV0LW1h"), "the secret leaked: {all}");
}

#[test]
fn a_malformed_receiver_secret_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "whsec_c2VjcmV0LW1hdGVyaWFs!!bXVzdC1uZXZlci1sZWFr";
    let file = dir.path().join("s.whsec");
    std::fs::write(&file, bad).unwrap();
    let out = fusion(&[
        "receive",
        "--port",
        "0",
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    let lines = assert_user_error(&out);
    let all = lines.join("\n");
    assert!(all.contains("not base64"), "{all}");
    assert!(
        !all.contains("c2VjcmV0") && !all.contains("bXVzdC1u"),
        "{all}"
    );
}

#[test]
fn an_overlong_duration_is_a_usage_error_naming_the_option_not_a_panic() {
    let out = fusion(&[
        "run",
        "--headless",
        "--indicator-max-age",
        "999999999999999999d",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // clap's usage errors exit 2.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--indicator-max-age"), "{stderr}");
    assert!(stderr.contains("too long"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
