//! Partner feedback ("close the loop"): each partner receives, for its own
//! indicators only, aggregated sightings as STIX 2.1 `sighting` objects —
//! count, first and last seen, and the countries where they were seen (as
//! `location` objects) — never victim identities, and only once an indicator's
//! count reaches the partner's `feedback_min_count`.
//!
//! Every alert passes the egress rule ([`schemas::sharing::decide`]) for the
//! partner first: an alert that joins another owner's restricted input is not
//! fed back. The bundle is a pure function of the alerts and the period, so
//! re-sending a period gives the same bytes under the same webhook id.

use std::collections::{BTreeMap, BTreeSet};

use schemas::sharing::{Decision, Interest, Policy, Recipient, RecipientKind, decide};
use schemas::{AlertChange, ChangeKind, SourceKind, Timestamp, Tlp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::subscriptions::Partner;

/// STIX caps `count` at this value.
const STIX_MAX_COUNT: u64 = 999_999_999;

/// The latest content of every open alert, fed with alert changes.
#[derive(Debug, Default, Clone)]
pub struct Sightings {
    open: BTreeMap<String, AlertChange>,
}

/// One indicator's aggregated sightings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The indicator id (as the partner gave it).
    pub indicator_id: String,
    /// Matching events, summed over the indicator's alerts.
    pub count: u64,
    /// Earliest sighting.
    pub first_seen: Timestamp,
    /// Latest sighting.
    pub last_seen: Timestamp,
    /// Countries of the sensors, sorted.
    pub countries: BTreeSet<String>,
}

impl Sightings {
    /// Applies one alert change (a retraction removes the alert).
    pub fn observe(&mut self, change: &AlertChange) {
        let id = &change.alert.id;
        if self
            .open
            .get(id)
            .is_some_and(|c| c.version > change.version)
        {
            return;
        }
        match change.change {
            ChangeKind::Retracted | ChangeKind::Expired => {
                self.open.remove(id);
            }
            _ => {
                self.open.insert(id.clone(), change.clone());
            }
        }
    }

    /// How the policy sees a partner.
    pub fn recipient(partner: &Partner) -> Recipient {
        Recipient {
            id: partner.id.clone(),
            kind: RecipientKind::Partner,
            organisation: partner.organisation.clone(),
            country: None,
            clearance: Tlp::Red,
            personal_data: false,
            drill: false,
            interest: Interest::default(),
        }
    }

    /// The partner's own indicators with at least its minimum count, aggregated.
    pub fn aggregates(&self, partner: &Partner, policy: &Policy) -> Vec<Aggregate> {
        let recipient = Self::recipient(partner);
        let mut by_indicator: BTreeMap<String, Aggregate> = BTreeMap::new();
        for c in self.open.values() {
            let a = &c.alert;
            if a.indicator.source_kind != SourceKind::Partner || a.indicator.source_id != partner.id
            {
                continue;
            }
            // Only what the egress rule lets the partner see (already without personal data).
            let Decision::Deliver(view) = decide(a, &recipient, policy) else {
                continue;
            };
            let e = by_indicator
                .entry(view.indicator.id.clone())
                .or_insert_with(|| Aggregate {
                    indicator_id: view.indicator.id.clone(),
                    count: 0,
                    first_seen: view.first_seen,
                    last_seen: view.last_seen,
                    countries: BTreeSet::new(),
                });
            e.count = e.count.saturating_add(view.sightings);
            e.first_seen = e.first_seen.min(view.first_seen);
            e.last_seen = e.last_seen.max(view.last_seen);
            e.countries.extend(view.countries.iter().cloned());
        }
        by_indicator
            .into_values()
            .filter(|a| a.count >= partner.feedback_min_count)
            .collect()
    }

    /// The STIX 2.1 bundle of sightings for `partner` at period `period` (logical ms), if any.
    pub fn bundle(&self, partner: &Partner, policy: &Policy, period: u64) -> Option<String> {
        let aggregates = self.aggregates(partner, policy);
        if aggregates.is_empty() {
            return None;
        }
        let created = Timestamp::from_millisecond(i64::try_from(period).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let ts = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let mut objects: Vec<Value> = Vec::new();
        let mut locations: BTreeMap<String, String> = BTreeMap::new();
        for a in &aggregates {
            for c in &a.countries {
                locations
                    .entry(c.clone())
                    .or_insert_with(|| stix_id("location", &["location", c]));
            }
        }
        for (country, id) in &locations {
            objects.push(json!({
                "type": "location",
                "spec_version": "2.1",
                "id": id,
                "created": ts(created),
                "modified": ts(created),
                "country": country,
            }));
        }
        for a in &aggregates {
            let sighting_of = if a.indicator_id.starts_with("indicator--") {
                a.indicator_id.clone()
            } else {
                stix_id("indicator", &["indicator", &a.indicator_id])
            };
            let period_s = period.to_string();
            objects.push(json!({
                "type": "sighting",
                "spec_version": "2.1",
                "id": stix_id("sighting", &[&partner.id, &a.indicator_id, &period_s]),
                "created": ts(created),
                "modified": ts(created),
                "sighting_of_ref": sighting_of,
                "count": a.count.min(STIX_MAX_COUNT),
                "first_seen": ts(a.first_seen),
                "last_seen": ts(a.last_seen),
                "where_sighted_refs": a.countries.iter().filter_map(|c| locations.get(c)).collect::<Vec<_>>(),
                "x_fusion_indicator_id": a.indicator_id,
                "x_fusion_countries": a.countries.iter().collect::<Vec<_>>(),
            }));
        }
        let bundle = json!({
            "type": "bundle",
            "id": stix_id("bundle", &[&partner.id, &period.to_string()]),
            "objects": objects,
        });
        serde_json::to_string(&bundle).ok()
    }
}

/// A deterministic STIX id: `<type>--<uuid>` from a SHA-256 of the parts (UUID version 5 layout).
fn stix_id(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{kind}--{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}
