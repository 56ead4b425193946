//! Corroboration: the independent sources that vouch for each observable, and the
//! confidence they give together.
//!
//! An observable is an indicator match key ([`indicator_key`], arranged by its
//! [`key_hash`]). Its sources ([`Source`]) are:
//!
//! - each partner feed with a current indicator on it (`source_kind` partner, by `source_id`);
//! - each OSINT feed with a current indicator on it (`source_kind` osint, by `source_id`);
//! - the member-country sensors, together one source, when any sensor event matched an
//!   indicator on it.
//!
//! # Confidence
//!
//! Each source `i` has a confidence `c_i` in `[0, 1]` and a report time `t_i` (ms):
//!
//! - a feed: the confidence / 100 and the `modified` time of its latest current
//!   indicator version on the observable (the greatest `modified`; at equal times the
//!   higher confidence);
//! - the sensors: [`CorroborationConfig::sensor_confidence`] / 100 and the latest event
//!   time of a matching event.
//!
//! With `T = max_i t_i` (the latest report on the observable), `age_i = T - t_i` and the
//! half-life `H` ([`CorroborationConfig::half_life_ms`]), the combined confidence is
//!
//! ```text
//! c = 1 - Π_i (1 - c_i · 2^(-age_i / H))
//! ```
//!
//! reported as `round(100 · c)`, 0 to 100 ([`confidence`]). Sources are treated as
//! independent, so each one adds to the confidence and none lowers it; a report that is
//! older than the latest one on the observable weighs less, halving every `H`. With
//! `H = 0` only the reports at `T` count.
//!
//! Ages are measured against the latest report on the observable, not against a clock,
//! so the view is a pure function of its input collections: the same inputs give the
//! same confidence at any logical time, on any number of workers, in a replay. The
//! price: the confidence says how well the sources agree with the freshest evidence,
//! not how fresh that evidence is; a lone stale report keeps its own confidence.
//! Staleness as such is handled by indicator expiry (`valid_until`) and retention.
//!
//! Example (`H` = 30 days, sensors at 50): a partner at 80 and an OSINT feed at 60
//! reporting on the same day give `1 - 0.2 · 0.4 = 0.92`, i.e. 92; if the feed reported
//! 30 days before the partner, its weight halves: `1 - 0.2 · (1 - 0.6 · 0.5) = 0.86`,
//! i.e. 86; a sensor sighting at the partner's time on top gives
//! `1 - 0.2 · 0.7 · 0.5 = 0.93`, i.e. 93.
//!
//! Floating point: the product is computed in `f64` in the order of the sorted sources,
//! so it is the same on every run; only a platform whose `exp2` rounds differently could
//! move a result lying exactly on a rounding boundary.

use differential_dataflow::VecCollection;
use schemas::{Indicator, SourceKind};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::matching::Match;
use crate::observables::indicator_key_hash;

/// An independent source of intelligence on an observable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A private-sector partner feed, by source id.
    Partner(String),
    /// An open-source feed, by source id.
    Osint(String),
    /// The member-country sensors (any matching sensor event).
    Sensors,
}

impl Source {
    /// The source of an indicator.
    pub fn of(indicator: &Indicator) -> Source {
        match indicator.source_kind {
            SourceKind::Partner => Source::Partner(indicator.source_id.clone()),
            SourceKind::Osint => Source::Osint(indicator.source_id.clone()),
        }
    }
}

/// The corroboration of one observable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Corroboration {
    /// [`key_hash`] of the observable's match key.
    pub key: u64,
    /// The distinct sources, sorted (partners, then OSINT feeds, then sensors).
    pub sources: Vec<Source>,
    /// The number of sources.
    pub count: u32,
    /// The combined confidence, 0 to 100 (see the module documentation).
    pub confidence: u8,
}

/// Parameters of the confidence formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorroborationConfig {
    /// A report loses half its weight for every this many ms it is older than the
    /// latest report on the observable; 0 keeps only the latest reports.
    pub half_life_ms: u64,
    /// Confidence (0 to 100) of the sensors as a source: a sighting shows the
    /// observable is active, not that it is malicious.
    pub sensor_confidence: u8,
}

impl Default for CorroborationConfig {
    fn default() -> Self {
        Self {
            half_life_ms: 30 * 86_400_000,
            sensor_confidence: 50,
        }
    }
}

/// One source's latest report: its time (ms) and confidence (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Report {
    /// When the source last reported on the observable, ms.
    pub at_ms: i64,
    /// The source's confidence, 0 to 100 (larger values count as 100).
    pub confidence: u8,
}

/// The combined confidence (0 to 100) of independent reports, one per source, with
/// ages measured from the latest of them (the formula of the module documentation).
pub fn confidence(reports: &[Report], half_life_ms: u64) -> u8 {
    let Some(latest) = reports.iter().map(|r| r.at_ms).max() else {
        return 0;
    };
    let mut doubt = 1.0_f64;
    for r in reports {
        let age = latest.abs_diff(r.at_ms);
        let weight = if age == 0 {
            1.0
        } else if half_life_ms == 0 {
            0.0
        } else {
            // Ages and half-lives are far below 2^53 ms, so the conversions are exact.
            (-(age as f64) / half_life_ms as f64).exp2()
        };
        let c = f64::from(r.confidence.min(100)) / 100.0;
        doubt *= 1.0 - c * weight;
    }
    let c = ((1.0 - doubt) * 100.0).round();
    // `c` lies in [0, 100]; the clamp keeps the cast exact even so.
    c.clamp(0.0, 100.0) as u8
}

/// The corroboration of every observable with a current indicator or a match (see the
/// module documentation); `indicators` are the current ones ([`crate::indicators::current`]).
pub fn corroboration<'s>(
    indicators: VecCollection<'s, Time, Indicator>,
    matches: VecCollection<'s, Time, Match>,
    config: CorroborationConfig,
) -> VecCollection<'s, Time, Corroboration> {
    // The latest report of each feed on each observable.
    let feeds = indicators
        .map(|i| {
            (
                (indicator_key_hash(i.kind, &i.value), Source::of(&i)),
                Report {
                    at_ms: i.modified.as_millisecond(),
                    confidence: i.confidence,
                },
            )
        })
        .reduce_named("CorroborationFeedReport", latest_report);
    // The sensors' latest sighting of each observable.
    let sensor_confidence = config.sensor_confidence;
    let sensors = matches
        .map(move |m| {
            (
                (
                    indicator_key_hash(m.indicator.kind, &m.indicator.value),
                    Source::Sensors,
                ),
                Report {
                    at_ms: m.sighting.observed_ms,
                    confidence: sensor_confidence,
                },
            )
        })
        .reduce_named("CorroborationSensorReport", latest_report);
    let half_life_ms = config.half_life_ms;
    feeds
        .concat(sensors)
        .map(|((key, source), report)| (key, (source, report)))
        .reduce_named(
            "Corroboration",
            move |_key,
                  group: &[(&(Source, Report), isize)],
                  out: &mut Vec<((Vec<Source>, u8), isize)>| {
                let present: Vec<&(Source, Report)> = group
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(v, _)| *v)
                    .collect();
                if present.is_empty() {
                    return;
                }
                let reports: Vec<Report> = present.iter().map(|(_, r)| *r).collect();
                let sources = present.into_iter().map(|(s, _)| s.clone()).collect();
                out.push(((sources, confidence(&reports, half_life_ms)), 1));
            },
        )
        .map(|(key, (sources, confidence))| Corroboration {
            key,
            count: u32::try_from(sources.len()).unwrap_or(u32::MAX),
            sources,
            confidence,
        })
}

/// Reduce logic: the greatest present report (latest, then most confident).
fn latest_report<K>(_key: &K, group: &[(&Report, isize)], out: &mut Vec<(Report, isize)>) {
    if let Some((r, _)) = group.iter().rev().find(|(_, n)| *n > 0) {
        out.push((**r, 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn r(at_ms: i64, confidence: u8) -> Report {
        Report { at_ms, confidence }
    }

    #[test]
    fn independent_sources_add_up_and_old_reports_weigh_less() {
        let h = 30 * 86_400_000;
        assert_eq!(confidence(&[], h), 0);
        assert_eq!(confidence(&[r(0, 80)], h), 80);
        // A lone report keeps its confidence however old it is.
        assert_eq!(confidence(&[r(-1000 * DAY, 80)], h), 80);
        assert_eq!(confidence(&[r(5, 80), r(5, 60)], h), 92);
        assert_eq!(confidence(&[r(30 * DAY, 80), r(0, 60)], h), 86);
        assert_eq!(
            confidence(&[r(30 * DAY, 80), r(0, 60), r(30 * DAY, 50)], h),
            93
        );
        // Two half-lives: 1 - 0.2 * (1 - 0.6 * 0.25) = 0.83.
        assert_eq!(confidence(&[r(60 * DAY, 80), r(0, 60)], h), 83);
        // Order does not matter.
        assert_eq!(confidence(&[r(0, 60), r(60 * DAY, 80)], h), 83);
        assert_eq!(confidence(&[r(1, 80), r(0, 50)], 0), 80);
        assert_eq!(confidence(&[r(0, 100), r(0, 30)], h), 100);
        assert_eq!(confidence(&[r(0, 0), r(0, 0)], h), 0);
    }
}
