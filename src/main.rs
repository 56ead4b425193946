//! `fusion`: the stream processor of the follow-the-sun cyber fusion center.
//!
//! Thin by design: parse arguments, wire the crates, run.

#![allow(clippy::print_stdout)] // The CLI's job is to print.

mod delivery_cli;
mod desk;
mod drill;
mod kafka_cli;
mod load;
mod metrics_http;
mod roster;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

// glibc's allocator spent a third of a replay's CPU time in malloc/free (the dataflow's
// batchers allocate and free many small strings); mimalloc's thread-local free lists do
// the same work for much less. The `system-alloc` feature keeps the system allocator, for
// heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fusion: correlates sensor events with partner and OSINT intelligence, live and retroactively.
#[derive(Parser, Debug)]
#[command(name = "fusion", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the fusion center (default: on the embedded scenario generator).
    Run(Box<run::RunArgs>),
    /// Drives `fusion run` with generated traffic at a steady rate and reports throughput,
    /// ingestion-to-alert latency, CPU and memory (JSON).
    Load(load::LoadArgs),
    /// Opens the duty-desk terminal on a desk API (`fusion run --desk-addr`).
    Desk(desk::cli::DeskArgs),
    /// Adds, revokes or lists the officers who may use the desk.
    #[command(subcommand)]
    Officer(desk::cli::OfficerCommand),
    /// Verifies and prints signed webhooks (for bureaus, drills and tests).
    Receive(delivery_cli::ReceiveArgs),
    /// Delivers alert changes from a file through the durable outbox until all are delivered.
    Deliver(delivery_cli::DeliverArgs),
    /// Prints why each field of an alert was or was not sent to a recipient.
    ExplainDelivery(delivery_cli::ExplainArgs),
    /// Lists and re-queues messages the outbox parked (refused, or out of retries).
    #[command(subcommand)]
    Outbox(delivery_cli::OutboxCommand),
    /// Exercise drills: capture a period, replay it isolated from live operations, score it.
    #[command(subcommand)]
    Drill(drill::DrillCommand),
    /// Validates a follow-the-sun roster, or shows who is on duty at an instant.
    Roster(roster::RosterArgs),
    /// Writes a deterministic scenario as JSON lines per topic, with its ground truth.
    Generate {
        /// Seed of the scenario.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of sensor events.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Event-time density, events per second.
        #[arg(long, default_value_t = 10_000)]
        events_per_sec: u32,
        /// Start of the scenario (RFC 3339); default 2026-11-01T00:00:00Z.
        #[arg(long, default_value = "2026-11-01T00:00:00Z")]
        start: jiff::Timestamp,
    },
    /// Kafka topics.
    #[command(subcommand)]
    Topics(kafka_cli::TopicsCommand),
    /// Publishes a file (STIX bundle, EVE JSON, feed list or canonical JSON lines) to an input topic.
    Publish(kafka_cli::PublishArgs),
    /// Writes the JSON Schema of every topic's records into a directory.
    Schema {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Parses durations such as `30s`, `5m`, `1h`, `250ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; write e.g. 30s, 5m, 250ms"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!("unknown unit {unit:?}; use ms, s, m, h or d")),
    }
}

/// Runs the command; a user error prints its chain once, without a backtrace (that is
/// for bugs: panics keep theirs), and exits 1.
fn main() -> std::process::ExitCode {
    match dispatch() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error: …` then one `caused by: …` line per cause, skipping a cause whose text the
/// line before already contains (many errors repeat their source in their message).
fn error_report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for (i, cause) in e.chain().enumerate() {
        let text = cause.to_string();
        if i > 0 && (text.is_empty() || last.contains(&text)) {
            continue;
        }
        out.push_str(if i == 0 { "error: " } else { "caused by: " });
        out.push_str(&text);
        out.push('\n');
        last = text;
    }
    out
}

fn dispatch() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(desk::LogWriter)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Load(args) => load::load(args),
        Command::Desk(args) => desk::cli::desk(args),
        Command::Officer(cmd) => desk::cli::officer(cmd),
        Command::Roster(args) => roster::run(args),
        Command::Receive(args) => delivery_cli::receive(args),
        Command::Deliver(args) => delivery_cli::deliver(args),
        Command::ExplainDelivery(args) => delivery_cli::explain_delivery(args),
        Command::Outbox(cmd) => delivery_cli::outbox(cmd),
        Command::Drill(cmd) => drill::drill(cmd),
        Command::Topics(cmd) => kafka_cli::topics(cmd),
        Command::Publish(args) => kafka_cli::publish(args).map(|_| ()),
        Command::Generate {
            seed,
            events,
            out,
            events_per_sec,
            start,
        } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let config = scenario::ScenarioConfig {
                seed,
                events: Some(events),
                start_ms: start.as_millisecond(),
                events_per_sec,
                ..scenario::ScenarioConfig::default()
            };
            let summary = scenario::write_dir(&config, &out)
                .with_context(|| format!("cannot write the scenario into {}", out.display()))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Schema { out } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for topic in schemas::Topic::ALL {
                let path = out.join(format!("{}.schema.json", topic.suffix()));
                let schema = schemas::json_schema::for_topic(topic);
                std::fs::write(&path, serde_json::to_string_pretty(&schema)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}
