//! The store behind [`super::history_matches`]: one worker's share of the retained
//! history in two tiers, and every current indicator, with the lookups that match them.
//!
//! Pure and single-threaded: the operator calls it in logical-time order.
//!
//! - **Raw tier.** Events are kept whole (id, sensor, country, times, victim, account) in
//!   chunks of ingestion time ([`TierConfig::chunk_ms`]), each with its own index from
//!   observable to events: a hash map for exact keys, ordered maps for addresses (IPv4 and
//!   IPv6 apart, so a network is a range). A chunk ages out once the whole of it is older
//!   than the evidence window: its events are folded into the summaries and the chunk is
//!   dropped at once.
//! - **Summary tier.** Per (observable, sensor, UTC hour of event time): how many events,
//!   first and last seen (seconds of the hour), the sensor's country. Summaries live in
//!   partitions of whole hours of event time ([`TierConfig::partition_hours`]), each a hash
//!   map or ordered map from observable to a list of cells in one arena. A partition is
//!   dropped at once when its last hour is older than the retention; an event whose hour
//!   is already beyond the retention when it ages is not summarised ([`Counters::beyond_retention`]).
//! - **Indicators.** Exact keys in a hash map; networks (and single addresses, as networks
//!   of full length) by (prefix length, masked address), with the set of prefix lengths
//!   present: a live event's address is looked up once per length present, not scanned.
//!
//! Lookups return [`Made`] matches: an event meets the current indicators when it arrives
//! (live), an indicator meets the retained history when it arrives (retroactive). Nothing
//! is emitted when history ages or an indicator goes: downstream keeps a match once made
//! and re-checks it against the current version of its indicator.
//!
//! Addresses are stored as `u32` (IPv4) or `u128` (IPv6); IPv4 networks in the schema's
//! CIDR form are matched on IPv4 addresses only, IPv6 networks on IPv6 addresses only.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;

use rustc_hash::FxHashMap;

use super::{Country, EventIn, Evidence, IndicatorIn, Made, RawSighting, SummarySighting, Target};
use crate::Time;

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// The windows of the two tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierConfig {
    /// How long (logical ms after ingestion) an event is kept whole, as raw evidence.
    pub evidence_ms: u64,
    /// How long (logical ms after the end of its hour of event time) a summary is kept.
    pub retention_ms: u64,
}

impl TierConfig {
    /// Length of a raw chunk: a six-hundredth of the evidence window (at least 1 ms, at
    /// most ten seconds), so an event stays raw for between the window and 1/600 more. A
    /// chunk ages in one go, so its length bounds the pause that ageing makes (at 100 k
    /// events/s and a 10-minute window: 100 k events a second); a new indicator looks into
    /// every chunk, so their number bounds a retroactive lookup (600 for any window above
    /// 100 minutes).
    pub fn chunk_ms(&self) -> u64 {
        (self.evidence_ms / 600).clamp(1, 10_000)
    }

    /// Hours of event time per summary partition: a thirtieth of the retention (at least
    /// one hour, at most a day), so a summary is kept for between the retention and 1/30 more.
    pub fn partition_hours(&self) -> u32 {
        let hours = self.retention_ms / 3_600_000 / 30;
        u32::try_from(hours.clamp(1, 24)).unwrap_or(24)
    }
}

/// What the store has done, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events folded into summaries.
    pub summarised: u64,
    /// Events not summarised because their hour was already beyond the retention, or not
    /// taken at all because their event time was (they match nothing).
    pub beyond_retention: u64,
    /// Raw chunks aged out.
    pub chunks_aged: u64,
    /// Summary partitions dropped.
    pub partitions_dropped: u64,
}

/// Sizes of the store, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Events held whole.
    pub raw_events: usize,
    /// Summary cells (observable, sensor, hour).
    pub summaries: usize,
    /// Current indicators.
    pub indicators: usize,
    /// Raw chunks.
    pub chunks: usize,
    /// Summary partitions.
    pub partitions: usize,
}

/// An event held whole.
#[derive(Debug, Clone)]
struct RawEvent {
    event_ref: u64,
    event_id: Box<str>,
    sensor: u32,
    country: Country,
    observed_ms: i64,
    ingested_ms: Time,
    victim: Option<IpAddr>,
    account: Option<Box<str>>,
}

/// A link in a per-observable list of an arena.
#[derive(Debug, Clone, Copy)]
struct Link<V> {
    value: V,
    next: u32,
}

/// The end of a list.
const NIL: u32 = u32::MAX;

/// Links in segments of at most a fixed size: a large arena grows without reallocating
/// (and copying) what it holds, so it never needs twice its size while growing.
#[derive(Debug, Clone)]
struct Arena<V> {
    segments: Vec<Vec<Link<V>>>,
    len: u32,
}

/// log2 of the links per segment.
const SEGMENT_BITS: u32 = 13;

impl<V> Default for Arena<V> {
    fn default() -> Self {
        Self {
            segments: Vec::new(),
            len: 0,
        }
    }
}

impl<V> Arena<V> {
    fn len(&self) -> usize {
        self.len as usize
    }

    fn push(&mut self, link: Link<V>) -> u32 {
        let at = self.len;
        let segment = (at >> SEGMENT_BITS) as usize;
        if segment == self.segments.len() {
            // A segment grows as a vector does, up to its fixed size: small arenas (a
            // short raw chunk holds a few events) stay small.
            self.segments.push(Vec::new());
        }
        if let Some(s) = self.segments.get_mut(segment) {
            s.push(link);
        }
        self.len = self.len.saturating_add(1);
        at
    }

    fn get(&self, at: u32) -> Option<&Link<V>> {
        self.segments
            .get((at >> SEGMENT_BITS) as usize)?
            .get((at & ((1 << SEGMENT_BITS) - 1)) as usize)
    }

    fn get_mut(&mut self, at: u32) -> Option<&mut Link<V>> {
        self.segments
            .get_mut((at >> SEGMENT_BITS) as usize)?
            .get_mut((at & ((1 << SEGMENT_BITS) - 1)) as usize)
    }
}

/// An index from observables (exact keys, IPv4, IPv6 addresses) to lists of `V` in one
/// arena: one map entry and one link per (observable, value). IPv4 addresses are looked
/// up in a hash map (one probe), and listed per /16 for network ranges; IPv6 addresses
/// (rarer) are kept in order.
#[derive(Debug, Clone)]
struct Index<V> {
    keys: FxHashMap<u64, u32>,
    v4: FxHashMap<u32, u32>,
    /// The IPv4 addresses present, by their /16.
    v4_by16: FxHashMap<u16, Vec<u32>>,
    v6: BTreeMap<u128, u32>,
    links: Arena<V>,
}

impl<V: Copy> Default for Index<V> {
    fn default() -> Self {
        Self {
            keys: FxHashMap::default(),
            v4: FxHashMap::default(),
            v4_by16: FxHashMap::default(),
            v6: BTreeMap::new(),
            links: Arena::default(),
        }
    }
}

/// An observable of an event, as the index keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Obs {
    Key(u64),
    V4(u32),
    V6(u128),
}

impl Obs {
    fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Obs::V4(u32::from(v4)),
            IpAddr::V6(v6) => Obs::V6(u128::from(v6)),
        }
    }

    /// A stable number for the observable (part of a summary sighting's identity).
    fn id(self) -> u64 {
        match self {
            Obs::Key(k) => k,
            Obs::V4(a) => 0x4000_0000_0000_0000 ^ u64::from(a),
            Obs::V6(a) => (a as u64) ^ ((a >> 64) as u64).rotate_left(17) ^ 0x6000_0000_0000_0000,
        }
    }
}

impl<V: Copy> Index<V> {
    fn head_mut(&mut self, obs: Obs) -> &mut u32 {
        match obs {
            Obs::Key(k) => self.keys.entry(k).or_insert(NIL),
            Obs::V4(a) => {
                let by16 = &mut self.v4_by16;
                self.v4.entry(a).or_insert_with(|| {
                    by16.entry((a >> 16) as u16).or_default().push(a);
                    NIL
                })
            }
            Obs::V6(a) => self.v6.entry(a).or_insert(NIL),
        }
    }

    fn head(&self, obs: Obs) -> Option<u32> {
        match obs {
            Obs::Key(k) => self.keys.get(&k).copied(),
            Obs::V4(a) => self.v4.get(&a).copied(),
            Obs::V6(a) => self.v6.get(&a).copied(),
        }
    }

    /// Inserts `value` into the list of `obs` after the link `after` (at the head if none).
    fn insert_after(&mut self, obs: Obs, after: Option<u32>, value: V) -> u32 {
        let Some(prev) = after else {
            return self.push(obs, value);
        };
        let next = self.links.get(prev).map_or(NIL, |l| l.next);
        let at = self.links.push(Link { value, next });
        if let Some(p) = self.links.get_mut(prev) {
            p.next = at;
        }
        at
    }

    /// Prepends `value` to the list of `obs`; returns its link index.
    fn push(&mut self, obs: Obs, value: V) -> u32 {
        let at = self.links.len;
        let head = self.head_mut(obs);
        let next = *head;
        *head = at;
        self.links.push(Link { value, next })
    }

    fn list(&self, head: u32) -> impl Iterator<Item = (u32, &V)> + '_ {
        let mut at = head;
        std::iter::from_fn(move || {
            let link = self.links.get(at)?;
            let here = at;
            at = link.next;
            Some((here, &link.value))
        })
    }

    /// Every (observable, list head) the target covers.
    fn heads(&self, target: &Target) -> Vec<(Obs, u32)> {
        match *target {
            Target::Key(k) => self
                .keys
                .get(&k)
                .map(|h| (Obs::Key(k), *h))
                .into_iter()
                .collect(),
            Target::V4 { net, len } => {
                let (lo, hi) = v4_range(net, len);
                let mut out = Vec::new();
                for prefix in (lo >> 16)..=(hi >> 16) {
                    for a in self.v4_by16.get(&(prefix as u16)).into_iter().flatten() {
                        if (lo..=hi).contains(a)
                            && let Some(h) = self.v4.get(a)
                        {
                            out.push((Obs::V4(*a), *h));
                        }
                    }
                }
                out
            }
            Target::V6 { net, len } => {
                let (lo, hi) = v6_range(net, len);
                self.v6
                    .range((Bound::Included(lo), Bound::Included(hi)))
                    .map(|(a, h)| (Obs::V6(*a), *h))
                    .collect()
            }
        }
    }

    /// Every (observable, list head).
    fn all_heads(&self) -> impl Iterator<Item = (Obs, u32)> + '_ {
        self.keys
            .iter()
            .map(|(k, h)| (Obs::Key(*k), *h))
            .chain(self.v4.iter().map(|(a, h)| (Obs::V4(*a), *h)))
            .chain(self.v6.iter().map(|(a, h)| (Obs::V6(*a), *h)))
    }
}

/// The first and last address of an IPv4 network.
fn v4_range(net: u32, len: u8) -> (u32, u32) {
    let host = if len >= 32 { 0 } else { u32::MAX >> len };
    (net & !host, net | host)
}

/// The first and last address of an IPv6 network.
fn v6_range(net: u128, len: u8) -> (u128, u128) {
    let host = if len >= 128 { 0 } else { u128::MAX >> len };
    (net & !host, net | host)
}

/// Raw evidence of one stretch of ingestion time.
#[derive(Debug, Default)]
struct Chunk {
    events: Vec<RawEvent>,
    index: Index<u32>,
}

/// One summary: (observable, sensor, hour) with its count and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    sensor: u32,
    hour: u32,
    count: u32,
    first_s: u16,
    last_s: u16,
    country: Country,
}

/// Summaries of some whole hours of event time.
#[derive(Debug, Default)]
struct Partition {
    index: Index<Cell>,
    /// Cells of observables with many cells (seen by many sensors, many hours), by
    /// (observable, sensor, hour): their lists are too long to walk on every event.
    hot: FxHashMap<(Obs, u32, u32), u32>,
}

/// Cells of an observable in its latest hours walked before all its cells are indexed in
/// [`Partition::hot`].
const HOT_AFTER: usize = 16;

impl Partition {
    /// Adds `count` events of `obs` seen by `sensor` in `hour` between the given seconds.
    fn add(
        &mut self,
        obs: Obs,
        sensor: u32,
        hour: u32,
        seconds: (u16, u16),
        country: Country,
        count: u32,
    ) {
        let head = self.index.head(obs);
        let hot = head.is_some_and(|h| self.is_hot(obs, h));
        // Lists are kept by hour, latest first: a walk stops at the first older hour.
        let mut after = None;
        let (found, cells) = if hot {
            (self.hot.get(&(obs, sensor, hour)).copied(), 0)
        } else {
            let mut n = 0;
            let mut found = None;
            for (at, c) in head.into_iter().flat_map(|h| self.index.list(h)) {
                if c.hour < hour {
                    break;
                }
                n += 1;
                if c.sensor == sensor && c.hour == hour {
                    found = Some(at);
                    break;
                }
                after = Some(at);
            }
            (found, n)
        };
        if let Some(at) = found
            && let Some(link) = self.index.links.get_mut(at)
        {
            let c = &mut link.value;
            c.count = c.count.saturating_add(count);
            c.first_s = c.first_s.min(seconds.0);
            c.last_s = c.last_s.max(seconds.1);
            return;
        }
        let cell = Cell {
            sensor,
            hour,
            count,
            first_s: seconds.0,
            last_s: seconds.1,
            country,
        };
        let at = if hot {
            // Indexed cells need no order.
            self.index.push(obs, cell)
        } else {
            self.index.insert_after(obs, after, cell)
        };
        if hot {
            self.hot.insert((obs, sensor, hour), at);
        } else if cells >= HOT_AFTER {
            // Many cells in its latest hours: index every cell of the observable from now on.
            let all: Vec<(u32, u32, u32)> = self
                .index
                .head(obs)
                .into_iter()
                .flat_map(|h| self.index.list(h))
                .map(|(i, c)| (i, c.sensor, c.hour))
                .collect();
            for (i, sensor, hour) in all {
                self.hot.insert((obs, sensor, hour), i);
            }
        }
    }

    /// Whether the observable whose list starts at `head` is indexed in [`Partition::hot`]
    /// (all its cells are, or none).
    fn is_hot(&self, obs: Obs, head: u32) -> bool {
        self.index
            .links
            .get(head)
            .is_some_and(|l| self.hot.contains_key(&(obs, l.value.sensor, l.value.hour)))
    }
}

/// One indicator as the index holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: u64,
    target: Target,
    valid_from_ms: i64,
    valid_until_ms: i64,
}

impl Entry {
    fn of(i: &IndicatorIn) -> Self {
        Self {
            id: i.id,
            target: i.target,
            valid_from_ms: i.valid_from_ms,
            valid_until_ms: i.valid_until_ms,
        }
    }

    fn valid_at(&self, ms: i64) -> bool {
        self.valid_from_ms <= ms && ms < self.valid_until_ms
    }

    /// The span `[first, last]` meets the validity.
    fn meets(&self, first_ms: i64, last_ms: i64) -> bool {
        last_ms >= self.valid_from_ms && first_ms < self.valid_until_ms
    }
}

/// The current indicators, indexed for live lookups.
#[derive(Debug, Default)]
struct Indicators {
    keys: FxHashMap<u64, Vec<Entry>>,
    /// (prefix length, masked address) of IPv4 networks and addresses.
    v4: FxHashMap<(u8, u32), Vec<Entry>>,
    v6: FxHashMap<(u8, u128), Vec<Entry>>,
    /// Prefix lengths present, with how many indicators have each.
    v4_lens: BTreeMap<u8, usize>,
    v6_lens: BTreeMap<u8, usize>,
    count: usize,
}

impl Indicators {
    fn slot(&mut self, target: &Target) -> &mut Vec<Entry> {
        match *target {
            Target::Key(k) => self.keys.entry(k).or_default(),
            Target::V4 { net, len } => self.v4.entry((len, v4_range(net, len).0)).or_default(),
            Target::V6 { net, len } => self.v6.entry((len, v6_range(net, len).0)).or_default(),
        }
    }

    fn insert(&mut self, i: &IndicatorIn) {
        let slot = self.slot(&i.target);
        // Most targets have one indicator: no room for more until needed.
        slot.reserve_exact(1);
        slot.push(Entry::of(i));
        match i.target {
            Target::V4 { len, .. } => *self.v4_lens.entry(len).or_default() += 1,
            Target::V6 { len, .. } => *self.v6_lens.entry(len).or_default() += 1,
            Target::Key(_) => {}
        }
        self.count += 1;
    }

    fn remove(&mut self, i: &IndicatorIn) {
        let entry = Entry::of(i);
        let slot = self.slot(&i.target);
        let Some(at) = slot.iter().position(|e| *e == entry) else {
            return;
        };
        slot.swap_remove(at);
        let empty = slot.is_empty();
        if empty {
            match i.target {
                Target::Key(k) => {
                    self.keys.remove(&k);
                }
                Target::V4 { net, len } => {
                    self.v4.remove(&(len, v4_range(net, len).0));
                }
                Target::V6 { net, len } => {
                    self.v6.remove(&(len, v6_range(net, len).0));
                }
            }
        }
        let lens = match i.target {
            Target::V4 { len, .. } => Some((&mut self.v4_lens, len)),
            Target::V6 { len, .. } => Some((&mut self.v6_lens, len)),
            Target::Key(_) => None,
        };
        if let Some((lens, len)) = lens
            && let Some(n) = lens.get_mut(&len)
        {
            *n -= 1;
            if *n == 0 {
                lens.remove(&len);
            }
        }
        self.count -= 1;
    }

    /// Every indicator an event with these keys and addresses matches, by id (an id once).
    fn matching(&self, keys: &[u64], ips: &[IpAddr], out: &mut Vec<Entry>) {
        out.clear();
        for k in keys {
            if let Some(es) = self.keys.get(k) {
                out.extend(es);
            }
        }
        for ip in ips {
            match *ip {
                IpAddr::V4(v4) => {
                    let a = u32::from(v4);
                    for len in self.v4_lens.keys() {
                        if let Some(es) = self.v4.get(&(*len, v4_range(a, *len).0)) {
                            out.extend(es);
                        }
                    }
                }
                IpAddr::V6(v6) => {
                    let a = u128::from(v6);
                    for len in self.v6_lens.keys() {
                        if let Some(es) = self.v6.get(&(*len, v6_range(a, *len).0)) {
                            out.extend(es);
                        }
                    }
                }
            }
        }
        if out.len() > 1 {
            out.sort_unstable_by_key(|e| (e.id, e.target, e.valid_from_ms, e.valid_until_ms));
            out.dedup_by_key(|e| e.id);
        }
    }
}

/// One worker's history and indicators (see the module documentation).
#[derive(Debug)]
pub struct Store {
    config: TierConfig,
    /// This worker's index, part of every summary sighting's identity.
    shard: u32,
    /// Raw chunks by start (logical ms).
    chunks: BTreeMap<Time, Chunk>,
    /// Summary partitions by first hour (hours since the epoch).
    partitions: BTreeMap<u32, Partition>,
    indicators: Indicators,
    /// Interned sensors: name → index, and back.
    sensor_ids: FxHashMap<Box<str>, u32>,
    sensors: Vec<Box<str>>,
    counters: Counters,
    /// Scratch space for live lookups.
    scratch: Vec<Entry>,
}

/// Hour (since the epoch) and second within it of an event time.
fn hour_of(ms: i64) -> (u32, u16) {
    let hour = ms.div_euclid(HOUR_MS);
    let second = ms.rem_euclid(HOUR_MS) / 1000;
    (
        u32::try_from(hour.max(0)).unwrap_or(u32::MAX),
        u16::try_from(second).unwrap_or(0),
    )
}

impl Store {
    /// An empty store for worker `shard`.
    pub fn new(config: TierConfig, shard: u32) -> Self {
        Self {
            config,
            shard,
            chunks: BTreeMap::new(),
            partitions: BTreeMap::new(),
            indicators: Indicators::default(),
            sensor_ids: FxHashMap::default(),
            sensors: Vec::new(),
            counters: Counters::default(),
            scratch: Vec::new(),
        }
    }

    /// The windows of the tiers.
    pub fn config(&self) -> TierConfig {
        self.config
    }

    /// What the store has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// How much the store holds.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            raw_events: self.chunks.values().map(|c| c.events.len()).sum(),
            summaries: self.partitions.values().map(|p| p.index.links.len()).sum(),
            indicators: self.indicators.count,
            chunks: self.chunks.len(),
            partitions: self.partitions.len(),
        }
    }

    fn intern(&mut self, sensor: Box<str>) -> u32 {
        if let Some(at) = self.sensor_ids.get(&sensor) {
            return *at;
        }
        let next = u32::try_from(self.sensors.len()).unwrap_or(u32::MAX);
        self.sensors.push(sensor.clone());
        self.sensor_ids.insert(sensor, next);
        next
    }

    fn sensor(&self, interned: u32) -> Box<str> {
        self.sensors
            .get(interned as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// An event time older than the retention at `now`: such an event matches nothing.
    fn too_old(&self, observed_ms: i64, now: Time) -> bool {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let retention = i64::try_from(self.config.retention_ms).unwrap_or(i64::MAX);
        observed_ms.saturating_add(retention) < now
    }

    /// Logical time at which the partition starting at `first_hour` is dropped.
    fn partition_drop_at(&self, first_hour: u32) -> Time {
        let end_hour = u64::from(first_hour) + u64::from(self.config.partition_hours());
        (end_hour * HOUR_MS as u64).saturating_add(self.config.retention_ms)
    }

    /// Ages the history to logical time `now`: raw chunks wholly older than the evidence
    /// window are folded into summaries, partitions wholly beyond the retention are dropped.
    pub fn advance(&mut self, now: Time) {
        let chunk_ms = self.config.chunk_ms();
        while let Some((&start, _)) = self.chunks.first_key_value() {
            if start
                .saturating_add(chunk_ms)
                .saturating_add(self.config.evidence_ms)
                > now
            {
                break;
            }
            if let Some((_, chunk)) = self.chunks.pop_first() {
                self.summarise(chunk, now);
            }
        }
        while let Some((&first, _)) = self.partitions.first_key_value() {
            if self.partition_drop_at(first) > now {
                break;
            }
            self.partitions.pop_first();
            self.counters.partitions_dropped += 1;
        }
    }

    /// The next logical time at which [`Store::advance`] changes something, if any.
    pub fn next_change(&self) -> Option<Time> {
        let chunk = self.chunks.keys().next().map(|s| {
            s.saturating_add(self.config.chunk_ms())
                .saturating_add(self.config.evidence_ms)
        });
        let part = self
            .partitions
            .keys()
            .next()
            .map(|f| self.partition_drop_at(*f));
        chunk.into_iter().chain(part).min()
    }

    fn summarise(&mut self, chunk: Chunk, now: Time) {
        self.counters.chunks_aged += 1;
        let per = self.config.partition_hours();
        // Events counted per event, not per observable.
        let mut beyond = vec![false; chunk.events.len()];
        let mut summarised = vec![false; chunk.events.len()];
        for (obs, head) in chunk.index.all_heads() {
            for (_, &at) in chunk.index.list(head) {
                let Some(ev) = chunk.events.get(at as usize) else {
                    continue;
                };
                let (hour, second) = hour_of(ev.observed_ms);
                let first = hour - hour % per;
                if self.partition_drop_at(first) <= now {
                    beyond[at as usize] = true;
                    continue;
                }
                summarised[at as usize] = true;
                self.partitions.entry(first).or_default().add(
                    obs,
                    ev.sensor,
                    hour,
                    (second, second),
                    ev.country,
                    1,
                );
            }
        }
        self.counters.summarised += summarised.iter().filter(|s| **s).count() as u64;
        self.counters.beyond_retention += beyond
            .iter()
            .zip(&summarised)
            .filter(|(b, s)| **b && !**s)
            .count() as u64;
    }

    /// Adds an event ingested at `now` (after [`Store::advance`] to `now`); its live matches
    /// with the current indicators are appended to `out`.
    pub fn add_event(&mut self, ev: EventIn, now: Time, out: &mut Vec<Made>) {
        if self.too_old(ev.observed_ms, now) {
            self.counters.beyond_retention += 1;
            return;
        }
        let mut found = std::mem::take(&mut self.scratch);
        self.indicators.matching(&ev.keys, &ev.ips, &mut found);
        let sensor = self.intern(ev.sensor_id);
        let raw = RawEvent {
            event_ref: ev.event_ref,
            event_id: ev.event_id,
            sensor,
            country: ev.country,
            observed_ms: ev.observed_ms,
            ingested_ms: now,
            victim: ev.victim,
            account: ev.account,
        };
        for e in found.iter().filter(|e| e.valid_at(raw.observed_ms)) {
            out.push(Made {
                indicator: e.id,
                target: e.target,
                evidence: Evidence::Raw(self.sighting(&raw)),
            });
        }
        self.scratch = found;
        let chunk_ms = self.config.chunk_ms();
        let start = now - now % chunk_ms;
        let chunk = self.chunks.entry(start).or_default();
        let at = u32::try_from(chunk.events.len()).unwrap_or(NIL - 1);
        for k in &ev.keys {
            chunk.index.push(Obs::Key(*k), at);
        }
        for ip in &ev.ips {
            chunk.index.push(Obs::of_ip(*ip), at);
        }
        chunk.events.push(raw);
    }

    fn sighting(&self, raw: &RawEvent) -> RawSighting {
        RawSighting {
            event_ref: raw.event_ref,
            event_id: raw.event_id.clone(),
            sensor_id: self.sensor(raw.sensor),
            country: raw.country,
            observed_ms: raw.observed_ms,
            ingested_ms: raw.ingested_ms,
            victim: raw.victim,
            account: raw.account.clone(),
        }
    }

    /// Adds a current indicator at `now` (after [`Store::advance`] to `now`); its
    /// retroactive matches with the retained history are appended to `out`: each raw event
    /// inside its validity, and each summary whose span meets its validity.
    pub fn add_indicator(&mut self, i: &IndicatorIn, now: Time, out: &mut Vec<Made>) {
        self.indicators.insert(i);
        let entry = Entry::of(i);
        for chunk in self.chunks.values() {
            let mut events: Vec<u32> = Vec::new();
            for (_, head) in chunk.index.heads(&i.target) {
                events.extend(chunk.index.list(head).map(|(_, at)| *at));
            }
            // An event with two addresses in one network is one sighting.
            events.sort_unstable();
            events.dedup();
            for at in events {
                if let Some(raw) = chunk.events.get(at as usize)
                    && entry.valid_at(raw.observed_ms)
                    && !self.too_old(raw.observed_ms, now)
                {
                    out.push(Made {
                        indicator: i.id,
                        target: i.target,
                        evidence: Evidence::Raw(self.sighting(raw)),
                    });
                }
            }
        }
        for part in self.partitions.values() {
            for (obs, head) in part.index.heads(&i.target) {
                for (_, c) in part.index.list(head) {
                    let hour_ms = i64::from(c.hour) * HOUR_MS;
                    // Judged by hour, so the answer does not depend on how the
                    // summaries of one hour are split over workers.
                    if !entry.meets(hour_ms, hour_ms + HOUR_MS - 1) {
                        continue;
                    }
                    let first_ms = hour_ms + i64::from(c.first_s) * 1000;
                    let last_ms = hour_ms + i64::from(c.last_s) * 1000 + 999;
                    out.push(Made {
                        indicator: i.id,
                        target: i.target,
                        evidence: Evidence::Summary(SummarySighting {
                            shard: self.shard,
                            observable: obs.id(),
                            sensor_id: self.sensor(c.sensor),
                            country: c.country,
                            hour: c.hour,
                            count: c.count,
                            first_ms,
                            last_ms,
                        }),
                    });
                }
            }
        }
    }

    /// Removes an indicator (a revoked or superseded version): later events no longer meet it.
    pub fn remove_indicator(&mut self, i: &IndicatorIn) {
        self.indicators.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logical time no test event is older than the retention at.
    const NOW: Time = 0;

    fn config() -> TierConfig {
        TierConfig {
            evidence_ms: 60_000,
            retention_ms: 2 * 3_600_000,
        }
    }

    fn event(n: u64, observed_ms: i64, keys: &[u64], ips: &[&str]) -> EventIn {
        EventIn {
            event_ref: n,
            event_id: format!("e{n}").into(),
            sensor_id: "s7".into(),
            country: Country::new("FR"),
            observed_ms,
            victim: None,
            account: None,
            keys: keys.to_vec(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn key(id: u64, k: u64) -> IndicatorIn {
        IndicatorIn {
            id,
            target: Target::Key(k),
            valid_from_ms: i64::MIN,
            valid_until_ms: i64::MAX,
        }
    }

    fn net(id: u64, cidr: &str) -> IndicatorIn {
        IndicatorIn {
            id,
            target: Target::parse_cidr(cidr).unwrap(),
            valid_from_ms: i64::MIN,
            valid_until_ms: i64::MAX,
        }
    }

    fn raw_refs(out: &[Made]) -> Vec<(u64, u64)> {
        out.iter()
            .filter_map(|m| match &m.evidence {
                Evidence::Raw(r) => Some((m.indicator, r.event_ref)),
                Evidence::Summary(_) => None,
            })
            .collect()
    }

    fn summary_counts(out: &[Made]) -> Vec<(u64, u32)> {
        out.iter()
            .filter_map(|m| match &m.evidence {
                Evidence::Summary(s) => Some((m.indicator, s.count)),
                Evidence::Raw(_) => None,
            })
            .collect()
    }

    #[test]
    fn live_and_retroactive_matches_meet_raw_events() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        s.add_indicator(&key(1, 100), NOW, &mut out);
        s.add_event(event(1, 1_000, &[100, 5], &[]), 1_000, &mut out);
        assert_eq!(raw_refs(&out), vec![(1, 1)], "live");
        out.clear();
        s.add_event(event(2, 2_000, &[200], &["10.0.0.9"]), 2_000, &mut out);
        assert!(out.is_empty());
        s.add_indicator(&key(2, 200), NOW, &mut out);
        s.add_indicator(&net(3, "10.0.0.0/24"), NOW, &mut out);
        let mut got = raw_refs(&out);
        got.sort();
        assert_eq!(
            got,
            vec![(2, 2), (3, 2)],
            "retroactive, by key and by network"
        );
    }

    #[test]
    fn aged_events_are_found_as_summaries_and_retired_after_the_retention() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let t = hour as u64;
        for n in 0..3 {
            s.add_event(
                event(n, hour + 10_000 * n as i64, &[100], &["10.0.0.9"]),
                t,
                &mut out,
            );
        }
        // Still raw one window later; summarised once the chunk is wholly older than it.
        s.advance(t + 60_000);
        assert_eq!(s.sizes().raw_events, 3);
        s.advance(t + 61_000);
        assert_eq!(s.sizes().raw_events, 0);
        assert_eq!(s.counters().summarised, 3);
        s.add_indicator(&key(1, 100), NOW, &mut out);
        s.add_indicator(&net(2, "10.0.0.0/8"), NOW, &mut out);
        assert_eq!(summary_counts(&out), vec![(1, 3), (2, 3)]);
        let first = out.iter().find_map(|m| match &m.evidence {
            Evidence::Summary(s) => Some((s.first_ms, s.last_ms)),
            Evidence::Raw(_) => None,
        });
        assert_eq!(first, Some((hour, hour + 20_999)), "to the second");
        // Dropped once the hour is a retention old.
        let end = t + 3_600_000;
        s.advance(end + 2 * 3_600_000 - 1);
        assert_eq!(s.sizes().summaries, 2);
        s.advance(end + 2 * 3_600_000);
        assert_eq!(s.sizes().summaries, 0);
        out.clear();
        s.remove_indicator(&key(1, 100));
        s.add_indicator(&key(1, 100), NOW, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn events_older_than_the_retention_match_nothing_and_are_not_kept() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        let now = 1_800_000_000_000u64;
        s.add_indicator(&key(1, 100), now, &mut out);
        s.add_event(event(1, 1_000, &[100], &[]), now, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.counters().beyond_retention, 1);
        assert_eq!(s.sizes().raw_events, 0);
        // An event inside the retention when it came, but beyond it when it ages.
        let edge = now as i64 - 2 * 3_600_000 + 1;
        s.add_event(event(2, edge, &[100], &[]), now, &mut out);
        assert_eq!(out.len(), 1, "live match");
        // Summaries go by whole partitions (hours here): its hour is still kept.
        s.advance(now + 120_000);
        assert_eq!(s.counters().beyond_retention, 1);
        assert_eq!(s.sizes().summaries, 1);
    }

    #[test]
    fn validity_is_judged_at_event_time() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        let mut i = key(1, 100);
        i.valid_from_ms = 5_000;
        i.valid_until_ms = 10_000;
        s.add_indicator(&i, NOW, &mut out);
        for (n, at) in [(1, 4_999), (2, 5_000), (3, 9_999), (4, 10_000)] {
            s.add_event(event(n, at, &[100], &[]), 11_000, &mut out);
        }
        assert_eq!(raw_refs(&out), vec![(1, 2), (1, 3)]);
    }

    #[test]
    fn a_removed_indicator_no_longer_meets_events_and_networks_use_every_length_present() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        s.add_indicator(&net(1, "10.1.0.0/16"), NOW, &mut out);
        s.add_indicator(&net(2, "10.1.2.0/24"), NOW, &mut out);
        s.add_indicator(&net(3, "2001:db8::/32"), NOW, &mut out);
        s.add_event(event(1, 0, &[], &["10.1.2.3", "2001:db8::1"]), 0, &mut out);
        let mut got = raw_refs(&out);
        got.sort();
        assert_eq!(got, vec![(1, 1), (2, 1), (3, 1)]);
        out.clear();
        s.remove_indicator(&net(2, "10.1.2.0/24"));
        s.add_event(event(2, 0, &[], &["10.1.2.4"]), 0, &mut out);
        assert_eq!(raw_refs(&out), vec![(1, 2)]);
        assert_eq!(
            s.indicators.v4_lens.keys().copied().collect::<Vec<_>>(),
            vec![16]
        );
    }

    #[test]
    fn an_observable_seen_by_many_sensors_in_many_hours_is_summarised_exactly() {
        let mut s = Store::new(
            TierConfig {
                retention_ms: 24 * 3_600_000,
                ..config()
            },
            0,
        );
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let t = hour as u64 + 3 * HOUR_MS as u64;
        let mut n = 0;
        for round in 0..2 {
            for h in 0..3 {
                for sensor in 0..40 {
                    let mut e = event(n, hour + h * HOUR_MS + round, &[100], &[]);
                    e.sensor_id = format!("s{sensor}").into();
                    s.add_event(e, t, &mut out);
                    n += 1;
                }
            }
        }
        s.advance(t + 61_000);
        assert_eq!(s.sizes().summaries, 120, "one cell per (sensor, hour)");
        s.add_indicator(&key(1, 100), t + 61_000, &mut out);
        let counts = summary_counts(&out);
        assert_eq!(counts.len(), 120);
        assert!(counts.iter().all(|(_, c)| *c == 2));
    }

    #[test]
    fn late_events_of_older_hours_find_their_cells() {
        let mut s = Store::new(
            TierConfig {
                retention_ms: 24 * 3_600_000,
                ..config()
            },
            0,
        );
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let t = hour as u64 + 3 * HOUR_MS as u64;
        let mut n = 0;
        // Hours out of order, sensors repeating: every (sensor, hour) gets 4 events.
        for _ in 0..4 {
            for h in [2, 0, 1] {
                for sensor in 0..3 {
                    let mut e = event(n, hour + h * HOUR_MS, &[100], &["10.9.8.7"]);
                    e.sensor_id = format!("s{sensor}").into();
                    s.add_event(e, t, &mut out);
                    n += 1;
                }
            }
            s.advance(s.next_change().unwrap_or(t));
        }
        s.advance(t + 600_000);
        assert_eq!(
            s.sizes().summaries,
            18,
            "9 cells for the key, 9 for the address"
        );
        s.add_indicator(&key(1, 100), t + 600_000, &mut out);
        s.add_indicator(&net(2, "10.9.0.0/16"), t + 600_000, &mut out);
        let counts = summary_counts(&out);
        assert_eq!(counts.len(), 18);
        assert!(counts.iter().all(|(_, c)| *c == 4), "{counts:?}");
    }

    #[test]
    fn two_addresses_of_one_event_in_one_network_are_one_sighting() {
        let mut s = Store::new(config(), 0);
        let mut out = Vec::new();
        s.add_event(event(1, 0, &[], &["10.0.0.1", "10.0.0.2"]), 0, &mut out);
        s.add_indicator(&net(1, "10.0.0.0/24"), NOW, &mut out);
        assert_eq!(raw_refs(&out), vec![(1, 1)]);
        out.clear();
        s.add_event(event(2, 0, &[], &["10.0.0.1", "10.0.0.2"]), 0, &mut out);
        assert_eq!(raw_refs(&out), vec![(1, 2)]);
    }
}
