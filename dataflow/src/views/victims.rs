//! Botnet / C2 victims: for each command-and-control indicator, the infected machines
//! per country. The sinkhole and takedown case: each national bureau needs the list of
//! infected machines in its country to notify their owners.
//!
//! An indicator is a C2 indicator when
//!
//! - one of its labels marks it as such ([`is_c2`]: `c2`, `cnc`, `c&c`, `botnet` or
//!   `command-and-control` as a word of a label, so `c2-server`, `botnet_c2`, `CnC`), or
//! - a sinkhole event ([`schemas::EventKind::Sinkhole`]) matched it: a connection to a
//!   sinkholed C2 comes from an infected machine.
//!
//! Its victims are the sighting victims ([`crate::matching::Sighting::victim`]: the event's
//! victim address, or for a sinkhole event its source) of all its matches, sinkhole or
//! not: a machine seen talking to a C2 is infected. A victim's country is the country of
//! the sensor that saw it: member-country sensors, sinkholes included, report the machines
//! of their own country (`victim_ip` is "in the sensor's country"). Accounts are not
//! machines and are not listed.
//!
//! Which matches come from sinkhole events is found by joining the matches with the
//! sinkhole events on (sensor, event id, ingestion time), by hash; the view therefore
//! keeps one integer per sinkhole event of its `events` input. Pass events windowed by
//! the retention (as [`crate::matching::matches`] does) to bound it.
//!
//! The output per (indicator, country) lists the distinct victim addresses, sorted, and
//! their number; it is personal data, redacted per recipient downstream.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use schemas::{EventKind, Indicator, SensorEvent};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::matching::Match;
use crate::observables::key_hash;

/// The infected machines of one C2 indicator in one country.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct C2Victims {
    /// The C2 indicator's id.
    pub indicator_id: String,
    /// Country of the sensors that saw the victims.
    pub country: String,
    /// Distinct victim addresses, sorted (personal data).
    pub victims: Vec<IpAddr>,
    /// Their number.
    pub count: u64,
}

/// True if one of the indicator's labels marks it as command-and-control infrastructure.
pub fn is_c2(indicator: &Indicator) -> bool {
    indicator.labels.iter().any(|label| {
        let label = label.to_ascii_lowercase();
        let words: Vec<&str> = label
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '&')
            .collect();
        words
            .iter()
            .any(|w| matches!(*w, "c2" | "cnc" | "c&c" | "botnet"))
            || words.windows(3).any(|w| w == ["command", "and", "control"])
    })
}

/// A compact reference to one event record: sensor, event id and ingestion time.
fn event_ref(sensor_id: &str, event_id: &str, ingested_ms: u64) -> u64 {
    // The separator cannot occur in ids (validated identifiers).
    key_hash(&format!("{sensor_id}\u{1f}{event_id}\u{1f}{ingested_ms}"))
}

/// Victims per C2 indicator and country, from the matches and the events (each with
/// its ingestion time) they came from (see the module documentation).
pub fn victims<'s>(
    matches: VecCollection<'s, Time, Match>,
    events: VecCollection<'s, Time, (u64, SensorEvent)>,
) -> VecCollection<'s, Time, C2Victims> {
    let sinkholes = events
        .filter(|(_, ev)| ev.kind == EventKind::Sinkhole)
        .map(|(ingested, ev)| event_ref(&ev.sensor_id, &ev.event_id, ingested))
        .distinct();
    let by_sinkhole = matches
        .clone()
        .map(|m| {
            let s = &m.sighting;
            (
                event_ref(&s.sensor_id, &s.event_id, s.ingested_ms),
                m.indicator.id,
            )
        })
        .semijoin(sinkholes)
        .map(|(_, id)| id);
    let labelled = matches
        .clone()
        .filter(|m| is_c2(&m.indicator))
        .map(|m| m.indicator.id);
    let c2 = labelled.concat(by_sinkhole).distinct();
    matches
        .flat_map(|m| {
            let s = m.sighting;
            s.victim.map(|ip| (m.indicator.id, (s.country, ip)))
        })
        .semijoin(c2)
        .map(|(id, (country, ip))| ((id, country), ip))
        .reduce_named(
            "C2VictimsPerCountry",
            |_key, group: &[(&IpAddr, isize)], out: &mut Vec<(Vec<IpAddr>, isize)>| {
                let ips: Vec<IpAddr> = group
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(ip, _)| **ip)
                    .collect();
                if !ips.is_empty() {
                    out.push((ips, 1));
                }
            },
        )
        .map(|((indicator_id, country), victims)| C2Victims {
            indicator_id,
            country,
            count: victims.len() as u64,
            victims,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(labels: &[&str]) -> Indicator {
        let t = jiff::Timestamp::UNIX_EPOCH;
        Indicator {
            schema_version: 1,
            id: "i".into(),
            kind: schemas::IndicatorKind::Ipv4,
            value: "192.0.2.1".into(),
            owner: "p".into(),
            source_kind: schemas::SourceKind::Partner,
            source_id: "p".into(),
            tlp: schemas::Tlp::Green,
            sharing: vec![],
            confidence: 50,
            created: t,
            modified: t,
            valid_from: t,
            valid_until: None,
            revoked: false,
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn c2_labels_are_recognised_as_words() {
        for yes in [
            &["qakbot", "c2-server"][..],
            &["botnet_c2"],
            &["CnC"],
            &["Command and Control"],
            &["command-and-control"],
            &["C&C panel"],
            &["Botnet"],
        ] {
            assert!(is_c2(&labelled(yes)), "{yes:?}");
        }
        for no in [
            &[][..],
            &["malicious-activity"],
            &["c2c-marketplace"],
            &["scanner-range"],
            &["command", "control"],
            &["ec2-instance"],
        ] {
            assert!(!is_c2(&labelled(no)), "{no:?}");
        }
    }
}
