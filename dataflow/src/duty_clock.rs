//! Operator `DutyClock`: the center on duty, changing at every handover instant.
//!
//! Input: the roster in force with the time it came into force (see
//! [`crate::roster_versions`]). Output: a collection holding one [`DutyStatus`] at
//! every logical time from the first roster on, replaced at each handover instant
//! and at each roster change. The operator holds a capability at its input
//! frontier and, when the frontier (advanced by the ingest clock even when no
//! records arrive) passes a handover instant, emits the new duty *at* that
//! instant: handovers happen on logical time, with no further input. When the
//! roster input ends, the clock stops (so a finished run terminates).
//!
//! Everything runs on worker 0, so every worker count gives the same output.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use jiff::Timestamp;
use schemas::routing::DutyStatus;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::Time;
use crate::roster::{Roster, RosterSpec};

/// Logical time (ms) as an instant (clamped to jiff's range).
pub fn instant(ms: Time) -> Timestamp {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// An instant as logical time (ms; instants before the epoch are 0).
pub fn logical(ms: i64) -> Time {
    Time::try_from(ms).unwrap_or(0)
}

/// Who is on duty at logical time `t` under `roster`, and what comes next.
pub fn duty_at(roster: &Roster, t: Time) -> Option<DutyStatus> {
    let t_ms = i64::try_from(t).unwrap_or(i64::MAX);
    let center = roster.on_duty(t_ms)?;
    let last = roster.last_handover(t_ms);
    let next = roster.next_handover(t_ms);
    let since_ms = last.map_or(t_ms, |h| h.at_ms);
    Some(DutyStatus {
        center: roster.center_name(center).to_string(),
        since: instant(logical(since_ms)),
        previous: last.map(|h| roster.center_name(h.from).to_string()),
        overlap_until: instant(logical(since_ms.saturating_add(roster.overlap_ms()))),
        next_handover: next.map(|h| instant(logical(h.at_ms))),
        next_center: next.map(|h| roster.center_name(h.to).to_string()),
    })
}

/// The duty collection driven by the roster versions and logical time.
pub fn duty_clock<'s>(
    versions: VecCollection<'s, Time, (RosterSpec, Time)>,
) -> VecCollection<'s, Time, DutyStatus> {
    versions
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(DutyStatus, Time, isize)>>, _, _, _>(
            Exchange::new(|_: &((RosterSpec, Time), Time, isize)| 0u64),
            "DutyClock",
            |cap, _info| {
                let mut cap = Some(cap);
                let mut pending: BTreeMap<Time, Vec<((RosterSpec, Time), isize)>> = BTreeMap::new();
                let mut counts: BTreeMap<(RosterSpec, Time), isize> = BTreeMap::new();
                let mut roster: Option<(RosterSpec, Roster)> = None;
                let mut emitted: Option<DutyStatus> = None;
                let mut next_tick: Option<Time> = None;
                move |(input, frontier), output| {
                    input.for_each(|_time, data| {
                        for (v, t, r) in data.drain(..) {
                            pending.entry(t).or_default().push((v, r));
                        }
                    });
                    let bound = crate::time_order::bound(&[&frontier.frontier()]);
                    loop {
                        let change = pending
                            .keys()
                            .next()
                            .copied()
                            .filter(|t| bound.is_none_or(|b| *t < b));
                        // The clock ticks only while the roster input is open.
                        let tick = next_tick.filter(|t| bound.is_some_and(|b| *t < b));
                        let Some(e) = [change, tick].into_iter().flatten().min() else {
                            break;
                        };
                        if change == Some(e) {
                            for (v, r) in pending.remove(&e).unwrap_or_default() {
                                let c = counts.entry(v.clone()).or_default();
                                *c += r;
                                if *c == 0 {
                                    counts.remove(&v);
                                }
                            }
                            let spec = counts
                                .iter()
                                .rev()
                                .find(|(_, c)| **c > 0)
                                .map(|((s, _), _)| s);
                            if spec != roster.as_ref().map(|(s, _)| s) {
                                roster = spec
                                    .and_then(|s| Roster::compile(s).ok().map(|r| (s.clone(), r)));
                            }
                        }
                        let duty = roster.as_ref().and_then(|(_, r)| duty_at(r, e));
                        next_tick = roster.as_ref().and_then(|(_, r)| {
                            let t_ms = i64::try_from(e).unwrap_or(i64::MAX);
                            r.next_handover(t_ms).map(|h| logical(h.at_ms))
                        });
                        if duty != emitted
                            && let Some(cap) = cap.as_ref()
                        {
                            let at = cap.delayed(&e);
                            let mut session = output.session(&at);
                            if let Some(old) = emitted.take() {
                                session.give((old, e, -1));
                            }
                            if let Some(new) = duty {
                                emitted = Some(new.clone());
                                session.give((new, e, 1));
                            }
                        }
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}
