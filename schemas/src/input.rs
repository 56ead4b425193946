//! What ingest hands the dataflow: decoded inputs stamped with their logical time.

use serde::{Deserialize, Serialize};

use crate::action::DeskAction;
use crate::event::SensorEvent;
use crate::indicator::Indicator;

/// A decoded, validated input record. Events are [`SensorEvent`]s as decoded; what the
/// dataflow receives may be a form prepared for it on the ingest thread (`E`, see
/// `ingest::Router::with_prepare`), so the workers neither convert nor free the decoded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input<E = SensorEvent> {
    /// A sensor event.
    Event(E),
    /// A version of an indicator (partner indicators and OSINT items both arrive as this).
    Indicator(Indicator),
    /// An officer action.
    Action(DeskAction),
}

/// A message from ingest to one dataflow worker. Logical times are milliseconds since
/// the Unix epoch, rounded up to the epoch length, and never decrease on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // Nearly every message is a record; boxing would cost an allocation each.
pub enum Feed<E = SensorEvent> {
    /// An input at logical time `time_ms`.
    Record {
        /// Logical time (ingestion time, ms).
        time_ms: u64,
        /// The input.
        input: Input<E>,
    },
    /// Nothing earlier than `time_ms` will follow: the clock advanced.
    Advance {
        /// New lower bound of logical time (ms).
        time_ms: u64,
    },
}

impl<E> Input<E> {
    /// The same input with its event (if it is one) turned into `f(event)`.
    pub fn map_event<F>(self, f: impl FnOnce(E) -> F) -> Input<F> {
        match self {
            Input::Event(e) => Input::Event(f(e)),
            Input::Indicator(i) => Input::Indicator(i),
            Input::Action(a) => Input::Action(a),
        }
    }
}

impl<E> Feed<E> {
    /// The same message with its event (if it carries one) turned into `f(event)`.
    pub fn map_event<F>(self, f: impl FnOnce(E) -> F) -> Feed<F> {
        match self {
            Feed::Record { time_ms, input } => Feed::Record {
                time_ms,
                input: input.map_event(f),
            },
            Feed::Advance { time_ms } => Feed::Advance { time_ms },
        }
    }
}
