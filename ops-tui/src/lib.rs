//! The duty-desk terminal (to come).
//!
//! A ratatui client of the desk API: the open queue of the center on duty,
//! alert details, officer actions (acknowledge, assign, note, escalate, resolve,
//! false positive, accept handover) and the handover digest. It depends on
//! `schemas` only and talks to `fusion run` over HTTP; state changes only
//! through actions, and rendering is a pure function of state.
