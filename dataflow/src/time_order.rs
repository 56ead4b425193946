//! What every custom operator that processes logical times one at a time, in order, shares:
//! which times are complete, and the capability it keeps for the rest.
//!
//! Such an operator (history matching, alert evidence, the roster's versions, the duty
//! clock, routing's `made`, `judge` and duty pairing) buffers its inputs by time, handles
//! every time before [`bound`] in order, and then holds its capability at that bound with
//! [`hold_at`].

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilderSession;

use crate::Time;

/// The earliest time any of the input `frontiers` may still bring: every earlier time is
/// complete. None once every input is closed.
pub(crate) fn bound(frontiers: &[&[Time]]) -> Option<Time> {
    frontiers.iter().filter_map(|f| f.first().copied()).min()
}

/// Keeps `cap` at `bound` (what is still to come, and anything the operator will emit
/// later, is at or after it); drops it once the inputs are closed.
pub(crate) fn hold_at(cap: &mut Option<Capability<Time>>, bound: Option<Time>) {
    match bound {
        Some(b) => {
            if let Some(cap) = cap.as_mut() {
                cap.downgrade(&b);
            }
        }
        None => *cap = None,
    }
}

/// Emits the updates `out` (drained) at time `t`, which must be at or after `cap` (held
/// while the inputs are open); nothing once the capability is dropped.
pub(crate) fn give_at<D: Clone + 'static>(
    output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<(D, Time, isize)>>>,
    cap: Option<&Capability<Time>>,
    t: Time,
    out: &mut Vec<(D, isize)>,
) {
    if out.is_empty() {
        return;
    }
    if let Some(cap) = cap {
        let at = cap.delayed(&t);
        let mut session = output.session(&at);
        for (d, diff) in out.drain(..) {
            session.give((d, t, diff));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_the_earliest_open_frontier() {
        assert_eq!(bound(&[&[7], &[3]]), Some(3));
        assert_eq!(
            bound(&[&[], &[3]]),
            Some(3),
            "a closed input bounds nothing"
        );
        assert_eq!(bound(&[&[5]]), Some(5));
        assert_eq!(bound(&[&[], &[]]), None, "every input closed");
    }
}
