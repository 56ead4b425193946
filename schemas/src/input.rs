//! What ingest hands the dataflow: decoded inputs stamped with their logical time.

use serde::{Deserialize, Serialize};

use crate::action::DeskAction;
use crate::event::SensorEvent;
use crate::indicator::Indicator;

/// A decoded, validated input record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A sensor event.
    Event(SensorEvent),
    /// A version of an indicator (partner indicators and OSINT items both arrive as this).
    Indicator(Indicator),
    /// An officer action.
    Action(DeskAction),
}

/// A message from ingest to one dataflow worker. Logical times are milliseconds since
/// the Unix epoch, rounded up to the epoch length, and never decrease on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // Nearly every message is a record; boxing would cost an allocation each.
pub enum Feed {
    /// An input at logical time `time_ms`.
    Record {
        /// Logical time (ingestion time, ms).
        time_ms: u64,
        /// The input.
        input: Input,
    },
    /// Nothing earlier than `time_ms` will follow: the clock advanced.
    Advance {
        /// New lower bound of logical time (ms).
        time_ms: u64,
    },
}
