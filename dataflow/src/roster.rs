//! The follow-the-sun roster: who holds the watch at every instant.
//!
//! The watch passes along a chain. Each center takes the watch at a local time
//! ([`CenterSpec::watch_starts`]) every local day it is not closed, and holds it
//! until the next center takes it, so coverage is continuous by construction: the
//! center on duty at `t` is the one of the latest *take* at or before `t`. An
//! override gives a center the watch for a fixed UTC interval `[from, to)`; after
//! it the chain resumes. Local times are turned into instants with the tz
//! database (jiff), never with hand-coded offsets: when Paris moves to summer time,
//! Lyon takes the watch an hour earlier in UTC. A local start time that falls in a
//! DST gap or fold is resolved the "compatible" way (the later instant in a gap,
//! the earlier one in a fold).
//!
//! Ambiguities are configuration errors, never silently resolved: [`Roster::check`]
//! reports watches longer than `max_watch_hours` (for instance because a center
//! is closed and no override covers the night), two centers taking the watch at the
//! same instant, overlapping or dangling overrides, days where the order of the
//! handovers changes, and unknown time zones. Where such a roster is used anyway,
//! the result is still deterministic (the first override by start wins; of two
//! simultaneous takes, the center listed later wins) so replays agree.
//!
//! Pure: parsing a TOML string is the only input; no file I/O, no wall clock.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time as LocalTime};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// How far back [`Roster::schedule`] looks for the take that started the watch in
/// force: a chain where nobody took the watch for this long is rejected.
const MAX_LOOKBACK_DAYS: i64 = 1024;

/// The roster file as written: the contract of `deploy/config/roster.toml`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RosterSpec {
    /// Limits every roster must keep.
    pub rules: RulesSpec,
    /// The centers of the chain.
    pub centers: Vec<CenterSpec>,
    /// Fixed UTC intervals given to a center.
    #[serde(default)]
    pub overrides: Vec<OverrideSpec>,
    /// Acknowledgement deadlines per severity.
    #[serde(default)]
    pub sla: SlaSpec,
}

/// Limits every roster must keep.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RulesSpec {
    /// A continuous watch by one center (overrides included) longer than this is an error.
    pub max_watch_hours: u32,
    /// Both centers see (and may act on) the queue this long after a handover.
    pub handover_overlap_minutes: u32,
}

/// One command center.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CenterSpec {
    /// Its name, as officers' actions carry it.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Local time (`HH:MM`) it takes the watch each day.
    pub watch_starts: String,
    /// Local dates (`YYYY-MM-DD`) it does not take the watch; the previous center holds on.
    #[serde(default)]
    pub closed: Vec<String>,
}

/// A center takes the watch for a fixed UTC interval `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// The center.
    pub center: String,
    /// Start (RFC 3339), inclusive.
    pub from: String,
    /// End (RFC 3339), exclusive.
    pub to: String,
}

/// Acknowledgement deadlines per severity, in minutes after the alert opened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaSpec {
    /// Critical alerts.
    pub critical_minutes: u32,
    /// High alerts.
    pub high_minutes: u32,
    /// Medium alerts.
    pub medium_minutes: u32,
    /// Low alerts; absent means the end of the watch in which the alert opened.
    pub low_minutes: Option<u32>,
}

impl Default for SlaSpec {
    fn default() -> Self {
        Self {
            critical_minutes: 5,
            high_minutes: 15,
            medium_minutes: 60,
            low_minutes: None,
        }
    }
}

/// Why a roster could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Not TOML, or not the roster format.
    #[error("the roster is not valid roster TOML: {0}")]
    Toml(String),
    /// Parsed, but some entries cannot be used; each finding says which and why.
    #[error("the roster has {} error(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Finding>),
}

/// Parses the roster format (strict: unknown fields are errors).
pub fn parse(toml_text: &str) -> Result<RosterSpec, RosterError> {
    toml::from_str(toml_text).map_err(|e| RosterError::Toml(e.to_string()))
}

/// One thing wrong with a roster, with the UTC interval concerned where there is one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// The roster has no centers.
    NoCenters,
    /// Two centers share a name.
    DuplicateCenter {
        /// The name.
        name: String,
    },
    /// `max_watch_hours` is zero.
    ZeroMaxWatch,
    /// The time zone is not in the tz database.
    UnknownTimeZone {
        /// The center.
        center: String,
        /// The zone as written.
        time_zone: String,
    },
    /// `watch_starts` is not a local `HH:MM`.
    InvalidWatchStart {
        /// The center.
        center: String,
        /// As written.
        value: String,
    },
    /// A `closed` entry is not a `YYYY-MM-DD` date.
    InvalidClosedDate {
        /// The center.
        center: String,
        /// As written.
        value: String,
    },
    /// An override that cannot apply: unknown center, unreadable or empty interval.
    DanglingOverride {
        /// Its position in the file (0-based).
        index: usize,
        /// Why.
        reason: String,
        /// The interval, if it could be read.
        interval: Option<(i64, i64)>,
    },
    /// Two overrides claim the same instants: double coverage.
    OverlappingOverrides {
        /// Position of the first in the file (0-based).
        first: usize,
        /// Position of the second.
        second: usize,
        /// The doubly covered interval (ms since the epoch).
        from_ms: i64,
        /// End of it (exclusive).
        to_ms: i64,
    },
    /// Two centers take the watch at the same instant: double coverage.
    SimultaneousTakes {
        /// The instant (ms).
        at_ms: i64,
        /// The centers.
        centers: Vec<String>,
    },
    /// One center holds the watch longer than `max_watch_hours`.
    LongWatch {
        /// The center.
        center: String,
        /// Start of its watch (ms).
        from_ms: i64,
        /// End of its watch (ms, exclusive).
        to_ms: i64,
        /// The limit, hours.
        max_hours: u32,
    },
    /// The order in which the centers take the watch on `date` differs from the day before.
    OrderChange {
        /// The local date.
        date: Date,
        /// The order the day before.
        before: Vec<String>,
        /// The takes of `date` in order: center and instant (ms).
        after: Vec<(String, i64)>,
    },
    /// Nobody takes the watch for a long stretch before this instant.
    NoWatch {
        /// The instant (ms).
        at_ms: i64,
    },
}

impl Finding {
    /// The UTC interval `[from, to)` (ms) the finding concerns, if it concerns one.
    pub fn interval(&self) -> Option<(i64, i64)> {
        match self {
            Finding::DanglingOverride { interval, .. } => *interval,
            Finding::OverlappingOverrides { from_ms, to_ms, .. }
            | Finding::LongWatch { from_ms, to_ms, .. } => Some((*from_ms, *to_ms)),
            Finding::SimultaneousTakes { at_ms, .. } | Finding::NoWatch { at_ms } => {
                Some((*at_ms, at_ms.saturating_add(1)))
            }
            Finding::OrderChange { after, .. } => {
                let from = after.iter().map(|(_, t)| *t).min()?;
                let to = after.iter().map(|(_, t)| *t).max()?;
                Some((from, to.saturating_add(1)))
            }
            _ => None,
        }
    }

    /// The finding in words, with every instant in UTC and in the local time of each of `zones`.
    pub fn describe(&self, zones: &[(String, TimeZone)]) -> String {
        let at = |ms: i64| instant_text(ms, zones);
        match self {
            Finding::NoCenters => "the roster has no [[centers]]; add at least one".into(),
            Finding::DuplicateCenter { name } => {
                format!("center {name:?} is listed twice; names must be unique")
            }
            Finding::ZeroMaxWatch => "rules.max_watch_hours must be at least 1".into(),
            Finding::UnknownTimeZone { center, time_zone } => format!(
                "center {center:?}: time zone {time_zone:?} is not in the tz database; use an IANA name such as \"Europe/Paris\""
            ),
            Finding::InvalidWatchStart { center, value } => {
                format!("center {center:?}: watch_starts {value:?} is not a local time HH:MM")
            }
            Finding::InvalidClosedDate { center, value } => {
                format!("center {center:?}: closed date {value:?} is not a date YYYY-MM-DD")
            }
            Finding::DanglingOverride {
                index,
                reason,
                interval,
            } => match interval {
                Some((f, t)) => format!(
                    "override #{} ({} to {}): {reason}",
                    index + 1,
                    at(*f),
                    at(*t)
                ),
                None => format!("override #{}: {reason}", index + 1),
            },
            Finding::OverlappingOverrides {
                first,
                second,
                from_ms,
                to_ms,
            } => format!(
                "overrides #{} and #{} both claim the watch from {} to {}; make them disjoint",
                first + 1,
                second + 1,
                at(*from_ms),
                at(*to_ms)
            ),
            Finding::SimultaneousTakes { at_ms, centers } => format!(
                "{} take the watch at the same instant {}; move one watch_starts",
                centers.join(" and "),
                at(*at_ms)
            ),
            Finding::LongWatch {
                center,
                from_ms,
                to_ms,
                max_hours,
            } => format!(
                "{center} holds the watch for {:.2} h (more than {max_hours} h) from {} to {}; add an override or change the roster",
                (*to_ms - *from_ms) as f64 / HOUR_MS as f64,
                at(*from_ms),
                at(*to_ms)
            ),
            Finding::OrderChange {
                date,
                before,
                after,
            } => format!(
                "on {date} the watch passes in a different order ({}) than the day before ({}): {}",
                after
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" → "),
                before.join(" → "),
                after
                    .iter()
                    .map(|(c, t)| format!("{c} takes it at {}", at(*t)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Finding::NoWatch { at_ms } => format!(
                "nobody takes the watch in the {MAX_LOOKBACK_DAYS} days before {}",
                at(*at_ms)
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(&[]))
    }
}

/// `ms` in UTC, then in each zone's local time: `2026-03-29T07:00:00Z (Lyon 09:00 CEST, …)`.
pub fn instant_text(ms: i64, zones: &[(String, TimeZone)]) -> String {
    let Ok(ts) = Timestamp::from_millisecond(ms) else {
        return format!("{ms} ms");
    };
    if zones.is_empty() {
        return ts.to_string();
    }
    let locals: Vec<String> = zones
        .iter()
        .map(|(name, tz)| {
            let z = ts.to_zoned(tz.clone());
            format!("{name} {}", z.strftime("%Y-%m-%d %H:%M %Z"))
        })
        .collect();
    format!("{ts} ({})", locals.join(", "))
}

/// A center, ready to compute with.
#[derive(Debug, Clone)]
struct Center {
    name: String,
    tz: TimeZone,
    start: LocalTime,
    closed: BTreeSet<Date>,
}

/// An override, ready to compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Override {
    from_ms: i64,
    to_ms: i64,
    center: usize,
}

/// A center taking the watch by the daily chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Take {
    /// The instant (ms).
    pub at_ms: i64,
    /// The center (index into [`Roster::centers`]).
    pub center: usize,
}

/// A continuous watch by one center: `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watch {
    /// The center (index into [`Roster::centers`]).
    pub center: usize,
    /// Start (ms), inclusive.
    pub from_ms: i64,
    /// End (ms), exclusive.
    pub to_ms: i64,
}

/// The watch passing from one center to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handover {
    /// The instant (ms).
    pub at_ms: i64,
    /// The outgoing center.
    pub from: usize,
    /// The incoming center.
    pub to: usize,
}

/// A roster ready to answer "who is on duty": zones resolved, dates parsed.
#[derive(Debug, Clone)]
pub struct Roster {
    centers: Vec<Center>,
    overrides: Vec<Override>,
    max_watch_hours: u32,
    overlap_ms: i64,
    sla: SlaSpec,
    /// Structural findings that did not stop compiling (overlapping overrides).
    findings: Vec<Finding>,
}

impl Roster {
    /// Parses and compiles a roster file.
    pub fn from_toml(toml_text: &str) -> Result<Roster, RosterError> {
        Roster::compile(&parse(toml_text)?)
    }

    /// Resolves time zones and parses times and dates; every entry that cannot be
    /// used is reported (all of them, not the first).
    pub fn compile(spec: &RosterSpec) -> Result<Roster, RosterError> {
        let mut errors = Vec::new();
        if spec.centers.is_empty() {
            errors.push(Finding::NoCenters);
        }
        if spec.rules.max_watch_hours == 0 {
            errors.push(Finding::ZeroMaxWatch);
        }
        let mut names = BTreeSet::new();
        let mut centers = Vec::new();
        for c in &spec.centers {
            if !names.insert(c.name.as_str()) {
                errors.push(Finding::DuplicateCenter {
                    name: c.name.clone(),
                });
            }
            let tz = TimeZone::get(&c.time_zone);
            if tz.is_err() {
                errors.push(Finding::UnknownTimeZone {
                    center: c.name.clone(),
                    time_zone: c.time_zone.clone(),
                });
            }
            let start = parse_hh_mm(&c.watch_starts);
            if start.is_none() {
                errors.push(Finding::InvalidWatchStart {
                    center: c.name.clone(),
                    value: c.watch_starts.clone(),
                });
            }
            let mut closed = BTreeSet::new();
            for d in &c.closed {
                match d.parse::<Date>() {
                    Ok(date) => {
                        closed.insert(date);
                    }
                    Err(_) => errors.push(Finding::InvalidClosedDate {
                        center: c.name.clone(),
                        value: d.clone(),
                    }),
                }
            }
            if let (Ok(tz), Some(start)) = (tz, start) {
                centers.push(Center {
                    name: c.name.clone(),
                    tz,
                    start,
                    closed,
                });
            }
        }
        let mut overrides = Vec::new();
        for (index, o) in spec.overrides.iter().enumerate() {
            let from = o.from.parse::<Timestamp>();
            let to = o.to.parse::<Timestamp>();
            let (Ok(from), Ok(to)) = (from, to) else {
                errors.push(Finding::DanglingOverride {
                    index,
                    reason: format!(
                        "from {:?} and to {:?} must both be RFC 3339 instants such as 2026-12-25T04:00:00Z",
                        o.from, o.to
                    ),
                    interval: None,
                });
                continue;
            };
            let interval = Some((from.as_millisecond(), to.as_millisecond()));
            let Some(center) = spec.centers.iter().position(|c| c.name == o.center) else {
                errors.push(Finding::DanglingOverride {
                    index,
                    reason: format!("center {:?} is not one of the [[centers]]", o.center),
                    interval,
                });
                continue;
            };
            if from >= to {
                errors.push(Finding::DanglingOverride {
                    index,
                    reason: "the interval is empty: `from` must be before `to`".into(),
                    interval,
                });
                continue;
            }
            overrides.push((
                Override {
                    from_ms: from.as_millisecond(),
                    to_ms: to.as_millisecond(),
                    center,
                },
                index,
            ));
        }
        if !errors.is_empty() {
            return Err(RosterError::Invalid(errors));
        }
        overrides.sort();
        let mut findings = Vec::new();
        for (i, (a, ai)) in overrides.iter().enumerate() {
            for (b, bi) in &overrides[i + 1..] {
                if b.from_ms >= a.to_ms {
                    break;
                }
                findings.push(Finding::OverlappingOverrides {
                    first: (*ai).min(*bi),
                    second: (*ai).max(*bi),
                    from_ms: b.from_ms,
                    to_ms: a.to_ms.min(b.to_ms),
                });
            }
        }
        Ok(Roster {
            centers,
            overrides: overrides.into_iter().map(|(o, _)| o).collect(),
            max_watch_hours: spec.rules.max_watch_hours,
            overlap_ms: i64::from(spec.rules.handover_overlap_minutes) * 60_000,
            sla: spec.sla.clone(),
            findings,
        })
    }

    /// The center names, in file order.
    pub fn centers(&self) -> impl Iterator<Item = &str> {
        self.centers.iter().map(|c| c.name.as_str())
    }

    /// The name of center `index`.
    pub fn center_name(&self, index: usize) -> &str {
        self.centers.get(index).map_or("", |c| c.name.as_str())
    }

    /// The index of the center called `name`.
    pub fn center_index(&self, name: &str) -> Option<usize> {
        self.centers.iter().position(|c| c.name == name)
    }

    /// Every center's name and time zone, for printing local times.
    pub fn zones(&self) -> Vec<(String, TimeZone)> {
        self.centers
            .iter()
            .map(|c| (c.name.clone(), c.tz.clone()))
            .collect()
    }

    /// How long after a handover the outgoing center still sees (and may act on) the queue, ms.
    pub fn overlap_ms(&self) -> i64 {
        self.overlap_ms
    }

    /// The acknowledgement deadlines.
    pub fn sla(&self) -> &SlaSpec {
        &self.sla
    }

    /// The instant center `center` takes the watch on local date `date`, unless closed.
    fn take_on(&self, center: usize, date: Date) -> Option<i64> {
        let c = self.centers.get(center)?;
        if c.closed.contains(&date) {
            return None;
        }
        let local = DateTime::from_parts(date, c.start);
        c.tz.to_timestamp(local).ok().map(|t| t.as_millisecond())
    }

    /// Every take by the daily chain in `[from_ms, to_ms)`, by instant (ties by center index).
    pub fn takes(&self, from_ms: i64, to_ms: i64) -> Vec<Take> {
        let mut out = Vec::new();
        let (Ok(from), Ok(to)) = (
            Timestamp::from_millisecond(from_ms),
            Timestamp::from_millisecond(to_ms),
        ) else {
            return out;
        };
        for (index, c) in self.centers.iter().enumerate() {
            // One local day of margin either side covers every zone offset and DST shift.
            let first = c.tz.to_datetime(from).date().yesterday();
            let last = c.tz.to_datetime(to).date().tomorrow();
            let (Ok(mut date), Ok(last)) = (first, last) else {
                continue;
            };
            while date <= last {
                if let Some(at_ms) = self.take_on(index, date)
                    && (from_ms..to_ms).contains(&at_ms)
                {
                    out.push(Take {
                        at_ms,
                        center: index,
                    });
                }
                match date.tomorrow() {
                    Ok(d) => date = d,
                    Err(_) => break,
                }
            }
        }
        out.sort();
        out
    }

    /// The override in force at `t_ms`, if any (the first by start if several overlap).
    fn override_at(&self, t_ms: i64) -> Option<usize> {
        self.overrides
            .iter()
            .take_while(|o| o.from_ms <= t_ms)
            .find(|o| t_ms < o.to_ms)
            .map(|o| o.center)
    }

    /// The watches covering `[from_ms, to_ms)`, consecutive and merged per center;
    /// the first starts at `from_ms` (clipped), the last ends at `to_ms`.
    /// `None` if nobody took the watch in the [`MAX_LOOKBACK_DAYS`] days before `from_ms`.
    pub fn schedule(&self, from_ms: i64, to_ms: i64) -> Option<Schedule> {
        let to_ms = to_ms.max(from_ms.saturating_add(1));
        // The take in force at `from_ms`: search back, doubling the window.
        let mut back = 2 * DAY_MS;
        let mut takes = loop {
            let takes = self.takes(from_ms.saturating_sub(back), to_ms);
            if takes.iter().any(|t| t.at_ms <= from_ms) {
                break takes;
            }
            if back >= MAX_LOOKBACK_DAYS * DAY_MS {
                return None;
            }
            back *= 2;
        };
        // Drop takes before the one in force at `from_ms`; of simultaneous takes, the
        // last (highest index) stands.
        let first = takes.partition_point(|t| t.at_ms <= from_ms);
        let in_force = takes[first - 1].center;
        let takes = takes.split_off(first);
        let mut boundaries: Vec<i64> = takes.iter().map(|t| t.at_ms).collect();
        for o in &self.overrides {
            for b in [o.from_ms, o.to_ms] {
                if from_ms < b && b < to_ms {
                    boundaries.push(b);
                }
            }
        }
        boundaries.sort_unstable();
        boundaries.dedup();
        let mut base = in_force;
        let mut next_take = 0;
        let mut watches: Vec<Watch> = Vec::new();
        let push = |center: usize, at: i64, watches: &mut Vec<Watch>| match watches.last_mut() {
            Some(last) if last.center == center => {}
            Some(last) => {
                last.to_ms = at;
                watches.push(Watch {
                    center,
                    from_ms: at,
                    to_ms,
                });
            }
            None => watches.push(Watch {
                center,
                from_ms: at,
                to_ms,
            }),
        };
        push(
            self.override_at(from_ms).unwrap_or(base),
            from_ms,
            &mut watches,
        );
        for b in boundaries {
            while next_take < takes.len() && takes[next_take].at_ms <= b {
                base = takes[next_take].center;
                next_take += 1;
            }
            push(self.override_at(b).unwrap_or(base), b, &mut watches);
        }
        Some(Schedule { watches })
    }

    /// The center on duty at `t_ms`.
    pub fn on_duty(&self, t_ms: i64) -> Option<usize> {
        self.schedule(t_ms, t_ms.saturating_add(1))?.on_duty(t_ms)
    }

    /// The first handover strictly after `t_ms`.
    pub fn next_handover(&self, t_ms: i64) -> Option<Handover> {
        let mut ahead = 2 * DAY_MS;
        while ahead <= MAX_LOOKBACK_DAYS * DAY_MS {
            let schedule = self.schedule(t_ms, t_ms.saturating_add(ahead))?;
            if let Some(h) = schedule.handovers().find(|h| h.at_ms > t_ms) {
                return Some(h);
            }
            ahead *= 2;
        }
        None
    }

    /// The last handover at or before `t_ms` (the start of the watch in force).
    pub fn last_handover(&self, t_ms: i64) -> Option<Handover> {
        let mut back = 2 * DAY_MS;
        while back <= MAX_LOOKBACK_DAYS * DAY_MS {
            let schedule = self.schedule(t_ms.saturating_sub(back), t_ms.saturating_add(1))?;
            if let Some(h) = schedule.handovers().filter(|h| h.at_ms <= t_ms).last() {
                return Some(h);
            }
            back *= 2;
        }
        None
    }

    /// Checks the roster over the UTC days `[from, from + days)`: every finding, in order.
    pub fn check(&self, from: Date, days: u32) -> Vec<Finding> {
        let mut findings = self.findings.clone();
        let start_ms = utc_midnight_ms(from);
        let end_ms = start_ms.saturating_add(i64::from(days) * DAY_MS);
        let max_ms = i64::from(self.max_watch_hours) * HOUR_MS;
        // Look far enough either side that a long watch crossing an edge is seen long.
        let margin = max_ms + 2 * DAY_MS;
        let takes = self.takes(start_ms - margin, end_ms + margin);
        for (i, pair) in takes.windows(2).enumerate() {
            // Two centers claim the watch from the tie until the next take after it: the
            // tie matters when that stretch meets the range, even if it began before it.
            let until = takes
                .get(i + 2..)
                .unwrap_or_default()
                .iter()
                .map(|t| t.at_ms)
                .find(|at| *at > pair[0].at_ms)
                .unwrap_or(i64::MAX);
            // Under an override the tie does not decide anything.
            if pair[0].at_ms == pair[1].at_ms
                && pair[0].at_ms < end_ms
                && until > start_ms
                && self.override_at(pair[0].at_ms).is_none()
            {
                findings.push(Finding::SimultaneousTakes {
                    at_ms: pair[0].at_ms,
                    centers: vec![
                        self.center_name(pair[0].center).to_string(),
                        self.center_name(pair[1].center).to_string(),
                    ],
                });
            }
        }
        match self.schedule(start_ms - margin, end_ms + margin) {
            None => findings.push(Finding::NoWatch { at_ms: start_ms }),
            Some(schedule) => {
                for w in &schedule.watches {
                    // The first and last watches are cut by the window: their length is
                    // only a lower bound, which still proves a watch too long.
                    let overlaps = w.from_ms < end_ms && start_ms < w.to_ms;
                    if overlaps && w.to_ms - w.from_ms > max_ms {
                        findings.push(Finding::LongWatch {
                            center: self.center_name(w.center).to_string(),
                            from_ms: w.from_ms,
                            to_ms: w.to_ms,
                            max_hours: self.max_watch_hours,
                        });
                    }
                }
            }
        }
        findings.extend(self.order_changes(from, days));
        findings
    }

    /// The days in range where the cyclic order of the centers' takes (ignoring
    /// closures) differs from the day before's.
    fn order_changes(&self, from: Date, days: u32) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut previous: Option<Vec<usize>> = None;
        let Ok(mut date) = from.yesterday() else {
            return out;
        };
        for _ in 0..=days {
            let mut day: Vec<(i64, usize)> = (0..self.centers.len())
                .filter_map(|c| {
                    let c_ = &self.centers[c];
                    let local = DateTime::from_parts(date, c_.start);
                    c_.tz
                        .to_timestamp(local)
                        .ok()
                        .map(|t| (t.as_millisecond(), c))
                })
                .collect();
            day.sort();
            let mut order: Vec<usize> = day.iter().map(|(_, c)| *c).collect();
            // Cyclic: rotate so the first center of the file leads.
            if let Some(lead) = order.iter().position(|c| *c == 0) {
                order.rotate_left(lead);
            }
            if let Some(prev) = &previous
                && *prev != order
            {
                out.push(Finding::OrderChange {
                    date,
                    before: prev
                        .iter()
                        .map(|c| self.center_name(*c).to_string())
                        .collect(),
                    after: day
                        .iter()
                        .map(|(t, c)| (self.center_name(*c).to_string(), *t))
                        .collect(),
                });
            }
            previous = Some(order);
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        out
    }

    /// The centers in the order they take the watch (by UTC take instant on `date`), for
    /// "the next center in the rotation".
    pub fn rotation(&self, date: Date) -> Vec<usize> {
        let mut day: Vec<(i64, usize)> = (0..self.centers.len())
            .filter_map(|c| {
                let c_ = &self.centers[c];
                c_.tz
                    .to_timestamp(DateTime::from_parts(date, c_.start))
                    .ok()
                    .map(|t| (t.as_millisecond(), c))
            })
            .collect();
        day.sort();
        day.into_iter().map(|(_, c)| c).collect()
    }

    /// Every center claiming the watch at `t_ms`, computed the slow, obvious way
    /// (each center's own latest take, and every override): the definition that
    /// [`Roster::schedule`] must agree with when the roster passes its check.
    pub fn claims(&self, t_ms: i64) -> Vec<usize> {
        let by_override: Vec<usize> = self
            .overrides
            .iter()
            .filter(|o| o.from_ms <= t_ms && t_ms < o.to_ms)
            .map(|o| o.center)
            .collect();
        if !by_override.is_empty() {
            return by_override;
        }
        let Ok(t) = Timestamp::from_millisecond(t_ms) else {
            return Vec::new();
        };
        let mut latest: Vec<(i64, usize)> = Vec::new();
        for (index, c) in self.centers.iter().enumerate() {
            let Ok(mut date) = c.tz.to_datetime(t).date().tomorrow() else {
                continue;
            };
            for _ in 0..MAX_LOOKBACK_DAYS {
                match self.take_on(index, date) {
                    Some(at) if at <= t_ms => {
                        latest.push((at, index));
                        break;
                    }
                    _ => {}
                }
                match date.yesterday() {
                    Ok(d) => date = d,
                    Err(_) => break,
                }
            }
        }
        let Some(max) = latest.iter().map(|(at, _)| *at).max() else {
            return Vec::new();
        };
        latest
            .into_iter()
            .filter(|(at, _)| *at == max)
            .map(|(_, c)| c)
            .collect()
    }
}

/// The watches over a range, consecutive: answers "who is on duty" by binary search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    watches: Vec<Watch>,
}

impl Schedule {
    /// The watches, in order; consecutive ones belong to different centers.
    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    /// The center on duty at `t_ms`, if the schedule covers it.
    pub fn on_duty(&self, t_ms: i64) -> Option<usize> {
        let i = self.watches.partition_point(|w| w.to_ms <= t_ms);
        self.watches
            .get(i)
            .filter(|w| w.from_ms <= t_ms)
            .map(|w| w.center)
    }

    /// The handovers inside the schedule, in order.
    pub fn handovers(&self) -> impl Iterator<Item = Handover> + '_ {
        self.watches.windows(2).map(|w| Handover {
            at_ms: w[1].from_ms,
            from: w[0].center,
            to: w[1].center,
        })
    }
}

/// 00:00 UTC of `date`, ms.
pub fn utc_midnight_ms(date: Date) -> i64 {
    date.to_zoned(TimeZone::UTC)
        .map_or(0, |z| z.timestamp().as_millisecond())
}

/// `HH:MM` (24 h) as a local time.
fn parse_hh_mm(s: &str) -> Option<LocalTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    LocalTime::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = r#"
[rules]
max_watch_hours = 12
handover_overlap_minutes = 15
[[centers]]
name = "Singapore"
time_zone = "Asia/Singapore"
watch_starts = "08:00"
closed = ["2026-12-25"]
[[centers]]
name = "Lyon"
time_zone = "Europe/Paris"
watch_starts = "09:00"
[[centers]]
name = "Buenos Aires"
time_zone = "America/Argentina/Buenos_Aires"
watch_starts = "13:00"
[[overrides]]
center = "Lyon"
from = "2026-12-25T04:00:00Z"
to = "2026-12-25T08:00:00Z"
"#;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn roster() -> Roster {
        Roster::from_toml(CONTRACT).unwrap()
    }

    /// The UTC instant each center takes the watch on local `date`.
    fn take(r: &Roster, name: &str, date: &str) -> Timestamp {
        let c = r.center_index(name).unwrap();
        Timestamp::from_millisecond(r.take_on(c, date.parse().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn the_contract_example_passes_its_check() {
        let r = roster();
        let findings = r.check("2026-01-01".parse().unwrap(), 730);
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn lyon_moves_an_hour_at_each_paris_dst_transition_and_the_others_do_not() {
        let r = roster();
        // (day before, day of the transition, Lyon's take before, after)
        let cases = [
            ("2026-03-28", "2026-03-29", "08:00", "07:00"),
            ("2026-10-24", "2026-10-25", "07:00", "08:00"),
            ("2027-03-27", "2027-03-28", "08:00", "07:00"),
            ("2027-10-30", "2027-10-31", "07:00", "08:00"),
        ];
        for (before, on, lyon_before, lyon_after) in cases {
            let at = |d: &str, hm: &str| format!("{d}T{hm}:00Z").parse::<Timestamp>().unwrap();
            assert_eq!(take(&r, "Lyon", before), at(before, lyon_before), "{on}");
            assert_eq!(take(&r, "Lyon", on), at(on, lyon_after), "{on}");
            assert_eq!(take(&r, "Singapore", before), at(before, "00:00"));
            assert_eq!(take(&r, "Singapore", on), at(on, "00:00"));
            assert_eq!(take(&r, "Buenos Aires", before), at(before, "16:00"));
            assert_eq!(take(&r, "Buenos Aires", on), at(on, "16:00"));
            // Who is on duty in the hour that moved: Singapore the day before, Lyon on the day
            // in spring; the other way round in autumn.
            let probe = |d: &str| r.center_name(r.on_duty(ms(&format!("{d}T07:30:00Z"))).unwrap());
            if lyon_after == "07:00" {
                assert_eq!(probe(before), "Singapore");
                assert_eq!(probe(on), "Lyon");
            } else {
                assert_eq!(probe(before), "Lyon");
                assert_eq!(probe(on), "Singapore");
            }
        }
    }

    #[test]
    fn a_closed_center_lets_the_previous_one_hold_on_and_the_override_covers_the_night() {
        let r = roster();
        let s = r
            .schedule(ms("2026-12-24T12:00:00Z"), ms("2026-12-26T12:00:00Z"))
            .unwrap();
        let names: Vec<(&str, Timestamp)> = s
            .watches()
            .iter()
            .map(|w| {
                (
                    r.center_name(w.center),
                    Timestamp::from_millisecond(w.from_ms).unwrap(),
                )
            })
            .collect();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            names,
            vec![
                ("Lyon", t("2026-12-24T12:00:00Z")),
                ("Buenos Aires", t("2026-12-24T16:00:00Z")),
                ("Lyon", t("2026-12-25T04:00:00Z")),
                ("Buenos Aires", t("2026-12-25T16:00:00Z")),
                ("Singapore", t("2026-12-26T00:00:00Z")),
                ("Lyon", t("2026-12-26T08:00:00Z")),
            ]
        );
        // Without the override Buenos Aires holds 16 hours: the check says so, with the interval.
        let without = CONTRACT.split("[[overrides]]").next().unwrap();
        let r = Roster::from_toml(without).unwrap();
        let findings = r.check("2026-12-01".parse().unwrap(), 60);
        assert_eq!(
            findings,
            vec![Finding::LongWatch {
                center: "Buenos Aires".into(),
                from_ms: ms("2026-12-24T16:00:00Z"),
                to_ms: ms("2026-12-25T08:00:00Z"),
                max_hours: 12,
            }]
        );
        let text = findings[0].describe(&r.zones());
        assert!(text.contains("2026-12-24T16:00:00Z"), "{text}");
        assert!(text.contains("Singapore 2026-12-25 00:00 +08"), "{text}");
        assert!(text.contains("Lyon 2026-12-24 17:00 CET"), "{text}");
    }

    #[test]
    fn handovers_are_found_both_ways() {
        let r = roster();
        let h = r.next_handover(ms("2026-06-01T07:00:00Z")).unwrap();
        assert_eq!(h.at_ms, ms("2026-06-01T16:00:00Z"));
        assert_eq!(
            (r.center_name(h.from), r.center_name(h.to)),
            ("Lyon", "Buenos Aires")
        );
        let h = r.last_handover(ms("2026-06-01T07:00:00Z")).unwrap();
        assert_eq!(h.at_ms, ms("2026-06-01T07:00:00Z"));
        assert_eq!(r.center_name(h.to), "Lyon");
        assert_eq!(
            r.rotation("2026-06-01".parse().unwrap()),
            vec![0, 1, 2],
            "Singapore, Lyon, Buenos Aires"
        );
    }

    #[test]
    fn unknown_zones_bad_times_and_dangling_overrides_are_all_reported() {
        let text = r#"
[rules]
max_watch_hours = 12
handover_overlap_minutes = 15
[[centers]]
name = "Lyon"
time_zone = "Europe/Lyon"
watch_starts = "9h"
closed = ["25 Dec"]
[[overrides]]
center = "Paris"
from = "2026-12-25T04:00:00Z"
to = "2026-12-25T08:00:00Z"
"#;
        let Err(RosterError::Invalid(f)) = Roster::from_toml(text) else {
            panic!("accepted");
        };
        assert_eq!(f.len(), 4, "{f:#?}");
        assert!(matches!(f[0], Finding::UnknownTimeZone { .. }));
        assert!(matches!(f[1], Finding::InvalidWatchStart { .. }));
        assert!(matches!(f[2], Finding::InvalidClosedDate { .. }));
        assert!(matches!(f[3], Finding::DanglingOverride { .. }));
    }

    #[test]
    fn acknowledgement_deadlines_are_configurable_and_default_to_the_contract() {
        assert_eq!(roster().sla(), &SlaSpec::default());
        assert_eq!(
            (
                SlaSpec::default().critical_minutes,
                SlaSpec::default().high_minutes,
                SlaSpec::default().medium_minutes,
                SlaSpec::default().low_minutes
            ),
            (5, 15, 60, None)
        );
        let text = format!("{CONTRACT}\n[sla]\ncritical_minutes = 2\nlow_minutes = 240\n");
        let r = Roster::from_toml(&text).unwrap();
        assert_eq!(r.sla().critical_minutes, 2);
        assert_eq!(r.sla().high_minutes, 15);
        assert_eq!(r.sla().low_minutes, Some(240));
        let typo = format!("{CONTRACT}\n[sla]\ncritical_mins = 2\n");
        assert!(matches!(
            Roster::from_toml(&typo),
            Err(RosterError::Toml(_))
        ));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = CONTRACT.replace("max_watch_hours", "max_watch_hourz");
        assert!(matches!(
            Roster::from_toml(&text),
            Err(RosterError::Toml(_))
        ));
    }

    #[test]
    fn overlapping_overrides_and_simultaneous_takes_are_double_coverage() {
        let text = format!(
            "{CONTRACT}\n[[overrides]]\ncenter = \"Buenos Aires\"\nfrom = \"2026-12-25T07:00:00Z\"\nto = \"2026-12-25T09:00:00Z\"\n"
        );
        let r = Roster::from_toml(&text).unwrap();
        let f = r.check("2026-12-01".parse().unwrap(), 30);
        assert!(f.contains(&Finding::OverlappingOverrides {
            first: 0,
            second: 1,
            from_ms: ms("2026-12-25T07:00:00Z"),
            to_ms: ms("2026-12-25T08:00:00Z"),
        }));
        // Tokyo 09:00 is 00:00Z, like Singapore 08:00.
        let text = CONTRACT
            .replace("Asia/Singapore", "Asia/Tokyo")
            .replace("\"08:00\"", "\"09:00\"");
        let text = format!(
            "{}[[centers]]\nname = \"Perth\"\ntime_zone = \"Australia/Perth\"\nwatch_starts = \"08:00\"\n",
            text.split("[[overrides]]").next().unwrap()
        );
        let r = Roster::from_toml(&text).unwrap();
        let f = r.check("2026-06-01".parse().unwrap(), 1);
        assert!(
            f.iter()
                .any(|f| matches!(f, Finding::SimultaneousTakes { at_ms, .. } if *at_ms == ms("2026-06-01T00:00:00Z"))),
            "{f:#?}"
        );
    }

    /// A roster of `centers` (name, time zone, watch start), without overrides.
    fn roster_of(max_watch_hours: u32, centers: &[(&str, &str, &str)]) -> Roster {
        let mut text = format!(
            "[rules]\nmax_watch_hours = {max_watch_hours}\nhandover_overlap_minutes = 15\n"
        );
        for (name, zone, start) in centers {
            text.push_str(&format!(
                "[[centers]]\nname = \"{name}\"\ntime_zone = \"{zone}\"\nwatch_starts = \"{start}\"\n"
            ));
        }
        Roster::from_toml(&text).unwrap()
    }

    #[test]
    fn a_tie_before_the_checked_days_is_reported_when_its_watch_reaches_into_them() {
        // Sydney 07:00 (AEST, 21:00Z the day before) and London 22:00 (BST, 21:00Z) take
        // the watch at the same instant; Singapore 08:30 (00:30Z) takes it next. Checking
        // from midnight UTC, the tie is three hours before the first checked day, but both
        // claim that day's first half hour.
        let r = roster_of(
            20,
            &[
                ("Sydney", "Australia/Sydney", "07:00"),
                ("Singapore", "Asia/Singapore", "08:30"),
                ("London", "Europe/London", "22:00"),
            ],
        );
        let tie = ms("2027-10-01T21:00:00Z");
        assert!(r.claims(ms("2027-10-02T00:00:00Z")).len() >= 2);
        let f = r.check("2027-10-02".parse().unwrap(), 1);
        assert!(
            f.iter()
                .any(|f| matches!(f, Finding::SimultaneousTakes { at_ms, .. } if *at_ms == tie)),
            "{f:#?}"
        );
    }

    #[test]
    fn a_change_in_the_order_of_handovers_is_reported_on_its_day() {
        // New York 03:30 (08:30Z, 07:30Z in summer) against London 08:00 (08:00Z, 07:00Z in
        // summer) swaps on the days the US and Europe change clocks.
        let text = r#"
[rules]
max_watch_hours = 24
handover_overlap_minutes = 0
[[centers]]
name = "London"
time_zone = "Europe/London"
watch_starts = "08:00"
[[centers]]
name = "New York"
time_zone = "America/New_York"
watch_starts = "03:30"
[[centers]]
name = "Tokyo"
time_zone = "Asia/Tokyo"
watch_starts = "20:00"
"#;
        let r = Roster::from_toml(text).unwrap();
        let f = r.check("2026-03-01".parse().unwrap(), 60);
        let days: Vec<String> = f
            .iter()
            .filter_map(|f| match f {
                Finding::OrderChange { date, .. } => Some(date.to_string()),
                _ => None,
            })
            .collect();
        // US DST starts 2026-03-08 (New York moves to 07:30Z, before London's 08:00Z), Europe
        // on 2026-03-29 (London moves to 07:00Z, before New York again).
        assert_eq!(days, vec!["2026-03-08", "2026-03-29"], "{f:#?}");
    }
}
