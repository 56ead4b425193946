//! One bureau down with a large backlog queued for it: do the other bureaus get their
//! alerts as fast, and does enqueueing cost the same, as when every bureau is up?
//!
//! Outboxes with the same four bureaus (real HTTP receivers on 127.0.0.1):
//! - all-up: every bureau answers 204; the same `BACKLOG` alerts (default 100 000) were
//!   delivered to `ncb-a` before the measurement, so the outbox has seen the same traffic;
//! - one-down: `ncb-a`'s port refuses connections and those `BACKLOG` messages are
//!   queued for it;
//! - empty: all up, no history (for reference: what a fresh database costs).
//!
//! Each round enqueues `ALERTS` new alert changes (default 500, one durable transaction
//! each, as `fusion run` does) for the three other bureaus while the workers deliver, and
//! measures the enqueue latency, the time until those bureaus have every message, and
//! the process CPU time per message (less sensitive than wall time to other work on a
//! shared machine). The new alerts are not for `ncb-a`, so both cases do the same work
//! and differ only in `ncb-a` being down with its backlog. Rounds alternate between the
//! two cases; medians of `ROUNDS` (default 7) are reported. Figures are printed, never
//! asserted.
//!
//! Run: `cargo bench -p delivery --bench outbox_backlog` (env BACKLOG, ALERTS, ROUNDS;
//! BENCH_DIR for where the outboxes go, default the system temp directory).

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use delivery::{Outbox, OutboxConfig, Subscriptions};
use schemas::alert::{Alert, AlertChange, ChangeKind, IndicatorRef, Severity};
use schemas::indicator::{IndicatorKind, SourceKind};
use schemas::marking::{Marking, Tlp};
use tokio::sync::watch;

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const UP: [&str; 3] = ["ncb-b", "ncb-c", "ncb-d"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn alert(id: &str, tlp: Tlp, sharing: &[&str]) -> Alert {
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
        hourly: Vec::new(),
        sensors: 2,
        victims: 1,
        victim_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 200, 0, 7))],
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

fn subscriptions(dir: &Path, bureaus: &[(&str, String)]) -> Subscriptions {
    std::fs::write(dir.join("key"), "bench-pseudonym-key-0001").unwrap();
    std::fs::write(dir.join("hook.whsec"), SECRET).unwrap();
    let mut toml = "pseudonym_key = { secret_file = \"key\" }\n".to_string();
    for (id, url) in bureaus {
        toml.push_str(&format!(
            "[[bureau]]\nid = \"{id}\"\ncountry = \"FR\"\nendpoint = \"{url}\"\n\
             secret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\n\
             max_in_flight = 4\n"
        ));
    }
    Subscriptions::parse(&toml, dir).unwrap()
}

/// A receiver that answers 204 and counts what it got.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let got = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&got);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// CPU time (user + system) of this process so far, seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

struct Round {
    /// Messages per second the three up bureaus received, together.
    rate: f64,
    /// Process CPU milliseconds per message delivered.
    cpu_ms: f64,
    /// Enqueue latency, microseconds: mean, p50, p99.
    enqueue_us: (f64, f64, f64),
}

async fn round(outbox: &Outbox, counters: &[Arc<AtomicUsize>], tag: &str, alerts: usize) -> Round {
    let base: Vec<usize> = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    let start = Instant::now();
    let cpu = cpu_secs();
    let ob = outbox.clone();
    let tag = tag.to_string();
    let mut lat = tokio::task::spawn_blocking(move || {
        let mut lat = Vec::with_capacity(alerts);
        for i in 0..alerts {
            let c = AlertChange {
                change: ChangeKind::Opened,
                version: 1000,
                alert: alert(&format!("{tag}-{i}"), Tlp::Amber, &UP),
            };
            let t = Instant::now();
            ob.enqueue(&c).unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        lat
    })
    .await
    .unwrap();
    loop {
        let done = counters
            .iter()
            .zip(&base)
            .all(|(c, b)| c.load(Ordering::SeqCst) >= b + alerts);
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "delivery stalled"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    stop.send(true).unwrap();
    workers.join_all().await;
    lat.sort_by(f64::total_cmp);
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    Round {
        rate: (UP.len() * alerts) as f64 / elapsed,
        cpu_ms: cpu * 1000.0 / (UP.len() * alerts) as f64,
        enqueue_us: (mean, pct(0.5), pct(0.99)),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let backlog = env("BACKLOG", 100_000);
    let alerts = env("ALERTS", 500);
    let rounds = env("ROUNDS", 7);
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut up_urls = Vec::new();
        let mut counters = Vec::new();
        for _ in UP {
            let (url, c) = receiver().await;
            up_urls.push(url);
            counters.push(c);
        }
        let (a_up, _) = receiver().await;
        // A port nobody listens on: the bureau is down (connections refused).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a_down = format!("http://127.0.0.1:{port}/hook");
        let bureaus = |a: &str| -> Vec<(&str, String)> {
            let mut v = vec![("ncb-a", a.to_string())];
            v.extend(UP.iter().copied().zip(up_urls.iter().cloned()));
            v
        };
        let config = OutboxConfig::default();
        let open = |name: &str, a: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            Outbox::open(&d.join("outbox"), subscriptions(&d, &bureaus(a)), config.clone())
                .unwrap()
        };
        // Three outboxes, the same four bureaus:
        // - empty: all up, no history;
        // - all-up: all up, after the same backlog traffic was delivered to ncb-a (the
        //   same alerts known, a database of the same order of size);
        // - one-down: ncb-a down with the backlog queued.
        let empty = open("empty", &a_up);
        let all_up = open("all-up", &a_up);
        let one_down = open("one-down", &a_down);
        let backlog_batches = || {
            (0..backlog).step_by(5000).map(|i| {
                (i..(i + 5000).min(backlog))
                    .map(|k| AlertChange {
                        change: ChangeKind::Opened,
                        version: 1000,
                        alert: alert(&format!("backlog-{k}"), Tlp::Amber, &["ncb-a"]),
                    })
                    .collect::<Vec<_>>()
            })
        };
        let t = Instant::now();
        for batch in backlog_batches() {
            one_down.enqueue_batch(&batch).unwrap();
        }
        println!(
            "one-down: {backlog} messages queued for ncb-a in {:.1} s; pending {}",
            t.elapsed().as_secs_f64(),
            one_down.pending().unwrap()
        );
        let t = Instant::now();
        for batch in backlog_batches() {
            all_up.enqueue_batch(&batch).unwrap();
        }
        let (stop, shutdown) = watch::channel(false);
        let workers = all_up.spawn(shutdown);
        while all_up.pending().unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.send(true).unwrap();
        workers.join_all().await;
        println!(
            "all-up: the same {backlog} messages delivered to ncb-a first, in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        println!(
            "{:<8} {:>5} {:>12} {:>12} {:>14} {:>12} {:>12}",
            "case", "round", "msgs/s (3)", "cpu ms/msg", "enqueue mean", "p50 us", "p99 us"
        );
        let cases = [("empty", &empty), ("all-up", &all_up), ("one-down", &one_down)];
        let mut figures: Vec<[Vec<f64>; 4]> = vec![Default::default(); cases.len()];
        for r in 0..rounds {
            for (k, (name, outbox)) in cases.iter().enumerate() {
                let res = round(outbox, &counters, &format!("r{r}-{name}"), alerts).await;
                println!(
                    "{name:<8} {r:>5} {:>12.0} {:>12.3} {:>12.0}us {:>12.0} {:>12.0}",
                    res.rate, res.cpu_ms, res.enqueue_us.0, res.enqueue_us.1, res.enqueue_us.2
                );
                figures[k][0].push(res.rate);
                figures[k][1].push(res.cpu_ms);
                figures[k][2].push(res.enqueue_us.0);
                figures[k][3].push(res.enqueue_us.1);
            }
        }
        let m: Vec<[f64; 4]> = figures
            .into_iter()
            .map(|f| f.map(median))
            .collect();
        let (e, u, d) = (m[0], m[1], m[2]);
        let pct = |x: f64, base: f64| (x / base - 1.0) * 100.0;
        println!("medians over {rounds} rounds, {alerts} alerts per round (one-down vs all-up; vs empty):");
        for (i, what, unit) in [
            (0, "delivery rate to the up bureaus", "msg/s"),
            (1, "CPU per delivered message", "ms"),
            (2, "enqueue latency, mean", "us"),
            (3, "enqueue latency, p50", "us"),
        ] {
            println!(
                "  {what:<32} empty {:>9.3} {unit}, all-up {:>9.3} {unit}, one-down {:>9.3} {unit} ({:+.1} %; {:+.1} %)",
                e[i],
                u[i],
                d[i],
                pct(d[i], u[i]),
                pct(d[i], e[i])
            );
        }
        println!(
            "  still queued in the one-down outbox (ncb-a's backlog): {}",
            one_down.pending().unwrap()
        );
    });
}
