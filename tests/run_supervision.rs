//! Supervision and shutdown of `fusion run`, through the binary: a component that fails
//! stops the whole run at once with a message naming it, and a stop signal ends a run
//! within seconds even when a stage cannot finish.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Waits up to `limit` for `child`; kills it and fails if it is still running.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: fusion run was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_run_whose_alert_output_fails_stops_at_once_and_names_it() {
    // An endless run (embedded source, no duration): only the failure can end it.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--headless", "--alerts-out", "/dev/full"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (status, _) = wait_within(&mut child, Duration::from_secs(60), "a full disk");
    let stderr = stderr_of(&log);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: alert-output failed") && last.contains("/dev/full"),
        "the error names the component and the file: {stderr}"
    );
    assert!(last.contains("No space left on device"), "{stderr}");
}

#[test]
fn sigterm_ends_a_run_whose_output_is_stuck_within_seconds_naming_what_did_not_stop() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    let generated = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["generate", "--seed", "3", "--events", "300000", "--out"])
        .arg(&scn)
        .output()
        .unwrap();
    assert!(generated.status.success());
    // The alerts go to a pipe that is open but never read: once its buffer is full the
    // output thread blocks in a write, and behind it the dataflow and ingestion.
    let fifo = dir.path().join("alerts.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let log = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--headless", "--input"])
        .arg(&scn)
        .arg("--alerts-out")
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Long enough for the pipe to fill (a few hundred alert changes).
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the stuck run is still running: {}",
        stderr_of(&log)
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, took) = wait_within(&mut child, Duration::from_secs(30), "SIGTERM");
    let stderr = stderr_of(&log);
    assert!(took < Duration::from_secs(15), "took {took:?}: {stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: stopped by force after the drain deadline:")
            && last.contains("alert-output")
            && last.ends_with("left behind"),
        "the error says what did not stop: {stderr}"
    );
}
