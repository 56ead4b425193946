//! Criteria, threshold and spike rules, declared in a TOML rules file
//! (`deploy/config/rules.toml`) and loaded at run time ([`RuleSet::from_toml`]).
//!
//! ```toml
//! [[rule]]
//! id = "airline-last-minute-foreign-compromised-card"   # unique; an identifier
//! kind = "criteria"                 # criteria | threshold | spike
//! version = "2026-03-01"            # optional; default: hash of the rule's content
//! title = "Last-minute ticket bought abroad with a compromised card"  # optional
//! card_on_list = true               # the card is on a compromised-card list
//! card_lists = ["bank-consortium"]  # optional: only these lists count (default: any)
//! max_hours_before_departure = 24   # bought less than this many hours before departure
//! ip_country_differs = true         # the buyer IP's country is not the card's country
//! min_held = 3                      # optional: criteria that must hold (default: all)
//!
//! [[rule]]
//! id = "botnet-victim-surge"
//! kind = "threshold"
//! min_victims = 5                   # distinct victims of one indicator…
//! window_secs = 3600                # …in one tumbling window of event time
//!
//! [[rule]]
//! id = "darknet-port-spike"
//! kind = "spike"
//! bucket_secs = 3600                # darknet hits per destination port per bucket
//! baseline_buckets = 24             # baseline: the mean of this many previous buckets
//! factor = 3.0                      # a hit needs count >= factor × baseline…
//! min_count = 20                    # …and count >= min_count
//! ```
//!
//! Every hit ([`RuleHit`]) carries its rule's id and version, a deterministic id
//! ([`crate::alerts::alert_id`] of rule, key and window) and the list of criteria
//! it was judged on, each with whether it held and why.
//!
//! - **criteria** ([`criteria`]): each purchase event ([`EventKind::Purchase`] with
//!   purchase details) is judged on the criteria its rule configures:
//!   `card_on_list` (its `card_ref` is on a list of the compromised-card collection,
//!   restricted to `card_lists` when given), `bought_before_departure` (the departure
//!   is at or after the purchase and less than `max_hours_before_departure` hours
//!   after it) and `ip_country_differs` (the buyer IP's country is known and differs
//!   from the card's country). It is a hit when at least `min_held` hold. Key: the
//!   event (`sensor/event id`); window: the instant of the purchase.
//! - **threshold** ([`threshold`]): per indicator and tumbling window of event time
//!   (`window_secs`), the distinct victims of its matches
//!   ([`crate::views::sightings::Victim`]: the victim address, else the account); a
//!   hit when there are at least `min_victims`. Key: the indicator id. The hit
//!   carries the strictest marking of the indicator.
//! - **spike** ([`spike`]): darknet events ([`EventKind::Darknet`] with a destination
//!   port) counted per destination port and bucket of event time (`bucket_secs`). The
//!   baseline of bucket `b` is the mean count of the `baseline_buckets` buckets
//!   before it, a bucket without hits counting 0. A hit when the count is at least
//!   `min_count` and at least `factor` times the baseline (so after a quiet period any
//!   `min_count` hits are a spike). Key: `port:<n>`.
//!
//! Inputs are sets: an event or a listed card present twice counts once. Late events
//! update their windows; retractions retract hits. Rules are fixed when the dataflow
//! is built: a changed rules file takes effect on restart, and its hits carry the new
//! version.

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::VecCollection;
use schemas::{EventKind, Marking, SensorEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Time;
use crate::alerts::alert_id;
use crate::matching::Match;
use crate::views::sightings::Victim;

/// Longest window or bucket accepted, in seconds (a year).
pub const MAX_WINDOW_SECS: u64 = 366 * 86_400;
/// Most baseline buckets accepted: each darknet count is copied into every one of them.
pub const MAX_BASELINE_BUCKETS: u32 = 24 * 31;
/// Longest `max_hours_before_departure` accepted (a year).
pub const MAX_HOURS_BEFORE_DEPARTURE: u32 = 366 * 24;

/// A rules file that cannot be used; names the rule (its id, or `#n` counting from 1) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The file is not TOML.
    #[error("the rules file is not valid TOML: {0}")]
    Toml(String),
    /// A top-level key other than `rule`.
    #[error("the rules file has an unknown top-level key `{0}`; it holds only [[rule]] tables")]
    UnknownKey(String),
    /// `rule` is not an array of tables.
    #[error("`rule` must be an array of tables, written [[rule]]")]
    NotAnArray,
    /// A field of a rule is missing, unknown or has a bad value.
    #[error("rule {rule}: field `{field}`: {reason}")]
    Field {
        /// The rule's id, or `#n`.
        rule: String,
        /// The field.
        field: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// Two rules share an id.
    #[error("rule {0}: the id is already used by an earlier rule; ids must be unique")]
    DuplicateId(String),
}

/// What every rule has: its id, version and title.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleMeta {
    /// Unique id of the rule.
    pub id: String,
    /// The explicit `version`, else `sha256:` and 16 hex digits of the rule's content.
    pub version: String,
    /// A title for people, if given.
    pub title: Option<String>,
}

/// A purchase rule judged on configured criteria.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriteriaRule {
    /// Id, version, title.
    pub meta: RuleMeta,
    /// Judge whether the card is on a compromised-card list.
    pub card_on_list: bool,
    /// The lists that count; empty means any.
    pub card_lists: Vec<String>,
    /// Judge whether the purchase was made less than this many hours before departure.
    pub max_hours_before_departure: Option<u32>,
    /// Judge whether the buyer IP's country differs from the card's.
    pub ip_country_differs: bool,
    /// How many of the judged criteria must hold for a hit.
    pub min_held: usize,
}

/// At least `min_victims` distinct victims of one indicator in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdRule {
    /// Id, version, title.
    pub meta: RuleMeta,
    /// Distinct victims needed.
    pub min_victims: u64,
    /// Length of the tumbling window of event time, seconds.
    pub window_secs: u64,
}

/// Darknet hits on one port in one bucket against the mean of the previous buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpikeRule {
    /// Id, version, title.
    pub meta: RuleMeta,
    /// Length of a bucket of event time, seconds.
    pub bucket_secs: u64,
    /// Number of previous buckets whose mean is the baseline.
    pub baseline_buckets: u32,
    /// The factor over the baseline, in thousandths (3.0 is 3000).
    pub factor_milli: u64,
    /// Fewest hits in the bucket for a hit.
    pub min_count: u64,
}

/// One rule of the rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// A criteria rule over purchases.
    Criteria(CriteriaRule),
    /// A threshold rule over matches.
    Threshold(ThresholdRule),
    /// A spike rule over darknet events.
    Spike(SpikeRule),
}

impl Rule {
    /// Id, version and title of the rule.
    pub fn meta(&self) -> &RuleMeta {
        match self {
            Rule::Criteria(r) => &r.meta,
            Rule::Threshold(r) => &r.meta,
            Rule::Spike(r) => &r.meta,
        }
    }
}

/// The rules of a rules file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// The kind of rule that produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// [`CriteriaRule`].
    Criteria,
    /// [`ThresholdRule`].
    Threshold,
    /// [`SpikeRule`].
    Spike,
}

/// One criterion a hit was judged on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Criterion {
    /// Its name (`card_on_list`, `min_victims`, …).
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// Why, in words a duty officer can check.
    pub detail: String,
}

/// A rule hit: the output of the rules views.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleHit {
    /// Deterministic id: [`alert_id`] of (rule id, key, window start).
    pub id: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's version.
    pub rule_version: String,
    /// The rule's kind.
    pub kind: RuleKind,
    /// What the hit is about: `sensor/event id`, an indicator id or `port:<n>`.
    pub key: String,
    /// Start of the window, ms since the Unix epoch (a purchase: its instant).
    pub window_start_ms: i64,
    /// End of the window (exclusive), ms; equal to the start for a purchase.
    pub window_end_ms: i64,
    /// Purchases: 1; threshold: distinct victims; spike: hits in the bucket.
    pub count: u64,
    /// The criteria judged, in a fixed order.
    pub criteria: Vec<Criterion>,
    /// The strictest marking of the intelligence involved, when there is some (threshold).
    pub marking: Option<Marking>,
}

/// A card on a compromised-card list: an input of the criteria rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedCard {
    /// The card's token or hash, as in [`schemas::Purchase::card_ref`].
    pub card_ref: String,
    /// The list (its source) that names it.
    pub list: String,
}

/// Takes a rule's fields out of its table one by one, so an error names the field.
struct Fields {
    rule: String,
    table: toml::Table,
}

impl Fields {
    fn error(&self, field: &str, reason: impl std::fmt::Display) -> RuleError {
        RuleError::Field {
            rule: self.rule.clone(),
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }

    fn take<T: DeserializeOwned>(&mut self, field: &str) -> Result<Option<T>, RuleError> {
        match self.table.remove(field) {
            None => Ok(None),
            Some(v) => v
                .try_into()
                .map(Some)
                .map_err(|e: toml::de::Error| self.error(field, e.message().trim())),
        }
    }

    fn need<T: DeserializeOwned>(&mut self, field: &str) -> Result<T, RuleError> {
        self.take(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    fn id(&mut self, field: &str) -> Result<Option<String>, RuleError> {
        let value: Option<String> = self.take(field)?;
        if let Some(v) = &value {
            schemas::validate::id(field, v).map_err(|e| self.error(field, e.reason))?;
        }
        Ok(value)
    }

    fn in_range<T>(
        &self,
        field: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, RuleError>
    where
        T: PartialOrd + std::fmt::Display,
    {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self.error(
                field,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            ))
        }
    }

    /// Every field was taken: the rest are unknown.
    fn finish(self, kind: &str) -> Result<(), RuleError> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(k) => Err(self.error(k, format!("is not a field of a {kind} rule"))),
        }
    }
}

impl RuleSet {
    /// Parses and checks a rules file.
    pub fn from_toml(text: &str) -> Result<RuleSet, RuleError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| RuleError::Toml(e.to_string()))?;
        let rules = match doc.remove("rule") {
            None => Vec::new(),
            Some(toml::Value::Array(rules)) => rules,
            Some(_) => return Err(RuleError::NotAnArray),
        };
        if let Some(k) = doc.keys().next() {
            return Err(RuleError::UnknownKey(k.clone()));
        }
        let mut ids = BTreeSet::new();
        let mut out = Vec::with_capacity(rules.len());
        for (n, rule) in rules.into_iter().enumerate() {
            let toml::Value::Table(table) = rule else {
                return Err(RuleError::NotAnArray);
            };
            let rule = parse_rule(n, table)?;
            if !ids.insert(rule.meta().id.clone()) {
                return Err(RuleError::DuplicateId(rule.meta().id.clone()));
            }
            out.push(rule);
        }
        Ok(RuleSet { rules: out })
    }
}

/// `sha256:` and 16 hex digits of the rule's content, keys sorted (comments and layout do not count).
fn content_version(table: &toml::Table) -> String {
    let sorted: BTreeMap<&String, &toml::Value> = table.iter().collect();
    let text = toml::to_string(&sorted).unwrap_or_default();
    format!(
        "sha256:{}",
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    )
}

fn parse_rule(n: usize, table: toml::Table) -> Result<Rule, RuleError> {
    let version = content_version(&table);
    let name = table
        .get("id")
        .and_then(toml::Value::as_str)
        .map_or_else(|| format!("#{}", n + 1), str::to_string);
    let mut f = Fields { rule: name, table };
    let id = f.id("id")?.ok_or_else(|| f.error("id", "is missing"))?;
    let kind: String = f.need("kind")?;
    let version = f.id("version")?.unwrap_or(version);
    let title: Option<String> = f.take("title")?;
    if let Some(t) = &title {
        schemas::validate::text("title", t).map_err(|e| f.error("title", e.reason))?;
    }
    let meta = RuleMeta { id, version, title };
    let rule = match kind.as_str() {
        "criteria" => {
            let card_on_list: bool = f.take("card_on_list")?.unwrap_or(false);
            let card_lists: Vec<String> = f.take("card_lists")?.unwrap_or_default();
            for (i, l) in card_lists.iter().enumerate() {
                schemas::validate::id("card_lists", l)
                    .map_err(|e| f.error(&format!("card_lists[{i}]"), e.reason))?;
            }
            if !card_lists.is_empty() && !card_on_list {
                return Err(f.error("card_lists", "needs card_on_list = true"));
            }
            let max_hours_before_departure = match f.take::<u32>("max_hours_before_departure")? {
                Some(h) => Some(f.in_range(
                    "max_hours_before_departure",
                    h,
                    1..=MAX_HOURS_BEFORE_DEPARTURE,
                )?),
                None => None,
            };
            let ip_country_differs: bool = f.take("ip_country_differs")?.unwrap_or(false);
            let judged = usize::from(card_on_list)
                + usize::from(max_hours_before_departure.is_some())
                + usize::from(ip_country_differs);
            if judged == 0 {
                return Err(f.error(
                    "card_on_list",
                    "a criteria rule needs at least one of card_on_list, max_hours_before_departure, ip_country_differs",
                ));
            }
            let min_held = match f.take::<usize>("min_held")? {
                Some(m) => f.in_range("min_held", m, 1..=judged)?,
                None => judged,
            };
            f.finish("criteria")?;
            Rule::Criteria(CriteriaRule {
                meta,
                card_on_list,
                card_lists,
                max_hours_before_departure,
                ip_country_differs,
                min_held,
            })
        }
        "threshold" => {
            let min_victims: u64 = f.need("min_victims")?;
            let min_victims = f.in_range("min_victims", min_victims, 1..=u64::from(u32::MAX))?;
            let window_secs: u64 = f.need("window_secs")?;
            let window_secs = f.in_range("window_secs", window_secs, 1..=MAX_WINDOW_SECS)?;
            f.finish("threshold")?;
            Rule::Threshold(ThresholdRule {
                meta,
                min_victims,
                window_secs,
            })
        }
        "spike" => {
            let bucket_secs: u64 = f.take("bucket_secs")?.unwrap_or(3600);
            let bucket_secs = f.in_range("bucket_secs", bucket_secs, 1..=MAX_WINDOW_SECS)?;
            let baseline_buckets: u32 = f.need("baseline_buckets")?;
            let baseline_buckets = f.in_range(
                "baseline_buckets",
                baseline_buckets,
                1..=MAX_BASELINE_BUCKETS,
            )?;
            let factor = match f.table.remove("factor") {
                Some(toml::Value::Float(x)) => x,
                // Integers in the accepted range are exact as floats.
                Some(toml::Value::Integer(i)) => i as f64,
                Some(other) => {
                    return Err(f.error(
                        "factor",
                        format!("is a {}, expected a number such as 3.0", other.type_str()),
                    ));
                }
                None => return Err(f.error("factor", "is missing")),
            };
            if !(factor.is_finite() && (0.001..=1_000_000.0).contains(&factor)) {
                return Err(f.error("factor", format!("{factor} is outside 0.001..=1000000")));
            }
            // Within the range checked above the product fits a u64 exactly.
            let factor_milli = (factor * 1000.0).round() as u64;
            let min_count: u64 = f.need("min_count")?;
            let min_count = f.in_range("min_count", min_count, 1..=u64::from(u32::MAX))?;
            f.finish("spike")?;
            Rule::Spike(SpikeRule {
                meta,
                bucket_secs,
                baseline_buckets,
                factor_milli,
                min_count,
            })
        }
        other => {
            return Err(f.error(
                "kind",
                format!("{other:?} is not a rule kind; expected criteria, threshold or spike"),
            ));
        }
    };
    Ok(rule)
}

/// Start of the window of length `len_ms` holding `ms`.
pub fn window_start(ms: i64, len_ms: i64) -> i64 {
    ms.div_euclid(len_ms.max(1)) * len_ms.max(1)
}

/// Seconds to milliseconds; the rules file bounds seconds far below overflow.
fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn hit(
    meta: &RuleMeta,
    kind: RuleKind,
    key: String,
    window: (i64, i64),
    count: u64,
    criteria: Vec<Criterion>,
    marking: Option<Marking>,
) -> RuleHit {
    RuleHit {
        id: alert_id(&meta.id, &key, window.0),
        rule_id: meta.id.clone(),
        rule_version: meta.version.clone(),
        kind,
        key,
        window_start_ms: window.0,
        window_end_ms: window.1,
        count,
        criteria,
        marking,
    }
}

fn criterion(name: &str, held: bool, detail: String) -> Criterion {
    Criterion {
        name: name.to_string(),
        held,
        detail,
    }
}

/// The hit of `rule` on the purchase `ev`, whose card is on the compromised-card
/// `lists` (sorted), if enough criteria hold (pure; also the oracle's definition).
pub fn criteria_hit(rule: &CriteriaRule, ev: &SensorEvent, lists: &[String]) -> Option<RuleHit> {
    if ev.kind != EventKind::Purchase {
        return None;
    }
    let p = ev.purchase.as_ref()?;
    let mut criteria = Vec::new();
    if rule.card_on_list {
        let counted: Vec<&str> = lists
            .iter()
            .filter(|l| rule.card_lists.is_empty() || rule.card_lists.contains(l))
            .map(String::as_str)
            .collect();
        let detail = if counted.is_empty() {
            "the card is on no compromised-card list that counts".to_string()
        } else {
            format!(
                "the card is on compromised-card list(s) {}",
                counted.join(", ")
            )
        };
        criteria.push(criterion("card_on_list", !counted.is_empty(), detail));
    }
    if let Some(hours) = rule.max_hours_before_departure {
        let (held, detail) = match p.departure_at {
            None => (false, "no departure time".to_string()),
            Some(dep) => {
                let ahead_ms = dep.as_millisecond() - ev.observed_at.as_millisecond();
                let limit_ms = i64::from(hours) * 3_600_000;
                if ahead_ms < 0 {
                    (
                        false,
                        format!("bought {} min after departure", (-ahead_ms) / 60_000),
                    )
                } else {
                    (
                        ahead_ms < limit_ms,
                        format!(
                            "bought {} min before departure (limit {hours} h)",
                            ahead_ms / 60_000
                        ),
                    )
                }
            }
        };
        criteria.push(criterion("bought_before_departure", held, detail));
    }
    if rule.ip_country_differs {
        let (held, detail) = match &p.src_country {
            None => (false, "the buyer IP's country is unknown".to_string()),
            Some(c) => (
                *c != p.card_country,
                format!("buyer IP in {c}, card issued in {}", p.card_country),
            ),
        };
        criteria.push(criterion("ip_country_differs", held, detail));
    }
    let held = criteria.iter().filter(|c| c.held).count();
    if held < rule.min_held {
        return None;
    }
    let at = ev.observed_at.as_millisecond();
    Some(hit(
        &rule.meta,
        RuleKind::Criteria,
        format!("{}/{}", ev.sensor_id, ev.event_id),
        (at, at),
        1,
        criteria,
        None,
    ))
}

/// The hit of `rule` on `victims` distinct victims of `indicator_id` in the window
/// starting at `window_start_ms`, if there are enough (pure; also the oracle's definition).
pub fn threshold_hit(
    rule: &ThresholdRule,
    indicator_id: &str,
    window_start_ms: i64,
    victims: u64,
    marking: Option<Marking>,
) -> Option<RuleHit> {
    if victims < rule.min_victims {
        return None;
    }
    let len = secs_to_ms(rule.window_secs);
    Some(hit(
        &rule.meta,
        RuleKind::Threshold,
        indicator_id.to_string(),
        (window_start_ms, window_start_ms.saturating_add(len)),
        victims,
        vec![criterion(
            "min_victims",
            true,
            format!(
                "{victims} distinct victims in {} s, at least {} needed",
                rule.window_secs, rule.min_victims
            ),
        )],
        marking,
    ))
}

/// The hit of `rule` on `count` darknet hits on `port` in the bucket starting at
/// `bucket_start_ms`, when the previous buckets held `baseline_total` hits in all
/// (pure; also the oracle's definition).
pub fn spike_hit(
    rule: &SpikeRule,
    port: u16,
    bucket_start_ms: i64,
    count: u64,
    baseline_total: u64,
) -> Option<RuleHit> {
    let enough = count >= rule.min_count;
    // count >= factor × total / buckets, in integers: count × buckets × 1000 >= factor_milli × total.
    let above = u128::from(count) * u128::from(rule.baseline_buckets) * 1000
        >= u128::from(rule.factor_milli) * u128::from(baseline_total);
    if !(enough && above) {
        return None;
    }
    let len = secs_to_ms(rule.bucket_secs);
    let milli = |m: u64| format!("{}.{:03}", m / 1000, m % 1000);
    let mean_milli = baseline_total.saturating_mul(1000) / u64::from(rule.baseline_buckets.max(1));
    Some(hit(
        &rule.meta,
        RuleKind::Spike,
        format!("port:{port}"),
        (bucket_start_ms, bucket_start_ms.saturating_add(len)),
        count,
        vec![
            criterion(
                "min_count",
                true,
                format!("{count} hits, at least {} needed", rule.min_count),
            ),
            criterion(
                "above_baseline",
                true,
                format!(
                    "{count} hits, at least {} × the baseline {} (the mean of {baseline_total} hits over the {} previous buckets)",
                    milli(rule.factor_milli),
                    milli(mean_milli),
                    rule.baseline_buckets
                ),
            ),
        ],
        None,
    ))
}

/// Hits of a criteria rule: purchase events judged against the compromised-card lists.
pub fn criteria<'s>(
    rule: &CriteriaRule,
    events: VecCollection<'s, Time, SensorEvent>,
    cards: VecCollection<'s, Time, ListedCard>,
) -> VecCollection<'s, Time, RuleHit> {
    let purchases = events
        .filter(|ev| ev.kind == EventKind::Purchase && ev.purchase.is_some())
        .distinct()
        .flat_map(|ev| ev.purchase.clone().map(|p| (p.card_ref, ev)));
    // Per card, the sorted lists that name it.
    let lists = cards.distinct().map(|c| (c.card_ref, c.list)).reduce_named(
        "CardLists",
        |_card, lists: &[(&String, isize)], out: &mut Vec<(Vec<String>, isize)>| {
            out.push((lists.iter().map(|(l, _)| (*l).clone()).collect(), 1));
        },
    );
    let listed = purchases
        .clone()
        .join_map(lists.clone(), |_card, ev, lists| {
            (ev.clone(), lists.clone())
        });
    let unlisted = purchases
        .antijoin(lists.map(|(card, _)| card))
        .map(|(_, ev)| (ev, Vec::new()));
    let rule = rule.clone();
    listed
        .concat(unlisted)
        .flat_map(move |(ev, lists)| criteria_hit(&rule, &ev, &lists))
}

/// Hits of a threshold rule: distinct victims per indicator and window of event time.
pub fn threshold<'s>(
    rule: &ThresholdRule,
    matches: VecCollection<'s, Time, Match>,
) -> VecCollection<'s, Time, RuleHit> {
    let len = secs_to_ms(rule.window_secs);
    let rule = rule.clone();
    matches
        .flat_map(move |m| {
            let victim = Victim::of(&m.sighting)?;
            Some((
                (
                    m.indicator.id.clone(),
                    window_start(m.sighting.observed_ms, len),
                ),
                (victim, m.indicator.marking()),
            ))
        })
        .distinct()
        .reduce_named(
            "ThresholdVictims",
            move |(id, window),
                  victims: &[(&(Victim, Marking), isize)],
                  out: &mut Vec<(RuleHit, isize)>| {
                let distinct: BTreeSet<&Victim> = victims.iter().map(|((v, _), _)| v).collect();
                let marking = victims
                    .iter()
                    .map(|((_, m), _)| m.clone())
                    .reduce(|a, b| a.strictest(&b));
                let n = u64::try_from(distinct.len()).unwrap_or(u64::MAX);
                if let Some(h) = threshold_hit(&rule, id, *window, n, marking) {
                    out.push((h, 1));
                }
            },
        )
        .map(|(_, hit)| hit)
}

/// One bucket's count as seen from a later bucket (baseline) or its own (current).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Count {
    Current(u64),
    Previous(u64),
}

/// Hits of a spike rule: darknet hits per destination port and bucket against the baseline.
pub fn spike<'s>(
    rule: &SpikeRule,
    events: VecCollection<'s, Time, SensorEvent>,
) -> VecCollection<'s, Time, RuleHit> {
    let len = secs_to_ms(rule.bucket_secs);
    let buckets = i64::from(rule.baseline_buckets);
    let rule = rule.clone();
    events
        .filter(|ev| ev.kind == EventKind::Darknet && ev.dst_port.is_some())
        .distinct()
        .map(move |ev| {
            (
                ev.dst_port.unwrap_or_default(),
                window_start(ev.observed_at.as_millisecond(), len),
            )
        })
        .count()
        .flat_map(move |((port, bucket), n)| {
            let n = u64::try_from(n).unwrap_or(0);
            std::iter::once(((port, bucket), Count::Current(n))).chain(
                (1..=buckets)
                    .map(move |j| ((port, bucket.saturating_add(j * len)), Count::Previous(n))),
            )
        })
        .reduce_named(
            "SpikeBaseline",
            move |(port, bucket), counts: &[(&Count, isize)], out: &mut Vec<(RuleHit, isize)>| {
                let (mut current, mut previous) = (0u64, 0u64);
                for (c, times) in counts {
                    let times = u64::try_from(*times).unwrap_or(0);
                    match c {
                        Count::Current(n) => {
                            current = current.saturating_add(n.saturating_mul(times))
                        }
                        Count::Previous(n) => {
                            previous = previous.saturating_add(n.saturating_mul(times));
                        }
                    }
                }
                if current > 0
                    && let Some(h) = spike_hit(&rule, *port, *bucket, current, previous)
                {
                    out.push((h, 1));
                }
            },
        )
        .map(|(_, hit)| hit)
}

/// The hits of every rule of `set`: criteria rules over `events` and `cards`,
/// threshold rules over `matches`, spike rules over `events`.
pub fn hits<'s>(
    set: &RuleSet,
    events: VecCollection<'s, Time, SensorEvent>,
    matches: VecCollection<'s, Time, Match>,
    cards: VecCollection<'s, Time, ListedCard>,
) -> VecCollection<'s, Time, RuleHit> {
    let parts: Vec<VecCollection<'s, Time, RuleHit>> = set
        .rules
        .iter()
        .map(|rule| match rule {
            Rule::Criteria(r) => criteria(r, events.clone(), cards.clone()),
            Rule::Threshold(r) => threshold(r, matches.clone()),
            Rule::Spike(r) => spike(r, events.clone()),
        })
        .collect();
    // An empty rule set still yields a (never-changing) collection in this scope.
    let empty = events
        .filter(|_| false)
        .map(|_| None::<RuleHit>)
        .flat_map(|h| h);
    empty.concatenate(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Purchase;

    const SHIPPED: &str = include_str!("../../../deploy/config/rules.toml");

    #[test]
    fn shipped_rules_file_loads() {
        let set = RuleSet::from_toml(SHIPPED).unwrap();
        let ids: Vec<&str> = set.rules.iter().map(|r| r.meta().id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "airline-last-minute-foreign-compromised-card",
                "indicator-victim-surge",
                "darknet-port-spike"
            ]
        );
        let Rule::Criteria(airline) = &set.rules[0] else {
            panic!("the first rule is the airline criteria rule");
        };
        assert_eq!(airline.meta.version, "1");
        assert_eq!(airline.max_hours_before_departure, Some(24));
        assert!(airline.card_on_list && airline.ip_country_differs);
        assert_eq!(airline.min_held, 3);
        let Rule::Spike(spike) = &set.rules[2] else {
            panic!("the third rule is the spike rule");
        };
        assert_eq!(spike.factor_milli, 3000);
        assert_eq!(spike.baseline_buckets, 24);
        assert!(
            set.rules[1].meta().version.starts_with("sha256:"),
            "without `version`, the version is the content hash"
        );
    }

    fn field_error(text: &str) -> (String, String) {
        match RuleSet::from_toml(text) {
            Err(RuleError::Field { rule, field, .. }) => (rule, field),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_rule_and_the_field() {
        let ok = "[[rule]]\nid = \"t\"\nkind = \"threshold\"\nmin_victims = 3\nwindow_secs = 60\n";
        assert!(RuleSet::from_toml(ok).is_ok());
        let cases = [
            (ok.replace("min_victims = 3", "min_victims = \"3\""), "t", "min_victims"),
            (ok.replace("min_victims = 3\n", ""), "t", "min_victims"),
            (ok.replace("window_secs = 60", "window_secs = 0"), "t", "window_secs"),
            (format!("{ok}colour = 1\n"), "t", "colour"),
            (ok.replace("threshold", "tresh"), "t", "kind"),
            (ok.replace("id = \"t\"\n", ""), "#1", "id"),
            (ok.replace("id = \"t\"", "id = \"a b\""), "a b", "id"),
            (
                "[[rule]]\nid = \"s\"\nkind = \"spike\"\nbaseline_buckets = 3\nfactor = \"x\"\nmin_count = 1\n"
                    .to_string(),
                "s",
                "factor",
            ),
            (
                "[[rule]]\nid = \"c\"\nkind = \"criteria\"\ncard_on_list = true\nmin_held = 2\n"
                    .to_string(),
                "c",
                "min_held",
            ),
            (
                "[[rule]]\nid = \"c\"\nkind = \"criteria\"\n".to_string(),
                "c",
                "card_on_list",
            ),
        ];
        for (text, rule, field) in cases {
            assert_eq!(
                field_error(&text),
                (rule.to_string(), field.to_string()),
                "{text}"
            );
        }
        assert_eq!(
            RuleSet::from_toml(&format!("{ok}{ok}")),
            Err(RuleError::DuplicateId("t".into()))
        );
        assert!(matches!(
            RuleSet::from_toml("rules = 1"),
            Err(RuleError::UnknownKey(_))
        ));
        assert!(matches!(
            RuleSet::from_toml("[[rule]"),
            Err(RuleError::Toml(_))
        ));
        assert_eq!(RuleSet::from_toml("").unwrap().rules.len(), 0);
    }

    #[test]
    fn content_version_ignores_layout_but_not_content() {
        let a = "[[rule]]\nid = \"t\"\nkind = \"threshold\"\nmin_victims = 3\nwindow_secs = 60\n";
        let b = "# note\n[[rule]]\nwindow_secs = 60 # s\nmin_victims = 3\nkind = \"threshold\"\nid = \"t\"\n";
        let c = a.replace("min_victims = 3", "min_victims = 4");
        let v = |t: &str| {
            RuleSet::from_toml(t).unwrap().rules[0]
                .meta()
                .version
                .clone()
        };
        assert_eq!(v(a), v(b));
        assert_ne!(v(a), v(&c));
    }

    fn airline() -> CriteriaRule {
        CriteriaRule {
            meta: RuleMeta {
                id: "airline".into(),
                version: "1".into(),
                title: None,
            },
            card_on_list: true,
            card_lists: vec![],
            max_hours_before_departure: Some(24),
            ip_country_differs: true,
            min_held: 3,
        }
    }

    fn purchase(departure_in_min: Option<i64>, src_country: Option<&str>) -> SensorEvent {
        let at: jiff::Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        SensorEvent {
            schema_version: 1,
            event_id: "p1".into(),
            sensor_id: "airline-x".into(),
            country: "FR".into(),
            observed_at: at,
            kind: EventKind::Purchase,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            proto: None,
            domain: None,
            url: None,
            file_hashes: schemas::FileHashes::default(),
            email: None,
            wallet: None,
            victim_ip: None,
            signature: None,
            purchase: Some(Box::new(Purchase {
                card_ref: "tok-1".into(),
                card_country: "FR".into(),
                src_country: src_country.map(str::to_string),
                departure_at: departure_in_min.map(|m| {
                    jiff::Timestamp::from_millisecond(at.as_millisecond() + m * 60_000).unwrap()
                }),
                merchant: None,
                amount_minor: None,
                currency: None,
            })),
        }
    }

    #[test]
    fn criteria_hit_explains_each_criterion() {
        let lists = vec!["bank-a".to_string()];
        let hit = criteria_hit(&airline(), &purchase(Some(90), Some("NG")), &lists).unwrap();
        assert_eq!(hit.key, "airline-x/p1");
        assert_eq!(hit.rule_version, "1");
        let names: Vec<(&str, bool)> = hit
            .criteria
            .iter()
            .map(|c| (c.name.as_str(), c.held))
            .collect();
        assert_eq!(
            names,
            vec![
                ("card_on_list", true),
                ("bought_before_departure", true),
                ("ip_country_differs", true)
            ]
        );
        assert_eq!(
            hit.criteria[1].detail,
            "bought 90 min before departure (limit 24 h)"
        );
        assert_eq!(hit.criteria[2].detail, "buyer IP in NG, card issued in FR");
        // Each criterion failing on its own stops the hit.
        assert!(criteria_hit(&airline(), &purchase(Some(90), Some("NG")), &[]).is_none());
        assert!(criteria_hit(&airline(), &purchase(Some(24 * 60), Some("NG")), &lists).is_none());
        assert!(criteria_hit(&airline(), &purchase(Some(-5), Some("NG")), &lists).is_none());
        assert!(criteria_hit(&airline(), &purchase(None, Some("NG")), &lists).is_none());
        assert!(criteria_hit(&airline(), &purchase(Some(90), Some("FR")), &lists).is_none());
        assert!(criteria_hit(&airline(), &purchase(Some(90), None), &lists).is_none());
        // Two of three, with the failing one explained.
        let lenient = CriteriaRule {
            min_held: 2,
            ..airline()
        };
        let hit = criteria_hit(&lenient, &purchase(Some(90), Some("FR")), &lists).unwrap();
        assert!(!hit.criteria[2].held);
        // Only the named lists count.
        let strict_lists = CriteriaRule {
            card_lists: vec!["bank-b".into()],
            ..airline()
        };
        assert!(criteria_hit(&strict_lists, &purchase(Some(90), Some("NG")), &lists).is_none());
    }

    fn spike_rule() -> SpikeRule {
        SpikeRule {
            meta: RuleMeta {
                id: "spike".into(),
                version: "1".into(),
                title: None,
            },
            bucket_secs: 3600,
            baseline_buckets: 4,
            factor_milli: 2500,
            min_count: 10,
        }
    }

    #[test]
    fn spike_needs_both_the_minimum_and_the_factor() {
        // Baseline mean 8 (32 over 4 buckets): 20 = 2.5 × 8 is a spike, 19 is not.
        assert!(spike_hit(&spike_rule(), 445, 0, 20, 32).is_some());
        assert!(spike_hit(&spike_rule(), 445, 0, 19, 32).is_none());
        // After silence, the minimum decides.
        assert!(spike_hit(&spike_rule(), 445, 0, 10, 0).is_some());
        assert!(spike_hit(&spike_rule(), 445, 0, 9, 0).is_none());
        let hit = spike_hit(&spike_rule(), 445, 7_200_000, 20, 32).unwrap();
        assert_eq!(hit.key, "port:445");
        assert_eq!(
            (hit.window_start_ms, hit.window_end_ms),
            (7_200_000, 10_800_000)
        );
        assert_eq!(hit.id, alert_id("spike", "port:445", 7_200_000));
        assert_eq!(
            hit.criteria[1].detail,
            "20 hits, at least 2.500 × the baseline 8.000 (the mean of 32 hits over the 4 previous buckets)"
        );
    }

    #[test]
    fn windows_floor_toward_minus_infinity() {
        assert_eq!(window_start(3_599_999, 3_600_000), 0);
        assert_eq!(window_start(-1, 3_600_000), -3_600_000);
    }
}
