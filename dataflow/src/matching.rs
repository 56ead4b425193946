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

use differential_dataflow::{AsCollection, VecCollection};
use schemas::{Indicator, IndicatorKind, SensorEvent};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Filter;

use crate::Time;
use crate::observables::{cidr_key, event_ips, event_keys, indicator_key, key_hash};

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
    /// The e-mail address (account) the event concerns, if any (personal data).
    pub account: Option<String>,
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
            account: ev.email.clone(),
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

/// A compact reference to a sighting: a fixed hash of what identifies it.
fn sighting_ref(s: &Sighting) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(s.event_id.as_bytes());
    feed(s.sensor_id.as_bytes());
    feed(&s.observed_ms.to_be_bytes());
    feed(&s.ingested_ms.to_be_bytes());
    h
}

/// How long observations stay available to retroactive matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Forever.
    Unbounded,
    /// For this many milliseconds of logical time after ingestion.
    Ms(u64),
}

/// Events, each with its ingestion time, matched against the current indicators.
///
/// Observations are available to new (retroactive) matches for `retention` of
/// logical time after they were ingested; a match once made stands after its
/// observation ages out, for as long as the indicator stays current (not revoked,
/// same value) and the event lies inside the current version's validity.
pub fn matches<'s>(
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
    indicators: VecCollection<'s, Time, Indicator>,
    retention: Retention,
) -> VecCollection<'s, Time, Match> {
    // Each event is reduced at once to what matching needs (a sighting, its key
    // hashes, its addresses), so the large event itself is not copied around.
    let compact = events.map(|(ingested, ev)| {
        let s = Sighting::of(&ev, ingested);
        let keys: Vec<u64> = event_keys(&ev).iter().map(|k| key_hash(k)).collect();
        (sighting_ref(&s), s, keys, event_ips(&ev))
    });
    // Each event is retracted again `retention` after it arrived.
    let events = match retention {
        Retention::Unbounded => compact,
        Retention::Ms(ms) => compact
            .clone()
            .concat(compact.negate().delay(move |t| t.saturating_add(ms))),
    };
    // One sighting per event; the keys below refer to it by hash, so the
    // arrangements hold one copy of it rather than one per key.
    let sightings = events.clone().map(|(r, s, _, _)| (r, s));

    // Exact keys: addresses, domains and parents, URLs, hashes, e-mails, wallets;
    // arranged by their hash (see `key_hash`), not their text.
    let exact = events
        .clone()
        .flat_map(|(r, _, keys, _)| keys.into_iter().map(move |k| (k, r)));

    // Network keys: each address masked by every prefix length present among CIDR indicators.
    let prefixes = indicators.clone().flat_map(|i| cidr_prefix(&i)).distinct();
    let networked = events
        .flat_map(|(r, _, _, ips)| ips.into_iter().map(move |ip| (ip.is_ipv6(), (ip, r))))
        .join_map(prefixes, |_family, (ip, r), len| {
            (key_hash(&cidr_key(*ip, *len).unwrap_or_default()), *r)
        })
        // Two addresses of one event in the same network are one observation.
        .distinct();

    let keyed_indicators = indicators
        .clone()
        .map(|i| (key_hash(&indicator_key(i.kind, &i.value)), i));
    let observed = exact
        .concat(networked)
        .join_map(keyed_indicators, |key, r, i| (*r, (*key, i.clone())))
        .join_map(sightings, |_r, (key, i), s| (*key, i.clone(), s.clone()))
        .filter(|(_, i, s)| within_validity(i, s.observed_ms))
        .map(|(key, i, s)| (i.id, (key, s)));
    // Matches made while the observation was retained, kept once made: only the
    // additions of the consolidated raw matches count, so a withdrawn indicator
    // version or an aged-out observation does not undo them; the join with the
    // current indicators below does.
    let made = observed
        .consolidate()
        .inner
        .filter(|(_, _, diff)| *diff > 0)
        .as_collection()
        .distinct();
    let current_by_id = indicators.map(|i| (i.id.clone(), i));
    made.join_map(current_by_id, |_id, (key, s), i| {
        (
            *key,
            Match {
                indicator: i.clone(),
                sighting: s.clone(),
            },
        )
    })
    .filter(|(key, m)| {
        *key == key_hash(&indicator_key(m.indicator.kind, &m.indicator.value))
            && within_validity(&m.indicator, m.sighting.observed_ms)
    })
    .map(|(_, m)| m)
}

/// For a CIDR indicator, its (is IPv6, prefix length).
pub(crate) fn cidr_prefix(i: &Indicator) -> Option<(bool, u8)> {
    if i.kind != IndicatorKind::Cidr {
        return None;
    }
    let (net, len) = i.value.split_once('/')?;
    let net: IpAddr = net.parse().ok()?;
    Some((net.is_ipv6(), len.parse().ok()?))
}
