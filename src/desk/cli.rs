//! `fusion officer add|revoke|list` and `fusion desk`.

#![allow(clippy::print_stdout)] // The commands' job is to print.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::DEFAULT_OFFICERS;
use super::officers::OfficersFile;

/// `fusion officer …`: the officers who may use the desk.
#[derive(Subcommand, Debug)]
pub enum OfficerCommand {
    /// Adds an officer of a center and prints their new token, once.
    Add {
        /// The officer's name.
        name: String,
        /// The officer's center (a roster center; case does not matter).
        #[arg(long)]
        center: String,
        /// The officers file.
        #[arg(long, default_value = DEFAULT_OFFICERS)]
        officers: PathBuf,
        /// The roster naming the centers. Default: deploy/config/roster.toml when present.
        #[arg(long)]
        roster: Option<PathBuf>,
    },
    /// Revokes an officer's token: the desk refuses it from the next request on.
    Revoke {
        /// The officer's name.
        name: String,
        /// The officers file.
        #[arg(long, default_value = DEFAULT_OFFICERS)]
        officers: PathBuf,
    },
    /// Lists the officers (never their tokens).
    List {
        /// The officers file.
        #[arg(long, default_value = DEFAULT_OFFICERS)]
        officers: PathBuf,
    },
}

/// `fusion desk`: the duty-desk terminal.
#[derive(Args, Debug)]
pub struct DeskArgs {
    /// The desk API, as `fusion run --desk-addr` serves it (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    url: String,
    /// A file holding the officer's token (from `fusion officer add`).
    #[arg(long)]
    token_file: PathBuf,
    /// Append `closed_time_ms drawn_at_ms` for every change drawn (to measure how long
    /// changes take to reach the screen).
    #[arg(long)]
    latency_log: Option<PathBuf>,
}

/// The roster's center called `center` (ASCII case-insensitive), as the roster writes it.
fn roster_center(center: &str, roster: Option<&Path>) -> anyhow::Result<String> {
    let default = Path::new("deploy/config/roster.toml");
    let Some(path) = roster.or_else(|| default.exists().then_some(default)) else {
        tracing::warn!("no roster to check the center against: {center} is taken as written");
        return Ok(center.to_string());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the roster {}", path.display()))?;
    let roster = dataflow::roster::Roster::from_toml(&text)
        .with_context(|| format!("the roster {} is not valid", path.display()))?;
    let names: Vec<&str> = roster.centers().collect();
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(center))
        .map(|n| n.to_string())
        .with_context(|| {
            format!(
                "{center} is not a center of the roster {} ({})",
                path.display(),
                names.join(", ")
            )
        })
}

/// Runs `fusion officer …`.
pub fn officer(cmd: OfficerCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    match cmd {
        OfficerCommand::Add {
            name,
            center,
            officers,
            roster,
        } => {
            let center = roster_center(&center, roster.as_deref())?;
            let mut file = OfficersFile::load(&officers)?;
            let token = file.add(&name, &center, now)?;
            file.save(&officers)?;
            eprintln!(
                "officer {name} of {center} added to {}; the token below is shown only this once:",
                officers.display()
            );
            println!("{token}");
        }
        OfficerCommand::Revoke { name, officers } => {
            let mut file = OfficersFile::load(&officers)?;
            file.revoke(&name, now)?;
            file.save(&officers)?;
            eprintln!("officer {name}'s token is revoked");
        }
        OfficerCommand::List { officers } => {
            let file = OfficersFile::load(&officers)?;
            for o in &file.officers {
                let state = match o.revoked {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_string(),
                };
                println!("{:<20} {:<14} added {}  {state}", o.name, o.center, o.added);
            }
        }
    }
    Ok(())
}

/// Reads an officer's token from `path`.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the token file {} is empty",
        path.display()
    );
    Ok(token)
}

/// Runs `fusion desk`.
pub fn desk(args: DeskArgs) -> anyhow::Result<()> {
    let token = read_token(&args.token_file)?;
    // Logs would draw over the terminal.
    super::redirect_logs(Path::new("fusion-desk.log"))?;
    ops_tui::run(ops_tui::Config {
        url: args.url,
        token,
        latency_log: args.latency_log,
    })?;
    Ok(())
}
