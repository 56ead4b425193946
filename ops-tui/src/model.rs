//! The desk as the change stream describes it: the open queue, the duty, the latest
//! handovers and the pipeline's health, at the last closed logical time received.

use std::collections::HashMap;

use schemas::desk::{ActionUpdate, DeskEvent, PipelineHealth, QueueItem, Session};
use schemas::routing::{DutyStatus, HandoverDigest};

/// How many handover digests are kept (newest first).
pub const HANDOVERS_KEPT: usize = 8;

/// The local copy of the desk.
#[derive(Debug, Clone, Default)]
pub struct Desk {
    /// Who we are and what the instance runs.
    pub session: Option<Session>,
    /// Open alerts by id.
    pub queue: HashMap<String, QueueItem>,
    /// The center on duty.
    pub duty: Option<DutyStatus>,
    /// The latest handover digests, newest first.
    pub handovers: Vec<HandoverDigest>,
    /// The pipeline's health.
    pub health: Option<PipelineHealth>,
    /// The last closed logical time applied (the stream's last event id).
    pub time_ms: Option<u64>,
}

/// What applying an event changed, for the state around the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Whether the queue changed (the view must be sorted again).
    pub queue_changed: bool,
    /// Alerts whose line or detail changed (upserted, removed or acted on).
    pub touched: Vec<String>,
    /// Actions judged.
    pub actions: Vec<ActionUpdate>,
}

impl Desk {
    /// Applies one stream event.
    pub fn apply(&mut self, event: DeskEvent) -> Applied {
        let mut applied = Applied::default();
        match event {
            DeskEvent::Snapshot(s) => {
                self.time_ms = Some(s.time_ms);
                self.queue = s.queue.into_iter().map(|i| (i.id.clone(), i)).collect();
                self.duty = s.duty;
                self.handovers = s.handovers;
                self.handovers.truncate(HANDOVERS_KEPT);
                applied.queue_changed = true;
                applied.touched = self.queue.keys().cloned().collect();
            }
            DeskEvent::Delta(d) => {
                self.time_ms = Some(d.time_ms);
                applied.queue_changed = !d.upserts.is_empty() || !d.removed.is_empty();
                for item in d.upserts {
                    applied.touched.push(item.id.clone());
                    self.queue.insert(item.id.clone(), item);
                }
                for gone in d.removed {
                    self.queue.remove(&gone.id);
                    applied.touched.push(gone.id);
                }
                if d.duty.is_some() {
                    self.duty = d.duty;
                }
                for digest in d.handovers {
                    self.handovers.retain(|h| {
                        (h.at, &h.from, &h.to) != (digest.at, &digest.from, &digest.to)
                    });
                    self.handovers.push(digest);
                }
                self.handovers.sort_by_key(|h| std::cmp::Reverse(h.at));
                self.handovers.truncate(HANDOVERS_KEPT);
                for a in &d.actions {
                    if !a.alert_id.is_empty() {
                        applied.touched.push(a.alert_id.clone());
                    }
                }
                applied.actions = d.actions;
            }
            DeskEvent::Health(h) => self.health = Some(h),
        }
        applied
    }

    /// The officer's center, once the session is known.
    pub fn center(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.officer.center.as_str())
    }

    /// The drill this instance runs, if any.
    pub fn drill(&self) -> Option<&str> {
        self.session.as_ref().and_then(|s| s.drill.as_deref())
    }
}
