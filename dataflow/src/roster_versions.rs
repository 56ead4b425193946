//! Operator `RosterVersions`: the roster in force, with the logical time it came into force.
//!
//! The roster input is a collection that should hold one roster. This operator
//! turns it into a collection of `(roster, since)`: at every logical time where
//! the roster in force changes, the old `(roster, since)` is retracted and the new
//! one inserted. Knowing `since` lets routing judge an event by the roster that was
//! in force at the event's own time, so a later roster change re-routes from its
//! own time on and never rewrites earlier decisions.
//!
//! If the collection holds several rosters at once (an operator error), the
//! greatest one (by its derived order) that compiles is in force; a roster that
//! does not compile is never in force (the binary checks rosters before loading
//! them). Everything runs on worker 0, so every worker count gives the same output.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::Time;
use crate::roster::{Roster, RosterSpec};

/// The roster in force and the time it came into force (see the module doc).
pub fn roster_versions<'s>(
    roster: VecCollection<'s, Time, RosterSpec>,
) -> VecCollection<'s, Time, (RosterSpec, Time)> {
    roster
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((RosterSpec, Time), Time, isize)>>, _, _, _>(
            Exchange::new(|_: &(RosterSpec, Time, isize)| 0u64),
            "RosterVersions",
            |cap, _info| {
                let mut cap = Some(cap);
                let mut pending: BTreeMap<Time, Vec<(RosterSpec, isize)>> = BTreeMap::new();
                let mut counts: BTreeMap<RosterSpec, isize> = BTreeMap::new();
                let mut current: Option<(RosterSpec, Time)> = None;
                move |(input, frontier), output| {
                    input.for_each(|_time, data| {
                        for (spec, t, r) in data.drain(..) {
                            pending.entry(t).or_default().push((spec, r));
                        }
                    });
                    let bound = crate::time_order::bound(&[&frontier.frontier()]);
                    let ready: Vec<Time> = pending
                        .keys()
                        .copied()
                        .filter(|t| bound.is_none_or(|b| *t < b))
                        .collect();
                    for t in ready {
                        for (spec, r) in pending.remove(&t).unwrap_or_default() {
                            let c = counts.entry(spec.clone()).or_default();
                            *c += r;
                            if *c == 0 {
                                counts.remove(&spec);
                            }
                        }
                        let chosen = counts
                            .iter()
                            .rev()
                            .filter(|(_, c)| **c > 0)
                            .map(|(s, _)| s)
                            .find(|s| Roster::compile(s).is_ok());
                        if chosen == current.as_ref().map(|(s, _)| s) {
                            continue;
                        }
                        let Some(cap) = cap.as_ref() else { break };
                        let at = cap.delayed(&t);
                        let mut session = output.session(&at);
                        if let Some(old) = current.take() {
                            session.give((old, t, -1));
                        }
                        if let Some(spec) = chosen {
                            current = Some((spec.clone(), t));
                            session.give(((spec.clone(), t), t, 1));
                        }
                    }
                    crate::time_order::hold_at(&mut cap, bound);
                }
            },
        )
        .as_collection()
}
