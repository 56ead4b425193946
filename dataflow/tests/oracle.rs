//! Oracle tests: the incremental alerts at every closed time equal a brute-force
//! recomputation from the inputs seen so far, on 1 and 2 workers.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use dataflow::Time;
use dataflow::alerts::{RULE, alert_id, base_alert, contributor, corroborate, severity};
use dataflow::evidence::{AlertSightings, KeptIndicator, aggregate, evidence_window};
use dataflow::history::{
    Country, EventIn, Evidence, Made, RawSighting, SummarySighting, Target, TierConfig,
    indicator_ref,
};
use dataflow::observables::indicator_key;
use dataflow::runtime::{Config, Output, run};
use dataflow::snapshot::Snapshots;
use dataflow::views::corroboration::{CorroborationConfig, Report, confidence};
use jiff::Timestamp;
use proptest::prelude::*;
use schemas::{
    Alert, AlertChange, ChangeKind, EventKind, Feed, FileHashes, Indicator, IndicatorKind, Input,
    SensorEvent, SourceKind, Tlp,
};

const DAY_MS: i64 = 86_400_000;
const BASE_MS: i64 = 1_790_000_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// Runs the dataflow over `records` (non-decreasing times) on `workers` workers and
/// returns the alert changes per closed time.
fn run_dataflow(
    records: &[(Time, Input)],
    workers: usize,
    model: Model,
) -> Vec<(Time, Vec<AlertChange>)> {
    run_dataflow_with(records, workers, model.config()).0
}

/// [`run_dataflow`] with a full configuration; also returns the net number of
/// suppressed matches.
fn run_dataflow_with(
    records: &[(Time, Input)],
    workers: usize,
    config: Config,
) -> (Vec<(Time, Vec<AlertChange>)>, isize) {
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::unbounded();
        senders.push(tx);
        receivers.push(rx);
    }
    for (n, (time, input)) in records.iter().enumerate() {
        // As the ingest router does: events spread, every version of an indicator (and
        // every action on an id) to the one worker that holds its id.
        let by_id = |id: &str| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(id, &mut h);
            usize::try_from(std::hash::Hasher::finish(&h) % workers as u64).unwrap()
        };
        let worker = match input {
            Input::Event(_) => n % workers,
            Input::Indicator(i) => by_id(&i.id),
            Input::Action(a) => by_id(&a.action_id),
        };
        senders[worker]
            .send(vec![Feed::Record {
                time_ms: *time,
                input: input.clone().map_event(|e| EventIn::of(&e.view())),
            }])
            .unwrap();
    }
    // Every worker learns the last time, so all of them close it.
    let last = records.last().map_or(1, |(t, _)| *t);
    for s in &senders {
        s.send(vec![Feed::Advance { time_ms: last + 1 }]).unwrap();
    }
    drop(senders);
    let handle = std::thread::spawn(move || run(receivers, config, out_tx));
    let mut snaps = Snapshots::new();
    let mut changes = Vec::new();
    let mut suppressed = 0;
    for msg in out_rx {
        match msg {
            Output::Alert(a, t, d) => snaps.update(*a, t, d),
            Output::Expired(id, t) => snaps.expired(id, t),
            Output::Closed(t) => changes.extend(snaps.close_before(t)),
            Output::InputEnd(t) => snaps.input_ended(t),
            Output::Suppressed(_, d) => suppressed += d,
            Output::Matches(..)
            | Output::AlertsClosed(..)
            | Output::Late(..)
            | Output::AgeBounded(..)
            | Output::History(..)
            | Output::Routing(..)
            | Output::Escalation(..)
            | Output::Handover(..)
            | Output::Duty(..)
            | Output::Rejected(..) => {}
        }
    }
    handle.join().unwrap().unwrap();
    (changes, suppressed)
}

/// The open alerts at `time` according to the changes.
fn state_at(changes: &[(Time, Vec<AlertChange>)], time: Time) -> BTreeMap<String, Alert> {
    let mut open = BTreeMap::new();
    for (t, cs) in changes.iter().filter(|(t, _)| *t <= time) {
        for c in cs {
            assert_eq!(c.version, *t);
            match c.change {
                ChangeKind::Opened | ChangeKind::Updated => {
                    open.insert(c.alert.id.clone(), c.alert.clone());
                }
                ChangeKind::Retracted | ChangeKind::Expired => {
                    assert!(
                        open.remove(&c.alert.id).is_some(),
                        "retracted an alert that was not open"
                    );
                }
            }
        }
    }
    open
}

/// The current indicator versions after the inputs with time <= `time`: per id the
/// greatest (modified, content) of the versions still held, unless revoked. A version is
/// held from its arrival (if newer than every version held before it) until it is
/// superseded, revoked plus the retention, or its validity ended plus the horizon (a day
/// of window, the retention and the grace).
fn current_at(records: &[(Time, Input)], time: Time, m: Model) -> BTreeMap<&str, &Indicator> {
    let horizon = (DAY_MS as u64)
        .saturating_add(m.retention)
        .saturating_add(m.grace)
        .saturating_add(1);
    let mut held: BTreeMap<&str, Vec<(&Indicator, Time, Time)>> = BTreeMap::new();
    for (t, input) in records {
        let Input::Indicator(i) = input else { continue };
        let versions = held.entry(i.id.as_str()).or_default();
        // The latest version still held when `i` arrives.
        let latest = versions.iter_mut().rev().find(|(_, _, until)| *until > *t);
        if let Some((latest, _, _)) = &latest
            && (i.modified, i) <= (latest.modified, *latest)
        {
            continue;
        }
        // A newer version replaces it at once: a superseded version never comes back,
        // not even when the newer one expires.
        if let Some(previous) = latest {
            previous.2 = previous.2.min(*t);
        }
        let mut until = Time::MAX;
        if i.revoked {
            until = t.saturating_add(m.retention).max(t + 1);
        } else if let Some(u) = i.valid_until {
            let end = Time::try_from(u.as_millisecond()).unwrap_or(0);
            until = end.saturating_add(horizon).max(t + 1);
        }
        versions.push((i, *t, until));
    }
    let mut latest: BTreeMap<&str, &Indicator> = BTreeMap::new();
    for (id, versions) in held {
        let best = versions
            .iter()
            .filter(|(_, from, until)| *from <= time && time < *until)
            .map(|(i, _, _)| *i)
            .max_by(|a, b| (a.modified, *a).cmp(&(b.modified, *b)));
        if let Some(i) = best {
            latest.insert(id, i);
        }
    }
    latest.retain(|_, i| !i.revoked);
    latest
}

fn valid(ind: &Indicator, observed: i64) -> bool {
    ind.valid_from.as_millisecond() <= observed
        && ind
            .valid_until
            .is_none_or(|u| observed < u.as_millisecond())
}

/// The retained history and alert life as the runtime is configured.
#[derive(Debug, Clone, Copy)]
struct Model {
    /// Evidence window, retention, grace (logical ms).
    evidence: u64,
    retention: u64,
    grace: u64,
}

const HOUR: i64 = 3_600_000;

impl Model {
    fn unbounded() -> Self {
        Self {
            evidence: u64::MAX / 8,
            retention: u64::MAX / 8,
            grace: u64::MAX / 8,
        }
    }

    fn config(&self) -> Config {
        let mut c = Config::new(TierConfig {
            evidence_ms: self.evidence,
            retention_ms: self.retention,
        });
        c.grace_ms = self.grace;
        c
    }

    /// The logical time at which an event ingested at `te` stops being raw evidence.
    fn raw_end(&self, te: Time) -> Time {
        let chunk = (self.evidence / 600).clamp(1, 10_000);
        (te - te % chunk)
            .saturating_add(chunk)
            .saturating_add(self.evidence)
    }

    /// The logical time at which the summaries of event time `observed` are dropped.
    fn summary_end(&self, observed: i64) -> Time {
        let per = (self.retention / 3_600_000 / 30).clamp(1, 24) as i64;
        let hour = observed.div_euclid(HOUR);
        let first = hour - hour.rem_euclid(per);
        u64::try_from((first + per) * HOUR)
            .unwrap_or(0)
            .saturating_add(self.retention)
    }

    /// Event time `observed` is beyond the retention at `at`.
    fn too_old(&self, observed: i64, at: Time) -> bool {
        (observed as i128) + (self.retention as i128) < at as i128
    }
}

/// The matching view of an indicator version: what it is matched on and its validity.
fn compact(i: &Indicator) -> (Target, i64, i64) {
    let k = KeptIndicator::of(i).unwrap();
    (k.target, k.valid_from_ms, k.valid_until_ms)
}

/// Every observable of an event as text (`ip:…`, `domain:…`, …), each once.
fn observables(ev: &SensorEvent) -> Vec<String> {
    let mut out: Vec<String> = [ev.src_ip, ev.dst_ip, ev.victim_ip]
        .into_iter()
        .flatten()
        .map(|ip| format!("ip:{ip}"))
        .collect();
    let host = ev
        .url
        .as_ref()
        .map(|u| url::Url::parse(u).unwrap().host_str().unwrap().to_string());
    for d in [ev.domain.clone(), host].into_iter().flatten() {
        let labels: Vec<&str> = d.split('.').collect();
        for i in 0..labels.len().saturating_sub(1) {
            out.push(format!("domain:{}", labels[i..].join(".")));
        }
    }
    if let Some(u) = &ev.url {
        out.push(format!("url:{u}"));
    }
    if let Some(h) = &ev.file_hashes.sha256 {
        out.push(format!("sha256:{h}"));
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the indicator matches the observable (text, as [`observables`] writes it).
fn matches_observable(ind: &Indicator, obs: &str) -> bool {
    match ind.kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => obs == format!("ip:{}", ind.value),
        IndicatorKind::Cidr => {
            let Some(ip) = obs.strip_prefix("ip:") else {
                return false;
            };
            let (net, len) = ind.value.split_once('/').unwrap();
            let (net, len): (IpAddr, u32) = (net.parse().unwrap(), len.parse().unwrap());
            match (ip.parse::<IpAddr>().unwrap(), net) {
                (IpAddr::V4(a), IpAddr::V4(n)) => {
                    len == 0 || (u32::from(a) ^ u32::from(n)) >> (32 - len) == 0
                }
                _ => false,
            }
        }
        IndicatorKind::Domain => obs == format!("domain:{}", ind.value),
        IndicatorKind::Url => obs == format!("url:{}", ind.value),
        IndicatorKind::Sha256 => obs == format!("sha256:{}", ind.value),
        _ => false,
    }
}

fn raw_made(ind: &Indicator, ev: &SensorEvent, te: Time) -> Made {
    let victim = ev.victim_ip.or(match ev.kind {
        EventKind::Sinkhole => ev.src_ip,
        _ => None,
    });
    Made {
        indicator: indicator_ref(&ind.id),
        target: compact(ind).0,
        evidence: Evidence::Raw(RawSighting {
            event_ref: dataflow::history::event_ref(&ev.sensor_id, &ev.event_id),
            event_id: ev.event_id.clone().into(),
            sensor_id: ev.sensor_id.clone().into(),
            country: Country::new(&ev.country),
            observed_ms: ev.observed_at.as_millisecond(),
            ingested_ms: te,
            victim,
            account: ev.email.clone().map(Into::into),
        }),
    }
}

/// What the brute force says at one time: the open alerts, and the alerts that expired
/// (time, id) up to it.
struct Oracle {
    open: BTreeMap<String, Alert>,
    expired: BTreeSet<(Time, String)>,
}

/// Brute force: the alerts implied by the inputs with time <= `time`, simulated time by
/// time from scratch. A raw match is made when the event is raw evidence (ingested less
/// than the evidence window ago, by chunks) and the then-current version matches it;
/// summaries are taken when a version with that target first becomes current, as the
/// history summarised them by then (event hours still within the retention); a window's
/// matches are kept, aggregated with the current (or last) version, and dropped when the
/// window expires (its end or last change plus the grace), after which its matches are
/// ignored. Nothing older than the retention in event time matches.
fn oracle_at(records: &[(Time, Input)], time: Time, m: Model) -> Oracle {
    let times: Vec<Time> = records
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= time)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let events: Vec<(Time, &SensorEvent)> = records
        .iter()
        .filter_map(|(t, i)| match i {
            Input::Event(ev) => Some((*t, ev)),
            _ => None,
        })
        .collect();
    type Key = (u64, i64);
    let mut accepted: BTreeMap<Key, Vec<Made>> = BTreeMap::new();
    let mut emitted: BTreeMap<Key, (Option<AlertSightings>, Time)> = BTreeMap::new();
    let mut tombstones: BTreeMap<Key, Time> = BTreeMap::new();
    let mut first_seen: BTreeMap<(String, Target), Time> = BTreeMap::new();
    let mut last_version: BTreeMap<String, Indicator> = BTreeMap::new();
    let mut expired = BTreeSet::new();
    let mut previous: BTreeMap<&str, &Indicator> = BTreeMap::new();
    let window_end = |w: i64| u64::try_from(w + DAY_MS).unwrap_or(0);
    let clock: Vec<Time> = times.clone();
    let mut at_index = 0;
    let mut now_current: BTreeMap<&str, &Indicator> = BTreeMap::new();
    loop {
        // The next time: an input time, or the earliest expiry due before the next input.
        let next_input = clock.get(at_index).copied();
        let next_due = emitted
            .iter()
            .map(|(k, (_, changed))| window_end(k.1).max(*changed).saturating_add(m.grace))
            .filter(|d| *d <= time)
            .min();
        let Some(t) = [next_input, next_due].into_iter().flatten().min() else {
            break;
        };
        if next_input == Some(t) {
            at_index += 1;
            let current = current_at(records, t, m);
            let mut made: Vec<Made> = Vec::new();
            // Versions added at t (what matching sees change), and their first targets.
            for (id, ind) in &current {
                let changed = previous.get(id).is_none_or(|p| compact(p) != compact(ind));
                first_seen
                    .entry((id.to_string(), compact(ind).0))
                    .or_insert(t);
                if changed {
                    // Retroactive: raw events still held at t.
                    for (te, ev) in events.iter().filter(|(te, _)| *te < t) {
                        let obs = ev.observed_at.as_millisecond();
                        if t < m.raw_end(*te)
                            && !m.too_old(obs, *te)
                            && !m.too_old(obs, t)
                            && valid(ind, obs)
                            && brute_match(ind, ev)
                        {
                            made.push(raw_made(ind, ev, *te));
                        }
                    }
                    // Summaries, on the first time this target is current.
                    if first_seen[&(id.to_string(), compact(ind).0)] == t {
                        let mut cells: BTreeMap<(String, String, i64), (u32, i64, i64, String)> =
                            BTreeMap::new();
                        for (te, ev) in events.iter().filter(|(te, _)| *te < t) {
                            let obs = ev.observed_at.as_millisecond();
                            let aged = m.raw_end(*te);
                            if m.too_old(obs, *te)
                                || aged > t
                                || m.summary_end(obs) <= aged
                                || m.summary_end(obs) <= t
                            {
                                continue;
                            }
                            for o in observables(ev)
                                .iter()
                                .filter(|o| matches_observable(ind, o))
                            {
                                let cell = cells
                                    .entry((o.clone(), ev.sensor_id.clone(), obs.div_euclid(HOUR)))
                                    .or_insert((0, obs, obs, ev.country.clone()));
                                cell.0 += 1;
                                cell.1 = cell.1.min(obs);
                                cell.2 = cell.2.max(obs);
                            }
                        }
                        for ((o, sensor, hour), (count, first, last, country)) in cells {
                            let hour_ms = hour * HOUR;
                            if hour_ms + HOUR - 1 < ind.valid_from.as_millisecond()
                                || ind
                                    .valid_until
                                    .is_some_and(|u| hour_ms >= u.as_millisecond())
                            {
                                continue;
                            }
                            made.push(Made {
                                indicator: indicator_ref(&ind.id),
                                target: compact(ind).0,
                                evidence: Evidence::Summary(SummarySighting {
                                    shard: 0,
                                    observable: dataflow::observables::key_hash(&o),
                                    sensor_id: sensor.into(),
                                    country: Country::new(&country),
                                    hour: u32::try_from(hour).unwrap(),
                                    count,
                                    first_ms: first / 1000 * 1000,
                                    last_ms: last / 1000 * 1000 + 999,
                                }),
                            });
                        }
                    }
                }
            }
            // Live: events arriving at t.
            for (te, ev) in events.iter().filter(|(te, _)| *te == t) {
                let obs = ev.observed_at.as_millisecond();
                if m.too_old(obs, t) {
                    continue;
                }
                for ind in current.values() {
                    if valid(ind, obs) && brute_match(ind, ev) {
                        made.push(raw_made(ind, ev, *te));
                    }
                }
            }
            for (id, ind) in &current {
                last_version.insert(id.to_string(), (*ind).clone());
            }
            tombstones.retain(|_, until| *until > t);
            for mm in made {
                let key = (mm.indicator, evidence_window(&mm.evidence));
                if tombstones.contains_key(&key) {
                    continue;
                }
                let kept = accepted.entry(key).or_default();
                let dup = kept.iter().any(|k| match (&k.evidence, &mm.evidence) {
                    (Evidence::Raw(a), Evidence::Raw(b)) => a.event_ref == b.event_ref,
                    (Evidence::Summary(a), Evidence::Summary(b)) => a.cell() == b.cell(),
                    _ => false,
                });
                if !dup {
                    kept.push(mm);
                }
            }
            // Aggregates from scratch with the current (or last) version.
            for (key, kept) in &accepted {
                let Some(ind) = last_version
                    .values()
                    .find(|i| indicator_ref(&i.id) == key.0)
                else {
                    continue;
                };
                let agg = aggregate(&KeptIndicator::of(ind).unwrap(), key.1, kept);
                let e = emitted.entry(*key).or_insert((None, t));
                if e.0 != agg {
                    *e = (agg, t);
                }
            }
            previous = current.clone();
            now_current = current;
        }
        // Expiries due at t (after the inputs of t).
        let due: Vec<Key> = emitted
            .iter()
            .filter(|(k, (_, changed))| window_end(k.1).max(*changed).saturating_add(m.grace) == t)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let (agg, _) = emitted.remove(&key).unwrap();
            accepted.remove(&key);
            if agg.is_some()
                && let Some(ind) = now_current.values().find(|i| indicator_ref(&i.id) == key.0)
            {
                expired.insert((t, alert_id(RULE, &ind.id, key.1)));
            }
            let forget = window_end(key.1)
                .saturating_add(m.retention)
                .saturating_add(DAY_MS as u64)
                .max(t + 1);
            tombstones.insert(key, forget);
        }
    }
    let current = current_at(records, time, m);
    let config = CorroborationConfig::default();
    let key_of = |i: &Indicator| indicator_key(i.kind, &i.value);
    let open = emitted
        .into_iter()
        .filter_map(|(key, (agg, _))| {
            let agg = agg?;
            let ind = current.values().find(|i| indicator_ref(&i.id) == key.0)?;
            Some(base_alert(ind, &agg))
        })
        .map(|base| {
            let key = indicator_key(base.indicator.kind, &base.indicator.value);
            let on_key: Vec<&Indicator> = current
                .values()
                .copied()
                .filter(|i| key_of(i) == key)
                .collect();
            let mut latest: BTreeMap<(SourceKind, &str), Report> = BTreeMap::new();
            for i in &on_key {
                let r = Report {
                    at_ms: i.modified.as_millisecond(),
                    confidence: i.confidence,
                };
                let e = latest
                    .entry((i.source_kind, i.source_id.as_str()))
                    .or_insert(r);
                *e = (*e).max(r);
            }
            let reports: Vec<Report> = latest.into_values().collect();
            let feeds: Vec<_> = on_key.iter().map(|i| contributor(i)).collect();
            let mut alert = corroborate(
                &base,
                key,
                &feeds.iter().collect::<Vec<_>>(),
                config.half_life_ms,
            );
            // Independently of `corroborate`: the figures the formula gives.
            let expected = confidence(&reports, config.half_life_ms);
            assert_eq!(alert.provenance.corroborated_confidence, expected);
            let mut marking = base.marking.clone();
            for i in &on_key {
                marking = marking.strictest(&i.marking());
            }
            assert_eq!(alert.marking, marking);
            alert.severity = severity(
                base.indicator.confidence.max(expected),
                base.sensors as usize,
                base.countries.len(),
                base.victims as usize,
            );
            (alert.id.clone(), alert)
        })
        .collect();
    Oracle { open, expired }
}

fn brute_match(ind: &Indicator, ev: &SensorEvent) -> bool {
    let ips: Vec<IpAddr> = [ev.src_ip, ev.dst_ip, ev.victim_ip]
        .into_iter()
        .flatten()
        .collect();
    match ind.kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            ips.iter().any(|ip| ip.to_string() == ind.value)
        }
        IndicatorKind::Cidr => {
            let (net, len) = ind.value.split_once('/').unwrap();
            let net: IpAddr = net.parse().unwrap();
            let len: u32 = len.parse().unwrap();
            ips.iter().any(|ip| match (ip, net) {
                (IpAddr::V4(a), IpAddr::V4(n)) => {
                    len == 0 || (u32::from(*a) ^ u32::from(n)) >> (32 - len) == 0
                }
                _ => false,
            })
        }
        IndicatorKind::Domain => {
            let host = ev
                .url
                .as_ref()
                .map(|u| url::Url::parse(u).unwrap().host_str().unwrap().to_string());
            [ev.domain.clone(), host]
                .into_iter()
                .flatten()
                .any(|d| d == ind.value || d.ends_with(&format!(".{}", ind.value)))
        }
        IndicatorKind::Url => ev.url.as_deref() == Some(&ind.value),
        IndicatorKind::Sha256 => ev.file_hashes.sha256.as_deref() == Some(&ind.value),
        _ => false,
    }
}

const IPS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.1.9", "10.1.0.1", "192.0.2.1"];
const DOMAINS: [&str; 4] = [
    "a.evil.example",
    "evil.example",
    "x.b.evil.example",
    "good.example",
];
const IND_VALUES: [(IndicatorKind, &str); 9] = [
    (IndicatorKind::Ipv4, "10.0.0.1"),
    (IndicatorKind::Ipv4, "192.0.2.1"),
    (IndicatorKind::Cidr, "10.0.0.0/24"),
    (IndicatorKind::Cidr, "10.0.0.0/16"),
    (IndicatorKind::Cidr, "10.1.0.0/24"),
    (IndicatorKind::Domain, "evil.example"),
    (IndicatorKind::Domain, "b.evil.example"),
    (IndicatorKind::Url, "http://a.evil.example/p"),
    (
        IndicatorKind::Sha256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ),
];

fn event(
    n: usize,
    ip: usize,
    dom: Option<usize>,
    url: bool,
    hash: bool,
    observed_ms: i64,
) -> SensorEvent {
    SensorEvent {
        schema_version: 1,
        event_id: format!("e{n}"),
        sensor_id: format!("s{}", n % 4),
        country: ["FR", "SG", "AR", "DE"][n % 4].to_string(),
        observed_at: ts(observed_ms),
        kind: if n.is_multiple_of(5) {
            EventKind::Sinkhole
        } else {
            EventKind::Dns
        },
        src_ip: Some(IPS[ip % IPS.len()].parse().unwrap()),
        src_port: None,
        dst_ip: Some(IPS[(ip + 1) % IPS.len()].parse().unwrap()),
        dst_port: None,
        proto: None,
        domain: dom.map(|d| DOMAINS[d % DOMAINS.len()].to_string()),
        url: url.then(|| "http://a.evil.example/p".to_string()),
        file_hashes: FileHashes {
            sha256: hash.then(|| "a".repeat(64)),
            ..FileHashes::default()
        },
        email: None,
        wallet: None,
        victim_ip: None,
        signature: None,
        purchase: None,
    }
}

fn indicator(
    id: usize,
    value: usize,
    version: i64,
    valid_from: i64,
    until: Option<i64>,
    revoked: bool,
    confidence: u8,
) -> Indicator {
    let (kind, v) = IND_VALUES[value % IND_VALUES.len()];
    // Three sources, so observables are corroborated; markings vary with the version.
    let (source_kind, source) = [
        (SourceKind::Partner, "partner-a"),
        (SourceKind::Partner, "partner-b"),
        (SourceKind::Osint, "osint-c"),
    ][id % 3];
    Indicator {
        schema_version: 1,
        id: format!("ind-{id}"),
        kind,
        value: v.to_string(),
        owner: source.into(),
        source_kind,
        source_id: source.into(),
        tlp: [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::Red][version.rem_euclid(4) as usize],
        sharing: vec!["FR".into()],
        confidence,
        created: ts(BASE_MS),
        modified: ts(BASE_MS + version),
        valid_from: ts(valid_from),
        valid_until: until.map(ts),
        revoked,
        labels: vec![],
    }
}

#[derive(Debug, Clone)]
enum Step {
    Event {
        ip: usize,
        dom: Option<usize>,
        url: bool,
        hash: bool,
        observed_offset: i64,
    },
    Indicator {
        id: usize,
        value: usize,
        from_offset: i64,
        until_len: Option<i64>,
        revoked: bool,
        confidence: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..5usize, proptest::option::of(0..4usize), any::<bool>(), proptest::bool::weighted(0.2), 0..3 * DAY_MS)
            .prop_map(|(ip, dom, url, hash, observed_offset)| Step::Event { ip, dom, url, hash, observed_offset }),
        2 => (0..4usize, 0..IND_VALUES.len(), 0..3 * DAY_MS, proptest::option::of(1..2 * DAY_MS), proptest::bool::weighted(0.25), 0..=100u8)
            .prop_map(|(id, value, from_offset, until_len, revoked, confidence)| Step::Indicator { id, value, from_offset, until_len, revoked, confidence }),
    ]
}

/// Turns steps into records at non-decreasing logical times (several records share a time).
fn records(steps: &[(Step, u8)]) -> Vec<(Time, Input)> {
    timed_records(steps, 1_000, 10, None)
}

/// Records from `start`, `gap_ms` apart (or on the same time); with `lagged`, logical time
/// follows event time: an event is observed its offset (modulo `lagged`) before it arrives.
fn timed_records(
    steps: &[(Step, u8)],
    start: Time,
    gap_ms: u64,
    lagged: Option<i64>,
) -> Vec<(Time, Input)> {
    let mut time: Time = start;
    let mut out = Vec::new();
    for (n, (s, gap)) in steps.iter().enumerate() {
        time += u64::from(*gap % 3) * gap_ms;
        let input = match s {
            Step::Event {
                ip,
                dom,
                url,
                hash,
                observed_offset,
            } => {
                let observed = match lagged {
                    Some(span) => time as i64 - observed_offset.rem_euclid(span),
                    None => BASE_MS + observed_offset,
                };
                Input::Event(event(n, *ip, *dom, *url, *hash, observed))
            }
            Step::Indicator {
                id,
                value,
                from_offset,
                until_len,
                revoked,
                confidence,
            } => {
                let from = BASE_MS + from_offset;
                Input::Indicator(indicator(
                    *id,
                    *value,
                    n as i64,
                    from,
                    until_len.map(|l| from + l),
                    *revoked,
                    *confidence,
                ))
            }
        };
        out.push((time, input));
    }
    out
}

fn check(records: &[(Time, Input)], workers: usize, model: Model) -> Result<(), TestCaseError> {
    let changes = run_dataflow(records, workers, model);
    let times: BTreeSet<Time> = records.iter().map(|(t, _)| *t).collect();
    let last = times.last().copied().unwrap_or(0);
    for t in times {
        prop_assert_eq!(
            state_at(&changes, t),
            oracle_at(records, t, model).open,
            "at time {} on {} worker(s)",
            t,
            workers
        );
    }
    let expired: BTreeSet<(Time, String)> = changes
        .iter()
        .flat_map(|(t, cs)| {
            cs.iter()
                .filter(|c| c.change == ChangeKind::Expired)
                .map(move |c| (*t, c.alert.id.clone()))
        })
        .filter(|(t, _)| *t <= last)
        .collect();
    prop_assert_eq!(
        expired,
        oracle_at(records, last, model).expired,
        "expiries on {} worker(s)",
        workers
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn alerts_equal_brute_force_at_every_closed_time(steps in proptest::collection::vec((step(), any::<u8>()), 1..40)) {
        let recs = records(&steps);
        check(&recs, 1, Model::unbounded())?;
        check(&recs, 2, Model::unbounded())?;
    }

    /// Logical time follows event time, with events up to two days late: raw evidence
    /// ages into summaries, summaries and events go beyond the retention, alerts expire.
    #[test]
    fn two_tiers_and_expiry_equal_brute_force(
        steps in proptest::collection::vec((step(), any::<u8>()), 1..40),
        evidence in 1_000u64..600_000,
        retention_hours in 1u64..40,
        grace in 1u64..300_000,
    ) {
        let start = (BASE_MS + 2 * DAY_MS) as Time;
        let recs = timed_records(&steps, start, 30_000, Some(2 * DAY_MS));
        let model = Model { evidence, retention: retention_hours * 3_600_000, grace };
        check(&recs, 1, model)?;
        check(&recs, 2, model)?;
    }
}

#[test]
fn retroactive_match_then_revocation_withdraws_the_alert() {
    let t0 = BASE_MS;
    let ev = event(1, 0, None, false, false, t0 + 1_000); // src 10.0.0.1
    let ind = indicator(1, 0, 0, t0, None, false, 90); // ipv4 10.0.0.1
    let mut revoked = ind.clone();
    revoked.modified = ts(t0 + 10);
    revoked.revoked = true;
    // The event arrives first; the indicator, published later, matches it retroactively.
    let recs = vec![
        (10, Input::Event(ev)),
        (20, Input::Indicator(ind.clone())),
        (30, Input::Indicator(revoked)),
    ];
    let changes = run_dataflow(&recs, 1, Model::unbounded());
    assert!(state_at(&changes, 10).is_empty());
    let at20 = state_at(&changes, 20);
    assert_eq!(at20.len(), 1);
    let alert = at20.values().next().unwrap();
    assert_eq!(alert.sightings, 1);
    assert_eq!(alert.key, "ind-1");
    assert!(
        state_at(&changes, 30).is_empty(),
        "revocation withdraws the alert"
    );
    let kinds: Vec<ChangeKind> = changes
        .iter()
        .flat_map(|(_, cs)| cs.iter().map(|c| c.change))
        .collect();
    assert_eq!(kinds, vec![ChangeKind::Opened, ChangeKind::Retracted]);
}

#[test]
fn expiry_stops_new_matches_but_earlier_sightings_stand() {
    let t0 = BASE_MS;
    let ind = indicator(1, 5, 0, t0, Some(t0 + 10_000), false, 60); // domain evil.example
    let before = event(1, 3, Some(0), false, false, t0 + 5_000); // a.evil.example inside validity
    let after = event(2, 3, Some(2), false, false, t0 + 20_000); // x.b.evil.example after expiry
    let recs = vec![
        (10, Input::Indicator(ind)),
        (20, Input::Event(before)),
        (30, Input::Event(after)),
    ];
    let changes = run_dataflow(&recs, 2, Model::unbounded());
    let at30 = state_at(&changes, 30);
    assert_eq!(at30.len(), 1);
    let alert = at30.values().next().unwrap();
    assert_eq!(alert.event_ids, vec!["e1".to_string()]);
}

#[test]
fn cidr_indicators_match_addresses_inside_the_network() {
    let t0 = BASE_MS;
    let recs = vec![
        (10, Input::Event(event(1, 2, None, false, false, t0 + 1))), // 10.0.1.9 and 10.1.0.1
        (
            20,
            Input::Indicator(indicator(1, 3, 0, t0, None, false, 50)),
        ), // 10.0.0.0/16
        (
            30,
            Input::Indicator(indicator(2, 4, 0, t0, None, false, 50)),
        ), // 10.1.0.0/24
    ];
    let changes = run_dataflow(&recs, 1, Model::unbounded());
    assert_eq!(state_at(&changes, 20).len(), 1);
    assert_eq!(state_at(&changes, 30).len(), 2);
}

#[test]
fn a_second_source_corroborates_the_alert_and_its_marking_applies() {
    let t0 = BASE_MS;
    // ind-2 is OSINT (osint-c); version 0 makes it TLP:CLEAR, confidence 40: low alone.
    let osint = indicator(2, 0, 0, t0, None, false, 40); // ipv4 10.0.0.1
    // ind-0 is partner-a; version 2 makes it TLP:AMBER shared with FR, confidence 90.
    let partner = indicator(0, 0, 2, t0, None, false, 90);
    let mut withdrawn = partner.clone();
    withdrawn.modified = ts(t0 + 10);
    withdrawn.revoked = true;
    let recs = vec![
        (10, Input::Indicator(osint)),
        (
            20,
            Input::Event(event(1, 0, None, false, false, t0 + 1_000)),
        ),
        (30, Input::Indicator(partner)),
        (40, Input::Indicator(withdrawn)),
    ];
    let changes = run_dataflow(&recs, 2, Model::unbounded());
    let osint_alert = |t| {
        state_at(&changes, t)
            .into_values()
            .find(|a| a.indicator.id == "ind-2")
            .unwrap()
    };

    // OSINT alone: a low alert, public like its only feed.
    let alone = osint_alert(20);
    assert_eq!(alone.provenance.input_keys, vec!["ip:10.0.0.1".to_string()]);
    let sources = |a: &Alert| {
        a.provenance
            .sources
            .iter()
            .map(|c| (c.id.clone(), c.confidence))
            .collect::<Vec<_>>()
    };
    assert_eq!(sources(&alone), vec![("osint-c".to_string(), 40)]);
    assert_eq!(alone.provenance.corroborated_confidence, 40);
    assert_eq!(alone.severity, schemas::Severity::Low);
    assert_eq!(alone.marking.tlp, Tlp::Clear);

    // The partner vouches for the same address: 1 - 0.6 × 0.1 = 0.94. The OSINT alert
    // is corroborated to high and takes the partner's stricter marking.
    let corroborated = osint_alert(30);
    assert_eq!(
        sources(&corroborated),
        vec![("partner-a".to_string(), 90), ("osint-c".to_string(), 40)]
    );
    assert_eq!(corroborated.provenance.corroborated_confidence, 94);
    assert_eq!(corroborated.severity, schemas::Severity::High);
    assert_eq!(corroborated.marking.tlp, Tlp::Amber);
    assert_eq!(corroborated.marking.sharing, vec!["FR".to_string()]);
    assert_eq!(corroborated.id, alone.id);

    // The partner withdraws its indicator: back to the OSINT figures and marking.
    assert_eq!(osint_alert(40), alone);
}

#[test]
fn warning_lists_suppress_matches_until_a_reload_lifts_them() {
    let t0 = BASE_MS;
    let recs = vec![
        (
            10,
            Input::Indicator(indicator(1, 0, 0, t0, None, false, 90)),
        ), // ipv4 10.0.0.1
        (
            20,
            Input::Event(event(1, 0, None, false, false, t0 + 1_000)),
        ), // src 10.0.0.1
    ];
    let lists = dataflow::views::warning_lists::parse(
        "[[list]]\nname = \"private\"\nvalues = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let mut config = Model::unbounded().config();
    config.warning_lists = lists;
    let (changes, suppressed) = run_dataflow_with(&recs, 2, config.clone());
    assert!(state_at(&changes, 20).is_empty());
    assert_eq!(suppressed, 1);

    // A reload with no lists, read while the records are applied, lifts the suppression.
    let (reload, reloads) = crossbeam_channel::unbounded();
    reload.send(Vec::new()).unwrap();
    config.warning_reloads = Some(reloads);
    let (changes, suppressed) = run_dataflow_with(&recs, 2, config);
    assert_eq!(state_at(&changes, 21).len(), 1);
    assert_eq!(suppressed, 0);
}
