//! Follow-the-sun routing outputs: who is on duty, who owns each alert and in what
//! state, handover digests, escalations, and officer actions rejected for not
//! owning the alert. Derived in the dataflow; consumed by the desk API and the TUI.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::DeskAction;
use crate::alert::Severity;
use crate::deadletter::DeadLetter;
use crate::decode::{DecodeError, ErrorCode};

/// The center on duty now, and what comes next.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct DutyStatus {
    /// The center holding the watch.
    pub center: String,
    /// When it took the watch.
    pub since: Timestamp,
    /// The center it took the watch from, if known.
    pub previous: Option<String>,
    /// Until then the previous center still sees the queue and may act on it.
    pub overlap_until: Timestamp,
    /// The next handover, if one is scheduled.
    pub next_handover: Option<Timestamp>,
    /// The center taking the watch at the next handover.
    pub next_center: Option<String>,
}

/// Where an alert stands, from officers' actions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Nobody has acknowledged it yet.
    Open,
    /// An officer works it.
    Acknowledged,
    /// Closed as dealt with.
    Resolved,
    /// Closed as a false positive.
    FalsePositive,
}

impl AlertState {
    /// True once resolved or marked false positive: no longer handed over or escalated.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertState::Resolved | AlertState::FalsePositive)
    }
}

/// An officer's note on an alert (carried over at handover).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct DeskNote {
    /// Who wrote it.
    pub officer_id: String,
    /// The officer's center.
    pub center: String,
    /// The note.
    pub text: String,
    /// Logical time it was taken into account.
    pub at: Timestamp,
}

/// Why an alert escalated.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EscalationReason {
    /// Not acknowledged by its severity's deadline.
    Deadline,
    /// An officer escalated it.
    Officer {
        /// Who.
        officer_id: String,
        /// The officer's center.
        center: String,
    },
}

/// An `escalated` event: an alert's severity was raised and a second center notified.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Escalation {
    /// The alert.
    pub alert_id: String,
    /// When (logical time).
    pub at: Timestamp,
    /// Why.
    pub reason: EscalationReason,
    /// The severity before.
    pub from_severity: Severity,
    /// The severity after (one level up; critical stays critical).
    pub to_severity: Severity,
    /// The center owning the alert when it escalated.
    pub owner: String,
    /// The second center notified: the next one in the rotation.
    pub notified: Option<String>,
}

/// One alert's routing: owner and state.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct AlertRouting {
    /// The alert.
    pub alert_id: String,
    /// The center owning it now (for a closed alert: when it was closed).
    pub owner: String,
    /// The center on duty when it opened.
    pub opened_by: String,
    /// When it opened (logical time).
    pub opened_at: Timestamp,
    /// Its state.
    pub state: AlertState,
    /// Severity after escalation.
    pub severity: Severity,
    /// Severity as raised by its rule.
    pub original_severity: Severity,
    /// Acknowledgement deadline.
    pub ack_deadline: Option<Timestamp>,
    /// The officer who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// The officer it is assigned to.
    pub assigned_to: Option<String>,
    /// Notes, oldest first.
    pub notes: Vec<DeskNote>,
    /// Its escalation, if it escalated.
    pub escalation: Option<Escalation>,
}

/// An alert as handed over.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct HandedOverAlert {
    /// The alert.
    pub alert_id: String,
    /// Its severity (after escalation) at the handover.
    pub severity: Severity,
    /// Its state at the handover (open or acknowledged).
    pub state: AlertState,
    /// When it opened.
    pub opened_at: Timestamp,
    /// Assigned officer at the handover.
    pub assigned_to: Option<String>,
    /// Notes at the handover, oldest first.
    pub notes: Vec<DeskNote>,
}

/// Open alerts by severity.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub struct SeverityCounts {
    /// Critical.
    pub critical: u32,
    /// High.
    pub high: u32,
    /// Medium.
    pub medium: u32,
    /// Low.
    pub low: u32,
}

impl SeverityCounts {
    /// Counts one alert of `severity`.
    pub fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }
}

/// The incoming center's acceptance of a handover.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Acceptance {
    /// Who accepted.
    pub officer_id: String,
    /// When (logical time).
    pub at: Timestamp,
}

/// What the outgoing center hands the incoming one at a handover.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct HandoverDigest {
    /// The handover instant.
    pub at: Timestamp,
    /// Outgoing center.
    pub from: String,
    /// Incoming center.
    pub to: String,
    /// Open (unresolved) alerts handed over, by severity.
    pub counts: SeverityCounts,
    /// The oldest unacknowledged alert handed over.
    pub oldest_unacknowledged: Option<String>,
    /// Every alert handed over, by id, with its notes.
    pub alerts: Vec<HandedOverAlert>,
    /// The incoming center's acceptance (the first), once given.
    pub accepted: Option<Acceptance>,
}

/// An officer action rejected by routing (dead-lettered with [`ErrorCode::NotOwner`]).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct RejectedAction {
    /// The action.
    pub action: DeskAction,
    /// Logical time it was judged at.
    pub at: Timestamp,
    /// Always [`ErrorCode::NotOwner`].
    pub code: ErrorCode,
    /// Why, in words.
    pub reason: String,
    /// The center on duty (owning the alert) at that time, if any.
    pub owner: Option<String>,
}

/// One change of a routing view at one logical time, as written to `--routing-out` and
/// served to the desk: `diff` is +1 when the record appears and -1 when it is replaced
/// or withdrawn.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RoutingChange {
    /// An alert's owner, state, notes and escalation.
    Alert {
        /// +1 or -1.
        diff: isize,
        /// The routing record.
        routing: AlertRouting,
    },
    /// An escalation.
    Escalation {
        /// +1 or -1.
        diff: isize,
        /// The escalation.
        escalation: Escalation,
    },
    /// A handover digest.
    Handover {
        /// +1 or -1.
        diff: isize,
        /// The digest.
        digest: HandoverDigest,
    },
    /// The center on duty.
    Duty {
        /// +1 or -1.
        diff: isize,
        /// The duty status.
        duty: DutyStatus,
    },
    /// An officer action rejected for not owning the alert.
    Rejected {
        /// +1 or -1.
        diff: isize,
        /// The rejected action.
        action: RejectedAction,
    },
}

impl RejectedAction {
    /// The dead letter for this rejection on `topic` (the full desk-actions topic name);
    /// the original bytes are the action as JSON, since routing sees decoded actions.
    pub fn dead_letter(&self, topic: &str) -> DeadLetter {
        let original = serde_json::to_vec(&self.action).unwrap_or_default();
        let error = DecodeError::new(self.code, Some("center".into()), self.reason.clone());
        DeadLetter::new(topic, -1, -1, &original, &error, self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActionKind;

    #[test]
    fn a_rejection_becomes_a_not_owner_dead_letter_with_the_action() {
        let action = DeskAction {
            schema_version: 1,
            action_id: "a1".into(),
            alert_id: "x".into(),
            officer_id: "o1".into(),
            center: "Lyon".into(),
            at: Timestamp::UNIX_EPOCH,
            action: ActionKind::Acknowledge,
        };
        let r = RejectedAction {
            action: action.clone(),
            at: Timestamp::UNIX_EPOCH,
            code: ErrorCode::NotOwner,
            reason: "Singapore owns the alert".into(),
            owner: Some("Singapore".into()),
        };
        let dl = r.dead_letter("fusion.desk.actions");
        assert_eq!(dl.code, ErrorCode::NotOwner);
        assert_eq!(dl.detail, "Singapore owns the alert");
        let back: DeskAction = serde_json::from_slice(&dl.original().unwrap()).unwrap();
        assert_eq!(back, action);
    }
}
