//! Drill injects: scripted records added on top of a replay at drill-relative times.
//!
//! An inject file is TOML, one `[[inject]]` table per inject:
//!
//! ```toml
//! [[inject]]
//! at = "10m"                     # after the start of the drill period
//! label = "new partner indicator on the C2 domain"
//! planted = true                 # an item the officers should detect (scored)
//! topic = "partner_indicators"   # sensor_events, partner_indicators, osint_items, desk_actions
//! record = '''{"schema_version":1,"id":"indicator--drill-1","kind":"domain",
//!   "value":"c2.example","owner":"partner-a","source_kind":"partner",
//!   "source_id":"partner-a:feed","tlp":"GREEN","confidence":90,
//!   "created":"@at","modified":"@at","valid_from":"@at-30d"}'''
//!
//! [[inject]]
//! at = "30m"
//! label = "Lyon loses power; Singapore takes the watch for two hours"
//! outage = { center = "Lyon", takeover = "Singapore", duration = "2h" }
//! ```
//!
//! In a record, a string `"@at"` becomes the inject's instant (RFC 3339) and
//! `"@at+DURATION"` / `"@at-DURATION"` an instant that far from it (units ms, s, m, h, d).
//! An outage becomes a roster override: `takeover` holds the watch from the inject's
//! instant for `duration` (the roster is fixed for the whole drill, so the desk may show
//! the override before it starts).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ingest::record::RawRecord;
use schemas::Topic;
use serde::{Deserialize, Serialize};

use super::capture::Replayed;

/// The inject file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    inject: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    at: String,
    label: String,
    #[serde(default)]
    planted: bool,
    #[serde(default)]
    topic: Option<Topic>,
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    outage: Option<OutageSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageSpec {
    center: String,
    takeover: String,
    duration: String,
}

/// A center outage: `takeover` holds the watch over `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The center that is down.
    pub center: String,
    /// The center that takes the watch.
    pub takeover: String,
    /// Start, ms (logical, shifted).
    pub from_ms: u64,
    /// End, ms.
    pub to_ms: u64,
}

/// What an inject did, as `injects.jsonl` in the drill directory lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    /// Drill-relative time, ms.
    pub at_ms: i64,
    /// Logical time (shifted), ms.
    pub time_ms: u64,
    /// Its topic (`roster` for an outage).
    pub topic: String,
    /// What it is, for people.
    pub label: String,
    /// An item the officers should detect.
    pub planted: bool,
    /// The indicator it adds or changes, if it is an indicator.
    pub indicator_id: Option<String>,
    /// The indicator's value, if it is an indicator.
    pub value: Option<String>,
}

/// Injects resolved against a drill period starting at `start_ms` (logical, shifted).
#[derive(Debug, Default)]
pub struct Injects {
    /// Records to replay, by time.
    pub records: Vec<Replayed>,
    /// Roster overrides.
    pub outages: Vec<Outage>,
    /// What each inject does.
    pub applied: Vec<Applied>,
}

/// Reads the inject file at `path` for a drill period starting at `start_ms`, with epochs
/// of `epoch_ms` (an inject is handed on at the first epoch at or after its time).
pub fn load(path: &Path, start_ms: u64, epoch_ms: u64) -> anyhow::Result<Injects> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the inject file {}", path.display()))?;
    parse(&text, start_ms, epoch_ms)
        .with_context(|| format!("the inject file {} is not valid", path.display()))
}

fn parse(text: &str, start_ms: u64, epoch_ms: u64) -> anyhow::Result<Injects> {
    let file: File = toml::from_str(text)?;
    let mut out = Injects::default();
    for (n, spec) in file.inject.into_iter().enumerate() {
        let which = format!("inject #{} ({:?})", n + 1, spec.label);
        let at = crate::parse_duration(&spec.at)
            .map_err(|e| anyhow::anyhow!("{which}: at = {:?}: {e}", spec.at))?;
        let at_ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        let time_ms = start_ms
            .saturating_add(at_ms)
            .div_ceil(epoch_ms.max(1))
            .saturating_mul(epoch_ms.max(1));
        let instant = jiff::Timestamp::from_millisecond(i64::try_from(time_ms).unwrap_or(i64::MAX))
            .with_context(|| format!("{which}: its instant is out of range"))?;
        let applied = |topic: String, indicator_id, value| Applied {
            at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
            time_ms,
            topic,
            label: spec.label.clone(),
            planted: spec.planted,
            indicator_id,
            value,
        };
        match (&spec.topic, &spec.record, &spec.outage) {
            (Some(topic), Some(record), None) => {
                if !Topic::INPUTS.contains(topic) {
                    anyhow::bail!("{which}: {topic:?} is not an input topic");
                }
                let mut value: serde_json::Value = serde_json::from_str(record)
                    .with_context(|| format!("{which}: record is not JSON"))?;
                resolve(&mut value, instant).with_context(|| which.clone())?;
                let id = value.get("id").and_then(|v| v.as_str()).map(String::from);
                let indicator_value = value
                    .get("value")
                    .and_then(|v| v.as_str())
                    .map(String::from);
                let is_indicator = matches!(topic, Topic::PartnerIndicators | Topic::OsintItems);
                out.applied.push(applied(
                    topic.suffix().to_string(),
                    id.filter(|_| is_indicator),
                    indicator_value.filter(|_| is_indicator),
                ));
                out.records.push(Replayed {
                    time_ms,
                    record: RawRecord {
                        topic: *topic,
                        partition: -1,
                        offset: i64::try_from(n).unwrap_or(i64::MAX),
                        timestamp_ms: i64::try_from(time_ms).unwrap_or(i64::MAX),
                        key: None,
                        payload: serde_json::to_vec(&value)?,
                        headers: vec![("fusion-drill-inject".into(), spec.label.clone().into())],
                        future_timestamp_ms: None,
                    },
                });
            }
            (None, None, Some(o)) => {
                let d = crate::parse_duration(&o.duration).map_err(|e| {
                    anyhow::anyhow!("{which}: outage duration {:?}: {e}", o.duration)
                })?;
                if d.is_zero() {
                    anyhow::bail!("{which}: an outage needs a duration above zero");
                }
                out.outages.push(Outage {
                    center: o.center.clone(),
                    takeover: o.takeover.clone(),
                    from_ms: time_ms,
                    to_ms: time_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                });
                out.applied.push(applied("roster".into(), None, None));
            }
            _ => anyhow::bail!(
                "{which}: give either `topic` and `record`, or `outage = {{ center, takeover, duration }}`"
            ),
        }
    }
    out.records.sort_by_key(|r| r.time_ms);
    Ok(out)
}

/// Replaces `"@at"` and `"@at±DURATION"` strings in `value` by instants.
fn resolve(value: &mut serde_json::Value, at: jiff::Timestamp) -> anyhow::Result<()> {
    match value {
        serde_json::Value::String(s) if s.starts_with("@at") => {
            let rest = &s[3..];
            let t = if rest.is_empty() {
                at
            } else {
                let (sign, d) = match rest.split_at(1) {
                    ("+", d) => (1, d),
                    ("-", d) => (-1, d),
                    _ => anyhow::bail!("{s:?}: write @at, @at+DURATION or @at-DURATION"),
                };
                let d: Duration =
                    crate::parse_duration(d).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
                let d = jiff::SignedDuration::try_from(d)?;
                if sign > 0 {
                    at.checked_add(d)?
                } else {
                    at.checked_sub(d)?
                }
            };
            *s = t.to_string();
        }
        serde_json::Value::Array(items) => {
            for v in items {
                resolve(v, at)?;
            }
        }
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                resolve(v, at)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    const START: u64 = 1_790_000_000_000;

    #[test]
    fn records_get_their_instant_and_outages_their_interval() {
        let text = r#"
[[inject]]
at = "10m"
label = "new indicator"
planted = true
topic = "partner_indicators"
record = '{"id":"indicator--x","value":"c2.example","created":"@at","valid_from":"@at-30d"}'

[[inject]]
at = "30m"
label = "Lyon down"
outage = { center = "Lyon", takeover = "Singapore", duration = "2h" }
"#;
        let i = parse(text, START, 20).unwrap();
        assert_eq!(i.records.len(), 1);
        let r = &i.records[0];
        assert_eq!(r.time_ms, START + 600_000);
        let v: serde_json::Value = serde_json::from_slice(&r.record.payload).unwrap();
        let at = jiff::Timestamp::from_millisecond((START + 600_000) as i64).unwrap();
        assert_eq!(v["created"], at.to_string());
        assert_eq!(
            v["valid_from"],
            at.checked_sub(jiff::SignedDuration::from_hours(720))
                .unwrap()
                .to_string()
        );
        assert!(i.outages[0].from_ms == START + 1_800_000);
        assert_eq!(i.outages[0].to_ms - i.outages[0].from_ms, 7_200_000);
        assert_eq!(i.applied[0].indicator_id.as_deref(), Some("indicator--x"));
        assert!(i.applied[0].planted && !i.applied[1].planted);
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/config/drill-injects.example.toml");
        let i = load(&path, START, 20).unwrap();
        assert_eq!(i.records.len(), 3);
        assert_eq!(i.outages.len(), 1);
        assert_eq!(i.applied.iter().filter(|a| a.planted).count(), 1);
    }

    #[test]
    fn bad_injects_are_named() {
        let e = parse("[[inject]]\nat = \"soon\"\nlabel = \"x\"\n", START, 20).unwrap_err();
        assert!(format!("{e:#}").contains("inject #1 (\"x\")"), "{e:#}");
        let e = parse(
            "[[inject]]\nat = \"1m\"\nlabel = \"y\"\ntopic = \"alerts\"\nrecord = '{}'\n",
            START,
            20,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not an input topic"), "{e:#}");
        let e = parse("[[inject]]\nat = \"1m\"\nlabel = \"z\"\n", START, 20).unwrap_err();
        assert!(
            format!("{e:#}").contains("either `topic` and `record`"),
            "{e:#}"
        );
        let e = parse(
            "[[inject]]\nat = \"1m\"\nlabel = \"z\"\ncolour = 1\n",
            START,
            20,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("colour"), "{e:#}");
    }
}
