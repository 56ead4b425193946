//! Live and retroactive matching over a history kept in two tiers.
//!
//! [`history_matches`] is the one matching join of Fusion: the runtime, the views'
//! adapter ([`crate::matching::matches`]) and the W1 benchmark all run it. Events are
//! partitioned over the workers (by the ingest router); the current indicators are
//! broadcast, so each worker matches its own events against every indicator:
//!
//! - **Live**: an event arriving at logical time `t` meets the indicators current at `t`.
//! - **Retroactive**: an indicator arriving at `t` meets the history retained at `t`: the
//!   events ingested within the evidence window, kept whole (raw sightings: event id,
//!   sensor, country, victim, account), and beyond it the (observable, sensor, hour)
//!   summaries kept for the retention (counts, first and last seen, no event ids).
//!
//! An event whose event time is older than the retention when it arrives (or when an
//! indicator meets it) matches nothing: the history's reach in event time is the
//! retention, whatever the tier.
//!
//! Both are one lookup in the same [`store::Store`]; nothing else is special-cased. The
//! output is insert-only: a match is emitted once, when it is made. Ageing history and
//! withdrawn indicators emit nothing; whoever keeps the matches re-checks them against the
//! current version of their indicator ([`crate::evidence`]). A new version of an indicator
//! meets the history again; the keeper drops what it already has.
//!
//! A match is judged at the event's own time: `valid_from <= observed_at < valid_until`;
//! a summary matches when its hour meets the validity (its whole count then counts; by
//! hour, so the answer does not depend on how one hour's summaries are split over
//! workers).
//!
//! Representation: observables are 64-bit hashes of their match key
//! ([`crate::observables::key_hash`]) or addresses (`u32`/`u128`, so a network is a
//! range); sensors are interned per worker; the store holds a few machine words per
//! (observable, event) and per summary. A hash shared by two different keys would match
//! wrongly; see [`crate::observables::key_hash`] for the odds. Indicators sharing a hash
//! are told apart by key text where they meet (corroboration in [`crate::alerts`]).
//!
//! Caveats: a summary counts event records per observable, so an event seen under two
//! addresses of one network counts once while raw and twice once summarised; a summary
//! does not know which events were already matched while raw, which is why the keeper
//! takes a summary only when its indicator first meets it.

pub mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;

use compact_str::CompactString;
use differential_dataflow::{AsCollection, VecCollection};
use schemas::{Indicator, IndicatorKind, SensorEvent, Text};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;

use crate::Time;
use crate::observables::{Ips, Keys, event_ips, exact_keys, indicator_key_hash, string_hash};
pub use store::{Counters, Sizes, Store, TierConfig};

/// A country code (ISO 3166-1 alpha-2) in two bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Country([u8; 2]);

impl Country {
    /// The code of `code` (its first two bytes; validated events carry two letters).
    pub fn new(code: &str) -> Self {
        let b = code.as_bytes();
        Self([
            b.first().copied().unwrap_or(b'?'),
            b.get(1).copied().unwrap_or(b'?'),
        ])
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// One sensor event as matching holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventIn {
    /// Identity of the event: a hash of (sensor id, event id).
    pub event_ref: u64,
    /// The event id (inline when short, as most are).
    pub event_id: CompactString,
    /// The sensor that saw it (inline when short, as most are).
    pub sensor_id: CompactString,
    /// The sensor's country.
    pub country: Country,
    /// Event time, ms since the Unix epoch.
    pub observed_ms: i64,
    /// The machine concerned, if known (personal data).
    pub victim: Option<IpAddr>,
    /// The e-mail address (account) the event concerns, if any (personal data).
    pub account: Option<Box<str>>,
    /// Hashes of its exact (non-address) match keys.
    pub keys: Keys,
    /// Its addresses.
    pub ips: Ips,
}

impl EventIn {
    /// What matching keeps of `ev` (an owned event's [`SensorEvent::view`]).
    pub fn of(ev: &SensorEvent<Text<'_>>) -> Self {
        let victim = ev.victim_ip.or(match ev.kind {
            // A connection to a sinkhole comes from an infected machine.
            schemas::EventKind::Sinkhole => ev.src_ip,
            _ => None,
        });
        let keys = exact_keys(ev);
        let ips = event_ips(ev);
        Self {
            event_ref: event_ref(&ev.sensor_id, &ev.event_id),
            country: Country::new(&ev.country),
            observed_ms: ev.observed_at.as_millisecond(),
            victim,
            keys,
            ips,
            event_id: CompactString::from(ev.event_id.as_str()),
            sensor_id: CompactString::from(ev.sensor_id.as_str()),
            account: ev.email.as_deref().map(Box::from),
        }
    }
}

/// The identity of an event: a hash of its sensor and its id at that sensor.
pub fn event_ref(sensor_id: &str, event_id: &str) -> u64 {
    crate::observables::hash_bytes(&[sensor_id.as_bytes(), &[0], event_id.as_bytes()])
}

/// What an indicator is matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// An exact key (its hash): domain, URL, file hash, e-mail address, wallet.
    Key(u64),
    /// An IPv4 network (an address is a network of length 32).
    V4 {
        /// The network address.
        net: u32,
        /// Prefix length.
        len: u8,
    },
    /// An IPv6 network (an address is a network of length 128).
    V6 {
        /// The network address.
        net: u128,
        /// Prefix length.
        len: u8,
    },
}

impl Target {
    /// The target of a network `addr/len` (or of a single address).
    pub fn parse_cidr(text: &str) -> Option<Self> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        Some(match addr {
            IpAddr::V4(a) => Target::V4 {
                net: u32::from(a),
                len: len.unwrap_or(32).min(32),
            },
            IpAddr::V6(a) => Target::V6 {
                net: u128::from(a),
                len: len.unwrap_or(128).min(128),
            },
        })
    }

    /// What `i` is matched on, if it can be matched at all.
    pub fn of(i: &Indicator) -> Option<Self> {
        match i.kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
                Self::parse_cidr(&i.value)
            }
            kind => Some(Target::Key(indicator_key_hash(kind, &i.value))),
        }
    }
}

/// One current indicator as matching holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndicatorIn {
    /// [`indicator_ref`] of its id.
    pub id: u64,
    /// What it is matched on.
    pub target: Target,
    /// Start of its validity (event time, ms).
    pub valid_from_ms: i64,
    /// End of its validity (event time, ms, exclusive; `i64::MAX` for none).
    pub valid_until_ms: i64,
}

impl IndicatorIn {
    /// What matching keeps of `i`, if it can be matched.
    pub fn of(i: &Indicator) -> Option<Self> {
        Some(Self {
            id: indicator_ref(&i.id),
            target: Target::of(i)?,
            valid_from_ms: i.valid_from.as_millisecond(),
            valid_until_ms: i.valid_until.map_or(i64::MAX, |u| u.as_millisecond()),
        })
    }
}

/// The compact reference to an indicator id.
pub fn indicator_ref(id: &str) -> u64 {
    string_hash(id)
}

/// An event kept whole, as evidence of a match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawSighting {
    /// Identity of the event ([`event_ref`]).
    pub event_ref: u64,
    /// The event id.
    pub event_id: Box<str>,
    /// The sensor that saw it.
    pub sensor_id: Box<str>,
    /// The sensor's country.
    pub country: Country,
    /// Event time, ms.
    pub observed_ms: i64,
    /// Ingestion (logical) time, ms.
    pub ingested_ms: Time,
    /// The machine concerned (personal data).
    pub victim: Option<IpAddr>,
    /// The account concerned (personal data).
    pub account: Option<Box<str>>,
}

/// A summary of the history: one observable seen by one sensor in one hour.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SummarySighting {
    /// The worker holding the summary (a worker summarises only its own events).
    pub shard: u32,
    /// The observable (a key hash or an address, as a number).
    pub observable: u64,
    /// The sensor.
    pub sensor_id: Box<str>,
    /// The sensor's country.
    pub country: Country,
    /// Hour of event time (hours since the Unix epoch).
    pub hour: u32,
    /// Events.
    pub count: u32,
    /// Earliest event time, ms (to the second).
    pub first_ms: i64,
    /// Latest event time, ms (to the second).
    pub last_ms: i64,
}

impl SummarySighting {
    /// What identifies the summary (its count and span grow as more events age into it).
    pub fn cell(&self) -> (u32, u64, &str, u32) {
        (self.shard, self.observable, &self.sensor_id, self.hour)
    }
}

/// The evidence of one match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// One event, kept whole.
    Raw(RawSighting),
    /// Events known only by their summary.
    Summary(SummarySighting),
}

/// A match as it is made: an indicator ([`indicator_ref`]) and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Made {
    /// The indicator.
    pub indicator: u64,
    /// What the indicator's version that made the match is matched on.
    pub target: Target,
    /// What matched it.
    pub evidence: Evidence,
}

/// What a worker's history holds and has done, reported as it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryReport {
    /// The worker.
    pub shard: u32,
    /// Sizes now.
    pub sizes: Sizes,
    /// Counters so far.
    pub counters: Counters,
}

/// Live and retroactive matches of `events` (each worker's own) against the current
/// `indicators` (see the module documentation). `report` is called with the store's
/// sizes and counters after each activation in which it processed logical times.
pub fn history_matches<'s>(
    events: StreamVec<'s, Time, (EventIn, Time, isize)>,
    indicators: VecCollection<'s, Time, IndicatorIn>,
    config: TierConfig,
    mut report: impl FnMut(HistoryReport) + 'static,
) -> VecCollection<'s, Time, Made> {
    let shard = u32::try_from(events.scope().index()).unwrap_or(0);
    let indicators = indicators.inner.broadcast();
    events
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(Made, Time, isize)>>, _, _, _, _>(
            indicators,
            Pipeline,
            Pipeline,
            "HistoryMatches",
            move |cap, _info| {
                let mut cap = Some(cap);
                let mut store = Store::new(config, shard);
                let mut pending: BTreeMap<Time, Pending> = BTreeMap::new();
                let mut out: Vec<Made> = Vec::new();
                move |(events, events_frontier), (indicators, indicators_frontier), output| {
                    events.for_each(|_time, data| {
                        for (ev, t, diff) in data.drain(..) {
                            if diff > 0 {
                                // Mostly one time after another: no search of the map.
                                let at = match pending.last_entry() {
                                    Some(last) if *last.key() == t => last.into_mut(),
                                    _ => pending.entry(t).or_default(),
                                };
                                at.events.push(ev);
                            }
                        }
                    });
                    indicators.for_each(|_time, data| {
                        for (i, t, diff) in data.drain(..) {
                            pending.entry(t).or_default().indicators.push((i, diff));
                        }
                    });
                    // Everything before both frontiers is complete.
                    let bound = crate::time_order::bound(&[
                        &events_frontier.frontier(),
                        &indicators_frontier.frontier(),
                    ]);
                    let mut processed = None;
                    while let Some((&t, _)) = pending.first_key_value() {
                        if bound.is_some_and(|b| t >= b) {
                            break;
                        }
                        let Some((t, mut p)) = pending.pop_first() else {
                            break;
                        };
                        // Ageing waits for what looks into the history, a new indicator,
                        // or for the end of these times: events do not look into it, and
                        // the chunks that age together are summarised as one run.
                        if !p.indicators.is_empty() {
                            store.advance(t);
                        }
                        p.indicators.sort();
                        consolidate(&mut p.indicators);
                        // Withdrawn versions first, so a new version meets the history afresh.
                        for (i, diff) in &p.indicators {
                            if *diff < 0 {
                                store.remove_indicator(i);
                            }
                        }
                        for (i, diff) in &p.indicators {
                            if *diff > 0 {
                                store.add_indicator(i, t, &mut out);
                            }
                        }
                        for ev in p.events {
                            store.add_event(ev, t, &mut out);
                        }
                        if !out.is_empty()
                            && let Some(cap) = cap.as_ref()
                        {
                            let at = cap.delayed(&t);
                            let mut session = output.session(&at);
                            for m in out.drain(..) {
                                session.give((m, t, 1));
                            }
                        }
                        processed = Some(t);
                    }
                    if let Some(t) = processed {
                        store.advance(t);
                        report(HistoryReport {
                            shard,
                            sizes: store.sizes(),
                            counters: store.counters(),
                        });
                    }
                    // Idle inputs still age the history.
                    if let Some(b) = bound
                        && b > 0
                        && pending.is_empty()
                    {
                        store.advance(b - 1);
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}

/// The inputs of one logical time.
#[derive(Default)]
struct Pending {
    events: Vec<EventIn>,
    indicators: Vec<(IndicatorIn, isize)>,
}

/// Sums the differences of equal records (sorted) and drops those that cancel.
pub(crate) fn consolidate<D: PartialEq>(updates: &mut Vec<(D, isize)>) {
    let mut out: Vec<(D, isize)> = Vec::with_capacity(updates.len());
    for (d, diff) in updates.drain(..) {
        match out.last_mut() {
            Some((last, n)) if *last == d => *n += diff,
            _ => out.push((d, diff)),
        }
    }
    out.retain(|(_, n)| *n != 0);
    *updates = out;
}

/// Adds `diff` copies of `value` to the small multiset `set`, dropping what cancels.
pub(crate) fn update_multiset<D: PartialEq>(set: &mut Vec<(D, isize)>, value: D, diff: isize) {
    match set.iter_mut().find(|(d, _)| *d == value) {
        Some((_, n)) => *n += diff,
        None => set.push((value, diff)),
    }
    set.retain(|(_, n)| *n != 0);
}
