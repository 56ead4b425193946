//! The current indicator set: the latest version of each indicator, unless revoked.
//!
//! Every version ever received stays in the input collection; per indicator id the
//! version with the greatest `modified` wins (ties broken by content, so the choice
//! is deterministic whatever the arrival order). A revoked latest version removes
//! the indicator: downstream, its matches and alerts are retracted at that logical
//! time. An expired indicator stays current; expiry is judged per event in
//! [`crate::matching`], so sightings inside the validity window stand.
//!
//! Caveat: superseded versions are retained (one per version received); the
//! compacted indicator topic bounds this on restart.

use differential_dataflow::VecCollection;
use schemas::Indicator;

use crate::Time;

/// The current version of each indicator id, without revoked ones.
pub fn current<'s>(
    versions: VecCollection<'s, Time, Indicator>,
) -> VecCollection<'s, Time, Indicator> {
    versions
        .map(|i| (i.id.clone(), i))
        .reduce_named(
            "LatestIndicatorVersion",
            |_id, versions: &[(&Indicator, isize)], out: &mut Vec<(Indicator, isize)>| {
                let latest = versions
                    .iter()
                    .filter(|(_, count)| *count > 0)
                    .map(|(v, _)| *v)
                    .max_by(|a, b| (a.modified, *a).cmp(&(b.modified, *b)));
                if let Some(latest) = latest
                    && !latest.revoked
                {
                    out.push((latest.clone(), 1));
                }
            },
        )
        .map(|(_id, indicator)| indicator)
}
