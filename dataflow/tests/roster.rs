//! The roster covers every instant exactly once: the shipped roster at every minute
//! of 2026 and 2027 against an independent oracle, and random rosters that either
//! pass the check and cover every minute exactly once, or are rejected with the
//! offending UTC interval named (and that interval really is at fault).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use dataflow::roster::{
    CenterSpec, Finding, OverrideSpec, Roster, RosterError, RosterSpec, RulesSpec, SlaSpec, parse,
    utc_midnight_ms,
};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time as LocalTime};
use jiff::tz::TimeZone;
use proptest::prelude::*;

const SHIPPED: &str = include_str!("../../deploy/config/roster.toml");
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Who claims the watch at each minute of `[from, to)`, computed independently of
/// the roster module: each center's takes straight from the tz database, an
/// override if one covers the minute, else every center whose latest take is the latest.
struct Oracle {
    takes: Vec<Vec<i64>>,
    overrides: Vec<(i64, i64, usize)>,
    next: Vec<usize>,
}

impl Oracle {
    fn new(spec: &RosterSpec, from_ms: i64, to_ms: i64) -> Oracle {
        let first = Timestamp::from_millisecond(from_ms - 40 * DAY_MS).unwrap();
        let last = Timestamp::from_millisecond(to_ms + 2 * DAY_MS).unwrap();
        let takes = spec
            .centers
            .iter()
            .map(|c| {
                let tz = TimeZone::get(&c.time_zone).unwrap();
                let (h, m) = c.watch_starts.split_once(':').unwrap();
                let start = LocalTime::new(h.parse().unwrap(), m.parse().unwrap(), 0, 0).unwrap();
                let mut date = tz.to_datetime(first).date();
                let end = tz.to_datetime(last).date();
                let mut out = Vec::new();
                while date <= end {
                    if !c.closed.contains(&date.to_string()) {
                        let at = tz
                            .to_timestamp(DateTime::from_parts(date, start))
                            .unwrap()
                            .as_millisecond();
                        out.push(at);
                    }
                    date = date.tomorrow().unwrap();
                }
                out.sort_unstable();
                out
            })
            .collect();
        let overrides = spec
            .overrides
            .iter()
            .map(|o| {
                let c = spec
                    .centers
                    .iter()
                    .position(|c| c.name == o.center)
                    .unwrap();
                let t = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
                (t(&o.from), t(&o.to), c)
            })
            .collect();
        Oracle {
            next: vec![0; spec.centers.len()],
            takes,
            overrides,
        }
    }

    /// The claims at `t`; calls must come with non-decreasing `t`.
    fn claims(&mut self, t: i64) -> Vec<usize> {
        let by_override: Vec<usize> = self
            .overrides
            .iter()
            .filter(|(f, to, _)| *f <= t && t < *to)
            .map(|(_, _, c)| *c)
            .collect();
        if !by_override.is_empty() {
            return by_override;
        }
        let mut latest: Vec<(i64, usize)> = Vec::new();
        for (c, takes) in self.takes.iter().enumerate() {
            while self.next[c] < takes.len() && takes[self.next[c]] <= t {
                self.next[c] += 1;
            }
            if self.next[c] > 0 {
                latest.push((takes[self.next[c] - 1], c));
            }
        }
        let max = latest.iter().map(|(at, _)| *at).max().unwrap();
        latest
            .into_iter()
            .filter(|(at, _)| *at == max)
            .map(|(_, c)| c)
            .collect()
    }
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

#[test]
fn the_shipped_roster_has_exactly_one_center_on_duty_every_minute_of_2026_and_2027() {
    let spec = parse(SHIPPED).unwrap();
    let roster = Roster::compile(&spec).unwrap();
    let findings = roster.check(date("2026-01-01"), 730);
    assert!(findings.is_empty(), "{findings:#?}");
    let from = utc_midnight_ms(date("2026-01-01"));
    let to = utc_midnight_ms(date("2028-01-01"));
    let schedule = roster.schedule(from, to).unwrap();
    let mut oracle = Oracle::new(&spec, from, to);
    let mut t = from;
    let mut minutes = 0;
    while t < to {
        let claims = oracle.claims(t);
        assert_eq!(claims.len(), 1, "at {t}: {claims:?}");
        assert_eq!(schedule.on_duty(t), Some(claims[0]), "at {t}");
        t += MINUTE_MS;
        minutes += 1;
    }
    assert_eq!(minutes, 730 * 1440);
    // Every watch is within the limit, and Christmas night is held by the override.
    assert!(
        schedule
            .watches()
            .iter()
            .skip(1)
            .all(|w| w.to_ms - w.from_ms <= 12 * 3_600_000)
    );
    let lyon = roster.center_index("Lyon").unwrap();
    let xmas = "2026-12-25T05:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(schedule.on_duty(xmas), Some(lyon));
}

const ZONES: &[(&str, &str)] = &[
    ("Singapore", "Asia/Singapore"),
    ("Lyon", "Europe/Paris"),
    ("Buenos Aires", "America/Argentina/Buenos_Aires"),
    ("New York", "America/New_York"),
    ("Sydney", "Australia/Sydney"),
    ("Tokyo", "Asia/Tokyo"),
    ("London", "Europe/London"),
];

/// A random roster over the `days` days from `start`, and that range.
fn arb_roster() -> impl Strategy<Value = (RosterSpec, Date, u32)> {
    let center = (0..ZONES.len(), 0u8..24, prop::sample::select(vec![0u8, 30]));
    (
        prop::collection::vec(center, 1..=5),
        8u32..=24,
        0i64..715,
        prop::collection::vec((0usize..4, 0i64..10 * 24, 1i64..14), 0..=3),
        prop::collection::vec((0usize..4, 0i64..10), 0..=3),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(centers, max_hours, offset, overrides, closed, bad_center)| {
                let start = date("2026-01-01")
                    .checked_add(jiff::Span::new().days(offset))
                    .unwrap();
                let mut specs: Vec<CenterSpec> = Vec::new();
                for (z, h, m) in centers {
                    if specs.iter().any(|c| c.name == ZONES[z].0) {
                        continue;
                    }
                    specs.push(CenterSpec {
                        name: ZONES[z].0.into(),
                        time_zone: ZONES[z].1.into(),
                        watch_starts: format!("{h:02}:{m:02}"),
                        closed: Vec::new(),
                    });
                }
                for (c, day) in closed {
                    let n = specs.len();
                    let d = start.checked_add(jiff::Span::new().days(day)).unwrap();
                    specs[c % n].closed.push(d.to_string());
                }
                let base = utc_midnight_ms(start);
                let overrides = overrides
                    .into_iter()
                    .enumerate()
                    .map(|(i, (c, hour, len))| {
                        let from = Timestamp::from_millisecond(base + hour * 3_600_000).unwrap();
                        let to =
                            Timestamp::from_millisecond(base + (hour + len) * 3_600_000).unwrap();
                        let center = if bad_center && i == 0 {
                            "Atlantis".to_string()
                        } else {
                            specs[c % specs.len()].name.clone()
                        };
                        OverrideSpec {
                            center,
                            from: from.to_string(),
                            to: to.to_string(),
                        }
                    })
                    .collect();
                let spec = RosterSpec {
                    rules: RulesSpec {
                        max_watch_hours: max_hours,
                        handover_overlap_minutes: 15,
                    },
                    centers: specs,
                    overrides,
                    sla: SlaSpec::default(),
                };
                (spec, start, 10)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_rosters_pass_and_cover_every_minute_once_or_are_rejected_with_the_interval(
        (spec, start, days) in arb_roster()
    ) {
        let roster = match Roster::compile(&spec) {
            Ok(r) => r,
            Err(RosterError::Invalid(findings)) => {
                // Only the unknown override center can be wrong here; it is named with its interval.
                prop_assert!(!findings.is_empty());
                for f in &findings {
                    let is_dangling = matches!(f, Finding::DanglingOverride { .. });
                    prop_assert!(is_dangling, "{f}");
                    prop_assert!(f.interval().is_some(), "{f}");
                    prop_assert!(f.to_string().contains("Atlantis"));
                }
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let from = utc_midnight_ms(start);
        let to = from + i64::from(days) * DAY_MS;
        let findings = roster.check(start, days);
        let schedule = roster.schedule(from, to).unwrap();
        if findings.is_empty() {
            let mut oracle = Oracle::new(&spec, from, to);
            let mut t = from;
            while t < to {
                let claims = oracle.claims(t);
                prop_assert_eq!(claims.len(), 1, "two claims at {}", t);
                prop_assert_eq!(schedule.on_duty(t), Some(claims[0]));
                t += MINUTE_MS;
            }
            let max = i64::from(spec.rules.max_watch_hours) * 3_600_000;
            // Whole watches (not cut by the range) are within the limit.
            let w = schedule.watches();
            for watch in w.iter().skip(1).take(w.len().saturating_sub(2)) {
                prop_assert!(watch.to_ms - watch.from_ms <= max);
            }
        } else {
            for f in &findings {
                let (a, b) = f.interval().unwrap();
                prop_assert!(a < b, "{}", f);
                prop_assert!(f.to_string().contains('Z'), "names a UTC instant: {}", f);
                match f {
                    Finding::LongWatch { center, from_ms, to_ms, max_hours } => {
                        prop_assert!(to_ms - from_ms > i64::from(*max_hours) * 3_600_000);
                        let c = roster.center_index(center).unwrap();
                        let whole = roster.schedule(*from_ms, *to_ms).unwrap();
                        prop_assert_eq!(whole.watches().len(), 1, "one watch throughout");
                        prop_assert_eq!(whole.watches()[0].center, c);
                        // Unless cut by the checked window, the watch begins and ends there.
                        if *to_ms <= to {
                            prop_assert_ne!(roster.on_duty(*to_ms), Some(c), "it ends at `to`");
                        }
                        if *from_ms >= from {
                            prop_assert_ne!(roster.on_duty(from_ms - 1), Some(c), "it starts at `from`");
                        }
                    }
                    Finding::OverlappingOverrides { from_ms, .. } => {
                        prop_assert!(roster.claims(*from_ms).len() >= 2);
                    }
                    Finding::SimultaneousTakes { at_ms, .. } => {
                        prop_assert!(roster.claims(*at_ms).len() >= 2);
                    }
                    Finding::OrderChange { before, after, .. } => {
                        let after: Vec<&String> = after.iter().map(|(c, _)| c).collect();
                        let before: Vec<&String> = before.iter().collect();
                        prop_assert!(after.len() >= 3, "two centers cannot change cyclic order");
                        prop_assert_ne!(before, after);
                    }
                    other => prop_assert!(false, "unexpected finding {}", other),
                }
            }
        }
    }
}

#[test]
fn a_closed_day_without_override_is_rejected_with_utc_and_local_times() {
    let text = SHIPPED.split("[[overrides]]").next().unwrap();
    let roster = Roster::from_toml(text).unwrap();
    let findings = roster.check(date("2026-12-01"), 60);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let text = findings[0].describe(&roster.zones());
    assert!(
        text.contains(
            "Buenos Aires holds the watch for 16.00 h (more than 12 h) from 2026-12-24T16:00:00Z"
        ),
        "{text}"
    );
    assert!(text.contains("Buenos Aires 2026-12-24 13:00 -03"), "{text}");
    assert!(text.contains("2026-12-25T08:00:00Z"), "{text}");
}
