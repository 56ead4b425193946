//! Live and retroactive matching as one join.
//!
//! Observations (event keys with the sighting that produced them) are joined with
//! the current indicators by match key. Because both sides are arranged
//! collections, a new event meets every indicator already known (live match) and
//! a new indicator meets every observation already retained (retroactive match);
//! nothing is special-cased.
//!
//! Networks: for every (address family, prefix length) present among CIDR
//! indicators, each event address is masked to that length and looked up as a
//! `cidr:` key. The work per event is the number of distinct prefix lengths, not
//! the number of networks.
//!
//! A match is judged at the event's own time: it holds only if
//! `valid_from <= observed_at < valid_until`, so expiry stops new matches while
//! earlier sightings stand, and a revoked indicator (absent from the current set)
//! retracts all its matches.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use schemas::{Indicator, IndicatorKind, SensorEvent};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::observables::{cidr_key, event_ips, event_keys, indicator_key};

/// What a matching event contributes: who saw what, where and when.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sighting {
    /// Event id.
    pub event_id: String,
    /// Sensor that saw it.
    pub sensor_id: String,
    /// Country of the sensor.
    pub country: String,
    /// Event time, ms since the Unix epoch.
    pub observed_ms: i64,
    /// Ingestion (logical) time of the event, ms.
    pub ingested_ms: u64,
    /// The machine concerned, if known (personal data).
    pub victim: Option<IpAddr>,
}

impl Sighting {
    /// The sighting of `ev`, ingested at `ingested_ms`.
    pub fn of(ev: &SensorEvent, ingested_ms: u64) -> Self {
        let victim = ev.victim_ip.or(match ev.kind {
            // A connection to a sinkhole comes from an infected machine.
            schemas::EventKind::Sinkhole => ev.src_ip,
            _ => None,
        });
        Self {
            event_id: ev.event_id.clone(),
            sensor_id: ev.sensor_id.clone(),
            country: ev.country.clone(),
            observed_ms: ev.observed_at.as_millisecond(),
            ingested_ms,
            victim,
        }
    }
}

/// One event matching one indicator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Match {
    /// The indicator (its current version).
    pub indicator: Indicator,
    /// The sighting that matched.
    pub sighting: Sighting,
}

impl Match {
    /// True if the event arrived before the indicator was published: found by retroactive matching.
    pub fn is_retroactive(&self) -> bool {
        i64::try_from(self.sighting.ingested_ms).unwrap_or(i64::MAX)
            < self.indicator.created.as_millisecond()
    }
}

/// True if an event at `observed_ms` lies inside the indicator's validity.
pub fn within_validity(indicator: &Indicator, observed_ms: i64) -> bool {
    indicator.valid_from.as_millisecond() <= observed_ms
        && indicator
            .valid_until
            .is_none_or(|until| observed_ms < until.as_millisecond())
}

/// Events, each with its ingestion time, matched against the current indicators.
pub fn matches<'s>(
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
    indicators: VecCollection<'s, Time, Indicator>,
) -> VecCollection<'s, Time, Match> {
    let sightings = events.map(|(ingested, ev)| (ev.clone(), Sighting::of(&ev, ingested)));

    // Exact keys: addresses, domains and parents, URLs, hashes, e-mails, wallets.
    let exact = sightings
        .clone()
        .flat_map(|(ev, s)| event_keys(&ev).into_iter().map(move |k| (k, s.clone())));

    // Network keys: each address masked by every prefix length present among CIDR indicators.
    let prefixes = indicators.clone().flat_map(|i| cidr_prefix(&i)).distinct();
    let networked = sightings
        .flat_map(|(ev, s)| {
            event_ips(&ev)
                .into_iter()
                .map(move |ip| (ip.is_ipv6(), (ip, s.clone())))
        })
        .join_map(prefixes, |_family, (ip, s), len| {
            (cidr_key(*ip, *len).unwrap_or_default(), s.clone())
        });

    let keyed_indicators = indicators.map(|i| (indicator_key(i.kind, &i.value), i));
    exact
        .concat(networked)
        .join_map(keyed_indicators, |_key, s, i| Match {
            indicator: i.clone(),
            sighting: s.clone(),
        })
        .filter(|m| within_validity(&m.indicator, m.sighting.observed_ms))
}

/// For a CIDR indicator, its (is IPv6, prefix length).
fn cidr_prefix(i: &Indicator) -> Option<(bool, u8)> {
    if i.kind != IndicatorKind::Cidr {
        return None;
    }
    let (net, len) = i.value.split_once('/')?;
    let net: IpAddr = net.parse().ok()?;
    Some((net.is_ipv6(), len.parse().ok()?))
}
