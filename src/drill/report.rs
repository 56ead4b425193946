//! `fusion drill report NAME`: the scores of an exercise drill, computed from the files
//! `fusion drill run NAME` wrote into `<drill-dir>/<NAME>/`.
//!
//! The report reads the drill's outputs and nothing else (no broker, no state directory),
//! so it can be run any time after the drill, as often as wanted, and gives the same
//! figures each time. What it reads:
//!
//! - `drill.json`: the drill's name and period `[from_ms, to_ms]` in the drill's (shifted)
//!   logical time; required.
//! - `alerts.jsonl`: alert changes as `fusion run --alerts-out` writes them; required.
//! - `routing.jsonl`: routing changes as `fusion run --routing-out` writes them
//!   (`{"time": …, "change": …}`, each a +1 or -1 of a routing view); required.
//! - `deliveries.jsonl`: one delivery decision per (alert change, bureau); optional (a
//!   drill run without subscriptions writes none, and the report says so).
//! - `injects.jsonl`: the injected records as applied; optional.
//! - `truth.json`: the generated scenario's ground truth; optional.
//!
//! A missing required file, or any line that is not a valid record, is an error naming
//! the file (and the line); nothing is skipped. Empty files give a report of zeros.
//!
//! # What each figure counts
//!
//! Only what happened inside the drill period counts: a routing change, a delivery or an
//! alert change whose logical time lies in `[from_ms, to_ms]` (both ends included).
//!
//! Per center (every center named in the routing output: owners, duty, digests,
//! escalations, rejected actions):
//!
//! - **received**: distinct alerts that reached the center as owner during the period:
//!   opened while it was on duty, or handed over to it.
//! - **acknowledged / time to acknowledge**: of those, the alerts that reached the center
//!   open (not yet acknowledged) and that the center took out of `open` while it owned
//!   them. The time is the logical time from the alert reaching the center (its opening,
//!   or the handover) to the first routing record showing it acknowledged, resolved or
//!   marked a false positive (closing an alert also stops the SLA clock, so it counts as
//!   the acknowledgement). Median and p90 are nearest-rank percentiles (the smallest
//!   sample with at least 50 %, 90 % of the samples at or below it). An acknowledgement
//!   is credited to the center owning the alert just before it: officer actions take
//!   effect before a handover at the same instant, and an outgoing center's officer who
//!   acknowledges during the handover overlap, after the alert moved, is credited to the
//!   incoming center (routing records name the owner, not the acting officer's center).
//! - **never acknowledged**: alerts that reached the center open and left it (or the
//!   drill ended) still open.
//! - **arrived acknowledged**: alerts handed over to the center already acknowledged or
//!   closed, so there was nothing to acknowledge. received = acknowledged + never
//!   acknowledged + arrived acknowledged.
//! - An alert carried over from before the period (the drill's starting state: its first
//!   routing change in the file withdraws a record the file never added) counts as
//!   received by its owner then, at its first change in the period; if it was open, its
//!   clock starts at the start of the period (when the drill's officers got it), and if
//!   it was acknowledged already, it counts as arrived acknowledged. A carried-over alert
//!   whose routing never changes during the period does not appear in the file, so it is
//!   not counted.
//! - **escalations**: alerts that escalated (once per alert) while the center owned them,
//!   split into missed deadlines and officers' escalations.
//! - **handovers received / accepted**: handover digests whose incoming center is this
//!   one and whose instant lies in the period; accepted when a digest names the incoming
//!   center's acceptance (`accepted`), whenever it was given.
//! - **rejected actions**: officer actions of this center rejected by routing (not the
//!   owner, or accepting a handover not theirs).
//!
//! Per bureau (recipient in `deliveries.jsonl`): **delivered** and **withheld** count the
//! lines (one per alert change and bureau) with each decision, and the most frequent
//! reasons for withholding.
//!
//! Planted items: every inject with `planted = true` (by indicator id, else by value), and
//! from `truth.json` every campaign indicator that some generated event must match and
//! whose latest version is not revoked (the items Fusion must detect). An item is
//! **detected** when an alert change `opened` in the period names it: its
//! `alert.indicator.id` is the item's indicator id (for truth items, also one of the
//! corroborating OSINT indicators listing the same value), or its `alert.indicator.value`
//! is the item's value. Otherwise it is **missed**.
//!
//! Caveat: `truth.json` describes the whole generated scenario. A drill of part of it
//! (`--from`/`--to`) still lists every campaign indicator, so one whose events all lie
//! outside the period shows as missed (the truth records no event times per match).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use schemas::routing::{AlertRouting, AlertState, EscalationReason, RoutingChange};
use schemas::{AlertChange, ChangeKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The drill's description.
pub const DRILL_FILE: &str = "drill.json";
/// The drill's alert changes.
pub const ALERTS_FILE: &str = "alerts.jsonl";
/// The drill's routing changes.
pub const ROUTING_FILE: &str = "routing.jsonl";
/// The deliveries the drill would have made.
pub const DELIVERIES_FILE: &str = "deliveries.jsonl";
/// The injected records as applied.
pub const INJECTS_FILE: &str = "injects.jsonl";

/// How many withholding reasons each bureau lists.
const TOP_REASONS: usize = 3;

/// Arguments of `fusion drill report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The drill's name (its directory under --drill-dir).
    pub name: String,
    /// The directory holding one directory per drill.
    #[arg(long, default_value = "fusion-drills")]
    pub drill_dir: PathBuf,
    /// Prints JSON instead of the text table.
    #[arg(long)]
    pub json: bool,
    /// Writes the report to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Why a drill could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The drill name is not a plain directory name.
    #[error("the drill name {0:?} is not a directory name (no path separators, no `..`)")]
    BadName(String),
    /// The drill directory does not exist.
    #[error(
        "no drill directory {}: run `fusion drill run NAME` first, or pass --drill-dir where the drills are",
        .0.display()
    )]
    NoDrill(PathBuf),
    /// A required file of the drill is missing.
    #[error(
        "{} is missing: the drill did not write it (was `fusion drill run` interrupted?)",
        .0.display()
    )]
    Missing(PathBuf),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A whole-file JSON document is not what it should be.
    #[error("{} is not valid: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSON-lines file is not a valid record.
    #[error("{} line {line}: {detail}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        detail: String,
    },
}

/// `drill.json`: what `fusion drill run` replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillInfo {
    /// The drill's name.
    pub name: String,
    /// Start of the drill period, logical ms (shifted).
    pub from_ms: i64,
    /// End of the drill period, logical ms (shifted), included.
    pub to_ms: i64,
    /// How far the replay was shifted, ms.
    pub shift_ms: i64,
    /// Replay speed (60 = an hour in a minute).
    pub speed: f64,
    /// What was replayed (a capture file or a broker period).
    pub source: String,
    /// Dataflow workers.
    pub workers: usize,
}

/// The scores of one drill (see the module documentation for what each figure counts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The drill, as `drill.json` describes it.
    pub drill: DrillInfo,
    /// Per center, sorted by name.
    pub centers: Vec<CenterScore>,
    /// Per bureau, sorted by recipient.
    pub bureaus: Vec<BureauScore>,
    /// Whether the drill wrote `deliveries.jsonl` (it does only when run with subscriptions).
    pub deliveries_recorded: bool,
    /// Planted items detected and missed.
    pub planted: PlantedScore,
    /// Injected records applied.
    pub injects: InjectCounts,
    /// Alert changes of the drill.
    pub alerts: AlertCounts,
}

/// One center's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CenterScore {
    /// The center (empty when alerts were routed with no center on duty).
    pub center: String,
    /// Distinct alerts that reached the center as owner.
    pub alerts_received: u64,
    /// Alerts that reached it open and that it acknowledged (or closed).
    pub acknowledged: u64,
    /// Median time to acknowledge, ms (none without acknowledgements).
    pub ack_median_ms: Option<u64>,
    /// 90th percentile time to acknowledge, ms.
    pub ack_p90_ms: Option<u64>,
    /// Alerts that reached it open and were still open when they left it or the drill ended.
    pub never_acknowledged: u64,
    /// Alerts handed over to it already acknowledged or closed.
    pub arrived_acknowledged: u64,
    /// Escalations while it owned the alert (deadline + officer).
    pub escalations: u64,
    /// Of those, acknowledgement deadlines missed.
    pub escalations_deadline: u64,
    /// Of those, escalated by an officer.
    pub escalations_officer: u64,
    /// Handovers to this center (digests).
    pub handovers_received: u64,
    /// Of those, accepted by the center.
    pub handovers_accepted: u64,
    /// Its officers' actions rejected by routing.
    pub rejected_actions: u64,
}

/// One bureau's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BureauScore {
    /// The recipient.
    pub recipient: String,
    /// Alert changes that would have been delivered.
    pub delivered: u64,
    /// Alert changes withheld.
    pub withheld: u64,
    /// The most frequent reasons for withholding, most frequent first.
    pub top_withheld_reasons: Vec<ReasonCount>,
}

/// A reason and how often it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// The reason.
    pub reason: String,
    /// How many withheld deliveries gave it.
    pub count: u64,
}

/// Planted items detected vs missed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlantedScore {
    /// Items planted (injects and ground truth).
    pub planted: u64,
    /// Items detected.
    pub detected: u64,
    /// Items missed.
    pub missed: u64,
    /// Every item, injects first (in file order), then the truth's (by campaign).
    pub items: Vec<PlantedItem>,
}

/// Where a planted item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A line of `injects.jsonl` with `planted = true`.
    Inject,
    /// A campaign indicator of `truth.json`.
    Truth,
}

/// One planted item and whether it was detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlantedItem {
    /// Its label (the inject's, or `campaign: kind value (indicator id)`).
    pub label: String,
    /// Inject or ground truth.
    pub origin: Origin,
    /// The indicator that should raise an alert.
    pub indicator_id: Option<String>,
    /// Its value.
    pub value: Option<String>,
    /// Whether an alert opened for it in the period.
    pub detected: bool,
    /// The first such alert.
    pub alert_id: Option<String>,
    /// When that alert opened (logical ms).
    pub detected_at_ms: Option<u64>,
}

/// Injected records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InjectCounts {
    /// Lines of `injects.jsonl`.
    pub applied: u64,
    /// Of those, planted items.
    pub planted: u64,
}

/// The drill's alert changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertCounts {
    /// Alert changes in the period.
    pub changes: u64,
    /// Of those, `opened`.
    pub opened: u64,
    /// Alert changes (in the file, any time) without the drill marking: each one is an
    /// isolation failure and should be zero.
    pub without_drill_marking: u64,
}

/// Runs `fusion drill report`.
pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let dir = drill_path(&args.drill_dir, &args.name)?;
    let report = score(&dir)?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report)?;
        s.push('\n');
        s
    } else {
        render_text(&report)
    };
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the report to standard output")?;
        }
    }
    Ok(())
}

/// `<drill_dir>/<name>`, refusing a name that is not one plain path component.
fn drill_path(drill_dir: &Path, name: &str) -> Result<PathBuf, ReportError> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Ok(drill_dir.join(name)),
        _ => Err(ReportError::BadName(name.to_string())),
    }
}

/// The scores, computed from a drill directory (pure apart from reading files).
pub fn score(dir: &Path) -> anyhow::Result<Report> {
    Ok(score_dir(dir)?)
}

fn score_dir(dir: &Path) -> Result<Report, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NoDrill(dir.to_path_buf()));
    }
    let drill: DrillInfo = read_json(&dir.join(DRILL_FILE))?;
    let period = Period {
        from: drill.from_ms,
        to: drill.to_ms,
    };
    let alerts: Vec<AlertChange> = read_lines(&dir.join(ALERTS_FILE), true)?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let routing: Vec<RoutingLine> = read_lines(&dir.join(ROUTING_FILE), true)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let deliveries_path = dir.join(DELIVERIES_FILE);
    let deliveries_recorded = deliveries_path.exists();
    let deliveries: Vec<DeliveryLine> = read_lines(&deliveries_path, false)?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let injects_path = dir.join(INJECTS_FILE);
    let injects: Vec<(usize, InjectLine)> = read_lines(&injects_path, false)?;
    let truth_path = dir.join(scenario::TRUTH_FILE);
    let truth: Option<TruthFile> = if truth_path.exists() {
        Some(read_json(&truth_path)?)
    } else {
        None
    };

    let mut items = inject_items(&injects_path, &injects)?;
    if let Some(truth) = &truth {
        items.extend(truth_items(truth));
    }
    let planted = detect(items, &alerts, period);
    Ok(Report {
        centers: centers(&routing, period),
        bureaus: bureaus(&deliveries, period),
        deliveries_recorded,
        planted,
        injects: InjectCounts {
            applied: injects.len() as u64,
            planted: injects.iter().filter(|(_, i)| i.planted).count() as u64,
        },
        alerts: AlertCounts {
            changes: alerts.iter().filter(|a| period.contains(a.version)).count() as u64,
            opened: alerts
                .iter()
                .filter(|a| a.change == ChangeKind::Opened && period.contains(a.version))
                .count() as u64,
            without_drill_marking: alerts.iter().filter(|a| !a.alert.drill).count() as u64,
        },
        drill,
    })
}

/// The drill period, logical ms, both ends included.
#[derive(Debug, Clone, Copy)]
struct Period {
    from: i64,
    to: i64,
}

impl Period {
    fn contains(self, t: u64) -> bool {
        i64::try_from(t).is_ok_and(|t| self.contains_ms(t))
    }

    fn contains_ms(self, t: i64) -> bool {
        self.from <= t && t <= self.to
    }
}

/// A line of `routing.jsonl`.
#[derive(Debug, Deserialize)]
struct RoutingLine {
    time: u64,
    change: RoutingChange,
}

/// A line of `deliveries.jsonl`.
#[derive(Debug, Deserialize)]
// Read for the format check; the report counts per recipient and decision.
#[allow(dead_code)]
struct DeliveryLine {
    alert_id: String,
    version: u64,
    change: ChangeKind,
    recipient: String,
    decision: Decision,
    reason: String,
}

/// Deliver or withhold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Decision {
    Deliver,
    Withhold,
}

/// A line of `injects.jsonl`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Read for the format check.
struct InjectLine {
    at_ms: i64,
    time_ms: u64,
    topic: String,
    label: String,
    planted: bool,
    indicator_id: Option<String>,
    value: Option<String>,
}

/// The parts of `truth.json` (scenario's `Truth`) the report needs.
#[derive(Debug, Deserialize)]
struct TruthFile {
    campaigns: Vec<TruthCampaign>,
    expected_matches: Vec<(String, String)>,
    revoked_indicators: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TruthCampaign {
    id: String,
    infrastructure: Vec<TruthInfrastructure>,
}

#[derive(Debug, Deserialize)]
struct TruthInfrastructure {
    kind: String,
    value: String,
    indicator_id: Option<String>,
    #[serde(default)]
    corroborating_ids: Vec<String>,
}

/// Reads a whole-file JSON document; a missing file is [`ReportError::Missing`].
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ReportError::Missing(path.to_path_buf()),
        _ => ReportError::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a JSON-lines file, each line with its number (from 1). A missing file is an
/// error when `required`, else no lines. Any line that is not a valid `T` (an empty one
/// included) is an error naming the file and the line.
fn read_lines<T: DeserializeOwned>(
    path: &Path,
    required: bool,
) -> Result<Vec<(usize, T)>, ReportError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReportError::Missing(path.to_path_buf()));
        }
        Err(source) => {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let bad = |detail: String| ReportError::Line {
            path: path.to_path_buf(),
            line: n,
            detail,
        };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            return Err(bad("an empty line where a record should be".into()));
        }
        let value = serde_json::from_str(&line).map_err(|e| bad(json_detail(&e)))?;
        out.push((n, value));
    }
    Ok(out)
}

/// A serde error without its "at line 1" (the line is the file's, named separately).
fn json_detail(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    format!("{message} (column {})", e.column())
}

/// Per-center tallies while reading routing.
#[derive(Debug, Default)]
struct CenterTally {
    received: BTreeSet<String>,
    /// Alerts that reached the center open: when, and when it acknowledged them.
    clocks: BTreeMap<String, AckClock>,
    escalations_deadline: u64,
    escalations_officer: u64,
    /// Handovers to this center by (instant, from): accepted or not.
    handovers: BTreeMap<(i64, String), bool>,
    rejected: u64,
}

#[derive(Debug)]
struct AckClock {
    started: u64,
    acked: Option<u64>,
}

/// The per-center figures from the routing changes.
fn centers(lines: &[RoutingLine], period: Period) -> Vec<CenterScore> {
    let mut by_time: BTreeMap<u64, Vec<&RoutingChange>> = BTreeMap::new();
    for line in lines {
        by_time.entry(line.time).or_default().push(&line.change);
    }
    let mut tallies: BTreeMap<String, CenterTally> = BTreeMap::new();
    // Each alert's routing records, with their counts (a record is replaced by a -1 of
    // the old and a +1 of the new at the same time, in either order).
    let mut records: BTreeMap<&str, BTreeMap<&AlertRouting, isize>> = BTreeMap::new();
    // Each alert's last owner and state; kept when the alert is retracted, so that a
    // re-derived alert does not arrive again.
    let mut last: BTreeMap<&str, (&str, AlertState)> = BTreeMap::new();
    let mut escalated: BTreeSet<&str> = BTreeSet::new();
    for (&t, changes) in &by_time {
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        for change in changes {
            match change {
                RoutingChange::Alert { diff, routing } => {
                    let id = routing.alert_id.as_str();
                    *records.entry(id).or_default().entry(routing).or_default() += diff;
                    touched.insert(id);
                }
                RoutingChange::Escalation { diff, escalation } => {
                    if *diff > 0
                        && period.contains(t)
                        && escalated.insert(escalation.alert_id.as_str())
                    {
                        let tally = tallies.entry(escalation.owner.clone()).or_default();
                        match escalation.reason {
                            EscalationReason::Deadline => tally.escalations_deadline += 1,
                            EscalationReason::Officer { .. } => tally.escalations_officer += 1,
                        }
                    }
                }
                RoutingChange::Handover { diff, digest } => {
                    if *diff > 0 {
                        tallies.entry(digest.from.clone()).or_default();
                        let at = digest.at.as_millisecond();
                        let tally = tallies.entry(digest.to.clone()).or_default();
                        if period.contains_ms(at) {
                            let accepted = tally
                                .handovers
                                .entry((at, digest.from.clone()))
                                .or_default();
                            *accepted |= digest.accepted.is_some();
                        }
                    }
                }
                RoutingChange::Duty { diff, duty } => {
                    if *diff > 0 {
                        tallies.entry(duty.center.clone()).or_default();
                    }
                }
                RoutingChange::Rejected { diff, action } => {
                    let tally = tallies.entry(action.action.center.clone()).or_default();
                    if *diff > 0 && period.contains(t) {
                        tally.rejected += 1;
                    }
                }
            }
        }
        for id in touched {
            let Some(r) = records.get_mut(id) else {
                continue;
            };
            // What this change replaced: on an alert's first change in the file, a
            // record withdrawn at the same time is its state from before the period.
            let replaced = r
                .iter()
                .filter(|(_, n)| **n < 0)
                .map(|(r, _)| *r)
                .next_back();
            r.retain(|_, n| *n != 0);
            // One record is present at a time; should several be, the greatest wins
            // (the output is sorted, so the choice is the same on every run).
            let Some(now) = r
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, _)| *r)
                .next_back()
            else {
                continue; // Retracted.
            };
            let prev = match last.get(id) {
                Some(p) => Some(*p),
                None => replaced.map(|before| {
                    // Carried over from before the period: its owner then received it,
                    // and if open, its clock starts with the period.
                    if period.contains(t) {
                        let tally = tallies.entry(before.owner.clone()).or_default();
                        tally.received.insert(id.to_string());
                        if before.state == AlertState::Open {
                            tally.clocks.insert(
                                id.to_string(),
                                AckClock {
                                    started: u64::try_from(period.from).unwrap_or(0).min(t),
                                    acked: None,
                                },
                            );
                        }
                    }
                    (before.owner.as_str(), before.state)
                }),
            };
            // Officer actions take effect before a handover at the same instant, so an
            // alert that leaves `open` is credited to its owner before this change.
            if let Some((owner, AlertState::Open)) = prev
                && now.state != AlertState::Open
                && let Some(clock) = tallies
                    .get_mut(owner)
                    .and_then(|tally| tally.clocks.get_mut(id))
            {
                clock.acked.get_or_insert(t);
            }
            let arrived = prev.is_none_or(|(owner, _)| owner != now.owner);
            if arrived && period.contains(t) {
                let tally = tallies.entry(now.owner.clone()).or_default();
                tally.received.insert(id.to_string());
                // A new alert is open on arrival even if acknowledged at its first
                // instant (time 0); a handed-over one is open if it still is.
                if prev.is_none() || now.state == AlertState::Open {
                    let clock = tally.clocks.entry(id.to_string()).or_insert(AckClock {
                        started: t,
                        acked: None,
                    });
                    if prev.is_none() && now.state != AlertState::Open {
                        clock.acked.get_or_insert(t);
                    }
                }
            }
            last.insert(id, (now.owner.as_str(), now.state));
        }
    }
    tallies
        .into_iter()
        .map(|(center, t)| {
            let mut times: Vec<u64> = t
                .clocks
                .values()
                .filter_map(|c| c.acked.map(|a| a.saturating_sub(c.started)))
                .collect();
            times.sort_unstable();
            let acknowledged = times.len() as u64;
            let open_arrivals = t.clocks.len() as u64;
            CenterScore {
                center,
                alerts_received: t.received.len() as u64,
                acknowledged,
                ack_median_ms: nearest_rank(&times, 50),
                ack_p90_ms: nearest_rank(&times, 90),
                never_acknowledged: open_arrivals - acknowledged,
                arrived_acknowledged: (t.received.len() as u64).saturating_sub(open_arrivals),
                escalations: t.escalations_deadline + t.escalations_officer,
                escalations_deadline: t.escalations_deadline,
                escalations_officer: t.escalations_officer,
                handovers_received: t.handovers.len() as u64,
                handovers_accepted: t.handovers.values().filter(|a| **a).count() as u64,
                rejected_actions: t.rejected,
            }
        })
        .collect()
}

/// The nearest-rank `p`th percentile of `sorted`: the smallest sample with at least `p`
/// percent of the samples at or below it.
fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Deliveries per bureau.
fn bureaus(lines: &[DeliveryLine], period: Period) -> Vec<BureauScore> {
    let mut by: BTreeMap<&str, (u64, BTreeMap<&str, u64>)> = BTreeMap::new();
    for d in lines.iter().filter(|d| period.contains(d.version)) {
        let (delivered, reasons) = by.entry(d.recipient.as_str()).or_default();
        match d.decision {
            Decision::Deliver => *delivered += 1,
            Decision::Withhold => *reasons.entry(d.reason.as_str()).or_default() += 1,
        }
    }
    by.into_iter()
        .map(|(recipient, (delivered, reasons))| {
            let withheld = reasons.values().sum();
            let mut top: Vec<ReasonCount> = reasons
                .into_iter()
                .map(|(reason, count)| ReasonCount {
                    reason: reason.to_string(),
                    count,
                })
                .collect();
            // Most frequent first; ties by reason, so every run lists the same.
            top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
            top.truncate(TOP_REASONS);
            BureauScore {
                recipient: recipient.to_string(),
                delivered,
                withheld,
                top_withheld_reasons: top,
            }
        })
        .collect()
}

/// A planted item before detection: what names it.
struct Candidate {
    label: String,
    origin: Origin,
    indicator_id: Option<String>,
    /// Other indicator ids that count (a truth item's corroborating indicators).
    also: Vec<String>,
    value: Option<String>,
}

/// The planted injects; one that names neither an indicator nor a value is an error.
fn inject_items(
    path: &Path,
    injects: &[(usize, InjectLine)],
) -> Result<Vec<Candidate>, ReportError> {
    injects
        .iter()
        .filter(|(_, i)| i.planted)
        .map(|(n, i)| {
            if i.indicator_id.is_none() && i.value.is_none() {
                return Err(ReportError::Line {
                    path: path.to_path_buf(),
                    line: *n,
                    detail: format!(
                        "the planted inject {:?} names neither an indicator_id nor a value, so it cannot be detected",
                        i.label
                    ),
                });
            }
            Ok(Candidate {
                label: i.label.clone(),
                origin: Origin::Inject,
                indicator_id: i.indicator_id.clone(),
                also: Vec::new(),
                value: i.value.clone(),
            })
        })
        .collect()
}

/// The truth's items that must be detected: published campaign indicators that some
/// event must match and whose latest version is not revoked (each once).
fn truth_items(truth: &TruthFile) -> Vec<Candidate> {
    let matched: BTreeSet<&str> = truth
        .expected_matches
        .iter()
        .map(|(_, ind)| ind.as_str())
        .collect();
    let revoked: BTreeSet<&str> = truth
        .revoked_indicators
        .iter()
        .map(String::as_str)
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in &truth.campaigns {
        for infra in &c.infrastructure {
            let Some(id) = &infra.indicator_id else {
                continue;
            };
            if !matched.contains(id.as_str()) || revoked.contains(id.as_str()) {
                continue;
            }
            if seen.insert(id.clone()) {
                out.push(Candidate {
                    label: format!("{}: {} {} ({id})", c.id, infra.kind, infra.value),
                    origin: Origin::Truth,
                    indicator_id: Some(id.clone()),
                    also: infra.corroborating_ids.clone(),
                    value: Some(infra.value.clone()),
                });
            }
        }
    }
    out
}

/// Marks each candidate detected by the first alert opened in the period that names it.
fn detect(items: Vec<Candidate>, alerts: &[AlertChange], period: Period) -> PlantedScore {
    // The first opening (version, alert id) per indicator id and per value.
    let mut by_id: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    let mut by_value: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for a in alerts
        .iter()
        .filter(|a| a.change == ChangeKind::Opened && period.contains(a.version))
    {
        let first = (a.version, a.alert.id.as_str());
        for (map, key) in [
            (&mut by_id, a.alert.indicator.id.as_str()),
            (&mut by_value, a.alert.indicator.value.as_str()),
        ] {
            let e = map.entry(key).or_insert(first);
            *e = (*e).min(first);
        }
    }
    let items: Vec<PlantedItem> = items
        .into_iter()
        .map(|c| {
            let hit = c
                .indicator_id
                .iter()
                .chain(&c.also)
                .filter_map(|id| by_id.get(id.as_str()))
                .chain(c.value.as_deref().and_then(|v| by_value.get(v)))
                .min()
                .copied();
            PlantedItem {
                label: c.label,
                origin: c.origin,
                indicator_id: c.indicator_id,
                value: c.value,
                detected: hit.is_some(),
                alert_id: hit.map(|(_, id)| id.to_string()),
                detected_at_ms: hit.map(|(t, _)| t),
            }
        })
        .collect();
    let detected = items.iter().filter(|i| i.detected).count() as u64;
    PlantedScore {
        planted: items.len() as u64,
        detected,
        missed: items.len() as u64 - detected,
        items,
    }
}

/// A duration for people: `350ms`, `45s`, `2m 05s`, `1h 02m 03s`.
fn human(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A logical time as an instant (logical time is Unix ms).
fn instant(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms} ms"), |t| t.to_string())
}

/// Rows as columns: the first left-aligned, the others right-aligned.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                text.push_str(&format!("{cell:<w$}"));
            } else {
                text.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// The text report: the drill, a table per center and per bureau, the planted items,
/// and a footer saying what each figure counts.
pub fn render_text(r: &Report) -> String {
    let d = &r.drill;
    let mut out = format!(
        "Drill {}: {} to {} ({}, {}, from {}, {} workers)\n\n",
        d.name,
        instant(d.from_ms),
        instant(d.to_ms),
        match d.shift_ms {
            0 => "not shifted".to_string(),
            s if s < 0 => format!("shifted by -{}", human(s.unsigned_abs())),
            s => format!("shifted by {}", human(s.unsigned_abs())),
        },
        if d.speed > 0.0 {
            format!("speed {}x", d.speed)
        } else {
            "as fast as it could".to_string()
        },
        d.source,
        d.workers
    );
    out.push_str("Centers\n");
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), human);
    let rows: Vec<Vec<String>> = r
        .centers
        .iter()
        .map(|c| {
            vec![
                if c.center.is_empty() {
                    "(no center on duty)".to_string()
                } else {
                    c.center.clone()
                },
                c.alerts_received.to_string(),
                c.acknowledged.to_string(),
                opt(c.ack_median_ms),
                opt(c.ack_p90_ms),
                c.never_acknowledged.to_string(),
                c.arrived_acknowledged.to_string(),
                format!("{} ({} deadline)", c.escalations, c.escalations_deadline),
                format!("{}/{}", c.handovers_accepted, c.handovers_received),
                c.rejected_actions.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "center",
            "received",
            "acked",
            "ack median",
            "ack p90",
            "never acked",
            "arrived acked",
            "escalations",
            "handovers accepted",
            "rejected",
        ],
        &rows,
    );
    if r.centers.is_empty() {
        out.push_str("(no routing in the drill)\n");
    }

    out.push_str("\nDeliveries per bureau\n");
    let rows: Vec<Vec<String>> = r
        .bureaus
        .iter()
        .map(|b| {
            let reasons: Vec<String> = b
                .top_withheld_reasons
                .iter()
                .map(|c| format!("{} ({})", c.reason, c.count))
                .collect();
            vec![
                b.recipient.clone(),
                b.delivered.to_string(),
                b.withheld.to_string(),
                reasons.join("; "),
            ]
        })
        .collect();
    // The reasons column is free text: left-aligned at the end of the line.
    let mut bureau_table = String::new();
    table(
        &mut bureau_table,
        &["bureau", "delivered", "withheld", ""],
        &rows
            .iter()
            .map(|r| r[..3].iter().cloned().chain([String::new()]).collect())
            .collect::<Vec<_>>(),
    );
    for (i, line) in bureau_table.lines().enumerate() {
        out.push_str(line);
        match i.checked_sub(1).and_then(|row| rows.get(row)) {
            Some(row) if !row[3].is_empty() => {
                out.push_str("  withheld for: ");
                out.push_str(&row[3]);
            }
            _ => {}
        }
        out.push('\n');
    }
    if !r.deliveries_recorded {
        out.push_str("(no deliveries.jsonl: the drill ran without --subscriptions)\n");
    } else if r.bureaus.is_empty() {
        out.push_str("(no deliveries in the drill)\n");
    }

    let p = &r.planted;
    out.push_str(&format!(
        "\nPlanted items: {} detected, {} missed, of {} ({} injects applied, {} planted)\n",
        p.detected, p.missed, p.planted, r.injects.applied, r.injects.planted
    ));
    for item in p.items.iter().filter(|i| !i.detected) {
        out.push_str(&format!("  missed: {}\n", item.label));
    }
    out.push_str(&format!(
        "\nAlert changes in the period: {} ({} opened)\n",
        r.alerts.changes, r.alerts.opened
    ));
    if r.alerts.without_drill_marking > 0 {
        out.push_str(&format!(
            "WARNING: {} alert changes lack the drill marking (isolation failure)\n",
            r.alerts.without_drill_marking
        ));
    }
    out.push_str(FOOTER);
    out
}

/// What each figure of the text report counts.
const FOOTER: &str = "
What the figures count (logical time; only what happened in the drill period counts):
  received       distinct alerts that reached the center as owner (opened on its watch, handed over to it, or on its queue when the drill began)
  acked          of those, alerts that reached it open and that it acknowledged, resolved or marked false positive while owning them
  ack median/p90 nearest-rank percentiles of the time from the alert reaching the center to that acknowledgement
  never acked    alerts that reached it open and left it, or the drill ended, still open
  arrived acked  alerts handed over to it already acknowledged or closed (received = acked + never acked + arrived acked)
  escalations    alerts that escalated while it owned them (missed acknowledgement deadlines among them)
  handovers      handover digests to this center accepted by it / all handovers to it
  rejected       its officers' actions refused by routing (not the owner)
  delivered, withheld  lines of deliveries.jsonl (one per alert change and bureau) per decision; the most frequent reasons
  planted        injects marked planted and the ground truth's campaign indicators that events must match (not revoked);
                 detected when an alert opened in the period names the indicator (id, corroborating id or value)
";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;

    use schemas::routing::{
        Acceptance, DutyStatus, Escalation, HandoverDigest, RejectedAction, SeverityCounts,
    };
    use schemas::{ActionKind, Alert, DeskAction, ErrorCode, Severity};
    use serde_json::json;

    /// The drill period starts at T0 and lasts a day.
    const T0: u64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z
    const MIN: u64 = 60_000;
    const DAY: u64 = 86_400_000;

    fn ts(ms: u64) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(ms as i64).unwrap()
    }

    /// A drill directory under construction.
    struct Drill {
        dir: tempfile::TempDir,
        alerts: Vec<String>,
        routing: Vec<String>,
        deliveries: Vec<String>,
    }

    impl Drill {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let drill = json!({"name": "darklys", "from_ms": T0, "to_ms": T0 + DAY,
                "shift_ms": 0, "speed": 600.0, "source": "capture.bin", "workers": 2});
            std::fs::write(dir.path().join(DRILL_FILE), drill.to_string()).unwrap();
            Self {
                dir,
                alerts: Vec::new(),
                routing: Vec::new(),
                deliveries: Vec::new(),
            }
        }

        fn route(&mut self, time: u64, change: RoutingChange) {
            self.routing
                .push(json!({"time": time, "change": change}).to_string());
        }

        /// The +1 of an alert's routing record at `time` (and the -1 of `before`, if any).
        fn record(&mut self, time: u64, before: Option<&AlertRouting>, now: &AlertRouting) {
            if let Some(b) = before {
                self.route(
                    time,
                    RoutingChange::Alert {
                        diff: -1,
                        routing: b.clone(),
                    },
                );
            }
            self.route(
                time,
                RoutingChange::Alert {
                    diff: 1,
                    routing: now.clone(),
                },
            );
        }

        fn opened(&mut self, version: u64, id: &str, indicator: &str, value: &str) {
            let change = AlertChange {
                change: ChangeKind::Opened,
                version,
                alert: alert(id, indicator, value),
            };
            self.alerts.push(serde_json::to_string(&change).unwrap());
        }

        fn delivery(&mut self, version: u64, recipient: &str, decision: &str, reason: &str) {
            self.deliveries.push(
                json!({"alert_id": "a", "version": version, "change": "opened",
                    "recipient": recipient, "decision": decision, "reason": reason})
                .to_string(),
            );
        }

        /// Writes the JSON-lines files and returns the directory.
        fn write(&self) -> &Path {
            for (name, lines) in [
                (ALERTS_FILE, &self.alerts),
                (ROUTING_FILE, &self.routing),
                (DELIVERIES_FILE, &self.deliveries),
            ] {
                let mut text = lines.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                std::fs::write(self.dir.path().join(name), text).unwrap();
            }
            self.dir.path()
        }

        fn file(&self, name: &str, text: &str) {
            std::fs::write(self.dir.path().join(name), text).unwrap();
        }
    }

    fn alert(id: &str, indicator: &str, value: &str) -> Alert {
        serde_json::from_value(json!({
            "schema_version": 1, "id": id, "rule": "indicator_match", "rule_version": 1,
            "key": indicator, "window_start": "2026-11-01T00:00:00Z",
            "window_end": "2026-11-02T00:00:00Z", "severity": "high", "title": "t",
            "indicator": {"id": indicator, "kind": "domain", "value": value,
                "source_kind": "partner", "source_id": "acme", "confidence": 90,
                "created": "2026-11-01T00:00:00Z"},
            "marking": {"tlp": "AMBER", "owner": "acme", "sharing": []},
            "first_seen": "2026-11-01T00:00:00Z", "last_seen": "2026-11-01T00:00:00Z",
            "sightings": 1, "hourly": [], "sensors": 1, "victims": 0, "victim_ips": [],
            "victims_by_country": [], "accounts": [], "countries": ["FR"],
            "retroactive_sightings": 0, "event_ids": ["e1"], "summarised_sightings": 0,
            "drill": true,
            "provenance": {"input_keys": [], "sources": [], "corroborated_confidence": 90}
        }))
        .unwrap()
    }

    fn routing(id: &str, owner: &str, opened_at: u64) -> AlertRouting {
        AlertRouting {
            alert_id: id.into(),
            owner: owner.into(),
            opened_by: owner.into(),
            opened_at: ts(opened_at),
            state: AlertState::Open,
            severity: Severity::High,
            original_severity: Severity::High,
            ack_deadline: Some(ts(opened_at + 15 * MIN)),
            acknowledged_by: None,
            assigned_to: None,
            notes: Vec::new(),
            escalation: None,
        }
    }

    fn acked(r: &AlertRouting) -> AlertRouting {
        AlertRouting {
            state: AlertState::Acknowledged,
            acknowledged_by: Some("officer-1".into()),
            ..r.clone()
        }
    }

    fn moved(r: &AlertRouting, to: &str) -> AlertRouting {
        AlertRouting {
            owner: to.into(),
            ..r.clone()
        }
    }

    fn digest(at: u64, from: &str, to: &str, accepted_at: Option<u64>) -> HandoverDigest {
        HandoverDigest {
            at: ts(at),
            from: from.into(),
            to: to.into(),
            counts: SeverityCounts::default(),
            oldest_unacknowledged: None,
            alerts: Vec::new(),
            accepted: accepted_at.map(|t| Acceptance {
                officer_id: "officer-9".into(),
                at: ts(t),
            }),
        }
    }

    fn escalation(id: &str, at: u64, owner: &str, reason: EscalationReason) -> Escalation {
        Escalation {
            alert_id: id.into(),
            at: ts(at),
            reason,
            from_severity: Severity::High,
            to_severity: Severity::Critical,
            owner: owner.into(),
            notified: None,
        }
    }

    fn center<'a>(r: &'a Report, name: &str) -> &'a CenterScore {
        r.centers
            .iter()
            .find(|c| c.center == name)
            .unwrap_or_else(|| panic!("no center {name} in {:?}", r.centers))
    }

    /// Lyon opens five alerts; three are acknowledged after 2, 10 and 30 minutes, one is
    /// handed over open to Singapore (which acknowledges it 5 minutes later), one is
    /// acknowledged by Lyon then handed over. One alert opened before the drill period.
    fn handover_drill() -> Drill {
        let mut d = Drill::new();
        let h = T0 + 8 * 60 * MIN; // Handover Lyon -> Singapore.
        d.route(
            T0,
            RoutingChange::Duty {
                diff: 1,
                duty: DutyStatus {
                    center: "Lyon".into(),
                    since: ts(T0),
                    previous: None,
                    overlap_until: ts(T0),
                    next_handover: Some(ts(h)),
                    next_center: Some("Singapore".into()),
                },
            },
        );
        // Before the period: not counted anywhere.
        let early = routing("early", "Lyon", T0 - 5 * MIN);
        d.record(T0 - 5 * MIN, None, &early);
        d.record(T0 - MIN, Some(&early), &acked(&early));
        // a1..a3: acknowledged after 2, 10 and 30 minutes (given out of order).
        for (id, opened, after) in [
            ("a1", T0 + MIN, 10),
            ("a2", T0 + 2 * MIN, 30),
            ("a3", T0 + 3 * MIN, 2),
        ] {
            let r = routing(id, "Lyon", opened);
            d.record(opened, None, &r);
            d.record(opened + after * MIN, Some(&r), &acked(&r));
        }
        // a4: never acknowledged by Lyon; misses its deadline there, handed over open.
        let a4 = routing("a4", "Lyon", T0 + 60 * MIN);
        d.record(T0 + 60 * MIN, None, &a4);
        let a4_late = AlertRouting {
            severity: Severity::Critical,
            escalation: Some(escalation(
                "a4",
                T0 + 75 * MIN,
                "Lyon",
                EscalationReason::Deadline,
            )),
            ..a4.clone()
        };
        d.record(T0 + 75 * MIN, Some(&a4), &a4_late);
        d.route(
            T0 + 75 * MIN,
            RoutingChange::Escalation {
                diff: 1,
                escalation: escalation("a4", T0 + 75 * MIN, "Lyon", EscalationReason::Deadline),
            },
        );
        let a4_sg = moved(&a4_late, "Singapore");
        d.record(h, Some(&a4_late), &a4_sg);
        d.record(h + 5 * MIN, Some(&a4_sg), &acked(&a4_sg));
        // a5: acknowledged by Lyon at once (time 0), handed over acknowledged.
        let a5 = routing("a5", "Lyon", T0 + 120 * MIN);
        d.record(T0 + 120 * MIN, None, &acked(&a5));
        d.record(h, Some(&acked(&a5)), &moved(&acked(&a5), "Singapore"));
        // The digest, then its accepted version.
        d.route(
            h,
            RoutingChange::Handover {
                diff: 1,
                digest: digest(h, "Lyon", "Singapore", None),
            },
        );
        d.route(
            h + 3 * MIN,
            RoutingChange::Handover {
                diff: -1,
                digest: digest(h, "Lyon", "Singapore", None),
            },
        );
        d.route(
            h + 3 * MIN,
            RoutingChange::Handover {
                diff: 1,
                digest: digest(h, "Lyon", "Singapore", Some(h + 3 * MIN)),
            },
        );
        // Singapore -> Buenos Aires, never accepted; an officer escalation in Buenos Aires.
        let h2 = h + 8 * 60 * MIN;
        d.route(
            h2,
            RoutingChange::Handover {
                diff: 1,
                digest: digest(h2, "Singapore", "Buenos Aires", None),
            },
        );
        let b1 = routing("b1", "Buenos Aires", h2 + MIN);
        d.record(h2 + MIN, None, &b1);
        let officer = EscalationReason::Officer {
            officer_id: "o-ba".into(),
            center: "Buenos Aires".into(),
        };
        d.route(
            h2 + 2 * MIN,
            RoutingChange::Escalation {
                diff: 1,
                escalation: escalation("b1", h2 + 2 * MIN, "Buenos Aires", officer),
            },
        );
        // A Lyon officer acts on b1 after the watch moved: rejected.
        d.route(
            h2 + 3 * MIN,
            RoutingChange::Rejected {
                diff: 1,
                action: RejectedAction {
                    action: DeskAction {
                        schema_version: 1,
                        action_id: "x1".into(),
                        alert_id: "b1".into(),
                        officer_id: "o-lyon".into(),
                        center: "Lyon".into(),
                        at: ts(h2 + 3 * MIN),
                        action: ActionKind::Acknowledge,
                    },
                    at: ts(h2 + 3 * MIN),
                    code: ErrorCode::NotOwner,
                    reason: "Buenos Aires owns it".into(),
                    owner: Some("Buenos Aires".into()),
                },
            },
        );
        d
    }

    #[test]
    fn each_center_gets_its_alerts_ack_times_escalations_and_handovers() {
        let d = handover_drill();
        let r = score(d.write()).unwrap();
        let names: Vec<&str> = r.centers.iter().map(|c| c.center.as_str()).collect();
        assert_eq!(names, ["Buenos Aires", "Lyon", "Singapore"]);

        let lyon = center(&r, "Lyon");
        // a1..a5; "early" opened before the period.
        assert_eq!(lyon.alerts_received, 5);
        // a1, a2, a3 after 10, 30, 2 minutes and a5 at once: samples 0, 2, 10, 30 min.
        assert_eq!(lyon.acknowledged, 4);
        assert_eq!(lyon.ack_median_ms, Some(2 * MIN), "nearest rank 2 of 4");
        assert_eq!(lyon.ack_p90_ms, Some(30 * MIN), "nearest rank 4 of 4");
        assert_eq!(lyon.never_acknowledged, 1, "a4 left Lyon open");
        assert_eq!(lyon.arrived_acknowledged, 0);
        assert_eq!((lyon.escalations, lyon.escalations_deadline), (1, 1));
        assert_eq!((lyon.handovers_received, lyon.handovers_accepted), (0, 0));
        assert_eq!(lyon.rejected_actions, 1);

        let sg = center(&r, "Singapore");
        assert_eq!(sg.alerts_received, 2, "a4 and a5 handed over");
        assert_eq!(sg.acknowledged, 1);
        assert_eq!(
            sg.ack_median_ms,
            Some(5 * MIN),
            "from the handover, not the opening"
        );
        assert_eq!(sg.ack_p90_ms, Some(5 * MIN));
        assert_eq!(sg.never_acknowledged, 0);
        assert_eq!(sg.arrived_acknowledged, 1, "a5");
        assert_eq!(sg.escalations, 0, "a4 escalated in Lyon");
        assert_eq!((sg.handovers_received, sg.handovers_accepted), (1, 1));

        let ba = center(&r, "Buenos Aires");
        assert_eq!(ba.alerts_received, 1);
        assert_eq!((ba.acknowledged, ba.never_acknowledged), (0, 1));
        assert_eq!((ba.ack_median_ms, ba.ack_p90_ms), (None, None));
        assert_eq!((ba.escalations, ba.escalations_officer), (1, 1));
        assert_eq!((ba.handovers_received, ba.handovers_accepted), (1, 0));
        assert_eq!(ba.rejected_actions, 0);
    }

    #[test]
    fn ack_median_and_p90_of_three_alerts() {
        // The brief's example: acks at +2, +10 and +30 minutes -> median 10, p90 30.
        let mut d = Drill::new();
        for (id, after) in [("x", 30), ("y", 2), ("z", 10)] {
            let r = routing(id, "Lyon", T0);
            d.record(T0, None, &r);
            d.record(T0 + after * MIN, Some(&r), &acked(&r));
        }
        let r = score(d.write()).unwrap();
        let lyon = center(&r, "Lyon");
        assert_eq!(lyon.ack_median_ms, Some(10 * MIN));
        assert_eq!(lyon.ack_p90_ms, Some(30 * MIN));
        assert_eq!((lyon.alerts_received, lyon.acknowledged), (3, 3));
    }

    #[test]
    fn an_ack_at_the_handover_instant_is_the_outgoing_centers() {
        // Actions fold before a duty change at the same time: Lyon acknowledged, then
        // the alert moved; Singapore receives it acknowledged.
        let mut d = Drill::new();
        let r0 = routing("a", "Lyon", T0);
        d.record(T0, None, &r0);
        let h = T0 + 7 * MIN;
        d.record(h, Some(&r0), &moved(&acked(&r0), "Singapore"));
        let r = score(d.write()).unwrap();
        assert_eq!(center(&r, "Lyon").ack_median_ms, Some(7 * MIN));
        let sg = center(&r, "Singapore");
        assert_eq!(
            (sg.alerts_received, sg.acknowledged, sg.arrived_acknowledged),
            (1, 0, 1)
        );
    }

    #[test]
    fn alerts_carried_over_from_before_the_period_count_from_its_start() {
        // The file starts with the period: these alerts opened before it, so their first
        // change withdraws a record the file never added.
        let mut d = Drill::new();
        // Open in Lyon when the drill began, acknowledged 12 minutes into it.
        let a = routing("a", "Lyon", T0 - 60 * MIN);
        d.record(T0 + 12 * MIN, Some(&a), &acked(&a));
        // Acknowledged before the drill, handed over to Singapore during it.
        let b = acked(&routing("b", "Lyon", T0 - 30 * MIN));
        d.record(T0 + 8 * 60 * MIN, Some(&b), &moved(&b, "Singapore"));
        // Open before the drill, handed over open at 8 h, acknowledged 3 minutes later.
        let c = routing("c", "Lyon", T0 - 10 * MIN);
        let c_sg = moved(&c, "Singapore");
        d.record(T0 + 8 * 60 * MIN, Some(&c), &c_sg);
        d.record(T0 + 8 * 60 * MIN + 3 * MIN, Some(&c_sg), &acked(&c_sg));
        let r = score(d.write()).unwrap();
        let lyon = center(&r, "Lyon");
        assert_eq!(lyon.alerts_received, 3);
        assert_eq!(
            (
                lyon.acknowledged,
                lyon.never_acknowledged,
                lyon.arrived_acknowledged
            ),
            (1, 1, 1),
            "a acknowledged, c left open, b acknowledged before the drill"
        );
        assert_eq!(
            lyon.ack_median_ms,
            Some(12 * MIN),
            "from the start of the period"
        );
        let sg = center(&r, "Singapore");
        assert_eq!(sg.alerts_received, 2);
        assert_eq!((sg.acknowledged, sg.arrived_acknowledged), (1, 1));
        assert_eq!(sg.ack_median_ms, Some(3 * MIN));
    }

    #[test]
    fn a_resolved_alert_counts_as_acknowledged_and_a_retracted_one_does_not_arrive_twice() {
        let mut d = Drill::new();
        let r0 = routing("a", "Lyon", T0);
        d.record(T0, None, &r0);
        // Retracted, then re-derived with the same routing.
        d.route(
            T0 + MIN,
            RoutingChange::Alert {
                diff: -1,
                routing: r0.clone(),
            },
        );
        d.route(
            T0 + 2 * MIN,
            RoutingChange::Alert {
                diff: 1,
                routing: r0.clone(),
            },
        );
        let resolved = AlertRouting {
            state: AlertState::Resolved,
            ..r0.clone()
        };
        d.record(T0 + 4 * MIN, Some(&r0), &resolved);
        let r = score(d.write()).unwrap();
        let lyon = center(&r, "Lyon");
        assert_eq!((lyon.alerts_received, lyon.acknowledged), (1, 1));
        assert_eq!(lyon.ack_median_ms, Some(4 * MIN));
    }

    #[test]
    fn deliveries_per_bureau_with_the_top_withholding_reasons() {
        let mut d = Drill::new();
        for _ in 0..3 {
            d.delivery(T0 + MIN, "FR-NCB", "deliver", "allowed");
        }
        for (n, reason) in [
            (3, "TLP:RED"),
            (1, "not on the sharing list"),
            (2, "owner withholds"),
            (1, "a"),
        ] {
            for _ in 0..n {
                d.delivery(T0 + MIN, "DE-NCB", "withhold", reason);
            }
        }
        d.delivery(T0 + 2 * DAY, "FR-NCB", "deliver", "allowed"); // After the period.
        let r = score(d.write()).unwrap();
        assert_eq!(r.bureaus.len(), 2);
        let de = &r.bureaus[0];
        assert_eq!(
            (de.recipient.as_str(), de.delivered, de.withheld),
            ("DE-NCB", 0, 7)
        );
        let top: Vec<(&str, u64)> = de
            .top_withheld_reasons
            .iter()
            .map(|c| (c.reason.as_str(), c.count))
            .collect();
        // Ties (1 and 1) by reason: "a" before "not on …".
        assert_eq!(top, [("TLP:RED", 3), ("owner withholds", 2), ("a", 1)]);
        let fr = &r.bureaus[1];
        assert_eq!(
            (fr.recipient.as_str(), fr.delivered, fr.withheld),
            ("FR-NCB", 3, 0)
        );
        assert!(fr.top_withheld_reasons.is_empty());
    }

    #[test]
    fn planted_injects_and_truth_items_detected_or_missed() {
        let mut d = Drill::new();
        d.file(
            INJECTS_FILE,
            &[
                json!({"at_ms": 600_000, "time_ms": T0 + 10 * MIN, "topic": "fusion.partner.indicators",
                    "label": "new partner indicator", "planted": true, "indicator_id": "inj-1", "value": "evil.example"}),
                json!({"at_ms": 1_200_000, "time_ms": T0 + 20 * MIN, "topic": "fusion.partner.indicators",
                    "label": "revocation", "planted": false, "indicator_id": "inj-1", "value": null}),
                json!({"at_ms": 1_800_000, "time_ms": T0 + 30 * MIN, "topic": "fusion.sensor.events",
                    "label": "wallet seen", "planted": true, "indicator_id": null, "value": "bc1qplanted"}),
                json!({"at_ms": 2_400_000, "time_ms": T0 + 40 * MIN, "topic": "fusion.partner.indicators",
                    "label": "never matched", "planted": true, "indicator_id": "inj-3", "value": null}),
            ]
            .map(|v| v.to_string())
            .join("\n"),
        );
        d.file(
            scenario::TRUTH_FILE,
            &json!({
                "seed": 7,
                "campaigns": [{"id": "campaign-00001", "family": "f", "publisher": "p",
                    "source_kind": "partner", "start_ms": 0, "release_ms": 0, "end_ms": 0,
                    "countries": [], "hits": 3, "infrastructure": [
                        {"kind": "domain", "value": "c2.example", "indicator_id": "ind-1",
                         "corroborating_ids": [], "published": true},
                        {"kind": "ipv4", "value": "203.0.113.9", "indicator_id": "ind-2",
                         "corroborating_ids": ["osint-2"], "published": true},
                        {"kind": "ipv4", "value": "203.0.113.10", "indicator_id": "ind-3",
                         "corroborating_ids": [], "published": true},
                        {"kind": "ipv4", "value": "203.0.113.11", "indicator_id": "ind-4",
                         "corroborating_ids": [], "published": true},
                        {"kind": "ipv4", "value": "203.0.113.12", "indicator_id": null,
                         "corroborating_ids": [], "published": false},
                        {"kind": "domain", "value": "late.example", "indicator_id": "ind-5",
                         "corroborating_ids": [], "published": true}]}],
                "expected_matches": [["e1", "ind-1"], ["e2", "ind-2"], ["e3", "ind-3"], ["e4", "ind-1"], ["e5", "ind-5"]],
                "retroactive": [], "expired": [],
                "revoked_indicators": ["ind-3"],
                "bad_records": 0, "bad_records_by_kind": {}
            })
            .to_string(),
        );
        d.opened(T0 + 11 * MIN, "al-1", "inj-1", "evil.example"); // Inject by id.
        d.opened(T0 + 31 * MIN, "al-2", "osint-x", "bc1qplanted"); // Inject by value.
        d.opened(T0 + 40 * MIN, "al-3", "ind-1", "c2.example"); // Truth by id.
        d.opened(T0 + 41 * MIN, "al-4", "osint-2", "203.0.113.9"); // Truth by corroborating id.
        d.opened(T0 + 2 * DAY, "al-5", "ind-5", "late.example"); // After the period.
        let r = score(d.write()).unwrap();
        let p = &r.planted;
        // Injects: inj-1, the wallet, inj-3. Truth: ind-1, ind-2, ind-5 (ind-3 revoked,
        // ind-4 matched by no event, the fifth never published).
        assert_eq!((p.planted, p.detected, p.missed), (6, 4, 2));
        let missed: Vec<&str> = p
            .items
            .iter()
            .filter(|i| !i.detected)
            .map(|i| i.label.as_str())
            .collect();
        assert_eq!(
            missed,
            [
                "never matched",
                "campaign-00001: domain late.example (ind-5)"
            ]
        );
        let first = &p.items[0];
        assert_eq!(first.alert_id.as_deref(), Some("al-1"));
        assert_eq!(first.detected_at_ms, Some(T0 + 11 * MIN));
        assert_eq!(p.items[4].alert_id.as_deref(), Some("al-4"));
        assert_eq!((r.injects.applied, r.injects.planted), (4, 3));
        assert_eq!(
            (
                r.alerts.changes,
                r.alerts.opened,
                r.alerts.without_drill_marking
            ),
            (4, 4, 0)
        );
        let text = render_text(&r);
        assert!(text.contains("4 detected, 2 missed, of 6"), "{text}");
        assert!(text.contains("missed: never matched\n"), "{text}");
    }

    #[test]
    fn the_truth_fusion_generate_writes_is_read_and_each_must_detect_item_scored() {
        // A real truth.json, from the scenario crate's own writer.
        let mut d = Drill::new();
        let cfg = scenario::ScenarioConfig {
            seed: 3,
            events: Some(3 * scenario::CAMPAIGN_EVERY_EVENTS),
            ..scenario::ScenarioConfig::default()
        };
        scenario::write_dir(&cfg, d.dir.path()).unwrap();
        // The oracle: the generator's truth in memory (the same seed gives the same),
        // read field by field rather than through the report's file types.
        let mut generator = scenario::Generator::new(cfg);
        generator.by_ref().for_each(drop);
        let truth = generator.into_truth();
        let matched: BTreeSet<&str> = truth
            .expected_matches
            .iter()
            .map(|(_, i)| i.as_str())
            .collect();
        let mut must: Vec<(String, String)> = Vec::new();
        for c in &truth.campaigns {
            for infra in &c.infrastructure {
                if let Some(id) = &infra.indicator_id
                    && matched.contains(id.as_str())
                    && !truth.revoked_indicators.contains(id)
                    && !must.iter().any(|(i, _)| i == id)
                {
                    must.push((id.clone(), infra.value.clone()));
                }
            }
        }
        assert!(
            must.len() >= 2,
            "the scenario plants something to detect: {must:?}"
        );
        // Every item but the last raises an alert, alternately by id and by value.
        for (n, (id, value)) in must[..must.len() - 1].iter().enumerate() {
            let (ind, val) = if n % 2 == 0 {
                (id.as_str(), "other")
            } else {
                ("other", value.as_str())
            };
            d.opened(T0 + MIN, &format!("al-{n}"), ind, val);
        }
        let r = score(d.write()).unwrap();
        let p = &r.planted;
        assert_eq!(p.planted, must.len() as u64);
        assert_eq!((p.detected, p.missed), (must.len() as u64 - 1, 1));
        let missed: Vec<Option<&str>> = p
            .items
            .iter()
            .filter(|i| !i.detected)
            .map(|i| i.indicator_id.as_deref())
            .collect();
        assert_eq!(missed, [must.last().map(|(id, _)| id.as_str())]);
    }

    #[test]
    fn without_deliveries_jsonl_the_report_says_the_drill_had_no_subscriptions() {
        let d = Drill::new();
        d.write();
        std::fs::remove_file(d.dir.path().join(DELIVERIES_FILE)).unwrap();
        let r = score(d.dir.path()).unwrap();
        assert!(!r.deliveries_recorded && r.bureaus.is_empty());
        assert!(
            render_text(&r).contains("no deliveries.jsonl: the drill ran without --subscriptions")
        );
        let d = Drill::new();
        let r = score(d.write()).unwrap();
        assert!(r.deliveries_recorded);
        assert!(render_text(&r).contains("(no deliveries in the drill)"));
    }

    #[test]
    fn a_planted_inject_naming_nothing_is_an_error_with_its_line() {
        let d = Drill::new();
        d.file(
            INJECTS_FILE,
            "{\"at_ms\":0,\"time_ms\":1,\"topic\":\"t\",\"label\":\"ok\",\"planted\":false,\"indicator_id\":null,\"value\":null}\n\
             {\"at_ms\":0,\"time_ms\":1,\"topic\":\"t\",\"label\":\"blank\",\"planted\":true,\"indicator_id\":null,\"value\":null}\n",
        );
        let e = score(d.write()).unwrap_err().to_string();
        assert!(e.contains("injects.jsonl line 2"), "{e}");
        assert!(e.contains("\"blank\""), "{e}");
    }

    #[test]
    fn an_alert_without_the_drill_marking_is_counted() {
        let mut d = Drill::new();
        d.opened(T0, "a", "i", "v");
        let mut live = alert("b", "i", "v");
        live.drill = false;
        d.alerts.push(
            serde_json::to_string(&AlertChange {
                change: ChangeKind::Opened,
                version: T0,
                alert: live,
            })
            .unwrap(),
        );
        let r = score(d.write()).unwrap();
        assert_eq!(r.alerts.without_drill_marking, 1);
        assert!(render_text(&r).contains("WARNING: 1 alert changes lack the drill marking"));
    }

    #[test]
    fn a_malformed_line_names_its_file_and_line() {
        for name in [ALERTS_FILE, ROUTING_FILE, DELIVERIES_FILE, INJECTS_FILE] {
            let mut d = Drill::new();
            d.delivery(T0, "FR-NCB", "deliver", "ok");
            let r0 = routing("a", "Lyon", T0);
            d.record(T0, None, &r0);
            d.opened(T0, "a", "i", "v");
            d.write();
            let path = d.dir.path().join(name);
            let mut text = std::fs::read_to_string(&path).unwrap_or_default();
            if name == INJECTS_FILE {
                text.push_str("{\"at_ms\":0,\"time_ms\":1,\"topic\":\"t\",\"label\":\"l\",\"planted\":false,\"indicator_id\":null,\"value\":null}\n");
            }
            text.push_str("{\"truncated\": \n");
            std::fs::write(&path, text).unwrap();
            let e = score(d.dir.path()).unwrap_err().to_string();
            let expect = format!("{} line 2:", path.display());
            assert!(e.starts_with(&expect), "{name}: {e}");
        }
    }

    #[test]
    fn a_wrongly_typed_or_empty_line_is_an_error_too() {
        let mut d = Drill::new();
        d.delivery(T0, "FR-NCB", "maybe", "ok");
        d.write();
        let e = score(d.dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("deliveries.jsonl line 1: unknown variant `maybe`"),
            "{e}"
        );

        let d = Drill::new();
        d.write();
        d.file(ROUTING_FILE, "\n");
        let e = score(d.dir.path()).unwrap_err().to_string();
        assert!(e.contains("routing.jsonl line 1: an empty line"), "{e}");
    }

    #[test]
    fn a_missing_directory_or_file_is_named() {
        let d = Drill::new();
        let gone = d.dir.path().join("nope");
        let e = score(&gone).unwrap_err().to_string();
        assert!(
            e.contains(&format!("no drill directory {}", gone.display())),
            "{e}"
        );

        d.write();
        std::fs::remove_file(d.dir.path().join(ROUTING_FILE)).unwrap();
        let e = score(d.dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{} is missing",
                d.dir.path().join(ROUTING_FILE).display()
            )),
            "{e}"
        );

        std::fs::remove_file(d.dir.path().join(DRILL_FILE)).unwrap();
        let e = score(d.dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{} is missing",
                d.dir.path().join(DRILL_FILE).display()
            )),
            "{e}"
        );

        d.file(DRILL_FILE, "{\"name\": \"x\"}");
        let e = score(d.dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("drill.json is not valid: missing field `from_ms`"),
            "{e}"
        );
    }

    #[test]
    fn empty_files_give_zeros() {
        let d = Drill::new();
        let r = score(d.write()).unwrap();
        assert!(r.centers.is_empty() && r.bureaus.is_empty());
        assert_eq!(r.planted, PlantedScore::default());
        assert_eq!(r.injects, InjectCounts::default());
        assert_eq!(r.alerts, AlertCounts::default());
        let text = render_text(&r);
        assert!(text.contains("0 detected, 0 missed, of 0"), "{text}");
        assert!(text.contains("What the figures count"), "{text}");
    }

    #[test]
    fn drill_names_are_plain_directory_names() {
        let base = Path::new("fusion-drills");
        assert_eq!(drill_path(base, "darklys").unwrap(), base.join("darklys"));
        for bad in ["../etc", "a/b", "/abs", "", "."] {
            assert!(drill_path(base, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3], 90), Some(3));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 90), Some(9));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human(350), "350ms");
        assert_eq!(human(45_000), "45s");
        assert_eq!(human(2 * MIN), "2m 00s");
        assert_eq!(human(3_723_000), "1h 02m 03s");
    }

    #[test]
    fn the_text_report_shows_each_center_and_bureau() {
        let mut d = handover_drill();
        d.delivery(T0 + MIN, "DE-NCB", "withhold", "TLP:RED");
        let r = score(d.write()).unwrap();
        let text = render_text(&r);
        let lyon = text.lines().find(|l| l.starts_with("Lyon")).unwrap();
        let cells: Vec<&str> = lyon
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "Lyon",
                "5",
                "4",
                "2m 00s",
                "30m 00s",
                "1",
                "0",
                "1 (1 deadline)",
                "0/0",
                "1"
            ]
        );
        assert!(text.contains("withheld for: TLP:RED (1)"), "{text}");
        assert!(
            text.starts_with("Drill darklys: 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z"),
            "{text}"
        );
    }
}
