//! `fusion deliver` never drops a message silently: what will not be retried is parked,
//! `deliver` exits non-zero, `fusion outbox list` shows it (never the secret or the
//! signature) and `fusion outbox retry` puts it back on its way. Against a real HTTP
//! receiver on a 127.0.0.1 ephemeral port.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use delivery::Secret;
use schemas::alert::{Alert, AlertChange, ChangeKind, IndicatorRef, Severity};
use schemas::indicator::{IndicatorKind, SourceKind};
use schemas::marking::{Marking, Tlp};

const SECRET: &str = "whsec_ZnVzaW9uLWNlbnRlci10ZXN0LXNlY3JldC0wMDAx";

fn alert(i: usize) -> Alert {
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
        title: format!("ipv4 198.51.100.{i} contacted"),
        indicator: IndicatorRef {
            id: format!("ind-{i}"),
            kind: IndicatorKind::Ipv4,
            value: format!("198.51.100.{i}"),
            source_kind: SourceKind::Partner,
            source_id: "partner-x".to_string(),
            confidence: 80,
            created: t(-100),
        },
        marking: Marking {
            tlp: Tlp::Green,
            owner: "partner-x".to_string(),
            sharing: Vec::new(),
        },
        first_seen: t(10),
        last_seen: t(20),
        sightings: 3,
        hourly: Vec::new(),
        sensors: 2,
        victims: 1,
        victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, i as u8))],
        victims_by_country: Vec::new(),
        accounts: Vec::new(),
        countries: vec!["FR".to_string()],
        retroactive_sightings: 0,
        event_ids: vec!["ev-1".to_string()],
        summarised_sightings: 0,
        drill: false,
        provenance: Default::default(),
    }
}

/// A bureau's endpoint: answers `status` to everything; counts requests, keeps the
/// verified ones it accepted.
#[derive(Default)]
struct Bureau {
    status: AtomicU16,
    requests: AtomicUsize,
    accepted: Mutex<Vec<String>>,
}

async fn bureau(status: u16) -> (String, Arc<Bureau>) {
    async fn handle(State(b): State<Arc<Bureau>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        b.requests.fetch_add(1, Ordering::SeqCst);
        let status = b.status.load(Ordering::SeqCst);
        let ok = Secret::parse(SECRET)
            .unwrap()
            .verify(
                h("webhook-id"),
                h("webhook-timestamp"),
                h("webhook-signature"),
                &body,
                jiff::Timestamp::now().as_second(),
                300,
            )
            .is_ok();
        if ok && (200..300).contains(&status) {
            b.accepted
                .lock()
                .unwrap()
                .push(h("webhook-id").unwrap().to_string());
        }
        StatusCode::from_u16(status).unwrap()
    }
    let state = Arc::new(Bureau::default());
    state.status.store(status, Ordering::SeqCst);
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

struct Setup {
    _dir: tempfile::TempDir,
    alerts: PathBuf,
    subs: PathBuf,
    outbox: PathBuf,
}

fn setup(url: &str, alerts: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("key"), "test-pseudonym-key-0001").unwrap();
    std::fs::write(d.join("hook.whsec"), SECRET).unwrap();
    let subs = d.join("subscriptions.toml");
    std::fs::write(
        &subs,
        format!(
            "pseudonym_key = {{ secret_file = \"key\" }}\n\
             [[bureau]]\nid = \"ncb-fr\"\ncountry = \"FR\"\nendpoint = \"{url}\"\n\
             secret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\n"
        ),
    )
    .unwrap();
    let path = d.join("alerts.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..alerts {
        let c = AlertChange {
            change: ChangeKind::Opened,
            version: 1000,
            alert: alert(i),
        };
        writeln!(f, "{}", serde_json::to_string(&c).unwrap()).unwrap();
    }
    Setup {
        alerts: path,
        subs,
        outbox: d.join("outbox"),
        _dir: dir,
    }
}

/// Runs `fusion` off the async runtime (the test's receiver must keep answering).
async fn fusion(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fusion"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn deliver_args(s: &Setup) -> Vec<String> {
    [
        "deliver",
        "--alerts",
        s.alerts.to_str().unwrap(),
        "--subscriptions",
        s.subs.to_str().unwrap(),
        "--outbox",
        s.outbox.to_str().unwrap(),
        // The Standard Webhooks schedule (~2.7 days) in ~2.7 s; same code path.
        "--retry-scale",
        "100000",
    ]
    .map(String::from)
    .to_vec()
}

fn outbox_args(cmd: &str, outbox: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "outbox".to_string(),
        cmd.to_string(),
        "--outbox".to_string(),
        outbox.to_str().unwrap().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_a_message_refused_with_401_and_exits_non_zero() {
    let (url, rx) = bureau(401).await;
    let s = setup(&url, 3);

    let out = fusion(deliver_args(&s)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "deliver must fail: {stderr}");
    let sum = summary(&out);
    assert_eq!(sum["parked"], 3, "{sum}");
    assert_eq!(sum["pending"], 0, "{sum}");
    assert_eq!(sum["delivered"], 0, "{sum}");
    assert!(
        sum["operator_alerts"].as_array().unwrap().len() == 1,
        "one operator alert for the bureau: {sum}"
    );
    assert!(
        stderr.contains("error: delivery is incomplete") && stderr.contains("fusion outbox list"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
    // 401 was retried through the whole budget (secrets rotate) before parking.
    assert_eq!(rx.requests.load(Ordering::SeqCst), 3 * 10);

    // The parked messages are visible: who, which alert and version, attempts, why.
    let list = fusion(outbox_args("list", &s.outbox, &[])).await;
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let text = String::from_utf8_lossy(&list.stdout);
    for i in 0..3 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("{i:016x}")))
            .unwrap_or_else(|| panic!("alert {i} not listed: {text}"));
        for want in ["ncb-fr", "1000", " 10 ", "401", "unauthorized"] {
            assert!(line.contains(want), "{want:?} missing: {line}");
        }
    }
    // Never the secret, the signature or the body.
    assert!(!text.contains("whsec_") && !text.contains("v1,"), "{text}");
    assert!(!text.contains("198.51.100"), "{text}");
    let json = fusion(outbox_args("list", &s.outbox, &["--json"])).await;
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r["last_status"] == 401 && r["attempts"] == 10)
    );

    // Running deliver again does not resend them by itself, and still fails.
    let again = fusion(deliver_args(&s)).await;
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(rx.requests.load(Ordering::SeqCst), 30);

    // The bureau loads the new secret; an operator re-queues; everything arrives.
    rx.status.store(204, Ordering::SeqCst);
    let retry = fusion(outbox_args("retry", &s.outbox, &["--recipient", "ncb-fr"])).await;
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    assert_eq!(summary(&retry)["requeued"], 3);
    let done = fusion(deliver_args(&s)).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(summary(&done)["parked"], 0);
    let mut got = rx.accepted.lock().unwrap().clone();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 3, "every parked message was delivered");
    let empty = fusion(outbox_args("list", &s.outbox, &[])).await;
    assert!(String::from_utf8_lossy(&empty.stdout).contains("no parked messages"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_a_message_refused_with_404_at_once_and_exits_non_zero() {
    let (url, rx) = bureau(404).await;
    let s = setup(&url, 2);
    let out = fusion(deliver_args(&s)).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(summary(&out)["parked"], 2);
    assert_eq!(rx.requests.load(Ordering::SeqCst), 2, "404 is not retried");
    let list = fusion(outbox_args("list", &s.outbox, &["--recipient", "ncb-fr"])).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("refused")).count(),
        2,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_non_zero_when_the_endpoint_is_gone_and_retry_re_enables_it() {
    let (url, rx) = bureau(410).await;
    let s = setup(&url, 1);
    let out = fusion(deliver_args(&s)).await;
    assert_eq!(out.status.code(), Some(1));
    let list = fusion(outbox_args("list", &s.outbox, &[])).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("endpoint ncb-fr is disabled"), "{text}");

    rx.status.store(204, Ordering::SeqCst);
    let retry = fusion(outbox_args("retry", &s.outbox, &[])).await;
    assert_eq!(summary(&retry)["endpoints_enabled"][0], "ncb-fr");
    let done = fusion(deliver_args(&s)).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(rx.accepted.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_list_on_a_directory_without_an_outbox_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = fusion(outbox_args("list", &missing, &[])).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: no outbox in"), "{stderr}");
    assert!(!missing.exists(), "list must not create an outbox");
}
