//! The duty desk: the API officers work through (`fusion run --desk-addr`), and the
//! commands around it (`fusion officer`, `fusion desk`).
//!
//! # Layout
//!
//! - [`store`]: the desk's state, a pure function of the dataflow's closed outputs (alert
//!   changes, routing changes) and of the actions seen entering the dataflow; plus the
//!   bounded ring of changes per closed time that streams resume from.
//! - [`hub`]: the store shared between the output loop (writer), ingest (action reports)
//!   and the API (readers), with change notifications.
//! - [`view`]: what one officer may see, through the egress rule with the officer's
//!   center as the recipient.
//! - [`api`] and [`stream`]: the HTTP routes and the server-sent change stream.
//! - [`officers`]: officers and their tokens (stored as hashes only).
//! - [`actions`]: where actions go (Kafka, or the in-process input), and their ids.
//! - [`cli`]: `fusion officer add|revoke|list` and `fusion desk`.
//! - [`start`]: how `fusion run` starts the desk (and opens it in its own terminal).
//!
//! Alert state changes only through the dataflow: an action request returns once the
//! action is handed on (and, when it comes within a few seconds, with the dataflow's
//! verdict); its effect reaches the store when routing reports it.

pub mod actions;
pub mod api;
pub mod cli;
pub mod hub;
pub mod metrics;
pub mod officers;
pub mod start;
pub mod store;
pub mod stream;
pub mod view;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;

pub use hub::{DeskConfig, DeskHub};

/// Default officers file (relative to the working directory).
pub const DEFAULT_OFFICERS: &str = "fusion-officers.toml";

/// How long an action request waits for the dataflow's verdict.
pub const VERDICT_WAIT: Duration = Duration::from_secs(5);

/// The drill a topic prefix names (`drill.<name>.`), if it names one.
pub fn drill_from_prefix(prefix: &str) -> Option<String> {
    let name = prefix.strip_prefix("drill.")?.trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

/// The pseudonym key of the desk's egress rule: `FUSION_PSEUDONYM_KEY` (as for
/// deliveries), or a random key for this run (pseudonyms then change at restart).
pub fn pseudonym_policy() -> schemas::sharing::Policy {
    match std::env::var("FUSION_PSEUDONYM_KEY") {
        Ok(key) if key.len() >= 16 => schemas::sharing::Policy::new(key.into_bytes()),
        _ => {
            tracing::info!(
                "FUSION_PSEUDONYM_KEY not set: the desk pseudonymises with a key of this run"
            );
            let key: [u8; 32] = rand::random();
            schemas::sharing::Policy::new(key.to_vec())
        }
    }
}

/// Serves the desk API on `addr` from a thread of its own; returns the bound address
/// (port 0 picks a free one), also logged as `desk API on http://ADDR`.
pub fn serve(addr: SocketAddr, state: api::ApiState) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot serve the desk on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = api::router(state);
    crate::metrics_http::serve_in_thread("desk-api", 2, listener, app)
        .context("cannot start the desk API thread")?;
    tracing::info!(%bound, "desk API on http://{bound}");
    Ok(bound)
}

/// Where log lines go: stderr, or a file while the desk occupies this terminal.
static LOG_FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Sends log lines to `path` from now on (the terminal belongs to the desk).
pub fn redirect_logs(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = LOG_FILE.set(Mutex::new(file));
    Ok(())
}

/// The log writer of `fusion`: stderr, unless [`redirect_logs`] was called.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter;

/// One log line's writer.
pub enum LogSink {
    /// To stderr.
    Stderr(std::io::Stderr),
    /// To the log file.
    File(&'static Mutex<std::fs::File>),
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogSink::Stderr(s) => s.write(buf),
            LogSink::File(f) => match f.lock() {
                Ok(mut f) => f.write(buf),
                Err(_) => Ok(buf.len()),
            },
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogSink::Stderr(s) => s.flush(),
            LogSink::File(f) => f.lock().map_or(Ok(()), |mut f| f.flush()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogSink;

    fn make_writer(&'a self) -> LogSink {
        match LOG_FILE.get() {
            Some(f) => LogSink::File(f),
            None => LogSink::Stderr(std::io::stderr()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_is_named_by_its_topic_prefix() {
        assert_eq!(drill_from_prefix("drill.ex1."), Some("ex1".into()));
        assert_eq!(drill_from_prefix("fusion."), None);
        assert_eq!(drill_from_prefix("drill.."), None);
    }
}
