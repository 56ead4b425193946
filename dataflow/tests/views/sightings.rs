//! Sightings per indicator: the incremental view equals a brute-force recomputation
//! at every closed time, on 1 and 2 workers; and a golden run from events and indicators.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};

use crate::common_a::{BASE_MS, Update, a_match, indicator, input_at, run, script_from};
use crate::common_a::{check_oracle, end_of};
use dataflow::Time;
use dataflow::alerts::{build_alert, window_start};
use dataflow::matching::Match;
use dataflow::views::sightings::{HOUR_MS, HourCount, SightingSummary, Victim, sightings};
use proptest::prelude::*;
use schemas::{IndicatorKind, SourceKind};

type Script = Vec<(Time, Update<Match, (), ()>)>;

/// Brute force: the summaries of the matches present at `time`.
fn oracle(updates: &[(Time, Match, isize)], time: Time) -> BTreeSet<SightingSummary> {
    let present = input_at(updates.iter().cloned(), time);
    let mut by_id: BTreeMap<&str, Vec<&Match>> = BTreeMap::new();
    for m in present.keys() {
        by_id.entry(m.indicator.id.as_str()).or_default().push(m);
    }
    by_id
        .into_iter()
        .map(|(id, ms)| {
            let events: BTreeSet<(&str, &str, i64)> = ms
                .iter()
                .map(|m| {
                    let s = &m.sighting;
                    (s.sensor_id.as_str(), s.event_id.as_str(), s.observed_ms)
                })
                .collect();
            let mut per_hour: BTreeMap<i64, u64> = BTreeMap::new();
            for (_, _, ms) in &events {
                *per_hour.entry(ms - ms.rem_euclid(HOUR_MS)).or_default() += 1;
            }
            let sensors: BTreeSet<&str> =
                ms.iter().map(|m| m.sighting.sensor_id.as_str()).collect();
            let victims: BTreeSet<Victim> =
                ms.iter().filter_map(|m| Victim::of(&m.sighting)).collect();
            let countries: BTreeSet<&str> =
                ms.iter().map(|m| m.sighting.country.as_str()).collect();
            SightingSummary {
                indicator_id: id.to_string(),
                first_seen_ms: events.iter().map(|e| e.2).min().unwrap(),
                last_seen_ms: events.iter().map(|e| e.2).max().unwrap(),
                events: events.len() as u64,
                sensors: sensors.len() as u64,
                victims: victims.len() as u64,
                countries: countries.into_iter().map(str::to_string).collect(),
                per_hour: per_hour
                    .into_iter()
                    .map(|(hour_ms, events)| HourCount { hour_ms, events })
                    .collect(),
            }
        })
        .collect()
}

fn check(updates: &[(Time, Match, isize)], workers: usize) -> Result<(), TestCaseError> {
    let script: Script = updates
        .iter()
        .map(|(t, m, d)| (*t, Update::A(m.clone(), *d)))
        .collect();
    let out = run(&script, end_of(&script), workers, |m, _, _| sightings(m));
    check_oracle(&script, &out, workers, |t| oracle(updates, t))
}

/// The pool of possible matches: `events` are (sensor, country, event time offset),
/// `specs` are (indicator, event, victim, account, ingestion time).
fn pool(
    events: &[(usize, usize, i64)],
    specs: &[(usize, usize, Option<usize>, Option<usize>, u64)],
) -> Vec<Match> {
    let indicators: Vec<_> = (0..3)
        .map(|n| {
            indicator(
                &format!("ind-{n}"),
                IndicatorKind::Ipv4,
                "192.0.2.1",
                (SourceKind::Partner, "p"),
                50,
                BASE_MS,
                &[],
            )
        })
        .collect();
    specs
        .iter()
        .map(|&(ind, ev, victim, account, ingested)| {
            let (sensor, country, offset) = events[ev % events.len()];
            let victim = victim.map(|v| ["10.0.0.1", "10.0.0.2", "2001:db8::1"][v]);
            let account = account.map(|a| ["a@corp.example", "b@corp.example"][a]);
            let mut m = a_match(
                &indicators[ind % 3],
                &format!("e{}", ev % events.len()),
                &format!("s{sensor}"),
                ["FR", "SG", "AR"][country],
                BASE_MS + offset,
                victim,
                account,
            );
            m.sighting.ingested_ms = ingested;
            m
        })
        .collect()
}

/// Events of [`pool`], within `span` ms of event time.
fn events(span: i64) -> impl Strategy<Value = Vec<(usize, usize, i64)>> {
    proptest::collection::vec((0..3usize, 0..3usize, 0..span), 1..6)
}

/// Match specifications of [`pool`].
fn specs() -> impl Strategy<Value = Vec<(usize, usize, Option<usize>, Option<usize>, u64)>> {
    proptest::collection::vec(
        (
            0..3usize,
            0..6usize,
            proptest::option::of(0..3usize),
            proptest::option::of(0..2usize),
            0..2u64,
        ),
        1..14,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sightings_equal_brute_force_at_every_closed_time(
        events in events(4 * HOUR_MS),
        specs in specs(),
        steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.65), any::<u8>()), 1..30),
    ) {
        let updates = script_from(&steps, &pool(&events, &specs));
        check(&updates, 1)?;
        check(&updates, 2)?;
    }

    /// The hourly trend an alert carries is this view's per-hour counts of its
    /// indicator, within the alert's day.
    #[test]
    fn an_alerts_hourly_counts_are_the_sightings_per_hour_of_its_day(
        events in events(30 * HOUR_MS),
        specs in specs(),
    ) {
        let matches = pool(&events, &specs);
        let updates: Vec<(Time, Match, isize)> = matches.iter().map(|m| (0, m.clone(), 1)).collect();
        for summary in oracle(&updates, 0) {
            let own: Vec<&Match> =
                matches.iter().filter(|m| m.indicator.id == summary.indicator_id).collect();
            let days: BTreeSet<i64> = own.iter().map(|m| window_start(m.sighting.observed_ms)).collect();
            for day in days {
                let in_day: Vec<&Match> = own
                    .iter()
                    .copied()
                    .filter(|m| window_start(m.sighting.observed_ms) == day)
                    .collect();
                let alert = build_alert(day, &in_day).unwrap();
                let hourly: Vec<(i64, u64)> = alert
                    .hourly
                    .iter()
                    .map(|h| (h.hour.as_millisecond(), h.sightings))
                    .collect();
                let expected: Vec<(i64, u64)> = summary
                    .per_hour
                    .iter()
                    .filter(|h| window_start(h.hour_ms) == day)
                    .map(|h| (h.hour_ms, h.events))
                    .collect();
                prop_assert_eq!(hourly, expected);
                prop_assert_eq!(alert.hourly.iter().map(|h| h.sightings).sum::<u64>(), alert.sightings);
            }
        }
    }
}

#[test]
fn golden_sightings_from_events_and_indicators() {
    crate::common_a::check_golden("sightings", |events, indicators, _| {
        sightings(crate::common_a::golden_matches(events, indicators))
    });
}
