//! Runs the dataflow on timely workers fed by channels of [`Feed`] messages, whose events
//! come as [`EventIn`]s (made on the sending thread: `ingest::Router::with_prepare`; a
//! `Feed` of decoded events becomes one with [`Feed::map_event`]).
//!
//! Each worker owns one input channel (ingest routes records to workers) and
//! sends its outputs to one shared channel. Worker 0 also reports the output
//! frontier ([`Output::Closed`]); because every worker sends its updates before
//! the frontier can pass them, a receiver that has seen `Closed(t)` has already
//! received every update at times before `t`.
//!
//! The workers stop early when [`Config::stop`] is set (or the output channel's receiver
//! is gone): between two steps they drop the dataflow and return, and a worker waiting on
//! a full output channel gives up its message. Outputs at times the last `Closed` did not
//! pass are then missing, so a caller commits nothing beyond it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use differential_dataflow::AsCollection;
use differential_dataflow::input::{Input as _, InputSession};
use schemas::routing::{AlertRouting, DutyStatus, Escalation, HandoverDigest, RejectedAction};
use schemas::{Alert, DeskAction, Feed, Indicator, Input};
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::vec::Map;

use crate::Time;
use crate::assembly::{self, Assembled};
use crate::evidence::{ExpiryConfig, Kept, KeptIndicator, alert_evidence};
use crate::history::{EventIn, HistoryReport, IndicatorIn, TierConfig, history_matches};
use crate::roster::RosterSpec;
use crate::routing;
use crate::shared::Shared;
use crate::views::corroboration::CorroborationConfig;
use crate::views::warning_lists::WarningEntry;

/// A week of logical time: the default grace before an alert whose window has passed expires.
pub const DEFAULT_GRACE_MS: u64 = 7 * 86_400_000;

/// 90 days of logical time: the default longest validity of an indicator version after
/// its `modified` time.
pub const DEFAULT_INDICATOR_MAX_AGE_MS: u64 = 90 * 86_400_000;

/// What the dataflow computes besides its inputs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The windows of the retained history (raw evidence, summaries).
    pub tiers: TierConfig,
    /// How long an alert stays open after its window has passed and it last changed.
    pub grace_ms: u64,
    /// The longest an indicator version is valid after its `modified` time: a version
    /// without `valid_until`, or with a later one, is valid until `modified` plus this (as
    /// if its source had said so). A source that wants it kept publishes it again. Without
    /// this bound, the indicators of a feed that never sets `valid_until` would be held
    /// (and matched) for ever.
    pub indicator_max_age_ms: u64,
    /// With a roster, alerts are also routed (owner, handovers, escalation; see [`routing`]).
    pub roster: Option<RosterSpec>,
    /// Parameters of the corroborated confidence of alerts.
    pub corroboration: CorroborationConfig,
    /// Warning-list entries in force from the start: matches they cover are suppressed.
    pub warning_lists: Vec<WarningEntry>,
    /// Later versions of the warning lists: each set received replaces the one in force
    /// at the logical time it is read (a reload; see [`warning_lists`]).
    pub warning_reloads: Option<Receiver<Vec<WarningEntry>>>,
    /// Set to stop the workers between two steps (shutdown, or a failure elsewhere).
    pub stop: Arc<AtomicBool>,
    /// An exercise drill: every alert is marked `drill` (routing, the desk, the outbox
    /// and the egress rule all see the marking).
    pub drill: bool,
}

impl Config {
    /// No roster, no warning lists, default corroboration and grace, and the history `tiers`.
    pub fn new(tiers: TierConfig) -> Self {
        Self {
            tiers,
            grace_ms: DEFAULT_GRACE_MS,
            indicator_max_age_ms: DEFAULT_INDICATOR_MAX_AGE_MS,
            roster: None,
            corroboration: CorroborationConfig::default(),
            warning_lists: Vec::new(),
            warning_reloads: None,
            stop: Arc::default(),
            drill: false,
        }
    }
}

/// What the workers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The alert collection changed by `diff` at `time`.
    Alert(Box<Alert>, Time, isize),
    /// The number of matches changed by `diff` at `time`.
    Matches(Time, isize),
    /// The number of matches suppressed by warning lists changed by `diff` at `time`.
    Suppressed(Time, isize),
    /// Every output at times before this one has been sent.
    Closed(Time),
    /// Every alert change (and expiry) at times before this one has been sent; routing
    /// may still be working on them. Sent only when it is ahead of [`Output::Closed`]
    /// (with a roster): alert sinks need not wait for routing.
    AlertsClosed(Time),
    /// An alert's routing (owner, state, notes) changed by `diff` at `time`.
    Routing(Box<AlertRouting>, Time, isize),
    /// An escalation appeared (or was withdrawn) at `time`.
    Escalation(Box<Escalation>, Time, isize),
    /// A handover digest appeared (or changed) at `time`.
    Handover(Box<HandoverDigest>, Time, isize),
    /// The center on duty changed at `time`.
    Duty(Box<DutyStatus>, Time, isize),
    /// An officer action was rejected at `time` (not the owning center).
    Rejected(Box<RejectedAction>, Time, isize),
    /// A worker's input ended at this time: later times hold only what the
    /// dataflow would do after the last input (such as retention retracting
    /// history) and are not outputs of the run.
    InputEnd(Time),
    /// The alert with this id expired at `time` (its removal at that time is an expiry).
    Expired(String, Time),
    /// Matches arrived at `time` for alerts that had expired, and were ignored.
    Late(Time, u64),
    /// Indicator versions whose validity [`Config::indicator_max_age_ms`] shortened
    /// since the last such report (no `valid_until`, or a later one).
    AgeBounded(u64),
    /// A worker's history after a logical time it processed.
    History(HistoryReport),
}

/// The input sessions of one worker.
struct Inputs {
    events: InputSession<Time, EventIn, isize>,
    indicators: InputSession<Time, Shared<Indicator>, isize>,
    actions: InputSession<Time, DeskAction, isize>,
    warnings: InputSession<Time, WarningEntry, isize>,
    /// The warning-list entries in force (worker 0 holds them).
    warning_entries: Vec<WarningEntry>,
    roster: Option<InputSession<Time, RosterSpec, isize>>,
    /// The roster, inserted at the first logical time (not at 0: the duty clock would
    /// replay every handover since 1970).
    pending_roster: Option<RosterSpec>,
    /// The indicator versions and desk actions held, and when each leaves the inputs.
    held: Held,
    now: Time,
}

/// What keeps the inputs bounded and decides which version of an indicator is current.
///
/// Indicators and actions are routed to workers by id, so each worker sees every version
/// of its ids: per id the version with the greatest `modified` wins (ties broken by
/// content, so the choice does not depend on arrival order), and only that version, unless
/// revoked, is in the indicator input. A newer version replaces it there at once (the
/// dataflow never holds a superseded version); an older one arriving later is ignored. A
/// revoked latest version is remembered (so older versions stay ignored) for the
/// retention; an expired one stays current until no event can match it any more and its
/// alerts have expired ([`Held::horizon_ms`]). Desk actions leave after the horizon too.
#[derive(Default)]
struct Held {
    /// Per indicator id, its latest version.
    latest: std::collections::HashMap<String, Latest>,
    /// Versions and actions to remove, by logical time.
    due: std::collections::BTreeMap<Time, Vec<Gone>>,
    /// Numbers the versions accepted, so a scheduled removal finds its own version.
    seq: u64,
    /// How long a revoked version is remembered: the history's retention.
    retention_ms: u64,
    /// How long after its validity an indicator can still matter: the retention, the grace
    /// of its last alerts and their window (the routing horizon).
    horizon_ms: u64,
    /// The longest validity of a version after its `modified` time
    /// ([`Config::indicator_max_age_ms`]).
    max_age_ms: u64,
    /// Versions whose validity the max age shortened, not yet reported.
    age_bounded: u64,
}

/// The latest version of an indicator id.
struct Latest {
    /// Shared with the indicator input (and every arrangement of it).
    version: Shared<Indicator>,
    seq: u64,
}

/// Something leaving the inputs. Three words: every held indicator has one scheduled.
/// (A version is named by its id, not held: a superseded version is not kept until then.)
enum Gone {
    /// The version numbered `seq` of the indicator `id`, if still its latest.
    Version {
        id: Box<str>,
        seq: u64,
    },
    Action(Box<DeskAction>),
}

impl Held {
    /// Takes `i`, arriving at `now`: the changes to the indicator input (the version it
    /// replaces, removed; itself, unless revoked), none for a version that is not newer
    /// than the latest (an exact repeat, or older: it would never be current).
    fn insert_indicator(&mut self, mut i: Indicator, now: Time) -> Vec<(Shared<Indicator>, isize)> {
        let mut changes = Vec::new();
        // Bounded before the comparison, so an exact repeat is still a repeat.
        let max_age = i64::try_from(self.max_age_ms).unwrap_or(i64::MAX);
        let bounded = match jiff::Timestamp::from_millisecond(
            i.modified.as_millisecond().saturating_add(max_age),
        ) {
            Ok(bound) if i.valid_until.is_none_or(|u| u > bound) => {
                i.valid_until = Some(bound);
                true
            }
            _ => false,
        };
        if let Some(latest) = self.latest.get(&i.id)
            && (i.modified, &i) <= (latest.version.modified, &*latest.version)
        {
            return changes;
        }
        // Counted once per version taken (a repeat is not).
        self.age_bounded += u64::from(bounded);
        let i = Shared::new(i);
        self.seq += 1;
        let seq = self.seq;
        let previous = self.latest.insert(
            i.id.clone(),
            Latest {
                version: i.clone(),
                seq,
            },
        );
        if let Some(previous) = previous
            && !previous.version.revoked
        {
            changes.push((previous.version, -1));
        }
        // A revoked indicator is forgotten after the retention; an expired one once no
        // event can match it any more and its alerts have expired.
        let end = if i.revoked {
            Some(now.saturating_add(self.retention_ms))
        } else {
            changes.push((i.clone(), 1));
            i.valid_until.map(|u| {
                Time::try_from(u.as_millisecond())
                    .unwrap_or(0)
                    .saturating_add(self.horizon_ms)
            })
        };
        if let Some(end) = end {
            self.due
                .entry(end.max(now + 1))
                .or_default()
                .push(Gone::Version {
                    id: i.id.as_str().into(),
                    seq,
                });
        }
        changes
    }

    /// Schedules the removal of an action arriving at `now`.
    fn insert_action(&mut self, a: &DeskAction, now: Time) {
        let at = now.saturating_add(self.horizon_ms).max(now + 1);
        self.due
            .entry(at)
            .or_default()
            .push(Gone::Action(Box::new(a.clone())));
    }

    /// Forgets the version `seq` of `id` if it is still the latest; returns it if it was
    /// in the input (not revoked).
    fn forget(&mut self, id: &str, seq: u64) -> Option<Shared<Indicator>> {
        if self.latest.get(id).is_none_or(|l| l.seq != seq) {
            return None;
        }
        let gone = self.latest.remove(id)?;
        (!gone.version.revoked).then_some(gone.version)
    }
}

impl Inputs {
    fn advance_to(&mut self, time: Time) {
        // What leaves the inputs before `time` leaves at its own time.
        while let Some((&at, _)) = self.held.due.first_key_value() {
            if at > time {
                break;
            }
            let Some((at, gone)) = self.held.due.pop_first() else {
                break;
            };
            self.set_time(at);
            for g in gone {
                match g {
                    Gone::Version { id, seq } => {
                        if let Some(i) = self.held.forget(&id, seq) {
                            self.indicators.remove(i);
                        }
                    }
                    Gone::Action(a) => self.actions.remove(*a),
                }
            }
        }
        self.set_time(time);
    }

    fn set_time(&mut self, time: Time) {
        if time > self.now {
            self.now = time;
            self.events.advance_to(time);
            self.indicators.advance_to(time);
            self.actions.advance_to(time);
            self.warnings.advance_to(time);
            if let Some(r) = &mut self.roster {
                r.advance_to(time);
                if let Some(spec) = self.pending_roster.take() {
                    r.insert(spec);
                }
            }
        }
    }

    fn apply(&mut self, feed: Feed<EventIn>) {
        match feed {
            Feed::Advance { time_ms } => self.advance_to(time_ms),
            Feed::Record { time_ms, input } => {
                // A record older than the input frontier counts at the frontier.
                self.advance_to(time_ms);
                match input {
                    Input::Event(ev) => self.events.insert(ev),
                    Input::Indicator(i) => {
                        for (version, diff) in self.held.insert_indicator(i, self.now) {
                            self.indicators.update(version, diff);
                        }
                    }
                    Input::Action(a) => {
                        self.held.insert_action(&a, self.now);
                        self.actions.insert(a);
                    }
                }
            }
        }
    }

    /// Replaces the warning-list entries in force by `entries`, at the current time.
    fn reload_warnings(&mut self, mut entries: Vec<WarningEntry>) {
        entries.sort();
        entries.dedup();
        for gone in self
            .warning_entries
            .iter()
            .filter(|e| entries.binary_search(e).is_err())
        {
            self.warnings.remove(gone.clone());
        }
        for new in entries
            .iter()
            .filter(|e| self.warning_entries.binary_search(e).is_err())
        {
            self.warnings.insert(new.clone());
        }
        self.warning_entries = entries;
    }

    fn flush(&mut self) {
        self.events.flush();
        self.indicators.flush();
        self.actions.flush();
        self.warnings.flush();
        if let Some(r) = &mut self.roster {
            r.flush();
        }
    }
}

/// How the workers agree on the end of a run: the last input time of any of them, and
/// when all have seen it closed (see [`run`]).
struct Ending {
    workers: usize,
    end: std::sync::atomic::AtomicU64,
    posted: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicUsize,
}

impl Ending {
    fn new(workers: usize) -> Self {
        Self {
            workers,
            end: std::sync::atomic::AtomicU64::new(0),
            posted: std::sync::atomic::AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Posts this worker's last input time and returns the latest of all workers',
    /// calling `step` (the dataflow must go on for the others) until all have posted or
    /// `step` says the workers are stopping.
    fn agree(&self, now: Time, step: &mut dyn FnMut() -> bool) -> Time {
        use std::sync::atomic::Ordering::SeqCst;
        self.end.fetch_max(now, SeqCst);
        self.posted.fetch_add(1, SeqCst);
        while self.posted.load(SeqCst) < self.workers && step() {}
        self.end.load(SeqCst)
    }

    /// Says this worker has seen the end closed; `step` until every worker has (or `step`
    /// says the workers are stopping).
    fn arrive(&self, step: &mut dyn FnMut() -> bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.closed.fetch_add(1, SeqCst);
        while self.closed.load(SeqCst) < self.workers && step() {}
    }
}

/// The workers' end of the output channel: a send waits while the channel is full
/// (back-pressure), unless the workers are told to stop; a receiver that is gone stops them.
#[derive(Clone)]
struct Out {
    tx: Sender<Output>,
    stop: Arc<AtomicBool>,
}

/// The output was not sent: the workers are stopping.
struct Stopping;

impl Out {
    fn send(&self, mut msg: Output) -> Result<(), Stopping> {
        loop {
            match self.tx.send_timeout(msg, Duration::from_millis(20)) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout(back)) if !self.stopping() => msg = back,
                Err(SendTimeoutError::Timeout(_)) => return Err(Stopping),
                Err(SendTimeoutError::Disconnected(_)) => {
                    self.stop.store(true, Ordering::SeqCst);
                    return Err(Stopping);
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Stops the other workers when a worker panics (they would wait for it for ever).
struct StopOnPanic(Arc<AtomicBool>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Most feed batches applied between two steps of a worker.
const MAX_BATCHES: usize = 8;

/// Runs the dataflow on `feeds.len()` workers until every feed channel is closed and
/// all outputs are complete; the last message sent is `Closed(u64::MAX)`. When
/// [`Config::stop`] is set first, it returns as soon as every worker has seen it, without
/// that last message.
///
/// Once every worker has sent its last output, it returns without waiting for the
/// workers to drop the dataflow's state (a replay's whole history: a tenth of a second
/// and more that nothing waits for); a thread of its own joins them and logs a failure
/// of that teardown.
///
/// Every version of an indicator must come through the same feed (the ingest router
/// routes by id): that worker decides which version is current ([`Held`]).
pub fn run(
    feeds: Vec<Receiver<Vec<Feed<EventIn>>>>,
    config: Config,
    out: Sender<Output>,
) -> Result<(), String> {
    let workers = feeds.len().max(1);
    let Config {
        tiers,
        grace_ms,
        indicator_max_age_ms,
        roster,
        corroboration,
        warning_lists,
        warning_reloads,
        stop,
        drill,
    } = config;
    let out = Out { tx: out, stop };
    let warning_reloads = Arc::new(Mutex::new(warning_reloads));
    // Nothing about an alert matters longer than this after it happened: a day of window,
    // the history's retention (late evidence) and the expiry grace.
    let horizon_ms = (crate::alerts::WINDOW_MS as u64)
        .saturating_add(tiers.retention_ms)
        .saturating_add(grace_ms)
        .saturating_add(1);
    let ending = Arc::new(Ending::new(workers));
    let feeds: Arc<Mutex<Vec<Option<Receiver<Vec<Feed<EventIn>>>>>>> =
        Arc::new(Mutex::new(feeds.into_iter().map(Some).collect()));
    // Each worker says here that it sent its last output (not when stopped).
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let _stop_on_panic = StopOnPanic(Arc::clone(&out.stop));
        let ending = Arc::clone(&ending);
        let feed = feeds
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(index).and_then(Option::take));
        let out = out.clone();
        let probe = ProbeHandle::new();
        let alert_probe = ProbeHandle::new();
        // Worker 0 holds the warning lists and reads their reloads.
        let reloads = if index == 0 {
            warning_reloads.lock().ok().and_then(|mut r| r.take())
        } else {
            None
        };
        let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
            let (events, event_coll) = scope.new_collection();
            let (indicators, indicator_coll) = scope.new_collection::<Shared<Indicator>, isize>();
            let (actions, action_coll) = scope.new_collection::<DeskAction, isize>();
            let (warnings, warning_coll) = scope.new_collection::<WarningEntry, isize>();
            // The input holds only current versions (see [`Held`]).
            let current = indicator_coll;
            let to_out = out.clone();
            let made = history_matches(
                event_coll.inner,
                current.clone().flat_map(|i| IndicatorIn::of(&i)),
                tiers,
                move |report| {
                    let _ = to_out.send(Output::History(report));
                },
            );
            let to_out = out.clone();
            let made = made.inspect(move |(_, time, diff)| {
                let _ = to_out.send(Output::Matches(*time, *diff));
            });
            let kept = alert_evidence(
                made,
                current.clone().flat_map(|i| KeptIndicator::of(&i)),
                ExpiryConfig {
                    grace_ms,
                    retention_ms: tiers.retention_ms,
                },
            );
            let to_out = out.clone();
            kept.clone().inspect(move |(k, time, _)| match k {
                Kept::Expired(id) => {
                    let _ = to_out.send(Output::Expired(id.clone(), *time));
                }
                Kept::Late(n) => {
                    let _ = to_out.send(Output::Late(*time, *n));
                }
                Kept::Sightings(_) => {}
            });
            let sightings = kept.flat_map(|(k, t, d)| match k {
                Kept::Sightings(s) => Some((s, t, d)),
                Kept::Expired(_) | Kept::Late(_) => None,
            });
            let to_out = out.clone();
            let assembled = assembly::assemble(
                sightings,
                current.inner,
                warning_coll.inner,
                corroboration.half_life_ms,
            )
            .inspect(move |(a, time, diff)| {
                if let Assembled::Suppressed(a, _) = a {
                    let n = isize::try_from(a.sightings).unwrap_or(isize::MAX);
                    let _ = to_out.send(Output::Suppressed(*time, diff * n));
                }
            });
            let mut alerts = assembled
                .flat_map(|(a, time, diff)| match a {
                    Assembled::Alert(a) => Some((a, time, diff)),
                    Assembled::Suppressed(..) => None,
                })
                .as_collection();
            let to_out = out.clone();
            if drill {
                alerts = alerts.map(|a| {
                    let mut a = a.into_inner();
                    a.drill = true;
                    Shared::new(a)
                });
            }
            let alerts = alerts
                .inspect(move |(alert, time, diff)| {
                    let _ = to_out.send(Output::Alert(Box::new(Alert::clone(alert)), *time, *diff));
                })
                .probe_with(&alert_probe)
                .probe_with(&probe);
            let roster_input = if roster.is_some() {
                let (roster_in, roster_coll) = scope.new_collection::<RosterSpec, isize>();
                let views = routing::routing(alerts, action_coll, roster_coll, horizon_ms);
                let o = out.clone();
                views
                    .alerts
                    .inspect(move |(r, t, d)| {
                        let _ = o.send(Output::Routing(Box::new(r.clone()), *t, *d));
                    })
                    .probe_with(&probe);
                let o = out.clone();
                views
                    .escalations
                    .inspect(move |(r, t, d)| {
                        let _ = o.send(Output::Escalation(Box::new(r.clone()), *t, *d));
                    })
                    .probe_with(&probe);
                let o = out.clone();
                views
                    .handovers
                    .inspect(move |(r, t, d)| {
                        let _ = o.send(Output::Handover(Box::new(r.clone()), *t, *d));
                    })
                    .probe_with(&probe);
                let o = out.clone();
                views
                    .duty
                    .inspect(move |(r, t, d)| {
                        let _ = o.send(Output::Duty(Box::new(r.clone()), *t, *d));
                    })
                    .probe_with(&probe);
                let o = out.clone();
                views
                    .rejected
                    .inspect(move |(r, t, d)| {
                        let _ = o.send(Output::Rejected(Box::new(r.clone()), *t, *d));
                    })
                    .probe_with(&probe);
                Some(roster_in)
            } else {
                None
            };
            Inputs {
                events,
                indicators,
                actions,
                warnings,
                warning_entries: Vec::new(),
                roster: roster_input,
                // Worker 0 holds the roster.
                pending_roster: if index == 0 { roster.clone() } else { None },
                held: Held {
                    retention_ms: tiers.retention_ms,
                    horizon_ms,
                    max_age_ms: indicator_max_age_ms,
                    ..Held::default()
                },
                now: 0,
            }
        });
        if index == 0 {
            inputs.reload_warnings(warning_lists.clone());
        }

        let mut reported: Option<Time> = None;
        let mut reported_alerts: Option<Time> = None;
        let mut report = |probe: &ProbeHandle<Time>| {
            if index != 0 {
                return;
            }
            let frontier = probe.with_frontier(|f| f.first().copied().unwrap_or(Time::MAX));
            let alerts = alert_probe.with_frontier(|f| f.first().copied().unwrap_or(Time::MAX));
            if alerts > frontier && reported_alerts.is_none_or(|r| alerts > r) {
                reported_alerts = Some(alerts);
                let _ = out.send(Output::AlertsClosed(alerts));
            }
            if reported != Some(frontier) {
                reported = Some(frontier);
                let _ = out.send(Output::Closed(frontier));
            }
        };

        if let Some(feed) = feed {
            while !out.stopping() {
                match feed.recv_timeout(Duration::from_millis(2)) {
                    Ok(batch) => {
                        for msg in batch {
                            inputs.apply(msg);
                        }
                        for batch in feed.try_iter().take(MAX_BATCHES) {
                            for msg in batch {
                                inputs.apply(msg);
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if let Some(lists) = reloads.as_ref().and_then(|r| r.try_iter().last()) {
                    inputs.reload_warnings(lists);
                }
                inputs.flush();
                let bounded = std::mem::take(&mut inputs.held.age_bounded);
                if bounded > 0 {
                    let _ = out.send(Output::AgeBounded(bounded));
                }
                worker.step();
                report(&probe);
            }
        }
        if out.stopping() {
            // Told to stop (shutdown, a failure elsewhere): whatever the dataflow was doing.
            drop(inputs);
            for dataflow in worker.installed_dataflows() {
                worker.drop_dataflow(dataflow);
            }
            return;
        }
        let _ = out.send(Output::InputEnd(inputs.now));
        // The run ends at the last input time of any worker: everything up to it happens with
        // the inputs still open (expiries and ageing are on logical time). What would come
        // after — alerts expiring days later, the duty clock walking every watch until then,
        // routing facts leaving at their horizon — is not an output of the run, so the
        // dataflow is dropped once every worker has seen that time closed, not run to
        // completion (which cost a replay of one day more than the replay itself).
        let end = ending.agree(inputs.now, &mut || {
            worker.step_or_park(Some(Duration::from_millis(1)));
            report(&probe);
            !out.stopping()
        });
        inputs.advance_to(end.saturating_add(1));
        inputs.flush();
        while probe.less_equal(&end) && !out.stopping() {
            worker.step_or_park(Some(Duration::from_millis(1)));
            report(&probe);
        }
        ending.arrive(&mut || {
            worker.step_or_park(Some(Duration::from_millis(1)));
            report(&probe);
            !out.stopping()
        });
        if index == 0 && !out.stopping() {
            let _ = out.send(Output::Closed(Time::MAX));
        }
        if !out.stopping() {
            let _ = done_tx.send(());
        }
        drop(inputs);
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
    })?;
    // Every worker done, or one that will not be: the channel closes once every worker
    // has returned (a stopped one, a failed one) without saying it is done.
    let done = (0..workers).take_while(|_| done_rx.recv().is_ok()).count();
    if done == workers {
        std::thread::Builder::new()
            .name("dataflow-teardown".into())
            .spawn(move || {
                for result in guards.join() {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "a dataflow worker failed while dropping its state");
                    }
                }
            })
            .map_err(|e| format!("cannot start the dataflow's teardown: {e}"))?;
        return Ok(());
    }
    for result in guards.join() {
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;
    use crate::test_support::indicator;
    use std::time::Instant;

    /// Runs the dataflow on two workers whose feeds stay open, with an output channel of
    /// `capacity` that is read only if `drain`; sets the stop flag after `after`; returns
    /// how long the run took to return once stopped.
    fn stopped_after(after: Duration, capacity: usize, drain: bool) -> Duration {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..2).map(|_| crossbeam_channel::bounded(8)).unzip();
        let (out_tx, out_rx) = crossbeam_channel::bounded(capacity);
        let config = Config::new(TierConfig {
            evidence_ms: 60_000,
            retention_ms: 3_600_000,
        });
        let stop = Arc::clone(&config.stop);
        // Logical time moves on, so worker 0 has closed times to report.
        for t in 1..8u64 {
            for s in &senders {
                s.send(vec![Feed::Advance { time_ms: t * 10 }]).unwrap();
            }
        }
        let run = std::thread::spawn(move || run(receivers, config, out_tx));
        let (reader, unread) = if drain {
            (
                Some(std::thread::spawn(move || out_rx.iter().count())),
                None,
            )
        } else {
            (None, Some(out_rx))
        };
        std::thread::sleep(after);
        let stopping = Instant::now();
        stop.store(true, Ordering::SeqCst);
        run.join().unwrap().unwrap();
        let took = stopping.elapsed();
        drop((senders, unread));
        if let Some(r) = reader {
            r.join().unwrap();
        }
        took
    }

    #[test]
    fn a_scheduled_removal_is_three_words() {
        // Every held indicator has one; a desk action inline made each 200+ bytes.
        assert!(
            std::mem::size_of::<Gone>() <= 24,
            "{}",
            std::mem::size_of::<Gone>()
        );
    }

    #[test]
    fn an_indicator_is_valid_for_at_most_the_max_age_after_its_modification() {
        const DAY: u64 = 86_400_000;
        let mut held = Held {
            retention_ms: DAY,
            horizon_ms: 2 * DAY,
            max_age_ms: 10 * DAY,
            ..Held::default()
        };
        let until = |c: &[(Shared<Indicator>, isize)]| {
            c.iter()
                .find(|(_, d)| *d > 0)
                .and_then(|(i, _)| i.valid_until)
                .map(|u| u.as_millisecond())
        };
        let ms = |d: u64| i64::try_from(d).unwrap();
        // No validity end: it ends 10 days after its modification, and leaves the
        // input a horizon after that.
        let forever = held.insert_indicator(indicator("a", ms(DAY), None), 5);
        assert_eq!(until(&forever), Some(ms(11 * DAY)));
        assert_eq!(held.age_bounded, 1, "counted");
        assert!(held.due.contains_key(&(13 * DAY)), "{:?}", held.due.keys());
        // An exact repeat is still a repeat.
        assert!(
            held.insert_indicator(indicator("a", ms(DAY), None), 6)
                .is_empty()
        );
        // A later end is brought back to the bound; an earlier one is kept.
        let late = held.insert_indicator(indicator("b", 0, Some(ms(30 * DAY))), 7);
        assert_eq!(until(&late), Some(ms(10 * DAY)));
        let early = held.insert_indicator(indicator("c", 0, Some(ms(3 * DAY))), 8);
        assert_eq!(until(&early), Some(ms(3 * DAY)));
        assert_eq!(
            held.age_bounded, 2,
            "the repeat and the earlier end are not counted"
        );
        // Published again, it is valid for another 10 days from the new modification.
        let again = held.insert_indicator(indicator("a", ms(20 * DAY), None), 9);
        assert_eq!(until(&again), Some(ms(30 * DAY)));
        assert!(
            again
                .iter()
                .any(|(i, d)| *d < 0 && i.modified.as_millisecond() == ms(DAY))
        );
    }

    #[test]
    fn workers_stop_between_steps_while_their_input_is_still_open() {
        let took = stopped_after(Duration::from_millis(300), 1024, true);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn a_worker_blocked_on_a_full_output_channel_stops_when_told() {
        let took = stopped_after(Duration::from_millis(300), 1, false);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
}
