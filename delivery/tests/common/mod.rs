//! Helpers shared by the delivery integration tests: alert changes, subscriptions
//! with secrets in files, and real HTTP receivers on 127.0.0.1 ephemeral ports
//! whose behaviour the test scripts.

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use delivery::{OutboxConfig, RetrySchedule, Secret, Subscriptions};
use schemas::alert::{Alert, AlertChange, ChangeKind, IndicatorRef, Severity};
use schemas::indicator::{IndicatorKind, SourceKind};
use schemas::marking::{Marking, Tlp};

pub const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub fn alert(id: &str, tlp: Tlp, sharing: &[&str]) -> Alert {
    let t = |s: i64| schemas::Timestamp::from_second(1_790_000_000 + s).unwrap();
    Alert {
        schema_version: 1,
        id: id.to_string(),
        rule: "indicator_match".to_string(),
        rule_version: 1,
        key: format!("ind-{id}"),
        window_start: t(0),
        window_end: t(3600),
        severity: Severity::High,
        title: format!("domain c2-{id}.evil.example seen"),
        indicator: IndicatorRef {
            id: format!("ind-{id}"),
            kind: IndicatorKind::Domain,
            value: format!("c2-{id}.evil.example"),
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
        hourly: vec![schemas::HourlySightings {
            hour: t(0),
            sightings: 3,
        }],
        sensors: 2,
        victims: 1,
        victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, 7))],
        victims_by_country: vec![schemas::CountryVictims {
            country: "FR".to_string(),
            victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, 7))],
        }],
        accounts: vec!["victim@mail.example".to_string()],
        countries: vec!["FR".to_string()],
        retroactive_sightings: 0,
        event_ids: vec!["ev-1".to_string()],
        summarised_sightings: 0,
        drill: false,
        provenance: Default::default(),
    }
}

pub fn change(kind: ChangeKind, version: u64, alert: Alert) -> AlertChange {
    AlertChange {
        change: kind,
        version,
        alert,
    }
}

/// Subscriptions for bureaus `(id, url)`, GREEN-cleared... AMBER-cleared, no personal data.
pub fn subscriptions(dir: &Path, bureaus: &[(&str, &str)]) -> Subscriptions {
    std::fs::write(dir.join("key"), "test-pseudonym-key-0001").unwrap();
    std::fs::write(dir.join("hook.whsec"), SECRET).unwrap();
    let mut toml = "pseudonym_key = { secret_file = \"key\" }\n".to_string();
    for (id, url) in bureaus {
        toml.push_str(&format!(
            "[[bureau]]\nid = \"{id}\"\ncountry = \"FR\"\nendpoint = \"{url}\"\nsecret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\nmax_in_flight = 4\n"
        ));
    }
    Subscriptions::parse(&toml, dir).unwrap()
}

/// A fast schedule with the standard shape (the same code path as production).
pub fn fast_config() -> OutboxConfig {
    OutboxConfig {
        retry: RetrySchedule {
            delays: [0u64, 20, 40, 80, 100, 100, 100, 100, 100, 100]
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            jitter: 0.2,
        },
        request_timeout: Duration::from_secs(60),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
        ..OutboxConfig::default()
    }
}

/// How a test receiver answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer this status to the first `n` requests, then 204.
    FailFirst(usize, u16),
    /// Always this status.
    Always(u16),
    /// Never answer.
    Hang,
    /// This status to everything but retractions, which get 204: a bureau that is down
    /// for alerts whatever the timing of the test, yet takes the retraction.
    RetractionsOnly(u16),
}

#[derive(Default, Debug)]
pub struct Log {
    /// Every request: (webhook id, body, signature valid).
    pub requests: Vec<(String, String, bool)>,
    /// Requests answered with 2xx: (webhook id, body).
    pub accepted: Vec<(String, String)>,
    /// The `fusion-drill` header of every request, if it had one.
    pub drill_headers: Vec<Option<String>>,
}

pub struct Receiver {
    pub url: String,
    pub log: Arc<Mutex<Log>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
}

struct St {
    log: Arc<Mutex<Log>>,
    behaviour: Arc<Mutex<Behaviour>>,
    secret: Secret,
}

async fn handle(
    State(st): State<Arc<St>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let ok = st
        .secret
        .verify(
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            &body,
            jiff::Timestamp::now().as_second(),
            300,
        )
        .is_ok();
    let id = h("webhook-id").unwrap_or_default().to_string();
    let text = String::from_utf8_lossy(&body).into_owned();
    let status = {
        let mut log = st.log.lock().unwrap();
        let n = log.requests.len();
        log.requests.push((id.clone(), text.clone(), ok));
        log.drill_headers.push(h("fusion-drill").map(String::from));
        match &*st.behaviour.lock().unwrap() {
            Behaviour::FailFirst(k, s) if n < *k => Some(*s),
            Behaviour::FailFirst(..) => Some(204),
            Behaviour::Always(s) => Some(*s),
            Behaviour::Hang => None,
            Behaviour::RetractionsOnly(_) if text.contains("alert.retracted") => Some(204),
            Behaviour::RetractionsOnly(s) => Some(*s),
        }
    };
    let Some(status) = status else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    if (200..300).contains(&status) && ok {
        st.log.lock().unwrap().accepted.push((id, text));
    }
    // A throttling answer asks for one second of quiet.
    let retry_after = if status == 429 { "1" } else { "0" };
    (
        StatusCode::from_u16(status).unwrap(),
        [("retry-after", retry_after)],
    )
}

pub async fn receiver(behaviour: Behaviour) -> Receiver {
    let log = Arc::new(Mutex::new(Log::default()));
    let behaviour = Arc::new(Mutex::new(behaviour));
    let app = Router::new().fallback(handle).with_state(Arc::new(St {
        log: Arc::clone(&log),
        behaviour: Arc::clone(&behaviour),
        secret: Secret::parse(SECRET).unwrap(),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url,
        log,
        behaviour,
    }
}

/// Waits (bounded) until `cond` holds; panics with `what` if it never does.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// (alert id, version, type) of each accepted body, in arrival order.
pub fn accepted_messages(log: &Log) -> Vec<(String, u64, String)> {
    log.accepted
        .iter()
        .map(|(_, body)| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let kind = v["type"].as_str().unwrap().to_string();
            let version = v["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond() as u64;
            (v["data"]["id"].as_str().unwrap().to_string(), version, kind)
        })
        .collect()
}

/// Per alert, the versions accepted, in arrival order.
pub fn versions_by_alert(log: &Log) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (id, v, _) in accepted_messages(log) {
        m.entry(id).or_default().push(v);
    }
    m
}
