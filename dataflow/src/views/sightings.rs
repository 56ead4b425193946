//! Sightings per indicator: when, how often and how widely each indicator has been seen.
//!
//! For every indicator with at least one match, one [`SightingSummary`]:
//!
//! - `first_seen_ms` / `last_seen_ms`: the earliest and latest event time of its matching events;
//! - `events`: the number of distinct matching events, an event being identified by
//!   (sensor, event id, event time), so the same event delivered twice counts once;
//! - `sensors`: the number of distinct sensors that saw it;
//! - `victims`: the number of distinct victims, a victim being the sighting's victim
//!   address when known, else its account (e-mail address), else none ([`Victim::of`]);
//! - `countries`: the sorted distinct sensor countries;
//! - `per_hour`: for each UTC hour of event time with events, the number of events.
//!
//! Retractions retract: the summary is a function of the matches present at each
//! logical time. A retracted match (a revoked indicator, a warning list entry) updates
//! the summary, and the last one removes it.
//!
//! Cost: no reduce sees all the matches of an indicator at once. Events are first
//! reduced per (indicator, hour), then the hour buckets per indicator; sensors and
//! victims are counted with `distinct` and `count`; countries are reduced per indicator
//! (a group of at most a few hundred). The four parts meet in one reduce per indicator
//! over at most four values.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::matching::{Match, Sighting};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Start (ms since the Unix epoch) of the UTC hour holding `ms`.
pub fn hour_start(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The number of events of one indicator in one UTC hour of event time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HourCount {
    /// Start of the hour, ms since the Unix epoch.
    pub hour_ms: i64,
    /// Distinct matching events with an event time in that hour.
    pub events: u64,
}

/// Where, when and how often one indicator has been seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SightingSummary {
    /// The indicator id.
    pub indicator_id: String,
    /// Earliest event time of a matching event, ms.
    pub first_seen_ms: i64,
    /// Latest event time of a matching event, ms.
    pub last_seen_ms: i64,
    /// Distinct matching events (sensor, event id, event time).
    pub events: u64,
    /// Distinct sensors.
    pub sensors: u64,
    /// Distinct victims (see [`Victim::of`]).
    pub victims: u64,
    /// Distinct sensor countries, sorted.
    pub countries: Vec<String>,
    /// Events per UTC hour of event time, by hour.
    pub per_hour: Vec<HourCount>,
}

/// Who a sighting concerns: the infected or targeted machine, or the account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Victim {
    /// A machine, by address.
    Ip(IpAddr),
    /// An account, by e-mail address.
    Account(String),
}

impl Victim {
    /// The victim of a sighting: its address when known, else its account, else none.
    pub fn of(s: &Sighting) -> Option<Victim> {
        match (&s.victim, &s.account) {
            (Some(ip), _) => Some(Victim::Ip(*ip)),
            (None, Some(account)) => Some(Victim::Account(account.clone())),
            (None, None) => None,
        }
    }
}

/// One part of a summary, computed separately and assembled per indicator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Part {
    /// Events: first, last, total and per-hour counts.
    Events {
        first_ms: i64,
        last_ms: i64,
        total: u64,
        per_hour: Vec<HourCount>,
    },
    /// Distinct sensors.
    Sensors(u64),
    /// Distinct victims.
    Victims(u64),
    /// Distinct countries, sorted.
    Countries(Vec<String>),
}

/// Clamps a (positive) count from differential's `isize` into a `u64`.
fn to_u64(n: isize) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Sightings per indicator, from the matches (see the module documentation).
pub fn sightings<'s>(
    matches: VecCollection<'s, Time, Match>,
) -> VecCollection<'s, Time, SightingSummary> {
    // Events per (indicator, hour): the reduce sees each distinct event once,
    // sorted by event time first, so the first and last present are the extremes.
    let hours = matches
        .clone()
        .map(|m| {
            let s = m.sighting;
            (
                (m.indicator.id, hour_start(s.observed_ms)),
                (s.observed_ms, s.sensor_id, s.event_id),
            )
        })
        .reduce_named(
            "SightingsPerHour",
            |_key,
             group: &[(&(i64, String, String), isize)],
             out: &mut Vec<((u64, i64, i64), isize)>| {
                let mut present = group.iter().filter(|(_, n)| *n > 0).map(|(e, _)| e.0);
                if let Some(first) = present.next() {
                    let (count, last) = present.fold((1u64, first), |(c, _), ms| (c + 1, ms));
                    out.push(((count, first, last), 1));
                }
            },
        );
    let events = hours
        .map(|((id, hour_ms), stats)| (id, (hour_ms, stats)))
        .reduce_named(
            "SightingsPerIndicator",
            |_id, group: &[(&(i64, (u64, i64, i64)), isize)], out: &mut Vec<(Part, isize)>| {
                let mut per_hour = Vec::new();
                let (mut first_ms, mut last_ms, mut total) = (i64::MAX, i64::MIN, 0u64);
                for ((hour_ms, (count, first, last)), n) in group {
                    if *n > 0 {
                        per_hour.push(HourCount {
                            hour_ms: *hour_ms,
                            events: *count,
                        });
                        first_ms = first_ms.min(*first);
                        last_ms = last_ms.max(*last);
                        total += count;
                    }
                }
                if total > 0 {
                    out.push((
                        Part::Events {
                            first_ms,
                            last_ms,
                            total,
                            per_hour,
                        },
                        1,
                    ));
                }
            },
        );
    let sensors = matches
        .clone()
        .map(|m| (m.indicator.id, m.sighting.sensor_id))
        .distinct()
        .map(|(id, _)| id)
        .count()
        .map(|(id, n)| (id, Part::Sensors(to_u64(n))));
    let victims = matches
        .clone()
        .flat_map(|m| Victim::of(&m.sighting).map(|v| (m.indicator.id, v)))
        .distinct()
        .map(|(id, _)| id)
        .count()
        .map(|(id, n)| (id, Part::Victims(to_u64(n))));
    let countries = matches
        .map(|m| (m.indicator.id, m.sighting.country))
        .reduce_named(
            "SightingCountries",
            |_id, group: &[(&String, isize)], out: &mut Vec<(Part, isize)>| {
                let present: Vec<String> = group
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(c, _)| (*c).clone())
                    .collect();
                if !present.is_empty() {
                    out.push((Part::Countries(present), 1));
                }
            },
        );
    events
        .concat(sensors)
        .concat(victims)
        .concat(countries)
        .reduce_named(
            "SightingSummary",
            |id, parts: &[(&Part, isize)], out: &mut Vec<(SightingSummary, isize)>| {
                let mut summary = None;
                let (mut sensors, mut victims, mut countries) = (0, 0, Vec::new());
                for (part, n) in parts {
                    if *n <= 0 {
                        continue;
                    }
                    match part {
                        Part::Events {
                            first_ms,
                            last_ms,
                            total,
                            per_hour,
                        } => summary = Some((*first_ms, *last_ms, *total, per_hour.clone())),
                        Part::Sensors(s) => sensors = *s,
                        Part::Victims(v) => victims = *v,
                        Part::Countries(c) => countries = c.clone(),
                    }
                }
                if let Some((first_seen_ms, last_seen_ms, events, per_hour)) = summary {
                    out.push((
                        SightingSummary {
                            indicator_id: id.clone(),
                            first_seen_ms,
                            last_seen_ms,
                            events,
                            sensors,
                            victims,
                            countries,
                            per_hour,
                        },
                        1,
                    ));
                }
            },
        )
        .map(|(_, summary)| summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_hours_of_event_time() {
        assert_eq!(hour_start(HOUR_MS + 5), HOUR_MS);
        assert_eq!(hour_start(HOUR_MS), HOUR_MS);
        assert_eq!(hour_start(-1), -HOUR_MS);
    }
}
