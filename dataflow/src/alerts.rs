//! Alerts from the evidence of matches: one alert per (indicator, UTC day of event time).
//!
//! Rule `indicator-match`, version [`RULE_VERSION`]. The alert id is a content
//! hash of (rule, key, window) — here (`indicator-match`, indicator id, window
//! start) — so a restart or a replay re-derives the same id, and later sightings in
//! the same window update the alert instead of opening a new one.
//!
//! Alerts are corroborated: every feed vouching for the indicator's observable (each
//! partner and OSINT feed with a current indicator on the same match key) is listed in
//! the alert's [`Provenance`] with its confidence, report time and marking.
//!
//! - **Confidence**: the larger of the indicator's own confidence and the corroborated
//!   confidence of the feeds on its observable: [`corroboration::confidence`] over each
//!   feed's latest report (independent sources add up; a report older than the freshest
//!   one weighs less, halving every [`crate::views::corroboration::CorroborationConfig::half_life_ms`]). The sensors,
//!   a source of the corroboration view, are left out here: the sighting is what raised
//!   the alert, and it already counts through the spread and victim raises below.
//! - **Severity** ([`severity`]): the confidence sets the base (≥ 80 high, ≥ 50 medium,
//!   else low); a spread to [`SPREAD`] or more sensors or countries raises it one level,
//!   and [`VICTIMS_RAISE`] or more distinct victims one more (critical at most).
//! - **Marking**: the strictest of every contributing indicator's marking
//!   ([`schemas::Marking::strictest`]); the egress rule also checks each contributing
//!   marking. Events carry no marking of their own.
//!
//! The alerts are assembled per observable, with its current indicators, by
//! [`crate::assembly`]; this module holds the rule's pure definitions.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemas::{
    Alert, Contributor, ContributorKind, CountryVictims, HourlySightings, Indicator, IndicatorRef,
    Provenance, Severity, SourceKind,
};
use sha2::{Digest, Sha256};

use crate::evidence::AlertSightings;
use crate::views::corroboration::{self, Report};

/// Name of the rule.
pub const RULE: &str = "indicator-match";
/// Version of the rule's logic; part of every alert's provenance.
pub const RULE_VERSION: u32 = 2;
/// Length of an alert's event-time window.
pub const WINDOW_MS: i64 = 86_400_000;
/// Most event ids listed in one alert.
pub const MAX_EVENT_IDS: usize = 20;
/// Most victim addresses and accounts listed in one alert.
pub const MAX_PERSONAL: usize = 50;
/// Sensors or countries that make a spread (raises the severity one level).
pub const SPREAD: usize = 3;
/// Distinct victims that raise the severity one more level.
pub const VICTIMS_RAISE: usize = 10;

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

/// A current indicator as a source vouching for its observable.
pub fn contributor(i: &Indicator) -> Contributor {
    Contributor {
        kind: match i.source_kind {
            SourceKind::Partner => ContributorKind::Partner,
            SourceKind::Osint => ContributorKind::Osint,
        },
        id: i.source_id.clone(),
        indicator_id: i.id.clone(),
        confidence: i.confidence,
        reported: i.modified,
        marking: i.marking(),
    }
}

/// The alert `base` (from [`base_alert`]) with its provenance: the match key `key` and
/// the current indicators on it as `feeds`, whose corroborated confidence (with
/// `half_life_ms`) sets the severity; the marking becomes the strictest of theirs
/// (pure; also the oracle's definition).
pub fn corroborate(base: &Alert, key: String, feeds: &[&Contributor], half_life_ms: u64) -> Alert {
    let mut sources: Vec<Contributor> = feeds.iter().map(|c| (*c).clone()).collect();
    sources.sort();
    sources.dedup();
    // Each feed's latest report: the greatest (time, confidence) of its indicators.
    let mut latest: BTreeMap<(ContributorKind, &str), Report> = BTreeMap::new();
    for c in &sources {
        let r = Report {
            at_ms: c.reported.as_millisecond(),
            confidence: c.confidence,
        };
        let e = latest.entry((c.kind, c.id.as_str())).or_insert(r);
        *e = (*e).max(r);
    }
    let reports: Vec<Report> = latest.into_values().collect();
    let corroborated = if reports.is_empty() {
        base.indicator.confidence
    } else {
        corroboration::confidence(&reports, half_life_ms)
    };
    let marking = sources
        .iter()
        .fold(base.marking.clone(), |m, c| m.strictest(&c.marking));
    let mut alert = base.clone();
    alert.severity = severity(
        base.indicator.confidence.max(corroborated),
        alert.sensors as usize,
        alert.countries.len(),
        alert.victims as usize,
    );
    alert.marking = marking;
    alert.provenance = Provenance {
        input_keys: vec![key],
        sources,
        corroborated_confidence: corroborated,
    };
    alert
}

/// The severity of an alert with `confidence` (0 to 100) seen by `sensors` sensors in
/// `countries` countries with `victims` distinct victims (see the module documentation).
pub fn severity(confidence: u8, sensors: usize, countries: usize, victims: usize) -> Severity {
    let base = match confidence {
        80.. => Severity::High,
        50..=79 => Severity::Medium,
        _ => Severity::Low,
    };
    let raises = usize::from(sensors >= SPREAD || countries >= SPREAD)
        + usize::from(victims >= VICTIMS_RAISE);
    (0..raises).fold(base, |s, _| match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    })
}

/// The alert for the raw matches `matches` of one indicator in the window starting at
/// `window_ms`, before corroboration: [`base_alert`] of their [`crate::evidence::aggregate`]
/// (pure; the definition the views' tests compare with).
pub fn build_alert(window_ms: i64, matches: &[&crate::matching::Match]) -> Option<Alert> {
    let ind = &matches.first()?.indicator;
    let kept = crate::evidence::KeptIndicator::of(ind)?;
    let made: Vec<crate::history::Made> = matches
        .iter()
        .map(|m| {
            let s = &m.sighting;
            crate::history::Made {
                indicator: kept.id,
                target: kept.target,
                evidence: crate::history::Evidence::Raw(crate::history::RawSighting {
                    event_ref: crate::history::event_ref(&s.sensor_id, &s.event_id),
                    event_id: s.event_id.as_str().into(),
                    sensor_id: s.sensor_id.as_str().into(),
                    country: crate::history::Country::new(&s.country),
                    observed_ms: s.observed_ms,
                    ingested_ms: s.ingested_ms,
                    victim: s.victim,
                    account: s.account.as_deref().map(Into::into),
                }),
            }
        })
        .collect();
    let sightings = crate::evidence::aggregate(&kept, window_ms, &made)?;
    Some(base_alert(ind, &sightings))
}

/// The alert of `indicator` (its current version) with the evidence `s`, before
/// corroboration (pure; also the oracle's definition).
pub fn base_alert(ind: &Indicator, s: &AlertSightings) -> Alert {
    let severity = severity(
        ind.confidence,
        s.sensors as usize,
        s.countries.len(),
        s.victims as usize,
    );
    let ts = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let countries: Vec<String> = s.countries.iter().map(|c| c.as_str().to_string()).collect();
    Alert {
        schema_version: schemas::SCHEMA_VERSION,
        id: alert_id(RULE, &ind.id, s.window_ms),
        rule: RULE.to_string(),
        rule_version: RULE_VERSION,
        key: ind.id.clone(),
        window_start: ts(s.window_ms),
        window_end: ts(s.window_ms.saturating_add(WINDOW_MS)),
        severity,
        title: format!(
            "{} {} of {} seen by {} sensor(s) in {}",
            ind.kind.as_str(),
            ind.value,
            ind.source_id,
            s.sensors,
            countries.join(", ")
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
        first_seen: ts(s.first_ms),
        last_seen: ts(s.last_ms),
        sightings: s.sightings,
        hourly: s
            .hourly
            .iter()
            .map(|(hour, n)| HourlySightings {
                hour: ts(*hour),
                sightings: *n,
            })
            .collect(),
        sensors: s.sensors,
        victims: s.victims,
        victim_ips: s.victim_ips.clone(),
        victims_by_country: s
            .victims_by_country
            .iter()
            .map(|(country, ips)| CountryVictims {
                country: country.as_str().to_string(),
                victim_ips: ips.clone(),
            })
            .collect(),
        accounts: s.accounts.iter().map(|a| a.to_string()).collect(),
        countries,
        retroactive_sightings: s.retroactive,
        event_ids: s.event_ids.iter().map(|e| e.to_string()).collect(),
        summarised_sightings: s.summarised,
        drill: false,
        provenance: Provenance::default(),
    }
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
    fn severity_rises_with_confidence_spread_and_victims() {
        assert_eq!(severity(30, 1, 1, 0), Severity::Low);
        assert_eq!(severity(50, 1, 1, 0), Severity::Medium);
        assert_eq!(severity(80, 1, 1, 0), Severity::High);
        assert_eq!(severity(30, 3, 1, 0), Severity::Medium);
        assert_eq!(severity(30, 1, 3, 9), Severity::Medium);
        assert_eq!(severity(30, 1, 1, 10), Severity::Medium);
        assert_eq!(severity(30, 3, 1, 10), Severity::High);
        assert_eq!(severity(79, 3, 3, 10), Severity::Critical);
        assert_eq!(severity(100, 5, 5, 500), Severity::Critical);
    }

    #[test]
    fn windows_are_utc_days() {
        assert_eq!(window_start(WINDOW_MS + 5), WINDOW_MS);
        assert_eq!(window_start(-1), -WINDOW_MS);
    }
}
