//! The topics Fusion reads and writes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A logical topic; the Kafka name is the configured prefix (default `fusion.`) plus [`Topic::suffix`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Canonical sensor events.
    SensorEvents,
    /// Partner indicators (compacted, keyed by indicator id).
    PartnerIndicators,
    /// Open-source feed items.
    OsintItems,
    /// Duty officers' actions.
    DeskActions,
    /// Alert changes.
    Alerts,
    /// Records that failed to decode or validate.
    Deadletter,
    /// Sighting feedback to partners.
    Feedback,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 7] = [
        Topic::SensorEvents,
        Topic::PartnerIndicators,
        Topic::OsintItems,
        Topic::DeskActions,
        Topic::Alerts,
        Topic::Deadletter,
        Topic::Feedback,
    ];
    /// The topics Fusion consumes.
    pub const INPUTS: [Topic; 4] = [
        Topic::SensorEvents,
        Topic::PartnerIndicators,
        Topic::OsintItems,
        Topic::DeskActions,
    ];

    /// The name after the prefix, for example `sensor.events`.
    pub fn suffix(self) -> &'static str {
        match self {
            Topic::SensorEvents => "sensor.events",
            Topic::PartnerIndicators => "partner.indicators",
            Topic::OsintItems => "osint.items",
            Topic::DeskActions => "desk.actions",
            Topic::Alerts => "alerts",
            Topic::Deadletter => "deadletter",
            Topic::Feedback => "feedback",
        }
    }

    /// Finds a topic by its suffix (`sensor.events`) or full default name (`fusion.sensor.events`).
    pub fn from_name(name: &str) -> Option<Topic> {
        let suffix = name.strip_prefix("fusion.").unwrap_or(name);
        Topic::ALL.into_iter().find(|t| t.suffix() == suffix)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suffix())
    }
}
