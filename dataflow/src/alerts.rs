//! Alerts from matches: one alert per (indicator, UTC day of event time).
//!
//! Rule `indicator-match`, version [`RULE_VERSION`]. The alert id is a content
//! hash of (rule, key, window) — here (`indicator-match`, indicator id, window
//! start) — so a restart or a replay re-derives the same id, and later sightings in
//! the same window update the alert instead of opening a new one.
//!
//! Severity: the indicator's confidence sets the base (≥ 80 high, ≥ 50 medium,
//! else low); a spread to 3 or more sensors or 3 or more countries raises it one
//! level (high becomes critical). The marking is the indicator's: events carry no
//! marking of their own, so the indicator's is the strictest.

use std::collections::BTreeSet;

use differential_dataflow::VecCollection;
use jiff::Timestamp;
use schemas::{Alert, IndicatorRef, Severity};
use sha2::{Digest, Sha256};

use crate::Time;
use crate::matching::Match;

/// Name of the rule.
pub const RULE: &str = "indicator-match";
/// Version of the rule's logic; part of every alert's provenance.
pub const RULE_VERSION: u32 = 1;
/// Length of an alert's event-time window.
pub const WINDOW_MS: i64 = 86_400_000;
/// Most event ids listed in one alert.
pub const MAX_EVENT_IDS: usize = 20;
/// Most victim addresses and accounts listed in one alert.
pub const MAX_PERSONAL: usize = 50;

/// The deterministic id of the alert of `rule` on `key` in the window starting at `window_start_ms`.
pub fn alert_id(rule: &str, key: &str, window_start_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update([0]);
    h.update(window_start_ms.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Start of the window holding event time `ms`.
pub fn window_start(ms: i64) -> i64 {
    ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The alerts raised by `matches`.
pub fn alerts<'s>(matches: VecCollection<'s, Time, Match>) -> VecCollection<'s, Time, Alert> {
    matches
        .map(|m| {
            (
                (m.indicator.id.clone(), window_start(m.sighting.observed_ms)),
                m,
            )
        })
        .reduce_named(
            "IndicatorMatchAlert",
            |(_, window), group: &[(&Match, isize)], out: &mut Vec<(Alert, isize)>| {
                let present: Vec<&Match> = group
                    .iter()
                    .filter(|(_, count)| *count > 0)
                    .map(|(m, _)| *m)
                    .collect();
                if let Some(alert) = build_alert(*window, &present) {
                    out.push((alert, 1));
                }
            },
        )
        .map(|(_, alert)| alert)
}

/// The alert for the matches of one indicator in the window starting at `window_ms`
/// (pure; also the oracle's definition).
pub fn build_alert(window_ms: i64, matches: &[&Match]) -> Option<Alert> {
    let first = matches.first()?;
    let ind = &first.indicator;
    let mut events = BTreeSet::new();
    let mut retro_events = BTreeSet::new();
    let mut sensors = BTreeSet::new();
    let mut countries = BTreeSet::new();
    let mut victims = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);
    for m in matches {
        let s = &m.sighting;
        events.insert(s.event_id.as_str());
        if m.is_retroactive() {
            retro_events.insert(s.event_id.as_str());
        }
        sensors.insert(s.sensor_id.as_str());
        countries.insert(s.country.as_str());
        if let Some(v) = s.victim {
            victims.insert(v);
        }
        if let Some(a) = &s.account {
            accounts.insert(a.as_str());
        }
        first_ms = first_ms.min(s.observed_ms);
        last_ms = last_ms.max(s.observed_ms);
    }
    let base = match ind.confidence {
        80.. => Severity::High,
        50..=79 => Severity::Medium,
        _ => Severity::Low,
    };
    let spread = sensors.len() >= 3 || countries.len() >= 3;
    let severity = match (base, spread) {
        (Severity::Low, true) => Severity::Medium,
        (Severity::Medium, true) => Severity::High,
        (Severity::High, true) => Severity::Critical,
        (s, _) => s,
    };
    let ts = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    Some(Alert {
        schema_version: schemas::SCHEMA_VERSION,
        id: alert_id(RULE, &ind.id, window_ms),
        rule: RULE.to_string(),
        rule_version: RULE_VERSION,
        key: ind.id.clone(),
        window_start: ts(window_ms),
        window_end: ts(window_ms.saturating_add(WINDOW_MS)),
        severity,
        title: format!(
            "{} {} of {} seen by {} sensor(s) in {}",
            ind.kind.as_str(),
            ind.value,
            ind.source_id,
            sensors.len(),
            countries.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        indicator: IndicatorRef {
            id: ind.id.clone(),
            kind: ind.kind,
            value: ind.value.clone(),
            source_kind: ind.source_kind,
            source_id: ind.source_id.clone(),
            confidence: ind.confidence,
            created: ind.created,
        },
        marking: ind.marking(),
        first_seen: ts(first_ms),
        last_seen: ts(last_ms),
        sightings: events.len() as u64,
        sensors: u32::try_from(sensors.len()).unwrap_or(u32::MAX),
        victims: u32::try_from(victims.len()).unwrap_or(u32::MAX),
        victim_ips: victims.into_iter().take(MAX_PERSONAL).collect(),
        accounts: accounts
            .into_iter()
            .take(MAX_PERSONAL)
            .map(str::to_string)
            .collect(),
        countries: countries.into_iter().map(str::to_string).collect(),
        retroactive_sightings: retro_events.len() as u64,
        event_ids: events
            .into_iter()
            .take(MAX_EVENT_IDS)
            .map(str::to_string)
            .collect(),
        drill: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_rule_key_and_window_only() {
        let a = alert_id(RULE, "ind-1", 0);
        assert_eq!(a, alert_id(RULE, "ind-1", 0));
        assert_ne!(a, alert_id(RULE, "ind-2", 0));
        assert_ne!(a, alert_id(RULE, "ind-1", WINDOW_MS));
        assert_ne!(a, alert_id("other", "ind-1", 0));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn windows_are_utc_days() {
        assert_eq!(window_start(WINDOW_MS + 5), WINDOW_MS);
        assert_eq!(window_start(-1), -WINDOW_MS);
    }
}
