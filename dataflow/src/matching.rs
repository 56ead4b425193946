//! Matches as whole records ([`Match`]: the indicator and the sighting), for the views
//! that work on single sightings (sightings, victims, corroboration, campaigns, rules).
//!
//! There is one matching join, [`crate::history::history_matches`]; [`matches`] keeps its
//! raw matches and joins them with the current version of their indicator. A match is
//! judged at the event's own time: it holds only if `valid_from <= observed_at <
//! valid_until`, so expiry stops new matches while earlier sightings stand, and a revoked
//! indicator (absent from the current set) retracts all its matches.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use schemas::{Indicator, IndicatorKind, SensorEvent};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::history::{
    EventIn, Evidence, IndicatorIn, RawSighting, Target, TierConfig, history_matches, indicator_ref,
};

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

/// How long observations stay available to retroactive matching as raw evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Forever.
    Unbounded,
    /// For this many milliseconds of logical time after ingestion.
    Ms(u64),
}

impl Sighting {
    /// The sighting of a raw match.
    pub fn of_raw(r: &RawSighting) -> Self {
        Self {
            event_id: r.event_id.to_string(),
            sensor_id: r.sensor_id.to_string(),
            country: r.country.as_str().to_string(),
            observed_ms: r.observed_ms,
            ingested_ms: r.ingested_ms,
            victim: r.victim,
            account: r.account.as_ref().map(|a| a.to_string()),
        }
    }
}

/// Events, each with its ingestion time, matched against the current indicators: the
/// raw matches of [`crate::history::history_matches`] as whole [`Match`] records, for the
/// views that work on single sightings.
///
/// Observations are available to new (retroactive) matches for `retention` of logical
/// time after they were ingested (the raw tier; no summaries); a match once made stands
/// after its observation ages out, for as long as the indicator stays current (matched on
/// the same value) and the event lies inside the current version's validity.
pub fn matches<'s>(
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
    indicators: VecCollection<'s, Time, Indicator>,
    retention: Retention,
) -> VecCollection<'s, Time, Match> {
    let config = TierConfig {
        evidence_ms: match retention {
            Retention::Unbounded => u64::MAX / 4,
            Retention::Ms(ms) => ms,
        },
        retention_ms: 0,
    };
    let events = events.map(|(_ingested, ev)| EventIn::of(&ev.view()));
    let compact = indicators.clone().flat_map(|i| IndicatorIn::of(&i));
    let made = history_matches(events.inner, compact, config, |_| {});
    let raw = made
        .flat_map(|m| match m.evidence {
            Evidence::Raw(r) => Some((m.indicator, (m.target, r))),
            Evidence::Summary(_) => None,
        })
        .distinct();
    let current = indicators.flat_map(|i| {
        let target = Target::of(&i)?;
        Some((indicator_ref(&i.id), (target, i)))
    });
    raw.join_map(current, |_, (made_on, r), (target, i)| {
        (
            made_on == target,
            Match {
                indicator: i.clone(),
                sighting: Sighting::of_raw(r),
            },
        )
    })
    .filter(|(same, m)| *same && within_validity(&m.indicator, m.sighting.observed_ms))
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
