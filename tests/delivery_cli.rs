//! Delivery through the binary: `fusion deliver` killed with SIGKILL in the
//! middle of delivering, then restarted on the same outbox, delivers every
//! alert, with duplicates only under the same webhook id; `fusion receive`
//! verifies signatures; `fusion explain-delivery` says why.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use delivery::Secret;
use schemas::alert::{Alert, AlertChange, ChangeKind, IndicatorRef, Severity};
use schemas::indicator::{IndicatorKind, SourceKind};
use schemas::marking::{Marking, Tlp};

const SECRET: &str = "whsec_ZnVzaW9uLWNlbnRlci10ZXN0LXNlY3JldC0wMDAx";

fn alert(i: usize, tlp: Tlp, sharing: &[&str]) -> Alert {
    let t = |s: i64| schemas::Timestamp::from_second(1_790_000_000 + s).unwrap();
    Alert {
        schema_version: 1,
        id: format!("{i:016x}"),
        rule: "indicator_match".to_string(),
        rule_version: 1,
        key: format!("ind-{i}"),
        window_start: t(0),
        window_end: t(3600),
        severity: Severity::High,
        title: format!(
            "ipv4 198.51.100.{} contacted by 10.200.0.{}",
            i % 250,
            i % 250
        ),
        indicator: IndicatorRef {
            id: format!("ind-{i}"),
            kind: IndicatorKind::Ipv4,
            value: format!("198.51.100.{}", i % 250),
            source_kind: SourceKind::Partner,
            source_id: "partner-x".to_string(),
            confidence: 80,
            created: t(-100),
        },
        marking: Marking {
            tlp,
            owner: "partner-x".to_string(),
            sharing: sharing.iter().map(|s| s.to_string()).collect(),
        },
        first_seen: t(10),
        last_seen: t(20),
        sightings: 3,
        hourly: Vec::new(),
        sensors: 2,
        victims: 1,
        victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 250) as u8))],
        victims_by_country: vec![schemas::CountryVictims {
            country: "FR".to_string(),
            victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, (i % 250) as u8))],
        }],
        accounts: vec![format!("victim{i}@mail.example")],
        countries: vec!["FR".to_string()],
        retroactive_sightings: 0,
        event_ids: vec!["ev-1".to_string()],
        summarised_sightings: 0,
        drill: false,
        provenance: Default::default(),
    }
}

fn write_changes(path: &Path, changes: &[AlertChange]) {
    let mut f = std::fs::File::create(path).unwrap();
    for c in changes {
        writeln!(f, "{}", serde_json::to_string(c).unwrap()).unwrap();
    }
}

fn write_subscriptions(dir: &Path, url: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("key"), "test-pseudonym-key-0001").unwrap();
    std::fs::write(dir.join("hook.whsec"), SECRET).unwrap();
    let path = dir.join("subscriptions.toml");
    std::fs::write(
        &path,
        format!(
            "pseudonym_key = {{ secret_file = \"key\" }}\n\
             [[bureau]]\nid = \"ncb-fr\"\ncountry = \"FR\"\nendpoint = \"{url}\"\n\
             secret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\n"
        ),
    )
    .unwrap();
    path
}

#[derive(Default)]
struct Got {
    /// (webhook id, body) of every verified request, answered 204 after a short delay.
    accepted: Vec<(String, String)>,
    bad_signatures: usize,
}

async fn slow_receiver(got: Arc<Mutex<Got>>) -> String {
    async fn handle(
        State((got, secret)): State<(Arc<Mutex<Got>>, Secret)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now = jiff::Timestamp::now().as_second();
        let ok = secret
            .verify(
                h("webhook-id"),
                h("webhook-timestamp"),
                h("webhook-signature"),
                &body,
                now,
                300,
            )
            .is_ok();
        // Slow enough that the kill lands mid-delivery.
        tokio::time::sleep(Duration::from_millis(25)).await;
        let mut g = got.lock().unwrap();
        if !ok {
            g.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        let id = h("webhook-id").unwrap().to_string();
        g.accepted
            .push((id, String::from_utf8_lossy(&body).into_owned()));
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .fallback(handle)
        .with_state((got, Secret::parse(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_then_restart_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let got = Arc::new(Mutex::new(Got::default()));
    let url = slow_receiver(Arc::clone(&got)).await;
    let subs = write_subscriptions(dir.path(), &url);
    // 120 alerts, each opened then updated: 240 messages.
    let mut changes = Vec::new();
    for i in 0..120 {
        changes.push(AlertChange {
            change: ChangeKind::Opened,
            version: 1000,
            alert: alert(i, Tlp::Green, &[]),
        });
    }
    for i in 0..120 {
        let mut a = alert(i, Tlp::Green, &[]);
        a.sightings = 9;
        changes.push(AlertChange {
            change: ChangeKind::Updated,
            version: 2000,
            alert: a,
        });
    }
    let alerts = dir.path().join("alerts.jsonl");
    write_changes(&alerts, &changes);
    let outbox = dir.path().join("outbox");
    let args: Vec<String> = [
        "deliver",
        "--alerts",
        alerts.to_str().unwrap(),
        "--subscriptions",
        subs.to_str().unwrap(),
        "--outbox",
        outbox.to_str().unwrap(),
        "--retry-scale",
        "1000",
    ]
    .map(String::from)
    .to_vec();

    let mut first = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while got.lock().unwrap().accepted.len() < 30 {
        assert!(waited < 2400, "the first run delivered nothing");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before_restart = got.lock().unwrap().accepted.len();
    assert!(
        before_restart < 240,
        "the kill landed after everything was delivered"
    );

    let second = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fusion"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&second.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["pending"], 0);

    let g = got.lock().unwrap();
    assert_eq!(g.bad_signatures, 0);
    // Every (alert, version) arrived; every duplicate carries the same webhook id and body.
    let mut by_id: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (id, body) in &g.accepted {
        by_id.entry(id.as_str()).or_default().insert(body.as_str());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let version = v["timestamp"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        versions
            .entry(v["data"]["id"].as_str().unwrap().to_string())
            .or_default()
            .push(version.as_millisecond() as u64);
    }
    assert_eq!(by_id.len(), 240, "every message delivered");
    assert!(by_id.values().all(|bodies| bodies.len() == 1));
    assert_eq!(versions.len(), 120);
    for (id, vs) in &versions {
        let mut dedup = vs.clone();
        dedup.dedup();
        assert_eq!(dedup, vec![1000, 2000], "alert {id}: versions out of order");
    }
    // Personal data was pseudonymised for this bureau (personal_data = false).
    assert!(
        g.accepted
            .iter()
            .all(|(_, b)| !b.contains("10.200.0.") && !b.contains("@mail.example"))
    );
}

#[test]
fn fusion_receive_verifies_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("s.whsec");
    std::fs::write(&secret_file, SECRET).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args([
            "receive",
            "--port",
            "0",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_string();
    let secret = Secret::parse(SECRET).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let body = r#"{"type":"alert.opened","data":{"id":"a1"}}"#;
    let post = |id: &str, ts: i64, sig: &str, body: &str| -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .post(&url)
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let good = secret.sign("m1", now, body.as_bytes());
    assert_eq!(
        post("m1", now, &good, &body.replace("a1", "a9")),
        401,
        "tampered body"
    );
    let wrong = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(
        post("m1", now, &wrong.sign("m1", now, body.as_bytes()), body),
        401,
        "wrong secret"
    );
    let old = now - 3600;
    assert_eq!(
        post("m1", old, &secret.sign("m1", old, body.as_bytes()), body),
        401,
        "stale"
    );
    assert_eq!(post("m1", now, &good, body), 204);
    let printed: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // Only the valid message was printed.
    assert_eq!(printed["webhook_id"], "m1");
    assert_eq!(printed["body"], body);
}

#[test]
fn explain_delivery_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let subs = write_subscriptions(dir.path(), "http://127.0.0.1:9/unused");
    let alerts = dir.path().join("alerts.jsonl");
    let red = alert(1, Tlp::Red, &["ncb-de"]);
    let green = alert(2, Tlp::Green, &[]);
    write_changes(
        &alerts,
        &[
            AlertChange {
                change: ChangeKind::Opened,
                version: 1000,
                alert: red.clone(),
            },
            AlertChange {
                change: ChangeKind::Opened,
                version: 1000,
                alert: green.clone(),
            },
        ],
    );
    let run = |id: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_fusion"))
            .args([
                "explain-delivery",
                id,
                "ncb-fr",
                "--alerts",
                alerts.to_str().unwrap(),
                "--subscriptions",
                subs.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let r = run(&red.id);
    assert!(r.contains("WITHHOLD") && r.contains("TLP:RED"), "{r}");
    let g = run(&green.id);
    assert!(g.contains("decision: DELIVER"), "{g}");
    assert!(
        g.lines()
            .any(|l| l.contains("victim_ips") && l.contains("pseudonymised")),
        "{g}"
    );
    assert!(
        g.lines()
            .any(|l| l.contains("accounts") && l.contains("not entitled")),
        "{g}"
    );
}
