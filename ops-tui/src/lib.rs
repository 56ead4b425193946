//! ops-tui
