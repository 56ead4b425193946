//! Botnet / C2 victims: the incremental view equals a brute-force recomputation at
//! every closed time (matches and sinkhole events both changing), on 1 and 2 workers;
//! and a golden run from events and indicators.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::common_a::{BASE_MS, event, indicator, input_at, run, script_from_set};
use crate::common_a::{check_golden, check_oracle, end_of, merged};
use dataflow::Time;
use dataflow::matching::{Match, Sighting};
use dataflow::views::victims::{C2Victims, is_c2, victims};
use proptest::prelude::*;
use schemas::{EventKind, IndicatorKind, SensorEvent, SourceKind};

type Event = (u64, SensorEvent);

fn oracle(
    matches: &[(Time, Match, isize)],
    events: &[(Time, Event, isize)],
    time: Time,
) -> BTreeSet<C2Victims> {
    let sinkholes: BTreeSet<(String, String, u64)> = input_at(events.iter().cloned(), time)
        .into_keys()
        .filter(|(_, ev)| ev.kind == EventKind::Sinkhole)
        .map(|(ingested, ev)| (ev.sensor_id, ev.event_id, ingested))
        .collect();
    let present: Vec<Match> = input_at(matches.iter().cloned(), time)
        .into_keys()
        .collect();
    let c2: BTreeSet<&str> = present
        .iter()
        .filter(|m| {
            let s = &m.sighting;
            is_c2(&m.indicator)
                || sinkholes.contains(&(s.sensor_id.clone(), s.event_id.clone(), s.ingested_ms))
        })
        .map(|m| m.indicator.id.as_str())
        .collect();
    let mut groups: BTreeMap<(&str, &str), BTreeSet<IpAddr>> = BTreeMap::new();
    for m in &present {
        if let Some(ip) = m.sighting.victim
            && c2.contains(m.indicator.id.as_str())
        {
            groups
                .entry((m.indicator.id.as_str(), m.sighting.country.as_str()))
                .or_default()
                .insert(ip);
        }
    }
    groups
        .into_iter()
        .map(|((id, country), ips)| C2Victims {
            indicator_id: id.to_string(),
            country: country.to_string(),
            count: ips.len() as u64,
            victims: ips.into_iter().collect(),
        })
        .collect()
}

const IPS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "192.168.1.9", "2001:db8::7"];

/// Events: (sensor, sinkhole?, source address, victim address, ingestion time).
fn event_pool(specs: &[(usize, bool, usize, Option<usize>, u64)]) -> Vec<Event> {
    specs
        .iter()
        .enumerate()
        .map(|(n, &(sensor, sinkhole, src, victim, ingested))| {
            let kind = if sinkhole {
                EventKind::Sinkhole
            } else {
                EventKind::Flow
            };
            let mut ev = event(
                // Two pool entries may share an event id and differ in ingestion time.
                &format!("e{}", n % 4),
                &format!("s{sensor}"),
                ["FR", "SG", "AR"][sensor],
                BASE_MS,
                kind,
                Some(IPS[src]),
                Some("203.0.113.5"),
                None,
            );
            ev.victim_ip = victim.map(|v| IPS[v].parse().unwrap());
            (ingested, ev)
        })
        .collect()
}

/// Matches: (indicator, event of the pool).
fn match_pool(events: &[Event], specs: &[(usize, usize)]) -> Vec<Match> {
    let labels: [&[&str]; 3] = [&["qakbot", "c2-server"], &[], &["phishing"]];
    specs
        .iter()
        .map(|&(ind, ev)| {
            let (ingested, ev) = &events[ev % events.len()];
            Match {
                indicator: indicator(
                    &format!("ind-{ind}"),
                    IndicatorKind::Ipv4,
                    "203.0.113.5",
                    (SourceKind::Partner, "p"),
                    50,
                    BASE_MS,
                    labels[ind],
                ),
                sighting: Sighting::of(ev, *ingested),
            }
        })
        .collect()
}

fn check(
    matches: &[(Time, Match, isize)],
    events: &[(Time, Event, isize)],
    workers: usize,
) -> Result<(), TestCaseError> {
    let script = merged(matches, events);
    let out = run(&script, end_of(&script), workers, |m, e, _| victims(m, e));
    check_oracle(&script, &out, workers, |t| oracle(matches, events, t))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn victims_equal_brute_force_at_every_closed_time(
        event_specs in proptest::collection::vec(
            (0..3usize, any::<bool>(), 0..4usize, proptest::option::of(0..4usize), 0..2u64),
            1..8,
        ),
        match_specs in proptest::collection::vec((0..3usize, any::<usize>()), 1..10),
        event_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.7), any::<u8>()), 0..15),
        match_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.7), any::<u8>()), 1..20),
    ) {
        let pool = event_pool(&event_specs);
        let events = script_from_set(&event_steps, &pool);
        let matches = script_from_set(&match_steps, &match_pool(&pool, &match_specs));
        check(&matches, &events, 1)?;
        check(&matches, &events, 2)?;
    }
}

#[test]
fn golden_victims_from_events_and_indicators() {
    check_golden("victims", |events, indicators, _| {
        victims(
            crate::common_a::golden_matches(events.clone(), indicators),
            events,
        )
    });
}
