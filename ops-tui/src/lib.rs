//! The duty-desk terminal: a ratatui client of the desk API (`fusion desk`).
//!
//! Officers work the queue of open alerts, read an alert's evidence, provenance,
//! routing and history, act on it (acknowledge, assign, note, escalate, resolve,
//! false positive, accept handover) and read the handover digest. It depends on
//! `schemas` only and talks to `fusion run --desk-addr` over HTTP: the change stream
//! (server-sent events) keeps a local copy of the desk at the last closed logical time,
//! and actions are `POST`s whose outcome the dataflow decides and the stream reports.
//!
//! # Layout
//!
//! The shape of ratatui's own examples, gitui and bottom: messages ([`app::Msg`]: keys,
//! stream events, responses) change the state ([`app::App::update`]), which answers
//! with the requests to send ([`app::Request`]); drawing ([`ui::render`]) is a pure
//! function of the state. [`model`] is the desk as the stream describes it, [`sse`]
//! parses the stream, [`client`] runs the network on its own threads and reconnects by
//! itself, [`terminal`] owns the terminal (restored on exit and on panic).

pub mod app;
pub mod client;
pub mod format;
pub mod model;
pub mod sse;
pub mod terminal;
pub mod ui;

pub use app::{App, Msg, Request};
pub use client::{Client, ClientError};
pub use terminal::{Config, run};
