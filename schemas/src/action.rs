//! Duty officers' actions on alerts (on `fusion.desk.actions`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::validate::{self, ValidationError};

/// What the officer did.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionKind {
    /// The officer has seen the alert and works it.
    Acknowledge,
    /// Hands the alert to a named officer.
    Assign {
        /// The officer it is assigned to.
        officer_id: String,
    },
    /// Adds a note (carried over at handover).
    Note {
        /// The note.
        text: String,
    },
    /// Raises the alert's severity and notifies a second center.
    Escalate,
    /// Closes the alert as dealt with.
    Resolve,
    /// Closes the alert as a false positive.
    FalsePositive,
    /// The incoming center accepts the handed-over queue.
    AcceptHandover,
}

/// One officer action.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct DeskAction {
    /// Schema version of this record; this release reads 1.
    pub schema_version: u32,
    /// Unique id of the action.
    pub action_id: String,
    /// The alert acted on (empty for `accept_handover`).
    #[serde(default)]
    pub alert_id: String,
    /// Who acted.
    pub officer_id: String,
    /// The officer's center.
    pub center: String,
    /// When the officer acted.
    pub at: Timestamp,
    /// What the officer did.
    pub action: ActionKind,
}

impl DeskAction {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::schema_version(self.schema_version)?;
        validate::id("action_id", &self.action_id)?;
        if !matches!(self.action, ActionKind::AcceptHandover) {
            validate::id("alert_id", &self.alert_id)?;
        }
        validate::id("officer_id", &self.officer_id)?;
        validate::text("center", &self.center)?;
        if self.center.is_empty() || self.center.len() > validate::MAX_ID_BYTES {
            return Err(ValidationError::new(
                "center",
                "must be a center name of 1 to 128 bytes",
            ));
        }
        match &self.action {
            ActionKind::Assign { officer_id } => validate::id("action.officer_id", officer_id)?,
            ActionKind::Note { text } => validate::text("action.text", text)?,
            _ => {}
        }
        Ok(())
    }
}
