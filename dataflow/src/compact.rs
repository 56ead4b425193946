//! Compact matching for bulk replays: observations and indicators reduced to a
//! 64-bit key hash ([`crate::observables::key_hash`]) and small `Copy` values, so
//! the arrangements hold a few machine words per record instead of events and
//! strings.
//!
//! The join is the same one [`crate::matching`] uses (observations meet indicators
//! whichever arrives first: live and retroactive matching alike); what differs is
//! only the representation. The workload W1 benchmark (`load-tests` binary `w1`)
//! runs on it.

use differential_dataflow::difference::{Multiply, Semigroup};
use differential_dataflow::lattice::Lattice;
use differential_dataflow::{ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

/// One observation of a value by an event, reduced to what matching and the
/// per-hour views need.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Observation {
    /// The event (an index or id the caller can map back).
    pub event: u64,
    /// The source that produced it (an IPv4 address, an interned sensor…).
    pub source: u32,
    /// Hour of event time (seconds since the Unix epoch / 3600).
    pub hour: u32,
}

/// Observations keyed by key hash meet indicators keyed by key hash: every
/// (indicator, observation) pair sharing a key, whichever came first.
pub fn match_keys<'s, T, I, R>(
    observations: VecCollection<'s, T, (u64, Observation), R>,
    indicators: VecCollection<'s, T, (u64, I), R>,
) -> VecCollection<'s, T, (I, Observation), <R as Multiply<R>>::Output>
where
    T: Timestamp + Lattice + Ord,
    I: ExchangeData + std::hash::Hash,
    R: ExchangeData + Semigroup + Multiply<R, Output: Semigroup + 'static>,
{
    observations.join_map(indicators, |_key, obs, ind| (ind.clone(), *obs))
}

/// Per (indicator, hour): the number of distinct sources among its matches.
pub fn distinct_sources_per_hour<'s, T, I>(
    matches: VecCollection<'s, T, (I, Observation)>,
) -> VecCollection<'s, T, ((I, u32), isize)>
where
    T: Timestamp + Lattice + Ord,
    I: ExchangeData + std::hash::Hash,
{
    matches
        .map(|(ind, obs)| ((ind, obs.hour), obs.source))
        .distinct()
        .map(|(key, _source)| key)
        .count()
}
