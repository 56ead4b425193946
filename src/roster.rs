//! `fusion roster check|show FILE`: validates a follow-the-sun roster, or says who is on duty.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use dataflow::roster::{Roster, RosterError, instant_text, utc_midnight_ms};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Where the shipped roster lives.
const DEFAULT_ROSTER: &str = "deploy/config/roster.toml";

/// `fusion roster …`.
#[derive(Args, Debug)]
pub struct RosterArgs {
    #[command(subcommand)]
    command: RosterCommand,
}

#[derive(Subcommand, Debug)]
enum RosterCommand {
    /// Validates a roster: long watches, double coverage, changes in the order of
    /// handovers, bad overrides and time zones; exits non-zero on any.
    Check {
        /// The roster file (TOML).
        file: PathBuf,
        /// First UTC day checked (YYYY-MM-DD); default today.
        #[arg(long)]
        from: Option<Date>,
        /// Number of days checked.
        #[arg(long, default_value_t = 730)]
        days: u32,
    },
    /// Prints the center on duty at an instant and the next handovers, in every center's local time.
    Show {
        /// The roster file (TOML); default deploy/config/roster.toml.
        file: Option<PathBuf>,
        /// The roster file, as earlier releases took it (same as FILE).
        #[arg(long, hide = true, conflicts_with = "file")]
        roster: Option<PathBuf>,
        /// The instant (RFC 3339, e.g. 2026-06-01T10:00:00Z).
        #[arg(long)]
        at: Timestamp,
        /// How many handovers to list.
        #[arg(long, default_value_t = 3)]
        next: usize,
    },
}

/// Runs `fusion roster …`.
pub fn run(args: RosterArgs) -> anyhow::Result<()> {
    match args.command {
        RosterCommand::Check { file, from, days } => {
            let from = from.unwrap_or_else(|| Timestamp::now().to_zoned(TimeZone::UTC).date());
            check(&file, from, days)
        }
        RosterCommand::Show {
            file,
            roster,
            at,
            next,
        } => {
            let file = file.or(roster).unwrap_or_else(|| DEFAULT_ROSTER.into());
            show(&file, at, next)
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Roster> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the roster {}", path.display()))?;
    match Roster::from_toml(&text) {
        Ok(r) => Ok(r),
        Err(RosterError::Invalid(findings)) => {
            for f in &findings {
                println!("error: {f}");
            }
            bail!("{}: {} error(s)", path.display(), findings.len())
        }
        Err(e) => Err(e).with_context(|| format!("cannot load {}", path.display())),
    }
}

fn check(path: &Path, from: Date, days: u32) -> anyhow::Result<()> {
    let roster = load(path)?;
    let zones = roster.zones();
    let findings = roster.check(from, days);
    let until = utc_midnight_ms(from) + i64::from(days) * 86_400_000;
    let range = format!(
        "{} to {} ({days} days)",
        instant_text(utc_midnight_ms(from), &[]),
        instant_text(until, &[])
    );
    if findings.is_empty() {
        println!(
            "{}: OK, {} centers, exactly one on duty at every instant from {range}",
            path.display(),
            zones.len()
        );
        return Ok(());
    }
    for f in &findings {
        println!("error: {}", f.describe(&zones));
    }
    bail!(
        "{}: {} error(s) between {range}",
        path.display(),
        findings.len()
    )
}

fn show(path: &Path, at: Timestamp, next: usize) -> anyhow::Result<()> {
    let roster = load(path)?;
    let zones = roster.zones();
    let t = at.as_millisecond();
    let Some(center) = roster.on_duty(t) else {
        bail!("nobody is on duty at {at}: the roster has no watch before it");
    };
    println!("at {}", instant_text(t, &zones));
    let since = roster
        .last_handover(t)
        .map(|h| format!(" since {}", instant_text(h.at_ms, &zones)))
        .unwrap_or_default();
    println!("on duty: {}{since}", roster.center_name(center));
    let mut from = t;
    for _ in 0..next {
        let Some(h) = roster.next_handover(from) else {
            break;
        };
        println!(
            "handover {} → {} at {}",
            roster.center_name(h.from),
            roster.center_name(h.to),
            instant_text(h.at_ms, &zones)
        );
        from = h.at_ms;
    }
    Ok(())
}
