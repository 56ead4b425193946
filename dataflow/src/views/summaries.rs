//! History as summaries: per (observable, sensor, UTC hour of event time), how many
//! events, first and last seen, over the events ingested within the retention window.
//!
//! [`history`] turns the sensor events into [`ObservationSummary`] records keyed by
//! the observable's [`key_hash`] (the exact keys of [`event_keys`]: addresses, domains
//! and every parent domain, URLs, hashes, e-mail addresses, wallets) and by a hash of
//! the sensor id ([`sensor_hash`]), so the summaries hold only integers; the sensor
//! names are kept once each in [`History::sensors`].
//!
//! Retention is in logical (ingestion) time, as in [`crate::matching`]: an event
//! ingested at `t` contributes to its summaries from `t` until `t + retention`, when
//! its contribution is retracted (the input negated and delayed by the retention).
//! A summary is therefore over the events ingested within the last `retention`, and
//! disappears when the last of them ages out. `count` counts event records: an event
//! delivered twice counts twice; one event counts once per observable it carries.
//! Events are insert-only (the runtime never retracts one; retention does): under a
//! bounded retention a retraction would age out too, and the event would count -1
//! between the expiry of its insertion and that of its retraction.
//!
//! [`summary_hits`] joins the summaries with the current indicators by match key: the
//! retroactive "this was seen before" answer for a new indicator, per sensor and hour.
//! A summary hits an indicator when its span `[first_seen, last_seen]` meets the
//! indicator's validity `[valid_from, valid_until)`; its count is then the summary's
//! whole count (a summary is not split at a validity boundary inside its hour).
//!
//! Caveat: network (CIDR) indicators get no summary hits. Summaries are keyed by the
//! hash of an exact key, so an address inside a network cannot be recognised; live and
//! retroactive matching ([`crate::matching::matches`]) still match networks against the
//! retained observations.

use differential_dataflow::VecCollection;
use schemas::{Indicator, SensorEvent};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::matching::Retention;
use crate::observables::{event_keys, indicator_key, key_hash};
use crate::views::sightings::hour_start;

/// The retention of the fusion center's history: 30 days of logical time.
pub const DEFAULT_RETENTION: Retention = Retention::Ms(30 * 86_400_000);

/// The events of one observable seen by one sensor in one UTC hour of event time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObservationSummary {
    /// [`key_hash`] of the observable's match key.
    pub key: u64,
    /// [`sensor_hash`] of the sensor id.
    pub sensor: u64,
    /// Start of the UTC hour of event time, ms since the Unix epoch.
    pub hour_ms: i64,
    /// Event records within the retention window.
    pub count: u64,
    /// Earliest event time among them, ms.
    pub first_seen_ms: i64,
    /// Latest event time among them, ms.
    pub last_seen_ms: i64,
}

/// The retained history: the summaries and the names of the sensors they refer to.
#[derive(Clone)]
pub struct History<'s> {
    /// One record per (observable, sensor, hour) with events in the window.
    pub summaries: VecCollection<'s, Time, ObservationSummary>,
    /// `(sensor_hash(id), id)` of every sensor with events in the window.
    pub sensors: VecCollection<'s, Time, (u64, String)>,
}

/// A summary of the history meeting a current indicator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SummaryHit {
    /// The indicator id.
    pub indicator_id: String,
    /// The sensor that saw the observable.
    pub sensor_id: String,
    /// Start of the UTC hour of event time, ms.
    pub hour_ms: i64,
    /// Event records in the summary.
    pub count: u64,
    /// Earliest event time in the summary, ms.
    pub first_seen_ms: i64,
    /// Latest event time in the summary, ms.
    pub last_seen_ms: i64,
}

/// The compact reference to a sensor used by the summaries.
pub fn sensor_hash(sensor_id: &str) -> u64 {
    key_hash(&format!("sensor:{sensor_id}"))
}

/// The history of `events` (each with its ingestion time) retained for `retention` of
/// logical time (see the module documentation).
pub fn history<'s>(
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
    retention: Retention,
) -> History<'s> {
    // Only what the summaries need is kept: the sensor, the event time and the key hashes.
    let compact = events.map(|(_ingested, ev)| {
        let keys: Vec<u64> = event_keys(&ev).iter().map(|k| key_hash(k)).collect();
        (ev.sensor_id, ev.observed_at.as_millisecond(), keys)
    });
    let retained = match retention {
        Retention::Unbounded => compact,
        Retention::Ms(ms) => compact
            .clone()
            .concat(compact.negate().delay(move |t| t.saturating_add(ms))),
    };
    let sensors = retained
        .clone()
        .map(|(sensor_id, _, _)| (sensor_hash(&sensor_id), sensor_id))
        .distinct();
    let summaries = retained
        .flat_map(|(sensor_id, observed_ms, keys)| {
            let sensor = sensor_hash(&sensor_id);
            let hour_ms = hour_start(observed_ms);
            keys.into_iter()
                .map(move |key| ((key, sensor, hour_ms), observed_ms))
        })
        .reduce_named(
            "ObservationSummary",
            |_key, group: &[(&i64, isize)], out: &mut Vec<((u64, i64, i64), isize)>| {
                // Event times come sorted: the first and last present are the extremes.
                let mut present = group.iter().filter(|(_, n)| *n > 0);
                if let Some((first, n)) = present.next() {
                    let (count, last) =
                        present.fold((*n, **first), |(c, _), (ms, n)| (c + n, **ms));
                    out.push(((u64::try_from(count).unwrap_or(0), **first, last), 1));
                }
            },
        )
        .map(
            |((key, sensor, hour_ms), (count, first_seen_ms, last_seen_ms))| ObservationSummary {
                key,
                sensor,
                hour_ms,
                count,
                first_seen_ms,
                last_seen_ms,
            },
        );
    History { summaries, sensors }
}

/// The summaries of `history` that meet the current `indicators` (see the module documentation).
pub fn summary_hits<'s>(
    history: History<'s>,
    indicators: VecCollection<'s, Time, Indicator>,
) -> VecCollection<'s, Time, SummaryHit> {
    let by_key = history.summaries.map(|s| (s.key, s));
    let keyed = indicators.map(|i| {
        (
            key_hash(&indicator_key(i.kind, &i.value)),
            (
                i.id,
                i.valid_from.as_millisecond(),
                i.valid_until.map(|u| u.as_millisecond()),
            ),
        )
    });
    by_key
        .join_map(keyed, |_key, s, (id, from, until)| {
            let meets =
                s.last_seen_ms >= *from && until.is_none_or(|until| s.first_seen_ms < until);
            (s.sensor, (meets, id.clone(), s.clone()))
        })
        .filter(|(_, (meets, _, _))| *meets)
        .join_map(history.sensors, |_, (_, id, s), sensor_id| SummaryHit {
            indicator_id: id.clone(),
            sensor_id: sensor_id.clone(),
            hour_ms: s.hour_ms,
            count: s.count,
            first_seen_ms: s.first_seen_ms,
            last_seen_ms: s.last_seen_ms,
        })
}
