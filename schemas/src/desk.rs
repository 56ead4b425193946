//! The desk API: the JSON that `fusion run --desk-addr` serves duty officers and that
//! the terminal (`ops-tui`) reads.
//!
//! Everything an officer sees is a view of the dataflow's outputs at one closed
//! logical time: the queue ([`QueueItem`]), one alert ([`AlertDetail`]) as the egress
//! rule lets the officer's center see it ([`crate::sharing`]), the duty and handovers
//! ([`DutyView`]) and the pipeline's health ([`PipelineHealth`]). The change stream
//! (server-sent events, `GET /api/events`) carries [`DeskEvent`]s; each snapshot or
//! delta has the id of its closed logical time, so a client resumes with
//! `Last-Event-ID` and never sees half an update. Officer actions are `POST`s
//! answered by an [`ActionReceipt`]; the action takes effect only once the dataflow
//! has judged it, which the alert's history ([`HistoryEntry`]) then shows.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::{ActionKind, DeskAction};
use crate::alert::Severity;
use crate::routing::{AlertRouting, AlertState, DutyStatus, EscalationReason, HandoverDigest};
use crate::sharing::{SharedAlert, Treatment};

/// Name of the SSE event carrying a [`DeskEvent::Snapshot`] or [`DeskEvent::Delta`].
pub const SSE_CHANGE: &str = "change";
/// Name of the SSE event carrying a [`DeskEvent::Health`] (no event id: it is not a change).
pub const SSE_HEALTH: &str = "health";

/// An officer as the desk knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerInfo {
    /// The officer's name (their id in actions).
    pub name: String,
    /// The center the officer belongs to.
    pub center: String,
}

/// A command center and its IANA time zone (from the roster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CenterInfo {
    /// The center's name as the roster writes it.
    pub name: String,
    /// Its IANA time zone, such as `Europe/Paris`.
    pub time_zone: String,
}

/// `GET /api/session`: who is calling, and what this instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The calling officer.
    pub officer: OfficerInfo,
    /// The drill this instance runs, or none for live operations.
    pub drill: Option<String>,
    /// The roster's centers, in roster order.
    pub centers: Vec<CenterInfo>,
}

/// Order of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueSort {
    /// Most severe first, then the nearest deadline, then the oldest.
    #[default]
    Severity,
    /// Oldest first.
    Age,
    /// Nearest acknowledgement deadline first (none last).
    Deadline,
    /// By owning center, then most severe first.
    Owner,
}

/// `GET /api/alerts` query: filters and order of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Only alerts owned by this center.
    #[serde(default)]
    pub center: Option<String>,
    /// Only alerts in this state.
    #[serde(default)]
    pub state: Option<AlertState>,
    /// Only alerts at or above this severity.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Order (default: severity).
    #[serde(default)]
    pub sort: Option<QueueSort>,
    /// Only alerts whose id, title, rule or owner contains this text (ASCII case-insensitive).
    #[serde(default)]
    pub q: Option<String>,
    /// At most this many items.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One line of the queue: routing and the fields of the alert the officer may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// Alert id.
    pub id: String,
    /// Severity now (after escalation).
    pub severity: Severity,
    /// Its state, from officers' actions.
    pub state: AlertState,
    /// The center owning it (empty while routing has not judged it, or without a roster).
    pub owner: String,
    /// When it opened (logical time).
    pub opened_at: Timestamp,
    /// Its acknowledgement deadline (escalation comes then if still unacknowledged).
    pub ack_deadline: Option<Timestamp>,
    /// Whether it escalated.
    pub escalated: bool,
    /// The officer who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// The officer it is assigned to.
    pub assigned_to: Option<String>,
    /// The version (logical time, ms) of its content.
    pub version: u64,
    /// The rule that raised it.
    pub rule: String,
    /// The title, or none where the egress rule withholds the alert from this officer.
    pub title: Option<String>,
    /// Why the alert's fields are hidden from this officer, if they are.
    pub hidden: Option<String>,
    /// Number of matching events.
    pub sightings: u64,
    /// Set for alerts of an exercise drill.
    pub drill: bool,
}

/// One field of the alert, as the egress rule treats it for this officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldView {
    /// Field name.
    pub field: String,
    /// Sent, pseudonymised or not sent.
    pub treatment: Treatment,
    /// Why.
    pub why: String,
}

/// One check of the egress rule for this officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// Which check (drill, tlp, clearance, interest).
    pub name: String,
    /// Whether it let the alert through.
    pub passed: bool,
    /// Why, in words.
    pub detail: String,
}

/// `GET /api/alerts/{id}/explain`: why each field is shown, pseudonymised or hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainView {
    /// The alert.
    pub alert_id: String,
    /// The recipient the officer's center is to the egress rule.
    pub recipient: String,
    /// Whether the alert's fields are shown.
    pub shown: bool,
    /// Every check, in order.
    pub checks: Vec<CheckView>,
    /// Every field.
    pub fields: Vec<FieldView>,
}

/// How an officer action ended, as the dataflow judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Sent to the dataflow, not yet judged.
    Pending,
    /// Judged and taken into account.
    Accepted,
    /// Rejected by routing (`not_owner`).
    Rejected {
        /// Bounded error code (`not_owner`).
        code: String,
        /// Why, in words.
        reason: String,
    },
}

/// Something that happened to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HistoryEvent {
    /// The alert opened, owned by this center.
    Opened {
        /// The owning center (empty without a roster).
        center: String,
    },
    /// An officer acted on it.
    Action {
        /// The action's id.
        action_id: String,
        /// Who.
        officer_id: String,
        /// The officer's center.
        center: String,
        /// What.
        action: ActionKind,
        /// How the dataflow judged it.
        #[serde(flatten)]
        outcome: ActionOutcome,
    },
    /// It escalated.
    Escalated {
        /// Why.
        reason: EscalationReason,
        /// Severity before.
        from: Severity,
        /// Severity after.
        to: Severity,
        /// The second center notified.
        notified: Option<String>,
    },
    /// It was handed over at a watch change.
    HandedOver {
        /// Outgoing center.
        from: String,
        /// Incoming center.
        to: String,
    },
}

/// One entry of an alert's history, at a logical time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Logical time it happened (for an action: the time it was judged at, or sent at while pending).
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: HistoryEvent,
}

/// `GET /api/alerts/{id}`: one alert with its evidence, provenance, routing and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDetail {
    /// Its queue line.
    pub item: QueueItem,
    /// The alert as the egress rule lets this officer see it; none when withheld.
    pub alert: Option<SharedAlert>,
    /// How each field is treated for this officer (`explain` has the checks too).
    pub fields: Vec<FieldView>,
    /// Its routing (owner, state, notes, escalation); none without a roster.
    pub routing: Option<AlertRouting>,
    /// What happened to it, oldest first (bounded: the latest entries).
    pub history: Vec<HistoryEntry>,
    /// Whether the alert is still open (false for a recently closed alert kept for reference).
    pub open: bool,
}

/// `GET /api/duty`: the roster's centers, who is on duty, and recent handovers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyView {
    /// The last closed logical time.
    pub now: Option<Timestamp>,
    /// The center on duty.
    pub duty: Option<DutyStatus>,
    /// The roster's centers.
    pub centers: Vec<CenterInfo>,
    /// The latest handover digests, newest first (bounded).
    pub handovers: Vec<HandoverDigest>,
}

/// `GET /api/health`: how the pipeline is doing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PipelineHealth {
    /// Input records per second (last second).
    pub events_per_sec: f64,
    /// Wall-clock time minus the last closed logical time, in ms (the desk's lag).
    pub lag_ms: Option<i64>,
    /// Records dead-lettered so far.
    pub dead_letters: u64,
    /// Whether state is still being rebuilt from retained history.
    pub rehydrating: bool,
    /// How long the rehydration took, once done.
    pub rehydration_ms: Option<u64>,
    /// The last closed logical time.
    pub closed_time: Option<Timestamp>,
    /// Alerts open now.
    pub open_alerts: usize,
    /// Officer actions rejected so far.
    pub rejected_actions: u64,
}

/// How an alert left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Its inputs were withdrawn.
    Retracted,
    /// It aged out.
    Expired,
    /// Closed as dealt with.
    Resolved,
    /// Closed as a false positive.
    FalsePositive,
}

/// An alert that left the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The alert.
    pub id: String,
    /// Why.
    pub why: Removal,
}

/// An action whose outcome changed (or that was seen for the first time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionUpdate {
    /// The alert acted on (empty for `accept_handover`).
    pub alert_id: String,
    /// The history entry of the action.
    pub entry: HistoryEntry,
}

/// The whole desk at one closed logical time, as one officer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskSnapshot {
    /// The closed logical time (ms); also the SSE event id.
    pub time_ms: u64,
    /// Every open alert (unsorted).
    pub queue: Vec<QueueItem>,
    /// The center on duty.
    pub duty: Option<DutyStatus>,
    /// The latest handover digests, newest first.
    pub handovers: Vec<HandoverDigest>,
}

/// What changed at one closed logical time, as one officer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeskDelta {
    /// The closed logical time (ms); also the SSE event id.
    pub time_ms: u64,
    /// Alerts that opened or changed (content or routing): their new queue line.
    pub upserts: Vec<QueueItem>,
    /// Alerts that left the queue.
    pub removed: Vec<Removed>,
    /// The new duty status, if it changed.
    pub duty: Option<DutyStatus>,
    /// Handover digests that appeared or changed.
    pub handovers: Vec<HandoverDigest>,
    /// Actions judged at this time.
    pub actions: Vec<ActionUpdate>,
}

/// One event of the change stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// Everything, at a closed time: sent first, and whenever the client is too far behind.
    Snapshot(DeskSnapshot),
    /// What changed at the next closed time.
    Delta(DeskDelta),
    /// The pipeline's health (not a change; carries no event id).
    Health(PipelineHealth),
}

impl DeskEvent {
    /// The closed logical time of a snapshot or delta (the SSE event id); none for health.
    pub fn time_ms(&self) -> Option<u64> {
        match self {
            DeskEvent::Snapshot(s) => Some(s.time_ms),
            DeskEvent::Delta(d) => Some(d.time_ms),
            DeskEvent::Health(_) => None,
        }
    }
}

/// Body of `POST /api/alerts/{id}/assign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The officer the alert is assigned to.
    pub officer_id: String,
}

/// Body of `POST /api/alerts/{id}/note`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note.
    pub text: String,
}

/// `202 Accepted` to an action: it was handed to the dataflow, which judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReceipt {
    /// The action's id (`GET /api/actions/{id}` follows it).
    pub action_id: String,
    /// The logical time it was sent at.
    pub at: Timestamp,
    /// The verdict when the answer left: accepted, or still pending (a rejection is a 403).
    #[serde(flatten)]
    pub outcome: ActionOutcome,
}

/// `GET /api/actions/{id}`: an action and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The action as sent.
    pub action: DeskAction,
    /// How the dataflow judged it.
    #[serde(flatten)]
    pub outcome: ActionOutcome,
}

/// Bounded error codes of the desk API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// No token, a wrong one or a revoked one (401).
    Unauthorized,
    /// The officer's center does not own the alert (403).
    NotOwner,
    /// No such alert or action (404).
    NotFound,
    /// The request is malformed (400).
    BadRequest,
    /// The desk cannot take actions now (503).
    Unavailable,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of error.
    pub error: ApiErrorCode,
    /// What failed and what to do about it.
    pub message: String,
    /// For `not_owner`: the center owning the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// For a `not_owner` the dataflow judged: the action's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_history_entry_reads_flat() {
        let entry = HistoryEntry {
            at: Timestamp::UNIX_EPOCH,
            event: HistoryEvent::Action {
                action_id: "a1".into(),
                officer_id: "alice".into(),
                center: "Lyon".into(),
                action: ActionKind::Acknowledge,
                outcome: ActionOutcome::Rejected {
                    code: "not_owner".into(),
                    reason: "Singapore owns it".into(),
                },
            },
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["event"], "action");
        assert_eq!(json["officer_id"], "alice");
        assert_eq!(json["outcome"], "rejected");
        assert_eq!(json["code"], "not_owner");
        assert_eq!(json["action"]["kind"], "acknowledge");
        let back: HistoryEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn change_events_carry_their_closed_time() {
        let delta = DeskEvent::Delta(DeskDelta {
            time_ms: 42,
            ..DeskDelta::default()
        });
        let text = serde_json::to_string(&delta).unwrap();
        let back: DeskEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.time_ms(), Some(42));
        assert_eq!(DeskEvent::Health(PipelineHealth::default()).time_ms(), None);
    }
}
