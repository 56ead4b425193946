//! End to end through the binary: a generated scenario replayed by `fusion run`
//! yields exactly the planted ground truth, live and retroactive, and the same
//! alert changes on 1 and 2 workers.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;

use schemas::{AlertChange, ChangeKind};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

/// Runs `fusion` with `args`, asserts it succeeded, and returns what it wrote to stdout.
fn fusion(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .output()
        .expect("run fusion");
    assert!(
        out.status.success(),
        "fusion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the scenario of `seed` with `events` events into `dir/scn`.
fn generate(dir: &Path, seed: u64, events: u64) -> std::path::PathBuf {
    let scn = dir.join("scn");
    fusion(&[
        "generate",
        "--seed",
        &seed.to_string(),
        "--events",
        &events.to_string(),
        "--out",
        scn.to_str().unwrap(),
    ]);
    scn
}

fn read_changes(path: &Path) -> Vec<AlertChange> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The rest of the standard output of a running `fusion run`, once it has printed its
/// first progress line: a second into the run, when its start-up is over however slow
/// the machine.
fn after_first_progress_line(
    child: &mut std::process::Child,
) -> impl Iterator<Item = String> + use<> {
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let progress = lines.by_ref().find(|l| l.contains("events/s"));
    assert!(
        progress.is_some(),
        "fusion ended before its first progress line"
    );
    lines
}

/// The summary `fusion run` prints when it ends. A run that lasts over a second also
/// prints progress lines before it, with the counts so far.
fn final_summary(stdout: &str) -> String {
    stdout
        .lines()
        .rev()
        .find(|l| l.contains("(suppressed "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"))
        .to_string()
}

/// Open alerts after applying every change, by id.
fn final_state(changes: &[AlertChange]) -> BTreeMap<String, &AlertChange> {
    let mut open = BTreeMap::new();
    for c in changes {
        match c.change {
            ChangeKind::Opened | ChangeKind::Updated => {
                open.insert(c.alert.id.clone(), c);
            }
            ChangeKind::Retracted | ChangeKind::Expired => {
                open.remove(&c.alert.id);
            }
        }
    }
    open
}

fn pairs(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn replayed_scenario_alerts_match_the_planted_truth() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("scn");
    let scn_s = scn.to_str().unwrap();
    fusion(&[
        "generate", "--seed", "11", "--events", "40000", "--out", scn_s,
    ]);
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(scn.join("truth.json")).unwrap()).unwrap();
    let expected = pairs(&truth["expected_matches"]);
    let retro = pairs(&truth["retroactive"]);
    assert!(!expected.is_empty() && !retro.is_empty());

    // Event times, to place each expected match in its alert window.
    let mut observed: BTreeMap<String, i64> = BTreeMap::new();
    // Bytes, not text: the scenario holds deliberately invalid UTF-8 lines.
    for line in std::fs::read(scn.join("sensor.events.jsonl"))
        .unwrap()
        .split(|b| *b == b'\n')
    {
        if let Ok(ev) = serde_json::from_slice::<schemas::SensorEvent>(line) {
            observed.insert(ev.event_id, ev.observed_at.as_millisecond());
        }
    }
    let mut want: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for (event, indicator) in &expected {
        let window = observed[event].div_euclid(DAY_MS) * DAY_MS;
        let e = want.entry((indicator.clone(), window)).or_default();
        e.0 += 1;
        if retro.contains(&(event.clone(), indicator.clone())) {
            e.1 += 1;
        }
    }

    let mut runs = Vec::new();
    for workers in ["1", "2"] {
        let alerts = dir.path().join(format!("alerts-{workers}.jsonl"));
        let dead = dir.path().join(format!("dead-{workers}.jsonl"));
        // One-millisecond epochs: logical time equals the record timestamp, as in the truth.
        fusion(&[
            "run",
            "--input",
            scn_s,
            "--workers",
            workers,
            "--epoch-ms",
            "1",
            "--alerts-out",
            alerts.to_str().unwrap(),
            "--deadletters-out",
            dead.to_str().unwrap(),
        ]);
        let dead_count = std::fs::read_to_string(&dead).unwrap().lines().count() as u64;
        assert_eq!(
            dead_count,
            truth["bad_records"].as_u64().unwrap(),
            "every bad record dead-lettered"
        );
        runs.push(read_changes(&alerts));
    }
    assert_eq!(runs[0], runs[1], "same alert changes on 1 and 2 workers");

    let state = final_state(&runs[0]);
    let got: BTreeMap<(String, i64), (u64, u64)> = state
        .values()
        .map(|c| {
            let a = &c.alert;
            (
                (a.key.clone(), a.window_start.as_millisecond()),
                (a.sightings, a.retroactive_sightings),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        got.values().any(|(_, r)| *r > 0),
        "retroactive alerts present"
    );
    // Some partner infrastructure is listed by an OSINT feed too: corroborated alerts,
    // whose marking is the strictest of their feeds'.
    let corroborated: Vec<&schemas::Alert> = state
        .values()
        .map(|c| &c.alert)
        .filter(|a| a.provenance.sources.len() >= 2)
        .collect();
    assert!(!corroborated.is_empty(), "corroborated alerts present");
    for a in &corroborated {
        assert!(
            a.provenance
                .sources
                .iter()
                .all(|s| s.marking.tlp <= a.marking.tlp)
        );
        // The feeds here report milliseconds apart, so each one adds to the confidence.
        assert!(a.provenance.corroborated_confidence >= a.indicator.confidence);
    }
    let revoked: BTreeSet<String> = truth["revoked_indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!revoked.is_empty());
    assert!(
        runs[0]
            .iter()
            .any(|c| c.change == ChangeKind::Retracted && revoked.contains(&c.alert.key)),
        "alerts of revoked indicators are retracted"
    );
    // Versions increase per alert id.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &runs[0] {
        if let Some(prev) = last.insert(&c.alert.id, c.version) {
            assert!(c.version > prev);
        }
    }
}

#[test]
fn schema_writes_one_file_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    fusion(&["schema", "--out", dir.path().to_str().unwrap()]);
    for t in schemas::Topic::ALL {
        let p = dir.path().join(format!("{}.schema.json", t.suffix()));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert!(v.is_object(), "{}", p.display());
    }
}

#[test]
fn run_rejects_a_bad_duration_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--duration", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not start with a number"));
}

#[test]
fn embedded_run_raises_retroactive_alerts_and_stops_after_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let started = std::time::Instant::now();
    fusion(&[
        "run",
        "--duration",
        "8s",
        "--alerts-out",
        alerts.to_str().unwrap(),
    ]);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let changes = read_changes(&alerts);
    let state = final_state(&changes);
    assert!(!state.is_empty(), "alerts for the planted campaigns");
    assert!(
        state.values().any(|c| c.alert.retroactive_sightings > 0),
        "some alerts come from retroactive matching"
    );
}

#[test]
fn indicators_whose_validity_the_max_age_shortened_are_counted_in_the_summary() {
    // Most of the embedded scenario's indicators have no `valid_until`: each gets one.
    let stdout = fusion(&[
        "run",
        "--headless",
        "--duration",
        "3s",
        "--indicator-max-age",
        "2h",
    ]);
    let summary = final_summary(&stdout);
    let bounded: u64 = summary
        .split(" bounded by max age")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bounded count in {summary}"));
    assert!(bounded > 0, "{summary}");
}

#[test]
fn embedded_run_stops_cleanly_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Then the handler is installed: the signal is a Ctrl-C to a running fusion.
    let stdout = after_first_progress_line(&mut child);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = stdout.collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        rest.iter().any(|l| l.contains("done:")),
        "a final summary was printed: {rest:?}"
    );
}

#[test]
fn run_delivers_alerts_to_a_bureau_by_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let scn = generate(dir.path(), 4, 30_000);
    // A Standard Webhooks secret ("whsec_" + base64 of 24 bytes).
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    std::fs::write(dir.path().join("hook.whsec"), secret).unwrap();
    std::fs::write(dir.path().join("key"), "run-test-pseudonym-key").unwrap();
    let received = dir.path().join("received.jsonl");
    let mut receiver = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["receive", "--port", "0", "--secret-file"])
        .arg(dir.path().join("hook.whsec"))
        .arg("--out")
        .arg(&received)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let subs = dir.path().join("subscriptions.toml");
    std::fs::write(
        &subs,
        format!(
            "pseudonym_key = {{ secret_file = \"key\" }}\n\
             [[bureau]]\nid = \"ncb-it\"\ncountry = \"IT\"\nendpoint = \"{url}\"\n\
             secret_file = \"hook.whsec\"\nclearance = \"RED\"\npersonal_data = false\n"
        ),
    )
    .unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let outbox = dir.path().join("outbox");
    let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--input", scn.to_str().unwrap(), "--alerts-out"])
        .arg(&alerts)
        .arg("--subscriptions")
        .arg(&subs)
        .arg("--outbox")
        .arg(&outbox)
        .output()
        .unwrap();
    let _ = receiver.kill();
    let _ = receiver.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("delivery: 0 message(s) still pending"),
        "{stdout}"
    );
    let got = std::fs::read_to_string(&received).unwrap_or_default();
    let bodies: Vec<Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!bodies.is_empty(), "the bureau received alerts");
    // The Italian bureau gets the infected machines Italy's sensors saw, and no other
    // country's (the scenario has victims in about twenty countries).
    let mut listed = 0;
    for b in &bodies {
        let envelope: Value = serde_json::from_str(b["body"].as_str().unwrap()).unwrap();
        if let Some(per_country) = envelope["data"]["victims_by_country"].as_array() {
            for v in per_country {
                assert_eq!(v["country"], "IT", "{envelope}");
                listed += 1;
            }
        }
    }
    assert!(listed > 0, "some alerts list Italian victims");
    // Nothing the bureau got is outside what the owners allow Italy (the sharing list or GREEN/CLEAR).
    let text = got.to_lowercase();
    assert!(
        !text.contains("amber+strict"),
        "AMBER+STRICT never leaves its owner"
    );
}

#[test]
fn run_routes_alerts_to_the_center_on_duty_and_rejects_cross_center_actions() {
    let dir = tempfile::tempdir().unwrap();
    // The scenario starts 2026-11-01T00:00Z: Singapore holds the watch until Lyon takes it at 08:00Z.
    let scn = generate(dir.path(), 4, 30_000);
    let roster = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config/roster.toml");
    let routing = |name: &str| -> Vec<Value> {
        let out = dir.path().join(name);
        fusion(&[
            "run",
            "--input",
            scn.to_str().unwrap(),
            "--roster",
            roster,
            "--routing-out",
            out.to_str().unwrap(),
        ]);
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let first = routing("r1.jsonl");
    let owned: Vec<&Value> = first
        .iter()
        .filter(|v| v["change"]["view"] == "alert" && v["change"]["diff"] == 1)
        .map(|v| &v["change"]["routing"])
        .collect();
    assert!(!owned.is_empty());
    assert!(
        owned.iter().all(|r| r["owner"] == "Singapore"),
        "opened during Singapore's watch"
    );
    let alert = owned[0];
    let id = alert["alert_id"].as_str().unwrap();
    let opened: jiff::Timestamp = alert["opened_at"].as_str().unwrap().parse().unwrap();
    let at = |secs: i64| {
        opened
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    std::fs::write(
        scn.join("desk.actions.jsonl"),
        format!(
            "{{\"schema_version\":1,\"action_id\":\"a-lyon\",\"alert_id\":\"{id}\",\"officer_id\":\"lyon-1\",\"center\":\"Lyon\",\"at\":\"{}\",\"action\":{{\"kind\":\"acknowledge\"}}}}\n\
             {{\"schema_version\":1,\"action_id\":\"a-sg\",\"alert_id\":\"{id}\",\"officer_id\":\"sg-1\",\"center\":\"Singapore\",\"at\":\"{}\",\"action\":{{\"kind\":\"acknowledge\"}}}}\n",
            at(2),
            at(3)
        ),
    )
    .unwrap();
    let second = routing("r2.jsonl");
    let rejected: Vec<&Value> = second
        .iter()
        .filter(|v| v["change"]["view"] == "rejected")
        .map(|v| &v["change"]["action"])
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["action"]["action_id"], "a-lyon");
    assert_eq!(rejected[0]["code"], "not_owner");
    let acked = second.iter().any(|v| {
        v["change"]["view"] == "alert"
            && v["change"]["diff"] == 1
            && v["change"]["routing"]["alert_id"] == id
            && v["change"]["routing"]["acknowledged_by"] == "sg-1"
    });
    assert!(acked, "the owning center's acknowledgement counts");
}

#[test]
fn warning_lists_suppress_matches_and_a_broken_list_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scn = generate(dir.path(), 5, 20_000);
    let run = |lists: &Path, alerts: &Path| {
        Command::new(env!("CARGO_BIN_EXE_fusion"))
            .args(["run", "--input", scn.to_str().unwrap(), "--warning-lists"])
            .arg(lists)
            .arg("--alerts-out")
            .arg(alerts)
            .output()
            .unwrap()
    };
    let kinds = |alerts: &Path| -> BTreeSet<String> {
        final_state(&read_changes(alerts))
            .values()
            .map(|c| c.alert.indicator.kind.as_str().to_string())
            .collect()
    };

    // The shipped lists: the scenario's hostile addresses are on none of them.
    let shipped = Path::new("deploy/config/warning-lists.toml");
    let (plain, wide) = (
        dir.path().join("plain.jsonl"),
        dir.path().join("wide.jsonl"),
    );
    let out = run(shipped, &plain);
    assert!(out.status.success());
    assert!(final_summary(&String::from_utf8_lossy(&out.stdout)).contains("(suppressed 0)"));
    assert!(kinds(&plain).contains("ipv4"), "{:?}", kinds(&plain));

    // A list holding every IPv4 address suppresses every address match, and only those.
    let all = dir.path().join("all-ipv4.toml");
    std::fs::write(
        &all,
        "[[list]]\nname = \"everything\"\nallow_broad = true\nvalues = [\"0.0.0.0/0\"]\n",
    )
    .unwrap();
    let out = run(&all, &wide);
    assert!(out.status.success());
    let summary = final_summary(&String::from_utf8_lossy(&out.stdout));
    assert!(!summary.contains("(suppressed 0)"), "{summary}");
    let left = kinds(&wide);
    assert!(!left.contains("ipv4") && !left.contains("cidr"), "{left:?}");
    assert!(!left.is_empty(), "domain and other alerts stay");

    // A list file that does not parse stops the run before it starts, naming the value.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[list]]\nname = \"x\"\nvalues = [\"not a value\"]\n",
    )
    .unwrap();
    let out = run(&broken, &dir.path().join("none.jsonl"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("are not valid") && stderr.contains("not a value"),
        "{stderr}"
    );
}

#[test]
fn a_changed_warning_list_file_is_reloaded_by_a_running_fusion() {
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists.toml");
    let list = |value: &str| {
        format!("[[list]]\nname = \"local\"\nallow_broad = true\nvalues = [\"{value}\"]\n")
    };
    std::fs::write(&lists, list("nothing.example.invalid")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["run", "--duration", "10s", "--warning-lists"])
        .arg(&lists)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    // Then the lists were loaded: the rewrite is a change to a running fusion.
    let stdout = after_first_progress_line(&mut child);
    std::fs::write(&lists, list("0.0.0.0/0")).unwrap();
    let rest: Vec<String> = stdout.collect();
    assert!(child.wait().unwrap().success());
    let stderr = stderr.join().unwrap();
    assert!(stderr.contains("warning lists reloaded"), "{stderr}");
    // The final summary counts the matches suppressed since the reload.
    let rest = rest.join("\n");
    let summary = final_summary(&rest);
    assert!(!summary.contains("(suppressed 0)"), "{summary}");
}
