//! The store behind [`super::history_matches`]: one worker's share of the retained
//! history in two tiers, and every current indicator, with the lookups that match them.
//!
//! Pure and single-threaded: the operator calls it in logical-time order.
//!
//! - **Raw tier.** Events are kept whole (id, sensor, country, times, victim, account) in
//!   chunks of ingestion time ([`TierConfig::chunk_ms`]). A chunk lists its (observable,
//!   event) pairs per kind (exact keys, IPv4, IPv6 addresses apart), appended as events
//!   come and sorted on the first lookup after: a lookup is a binary search, a network a
//!   range of addresses. A chunk ages out once the whole of it is older than the evidence
//!   window: its events are folded into the summaries and the chunk is dropped at once.
//! - **Summary tier.** Per (observable, sensor, UTC hour of event time): how many events,
//!   first and last seen (seconds of the hour), the sensor's country. Summaries live in
//!   partitions of whole hours of event time ([`TierConfig::partition_hours`]), each a
//!   list of immutable runs: vectors of 16-byte cells per kind, sorted by (observable,
//!   sensor, hour). An aged chunk adds one run to each partition its events fall in; the
//!   newest runs merge while the newest is at least half the size of the one before (as a
//!   log-structured merge tree does), combining the cells of one (observable, sensor,
//!   hour), up to a cap that bounds the copy a merge makes. A lookup searches every run
//!   and combines what it finds, so it sees one summary per (observable, sensor, hour)
//!   however its events were split over runs. A partition is dropped at once when its
//!   last hour is older than the retention; an event whose hour is already beyond the
//!   retention when it ages is not summarised ([`Counters::beyond_retention`]).
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

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use super::{Country, EventIn, Evidence, IndicatorIn, Made, RawSighting, SummarySighting, Target};
use crate::Time;
use crate::observables::Ips;

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
    /// Summary cells (observable, sensor, hour), counted once per run that holds one: a
    /// summary whose events aged in chunks whose runs have not merged yet counts more than
    /// once (runs merge as they grow, so few do).
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
    event_id: CompactString,
    sensor: u32,
    country: Country,
    observed_ms: i64,
    ingested_ms: Time,
    victim: Option<IpAddr>,
    account: Option<Box<str>>,
}

/// An observable mixed into 64 bits, for a chunk's filter.
trait Mix: Copy {
    fn mix(self) -> u64;
}

/// Fibonacci hashing's multiplier: the high bits of the product are well spread.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Mix for u64 {
    fn mix(self) -> u64 {
        self.wrapping_mul(GOLDEN)
    }
}

impl Mix for u32 {
    fn mix(self) -> u64 {
        u64::from(self).wrapping_mul(GOLDEN)
    }
}

impl Mix for u128 {
    fn mix(self) -> u64 {
        let (hi, lo) = ((self >> 64) as u64, self as u64);
        (hi.rotate_left(32) ^ lo).wrapping_mul(GOLDEN)
    }
}

/// Filter bits per pair: one bit set per pair, so about 6 % of absent observables pass.
const FILTER_BITS_PER_PAIR: usize = 16;

/// (observable, event index) pairs of one observable kind in a chunk: appended as events
/// come, sorted on the first lookup after (a lookup is a binary search, a network a range).
///
/// A chunk no longer written to gets a filter (one bit per mixed observable) on its
/// first lookup: a new indicator looks into every chunk of the evidence window, and
/// nearly every chunk lacks its observable, which the filter says in one probe instead
/// of a binary search.
#[derive(Debug)]
struct Postings<K> {
    pairs: Vec<(K, u32)>,
    sorted: bool,
    /// Bit set of the pairs' mixed observables; empty when not built.
    filter: Vec<u64>,
    /// How many pairs the filter was built over (it is stale when the pairs grew).
    filtered: usize,
}

impl<K> Default for Postings<K> {
    fn default() -> Self {
        Self {
            pairs: Vec::new(),
            sorted: true,
            filter: Vec::new(),
            filtered: 0,
        }
    }
}

impl<K: Ord + Copy + Mix> Postings<K> {
    /// Builds the filter over the pairs, unless it is current.
    fn build_filter(&mut self) {
        if self.pairs.is_empty() || (!self.filter.is_empty() && self.filtered == self.pairs.len()) {
            return;
        }
        let bits = (self.pairs.len() * FILTER_BITS_PER_PAIR)
            .next_power_of_two()
            .max(64);
        self.filter.clear();
        self.filter.resize(bits / 64, 0);
        let shift = 64 - bits.trailing_zeros();
        for (obs, _) in &self.pairs {
            let bit = obs.mix() >> shift;
            if let Some(word) = self.filter.get_mut((bit / 64) as usize) {
                *word |= 1 << (bit % 64);
            }
        }
        self.filtered = self.pairs.len();
    }

    /// False only when no pair has `obs` (by a current filter).
    fn may_hold(&self, obs: K) -> bool {
        if self.filter.is_empty() || self.filtered != self.pairs.len() {
            return true;
        }
        let bits = self.filter.len() * 64;
        let bit = obs.mix() >> (64 - bits.trailing_zeros());
        self.filter
            .get((bit / 64) as usize)
            .is_none_or(|word| word & (1 << (bit % 64)) != 0)
    }

    fn push(&mut self, obs: K, at: u32) {
        if self.sorted && self.pairs.last().is_some_and(|last| *last > (obs, at)) {
            self.sorted = false;
        }
        self.pairs.push((obs, at));
    }

    fn sort(&mut self) {
        if !self.sorted {
            // Stable sort: it finds the part already sorted by an earlier lookup.
            self.pairs.sort();
            self.sorted = true;
        }
    }

    /// Appends the events of the observables in `lo..=hi` (after [`Postings::sort`]).
    fn events_in(&self, lo: K, hi: K, out: &mut Vec<u32>) {
        if lo == hi && !self.may_hold(lo) {
            return;
        }
        let start = self.pairs.partition_point(|(obs, _)| *obs < lo);
        let from = self.pairs.get(start..).unwrap_or_default();
        out.extend(
            from.iter()
                .take_while(|(obs, _)| *obs <= hi)
                .map(|(_, at)| *at),
        );
    }
}

/// Raw evidence of one stretch of ingestion time.
#[derive(Debug, Default)]
struct Chunk {
    events: Vec<RawEvent>,
    keys: Postings<u64>,
    v4: Postings<u32>,
    v6: Postings<u128>,
}

impl Chunk {
    fn sort(&mut self) {
        self.keys.sort();
        self.v4.sort();
        self.v6.sort();
    }

    /// Sorts a chunk no longer written to and builds its filters.
    fn seal(&mut self) {
        self.sort();
        self.keys.build_filter();
        self.v4.build_filter();
        self.v6.build_filter();
    }

    /// The events (indexes, ascending, each once) with an observable the target covers
    /// (after [`Chunk::sort`]).
    fn events_of(&self, target: &Target, out: &mut Vec<u32>) {
        out.clear();
        match *target {
            Target::Key(k) => self.keys.events_in(k, k, out),
            Target::V4 { net, len } => {
                let (lo, hi) = v4_range(net, len);
                self.v4.events_in(lo, hi, out);
            }
            Target::V6 { net, len } => {
                let (lo, hi) = v6_range(net, len);
                self.v6.events_in(lo, hi, out);
            }
        }
        // An event with two addresses in one network is one sighting.
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// One summary of an observable: (sensor, hour) with its count and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    sensor: u32,
    count: u32,
    first_s: u16,
    last_s: u16,
    country: Country,
    /// Hour of event time, counted from the first hour of its partition (at most 24 hours).
    hour: u8,
}

// Sixteen bytes a cell: the summary tier is most of the store's memory.
const _: () = assert!(std::mem::size_of::<Cell>() == 16);

impl Cell {
    /// Adds the events of `newer`, a cell of the same (observable, sensor, hour); the
    /// country stays that of the cell made first.
    fn absorb(&mut self, newer: &Cell) {
        self.count = self.count.saturating_add(newer.count);
        self.first_s = self.first_s.min(newer.first_s);
        self.last_s = self.last_s.max(newer.last_s);
    }
}

/// The cells of one observable kind, sorted by (observable, sensor, hour), one per triple.
type Cells<K> = Vec<(K, Cell)>;

/// What orders cells and identifies a summary within a partition.
fn cell_key<K: Copy>(e: &(K, Cell)) -> (K, u32, u8) {
    (e.0, e.1.sensor, e.1.hour)
}

/// Merges two runs' cells of one kind: the cells of one (observable, sensor, hour) combine.
fn merge_cells<K: Ord + Copy>(older: &[(K, Cell)], newer: &[(K, Cell)]) -> Cells<K> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut a = older.iter().copied().peekable();
    let mut b = newer.iter().copied().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match cell_key(x).cmp(&cell_key(y)) {
                Ordering::Less => out.extend(a.next()),
                Ordering::Greater => out.extend(b.next()),
                Ordering::Equal => {
                    let mut c = *x;
                    c.1.absorb(&y.1);
                    out.push(c);
                    a.next();
                    b.next();
                }
            },
            (Some(_), None) => {
                out.extend(a);
                break;
            }
            (None, _) => {
                out.extend(b);
                break;
            }
        }
    }
    // Observables seen in both runs leave room unused; give it back when it is much.
    if out.capacity() - out.len() > out.len() / 8 {
        out.shrink_to_fit();
    }
    out
}

/// Combines runs of equal (observable, sensor, hour) in cells sorted by them, the cells of
/// one summary in the order they were made.
fn combine_sorted<K: Ord + Copy>(cells: &mut Cells<K>) {
    cells.dedup_by(|newer, older| {
        let same = cell_key(newer) == cell_key(older);
        if same {
            older.1.absorb(&newer.1);
        }
        same
    });
}

/// An immutable, sorted batch of summary cells of one partition.
#[derive(Debug, Default)]
struct Run {
    keys: Cells<u64>,
    v4: Cells<u32>,
    v6: Cells<u128>,
}

impl Run {
    fn len(&self) -> usize {
        self.keys.len() + self.v4.len() + self.v6.len()
    }

    fn merge(older: &Run, newer: &Run) -> Run {
        Run {
            keys: merge_cells(&older.keys, &newer.keys),
            v4: merge_cells(&older.v4, &newer.v4),
            v6: merge_cells(&older.v6, &newer.v6),
        }
    }
}

/// Cells above which two runs are not merged: the copy a merge makes stays small (a
/// partition of a day may hold millions of cells).
const RUN_CAP: usize = 1 << 20;

/// Summaries of some whole hours of event time: runs, oldest first. Each aged chunk adds
/// a run; the newest runs merge while the newest is at least half the size of the one
/// before (up to [`RUN_CAP`]), so a partition holds few runs and a cell is copied a
/// logarithmic number of times.
#[derive(Debug, Default)]
struct Partition {
    runs: Vec<Run>,
    /// Cells over all runs.
    cells: usize,
}

impl Partition {
    fn push(&mut self, run: Run, cap: usize) {
        self.cells += run.len();
        self.runs.push(run);
        while let [.., older, newer] = self.runs.as_slice() {
            let (o, n) = (older.len(), newer.len());
            if n * 2 < o || o + n > cap {
                break;
            }
            let merged = Run::merge(older, newer);
            self.cells = self.cells + merged.len() - o - n;
            self.runs.truncate(self.runs.len() - 2);
            self.runs.push(merged);
        }
    }

    /// The summaries of the observables in `lo..=hi` of one kind (`cells` picks it), one
    /// per (observable, sensor, hour), in that order, into `out`.
    fn find<K: Ord + Copy>(
        &self,
        cells: impl Fn(&Run) -> &Cells<K>,
        lo: K,
        hi: K,
        out: &mut Cells<K>,
    ) {
        out.clear();
        for run in &self.runs {
            let run = cells(run);
            let start = run.partition_point(|(obs, _)| *obs < lo);
            let from = run.get(start..).unwrap_or_default();
            out.extend(from.iter().take_while(|(obs, _)| *obs <= hi));
        }
        if self.runs.len() > 1 {
            // Stable: a summary's cells stay oldest first, so they combine as a merge would.
            out.sort_by_key(cell_key);
            combine_sorted(out);
        }
    }
}

/// The runs of one kind's (observable, event) pairs of aged chunks (oldest first), by
/// first hour of partition; `place` says where each event's summaries go (none: beyond
/// the retention). Chunks that age together make one run, not a run each: fewer, larger
/// runs to merge.
fn chunk_cells<'c, K: Ord + Copy + 'c>(
    chunks: impl IntoIterator<Item = (&'c [(K, u32)], &'c [RawEvent], &'c [Option<(u32, u8, u16)>])>,
) -> Vec<(u32, Cells<K>)> {
    // Each pair's event numbered across the chunks; `ends` holds where each chunk ends.
    let mut all: Vec<(u32, K, Cell, u32)> = Vec::new();
    let mut ends: Vec<u32> = Vec::new();
    let mut offset = 0u32;
    for (pairs, events, place) in chunks {
        all.extend(pairs.iter().filter_map(|&(obs, at)| {
            let ev = events.get(at as usize)?;
            let (first, hour, second) = (*place.get(at as usize)?)?;
            let cell = Cell {
                sensor: ev.sensor,
                count: 1,
                first_s: second,
                last_s: second,
                country: ev.country,
                hour,
            };
            Some((first, obs, cell, offset.saturating_add(at)))
        }));
        offset = offset.saturating_add(u32::try_from(events.len()).unwrap_or(u32::MAX));
        ends.push(offset);
    }
    all.sort_unstable_by_key(|(first, obs, c, at)| (*first, *obs, c.sensor, c.hour, *at));
    let chunk_end = |at: u32| ends.get(ends.partition_point(|end| *end <= at)).copied();
    let mut out: Vec<(u32, Cells<K>)> = Vec::new();
    let mut rest = all.as_slice();
    while let Some(&(first, ..)) = rest.first() {
        let (part, after) = rest.split_at(rest.partition_point(|e| e.0 == first));
        // Room for every pair at once: no growth by doubling, little left over.
        let mut cells: Cells<K> = Vec::with_capacity(part.len());
        // The end of the chunk that made the last cell.
        let mut made_in = None;
        for &(_, obs, cell, at) in part {
            match cells.last_mut() {
                Some(last) if cell_key(last) == (obs, cell.sensor, cell.hour) => {
                    last.1.absorb(&cell);
                    // The latest event of the chunk that made the cell gives the country,
                    // as when each chunk made a run of its own and runs merged.
                    if at < made_in.unwrap_or(u32::MAX) {
                        last.1.country = cell.country;
                    }
                }
                _ => {
                    cells.push((obs, cell));
                    made_in = chunk_end(at);
                }
            }
        }
        out.push((first, cells));
        rest = after;
    }
    out
}

/// Where an aged chunk's event summaries go: (first hour of partition, hour in it, second)
/// per event, none when beyond the retention.
type Places = Vec<Option<(u32, u8, u16)>>;

/// One kind's pairs of each aged chunk (`pairs` picks the kind), with the chunk's events
/// and places, as [`chunk_cells`] takes them.
fn aged_pairs<'c, K: 'c>(
    chunks: &'c [Chunk],
    places: &'c [Places],
    pairs: fn(&Chunk) -> &Vec<(K, u32)>,
) -> impl Iterator<Item = (&'c [(K, u32)], &'c [RawEvent], &'c [Option<(u32, u8, u16)>])> {
    chunks
        .iter()
        .zip(places)
        .map(move |(c, p)| (pairs(c).as_slice(), c.events.as_slice(), p.as_slice()))
}

/// The observable number of an IPv4 address in a summary sighting.
fn v4_id(a: u32) -> u64 {
    0x4000_0000_0000_0000 ^ u64::from(a)
}

/// The observable number of an IPv6 address in a summary sighting.
fn v6_id(a: u128) -> u64 {
    (a as u64) ^ ((a >> 64) as u64).rotate_left(17) ^ 0x6000_0000_0000_0000
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
    fn matching(&self, keys: &[u64], ips: &Ips, out: &mut Vec<Entry>) {
        out.clear();
        for k in keys {
            if let Some(es) = self.keys.get(k) {
                out.extend(es);
            }
        }
        for ip in ips.iter() {
            match ip {
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
    /// Events in the raw chunks.
    raw_events: usize,
    /// Summary partitions by first hour (hours since the epoch).
    partitions: BTreeMap<u32, Partition>,
    /// Cells above which runs are not merged ([`RUN_CAP`]; smaller in tests).
    run_cap: usize,
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
            raw_events: 0,
            partitions: BTreeMap::new(),
            run_cap: RUN_CAP,
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
            raw_events: self.raw_events,
            summaries: self.partitions.values().map(|p| p.cells).sum(),
            indicators: self.indicators.count,
            chunks: self.chunks.len(),
            partitions: self.partitions.len(),
        }
    }

    fn intern(&mut self, sensor: &str) -> u32 {
        if let Some(at) = self.sensor_ids.get(sensor) {
            return *at;
        }
        let next = u32::try_from(self.sensors.len()).unwrap_or(u32::MAX);
        self.sensors.push(sensor.into());
        self.sensor_ids.insert(sensor.into(), next);
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
        let mut aged = Vec::new();
        while let Some((&start, _)) = self.chunks.first_key_value() {
            if start
                .saturating_add(chunk_ms)
                .saturating_add(self.config.evidence_ms)
                > now
            {
                break;
            }
            if let Some((_, chunk)) = self.chunks.pop_first() {
                self.raw_events -= chunk.events.len();
                aged.push(chunk);
            }
        }
        if !aged.is_empty() {
            self.summarise(&aged, now);
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

    /// Folds aged chunks (oldest first) into the summaries: one new run per partition
    /// their events' hours fall in.
    fn summarise(&mut self, chunks: &[Chunk], now: Time) {
        self.counters.chunks_aged += chunks.len() as u64;
        let per = self.config.partition_hours();
        // Where each event's summaries go: (first hour of partition, hour in it, second).
        let places: Vec<Places> = chunks
            .iter()
            .map(|chunk| {
                chunk
                    .events
                    .iter()
                    .map(|ev| {
                        let (hour, second) = hour_of(ev.observed_ms);
                        let first = hour - hour % per;
                        let offset = u8::try_from(hour - first).unwrap_or(u8::MAX);
                        (self.partition_drop_at(first) > now).then_some((first, offset, second))
                    })
                    .collect()
            })
            .collect();
        for (chunk, place) in chunks.iter().zip(&places) {
            // Events are counted per event, not per observable; one without any is neither.
            let mut observed = vec![false; chunk.events.len()];
            let ats = (chunk.keys.pairs.iter().map(|p| p.1))
                .chain(chunk.v4.pairs.iter().map(|p| p.1))
                .chain(chunk.v6.pairs.iter().map(|p| p.1));
            for at in ats {
                if let Some(o) = observed.get_mut(at as usize) {
                    *o = true;
                }
            }
            for (o, p) in observed.iter().zip(place) {
                match (o, p) {
                    (false, _) => {}
                    (true, Some(_)) => self.counters.summarised += 1,
                    (true, None) => self.counters.beyond_retention += 1,
                }
            }
        }
        let mut runs: BTreeMap<u32, Run> = BTreeMap::new();
        for (first, cells) in chunk_cells(aged_pairs(chunks, &places, |c| &c.keys.pairs)) {
            runs.entry(first).or_default().keys = cells;
        }
        for (first, cells) in chunk_cells(aged_pairs(chunks, &places, |c| &c.v4.pairs)) {
            runs.entry(first).or_default().v4 = cells;
        }
        for (first, cells) in chunk_cells(aged_pairs(chunks, &places, |c| &c.v6.pairs)) {
            runs.entry(first).or_default().v6 = cells;
        }
        for (first, run) in runs {
            self.partitions
                .entry(first)
                .or_default()
                .push(run, self.run_cap);
        }
    }

    /// Adds an event ingested at `now` (after [`Store::advance`] to `now`); its live matches
    /// with the current indicators are appended to `out`.
    pub fn add_event(&mut self, ev: EventIn, now: Time, out: &mut Vec<Made>) {
        if self.too_old(ev.observed_ms, now) {
            self.counters.beyond_retention += 1;
            return;
        }
        let mut found = std::mem::take(&mut self.scratch);
        self.indicators
            .matching(ev.keys.as_slice(), &ev.ips, &mut found);
        let sensor = self.intern(&ev.sensor_id);
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
        let chunk = match self.chunks.last_entry() {
            Some(last) if *last.key() == start => last.into_mut(),
            _ => self.chunks.entry(start).or_default(),
        };
        let at = u32::try_from(chunk.events.len()).unwrap_or(u32::MAX);
        for k in ev.keys.as_slice() {
            chunk.keys.push(*k, at);
        }
        for ip in ev.ips.iter() {
            match ip {
                IpAddr::V4(a) => chunk.v4.push(u32::from(a), at),
                IpAddr::V6(a) => chunk.v6.push(u128::from(a), at),
            }
        }
        chunk.events.push(raw);
        self.raw_events += 1;
    }

    fn sighting(&self, raw: &RawEvent) -> RawSighting {
        RawSighting {
            event_ref: raw.event_ref,
            event_id: raw.event_id.as_str().into(),
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
        let mut events: Vec<u32> = Vec::new();
        // Events of `now` still come to the last chunk: it is sorted, not sealed.
        let last = self.chunks.keys().next_back().copied();
        for (start, chunk) in &mut self.chunks {
            if Some(*start) == last {
                chunk.sort();
            } else {
                chunk.seal();
            }
        }
        for chunk in self.chunks.values() {
            chunk.events_of(&i.target, &mut events);
            for at in &events {
                if let Some(raw) = chunk.events.get(*at as usize)
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
        for (first, part) in &self.partitions {
            match i.target {
                Target::Key(k) => {
                    let mut cells = Vec::new();
                    part.find(|r| &r.keys, k, k, &mut cells);
                    for (obs, c) in &cells {
                        self.summary(i, &entry, *first, *obs, c, out);
                    }
                }
                Target::V4 { net, len } => {
                    let (lo, hi) = v4_range(net, len);
                    let mut cells = Vec::new();
                    part.find(|r| &r.v4, lo, hi, &mut cells);
                    for (obs, c) in &cells {
                        self.summary(i, &entry, *first, v4_id(*obs), c, out);
                    }
                }
                Target::V6 { net, len } => {
                    let (lo, hi) = v6_range(net, len);
                    let mut cells = Vec::new();
                    part.find(|r| &r.v6, lo, hi, &mut cells);
                    for (obs, c) in &cells {
                        self.summary(i, &entry, *first, v6_id(*obs), c, out);
                    }
                }
            }
        }
    }

    /// Appends the match of `i` with the summary `c` of `observable` in the partition
    /// starting at hour `first`, if its hour meets the validity.
    fn summary(
        &self,
        i: &IndicatorIn,
        entry: &Entry,
        first: u32,
        observable: u64,
        c: &Cell,
        out: &mut Vec<Made>,
    ) {
        let hour = first.saturating_add(u32::from(c.hour));
        let hour_ms = i64::from(hour) * HOUR_MS;
        // Judged by hour, so the answer does not depend on how the summaries of one hour
        // are split over workers.
        if !entry.meets(hour_ms, hour_ms + HOUR_MS - 1) {
            return;
        }
        out.push(Made {
            indicator: i.id,
            target: i.target,
            evidence: Evidence::Summary(SummarySighting {
                shard: self.shard,
                observable,
                sensor_id: self.sensor(c.sensor),
                country: c.country,
                hour,
                count: c.count,
                first_ms: hour_ms + i64::from(c.first_s) * 1000,
                last_ms: hour_ms + i64::from(c.last_s) * 1000 + 999,
            }),
        });
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
            keys: keys.iter().copied().collect(),
            ips: ips_of(&ips.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>()),
        }
    }

    /// The addresses of an event (at most three).
    fn ips_of(ips: &[IpAddr]) -> Ips {
        assert!(ips.len() <= 3);
        Ips::new([0, 1, 2].map(|n| ips.get(n).copied()))
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
    fn a_sealed_chunks_filter_never_hides_a_pair_and_rejects_most_others() {
        let mut keys: Postings<u64> = Postings::default();
        let mut v6: Postings<u128> = Postings::default();
        for n in 0..1_000_u64 {
            // Spread like key hashes and addresses: some close together, some not.
            keys.push(
                n.wrapping_mul(0x0123_4567_89AB_CDEF),
                u32::try_from(n).unwrap(),
            );
            v6.push(u128::from(n) << 64 | 7, u32::try_from(n).unwrap());
        }
        assert!(keys.may_hold(42), "no filter yet: every lookup searches");
        keys.sort();
        keys.build_filter();
        v6.sort();
        v6.build_filter();
        for n in 0..1_000_u64 {
            assert!(keys.may_hold(n.wrapping_mul(0x0123_4567_89AB_CDEF)));
            assert!(v6.may_hold(u128::from(n) << 64 | 7));
        }
        let passed = (1_000..11_000_u64)
            .filter(|n| keys.may_hold(n.wrapping_mul(0x0123_4567_89AB_CDEF)))
            .count();
        assert!(passed < 1_000, "{passed} of 10,000 absent keys passed");
        // A pair added after the filter makes it stale: lookups search again.
        keys.push(5, 1_000);
        assert!(keys.may_hold(5));
        let mut found = Vec::new();
        keys.sort();
        keys.events_in(5, 5, &mut found);
        assert_eq!(found, vec![1_000]);
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
    fn chunks_ageing_together_summarise_as_chunks_ageing_one_by_one() {
        // Chunks of 100 ms; events over 40 chunks, two sensors, one of which reports HU
        // for the second half of the first chunk and FR again after: the latest event of
        // the chunk that made a cell gives its country.
        let cfg = TierConfig {
            retention_ms: 24 * 3_600_000,
            ..config()
        };
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let base = hour as u64 + HOUR_MS as u64;
        let events: Vec<(Time, EventIn)> = (0..400u64)
            .map(|n| {
                let mut e = event(n, hour + (n as i64 % 7) * 1_000, &[100 + n % 3], &[]);
                e.sensor_id = format!("s{}", n % 2).into();
                if n % 2 == 1 && (5..10).contains(&n) {
                    e.country = Country::new("HU");
                }
                (base + n * 10, e)
            })
            .collect();
        let end = base + 400 * 10 + cfg.evidence_ms + 200;
        let (mut one_by_one, mut together) = (Store::new(cfg, 0), Store::new(cfg, 0));
        let mut out = Vec::new();
        for (t, e) in &events {
            one_by_one.advance(*t);
            one_by_one.add_event(e.clone(), *t, &mut out);
            together.add_event(e.clone(), *t, &mut out);
        }
        one_by_one.advance(end);
        together.advance(end);
        assert_eq!(one_by_one.counters().chunks_aged, 40);
        assert_eq!(together.counters(), one_by_one.counters());
        let found = |s: &mut Store| {
            let mut out = Vec::new();
            for k in 100..103 {
                s.add_indicator(&key(k, k), end, &mut out);
            }
            let mut cells: Vec<(u64, Box<str>, u32, u32, Country, i64, i64)> = out
                .iter()
                .filter_map(|m| match &m.evidence {
                    Evidence::Summary(c) => Some((
                        m.indicator,
                        c.sensor_id.clone(),
                        c.hour,
                        c.count,
                        c.country,
                        c.first_ms,
                        c.last_ms,
                    )),
                    Evidence::Raw(_) => None,
                })
                .collect();
            cells.sort();
            cells
        };
        let expected = found(&mut one_by_one);
        assert_eq!(expected.len(), 6, "three keys, two sensors, one hour");
        let hu = expected
            .iter()
            .filter(|c| c.4 == Country::new("HU"))
            .count();
        assert_eq!(hu, 3, "the cells of the sensor that moved");
        assert_eq!(found(&mut together), expected);
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

    fn cell(sensor: u32, hour: u8, count: u32, seconds: (u16, u16), country: &str) -> Cell {
        Cell {
            sensor,
            count,
            first_s: seconds.0,
            last_s: seconds.1,
            country: Country::new(country),
            hour,
        }
    }

    fn key_run(cells: &[(u64, Cell)]) -> Run {
        let mut keys = cells.to_vec();
        keys.sort_by_key(cell_key);
        Run {
            keys,
            ..Run::default()
        }
    }

    #[test]
    fn merging_runs_combines_the_cells_of_one_summary() {
        let mut p = Partition::default();
        p.push(
            key_run(&[
                (7, cell(1, 0, 2, (10, 20), "FR")),
                (7, cell(2, 0, 1, (5, 5), "FR")),
            ]),
            RUN_CAP,
        );
        p.push(
            key_run(&[
                (7, cell(1, 0, 3, (4, 30), "DE")),
                (8, cell(1, 0, 1, (0, 0), "FR")),
            ]),
            RUN_CAP,
        );
        assert_eq!(p.runs.len(), 1, "equal sizes merge");
        assert_eq!(p.cells, 3, "the two cells of (7, sensor 1, hour 0) are one");
        let mut found = Vec::new();
        p.find(|r| &r.keys, 7, 7, &mut found);
        assert_eq!(
            found,
            vec![
                (7, cell(1, 0, 5, (4, 30), "FR")),
                (7, cell(2, 0, 1, (5, 5), "FR"))
            ],
            "count added, first the earliest, last the latest, the first cell's country"
        );
    }

    #[test]
    fn runs_merge_geometrically_and_never_above_the_cap() {
        let cap = 64;
        let mut p = Partition::default();
        for n in 0..1_000u64 {
            // Every fifth run repeats the cells of the previous one.
            let obs = if n % 5 == 4 { (n - 1) * 4 } else { n * 4 };
            let cells: Vec<(u64, Cell)> = (0..4)
                .map(|i| (obs + i, cell(0, 0, 1, (0, 0), "FR")))
                .collect();
            p.push(key_run(&cells), cap);
            assert!(p.runs.iter().all(|r| r.len() <= cap), "run {n}");
            assert_eq!(p.cells, p.runs.iter().map(Run::len).sum::<usize>());
        }
        // 800 distinct observables, four cells each: 3,200 cells in runs of at most 64,
        // and below the runs that reached the cap, fewer than a dozen.
        assert!(p.runs.len() < 3_200 / 32 + 12, "{} runs", p.runs.len());
        let mut found = Vec::new();
        p.find(|r| &r.keys, 0, u64::MAX, &mut found);
        assert_eq!(found.len(), 3_200);
        let counts: u32 = found.iter().map(|(_, c)| c.count).sum();
        assert_eq!(counts, 4_000, "every event counted once");
        assert!(found.windows(2).all(|w| cell_key(&w[0]) < cell_key(&w[1])));
    }

    /// A store whose runs merge up to `cap` cells, with a retention of a day.
    fn small_runs(cap: usize) -> Store {
        let mut s = Store::new(
            TierConfig {
                retention_ms: 24 * 3_600_000,
                ..config()
            },
            0,
        );
        s.run_cap = cap;
        s
    }

    #[test]
    fn a_network_meets_its_addresses_summarised_over_many_runs() {
        let mut s = small_runs(8);
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let mut t = hour as u64 + HOUR_MS as u64;
        // 40 chunks, each ageing before the next is made, so each its own run (chunks
        // that age together make one): addresses 10.1.x.y, three of them in 10.1.2.0/24.
        for n in 0..40u64 {
            let ips = [
                format!("10.1.{}.{}", n % 4, n % 3),
                format!("10.2.0.{}", n % 5),
            ];
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            s.add_event(event(n, hour + n as i64 * 1_000, &[], &ips), t, &mut out);
            t += 61_000;
            s.advance(t);
        }
        s.advance(t + 61_000);
        assert_eq!(s.counters().summarised, 40);
        assert!(s.partitions.values().map(|p| p.runs.len()).sum::<usize>() > 1);
        s.add_indicator(&net(1, "10.1.2.0/24"), t + 61_000, &mut out);
        let mut got: Vec<(u64, u32, i64, i64)> = out
            .iter()
            .filter_map(|m| match &m.evidence {
                Evidence::Summary(x) => Some((x.observable, x.count, x.first_ms, x.last_ms)),
                Evidence::Raw(_) => None,
            })
            .collect();
        got.sort();
        // n % 4 == 2: n = 2, 6, 10, ..., 38 (10 events) over 10.1.2.{0,1,2}.
        let mut want = Vec::new();
        for y in 0..3u32 {
            let ns: Vec<i64> = (0..40)
                .filter(|n| n % 4 == 2 && n % 3 == y as i64)
                .collect();
            let a = 0x0a01_0200 | y;
            want.push((
                v4_id(a),
                ns.len() as u32,
                hour + ns[0] * 1_000,
                hour + ns[ns.len() - 1] * 1_000 + 999,
            ));
        }
        want.sort();
        assert_eq!(got, want);
        out.clear();
        s.add_indicator(&net(2, "10.0.0.0/8"), t + 61_000, &mut out);
        let total: u32 = summary_counts(&out).iter().map(|(_, c)| c).sum();
        assert_eq!(total, 80, "two addresses an event, each a summary");
    }

    #[test]
    fn late_events_of_an_old_hour_join_its_summaries_after_merges() {
        let mut s = small_runs(1 << 20);
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let mut t = hour as u64 + 5 * HOUR_MS as u64;
        let mut n = 0;
        // Hour 0 first, then many chunks of hours 1 to 4 (their runs merge with it), then
        // hour 0 again.
        for h in [0, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 0, 0] {
            for sensor in 0..2 {
                let mut e = event(n, hour + h * HOUR_MS + n as i64 * 1_000, &[100], &[]);
                e.sensor_id = format!("s{sensor}").into();
                s.add_event(e, t, &mut out);
                n += 1;
            }
            t += 60_000;
            s.advance(t);
        }
        s.advance(t + 61_000);
        s.add_indicator(&key(1, 100), t + 61_000, &mut out);
        let mut cells: Vec<(u32, Box<str>, u32)> = out
            .iter()
            .filter_map(|m| match &m.evidence {
                Evidence::Summary(x) => Some((x.hour, x.sensor_id.clone(), x.count)),
                Evidence::Raw(_) => None,
            })
            .collect();
        cells.sort();
        let first = (hour / HOUR_MS) as u32;
        let want: Vec<(u32, Box<str>, u32)> = (0..5)
            .flat_map(|h| (0..2).map(move |sn| (first + h, format!("s{sn}").into(), 3)))
            .collect();
        assert_eq!(
            cells, want,
            "one summary per (sensor, hour), all its events"
        );
        assert_eq!(s.sizes().summaries, 10);
    }

    #[test]
    fn the_country_is_the_first_chunks_latest_events() {
        let mut s = small_runs(1 << 20);
        let mut out = Vec::new();
        let hour = 1_800_000_000_000i64 / HOUR_MS * HOUR_MS;
        let t = hour as u64;
        for (n, (country, at)) in [("FR", t), ("SG", t), ("DE", t + 1_000)]
            .into_iter()
            .enumerate()
        {
            let mut e = event(n as u64, hour, &[100], &[]);
            e.country = Country::new(country);
            s.add_event(e, at, &mut out);
        }
        s.advance(t + 120_000);
        s.add_indicator(&key(1, 100), t + 120_000, &mut out);
        let got: Vec<(&str, u32)> = out
            .iter()
            .filter_map(|m| match &m.evidence {
                Evidence::Summary(x) => Some((x.country.as_str(), x.count)),
                Evidence::Raw(_) => None,
            })
            .collect();
        assert_eq!(got, vec![("SG", 3)]);
    }

    mod oracle {
        //! The store's retroactive lookups against a brute-force recomputation from the
        //! events it was given.

        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::super::*;

        const BASE: i64 = 1_800_000_000_000 / HOUR_MS * HOUR_MS;
        const CONFIG: TierConfig = TierConfig {
            evidence_ms: 60_000,
            retention_ms: 30 * 24 * 3_600_000,
        };
        const CHUNK_MS: u64 = 100;

        /// An operation: an event (or, with `probe`, a lookup of target `probe`).
        #[derive(Debug, Clone)]
        struct Op {
            step_ms: u64,
            hours_back: i64,
            second: i64,
            sensor: u8,
            keys: Vec<u64>,
            v4: Vec<u8>,
            v6: Option<u8>,
            probe: Option<usize>,
        }

        fn op() -> impl Strategy<Value = Op> {
            (
                0..2_000u64,
                0..30i64,
                0..3_600i64,
                0..4u8,
                prop::collection::vec(1..7u64, 0..3),
                prop::collection::vec(0..8u8, 0..3),
                prop::option::of(0..4u8),
                prop::option::weighted(0.1, 0..TARGETS),
            )
                .prop_map(
                    |(step_ms, hours_back, second, sensor, keys, v4, v6, probe)| Op {
                        step_ms,
                        hours_back,
                        second,
                        sensor,
                        keys,
                        v4,
                        v6,
                        probe,
                    },
                )
        }

        fn v4_addr(x: u8) -> u32 {
            0x0a00_0000 | (u32::from(x >> 2) << 8) | u32::from(x & 3)
        }

        fn v6_addr(x: u8) -> u128 {
            0x2001_0db8_u128 << 96 | u128::from(x)
        }

        const TARGETS: usize = 6 + 8 + 5;

        fn target(n: usize) -> Target {
            match n {
                0..6 => Target::Key(n as u64 + 1),
                6..14 => Target::V4 {
                    net: v4_addr((n - 6) as u8),
                    len: 32,
                },
                14 => Target::V4 {
                    net: 0x0a00_0000,
                    len: 24,
                },
                15 => Target::V4 {
                    net: 0x0a00_0000,
                    len: 8,
                },
                16 => Target::V6 {
                    net: v6_addr(1),
                    len: 128,
                },
                17 => Target::V6 {
                    net: v6_addr(0),
                    len: 127,
                },
                _ => Target::V6 {
                    net: v6_addr(0),
                    len: 64,
                },
            }
        }

        /// The observable numbers of an event's observables the target covers.
        fn covered(t: &Target, ev: &EventIn) -> Vec<u64> {
            let mut out = Vec::new();
            for k in ev.keys.as_slice() {
                if *t == Target::Key(*k) {
                    out.push(*k);
                }
            }
            for ip in ev.ips.iter() {
                match (*t, ip) {
                    (Target::V4 { net, len }, IpAddr::V4(a)) => {
                        let a = u32::from(a);
                        if len == 0 || (a ^ net) >> (32 - u32::from(len)) == 0 {
                            out.push(0x4000_0000_0000_0000 ^ u64::from(a));
                        }
                    }
                    (Target::V6 { net, len }, IpAddr::V6(a)) => {
                        let a = u128::from(a);
                        if len == 0 || (a ^ net) >> (128 - u32::from(len)) == 0 {
                            out.push(
                                (a as u64)
                                    ^ ((a >> 64) as u64).rotate_left(17)
                                    ^ 0x6000_0000_0000_0000,
                            );
                        }
                    }
                    _ => {}
                }
            }
            out
        }

        /// What a lookup of `t` should find at `now` among `events` (with their ingestion time).
        fn brute(t: Target, events: &[(Time, EventIn)], now: Time) -> Vec<Made> {
            let mut out = Vec::new();
            let mut cells: BTreeMap<(u64, Box<str>, i64), (u32, i64, i64, Country)> =
                BTreeMap::new();
            for (te, ev) in events {
                let obs = covered(&t, ev);
                if obs.is_empty() {
                    continue;
                }
                let aged = te - te % CHUNK_MS + CHUNK_MS + CONFIG.evidence_ms <= now;
                if !aged {
                    out.push(Made {
                        indicator: 1,
                        target: t,
                        evidence: Evidence::Raw(RawSighting {
                            event_ref: ev.event_ref,
                            event_id: ev.event_id.as_str().into(),
                            sensor_id: ev.sensor_id.as_str().into(),
                            country: ev.country,
                            observed_ms: ev.observed_ms,
                            ingested_ms: *te,
                            victim: None,
                            account: None,
                        }),
                    });
                    continue;
                }
                for o in obs {
                    let hour = ev.observed_ms.div_euclid(HOUR_MS);
                    let c = cells
                        .entry((o, Box::<str>::from(ev.sensor_id.as_str()), hour))
                        .or_insert((0, ev.observed_ms, ev.observed_ms, ev.country));
                    c.0 += 1;
                    c.1 = c.1.min(ev.observed_ms);
                    c.2 = c.2.max(ev.observed_ms);
                }
            }
            for ((observable, sensor_id, hour), (count, first, last, country)) in cells {
                out.push(Made {
                    indicator: 1,
                    target: t,
                    evidence: Evidence::Summary(SummarySighting {
                        shard: 0,
                        observable,
                        sensor_id,
                        country,
                        hour: hour as u32,
                        count,
                        first_ms: first / 1000 * 1000,
                        last_ms: last / 1000 * 1000 + 999,
                    }),
                });
            }
            out.sort();
            out
        }

        fn probe(s: &mut Store, t: Target, events: &[(Time, EventIn)], now: Time) {
            let i = IndicatorIn {
                id: 1,
                target: t,
                valid_from_ms: i64::MIN,
                valid_until_ms: i64::MAX,
            };
            let mut got = Vec::new();
            s.add_indicator(&i, now, &mut got);
            s.remove_indicator(&i);
            got.sort();
            assert_eq!(got, brute(t, events, now), "{t:?} at {now}");
        }

        proptest! {
            #[test]
            fn lookups_equal_a_recomputation_from_the_events(
                ops in prop::collection::vec(op(), 1..300),
                cap in 2..40usize,
            ) {
                let mut s = Store::new(CONFIG, 0);
                s.run_cap = cap;
                let mut now = BASE as u64 + 30 * HOUR_MS as u64;
                let mut events: Vec<(Time, EventIn)> = Vec::new();
                let mut live = Vec::new();
                for (n, op) in ops.iter().enumerate() {
                    now += op.step_ms;
                    s.advance(now);
                    if let Some(p) = op.probe {
                        probe(&mut s, target(p), &events, now);
                        continue;
                    }
                    let mut keys = op.keys.clone();
                    keys.sort_unstable();
                    keys.dedup();
                    let mut ips: Vec<IpAddr> = op
                        .v4
                        .iter()
                        .map(|x| IpAddr::from(std::net::Ipv4Addr::from(v4_addr(*x))))
                        .chain(op.v6.map(|x| IpAddr::from(std::net::Ipv6Addr::from(v6_addr(x)))))
                        .collect();
                    ips.sort_unstable();
                    ips.dedup();
                    let ev = EventIn {
                        event_ref: n as u64,
                        event_id: format!("e{n}").into(),
                        sensor_id: format!("s{}", op.sensor).into(),
                        country: Country::new(["FR", "SG", "AR", "DE"][op.sensor as usize]),
                        observed_ms: now as i64 - op.hours_back * HOUR_MS + op.second * 1000
                            - 1_800_000,
                        victim: None,
                        account: None,
                        keys: keys.into(),
                        ips: super::ips_of(&ips),
                    };
                    events.push((now, ev.clone()));
                    s.add_event(ev, now, &mut live);
                }
                // Everything aged.
                now += CONFIG.evidence_ms + CHUNK_MS;
                s.advance(now);
                for t in 0..TARGETS {
                    probe(&mut s, target(t), &events, now);
                }
                let observed = events.iter().filter(|(_, e)| !e.keys.is_empty() || !e.ips.is_empty());
                prop_assert_eq!(s.counters().summarised, observed.count() as u64);
                prop_assert_eq!(s.sizes().raw_events, 0);
            }
        }
    }
}
