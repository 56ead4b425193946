//! Retroactive matching against a month of history, in the runtime itself.
//!
//! Builds the history `fusion run` keeps (the runtime, its two tiers: one hour of raw
//! evidence, 30 days of hourly summaries) from events spread over 30 days of logical and
//! event time, then publishes indicators on observables seen 29 days ago (only
//! summaries left) and one hour ago (raw evidence), and reports: the number of summaries
//! held, the logical-time latency (alert version minus the indicator's logical time) and
//! the wall time from handing the indicator to the dataflow to receiving its alert.
//!
//! ```text
//! cargo bench -p dataflow --bench retro_summaries              # 20 M events, ~21 M summaries
//! RETRO_EVENTS=2000000 cargo bench -p dataflow --bench retro_summaries
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A benchmark that cannot unwrap has failed.

use std::time::Instant;

use crossbeam_channel::RecvTimeoutError;
use dataflow::history::{EventIn, TierConfig};
use dataflow::runtime::{Config, Output, run};
use jiff::Timestamp;
use schemas::{
    EventKind, Feed, FileHashes, Indicator, IndicatorKind, Input, SensorEvent, SourceKind, Tlp,
};

const HOUR_MS: u64 = 3_600_000;
const DAYS: u64 = 30;
/// 2026-10-01T00:00:00Z.
const START_MS: u64 = 1_790_812_800_000;

fn event(n: u64, at_ms: u64) -> SensorEvent {
    SensorEvent {
        schema_version: 1,
        event_id: format!("e{n}"),
        sensor_id: format!("sensor-{:03}", n % 200),
        country: "FR".into(),
        observed_at: Timestamp::from_millisecond(at_ms as i64).unwrap(),
        kind: EventKind::Dns,
        src_ip: None,
        src_port: None,
        dst_ip: None,
        dst_port: None,
        proto: None,
        // One distinct observable per event: a month of distinct (observable, sensor, hour).
        domain: Some(format!("h{n}.example.net")),
        url: None,
        file_hashes: FileHashes::default(),
        email: None,
        wallet: None,
        victim_ip: None,
        signature: None,
        purchase: None,
    }
}

fn indicator(id: &str, value: &str, at_ms: u64) -> Indicator {
    let t = Timestamp::from_millisecond(at_ms as i64).unwrap();
    Indicator {
        schema_version: 1,
        id: id.into(),
        kind: IndicatorKind::Domain,
        value: value.into(),
        owner: "partner-a".into(),
        source_kind: SourceKind::Partner,
        source_id: "partner-a".into(),
        tlp: Tlp::Amber,
        sharing: vec!["FR".into()],
        confidence: 80,
        created: t,
        modified: t,
        valid_from: Timestamp::from_millisecond((START_MS - DAYS * 24 * HOUR_MS) as i64).unwrap(),
        valid_until: None,
        revoked: false,
        labels: vec![],
    }
}

fn main() {
    let events: u64 = std::env::var("RETRO_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    let workers = 2;
    let span = DAYS * 24 * HOUR_MS;
    let mut config = Config::new(TierConfig {
        evidence_ms: HOUR_MS,
        retention_ms: span,
    });
    config.grace_ms = 7 * 24 * HOUR_MS;
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Feed<EventIn>>>(64);
        senders.push(tx);
        receivers.push(rx);
    }
    let dataflow = std::thread::spawn(move || run(receivers, config, out_tx));

    // A month of events, in order, a thousand per batch, each ingested as it happens.
    let built = Instant::now();
    let mut batch: Vec<Vec<Feed<EventIn>>> = vec![Vec::new(); workers];
    for n in 0..events {
        // Spread over the whole span (a rounded step would end hours early at 20 M events,
        // so the "recent" observable would be hours old, and summarised).
        let at = START_MS + n * span / events.max(1);
        let w = (n % workers as u64) as usize;
        batch[w].push(Feed::Record {
            time_ms: at,
            input: Input::Event(EventIn::of(&event(n, at).view())),
        });
        if batch[w].len() == 1024 {
            senders[w].send(std::mem::take(&mut batch[w])).unwrap();
        }
        // Drain reports so the output channel does not pile up.
        while out_rx.try_recv().is_ok() {}
    }
    let end = START_MS + span;
    for (w, b) in batch.iter_mut().enumerate() {
        b.push(Feed::Advance { time_ms: end });
        senders[w].send(std::mem::take(b)).unwrap();
    }
    // Wait until the history holds everything up to the end.
    let mut summaries = 0;
    let mut raw = 0;
    let mut reports = vec![None; workers];
    loop {
        match out_rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(Output::Closed(t)) if t >= end => break,
            Ok(Output::History(h)) => reports[h.shard as usize] = Some(h),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!("the history was not built in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("the dataflow stopped"),
        }
    }
    for h in reports.iter().flatten() {
        summaries += h.sizes.summaries;
        raw += h.sizes.raw_events;
    }
    let build_s = built.elapsed().as_secs_f64();

    // Indicators on an observable seen 29 days ago (summaries only) and one an hour ago.
    let old = events / 30;
    let recent = events - events / (DAYS * 24) / 2;
    let at = end + 1_000;
    let published = Instant::now();
    let records = [
        indicator("ind-old", &format!("h{old}.example.net"), at),
        indicator("ind-recent", &format!("h{recent}.example.net"), at),
    ];
    for (w, ind) in records.into_iter().enumerate() {
        senders[w % workers]
            .send(vec![Feed::Record {
                time_ms: at,
                input: Input::Indicator(ind),
            }])
            .unwrap();
    }
    for s in &senders {
        s.send(vec![Feed::Advance { time_ms: at + 1 }]).unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match out_rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Output::Alert(a, t, d)) if d > 0 => {
                seen.push((
                    a.key.clone(),
                    t,
                    published.elapsed(),
                    a.summarised_sightings,
                    a.sightings,
                ));
            }
            Ok(_) => {}
            Err(e) => panic!("no alert for the new indicators: {e:?}"),
        }
    }
    drop(senders);
    drop(out_rx);
    let _ = dataflow.join();
    println!(
        "history of {events} events over {DAYS} days built in {build_s:.1}s: {summaries} summaries, {raw} raw events held"
    );
    for (key, t, wall, summarised, sightings) in seen {
        println!(
            "{key}: alert at logical +{} ms after the indicator, {:.1} ms wall; {sightings} sighting(s), {summarised} summarised",
            t - at,
            wall.as_secs_f64() * 1000.0
        );
    }
}
